/*
 * inventory_renew.c — SQL of the renewal schedule, of the reserve / record /
 * void steps of a renewal and of the delivery outbox (inventory_renew.h).
 * Main thread, on the scheduler's connection (tests: any connection).
 * Certificate changes go through inventory.c where it has the call, so
 * that they are audited the same way everywhere.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "inventory_renew.h"
#include "log.h"

#define CRL_REASON_SUPERSEDED	4

int64_t
inv_renew_at(const char *device_id, int64_t not_after, int64_t before_s,
    int64_t jitter_s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a 64 */
	const unsigned char *p;

	if (jitter_s <= 0)
		return not_after - before_s;
	for (p = (const unsigned char *)device_id; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return not_after - before_s + (int64_t)(h % (uint64_t)(jitter_s + 1));
}

static void
text_copy(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* JSON string content (no quotes) of s, truncated to fit cap. */
static void
json_text(char *dst, size_t cap, const char *s)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

/* Runs a statement that returns no rows; FC_OK or FC_EDB (logged). */
static enum fc_err
step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FC_OK : db_fail(db, what);
}

enum fc_err
inv_renew_schedule(struct db *db, int64_t before_s, int64_t jitter_s,
    int limit, int *n)
{
	static const char q_sel[] = "SELECT rowid, device_id, not_after FROM"
	    " certificates INDEXED BY certificates_renew_unscheduled"
	    " WHERE status = 'active' AND renew_at IS NULL LIMIT ?";
	static const char q_upd[] = "UPDATE certificates SET renew_at = ?"
	    " WHERE rowid = ?";
	int64_t *rows = NULL, *at = NULL;
	sqlite3_stmt *sel, *upd;
	enum fc_err result;
	int rc, i, count = 0;

	if (limit < 1)
		return FC_EINVAL;
	rows = calloc((size_t)limit, sizeof(*rows));
	at = calloc((size_t)limit, sizeof(*at));
	if (rows == NULL || at == NULL) {
		free(rows);
		free(at);
		return FC_ENOMEM;
	}
	result = db_begin(db);
	if (result != FC_OK)
		goto done;
	sel = db_stmt(db, q_sel);
	upd = db_stmt(db, q_upd);
	if (sel == NULL || upd == NULL) {
		result = FC_EDB;
		goto out;
	}
	/* Collected first, then updated: the rows leave the index the
	 * SELECT walks. */
	sqlite3_bind_int(sel, 1, limit);
	while (count < limit && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		const char *dev = (const char *)sqlite3_column_text(sel, 1);
		rows[count] = sqlite3_column_int64(sel, 0);
		at[count] = inv_renew_at(dev ? dev : "",
		    sqlite3_column_int64(sel, 2), before_s, jitter_s);
		count++;
	}
	if (count < limit && rc != SQLITE_DONE)
		result = db_fail(db, "list unscheduled certificates");
	sqlite3_reset(sel);
	for (i = 0; i < count && result == FC_OK; i++) {
		sqlite3_bind_int64(upd, 1, at[i]);
		sqlite3_bind_int64(upd, 2, rows[i]);
		result = step_done(db, upd, "schedule renewal");
	}
	if (result != FC_OK)
		goto out;
	result = db_commit(db);
	if (result == FC_OK)
		*n = count;
	goto done;
out:
	db_rollback(db);
done:
	free(rows);
	free(at);
	return result;
}

