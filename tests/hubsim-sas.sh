#!/bin/sh
# fleetcert-hubsim: SAS tokens (azure-iothub.md test vector, signature,
# expiry, policy permissions, parsing), api-version and the control token.
HUBSIM_DEFER_START=1
. "$top_srcdir/tests/hubsim-lib.sh"

# The documented test vector, built by hand with openssl.
VKEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
tok=$(hubsim_sas iothubowner "$VKEY" myhub.azure-devices.net 1700000000)
[ "$tok" = "SharedAccessSignature sr=myhub.azure-devices.net&sig=iIzEw6hi6GK79RY5jNXO6QeQkSL%2FAx4zTmy44X2G1VY%3D&se=1700000000&skn=iothubowner" ] ||
	fail "test vector token: $tok"
ok "test vector: service token"
dtok=$(hubsim_sas x "$VKEY" myhub.azure-devices.net/devices/dev-01 1700000000)
case "$dtok" in
*"sr=myhub.azure-devices.net%2Fdevices%2Fdev-01&sig=VOvP4VRAE6ohczHZpu6xkF1lbm%2FlbEIgqyZEPpxC7dI%3D&"*) ok "test vector: device-scoped signature" ;;
*) fail "device-scoped vector: $dtok" ;;
esac

# Run the hub as "myhub" with the vector key as iothubowner.
HUBSIM_KEY_OWNER=$VKEY
hubsim_start --hub-name myhub || fail "start"

now=$(date +%s)
# Move the simulator's clock to just before the vector's expiry.
hubsim_ctl POST /_sim/clock "{\"offset\": $((1699999000 - now))}" >/dev/null
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $tok")
expect_status "$st" 200 "the test vector token is accepted by the simulator"
body_jq '.totalDeviceCount == 0' || fail "statistics body"
hubsim_ctl POST /_sim/clock "{\"offset\": $((1700000001 - now))}" >/dev/null
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $tok")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "the same token one second after se"
hubsim_ctl POST /_sim/clock '{"offset": 0}' >/dev/null

# Expired token (real clock).
t=$(hubsim_sas iothubowner "$VKEY" "$HUBSIM_HOST" $((now - 10)))
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "expired token"

# Wrong signature: signed with another key.
t=$(hubsim_sas iothubowner "$HUBSIM_KEY_SERVICE")
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "wrong signature"

# Tampered expiry: signature no longer matches.
t=$(hubsim_sas iothubowner "$VKEY" "$HUBSIM_HOST" $((now + 600)) | sed "s/se=$((now + 600))/se=$((now + 6000))/")
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "se changed after signing"

# Unknown policy name, missing header, device-scoped token, garbage.
t=$(hubsim_sas nosuchpolicy "$VKEY")
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "unknown policy"
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "no Authorization header"
t=$(hubsim_sas iothubowner "$VKEY" | sed 's/&skn=iothubowner//')
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "token without skn"
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: SharedAccessSignature sr=%zz")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "malformed token"
# A token for another hub host.
t=$(hubsim_sas iothubowner "$VKEY" otherhub.azure-devices.net)
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "token for another hub"

# Pairs in any order, lower-case hex escapes, hub-name resource URI.
t=$(hubsim_sas iothubowner "$VKEY")
sr=$(printf '%s' "$t" | sed 's/.*sr=\([^&]*\).*/\1/')
sig=$(printf '%s' "$t" | sed 's/.*sig=\([^&]*\).*/\1/')
se=$(printf '%s' "$t" | sed 's/.*se=\([^&]*\).*/\1/')
lsr=$(printf '%s' "$sr" | sed 's/%3A/%3a/g')
lsig=$(printf '%s' "$sig" | sed 's/%2F/%2f/g; s/%3D/%3d/g; s/%2B/%2b/g')
t2="SharedAccessSignature skn=iothubowner&se=$se&sig=$lsig&sr=$lsr"
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2021-04-12" "" -H "Authorization: $t2")
expect_status "$st" 200 "pairs in another order with lower-case hex escapes"
t=$(hubsim_sas iothubowner "$VKEY" myhub.azure-devices.net)
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2020-09-30" "" -H "Authorization: $t")
expect_status "$st" 200 "token for myhub.azure-devices.net, api-version 2020-09-30"

# Policy permissions.
st=$(hubsim_call PUT /devices/pdev "$(dev_json pdev)" registryRead "$HUBSIM_KEY_RR")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "registryRead cannot write the registry"
st=$(hubsim_call PUT /devices/pdev "$(dev_json pdev)" service "$HUBSIM_KEY_SERVICE")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "service cannot write the registry"
st=$(hubsim_call GET /devices/pdev "" registryRead "$HUBSIM_KEY_RR")
expect_error "$st" 404 404001 DeviceNotFound a "registryRead may read the registry"
st=$(hubsim_call PUT /devices/pdev "$(dev_json pdev)" registryReadWrite "$HUBSIM_KEY_RRW")
expect_status "$st" 200 "registryReadWrite creates a device"
st=$(hubsim_call PATCH /twins/pdev '{"tags":{"a":1}}' registryReadWrite "$HUBSIM_KEY_RRW")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess a "registryReadWrite cannot update twins"
st=$(hubsim_call PATCH /twins/pdev '{"tags":{"a":1}}' service "$HUBSIM_KEY_SERVICE")
expect_status "$st" 200 "service updates twins"
st=$(hubsim_call POST /twins/pdev/methods '{"methodName":"m"}' registryRead "$HUBSIM_KEY_RR")
expect_error "$st" 401 401002 IotHubUnauthorizedAccess b "registryRead cannot invoke methods (shape B)"
st=$(hubsim_call DELETE /devices/pdev "" iothubowner "$VKEY")
expect_status "$st" 204 "iothubowner deletes"

# api-version.
t=$(hubsim_sas iothubowner "$VKEY")
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices" "" -H "Authorization: $t")
expect_error "$st" 400 400001 InvalidProtocolVersion a "missing api-version"
st=$(hubsim_raw GET "$HUBSIM_URL/statistics/devices?api-version=2016-11-14" "" -H "Authorization: $t")
expect_error "$st" 400 400001 InvalidProtocolVersion a "unsupported api-version"

# Control endpoints need the bearer token.
st=$(hubsim_raw GET "$HUBSIM_URL/_sim/calls" "")
expect_status "$st" 401 "control endpoint without token"
st=$(hubsim_raw GET "$HUBSIM_URL/_sim/calls" "" -H "Authorization: Bearer wrong-token-0123456789")
expect_status "$st" 401 "control endpoint with a wrong token"
st=$(hubsim_raw GET "$HUBSIM_URL/_sim/calls" "" -H "Authorization: $t")
expect_status "$st" 401 "control endpoint with a SAS token"
st=$(hubsim_raw GET "$HUBSIM_URL/_sim/calls" "" -H "Authorization: Bearer $HUBSIM_CONTROL_TOKEN")
expect_status "$st" 200 "control endpoint with the token"
body_jq '[.calls[] | select(.status == 401 and .errorCode == 401002)] | length >= 10' ||
	fail "call log lacks the 401s"
ok "call log records refused calls with their error codes"
# Nothing secret in the simulator's log.
if grep -q -e "$VKEY" -e "$HUBSIM_CONTROL_TOKEN" -e "$HUBSIM_KEY_SERVICE" "$HUBSIM_DIR/hubsim.log"; then
	fail "a key or token appears in the log"
fi
ok "no key or token in the simulator log"
