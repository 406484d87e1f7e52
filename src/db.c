/*
 * db.c — SQLite connections, migrations, transactions and the one-writer
 * lock. Any thread, each with its own struct db. The SQL of the application
 * lives in inventory*.c and audit.c; this file only manages the connection.
 */
#include "fc_build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "db.h"
#include "log.h"

#define DB_BUSY_TIMEOUT_MS	5000

enum fc_err
db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("database %s: %s", db->path, msg ? msg : "exec failed");
		sqlite3_free(msg);
		return FC_EDB;
	}
	return FC_OK;
}

enum fc_err
db_prepare(struct db *db, const char *sql, sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("database %s: prepare: %s", db->path,
		    sqlite3_errmsg(db->h));
		return FC_EDB;
	}
	*out = st;
	return FC_OK;
}

int
db_schema_version(struct db *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (db_prepare(db, "PRAGMA user_version", &st) != FC_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

int
db_schema_latest(void)
{
	int v = 0;
	const struct db_migration *m;

	for (m = db_migrations; m->version != 0; m++)
		if (m->version > v)
			v = m->version;
	return v;
}

enum fc_err
db_migrate_to(struct db *db, int upto)
{
	const struct db_migration *m;
	enum fc_err result;
	char pragma[64];
	int cur;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	cur = db_schema_version(db);
	if (cur < 0) {
		result = FC_EDB;
		goto out;
	}
	if (cur > db_schema_latest()) {
		log_error("database %s: schema version %d is newer than this "
		    "fleetcert (%d)", db->path, cur, db_schema_latest());
		result = FC_ECONFLICT;
		goto out;
	}
	/* Migrations are listed in ascending order by sql2c.sh. */
	for (m = db_migrations; m->version != 0; m++) {
		if (m->version <= cur || m->version > upto)
			continue;
		log_info("database %s: applying migration %s", db->path, m->name);
		result = db_exec(db, m->sql);
		if (result != FC_OK)
			goto out;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
		    m->version);
		result = db_exec(db, pragma);
		if (result != FC_OK)
			goto out;
	}
	result = db_commit(db);
	return result;
out:
	db_rollback(db);
	return result;
}

enum fc_err
db_open(const char *path, int flags, struct db **out)
{
	struct db *db = NULL;
	int oflags;
	enum fc_err result = FC_EDB;

	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return FC_ENOMEM;
	db->path = strdup(path);
	if (db->path == NULL) {
		free(db);
		return FC_ENOMEM;
	}
	oflags = (flags & DB_OPEN_READONLY) ? SQLITE_OPEN_READONLY :
	    (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	oflags |= SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db->h, oflags, NULL) != SQLITE_OK) {
		log_error("database %s: cannot open: %s", path,
		    db->h ? sqlite3_errmsg(db->h) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db->h, 1);
	if (!(flags & DB_OPEN_READONLY)) {
		/* Every writer checkpoints the WAL at the same size (32,768
		 * pages, 128 MiB: a renewal wave's pages are copied back once
		 * instead of batch by batch, doc/performance.md "Renewal")
		 * and cuts the file back to 64 MiB afterwards; with SQLite's
		 * default of 1,000 pages an API commit during a wave would
		 * checkpoint the wave's WAL. */
		result = db_exec(db, "PRAGMA journal_mode = WAL; "
		    "PRAGMA wal_autocheckpoint = 32768; "
		    "PRAGMA journal_size_limit = 67108864");
		if (result != FC_OK)
			goto out;
	}
	result = db_exec(db, "PRAGMA foreign_keys = ON; "
	    "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY");
	if (result != FC_OK)
		goto out;
	if (flags & DB_OPEN_MIGRATE) {
		result = db_migrate_to(db, db_schema_latest());
		if (result != FC_OK)
			goto out;
	} else if (db_schema_version(db) != db_schema_latest()) {
		log_error("database %s: schema version %d, expected %d", path,
		    db_schema_version(db), db_schema_latest());
		result = FC_ECONFLICT;
		goto out;
	}
	*out = db;
	return FC_OK;
out:
	db_close(db);
	return result;
}

sqlite3_stmt *
db_stmt(struct db *db, const char *sql)
{
	size_t i;

	for (i = 0; i < DB_STMT_CACHE && db->cache_sql[i] != NULL; i++) {
		if (db->cache_sql[i] == sql) {
			sqlite3_reset(db->cache_stmt[i]);
			sqlite3_clear_bindings(db->cache_stmt[i]);
			return db->cache_stmt[i];
		}
	}
	if (i == DB_STMT_CACHE) {
		log_error("database %s: statement cache full", db->path);
		return NULL;
	}
	if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &db->cache_stmt[i], NULL) != SQLITE_OK) {
		log_error("database %s: prepare: %s", db->path,
		    sqlite3_errmsg(db->h));
		db->cache_stmt[i] = NULL;
		return NULL;
	}
	db->cache_sql[i] = sql;
	return db->cache_stmt[i];
}

void
db_col_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

enum fc_err
db_step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FC_OK : db_fail(db, what);
}

enum fc_err
db_fail(struct db *db, const char *what)
{
	log_error("database %s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
	return FC_EDB;
}

void
db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < DB_STMT_CACHE && db->cache_sql[i] != NULL; i++)
		sqlite3_finalize(db->cache_stmt[i]);
	if (db->h != NULL)
		sqlite3_close_v2(db->h);
	free(db->path);
	free(db);
}

enum fc_err
db_begin(struct db *db)
{
	enum fc_err result;

	if (db->tx_depth > 0) {
		db->tx_depth++;
		return FC_OK;
	}
	result = db_exec(db, "BEGIN IMMEDIATE");
	if (result == FC_OK)
		db->tx_depth = 1;
	return result;
}

enum fc_err
db_commit(struct db *db)
{
	enum fc_err result;

	if (db->tx_depth <= 0)
		return FC_EINTERNAL;
	if (db->tx_depth > 1) {
		db->tx_depth--;
		return FC_OK;
	}
	result = db_exec(db, "COMMIT");
	if (result != FC_OK) {
		db_rollback(db);
		return result;
	}
	db->tx_depth = 0;
	return FC_OK;
}

void
db_rollback(struct db *db)
{
	/* Any rollback, nested or not, aborts the whole transaction. */
	if (db->tx_depth <= 0)
		return;
	if (sqlite3_get_autocommit(db->h) == 0)
		(void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	db->tx_depth = 0;
}

enum fc_err
db_lock_acquire(const char *lock_path, int *fd_out)
{
	int fd;

	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("lock %s: %s", lock_path, strerror(errno));
		return FC_EIO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return FC_EBUSY;
		log_error("lock %s: %s", lock_path, strerror(e));
		return FC_EIO;
	}
	*fd_out = fd;
	return FC_OK;
}

void
db_lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
