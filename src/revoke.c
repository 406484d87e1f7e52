/*
 * revoke.c — revocation: recording it in the inventory, bulk requests and
 * their planner, propagation to IoT Hub (single and bulk), and the CRL
 * (revoke.h). The database part runs on any thread's connection; the hub
 * part on the one thread that drives the context's hubs (the sweep, or the
 * daemon's revocation worker).
 */
#include "fc_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "config.h"
#include "hub.h"
#include "inventory.h"
#include "log.h"
#include "revoke.h"
#include "signer.h"

#define SELECTOR_IDS_MAX	1000000

int
revoke_reason_code(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return CA_REASON_KEY_COMPROMISE;
	return ca_reason_parse(name);
}

enum fc_err
revoke_ctx_open_hubs(struct revoke_ctx *ctx, const struct cfg *cfg)
{
	size_t i;

	ctx->cfg = cfg;
	ctx->nhubs = 0;
	for (i = 0; i < cfg->nhubs && i < REVOKE_HUBS_MAX; i++) {
		struct hub *h = NULL;
		if (hub_open(&cfg->hubs[i], &h) != FC_OK) {
			log_error("revocation: hub %s: cannot open; its work "
			    "stays pending", cfg->hubs[i].name[0] ?
			    cfg->hubs[i].name : "(default)");
			h = NULL;
		}
		ctx->hub_names[i] = cfg->hubs[i].name;
		ctx->hubs[i] = h;
		ctx->registry_per_minute[i] = cfg->hubs[i].registry_per_minute;
		ctx->rate_per_second[i] = cfg->hubs[i].rate_per_second;
		ctx->nhubs++;
	}
	return FC_OK;
}

void
revoke_ctx_close_hubs(struct revoke_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->nhubs; i++) {
		hub_close(ctx->hubs[i]);
		ctx->hubs[i] = NULL;
	}
	ctx->nhubs = 0;
}

static struct hub *
hub_of(struct revoke_ctx *ctx, const char *name, int *idx)
{
	size_t i;

	for (i = 0; i < ctx->nhubs; i++)
		if (strcmp(ctx->hub_names[i], name) == 0) {
			if (idx != NULL)
				*idx = (int)i;
			return ctx->hubs[i];
		}
	return NULL;
}

enum fc_err
revoke_device_record(struct db *db, const char *device_id,
    const char *reason, enum inv_rev_action action, const char *actor,
    int *ncerts)
{
	char text[HUB_REASON_MAX];
	int code = revoke_reason_code(reason);

	if (code < 0)
		return FC_EINVAL;
	if (action == INV_REV_DELETE && (reason == NULL || reason[0] == '\0'))
		code = CA_REASON_CESSATION_OF_OPERATION;
	snprintf(text, sizeof(text), "fleetcert: %s", reason != NULL &&
	    reason[0] != '\0' ? reason : action == INV_REV_DELETE ?
	    "decommissioned" : "keyCompromise");
	return inv_rev_device(db, device_id, code, text, action, 0, 0, actor,
	    ncerts);
}

static void
result_why(const struct hub_result *res, char *why, size_t len)
{
	snprintf(why, len, "hub %s (%ld %.63s%s%.100s)",
	    hub_outcome_name(res->outcome), res->http_status,
	    res->error.name[0] ? res->error.name : "",
	    res->error.message[0] ? ": " : "", res->error.message);
}

/*
 * hub_call with a bounded poll: a call waiting for a registry token may
 * report no timeout (hub_perform: -1), and hub_poll then sleeps a whole
 * second; polling at most every 20 ms keeps bulk calls on the bucket's
 * pace, which the planner's estimate assumes.
 */
static void
call_done(struct hub_result *res, void *arg)
{
	*(struct hub_result **)arg = res;
}

static void
call(struct hub *h, struct hub_req *req, struct hub_result **out)
{
	struct hub_result *res = NULL;
	int t;

	if (hub_submit(h, req, call_done, &res) != FC_OK) {
		/* Only out of memory: reported as no answer. */
		res = calloc(1, sizeof(*res));
		if (res == NULL)
			fatal("revocation: out of memory");
		res->outcome = HUB_UNREACHABLE;
		snprintf(res->error.message, sizeof(res->error.message),
		    "out of memory");
		*out = res;
		return;
	}
	for (;;) {
		hub_perform(h, &t);
		if (res != NULL)
			break;
		hub_poll(h, t < 0 || t > 20 ? 20 : t);
	}
	*out = res;
}

