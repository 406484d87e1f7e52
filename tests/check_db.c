/*
 * check_db.c — connections, pragmas, migrations (every earlier version
 * upgrades to the latest and ends with the same schema as a fresh
 * database), transactions and the one-writer lock.
 */
#include "fc_build.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "testutil.h"

static char *
db_path(const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", tu_tmpdir(), name) < 0)
		abort();
	return p;
}

/* The schema as text: every CREATE statement, in name order. */
static char *
schema_text(struct db *db)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 1 << 16, n = 0;
	char *out = calloc(1, cap);

	ck_assert_int_eq(db_prepare(db, "SELECT type || ' ' || name || ': ' || "
	    "coalesce(sql, '') FROM sqlite_master ORDER BY type, name", &st),
	    FC_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		size_t l = strlen(t);
		ck_assert(n + l + 2 < cap);
		memcpy(out + n, t, l);
		n += l;
		out[n++] = '\n';
	}
	sqlite3_finalize(st);
	return out;
}

START_TEST(test_open_fresh)
{
	char *path = db_path("fresh.db");
	struct db *db = NULL;
	sqlite3_stmt *st = NULL;

	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	ck_assert_int_eq(db_schema_version(db), db_schema_latest());
	ck_assert_int_ge(db_schema_latest(), 1);
	ck_assert_int_eq(db_prepare(db, "PRAGMA journal_mode", &st), FC_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	ck_assert_int_eq(db_prepare(db, "PRAGMA foreign_keys", &st), FC_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	/* Foreign keys are enforced. */
	ck_assert_int_ne(db_exec(db, "INSERT INTO certificates (serial, "
	    "device_id, status, issued_by, created_at, updated_at) VALUES "
	    "('01', 'nobody', 'active', 'import', 0, 0)"), FC_OK);
	db_close(db);
	/* Re-opening applies nothing and keeps the version. */
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	ck_assert_int_eq(db_schema_version(db), db_schema_latest());
	db_close(db);
	free(path);
}
END_TEST

START_TEST(test_upgrade_every_version)
{
	char *fresh = db_path("ref.db");
	struct db *db = NULL;
	char *want;
	const struct db_migration *m;

	ck_assert_int_eq(db_open(fresh, DB_OPEN_MIGRATE, &db), FC_OK);
	want = schema_text(db);
	db_close(db);
	free(fresh);

	/* A database left at each earlier version (0 = empty file) must
	 * upgrade to exactly the fresh schema. */
	for (m = db_migrations; ; m++) {
		int v = (m == db_migrations) ? 0 : m[-1].version;
		char name[64], *path, *got;
		if (v == db_schema_latest())
			break;
		snprintf(name, sizeof(name), "v%d.db", v);
		path = db_path(name);
		{
			struct db raw = { 0 };
			ck_assert_int_eq(sqlite3_open(path, &raw.h), SQLITE_OK);
			raw.path = path;
			ck_assert_int_eq(db_migrate_to(&raw, v), FC_OK);
			ck_assert_int_eq(db_schema_version(&raw), v);
			/* Some data at that version must survive. */
			if (v >= 1)
				ck_assert_int_eq(db_exec(&raw, "INSERT INTO meta "
				    "(key, value) VALUES ('probe', 'kept')"), FC_OK);
			sqlite3_close(raw.h);
		}
		/* Without DB_OPEN_MIGRATE an old schema is refused. */
		ck_assert_int_eq(db_open(path, 0, &db), FC_ECONFLICT);
		ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
		ck_assert_int_eq(db_schema_version(db), db_schema_latest());
		got = schema_text(db);
		ck_assert_str_eq(got, want);
		if (v >= 1) {
			sqlite3_stmt *st = db_stmt(db,
			    "SELECT value FROM meta WHERE key = 'probe'");
			ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
			ck_assert_str_eq((const char *)sqlite3_column_text(st, 0),
			    "kept");
			sqlite3_reset(st);
		}
		free(got);
		db_close(db);
		free(path);
		if (m->version == 0)
			break;
	}
	free(want);
}
END_TEST

START_TEST(test_newer_schema_refused)
{
	char *path = db_path("newer.db");
	struct db *db = NULL;
	char sql[64];

	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	    db_schema_latest() + 1);
	ck_assert_int_eq(db_exec(db, sql), FC_OK);
	db_close(db);
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_ECONFLICT);
	ck_assert_int_eq(db_open(path, 0, &db), FC_ECONFLICT);
	free(path);
}
END_TEST

START_TEST(test_transactions)
{
	char *path = db_path("tx.db");
	struct db *db = NULL;
	sqlite3_stmt *st;

	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	ck_assert_int_eq(db_begin(db), FC_OK);
	ck_assert_int_eq(db_begin(db), FC_OK);	/* nested: counted */
	ck_assert_int_eq(db_exec(db, "INSERT INTO meta VALUES ('a', '1')"), FC_OK);
	ck_assert_int_eq(db_commit(db), FC_OK);
	db_rollback(db);			/* the outer one undoes all */
	st = db_stmt(db, "SELECT count(*) FROM meta WHERE key = 'a'");
	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
	sqlite3_reset(st);
	ck_assert_int_eq(db_commit(db), FC_EINTERNAL);
	ck_assert_int_eq(db_begin(db), FC_OK);
	ck_assert_int_eq(db_exec(db, "INSERT INTO meta VALUES ('b', '1')"), FC_OK);
	ck_assert_int_eq(db_commit(db), FC_OK);
	st = db_stmt(db, "SELECT count(*) FROM meta WHERE key = 'a'");
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	sqlite3_reset(st);
	db_close(db);
	free(path);
}
END_TEST

START_TEST(test_lock)
{
	char *path = db_path("db.lock");
	int fd1 = -1, fd2 = -1;

	ck_assert_int_eq(db_lock_acquire(path, &fd1), FC_OK);
	ck_assert_int_eq(db_lock_acquire(path, &fd2), FC_EBUSY);
	db_lock_release(fd1);
	ck_assert_int_eq(db_lock_acquire(path, &fd2), FC_OK);
	db_lock_release(fd2);
	ck_assert_int_eq(db_lock_acquire("/nonexistent/dir/x.lock", &fd1), FC_EIO);
	free(path);
}
END_TEST

START_TEST(test_not_a_database)
{
	const char *dir = tu_tmpdir();
	char *path = tu_write_str(dir, "garbage.db",
	    "this is not an SQLite database, just text that is long enough "
	    "to fill the header of one and more and more and more and more");
	struct db *db = NULL;

	ck_assert_int_ne(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	ck_assert_ptr_null(db);
	free(path);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("db");
	TCase *tc = tcase_create("db");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_open_fresh);
	tcase_add_test(tc, test_upgrade_every_version);
	tcase_add_test(tc, test_newer_schema_refused);
	tcase_add_test(tc, test_transactions);
	tcase_add_test(tc, test_lock);
	tcase_add_test(tc, test_not_a_database);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
