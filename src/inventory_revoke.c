/*
 * inventory_revoke.c — SQL of revocation, propagation, bulk requests, CRL
 * entries, expiry and drift (inventory_revoke.h). Any thread, on its own
 * connection; every state change audited in the same transaction.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "inventory.h"
#include "inventory_renew.h"
#include "inventory_revoke.h"
#include "log.h"

#define SQL_MAX	2048

static void
copy_col(sqlite3_stmt *st, int col, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", t != NULL ? (const char *)t : "");
}

static void
add(char *q, size_t len, const char *s)
{
	size_t n = strlen(q);

	snprintf(q + n, len - n, "%s", s);
}

enum fc_err
inv_rev_match(struct db *db, const struct inv_selector *s,
    int (*cb)(void *arg, const char *device_id, const char *hub), void *arg)
{
	char q[SQL_MAX] = "";
	sqlite3_stmt *st = NULL;
	enum fc_err result = FC_OK;
	int i = 1, rc, any = 0;

	if (s->lineage != NULL)
		add(q, sizeof(q), "WITH RECURSIVE lin(serial) AS (SELECT ?1 "
		    "UNION SELECT c.serial FROM certificates c JOIN lin "
		    "ON c.renewed_from = lin.serial) ");
	add(q, sizeof(q), "SELECT d.device_id, d.hub FROM devices d ");
	if (s->device_ids_json != NULL)
		add(q, sizeof(q), "JOIN json_each(?2) j ON j.value = "
		    "d.device_id ");
	add(q, sizeof(q), "WHERE d.status IN ('active', 'suspended') ");
	if (s->device_ids_json != NULL)
		any = 1;
	if (s->serials_json != NULL) {
		add(q, sizeof(q), "AND EXISTS (SELECT 1 FROM certificates c "
		    "WHERE c.device_id = d.device_id AND c.serial IN "
		    "(SELECT lower(value) FROM json_each(?3))) ");
		any = 1;
	}
	if (s->issued_from != 0 || s->issued_to != 0) {
		add(q, sizeof(q), "AND EXISTS (SELECT 1 FROM certificates c "
		    "WHERE c.device_id = d.device_id AND c.not_before "
		    "BETWEEN ?4 AND ?5) ");
		any = 1;
	}
	if (s->batch != NULL) {
		add(q, sizeof(q), "AND d.batch = ?6 ");
		any = 1;
	}
	if (s->owner != NULL) {
		add(q, sizeof(q), "AND d.owner = ?7 ");
		any = 1;
	}
	if (s->lineage != NULL) {
		add(q, sizeof(q), "AND EXISTS (SELECT 1 FROM certificates c "
		    "JOIN lin USING (serial) WHERE c.device_id = d.device_id) ");
		any = 1;
	}
	if (!any)
		return FC_EINVAL;
	add(q, sizeof(q), s->device_ids_json != NULL ?
	    "GROUP BY d.device_id ORDER BY min(j.key)" :
	    "ORDER BY d.device_id");
	result = db_prepare(db, q, &st);
	if (result != FC_OK)
		return result;
	if (s->lineage != NULL)
		sqlite3_bind_text(st, 1, s->lineage, -1, SQLITE_STATIC);
	if (s->device_ids_json != NULL)
		sqlite3_bind_text(st, 2, s->device_ids_json, -1, SQLITE_STATIC);
	if (s->serials_json != NULL)
		sqlite3_bind_text(st, 3, s->serials_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, s->issued_from);
	sqlite3_bind_int64(st, 5, s->issued_to != 0 ? s->issued_to : INT64_MAX);
	if (s->batch != NULL)
		sqlite3_bind_text(st, 6, s->batch, -1, SQLITE_STATIC);
	if (s->owner != NULL)
		sqlite3_bind_text(st, 7, s->owner, -1, SQLITE_STATIC);
	(void)i;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cb(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1)) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = db_fail(db, "match revocation selector");
	sqlite3_finalize(st);
	return result;
}

/* Serials of the device still to revoke, and open deliveries. */
struct serials {
	char	(*s)[FC_CERT_SERIAL_MAX];
	size_t	 n, cap;
};

