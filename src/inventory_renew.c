/*
 * inventory_renew.c — SQL of the renewal schedule and of the reserve /
 * record / void steps of a renewal (inventory_renew.h; the outbox's SQL is
 * in inventory_deliver.c).
 * Main thread, on the scheduler's connection (tests: any connection).
 * Certificate changes go through inventory.c where it has the call, so
 * that they are audited the same way everywhere.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

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

struct sched_row {
	int64_t	rowid, at;
};

static int
sched_row_cmp(const void *a, const void *b)
{
	const struct sched_row *x = a, *y = b;

	return x->rowid < y->rowid ? -1 : x->rowid > y->rowid;
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
	struct sched_row *rows = NULL;
	sqlite3_stmt *sel, *upd;
	enum fc_err result;
	int rc, i, count = 0;

	if (limit < 1)
		return FC_EINVAL;
	rows = calloc((size_t)limit, sizeof(*rows));
	if (rows == NULL)
		return FC_ENOMEM;
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
		rows[count].rowid = sqlite3_column_int64(sel, 0);
		rows[count].at = inv_renew_at(dev ? dev : "",
		    sqlite3_column_int64(sel, 2), before_s, jitter_s);
		count++;
	}
	if (count < limit && rc != SQLITE_DONE)
		result = db_fail(db, "list unscheduled certificates");
	sqlite3_reset(sel);
	/* Written in table order: neighbouring rows share pages. */
	qsort(rows, (size_t)count, sizeof(*rows), sched_row_cmp);
	for (i = 0; i < count && result == FC_OK; i++) {
		sqlite3_bind_int64(upd, 1, rows[i].at);
		sqlite3_bind_int64(upd, 2, rows[i].rowid);
		result = db_step_done(db, upd, "schedule renewal");
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
		db_col_text(have, sizeof(have), st, 0);
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
			result = db_step_done(db, st, "reset renewal schedule");
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
		result = db_step_done(db, st, "store renewal window");
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
	    " d.rekey, d.rekey_once FROM certificates c JOIN devices d"
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
	db_col_text(d.serial, sizeof(d.serial), st, 0);
	db_col_text(d.device_id, sizeof(d.device_id), st, 1);
	d.not_after = sqlite3_column_int64(st, 2);
	d.renew_at = sqlite3_column_int64(st, 3);
	d.der = sqlite3_column_blob(st, 4);
	d.der_len = (size_t)sqlite3_column_bytes(st, 4);
	db_col_text(d.se_serial, sizeof(d.se_serial), st, 5);
	db_col_text(d.hub, sizeof(d.hub), st, 6);
	d.auth_type = (enum inv_auth)inv_auth_parse(
	    (const char *)sqlite3_column_text(st, 7));
	d.dev_status = (enum inv_dev_status)inv_dev_status_parse(
	    (const char *)sqlite3_column_text(st, 8));
	d.rekey = sqlite3_column_int(st, 9);
	d.rekey_once = sqlite3_column_int(st, 10);
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
	return db_step_done(db, st, "postpone renewal");
}

