#!/bin/sh
# fleetcert-hubsim: direct methods and the simulated devices — timeout
# ranges (400004), 404001 / 404103 / 504101, fleetcertCsr, fleetcertInstall
# (chain, key, serial checks), the selfSigned thumbprint check at connect,
# desired "fleetcert" applied when a device comes online, misbehaviour.
HUBSIM_DEFER_START=1
. "$top_srcdir/tests/hubsim-lib.sh"
D=$HUBSIM_DIR

hubsim_gen_fleet --count 4 --self-signed 0.25 --offline 0.25 --thumbprint sha1 \
	--out "$D/fleet.json" >/dev/null 2>&1 || fail "gen-fleet"
A=$(jq -r '[.devices[] | select(.authType == "certificateAuthority" and .online)][0].deviceId' "$D/fleet.json")
S=$(jq -r '[.devices[] | select(.authType == "selfSigned" and .online)][0].deviceId' "$D/fleet.json")
O=$(jq -r '[.devices[] | select(.online | not)][0].deviceId' "$D/fleet.json")
[ "$A" != null ] && [ "$S" != null ] && [ "$O" != null ] || fail "fleet lacks a device kind: $A $S $O"
for x in "$A" "$S" "$O"; do
	jq -r --arg id "$x" '.devices[] | select(.deviceId == $id) | .identityKey' "$D/fleet.json" > "$D/$x.key"
	jq -r --arg id "$x" '.devices[] | select(.deviceId == $id) | .certificate' "$D/fleet.json" > "$D/$x.pem"
	jq -r --arg id "$x" '.devices[] | select(.deviceId == $id) | .serial' "$D/fleet.json" > "$D/$x.serial"
done
hubsim_start --devices "$D/fleet.json" || fail "start"

method() { # id name payload [rto] [cto]
	hubsim_call POST "/twins/$1/methods" "{\"methodName\":\"$2\",\"payload\":$3,\"responseTimeoutInSeconds\":${4:-10},\"connectTimeoutInSeconds\":${5:-0}}"
}

# Issue a device certificate (issue 3 profile) for a CSR: issue CSR CN SERIAL-FILE-OUT
issue() {
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=URI:urn:fleetcert:se:%s\n' "$(cat "$D/$2.serial")" > "$D/dev.ext"
	sn="1$(openssl rand -hex 15)"
	openssl x509 -req -in "$1" -CA "$HUBSIM_INT_CERT" -CAkey "$HUBSIM_INT_KEY" \
		-set_serial "0x$sn" -subj "/CN=$2" -days 30 -extfile "$D/dev.ext" \
		-out "$3" 2>/dev/null || fail "openssl x509 -req"
	openssl x509 -in "$3" -noout -serial | sed 's/serial=//' | tr 'A-F' 'a-f'
}

install_payload() { # cert-file serial
	jq -n --rawfile c "$1" --rawfile ch "$HUBSIM_INT_CERT" --arg s "$2" \
		'{serial: $s, certificate: $c, chain: $ch, notAfter: "2030-01-01T00:00:00Z", renewAfter: "2029-12-01T00:00:00Z"}'
}

# --- argument checks (shape B) ---
st=$(method "$A" ping '{}' 4)
expect_error "$st" 400 400004 ArgumentInvalid b "responseTimeoutInSeconds 4"
st=$(method "$A" ping '{}' 301)
expect_error "$st" 400 400004 ArgumentInvalid b "responseTimeoutInSeconds 301"
st=$(method "$A" ping '{}' 10 301)
expect_error "$st" 400 400004 ArgumentInvalid b "connectTimeoutInSeconds 301"
st=$(method "$A" ping '{}' 10 -1)
expect_error "$st" 400 400004 ArgumentInvalid b "connectTimeoutInSeconds -1"
st=$(method "$A" 'bad name' '{}')
expect_error "$st" 400 400004 ArgumentInvalid b "method name with a space"
st=$(method "$A" 'a/b' '{}')
expect_error "$st" 400 400004 ArgumentInvalid b "method name with a slash"
st=$(hubsim_call POST "/twins/$A/methods" '{"methodName":')
expect_error "$st" 400 400006 IotHubFormatError b "malformed method body"
head -c 140000 /dev/zero | tr '\0' a | jq -Rs '{methodName: "m", payload: {blob: .}}' > "$D/big.json"
st=$(curl -sS --cacert "$HUBSIM_CA" -X POST -o "$D/body" -D "$D/headers" -w '%{http_code}' \
	-H "Authorization: $(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")" \
	--data-binary @"$D/big.json" "$HUBSIM_URL/twins/$A/methods?api-version=2021-04-12")