static void
run_all(struct hub *h)
{
	int t;

	while (hub_perform(h, &t) > 0)
		hub_poll(h, t < 0 || t > 20 ? 20 : t);
}

/* One device, synchronously. */
enum fc_err
revoke_propagate_one(struct revoke_ctx *ctx, const char *device_id,
    char *why, size_t whylen)
{
	struct inv_prop p;
	struct hub *h;
	struct hub_req *req = NULL;
	struct hub_result *res = NULL;
	struct hub_device dev;
	json_t *desired = NULL;
	enum fc_err result;
	size_t n = 0;
	int tries;
	char detail[160];

	memset(&dev, 0, sizeof(dev));
	/* Which hub: the row says. */
	{
		char state[16], err[256];
		struct inv_device d;
		memset(&d, 0, sizeof(d));
		result = inv_prop_state(ctx->db, device_id, state, err);
		if (result != FC_OK)
			return result;
		if (state[0] == '\0' || strcmp(state, "done") == 0)
			return state[0] ? FC_OK : FC_ENOTFOUND;
		result = inv_device_get(ctx->db, device_id, &d);
		if (result != FC_OK)
			return result;
		h = hub_of(ctx, d.hub, NULL);
		result = inv_prop_claim(ctx->db, d.hub, device_id, &p, 1, &n,
		    NULL);
		inv_device_clear(&d);
		if (result != FC_OK)
			return result;
		if (n == 0)
			return FC_OK;
	}
	if (h == NULL) {
		snprintf(why, whylen, "no usable hub \"%s\" configured", p.hub);
		(void)inv_prop_retry(ctx->db, device_id, why);
		return FC_EREMOTE;
	}
	for (tries = 0; tries < 2; tries++) {
		hub_device_clear(&dev);
		if (hub_req_device_get(device_id, &req) != FC_OK) {
			result = FC_EINVAL;
			snprintf(why, whylen, "device id refused by the client");
			goto fail;
		}
		call(h, req, &res);
		req = NULL;
		if (res->outcome == HUB_REJECTED &&
		    hub_error_is(&res->error, HUB_E_DEVICE_NOT_FOUND)) {
			result = inv_prop_done(ctx->db, device_id, ctx->actor,
			    "{\"hub\":\"not registered\"}");
			goto out;
		}
		if (res->outcome != HUB_DONE) {
			result_why(res, why, whylen);
			result = FC_EREMOTE;
			goto fail;
		}
		hub_device_copy(&dev, &res->device);
		hub_result_free(res);
		res = NULL;
		if (p.action == INV_REV_DISABLE && !dev.enabled) {
			result = inv_prop_done(ctx->db, device_id, ctx->actor,
			    "{\"hub\":\"already disabled\"}");
			goto out;
		}
		if (p.action == INV_REV_DISABLE && tries == 0) {
			/* Clear the desired certificate first: a disabled
			 * device's twin answers 404001. Best effort. */
			desired = json_pack("{s:n}", "fleetcert");
			if (desired != NULL && hub_req_twin_patch_desired(
			    device_id, desired, NULL, &req) == FC_OK) {
				call(h, req, &res);
				req = NULL;
				hub_result_free(res);
				res = NULL;
			}
			json_decref(desired);
			desired = NULL;
		}
		if (p.action == INV_REV_DISABLE)
			result = hub_req_device_disable(&dev, p.reason, &req);
		else
			result = hub_req_device_delete(device_id, dev.etag,
			    &req);
		if (result != FC_OK) {
			snprintf(why, whylen, "request refused by the client");
			goto fail;
		}
		call(h, req, &res);
		req = NULL;
		if (res->outcome == HUB_DONE || (res->outcome == HUB_REJECTED &&
		    hub_error_is(&res->error, HUB_E_DEVICE_NOT_FOUND))) {
			snprintf(detail, sizeof(detail), "{\"hub\":\"%s\"}",
			    p.action == INV_REV_DISABLE ? "disabled" :
			    "deleted");
			result = inv_prop_done(ctx->db, device_id, ctx->actor,
			    detail);
			goto out;
		}
		if (!(res->outcome == HUB_REJECTED && hub_error_is(&res->error,
		    HUB_E_PRECONDITION_FAILED)))
			break;
		hub_result_free(res);	/* stale etag: read again */
		res = NULL;
	}
	if (res != NULL)
		result_why(res, why, whylen);
	else
		snprintf(why, whylen, "the device changed at the hub twice");
	result = FC_EREMOTE;
fail:
	log_warn("revocation: %s: propagation pending: %s", device_id, why);
	(void)inv_prop_retry(ctx->db, device_id, why);
out:
	hub_result_free(res);
	hub_device_clear(&dev);
	return result;
}

