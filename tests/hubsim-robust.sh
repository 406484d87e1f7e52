#!/bin/sh
# fleetcert-hubsim: robustness — malformed and hostile bodies on every
# endpoint must be answered (never crash the simulator); it must still work
# and exit cleanly afterwards (sanitizer reports fail the test).
. "$top_srcdir/tests/hubsim-lib.sh"
D=$HUBSIM_DIR

cat > "$D/bodies" <<'BODIES'
{}
[]
null
1
"x"
{"a": [1,2,{"b":null}]}
{"deviceId":"fz","authentication":[]}
{"deviceId":"fz","authentication":{"type":7}}
{"deviceId":"fz","authentication":{"type":"selfSigned","x509Thumbprint":[]}}
{"deviceId":"fz","status":null,"statusReason":5}
{"methodName":"fleetcertInstall","payload":{"serial":"aa","certificate":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}
{"methodName":"fleetcertCsr","payload":null}
{"methodName":"fleetcertInstall","payload":[]}
{"methodName":"fleetcertCsr","payload":{"keySlot":3}}
{"query":"SELECT * FROM devices WHERE"}
{"query":"SELECT * FROM devices WHERE a = '"}
{"query":"SELECT * FROM devices WHERE NOT x = 1"}
{"query":"SELECT * FROM devices WHERE IS_DEFINED("}
{"query":"SELECT * FROM devices WHERE a = 1 AND b = 2 OR c = 3 AND d = 'x''y' OR e = 1 AND f = 1 AND g = 1 AND h = 1 AND i = 1 AND j = 1 AND k = 1 AND l = 1 AND m = 1 AND n = 1 AND o = 1 AND p = 1 AND q = 1 AND r = 1 AND s = 1 AND t = 1 AND u = 1 AND v = 1 AND w = 1 AND x = 1 AND y = 1 AND z = 1 AND aa = 1 AND bb = 1 AND cc = 1 AND dd = 1 AND ee = 1 AND ff = 1"}
{"tags":{"a":{"b":null}},"properties":{"desired":null}}
{"properties":[]}
[{"id":"fz","importMode":"updateTwin","tags":5}]
[{"id":"fz","importMode":"updateTwinIfMatchETag","twinETag":5}]
[{"id":5}]
[{"id":"q","importMode":"create","authentication":{"type":"sas","symmetricKey":{"primaryKey":"!!"}}}]
{"operation":"method","p429":0.5,"latencyMs":-1}
{"online":true,"devices":[1,"fz",null]}
{"slowMs":"x","noConfirm":1}
{"offset":"x"}
{"x":
BODIES
head -c 3000 /dev/urandom | base64 | tr -d '\n' >> "$D/bodies"
printf '\n{"deviceId":"fz","x":"\\u0000"}\n' >> "$D/bodies"

st=$(hubsim_call PUT /devices/fz "$(dev_json fz)")
expect_status "$st" 200 "create fz"
tok=$(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")
n=0
for ep in "PUT /devices/fz" "PATCH /twins/fz" "PUT /twins/fz" \
    "POST /twins/fz/methods" "POST /devices" "POST /devices/query" \
    "POST /_sim/faults" "POST /_sim/online" "POST /_sim/devices/fz/behaviour" \
    "POST /_sim/clock"; do
	m=${ep% *} p=${ep#* }
	case "$p" in
	/_sim/*) auth="Bearer $HUBSIM_CONTROL_TOKEN" q="" ;;
	*) auth=$tok q="?api-version=2021-04-12" ;;
	esac
	while IFS= read -r b; do
		curl -sS --cacert "$HUBSIM_CA" -X "$m" -o /dev/null -H "Authorization: $auth" \
			--data-binary "$b" "$HUBSIM_URL$p$q" >/dev/null 2>&1
		n=$((n + 1))
	done < "$D/bodies"
done
kill -0 "$HUBSIM_PID" || fail "simulator died"
ok "$n hostile requests answered"
hubsim_ctl DELETE /_sim/faults >/dev/null
hubsim_ctl POST /_sim/clock '{"offset": 0}' >/dev/null
st=$(hubsim_call GET /devices/fz)
expect_status "$st" 200 "simulator still serves"
st=$(curl -sS --path-as-is --cacert "$HUBSIM_CA" -o /dev/null -w '%{http_code}' -H "Authorization: $tok" \
	"$HUBSIM_URL/devices/fz/../fz?api-version=2021-04-12")
expect_status "$st" 404 "dot segments are not routes"
st=$(curl -sS --cacert "$HUBSIM_CA" -o /dev/null -w '%{http_code}' -H "Authorization: $tok" \
	"$HUBSIM_URL/devices/$(head -c 3000 /dev/zero | tr '\0' a)?api-version=2021-04-12")
expect_status "$st" 400 "3000-character device id"
head -c 600000 /dev/zero | tr '\0' a > "$D/huge"
st=$(curl -sS --cacert "$HUBSIM_CA" -X POST -o /dev/null -w '%{http_code}' -H "Authorization: $tok" \
	--data-binary @"$D/huge" "$HUBSIM_URL/devices?api-version=2021-04-12")
expect_status "$st" 413 "600 KB body"
