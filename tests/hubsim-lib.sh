# hubsim-lib.sh — assertions shared by the fleetcert-hubsim script tests.
# Source after setting HUBSIM_ARGS / HUBSIM_DEFER_START as needed; it sources
# start-hubsim.sh and installs the cleanup trap.
set -u
: "${top_srcdir:=.}"
: "${top_builddir:=.}"
command -v curl >/dev/null && command -v openssl >/dev/null &&
	command -v jq >/dev/null || { echo "SKIP: needs curl, openssl, jq"; exit 77; }

HUBSIM_CHECK_EXIT=1
. "$top_srcdir/tests/start-hubsim.sh" || exit 99
trap hubsim_cleanup EXIT INT TERM
[ -n "${HUBSIM_KEEP:-}" ] && trap - EXIT

TESTS_RUN=0

fail() {
	echo "FAIL: $*" >&2
	echo "--- last body:" >&2
	cat "$HUBSIM_DIR/body" >&2 2>/dev/null
	echo >&2
	echo "--- simulator log (tail):" >&2
	tail -20 "$HUBSIM_DIR/hubsim.log" >&2
	exit 1
}

ok() {
	TESTS_RUN=$((TESTS_RUN + 1))
	echo "ok $TESTS_RUN - $*"
}

# expect_status GOT WANT WHAT
expect_status() {
	[ "$1" = "$2" ] || fail "$3: HTTP status $1, expected $2"
	ok "$3 ($1)"
}

hdr() {
	tr -d '\r' < "$HUBSIM_DIR/headers" |
		awk -v h="$1" 'tolower($0) ~ "^"tolower(h)":" {sub(/^[^:]*: */, ""); print}'
}

# expect_error GOT_STATUS WANT_STATUS CODE NAME SHAPE(a|b) WHAT
# Checks the status, header iothub-errorcode and the body shape:
#   a: {"Message":"ErrorCode:<Name>;...","ExceptionMessage":"Tracking ID:..."}
#   b: {"Message":"<JSON with errorCode, trackingId, message, info,
#       timestampUtc>","ExceptionMessage":""}
expect_error() {
	[ "$1" = "$2" ] || fail "$6: HTTP status $1, expected $2"
	h=$(hdr iothub-errorcode)
	[ "$h" = "$4" ] || fail "$6: iothub-errorcode '$h', expected $4"
	b="$HUBSIM_DIR/body"
	case "$5" in
	a)
		jq -e --arg n "$4" '(.Message | startswith("ErrorCode:" + $n + ";"))
		    and (.ExceptionMessage | startswith("Tracking ID:"))' "$b" \
		    >/dev/null || fail "$6: body is not shape A with $4"
		;;
	b)
		jq -e --argjson c "$3" '(.Message | fromjson | .errorCode == $c
		    and (.trackingId | length > 0) and (.message | length > 0)
		    and has("info") and has("timestampUtc"))
		    and .ExceptionMessage == ""' "$b" >/dev/null ||
		    fail "$6: body is not shape B with errorCode $3"
		;;
	esac
	ok "$6 ($1 $3 $4, shape $5)"
}

# body_jq FILTER — evaluates jq -e on the last body
body_jq() {
	jq -e "$1" "$HUBSIM_DIR/body" >/dev/null
}

# A device registration body.
dev_json() {
	printf '{"deviceId":"%s","status":"%s"%s}' "$1" "${2:-enabled}" "${3:-}"
}
