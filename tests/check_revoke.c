/*
 * check_revoke.c — the revocation module's SQL and planner on a real SQLite
 * database in a temporary directory: selectors (each criterion, AND, the
 * order of deviceIds, lineage through renewed_from), revoking a device
 * (only unexpired certificates, idempotent, one propagation row), the
 * propagation queue's checkpoint (batches marked in flight before the
 * call, in-flight rows first after a crash, nothing claimed twice), bad
 * selectors refused, the planner's estimate, the CRL iterator and number.
 * The hub side is tested by tests/revoke.sh and tests/revoke-bulk.sh.
 */
#include "fc_build.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "inventory_revoke.h"
#include "revoke.h"
#include "testutil.h"

static struct db *db;
static int64_t now;

static void
mkdev(int i, const char *owner, const char *batch)
{
	static unsigned char key[91] = { 0x30, 0x59 };
	struct inv_device d;

	memset(&d, 0, sizeof(d));
	snprintf(d.device_id, sizeof(d.device_id), "dev-%03d", i);
	snprintf(d.se_serial, sizeof(d.se_serial), "0123%012x01", i);
	d.identity_key = key;
	d.identity_key_len = sizeof(key);
	snprintf(d.owner, sizeof(d.owner), "%s", owner);
	snprintf(d.batch, sizeof(d.batch), "%s", batch);
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
}

static void
mkcert(int dev, int serial, int64_t not_before, int64_t not_after,
    enum inv_cert_status st, int from)
{
	static unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct inv_cert c;

	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%032x", serial);
	snprintf(c.device_id, sizeof(c.device_id), "dev-%03d", dev);
	c.der = der;
	c.der_len = sizeof(der);
	c.not_before = not_before;
	c.not_after = not_after;
	memset(c.sha1, 'A', 40);
	memset(c.sha256, 'B', 64);
	c.status = st;
	c.issued_by = INV_ISSUED_IMPORT;
	if (from > 0)
		snprintf(c.renewed_from, sizeof(c.renewed_from), "%032x", from);
	ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_OK);
}

/*
 * dev-001 acme/b1: cert 1 (active), renewed 2 from 1 (active)
 * dev-002 acme/b2: cert 3, expired long ago; cert 4 renewed from 2 (!)
 * dev-003 globex/b1: cert 5, issued at now - 10 days
 * dev-004 globex/b2: no certificate
 */
static void
setup(void)
{
	char *path = NULL;

	if (asprintf(&path, "%s/rev.db", tu_tmpdir()) < 0)
		abort();
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	free(path);
	now = fc_now();
	mkdev(1, "acme", "b1");
	mkdev(2, "acme", "b2");
	mkdev(3, "globex", "b1");
	mkdev(4, "globex", "b2");
	mkcert(1, 1, now - 400 * 86400, now + 86400, INV_CERT_SUPERSEDED, 0);
	mkcert(1, 2, now - 100 * 86400, now + 300 * 86400, INV_CERT_ACTIVE, 1);
	mkcert(2, 3, now - 900 * 86400, now - 500 * 86400, INV_CERT_ACTIVE, 0);
	mkcert(2, 4, now - 50 * 86400, now + 300 * 86400, INV_CERT_ACTIVE, 2);
	mkcert(3, 5, now - 10 * 86400, now + 300 * 86400, INV_CERT_ACTIVE, 0);
}

static void
teardown(void)
{
	db_close(db);
	db = NULL;
}

struct got {
	char	 ids[16][FC_DEVICE_ID_MAX];
	int	 n;
};

static int
got_cb(void *arg, const char *id, const char *hub)
{
	struct got *g = arg;

	(void)hub;
	if (g->n < 16)
		snprintf(g->ids[g->n++], FC_DEVICE_ID_MAX, "%s", id);
	return 0;
}

static char *
match(const struct inv_selector *s)
{
	static char out[256];
	struct got g;
	int i;

	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(inv_rev_match(db, s, got_cb, &g), FC_OK);
	out[0] = '\0';
	for (i = 0; i < g.n; i++) {
		strcat(out, i ? "," : "");
		strcat(out, g.ids[i] + 4);
	}
	return out;
}

