#!/bin/sh
# enrol-daemon.sh — the happy path against fleetcertd itself: the daemon
# starts its signer and its enrolment listener (enrol_start), and
# fleetcert-device re-enrols through it. Then a reserved re-enrolment row is
# left behind as a crash would leave it, and the daemon's next start voids
# it (start-up recovery); the device re-enrols again.
set -eu
. "$top_srcdir/tests/enrol-lib.sh"
enrol_setup
D=$top_builddir/fleetcertd
DEV=$top_builddir/fleetcert-device
enrol_device dev-d 0123a1b2c3d4e5f631
# The daemon logs at info: it prints the port it bound.
sed -i 's/^log_level = .*/log_level = info/' "$CONF"
# The operator API must be configured too: a Unix socket, one token.
printf 'read %s\n' "$(printf tok | openssl dgst -sha256 -r | cut -d' ' -f1)" \
	> "$T/tokens"
chmod 600 "$T/tokens"
printf '[api]\nlisten = unix:%s/api.sock\ntokens_file = %s/tokens\n' "$T" "$T" \
	>> "$CONF"

daemon_start() {
	# Truncate here, not in the background job's redirection: the loop
	# below must never read the previous run's log.
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
}
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
trap '[ -n "$DPID" ] && kill $DPID 2>/dev/null; enrol_cleanup' EXIT INT TERM

daemon_start
"$DEV" --url "$URL" --root "$ROOT" --serial 0123a1b2c3d4e5f631 \
	--key "$T/dev-d.key" --out "$T/d1.pem" --chain-out "$T/chain.pem" \
	> /dev/null || { cat "$T/d.log" >&2; fail "re-enrol through fleetcertd"; }
openssl verify -CAfile "$ROOT" -untrusted "$T/chain.pem" "$T/d1.pem" \
	> /dev/null || fail "verify"
daemon_stop

# A crash between reserving and answering leaves a reserved row.
sql "INSERT INTO certificates (serial, device_id, status, issued_by, \
	created_at, updated_at) VALUES ('00aa00aa00aa00aa00aa00aa00aa00aa', \
	'dev-d', 'reserved', 'reenrolment', 0, 0)"
daemon_start
# (The renewal module's recovery, which runs first, voids every reserved
# row whatever issued it; enrol_recover then finds nothing left. Either way
# the row must end voided.)
[ "$(sql "SELECT status || ' ' || revocation_reason FROM certificates \
	WHERE serial = '00aa00aa00aa00aa00aa00aa00aa00aa'")" = "revoked 4" ] ||
	{ sql "SELECT serial, status, revocation_reason FROM certificates" >&2
	  grep -i "void\|reserv\|error" "$T/d.log" >&2
	  fail "reserved row not voided"; }
"$DEV" --url "$URL" --root "$ROOT" --serial 0123a1b2c3d4e5f631 \
	--key "$T/dev-d.key" --out "$T/d2.pem" > /dev/null ||
	fail "re-enrol after recovery"
[ "$(sql "SELECT count(*) FROM certificates WHERE device_id = 'dev-d' AND \
	status IN ('active','delivered','pending')")" = 1 ] ||
	fail "not exactly one live certificate"
daemon_stop
echo "enrol-daemon.sh: ok"
