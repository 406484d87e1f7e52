#!/bin/sh
# `fleetcertd --check-config -c FILE` on good and bad configurations: every
# bad case exits non-zero with one "FILE:LINE: [section] key: ..." message
# (asserted exactly); good boundary values pass. The ranges are those of
# DESIGN.md "Configuration" (the contract), written out here on purpose
# rather than read from src/config.c.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
D="$top_builddir/fleetcertd"
T=$(mktemp -d /tmp/fc-cfg.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
F="$T/fc.conf"
fails=0
n=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# bad NAME EXPECTED-MESSAGE: $F must be refused with exactly that line.
bad() {
	n=$((n + 1))
	if "$D" --check-config -c "$F" > "$T/out" 2> "$T/err"; then
		fail "$1: accepted"
		return
	fi
	if grep -qxF -- "$2" "$T/err"; then
		echo "ok: $1"
	else
		fail "$1: expected [$2] got [$(cat "$T/err")]"
	fi
}

# good NAME: $F must be accepted.
good() {
	n=$((n + 1))
	if "$D" --check-config -c "$F" > "$T/out" 2> "$T/err"; then
		echo "ok: $1"
	else
		fail "$1: refused: $(cat "$T/err")"
	fi
}

# conf SECTION KEY VALUE [COMPANION LINES]: one section, the key on line 2,
# companions after it.
conf() {
	printf '[%s]\n%s = %s\n' "$1" "$2" "$3" > "$F"
	[ $# -gt 3 ] && printf '%s\n' "$4" >> "$F"
	return 0
}

# Integer keys: section key min max companion-lines-for-the-max-case
# (cross-key rules: jitter_days <= renew_before_days, retry_initial_seconds
# <= retry_max_seconds; a [hub] needs connection_string_file).
HUBC="connection_string_file = $T/absent-hub.conn"
while IFS='|' read -r sec key min max compmin compmax; do
	[ -z "$sec" ] && continue
	lo=$((min - 1))
	hi=$((max + 1))
	conf "$sec" "$key" "$lo" "$compmin"
	bad "$sec.$key = $lo" "$F:2: [$sec] $key: $lo is out of range ($min-$max)"
	conf "$sec" "$key" "$hi" "$compmax"
	bad "$sec.$key = $hi" "$F:2: [$sec] $key: $hi is out of range ($min-$max)"
	conf "$sec" "$key" "ten" "$compmin"
	bad "$sec.$key = ten" "$F:2: [$sec] $key: \"ten\" is not an integer"
	conf "$sec" "$key" "12x" "$compmin"
	bad "$sec.$key = 12x" "$F:2: [$sec] $key: \"12x\" is not an integer"
	conf "$sec" "$key" "99999999999999999999" "$compmin"
	bad "$sec.$key = 2^66" "$F:2: [$sec] $key: \"99999999999999999999\" is not an integer"
	conf "$sec" "$key" "" "$compmin"
	bad "$sec.$key empty" "$F:2: [$sec] $key: value is empty"
	conf "$sec" "$key" "$min" "$compmin"
	good "$sec.$key = $min"
	conf "$sec" "$key" "$max" "$compmax"
	good "$sec.$key = $max"
done <<EOF
ca|validity_days|1|3650||
ca|crl_validity_hours|1|8760||
hub|rate_per_second|1|10000|$HUBC|$HUBC
hub|registry_per_minute|1|1000000|$HUBC|$HUBC
renewal|interval_seconds|1|86400||
renewal|renew_before_days|1|3650|jitter_days = 0|
renewal|jitter_days|0|3650||renew_before_days = 3650
delivery|method_timeout_seconds|5|300||
delivery|max_in_flight|1|1024||
delivery|retry_initial_seconds|1|86400||retry_max_seconds = 86400
delivery|retry_max_seconds|1|86400|retry_initial_seconds = 1|
enrol|challenge_ttl_seconds|10|3600||
enrol|per_serial_per_hour|1|3600||
enrol|per_address_per_minute|1|100000||
EOF

# Cross-key rules (reported at line 0: they belong to no single line).
printf '[renewal]\nrenew_before_days = 5\njitter_days = 6\n' > "$F"
bad "jitter_days > renew_before_days" \
	"$F:0: [renewal] jitter_days: 6 exceeds renew_before_days (5)"
printf '[delivery]\nretry_initial_seconds = 100\nretry_max_seconds = 99\n' > "$F"
bad "retry_initial_seconds > retry_max_seconds" \
	"$F:0: [delivery] retry_initial_seconds: 100 exceeds retry_max_seconds (99)"

# Booleans and the log level.
for kv in "renewal rekey" "enrol allow_new_key" "api allow_remote"; do
	set -- $kv
	conf "$1" "$2" "maybe"
	bad "$1.$2 = maybe" "$F:2: [$1] $2: \"maybe\" is not a boolean (true or false)"
	for v in true false yes no 1 0; do
		conf "$1" "$2" "$v"
		good "$1.$2 = $v"
	done
done
conf daemon log_level verbose
bad "log_level = verbose" "$F:2: [daemon] log_level: \"verbose\" is not one of error, warn, info, debug"
for v in error warn info debug; do
	conf daemon log_level "$v"
	good "log_level = $v"
done

# Paths must be absolute (a bare name is a systemd credential name).
while read -r sec key; do
	[ -z "$sec" ] && continue
	extra=""
	[ "$sec" = hub ] && [ "$key" != connection_string_file ] && extra="$HUBC"
	conf "$sec" "$key" "relative/path" "$extra"
	bad "$sec.$key relative" "$F:2: [$sec] $key: path \"relative/path\" must be absolute"
done <<EOF
daemon lock_file
database path
ca certificate
ca chain
ca key_pin_file
ca key_passphrase_file
ca crl_path
hub connection_string_file
hub ca_file
enrol tls_certificate
enrol tls_key
api tokens_file
sweep dropin_dir
import manifest_signer
EOF
conf ca key "relative/ca.key"
bad "ca.key relative" "$F:2: [ca] key: a key file path must be absolute (or a pkcs11: URI)"
conf ca key "pkcs11:token=fleet;object=intermediate"
good "ca.key pkcs11 URI"

# Listen addresses.
ENR="tls_certificate = /etc/fleetcert/enrol.pem
tls_key = $T/absent-enrol.key"
LMSG='is not HOST:PORT, [IPV6]:PORT, unix:/PATH, systemd[:NAME] or fd:N'
for v in "nohost" "0.0.0.0:" "0.0.0.0:65536" "0.0.0.0:84x3" "[::1:8443" \
    "bad_host!:8443" "systemd:" "systemd:a/b" "fd:" "fd:2" "fd:70000"; do
	conf enrol listen "$v" "$ENR"
	bad "enrol.listen = $v" "$F:2: [enrol] listen: \"$v\" $LMSG"
done
for v in "0.0.0.0:8443" "[::]:8443" "enrol.example.net:443" "127.0.0.1:0" \
    "systemd" "systemd:enrol" "fd:3" "unix:/run/fleetcert/enrol.sock"; do
	conf enrol listen "$v" "$ENR"
	good "enrol.listen = $v"
done
conf enrol listen "0.0.0.0:8443"
bad "enrol.listen without TLS" \
	"$F:0: [enrol] tls_certificate: missing (required when listen is set)"
conf api listen "unix:run/api.sock"
bad "api.listen = unix:relative" "$F:2: [api] listen: \"unix:run/api.sock\": the socket path must be absolute and shorter than 108 bytes"
for v in "localhost" "127.0.0.1:99999"; do
	conf api listen "$v"
	bad "api.listen = $v" "$F:2: [api] listen: \"$v\" $LMSG"
done
conf api listen "0.0.0.0:8450"
bad "api.listen non-loopback" \
	"$F:2: [api] listen: \"0.0.0.0:8450\" is not a loopback address (set allow_remote = true to allow it)"
conf api listen "api.example.net:8450"
bad "api.listen non-loopback name" \
	"$F:2: [api] listen: \"api.example.net:8450\" is not a loopback address (set allow_remote = true to allow it)"
conf api listen "0.0.0.0:8450" "allow_remote = true"
good "api.listen non-loopback with allow_remote"
for v in "127.0.0.1:8450" "127.0.0.2:8450" "[::1]:8450" "localhost:8450" \
    "unix:/run/fleetcert/api.sock" "systemd" "systemd:api" "fd:3"; do
	conf api listen "$v"
	good "api.listen = $v"
done

# Structure of the file.
printf '[renewal]\ninterval_seconds = 60\nfrobnicate = 1\n' > "$F"
bad "unknown key" "$F:3: [renewal] frobnicate: unknown key"
printf '[renewal]\ninterval_seconds = 60\ninterval_seconds = 61\n' > "$F"
bad "duplicate key" "$F:3: [renewal] interval_seconds: duplicate key"
printf '[renewal]\ninterval_seconds = 60\n[renewal]\n' > "$F"
bad "duplicate section" "$F:3: [renewal]: duplicate section"
printf '[hub]\n%s\n[hub]\n' "$HUBC" > "$F"
bad "duplicate hub section" "$F:3: [hub]: duplicate section"
printf '[hub a]\n%s\n[hub a]\n' "$HUBC" > "$F"
bad "duplicate named hub section" "$F:3: [hub a]: duplicate section"
printf '[hub bad name!]\n%s\n' "$HUBC" > "$F"
bad "invalid hub name" "$F:1: [hub bad name!]: hub name \"bad name!\" is not valid"
: > "$F"
i=0
while [ $i -lt 65 ]; do printf '[hub h%d]\n%s\n' $i "$HUBC" >> "$F"; i=$((i + 1)); done
bad "65 hub sections" "$F:129: [hub h64]: too many hub sections (64 at most)"
printf '[renewal\ninterval_seconds = 60\n' > "$F"
bad "unterminated section" "$F:1: unterminated section header"
printf '[frobs]\n' > "$F"
bad "unknown section" "$F:1: [frobs]: unknown section"
printf 'interval_seconds = 60\n' > "$F"
# (config.c writes an empty "[]" here today; either form is accepted)
n=$((n + 1))
if "$D" --check-config -c "$F" > "$T/out" 2> "$T/err"; then
	fail "key outside a section: accepted"
elif grep -qxE -- "$F:1: (\[\] )?interval_seconds: key outside of any section" "$T/err"; then
	echo "ok: key outside a section"
else
	fail "key outside a section: got [$(cat "$T/err")]"
fi
printf '[renewal]\njust some words\n' > "$F"
bad "line without =" "$F:2: [renewal]: expected \"key = value\""
printf '[hub]\nrate_per_second = 5\n' > "$F"
bad "hub without connection string" "$F:1: [hub] connection_string_file: missing"
printf '[renewal]\ninterval_seconds = 60\n' > "$F"
head -c 1048576 /dev/zero | tr '\0' 'a' >> "$F"
printf '\n' >> "$F"
bad "1 MiB line" "$F:3: [renewal]: line longer than 4096 bytes"
printf '[renewal]\n; caf\351\ninterval_seconds = 60\n' > "$F"
bad "non-UTF-8 byte (Latin-1 in a comment)" "$F:2: [renewal]: invalid UTF-8"
printf '[renewal]\ninterval_seconds = 6\3000\n' > "$F"
bad "non-UTF-8 byte in a value" "$F:2: [renewal]: invalid UTF-8"
printf '[renewal]\n# caf\303\251\ninterval_seconds = 60\n' > "$F"
good "UTF-8 in a comment"
printf '[renewal]\ninterval_seconds = 6\0000\n' > "$F"
bad "NUL byte" "$F:2: [renewal]: NUL byte in line"
: > "$F"
good "empty file (all defaults)"
bad_missing="$T/does-not-exist.conf"
if "$D" --check-config -c "$bad_missing" > "$T/out" 2> "$T/err"; then
	fail "missing file accepted"
else
	grep -q "^$bad_missing: cannot open: No such file" "$T/err" &&
		echo "ok: missing file" || fail "missing file: $(cat "$T/err")"
fi

# Secret files: world-readable or not a regular file is refused, naming the
# file and never its content; a missing one is only a warning for
# --check-config (the paths of a sample may not exist yet).
printf 'HostName=h;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0\n' > "$T/hub.conn"
chmod 644 "$T/hub.conn"
printf '[daemon]\nlog_level = info\n[hub]\nconnection_string_file = %s\n' "$T/hub.conn" > "$F"
bad "world-readable hub connection string" \
	"$F:4: [hub] connection_string_file: $T/hub.conn: secret file is accessible to others (mode 644); chmod o-rwx it"
grep -q SharedAccessKey "$T/err" && fail "secret content in the message"
chmod 640 "$T/hub.conn"
good "hub connection string mode 640"
printf '1234\n' > "$T/pin"
chmod 604 "$T/pin"
printf '[ca]\nkey = pkcs11:token=t;object=o\nkey_pin_file = %s\n' "$T/pin" > "$F"
bad "world-readable PIN file" \
	"$F:3: [ca] key_pin_file: $T/pin: secret file is accessible to others (mode 604); chmod o-rwx it"
printf '[api]\ntokens_file = %s\n' "$T" > "$F"
bad "secret that is a directory" "$F:2: [api] tokens_file: $T: secret is not a regular file"
printf '[hub prod]\nconnection_string_file = %s/absent.conn\n' "$T" > "$F"
good "missing secret is only a warning for --check-config"
grep -q "absent.conn does not exist" "$T/err" || fail "no warning for a missing secret"
mkdir "$T/creds"
printf 'x\n' > "$T/creds/hubconn"
chmod 644 "$T/creds/hubconn"
printf '[hub]\nconnection_string_file = hubconn\n' > "$F"
if CREDENTIALS_DIRECTORY="$T/creds" "$D" --check-config -c "$F" > "$T/out" 2> "$T/err"; then
	fail "world-readable credential accepted"
else
	grep -qxF "$F:2: [hub] connection_string_file: $T/creds/hubconn: secret file is accessible to others (mode 644); chmod o-rwx it" "$T/err" &&
		echo "ok: credential name resolved in \$CREDENTIALS_DIRECTORY" ||
		fail "credential: $(cat "$T/err")"
fi

echo "$n cases, $fails failure(s)"
[ "$fails" -eq 0 ]
