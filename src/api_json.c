/*
 * api_json.c — JSON helpers of the operator API: strict body parsing,
 * query checks, and the device / certificate shapes of DESIGN.md. Runs on
 * the API's threads; touches no state of its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"

json_t *
api_time_json(int64_t t)
{
	char buf[21];

	if (t == 0)
		return json_null();
	fc_time_iso((time_t)t, buf);
	return json_string(buf);
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* Built with the _nocheck setters (keys are literals): a list page makes
 * thousands of these, and json_pack's format parsing showed in profiles. */
static int
put(json_t *o, const char *key, json_t *v)
{
	return v == NULL || json_object_set_new_nocheck(o, key, v) != 0;
}

json_t *
api_cert_json(const struct inv_cert *c)
{
	json_t *j = json_object();
	int bad;

	if (j == NULL)
		return NULL;
	bad = put(j, "serial", json_string_nocheck(c->serial)) |
	    put(j, "deviceId", json_string_nocheck(c->device_id)) |
	    put(j, "status", json_string_nocheck(
	    inv_cert_status_name(c->status))) |
	    put(j, "notBefore", api_time_json(c->not_before)) |
	    put(j, "notAfter", api_time_json(c->not_after)) |
	    put(j, "sha256", json_string_nocheck(c->sha256)) |
	    put(j, "sha1", json_string_nocheck(c->sha1)) |
	    put(j, "issuedBy", json_string_nocheck(
	    inv_issuer_name(c->issued_by))) |
	    put(j, "renewedFrom", str_or_null(c->renewed_from)) |
	    put(j, "revokedAt", api_time_json(c->revoked_at));
	if (!bad && c->revoked_at != 0)
		bad = put(j, "revocationReason",
		    json_integer(c->revocation_reason));
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

json_t *
api_device_json(const struct inv_device *d, const struct inv_cert *c)
{
	json_t *j = json_object();
	int bad;

	if (j == NULL)
		return NULL;
	/* Device ids, serials and labels were checked on the way in
	 * (inv_device_check): printable ASCII, so valid UTF-8. */
	bad = put(j, "deviceId", json_string(d->device_id)) |
	    put(j, "serial", json_string(d->se_serial)) |
	    put(j, "status", json_string_nocheck(
	    inv_dev_status_name(d->status))) |
	    put(j, "authType", json_string_nocheck(
	    inv_auth_name(d->auth_type))) |
	    put(j, "owner", json_string(d->owner)) |
	    put(j, "batch", json_string(d->batch)) |
	    put(j, "hub", json_string(d->hub)) |
	    put(j, "rekey", json_boolean(d->rekey)) |
	    put(j, "needsReenrol", json_boolean(d->needs_reenrol)) |
	    put(j, "createdAt", api_time_json(d->created_at)) |
	    put(j, "updatedAt", api_time_json(d->updated_at)) |
	    put(j, "certificate", c != NULL ? api_cert_json(c) : json_null());
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *
type_name(enum api_type t)
{
	static const char *n[] = { "a string", "an integer", "a boolean",
	    "an object", "an array" };

	return n[t];
}

static int
type_ok(const json_t *v, enum api_type t)
{
	switch (t) {
	case API_T_STRING:
		return json_is_string(v);
	case API_T_INT:
		return json_is_integer(v);
	case API_T_BOOL:
		return json_is_boolean(v);
	case API_T_OBJECT:
		return json_is_object(v);
	case API_T_ARRAY:
		return json_is_array(v);
	}
	return 0;
}

int
api_body_object(struct api_call *c, struct httpd_response *r,
    const struct api_field *fields, json_t **out)
{
	const char *ct = httpd_header(c->req, "Content-Type"), *key;
	const struct api_field *f;
	json_error_t je;
	json_t *root, *v;

	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';')) {
		httpd_resp_error(r, 415, "unsupported_media_type",
		    "the body must be application/json");
		return -1;
	}
	/* No duplicate keys; NUL inside strings refused (the default). */
	root = json_loadb(c->req->body, c->req->body_len,
	    JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		httpd_resp_error(r, 400, "bad_json", "line %d column %d: %s",
		    je.line, je.column, je.text);
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		httpd_resp_error(r, 400, "bad_json", "the body must be a JSON "
		    "object");
		return -1;
	}
	json_object_foreach(root, key, v) {
		for (f = fields; f->name != NULL; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f->name == NULL) {
			httpd_resp_error(r, 400, "unknown_field",
			    "unknown field \"%.64s\"", key);
			json_decref(root);
			return -1;
		}
		if (!type_ok(v, f->type)) {
			httpd_resp_error(r, 400, "wrong_type",
			    "field \"%s\" must be %s", f->name,
			    type_name(f->type));
			json_decref(root);
			return -1;
		}
	}
	for (f = fields; f->name != NULL; f++) {
		if (f->required && json_object_get(root, f->name) == NULL) {
			httpd_resp_error(r, 400, "missing_field",
			    "field \"%s\" is required", f->name);
			json_decref(root);
			return -1;
		}
	}
	*out = root;
	return 0;
}

int
api_query_check(struct api_call *c, struct httpd_response *r,
    const char *const *allowed)
{
	size_t i, k, j;

	for (i = 0; i < c->req->nquery; i++) {
		for (k = 0; allowed[k] != NULL; k++)
			if (strcmp(allowed[k], c->req->query[i].key) == 0)
				break;
		if (allowed[k] == NULL) {
			httpd_resp_error(r, 400, "unknown_parameter",
			    "unknown query parameter \"%.64s\"",
			    c->req->query[i].key);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(c->req->query[j].key,
			    c->req->query[i].key) == 0) {
				httpd_resp_error(r, 400, "duplicate_parameter",
				    "query parameter \"%.64s\" given twice",
				    c->req->query[i].key);
				return -1;
			}
	}
	return 0;
}

int
api_query_int(struct api_call *c, struct httpd_response *r,
    const char *name, long long min, long long max, long long def,
    long long *out)
{
	const char *s = httpd_query(c->req, name);
	char *end;
	long long v;

	if (s == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min ||
	    v > max) {
		httpd_resp_error(r, 400, "bad_parameter",
		    "%s must be an integer from %lld to %lld", name, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

const char *const *
api_hub_names(const struct cfg *cfg, const char *hubs[65])
{
	size_t i, n = 0;

	if (cfg->nhubs == 0)
		return NULL;
	for (i = 0; i < cfg->nhubs && n < 64; i++)
		hubs[n++] = cfg->hubs[i].name != NULL ? cfg->hubs[i].name : "";
	hubs[n] = NULL;
	return hubs;
}