enum fc_err
inv_renew_request(struct db *db, const char *device_id, int rekey,
    int64_t now, const char *actor, char serial[FC_CERT_SERIAL_MAX],
    int *rekey_out, enum inv_renew_refusal *refusal, char *dev_status,
    size_t status_cap)
{
	static const char q_dev[] = "SELECT status, rekey, rekey_once"
	    " FROM devices WHERE device_id = ?";
	static const char q_cert[] = "SELECT serial, renewal FROM certificates"
	    " WHERE device_id = ? AND status = 'active'"
	    " ORDER BY renewal IS NOT NULL, not_after DESC LIMIT 1";
	static const char q_due[] = "UPDATE certificates SET renew_at = ?1,"
	    " updated_at = ?1 WHERE serial = ?2 AND status = 'active'"
	    " AND renewal IS NULL";
	static const char q_once[] = "UPDATE devices SET rekey_once = 1,"
	    " updated_at = ?1 WHERE device_id = ?2";
	static const char q_gen[] = "INSERT INTO meta (key, value)"
	    " VALUES ('rekey_requests', 1) ON CONFLICT (key) DO UPDATE"
	    " SET value = CAST(value AS INTEGER) + 1";
	char cur[FC_CERT_SERIAL_MAX] = "", status[32] = "", detail[64];
	enum inv_renew_refusal why = INV_RENEW_ACCEPTED;
	sqlite3_stmt *st;
	enum fc_err result;
	int rc, will_rekey = 0;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	if ((st = db_stmt(db, q_dev)) == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		result = rc == SQLITE_DONE ? FC_ENOTFOUND :
		    db_fail(db, "read device for renewal request");
		goto out;
	}
	db_col_text(status, sizeof(status), st, 0);
	will_rekey = rekey || sqlite3_column_int(st, 1) ||
	    sqlite3_column_int(st, 2);
	sqlite3_reset(st);
	if (strcmp(status, "active") != 0) {
		why = INV_RENEW_DEVICE_NOT_ACTIVE;
		result = FC_ECONFLICT;
		goto out;
	}
	/* A certificate without renewal in flight first: several active
	 * ones (imported) are renewed one at a time. */
	if ((st = db_stmt(db, q_cert)) == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		db_col_text(cur, sizeof(cur), st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			why = INV_RENEW_IN_FLIGHT;
	} else if (rc == SQLITE_DONE)
		why = INV_RENEW_NO_CERTIFICATE;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		result = db_fail(db, "read certificate for renewal request");
		goto out;
	}
	if (why != INV_RENEW_ACCEPTED) {
		result = FC_ECONFLICT;
		goto out;
	}
	if ((st = db_stmt(db, q_due)) == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_text(st, 2, cur, -1, SQLITE_STATIC);
	if ((result = db_step_done(db, st, "schedule renewal now")) != FC_OK)
		goto out;
	if (rekey) {
		if ((st = db_stmt(db, q_once)) == NULL) {
			result = FC_EDB;
			goto out;
		}
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
		if ((result = db_step_done(db, st, "set one-shot rekey")) != FC_OK)
			goto out;
		if ((st = db_stmt(db, q_gen)) == NULL) {
			result = FC_EDB;
			goto out;
		}
		if ((result = db_step_done(db, st, "count rekey requests")) !=
		    FC_OK)
			goto out;
	}
	snprintf(detail, sizeof(detail), "{\"rekey\":%s}", will_rekey ?
	    "true" : "false");
	result = audit_append(db, actor, "device.renew", device_id, cur,
	    detail);
	if (result != FC_OK)
		goto out;
	result = db_commit(db);
	if (result != FC_OK)
		return result;
	snprintf(serial, FC_CERT_SERIAL_MAX, "%s", cur);
	*rekey_out = will_rekey;
	*refusal = INV_RENEW_ACCEPTED;
	return FC_OK;
out:
	db_rollback(db);
	if (result == FC_ECONFLICT) {
		*refusal = why;
		snprintf(dev_status, status_cap, "%s", status);
	}
	return result;
}

enum fc_err
inv_renew_reserve_row(struct db *db, int64_t old_rowid, const char *old_serial,
    const char *device_id, const char *new_serial, const char *actor)
{
	static const char q_serial[] = "UPDATE certificates SET renewal = ?1,"
	    " updated_at = ?2 WHERE serial = ?3 AND status = 'active'"
	    " AND renewal IS NULL";
	static const char q_rowid[] = "UPDATE certificates SET renewal = ?1,"
	    " updated_at = ?2 WHERE rowid = ?4 AND serial = ?3"
	    " AND status = 'active' AND renewal IS NULL";
	struct inv_cert c;
	sqlite3_stmt *st;
	enum fc_err result;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, old_rowid > 0 ? q_rowid : q_serial);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, new_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, fc_now());
	sqlite3_bind_text(st, 3, old_serial, -1, SQLITE_STATIC);
	if (old_rowid > 0)
		sqlite3_bind_int64(st, 4, old_rowid);
	result = db_step_done(db, st, "mark renewal in flight");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1)
		goto unchanged;
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
unchanged:
	/* Nothing was written: end this (possibly nested) level without
	 * the rollback that would abort the caller's whole transaction. */
	result = db_commit(db);
	return result == FC_OK ? FC_ECONFLICT : result;
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_renew_reserve(struct db *db, const char *old_serial,
    const char *device_id, const char *new_serial, const char *actor)
{
	return inv_renew_reserve_row(db, 0, old_serial, device_id, new_serial,
	    actor);
}

