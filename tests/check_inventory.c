/*
 * check_inventory.c — devices and certificates: create/get/state changes,
 * validation of hostile fields, paging that returns each device exactly
 * once, filters, the expiry histogram, and the query plans that keep the
 * periodic queries O(rows returned).
 */
#include "fc_build.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "inventory.h"
#include "testutil.h"

static struct db *db;

static void
setup(void)
{
	char *path = NULL;

	if (asprintf(&path, "%s/inv.db", tu_tmpdir()) < 0)
		abort();
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	free(path);
}

static void
teardown(void)
{
	db_close(db);
	db = NULL;
}

static void
mkdev(struct inv_device *d, int i)
{
	static unsigned char key[91] = { 0x30, 0x59 };

	memset(d, 0, sizeof(*d));
	snprintf(d->device_id, sizeof(d->device_id), "dev-%06d", i);
	snprintf(d->se_serial, sizeof(d->se_serial), "0123%012x01", i);
	d->identity_key = key;
	d->identity_key_len = sizeof(key);
	snprintf(d->owner, sizeof(d->owner), "owner-%d", i % 3);
	snprintf(d->batch, sizeof(d->batch), "batch-%d", i % 5);
	d->auth_type = (i % 4 == 0) ? INV_AUTH_SELFSIGNED : INV_AUTH_CA;
}

static void
mkcert(struct inv_cert *c, const char *dev, int i, int64_t not_after,
    enum inv_cert_status status)
{
	static unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };

	memset(c, 0, sizeof(*c));
	snprintf(c->serial, sizeof(c->serial), "%032x", i);
	snprintf(c->device_id, sizeof(c->device_id), "%s", dev);
	c->der = der;
	c->der_len = sizeof(der);
	c->not_before = not_after - 365 * 86400;
	c->not_after = not_after;
	memset(c->sha1, 'A', 40);
	memset(c->sha256, 'B', 64);
	c->status = status;
	c->issued_by = INV_ISSUED_IMPORT;
}

START_TEST(test_device_crud)
{
	struct inv_device d, got;

	mkdev(&d, 1);
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
	ck_assert_int_eq(inv_device_get(db, "dev-000001", &got), FC_OK);
	ck_assert_str_eq(got.se_serial, d.se_serial);
	ck_assert_str_eq(got.owner, "owner-1");
	ck_assert_int_eq(got.status, INV_DEV_ACTIVE);
	ck_assert_uint_eq(got.identity_key_len, 91);
	ck_assert_int_eq(got.identity_key[0], 0x30);
	inv_device_clear(&got);
	ck_assert_int_eq(inv_device_get_by_se_serial(db, d.se_serial, &got), FC_OK);
	ck_assert_str_eq(got.device_id, "dev-000001");
	inv_device_clear(&got);
	ck_assert_int_eq(inv_device_get(db, "nope", &got), FC_ENOTFOUND);

	/* Same id, or same SE serial: conflict. */
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_ECONFLICT);
	snprintf(d.device_id, sizeof(d.device_id), "other");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_ECONFLICT);

	ck_assert_int_eq(inv_device_set_status(db, "dev-000001",
	    INV_DEV_REVOKED, "test", "key \"compromise\""), FC_OK);
	ck_assert_int_eq(inv_device_get(db, "dev-000001", &got), FC_OK);
	ck_assert_int_eq(got.status, INV_DEV_REVOKED);
	inv_device_clear(&got);
	ck_assert_int_eq(inv_device_set_status(db, "nope", INV_DEV_REVOKED,
	    "test", "x"), FC_ENOTFOUND);
	ck_assert_int_eq(inv_device_set_owner(db, "dev-000001", "acme", "t"),
	    FC_OK);
	ck_assert_int_eq(inv_device_set_owner(db, "dev-000001", "a\nb", "t"),
	    FC_EINVAL);
}
END_TEST

