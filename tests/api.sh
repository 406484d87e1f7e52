#!/bin/sh
# api.sh — the operator API from the outside, with curl against
# the real fleetcertd (and tests/api-testd where a test needs to start the
# API itself): doc/api.md against the endpoints the daemon serves, every documented endpoint, roles and tokens, strict
# JSON, body caps, bad ids and paths, SQL-looking input, audit identity,
# imports, health 503, start-up refusals, a Unix-socket listener, and
# 100,000 devices paged to the end exactly once.
set -u
: "${top_srcdir:=..}" "${top_builddir:=..}"
B=$top_builddir
T=$(mktemp -d)
PIDS=""
fails=0
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

RTOK=read-$(openssl rand -hex 16)
ATOK=admin-$(openssl rand -hex 16)
AID=api:$(sha "$ATOK" | cut -c1-8)
{ echo "# test tokens"; echo "read $(sha "$RTOK")"; echo; echo "admin $(sha "$ATOK")"; } > "$T/tokens"
chmod 600 "$T/tokens"
conf() {	# conf FILE LISTEN [extra [api] lines]
	f=$1; l=$2; shift 2
	{ echo "[database]"; echo "path = $T/db.sqlite"; echo "[api]";
	  echo "listen = $l"; echo "tokens_file = $T/tokens"
	  for x in "$@"; do echo "$x"; done; } > "$f"
}

echo "seeding 100000 devices"
"$B/tests/api-seed" "$T/db.sqlite" 100000 || { echo "seed failed"; exit 1; }

