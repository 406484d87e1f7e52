# start-hubsim.sh — source this from a test script (sh/bash) to run the real
# fleetcert-hubsim over TLS on a free port:
#
#   . "$top_srcdir/tests/start-hubsim.sh"        # sets up PKI and starts it
#   trap hubsim_cleanup EXIT
#
# Before sourcing you may set:
#   HUBSIM_ARGS        extra options for fleetcert-hubsim (e.g. --tier S3)
#   HUBSIM_DEFER_START=1  only create the PKI; call hubsim_start [ARGS] later
#                      (e.g. after generating a fleet with hubsim_gen_fleet)
#
# Exported after start:
#   HUBSIM_URL         https://127.0.0.1:PORT
#   HUBSIM_PORT, HUBSIM_PID, HUBSIM_DIR (temp dir, removed by hubsim_cleanup)
#   HUBSIM_CA          CA file that verifies the simulator's TLS certificate
#   HUBSIM_CONN        HostName=127.0.0.1:PORT;SharedAccessKeyName=iothubowner;
#                      SharedAccessKey=... (a connection string)
#   HUBSIM_CONN_SERVICE, HUBSIM_CONN_REGISTRY_READ, HUBSIM_CONN_REGISTRY_RW
#   HUBSIM_KEY_OWNER, HUBSIM_KEY_SERVICE, HUBSIM_KEY_RR, HUBSIM_KEY_RRW
#   HUBSIM_CONTROL_TOKEN, HUBSIM_CONTROL_TOKEN_FILE
#   HUBSIM_ROOT_CERT   device PKI root (the simulator's --trust-root)
#   HUBSIM_INT_CERT, HUBSIM_INT_KEY   an intermediate CA under it that can
#                      issue device certificates (issue 3 profile)
# Functions: hubsim_start [ARGS], hubsim_stop, hubsim_cleanup,
#   hubsim_sas POLICY KEY [SR [EXPIRY]]   prints a SAS token
#   hubsim_call METHOD PATH [BODY [POLICY KEY]]  hub call (iothubowner by
#       default) with api-version; writes body to $HUBSIM_DIR/body, headers
#       to $HUBSIM_DIR/headers, prints the HTTP status
#   hubsim_ctl METHOD PATH [BODY]   control call (/_sim/...), prints the body
#   hubsim_gen_fleet ARGS...        gen-fleet with the intermediate CA

: "${top_builddir:=.}"
: "${top_srcdir:=.}"
HUBSIM_BIN="${HUBSIM_BIN:-$top_builddir/fleetcert-hubsim}"
HUBSIM_API="2021-04-12"

hubsim_b64key() {
	openssl rand -base64 32 | tr -d '\n'
}

hubsim_pki() {
	HUBSIM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hubsim.XXXXXX")
	_hs_d=$HUBSIM_DIR
	# TLS: a test CA and a server certificate for 127.0.0.1 / localhost.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_hs_d/tls-ca.key" -out "$_hs_d/tls-ca.pem" -days 2 \
		-subj "/CN=hubsim test TLS CA" >/dev/null 2>&1 || return 1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_hs_d/tls.key" -out "$_hs_d/tls.csr" -subj "/CN=127.0.0.1" \
		>/dev/null 2>&1 || return 1
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
		> "$_hs_d/tls.ext"
	openssl x509 -req -in "$_hs_d/tls.csr" -CA "$_hs_d/tls-ca.pem" \
		-CAkey "$_hs_d/tls-ca.key" -CAcreateserial -days 2 \
		-extfile "$_hs_d/tls.ext" -out "$_hs_d/tls.pem" >/dev/null 2>&1 || return 1
	# Device PKI: root and an intermediate (pathlen 0).
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_hs_d/root.key" -out "$_hs_d/root.pem" -days 3650 \
		-subj "/CN=hubsim test device root" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || return 1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$_hs_d/int.key" -out "$_hs_d/int.csr" \
		-subj "/CN=hubsim test issuing CA" >/dev/null 2>&1 || return 1
	printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' \
		> "$_hs_d/int.ext"
	openssl x509 -req -in "$_hs_d/int.csr" -CA "$_hs_d/root.pem" -CAkey "$_hs_d/root.key" \
		-CAcreateserial -days 3000 -extfile "$_hs_d/int.ext" \
		-out "$_hs_d/int.pem" >/dev/null 2>&1 || return 1
	HUBSIM_KEY_OWNER=$(hubsim_b64key)
	HUBSIM_KEY_SERVICE=$(hubsim_b64key)
	HUBSIM_KEY_RR=$(hubsim_b64key)
	HUBSIM_KEY_RRW=$(hubsim_b64key)
	openssl rand -hex 24 > "$_hs_d/control-token"
	HUBSIM_CONTROL_TOKEN=$(cat "$_hs_d/control-token")
	HUBSIM_CONTROL_TOKEN_FILE="$_hs_d/control-token"
	HUBSIM_CA="$_hs_d/tls-ca.pem"
	HUBSIM_ROOT_CERT="$_hs_d/root.pem"
	HUBSIM_INT_CERT="$_hs_d/int.pem"
	HUBSIM_INT_KEY="$_hs_d/int.key"
	export HUBSIM_DIR HUBSIM_CA HUBSIM_ROOT_CERT HUBSIM_INT_CERT HUBSIM_INT_KEY
	export HUBSIM_KEY_OWNER HUBSIM_KEY_SERVICE HUBSIM_KEY_RR HUBSIM_KEY_RRW
	export HUBSIM_CONTROL_TOKEN HUBSIM_CONTROL_TOKEN_FILE
}

