#!/bin/sh
# bench/enrol.sh — full re-enrolments per second over TLS on loopback (new
# TLS session, challenge, re-enrol on the same connection) next to the bare
# TLS handshake rate of the same listener, measured in the same run, and
# their ratio (target >= 0.5). The listener is tests/enrol-testd: the real
# httpd + TLS + signer process + SQLite, as fleetcertd wires it.
# Modes alternate in short rounds so that drifting load on a shared machine
# hits both alike; server CPU per operation (listener + signer processes,
# from /proc) is reported too.
# Env: BENCH_ROUNDS (5), BENCH_SECONDS (2 per round and mode),
# BENCH_THREADS (4), BENCH_DEVICES (2000).
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
export top_srcdir top_builddir
secs=${BENCH_SECONDS:-2}
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
rounds=${BENCH_ROUNDS:-5}

# CPU ticks of the listener process and its children (the signer's
# supervisor and worker): server CPU per operation is the figure that
# survives a machine shared with the client and with other work.
tree() {
	echo "$1"
	for c in $(pgrep -P "$1" 2>/dev/null); do tree "$c"; done
}
server_ticks() {
	t=0
	for p in $(tree "$SRV_PID"); do
		[ -r /proc/$p/stat ] || continue
		t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
	done
	echo $t
}
hz=$(getconf CLK_TCK)

echo "re-enrolment benchmark: $threads client threads, $rounds rounds of ${secs}s per mode (interleaved), $ndev devices, $cores cores shared by client and server"
hs_ops=0 hs_time=0 hs_ticks=0 re_ops=0 re_time=0 re_ticks=0
r=0
while [ $r -lt "$rounds" ]; do
	for mode in handshake reenrol; do
		t0=$(server_ticks)
		out=$("$LOAD" $mode "$PORT" "$ROOT" "$threads" "$secs" \
			"$T/bench.key" 0123000000000001 "$ndev") ||
			fail "$mode run: $out"
		t1=$(server_ticks)
		ops=$(echo "$out" | sed 's/.* ops=\([0-9]*\).*/\1/')
		el=$(echo "$out" | sed 's/.*seconds=\([0-9.]*\).*/\1/')
		if [ $mode = handshake ]; then
			hs_ops=$((hs_ops + ops)); hs_ticks=$((hs_ticks + t1 - t0))
			hs_time=$(awk -v a="$hs_time" -v b="$el" 'BEGIN{print a+b}')
		else
			re_ops=$((re_ops + ops)); re_ticks=$((re_ticks + t1 - t0))
			re_time=$(awk -v a="$re_time" -v b="$el" 'BEGIN{print a+b}')
		fi
	done
	r=$((r + 1))
done
awk -v ho="$hs_ops" -v ht="$hs_time" -v hk="$hs_ticks" \
    -v ro="$re_ops" -v rt="$re_time" -v rk="$re_ticks" -v hz="$hz" 'BEGIN {
	hr = ho / ht; rr = ro / rt
	hc = hk / hz / ho * 1e6; rc = rk / hz / ro * 1e6
	printf "bare TLS handshake + tiny reply: %.0f/s, server CPU %.0f us each\n", hr, hc
	printf "full re-enrolment (handshake, challenge, re-enrol): %.0f/s, server CPU %.0f us each\n", rr, rc
	printf "ratio re-enrolments/handshakes: throughput %.2f, server CPU %.2f (target >= 0.5)\n", rr / hr, hc / rc
}'
issued=$(sql "SELECT count(*) FROM certificates WHERE issued_by = 'reenrolment' AND status != 'reserved'")
live=$(sql "SELECT count(*) FROM (SELECT device_id FROM certificates WHERE status IN ('active','delivered','pending') GROUP BY device_id HAVING count(*) > 1)")
echo "certificates issued: $issued (client counted $re_ops); devices with more than one live certificate: $live"
[ "$live" = 0 ] || fail "a device has two live certificates"
[ "$issued" -ge "$re_ops" ] || fail "fewer certificates recorded than answered"
