#!/bin/sh
# fleetcert-hubsim gen-fleet: fixture + factory CSV, certificate profile,
# fractions; the simulator loads the fleet; --state-file survives a restart.
HUBSIM_DEFER_START=1
. "$top_srcdir/tests/hubsim-lib.sh"
D=$HUBSIM_DIR

hubsim_gen_fleet --count 200 --self-signed 0.25 --offline 0.1 --expired 0.05 \
	--expire-in-days 20-40 --prefix gf- --hub hubA --owner acme --batch b7 \
	--out "$D/fleet.json" --csv "$D/fleet.csv" 2>"$D/gen.log" || fail "gen-fleet: $(cat "$D/gen.log")"
ok "gen-fleet wrote 200 devices"
[ "$(stat -c %a "$D/fleet.json")" = 600 ] || fail "fixture holds private keys: mode must be 600"
ok "fixture is mode 600"
jq -e '.devices | length == 200 and ([.[] | select(.authType == "selfSigned")] | length == 50)
  and ([.[] | select(.online | not)] | length == 20) and (map(.deviceId) | unique | length == 200)
  and (map(.serial) | all(test("^0123[0-9a-f]{12}01$")))' "$D/fleet.json" >/dev/null || fail "fixture counts"
ok "fractions: 50 selfSigned, 20 offline, unique ids, ATECC608B serials"

# CSV: header, 200 rows, columns agree with the fixture.
[ "$(head -1 "$D/fleet.csv" | tr -d '\r')" = "deviceId,serial,identityPublicKey,certificate,authType,owner,batch,hub" ] || fail "CSV header"
[ "$(tail -n +2 "$D/fleet.csv" | wc -l)" -eq 200 ] || fail "CSV rows"
line=$(sed -n 2p "$D/fleet.csv" | tr -d '\r')
id=$(echo "$line" | cut -d, -f1)
echo "$line" | cut -d, -f3 | base64 -d | openssl pkey -pubin -inform DER -out "$D/csv.pub" 2>/dev/null || fail "identityPublicKey is not base64 SPKI DER"
echo "$line" | cut -d, -f4 | base64 -d | openssl x509 -inform DER -out "$D/csv.pem" 2>/dev/null || fail "certificate is not base64 DER"
[ "$(echo "$line" | cut -d, -f5-8)" = "ca,acme,b7,hubA" ] || [ "$(echo "$line" | cut -d, -f5-8)" = "selfsigned,acme,b7,hubA" ] || fail "CSV authType/owner/batch/hub: $line"
jq -r --arg id "$id" '.devices[] | select(.deviceId == $id) | .identityKey' "$D/fleet.json" | openssl pkey -pubout > "$D/fx.pub"
cmp -s "$D/csv.pub" "$D/fx.pub" || fail "CSV key differs from the fixture key"
[ "$(openssl x509 -in "$D/csv.pem" -noout -pubkey)" = "$(cat "$D/fx.pub")" ] || fail "certificate key is not the identity key"
ok "CSV row matches the fixture (key, certificate)"
n_ss=$(tail -n +2 "$D/fleet.csv" | cut -d, -f5 | grep -c '^selfsigned$')
[ "$n_ss" -eq 50 ] || fail "CSV selfsigned rows: $n_ss"