hubsim_gen_fleet() {
	"$HUBSIM_BIN" gen-fleet --ca-cert "$HUBSIM_INT_CERT" \
		--ca-key "$HUBSIM_INT_KEY" "$@"
}

hubsim_start() {
	rm -f "$HUBSIM_DIR/port"
	# shellcheck disable=SC2086
	"$HUBSIM_BIN" --listen 127.0.0.1:0 --port-file "$HUBSIM_DIR/port" \
		--cert "$HUBSIM_DIR/tls.pem" --key "$HUBSIM_DIR/tls.key" \
		--hub-name testhub \
		--policy "iothubowner=$HUBSIM_KEY_OWNER" \
		--policy "service=$HUBSIM_KEY_SERVICE" \
		--policy "registryRead=$HUBSIM_KEY_RR" \
		--policy "registryReadWrite=$HUBSIM_KEY_RRW" \
		--trust-root "$HUBSIM_ROOT_CERT" \
		--control-token "$HUBSIM_CONTROL_TOKEN_FILE" \
		${HUBSIM_ARGS:-} "$@" 2>>"$HUBSIM_DIR/hubsim.log" &
	HUBSIM_PID=$!
	_hs_i=0
	while [ ! -s "$HUBSIM_DIR/port" ]; do
		_hs_i=$((_hs_i + 1))
		if [ $_hs_i -gt 300 ] || ! kill -0 "$HUBSIM_PID" 2>/dev/null; then
			echo "fleetcert-hubsim did not start:" >&2
			cat "$HUBSIM_DIR/hubsim.log" >&2
			return 1
		fi
		sleep 0.1
	done
	HUBSIM_PORT=$(cat "$HUBSIM_DIR/port")
	HUBSIM_URL="https://127.0.0.1:$HUBSIM_PORT"
	HUBSIM_HOST="127.0.0.1:$HUBSIM_PORT"
	HUBSIM_CONN="HostName=$HUBSIM_HOST;SharedAccessKeyName=iothubowner;SharedAccessKey=$HUBSIM_KEY_OWNER"
	HUBSIM_CONN_SERVICE="HostName=$HUBSIM_HOST;SharedAccessKeyName=service;SharedAccessKey=$HUBSIM_KEY_SERVICE"
	HUBSIM_CONN_REGISTRY_READ="HostName=$HUBSIM_HOST;SharedAccessKeyName=registryRead;SharedAccessKey=$HUBSIM_KEY_RR"
	HUBSIM_CONN_REGISTRY_RW="HostName=$HUBSIM_HOST;SharedAccessKeyName=registryReadWrite;SharedAccessKey=$HUBSIM_KEY_RRW"
	export HUBSIM_PID HUBSIM_PORT HUBSIM_URL HUBSIM_HOST HUBSIM_CONN
	export HUBSIM_CONN_SERVICE HUBSIM_CONN_REGISTRY_READ HUBSIM_CONN_REGISTRY_RW
}

