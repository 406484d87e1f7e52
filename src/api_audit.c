/*
 * api_audit.c — operator API endpoints for the audit log (list, verify),
 * bulk imports (import.h), health (health.h) and Prometheus metrics
 * (metrics.h). Runs on the API's threads with the thread's database
 * connection; imports audit with the caller's actor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "audit.h"
#include "health.h"
#include "import.h"
#include "metrics.h"

struct audit_acc {
	json_t	*items;
	int64_t	 last;
};

static int
audit_cb(void *arg, const struct audit_entry *e)
{
	struct audit_acc *acc = arg;
	json_t *detail = NULL, *j;

	if (e->detail != NULL) {
		detail = json_loads(e->detail, JSON_DECODE_ANY, NULL);
		if (detail == NULL)
			detail = json_string(e->detail);
	}
	j = json_pack("{s:I, s:o, s:s, s:s, s:o, s:o, s:o}",
	    "id", (json_int_t)e->id,
	    "at", api_time_json(e->at),
	    "actor", e->actor != NULL ? e->actor : "",
	    "action", e->action != NULL ? e->action : "",
	    "deviceId", e->device_id ? json_string(e->device_id) : json_null(),
	    "serial", e->serial ? json_string(e->serial) : json_null(),
	    "detail", detail != NULL ? detail : json_null());
	if (j == NULL || json_array_append_new(acc->items, j) != 0)
		return 1;
	acc->last = e->id;
	return 0;
}

/* GET /v1/audit?after=&limit=&deviceId= */
static void
audit_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { "after", "limit", "deviceId",
	    NULL };
	struct audit_acc acc = { NULL, 0 };
	const char *dev = httpd_query(c->req, "deviceId");
	long long after, limit;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0 ||
	    api_query_int(c, r, "after", 0, INT64_MAX, 0, &after) < 0 ||
	    api_query_int(c, r, "limit", 1, API_LIST_LIMIT_MAX,
	    API_LIST_LIMIT_DEFAULT, &limit) < 0)
		return;
	if (dev != NULL && !fc_device_id_valid(dev)) {
		httpd_resp_error(r, 400, "bad_device_id",
		    "not a valid device id");
		return;
	}
	if ((acc.items = json_array()) == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	err = audit_list(c->req->db, after, (int)limit, dev, audit_cb, &acc);
	if (err != FC_OK) {
		json_decref(acc.items);
		httpd_resp_fc_err(r, err, "cannot read the audit log");
		return;
	}
	httpd_resp_json(r, 200, json_pack("{s:o, s:o}", "items", acc.items,
	    "nextAfter", (long long)json_array_size(acc.items) == limit ?
	    json_integer(acc.last) : json_null()));
}

/* GET /v1/audit/verify: 200 with ok true/false (a broken chain is an
 * answer, not a failure of the request). */
static void
audit_verify_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	int64_t bad = 0, count = 0;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0)
		return;
	err = audit_verify(c->req->db, &bad, &count);
	if (err != FC_OK && err != FC_ECONFLICT) {
		httpd_resp_fc_err(r, err, "cannot verify the audit log");
		return;
	}
	httpd_resp_json(r, 200, json_pack("{s:b, s:I, s:o}", "ok",
	    err == FC_OK, "count", (json_int_t)count, "badId",
	    err == FC_OK ? json_null() : json_integer(bad)));
}

