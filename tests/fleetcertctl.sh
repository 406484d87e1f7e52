#!/bin/sh
# fleetcertctl.sh — fleetcertctl against tests/api-testd: every subcommand
# in table and --json mode, over TCP and a Unix socket, the config file,
# exit codes (0 ok, 1 failure, 2 usage), and the man page (mandoc -T lint).
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
printf 'read %s\nadmin %s\n' "$(sha "$RTOK")" "$(sha "$ATOK")" > "$T/tokens"
printf '%s\n' "$RTOK" > "$T/read.tok"; printf '%s\n' "$ATOK" > "$T/admin.tok"
chmod 600 "$T/tokens" "$T/read.tok" "$T/admin.tok"
"$B/tests/api-seed" "$T/db.sqlite" 2500 || exit 1
printf '[database]\npath = %s\n[api]\nlisten = 127.0.0.1:0\ntokens_file = %s\n' "$T/db.sqlite" "$T/tokens" > "$T/tcp.conf"
printf '[database]\npath = %s\n[api]\nlisten = unix:%s\ntokens_file = %s\n' "$T/db.sqlite" "$T/api.sock" "$T/tokens" > "$T/unix.conf"
"$B/tests/api-testd" -c "$T/tcp.conf" --port-file "$T/port" 2>"$T/tcp.err" & PIDS="$PIDS $!"
"$B/tests/api-testd" -c "$T/unix.conf" 2>"$T/unix.err" & PIDS="$PIDS $!"
i=0; while { [ ! -s "$T/port" ] || [ ! -S "$T/api.sock" ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
URL=http://127.0.0.1:$(cat "$T/port")
CTL="$B/fleetcertctl"
export HOME="$T"	# no user config file from the machine running the test
unset FLEETCERTCTL_CONFIG

# run RC ARGS...: runs fleetcertctl, checks its exit code; output in $T/out
run() {
	want=$1; shift
	"$CTL" "$@" >"$T/out" 2>"$T/err"; rc=$?
	if [ "$rc" != "$want" ]; then
		fail "fleetcertctl $*: exit $rc, want $want: $(head -c 300 "$T/err")"
		return 1
	fi
	ok "fleetcertctl $* -> $rc"
}
has() { grep -q -- "$1" "$T/out" || { fail "output lacks \"$1\": $(head -c 300 "$T/out")"; return 1; }; }
jqo() { jq -e "$1" "$T/out" >/dev/null 2>&1 || { fail "JSON fails $1: $(head -c 300 "$T/out")"; return 1; }; }

R="--api $URL --token-file $T/read.tok"
A="--api $URL --token-file $T/admin.tok"

# status
run 0 $R status && has "database  *yes"
run 0 $R --json status && jqo '.status == "ok"'
run 0 $R status --json && jqo '.components.api.ok'
# list
run 0 $R list && [ "$(grep -c '^dev-' "$T/out")" = 2500 ] || fail "list: not 2500 rows"
has "DEVICE  *SE-SERIAL"
run 0 $R --json list && jqo 'length == 2500 and ([.[].deviceId] | unique | length) == 2500'
run 0 $R list --owner owner-3 --limit 7 && [ "$(grep -c '^dev-' "$T/out")" = 7 ] || fail "list --limit"
run 0 $R --json list --expiring-within 3d && jqo 'length == 21 and all(.[]; (.certificate.notAfter | fromdateiso8601) < (now + 3*86400))'
run 0 $R --json list --status revoked && jqo 'length == 0'
run 1 $R list --status happy
run 2 $R list --bogus
run 2 $R list extra
# show, certs
run 0 $R show dev-0000007 && has "owner  *owner-7" && has "certificate.status  *active"
run 0 $R --json show dev-0000007 && jqo '.deviceId == "dev-0000007"'
run 1 $R show no-such-device && grep -q "no such device" "$T/err" || fail "show: message"
run 1 $R show "../etc"
run 2 $R show
run 0 $R certs dev-0000007 && has "SERIAL  *STATUS" && has "active"
run 0 $R --json certs dev-0000007 && jqo '(.items | length) == 1'
run 1 $R certs no-such-device
# expiry
run 0 $R expiry && has "expired" && has "|#"
[ "$(grep -c '|' "$T/out")" = 31 ] || fail "expiry: not 31 lines"
run 0 $R expiry --week --count 5 && [ "$(grep -c '|' "$T/out")" = 6 ] || fail "expiry --week"
run 0 $R --json expiry --week && jqo '.bucket == "week" and (.buckets | length) == 26'
run 2 $R expiry --count 0
# import (CSV), as admin; the read role is refused
openssl ecparam -name prime256v1 -genkey -noout -out "$T/k.pem" 2>/dev/null
spki=$(openssl ec -in "$T/k.pem" -pubout -outform DER 2>/dev/null | base64 -w0)
printf 'deviceId,serial,identityPublicKey,owner\nctl-1,0123bb00000000cc01,%s,ops\n' "$spki" > "$T/one.csv"
run 1 $R import "$T/one.csv" && grep -q "HTTP 403" "$T/err" || fail "import as read: not 403"
run 0 $A import "$T/one.csv" && has "imported 1, skipped 0"
run 1 $A import "$T/one.csv" && has "already in the inventory"
run 1 $A --json import "$T/one.csv" && jqo '.imported == 0 and (.errors | length) == 1'
printf 'deviceId,serial,identityPublicKey\nctl-2,0123bb00000000cc02,%s\nctl-1,0123bb00000000cc01,%s\n' "$spki" "$spki" > "$T/two.csv"
run 1 $A import "$T/two.csv"
run 0 $A --json import --skip-bad "$T/two.csv" && jqo '.imported == 0 or .imported == 1'
# the progress bar: on a terminal only (script(1) gives it one)
if command -v script >/dev/null 2>&1; then
	script -qec "$CTL $A import --skip-bad $T/two.csv" /dev/null > "$T/tty.out" 2>&1
	grep -q 'upload \[#*\] 100%' "$T/tty.out" && ok "progress bar on a terminal" || fail "no progress bar on a terminal: $(cat "$T/tty.out")"
	"$CTL" $A import --skip-bad "$T/two.csv" > /dev/null 2> "$T/notty.err"
	grep -q 'upload \[' "$T/notty.err" && fail "progress bar without a terminal" || ok "no progress bar without a terminal"
fi
run 1 $A import "$T/missing.csv"
run 2 $A import
# audit
run 0 $R audit --limit 3 && [ "$(grep -c '^[0-9]' "$T/out")" = 3 ] || fail "audit --limit"
run 0 $R audit --device ctl-1 && has "api:"
run 0 $R --json audit --device ctl-1 && jqo '.items[0].action == "device.create"'
run 0 $R audit verify && has "intact"
run 0 $R --json audit verify && jqo '.ok == true'
run 2 $R audit verify now
run 1 $R audit --after x
# the Unix socket, and a config file
run 0 --socket "$T/api.sock" --token-file "$T/read.tok" show dev-0000001 && has "dev-0000001"
printf '# defaults\nsocket = %s\ntoken_file = %s\n' "$T/api.sock" "$T/read.tok" > "$T/ctl.conf"
run 0 --config "$T/ctl.conf" status
FLEETCERTCTL_CONFIG=$T/ctl.conf run 0 show dev-0000002
mkdir -p "$T/.config/fleetcert"; cp "$T/ctl.conf" "$T/.config/fleetcert/fleetcertctl.conf"
run 0 certs dev-0000002
run 0 --api "$URL" --token-file "$T/read.tok" status
rm "$T/.config/fleetcert/fleetcertctl.conf"
printf 'colour = red\n' > "$T/bad.conf"
run 1 --config "$T/bad.conf" status && grep -q "bad.conf:1" "$T/err" || fail "bad config: no FILE:LINE"
# failures and usage
run 1 --api "$URL" status && grep -q "HTTP 401" "$T/err" || fail "no token: not 401"
run 1 --api http://127.0.0.1:1 --token-file "$T/read.tok" status
chmod 644 "$T/read.tok"; run 1 $R status; chmod 600 "$T/read.tok"
run 2 $R
run 2 $R frobnicate
run 2 --api "$URL" --socket "$T/api.sock" status
run 0 --help && has "Exit status"
run 0 --version

# the real daemon: fleetcertd serves the same API (no [ca] here, so its
# signer is reported down and status exits 1)
printf '[database]\npath = %s\n[api]\nlisten = unix:%s\ntokens_file = %s\n' "$T/db.sqlite" "$T/fcd.sock" "$T/tokens" > "$T/fcd.conf"
"$B/fleetcertd" -c "$T/fcd.conf" 2>"$T/fcd.log" & fpid=$!; PIDS="$PIDS $fpid"
i=0; while [ ! -S "$T/fcd.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
F="--socket $T/fcd.sock --token-file $T/read.tok"
run 1 $F status && has "signer  *NO"
run 0 $F list --limit 5 && [ "$(tail -n +2 "$T/out" | wc -l)" = 5 ] || fail "fleetcertd list"
run 0 $F --json show dev-0000001 && jqo '.deviceId == "dev-0000001"'
run 0 $F audit verify
kill "$fpid"; wait "$fpid" 2>/dev/null

# the man page
if command -v mandoc >/dev/null 2>&1; then
	if mandoc -T lint -W warning "$top_srcdir/doc/fleetcertctl.1" > "$T/lint" 2>&1; then ok "mandoc -T lint clean"
	else fail "mandoc lint: $(cat "$T/lint")"; fi
else
	echo "skip: mandoc not installed"
fi
for c in status list show certs import expiry audit; do
	grep -q "^\.It Cm $c" "$top_srcdir/doc/fleetcertctl.1" || fail "man page lacks $c"
done

# under --enable-sanitizers, a server's report lands in its stderr
for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
if grep -l 'Sanitizer\|runtime error' "$T"/*.err 2>/dev/null; then
	fail "sanitizer reports in the servers' logs"; grep -h -A5 'Sanitizer\|runtime error' "$T"/*.err | head -40
fi
echo "$fails failure(s)"
[ "$fails" -eq 0 ]