/* ---- bulk propagation -------------------------------------------------- */

struct batch {
	struct inv_prop	 rows[HUB_BULK_MAX];
	struct hub_device dev[HUB_BULK_MAX];
	int		 state[HUB_BULK_MAX];	/* 0 send, 1 done, 2 retry */
	char		 why[HUB_BULK_MAX][256];
	size_t		 n;
	int		 unreachable;
	char		 err[256];
};

static void
got_device(struct hub_result *res, void *arg)
{
	struct batch *b = arg;
	size_t i = (size_t)(uintptr_t)res->user;

	if (res->outcome == HUB_DONE) {
		hub_device_copy(&b->dev[i], &res->device);
		if (b->rows[i].action == INV_REV_DISABLE && !b->dev[i].enabled)
			b->state[i] = 1;
	} else if (res->outcome == HUB_REJECTED &&
	    hub_error_is(&res->error, HUB_E_DEVICE_NOT_FOUND)) {
		b->state[i] = 1;
	} else {
		b->state[i] = 2;
		result_why(res, b->why[i], sizeof(b->why[i]));
		if (res->outcome != HUB_REJECTED) {
			b->unreachable = 1;
			snprintf(b->err, sizeof(b->err), "%s", b->why[i]);
		}
	}
	hub_result_free(res);
}

static enum fc_err
batch_finish(struct revoke_ctx *ctx, struct batch *b,
    struct revoke_prop_stats *st)
{
	enum fc_err result = FC_OK;
	size_t i;

	result = db_begin(ctx->db);
	for (i = 0; result == FC_OK && i < b->n; i++) {
		if (b->state[i] == 1) {
			result = inv_prop_done(ctx->db, b->rows[i].device_id,
			    ctx->actor, b->rows[i].action == INV_REV_DISABLE ?
			    "{\"hub\":\"disabled\",\"bulk\":true}" :
			    "{\"hub\":\"deleted\",\"bulk\":true}");
			st->done++;
		} else {
			result = inv_prop_retry(ctx->db, b->rows[i].device_id,
			    b->why[i][0] ? b->why[i] : "not sent");
		}
	}
	if (result == FC_OK)
		return db_commit(ctx->db);
	db_rollback(ctx->db);
	return result;
}

/* One batch of one hub: read, then one bulk call. 1 = more may follow,
 * 0 = queue empty, -1 = stop this hub. */
static int
one_batch(struct revoke_ctx *ctx, const char *name, struct hub *h,
    struct revoke_prop_stats *st)
{
	struct batch *b = calloc(1, sizeof(*b));
	struct hub_bulk_entry ent[HUB_BULK_MAX];
	size_t idx[HUB_BULK_MAX];
	struct hub_req *req = NULL;
	struct hub_result *res = NULL;
	size_t i, k = 0, j;
	int rc = 1;

