#!/bin/sh
# fleetcertd's life cycle, seen from outside as systemd would see it:
# READY=1, STATUS= and WATCHDOG=1 on a notify socket the test owns; SIGHUP
# applies a good configuration and refuses a bad one (the old one keeps
# running); SIGTERM stops within 5 s with exit 0; a dead signer supervisor
# makes it exit 1 (for Restart=on-failure); a second daemon on the same
# database is refused; --version, usage errors, --sweep's configuration
# error (the sweep itself: tests/revoke-*.sh).
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
D="$top_builddir/fleetcertd"
T=$(mktemp -d /tmp/fc-life.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

# wait_for FILE PATTERN SECONDS: true once grep finds PATTERN in FILE.
wait_for() {
	i=0
	while [ "$i" -lt $(($3 * 10)) ]; do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# now_ms: wall clock in ms (for the 5 s stop bound only; generous).
now_ms() { date +%s%3N; }

# The real pieces: a test CA for the signer, an operator API on a Unix
# socket with one admin token, an enrolment listener on a free port.
sh "$top_srcdir/tests/mkca.sh" "$T/ca" > /dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/tls.key" -out "$T/tls.pem" -subj /CN=127.0.0.1 -days 2 \
	2> /dev/null
chmod 600 "$T/tls.key"
TOKEN=lifecycle-test-token-0123456789
printf 'admin %s\n' "$(printf '%s' "$TOKEN" | openssl dgst -sha256 -r | cut -d' ' -f1)" \
	> "$T/tokens"
chmod 600 "$T/tokens"

write_conf() {	# write_conf LEVEL [EXTRA LINE]
	{
		printf '[daemon]\nlog_level = %s\n' "$1"
		printf '[database]\npath = %s/fc.db\n' "$T"
		printf '[renewal]\ninterval_seconds = 60\n'
		[ $# -gt 1 ] && printf '%s\n' "$2"
		printf '[ca]\ncertificate = %s/ca/intermediate.pem\n' "$T"
		printf 'chain = %s/ca/chain.pem\nkey = %s/ca/intermediate.key\n' "$T" "$T"
		printf '[api]\nlisten = unix:%s/api.sock\ntokens_file = %s/tokens\n' "$T" "$T"
		printf '[enrol]\nlisten = 127.0.0.1:0\n'
		printf 'tls_certificate = %s/tls.pem\ntls_key = %s/tls.key\n' "$T" "$T"
	} > "$T/fc.conf.new"
	mv "$T/fc.conf.new" "$T/fc.conf"
}

# --- command line ---
"$D" --version > "$T/v" 2>&1 && grep -q '^fleetcertd [0-9]' "$T/v" &&
	pass "--version" || fail "--version: $(cat "$T/v")"
"$D" --sweep -c "$T/missing.conf" > "$T/s" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q 'missing.conf: cannot open' "$T/s" &&
	pass "--sweep with a missing configuration: exit 2 naming the file" ||
	fail "--sweep: rc $rc: $(cat "$T/s")"
"$D" --json > "$T/s" 2>&1
[ $? -eq 2 ] && pass "--json alone is a usage error" || fail "--json alone accepted"
"$D" --no-such-option > "$T/s" 2>&1
[ $? -eq 2 ] && grep -q usage "$T/s" && pass "unknown option: usage, exit 2" ||
	fail "unknown option"
"$D" -c "$T/missing.conf" > "$T/s" 2>&1
[ $? -eq 1 ] && grep -q "missing.conf: cannot open" "$T/s" &&
	pass "missing config: exit 1 naming the file" || fail "missing config: $(cat "$T/s")"

# --- start under a fake systemd notify socket with a 1 s watchdog ---
python3 "$top_srcdir/tests/notify-reader.py" "$T/notify.sock" "$T/notify.log" &
pids="$pids $!"
i=0
while [ ! -S "$T/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -S "$T/notify.sock" ] || { fail "notify reader did not start"; exit 1; }

write_conf info
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1000000 \
	"$D" -c "$T/fc.conf" > "$T/out" 2> "$T/log" &
dpid=$!
pids="$pids $dpid"

if wait_for "$T/notify.log" 'READY=1' 20; then
	pass "READY=1 sent"
else
	fail "no READY=1 on the notify socket"; cat "$T/log"
fi
grep 'READY=1' "$T/notify.log" | head -n 1 |
	grep -q 'STATUS=certificates: 0 active, 0 pending, 0 delivered, 0 expired; signer: up' &&
	pass "STATUS= with the backlog sent with READY=1" ||
	fail "no STATUS= with READY=1: $(cat "$T/notify.log")"
# READY=1 came after every listener was up: the log lines of the signer,
# the API and the enrolment listener precede "ready", and both answer.
awk '/signer: up, CA key loaded/ { s = NR } /httpd api: listening/ { a = NR }
	/enrol: listening/ { e = NR } /info: ready/ { r = NR }
	END { exit !(s && a && e && r && s < r && a < r && e < r) }' "$T/log" &&
	pass "signer, API and enrolment listener up before READY" ||
	fail "start order: $(cat "$T/log")"
code=$(curl -s -o "$T/health" -w '%{http_code}' --unix-socket "$T/api.sock" \
	-H "Authorization: Bearer $TOKEN" http://fleetcert/v1/health)
[ "$code" = 200 ] && grep -q '"status": *"ok"' "$T/health" &&
	grep -q '"signer"' "$T/health" &&
	pass "operator API answers /v1/health: ok with the signer" ||
	fail "API health: $code $(cat "$T/health")"
eport=$(sed -n 's/.*enrol: listening on .* (port \([0-9]*\)).*/\1/p' "$T/log" | head -n 1)
code=$(curl -s -k -o "$T/ch" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data '{"serial":"0123a1b2c3d4e5f601"}' "https://127.0.0.1:$eport/enrol/v1/challenge")
[ "$code" = 200 ] && grep -q nonce "$T/ch" &&
	pass "enrolment endpoint answers a challenge on port $eport" ||
	fail "enrol challenge: $code $(cat "$T/ch")"
# At a 1 s watchdog the loop pings every 0.5 s: three pings within 5 s.
if wait_for "$T/notify.log" 'WATCHDOG=1' 10; then
	sleep 2
	n=$(grep -c '^WATCHDOG=1$' "$T/notify.log")
	[ "$n" -ge 3 ] && pass "WATCHDOG=1 pinged ($n times)" ||
		fail "only $n WATCHDOG=1 pings in over 2 s"
else
	fail "no WATCHDOG=1"
fi

# --- one writer per database ---
"$D" -c "$T/fc.conf" > "$T/out2" 2> "$T/log2"
rc=$?
[ "$rc" -ne 0 ] && grep -q 'in use by another fleetcertd' "$T/log2" &&
	pass "second daemon on the same database refused (exit $rc)" ||
	fail "second daemon: rc $rc: $(cat "$T/log2")"
kill -0 "$dpid" 2>/dev/null && pass "first daemon still running" ||
	fail "first daemon died"

# --- SIGHUP with a good configuration; meanwhile the enrolment TLS
# certificate was replaced in place, which only a restart applies ---
write_conf debug
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/tls2.key" -out "$T/tls.pem" -subj /CN=127.0.0.1 -days 2 \
	2> /dev/null
kill -HUP "$dpid"
wait_for "$T/log" 'reload: configuration .* applied' 10 &&
	pass "SIGHUP applies a good configuration" || fail "good reload not applied"
grep -q 'reload: the file of \[enrol\] tls_certificate differs from the one loaded at start-up' "$T/log" &&
	! grep -q 'reload: the file of \[ca\]' "$T/log" &&
	pass "a certificate replaced in place is named as needing a restart" ||
	fail "changed-file warning: $(grep 'reload:' "$T/log")"
cp "$T/tls2.key" "$T/tls.key"		# a matching pair for later starts
wait_for "$T/notify.log" 'RELOADING=1' 5 &&
	pass "RELOADING=1 sent" || fail "no RELOADING=1"

# --- SIGHUP with a bad configuration: refused, the old one keeps running.
# The bad file would also lower the log level to error; if it were applied
# the info lines at stop would be missing. ---
write_conf error 'no_such_key = 1'
kill -HUP "$dpid"
if wait_for "$T/log" 'reload: refused' 10; then
	grep 'reload: refused' "$T/log" | grep -q "fc.conf:7: \[renewal\] no_such_key: unknown key" &&
		pass "bad reload refused with file:line:key" ||
		fail "bad reload message: $(grep 'reload: refused' "$T/log")"
else
	fail "bad reload not refused"
fi
kill -0 "$dpid" 2>/dev/null && pass "daemon survives a bad reload" ||
	fail "daemon died on a bad reload"

# --- SIGTERM: exit 0 within 5 s ---
t0=$(now_ms)
kill -TERM "$dpid"
i=0
while kill -0 "$dpid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$dpid"
rc=$?
t1=$(now_ms)
pids=$(echo "$pids" | sed "s/ $dpid//")
[ "$rc" -eq 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM: exit $rc"
[ $((t1 - t0)) -lt 5000 ] && pass "SIGTERM: stopped in $((t1 - t0)) ms" ||
	fail "SIGTERM: took $((t1 - t0)) ms"
grep -q 'STOPPING=1' "$T/notify.log" && pass "STOPPING=1 sent" || fail "no STOPPING=1"
grep -q 'info: stopped' "$T/log" &&
	pass "old log level still in force after the refused reload" ||
	fail "the refused configuration was applied (no info line at stop)"

# --- a good reload that lowers the level takes effect ---
write_conf info
"$D" -c "$T/fc.conf" > "$T/out3" 2> "$T/log3" &
dpid=$!
pids="$pids $dpid"
wait_for "$T/log3" 'ready' 20 || fail "restart not ready"
write_conf error
kill -HUP "$dpid"
sleep 1
kill -INT "$dpid"
wait "$dpid"
rc=$?
pids=$(echo "$pids" | sed "s/ $dpid//")
[ "$rc" -eq 0 ] && pass "SIGINT: exit 0" || fail "SIGINT: exit $rc"
grep -q 'info: stopped' "$T/log3" &&
	fail "reload to log_level error had no effect" ||
	pass "reload to log_level error took effect"

# --- socket activation (fleetcertd.socket): the API socket comes from
# systemd-socket-activate, which starts the daemon on the first connection
# and passes the socket as LISTEN_FDS with the name "api" ---
if command -v systemd-socket-activate > /dev/null; then
	write_conf info
	sed -i "s|^listen = unix:.*|listen = systemd:api|" "$T/fc.conf"
	rm -f "$T/api.sock"
	systemd-socket-activate -l "$T/act.sock" --fdname=api \
		"$D" -c "$T/fc.conf" > "$T/out6" 2> "$T/log6" &
	apid=$!
	pids="$pids $apid"
	i=0
	while [ ! -S "$T/act.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	code=$(curl -s -m 20 -o "$T/health2" -w '%{http_code}' --unix-socket "$T/act.sock" \
		-H "Authorization: Bearer $TOKEN" http://fleetcert/v1/health)
	[ "$code" = 200 ] && wait_for "$T/log6" 'listening on systemd:api' 10 &&
		pass "socket activation: the API answers on the passed socket" ||
		fail "socket activation: $code $(cat "$T/log6")"
	kill -TERM "$apid" 2>/dev/null
	wait "$apid" 2>/dev/null
	pids=$(echo "$pids" | sed "s/ $apid//")
	sleep 0.5
else
	echo "skip: no systemd-socket-activate"
fi

# --- the signer's supervisor dies (kill -9): nothing could restart the
# worker any more, so the daemon exits 1 within the health poll (5 s) for
# the service manager to restart it; the worker does not outlive it ---
write_conf info
rm -f "$T/api.sock"
"$D" -c "$T/fc.conf" > "$T/out7" 2> "$T/log7" &
dpid=$!
pids="$pids $dpid"
if wait_for "$T/log7" 'signer: up' 10 && wait_for "$T/log7" 'listening on unix:' 10; then
	sup=$(pgrep -P "$dpid" | head -1)
	wrk=$(pgrep -P "$sup" | head -1)
	kill -9 "$sup"
	t0=$(now_ms)
	i=0
	while kill -0 "$dpid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
	wait "$dpid"
	rc=$?
	pids=$(echo "$pids" | sed "s/ $dpid//")
	ms=$(($(now_ms) - t0))
	[ "$rc" -eq 1 ] && [ "$ms" -lt 12000 ] &&
		grep -q "signer: supervisor $sup killed by signal 9" "$T/log7" &&
		grep -q 'supervisor is gone; stopping' "$T/log7" &&
		pass "signer supervisor killed: daemon exited 1 after $ms ms" ||
		fail "signer supervisor killed: rc $rc after $ms ms: $(cat "$T/log7")"
	i=0
	while [ -n "$wrk" ] && kill -0 "$wrk" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1; i=$((i + 1))
	done
	[ -n "$wrk" ] && ! kill -0 "$wrk" 2>/dev/null &&
		pass "the signer worker ended with the daemon" ||
		fail "signer worker ${wrk:-?} still running"
else
	fail "daemon for the supervisor test did not start: $(cat "$T/log7")"
fi

# --- a CA key that does not match: the signer refuses, nothing starts,
# no READY=1 ---
sh "$top_srcdir/tests/mkca.sh" "$T/ca2" > /dev/null
cp "$T/ca2/intermediate.key" "$T/ca/other.key"
write_conf info
sed -i "s|^key = .*|key = $T/ca/other.key|" "$T/fc.conf"
: > "$T/notify.log"
NOTIFY_SOCKET="$T/notify.sock" "$D" -c "$T/fc.conf" > "$T/out5" 2> "$T/log5"
rc=$?
[ "$rc" -eq 1 ] && grep -q 'signer: cannot start' "$T/log5" &&
	! grep -q 'READY=1' "$T/notify.log" && [ ! -S "$T/api.sock" ] &&
	pass "mismatched CA key: exit 1, no READY=1, no API socket" ||
	fail "mismatched CA key: rc $rc: $(cat "$T/log5") / $(cat "$T/notify.log")"

# --- a world-readable secret keeps the daemon from starting ---
printf 'HostName=x;SharedAccessKeyName=y;SharedAccessKey=eg==\n' > "$T/hub.conn"
chmod 644 "$T/hub.conn"
write_conf info "[hub]
connection_string_file = $T/hub.conn"
"$D" -c "$T/fc.conf" > "$T/out4" 2> "$T/log4"
rc=$?
[ "$rc" -eq 1 ] && grep -q 'accessible to others' "$T/log4" &&
	! grep -q 'SharedAccessKey=' "$T/log4" &&
	pass "world-readable secret refused at start-up, content not logged" ||
	fail "world-readable secret: rc $rc: $(cat "$T/log4")"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
exit 0