enum fc_err
inv_chain_put(struct db *db, const char *pem, int64_t *id)
{
	static const char q_ins[] = "INSERT INTO chains (sha256, pem,"
	    " created_at) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING";
	static const char q_get[] = "SELECT id FROM chains WHERE sha256 = ?";
	unsigned char md[32];
	char hex[65];
	sqlite3_stmt *st;
	enum fc_err result;
	int rc;

	if (pem == NULL || pem[0] == '\0')
		return FC_EINVAL;
	if (EVP_Digest(pem, strlen(pem), md, NULL, EVP_sha256(), NULL) != 1)
		return FC_ECRYPTO;
	fc_hex(md, sizeof(md), hex, 0);
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	if ((st = db_stmt(db, q_ins)) == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pem, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, fc_now());
	if ((result = db_step_done(db, st, "store chain")) != FC_OK)
		goto out;
	if ((st = db_stmt(db, q_get)) == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		result = db_fail(db, "read chain id");
		goto out;
	}
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_cert_chain(struct db *db, const char *serial, char **pem)
{
	static const char q[] = "SELECT ch.pem FROM certificates c"
	    " JOIN chains ch ON ch.id = c.chain_id WHERE c.serial = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result = FC_ENOTFOUND;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*pem = strdup((const char *)sqlite3_column_text(st, 0));
		result = *pem != NULL ? FC_OK : FC_ENOMEM;
	} else if (rc != SQLITE_DONE)
		result = db_fail(db, "read certificate chain");
	sqlite3_reset(st);
	return result;
}

enum fc_err
inv_renew_rekey_generation(struct db *db, int64_t *gen)
{
	static const char q[] = "SELECT value FROM meta"
	    " WHERE key = 'rekey_requests'";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	*gen = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*gen = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? FC_OK :
	    db_fail(db, "read the rekey request count");
}

enum fc_err
inv_renew_rekey_wanted(struct db *db, const char *device_id, int *want)
{
	static const char q[] = "SELECT rekey, rekey_once FROM devices"
	    " WHERE device_id = ?";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*want = sqlite3_column_int(st, 0) != 0 ||
		    sqlite3_column_int(st, 1) != 0;
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return FC_OK;
	return rc == SQLITE_DONE ? FC_ENOTFOUND :
	    db_fail(db, "read the device's rekey flags");
}

enum fc_err
inv_renew_record(struct db *db, const struct inv_cert *c, int64_t renew_at,
    const char *first_step, int rekeyed, const char *actor)
{
	/* inv_cert_complete and the next renew_at in one statement: each
	 * index of the row changes once. */
	static const char q_cert[] = "UPDATE certificates SET der = ?1,"
	    " not_before = ?2, not_after = ?3, sha1 = ?4, sha256 = ?5,"
	    " status = 'pending', renew_at = ?6, updated_at = ?7,"
	    " chain_id = NULLIF(?9, 0) WHERE serial = ?8 AND status = 'reserved' AND (SELECT d.status"
	    " FROM devices d WHERE d.device_id = certificates.device_id) ="
	    " 'active'";
	static const char q_dl[] = "INSERT INTO deliveries (serial, device_id,"
	    " step, attempts, next_attempt_at, created_at, updated_at)"
	    " VALUES (?, ?, ?, 0, ?, ?, ?)";
	static const char q_once[] = "UPDATE devices SET rekey_once = 0"
	    " WHERE device_id = ? AND rekey_once <> 0";
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
	sqlite3_bind_int64(st, 9, c->chain_id);
	result = db_step_done(db, st, "record certificate");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1) {
		/* Nothing written: no rollback of the caller's batch. */
		result = db_commit(db);
		return result == FC_OK ? FC_ECONFLICT : result;
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
	result = db_step_done(db, st, "queue delivery");
	if (result != FC_OK)
		goto out;
	if (!rekeyed)
		return db_commit(db);
	st = db_stmt(db, q_once);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, c->device_id, -1, SQLITE_STATIC);
	result = db_step_done(db, st, "clear one-shot rekey");
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_renew_clear(struct db *db, const char *serial, int64_t retry_at)
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
	return db_step_done(db, st, "clear renewal in flight");
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
	result = db_step_done(db, st, "void reserved certificate");
	if (result != FC_OK)
		goto out;
	if (sqlite3_changes(db->h) != 1) {
		/* Not reserved (any more); nothing written. */
		inv_cert_clear(&c);
		result = db_commit(db);
		return result == FC_OK ? FC_ECONFLICT : result;
	}
	result = inv_renew_clear(db, serial, retry_at);
	if (result != FC_OK)
		goto out;
	fc_json_escape(esc, sizeof(esc), why);
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
