#!/bin/bash
# demo.sh — the fleetcert demo (issue 9, "The demo"): installs what is
# missing, builds out of tree, then in a throwaway directory runs a whole
# fleet's life against the real programs: a root + intermediate CA, the IoT
# Hub simulator (fleetcert-hubsim, TLS on 127.0.0.1, a free port) with a
# generated fleet, fleetcertd (renewal, delivery, re-enrolment endpoint,
# operator API on a Unix socket, revocation), fleetcertctl and
# fleetcert-device. It narrates each step, checks what it claims against
# the API, the database and the simulator, and exits 0 only when all checks
# passed. Every process it starts is stopped on exit; the directory is
# removed unless --keep is given.
#
# Usage: scripts/demo.sh [--keep] [--no-build] [--build-dir DIR]
#                        [--count N] [--quiet]
set -u

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [options]
  --keep            leave the demo directory (prints how to look and clean up)
  --no-build        do not install packages or build; use an existing build
  --build-dir DIR   the build directory (default: _build-demo in the source tree)
  --count N         devices in the fleet, 100-2000 (default 300)
  --quiet           fewer live lines
  -h, --help        this text
EOF
}

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=""
KEEP=0
NOBUILD=0
COUNT=300
QUIET=0
while [ $# -gt 0 ]; do
	case $1 in
	--keep) KEEP=1 ;;
	--no-build) NOBUILD=1 ;;
	--build-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }
		BUILD=$2; shift ;;
	--build-dir=*) BUILD=${1#*=} ;;
	--count) [ $# -ge 2 ] || { usage >&2; exit 2; }
		COUNT=$2; shift ;;
	--quiet) QUIET=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case $COUNT in
''|*[!0-9]*) echo "demo.sh: --count must be a number" >&2; exit 2 ;;
esac
if [ "$COUNT" -lt 100 ] || [ "$COUNT" -gt 2000 ]; then
	echo "demo.sh: --count must be 100-2000" >&2
	exit 2
fi
[ -n "$BUILD" ] || BUILD=$SRC/_build-demo
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac

T0=$(date +%s)
if [ -t 1 ]; then
	B=$(printf '\033[1m') N=$(printf '\033[0m')
	G=$(printf '\033[32m') R=$(printf '\033[31m')
else
	B="" N="" G="" R=""
fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
elapsed() { echo $(($(date +%s) - T0)); }
CHECKS=0
FAILED=0
check() {	# check WHAT COND-STATUS
	CHECKS=$((CHECKS + 1))
	if [ "$2" -eq 0 ]; then
		printf '   %sok%s   %s\n' "$G" "$N" "$1"
	else
		FAILED=$((FAILED + 1))
		printf '   %sFAIL%s %s\n' "$R" "$N" "$1"
	fi
}
die() { printf '%sdemo.sh: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

# ---------------------------------------------------------------- build
if [ "$NOBUILD" -eq 0 ]; then
	step "Debian packages and build"
	"$SRC/scripts/install-deps.sh" || die "installing packages failed"
	if [ ! -x "$SRC/configure" ]; then
		say "bootstrapping (autoreconf)"
		(cd "$SRC" && ./bootstrap) >/dev/null 2>&1 || die "./bootstrap failed"
	fi
	mkdir -p "$BUILD" || die "cannot create $BUILD"
	if [ ! -f "$BUILD/Makefile" ]; then
		say "configuring in $BUILD"
		(cd "$BUILD" && "$SRC/configure" -q) >"$BUILD/demo-configure.log" 2>&1 ||
			{ tail -20 "$BUILD/demo-configure.log"; die "configure failed"; }
	fi
	say "make in $BUILD: the four programs the demo runs (up to date after the first run)"
	(cd "$BUILD" && make -j"$(nproc 2>/dev/null || echo 2)" src/sql_migrations.c &&
	    make -j"$(nproc 2>/dev/null || echo 2)" fleetcertd fleetcertctl \
	    fleetcert-hubsim fleetcert-device) \
		>"$BUILD/demo-make.log" 2>&1 ||
		{ tail -30 "$BUILD/demo-make.log"; die "make failed (log: $BUILD/demo-make.log)"; }
	say "built in $(elapsed) s"
fi
for p in fleetcertd fleetcertctl fleetcert-hubsim fleetcert-device; do
	[ -x "$BUILD/$p" ] || die "$BUILD/$p is missing (build first, or drop --no-build)"
done
for c in openssl curl jq sqlite3; do
	command -v $c >/dev/null || die "$c is missing (run scripts/install-deps.sh)"
done
FCD=$BUILD/fleetcertd
CTL=$BUILD/fleetcertctl
SIM=$BUILD/fleetcert-hubsim
DEV=$BUILD/fleetcert-device

# ---------------------------------------------------------------- cleanup
W=$(mktemp -d "${TMPDIR:-/tmp}/fleetcert-demo.XXXXXX") || die "mktemp failed"
SIM_PID=""
DPID=""
stop_pid() {	# stop_pid PID: TERM, wait up to 10 s, then KILL
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	stop_pid "$DPID"
	stop_pid "$SIM_PID"
	if [ "$KEEP" -eq 1 ]; then
		printf '\nThe demo directory is kept: %s\n' "$W"
		printf '  less %s/fleetcertd.log            the daemon'"'"'s log\n' "$W"
		printf '  sqlite3 %s/fleet.db '"'"'SELECT status, issued_by, count(*) FROM certificates GROUP BY 1, 2'"'"'\n' "$W"
		printf '  jq . %s/sim-after.json | less     the simulator'"'"'s view at the end\n' "$W"
		printf '  ls %s/reenrol/                    certificates the re-enrolled devices received\n' "$W"
		printf 'Clean up with: rm -rf %s\n' "$W"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- PKI
step "A throwaway PKI in $W"
umask 077
sh "$SRC/tests/mkca.sh" "$W/ca" >/dev/null 2>&1 || die "tests/mkca.sh failed"
say "root CA (EC P-384) and intermediate CA (EC P-256): $W/ca/{root,intermediate,chain}.pem"
tls_cert() {	# tls_cert NAME: a server certificate for 127.0.0.1 from the root
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$W/$1.key" 2>/dev/null &&
	openssl req -new -key "$W/$1.key" -subj "/CN=127.0.0.1" \
		-out "$W/$1.csr" 2>/dev/null &&
	printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n' \
		> "$W/$1.ext" &&
	openssl x509 -req -in "$W/$1.csr" -CA "$W/ca/root.pem" \
		-CAkey "$W/ca/root.key" -CAcreateserial -days 2 \
		-extfile "$W/$1.ext" -out "$W/$1.pem" 2>/dev/null &&
	rm -f "$W/$1.csr" "$W/$1.ext"
}
tls_cert enrol || die "enrolment TLS certificate failed"
tls_cert hub-tls || die "hub TLS certificate failed"
say "TLS certificates for 127.0.0.1: enrolment endpoint $W/enrol.pem, hub simulator $W/hub-tls.pem"

# ---------------------------------------------------------------- fleet
step "A fleet of $COUNT devices (fleetcert-hubsim gen-fleet)"
NSOON=$((COUNT * 4 / 5))
NLATER=$((COUNT - NSOON))
"$SIM" gen-fleet --count "$NSOON" --ca-cert "$W/ca/intermediate.pem" \
	--ca-key "$W/ca/intermediate.key" --chain "$W/ca/chain.pem" \
	--prefix dev- --expire-in-days 2-25 --self-signed 0.2 --offline 0.15 \
	--expired 0.025 --owner acme --batch 2026-w01 \
	--out "$W/soon.json" --csv "$W/soon.csv" >"$W/gen.log" 2>&1 ||
	{ cat "$W/gen.log"; die "gen-fleet failed"; }
"$SIM" gen-fleet --count "$NLATER" --ca-cert "$W/ca/intermediate.pem" \
	--ca-key "$W/ca/intermediate.key" --chain "$W/ca/chain.pem" \
	--prefix late- --expire-in-days 120-330 --self-signed 0.2 \
	--offline 0.1 --owner acme --batch 2026-w20 \
	--out "$W/later.json" --csv "$W/later.csv" >>"$W/gen.log" 2>&1 ||
	{ cat "$W/gen.log"; die "gen-fleet failed"; }
jq -s '{devices: (.[0].devices + .[1].devices)}' "$W/soon.json" \
	"$W/later.json" > "$W/fleet.json" || die "merging fixtures failed"
{ cat "$W/soon.csv"; tail -n +2 "$W/later.csv"; } > "$W/factory.csv"
rm -f "$W/soon.json" "$W/later.json" "$W/soon.csv" "$W/later.csv"
NOW=$(date +%s)
# Per device: id, serial, online, authType, notAfter (from the certificate).
jq -r '.devices[] | [.deviceId, .serial, (if .online == false then "false" else "true" end),
    (.authType // "certificateAuthority")] | @tsv' "$W/fleet.json" > "$W/fleet.tsv"
N_ALL=$(wc -l < "$W/fleet.tsv")
N_SS=$(awk -F'\t' '$4 == "selfSigned"' "$W/fleet.tsv" | wc -l)
N_OFF=$(awk -F'\t' '$3 == "false"' "$W/fleet.tsv" | wc -l)
say "$N_ALL devices: $NSOON expiring in 2-25 days (a few already expired), $NLATER in 120-330 days"
say "$N_SS self-signed (thumbprint at the hub), the rest CA-signed; $N_OFF offline"
say "fixture $W/fleet.json, factory records $W/factory.csv"

# ---------------------------------------------------------------- hub
step "The simulated IoT Hub (fleetcert-hubsim over TLS)"
openssl rand -base64 32 | tr -d '\n' > "$W/owner.key"
openssl rand -hex 24 > "$W/control.token"
"$SIM" --listen 127.0.0.1:0 --port-file "$W/hub.port" \
	--cert "$W/hub-tls.pem" --key "$W/hub-tls.key" --hub-name demohub \
	--policy "iothubowner=@$W/owner.key" --devices "$W/fleet.json" \
	--trust-root "$W/ca/root.pem" --control-token "$W/control.token" \
	--tier S3 --log-level warn 2>"$W/hubsim.log" &
SIM_PID=$!
for _ in $(seq 300); do
	[ -s "$W/hub.port" ] && break
	kill -0 "$SIM_PID" 2>/dev/null || { cat "$W/hubsim.log"; die "fleetcert-hubsim did not start"; }
	sleep 0.1
done
[ -s "$W/hub.port" ] || die "fleetcert-hubsim did not report its port"
HUB_PORT=$(cat "$W/hub.port")
HUB_URL=https://127.0.0.1:$HUB_PORT
printf 'HostName=127.0.0.1:%s;SharedAccessKeyName=iothubowner;SharedAccessKey=%s\n' \
	"$HUB_PORT" "$(cat "$W/owner.key")" > "$W/hub.conn"
CTRL_TOKEN=$(cat "$W/control.token")
simctl() {	# simctl METHOD PATH [BODY]
	curl -sS --max-time 30 --cacert "$W/ca/root.pem" -X "$1" \
		-H "Authorization: Bearer $CTRL_TOKEN" \
		${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
		"$HUB_URL$2"
}
simctl GET /_sim/devices > "$W/sim-before.json" || die "simulator control interface"
say "listening on $HUB_URL (pid $SIM_PID), tier S3, $(jq '.devices | length' "$W/sim-before.json") devices registered"
say "control interface $HUB_URL/_sim/ (token in $W/control.token)"
# Devices whose certificate has expired, as the simulator sees them.
jq -r '.devices[] | select(.device.certificateNotAfter != null and
    (.device.certificateNotAfter | fromdateiso8601) <= now) |
    [.deviceId, .device.serial] | @tsv' "$W/sim-before.json" > "$W/expired.tsv"
N_EXP=$(wc -l < "$W/expired.tsv")
say "$N_EXP devices hold a certificate that has already expired: the hub refuses them"
[ "$N_EXP" -gt 0 ] || die "the fleet has no expired device"

# ---------------------------------------------------------------- daemon
openssl rand -hex 32 > "$W/admin.token"
printf 'admin %s\n' "$(tr -d '\n' < "$W/admin.token" | openssl dgst -sha256 -r | cut -d' ' -f1)" \
	> "$W/api.tokens"
mkdir -p "$W/crl" "$W/revoke.d" "$W/reenrol"
write_conf() {	# write_conf inventory|full
	{
		printf '[daemon]\nlog_level = info\n'
		printf '[database]\npath = %s/fleet.db\n' "$W"
		printf '[api]\nlisten = unix:%s/api.sock\ntokens_file = %s/api.tokens\n' "$W" "$W"
		printf '[hub]\nconnection_string_file = %s/hub.conn\n' "$W"
		printf 'ca_file = %s/ca/root.pem\n' "$W"
		printf 'rate_per_second = 200\nregistry_per_minute = 3000\n'
		[ "$1" = full ] || return 0
		printf '[ca]\ncertificate = %s/ca/intermediate.pem\n' "$W"
		printf 'chain = %s/ca/chain.pem\nkey = %s/ca/intermediate.key\n' "$W" "$W"
		printf 'validity_days = 365\ncrl_path = %s/crl/fleetcert.crl\n' "$W"
		printf '[renewal]\ninterval_seconds = 1\nrenew_before_days = 30\njitter_days = 0\n'
		printf '[delivery]\nmethod_timeout_seconds = 5\nmax_in_flight = 64\n'
		printf 'retry_initial_seconds = 1\nretry_max_seconds = 2\n'
		printf '[enrol]\nlisten = 127.0.0.1:0\n'
		printf 'tls_certificate = %s/enrol.pem\ntls_key = %s/enrol.key\n' "$W" "$W"
		printf '[sweep]\ndropin_dir = %s/revoke.d\napi_token_file = %s/admin.token\n' "$W" "$W"
	} > "$W/fleetcertd.conf"
}
start_daemon() {
	"$FCD" -c "$W/fleetcertd.conf" >>"$W/fleetcertd.log" 2>&1 &
	DPID=$!
	for _ in $(seq 150); do
		kill -0 "$DPID" 2>/dev/null || { tail -20 "$W/fleetcertd.log"; die "fleetcertd exited"; }
		[ -S "$W/api.sock" ] && "$CTL" --socket "$W/api.sock" \
			--token-file "$W/admin.token" list --limit 1 \
			>/dev/null 2>&1 && return 0
		sleep 0.2
	done
	tail -20 "$W/fleetcertd.log"
	die "fleetcertd did not become healthy"
}
ctl() { "$CTL" --socket "$W/api.sock" --token-file "$W/admin.token" "$@"; }
api() {	# api METHOD PATH [BODY]
	curl -sS --max-time 30 --unix-socket "$W/api.sock" -X "$1" \
		-H "Authorization: Bearer $(cat "$W/admin.token")" \
		${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
		"http://localhost$2"
}
metric() {	# metric NAME{LABELS}: the value or 0
	awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }' "$W/metrics.txt"
}
histogram() {	# weeks with no expiry are left out
	ctl expiry --week --count 54 > "$W/histogram.txt" ||
		{ check "fleetcertctl expiry" 1; return; }
	awk 'NR <= 2 || $2 != "0"' "$W/histogram.txt" | sed 's/^/   | /'
	say "(fleetcertctl expiry --week --count 54; empty weeks not shown)"
}

step "Importing the factory records (fleetcertctl import)"
write_conf inventory
start_daemon
say "fleetcertd (pid $DPID), inventory only: no CA configured yet, so nothing is renewed"
ctl import "$W/factory.csv" > "$W/import.out" 2>&1
rc=$?
check "fleetcertctl import $W/factory.csv: $(head -1 "$W/import.out")" $rc
[ $rc -eq 0 ] || { head -5 "$W/import.out"; die "the import failed; nothing to demonstrate"; }
N_INV=$(api GET "/v1/devices?limit=1000" | jq '.items | length')
api GET "/v1/devices?limit=1000" > /dev/null
check "the API lists $N_INV devices (want $N_ALL)" "$([ "$N_INV" -eq "$N_ALL" ]; echo $?)"

step "Expiry histogram BEFORE (fleetcertctl expiry --week)"
histogram
api GET "/v1/expiry?bucket=week&count=52" > "$W/expiry-before.json"
say "$(jq -r '"\([.buckets[0:5][].count] | add) expire within 5 weeks"' "$W/expiry-before.json"); $N_EXP are already expired"
say "(the import marks those expired; the histogram counts certificates in use)"
stop_pid "$DPID"; DPID=""

# ---------------------------------------------------------------- renewal
step "fleetcertd with CA, hub and enrolment endpoint: renewal and delivery"
write_conf full
start_daemon
ENROL_PORT=$(sed -n 's/.*httpd enrol.*(port \([0-9]*\)).*/\1/p' "$W/fleetcertd.log" | tail -1)
[ -n "$ENROL_PORT" ] || ENROL_PORT=$(sed -n 's/.*listening on 127.0.0.1:[0-9]* (port \([0-9]*\)).*/\1/p' "$W/fleetcertd.log" | tail -1)
[ -n "$ENROL_PORT" ] || { tail -20 "$W/fleetcertd.log"; die "cannot find the enrolment port in the log"; }
say "fleetcertd (pid $DPID): renewal every 1 s, window 30 days, method timeout 5 s"
say "config $W/fleetcertd.conf, log $W/fleetcertd.log, database $W/fleet.db"
say "re-enrolment endpoint https://127.0.0.1:$ENROL_PORT, operator API unix:$W/api.sock"
sql() { sqlite3 -cmd '.timeout 5000' "$W/fleet.db" "$1"; }
# Devices that can take a renewal now: due (not in the "later" batch), and
# not expired.
N_DUE=$(awk -F'\t' '$1 ~ /^dev-/' "$W/fleet.tsv" | wc -l)
N_ONDUE=$(awk -F'\t' '$1 ~ /^dev-/ && $3 == "true"' "$W/fleet.tsv" |
	cut -f1 | grep -vxF -f <(cut -f1 "$W/expired.tsv") | wc -l)
N_OFFDUE=$(awk -F'\t' '$1 ~ /^dev-/ && $3 == "false"' "$W/fleet.tsv" |
	cut -f1 | grep -vxF -f <(cut -f1 "$W/expired.tsv") | wc -l)
say "due for renewal: $N_DUE ($N_ONDUE online, $N_OFFDUE offline, $N_EXP expired)"
live() {	# live SECONDS UNTIL-COND-FUNCTION
	_end=$(($(date +%s) + $1))
	while [ "$(date +%s)" -lt "$_end" ]; do
		api GET /metrics > "$W/metrics.txt" 2>/dev/null
		ISS=$(metric 'fleetcert_renewals_total{outcome="issued"}')
		INS=$(metric 'fleetcert_delivery_events_total{outcome="installed"}')
		TWN=$(metric 'fleetcert_delivery_events_total{outcome="twin_fallback"}')
		DONE=$(sql "SELECT count(*) FROM deliveries WHERE step = 'done'")
		[ "$QUIET" -eq 1 ] ||
			printf '   [%3ds] renewed %4s | installed by method %4s | to twin (offline) %4s | confirmed %4s\n' \
				"$(elapsed)" "$ISS" "$INS" "$TWN" "$DONE"
		"$2" && return 0
		sleep 1
	done
	return 1
}
wave1_done() {
	[ "$DONE" -ge "$N_ONDUE" ] && [ "$TWN" -ge "$N_OFFDUE" ]
}
live 60 wave1_done
check "every online device due got its certificate by direct method and confirmed it ($DONE of $N_ONDUE)" \
	"$([ "$DONE" -ge "$N_ONDUE" ]; echo $?)"
check "offline devices got it in their twin instead ($TWN, want $N_OFFDUE)" \
	"$([ "$TWN" -ge "$N_OFFDUE" ]; echo $?)"
ISS_NOW=$ISS
check "the $N_EXP expired devices were not renewed: they cannot reach the hub ($ISS_NOW renewed, want $((N_ONDUE + N_OFFDUE)))" \
	"$([ "$ISS_NOW" -eq "$((N_ONDUE + N_OFFDUE))" ]; echo $?)"
VIA_METHOD=$(sql "SELECT count(*) FROM audit WHERE action = 'cert.delivered' AND detail LIKE '%\"via\":\"method\"%'")

# ---------------------------------------------------------------- offline
step "Offline devices come online and catch up from their twin"
OFFLINE_IDS=$(awk -F'\t' '$3 == "false" { print $1 }' "$W/fleet.tsv" |
	grep -vxF -f <(cut -f1 "$W/expired.tsv") | jq -R . | jq -cs .)
simctl POST /_sim/online "{\"online\": true, \"devices\": $OFFLINE_IDS}" >/dev/null
say "POST /_sim/online for $(echo "$OFFLINE_IDS" | jq length) devices"
wave2_done() { [ "$DONE" -ge "$((N_ONDUE + N_OFFDUE))" ]; }
live 60 wave2_done
check "the offline devices installed it from their twin and reported it ($((DONE - N_ONDUE)) of $N_OFFDUE)" \
	"$([ "$DONE" -ge "$((N_ONDUE + N_OFFDUE))" ]; echo $?)"

# ---------------------------------------------------------------- re-enrol
step "Expired devices re-enrol through fleetcert-device"
say "a device whose certificate expired cannot connect to the hub; it proves"
say "itself with its secure element's slot-0 key at https://127.0.0.1:$ENROL_PORT"
REEN=0
REEN_API=0
ISSUER=""
while IFS="$(printf '\t')" read -r id serial; do
	jq -r --arg id "$id" '.devices[] | select(.deviceId == $id) | .identityKey' \
		"$W/fleet.json" > "$W/reenrol/$id.slot0.pem"
	out=$("$DEV" --url "https://127.0.0.1:$ENROL_PORT" --root "$W/ca/root.pem" \
		--serial "$serial" --key "$W/reenrol/$id.slot0.pem" \
		--out "$W/reenrol/$id.pem" --chain-out "$W/reenrol/$id.chain.pem" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		say "$id (SE $serial): new certificate $(echo "$out" | awk 'NR == 1 { print $1 ", valid until " $2 }')"
	else
		say "$id (SE $serial): fleetcert-device exit $rc: $(echo "$out" | tr '\n' ' ')"
	fi
	if [ $rc -eq 0 ] && openssl verify -CAfile "$W/ca/root.pem" \
	    -untrusted "$W/ca/intermediate.pem" "$W/reenrol/$id.pem" >/dev/null 2>&1; then
		REEN=$((REEN + 1))
	fi
	# The inventory's current certificate is the one the device got.
	got=$(echo "$out" | awk 'NR == 1 { print tolower($1) }')
	api GET "/v1/devices/$id" > "$W/reenrol/$id.api.json"
	[ -n "$got" ] && [ "$(jq -r '.certificate.serial | ascii_downcase' "$W/reenrol/$id.api.json")" = "$got" ] &&
		ISSUER=$(jq -r .certificate.issuedBy "$W/reenrol/$id.api.json") &&
		[ "$ISSUER" != import ] && REEN_API=$((REEN_API + 1))
done < "$W/expired.tsv"
check "$REEN of $N_EXP expired devices re-enrolled; openssl verify accepts their certificates" \
	"$([ "$REEN" -eq "$N_EXP" ]; echo $?)"
check "the API shows each of them with that certificate as current ($REEN_API of $N_EXP, issued by ${ISSUER:-?})" \
	"$([ "$REEN_API" -eq "$N_EXP" ]; echo $?)"

# ---------------------------------------------------------------- revoke
step "One device revoked and disabled at the hub"
VICTIM=$(awk -F'\t' '$1 ~ /^dev-/ && $3 == "true" && $4 != "selfSigned" { print $1 }' "$W/fleet.tsv" |
	grep -vxF -f <(cut -f1 "$W/expired.tsv") | head -1)
say "fleetcertctl revoke $VICTIM --reason keyCompromise   (POST /v1/devices/$VICTIM/revoke)"
t1=$(date +%s%N)
ctl revoke "$VICTIM" --reason keyCompromise > "$W/revoke.out" 2>&1
rc=$?
t2=$(date +%s%N)
sed 's/^/   | /' "$W/revoke.out"
check "fleetcertctl revoke: exit $rc (0: the hub accepted the disable) after $(( (t2 - t1) / 1000000 )) ms" $rc
REV_STATUS=$(simctl GET "/_sim/devices/$VICTIM" | jq -r '.registry.status')
check "the hub shows $VICTIM as $REV_STATUS" "$([ "$REV_STATUS" = disabled ]; echo $?)"
say "fleetcertd --sweep (what cron or fleetcert-sweep.timer runs) publishes the CRL:"
"$FCD" --sweep -c "$W/fleetcertd.conf" > "$W/sweep.out" 2>&1
rc=$?
sed 's/^/   | /' "$W/sweep.out" | grep -v ' info: ' | tail -3
check "fleetcertd --sweep exit status $rc" $rc
REV_SERIAL=$(sql "SELECT serial FROM certificates WHERE device_id = '$VICTIM' AND status = 'revoked' ORDER BY not_before DESC LIMIT 1")
ctl crl > "$W/crl-from-api.der" 2>/dev/null
if [ -s "$W/crl-from-api.der" ] && cmp -s "$W/crl-from-api.der" "$W/crl/fleetcert.crl" &&
    openssl crl -inform DER -in "$W/crl/fleetcert.crl" -noout -text 2>/dev/null |
    grep -qi "serial number: 0*$(echo "$REV_SERIAL" | sed 's/^0*//')\$" &&
    openssl crl -inform DER -in "$W/crl/fleetcert.crl" -CAfile "$W/ca/chain.pem" \
	-noout 2>&1 | grep -q 'verify OK'; then
	check "the CRL (file, and fleetcertctl crl) verifies and lists its certificate $REV_SERIAL" 0
else
	check "the CRL (file, and fleetcertctl crl) verifies and lists its certificate $REV_SERIAL" 1
fi

# ---------------------------------------------------------------- after
step "Expiry histogram AFTER"
histogram
api GET "/v1/expiry?bucket=week&count=52" > "$W/expiry-after.json"
say "$(jq -r '"\([.buckets[0:5][].count] | add) expire within 5 weeks, \(.expired) in use are expired"' "$W/expiry-after.json")"

# ---------------------------------------------------------------- verify
step "Checks against the API, the database and the simulator"
simctl GET /_sim/devices > "$W/sim-after.json"
jq -r '.devices[] | [.deviceId, (.device.installedSerial // "-"),
    (.registry.status // "-")] | @tsv' "$W/sim-after.json" | sort > "$W/sim.tsv"
sql "SELECT device_id, serial FROM certificates WHERE issued_by = 'renewal' AND status = 'active' ORDER BY device_id" |
	tr '|' '\t' | sort > "$W/renewed.tsv"
N_RENEWED=$(wc -l < "$W/renewed.tsv")
MATCH=$(join -t "$(printf '\t')" "$W/sim.tsv" "$W/renewed.tsv" |
	awk -F'\t' 'tolower($2) == tolower($4) { c++ } END { print c + 0 }')
WANT=$((N_ONDUE + N_OFFDUE - 1))
check "$N_RENEWED renewed certificates active in the inventory (want $WANT: due, reachable, not revoked)" \
	"$([ "$N_RENEWED" -eq "$WANT" ]; echo $?)"
check "the simulator reports each of those devices using exactly that certificate ($MATCH)" \
	"$([ "$MATCH" -eq "$N_RENEWED" ]; echo $?)"
jq -r '.devices[] | select(.registry.authentication.type == "selfSigned") |
    [.deviceId, (.registry.authentication.x509Thumbprint.primaryThumbprint // "-")]
    | @tsv' "$W/sim-after.json" | sort > "$W/sim-ss.tsv"
sql "SELECT device_id, upper(sha1), upper(sha256) FROM certificates WHERE issued_by = 'renewal' AND status = 'active' ORDER BY device_id" |
	tr '|' '\t' | sort > "$W/renewed-fp.tsv"
SS_JOIN=$(join -t "$(printf '\t')" "$W/sim-ss.tsv" "$W/renewed-fp.tsv" | wc -l)
SS_OK=$(join -t "$(printf '\t')" "$W/sim-ss.tsv" "$W/renewed-fp.tsv" |
	awk -F'\t' 'toupper($2) == $3 || toupper($2) == $4 { c++ } END { print c + 0 }')
check "self-signed devices: the hub's primary thumbprint is the new certificate's ($SS_OK of $SS_JOIN)" \
	"$([ "$SS_JOIN" -gt 0 ] && [ "$SS_OK" -eq "$SS_JOIN" ]; echo $?)"
LATER_TOUCHED=$(sql "SELECT count(*) FROM certificates WHERE device_id LIKE 'late-%' AND issued_by != 'import'")
check "devices not due were left alone ($LATER_TOUCHED new certificates for them)" \
	"$([ "$LATER_TOUCHED" -eq 0 ]; echo $?)"
N_DISABLED=$(awk -F'\t' '$3 == "disabled"' "$W/sim.tsv" | wc -l)
check "exactly one device is disabled at the hub ($N_DISABLED)" "$([ "$N_DISABLED" -eq 1 ]; echo $?)"
EXP_AFTER=$(jq .expired "$W/expiry-after.json")
SOON_AFTER=$(jq '[.buckets[0:5][].count] | add' "$W/expiry-after.json")
check "no certificate in use expires within 5 weeks or has expired ($SOON_AFTER, $EXP_AFTER; before: $(jq '[.buckets[0:5][].count] | add' "$W/expiry-before.json"))" \
	"$([ "$EXP_AFTER" -eq 0 ] && [ "$SOON_AFTER" -eq 0 ]; echo $?)"
ctl audit verify >/dev/null 2>&1
check "the audit log's hash chain verifies (fleetcertctl audit verify)" $?
ctl status >/dev/null 2>&1
check "fleetcertctl status: every component healthy" $?

# ---------------------------------------------------------------- summary
step "Summary"
say "fleet:                 $N_ALL devices ($N_SS self-signed, $N_OFF offline at first, $N_EXP expired)"
say "renewed and confirmed: $DONE ($N_RENEWED of them still active: one was revoked after)"
say "  by direct method:    $VIA_METHOD"
say "  by twin (offline):   $TWN  (installed once /_sim/online brought them up)"
say "re-enrolled:           $REEN (fleetcert-device; with --keep see $W/reenrol/)"
say "revoked + disabled:    $VICTIM"
say "not due, untouched:    $NLATER"
say "checks:                $((CHECKS - FAILED)) of $CHECKS passed"
say "wall time:             $(elapsed) s"
if [ "$FAILED" -ne 0 ]; then
	printf '%sdemo.sh: %d check(s) failed; the log is %s/fleetcertd.log%s\n' "$R" "$FAILED" "$W" "$N"
	[ "$KEEP" -eq 1 ] || echo "(rerun with --keep to look at it)"
	exit 1
fi
printf '%sdemo.sh: all checks passed%s\n' "$G" "$N"
exit 0