START_TEST(test_device_hostile)
{
	struct inv_device d, got;
	int64_t n = 0, bad = 0;

	mkdev(&d, 2);
	snprintf(d.device_id, sizeof(d.device_id), "x'; DROP TABLE devices;--");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_EINVAL);
	snprintf(d.device_id, sizeof(d.device_id), "../../etc/passwd");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_EINVAL);
	mkdev(&d, 2);
	snprintf(d.se_serial, sizeof(d.se_serial), "0123A1B2C3D4E5F601");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_EINVAL);
	mkdev(&d, 2);
	snprintf(d.owner, sizeof(d.owner), "evil\x1b[31m");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_EINVAL);
	mkdev(&d, 2);
	snprintf(d.hub, sizeof(d.hub), "no such/hub");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_EINVAL);
	/* A quoted, SQL-looking owner is just text. */
	mkdev(&d, 2);
	snprintf(d.owner, sizeof(d.owner), "o'; DELETE FROM devices; --");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
	ck_assert_int_eq(inv_device_get(db, d.device_id, &got), FC_OK);
	ck_assert_str_eq(got.owner, "o'; DELETE FROM devices; --");
	inv_device_clear(&got);
	/* Nothing of the refused inserts reached the audit log. */
	ck_assert_int_eq(audit_verify(db, &bad, &n), FC_OK);
	ck_assert_int_eq(n, 1);
}
END_TEST

struct seen {
	int	 count;
	char	*hit;		/* per device index */
	int	 dup;
	int	 certs;
};

static int
count_cb(void *arg, const struct inv_device *d, const struct inv_cert *c)
{
	struct seen *s = arg;
	int i = atoi(d->device_id + 4);

	if (s->hit[i])
		s->dup++;
	s->hit[i] = 1;
	s->count++;
	if (c != NULL)
		s->certs++;
	return 0;
}

START_TEST(test_paging_exactly_once)
{
	const int N = 2503;
	struct inv_device d;
	struct inv_cert c;
	struct seen s = { 0 };
	char cursor[INV_CURSOR_MAX] = "", next[INV_CURSOR_MAX];
	int i, pages = 0;
	struct inv_device_filter f = { .status = -1 };

	ck_assert_int_eq(db_begin(db), FC_OK);
	for (i = 0; i < N; i++) {
		mkdev(&d, i);
		ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
		if (i % 2 == 0) {
			mkcert(&c, d.device_id, i, 2000000000 + i % 7,
			    INV_CERT_ACTIVE);
			ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_OK);
		}
	}
	ck_assert_int_eq(db_commit(db), FC_OK);

	s.hit = calloc((size_t)N, 1);
	do {
		ck_assert_int_eq(inv_device_list(db, &f, cursor, 100, count_cb,
		    &s, next), FC_OK);
		snprintf(cursor, sizeof(cursor), "%s", next);
		pages++;
	} while (cursor[0] != '\0');
	ck_assert_int_eq(s.count, N);
	ck_assert_int_eq(s.dup, 0);
	ck_assert_int_eq(s.certs, (N + 1) / 2);
	ck_assert_int_eq(pages, N / 100 + 1);

	/* Expiry order: the same exactly-once property with many equal
	 * not_after values (ties broken by rowid). */
	memset(s.hit, 0, (size_t)N);
	s.count = s.dup = s.certs = 0;
	f.expiring_before = 2000000000 + 5;	/* i % 7 < 5 */
	cursor[0] = '\0';
	do {
		ck_assert_int_eq(inv_device_list(db, &f, cursor, 37, count_cb,
		    &s, next), FC_OK);
		snprintf(cursor, sizeof(cursor), "%s", next);
	} while (cursor[0] != '\0');
	for (i = 0, pages = 0; i < N; i += 2)
		pages += (i % 7 < 5);
	ck_assert_int_eq(s.count, pages);
	ck_assert_int_eq(s.dup, 0);

	/* Filters. */
	memset(s.hit, 0, (size_t)N);
	s.count = s.dup = 0;
	f.expiring_before = 0;
	f.owner = "owner-1";
	f.batch = "batch-2";
	ck_assert_int_eq(inv_device_list(db, &f, NULL, 1000, count_cb, &s,
	    next), FC_OK);
	for (i = 0, pages = 0; i < N; i++)
		pages += (i % 3 == 1 && i % 5 == 2);
	ck_assert_int_eq(s.count, pages);

	/* Malformed cursors are refused, not interpreted. */
	ck_assert_int_eq(inv_device_list(db, &f, "zz", 10, count_cb, &s, next),
	    FC_EINVAL);
	ck_assert_int_eq(inv_device_list(db, &f, "d6", 10, count_cb, &s, next),
	    FC_EINVAL);
	ck_assert_int_eq(inv_device_list(db, &f, "d2f", 10, count_cb, &s, next),
	    FC_EINVAL);
	ck_assert_int_eq(inv_device_list(db, &f, "d2720", 10, count_cb, &s,
	    next), FC_EINVAL);
	f.expiring_before = 1;
	ck_assert_int_eq(inv_device_list(db, &f, "x1.2junk", 10, count_cb, &s,
	    next), FC_EINVAL);
	ck_assert_int_eq(inv_device_list(db, &f, NULL, 0, count_cb, &s, next),
	    FC_EINVAL);
	ck_assert_int_eq(inv_device_list(db, &f, NULL, 1001, count_cb, &s,
	    next), FC_EINVAL);
	free(s.hit);
}
END_TEST

