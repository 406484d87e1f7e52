#!/bin/sh
# ca.sh — device certificates and CRLs issued through the real signer
# process (fc-ca-tool), checked from the outside with OpenSSL's CLI:
# `openssl verify`, every profile field in `openssl x509 -text`, bad CSRs
# refused with a clear error, CRLs of 0, 1 and 100,000 entries listing
# exactly the revoked serials and verifying against the CA.
set -eu
: "${top_srcdir:=..}" "${top_builddir:=.}"
tool=$top_builddir/fc-ca-tool
t=$(mktemp -d /tmp/fleetcert-ca.XXXXXX)
trap 'rm -rf "$t"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

sh "$top_srcdir/tests/mkca.sh" "$t/ec" ec
sh "$top_srcdir/tests/mkca.sh" "$t/rsa" rsa
cd "$t"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key 2>/dev/null
openssl pkey -in dev.key -pubout -outform DER -out dev.spki
openssl req -new -key dev.key -subj "/CN=not-used/O=ignored" -outform DER -out dev.csr

# check_cert CA_DIR CERT.der DEVICE SE SIGALG TOOL_OUTPUT
check_cert() {
	dir=$1 der=$2 dev=$3 se=$4 alg=$5 out=$6
	openssl x509 -inform DER -in "$der" -out "$der.pem"
	openssl verify -CAfile "$dir/root.pem" -untrusted "$dir/intermediate.pem" \
		-purpose sslclient "$der.pem" >/dev/null || fail "$der: verify"
	openssl x509 -in "$der.pem" -noout -text > "$der.txt"
	for want in "Version: 3 (0x2)" "Signature Algorithm: $alg" \
	    "Subject: CN = $dev" "X509v3 Basic Constraints: critical" "CA:FALSE" \
	    "X509v3 Key Usage: critical" "Digital Signature" \
	    "X509v3 Extended Key Usage:" "TLS Web Client Authentication" \
	    "X509v3 Subject Key Identifier:" "X509v3 Authority Key Identifier:" \
	    "URI:urn:fleetcert:se:$se" "ASN1 OID: prime256v1"; do
		grep -qF "$want" "$der.txt" || fail "$der: no '$want'"
	done
	# Exactly these extensions, nothing from the CSR.
	n=$(grep "X509v3 " "$der.txt" | grep -vc "X509v3 extensions:")
	[ "$n" -eq 6 ] || fail "$der: $n extensions"
	grep -q "not-used\|ignored" "$der.txt" && fail "$der: CSR subject leaked"
	issuer=$(openssl x509 -in "$der.pem" -noout -issuer)
	subj=$(openssl x509 -in "$dir/intermediate.pem" -noout -subject)
	[ "${issuer#issuer=}" = "${subj#subject=}" ] || fail "$der: issuer"
	ski=$(openssl x509 -in "$dir/intermediate.pem" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' ')
	aki=$(openssl x509 -in "$der.pem" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' ')
	[ "$ski" = "$aki" ] || fail "$der: AKI $aki != CA SKI $ski"
	# Same key as the device's; serial, dates and thumbprints as reported.
	openssl x509 -in "$der.pem" -noout -pubkey | openssl pkey -pubin -outform DER | cmp -s - dev.spki || fail "$der: key"
	serial=$(openssl x509 -in "$der.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
	grep -qx "serial=$serial" "$out" || fail "$der: serial $serial"
	[ ${#serial} -eq 32 ] || fail "$der: serial length"
	sha1=$(openssl x509 -in "$der.pem" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d :)
	sha256=$(openssl x509 -in "$der.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)
	grep -qx "sha1=$sha1" "$out" || fail "$der: sha1"
	grep -qx "sha256=$sha256" "$out" || fail "$der: sha256"
	nb=$(grep '^not_before=' "$out" | cut -d= -f2)
	na=$(grep '^not_after=' "$out" | cut -d= -f2)
	[ $((na - nb)) -eq $((365 * 86400 + 300)) ] || fail "$der: validity"
	now=$(date +%s)
	[ $((now - nb - 300)) -le 60 ] && [ $((now - nb - 300)) -ge -60 ] || fail "$der: notBefore"
	openssl x509 -in "$der.pem" -noout -startdate -enddate >/dev/null
}

for kind in ec rsa; do
	alg=ecdsa-with-SHA256
	[ $kind = rsa ] && alg=sha256WithRSAEncryption
	args="-c $kind/intermediate.pem -k $kind/intermediate.key -C $kind/chain.pem"
	# shellcheck disable=SC2086
	$tool $args issue dev-$kind-1 0123456789abcdef01 spki dev.spki $kind-1.der > $kind-1.out 2>log || { cat log; fail "$kind spki issue"; }
	check_cert $kind $kind-1.der dev-$kind-1 0123456789abcdef01 $alg $kind-1.out
	# shellcheck disable=SC2086
	$tool $args issue dev-$kind-2 0123aaaaaaaaaaaa02 csr dev.csr $kind-2.der > $kind-2.out 2>log || { cat log; fail "$kind csr issue"; }
	check_cert $kind $kind-2.der dev-$kind-2 0123aaaaaaaaaaaa02 $alg $kind-2.out
done
echo "ok: certificates from EC and RSA CAs, SPKI and CSR"

# Bad CSRs: each refused with a clear reason, nothing written.
args="-c ec/intermediate.pem -k ec/intermediate.key"
refused() {
	what=$1 file=$2 reason=$3
	rm -f bad.der
	# shellcheck disable=SC2086
	if $tool $args issue dev-bad 0123456789abcdef01 csr "$file" bad.der >out 2>err; then
		fail "$what accepted"
	fi
	grep -q "refused: .*$reason" err || { cat err; fail "$what: no clear reason"; }
	[ ! -e bad.der ] || fail "$what: something written"
}
head -c 300 /dev/urandom > garbage.bin
head -c 65536 /dev/urandom > blob.bin
head -c 150 dev.csr > trunc.csr
# A CSR whose subject was altered after signing.
sed 's/not-used/NOT-used/' dev.csr > badsig.csr
cmp -s dev.csr badsig.csr && fail "badsig.csr unchanged"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out r1k.key 2>/dev/null
openssl req -new -key r1k.key -subj /CN=x -outform DER -out r1k.csr
openssl genpkey -algorithm ED25519 -out ed.key
openssl req -new -key ed.key -subj /CN=x -outform DER -out ed.csr
refused "bad signature" badsig.csr "CSR signature does not verify"
refused "Ed25519 key" ed.csr "key type ED25519 not allowed"
refused "RSA 1024" r1k.csr "RSA key of 1024 bits"
refused "truncated DER" trunc.csr "not a DER PKCS#10"
refused "garbage" garbage.bin "not a DER PKCS#10"
refused "64 KiB blob" blob.bin "larger than 8192"
echo "ok: bad CSRs refused"

# CRLs: 0, 1 and 100,000 entries.
: > e0.txt
echo "$(grep '^serial=' ec-1.out | cut -d= -f2) 1" > e1.txt
awk 'BEGIN { srand(7); for (i = 0; i < 100000; i++) {
	s = sprintf("%x", 1 + int(rand() * 15)); for (j = 0; j < 31; j++) s = s sprintf("%x", int(rand() * 16));
	print s, (i % 3 == 0 ? 1 : (i % 3 == 1 ? 4 : 0)) } }' > e100k.txt
n=10
for f in e0 e1 e100k; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	$tool $args crl $n $f.txt $f.crl 2>log || { cat log; fail "crl $f"; }
	openssl crl -inform DER -in $f.crl -noout -text > $f.crl.txt || fail "$f: crl -text"
	openssl crl -in $f.crl.pem -CAfile ec/chain.pem -noout 2>&1 | grep -q "verify OK" || fail "$f: crl -CAfile"
	grep -A1 "X509v3 CRL Number" $f.crl.txt | grep -q "^ *$n\$" || fail "$f: CRL number"
	grep "Serial Number:" $f.crl.txt | awk '{print tolower($3)}' | sort > $f.got
	awk '{print tolower($1)}' $f.txt | sort > $f.want
	cmp -s $f.got $f.want || fail "$f: revoked serials differ"
	openssl crl -inform DER -in $f.crl -outform DER | cmp -s - $f.crl || fail "$f: not DER"
done
[ "$(grep -c 'Key Compromise' e100k.crl.txt)" -eq 33334 ] || fail "reason codes"
[ "$(grep -c 'Superseded' e100k.crl.txt)" -eq 33333 ] || fail "reason codes"
grep -q "No Revoked Certificates" e0.crl.txt || fail "empty CRL"
echo "ok: CRLs of 0, 1, 100000 entries"
