# renew-lib.sh — sourced by the renewal scenario tests (renew-*.sh): the
# real fleetcert-hubsim over TLS with a generated fleet, the real
# fleetcertd (signer, renewal, delivery) on a database loaded from the
# fleet's factory CSV, and checks of what an outside observer sees.
#
#   renew_setup N GEN-ARGS...   PKI, fleet of N devices, simulator started
#   renew_conf [KEY=VALUE]...   writes $T/fc.conf (overrides in [section]
#                               key=value form, e.g. delivery.max_in_flight=8)
#   renew_daemon_start / renew_daemon_kill9 / renew_daemon_stop
#   renew_wait_done N SECONDS   until N deliveries are done
#   renew_check_all N           database + simulator + openssl checks
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
HUBSIM_DEFER_START=1
. "$top_srcdir/tests/start-hubsim.sh"
T="$HUBSIM_DIR/fc"
mkdir -p "$T"
DPID=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }
sql() { sqlite3 -cmd '.timeout 5000' "$T/fleet.db" "$1"; }

renew_cleanup() {
	renew_daemon_stop
	if [ "$fails" -ne 0 ] && [ -f "$T/daemon.log" ]; then
		echo "--- fleetcertd log (tail) ---"
		tail -n 40 "$T/daemon.log"
	fi
	hubsim_cleanup
}
trap renew_cleanup EXIT
trap 'exit 1' INT TERM

renew_setup() {
	n=$1
	shift
	hubsim_gen_fleet --count "$n" --out "$T/fixture.json" \
		--csv "$T/factory.csv" "$@" >"$T/gen.log" 2>&1 ||
		{ cat "$T/gen.log"; exit 1; }
	# Quotas: tier S3 (the daemon's own rates stay below it).
	hubsim_start --devices "$T/fixture.json" --tier S3 ||
		exit 1
	"$top_builddir/renew-tool" import "$T/fleet.db" "$T/factory.csv" \
		>"$T/import.log" 2>&1 || { cat "$T/import.log"; exit 1; }
	printf '%s\n' "$HUBSIM_CONN" > "$T/hub.conn"
	chmod 600 "$T/hub.conn"
	cp "$HUBSIM_INT_KEY" "$T/ca.key"
	chmod 600 "$T/ca.key"
	cat "$HUBSIM_INT_CERT" "$HUBSIM_ROOT_CERT" > "$T/chain.pem"
	# Operator API on a free port, one read token (for /metrics).
	API_TOKEN=$(openssl rand -hex 16)
	printf 'read %s\n' "$(printf '%s' "$API_TOKEN" | openssl dgst -sha256 -r |
		cut -d' ' -f1)" > "$T/api.tokens"
	chmod 600 "$T/api.tokens"
}

# renew_metrics: GET /metrics of the running daemon (port from its log).
renew_metrics() {
	port=$(sed -n 's/.*httpd api: listening on .* (port \([0-9]*\)).*/\1/p' \
		"$T/daemon.log" | tail -n 1)
	curl -sS -H "Authorization: Bearer $API_TOKEN" \
		"http://127.0.0.1:$port/metrics"
}

renew_conf() {
	{
		printf '[daemon]\nlog_level = %s\n' "${RENEW_LOG_LEVEL:-info}"
		printf '[database]\npath = %s/fleet.db\n' "$T"
		printf '[ca]\ncertificate = %s\nkey = %s/ca.key\n' \
			"$HUBSIM_INT_CERT" "$T"
		printf 'chain = %s/chain.pem\nvalidity_days = 365\n' "$T"
		printf '[hub]\nconnection_string_file = %s/hub.conn\n' "$T"
		printf 'ca_file = %s\nrate_per_second = %s\n' "$HUBSIM_CA" \
			"${RENEW_RATE:-200}"
		printf 'registry_per_minute = %s\n' "${RENEW_REGISTRY:-3000}"
		printf '[renewal]\ninterval_seconds = 1\nrenew_before_days = 30\n'
		printf 'jitter_days = 7\n'
		printf '[delivery]\nmethod_timeout_seconds = %s\n' \
			"${RENEW_METHOD_TIMEOUT:-5}"
		printf 'max_in_flight = %s\n' "${RENEW_IN_FLIGHT:-32}"
		printf 'retry_initial_seconds = 1\nretry_max_seconds = %s\n' \
			"${RENEW_RETRY_MAX:-4}"
		printf '[api]\nlisten = 127.0.0.1:0\ntokens_file = %s/api.tokens\n' \
			"$T"
	} > "$T/fc.conf"
}

renew_daemon_start() {
	"$top_builddir/fleetcertd" -c "$T/fc.conf" >>"$T/daemon.log" 2>&1 &
	DPID=$!
}