expect_error "$st" 413 413001 MessageTooLarge b "method payload over 128 KB"
st=$(method nosuch ping '{}')
expect_error "$st" 404 404001 DeviceNotFound b "method to an unknown device"
st=$(method "$O" ping '{}')
expect_error "$st" 404 404103 DeviceNotOnline b "method to an offline device"
hubsim_call PUT /devices/plain "$(dev_json plain)" >/dev/null
st=$(method plain ping '{}')
expect_error "$st" 404 404103 DeviceNotOnline b "method to a device nothing stands behind"
hubsim_call PUT /devices/gone "$(dev_json gone disabled)" >/dev/null
st=$(method gone ping '{}')
expect_error "$st" 404 404001 DeviceNotFound b "method to a disabled device"
st=$(method "$A" ping '{}')
expect_status "$st" 200 "unknown method reaches the device"
body_jq '.status == 501' || fail "device status 501 for an unknown method"
ok "device answers 501 to an unknown method"

# --- fleetcertCsr ---
st=$(method "$A" fleetcertCsr '{"keySlot":0}')
expect_status "$st" 200 "fleetcertCsr"
body_jq '.status == 200 and (.payload.csr | length > 100)' || fail "CSR answer"
jq -r .payload.csr "$D/body" | base64 -d > "$D/A.csr.der"
openssl req -inform DER -in "$D/A.csr.der" -out "$D/A.csr" 2>/dev/null || fail "CSR is not DER PKCS#10"
openssl req -in "$D/A.csr" -noout -verify 2>&1 | grep -q 'verify OK' || fail "CSR signature"
[ "$(openssl req -in "$D/A.csr" -noout -pubkey)" = "$(openssl pkey -in "$D/$A.key" -pubout)" ] ||
	fail "CSR key is not the identity key"
ok "CSR is signed by the device's identity key"
st=$(method "$A" fleetcertCsr '{"keySlot":16}')
body_jq '.status == 400 and (.payload.error | length > 0)' || fail "keySlot 16"
ok "keySlot out of range refused by the device"

# --- fleetcertInstall on a CA device ---
serial=$(issue "$D/A.csr" "$A" "$D/A-new.pem")
st=$(method "$A" fleetcertInstall "$(install_payload "$D/A-new.pem" "$serial")")
expect_status "$st" 200 "fleetcertInstall"
body_jq ".status == 200 and .payload.installedSerial == \"$serial\"" || fail "install answer"
ok "device answered installedSerial"
hubsim_call GET "/twins/$A" >/dev/null
body_jq ".properties.reported.fleetcert.installedSerial == \"$serial\" and .properties.reported.fleetcert.status == \"installed\"" || fail "reported fleetcert"
ok "device reported the new serial"
hubsim_ctl GET "/_sim/devices/$A" > "$D/sim.json"
jq -e ".device.installedSerial == \"$serial\" and .device.connected" "$D/sim.json" >/dev/null || fail "device uses the new cert"
ok "device reconnected with the new certificate"

st=$(method "$A" fleetcertInstall "$(install_payload "$D/$S.pem" "$(openssl x509 -in "$D/$S.pem" -noout -serial | sed 's/serial=//')")")
body_jq '.status == 400 and (.payload.error | test("key"))' || fail "another device's certificate accepted"
ok "certificate for another key refused"
openssl req -x509 -key "$D/$A.key" -subj "/CN=$A" -days 1 -out "$D/A-self.pem" 2>/dev/null
st=$(method "$A" fleetcertInstall "$(install_payload "$D/A-self.pem" "$(openssl x509 -in "$D/A-self.pem" -noout -serial | sed 's/serial=//')")")
body_jq '.status == 400 and (.payload.error | length > 0)' || fail "unchained certificate accepted"
ok "certificate that does not chain to the trust root refused"
st=$(method "$A" fleetcertInstall "$(install_payload "$D/A-new.pem" "00ff")")
body_jq '.status == 400' || fail "serial mismatch accepted"
ok "serial mismatch refused"
st=$(method "$A" fleetcertInstall '{"serial":1}')
body_jq '.status == 400' || fail "malformed payload accepted"
ok "malformed install payload refused"

# --- selfSigned: the hub checks the thumbprint at every connection ---
st=$(method "$S" fleetcertCsr '{"keySlot":0}')
jq -r .payload.csr "$D/body" | base64 -d | openssl req -inform DER -out "$D/S.csr" 2>/dev/null
sserial=$(issue "$D/S.csr" "$S" "$D/S-new.pem")
hubsim_ctl DELETE /_sim/calls >/dev/null
st=$(method "$S" fleetcertInstall "$(install_payload "$D/S-new.pem" "$sserial")")
expect_status "$st" 200 "install on selfSigned device before its thumbprint is registered"
hubsim_call GET "/twins/$S" >/dev/null
body_jq '.properties.reported.fleetcert.status == "failed"' || fail "reported failed"
ok "device reported failed: the hub refused the new certificate"
hubsim_ctl GET /_sim/calls | jq -e --arg id "$S" '[.calls[] | select(.method == "CONNECT" and .deviceId == $id and .status == 401)] | length == 1' >/dev/null ||
	fail "refused connection not in the call log"
ok "refused connection recorded in the call log"
hubsim_ctl GET "/_sim/devices/$S" | jq -e '.device.connected and .device.connectFailures == 1' >/dev/null ||
	fail "device should be back on its old certificate"