static enum fc_err
collect(struct db *db, const char *q, const char *device_id, int64_t now,
    struct serials *out)
{
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->n == out->cap) {
			size_t nc = out->cap ? out->cap * 2 : 8;
			void *p = realloc(out->s, nc * sizeof(*out->s));
			if (p == NULL)
				return FC_ENOMEM;
			out->s = p;
			out->cap = nc;
		}
		copy_col(st, 0, out->s[out->n++], FC_CERT_SERIAL_MAX);
	}
	if (rc != SQLITE_DONE)
		return db_fail(db, "list certificates to revoke");
	return FC_OK;
}

enum fc_err
inv_rev_device(struct db *db, const char *device_id, int reason,
    const char *reason_text, enum inv_rev_action action,
    int64_t revocation_id, int64_t rank, const char *actor, int *ncerts)
{
	static const char qc[] = "SELECT serial FROM certificates WHERE "
	    "device_id = ?1 AND status NOT IN ('revoked', 'expired') AND "
	    "(not_after IS NULL OR not_after > ?2)";
	static const char qd[] = "SELECT serial FROM deliveries WHERE "
	    "device_id = ?1 AND step NOT IN ('done', 'failed', 'cancelled')";
	static const char qp[] = "INSERT INTO propagation (device_id, hub, "
	    "action, reason, revocation_id, state, rank, created_at, "
	    "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7) "
	    "ON CONFLICT (device_id) DO UPDATE SET action = excluded.action, "
	    "reason = excluded.reason, revocation_id = excluded.revocation_id, "
	    "state = 'pending', rank = excluded.rank, updated_at = ?7 "
	    "WHERE state = 'done' OR action != excluded.action";
	struct inv_device d;
	struct serials certs = { NULL, 0, 0 }, dels = { NULL, 0, 0 };
	enum inv_dev_status want = action == INV_REV_DELETE ?
	    INV_DEV_DECOMMISSIONED : INV_DEV_REVOKED;
	enum fc_err result;
	sqlite3_stmt *st;
	int64_t now = fc_now();
	size_t i;

	memset(&d, 0, sizeof(d));
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = inv_device_get(db, device_id, &d);
	if (result != FC_OK)
		goto out;
	result = collect(db, qd, device_id, now, &dels);
	for (i = 0; result == FC_OK && i < dels.n; i++)
		result = inv_delivery_finish(db, dels.s[i], INV_STEP_CANCELLED,
		    "device revoked", 0, actor);
	if (result == FC_OK)
		result = collect(db, qc, device_id, now, &certs);
	for (i = 0; result == FC_OK && i < certs.n; i++)
		result = inv_cert_revoke(db, certs.s[i], reason, actor);
	if (result != FC_OK)
		goto out;
	if (d.status != want && d.status != INV_DEV_DECOMMISSIONED) {
		result = inv_device_set_status(db, device_id, want, actor,
		    reason_text);
		if (result != FC_OK)
			goto out;
	}
	st = db_stmt(db, qp);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d.hub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, action == INV_REV_DELETE ? "delete" :
	    "disable", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, reason_text, -1, SQLITE_STATIC);
	if (revocation_id > 0)
		sqlite3_bind_int64(st, 5, revocation_id);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, rank);
	sqlite3_bind_int64(st, 7, now);
	if (sqlite3_step(st) != SQLITE_DONE) {
		result = db_fail(db, "queue propagation");
		goto out;
	}
	result = db_commit(db);
	if (result == FC_OK && ncerts != NULL)
		*ncerts = (int)certs.n;
	goto done;
out:
	db_rollback(db);
done:
	free(certs.s);
	free(dels.s);
	inv_device_clear(&d);
	return result;
}