enum fc_err
inv_renew_window_sync(struct db *db, int64_t before_s, int64_t jitter_s,
    int *reset)
{
	static const char q_get[] = "SELECT value FROM meta"
	    " WHERE key = 'renew_window'";
	static const char q_set[] = "INSERT OR REPLACE INTO meta (key, value)"
	    " VALUES ('renew_window', ?)";
	static const char q_reset[] = "UPDATE certificates SET renew_at = NULL"
	    " WHERE status IN ('active', 'pending', 'delivered')"
	    " AND renew_at IS NOT NULL";
	char want[64], have[64] = "";
	sqlite3_stmt *st;
	enum fc_err result;
	int rc;

	snprintf(want, sizeof(want), "%lld:%lld", (long long)before_s,
	    (long long)jitter_s);
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q_get);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		text_copy(have, sizeof(have), st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		result = db_fail(db, "read renewal window");
		goto out;
	}
	*reset = 0;
	if (strcmp(want, have) != 0) {
		if (have[0] != '\0') {
			st = db_stmt(db, q_reset);
			if (st == NULL) {
				result = FC_EDB;
				goto out;
			}
			result = step_done(db, st, "reset renewal schedule");
			if (result != FC_OK)
				goto out;
			*reset = 1;
		}
		st = db_stmt(db, q_set);
		if (st == NULL) {
			result = FC_EDB;
			goto out;
		}
		sqlite3_bind_text(st, 1, want, -1, SQLITE_TRANSIENT);
		result = step_done(db, st, "store renewal window");
		if (result != FC_OK)
			goto out;
	}
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

const char inv_renew_due_sql[] = "SELECT rowid FROM certificates"
    " INDEXED BY certificates_renew_due"
    " WHERE status = 'active' AND renewal IS NULL AND renew_at <= ?1"
    " ORDER BY renew_at LIMIT ?2";

enum fc_err
inv_renew_due(struct db *db, int64_t now, int limit, int64_t *rowids, int *n)
{
	sqlite3_stmt *st = db_stmt(db, inv_renew_due_sql);
	int rc, k = 0;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	while (k < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rowids[k++] = sqlite3_column_int64(st, 0);
	if (k < limit && rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return db_fail(db, "list certificates due for renewal");
	}
	sqlite3_reset(st);
	*n = k;
	return FC_OK;
}

enum fc_err
inv_renew_due_get(struct db *db, int64_t rowid,
    int (*cb)(void *arg, const struct inv_due *d), void *arg)
{
	static const char q[] = "SELECT c.serial, c.device_id, c.not_after,"
	    " c.renew_at, c.der, d.se_serial, d.hub, d.auth_type, d.status,"
	    " d.rekey FROM certificates c JOIN devices d"
	    " ON d.device_id = c.device_id WHERE c.rowid = ?"
	    " AND c.status = 'active' AND c.renewal IS NULL";
	sqlite3_stmt *st = db_stmt(db, q);
	struct inv_due d;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, rowid);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? FC_ENOTFOUND :
		    db_fail(db, "read certificate due for renewal");
	}
	memset(&d, 0, sizeof(d));
	d.rowid = rowid;
	text_copy(d.serial, sizeof(d.serial), st, 0);
	text_copy(d.device_id, sizeof(d.device_id), st, 1);
	d.not_after = sqlite3_column_int64(st, 2);
	d.renew_at = sqlite3_column_int64(st, 3);
	d.der = sqlite3_column_blob(st, 4);
	d.der_len = (size_t)sqlite3_column_bytes(st, 4);
	text_copy(d.se_serial, sizeof(d.se_serial), st, 5);
	text_copy(d.hub, sizeof(d.hub), st, 6);
	d.auth_type = (enum inv_auth)inv_auth_parse(
	    (const char *)sqlite3_column_text(st, 7));
	d.dev_status = (enum inv_dev_status)inv_dev_status_parse(
	    (const char *)sqlite3_column_text(st, 8));
	d.rekey = sqlite3_column_int(st, 9);
	(void)cb(arg, &d);
	sqlite3_reset(st);
	return FC_OK;
}

enum fc_err
inv_renew_postpone(struct db *db, const char *serial, int64_t renew_at)
{
	static const char q[] = "UPDATE certificates SET renew_at = ?"
	    " WHERE serial = ?";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, renew_at);
	sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
	return step_done(db, st, "postpone renewal");
}