static int
cert_count_cb(void *arg, const struct inv_cert *c)
{
	(*(int *)arg)++;
	return 0;
}

START_TEST(test_cert_lifecycle)
{
	struct inv_device d;
	struct inv_cert c, got;
	int n = 0;

	mkdev(&d, 7);
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
	mkcert(&c, d.device_id, 1, 2000000000, INV_CERT_ACTIVE);
	ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_OK);
	ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_ECONFLICT);
	mkcert(&c, "ghost", 2, 2000000000, INV_CERT_ACTIVE);
	ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_ENOTFOUND);

	/* Reserve a renewal, then complete it. */
	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%032x", 3);
	snprintf(c.device_id, sizeof(c.device_id), "%s", d.device_id);
	snprintf(c.renewed_from, sizeof(c.renewed_from), "%032x", 1);
	c.status = INV_CERT_RESERVED;
	c.issued_by = INV_ISSUED_RENEWAL;
	ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_OK);
	ck_assert_int_eq(inv_cert_get(db, c.serial, &got), FC_OK);
	ck_assert_ptr_null(got.der);
	ck_assert_int_eq(got.status, INV_CERT_RESERVED);
	ck_assert_str_eq(got.renewed_from, c.renewed_from);
	inv_cert_clear(&got);
	mkcert(&c, d.device_id, 3, 2030000000, INV_CERT_PENDING);
	ck_assert_int_eq(inv_cert_complete(db, &c, INV_CERT_PENDING, "test"),
	    FC_OK);
	ck_assert_int_eq(inv_cert_complete(db, &c, INV_CERT_PENDING, "test"),
	    FC_ECONFLICT);

	/* Current: the active one wins over the newer pending one. */
	ck_assert_int_eq(inv_cert_current(db, d.device_id, &got), FC_OK);
	ck_assert_int_eq(got.status, INV_CERT_ACTIVE);
	inv_cert_clear(&got);
	ck_assert_int_eq(inv_cert_set_status(db, c.serial, INV_CERT_ACTIVE,
	    "test", NULL), FC_OK);
	mkcert(&c, d.device_id, 1, 0, INV_CERT_SUPERSEDED);
	ck_assert_int_eq(inv_cert_set_status(db, c.serial, INV_CERT_SUPERSEDED,
	    "test", NULL), FC_OK);
	ck_assert_int_eq(inv_cert_current(db, d.device_id, &got), FC_OK);
	ck_assert_int_eq(got.not_after, 2030000000);
	inv_cert_clear(&got);

	ck_assert_int_eq(inv_cert_revoke(db,
	    "00000000000000000000000000000003", 1, "test"), FC_OK);
	ck_assert_int_eq(inv_cert_revoke(db,
	    "00000000000000000000000000000003", 1, "test"), FC_ECONFLICT);
	ck_assert_int_eq(inv_cert_revoke(db, "ff", 1, "test"), FC_ENOTFOUND);
	ck_assert_int_eq(inv_cert_revoke(db, "ff", 7, "test"), FC_EINVAL);
	ck_assert_int_eq(inv_cert_get(db, "00000000000000000000000000000003",
	    &got), FC_OK);
	ck_assert_int_eq(got.status, INV_CERT_REVOKED);
	ck_assert_int_eq(got.revocation_reason, 1);
	ck_assert_int_gt(got.revoked_at, 0);
	inv_cert_clear(&got);
	ck_assert_int_eq(inv_cert_current(db, d.device_id, &got), FC_ENOTFOUND);
	ck_assert_int_eq(inv_cert_list_by_device(db, d.device_id,
	    cert_count_cb, &n), FC_OK);
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_histogram)
{
	struct inv_device d;
	struct inv_cert c;
	int64_t counts[4], before, by_status[INV_CERT_EXPIRED + 1];
	const int64_t from = 1900000000, day = 86400;
	int i;

	for (i = 0; i < 10; i++) {
		mkdev(&d, i);
		ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
	}
	/* -1 s, 0 s, 1 day + 1 s, 3 days, 3 days + 5 s, 10 days; one revoked. */
	mkcert(&c, "dev-000000", 1, from - 1, INV_CERT_ACTIVE);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000001", 2, from, INV_CERT_ACTIVE);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000002", 3, from + day + 1, INV_CERT_PENDING);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000003", 4, from + 3 * day, INV_CERT_ACTIVE);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000004", 5, from + 3 * day + 5, INV_CERT_DELIVERED);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000005", 6, from + 10 * day, INV_CERT_ACTIVE);
	inv_cert_insert(db, &c, "t");
	mkcert(&c, "dev-000006", 7, from + 2 * day, INV_CERT_REVOKED);
	inv_cert_insert(db, &c, "t");
	ck_assert_int_eq(inv_cert_expiry_histogram(db, from, day, 4, counts,
	    &before), FC_OK);
	ck_assert_int_eq(before, 1);
	ck_assert_int_eq(counts[0], 1);
	ck_assert_int_eq(counts[1], 1);
	ck_assert_int_eq(counts[2], 0);
	ck_assert_int_eq(counts[3], 2);
	ck_assert_int_eq(inv_cert_expiry_histogram(db, from, 0, 4, counts,
	    &before), FC_EINVAL);
	ck_assert_int_eq(inv_cert_count_by_status(db, by_status), FC_OK);
	ck_assert_int_eq(by_status[INV_CERT_ACTIVE], 4);
	ck_assert_int_eq(by_status[INV_CERT_REVOKED], 1);
}
END_TEST

