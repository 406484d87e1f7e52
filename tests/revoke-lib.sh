# revoke-lib.sh — sourced by the revocation scenario tests (revoke*.sh):
# the real fleetcert-hubsim over TLS with a generated fleet, the real
# fleetcertd (signer, API, revocation worker, enrolment listener) or the
# stand-alone `fleetcertd --sweep`, on a database loaded from the fleet's
# factory CSV.
#
#   rv_setup N HUBSIM-ARGS -- GEN-ARGS   PKI, fleet, simulator, database
#   rv_conf [extra INI lines]            writes $T/fc.conf
#   rv_daemon_start / rv_daemon_kill9 / rv_daemon_stop
#   api METHOD PATH [curl args]          operator API; body in $T/body,
#                                        prints the HTTP status
#   sweep [--json]                       fleetcertd --sweep; exit code in $SWEEP_RC
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
command -v jq >/dev/null && command -v sqlite3 >/dev/null &&
	command -v curl >/dev/null || { echo "SKIP: needs jq, sqlite3, curl"; exit 77; }
HUBSIM_DEFER_START=1
. "$top_srcdir/tests/start-hubsim.sh"
T="$HUBSIM_DIR/fc"
mkdir -p "$T/revoke.d"
DPID=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }
sql() { sqlite3 -cmd '.timeout 10000' "$T/fleet.db" "$1"; }

rv_cleanup() {
	rv_daemon_stop
	if [ "$fails" -ne 0 ] && [ -f "$T/daemon.log" ]; then
		echo "--- fleetcertd log (tail) ---"
		tail -n 30 "$T/daemon.log"
	fi
	hubsim_cleanup
}
trap rv_cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# hubsim_start, with more patience: a large fleet on a loaded machine can
# take longer to load than start-hubsim.sh waits.
rv_hubsim_start() {
	hubsim_start "$@" && return 0
	i=0
	while [ ! -s "$HUBSIM_DIR/port" ] && kill -0 "$HUBSIM_PID" 2>/dev/null &&
	    [ $i -lt 1800 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -s "$HUBSIM_DIR/port" ] || return 1
	HUBSIM_PORT=$(cat "$HUBSIM_DIR/port")
	HUBSIM_URL="https://127.0.0.1:$HUBSIM_PORT"
	HUBSIM_HOST="127.0.0.1:$HUBSIM_PORT"
	HUBSIM_CONN="HostName=$HUBSIM_HOST;SharedAccessKeyName=iothubowner;SharedAccessKey=$HUBSIM_KEY_OWNER"
	export HUBSIM_PORT HUBSIM_URL HUBSIM_HOST HUBSIM_CONN
}

