#!/bin/sh
# The shipped systemd units: `systemd-analyze verify` finds nothing to say
# about them (ExecStart pointed at the built binary in a scratch copy, as the
# installed path does not exist here); `systemd-analyze security` scores the
# service 1.2 or lower; the sysusers.d and tmpfiles.d entries create the
# user and the directories with the right owners and modes in a scratch root.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
command -v systemd-analyze > /dev/null || { echo "no systemd-analyze"; exit 77; }
T=$(mktemp -d /tmp/fc-units.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
S=$(cd "$top_builddir/systemd" && pwd)
bin=$(cd "$top_builddir" && pwd)/fleetcertd

for u in fleetcertd.service fleetcertd.socket fleetcert-sweep.service; do
	[ -f "$S/$u" ] || { fail "$u was not generated"; continue; }
	grep -q '@[a-z]*@' "$S/$u" && fail "$u: unsubstituted @var@"
	sed -e "s|^ExecStart=[^ ]*/fleetcertd|ExecStart=$bin|" "$S/$u" > "$T/$u"
done
cp "$top_srcdir/systemd/fleetcert-sweep.timer" "$T/"
grep -q "^ExecStart=$bin -c " "$T/fleetcertd.service" || fail "ExecStart not rewritten"

cd "$T" || exit 1
for u in fleetcertd.service fleetcertd.socket fleetcert-sweep.service fleetcert-sweep.timer; do
	if systemd-analyze verify --man=no "./$u" > "$T/verify.out" 2>&1 &&
	    [ ! -s "$T/verify.out" ]; then
		echo "ok: verify $u"
	else
		fail "verify $u: $(cat "$T/verify.out")"
	fi
done

# Score the shipped unit (not the copy): the path of ExecStart is no factor.
for u in fleetcertd.service fleetcert-sweep.service; do
	if systemd-analyze security --offline=yes --threshold=12 \
	    "$S/$u" > "$T/sec.out" 2>&1; then
		score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/sec.out")
		echo "ok: security $u: exposure $score"
		case "$score" in
		0.*|1.0|1.1|1.2) ;;
		*) fail "security $u: score '$score' above 1.2" ;;
		esac
	else
		fail "security $u: $(tail -n 20 "$T/sec.out")"
	fi
done
cd "$OLDPWD" || exit 1

# sysusers + tmpfiles in a scratch root.
R="$T/root"
mkdir -p "$R/etc" "$R/var/lib" "$R/run"
: > "$R/etc/passwd"; : > "$R/etc/group"; : > "$R/etc/shadow"; : > "$R/etc/gshadow"
if systemd-sysusers --root="$R" "$top_srcdir/systemd/sysusers.d/fleetcert.conf" > "$T/su.out" 2>&1 &&
    grep -q '^fleetcert:x:[0-9]*:[0-9]*:.*:/var/lib/fleetcert:/usr/sbin/nologin$' "$R/etc/passwd"; then
	echo "ok: sysusers creates the fleetcert system user"
else
	fail "sysusers: $(cat "$T/su.out") / $(cat "$R/etc/passwd")"
fi
tf="$top_builddir/systemd/tmpfiles.d/fleetcert.conf"
if systemd-tmpfiles --root="$R" --create "$tf" > "$T/tf.out" 2>&1; then
	uid=$(sed -n 's/^fleetcert:x:\([0-9]*\):.*/\1/p' "$R/etc/passwd")
	set -- $(stat -c '%a %u' "$R/var/lib/fleetcert")
	[ "$1" = 700 ] && [ "$2" = "$uid" ] &&
		echo "ok: tmpfiles: /var/lib/fleetcert 0700 fleetcert" ||
		fail "tmpfiles: /var/lib/fleetcert is $1 owned by $2"
	cred=$(sed -n 's|^d \(.*/credentials\) .*|\1|p' "$tf")
	set -- $(stat -c '%a %u' "$R$cred")
	[ "$1" = 700 ] && [ "$2" = 0 ] &&
		echo "ok: tmpfiles: $cred 0700 root" ||
		fail "tmpfiles: $cred is $1 owned by $2"
else
	fail "tmpfiles: $(cat "$T/tf.out")"
fi

[ "$fails" -eq 0 ]
