#!/bin/sh
# ca_softhsm.sh — the CA key in a PKCS#11 token (SoftHSM2 through libp11's
# engine): the test makes a token with softhsm2-util and a P-256 key inside
# it with pkcs11-tool, has the root certify that key, issues through the
# signer, and checks with openssl verify. A wrong PIN, a missing token and
# a PIN inside the URI are clear errors, not crashes, and the PIN appears
# in no output.
set -eu
: "${top_srcdir:=..}" "${top_builddir:=.}"
tool=$top_builddir/fc-ca-tool
module=/usr/lib/softhsm/libsofthsm2.so
for m in "$module" /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && module=$m
done
if ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null ||
    [ ! -e "$module" ]; then
	echo "SKIP: softhsm2 / opensc not installed"
	exit 77
fi
t=$(mktemp -d /tmp/fleetcert-hsm.XXXXXX)
trap 'rm -rf "$t"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$t"
umask 077

PIN=735194
WRONG=958273
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$t" > softhsm2.conf
SOFTHSM2_CONF=$t/softhsm2.conf
export SOFTHSM2_CONF
softhsm2-util --init-token --free --label fleetcert-ca --so-pin 19283746 --pin $PIN >/dev/null
pkcs11-tool --module "$module" --token-label fleetcert-ca --login --pin $PIN \
	--keypairgen --key-type EC:prime256v1 --id 01 --label ca-key >/dev/null 2>&1 ||
	fail "keypairgen"
pkcs11-tool --module "$module" --token-label fleetcert-ca --read-object \
	--type pubkey --id 01 -o ca-pub.der >/dev/null 2>&1 || fail "read pubkey"
openssl pkey -pubin -inform DER -in ca-pub.der -out ca-pub.pem
sh "$top_srcdir/tests/mkca.sh" "$t/ca" "pub:$t/ca-pub.pem"
[ ! -e ca/intermediate.key ] || fail "mkca left a software key"

echo $PIN > pin
echo $WRONG > wrong-pin
chmod 600 pin wrong-pin
uri="pkcs11:token=fleetcert-ca;object=ca-key;type=private?module-path=$module"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key 2>/dev/null
openssl pkey -in dev.key -pubout -outform DER -out dev.spki
openssl req -new -key dev.key -subj /CN=x -outform DER -out dev.csr

run() {
	"$tool" -c ca/intermediate.pem -C ca/chain.pem -k "$1" -p "$2" issue \
		"$3" 0123456789abcdef09 "$4" "$5" "$6" >>out.log 2>>err.log
}
run "$uri" pin hsm-dev-1 spki dev.spki c1.der || { cat err.log; fail "issue (spki)"; }
run "$uri" pin hsm-dev-2 csr dev.csr c2.der || { cat err.log; fail "issue (csr)"; }
# RFC 7512 percent-encoding in the module path.
enc=$(printf '%s' "$module" | sed 's/\./%2E/g')
run "pkcs11:token=fleetcert-ca;object=ca-key;type=private?module-path=$enc" pin \
	hsm-dev-3 spki dev.spki c3.der || { cat err.log; fail "issue (encoded module-path)"; }
for c in c1 c2; do
	openssl x509 -inform DER -in $c.der -out $c.pem
	openssl verify -CAfile ca/root.pem -untrusted ca/intermediate.pem $c.pem >/dev/null ||
		fail "$c: verify"
	openssl x509 -in $c.pem -noout -text | grep -q "URI:urn:fleetcert:se:0123456789abcdef09" ||
		fail "$c: SAN"
done
"$tool" -c ca/intermediate.pem -k "$uri" -p pin crl 1 /dev/null crl.der >>out.log 2>>err.log ||
	fail "CRL from the token"
openssl crl -in crl.der.pem -CAfile ca/chain.pem -noout 2>&1 | grep -q "verify OK" || fail "CRL verify"
echo "ok: certificates and CRL signed in the token"

# An RSA CA key in the token (imported with pkcs11-tool).
sh "$top_srcdir/tests/mkca.sh" "$t/rsa" rsa
openssl pkcs8 -topk8 -nocrypt -in rsa/intermediate.key -outform DER -out rsa.p8
pkcs11-tool --module "$module" --token-label fleetcert-ca --login --pin $PIN \
	--write-object rsa.p8 --type privkey --id 03 --label rsa-key >/dev/null 2>&1 ||
	fail "import RSA key"
