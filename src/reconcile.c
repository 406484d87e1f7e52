/*
 * reconcile.c — inventory vs hub (reconcile.h). Runs on the thread that
 * drives ctx's hubs (sweep, daemon revocation worker); writes only the
 * drift table and, for repairs, the propagation queue.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hub.h"
#include "inventory.h"
#include "log.h"
#include "reconcile.h"

#define QUERY_PAGES_MAX	100000

struct certs_seen {
	const char	*thumb1, *thumb2;
	int		 match;
	int64_t		 not_after;
};

static int
cert_cb(void *arg, const struct inv_cert *c)
{
	struct certs_seen *cs = arg;
	const char *t[2] = { cs->thumb1, cs->thumb2 };
	int i;

	if (c->status == INV_CERT_REVOKED || c->status == INV_CERT_EXPIRED ||
	    c->status == INV_CERT_RESERVED)
		return 0;
	for (i = 0; i < 2; i++)
		if (t[i][0] != '\0' && (strcasecmp(t[i], c->sha1) == 0 ||
		    strcasecmp(t[i], c->sha256) == 0))
			cs->match = 1;
	return 0;
}

static enum fc_err
one_device(struct revoke_ctx *ctx, const struct hub_device *hd,
    struct reconcile_stats *st)
{
	struct inv_device d;
	struct inv_cert c;
	struct certs_seen cs;
	char detail[256];
	int64_t now = fc_now();
	enum fc_err result;

	memset(&d, 0, sizeof(d));
	memset(&c, 0, sizeof(c));
	st->seen++;
	result = inv_device_get(ctx->db, hd->id, &d);
	if (result == FC_ENOTFOUND) {
		st->unknown++;
		return inv_drift_add(ctx->db, "unknown", hd->id,
		    "{\"hub\":\"enabled\"}");
	}
	if (result != FC_OK)
		return result;
	if (d.status == INV_DEV_REVOKED || d.status == INV_DEV_DECOMMISSIONED) {
		st->revoked_enabled++;
		result = inv_drift_add(ctx->db, "revoked-enabled", hd->id,
		    "{\"repair\":\"disable queued\"}");
		if (result == FC_OK)
			result = inv_rev_device(ctx->db, hd->id, 1,
			    "fleetcert: revoked (reconciliation)",
			    d.status == INV_DEV_DECOMMISSIONED ?
			    INV_REV_DELETE : INV_REV_DISABLE, 0, 0,
			    ctx->actor, NULL);
		if (result == FC_OK) {
			/* A done row is reset to pending only when the action
			 * differs; force it. */
			(void)inv_prop_retry(ctx->db, hd->id,
			    "enabled at the hub (reconciliation)");
			st->repaired++;
		}
		goto out;
	}
	if (d.auth_type == INV_AUTH_SELFSIGNED && (hd->primary_thumbprint[0] ||
	    hd->secondary_thumbprint[0])) {
		memset(&cs, 0, sizeof(cs));
		cs.thumb1 = hd->primary_thumbprint;
		cs.thumb2 = hd->secondary_thumbprint;
		result = inv_cert_list_by_device(ctx->db, hd->id, cert_cb, &cs);
		if (result == FC_OK && !cs.match) {
			st->thumbprint++;
			snprintf(detail, sizeof(detail), "{\"primary\":\"%s\"}",
			    hd->primary_thumbprint);
			result = inv_drift_add(ctx->db, "thumbprint-mismatch",
			    hd->id, detail);
		}
		if (result != FC_OK)
			goto out;
	}
	if (hd->last_activity > 0 && inv_cert_current(ctx->db, hd->id, &c) ==
	    FC_OK) {
		int64_t next = now + (now - (int64_t)hd->last_activity);
		if (c.not_after < next) {
			char a[21], b[21];
			st->expiring++;
			fc_time_iso((time_t)c.not_after, a);
			fc_time_iso((time_t)next, b);
			snprintf(detail, sizeof(detail), "{\"notAfter\":\"%s\","
			    "\"likelyNextContact\":\"%s\"}", a, b);
			result = inv_drift_add(ctx->db,
			    "expiring-before-contact", hd->id, detail);
		}
	}
out:
	inv_cert_clear(&c);
	inv_device_clear(&d);
	return result;
}

static enum fc_err
one_hub(struct revoke_ctx *ctx, struct hub *h, struct reconcile_stats *st)
{
	struct hub_req *req = NULL;
	struct hub_result *res = NULL;
	char *cont = NULL;
	enum fc_err result = FC_OK;
	size_t i;
	int pages = 0;
	json_t *row;

	do {
		result = hub_req_query("SELECT * FROM devices WHERE status = "
		    "'enabled'", 100, cont, &req);
		free(cont);
		cont = NULL;
		if (result != FC_OK)
			break;
		(void)hub_call(h, req, &res);
		req = NULL;
		if (res->outcome != HUB_DONE) {
			log_warn("reconciliation: hub query failed: %s %s",
			    hub_outcome_name(res->outcome), res->error.name);
			result = FC_EREMOTE;
			break;
		}
		if (db_begin(ctx->db) != FC_OK) {
			result = FC_EDB;
			break;
		}
		json_array_foreach(res->json, i, row) {
			struct hub_device hd;
			memset(&hd, 0, sizeof(hd));
			if (hub_device_from_json(row, &hd) != FC_OK)
				continue;
			result = one_device(ctx, &hd, st);
			hub_device_clear(&hd);
			if (result != FC_OK)
				break;
		}
		if (result != FC_OK) {
			db_rollback(ctx->db);
			break;
		}
		result = db_commit(ctx->db);
		if (res->continuation != NULL)
			cont = strdup(res->continuation);
		hub_result_free(res);
		res = NULL;
	} while (result == FC_OK && cont != NULL && ++pages < QUERY_PAGES_MAX);
	hub_result_free(res);
	free(cont);
	return result;
}

enum fc_err
reconcile_run(struct revoke_ctx *ctx, struct reconcile_stats *st)
{
	enum fc_err result = FC_OK, r;
	size_t i;

	memset(st, 0, sizeof(*st));
	r = inv_drift_begin(ctx->db);
	if (r != FC_OK)
		return r;
	for (i = 0; i < ctx->nhubs; i++) {
		if (ctx->hubs[i] == NULL) {
			result = FC_EREMOTE;
			continue;
		}
		r = one_hub(ctx, ctx->hubs[i], st);
		if (r != FC_OK)
			result = r;
	}
	st->total = st->revoked_enabled + st->unknown + st->thumbprint +
	    st->expiring;
	return result;
}
