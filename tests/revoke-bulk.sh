#!/bin/sh
# revoke-bulk.sh — bulk revocation of 10,000 devices against
# fleetcert-hubsim at tier S1 quotas, scaled down in time (--time-scale 2:
# 200 registry operations a minute): the planner's estimate is within 20 %
# of the real duration; the hub's quota is never exceeded (its counters);
# a daemon killed half-way through a second request is finished by a
# stand-alone `fleetcertd --sweep`, and no device is written twice (each
# device's registry etag moved by exactly one update); the CRL lists
# exactly the revoked serials and verifies with the intermediate.
. "$top_srcdir/tests/revoke-lib.sh"

N=${RV_BULK_N:-10000}
HALF=$((N / 2))
SCALE=2
RV_REGISTRY=$((100 * SCALE))
RV_RATE=2000
rv_setup "$N" --tier S1 --time-scale "$SCALE" -- --batch first
# The second half is another batch.
sql "UPDATE devices SET batch = 'second' WHERE rowid > $HALF"
rv_conf
hubsim_ctl GET /_sim/devices > "$T/before.json"
jq -r '.devices[] | [.deviceId, (.registry.etag | @base64d)] | @tsv' \
	"$T/before.json" | sort > "$T/etag.before"
rv_daemon_start

# ---- request 1: timed against the planner
st=$(api POST /v1/revocations -H 'Content-Type: application/json' \
	-d '{"selector":{"batch":"first"},"dryRun":true}')
[ "$st" = 200 ] && jq -e ".matched == $HALF" "$T/body" >/dev/null &&
	pass "dry run matches $HALF devices" || fail "dry run: $st $(cat "$T/body")"
est=$(jq -r .estimatedSeconds "$T/body")
# Timed from the answer: by then the inventory and the CRL are done; the
# planner estimates the hub's part.
st=$(api POST /v1/revocations -H 'Content-Type: application/json' \
	-d '{"selector":{"batch":"first"},"reason":"keyCompromise"}')
t0=$(date +%s.%N)
[ "$st" = 202 ] || fail "bulk request: $st $(cat "$T/body")"
rid=$(jq -r .id "$T/body")
crl1=$(jq -r .crlNumber "$T/body")
[ "$crl1" -ge 1 ] && pass "CRL published with the request (#$crl1)" ||
	fail "no CRL with the request"
i=0
while :; do
	api GET "/v1/revocations/$rid" >/dev/null
	[ "$(jq -r .state "$T/body")" = done ] && break
	i=$((i + 1))
	[ $i -gt 1200 ] && { fail "request 1 not done: $(cat "$T/body")"; break; }
	sleep 0.05
done
t1=$(date +%s.%N)
real=$(echo "$t1 - $t0" | bc -l)
ratio=$(echo "$real / $est" | bc -l)
printf 'bulk: %d devices, estimate %.1f s, real %.1f s, ratio %.2f\n' \
	"$HALF" "$est" "$real" "$ratio" | tee "$T/bulk.result"
if [ "$(echo "$ratio >= 0.8 && $ratio <= 1.2" | bc -l)" = 1 ]; then
	pass "estimate within 20 % of the real duration"
else
	fail "estimate $est s, real $real s"
fi
jq -e ".propagated == $HALF" "$T/body" >/dev/null &&
	pass "request 1: $HALF propagated" || fail "request 1: $(cat "$T/body")"

# ---- request 2: the daemon is killed half-way; a sweep finishes it
st=$(api POST /v1/revocations -H 'Content-Type: application/json' \
	-d '{"selector":{"batch":"second"}}')
[ "$st" = 202 ] || fail "bulk request 2: $st"
rid2=$(jq -r .id "$T/body")
i=0
while [ "$(sql "SELECT count(*) FROM propagation WHERE revocation_id = $rid2 AND state = 'done'")" -lt $((HALF / 2)) ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && break
	sleep 0.1
done
rv_daemon_kill9
left=$(sql "SELECT count(*) FROM propagation WHERE state != 'done'")
[ "$left" -gt 0 ] && pass "killed with $left devices still to propagate" ||
	fail "nothing left to propagate after the kill"
sweep
[ "$SWEEP_RC" = 0 ] && pass "stand-alone sweep completed (exit 0): $(cat "$T/sweep.out")" ||
	fail "sweep exit $SWEEP_RC: $(cat "$T/sweep.out")"
sweep
[ "$SWEEP_RC" = 0 ] && grep -q ' 0 propagated in 0 bulk' "$T/sweep.out" &&
	pass "a second sweep finds nothing to do" ||
	fail "second sweep: $SWEEP_RC $(cat "$T/sweep.out")"

# ---- what the simulator saw: every device disabled; every device written
# once: N entries need exactly N/100 full bulk calls (a device sent twice
# would need one more), and each device read at most twice (once more for
# the batch in flight at the kill).
hubsim_ctl GET /_sim/devices > "$T/after.json"
dis=$(jq '[.devices[] | select(.registry.status == "disabled")] | length' "$T/after.json")
[ "$dis" -eq "$N" ] && pass "all $N devices disabled at the hub" ||
	fail "$dis of $N devices disabled at the hub"
hubsim_ctl GET /_sim/quotas > "$T/quotas.json"
thr=$(jq '[.operations[] | .throttled] | add' "$T/quotas.json")
[ "$thr" -eq 0 ] && pass "no request throttled: the quota was never exceeded" ||
	fail "$thr requests throttled: $(jq -c .operations "$T/quotas.json")"
hubsim_ctl GET '/_sim/calls' > "$T/calls.json"
bulk=$(jq '[.calls[] | select(.operation == "bulk")] | length' "$T/calls.json")
[ "$bulk" -eq $((N / 100)) ] && pass "$bulk bulk calls for $N devices: none resent" ||
	fail "$bulk bulk calls for $N devices (want $((N / 100)))"
reads=$(jq '[.calls[] | select(.operation == "registryRead")] | length' "$T/calls.json")
[ "$reads" -le $((N + 100)) ] && pass "$reads registry reads (<= N + one batch)" ||
	fail "$reads registry reads for $N devices"
once=$(sql "SELECT count(*) FROM (SELECT device_id FROM audit WHERE action = 'device.propagated' GROUP BY device_id HAVING count(*) = 1)")
[ "$once" -eq "$N" ] && pass "each device propagated exactly once (audit)" ||
	fail "$once devices with exactly one propagation"

# ---- the CRL lists exactly the revoked serials
openssl crl -in "$T/crl/fleetcert.crl" -inform DER -CAfile "$T/chain.pem" \
	-noout 2>&1 | grep -q 'verify OK' && pass "openssl crl verifies the CRL" ||
	fail "CRL does not verify"
openssl crl -in "$T/crl/fleetcert.crl" -inform DER -noout -text |
	sed -n 's/^ *Serial Number: *//p' | tr 'A-F' 'a-f' | sed 's/^0*//' |
	sort > "$T/crl.serials"
sql "SELECT serial FROM certificates WHERE status = 'revoked'" |
	sed 's/^0*//' | sort > "$T/db.serials"
cmp -s "$T/crl.serials" "$T/db.serials" &&
	[ "$(wc -l < "$T/crl.serials")" -eq "$N" ] &&
	pass "the CRL lists exactly the $N revoked serials" ||
	fail "CRL serials ($(wc -l < "$T/crl.serials")) differ from the inventory's ($(wc -l < "$T/db.serials"))"

rv_sanitizer_check
[ "$fails" -eq 0 ] || exit 1
echo "revoke-bulk.sh: ok"