"$tool" -c rsa/intermediate.pem -k "pkcs11:token=fleetcert-ca;object=rsa-key;type=private?module-path=$module" \
	-p pin issue hsm-rsa-1 0123456789abcdef09 csr dev.csr r1.der >>out.log 2>>err.log ||
	{ cat err.log; fail "issue with the RSA token key"; }
openssl x509 -inform DER -in r1.der -out r1.pem
openssl verify -CAfile rsa/root.pem -untrusted rsa/intermediate.pem r1.pem >/dev/null || fail "r1: verify"
openssl x509 -in r1.pem -noout -text | grep -q "Signature Algorithm: sha256WithRSAEncryption" || fail "r1: sigalg"
echo "ok: RSA CA key in the token"

# expect_fail NAME EXIT_CODE REASON: a clear message, no crash.
expect_fail() {
	name=$1 reason=$2
	shift 2
	set +e
	"$@" >>out.log 2>fail.log
	rc=$?
	set -e
	cat fail.log >> err.log
	[ $rc -eq 3 ] || { cat fail.log; fail "$name: exit $rc (want 3: clean refusal)"; }
	grep -q "$reason" fail.log || { cat fail.log; fail "$name: unclear error"; }
	grep -qi "segmentation\|core dumped\|abort" fail.log && fail "$name: crashed"
	return 0
}
expect_fail "wrong PIN" "the PIN (key_pin_file) is wrong" \
	"$tool" -c ca/intermediate.pem -k "$uri" -p wrong-pin issue d 0123456789abcdef09 spki dev.spki x.der
expect_fail "missing token" "token or key object not found" \
	"$tool" -c ca/intermediate.pem -k "pkcs11:token=no-such-token;object=ca-key?module-path=$module" \
	-p pin issue d 0123456789abcdef09 spki dev.spki x.der
expect_fail "missing module" "PKCS#11 module .*No such file" \
	"$tool" -c ca/intermediate.pem -k "pkcs11:token=fleetcert-ca;object=ca-key?module-path=$t/nope.so" \
	-p pin issue d 0123456789abcdef09 spki dev.spki x.der
expect_fail "PIN in the URI" "must not carry a PIN" \
	"$tool" -c ca/intermediate.pem -k "pkcs11:token=fleetcert-ca;object=ca-key;pin-value=$PIN" \
	-p pin issue d 0123456789abcdef09 spki dev.spki x.der
[ ! -e x.der ] || fail "a certificate was written after a failure"
if grep -q "$PIN\|$WRONG" out.log err.log; then
	grep "$PIN\|$WRONG" out.log err.log
	fail "a PIN appears in the output"
fi
echo "ok: wrong PIN, missing token, missing module, PIN in URI: clear errors, PIN never printed"

# The key disappears from the token while the signer runs (as when an HSM
# session drops): requests fail cleanly, health says why, the supervisor
# restarts the worker with back-off, and once the key is back a new worker
# logs in again and issuing resumes.
sh "$top_srcdir/tests/mkca.sh" "$t/ca2" ec
openssl pkcs8 -topk8 -nocrypt -in ca2/intermediate.key -outform DER -out ca2.p8
p11() { pkcs11-tool --module "$module" --token-label fleetcert-ca --login --pin $PIN "$@" >/dev/null 2>&1; }
p11 --write-object ca2.p8 --type privkey --id 02 --label ca2-key || fail "import ca2 key"
uri2="pkcs11:token=fleetcert-ca;object=ca2-key;type=private?module-path=$module"
"$tool" -c ca2/intermediate.pem -k "$uri2" -p pin soak 14 dev.spki > soak.out 2>>err.log &
soak=$!
sleep 2
p11 --delete-object --type privkey --label ca2-key || fail "delete key"
sleep 3
p11 --write-object ca2.p8 --type privkey --id 02 --label ca2-key || fail "re-import key"
wait $soak || fail "soak exited $?"
head -1 soak.out | grep -q "^ok up=1" || { cat soak.out; fail "soak: no success before the loss"; }
grep -q "up=0 .*reason=.*\(session lost\|not found\)" soak.out || { cat soak.out; fail "soak: loss not reported"; }
tail -1 soak.out | grep -q "^ok up=1 restarts=[1-9]" || { cat soak.out; fail "soak: no recovery"; }
grep -v "^ok\|^busy\|^I/O error\|^cryptographic error" soak.out && fail "soak: unexpected outcome"
if grep -q "$PIN" soak.out err.log; then fail "a PIN appears in the output"; fi
echo "ok: key lost and back: clean failures, reported, re-login with back-off"