ok "device fell back to its old certificate"
# Register the new SHA-1 thumbprint as secondary, install again.
hubsim_call GET "/devices/$S" >/dev/null
etag=$(jq -r .etag "$D/body")
old=$(jq -r .authentication.x509Thumbprint.primaryThumbprint "$D/body")
new=$(openssl x509 -in "$D/S-new.pem" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
body=$(jq -n --arg id "$S" --arg p "$old" --arg s "$new" '{deviceId:$id, status:"enabled", authentication:{type:"selfSigned", x509Thumbprint:{primaryThumbprint:$p, secondaryThumbprint:$s}}}')
st=$(curl -sS --cacert "$HUBSIM_CA" -X PUT -o "$D/body" -D "$D/headers" -w '%{http_code}' \
	-H "Authorization: $(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")" -H "If-Match: \"$etag\"" \
	-H 'Content-Type: application/json' --data-binary "$body" "$HUBSIM_URL/devices/$S?api-version=2021-04-12")
expect_status "$st" 200 "new thumbprint in the secondary slot"
st=$(method "$S" fleetcertInstall "$(install_payload "$D/S-new.pem" "$sserial")")
hubsim_call GET "/twins/$S" >/dev/null
body_jq ".properties.reported.fleetcert.installedSerial == \"$sserial\" and .properties.reported.fleetcert.status == \"installed\"" || fail "selfSigned install after thumbprint"
ok "selfSigned device connects with the secondary thumbprint"

# --- desired property applied when the device comes online ---
openssl req -new -key "$D/$O.key" -subj "/CN=x" -out "$D/O.csr" 2>/dev/null
oserial=$(issue "$D/O.csr" "$O" "$D/O-new.pem")
st=$(hubsim_call PATCH "/twins/$O" "$(jq -n --argjson p "$(install_payload "$D/O-new.pem" "$oserial")" '{properties:{desired:{fleetcert:$p}}}')")
expect_status "$st" 200 "desired fleetcert for the offline device"
hubsim_call GET "/twins/$O" >/dev/null
body_jq '.properties.reported.fleetcert == null' || fail "offline device applied desired"
hubsim_ctl POST "/_sim/devices/$O/online" '{"online":true}' >/dev/null
hubsim_call GET "/twins/$O" >/dev/null
body_jq ".properties.reported.fleetcert.installedSerial == \"$oserial\"" || fail "desired not applied on connect"
ok "device applied desired fleetcert when it came online"
hubsim_ctl POST "/_sim/online" "{\"online\":false,\"devices\":[\"$O\"]}" >/dev/null
hubsim_ctl POST "/_sim/online" "{\"online\":true,\"devices\":[\"$O\"]}" >/dev/null
hubsim_ctl GET "/_sim/devices/$O" | jq -e '.device.installs == 1' >/dev/null || fail "serial applied twice"
ok "a serial the device already has is ignored"

# connectTimeout: the hub waits for the device to connect.
hubsim_ctl POST "/_sim/devices/$O/online" '{"online":false}' >/dev/null
( method "$O" ping '{}' 10 20 > "$D/cto.status" ) &
bg=$!
sleep 1
hubsim_ctl POST "/_sim/devices/$O/online" '{"online":true}' >/dev/null
wait $bg
[ "$(cat "$D/cto.status")" = 200 ] || fail "connectTimeout wait: $(cat "$D/cto.status")"
ok "method waited connectTimeout for the device to connect"

# --- misbehaviour ---
hubsim_ctl POST "/_sim/devices/$A/behaviour" '{"rejectStatus":503}' >/dev/null
st=$(method "$A" fleetcertInstall "$(install_payload "$D/A-new.pem" "$serial")")
body_jq '.status == 503 and (.payload.error | length > 0)' || fail "reject behaviour"
ok "device told to reject answers its status"
hubsim_ctl POST "/_sim/devices/$A/behaviour" '{"rejectStatus":0,"noConfirm":true}' >/dev/null
serial2=$(issue "$D/A.csr" "$A" "$D/A-2.pem")
st=$(method "$A" fleetcertInstall "$(install_payload "$D/A-2.pem" "$serial2")")
body_jq ".status == 200 and .payload.installedSerial == \"$serial2\"" || fail "noConfirm answer"
hubsim_call GET "/twins/$A" >/dev/null
body_jq ".properties.reported.fleetcert.installedSerial == \"$serial\"" || fail "noConfirm device reported"
ok "device that never confirms answers 200 but reports nothing"
hubsim_ctl POST "/_sim/devices/$A/behaviour" '{"noConfirm":false,"slowMs":300}' >/dev/null
st=$(method "$A" ping '{}' 5)
expect_status "$st" 200 "slow device within the timeout"
hubsim_ctl POST "/_sim/devices/$A/behaviour" '{"slowMs":60000}' >/dev/null
t0=$(date +%s)
st=$(method "$A" ping '{}' 5)
t1=$(date +%s)
expect_error "$st" 504 504101 GatewayTimeout b "device slower than responseTimeoutInSeconds"
[ $((t1 - t0)) -ge 4 ] || fail "504101 came before the response timeout"
ok "504101 after about responseTimeoutInSeconds"
hubsim_ctl POST "/_sim/devices/$A/behaviour" '{"slowMs":0}' >/dev/null