# Certificate profile (issue 3).
openssl x509 -in "$D/csv.pem" -noout -text > "$D/csv.txt"
serial=$(echo "$line" | cut -d, -f2)
grep -q "Subject: CN *= *$id\$" "$D/csv.txt" || fail "subject CN"
grep -q "URI:urn:fleetcert:se:$serial" "$D/csv.txt" || fail "SAN URI"
grep -q "TLS Web Client Authentication" "$D/csv.txt" || fail "clientAuth"
grep -A1 "Basic Constraints: critical" "$D/csv.txt" | grep -q "CA:FALSE" || fail "basicConstraints"
grep -A1 "Key Usage: critical" "$D/csv.txt" | grep -q "Digital Signature" || fail "keyUsage"
grep -q "Subject Key Identifier" "$D/csv.txt" && grep -q "Authority Key Identifier" "$D/csv.txt" || fail "SKI/AKI"
ok "certificate profile: CN, SAN urn:fleetcert:se, clientAuth, CA:FALSE, digitalSignature, SKI, AKI"
jq -r '.devices[].certificate' "$D/fleet.json" > "$D/all.pem"
mkdir "$D/certs"
awk -v d="$D/certs" '/BEGIN CERT/{n++} {print > (d "/c" n ".pem")}' "$D/all.pem"
good=$(openssl verify -no_check_time -CAfile "$HUBSIM_ROOT_CERT" -untrusted "$HUBSIM_INT_CERT" "$D"/certs/c*.pem 2>/dev/null | grep -c ': OK$')
bad=$((200 - good))
expired=0
for c in "$D"/certs/c*.pem; do
	openssl x509 -in "$c" -noout -checkend 0 >/dev/null || expired=$((expired + 1))
done
[ $bad -eq 0 ] || fail "$bad certificates do not chain to the root"
[ $expired -eq 10 ] || fail "$expired expired certificates, expected 10"
ok "all 200 chain to the root; 10 already expired"
openssl x509 -in "$D/csv.pem" -noout -checkend $((41 * 86400)) >/dev/null 2>&1 && fail "notAfter beyond 40 days"
ok "notAfter within --expire-in-days"

# The simulator loads the fleet: online and valid devices connect.
hubsim_start --devices "$D/fleet.json" --state-file "$D/state.json" || fail "start with fleet"
hubsim_ctl GET /_sim/devices > "$D/devs.json"
conn=$(jq '[.devices[] | select(.device.connected)] | length' "$D/devs.json")
# 200 - 20 offline - 10 expired (offline and expired may overlap).
exp_conn=$(jq '[.devices[] | select(.online and (.certificate != null))] | length' "$D/fleet.json")
[ "$conn" -ge $((exp_conn - 10)) ] && [ "$conn" -le "$exp_conn" ] || fail "$conn connected"
jq -e '[.devices[] | select(.device.lastConnectError == "certificate expired")] | length >= 1' "$D/devs.json" >/dev/null || fail "expired devices refused"
ok "$conn devices connected; expired ones refused"
st=$(hubsim_call GET /statistics/devices)
body_jq '.totalDeviceCount == 200' || fail "registry holds the fleet"

# State survives a restart.
hubsim_call PUT /devices/added "$(dev_json added)" >/dev/null
hubsim_call PATCH /twins/gf-000001 '{"tags":{"kept":true}}' >/dev/null
hubsim_stop || fail "simulator did not exit cleanly"
[ "$(stat -c %a "$D/state.json")" = 600 ] || fail "state file mode"
hubsim_start --devices "$D/fleet.json" --state-file "$D/state.json" || fail "restart"
st=$(hubsim_call GET /devices/added)
expect_status "$st" 200 "device created before the restart still there"
hubsim_call GET /twins/gf-000001 >/dev/null
body_jq '.tags.kept == true' || fail "twin tag lost"
ok "twin survived the restart"
st=$(hubsim_call POST /twins/gf-000001/methods '{"methodName":"fleetcertCsr","payload":{"keySlot":0}}')
expect_status "$st" 200 "device side survived the restart"

# Bad options are refused with a message.
"$HUBSIM_BIN" gen-fleet --count 0 --out x 2>/dev/null && fail "count 0 accepted"
"$HUBSIM_BIN" --cert x 2>/dev/null && fail "missing options accepted"
"$HUBSIM_BIN" --help | grep -q -- "--control-token" || fail "--help"
"$HUBSIM_BIN" gen-fleet --help | grep -q -- "--expire-in-days" || fail "gen-fleet --help"
ok "option errors and --help"

# The man page is lint-clean.
if command -v mandoc >/dev/null; then
	out=$(mandoc -T lint "$top_srcdir/doc/fleetcert-hubsim.1" 2>&1) || fail "mandoc -T lint: $out"
	[ -z "$out" ] || fail "mandoc -T lint: $out"
	ok "man page is mandoc -T lint clean"
fi