START_TEST(test_selectors)
{
	struct inv_selector s;
	char lin[FC_CERT_SERIAL_MAX];

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(inv_rev_match(db, &s, got_cb, NULL), FC_EINVAL);
	s.owner = "acme";
	ck_assert_str_eq(match(&s), "001,002");
	s.batch = "b1";				/* AND */
	ck_assert_str_eq(match(&s), "001");
	memset(&s, 0, sizeof(s));
	s.device_ids_json = "[\"dev-004\", \"dev-002\", \"nope\", \"dev-002\"]";
	ck_assert_str_eq(match(&s), "004,002");	/* their order, once */
	memset(&s, 0, sizeof(s));
	s.serials_json = "[\"00000000000000000000000000000005\"]";
	ck_assert_str_eq(match(&s), "003");
	memset(&s, 0, sizeof(s));
	s.issued_from = now - 60 * 86400;
	s.issued_to = now;
	ck_assert_str_eq(match(&s), "002,003");
	/* Lineage: 1 -> 2 -> 4 crosses to dev-002. */
	memset(&s, 0, sizeof(s));
	snprintf(lin, sizeof(lin), "%032x", 1);
	s.lineage = lin;
	ck_assert_str_eq(match(&s), "001,002");
	snprintf(lin, sizeof(lin), "%032x", 4);
	ck_assert_str_eq(match(&s), "002");
	snprintf(lin, sizeof(lin), "%032x", 99);
	ck_assert_str_eq(match(&s), "");
	/* Revoked devices no longer match. */
	ck_assert_int_eq(inv_device_set_status(db, "dev-001",
	    INV_DEV_REVOKED, "test", "x"), FC_OK);
	memset(&s, 0, sizeof(s));
	s.owner = "acme";
	ck_assert_str_eq(match(&s), "002");
}
END_TEST