start() {	# start NAME CONF [args]: waits for the port in $T/NAME.port
	name=$1; cf=$2; shift 2
	rm -f "$T/$name.port"
	"$B/tests/api-testd" -c "$cf" --port-file "$T/$name.port" "$@" 2>"$T/$name.err" &
	pid=$!; PIDS="$PIDS $pid"; eval "PID_$name=$pid"
	i=0
	while [ ! -s "$T/$name.port" ] && [ $i -lt 100 ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1; i=$((i + 1))
	done
	PORT=$(cat "$T/$name.port")
}
# The server under test is the real daemon: fleetcertd with this config (no
# [ca], so its signer reports itself down and health is 503). It listens on
# a port of its choosing and logs it.
conf "$T/main.conf" 127.0.0.1:0
"$B/fleetcertd" -c "$T/main.conf" 2>"$T/main.err" &
PID_main=$!; PIDS="$PIDS $PID_main"
i=0; PORT=""
while [ -z "$PORT" ] && [ $i -lt 150 ]; do
	kill -0 "$PID_main" 2>/dev/null || break
	PORT=$(sed -n 's/.*httpd api: listening on .* (port \([0-9]*\)).*/\1/p' "$T/main.err" 2>/dev/null | head -n 1)
	sleep 0.1; i=$((i + 1))
done
[ -n "$PORT" ] || { echo "fleetcertd did not start:"; cat "$T/main.err"; exit 1; }
URL=http://127.0.0.1:$PORT

# req CODE METHOD PATH TOKEN [curl args]: checks the status; body in $T/body
req() {
	code=$1; m=$2; p=$3; tok=$4; shift 4
	if [ -n "$tok" ]; then set -- -H "Authorization: Bearer $tok" "$@"; fi
	got=$(curl -s --path-as-is -o "$T/body" -D "$T/headers" -w '%{http_code}' -X "$m" "$@" "$URL$p")
	if [ "$got" != "$code" ]; then
		fail "$m $p: $got, want $code: $(head -c 300 "$T/body")"
		return 1
	fi
	if [ "$code" -ge 400 ] && [ "$p" != /v1/health ] && ! jq -e '.error.code and .error.message' "$T/body" >/dev/null 2>&1; then
		fail "$m $p: $code without the error shape: $(head -c 300 "$T/body")"
		return 1
	fi
	ok "$m $p -> $code"
}
jqt() {	# jqt EXPR: the last body satisfies EXPR
	jq -e "$1" "$T/body" >/dev/null 2>&1 || { fail "body fails $1: $(head -c 300 "$T/body")"; return 1; }
}

# ---- doc/api.md and the daemon serve the same endpoints (GET /v1 lists
# what the running fleetcertd registered, other modules' routes included)
sed -n 's/^### `\([A-Z]*\) \([^`]*\)`$/\1 \2/p' "$top_srcdir/doc/api.md" | sort > "$T/doc.routes"
curl -s -H "Authorization: Bearer $RTOK" "$URL/v1" | jq -r '.endpoints[] | "\(.method) \(.path)"' | sort > "$T/code.routes"
"$B/tests/api-testd" --routes | cut -d' ' -f1,2 | sort > "$T/builtin.routes"
[ -s "$T/doc.routes" ] || fail "no endpoints found in doc/api.md"
[ -s "$T/code.routes" ] || fail "GET /v1 listed nothing"
if diff "$T/doc.routes" "$T/code.routes" > "$T/routes.diff"; then
	ok "doc/api.md lists exactly the $(wc -l < "$T/doc.routes") endpoints fleetcertd serves"
else
	fail "doc/api.md and fleetcertd differ:"; cat "$T/routes.diff"
fi
comm -23 "$T/builtin.routes" "$T/code.routes" | grep . && fail "built-in routes missing from fleetcertd"

# ---- a real identity key and certificate for registrations and imports
openssl ecparam -name prime256v1 -genkey -noout -out "$T/k1.pem" 2>/dev/null
openssl ec -in "$T/k1.pem" -pubout -outform DER 2>/dev/null | base64 -w0 > "$T/k1.spki"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/k2.pem" 2>/dev/null
openssl req -x509 -new -key "$T/k2.pem" -subj /CN=imp-2 -days 30 -outform DER -out "$T/c2.der" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$T/k3.pem" 2>/dev/null
openssl ec -in "$T/k3.pem" -pubout -outform DER 2>/dev/null | base64 -w0 > "$T/k3.spki"

# ---- every documented endpoint, walked with the right role
walk() {	# walk "METHOD PATH"
	case $1 in
	"GET /v1") req 200 GET /v1 "$RTOK" && jqt 'any(.endpoints[]; .method == "POST" and .path == "/v1/imports" and .role == "admin")' ;;
	"GET /v1/health") req 503 GET /v1/health "$RTOK" && jqt '.status == "degraded" and .components.database.ok and (.components.signer.ok | not)' ;;
	"GET /metrics") req 200 GET /v1 "$RTOK"; req 200 GET /metrics "$RTOK" && grep -q '^fleetcert_api_requests_total{' "$T/body" && grep -q '^fleetcert_certificates{status="active"} 100000' "$T/body" || fail "metrics content" ;;
	"GET /v1/devices") req 200 GET '/v1/devices?limit=5' "$RTOK" && jqt '(.items | length) == 5 and .items[0].deviceId == "dev-0000000" and (.nextCursor | type) == "string"' ;;
	"POST /v1/devices") req 201 POST /v1/devices "$ATOK" -H 'Content-Type: application/json' \
		-d "{\"deviceId\":\"new-1\",\"serial\":\"0123ABCDEF01234501\",\"identityPublicKey\":\"$(cat "$T/k1.spki")\",\"owner\":\"acme\"}" \
		&& jqt '.deviceId == "new-1" and .serial == "0123abcdef01234501" and .owner == "acme" and .certificate == null' ;;
	"GET /v1/devices/{id}") req 200 GET /v1/devices/dev-0000042 "$RTOK" && jqt '.deviceId == "dev-0000042" and .certificate.status == "active"' ;;
	"GET /v1/devices/{id}/certificates") req 200 GET /v1/devices/dev-0000042/certificates "$RTOK" && jqt '(.items | length) == 1' ;;
	"GET /v1/certificates/{serial}") req 200 GET /v1/devices/dev-0000042 "$RTOK"; s=$(jq -r '.certificate.serial' "$T/body" | tr a-f A-F); req 200 GET "/v1/certificates/$s" "$RTOK" && jqt '.deviceId == "dev-0000042" and (.pem | startswith("-----BEGIN CERTIFICATE-----"))' ;;
	"GET /v1/expiry") req 200 GET '/v1/expiry?bucket=week&count=60' "$RTOK" && jqt '(.buckets | length) == 60 and ([.buckets[].count] | add) + .expired == 100000' ;;
	"GET /v1/audit") req 200 GET '/v1/audit?limit=3' "$RTOK" && jqt '(.items | length) == 3 and .items[0].id == 1 and .nextAfter == 3' ;;
	"GET /v1/audit/verify") req 200 GET /v1/audit/verify "$RTOK" && jqt '.ok == true and .count >= 200000' ;;
	"POST /v1/imports") printf 'deviceId,serial,identityPublicKey,certificate,owner\r\nimp-1,0123aa00000000bb01,%s,,o1\r\nimp-2,0123aa00000000bb02,,%s,o2\r\n' \
		"$(cat "$T/k3.spki")" "$(base64 -w0 "$T/c2.der")" > "$T/ok.csv"
		req 200 POST /v1/imports "$ATOK" -H 'Content-Type: text/csv' --data-binary "@$T/ok.csv" && jqt '.imported == 2 and .skipped == 0 and (.errors | length) == 0' ;;
	# Revocation (src/api_revoke.c; behaviour in tests/revoke.sh): the
	# routes, roles and error shapes, without a revocation worker.
	"POST /v1/devices/{id}/revoke") req 404 POST /v1/devices/no-such-device/revoke "$ATOK" -H 'Content-Type: application/json' -d '{"reason":"keyCompromise"}'; req 400 POST /v1/devices/dev-0000001/revoke "$ATOK" -H 'Content-Type: application/json' -d '{"reason":"bogus"}' ;;
	"POST /v1/devices/{id}/transfer") req 404 POST /v1/devices/no-such-device/transfer "$ATOK" -H 'Content-Type: application/json' -d '{"owner":"x"}'; req 400 POST /v1/devices/dev-0000001/transfer "$ATOK" -H 'Content-Type: application/json' -d '{}' ;;
	"DELETE /v1/devices/{id}") req 404 DELETE /v1/devices/no-such-device "$ATOK" ;;
	"POST /v1/revocations") req 400 POST /v1/revocations "$ATOK" -H 'Content-Type: application/json' -d '{"selector":{"color":"red"}}'; req 200 POST /v1/revocations "$ATOK" -H 'Content-Type: application/json' -d '{"selector":{"deviceIds":["dev-0000001","dev-0000002","nope"]},"dryRun":true}' && jqt '.matched == 2 and .dryRun == true and (.estimatedSeconds | type) == "number"' ;;
	"GET /v1/revocations/{id}") req 200 POST /v1/revocations "$ATOK" -H 'Content-Type: application/json' -d '{"selector":{"owner":"nobody"},"dryRun":true}'; rid=$(jq -r .id "$T/body"); req 200 GET "/v1/revocations/$rid" "$RTOK" && jqt '.state == "dryrun" and .matched == 0'; req 404 GET /v1/revocations/999999 "$RTOK" ;;
	"GET /v1/crl") req 404 GET /v1/crl "$RTOK" ;;
	"GET /v1/drift") req 200 GET /v1/drift "$RTOK" && jqt '.items == []' ;;
	"POST /v1/sweep") req 403 POST /v1/sweep "$RTOK"; req 200 POST /v1/sweep "$ATOK" && jqt '.exitCode == 0 and .complete == true' ;;
	*) fail "no test for documented endpoint $1" ;;
	esac
}
while read -r m p; do walk "$m $p"; done < "$T/doc.routes"

