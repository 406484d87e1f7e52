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

# SIGTERM: a clean stop.
kill "$DPID"
wait "$DPID"
rc=$?
DPID=
[ "$rc" -eq 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM: exit $rc"
[ "$fails" -eq 0 ]
