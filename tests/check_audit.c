/*
 * check_audit.c — the hash chain: intact after many appends and state
 * changes; an edit, a deletion, a re-hashed row or a reordering behind its
 * back is found and the first bad row named.
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
	int i;

	if (asprintf(&path, "%s/audit.db", tu_tmpdir()) < 0)
		abort();
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	free(path);
	for (i = 1; i <= 50; i++) {
		char dev[32], detail[64];
		snprintf(dev, sizeof(dev), "dev-%d", i);
		snprintf(detail, sizeof(detail), "{\"n\":%d}", i);
		ck_assert_int_eq(audit_append(db, "test", "device.create", dev,
		    i % 2 ? NULL : "0a", i % 3 ? detail : NULL), FC_OK);
	}
}

static void
teardown(void)
{
	db_close(db);
}

START_TEST(test_intact)
{
	int64_t bad = -1, n = 0;

	ck_assert_int_eq(audit_verify(db, &bad, &n), FC_OK);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(n, 50);
}
END_TEST

START_TEST(test_append_only_triggers)
{
	ck_assert_int_ne(db_exec(db, "UPDATE audit SET actor = 'x' WHERE id = 3"),
	    FC_OK);
	ck_assert_int_ne(db_exec(db, "DELETE FROM audit WHERE id = 3"), FC_OK);
}
END_TEST

static void
untrigger(void)
{
	ck_assert_int_eq(db_exec(db, "DROP TRIGGER audit_no_update; "
	    "DROP TRIGGER audit_no_delete"), FC_OK);
}

START_TEST(test_edit_detected)
{
	int64_t bad = 0;

	untrigger();
	ck_assert_int_eq(db_exec(db, "UPDATE audit SET detail = '{\"n\":0}' "
	    "WHERE id = 17"), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_ECONFLICT);
	ck_assert_int_eq(bad, 17);
}
END_TEST

START_TEST(test_null_vs_empty_detected)
{
	int64_t bad = 0;

	/* Row 3 has a NULL detail; an empty string is a different row. */
	untrigger();
	ck_assert_int_eq(db_exec(db, "UPDATE audit SET detail = '' WHERE id = 3"),
	    FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_ECONFLICT);
	ck_assert_int_eq(bad, 3);
}
END_TEST

START_TEST(test_delete_detected)
{
	int64_t bad = 0;

	untrigger();
	ck_assert_int_eq(db_exec(db, "DELETE FROM audit WHERE id = 30"), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_ECONFLICT);
	ck_assert_int_eq(bad, 31);
}
END_TEST

START_TEST(test_truncate_tail_then_append)
{
	int64_t bad = 0, n = 0;

	/* Deleting the newest rows leaves a valid prefix (detectable only by
	 * comparing the head hash kept elsewhere); appending after it must
	 * still chain correctly. */
	untrigger();
	ck_assert_int_eq(db_exec(db, "DELETE FROM audit WHERE id > 45"), FC_OK);
	ck_assert_int_eq(audit_append(db, "test", "x", NULL, NULL, NULL), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, &n), FC_OK);
	ck_assert_int_eq(n, 46);
}
END_TEST

START_TEST(test_rehash_detected)
{
	int64_t bad = 0;

	/* An attacker who edits a row and recomputes its hash with a wrong
	 * formula (or copies another row's hash) breaks the next link. */
	untrigger();
	ck_assert_int_eq(db_exec(db, "UPDATE audit SET hash = (SELECT hash FROM "
	    "audit WHERE id = 9) WHERE id = 10"), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_ECONFLICT);
	ck_assert_int_eq(bad, 10);
}
END_TEST

START_TEST(test_swap_detected)
{
	int64_t bad = 0;

	untrigger();
	ck_assert_int_eq(db_exec(db,
	    "UPDATE audit SET id = -1 WHERE id = 20;"
	    "UPDATE audit SET id = 20 WHERE id = 21;"
	    "UPDATE audit SET id = 21 WHERE id = -1;"), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_ECONFLICT);
	ck_assert_int_eq(bad, 20);
}
END_TEST

static int
list_cb(void *arg, const struct audit_entry *e)
{
	int *n = arg;

	ck_assert_str_eq(e->action, "device.create");
	(*n)++;
	return *n == 5;
}

START_TEST(test_list)
{
	int n = 0;

	ck_assert_int_eq(audit_list(db, 10, 100, NULL, list_cb, &n), FC_OK);
	ck_assert_int_eq(n, 5);
	n = 0;
	ck_assert_int_eq(audit_list(db, 0, 100, "dev-7", list_cb, &n), FC_OK);
	ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(test_state_changes_are_audited)
{
	struct inv_device d;
	int64_t bad = 0, n = 0;

	memset(&d, 0, sizeof(d));
	snprintf(d.device_id, sizeof(d.device_id), "audited");
	snprintf(d.se_serial, sizeof(d.se_serial), "0123000000000000ee");
	ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);
	ck_assert_int_eq(inv_device_set_status(db, "audited", INV_DEV_SUSPENDED,
	    "test", "because"), FC_OK);
	ck_assert_int_eq(audit_verify(db, &bad, &n), FC_OK);
	ck_assert_int_eq(n, 52);
	/* A failed change leaves neither the change nor its entry. */
	ck_assert_int_eq(inv_device_set_status(db, "ghost", INV_DEV_SUSPENDED,
	    "test", "x"), FC_ENOTFOUND);
	ck_assert_int_eq(audit_verify(db, &bad, &n), FC_OK);
	ck_assert_int_eq(n, 52);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_intact);
	tcase_add_test(tc, test_append_only_triggers);
	tcase_add_test(tc, test_edit_detected);
	tcase_add_test(tc, test_null_vs_empty_detected);
	tcase_add_test(tc, test_delete_detected);
	tcase_add_test(tc, test_truncate_tail_then_append);
	tcase_add_test(tc, test_rehash_detected);
	tcase_add_test(tc, test_swap_detected);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_state_changes_are_audited);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
