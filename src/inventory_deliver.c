/*
 * inventory_deliver.c — SQL of the delivery outbox (inventory_renew.h,
 * "delivery outbox"): due rows, step updates, confirmation, the end of a
 * delivery, the needs-re-enrolment flag and the outbox figures for
 * metrics. Main thread (metrics: the API's rendering thread, on its own
 * connection). Certificate changes go through inventory.c, audited.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "inventory_renew.h"
#include "log.h"

#define DL_COLS "dl.serial, dl.device_id, dl.step, dl.attempts," \
	" dl.next_attempt_at, dl.created_at, d.hub, d.auth_type, n.status," \
	" o.serial, o.not_after, n.renew_at, n.not_after, d.status"
#define DL_FROM " FROM deliveries dl" \
	" JOIN devices d ON d.device_id = dl.device_id" \
	" JOIN certificates n ON n.serial = dl.serial" \
	" LEFT JOIN certificates o ON o.serial = n.renewed_from"

static void
row_delivery(sqlite3_stmt *st, struct inv_delivery *d)
{
	memset(d, 0, sizeof(*d));
	db_col_text(d->serial, sizeof(d->serial), st, 0);
	db_col_text(d->device_id, sizeof(d->device_id), st, 1);
	db_col_text(d->step, sizeof(d->step), st, 2);
	d->attempts = sqlite3_column_int(st, 3);
	d->next_attempt_at = sqlite3_column_int64(st, 4);
	d->created_at = sqlite3_column_int64(st, 5);
	db_col_text(d->hub, sizeof(d->hub), st, 6);
	d->auth_type = (enum inv_auth)inv_auth_parse(
	    (const char *)sqlite3_column_text(st, 7));
	d->cert_status = (enum inv_cert_status)inv_cert_status_parse(
	    (const char *)sqlite3_column_text(st, 8));
	db_col_text(d->old_serial, sizeof(d->old_serial), st, 9);
	d->old_not_after = sqlite3_column_int64(st, 10);
	d->renew_at = sqlite3_column_int64(st, 11);
	d->not_after = sqlite3_column_int64(st, 12);
	d->dev_status = (enum inv_dev_status)inv_dev_status_parse(
	    (const char *)sqlite3_column_text(st, 13));
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
	result = db_step_done(db, st, "update delivery");
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
		result = inv_renew_clear(db, serial, retry_at);
		if (result != FC_OK)
			goto out;
	}
	snprintf(action, sizeof(action), "delivery.%s", step);
	fc_json_escape(esc, sizeof(esc), why);
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
	result = db_step_done(db, st, "clear needs_reenrol");
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
	result = db_step_done(db, st, "flag devices needing re-enrolment");
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
