#!/bin/sh
# enrol-hub.sh — a self-signed device re-enrols: its new certificate's
# thumbprint is staged at the hub (fleetcert-hubsim over TLS) as the
# secondary thumbprint, the old primary kept; a device disabled at the hub
# stays disabled. Then the hub becomes unreachable: the device still gets
# its certificate and the gap is audited.
set -eu
command -v jq >/dev/null || { echo "SKIP: needs jq"; exit 77; }
. "$top_srcdir/tests/enrol-lib.sh"
. "$top_srcdir/tests/start-hubsim.sh"
enrol_setup
trap 'enrol_cleanup; hubsim_cleanup' EXIT INT TERM

printf '%s' "$HUBSIM_CONN" > "$T/hub.conn"
chmod 600 "$T/hub.conn"
cat >> "$CONF" <<CNF
[hub]
connection_string_file = $T/hub.conn
ca_file = $HUBSIM_CA
CNF
enrol_device ss 0123a1b2c3d4e5f621 unregistered
"$top_builddir/tests/enrol-testd" add-device "$CONF" ss 0123a1b2c3d4e5f621 \
	"$T/ss.pub" 1 selfsigned
OLD=0123456789ABCDEF0123456789ABCDEF01234567
st=$(hubsim_call PUT /devices/ss "{\"deviceId\":\"ss\",\"status\":\"enabled\",\"authentication\":{\"type\":\"selfSigned\",\"x509Thumbprint\":{\"primaryThumbprint\":\"$OLD\",\"secondaryThumbprint\":null}}}")
[ "$st" = 200 ] || fail "hub: create device: $st"
enrol_start

thumb() {
	openssl x509 -in "$1" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g'
}
hub_thumbs() {
	hubsim_call GET /devices/ss >/dev/null
	jq -r '[.status, .authentication.x509Thumbprint.primaryThumbprint,
	    (.authentication.x509Thumbprint.secondaryThumbprint // "null")] |
	    join(" ")' "$HUBSIM_DIR/body"
}

"$top_builddir/fleetcert-device" --url "$URL" --root "$ROOT" \
	--serial 0123a1b2c3d4e5f621 --key "$T/ss.key" --out "$T/ss.pem" \
	>/dev/null || fail "re-enrol self-signed device"
got=$(hub_thumbs)
[ "$got" = "enabled $OLD $(thumb "$T/ss.pem")" ] ||
	fail "hub thumbprints: $got, want enabled $OLD $(thumb "$T/ss.pem")"

# Disabled at the hub (an operator's decision): stays disabled.
hubsim_call GET /devices/ss >/dev/null
jq -c '.status = "disabled"' "$HUBSIM_DIR/body" > "$T/dis.json"
st=$(hubsim_raw PUT "$HUBSIM_URL/devices/ss?api-version=$HUBSIM_API" \
	"$(cat "$T/dis.json")" -H "If-Match: \"$(jq -r .etag "$T/dis.json")\"" \
	-H "Authorization: $(hubsim_sas iothubowner "$HUBSIM_KEY_OWNER")")
[ "$st" = 200 ] || fail "hub: disable: $st"
"$top_builddir/fleetcert-device" --url "$URL" --root "$ROOT" \
	--serial 0123a1b2c3d4e5f621 --key "$T/ss.key" --out "$T/ss2.pem" \
	>/dev/null || fail "second re-enrolment"
got=$(hub_thumbs)
[ "$got" = "disabled $OLD $(thumb "$T/ss2.pem")" ] ||
	fail "after disable: $got"

# Hub gone: the certificate is still issued; the gap is audited.
hubsim_stop
"$top_builddir/fleetcert-device" --url "$URL" --root "$ROOT" \
	--serial 0123a1b2c3d4e5f621 --key "$T/ss.key" --out "$T/ss3.pem" \
	>/dev/null || fail "re-enrolment with the hub down"
[ "$(sql "SELECT count(*) FROM audit WHERE action = 'enrol.hub_pending'")" = 1 ] ||
	fail "hub gap not audited"
echo "enrol-hub.sh: ok"