	if (b == NULL)
		return -1;
	if (inv_prop_claim(ctx->db, name, NULL, b->rows, HUB_BULK_MAX, &b->n,
	    NULL) != FC_OK) {
		rc = -1;
		goto out;
	}
	if (b->n == 0) {
		rc = 0;
		goto out;
	}
	/* Read every device of the batch (concurrently): after a crash this
	 * is what tells a batch already applied from one never sent. */
	for (i = 0; i < b->n; i++) {
		if (hub_req_device_get(b->rows[i].device_id, &req) != FC_OK) {
			b->state[i] = 2;
			snprintf(b->why[i], sizeof(b->why[i]), "bad device id");
			continue;
		}
		hub_req_set_user(req, (void *)(uintptr_t)i);
		(void)hub_submit(h, req, got_device, b);
		req = NULL;
	}
	run_all(h);
	if (b->unreachable) {
		for (i = 0; i < b->n; i++)
			if (b->state[i] == 0) {
				b->state[i] = 2;
				snprintf(b->why[i], sizeof(b->why[i]), "%s",
				    b->err);
			}
		rc = -1;
	}
	for (i = 0; rc == 1 && i < b->n; i++) {
		if (b->state[i] != 0)
			continue;
		if (b->rows[i].action == INV_REV_DISABLE) {
			b->dev[i].enabled = 0;
			snprintf(b->dev[i].status_reason,
			    sizeof(b->dev[i].status_reason), "%s",
			    b->rows[i].reason);
			ent[k].mode = HUB_IMPORT_UPDATE_IF_MATCH_ETAG;
		} else {
			ent[k].mode = HUB_IMPORT_DELETE_IF_MATCH_ETAG;
		}
		ent[k].device = &b->dev[i];
		idx[k++] = i;
	}
	if (k > 0) {
		if (hub_req_bulk(ent, k, &req) != FC_OK) {
			for (j = 0; j < k; j++) {
				b->state[idx[j]] = 2;
				snprintf(b->why[idx[j]], sizeof(b->why[0]),
				    "bulk request refused by the client");
			}
		} else {
			call(h, req, &res);
			req = NULL;
			st->calls++;
			if (res->outcome != HUB_DONE) {
				result_why(res, b->err, sizeof(b->err));
				for (j = 0; j < k; j++) {
					b->state[idx[j]] = 2;
					snprintf(b->why[idx[j]],
					    sizeof(b->why[0]), "%.200s", b->err);
				}
				if (res->outcome != HUB_REJECTED)
					rc = -1;
			} else {
				for (j = 0; j < k && j < res->nbulk; j++) {
					struct hub_bulk_item *it = &res->bulk[j];
					i = idx[j];
					if (it->ok || hub_error_is(&it->error,
					    HUB_E_DEVICE_NOT_FOUND)) {
						b->state[i] = 1;
						continue;
					}
					b->state[i] = 2;
					snprintf(b->why[i], sizeof(b->why[0]),
					    "%s", it->error.name[0] ?
					    it->error.name : "refused");
				}
			}
		}
	}
	if (b->err[0])
		snprintf(st->last_error, sizeof(st->last_error), "hub %.40s: %.200s",
		    name[0] ? name : "default", b->err);
	if (batch_finish(ctx, b, st) != FC_OK)
		rc = -1;
out:
	hub_result_free(res);
	for (i = 0; i < HUB_BULK_MAX; i++)
		hub_device_clear(&b->dev[i]);
	free(b);
	return rc;
}

enum fc_err
revoke_propagate(struct revoke_ctx *ctx, struct revoke_prop_stats *st)
{
	size_t i;
	int rc;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < ctx->nhubs; i++) {
		int64_t left = 0;
		if (inv_prop_count(ctx->db, ctx->hub_names[i], &left) != FC_OK)
			return FC_EDB;
		if (left == 0)
			continue;
		if (ctx->hubs[i] == NULL) {
			st->hub_errors++;
			snprintf(st->last_error, sizeof(st->last_error),
			    "hub %s could not be opened", ctx->hub_names[i]);
			continue;
		}
		do {
			rc = one_batch(ctx, ctx->hub_names[i], ctx->hubs[i],
			    st);
			if (ctx->between != NULL)
				ctx->between(ctx->between_arg);
		} while (rc == 1 && !(ctx->stop != NULL && *ctx->stop));
		if (rc < 0)
			st->hub_errors++;
	}
	return inv_prop_count(ctx->db, NULL, &st->pending);
}