renew_daemon_kill9() {
	if [ -n "$DPID" ]; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		# The signer (supervisor and worker) notices its parent died.
		i=0
		while pgrep -f "fleetcertd -c $T/fc.conf" >/dev/null 2>&1 &&
		    [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		DPID=
	fi
}

renew_daemon_stop() {
	if [ -n "$DPID" ]; then
		kill "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		DPID=
	fi
}

# renew_wait_done N SECONDS: true once N deliveries reached step done.
renew_wait_done() {
	i=0
	while [ "$i" -lt "$2" ]; do
		d=$(sql "SELECT count(*) FROM deliveries WHERE step = 'done'" \
			2>/dev/null)
		[ "${d:-0}" -ge "$1" ] && return 0
		sleep 1
		i=$((i + 1))
	done
	echo "deliveries: $(sql "SELECT step, count(*) FROM deliveries GROUP BY step")"
	return 1
}

# What the database, the simulator and openssl say once a wave finished.
renew_check_all() {
	n=$1
	# Database: one renewal per device, active, its predecessor
	# superseded; no reservation left; every renewal audited.
	got=$(sql "SELECT count(*) FROM certificates WHERE issued_by = 'renewal' AND status = 'active'")
	[ "$got" -eq "$n" ] && pass "$n renewed certificates active" ||
		fail "active renewed certificates: $got, want $n"
	dup=$(sql "SELECT count(*) FROM (SELECT device_id FROM certificates WHERE issued_by = 'renewal' AND der IS NOT NULL GROUP BY device_id HAVING count(*) > 1)")
	[ "$dup" -eq 0 ] && pass "no device got two certificates" ||
		fail "$dup devices got more than one certificate"
	sup=$(sql "SELECT count(*) FROM certificates WHERE issued_by = 'import' AND status = 'superseded'")
	[ "$sup" -eq "$n" ] && pass "old certificates superseded" ||
		fail "superseded: $sup, want $n"
	res=$(sql "SELECT count(*) FROM certificates WHERE status = 'reserved' OR (status = 'revoked' AND der IS NOT NULL)")
	[ "$res" -eq 0 ] && pass "no reservation left, no issued certificate voided" ||
		fail "$res reserved or revoked-with-DER rows"
	aud=$(sql "SELECT count(*) FROM certificates c WHERE issued_by = 'renewal' AND der IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.serial = c.serial AND a.action = 'cert.issue')")
	[ "$aud" -eq 0 ] && pass "every issued certificate has its audit entry" ||
		fail "$aud certificates without cert.issue audit"

	# Simulator: every device uses the certificate the inventory holds
	# (the simulated device checked chain and that the key is its own),
	# and never failed to connect.
	hubsim_ctl GET /_sim/devices > "$T/sim.json"
	jq -r '.devices[] | [.deviceId, (.device.installedSerial // ""),
	    (.device.connectFailures|tostring), (.device.installs|tostring),
	    (.registry.authentication.x509Thumbprint.primaryThumbprint // ""),
	    (.registry.authentication.x509Thumbprint.secondaryThumbprint // "")]
	    | @tsv' "$T/sim.json" | sort > "$T/sim.tsv"
	sql "SELECT c.device_id, c.serial, upper(c.sha1), upper(c.sha256) FROM certificates c WHERE c.issued_by = 'renewal' AND c.status = 'active' ORDER BY c.device_id" |
		tr '|' '\t' | sort > "$T/db.tsv"
	mism=$(join -t "$(printf '\t')" "$T/sim.tsv" "$T/db.tsv" |
		awk -F'\t' 'tolower($2) != tolower($7) { c++ } END { print c + 0 }')
	joined=$(join -t "$(printf '\t')" "$T/sim.tsv" "$T/db.tsv" | wc -l)
	[ "$joined" -eq "$n" ] && [ "$mism" -eq 0 ] &&
		pass "every simulated device reports the inventory's new serial" ||
		fail "simulator/inventory: $joined joined, $mism mismatched"
	cf=$(awk -F'\t' '$3 != "0" { c++ } END { print c + 0 }' "$T/sim.tsv")
	[ "$cf" -eq 0 ] && pass "no device ever failed to connect" ||
		fail "$cf devices had refused connections"
	# Self-signed devices: the new thumbprint is primary, the old gone.
	bad=$(join -t "$(printf '\t')" "$T/sim.tsv" "$T/db.tsv" |
		awk -F'\t' '$5 != "" && toupper($5) != $8 && toupper($5) != $9 { c++ }
		    $5 != "" && $6 != "" { c++ } END { print c + 0 }')
	[ "$bad" -eq 0 ] && pass "self-signed devices: new thumbprint primary, secondary cleared" ||
		fail "$bad self-signed devices with wrong thumbprints"

	# openssl verify accepts every new certificate, and its key is the
	# device's identity key (checked on a sample; the simulated devices
	# checked all of them).
	mkdir -p "$T/certs"
	sql "SELECT device_id || ' ' || hex(der) || ' ' || hex(identity_key) || ' ' || d.rekey FROM certificates c JOIN devices d USING (device_id) WHERE c.issued_by = 'renewal' AND c.status = 'active'" > "$T/certs.txt"
	k=0
	badkey=0
	while read -r id der key rekey; do
		printf '%s' "$der" | xxd -r -p > "$T/certs/$k.der"
		openssl x509 -inform DER -in "$T/certs/$k.der" -out "$T/certs/$k.pem"
		if [ $((k % 25)) -eq 0 ] && [ "$rekey" = 0 ]; then
			pk=$(openssl x509 -in "$T/certs/$k.pem" -pubkey -noout |
				openssl pkey -pubin -outform DER | xxd -p | tr -d '\n' |
				tr 'a-f' 'A-F')
			[ "$pk" = "$key" ] || { badkey=$((badkey + 1)); echo "key of $id differs"; }
		fi
		k=$((k + 1))
	done < "$T/certs.txt"
	# shellcheck disable=SC2046
	ok=$(cd "$T/certs" && openssl verify -CAfile "$HUBSIM_ROOT_CERT" \
		-untrusted "$HUBSIM_INT_CERT" $(ls ./*.pem) 2>&1 | grep -c ': OK$')
	[ "$ok" -eq "$n" ] && pass "openssl verify accepts all $n certificates" ||
		fail "openssl verify: $ok of $n OK"
	[ "$badkey" -eq 0 ] && pass "sampled certificates carry the identity key" ||
		fail "$badkey certificates with another key"
}
