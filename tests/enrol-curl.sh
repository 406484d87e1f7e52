#!/bin/sh
# enrol-curl.sh — device-protocol.md §2 proved without fleetcert's own
# client: the requests are built by hand with curl, openssl, xxd and base64,
# exactly as the protocol text says. Also a replayed nonce, a nonce for
# another serial and a tampered CSR, each answered with the one 401.
set -eu
. "$top_srcdir/tests/enrol-lib.sh"

enrol_setup
SERIAL=0123a1b2c3d4e5f611
enrol_device hand $SERIAL
enrol_device other 0123a1b2c3d4e5f612
enrol_start
KEY=$T/hand.key

post() {	# post PATH JSON -> status; reply in $T/reply
	printf '%s' "$2" > "$T/req"
	curl -sS --cacert "$ROOT" -o "$T/reply" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "@$T/req" \
		"$URL$1"
}
field() {	# field NAME -> a string field of $T/reply
	sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" "$T/reply"
}

# Step 1: the challenge.
challenge() {
	[ "$(post /enrol/v1/challenge "{\"serial\":\"$1\"}")" = 200 ] ||
		fail "challenge: $(cat "$T/reply")"
	grep -q '"expiresIn": *300' "$T/reply" || fail "expiresIn: $(cat "$T/reply")"
	field nonce
}

# Step 2: m = "fleetcert-reenrol-v1" || nonce || serial || SHA-256(csr);
# the identity key signs SHA-256(m). Prints the request body.
# $1 nonce (base64), $2 signature form raw|der, $3 CSR DER file.
request() {
	printf 'fleetcert-reenrol-v1' > "$T/m"
	printf '%s' "$1" | base64 -d >> "$T/m"
	printf '%s' "$SERIAL" | xxd -r -p >> "$T/m"
	openssl dgst -sha256 -binary "$3" >> "$T/m"
	[ "$(wc -c < "$T/m")" -eq 93 ] || fail "m is not 93 bytes"
	# openssl dgst -sign hashes m once more: it signs d = SHA-256(m).
	openssl dgst -sha256 -sign "$KEY" -out "$T/sig.der" "$T/m"
	if [ "$2" = raw ]; then
		# R || S: the two INTEGERs of the DER, each left-padded to 32 bytes.
		openssl asn1parse -inform DER -in "$T/sig.der" |
			sed -n 's/.*INTEGER *:\([0-9A-F]*\).*/\1/p' |
			while read -r h; do printf '%064s' "$h" | tr ' ' 0; done |
			xxd -r -p > "$T/sig.bin"
		[ "$(wc -c < "$T/sig.bin")" -eq 64 ] || fail "R||S is not 64 bytes"
	else
		cp "$T/sig.der" "$T/sig.bin"
	fi
	printf '{"serial":"%s","nonce":"%s","csr":"%s","signature":"%s"}' \
		"$SERIAL" "$1" "$(base64 -w0 < "$3")" "$(base64 -w0 < "$T/sig.bin")"
}

openssl req -new -key "$KEY" -subj "/CN=whatever the device says" \
	-outform DER -out "$T/csr.der"

for form in raw der; do
	nonce=$(challenge $SERIAL)
	body=$(request "$nonce" $form "$T/csr.der")
	code=$(post /enrol/v1/reenrol "$body")
	[ "$code" = 200 ] || fail "re-enrol ($form): $code $(cat "$T/reply")"
	# The certificate and chain, JSON-unescaped, verify against the root.
	python3 - "$T/reply" "$T" <<'PY' 2>/dev/null || {
import json, sys
r = json.load(open(sys.argv[1]))
open(sys.argv[2] + "/cert.pem", "w").write(r["certificate"])
open(sys.argv[2] + "/chain.pem", "w").write(r["chain"])
assert set(r) == {"deviceId", "serial", "certificate", "chain", "notAfter", "renewAfter"}
assert r["deviceId"] == "hand"
PY
		# No python: unescape the two PEM strings with sed.
		sed -e 's/.*"certificate": *"\([^"]*\)".*/\1/' -e 's/\\n/\n/g' \
			"$T/reply" > "$T/cert.pem"
		sed -e 's/.*"chain": *"\([^"]*\)".*/\1/' -e 's/\\n/\n/g' \
			"$T/reply" > "$T/chain.pem"
	}
	openssl verify -CAfile "$ROOT" -untrusted "$T/chain.pem" "$T/cert.pem" \
		>/dev/null || fail "verify ($form)"
	openssl x509 -in "$T/cert.pem" -noout -subject -nameopt RFC2253 |
		grep -q 'CN=hand' || fail "subject not from the inventory"

	# Replay of the used nonce: 401, the one message.
	code=$(post /enrol/v1/reenrol "$body")
	[ "$code" = 401 ] || fail "replay ($form): $code"
	[ "$(cat "$T/reply")" = \
	  '{"error":{"code":"unauthorized","message":"proof rejected"}}' ] ||
		fail "401 body: $(cat "$T/reply")"
done

before=$(sql "SELECT count(*) FROM certificates")
# A nonce handed out for another serial.
nonce=$(challenge 0123a1b2c3d4e5f612)
[ "$(post /enrol/v1/reenrol "$(request "$nonce" raw "$T/csr.der")")" = 401 ] ||
	fail "nonce of another serial"
# A CSR whose self-signature is broken (last byte of the DER flipped).
cp "$T/csr.der" "$T/bad.der"
last=$(($(wc -c < "$T/bad.der") - 1))
b=$(xxd -s $last -l 1 -p "$T/bad.der")
printf '%02x' $(( 0x$b ^ 1 )) | xxd -r -p | dd of="$T/bad.der" bs=1 \
	seek=$last conv=notrunc 2>/dev/null
nonce=$(challenge $SERIAL)
code=$(post /enrol/v1/reenrol "$(request "$nonce" raw "$T/bad.der")")
[ "$code" = 401 ] || fail "broken CSR: $code"
[ "$(sql "SELECT count(*) FROM certificates")" = "$before" ] ||
	fail "a refused request issued a certificate"
sql "SELECT detail FROM audit WHERE action = 'enrol.reject'" > "$T/causes"
grep -q 'nonce already used' "$T/causes" || fail "replay cause not audited"
grep -q 'nonce bound to another serial' "$T/causes" || fail "serial cause not audited"
echo "enrol-curl.sh: ok"