double
revoke_estimate(int64_t n, int registry_per_minute, int rate_per_second)
{
	double calls = ceil((double)n / HUB_BULK_MAX), burst, reg, rd;

	if (n <= 0)
		return 0;
	if (registry_per_minute <= 0)
		registry_per_minute = 100;
	if (rate_per_second <= 0)
		rate_per_second = 10;
	burst = registry_per_minute / 60 < 1 ? 1 : registry_per_minute / 60;
	reg = calls > burst ? (calls - burst) * 60.0 / registry_per_minute : 0;
	/* Reads and calls share the per-second bucket. */
	rd = ((double)n + calls) / rate_per_second;
	return reg > rd ? reg : rd;
}

/* ---- bulk requests ----------------------------------------------------- */

static int64_t
time_parse(const json_t *v)
{
	struct tm tm;
	const char *s;
	char *end;

	if (json_is_integer(v))
		return json_integer_value(v);
	s = json_string_value(v);
	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm);
}

static int
ids_ok(const json_t *a, int serials, char *err, size_t errlen)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) == 0 ||
	    json_array_size(a) > SELECTOR_IDS_MAX) {
		snprintf(err, errlen, "%s: a non-empty array", serials ?
		    "serials" : "deviceIds");
		return 0;
	}
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		size_t k;
		if (s == NULL) {
			snprintf(err, errlen, "%s[%zu]: not a string",
			    serials ? "serials" : "deviceIds", i);
			return 0;
		}
		if (!serials && !fc_device_id_valid(s)) {
			snprintf(err, errlen, "deviceIds[%zu]: not a valid "
			    "device id", i);
			return 0;
		}
		if (serials) {
			for (k = 0; s[k] != '\0'; k++)
				if (!strchr("0123456789abcdefABCDEF", s[k]))
					break;
			if (k == 0 || k > 40 || s[k] != '\0') {
				snprintf(err, errlen, "serials[%zu]: not a hex "
				    "serial", i);
				return 0;
			}
		}
	}
	return 1;
}

/* Parses selector into s; strings in s are borrowed from selector, the
 * JSON array texts are allocated into *a and *b (caller frees). */
static int
selector_parse(const json_t *sel, struct inv_selector *s, char **a, char **b,
    char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	memset(s, 0, sizeof(*s));
	*a = *b = NULL;
	if (!json_is_object(sel) || json_object_size(sel) == 0) {
		snprintf(err, errlen, "selector: an object with at least one "
		    "of deviceIds, serials, issuedBetween, batch, owner, "
		    "lineage");
		return 0;
	}
	json_object_foreach((json_t *)sel, key, v) {
		if (strcmp(key, "deviceIds") == 0 || strcmp(key, "serials") == 0) {
			int ser = key[0] == 's';
			if (!ids_ok(v, ser, err, errlen))
				return 0;
			*(ser ? b : a) = json_dumps(v, JSON_COMPACT);
			if (*(ser ? b : a) == NULL)
				return 0;
			if (ser)
				s->serials_json = *b;
			else
				s->device_ids_json = *a;
		} else if (strcmp(key, "issuedBetween") == 0) {
			if (!json_is_array(v) || json_array_size(v) != 2 ||
			    (s->issued_from = time_parse(json_array_get(v, 0)))
			    < 0 || (s->issued_to = time_parse(
			    json_array_get(v, 1))) < 0 ||
			    s->issued_to < s->issued_from) {
				snprintf(err, errlen, "issuedBetween: [from, "
				    "to], RFC 3339 UTC times or Unix seconds, "
				    "from <= to");
				return 0;
			}
		} else if (strcmp(key, "batch") == 0 || strcmp(key, "owner") ==
		    0 || strcmp(key, "lineage") == 0) {
			const char *t = json_string_value(v);
			if (t == NULL || t[0] == '\0' || strlen(t) >=
			    FC_NAME_MAX) {
				snprintf(err, errlen, "%s: a non-empty string "
				    "of at most %d bytes", key,
				    FC_NAME_MAX - 1);
				return 0;
			}
			if (key[0] == 'b')
				s->batch = t;
			else if (key[0] == 'o')
				s->owner = t;
			else
				s->lineage = t;
		} else {
			snprintf(err, errlen, "selector: unknown field \"%.64s\"",
			    key);
			return 0;
		}
	}
	return 1;
}