rv_setup() {
	n=$1
	shift
	sim_args=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		sim_args="$sim_args $1"
		shift
	done
	[ $# -gt 0 ] && shift
	hubsim_gen_fleet --count "$n" --out "$T/fixture.json" \
		--csv "$T/factory.csv" "$@" >"$T/gen.log" 2>&1 ||
		{ cat "$T/gen.log"; exit 1; }
	# A state file (RV_STATE=1) lets the simulator restart with its
	# registry; it is saved every second under the simulator's lock,
	# which stalls large fleets, so only the tests that restart use it.
	[ "${RV_STATE:-0}" = 1 ] &&
		sim_args="$sim_args --state-file $T/hubsim.state"
	# shellcheck disable=SC2086
	rv_hubsim_start --devices "$T/fixture.json" $sim_args || exit 1
	"$top_builddir/renew-tool" import "$T/fleet.db" "$T/factory.csv" \
		>"$T/import.log" 2>&1 || { cat "$T/import.log"; exit 1; }
	printf '%s\n' "$HUBSIM_CONN" > "$T/hub.conn"
	chmod 600 "$T/hub.conn"
	cp "$HUBSIM_INT_KEY" "$T/ca.key"
	chmod 600 "$T/ca.key"
	cat "$HUBSIM_INT_CERT" "$HUBSIM_ROOT_CERT" > "$T/chain.pem"
	# Operator API tokens: the file holds hashes; the sweep reads the
	# admin token itself.
	openssl rand -hex 24 > "$T/admin.token"
	chmod 600 "$T/admin.token"
	ATOK=$(cat "$T/admin.token")
	printf 'admin %s\n' "$(printf '%s' "$ATOK" | sha256sum | cut -d' ' -f1)" \
		> "$T/api.tokens"
	chmod 600 "$T/api.tokens"
	API_PORT=$(free_port)
	API="http://127.0.0.1:$API_PORT"
}

rv_conf() {
	{
		printf '[daemon]\nlog_level = %s\n' "${RV_LOG_LEVEL:-info}"
		printf '[database]\npath = %s/fleet.db\n' "$T"
		printf '[ca]\ncertificate = %s\nkey = %s/ca.key\n' \
			"$HUBSIM_INT_CERT" "$T"
		printf 'chain = %s/chain.pem\nvalidity_days = 365\n' "$T"
		printf 'crl_path = %s/crl/fleetcert.crl\n' "$T"
		printf '[hub]\nconnection_string_file = %s/hub.conn\n' "$T"
		printf 'ca_file = %s\nrate_per_second = %s\n' "$HUBSIM_CA" \
			"${RV_RATE:-1000}"
		printf 'registry_per_minute = %s\n' "${RV_REGISTRY:-5000}"
		printf '[renewal]\ninterval_seconds = 3600\n'
		printf '[api]\nlisten = 127.0.0.1:%s\ntokens_file = %s/api.tokens\n' \
			"$API_PORT" "$T"
		printf '[sweep]\ndropin_dir = %s/revoke.d\n' "$T"
		printf 'api_token_file = %s/admin.token\n' "$T"
		for l in "$@"; do printf '%s\n' "$l"; done
	} > "$T/fc.conf"
	mkdir -p "$T/crl"
}

rv_daemon_start() {
	"$top_builddir/fleetcertd" -c "$T/fc.conf" >>"$T/daemon.log" 2>&1 &
	DPID=$!
	i=0
	until curl -s -o /dev/null -H "Authorization: Bearer $ATOK" \
	    "$API/v1/health"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$DPID" 2>/dev/null; then
			echo "fleetcertd did not start"; tail -20 "$T/daemon.log"
			exit 1
		fi
		sleep 0.1
	done
}

rv_daemon_kill9() {
	if [ -n "$DPID" ]; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		i=0
		while pgrep -f "fleetcertd -c $T/fc.conf" >/dev/null 2>&1 &&
		    [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		DPID=
	fi
}

rv_daemon_stop() {
	if [ -n "$DPID" ]; then
		kill "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		DPID=
	fi
}

# Sanitizer builds: any finding in the daemon's or the sweeps' output.
rv_sanitizer_check() {
	rv_daemon_stop
	if cat "$T"/daemon.log "$T"/sweep.err "$T"/s1.err "$T"/s2.err 2>/dev/null |
	    grep -q 'Sanitizer\|runtime error:'; then
		cat "$T"/daemon.log "$T"/sweep.err "$T"/s1.err "$T"/s2.err 2>/dev/null |
			grep -A20 'Sanitizer\|runtime error:' | head -60
		fail "sanitizer finding"
	else
		pass "no sanitizer finding"
	fi
}

api() {
	m=$1; p=$2; shift 2
	curl -s -o "$T/body" -w '%{http_code}' -X "$m" \
		-H "Authorization: Bearer $ATOK" "$@" "$API$p"
}

sweep() {
	"$top_builddir/fleetcertd" -c "$T/fc.conf" --sweep "$@" \
		>"$T/sweep.out" 2>>"$T/sweep.err"
	SWEEP_RC=$?
}

# hub_status ID: the simulator's registry status of a device
hub_status() {
	hubsim_ctl GET "/_sim/devices/$1" > "$T/simdev.json"
	jq -r '.registry.status // "absent"' "$T/simdev.json"
}