/* ---- propagation ------------------------------------------------------- */

static enum fc_err
meta_next(struct db *db, const char *key, uint64_t *out)
{
	static const char qu[] = "UPDATE meta SET value = CAST(value AS "
	    "INTEGER) + 1 WHERE key = ?1 RETURNING value";
	sqlite3_stmt *st = db_stmt(db, qu);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return db_fail(db, key);
	*out = (uint64_t)sqlite3_column_int64(st, 0);
	while (sqlite3_step(st) == SQLITE_ROW)
		;
	return FC_OK;
}

enum fc_err
inv_prop_claim(struct db *db, const char *hub, const char *only_device,
    struct inv_prop *out, size_t max, size_t *n, int64_t *batch)
{
	static const char qs[] = "SELECT device_id, hub, action, reason, "
	    "revocation_id, state = 'inflight', attempts FROM propagation "
	    "WHERE hub = ?1 AND state != 'done' AND (?2 IS NULL OR "
	    "device_id = ?2) ORDER BY state = 'pending', rank, device_id "
	    "LIMIT ?3";
	static const char qu[] = "UPDATE propagation SET state = 'inflight', "
	    "batch = ?1, updated_at = ?2 WHERE device_id = ?3";
	sqlite3_stmt *st;
	enum fc_err result;
	uint64_t b = 0;
	size_t k = 0, i;
	int rc;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, qs);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, hub, -1, SQLITE_STATIC);
	if (only_device != NULL)
		sqlite3_bind_text(st, 2, only_device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)max);
	while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct inv_prop *p = &out[k++];
		const unsigned char *a = sqlite3_column_text(st, 2);
		memset(p, 0, sizeof(*p));
		copy_col(st, 0, p->device_id, sizeof(p->device_id));
		copy_col(st, 1, p->hub, sizeof(p->hub));
		p->action = a != NULL && strcmp((const char *)a, "delete") == 0 ?
		    INV_REV_DELETE : INV_REV_DISABLE;
		copy_col(st, 3, p->reason, sizeof(p->reason));
		p->revocation_id = sqlite3_column_int64(st, 4);
		p->inflight = sqlite3_column_int(st, 5);
		p->attempts = sqlite3_column_int(st, 6);
	}
	sqlite3_reset(st);
	if (k > 0) {
		result = meta_next(db, "propagation_batch", &b);
		if (result != FC_OK)
			goto out;
	}
	for (i = 0; i < k; i++) {
		st = db_stmt(db, qu);
		if (st == NULL) {
			result = FC_EDB;
			goto out;
		}
		sqlite3_bind_int64(st, 1, (int64_t)b);
		sqlite3_bind_int64(st, 2, fc_now());
		sqlite3_bind_text(st, 3, out[i].device_id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			result = db_fail(db, "mark propagation inflight");
			goto out;
		}
	}
	result = db_commit(db);
	if (result == FC_OK) {
		*n = k;
		if (batch != NULL)
			*batch = (int64_t)b;
	}
	return result;
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_prop_done(struct db *db, const char *device_id, const char *actor,
    const char *detail)
{
	static const char qu[] = "UPDATE propagation SET state = 'done', "
	    "last_error = NULL, updated_at = ?1 WHERE device_id = ?2 AND "
	    "state != 'done' RETURNING revocation_id";
	static const char qr[] = "UPDATE revocations SET propagated = "
	    "propagated + 1, updated_at = ?1 WHERE id = ?2";
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t rid = 0;
	int rc, changed = 0;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, qu);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, fc_now());
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rid = sqlite3_column_int64(st, 0);
		changed = 1;
	}
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "mark propagation done");
		goto out;
	}
	if (changed && rid > 0) {
		st = db_stmt(db, qr);
		if (st == NULL) {
			result = FC_EDB;
			goto out;
		}
		sqlite3_bind_int64(st, 1, fc_now());
		sqlite3_bind_int64(st, 2, rid);
		if (sqlite3_step(st) != SQLITE_DONE) {
			result = db_fail(db, "count propagation");
			goto out;
		}
	}
	if (changed) {
		result = audit_append(db, actor, "device.propagated", device_id,
		    NULL, detail);
		if (result != FC_OK)
			goto out;
	}
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_prop_retry(struct db *db, const char *device_id, const char *why)
{
	static const char q[] = "UPDATE propagation SET state = 'pending', "
	    "attempts = attempts + 1, last_error = ?1, updated_at = ?2 "
	    "WHERE device_id = ?3 AND state != 'done'";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, why, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, fc_now());
	sqlite3_bind_text(st, 3, device_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, "reset propagation");
	return FC_OK;
}

