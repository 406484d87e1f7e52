#!/bin/sh
# fleetcertd-careload.sh — SIGHUP reloads the CA (issue 9): fleetcertd runs
# with intermediate A; the operator replaces the files at the same paths
# with intermediate B (new key, same root) and sends SIGHUP: certificates
# re-enrolled afterwards chain to B and carry B's chain. Then broken
# replacements (a certificate that does not match the key, a garbage key,
# a garbage certificate) are refused with a log line and B keeps issuing;
# a good pair after the refusals is taken again.
set -eu
. "$top_srcdir/tests/enrol-lib.sh"
ENROL_LOG_LEVEL=info
enrol_setup
D=$top_builddir/fleetcertd
DEV=$top_builddir/fleetcert-device
SN=0123a1b2c3d4e5f631
enrol_device dev-r $SN
CA=$T/ca
# The operator API must be configured too: a Unix socket, one token.
printf 'read %s\n' "$(printf tok | openssl dgst -sha256 -r | cut -d' ' -f1)" \
	> "$T/tokens"
chmod 600 "$T/tokens"
printf '[api]\nlisten = unix:%s/api.sock\ntokens_file = %s/tokens\n' "$T" "$T" \
	>> "$CONF"

daemon_stop() {
	kill $DPID 2>/dev/null || true
	wait $DPID 2>/dev/null || true
	DPID=
	if grep -q 'Sanitizer\|runtime error:' "$T/d.log"; then
		cat "$T/d.log" >&2
		fail "sanitizer finding in fleetcertd"
	fi
}
DPID=
trap 'rc=$?; [ -n "$DPID" ] && kill $DPID 2>/dev/null; enrol_cleanup; exit $rc' EXIT INT TERM

# A new intermediate NAME under the test root, with a new P-256 key.
mkint() {
	mkdir -p "$T/$1"
	(umask 077
	 openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$T/$1/intermediate.key" 2>/dev/null)
	openssl req -new -config "$CA/ca.cnf" -key "$T/$1/intermediate.key" \
		-subj "/O=fleetcert test/CN=fleetcert test intermediate $1" \
		-out "$T/$1/int.csr"
	openssl x509 -req -in "$T/$1/int.csr" -CA "$CA/root.pem" \
		-CAkey "$CA/root.key" -CAcreateserial -extfile "$CA/ca.cnf" \
		-extensions v3_int -days 3650 -sha384 \
		-out "$T/$1/intermediate.pem" 2>/dev/null
	cat "$T/$1/intermediate.pem" "$CA/root.pem" > "$T/$1/chain.pem"
}
# Saves A before it is overwritten.
mkdir -p "$T/A"
cp -p "$CA/intermediate.pem" "$CA/intermediate.key" "$CA/chain.pem" "$T/A/"
mkint B
mkint C

# put CERT KEY CHAIN: replaces the configured files (same paths) the way
# an operator would: write beside, rename over.
put() {
	cp "$1" "$CA/intermediate.pem.new" && mv "$CA/intermediate.pem.new" \
		"$CA/intermediate.pem"
	(umask 077; cp "$2" "$CA/intermediate.key.new")
	chmod 600 "$CA/intermediate.key.new"
	mv "$CA/intermediate.key.new" "$CA/intermediate.key"
	cp "$3" "$CA/chain.pem.new" && mv "$CA/chain.pem.new" "$CA/chain.pem"
}

# hup PATTERN: SIGHUP, then waits for the next reload's outcome line.
hup() {
	before=$(grep -c 'CA reloaded\|new CA refused' "$T/d.log" || true)
	kill -HUP $DPID
	i=0
	while [ "$(grep -c 'CA reloaded\|new CA refused' "$T/d.log" || true)" \
	    -le "$before" ]; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 $DPID 2>/dev/null; then
			cat "$T/d.log" >&2
			fail "no CA reload outcome after SIGHUP"
		fi
		sleep 0.1
	done
	grep 'CA reloaded\|new CA refused' "$T/d.log" | tail -n 1 |
		grep -q "$1" || { cat "$T/d.log" >&2
			fail "reload outcome is not '$1'"; }
}

# enrol N INT: re-enrols into $T/N.pem; the certificate must chain to the
# root through intermediate INT alone, and the chain handed back must
# start with INT.
enrol() {
	"$DEV" --url "$URL" --root "$ROOT" --serial $SN --key "$T/dev-r.key" \
		--out "$T/$1.pem" --chain-out "$T/$1.chain" > /dev/null ||
		{ cat "$T/d.log" >&2; fail "re-enrol $1"; }
	openssl verify -CAfile "$ROOT" -untrusted "$T/$2/intermediate.pem" \
		"$T/$1.pem" > /dev/null 2>&1 ||
		fail "certificate $1 does not chain to intermediate $2"
	[ "$(openssl x509 -in "$T/$1.chain" -noout -fingerprint -sha256)" = \
	  "$(openssl x509 -in "$T/$2/intermediate.pem" -noout -fingerprint \
	    -sha256)" ] || fail "chain of $1 does not start with $2"
	openssl verify -CAfile "$ROOT" -untrusted "$T/$1.chain" "$T/$1.pem" \
		> /dev/null || fail "certificate $1 with its own chain"
}

: > "$T/d.log"
"$D" -c "$CONF" > "$T/d.out" 2>> "$T/d.log" &
DPID=$!
i=0
while ! grep -q 'enrol: listening on' "$T/d.log"; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 $DPID 2>/dev/null; then
		cat "$T/d.log" >&2
		fail "fleetcertd did not start its enrolment listener"
	fi
	sleep 0.1
done
PORT=$(sed -n 's/.*enrol: listening on .* (port \([0-9]*\)).*/\1/p' \
	"$T/d.log" | tail -n 1)
URL=https://127.0.0.1:$PORT

enrol e1 A
# The usual rotation: new intermediate, chain and key at the same paths.
put "$T/B/intermediate.pem" "$T/B/intermediate.key" "$T/B/chain.pem"
hup 'CA reloaded: subject .*intermediate B'
enrol e2 B

# A certificate that does not match the key: the candidate signer worker
# refuses it, the running one keeps serving.
put "$T/C/intermediate.pem" "$T/B/intermediate.key" "$T/C/chain.pem"
hup 'new CA refused.*key does not belong'
enrol e3 B
# A garbage key.
head -c 300 /dev/urandom > "$T/garbage"
put "$T/C/intermediate.pem" "$T/garbage" "$T/C/chain.pem"
hup 'new CA refused'
enrol e4 B
# A garbage certificate: refused in the main process already.
put "$T/garbage" "$T/B/intermediate.key" "$T/B/chain.pem"
hup 'new CA refused'
enrol e5 B
kill -0 $DPID 2>/dev/null || fail "fleetcertd died"
# After the refusals a good pair is taken again.
put "$T/C/intermediate.pem" "$T/C/intermediate.key" "$T/C/chain.pem"
hup 'CA reloaded: subject .*intermediate C'
enrol e6 C

# The configuration reload itself went on each time, and nothing secret
# reached the log.
[ "$(grep -c 'reload: configuration .* applied' "$T/d.log")" -eq 5 ] ||
	{ cat "$T/d.log" >&2; fail "configuration not applied on each SIGHUP"; }
if grep -q 'PRIVATE KEY\|BEGIN' "$T/d.log"; then
	fail "key or certificate material in the log"
fi
grep -q 'restart fleetcertd to use it' "$T/d.log" &&
	fail "a reloaded CA file is still reported as needing a restart"
daemon_stop
[ -z "${VERBOSE:-}" ] || cat "$T/d.log"
echo "fleetcertd-careload.sh: ok"