static int
ctype_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct != NULL && strncasecmp(ct, want, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/*
 * POST /v1/imports?skipBad=&owner=&batch=&hub=&authType=
 * text/csv: factory records; application/json: a Trust Platform manifest
 * (owner, batch, hub, authType apply to its entries). 200 with the result
 * when applied; 422 with the result and an error when nothing was.
 */
static void
imports_post(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { "skipBad", "owner", "batch",
	    "hub", "authType", NULL };
	const char *ct = httpd_header(c->req, "Content-Type"), *sb, *hubs[65];
	struct import_opts o;
	struct import_result res;
	json_t *j;
		int manifest;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0)
		return;
	if (ctype_is(ct, "text/csv"))
		manifest = 0;
	else if (ctype_is(ct, "application/json"))
		manifest = 1;
	else {
		httpd_resp_error(r, 415, "unsupported_media_type", "the body "
		    "must be text/csv or application/json (a manifest)");
		return;
	}
	memset(&o, 0, sizeof(o));
	sb = httpd_query(c->req, "skipBad");
	if (sb != NULL && strcmp(sb, "true") != 0 && strcmp(sb, "false")) {
		httpd_resp_error(r, 400, "bad_parameter",
		    "skipBad must be true or false");
		return;
	}
	o.skip_bad = sb != NULL && strcmp(sb, "true") == 0;
	o.actor = c->actor;
	o.hubs = api_hub_names(c->cfg, hubs);
	o.owner = httpd_query(c->req, "owner");
	o.batch = httpd_query(c->req, "batch");
	o.hub = httpd_query(c->req, "hub");
	o.auth_type = httpd_query(c->req, "authType");
	if (!manifest && (o.owner || o.batch || o.hub || o.auth_type)) {
		httpd_resp_error(r, 400, "bad_parameter", "owner, batch, hub "
		    "and authType are columns of the CSV");
		return;
	}
	if (manifest && (o.manifest_signer = api_manifest_signer(c)) == NULL) {
		httpd_resp_error(r, 409, "not_configured", "manifest import "
		    "needs [import] manifest_signer");
		return;
	}
	import_result_init(&res);
	err = manifest ? import_manifest(c->req->db, c->req->body,
	    c->req->body_len, &o, &res) : import_csv(c->req->db, c->req->body,
	    c->req->body_len, &o, &res);
	if (err != FC_OK && err != FC_EINVAL) {
		import_result_clear(&res);
		httpd_resp_fc_err(r, err, "import failed");
		return;
	}
	j = import_result_to_json(&res);
	if (j != NULL && err == FC_EINVAL)
		json_object_set_new(j, "error", json_pack("{s:s, s:s}", "code",
		    "invalid", "message", res.nerrors > 0 ?
		    "bad records; nothing was imported" : "bad input"));
	httpd_resp_json(r, err == FC_OK ? 200 : 422, j);
	import_result_clear(&res);
}

/* GET /v1/health: 200 when every component is ok, else 503. The database
 * is probed on this thread's connection each time. */
static void
health_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	json_t *j;
	int ok;

	if (api_query_check(c, r, allowed) < 0)
		return;
	ok = db_schema_version(c->req->db) > 0;
	health_set("database", ok, ok ? NULL : "database not readable");
	if ((j = health_to_json()) == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	ok = strcmp(json_string_value(json_object_get(j, "status")), "ok") ==
	    0;
	httpd_resp_json(r, ok ? 200 : 503, j);
}

/* GET /metrics: Prometheus text format 0.0.4. */
static void
metrics_get(struct api_call *c, struct httpd_response *r)
{
	char *text = NULL;
	size_t len = 0;
	enum fc_err err;

	if ((err = metrics_render(c->req->db, &text, &len)) != FC_OK) {
		httpd_resp_fc_err(r, err, "cannot render metrics");
		return;
	}
	httpd_resp_raw_take(r, 200, "text/plain; version=0.0.4", text, len);
}

const struct api_route api_audit_routes[] = {
	{ "GET", "/v1/audit", API_ROLE_READ, audit_get, 0, NULL },
	{ "GET", "/v1/audit/verify", API_ROLE_READ, audit_verify_get, 0,
	    NULL },
	{ "POST", "/v1/imports", API_ROLE_ADMIN, imports_post, API_BODY_MAX,
	    NULL },
	{ "GET", "/v1/health", API_ROLE_READ, health_get, 0, NULL },
	{ "GET", "/metrics", API_ROLE_READ, metrics_get, 0, NULL },
	{ NULL, NULL, 0, NULL, 0, NULL },
};