static int
count_cb(void *arg, const char *id, const char *hub)
{
	(void)id;
	(void)hub;
	(*(int64_t *)arg)++;
	return 0;
}

enum fc_err
revoke_request_create(struct db *db, const struct cfg *cfg,
    const json_t *selector, const char *reason, int dry_run,
    const char *requester, int64_t *id, int64_t *matched, double *estimate,
    char *err, size_t errlen)
{
	struct inv_selector s;
	char *a = NULL, *b = NULL, *text = NULL;
	enum fc_err result;
	int64_t n = 0, rid = 0;
	double est;
	const struct cfg_hub *ch = cfg != NULL ? cfg_hub_find(cfg, "") : NULL;

	if (ch == NULL && cfg != NULL && cfg->nhubs > 0)
		ch = &cfg->hubs[0];
	if (revoke_reason_code(reason) < 0) {
		snprintf(err, errlen, "reason: not an RFC 5280 reason name");
		return FC_EINVAL;
	}
	if (!selector_parse(selector, &s, &a, &b, err, errlen)) {
		result = FC_EINVAL;
		goto out;
	}
	result = inv_rev_match(db, &s, count_cb, &n);
	if (result != FC_OK)
		goto out;
	est = revoke_estimate(n, ch ? ch->registry_per_minute : 100,
	    ch ? ch->rate_per_second : 10);
	text = json_dumps(selector, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	result = inv_rev_request_insert(db, text, reason && reason[0] ? reason :
	    "keyCompromise", requester, dry_run, n, (int64_t)ceil(est),
	    dry_run ? "dryrun" : "pending", &rid);
	if (result != FC_OK)
		goto out;
	*id = rid;
	*matched = n;
	*estimate = est;
out:
	free(a);
	free(b);
	free(text);
	return result;
}

struct apply {
	struct db	*db;
	int64_t		 id, pos, revoked;
	const char	*actor;
	int		 code;
	char		 text[HUB_REASON_MAX];
	enum fc_err	 result;
	char		(*ids)[FC_DEVICE_ID_MAX];
	size_t		 n, cap;
};

static int
collect_cb(void *arg, const char *id, const char *hub)
{
	struct apply *ap = arg;

	(void)hub;
	if (ap->n == ap->cap) {
		size_t nc = ap->cap ? ap->cap * 2 : 256;
		void *p = realloc(ap->ids, nc * sizeof(*ap->ids));
		if (p == NULL) {
			ap->result = FC_ENOMEM;
			return 1;
		}
		ap->ids = p;
		ap->cap = nc;
	}
	snprintf(ap->ids[ap->n++], FC_DEVICE_ID_MAX, "%s", id);
	return 0;
}

enum fc_err
revoke_request_apply(struct db *db, int64_t id, const char *actor,
    int64_t *revoked)
{
	struct inv_revocation r;
	struct inv_selector s;
	struct apply ap;
	json_t *sel = NULL;
	char *a = NULL, *b = NULL, err[256];
	enum fc_err result;
	size_t i;

	memset(&r, 0, sizeof(r));
	memset(&ap, 0, sizeof(ap));
	result = inv_rev_request_get(db, id, &r);
	if (result != FC_OK)
		return result;
	if (strcmp(r.state, "pending") != 0)
		goto out;
	sel = json_loads(r.selector, 0, NULL);
	if (sel == NULL || !selector_parse(sel, &s, &a, &b, err, sizeof(err))) {
		log_error("revocation %lld: stored selector unusable",
		    (long long)id);
		result = inv_rev_request_state(db, id, "failed", -1);
		goto out;
	}
	ap.db = db;
	ap.id = id;
	ap.actor = actor;
	ap.code = revoke_reason_code(r.reason);
	if (ap.code < 0)
		ap.code = CA_REASON_KEY_COMPROMISE;
	snprintf(ap.text, sizeof(ap.text), "fleetcert: %s (request %lld)",
	    r.reason, (long long)id);
	/* Devices are collected first: revoking them changes what the
	 * selector matches. */
	result = inv_rev_match(db, &s, collect_cb, &ap);
	if (result == FC_OK)
		result = ap.result;
	if (result != FC_OK)
		goto out;
	/* 256 devices per transaction. */
	for (i = 0; result == FC_OK && i < ap.n; i++) {
		int nc = 0;
		if (i % 256 == 0 && (result = db_begin(db)) != FC_OK)
			break;
		result = inv_rev_device(db, ap.ids[i], ap.code, ap.text,
		    INV_REV_DISABLE, id, (id << 32) | (int64_t)i, actor, &nc);
		if (result == FC_ENOTFOUND)
			result = FC_OK;
		ap.revoked++;
		if (result != FC_OK) {
			db_rollback(db);
			break;
		}
		if (i % 256 == 255 || i + 1 == ap.n)
			result = db_commit(db);
	}
	if (result != FC_OK)
		goto out;
	result = inv_rev_request_state(db, id, "propagating",
	    r.matched > (int64_t)ap.n ? r.matched : (int64_t)ap.n);
	if (result == FC_OK && revoked != NULL)
		*revoked = ap.revoked;
out:
	json_decref(sel);
	free(a);
	free(b);
	free(ap.ids);
	inv_revocation_clear(&r);
	return result;
}

json_t *
revoke_request_json(const struct inv_revocation *r)
{
	char t[21], c[21], f[21];
	json_t *sel = json_loads(r->selector, 0, NULL);

	fc_time_iso((time_t)r->created_at, t);
	fc_time_iso((time_t)r->crl_at, c);
	fc_time_iso((time_t)r->finished_at, f);
	return json_pack("{s:I, s:o, s:s, s:s, s:b, s:I, s:I, s:s, s:I, s:s, "
	    "s:s?, s:s?, s:s?}",
	    "id", (json_int_t)r->id, "selector", sel ? sel : json_null(),
	    "reason", r->reason, "requester", r->requester,
	    "dryRun", r->dry_run, "matched", (json_int_t)r->matched,
	    "propagated", (json_int_t)r->propagated, "state", r->state,
	    "estimatedSeconds", (json_int_t)r->estimate_seconds,
	    "createdAt", t, "crlPublishedAt", r->crl_at ? c : NULL,
	    "finishedAt", r->finished_at ? f : NULL,
	    "lastError", r->last_error[0] ? r->last_error : NULL);
}

/* ---- CRL --------------------------------------------------------------- */

struct crl_count {
	struct inv_crl_iter *it;
	int64_t		 n;
};

static int
crl_next(void *arg, struct ca_crl_entry *e)
{
	struct crl_count *c = arg;
	int rc = inv_crl_iter_next(c->it, e);

	if (rc == 1)
		c->n++;
	return rc;
}

enum fc_err
revoke_crl_publish(struct db *db, const struct cfg *cfg, uint64_t *number,
    int64_t *entries)
{
	struct crl_count c = { NULL, 0 };
	unsigned char *der = NULL;
	size_t len = 0;
	uint64_t n = 0;
	char why[160] = "";
	enum fc_err result;

	if (cfg->crl_path == NULL || cfg->ca_certificate == NULL ||
	    cfg->ca_key == NULL)
		return FC_EINVAL;
	/* The number is committed before signing: a crash after it only
	 * skips a number, never reuses one. */
	result = inv_crl_number_next(db, &n);
	if (result != FC_OK)
		return result;
	result = inv_crl_iter_open(db, &c.it);
	if (result != FC_OK)
		return result;
	result = signer_crl(n, crl_next, &c, &der, &len, why, sizeof(why));
	inv_crl_iter_close(c.it);
	if (result != FC_OK) {
		log_error("CRL %llu: not signed: %s", (unsigned long long)n,
		    why);
		return result;
	}
	result = ca_crl_write(cfg->crl_path, der, len);
	free(der);
	if (result != FC_OK) {
		log_error("CRL %llu: cannot write %s", (unsigned long long)n,
		    cfg->crl_path);
		return result;
	}
	(void)inv_rev_request_crl_published(db, fc_now());
	*number = n;
	*entries = c.n;
	return FC_OK;
}
