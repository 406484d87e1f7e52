#!/bin/sh
# enrol.sh — the re-enrolment listener end to end: fleetcert-device against
# the real listener (TLS, signer process, SQLite), the certificate checked
# with openssl verify; then the HTTP-level refusals (1 MiB body, deep JSON,
# malformed, unknown serial, revoked device), TLS 1.0/1.1 refused, and a
# drip-feeding client cut by the request deadline. Each refusal changes
# nothing in the database.
set -eu
. "$top_srcdir/tests/enrol-lib.sh"
DEV=$top_builddir/fleetcert-device

enrol_setup
enrol_device dev-a 0123a1b2c3d4e5f601
enrol_device dev-r 0123a1b2c3d4e5f602
enrol_start

# 1. Happy path: raw R||S, then DER; the second supersedes the first.
"$DEV" --url "$URL" --root "$ROOT" --serial 0123a1b2c3d4e5f601 \
	--key "$T/dev-a.key" --out "$T/a.pem" --chain-out "$T/a-chain.pem" \
	> "$T/a.out" || fail "fleetcert-device (raw signature)"
openssl verify -CAfile "$ROOT" -untrusted "$T/a-chain.pem" "$T/a.pem" \
	>/dev/null || fail "openssl verify of the re-enrolled certificate"
subj=$(openssl x509 -in "$T/a.pem" -noout -subject -nameopt RFC2253)
case $subj in *CN=dev-a*) ;; *) fail "subject $subj" ;; esac
[ "$(openssl x509 -in "$T/a.pem" -noout -pubkey)" = "$(cat "$T/dev-a.pub")" ] ||
	fail "certificate is not for the device key"
serial1=$(cut -d' ' -f1 "$T/a.out")
"$DEV" --url "$URL" --root "$ROOT" --serial SN0123A1B2C3D4E5F601 \
	--key "$T/dev-a.key" --out "$T/a2.pem" --der-signature \
	> "$T/a2.out" || fail "fleetcert-device (DER signature, sn form)"
[ "$(sql "SELECT status FROM certificates WHERE serial = '$serial1'")" = \
	superseded ] || fail "first certificate not superseded"
[ "$(sql "SELECT count(*) FROM certificates WHERE device_id = 'dev-a' AND \
	status IN ('active','delivered','pending')")" = 1 ] ||
	fail "not exactly one live certificate"

# 2. The device refuses a server it does not trust.
if "$DEV" --url "$URL" --root "$T/ca/intermediate.pem" \
	--serial 0123a1b2c3d4e5f601 --key "$T/dev-a.key" --out "$T/x.pem" \
	2>/dev/null; then fail "device trusted a server outside its root"; fi

snapshot() {
	sql "SELECT count(*) FROM certificates; SELECT count(*) FROM devices \
		WHERE status = 'active'; SELECT count(*) FROM challenges \
		WHERE used = 0"
}
before=$(snapshot)
post() {	# post PATH BODYFILE -> "STATUS BODY"
	curl -sS --cacert "$ROOT" -o "$T/reply" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "@$2" \
		"$URL$1" 2>/dev/null || true
}

# 3. A 1 MiB body: 413, nothing read into the handler. The listener may
# answer and close before curl has sent it all; then curl sees a reset
# (000), which is the same refusal.
head -c 1048576 /dev/zero | tr '\0' '[' > "$T/big"
code=$(post /enrol/v1/reenrol "$T/big" 2>/dev/null)
case $code in 413|000) ;; *) fail "1 MiB body: $code" ;; esac
# 4. Deeply nested JSON, bad base64, wrong length: 400.
printf '{"serial":%s"x"%s}' "$(head -c 64 /dev/zero | tr '\0' '[')" \
	"$(head -c 64 /dev/zero | tr '\0' ']')" > "$T/deep"
