#!/bin/sh
# security-secrets.sh — no secret reaches a log line, an HTTP answer, the
# audit table or anything else in the database. Runs fleetcertd at debug
# level with distinctive values for every secret (CA key passphrase, hub
# connection string with its SharedAccessKey, enrolment TLS key, operator
# API tokens, a wrong token a client sends), drives the operator API (good,
# wrong and under-privileged tokens), re-enrols a self-signed device (which
# makes the daemon sign a SAS token for the hub), and greps everything.
set -eu
command -v curl >/dev/null || { echo "SKIP: needs curl"; exit 77; }
. "$top_srcdir/tests/enrol-lib.sh"
. "$top_srcdir/tests/start-hubsim.sh"
ENROL_LOG_LEVEL=debug
enrol_setup
D=$top_builddir/fleetcertd
DPID=
trap 'rc=$?; [ -n "$DPID" ] && kill $DPID 2>/dev/null;
	enrol_cleanup; hubsim_cleanup; exit $rc' EXIT INT TERM

PASS=Pass-ZQX7-secret-$(openssl rand -hex 6)
ADMIN_TOK=AdmTok-ZQX7-$(openssl rand -hex 8)
READ_TOK=RdTok-ZQX7-$(openssl rand -hex 8)
WRONG_TOK=WrongTok-ZQX7-$(openssl rand -hex 8)
SAS_KEY=$(printf '%s' "$HUBSIM_CONN" | sed 's/.*SharedAccessKey=//')

# The CA key, encrypted with the passphrase.
openssl pkey -in "$T/ca/intermediate.key" -aes-256-cbc \
	-passout "pass:$PASS" -out "$T/ca/int-enc.key"
chmod 600 "$T/ca/int-enc.key"
printf '%s\n' "$PASS" > "$T/pass"
printf '%s' "$HUBSIM_CONN" > "$T/hub.conn"
h() { printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }
printf 'admin %s\nread %s\n' "$(h "$ADMIN_TOK")" "$(h "$READ_TOK")" \
	> "$T/tokens"
chmod 600 "$T/pass" "$T/hub.conn" "$T/tokens"
sed -i "s|^key = .*|key = $T/ca/int-enc.key\nkey_passphrase_file = $T/pass|" \
	"$CONF"
cat >> "$CONF" <<CNF
[hub]
connection_string_file = $T/hub.conn
ca_file = $HUBSIM_CA
[api]
listen = unix:$T/api.sock
tokens_file = $T/tokens
CNF

enrol_device ss 0123a1b2c3d4e5f622 unregistered
"$top_builddir/tests/enrol-testd" add-device "$CONF" ss 0123a1b2c3d4e5f622 \
	"$T/ss.pub" 1 selfsigned
st=$(hubsim_call PUT /devices/ss '{"deviceId":"ss","status":"enabled","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"0123456789ABCDEF0123456789ABCDEF01234567","secondaryThumbprint":null}}}')
[ "$st" = 200 ] || fail "hub: create device: $st"

: > "$T/d.log"
"$D" -c "$CONF" > "$T/d.out" 2>> "$T/d.log" &
DPID=$!
i=0
while ! grep -q 'enrol: listening on' "$T/d.log"; do
	i=$((i + 1))
	if [ $i -gt 200 ] || ! kill -0 $DPID 2>/dev/null; then
		cat "$T/d.log" >&2
		fail "fleetcertd did not start"
	fi
	sleep 0.1
done
PORT=$(sed -n 's/.*enrol: listening on .* (port \([0-9]*\)).*/\1/p' \
	"$T/d.log" | tail -n 1)
while [ ! -S "$T/api.sock" ]; do sleep 0.1; done

n=0
api() {	# TOKEN METHOD PATH [BODY]
	n=$((n + 1))
	curl -s -i --unix-socket "$T/api.sock" -X "$2" \
		-H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
		${4:+--data "$4"} "http://localhost$3" > "$T/answer.$n" 2>&1 || true
}
for tok in "$ADMIN_TOK" "$READ_TOK" "$WRONG_TOK" "$ADMIN_TOK$ADMIN_TOK"; do
	api "$tok" GET /v1/devices
	api "$tok" GET /v1/devices/ss
	api "$tok" GET /v1/health
	api "$tok" GET /metrics
	api "$tok" GET /v1/audit
	api "$tok" POST /v1/devices '{"deviceId":"x1","serial":"bad"}'
	api "$tok" POST /v1/sweep '{}'
done
curl -s -i --unix-socket "$T/api.sock" -H "Authorization: Basic $WRONG_TOK" \
	http://localhost/v1/devices > "$T/answer.basic" 2>&1 || true
grep -q '^HTTP/1.1 200' "$T/answer.1" || { cat "$T/answer.1" >&2;
	fail "the admin token was not accepted"; }

"$top_builddir/fleetcert-device" --url "https://127.0.0.1:$PORT" \
	--root "$ROOT" --serial 0123a1b2c3d4e5f622 --key "$T/ss.key" \
	--out "$T/ss.pem" > "$T/dev.out" 2>&1 ||
	{ cat "$T/dev.out" "$T/d.log" >&2; fail "re-enrol"; }
# A forged re-enrolment and a bad challenge, with the passphrase as data.
curl -s -k -i -X POST --data "{\"serial\":\"$PASS\"}" \
	"https://127.0.0.1:$PORT/enrol/v1/challenge" > "$T/answer.e1" || true
api "$ADMIN_TOK" GET /v1/audit
kill $DPID
wait $DPID 2>/dev/null || true
DPID=

sqlite3 "$DB" .dump > "$T/db.dump"
# The audit query answers above are in answer.*; the dump covers the table.
found=0
check() {	# NAME VALUE
	for f in "$T"/d.log "$T"/d.out "$T"/answer.* "$T"/db.dump \
	    "$T"/server.err "$T"/dev.out; do
		[ -f "$f" ] || continue
		if grep -F -q -e "$2" "$f"; then
			echo "LEAK: $1 in $(basename "$f"):" >&2
			grep -F -e "$2" "$f" | head -3 >&2
			found=1
		fi
	done
}
check "CA key passphrase" "$PASS"
check "admin token" "$ADMIN_TOK"
check "read token" "$READ_TOK"
check "wrong token" "$WRONG_TOK"
check "hub SharedAccessKey" "$SAS_KEY"
check "a SAS token" "SharedAccessSignature"
check "a SAS signature" "sig="
check "a PEM private key" "PRIVATE KEY"
# A line of base64 from inside each private key file.
for k in "$T/tls.key" "$T/ca/intermediate.key" "$T/ca/int-enc.key"; do
	check "$(basename "$k") content" "$(sed -n 2p "$k")"
done
[ $found = 0 ] || fail "secrets leaked"
if grep -q 'Sanitizer\|runtime error:' "$T/d.log"; then
	cat "$T/d.log" >&2
	fail "sanitizer finding in fleetcertd"
fi
echo "security-secrets.sh: ok"
