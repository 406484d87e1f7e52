#!/bin/sh
# demo.sh (test) — runs scripts/demo.sh against this build (--no-build: no
# packages installed, nothing rebuilt) with a smaller fleet, and checks its
# exit status, the lines that carry its claims, that it removed its
# directory and that none of the processes it started is left.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
for c in bash openssl curl jq sqlite3; do
	command -v $c >/dev/null || { echo "SKIP: needs $c"; exit 77; }
done
out=$(mktemp "${TMPDIR:-/tmp}/demo-test.XXXXXX")
trap 'rm -f "$out"' EXIT
bash "$top_srcdir/scripts/demo.sh" --no-build --build-dir "$top_builddir" \
	--count 150 --quiet > "$out" 2>&1
rc=$?
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ $rc -eq 0 ] || fail "scripts/demo.sh exited $rc"
want() {	# want REGEX WHAT
	grep -Eq "$1" "$out" && echo "ok: $2" || fail "$2 (no line matching '$1')"
}
want '^   ok   fleetcertctl import .*: imported 150, skipped 0' "150 factory records imported"
want '^   ok   every online device due got its certificate by direct method' "renewal by direct method"
want '^   ok   offline devices got it in their twin instead' "twin fallback"
want '^   ok   the offline devices installed it from their twin' "offline devices caught up"
want '^   ok   [0-9]+ of [0-9]+ expired devices re-enrolled' "re-enrolment through fleetcert-device"
want '^   ok   the hub shows dev-[0-9]+ as disabled' "revoked device disabled at the hub"
want '^   ok   the CRL .* verifies and lists its certificate' "CRL published"
want '^   ok   the simulator reports each of those devices using exactly that certificate' "simulator agrees with the inventory"
want 'Expiry histogram BEFORE' "histogram before"
want 'Expiry histogram AFTER' "histogram after"
want '^demo.sh: all checks passed' "final verdict"
grep -q '^   FAIL' "$out" && fail "a check of the demo failed"
# Renewed count matches the fleet: the summary and the check agree.
n=$(sed -n "s/^   renewed and confirmed: *\\([0-9]*\\).*/\\1/p" "$out")
[ -n "$n" ] && [ "$n" -gt 0 ] && echo "ok: $n renewed" || fail "no renewal count in the summary"
# Cleaned up: the directory is gone, no process of it is left.
dir=$(sed -n 's/^== 1\. A throwaway PKI in \(.*\)$/\1/p' "$out" | sed 's/\x1b\[[0-9;]*m//g')
if [ -z "$dir" ]; then
	fail "no demo directory in the output"
else
	[ ! -e "$dir" ] && echo "ok: $dir removed" || fail "$dir left behind"
	sleep 0.5
	if pgrep -f "$dir" >/dev/null 2>&1; then
		fail "processes of $dir left running"
		pgrep -af "$dir"
	else
		echo "ok: no process of the demo left"
	fi
fi
if [ $fails -ne 0 ]; then
	echo "--- scripts/demo.sh output ---"
	cat "$out"
	exit 1
fi
echo "demo.sh: ok"