enum fc_err
inv_renew_reserve(struct db *db, const char *old_serial,
    const char *device_id, const char *new_serial, const char *actor)
{
	static const char q_mark[] = "UPDATE certificates SET renewal = ?,"
	    " updated_at = ? WHERE serial = ? AND status = 'active'"
	    " AND renewal IS NULL";
	struct inv_cert c;
	sqlite3_stmt *st;
	enum fc_err result;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q_mark);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, new_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, fc_now());
	sqlite3_bind_text(st, 3, old_serial, -1, SQLITE_STATIC);
	result = step_done(db, st, "mark renewal in flight");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1) {
		result = FC_ECONFLICT;
		goto out;
	}
	memset(&c, 0, sizeof(c));
	snprintf(c.serial, sizeof(c.serial), "%s", new_serial);
	snprintf(c.device_id, sizeof(c.device_id), "%s", device_id);
	snprintf(c.renewed_from, sizeof(c.renewed_from), "%s", old_serial);
	c.status = INV_CERT_RESERVED;
	c.issued_by = INV_ISSUED_RENEWAL;
	result = inv_cert_insert(db, &c, actor);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_renew_record(struct db *db, const struct inv_cert *c, int64_t renew_at,
    const char *first_step, const char *actor)
{
	/* inv_cert_complete and the next renew_at in one statement: each
	 * index of the row changes once. */
	static const char q_cert[] = "UPDATE certificates SET der = ?1,"
	    " not_before = ?2, not_after = ?3, sha1 = ?4, sha256 = ?5,"
	    " status = 'pending', renew_at = ?6, updated_at = ?7"
	    " WHERE serial = ?8 AND status = 'reserved'";
	static const char q_dl[] = "INSERT INTO deliveries (serial, device_id,"
	    " step, attempts, next_attempt_at, created_at, updated_at)"
	    " VALUES (?, ?, ?, 0, ?, ?, ?)";
	char detail[160];
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t now = fc_now();

	if (c->der == NULL || c->der_len == 0)
		return FC_EINVAL;
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q_cert);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_blob(st, 1, c->der, (int)c->der_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->not_before);
	sqlite3_bind_int64(st, 3, c->not_after);
	sqlite3_bind_text(st, 4, c->sha1, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, renew_at);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_text(st, 8, c->serial, -1, SQLITE_STATIC);
	result = step_done(db, st, "record certificate");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1) {
		result = FC_ECONFLICT;
		goto out;
	}
	/* The same entry inv_cert_complete writes. */
	snprintf(detail, sizeof(detail), "{\"notAfter\":%lld,\"sha256\":\"%s\"}",
	    (long long)c->not_after, c->sha256);
	result = audit_append(db, actor, "cert.issue", c->device_id, c->serial,
	    detail);
	if (result != FC_OK)
		goto out;
	st = db_stmt(db, q_dl);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, c->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, first_step, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, now);
	sqlite3_bind_int64(st, 6, now);
	result = step_done(db, st, "queue delivery");
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

/* Clears the renewal in flight `serial` on the certificate it renews. */
static enum fc_err
renewal_clear(struct db *db, const char *serial, int64_t retry_at)
{
	static const char q[] = "UPDATE certificates SET renewal = NULL,"
	    " renew_at = CASE WHEN ?1 > 0 THEN ?1 ELSE renew_at END,"
	    " updated_at = ?2 WHERE renewal = ?3 AND serial = (SELECT"
	    " renewed_from FROM certificates WHERE serial = ?3)";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, retry_at);
	sqlite3_bind_int64(st, 2, fc_now());
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	return step_done(db, st, "clear renewal in flight");
}