enum fc_err
inv_prop_count(struct db *db, const char *hub, int64_t *pending)
{
	static const char q[] = "SELECT count(*) FROM propagation WHERE "
	    "state != 'done' AND (?1 IS NULL OR hub = ?1)";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	if (hub != NULL)
		sqlite3_bind_text(st, 1, hub, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		return db_fail(db, "count propagation");
	*pending = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return FC_OK;
}

enum fc_err
inv_prop_state(struct db *db, const char *device_id, char state[16],
    char last_error[256])
{
	static const char q[] = "SELECT state, last_error FROM propagation "
	    "WHERE device_id = ?1";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, state, 16);
		copy_col(st, 1, last_error, 256);
	} else if (rc == SQLITE_DONE) {
		state[0] = last_error[0] = '\0';
	} else {
		return db_fail(db, "read propagation");
	}
	sqlite3_reset(st);
	return FC_OK;
}

enum fc_err
inv_prop_hubs(struct db *db, int (*cb)(void *arg, const char *hub),
    void *arg)
{
	static const char q[] = "SELECT DISTINCT hub FROM propagation WHERE "
	    "state != 'done'";
	sqlite3_stmt *st = NULL;
	char hubs[16][FC_NAME_MAX];
	int n = 0, i, rc;

	st = db_stmt(db, q);
	if (st == NULL)
		return FC_EDB;
	while (n < 16 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		copy_col(st, 0, hubs[n++], FC_NAME_MAX);
	sqlite3_reset(st);
	for (i = 0; i < n; i++)
		if (cb(arg, hubs[i]) != 0)
			break;
	return FC_OK;
}

/* ---- bulk requests ----------------------------------------------------- */

void
inv_revocation_clear(struct inv_revocation *r)
{
	if (r == NULL)
		return;
	free(r->selector);
	memset(r, 0, sizeof(*r));
}

enum fc_err
inv_rev_request_insert(struct db *db, const char *selector,
    const char *reason, const char *requester, int dry_run, int64_t matched,
    int64_t estimate_seconds, const char *state, int64_t *id)
{
	static const char q[] = "INSERT INTO revocations (selector, reason, "
	    "requester, dry_run, matched, state, estimate_seconds, "
	    "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "?8)";
	sqlite3_stmt *st;
	enum fc_err result;
	char detail[128];

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, selector, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, requester, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, dry_run);
	sqlite3_bind_int64(st, 5, matched);
	sqlite3_bind_text(st, 6, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, estimate_seconds);
	sqlite3_bind_int64(st, 8, fc_now());
	if (sqlite3_step(st) != SQLITE_DONE) {
		result = db_fail(db, "insert revocation request");
		goto out;
	}
	*id = sqlite3_last_insert_rowid(db->h);
	snprintf(detail, sizeof(detail), "{\"id\":%lld,\"dryRun\":%s}",
	    (long long)*id, dry_run ? "true" : "false");
	result = audit_append(db, requester, "revocation.request", NULL, NULL,
	    detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_rev_request_get(struct db *db, int64_t id, struct inv_revocation *out)
{
	static const char q[] = "SELECT id, selector, reason, requester, "
	    "dry_run, matched, propagated, state, coalesce(last_error, ''), "
	    "coalesce(estimate_seconds, 0), created_at, coalesce(crl_at, 0), "
	    "coalesce(finished_at, 0) FROM revocations WHERE id = ?1";
	sqlite3_stmt *st = db_stmt(db, q);
	struct inv_revocation r;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return FC_ENOTFOUND;
	}
	if (rc != SQLITE_ROW)
		return db_fail(db, "read revocation request");
	memset(&r, 0, sizeof(r));
	r.id = sqlite3_column_int64(st, 0);
	r.selector = strdup((const char *)sqlite3_column_text(st, 1));
	copy_col(st, 2, r.reason, sizeof(r.reason));
	copy_col(st, 3, r.requester, sizeof(r.requester));
	r.dry_run = sqlite3_column_int(st, 4);
	r.matched = sqlite3_column_int64(st, 5);
	r.propagated = sqlite3_column_int64(st, 6);
	copy_col(st, 7, r.state, sizeof(r.state));
	copy_col(st, 8, r.last_error, sizeof(r.last_error));
	r.estimate_seconds = sqlite3_column_int64(st, 9);
	r.created_at = sqlite3_column_int64(st, 10);
	r.crl_at = sqlite3_column_int64(st, 11);
	r.finished_at = sqlite3_column_int64(st, 12);
	sqlite3_reset(st);
	if (r.selector == NULL)
		return FC_ENOMEM;
	*out = r;
	return FC_OK;
}

