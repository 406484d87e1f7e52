#!/bin/sh
# bench/enrol.sh — full re-enrolments per second over TLS on loopback (new
# TLS session, challenge, re-enrol on the same connection) next to the bare
# TLS handshake rate of the same listener, measured in the same run, and
# their ratio (target >= 0.5). The listener is tests/enrol-testd: the real
# httpd + TLS + signer process + SQLite, as fleetcertd wires it.
# Env: BENCH_SECONDS (10), BENCH_THREADS (4), BENCH_DEVICES (2000).
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
export top_srcdir top_builddir
secs=${BENCH_SECONDS:-10}
threads=${BENCH_THREADS:-4}
ndev=${BENCH_DEVICES:-2000}
ENROL_PER_SERIAL=3600 ENROL_PER_ADDRESS=100000 ENROL_LOG_LEVEL=error
export ENROL_PER_SERIAL ENROL_PER_ADDRESS ENROL_LOG_LEVEL
. "$top_srcdir/tests/enrol-lib.sh"
LOAD=$top_builddir/bench/enrol_load

enrol_setup
enrol_device bench 0123000000000001 unregistered
"$top_builddir/tests/enrol-testd" add-device "$CONF" bench 0123000000000001 \
	"$T/bench.pub" "$ndev"
enrol_start
cores=$(nproc)
echo "re-enrolment benchmark: $threads client threads, ${secs}s per mode, $ndev devices, $cores cores (client and server share them)"
hs=$("$LOAD" handshake "$PORT" "$ROOT" "$threads" "$secs" "$T/bench.key" \
	0123000000000001 "$ndev") || fail "handshake run: $hs"
re=$("$LOAD" reenrol "$PORT" "$ROOT" "$threads" "$secs" "$T/bench.key" \
	0123000000000001 "$ndev") || fail "re-enrol run: $re"
echo "$hs"
echo "$re"
h=$(echo "$hs" | sed 's/.*rate=\([0-9]*\).*/\1/')
r=$(echo "$re" | sed 's/.*rate=\([0-9]*\).*/\1/')
awk -v r="$r" -v h="$h" 'BEGIN { printf "ratio re-enrolment/handshake = %.2f (target >= 0.5)\n", r / h }'
issued=$(sql "SELECT count(*) FROM certificates WHERE issued_by = 'reenrolment' AND status != 'reserved'")
live=$(sql "SELECT count(*) FROM (SELECT device_id FROM certificates WHERE status IN ('active','delivered','pending') GROUP BY device_id HAVING count(*) > 1)")
echo "certificates issued: $issued; devices with more than one live certificate: $live"
[ "$live" = 0 ] || fail "a device has two live certificates"
