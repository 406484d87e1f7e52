#!/bin/sh
# Renewal under hub faults (issue 5): 30 % of hub calls answer 429 or 503,
# 5 % of connections are reset, some devices answer methods too slowly
# (504101: twin fallback), with the simulator enforcing S1 quotas (windows
# scaled down 10x). Everything completes, each device exactly once, with
# no tight retry loop and no quota exceeded.
. "$top_srcdir/tests/renew-lib.sh"
N=${RENEW_N:-300}
HUBSIM_ARGS="--time-scale 10"
RENEW_RATE=60
RENEW_REGISTRY=900
RENEW_RETRY_MAX=6
renew_setup "$N" --expire-in-days 2-20 --self-signed 0.2 --thumbprint sha256
# S1 quotas scaled 10x (restart the simulator with them; the fixture
# is loaded again, the database is untouched).
hubsim_stop
hubsim_start --devices "$T/fixture.json" --tier S1 --time-scale 10 || exit 1
printf '%s\n' "$HUBSIM_CONN" > "$T/hub.conn"
renew_conf
hubsim_ctl POST /_sim/faults \
	'{"operation": "any", "p429": 0.15, "p503": 0.15, "pReset": 0.05, "retryAfter": 1}' \
	>/dev/null
slow=0
for id in $(sql "SELECT device_id FROM devices WHERE auth_type = 'ca' ORDER BY device_id LIMIT $((N / 20))"); do
	hubsim_ctl POST "/_sim/devices/$id/behaviour" '{"slowMs": 7000}' >/dev/null
	slow=$((slow + 1))
done
# A wrong hub key first: 401 is "misconfigured", the hub's queue pauses
# and health says why; nothing is retried in a loop meanwhile.
good=$(cat "$T/hub.conn")
printf '%s\n' "$good" | sed 's/SharedAccessKey=[^;]*/SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=/' \
	> "$T/hub.conn"
hubsim_ctl DELETE /_sim/faults >/dev/null
hubsim_ctl DELETE /_sim/calls >/dev/null
renew_daemon_start
i=0
health=
while [ $i -lt 30 ]; do
	sleep 1
	port=$(sed -n 's/.*httpd api: listening on .* (port \([0-9]*\)).*/\1/p' \
		"$T/daemon.log" | tail -n 1)
	[ -n "$port" ] && health=$(curl -sS -H "Authorization: Bearer $API_TOKEN" \
		"http://127.0.0.1:$port/v1/health" 2>/dev/null)
	echo "$health" | jq -e '.components.delivery.ok == false' >/dev/null 2>&1 &&
		break
	i=$((i + 1))
done
echo "$health" | jq -e '.components.delivery.ok == false and
    (.components.delivery.reason | test("misconfigured"))' >/dev/null &&
	pass "wrong hub key: delivery paused, health says why" ||
	fail "wrong hub key: health $health"
sleep 3
c401=$(hubsim_ctl GET '/_sim/calls?since=0' | jq '[.calls[] | select(.status == 401)] | length')
[ "$c401" -le 50 ] && pass "paused queue: $c401 refused calls, no loop" ||
	fail "paused queue: $c401 refused calls"
d=$(sql "SELECT count(*) FROM deliveries WHERE step = 'done'")
[ "$d" -eq 0 ] && pass "nothing delivered with a wrong key" ||
	fail "$d delivered with a wrong key"
renew_daemon_stop
printf '%s\n' "$good" > "$T/hub.conn"
hubsim_ctl POST /_sim/faults \
	'{"operation": "any", "p429": 0.15, "p503": 0.15, "pReset": 0.05, "retryAfter": 1}' \
	>/dev/null

renew_daemon_start
if renew_wait_done "$N" 420; then
	pass "all $N devices renewed despite faults"
else
	fail "renewal did not complete under faults"
fi
renew_check_all "$N"

hubsim_ctl GET '/_sim/calls?since=0' > "$T/calls.json"
calls=$(jq '.calls | length' "$T/calls.json")
inj=$(jq '[.calls[] | select(.status == 429 or .status == 503)] | length' \
	"$T/calls.json")
[ "$inj" -gt 0 ] && pass "$inj faults injected" || fail "no fault seen"
# Back-off, not a loop: a bounded number of calls per device.
maxdev=$(jq '[.calls[] | select(.deviceId != "")] | group_by(.deviceId)
	| map(length) | max' "$T/calls.json")
[ "$calls" -le $((N * 20)) ] && [ "$maxdev" -le 60 ] &&
	pass "$calls calls, at most $maxdev for one device" ||
	fail "$calls calls, $maxdev for one device (tight retry loop?)"
fb=$(sql "SELECT count(*) FROM audit WHERE action = 'cert.delivered' AND detail LIKE '%twin%'")
[ "$fb" -ge "$slow" ] && pass "$fb deliveries went through the twin ($slow slow devices)" ||
	fail "$fb twin deliveries, $slow slow devices"
thr=$(hubsim_ctl GET /_sim/quotas |
	jq '[.operations[] | .throttled] | add')
[ "$thr" -eq 0 ] && pass "no quota exceeded" ||
	fail "$thr calls refused for quota"
[ "$fails" -eq 0 ]
