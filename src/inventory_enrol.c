/*
 * inventory_enrol.c — SQL of re-enrolment: the challenges table, superseding
 * a device's old lineage and voiding interrupted re-enrolments at start-up.
 * Runs in the main process, on the enrolment listener's threads (each with its
 * own connection) and in start-up recovery. Touches tables challenges,
 * certificates (status only) and audit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "inventory.h"
#include "inventory_enrol.h"
#include "log.h"

/* Expired challenges deleted per insert: keeps the table bounded without a
 * separate sweep, and each insert's cost constant. */
#define PURGE_PER_INSERT	8

enum fc_err
inv_challenge_insert(struct db *db, const unsigned char nonce[INV_NONCE_LEN],
    const char *se_serial, int64_t expires_at)
{
	static const char qi[] = "INSERT INTO challenges (nonce, se_serial, "
	    "expires_at, used, created_at) VALUES (?, ?, ?, 0, ?)";
	static const char qp[] = "DELETE FROM challenges WHERE rowid IN "
	    "(SELECT rowid FROM challenges WHERE expires_at < ? LIMIT ?)";
	sqlite3_stmt *st;
	int64_t now = fc_now();
	int rc;

	st = db_stmt(db, qi);
	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_blob(st, 1, nonce, INV_NONCE_LEN, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, se_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, expires_at);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return FC_ECONFLICT;
	if (rc != SQLITE_DONE)
		return db_fail(db, "insert challenge");

	st = db_stmt(db, qp);
	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, PURGE_PER_INSERT);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "purge challenges");
	return FC_OK;
}

enum fc_err
inv_challenge_consume(struct db *db, const unsigned char nonce[INV_NONCE_LEN],
    char se_serial_out[FC_SE_SERIAL_LEN], int64_t *expires_at_out)
{
	/* One statement: mark used and learn the binding, so two concurrent
	 * uses of one nonce cannot both see it unused. */
	static const char qu[] = "UPDATE challenges SET used = 1 "
	    "WHERE nonce = ? AND used = 0 RETURNING se_serial, expires_at";
	static const char qs[] = "SELECT 1 FROM challenges WHERE nonce = ?";
	sqlite3_stmt *st;
	const unsigned char *s;
	char serial[FC_SE_SERIAL_LEN];
	int64_t expires_at;
	int rc;

	st = db_stmt(db, qu);
	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_blob(st, 1, nonce, INV_NONCE_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		s = sqlite3_column_text(st, 0);
		snprintf(serial, sizeof(serial), "%s", s ? (const char *)s : "");
		expires_at = sqlite3_column_int64(st, 1);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return db_fail(db, "consume challenge");
		memcpy(se_serial_out, serial, sizeof(serial));
		*expires_at_out = expires_at;
		return FC_OK;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "consume challenge");

	st = db_stmt(db, qs);
	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_blob(st, 1, nonce, INV_NONCE_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return FC_ECONFLICT;
	if (rc != SQLITE_DONE)
		return db_fail(db, "look up challenge");
	return FC_ENOTFOUND;
}

enum fc_err
inv_challenge_purge(struct db *db, int64_t now, int64_t *count)
{
	static const char q[] = "DELETE FROM challenges WHERE expires_at < ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, "purge challenges");
	if (count != NULL)
		*count = sqlite3_changes(db->h);
	return FC_OK;
}

/* Serials collected by a query before their rows are changed (a statement
 * must not be stepped while rows it reads are updated). */
struct serials {
	char	(*v)[FC_CERT_SERIAL_MAX];
	size_t	 n, cap;
};

static enum fc_err
serials_push(struct serials *s, const char *serial)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *p = realloc(s->v, cap * sizeof(*s->v));
		if (p == NULL)
			return FC_ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	snprintf(s->v[s->n++], FC_CERT_SERIAL_MAX, "%s", serial);
	return FC_OK;
}

static enum fc_err
serials_select(struct db *db, const char *q, const char *a, const char *b,
    struct serials *out)
{
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result = FC_OK;
	int rc;

	if (st == NULL)
		return FC_EDB;
	if (a != NULL)
		sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		result = serials_push(out, t ? (const char *)t : "");
		if (result != FC_OK)
			break;
	}
	if (result == FC_OK && rc != SQLITE_DONE)
		result = db_fail(db, "select certificates");
	sqlite3_reset(st);
	return result;
}

enum fc_err
inv_enrol_supersede(struct db *db, const char *device_id, const char *keep,
    const char *actor, int *count)
{
	static const char q[] = "SELECT serial FROM certificates "
	    "WHERE device_id = ? AND serial != ? "
	    "AND status IN ('active', 'delivered', 'pending')";
	struct serials s = { NULL, 0, 0 };
	char detail[FC_CERT_SERIAL_MAX + 32];
	enum fc_err result;
	size_t i;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = serials_select(db, q, device_id, keep, &s);
	if (result != FC_OK)
		goto out;
	snprintf(detail, sizeof(detail), "{\"by\":\"%s\"}", keep);
	for (i = 0; i < s.n; i++) {
		result = inv_cert_set_status(db, s.v[i], INV_CERT_SUPERSEDED,
		    actor, detail);
		if (result != FC_OK)
			goto out;
	}
	result = db_commit(db);
	if (result == FC_OK && count != NULL)
		*count = (int)s.n;
	free(s.v);
	return result;
out:
	db_rollback(db);
	free(s.v);
	return result;
}

enum fc_err
inv_enrol_void(struct db *db, const char *serial, const char *actor,
    const char *cause)
{
	static const char qu[] = "UPDATE certificates SET status = 'revoked', "
	    "revoked_at = ?, revocation_reason = 4, updated_at = ? "
	    "WHERE serial = ? AND status = 'reserved' "
	    "RETURNING device_id";
	char device_id[FC_DEVICE_ID_MAX], detail[160];
	const unsigned char *t;
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t now = fc_now();
	int rc;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, qu);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		result = FC_ENOTFOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		result = db_fail(db, "void reserved certificate");
		goto out;
	}
	t = sqlite3_column_text(st, 0);
	snprintf(device_id, sizeof(device_id), "%s", t ? (const char *)t : "");
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "void reserved certificate");
		goto out;
	}
	snprintf(detail, sizeof(detail), "{\"cause\":\"%s\"}", cause);
	result = audit_append(db, actor, "cert.void", device_id, serial, detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_enrol_recover(struct db *db, const char *actor, int *count)
{
	static const char qs[] = "SELECT serial FROM certificates "
	    "WHERE status = 'reserved' AND issued_by = 'reenrolment'";
	struct serials s = { NULL, 0, 0 };
	enum fc_err result;
	size_t i;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = serials_select(db, qs, NULL, NULL, &s);
	if (result != FC_OK)
		goto out;
	for (i = 0; i < s.n; i++) {
		log_warn("cert %s: a re-enrolment was interrupted before its "
		    "answer; voiding the reserved serial", s.v[i]);
		result = inv_enrol_void(db, s.v[i], actor,
		    "re-enrolment interrupted before the answer");
		if (result != FC_OK)
			goto out;
	}
	result = db_commit(db);
	if (result == FC_OK && count != NULL)
		*count = (int)s.n;
	free(s.v);
	return result;
out:
	db_rollback(db);
	free(s.v);
	return result;
}

enum fc_err
inv_enrol_durable(struct db *db, int full)
{
	return db_exec(db, full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL");
}