enum fc_err
inv_rev_request_state(struct db *db, int64_t id, const char *state,
    int64_t matched)
{
	static const char q[] = "UPDATE revocations SET state = ?1, matched = "
	    "CASE WHEN ?2 >= 0 THEN ?2 ELSE matched END, updated_at = ?3 "
	    "WHERE id = ?4";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, matched);
	sqlite3_bind_int64(st, 3, fc_now());
	sqlite3_bind_int64(st, 4, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, "update revocation request");
	return FC_OK;
}

enum fc_err
inv_rev_request_pending(struct db *db, int (*cb)(void *arg, int64_t id),
    void *arg)
{
	static const char q[] = "SELECT id FROM revocations WHERE state = "
	    "'pending' ORDER BY id LIMIT 1000";
	sqlite3_stmt *st = db_stmt(db, q);
	int64_t ids[1000];
	int n = 0, i;

	if (st == NULL)
		return FC_EDB;
	while (n < 1000 && sqlite3_step(st) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	for (i = 0; i < n; i++)
		if (cb(arg, ids[i]) != 0)
			break;
	return FC_OK;
}

enum fc_err
inv_rev_request_crl_published(struct db *db, int64_t now)
{
	static const char q[] = "UPDATE revocations SET crl_at = ?1 WHERE "
	    "state IN ('propagating', 'done') AND crl_at IS NULL";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, "stamp CRL time");
	return FC_OK;
}

enum fc_err
inv_rev_request_finish(struct db *db, int64_t now)
{
	static const char q[] = "UPDATE revocations SET state = 'done', "
	    "finished_at = ?1, updated_at = ?1 WHERE state = 'propagating' "
	    "AND NOT EXISTS (SELECT 1 FROM propagation p WHERE "
	    "p.revocation_id = revocations.id AND p.state != 'done')";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, "finish revocation requests");
	return FC_OK;
}

/* ---- CRL, expiry ------------------------------------------------------- */

enum fc_err
inv_crl_number_next(struct db *db, uint64_t *out)
{
	enum fc_err result;
	uint64_t n = 0;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = meta_next(db, "crl_number", &n);
	if (result != FC_OK) {
		db_rollback(db);
		return result;
	}
	result = db_commit(db);
	if (result == FC_OK)
		*out = n;
	return result;
}

struct inv_crl_iter {
	sqlite3_stmt	*st;
};