# ---- tokens and roles
req 401 GET /v1/health "" && grep -qi '^WWW-Authenticate: Bearer' "$T/headers" || fail "no WWW-Authenticate"
req 401 GET /v1/devices "wrong-token" && grep -qi 'invalid_token' "$T/headers" || fail "no invalid_token"
req 401 GET /v1/devices "" -H "Authorization: Basic $(printf 'a:b' | base64)"
req 401 GET /v1/devices "" -H "Authorization: Bearer "
req 401 GET /v1/devices "$RTOK$RTOK"
req 401 GET /v1/devices "$(head -c 2000 /dev/zero | tr '\0' x)"
req 403 POST /v1/devices "$RTOK" -H 'Content-Type: application/json' -d '{}'
req 403 POST /v1/imports "$RTOK" -H 'Content-Type: text/csv' -d 'x'
req 200 GET /v1/devices/new-1 "$ATOK"
# an unauthenticated client cannot make the server read a large body
head -c 20000000 /dev/zero > "$T/20m"
req 401 POST /v1/imports "" -H 'Content-Type: text/csv' --data-binary "@$T/20m"
req 403 POST /v1/imports "$RTOK" -H 'Content-Type: text/csv' --data-binary "@$T/20m"

# ---- audit identity: the admin token's hash prefix, never the token
req 200 GET '/v1/audit?deviceId=new-1' "$RTOK" && jqt ".items[0].actor == \"$AID\" and .items[0].action == \"device.create\""
req 200 GET '/v1/audit?deviceId=imp-1' "$RTOK" && jqt ".items[0].actor == \"$AID\""
req 200 GET '/v1/audit?after=200000&limit=1000' "$RTOK"
grep -q "$ATOK" "$T/body" "$T/main.err" && fail "the admin token appears in the audit log or the log" || ok "token never logged or audited"

