#!/bin/sh
# The sample configuration and the man pages keep up with the parser: every
# key of the keys[] table in src/config.c appears in etc/fleetcertd.conf
# (in its section) and in fleetcertd.conf(5) (in its section, with its
# range for integers); the sample passes --check-config (missing secret
# files are only warnings there); the man pages lint clean.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
T=$(mktemp -d /tmp/fc-docs.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
CONF="$top_srcdir/etc/fleetcertd.conf"
MAN5="$top_srcdir/doc/fleetcertd.conf.5"

sed -n '/static const struct key_def keys/,/^};/p' "$top_srcdir/src/config.c" |
	sed -n 's/.*{ "\([a-z]*\)", "\([a-z_]*\)", \(K_[A-Z]*\), [CH]([a-z_]*), \([0-9]*\), \([0-9]*\) }.*/\1 \2 \3 \4 \5/p' \
	> "$T/keys"
nkeys=$(wc -l < "$T/keys")
[ "$nkeys" -ge 30 ] || fail "read only $nkeys keys from src/config.c"

while read -r sec key type min max; do
	# the sample: "key =", ";key =" or "#key =" after "[sec]" / "[sec NAME]"
	awk -v s="$sec" -v k="$key" '
		/^\[/ { cur = $0; sub(/^\[/, "", cur); sub(/[] ].*/, "", cur); next }
		cur == s && $0 ~ "^[;#]?" k "[ \t]*=" { found = 1 }
		END { exit !found }' "$CONF" ||
		fail "sample: [$sec] $key missing"
	# the man page: ".B key" under ".SH SECTION [sec...", and for an
	# integer "MIN to MAX" before the next .TP
	awk -v s="$sec" -v k="$key" -v t="$type" -v r="$min to $max" '
		/^\.SH/ { insec = index($0, "[" s "]") > 0; inkey = 0; next }
		/^\.TP/ { inkey = 0; next }
		insec && $0 == ".B " k { found = 1; inkey = 1; next }
		inkey && index($0, r) { ranged = 1 }
		END { exit !(found && (t != "K_INT" || ranged)) }' "$MAN5" ||
		fail "fleetcertd.conf(5): [$sec] $key missing (or range $min to $max)"
done < "$T/keys"
echo "checked $nkeys keys"

if "$top_builddir/fleetcertd" --check-config -c "$CONF" > "$T/out" 2> "$T/err"; then
	echo "ok: the sample passes --check-config"
	if grep -v 'does not exist (needed at start-up)' "$T/err" | grep -q .; then
		fail "sample: unexpected messages: $(cat "$T/err")"
	fi
else
	fail "sample refused: $(cat "$T/err")"
fi

if command -v mandoc > /dev/null; then
	for m in "$top_srcdir"/doc/*.[1-8]; do
		if mandoc -T lint -W warning "$m" > "$T/lint" 2>&1; then
			echo "ok: mandoc lint $(basename "$m")"
		else
			fail "mandoc lint: $(cat "$T/lint")"
		fi
	done
else
	echo "mandoc not installed: man pages not linted"
fi
# groff's own warnings (line breaking at 80 columns): the pages of this
# fragment; the others' pages are linted by mandoc above.
if command -v man > /dev/null; then
	for m in "$top_srcdir/doc/fleetcertd.8" "$top_srcdir/doc/fleetcertd.conf.5"; do
		LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -l "$m" \
		    > /dev/null 2> "$T/manw"
		[ -s "$T/manw" ] && fail "man --warnings $(basename "$m"): $(cat "$T/manw")"
	done
fi
[ "$fails" -eq 0 ]