enum fc_err
inv_crl_iter_open(struct db *db, struct inv_crl_iter **out)
{
	static const char q[] = "SELECT serial, coalesce(revoked_at, "
	    "updated_at), coalesce(revocation_reason, 0) FROM certificates "
	    "WHERE status = 'revoked' ORDER BY serial";
	struct inv_crl_iter *it = calloc(1, sizeof(*it));
	enum fc_err result;

	if (it == NULL)
		return FC_ENOMEM;
	result = db_prepare(db, q, &it->st);
	if (result != FC_OK) {
		free(it);
		return result;
	}
	*out = it;
	return FC_OK;
}

int
inv_crl_iter_next(void *arg, struct ca_crl_entry *e)
{
	struct inv_crl_iter *it = arg;
	int rc = sqlite3_step(it->st);

	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW) {
		log_error("CRL: reading revoked certificates: %s",
		    sqlite3_errstr(rc));
		return -1;
	}
	memset(e, 0, sizeof(*e));
	copy_col(it->st, 0, e->serial, sizeof(e->serial));
	e->revoked_at = sqlite3_column_int64(it->st, 1);
	e->reason = sqlite3_column_int(it->st, 2);
	return 1;
}

void
inv_crl_iter_close(struct inv_crl_iter *it)
{
	if (it == NULL)
		return;
	sqlite3_finalize(it->st);
	free(it);
}

enum fc_err
inv_expire_mark(struct db *db, int64_t now, int *n)
{
	static const char q[] = "SELECT serial FROM certificates WHERE status "
	    "IN ('pending', 'delivered', 'active', 'superseded') AND "
	    "not_after < ?1 LIMIT 10000";
	sqlite3_stmt *st = db_stmt(db, q);
	struct serials s = { NULL, 0, 0 };
	enum fc_err result = FC_OK;
	size_t i;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_int64(st, 1, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (s.n == s.cap) {
			size_t nc = s.cap ? s.cap * 2 : 64;
			void *p = realloc(s.s, nc * sizeof(*s.s));
			if (p == NULL) {
				result = FC_ENOMEM;
				break;
			}
			s.s = p;
			s.cap = nc;
		}
		copy_col(st, 0, s.s[s.n++], FC_CERT_SERIAL_MAX);
	}
	sqlite3_reset(st);
	if (result == FC_OK && s.n > 0) {
		result = db_begin(db);
		for (i = 0; result == FC_OK && i < s.n; i++)
			result = inv_cert_set_status(db, s.s[i],
			    INV_CERT_EXPIRED, "sweep",
			    "{\"why\":\"notAfter passed\"}");
		if (result == FC_OK)
			result = db_commit(db);
		else
			db_rollback(db);
	}
	if (result == FC_OK)
		*n = (int)s.n;
	free(s.s);
	return result;
}

/* ---- drift ------------------------------------------------------------- */

enum fc_err
inv_drift_begin(struct db *db)
{
	return db_exec(db, "DELETE FROM drift");
}

enum fc_err
inv_drift_add(struct db *db, const char *kind, const char *device_id,
    const char *detail)
{
	static const char q[] = "INSERT OR REPLACE INTO drift (kind, "
	    "device_id, detail, seen_at) VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *st = db_stmt(db, q);

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, detail, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, fc_now());
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_fail(db, "record drift");
	return FC_OK;
}

enum fc_err
inv_drift_list(struct db *db, int (*cb)(void *arg, const char *kind,
    const char *device_id, const char *detail, int64_t seen_at), void *arg)
{
	static const char q[] = "SELECT kind, device_id, coalesce(detail, ''), "
	    "seen_at FROM drift ORDER BY kind, device_id LIMIT 10000";
	sqlite3_stmt *st = NULL;
	enum fc_err result;
	int rc;

	result = db_prepare(db, q, &st);
	if (result != FC_OK)
		return result;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    sqlite3_column_int64(st, 3)) != 0)
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		result = db_fail(db, "list drift");
	sqlite3_finalize(st);
	return result;
}
