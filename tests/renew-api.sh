#!/bin/sh
# Out-of-schedule renewal through the operator API (POST
# /v1/devices/{id}/renew, fleetcertctl renew): the real fleetcertd and
# fleetcert-hubsim over TLS, a few CA devices whose certificates are far
# from expiry (nothing due). A request renews the device now: a new
# certificate is delivered and confirmed (new serial in the inventory and
# at the simulator); --rekey certifies a new key; a second request while
# one is in flight, or for a revoked device, is refused (409); an unknown
# device is 404.
. "$top_srcdir/tests/renew-lib.sh"

renew_setup 4 --expire-in-days 300-330
ADMIN=$(openssl rand -hex 16)
printf 'admin %s\n' "$(printf '%s' "$ADMIN" | openssl dgst -sha256 -r |
	cut -d' ' -f1)" >> "$T/api.tokens"
printf '%s\n' "$ADMIN" > "$T/admin.token"
chmod 600 "$T/admin.token"
renew_conf
renew_daemon_start
i=0
PORT=
while [ -z "$PORT" ] && [ $i -lt 300 ]; do
	PORT=$(sed -n 's/.*httpd api: listening on .* (port \([0-9]*\)).*/\1/p' \
		"$T/daemon.log" | tail -n 1)
	[ -n "$PORT" ] || sleep 0.1
	i=$((i + 1))
done
[ -n "$PORT" ] || { cat "$T/daemon.log"; fail "fleetcertd did not start"; exit 1; }
URL="http://127.0.0.1:$PORT"
CTL="$top_builddir/fleetcertctl --api $URL --token-file $T/admin.token"

# post ID BODY: HTTP status to stdout, body to $T/body.
post() {
	curl -sS -o "$T/body" -w '%{http_code}' -X POST \
		-H "Authorization: Bearer $ADMIN" \
		-H 'Content-Type: application/json' -d "$2" \
		"$URL/v1/devices/$1/renew"
}
active() { sql "SELECT serial FROM certificates WHERE device_id = '$1' AND status = 'active'"; }
pubkey() {	# pubkey SERIAL: hex DER SubjectPublicKeyInfo
	sql "SELECT hex(der) FROM certificates WHERE serial = '$1'" | xxd -r -p |
		openssl x509 -inform DER -pubkey -noout |
		openssl pkey -pubin -outform DER | xxd -p | tr -d '\n'
}
# wait_active ID OLD SECONDS: until ID's active certificate is not OLD and
# its delivery is done.
wait_active() {
	j=0
	while [ $j -lt "$3" ]; do
		s=$(active "$1")
		if [ -n "$s" ] && [ "$s" != "$2" ] && [ "$(sql "SELECT step FROM deliveries WHERE serial = '$s'")" = done ]; then
			return 0
		fi
		sleep 1
		j=$((j + 1))
	done
	return 1
}
sim_serial() {
	hubsim_ctl GET "/_sim/devices/$1" | jq -r '.device.installedSerial // ""' |
		tr 'A-F' 'a-f'
}

set -- $(sql "SELECT device_id FROM devices ORDER BY device_id")
D1=$1 D2=$2 D3=$3 D4=$4
sleep 2
n=$(sql "SELECT count(*) FROM deliveries")
[ "$n" -eq 0 ] && pass "nothing due: no renewal before a request" ||
	fail "$n deliveries before any request"

# ---- renew now, same key
old1=$(active "$D1")
code=$(post "$D1" '{}')
[ "$code" = 202 ] && jq -e --arg s "$old1" --arg d "$D1" \
	'.deviceId == $d and (.certificate.serial | ascii_downcase) == ($s | ascii_downcase) and .rekey == false and (.renewAt | endswith("Z"))' \
	"$T/body" >/dev/null && pass "renew: 202 with the current certificate" ||
	fail "renew $D1: $code $(cat "$T/body")"
if wait_active "$D1" "$old1" 60; then
	new1=$(active "$D1")
	pass "renew: $D1 got $new1 delivered and confirmed"
	[ "$(sim_serial "$D1")" = "$(printf '%s' "$new1" | tr 'A-F' 'a-f')" ] &&
		pass "renew: the simulated device reports the new serial" ||
		fail "simulator reports $(sim_serial "$D1"), inventory $new1"
	[ "$(pubkey "$old1")" = "$(pubkey "$new1")" ] &&
		pass "renew without rekey keeps the key" ||
		fail "renew without rekey changed the key"
	[ "$(sql "SELECT status FROM certificates WHERE serial = '$old1'")" = superseded ] &&
		pass "old certificate superseded" || fail "old certificate not superseded"
