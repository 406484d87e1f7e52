# enrol-lib.sh — sourced by the enrolment script tests and bench/enrol.sh:
# makes CA material, a TLS certificate for the listener (127.0.0.1, signed
# by the root the devices trust), a configuration, and starts/stops
# tests/enrol-testd (the listener as fleetcertd wires it: signer process,
# recovery, httpd with TLS). Needs $top_srcdir, $top_builddir.
# After enrol_setup: $T (temp dir), $CONF, $DB, $ROOT, $URL, $SRV_PID.

enrol_setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/fc-enrol.XXXXXX")
	trap enrol_cleanup EXIT INT TERM
	sh "$top_srcdir/tests/mkca.sh" "$T/ca" >/dev/null
	ROOT=$T/ca/root.pem
	# The listener's certificate, issued by the test root.
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$T/tls.key" 2>/dev/null
	chmod 600 "$T/tls.key"
	openssl req -new -key "$T/tls.key" -subj "/CN=127.0.0.1" \
		-out "$T/tls.csr" 2>/dev/null
	printf 'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' \
		> "$T/tls.ext"
	openssl x509 -req -in "$T/tls.csr" -CA "$T/ca/root.pem" \
		-CAkey "$T/ca/root.key" -CAcreateserial -days 30 \
		-extfile "$T/tls.ext" -out "$T/tls.pem" 2>/dev/null
	DB=$T/fleetcert.db
	CONF=$T/fleetcertd.conf
	cat > "$CONF" <<CNF
[daemon]
log_level = ${ENROL_LOG_LEVEL:-warn}
[database]
path = $DB
[ca]
certificate = $T/ca/intermediate.pem
chain = $T/ca/chain.pem
key = $T/ca/intermediate.key
validity_days = 365
[enrol]
listen = 127.0.0.1:0
tls_certificate = $T/tls.pem
tls_key = $T/tls.key
challenge_ttl_seconds = 300
per_serial_per_hour = ${ENROL_PER_SERIAL:-10}
per_address_per_minute = ${ENROL_PER_ADDRESS:-600}
CNF
}

enrol_start() {
	"$top_builddir/tests/enrol-testd" serve "$CONF" "$T/port" \
		> "$T/server.out" 2> "$T/server.err" &
	SRV_PID=$!
	i=0
	while [ ! -s "$T/port" ]; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 $SRV_PID 2>/dev/null; then
			echo "enrol-testd did not start:" >&2
			cat "$T/server.err" >&2
			exit 1
		fi
		sleep 0.1
	done
	PORT=$(cat "$T/port")
	URL=https://127.0.0.1:$PORT
}

enrol_stop() {
	if [ -n "${SRV_PID:-}" ]; then
		kill $SRV_PID 2>/dev/null || true
		wait $SRV_PID 2>/dev/null || true
		SRV_PID=
		# In a sanitizer build, a finding in the server fails the test.
		if grep -q 'Sanitizer\|runtime error:' "$T/server.err"; then
			cat "$T/server.err" >&2
			echo "FAIL: sanitizer finding in enrol-testd" >&2
			exit 1
		fi
	fi
}

enrol_cleanup() {
	enrol_stop
	[ -n "${T:-}" ] && rm -rf "$T"
}

# A device: P-256 key in $T/NAME.key (slot 0), public key NAME.pub,
# registered under id NAME with serial SERIAL.
enrol_device() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$T/$1.key" 2>/dev/null
	openssl pkey -in "$T/$1.key" -pubout -out "$T/$1.pub"
	if [ "${3:-}" != unregistered ]; then
		"$top_builddir/tests/enrol-testd" add-device "$CONF" "$1" "$2" \
			"$T/$1.pub"
	fi
}

sql() {
	sqlite3 "$DB" "$1"
}

fail() {
	echo "FAIL: $*" >&2
	[ -n "${T:-}" ] && [ -f "$T/server.err" ] && tail -20 "$T/server.err" >&2
	exit 1
}