enum fc_err
inv_renew_void(struct db *db, const char *serial, int64_t retry_at,
    const char *why, const char *actor)
{
	static const char q[] = "UPDATE certificates SET status = 'revoked',"
	    " revoked_at = ?1, revocation_reason = ?2, updated_at = ?1"
	    " WHERE serial = ?3 AND status = 'reserved'";
	struct inv_cert c;
	char detail[384], esc[300];
	sqlite3_stmt *st;
	enum fc_err result;

	memset(&c, 0, sizeof(c));
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = inv_cert_get(db, serial, &c);
	if (result != FC_OK)
		goto out;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, fc_now());
	sqlite3_bind_int(st, 2, CRL_REASON_SUPERSEDED);
	sqlite3_bind_text(st, 3, serial, -1, SQLITE_STATIC);
	result = step_done(db, st, "void reserved certificate");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1) {
		result = FC_ECONFLICT;
		goto out;
	}
	result = renewal_clear(db, serial, retry_at);
	if (result != FC_OK)
		goto out;
	json_text(esc, sizeof(esc), why);
	snprintf(detail, sizeof(detail), "{\"reason\":\"%s\",\"renewedFrom\":"
	    "\"%s\"}", esc, c.renewed_from);
	result = audit_append(db, actor, "cert.void", c.device_id, serial,
	    detail);
	if (result != FC_OK)
		goto out;
	inv_cert_clear(&c);
	return db_commit(db);
out:
	inv_cert_clear(&c);
	db_rollback(db);
	return result;
}

enum fc_err
inv_renew_reserved_list(struct db *db,
    int (*cb)(void *arg, const char *serial, const char *device_id),
    void *arg)
{
	static const char q[] = "SELECT serial, device_id FROM certificates"
	    " WHERE status = 'reserved' ORDER BY created_at, serial";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result = FC_OK;
	int rc;

	if (st == NULL)
		return FC_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cb(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1)) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		result = db_fail(db, "list reserved certificates");
	sqlite3_reset(st);
	return result;
}

#define DL_COLS "dl.serial, dl.device_id, dl.step, dl.attempts," \
	" dl.next_attempt_at, dl.created_at, d.hub, d.auth_type, n.status," \
	" o.serial, o.not_after, n.renew_at, n.not_after"
#define DL_FROM " FROM deliveries dl" \
	" JOIN devices d ON d.device_id = dl.device_id" \
	" JOIN certificates n ON n.serial = dl.serial" \
	" LEFT JOIN certificates o ON o.serial = n.renewed_from"

static void
row_delivery(sqlite3_stmt *st, struct inv_delivery *d)
{
	memset(d, 0, sizeof(*d));
	text_copy(d->serial, sizeof(d->serial), st, 0);
	text_copy(d->device_id, sizeof(d->device_id), st, 1);
	text_copy(d->step, sizeof(d->step), st, 2);
	d->attempts = sqlite3_column_int(st, 3);
	d->next_attempt_at = sqlite3_column_int64(st, 4);
	d->created_at = sqlite3_column_int64(st, 5);
	text_copy(d->hub, sizeof(d->hub), st, 6);
	d->auth_type = (enum inv_auth)inv_auth_parse(
	    (const char *)sqlite3_column_text(st, 7));
	d->cert_status = (enum inv_cert_status)inv_cert_status_parse(
	    (const char *)sqlite3_column_text(st, 8));
	text_copy(d->old_serial, sizeof(d->old_serial), st, 9);
	d->old_not_after = sqlite3_column_int64(st, 10);
	d->renew_at = sqlite3_column_int64(st, 11);
	d->not_after = sqlite3_column_int64(st, 12);
}