/* Concatenated EXPLAIN QUERY PLAN details for sql. */
static void
plan(const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	char *q = NULL;

	out[0] = '\0';
	if (asprintf(&q, "EXPLAIN QUERY PLAN %s", sql) < 0)
		abort();
	ck_assert_int_eq(db_prepare(db, q, &st), FC_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		strncat(out, (const char *)sqlite3_column_text(st, 3),
		    cap - strlen(out) - 2);
		strncat(out, "\n", cap - strlen(out) - 1);
	}
	sqlite3_finalize(st);
	free(q);
}

START_TEST(test_query_plans)
{
	char p[2048];

	/* Due for renewal: active certificates with not_after below a bound. */
	plan("SELECT serial FROM certificates WHERE status = 'active' "
	    "AND not_after < 123 ORDER BY not_after", p, sizeof(p));
	ck_assert_msg(strstr(p, "SEARCH certificates USING INDEX "
	    "certificates_status_not_after (status=? AND not_after<?)") != NULL,
	    "plan: %s", p);
	ck_assert_msg(strstr(p, "TEMP B-TREE") == NULL, "plan: %s", p);
	/* The list's expiring-within query, as inventory.c runs it. */
	plan("SELECT d.device_id FROM certificates c JOIN devices d ON "
	    "d.device_id = c.device_id WHERE c.status = 'active' AND "
	    "c.not_after < 5 AND (c.not_after > 1 OR (c.not_after = 1 AND "
	    "c.rowid > 0)) ORDER BY c.not_after, c.rowid LIMIT 100", p, sizeof(p));
	ck_assert_msg(strstr(p, "SEARCH c USING INDEX "
	    "certificates_status_not_after (status=? AND not_after") != NULL,
	    "plan: %s", p);
	ck_assert_msg(strstr(p, "TEMP B-TREE") == NULL, "plan: %s", p);
	ck_assert_msg(strstr(p, "sqlite_autoindex_devices_1 "
	    "(device_id=?)") != NULL, "plan: %s", p);
	/* Lineage (renewed_from) and device lookups use their indexes. */
	plan("SELECT serial FROM certificates WHERE renewed_from = 'x'", p,
	    sizeof(p));
	ck_assert_msg(strstr(p, "certificates_renewed_from") != NULL, "%s", p);
	plan("SELECT device_id FROM devices WHERE se_serial = 'x'", p, sizeof(p));
	ck_assert_msg(strstr(p, "USING INDEX sqlite_autoindex_devices_2") != NULL,
	    "%s", p);
	plan("SELECT serial FROM deliveries WHERE step = 'method' AND "
	    "next_attempt_at <= 5", p, sizeof(p));
	ck_assert_msg(strstr(p, "deliveries_due (step=? AND next_attempt_at<?)")
	    != NULL, "%s", p);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("inventory");
	TCase *tc = tcase_create("inventory");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_device_crud);
	tcase_add_test(tc, test_device_hostile);
	tcase_add_test(tc, test_paging_exactly_once);
	tcase_add_test(tc, test_cert_lifecycle);
	tcase_add_test(tc, test_histogram);
	tcase_add_test(tc, test_query_plans);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
