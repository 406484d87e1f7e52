/*
 * db.h — the SQLite connection: open with fleetcert's pragmas, schema
 * migrations, transactions, and the one-writer lock. Each thread opens its
 * own connection (struct db); a connection is never shared across threads.
 */
#ifndef FC_DB_H
#define FC_DB_H

#include <sqlite3.h>

#include "fc.h"

struct db_migration {
	int		 version;	/* NNN of sql/NNN_name.sql */
	const char	*name;
	const char	*sql;
};
extern const struct db_migration db_migrations[];	/* ends with version 0 */

#define DB_STMT_CACHE	96

struct db {
	sqlite3		*h;
	char		*path;
	int		 tx_depth;
	/* Statements cached for the connection's life, keyed by the address
	 * of their (static) SQL text. */
	const char	*cache_sql[DB_STMT_CACHE];
	sqlite3_stmt	*cache_stmt[DB_STMT_CACHE];
};

enum db_open_flags {
	DB_OPEN_MIGRATE	 = 1 << 0,	/* apply pending migrations */
	DB_OPEN_READONLY = 1 << 1,
};

/*
 * Opens path (creating it unless read-only) in WAL mode with a busy timeout
 * and foreign keys on; with DB_OPEN_MIGRATE applies every pending migration
 * in one transaction. *out is set on FC_OK; close with db_close.
 */
enum fc_err db_open(const char *path, int flags, struct db **out);
void db_close(struct db *db);

/* Schema version (PRAGMA user_version) and the newest one built in. */
int db_schema_version(struct db *db);
int db_schema_latest(void);
/* Applies migrations up to and including version `upto` (tests). */
enum fc_err db_migrate_to(struct db *db, int upto);

/*
 * Transactions. db_begin takes the write lock at once (BEGIN IMMEDIATE).
 * Nested calls only count; the outermost commit/rollback acts.
 *
 */
enum fc_err db_begin(struct db *db);
enum fc_err db_commit(struct db *db);
void db_rollback(struct db *db);

/* Runs SQL without results (migrations, tests). */
enum fc_err db_exec(struct db *db, const char *sql);

/*
 * Returns a cached prepared statement for sql, which must be a string
 * literal (the cache is keyed by its address). The statement is reset and
 * its bindings cleared; the caller must not finalize it. NULL on error
 * (logged).
 */
sqlite3_stmt *db_stmt(struct db *db, const char *sql);

/* Copies text column col of st into dst (cap bytes, "" for NULL). */
void db_col_text(char *dst, size_t cap, sqlite3_stmt *st, int col);

/* Steps a statement that returns no row and resets it: FC_OK or FC_EDB
 * (logged with what). */
enum fc_err db_step_done(struct db *db, sqlite3_stmt *st, const char *what);

/* Logs the connection's last error for what ("insert device X"); FC_EDB. */
enum fc_err db_fail(struct db *db, const char *what);

/* Prepares a statement; logs and returns FC_EDB on failure. */
enum fc_err db_prepare(struct db *db, const char *sql, sqlite3_stmt **out);

/*
 * The one-writer lock: an exclusive, non-blocking flock on lock_path, held
 * for the life of the returned fd. FC_EBUSY if another process holds it.
 */
enum fc_err db_lock_acquire(const char *lock_path, int *fd_out);
void db_lock_release(int fd);

#endif