# Stops the simulator; returns non-zero when it did not exit cleanly (a
# crash, or a sanitizer report in its log).
hubsim_stop() {
	_rc=0
	if [ -n "${HUBSIM_PID:-}" ]; then
		kill "$HUBSIM_PID" 2>/dev/null
		wait "$HUBSIM_PID" 2>/dev/null || _rc=$?
		HUBSIM_PID=
	fi
	if grep -q -e 'runtime error' -e 'Sanitizer' "$HUBSIM_DIR/hubsim.log" 2>/dev/null; then
		_rc=1
	fi
	if [ "$_rc" != 0 ]; then
		echo "fleetcert-hubsim exited with status $_rc:" >&2
		tail -40 "$HUBSIM_DIR/hubsim.log" >&2
	fi
	return "$_rc"
}

# For an EXIT trap: stops the simulator, removes the temp dir. It keeps the
# script's exit status, except that with HUBSIM_CHECK_EXIT=1 an unclean
# simulator exit (crash, sanitizer report) makes the script exit 1.
hubsim_cleanup() {
	_bad=0
	hubsim_stop || _bad=1
	[ -n "${HUBSIM_DIR:-}" ] && rm -rf "$HUBSIM_DIR"
	if [ "$_bad" = 1 ] && [ -n "${HUBSIM_CHECK_EXIT:-}" ]; then
		exit 1
	fi
	return 0
}

# URL-encode as the SDKs do (RFC 3986 unreserved characters kept).
hubsim_urlencode() {
	jq -rn --arg s "$1" '$s|@uri'
}

# hubsim_sas POLICY BASE64KEY [SR [EXPIRY]]
hubsim_sas() {
	_sr=${3:-$HUBSIM_HOST}
	_se=${4:-$(($(date +%s) + 3600))}
	_enc=$(hubsim_urlencode "$_sr")
	_hexkey=$(printf '%s' "$2" | base64 -d | od -An -v -tx1 | tr -d ' \n')
	_sig=$(printf '%s\n%s' "$_enc" "$_se" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$_hexkey" -binary |
		base64 | tr -d '\n')
	printf 'SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s' "$_enc" \
		"$(hubsim_urlencode "$_sig")" "$_se" "$1"
}

# hubsim_call METHOD PATH [BODY [POLICY KEY]] -> prints status
hubsim_call() {
	_pol=${4:-iothubowner}
	_key=${5:-$HUBSIM_KEY_OWNER}
	_tok=$(hubsim_sas "$_pol" "$_key")
	case "$2" in
	*\?*) _url="$HUBSIM_URL$2&api-version=$HUBSIM_API" ;;
	*) _url="$HUBSIM_URL$2?api-version=$HUBSIM_API" ;;
	esac
	hubsim_raw "$1" "$_url" "${3:-}" -H "Authorization: $_tok"
}

# hubsim_raw METHOD URL BODY [curl args...] -> prints status
hubsim_raw() {
	_m=$1 _u=$2 _b=$3
	shift 3
	if [ -n "$_b" ]; then
		curl -sS --cacert "$HUBSIM_CA" -X "$_m" -o "$HUBSIM_DIR/body" \
			-D "$HUBSIM_DIR/headers" -w '%{http_code}' \
			-H 'Content-Type: application/json; charset=utf-8' \
			--data-binary "$_b" "$@" "$_u"
	else
		curl -sS --cacert "$HUBSIM_CA" -X "$_m" -o "$HUBSIM_DIR/body" \
			-D "$HUBSIM_DIR/headers" -w '%{http_code}' "$@" "$_u"
	fi
}

hubsim_ctl() {
	if [ -n "${3:-}" ]; then
		curl -sS --cacert "$HUBSIM_CA" -X "$1" \
			-H "Authorization: Bearer $HUBSIM_CONTROL_TOKEN" \
			-H 'Content-Type: application/json' --data-binary "$3" \
			"$HUBSIM_URL$2"
	else
		curl -sS --cacert "$HUBSIM_CA" -X "$1" \
			-H "Authorization: Bearer $HUBSIM_CONTROL_TOKEN" \
			"$HUBSIM_URL$2"
	fi
}

hubsim_pki || { echo "start-hubsim.sh: PKI setup failed" >&2; return 1 2>/dev/null || exit 1; }
if [ -z "${HUBSIM_DEFER_START:-}" ]; then
	hubsim_start || { hubsim_cleanup; return 1 2>/dev/null || exit 1; }
fi