static int64_t
count(const char *q)
{
	sqlite3_stmt *st = NULL;
	int64_t n;

	ck_assert_int_eq(db_prepare(db, q, &st), FC_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

START_TEST(test_revoke_device)
{
	int n = -1;

	ck_assert_int_eq(inv_rev_device(db, "dev-002", 1, "fleetcert: x",
	    INV_REV_DISABLE, 0, 0, "test", &n), FC_OK);
	ck_assert_int_eq(n, 1);		/* cert 3 expired: left alone */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-002' AND status = 'revoked' AND "
	    "revocation_reason = 1"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM devices WHERE "
	    "device_id = 'dev-002' AND status = 'revoked'"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM propagation WHERE "
	    "device_id = 'dev-002' AND state = 'pending' AND action = "
	    "'disable'"), 1);
	/* Again: nothing more to revoke, one row. */
	ck_assert_int_eq(inv_rev_device(db, "dev-002", 1, "fleetcert: x",
	    INV_REV_DISABLE, 0, 0, "test", &n), FC_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(count("SELECT count(*) FROM propagation"), 1);
	/* Decommission after revoke: the action changes to delete. */
	ck_assert_int_eq(inv_rev_device(db, "dev-002", 5, "fleetcert: y",
	    INV_REV_DELETE, 0, 0, "test", &n), FC_OK);
	ck_assert_int_eq(count("SELECT count(*) FROM propagation WHERE "
	    "action = 'delete'"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM devices WHERE "
	    "device_id = 'dev-002' AND status = 'decommissioned'"), 1);
	ck_assert_int_eq(inv_rev_device(db, "nope", 1, "x", INV_REV_DISABLE,
	    0, 0, "test", &n), FC_ENOTFOUND);
}
END_TEST

START_TEST(test_claim_checkpoint)
{
	struct inv_prop p[4];
	size_t n = 0;
	int64_t b1 = 0, b2 = 0, left = 0;
	int i;

	for (i = 1; i <= 4; i++) {
		char id[16];
		snprintf(id, sizeof(id), "dev-%03d", i);
		ck_assert_int_eq(inv_rev_device(db, id, 1, "r",
		    INV_REV_DISABLE, 0, 10 - i, "test", NULL), FC_OK);
	}
	/* Lowest rank first; marked in flight (committed). */
	ck_assert_int_eq(inv_prop_claim(db, "", NULL, p, 2, &n, &b1), FC_OK);
	ck_assert_int_eq((int)n, 2);
	ck_assert_str_eq(p[0].device_id, "dev-004");
	ck_assert_str_eq(p[1].device_id, "dev-003");
	ck_assert_int_eq(p[0].inflight, 0);
	ck_assert_int_eq(count("SELECT count(*) FROM propagation WHERE "
	    "state = 'inflight'"), 2);
	/* "Crash": the next claim takes the in-flight ones first, flagged. */
	ck_assert_int_eq(inv_prop_claim(db, "", NULL, p, 3, &n, &b2), FC_OK);
	ck_assert_int_eq((int)n, 3);
	ck_assert_int_eq(p[0].inflight, 1);
	ck_assert_int_eq(p[1].inflight, 1);
	ck_assert_int_eq(p[2].inflight, 0);
	ck_assert_str_eq(p[2].device_id, "dev-002");
	ck_assert(b2 > b1);
	ck_assert_int_eq(inv_prop_done(db, "dev-004", "test", NULL), FC_OK);
	ck_assert_int_eq(inv_prop_done(db, "dev-004", "test", NULL), FC_OK);
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'device.propagated'"), 1);	/* done once */
	ck_assert_int_eq(inv_prop_retry(db, "dev-003", "hub down"), FC_OK);
	ck_assert_int_eq(inv_prop_count(db, NULL, &left), FC_OK);
	ck_assert_int_eq((int)left, 3);
	ck_assert_int_eq(inv_prop_claim(db, "other-hub", NULL, p, 4, &n,
	    NULL), FC_OK);
	ck_assert_int_eq((int)n, 0);
}
END_TEST

START_TEST(test_bad_selectors)
{
	static const char *bad[] = {
		"{}", "[]", "{\"color\":\"red\"}", "{\"deviceIds\":[]}",
		"{\"deviceIds\":[\"bad id!\"]}", "{\"deviceIds\":[1]}",
		"{\"serials\":[\"xyz\"]}", "{\"owner\":\"\"}",
		"{\"issuedBetween\":[\"2026-01-02T00:00:00Z\"]}",
		"{\"issuedBetween\":[20, 10]}",
		"{\"issuedBetween\":[\"yesterday\", 10]}",
		"{\"batch\":\"b1\",\"lineage\":5}",
	};
	json_t *j;
	int64_t id, m;
	double est;
	char err[256];
	size_t i;

	for (i = 0; i < FC_ARRAY_LEN(bad); i++) {
		j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(j);
		ck_assert_msg(revoke_request_create(db, NULL, j, NULL, 1, "t",
		    &id, &m, &est, err, sizeof(err)) == FC_EINVAL, "%s",
		    bad[i]);
		json_decref(j);
	}
	j = json_loads("{\"owner\":\"acme\"}", 0, NULL);
	ck_assert_int_eq(revoke_request_create(db, NULL, j, "nonsense", 1,
	    "t", &id, &m, &est, err, sizeof(err)), FC_EINVAL);
	ck_assert_int_eq(revoke_request_create(db, NULL, j, NULL, 0, "t",
	    &id, &m, &est, err, sizeof(err)), FC_OK);
	ck_assert_int_eq((int)m, 2);
	ck_assert_int_eq(revoke_request_apply(db, id, "t", &m), FC_OK);
	ck_assert_int_eq((int)m, 2);
	ck_assert_int_eq(count("SELECT count(*) FROM revocations WHERE "
	    "state = 'propagating' AND matched = 2"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM propagation WHERE "
	    "revocation_id IS NOT NULL"), 2);
	json_decref(j);
}
END_TEST

START_TEST(test_estimate)
{
	/* 100 calls at 100/min, burst 1: 99 * 0.6 s; reads at 1000/s. */
	ck_assert(fabs(revoke_estimate(10000, 100, 1000) - 59.4) < 0.01);
	/* Reads dominate at 10/s. */
	ck_assert(fabs(revoke_estimate(10000, 100, 10) - 1010) < 0.01);
	ck_assert(revoke_estimate(0, 100, 10) == 0);
	ck_assert(fabs(revoke_estimate(5000, 200, 2000) - 14.1) < 0.01);
}
END_TEST

START_TEST(test_crl_entries)
{
	struct inv_crl_iter *it = NULL;
	struct ca_crl_entry e;
	uint64_t a = 0, b = 0;
	int n = 0;

	ck_assert_int_eq(inv_rev_device(db, "dev-001", 1, "r",
	    INV_REV_DISABLE, 0, 0, "test", NULL), FC_OK);
	ck_assert_int_eq(inv_crl_iter_open(db, &it), FC_OK);
	while (inv_crl_iter_next(it, &e) == 1) {
		ck_assert_int_eq(e.reason, 1);
		n++;
	}
	inv_crl_iter_close(it);
	ck_assert_int_eq(n, 2);		/* certs 1 and 2 */
	ck_assert_int_eq(inv_crl_number_next(db, &a), FC_OK);
	ck_assert_int_eq(inv_crl_number_next(db, &b), FC_OK);
	ck_assert(b == a + 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("revoke");
	TCase *tc = tcase_create("revoke");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_selectors);
	tcase_add_test(tc, test_revoke_device);
	tcase_add_test(tc, test_claim_checkpoint);
	tcase_add_test(tc, test_bad_selectors);
	tcase_add_test(tc, test_estimate);
	tcase_add_test(tc, test_crl_entries);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
