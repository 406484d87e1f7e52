#!/bin/sh
# kill -9 of fleetcertd at 20 random moments of a renewal wave (issue 5),
# restarting it each time: every device ends renewed exactly once, nothing
# lost, no serial reused, no certificate without its audit entry; renewals
# interrupted between reservation and record are voided (never delivered).
. "$top_srcdir/tests/renew-lib.sh"
N=${RENEW_N:-400}
KILLS=${RENEW_KILLS:-20}
RENEW_RATE=100
renew_setup "$N" --expire-in-days 2-20 --self-signed 0.2 --thumbprint sha1
renew_conf
seed=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
echo "random seed $seed"
k=0
while [ "$k" -lt "$KILLS" ]; do
	renew_daemon_start
	# A random moment after start: the first kills within 0.3 s
	# (start-up, recovery, reservation, signing, recording), the others
	# within 2 s (hub calls, confirmations, promotions).
	d=$(awk -v s="$seed" -v k="$k" 'BEGIN { srand(s + k);
	    printf "%.3f", k < 6 ? 0.02 + rand() * 0.3 : 0.2 + rand() * 1.8 }')
	sleep "$d"
	renew_daemon_kill9
	k=$((k + 1))
done
pass "$KILLS kill -9 done"
renew_daemon_start
if renew_wait_done "$N" 300; then
	pass "wave completed after the crashes"
else
	fail "wave did not complete after the crashes"
fi
renew_check_all "$N"
voided=$(sql "SELECT count(*) FROM audit WHERE action = 'cert.void'")
echo "renewals voided by crashes: $voided"
# A voided serial never reaches a device: no delivery row, no DER.
vd=$(sql "SELECT count(*) FROM certificates c WHERE status = 'revoked' AND (der IS NOT NULL OR EXISTS (SELECT 1 FROM deliveries d WHERE d.serial = c.serial))")
[ "$vd" -eq 0 ] && pass "voided reservations were never signed into the inventory or queued" ||
	fail "$vd voided rows carry a certificate or a delivery"
serials=$(sql "SELECT count(*) FROM certificates")
dist=$(sql "SELECT count(DISTINCT serial) FROM certificates")
[ "$serials" -eq "$dist" ] && pass "no serial reused" || fail "serials reused"
[ "$fails" -eq 0 ]
