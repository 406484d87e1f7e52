#!/bin/sh
# bench/hub.sh — hub calls per second the client sustains against
# fleetcert-hubsim on loopback (TLS, quotas off, call log off), next to
# curl(1)'s own rate for the same calls against the same simulator in the
# same run. Run by `make bench` from the build directory.
#   HUB_BENCH_CALLS (default 50000), HUB_BENCH_INFLIGHT (default 32)
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
export top_srcdir top_builddir
calls=${HUB_BENCH_CALLS:-50000}
inflight=${HUB_BENCH_INFLIGHT:-32}
bench="$top_builddir/bench/bench_hub"

HUBSIM_ARGS="--quotas off --log-level error --call-log-size 0"
. "$top_srcdir/tests/start-hubsim.sh"
trap hubsim_cleanup EXIT INT TERM

( umask 077; printf '%s\n' "$HUBSIM_CONN" > "$HUBSIM_DIR/hub.conn" )
st=$(hubsim_call PUT /devices/bench-01 '{"deviceId":"bench-01","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"0123456789ABCDEF0123456789ABCDEF01234567","secondaryThumbprint":null}}}')
[ "$st" = 200 ] || { echo "bench/hub.sh: cannot create the device ($st)" >&2; exit 1; }

echo "== hub client: $calls twin GETs, $inflight in flight, against fleetcert-hubsim =="
c=$("$bench" "$HUBSIM_DIR/hub.conn" "$HUBSIM_CA" bench-01 "$calls" "$inflight" client)
echo "$c"
k=$("$bench" "$HUBSIM_DIR/hub.conn" "$HUBSIM_CA" bench-01 "$calls" "$inflight" curl)
echo "$k"
rate() { printf '%s\n' "$1" | sed -n 's/.* rate=\([0-9.]*\).*/\1/p'; }
cpu() { printf '%s\n' "$1" | sed -n 's/.*cpu_us_per_call=\([0-9.]*\).*/\1/p'; }
awk -v cr="$(rate "$c")" -v kr="$(rate "$k")" -v cc="$(cpu "$c")" \
    -v kc="$(cpu "$k")" 'BEGIN {
	printf "client/curl rate ratio: %.2f; client CPU per call %.1f us vs curl %.1f us (ratio %.2f)\n",
	    cr / kr, cc, kc, cc / kc }'
