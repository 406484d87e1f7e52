#!/bin/sh
# fleetcert-hubsim: per-tier quotas (shaping, then 429 with Retry-After) and
# fault injection (429/500/503, latency, connection resets) per operation.
HUBSIM_ARGS="--tier S1 --time-scale 2"
. "$top_srcdir/tests/hubsim-lib.sh"
D=$HUBSIM_DIR

hubsim_ctl GET /_sim/quotas > "$D/q.json"
jq -e '.enabled and .tier == "S1" and .operations.query.quota == 20 and .operations.query.per == "minute" and (.operations.query.windowSeconds | . > 29.9 and . < 30.1)' "$D/q.json" >/dev/null ||
	fail "S1 query quota 20/min scaled to 30 s"
jq -e '.operations.registryWrite.quota == 100 and .operations.twinRead.quota == 100 and .operations.twinUpdate.quota == 50 and .operations.method.quota == 40' "$D/q.json" >/dev/null ||
	fail "S1 quotas"
ok "S1 quotas reported, windows scaled by --time-scale"

# A burst of 40 concurrent queries: 20 pass (the quota of one window), a
# short backlog is shaped (delayed), the rest get 429.
q='{"query":"SELECT * FROM devices"}'
tok=$(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")
i=0 pids=""
while [ $i -lt 40 ]; do
	i=$((i + 1))
	curl -sS --cacert "$HUBSIM_CA" -X POST -o "$D/r$i.body" -D "$D/r$i.hdr" \
		-w '%{http_code}' -H "Authorization: $tok" --data-binary "$q" \
		"$HUBSIM_URL/devices/query?api-version=2021-04-12" > "$D/r$i.st" &
	pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids
n200=0 n429=0 f429=""
for f in "$D"/r*.st; do
	case $(cat "$f") in
	200) n200=$((n200 + 1)) ;;
	429) n429=$((n429 + 1)); f429=$f ;;
	esac
done
[ $((n200 + n429)) -eq 40 ] || fail "burst: $n200 x 200, $n429 x 429 of 40"
[ "$n200" -ge 20 ] || fail "only $n200 admitted (quota is 20 per window)"
[ "$n429" -ge 1 ] || fail "no 429 in a burst of 40"
ok "burst of 40: $n200 admitted, $n429 throttled"
cp "${f429%.st}.body" "$D/body"
cp "${f429%.st}.hdr" "$D/headers"
expect_error 429 429 429001 ThrottlingException a "query over quota"
ra=$(hdr Retry-After)
case "$ra" in ''|*[!0-9]*) fail "Retry-After missing or not a number: '$ra'" ;; esac
[ "$ra" -ge 1 ] || fail "Retry-After $ra"
ok "429 carries Retry-After: $ra"
hubsim_ctl GET /_sim/quotas | jq -e '.operations.query.shaped >= 1 and .operations.query.throttled >= 1' >/dev/null ||
	fail "shaping before throttling not visible in counters"
ok "requests were shaped before the first 429"
hubsim_ctl GET /_sim/calls | jq -e '[.calls[] | select(.operation == "query" and .shapedMs > 0 and .status == 200)] | length >= 1' >/dev/null ||
	fail "no shaped call in the call log"
ok "call log shows the shaping delay"
# After Retry-After the quota has refilled.
sleep "$ra"
st=$(hubsim_call POST /devices/query "$q")
expect_status "$st" 200 "query after Retry-After"

# Fault injection, per operation.
st=$(hubsim_ctl POST /_sim/faults '{"operation":"registryRead","p503":1}')
st=$(hubsim_call GET /devices/x)
expect_error "$st" 503 503001 ServiceUnavailable a "injected 503 on registryRead"
st=$(hubsim_call GET /twins/x)
expect_error "$st" 404 404001 DeviceNotFound a "other operations unaffected"
hubsim_ctl POST /_sim/faults '{"operation":"registryRead","p429":1,"retryAfter":3}' >/dev/null
st=$(hubsim_call GET /devices/x)
expect_error "$st" 429 429001 ThrottlingException a "injected 429"
[ "$(hdr Retry-After)" = 3 ] || fail "injected Retry-After"
hubsim_ctl POST /_sim/faults '{"operation":"registryRead","p500":1}' >/dev/null
st=$(hubsim_call GET /devices/x)
expect_error "$st" 500 500001 ServerError a "injected 500"
hubsim_ctl POST /_sim/faults '{"operation":"registryRead","pReset":1}' >/dev/null
if hubsim_call GET /devices/x >/dev/null 2>&1; then fail "connection not reset"; fi
ok "injected connection reset"
hubsim_ctl POST /_sim/faults '{"operation":"any","latencyMs":600}' >/dev/null
hubsim_ctl DELETE /_sim/faults >/dev/null
hubsim_ctl POST /_sim/faults '{"operation":"statistics","latencyMs":600}' >/dev/null
t0=$(date +%s%N)
st=$(hubsim_call GET /statistics/devices)
t1=$(date +%s%N)
expect_status "$st" 200 "call with injected latency"
[ $(( (t1 - t0) / 1000000 )) -ge 550 ] || fail "latency not applied"
ok "latency applied"
st=$(hubsim_ctl POST /_sim/faults '{"operation":"nope","p503":1}')
printf '%s' "$st" | jq -e '.error' >/dev/null || fail "bad fault accepted"
ok "bad fault spec refused"
hubsim_ctl DELETE /_sim/faults | jq -e '.faults == {}' >/dev/null || fail "faults cleared"
st=$(hubsim_call GET /devices/x)
expect_error "$st" 404 404001 DeviceNotFound a "faults cleared"
hubsim_ctl GET /_sim/calls | jq -e '[.calls[] | select(.status == 0)] | length == 1' >/dev/null ||
	fail "reset not in the call log as status 0"
ok "reset recorded in the call log"
hubsim_ctl DELETE /_sim/calls | jq -e '.calls == []' >/dev/null || fail "call log cleared"
ok "call log cleared"