# ---- strict JSON and bodies
J='-H Content-Type:application/json'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":'
jqt '.error.code == "bad_json"'
req 400 POST /v1/devices "$ATOK" $J -d '[1,2]'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x","serial":"0123aa00000000cc01","colour":"red"}'
jqt '.error.code == "unknown_field" and (.error.message | contains("colour"))'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":5,"serial":"0123aa00000000cc01"}'
jqt '.error.code == "wrong_type" and (.error.message | contains("deviceId"))'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x","serial":["0123aa00000000cc01"]}'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x"}'
jqt '.error.code == "missing_field"'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x","deviceId":"y","serial":"0123aa00000000cc01"}'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x\u0000y","serial":"0123aa00000000cc01"}'
req 400 POST /v1/devices "$ATOK" $J -d "{\"deviceId\":\"bad id\",\"serial\":\"0123aa00000000cc01\",\"identityPublicKey\":\"$(cat "$T/k1.spki")\"}"
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x2","serial":"0123aa00000000cc01","identityPublicKey":"not base64!"}'
req 400 POST /v1/devices "$ATOK" $J -d '{"deviceId":"x3","serial":"0123aa00000000cc01","owner":"a\nb","identityPublicKey":"AAAA"}'
req 415 POST /v1/devices "$ATOK" -H 'Content-Type: text/plain' -d '{}'
req 400 POST /v1/devices "$ATOK" $J -d "{\"deviceId\":\"x4\",\"serial\":\"0123aa00000000cc04\",\"hub\":\"nope\",\"identityPublicKey\":\"$(cat "$T/k3.spki")\"}"
jqt '.error.message | contains("hub")'
req 409 POST /v1/devices "$ATOK" $J -d "{\"deviceId\":\"new-1\",\"serial\":\"0123ABCDEF01234599\",\"identityPublicKey\":\"$(cat "$T/k3.spki")\"}"
req 409 POST /v1/devices "$ATOK" $J -d "{\"deviceId\":\"new-2\",\"serial\":\"0123ABCDEF01234501\",\"identityPublicKey\":\"$(cat "$T/k3.spki")\"}"
head -c 70000 /dev/zero | tr '\0' ' ' > "$T/70k"
req 413 POST /v1/devices "$ATOK" $J --data-binary "@$T/70k"
req 413 POST /v1/devices "$ATOK" $J -H 'Transfer-Encoding: chunked' --data-binary "@$T/70k"
head -c 70000000 /dev/zero > "$T/70m"
req 413 POST /v1/imports "$ATOK" -H 'Content-Type: text/csv' --data-binary "@$T/70m"
rm -f "$T/70m" "$T/20m"
req 200 GET /v1 "$RTOK"