else
	fail "renew: $D1 not renewed within 60 s"
fi
a=$(sql "SELECT count(*) FROM audit WHERE action = 'device.renew' AND device_id = '$D1' AND actor LIKE 'api:%'")
[ "$a" -eq 1 ] && pass "audited device.renew by the API actor" ||
	fail "device.renew audit entries: $a"
n=$(sql "SELECT count(*) FROM deliveries WHERE device_id <> '$D1'")
[ "$n" -eq 0 ] && pass "other devices untouched" || fail "$n other deliveries"

# ---- rekey through fleetcertctl: a new key, one shot
old2=$(active "$D2")
$CTL renew "$D2" --rekey > "$T/ctl.out" 2>&1 &&
	grep -q "new key" "$T/ctl.out" && pass "fleetcertctl renew --rekey" ||
	fail "fleetcertctl renew --rekey: $(cat "$T/ctl.out")"
if wait_active "$D2" "$old2" 60; then
	new2=$(active "$D2")
	[ -n "$(pubkey "$new2")" ] && [ "$(pubkey "$old2")" != "$(pubkey "$new2")" ] &&
		pass "rekey: $new2 certifies a new key" ||
		fail "rekey: $new2 has the old key"
	[ "$(sim_serial "$D2")" = "$(printf '%s' "$new2" | tr 'A-F' 'a-f')" ] &&
		pass "rekey: the simulated device reports the new serial" ||
		fail "rekey: simulator reports $(sim_serial "$D2")"
	[ "$(sql "SELECT rekey_once || rekey FROM devices WHERE device_id = '$D2'")" = 00 ] &&
		pass "rekey: the one-shot flag is cleared, rekey unchanged" ||
		fail "rekey flags after renewal: $(sql "SELECT rekey_once, rekey FROM devices WHERE device_id = '$D2'")"
else
	fail "rekey: $D2 not renewed within 60 s"
fi
$CTL renew "$D2" --bogus >/dev/null 2>&1
[ $? -eq 2 ] && pass "fleetcertctl renew: unknown option is a usage error" ||
	fail "fleetcertctl renew --bogus did not exit 2"

# ---- in flight: the device does not confirm, the delivery stays open
hubsim_ctl POST "/_sim/devices/$D3/behaviour" '{"noConfirm": true}' >/dev/null
code=$(post "$D3" '{"rekey": false}')
[ "$code" = 202 ] || fail "renew $D3: $code $(cat "$T/body")"
j=0
while [ $j -lt 60 ] && [ -z "$(sql "SELECT renewal FROM certificates WHERE device_id = '$D3' AND status = 'active' AND renewal IS NOT NULL")" ]; do
	sleep 0.5
	j=$((j + 1))
done
code=$(post "$D3" '{}')
[ "$code" = 409 ] && jq -e '.error.code == "renewal_in_flight"' "$T/body" >/dev/null &&
	pass "409 renewal_in_flight while a renewal is in flight" ||
	fail "second request: $code $(cat "$T/body")"
$CTL renew "$D3" >/dev/null 2>&1 && fail "fleetcertctl renew in flight exited 0" ||
	pass "fleetcertctl renew in flight exits non-zero"

# ---- revoked device, unknown device, bad bodies
curl -sS -o /dev/null -X POST -H "Authorization: Bearer $ADMIN" \
	-H 'Content-Type: application/json' -d '{}' "$URL/v1/devices/$D4/revoke"
code=$(post "$D4" '{}')
[ "$code" = 409 ] && jq -e '.error.code == "device_not_active"' "$T/body" >/dev/null &&
	pass "409 device_not_active for a revoked device" ||
	fail "revoked device: $code $(cat "$T/body")"
code=$(post no-such-device '{}')
[ "$code" = 404 ] && pass "404 for an unknown device" || fail "unknown device: $code"
code=$(post "$D4" '{"rekey": "yes"}')
[ "$code" = 400 ] && pass "400 for a non-boolean rekey" || fail "rekey string: $code"
code=$(post "$D4" '{"now": true}')
[ "$code" = 400 ] && pass "400 for an unknown field" || fail "unknown field: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST \
	-H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/json' \
	-d '{}' "$URL/v1/devices/$D1/renew")
[ "$code" = 403 ] && pass "403 for a read token" || fail "read token: $code"

renew_finish