[ "$(post /enrol/v1/challenge "$T/deep")" = 400 ] || fail "deep JSON"
printf '{"serial":"0123a1b2c3d4e5f601","nonce":"AAEC*","csr":"MAA=","signature":"AA=="}' > "$T/b64"
[ "$(post /enrol/v1/reenrol "$T/b64")" = 400 ] || fail "bad base64"
grep -q '"bad_request"' "$T/reply" || fail "bad base64: $(cat "$T/reply")"
printf '{"serial":"0123a1b2c3d4e5f6"}' > "$T/short"
[ "$(post /enrol/v1/challenge "$T/short")" = 400 ] || fail "short serial"
[ "$before" = "$(snapshot)" ] || fail "a malformed request changed the database"

# 5. Unknown serial: the challenge looks the same; the proof gets the 401.
enrol_device ghost 0123a1b2c3d4e5f6ff unregistered
"$DEV" --url "$URL" --root "$ROOT" --serial 0123a1b2c3d4e5f6ff \
	--key "$T/ghost.key" --out "$T/g.pem" 2> "$T/g.err" && fail "ghost enrolled"
grep -q '401 unauthorized: proof rejected' "$T/g.err" || fail "ghost: $(cat "$T/g.err")"
# 6. Revoked device with a valid proof: 403.
"$top_builddir/tests/enrol-testd" set-status "$CONF" dev-r revoked
"$DEV" --url "$URL" --root "$ROOT" --serial 0123a1b2c3d4e5f602 \
	--key "$T/dev-r.key" --out "$T/r.pem" 2> "$T/r.err" && fail "revoked enrolled"
grep -q '403 forbidden' "$T/r.err" || fail "revoked: $(cat "$T/r.err")"
[ "$(sql "SELECT count(*) FROM certificates")" = "$(echo "$before" | head -1)" ] ||
	fail "a refused proof issued a certificate"
[ "$(sql "SELECT count(*) FROM audit WHERE action = 'enrol.forbidden'")" = 1 ] ||
	fail "403 not audited"

# 7. TLS 1.0 and 1.1 are refused; 1.2 and 1.3 work.
for v in -tls1 -tls1_1; do
	if echo | openssl s_client -connect "127.0.0.1:$PORT" $v \
		-CAfile "$ROOT" >/dev/null 2>&1; then
		fail "openssl s_client $v connected"
	fi
done
for v in -tls1_2 -tls1_3; do
	echo | openssl s_client -connect "127.0.0.1:$PORT" $v -CAfile "$ROOT" \
		>/dev/null 2>&1 || fail "openssl s_client $v failed"
done

# 8. A client that drips its request one byte a second is cut by the
# request deadline (10 s), well before it could finish (40 s); an idle TLS
# connection by the idle timeout (10 s). Neither changes anything.
before=$(snapshot)
start=$(date +%s)
timeout 60 openssl s_client -quiet -ign_eof -connect "127.0.0.1:$PORT" \
	-CAfile "$ROOT" < /dev/null > /dev/null 2>&1 || true
took=$(( $(date +%s) - start ))
echo "idle client cut after ${took}s"
[ "$took" -lt 35 ] || fail "idle client held its connection ${took}s"
start=$(date +%s)
(printf 'POST /enrol/v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n'
 i=0; while [ $i -lt 40 ]; do printf x; sleep 1; i=$((i + 1)); done) |
	timeout 60 openssl s_client -quiet -connect "127.0.0.1:$PORT" \
	-CAfile "$ROOT" > "$T/slow.out" 2>/dev/null || true
took=$(( $(date +%s) - start ))
echo "drip-feeding client cut after ${took}s"
[ "$took" -lt 35 ] || fail "drip-feeding client held its connection ${took}s"
[ "$before" = "$(snapshot)" ] || fail "a slow client changed the database"
# The listener still serves.
printf '{"serial":"0123a1b2c3d4e5f601"}' > "$T/ch"
[ "$(post /enrol/v1/challenge "$T/ch")" = 200 ] || fail "listener dead after slow client"

enrol_stop
grep -q 'reenrolled=2 ' "$T/server.out" || fail "counters: $(cat "$T/server.out")"
echo "enrol.sh: ok"