# ---- imports that apply nothing, and skipBad
printf 'deviceId,serial,identityPublicKey\r\nimp-3,0123aa00000000bb03,%s\r\nimp-1,0123aa00000000bb04,%s\r\n' "$(cat "$T/k1.spki")" "$(cat "$T/k1.spki")" > "$T/bad.csv"
req 422 POST /v1/imports "$ATOK" -H 'Content-Type: text/csv' --data-binary "@$T/bad.csv"
jqt '.imported == 0 and .skipped == 2 and (.errors | length) >= 1 and .error.code == "invalid"'
req 404 GET /v1/devices/imp-3 "$RTOK"
req 415 POST /v1/imports "$ATOK" -H 'Content-Type: application/xml' --data-binary "@$T/bad.csv"
req 409 POST /v1/imports "$ATOK" -H 'Content-Type: application/json' -d '[]'
req 400 POST '/v1/imports?skipBad=maybe' "$ATOK" -H 'Content-Type: text/csv' --data-binary "@$T/bad.csv"
req 400 POST '/v1/imports?owner=x' "$ATOK" -H 'Content-Type: text/csv' --data-binary "@$T/bad.csv"

# ---- unknown ids, SQL-looking strings, traversal, bad parameters
req 404 GET /v1/devices/no-such-device "$RTOK"
req 404 GET /v1/devices/no-such-device/certificates "$RTOK"
req 404 GET /v1/certificates/abcdef "$RTOK"
req 404 GET "/v1/devices/x'OR'1'='1" "$RTOK"
req 400 GET "/v1/devices/x'%3BDROP%20TABLE%20devices--" "$RTOK"
req 400 GET "/v1/devices/1%20OR%201%3D1" "$RTOK"
req 200 GET "/v1/devices?owner=x'%20OR%20'1'%3D'1" "$RTOK" && jqt '(.items | length) == 0 and .nextCursor == null'
req 200 GET "/v1/devices?batch=%25" "$RTOK" && jqt '(.items | length) == 0'
req 200 GET /v1/devices/dev-0000001 "$RTOK"
req 400 GET '/v1/devices/%2e%2e' "$RTOK"
req 400 GET '/v1/devices/..%2F..%2Fetc%2Fpasswd' "$RTOK"
req 400 GET '/v1/devices/a%00b' "$RTOK"
req 400 GET '/v1/devices/a%zz' "$RTOK"
req 404 GET '/v1/devices/../health' "$RTOK"
req 400 GET "/v1/devices/$(head -c 300 /dev/zero | tr '\0' a)" "$RTOK"
req 400 GET "/v1/devices/$(head -c 200 /dev/zero | tr '\0' a)" "$RTOK"
req 400 GET '/v1/certificates/xyz' "$RTOK"
req 400 GET '/v1/certificates/..' "$RTOK"
req 404 GET /v1/nothing "$RTOK"
req 405 DELETE /v1/health "$ATOK"
req 400 GET '/v1/devices?colour=red' "$RTOK"
req 400 GET '/v1/devices?limit=0' "$RTOK"
req 400 GET '/v1/devices?limit=1001' "$RTOK"
req 400 GET '/v1/devices?limit=ten' "$RTOK"
req 400 GET '/v1/devices?limit=5&limit=6' "$RTOK"
req 400 GET '/v1/devices?status=happy' "$RTOK"
req 400 GET '/v1/devices?expiringWithin=soon' "$RTOK"
req 400 GET '/v1/devices?cursor=zzz' "$RTOK"
jqt '.error.code == "bad_cursor"'
req 400 GET '/v1/devices?cursor=d%27%3B' "$RTOK"
req 400 GET '/v1/expiry?bucket=month' "$RTOK"
req 400 GET '/v1/expiry?count=0' "$RTOK"
req 400 GET '/v1/audit?after=-1' "$RTOK"
req 400 GET '/v1/audit?deviceId=a%20b' "$RTOK"
req 200 GET '/v1/devices?status=active&owner=owner-3&batch=batch-3&limit=1000' "$RTOK" && jqt '(.items | length) == 1000 and all(.items[]; .owner == "owner-3")'
req 200 GET '/v1/devices?expiringWithin=2d&limit=1000' "$RTOK" && jqt '(.items | length) == 500 and .nextCursor == null'
req 200 GET '/v1/devices?status=revoked' "$RTOK" && jqt '(.items | length) == 0'

# ---- 100,000 devices paged to the end: each exactly once
: > "$T/ids"
cur=""; pages=0
while :; do
	if [ -n "$cur" ]; then q="?limit=1000&cursor=$cur"; else q="?limit=1000"; fi
	curl -s -H "Authorization: Bearer $RTOK" "$URL/v1/devices$q" > "$T/page" || { fail "page $pages"; break; }
	jq -r '.items[].deviceId' "$T/page" >> "$T/ids"
	cur=$(jq -r '.nextCursor // empty' "$T/page")
	pages=$((pages + 1))
	[ -z "$cur" ] && break
	[ $pages -gt 200 ] && { fail "paging does not end"; break; }
