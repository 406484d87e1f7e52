#!/bin/sh
# Renewal wave over a simulated fleet (issue 5): N devices (default 1000)
# whose certificates expire inside the renewal window, 20 % self-signed,
# 10 % offline. The real fleetcertd renews and delivers through the real
# fleetcert-hubsim over TLS; offline devices get the twin fallback and
# confirm once they come online; self-signed devices see the secondary and
# then the primary thumbprint; every device ends with exactly one new
# certificate that openssl verify accepts, and nothing exceeds the quotas.
. "$top_srcdir/tests/renew-lib.sh"
N=${RENEW_N:-1000}

renew_setup "$N" --expire-in-days 2-20 --self-signed 0.2 --offline 0.1 \
	--thumbprint sha1
renew_conf
offline=$(hubsim_ctl GET /_sim/devices |
	jq '[.devices[] | select(.device.online == false)] | length')
[ "$offline" -gt 0 ] && pass "$offline devices start offline" ||
	fail "no offline devices in the fleet"
# Key rotation for ten online CA devices: the daemon asks each for a CSR
# (fleetcertCsr) and certifies the new key.
rk=$(hubsim_ctl GET /_sim/devices | jq -r '[.devices[]
	| select(.device.online == true and
	    .registry.authentication.type == "certificateAuthority")][0:10][]
	| .deviceId')
for id in $rk; do
	sql "UPDATE devices SET rekey = 1 WHERE device_id = '$id'"
done
renew_daemon_start

# Online devices confirm; offline ones wait in step confirm after the
# twin fallback.
if renew_wait_done $((N - offline)) 240; then
	pass "online devices renewed and confirmed"
else
	fail "online devices did not all confirm"
fi
fb=$(sql "SELECT count(*) FROM deliveries WHERE step = 'confirm'")
[ "$fb" -eq "$offline" ] && pass "offline devices wait for confirmation" ||
	fail "$fb deliveries waiting, $offline devices offline"
# The twin carries the new certificate for an offline device.
off1=$(hubsim_ctl GET /_sim/devices |
	jq -r '[.devices[] | select(.device.online == false)][0].deviceId')
want=$(sql "SELECT serial FROM deliveries WHERE device_id = '$off1'")
got=$(hubsim_ctl GET "/_sim/devices/$off1" |
	jq -r '.twin.properties.desired.fleetcert.serial // ""')
[ "$got" = "$want" ] && pass "twin fallback: desired fleetcert carries $want" ||
	fail "twin of $off1 has serial '$got', want '$want'"

hubsim_ctl POST /_sim/online '{"online": true}' >/dev/null
if renew_wait_done "$N" 120; then
	pass "offline devices confirmed after coming online"
else
	fail "not every device confirmed"
fi
renew_check_all "$N"

# The rekeyed devices got a certificate for a new key (not the identity
# key), which they installed (renew_check_all saw their serials).
newkey=0
for id in $rk; do
	sql "SELECT hex(der) || ' ' || hex(identity_key) FROM certificates c JOIN devices d USING (device_id) WHERE c.device_id = '$id' AND c.issued_by = 'renewal' AND c.status = 'active'" |
	while read -r der key; do
		pk=$(printf '%s' "$der" | xxd -r -p |
			openssl x509 -inform DER -pubkey -noout |
			openssl pkey -pubin -outform DER | xxd -p | tr -d '\n' |
			tr 'a-f' 'A-F')
		[ -n "$pk" ] && [ "$pk" != "$key" ] && echo new
	done
done > "$T/rekey.txt"
newkey=$(grep -c new "$T/rekey.txt")
[ "$newkey" -eq 10 ] && pass "10 rekeyed devices certified with a new key" ||
	fail "rekey: $newkey of 10 devices have a new key"

# Self-signed devices: secondary (stage), then the method, then primary
# (promote): the order of registry writes and the method call per device.
hubsim_ctl GET '/_sim/calls?since=0' > "$T/calls.json"
ss=$(sql "SELECT count(*) FROM devices WHERE auth_type = 'selfsigned'")
seq_ok=$(jq -r '[.calls[] | select(.deviceId != "" and .status < 300)
	| select(.operation == "registryWrite" or .operation == "method"
	    or .operation == "twinUpdate")]
	| group_by(.deviceId)
	| map(select(any(.[]; .operation == "registryWrite"))
	    | [.[].operation] | join(","))
	| map(select(test("^registryWrite,(method|twinUpdate),registryWrite$")))
	| length' "$T/calls.json")
[ "$seq_ok" -eq "$ss" ] &&
	pass "$ss self-signed devices: secondary, install, then primary" ||
	fail "thumbprint sequence right for $seq_ok of $ss self-signed devices"

# No tight retry loop and no throttling without faults: few calls per
# device, none refused for quota.
calls=$(jq '.calls | length' "$T/calls.json")
[ "$calls" -le $((N * 8)) ] && pass "$calls hub calls for $N devices" ||
	fail "$calls hub calls for $N devices (tight loop?)"
thr=$(jq '[.calls[] | select(.status == 429)] | length' "$T/calls.json")
[ "$thr" -eq 0 ] && pass "no call throttled by the hub" ||
	fail "$thr calls throttled"

# Metrics (GET /metrics of the operator API).
renew_metrics > "$T/metrics.txt"
iss=$(awk '/^fleetcert_renewals_total\{outcome="issued"\}/ { print $2 }' "$T/metrics.txt")
[ "${iss:-0}" -ge "$N" ] 2>/dev/null && pass "metrics: $iss renewals issued" ||
	fail "metrics: renewals issued '${iss:-}'"
for fam in fleetcert_certificates_expiring fleetcert_delivery_backlog \
    fleetcert_delivery_oldest_pending_seconds fleetcert_hub_requests_total \
    fleetcert_delivery_events_total fleetcert_devices_needing_reenrolment \
    fleetcert_hub_attempts_within_seconds; do
	grep -q "^$fam" "$T/metrics.txt" && pass "metrics: $fam" ||
		fail "metrics: no $fam"
done
bl=$(awk '/^fleetcert_delivery_backlog\{state="open"\}/ { print $2 }' "$T/metrics.txt")
[ "$bl" = "0" ] && pass "metrics: backlog empty" || fail "metrics: backlog '$bl'"

# SIGTERM: a clean stop.
kill "$DPID"
wait "$DPID"
rc=$?
DPID=
[ "$rc" -eq 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM: exit $rc"
[ "$fails" -eq 0 ]