enum fc_err
inv_delivery_due(struct db *db, int64_t now, int limit,
    int (*cb)(void *arg, const struct inv_delivery *d), void *arg)
{
	static const char q[] = "SELECT " DL_COLS " FROM deliveries dl"
	    " INDEXED BY deliveries_open"
	    " JOIN devices d ON d.device_id = dl.device_id"
	    " JOIN certificates n ON n.serial = dl.serial"
	    " LEFT JOIN certificates o ON o.serial = n.renewed_from"
	    " WHERE dl.step NOT IN ('done', 'failed', 'cancelled')"
	    " AND dl.next_attempt_at <= ? ORDER BY dl.next_attempt_at LIMIT ?";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result = FC_OK;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct inv_delivery d;

		row_delivery(st, &d);
		if (cb(arg, &d) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		result = db_fail(db, "list due deliveries");
	sqlite3_reset(st);
	return result;
}

enum fc_err
inv_delivery_get(struct db *db, const char *serial, struct inv_delivery *out)
{
	static const char q[] = "SELECT " DL_COLS DL_FROM
	    " WHERE dl.serial = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_delivery(st, out);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return FC_OK;
	return rc == SQLITE_DONE ? FC_ENOTFOUND : db_fail(db, "read delivery");
}

enum fc_err
inv_delivery_update(struct db *db, const char *serial, const char *step,
    int attempts, int64_t next_attempt_at, const char *last_error)
{
	static const char q[] = "UPDATE deliveries SET step = ?, attempts = ?,"
	    " next_attempt_at = ?, last_error = ?, updated_at = ?"
	    " WHERE serial = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, step, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, attempts);
	sqlite3_bind_int64(st, 3, next_attempt_at);
	if (last_error != NULL)
		sqlite3_bind_text(st, 4, last_error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, fc_now());
	sqlite3_bind_text(st, 6, serial, -1, SQLITE_STATIC);
	result = step_done(db, st, "update delivery");
	if (result == FC_OK && sqlite3_changes(db->h) != 1)
		result = FC_ENOTFOUND;
	return result;
}

enum fc_err
inv_delivery_finish(struct db *db, const char *serial, const char *step,
    const char *why, int64_t retry_at, const char *actor)
{
	struct inv_delivery d;
	char action[48], detail[384], esc[300];
	enum fc_err result;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = inv_delivery_get(db, serial, &d);
	if (result != FC_OK)
		goto out;
	result = inv_delivery_update(db, serial, step, d.attempts,
	    d.next_attempt_at, why);
	if (result != FC_OK)
		goto out;
	if (strcmp(step, INV_STEP_DONE) != 0) {
		result = renewal_clear(db, serial, retry_at);
		if (result != FC_OK)
			goto out;
	}
	snprintf(action, sizeof(action), "delivery.%s", step);
	json_text(esc, sizeof(esc), why);
	snprintf(detail, sizeof(detail), "{\"reason\":\"%s\",\"attempts\":%d}",
	    esc, d.attempts);
	result = audit_append(db, actor, action, d.device_id, serial, detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_delivery_confirm(struct db *db, const char *serial, const char *next_step,
    const char *actor)
{
	static const char q_dev[] = "UPDATE devices SET needs_reenrol = 0,"
	    " updated_at = ? WHERE device_id = ? AND needs_reenrol != 0";
	struct inv_delivery d;
	struct inv_cert old;
	sqlite3_stmt *st;
	enum fc_err result;

	memset(&old, 0, sizeof(old));
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = inv_delivery_get(db, serial, &d);
	if (result != FC_OK)
		goto out;
	if (d.cert_status != INV_CERT_PENDING &&
	    d.cert_status != INV_CERT_DELIVERED) {
		result = FC_ECONFLICT;
		goto out;
	}
	result = inv_cert_set_status(db, serial, INV_CERT_ACTIVE, actor,
	    "{\"confirmedBy\":\"reported fleetcert.installedSerial\"}");
	if (result != FC_OK)
		goto out;
	if (d.old_serial[0] != '\0' &&
	    inv_cert_get(db, d.old_serial, &old) == FC_OK &&
	    (old.status == INV_CERT_ACTIVE || old.status == INV_CERT_EXPIRED)) {
		char detail[96];
		snprintf(detail, sizeof(detail), "{\"by\":\"%s\"}", serial);
		result = inv_cert_set_status(db, d.old_serial,
		    INV_CERT_SUPERSEDED, actor, detail);
		if (result != FC_OK)
			goto out;
	}
	st = db_stmt(db, q_dev);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, fc_now());
	sqlite3_bind_text(st, 2, d.device_id, -1, SQLITE_STATIC);
	result = step_done(db, st, "clear needs_reenrol");
	if (result != FC_OK)
		goto out;
	result = inv_delivery_update(db, serial, next_step, d.attempts,
	    fc_now(), NULL);
	if (result != FC_OK)
		goto out;
	if (strcmp(next_step, INV_STEP_DONE) == 0) {
		result = audit_append(db, actor, "delivery.done", d.device_id,
		    serial, NULL);
		if (result != FC_OK)
			goto out;
	}
	inv_cert_clear(&old);
	return db_commit(db);
out:
	inv_cert_clear(&old);
	db_rollback(db);
	return result;
}

enum fc_err
inv_delivery_flag_expired(struct db *db, int64_t now, int *n)
{
	static const char q[] = "UPDATE devices SET needs_reenrol = 1,"
	    " updated_at = ?1 WHERE needs_reenrol = 0 AND device_id IN ("
	    " SELECT dl.device_id FROM deliveries dl"
	    " INDEXED BY deliveries_open"
	    " JOIN certificates nw ON nw.serial = dl.serial"
	    " JOIN certificates o ON o.serial = nw.renewed_from"
	    " WHERE dl.step NOT IN ('done', 'failed', 'cancelled')"
	    " AND o.not_after <= ?1)";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	result = step_done(db, st, "flag devices needing re-enrolment");
	if (result == FC_OK)
		*n = sqlite3_changes(db->h);
	return result;
}

/* One integer from a statement bound with up to two integers. */
static enum fc_err
count1(struct db *db, const char *q, int64_t a, int64_t b, int64_t *out)
{
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? FC_OK : db_fail(db, "count for metrics");
}

enum fc_err
inv_delivery_stats(struct db *db, int64_t now, struct inv_delivery_stats *out)
{
	static const char q_open[] = "SELECT count(*) FROM deliveries"
	    " INDEXED BY deliveries_open WHERE step NOT IN"
	    " ('done', 'failed', 'cancelled') AND ?1 = ?1 AND ?2 = ?2";
	static const char q_due[] = "SELECT count(*) FROM deliveries"
	    " INDEXED BY deliveries_open WHERE step NOT IN"
	    " ('done', 'failed', 'cancelled') AND next_attempt_at <= ?1 + ?2";
	static const char q_oldest[] = "SELECT coalesce(min(created_at), 0)"
	    " FROM deliveries INDEXED BY deliveries_open WHERE step NOT IN"
	    " ('done', 'failed', 'cancelled') AND ?1 = ?1 AND ?2 = ?2";
	static const char q_step[] = "SELECT count(*) FROM deliveries"
	    " WHERE step = CASE ?1 WHEN 0 THEN 'failed' WHEN 1 THEN 'done'"
	    " ELSE 'cancelled' END AND ?2 = ?2";
	static const char q_flag[] = "SELECT count(*) FROM devices"
	    " WHERE needs_reenrol != 0 AND ?1 = ?1 AND ?2 = ?2";
	static const char q_exp[] = "SELECT count(*) FROM certificates"
	    " WHERE status = 'active' AND not_after >= ?1 AND not_after < ?2";
	struct inv_delivery_stats s;
	enum fc_err result;

	memset(&s, 0, sizeof(s));
	result = count1(db, q_open, 0, 0, &s.open);
	if (result == FC_OK)
		result = count1(db, q_due, now, 0, &s.due);
	if (result == FC_OK)
		result = count1(db, q_oldest, 0, 0, &s.oldest_open_created);
	if (result == FC_OK)
		result = count1(db, q_step, 0, 0, &s.failed);
	if (result == FC_OK)
		result = count1(db, q_step, 1, 0, &s.done);
	if (result == FC_OK)
		result = count1(db, q_step, 2, 0, &s.cancelled);
	if (result == FC_OK)
		result = count1(db, q_flag, 0, 0, &s.needs_reenrol);
	if (result == FC_OK)
		result = count1(db, q_exp, now, now + 7 * 86400, &s.expiring_7d);
	if (result == FC_OK)
		result = count1(db, q_exp, now, now + 30 * 86400,
		    &s.expiring_30d);
	if (result == FC_OK)
		*out = s;
	return result;
}