done
total=$(grep -c '^dev-' "$T/ids"); uniq=$(grep '^dev-' "$T/ids" | sort -u | wc -l)
expect=$(seq -f 'dev-%07g' 0 99999 | sort | md5sum)
got=$(grep '^dev-' "$T/ids" | sort | md5sum)
if [ "$total" = 100000 ] && [ "$uniq" = 100000 ] && [ "$expect" = "$got" ]; then
	ok "100000 devices in $pages pages, each exactly once"
else
	fail "paging: $total rows, $uniq distinct, in $pages pages"
fi

# ---- health: 200 when all is well (api-testd has no signer), 503 when a
# component is down
kill "$PID_main"; wait "$PID_main" 2>/dev/null
start well "$T/main.conf" || fail "start api-testd"
URL=http://127.0.0.1:$PORT
req 200 GET /v1/health "$RTOK" && jqt '.status == "ok" and .components.database.ok and .components.api.ok'
kill "$PID_well"; wait "$PID_well" 2>/dev/null
start sick "$T/main.conf" --health "signer=signer exited; restarting" || fail "start sick"
URL=http://127.0.0.1:$PORT
req 503 GET /v1/health "$RTOK" && jqt '.status == "degraded" and .components.signer.ok == false and .components.signer.reason == "signer exited; restarting"'
kill "$PID_sick"; wait "$PID_sick" 2>/dev/null

# ---- start-up refusals
refuse() {	# refuse WHAT PATTERN: api-testd must fail with PATTERN in its log
	if "$B/tests/api-testd" -c "$T/r.conf" 2>"$T/r.err"; then
		fail "$1: started"
	elif grep -q "$2" "$T/r.err"; then ok "$1: refused"
	else fail "$1: no \"$2\" in: $(cat "$T/r.err")"; fi
}
conf "$T/r.conf" 0.0.0.0:0
refuse "non-loopback listen" "not loopback"
conf "$T/r.conf" 0.0.0.0:0 "allow_remote = true"
"$B/tests/api-testd" -c "$T/r.conf" --port-file "$T/remote.port" 2>"$T/remote.err" & rp=$!; PIDS="$PIDS $rp"
sleep 1; [ -s "$T/remote.port" ] && ok "allow_remote lets 0.0.0.0 start" || fail "allow_remote"
kill $rp; wait $rp 2>/dev/null
cp "$T/tokens" "$T/tokens.good"
printf 'read %s\nsuperuser %s\n' "$(sha a)" "$(sha b)" > "$T/tokens"
conf "$T/r.conf" 127.0.0.1:0
refuse "unknown role" "tokens:2:"
printf 'read %s\nadmin 1234\n' "$(sha a)" > "$T/tokens"
refuse "short hash" "tokens:2:"
printf 'read %s extra\n' "$(sha a)" > "$T/tokens"
refuse "trailing garbage" "tokens:1:"
cp "$T/tokens.good" "$T/tokens"; chmod 644 "$T/tokens"
refuse "world-readable tokens file" "tokens"
chmod 600 "$T/tokens"

# ---- Unix-socket listener
conf "$T/u.conf" "unix:$T/api.sock"
start unix "$T/u.conf" || fail "start on unix socket"
i=0; while [ ! -S "$T/api.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(stat -c %a "$T/api.sock")" = 660 ] && ok "api socket mode 660" || fail "api socket mode"
c=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/api.sock" -H "Authorization: Bearer $RTOK" http://x/v1/devices/dev-0000001)
[ "$c" = 200 ] && ok "request over the unix socket" || fail "unix socket: $c"

# under --enable-sanitizers, a server's report lands in its stderr
for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
if grep -l 'Sanitizer\|runtime error' "$T"/*.err 2>/dev/null; then
	fail "sanitizer reports in the servers' logs"; grep -h -A5 'Sanitizer\|runtime error' "$T"/*.err | head -40
fi
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
