#!/bin/sh
# bench/renew.sh — renewal benchmark (issue 5), run by `make bench` from the
# build directory (or: top_builddir=BUILD sh bench/renew.sh).
#
# A generated inventory of N devices (default 1,000,000), 1/12 of them due:
#   1. scan: median time of the due scan for the next 1,000 (warm)
#   2. wave: certificates issued per second end to end (reserve + sign
#      through the real signer process + record + queue the delivery; no
#      hub) by the renewal code, as a ratio to `openssl speed ecdsap256`'s
#      sign rate measured in the same run
#   3. daemon: the same wave run by fleetcertd itself (no hub configured:
#      deliveries stay queued) on the scheduled inventory, then once more
#      on the unscheduled one (a first start after a big import); its rate
#      and its peak RSS (VmHWM)
# The ceiling is measured before and after; their mean is used.
# Prints one line per figure. Needs ~3 GB in $TMPDIR.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$here/..}" "${top_builddir:=.}"
N=${RENEW_BENCH_N:-1000000}
B="$top_builddir"
T=$(mktemp -d "${TMPDIR:-/tmp}/fc-bench-renew.XXXXXX")
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sign=$(openssl speed -seconds 3 ecdsap256 2>/dev/null |
	awk '/nistp256/ { print $(NF - 1) }')
echo "openssl speed ecdsap256: $sign sign/s"
sh "$top_srcdir/tests/mkca.sh" "$T/ca" ec 3650 >/dev/null
conf() {	# conf DB
	printf '[daemon]\nlog_level = warn\n[database]\npath = %s\n' "$1"
	printf '[ca]\ncertificate = %s/ca/intermediate.pem\n' "$T"
	printf 'key = %s/ca/intermediate.key\nchain = %s/ca/chain.pem\n' "$T" "$T"
	printf 'validity_days = 365\n[renewal]\ninterval_seconds = 60\n'
	printf 'renew_before_days = 30\njitter_days = 7\n'
	printf '[api]\nlisten = 127.0.0.1:0\ntokens_file = %s/api.tokens\n' "$T"
}
printf 'read %s\n' "$(openssl rand -hex 16 | openssl dgst -sha256 -r | cut -d' ' -f1)" \
	> "$T/api.tokens"
chmod 600 "$T/api.tokens"
conf "$T/a.db" > "$T/a.conf"
conf "$T/b.db" > "$T/b.conf"
"$B/renew-tool" gen "$T/a.db" "$N" 0.0833333
due=$(sqlite3 "$T/a.db" "SELECT count(*) FROM certificates WHERE not_after < strftime('%s', 'now') + 21 * 86400")
echo "inventory: $N devices, $due due"
cp "$T/a.db" "$T/cold.db"

# 1. the due scan (the first call schedules the fleet, then 21 timed scans)
scan=$("$B/renew-tool" scan "$T/a.db" 1000 21)
echo "$scan"
scan_us=$(echo "$scan" | awk '{ print $NF }')
mv "$T/a.db" "$T/base.db"

# 2. the wave through the signer, three times on fresh copies of the
#    scheduled inventory; the median counts
rates=
for i in 1 2 3; do
	cp "$T/base.db" "$T/a.db"
	wave=$("$B/renew-tool" wave "$T/a.db" "$T/a.conf" "$N")
	echo "wave $i: $wave"
	rates="$rates $(echo "$wave" | awk '{ print $6 }')"
	rm -f "$T/a.db" "$T/a.db-wal" "$T/a.db-shm"
done
rate=$(echo $rates | tr ' ' '\n' | sort -n | sed -n 2p)

# 3. fleetcertd does the same wave; peak RSS of the daemon process.
#    run_daemon LABEL (on b.db): from exec to the last delivery row queued.
run_daemon() {
	t0=$(date +%s.%N)
	"$B/fleetcertd" -c "$T/b.conf" > "$T/d.log" 2>&1 &
	dpid=$!
	while :; do
		n=$(sqlite3 -cmd '.timeout 5000' "$T/b.db" "SELECT count(*) FROM deliveries" 2>/dev/null || echo 0)
		[ "${n:-0}" -ge "$due" ] && break
		kill -0 "$dpid" 2>/dev/null || { cat "$T/d.log"; exit 1; }
		sleep 0.2
	done
	t1=$(date +%s.%N)
	rss=$(awk '/VmHWM/ { print $2 }' "/proc/$dpid/status")
	kill "$dpid"
	wait "$dpid" || true
	dpid=
	drate=$(awk -v a="$t0" -v b="$t1" -v n="$due" 'BEGIN { printf "%.0f", n / (b - a) }')
	echo "daemon, $1: $due renewed in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $drate/s; peak RSS $((rss / 1024)) MiB"
	rm -f "$T/b.db" "$T/b.db-wal" "$T/b.db-shm"
}
cp "$T/base.db" "$T/b.db"
run_daemon "scheduled inventory (from exec, start-up included)"
drate_sched=$drate
rss_sched=$rss
mv "$T/cold.db" "$T/b.db"
run_daemon "first start after import (scheduling of $N included)"
[ "$rss" -gt "$rss_sched" ] && rss_sched=$rss

sign2=$(openssl speed -seconds 3 ecdsap256 2>/dev/null |
	awk '/nistp256/ { print $(NF - 1) }')
echo "openssl speed ecdsap256 again: $sign2 sign/s"
sign=$(awk -v a="$sign" -v b="$sign2" 'BEGIN { printf "%.0f", (a + b) / 2 }')
echo "ceiling (mean of both): $sign sign/s"
echo "wave median $rate/s, ratio to raw P-256 signing: $(awk -v r="$rate" -v s="$sign" 'BEGIN { printf "%.3f", r / s }') (target >= 0.10)"
echo "daemon wave $drate_sched/s, ratio: $(awk -v r="$drate_sched" -v s="$sign" 'BEGIN { printf "%.3f", r / s }') (target >= 0.10)"
echo "daemon peak RSS: $((rss_sched / 1024)) MiB (VmHWM, main process; target < 64 MiB)"
echo "scan target: next 1000 under 5 ms: $(awk -v u="$scan_us" 'BEGIN { print (u < 5000) ? "met" : "missed" }')"
