#!/bin/sh
# bench/revoke.sh — revocation figures for doc/performance.md, run by
# `make bench` from the build directory (fleetcert-hubsim over TLS on
# loopback, quotas off):
#   1. single revocation latency through the API (POST .../revoke answers
#      once the hub accepted the disable): median and p99 of 200 calls;
#   2. bulk propagation throughput (devices/s) of a stand-alone sweep with
#      the hub's quotas off (bulk calls of 100, one read per device);
#   3. CRL publication with 100,000 revoked certificates (number, stream to
#      the signer, sign, atomic write), next to `openssl ca -gencrl` for the
#      same 100,000 entries with the same key in the same run (the ceiling).
#   REVOKE_BENCH_N devices (default 10000), REVOKE_BENCH_CRL (100000)
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
export top_srcdir top_builddir
N=${REVOKE_BENCH_N:-10000}
CRLN=${REVOKE_BENCH_CRL:-100000}
RV_REGISTRY=1000000
RV_RATE=10000
RV_LOG_LEVEL=warn
. "$top_srcdir/tests/revoke-lib.sh"
rv_setup "$N" --quotas off --log-level error --call-log-size 0 -- --batch b
rv_conf
rv_daemon_start

echo "== single revocation: 200 calls through the API =="
: > "$T/lat"
for id in $(sql "SELECT device_id FROM devices ORDER BY device_id LIMIT 200"); do
	curl -s -o /dev/null -w '%{time_total}\n' -X POST \
		-H "Authorization: Bearer $ATOK" -H 'Content-Type: application/json' \
		-d '{}' "$API/v1/devices/$id/revoke" >> "$T/lat"
done
sort -n "$T/lat" | awk '{ v[NR] = $1 } END {
	printf "single revocation: median %.1f ms, p99 %.1f ms (%d calls; target p99 < 100 ms)\n",
	    v[int(NR / 2)] * 1000, v[int(NR * 0.99)] * 1000, NR }'
rv_daemon_stop

echo "== bulk propagation, quotas off: stand-alone sweep =="
sql "SELECT device_id FROM devices WHERE status = 'active'" > "$T/revoke.d/all"
m=$(wc -l < "$T/revoke.d/all")
sweep --json
jq -r --argjson m "$m" '"bulk: \(.propagated) devices in \(.bulkCalls) bulk calls, propagation \(.propagateSeconds * 10 | floor / 10) s: \($m / .propagateSeconds | floor) devices/s (exit \(.exitCode))"' "$T/sweep.out"

echo "== CRL with $CRLN revoked certificates =="
have=$(sql "SELECT count(*) FROM certificates WHERE status = 'revoked'")
dev=$(sql "SELECT device_id FROM devices LIMIT 1")
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $CRLN - $have)
     INSERT INTO certificates (serial, device_id, status, revoked_at, revocation_reason, issued_by, created_at, updated_at)
     SELECT '7' || lower(substr(hex(randomblob(16)), 2)), '$dev', 'revoked', strftime('%s','now'), 1, 'import', 0, 0 FROM n"
sweep --json
ours=$(jq -r .crlSeconds "$T/sweep.out")
ent=$(jq -r .crlEntries "$T/sweep.out")
# Ceiling: openssl ca -gencrl over an index of the same serials.
mkdir -p "$T/oca"
sql "SELECT 'R' || char(9) || '301231235959Z' || char(9) || '261125000000Z,keyCompromise' || char(9) || upper(serial) || char(9) || 'unknown' || char(9) || '/CN=x' FROM certificates WHERE status = 'revoked'" > "$T/oca/index.txt"
printf '[ca]\ndefault_ca = c\n[c]\ndatabase = %s/oca/index.txt\ncrlnumber = %s/oca/crlnumber\ndefault_md = sha256\ndefault_crl_hours = 48\ncertificate = %s\nprivate_key = %s\n' \
	"$T" "$T" "$HUBSIM_INT_CERT" "$T/ca.key" > "$T/oca/ca.cnf"
echo 01 > "$T/oca/crlnumber"
s0=$(date +%s.%N)
openssl ca -config "$T/oca/ca.cnf" -gencrl -out "$T/oca/crl.pem" 2>"$T/oca/err" ||
	{ echo "openssl ca -gencrl failed: $(cat "$T/oca/err")"; exit 1; }
s1=$(date +%s.%N)
oent=$(openssl crl -in "$T/oca/crl.pem" -noout -text | grep -c 'Serial Number')
[ "$oent" -eq "$ent" ] || { echo "openssl's CRL has $oent entries, ours $ent"; exit 1; }
osl=$(echo "$s1 - $s0" | bc -l)
printf 'CRL: %d entries published in %.2f s; openssl ca -gencrl %.2f s for the same entries (ratio %.2f); %d bytes DER\n' \
	"$ent" "$ours" "$osl" "$(echo "$ours / $osl" | bc -l)" "$(stat -c %s "$T/crl/fleetcert.crl")"
