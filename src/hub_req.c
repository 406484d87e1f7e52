/*
 * hub_req.c — builds IoT Hub REST requests (method, encoded path, headers,
 * JSON body) from typed arguments, checking them first (azure-iothub.md
 * "Identity registry", "Twins", "Direct methods"). Pure: no I/O, any thread.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fc.h"
#include "hub_int.h"
#include "log.h"

#define QUERY_MAX	8192
#define DESIRED_MAX	(32 * 1024)
#define PAYLOAD_MAX	(128 * 1024)
#define METHOD_NAME_MAX	128

static struct hub_req *
req_new(enum hub_op op, const char *method)
{
	struct hub_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->op = op;
	r->method = method;
	return r;
}

void
hub_req_free(struct hub_req *req)
{
	if (req == NULL)
		return;
	free(req->path);
	free(req->body);
	free(req->continuation);
	free(req->bulk_ids);
	free(req);
}

void
hub_req_set_user(struct hub_req *req, void *user)
{
	req->user = user;
}

unsigned
hub_req_registry_ops(const struct hub_req *req)
{
	return req->registry_ops;
}

enum hub_op
hub_req_op(const struct hub_req *req)
{
	return req->op;
}

/* "/<prefix>/<encoded id><suffix>" */
static char *
id_path(const char *prefix, const char *id, const char *suffix)
{
	char *enc = hub_pct_encode(id), *p;
	size_t n;

	if (enc == NULL)
		return NULL;
	n = strlen(prefix) + strlen(enc) + strlen(suffix) + 3;
	p = malloc(n);
	if (p != NULL)
		snprintf(p, n, "/%s/%s%s", prefix, enc, suffix);
	free(enc);
	return p;
}

/* If-Match per azure-iothub.md: "*" as is, anything else quoted (an
 * unquoted etag is silently ignored by the hub). */
static int
set_if_match(struct hub_req *r, const char *etag)
{
	size_t n;

	if (etag == NULL || etag[0] == '\0' || strcmp(etag, "*") == 0) {
		snprintf(r->if_match, sizeof(r->if_match), "*");
		return 1;
	}
	n = strlen(etag);
	if (n >= HUB_ETAG_MAX || strpbrk(etag, "\"\r\n") != NULL)
		return 0;
	snprintf(r->if_match, sizeof(r->if_match), "\"%s\"", etag);
	return 1;
}

static int
thumb_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0)
		return 1;
	if (n != 40 && n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strchr("0123456789abcdefABCDEF", t[i]) == NULL)
			return 0;
	return 1;
}

static const char *
auth_name(enum hub_auth a)
{
	switch (a) {
	case HUB_AUTH_SAS:		return "sas";
	case HUB_AUTH_SELFSIGNED:	return "selfSigned";
	case HUB_AUTH_CA:		return "certificateAuthority";
	case HUB_AUTH_NONE:		return "none";
	case HUB_AUTH_UNKNOWN:		break;
	}
	return NULL;
}

static json_t *
str_or_null(const char *s)
{
	return s[0] != '\0' ? json_string(s) : json_null();
}

/*
 * The device object to PUT: what the hub sent (raw) with the typed fields
 * written over it. NULL on bad fields or no memory.
 */
static json_t *
device_json(const struct hub_device *d)
{
	json_t *o = NULL, *auth = NULL, *x5 = NULL;
	const char *an;

	if (!fc_device_id_valid(d->id) || !thumb_valid(d->primary_thumbprint) ||
	    !thumb_valid(d->secondary_thumbprint) ||
	    strnlen(d->status_reason, HUB_REASON_MAX) >= HUB_REASON_MAX)
		return NULL;
	if (d->primary_thumbprint[0] != '\0' &&
	    d->secondary_thumbprint[0] != '\0' &&
	    strlen(d->primary_thumbprint) != strlen(d->secondary_thumbprint))
		return NULL;
	o = json_is_object(d->raw) ? json_deep_copy(d->raw) : json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "deviceId", json_string(d->id));
	if (d->etag[0] != '\0')
		json_object_set_new(o, "etag", json_string(d->etag));
	json_object_set_new(o, "status",
	    json_string(d->enabled ? "enabled" : "disabled"));
	if (d->status_reason[0] != '\0') {
		if (json_object_set_new(o, "statusReason",
		    json_string(d->status_reason)) != 0) {
			json_decref(o);	/* not UTF-8 */
			return NULL;
		}
	} else
		json_object_del(o, "statusReason");
	an = auth_name(d->auth);
	if (an == NULL)
		return o;
	auth = json_object_get(o, "authentication");
	if (json_is_object(auth))
		json_incref(auth);
	else
		auth = json_object();
	json_object_set_new(auth, "type", json_string(an));
	if (d->auth == HUB_AUTH_SELFSIGNED || d->auth == HUB_AUTH_CA) {
		x5 = json_object();
		json_object_set_new(x5, "primaryThumbprint",
		    str_or_null(d->primary_thumbprint));
		json_object_set_new(x5, "secondaryThumbprint",
		    str_or_null(d->secondary_thumbprint));
		json_object_set_new(auth, "x509Thumbprint", x5);
	}
	json_object_set_new(o, "authentication", auth);
	return o;
}

static enum fc_err
finish_body(struct hub_req *r, json_t *body)
{
	if (body == NULL)
		return FC_EINVAL;
	r->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return r->body != NULL ? FC_OK : FC_ENOMEM;
}

static enum fc_err
device_put(const struct hub_device *d, enum hub_op op, struct hub_req **out)
{
	struct hub_req *r = NULL;
	enum fc_err result = FC_ENOMEM;

	r = req_new(op, "PUT");
	if (r == NULL)
		goto out;
	result = finish_body(r, device_json(d));
	if (result != FC_OK)
		goto out;
	result = FC_ENOMEM;
	r->path = id_path("devices", d->id, "");
	if (r->path == NULL)
		goto out;
	if (op == HUB_OP_DEVICE_UPDATE && !set_if_match(r, d->etag)) {
		result = FC_EINVAL;
		goto out;
	}
	snprintf(r->device_id, sizeof(r->device_id), "%s", d->id);
	r->registry_write = 1;
	r->registry_ops = 1;
	*out = r;
	r = NULL;
	result = FC_OK;
out:
	hub_req_free(r);
	return result;
}

static enum fc_err
id_request(enum hub_op op, const char *method, const char *prefix,
    const char *id, const char *suffix, struct hub_req **out)
{
	struct hub_req *r;

	if (!fc_device_id_valid(id))
		return FC_EINVAL;
	r = req_new(op, method);
	if (r == NULL)
		return FC_ENOMEM;
	r->path = id_path(prefix, id, suffix);
	if (r->path == NULL) {
		hub_req_free(r);
		return FC_ENOMEM;
	}
	snprintf(r->device_id, sizeof(r->device_id), "%s", id);
	*out = r;
	return FC_OK;
}

enum fc_err
hub_req_device_get(const char *id, struct hub_req **out)
{
	return id_request(HUB_OP_DEVICE_GET, "GET", "devices", id, "", out);
}

enum fc_err
hub_req_device_create(const struct hub_device *d, struct hub_req **out)
{
	return device_put(d, HUB_OP_DEVICE_CREATE, out);
}

enum fc_err
hub_req_device_update(const struct hub_device *d, struct hub_req **out)
{
	return device_put(d, HUB_OP_DEVICE_UPDATE, out);
}

enum fc_err
hub_req_device_delete(const char *id, const char *etag, struct hub_req **out)
{
	struct hub_req *r = NULL;
	enum fc_err result;

	result = id_request(HUB_OP_DEVICE_DELETE, "DELETE", "devices", id, "",
	    &r);
	if (result != FC_OK)
		return result;
	if (!set_if_match(r, etag)) {
		hub_req_free(r);
		return FC_EINVAL;
	}
	r->registry_write = 1;
	r->registry_ops = 1;
	*out = r;
	return FC_OK;
}

enum fc_err
hub_req_device_disable(const struct hub_device *d, const char *reason,
    struct hub_req **out)
{
	struct hub_device c = *d;

	if (reason == NULL || strlen(reason) >= HUB_REASON_MAX)
		return FC_EINVAL;
	c.enabled = 0;
	snprintf(c.status_reason, sizeof(c.status_reason), "%s", reason);
	return device_put(&c, HUB_OP_DEVICE_UPDATE, out);
}

enum fc_err
hub_req_thumbprint_stage(const struct hub_device *d, const char *thumb,
    struct hub_req **out)
{
	struct hub_device c = *d;

	if (thumb == NULL || thumb[0] == '\0' || !thumb_valid(thumb))
		return FC_EINVAL;
	c.auth = HUB_AUTH_SELFSIGNED;
	snprintf(c.secondary_thumbprint, sizeof(c.secondary_thumbprint), "%s",
	    thumb);
	if (c.primary_thumbprint[0] == '\0')
		snprintf(c.primary_thumbprint, sizeof(c.primary_thumbprint),
		    "%s", thumb);
	return device_put(&c, HUB_OP_DEVICE_UPDATE, out);
}

enum fc_err
hub_req_thumbprint_promote(const struct hub_device *d, const char *thumb,
    struct hub_req **out)
{
	struct hub_device c = *d;

	if (thumb == NULL || thumb[0] == '\0' || !thumb_valid(thumb))
		return FC_EINVAL;
	c.auth = HUB_AUTH_SELFSIGNED;
	snprintf(c.primary_thumbprint, sizeof(c.primary_thumbprint), "%s",
	    thumb);
	c.secondary_thumbprint[0] = '\0';
	return device_put(&c, HUB_OP_DEVICE_UPDATE, out);
}

static const char *
import_mode_name(enum hub_import_mode m)
{
	switch (m) {
	case HUB_IMPORT_CREATE:			return "create";
	case HUB_IMPORT_UPDATE:			return "update";
	case HUB_IMPORT_UPDATE_IF_MATCH_ETAG:	return "updateIfMatchETag";
	case HUB_IMPORT_DELETE:			return "delete";
	case HUB_IMPORT_DELETE_IF_MATCH_ETAG:	return "deleteIfMatchETag";
	}
	return NULL;
}

/* One ExportImportDevice: id, importMode, eTag, and for create/update the
 * device's status, statusReason and authentication. */
static json_t *
bulk_entry_json(const struct hub_bulk_entry *e)
{
	const struct hub_device *d = e->device;
	const char *mode = import_mode_name(e->mode);
	json_t *o, *full;

	if (d == NULL || mode == NULL || !fc_device_id_valid(d->id))
		return NULL;
	if ((e->mode == HUB_IMPORT_UPDATE_IF_MATCH_ETAG ||
	    e->mode == HUB_IMPORT_DELETE_IF_MATCH_ETAG) &&
	    (d->etag[0] == '\0' || strpbrk(d->etag, "\"\r\n") != NULL))
		return NULL;
	o = json_object();
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "id", json_string(d->id));
	json_object_set_new(o, "importMode", json_string(mode));
	if (d->etag[0] != '\0')
		json_object_set_new(o, "eTag", json_string(d->etag));
	if (e->mode == HUB_IMPORT_DELETE ||
	    e->mode == HUB_IMPORT_DELETE_IF_MATCH_ETAG)
		return o;
	full = device_json(d);
	if (full == NULL) {
		json_decref(o);
		return NULL;
	}
	json_object_set(o, "status", json_object_get(full, "status"));
	if (json_object_get(full, "statusReason") != NULL)
		json_object_set(o, "statusReason",
		    json_object_get(full, "statusReason"));
	if (json_object_get(full, "authentication") != NULL)
		json_object_set(o, "authentication",
		    json_object_get(full, "authentication"));
	json_decref(full);
	return o;
}

enum fc_err
hub_req_bulk(const struct hub_bulk_entry *entries, size_t n,
    struct hub_req **out)
{
	struct hub_req *r = NULL;
	json_t *arr = NULL, *e;
	enum fc_err result = FC_EINVAL;

	if (entries == NULL || n == 0 || n > HUB_BULK_MAX)
		return FC_EINVAL;
	r = req_new(HUB_OP_BULK, "POST");
	arr = json_array();
	if (r == NULL || arr == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	r->bulk_ids = calloc(n, sizeof(*r->bulk_ids));
	if (r->bulk_ids == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		e = bulk_entry_json(&entries[i]);
		if (e == NULL)
			goto out;
		/* Duplicate ids make the hub refuse the call (400011). */
		for (size_t j = 0; j < i; j++)
			if (strcmp(r->bulk_ids[j], entries[i].device->id) == 0) {
				json_decref(e);
				goto out;
			}
		snprintf(r->bulk_ids[i], FC_DEVICE_ID_MAX, "%s",
		    entries[i].device->id);
		json_array_append_new(arr, e);
	}
	r->nbulk = n;
	result = finish_body(r, arr);
	arr = NULL;
	if (result != FC_OK)
		goto out;
	result = FC_ENOMEM;
	r->path = strdup("/devices");
	if (r->path == NULL)
		goto out;
	r->registry_write = 1;
	r->registry_ops = (unsigned)n;
	*out = r;
	r = NULL;
	result = FC_OK;
out:
	json_decref(arr);
	hub_req_free(r);
	return result;
}

enum fc_err
hub_req_twin_get(const char *id, struct hub_req **out)
{
	return id_request(HUB_OP_TWIN_GET, "GET", "twins", id, "", out);
}

enum fc_err
hub_req_twin_patch_desired(const char *id, const json_t *desired,
    const char *etag, struct hub_req **out)
{
	struct hub_req *r = NULL;
	json_t *body = NULL, *props;
	enum fc_err result;

	if (!json_is_object(desired))
		return FC_EINVAL;
	result = id_request(HUB_OP_TWIN_PATCH, "PATCH", "twins", id, "", &r);
	if (result != FC_OK)
		return result;
	result = FC_EINVAL;
	if (!set_if_match(r, etag))
		goto out;
	result = FC_ENOMEM;
	body = json_object();
	props = json_object();
	if (body == NULL || props == NULL) {
		json_decref(props);
		goto out;
	}
	json_object_set_new(body, "properties", props);
	json_object_set(props, "desired", (json_t *)desired);
	result = finish_body(r, body);
	body = NULL;
	if (result != FC_OK)
		goto out;
	if (strlen(r->body) > DESIRED_MAX) {
		result = FC_EINVAL;
		goto out;
	}
	*out = r;
	r = NULL;
out:
	json_decref(body);
	hub_req_free(r);
	return result;
}

static int
method_name_valid(const char *m)
{
	size_t n = strlen(m);

	if (n == 0 || n > METHOD_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)m[i];
		if (c <= ' ' || c >= 0x7f || strchr("$()<>@,;:\\\"/[]?={}", c))
			return 0;
	}
	return 1;
}

enum fc_err
hub_req_method_invoke(const char *id, const char *method,
    const json_t *payload, int response_timeout_s, int connect_timeout_s,
    struct hub_req **out)
{
	struct hub_req *r = NULL;
	json_t *body = NULL;
	enum fc_err result;

	if (method == NULL || !method_name_valid(method) ||
	    response_timeout_s < 5 || response_timeout_s > 300 ||
	    connect_timeout_s < 0 || connect_timeout_s > 300)
		return FC_EINVAL;
	result = id_request(HUB_OP_METHOD, "POST", "twins", id, "/methods",
	    &r);
	if (result != FC_OK)
		return result;
	result = FC_ENOMEM;
	body = json_object();
	if (body == NULL)
		goto out;
	json_object_set_new(body, "methodName", json_string(method));
	json_object_set(body, "payload",
	    payload != NULL ? (json_t *)payload : json_null());
	json_object_set_new(body, "responseTimeoutInSeconds",
	    json_integer(response_timeout_s));
	json_object_set_new(body, "connectTimeoutInSeconds",
	    json_integer(connect_timeout_s));
	result = finish_body(r, body);
	body = NULL;
	if (result != FC_OK)
		goto out;
	if (strlen(r->body) > PAYLOAD_MAX + 512) {
		result = FC_EINVAL;
		goto out;
	}
	/* azure-iothub.md: the HTTP timeout must exceed connect + response. */
	r->timeout_ms = (response_timeout_s + connect_timeout_s +
	    HUB_METHOD_SLACK_S) * 1000;
	*out = r;
	r = NULL;
out:
	json_decref(body);
	hub_req_free(r);
	return result;
}

enum fc_err
hub_req_query(const char *sql, int page_size, const char *continuation,
    struct hub_req **out)
{
	struct hub_req *r = NULL;
	json_t *body = NULL;
	enum fc_err result = FC_EINVAL;

	if (sql == NULL || sql[0] == '\0' || strlen(sql) > QUERY_MAX ||
	    page_size < 1 || page_size > 100)
		return FC_EINVAL;
	if (continuation != NULL && (continuation[0] == '\0' ||
	    strlen(continuation) > 4096 ||
	    strpbrk(continuation, "\r\n") != NULL))
		return FC_EINVAL;
	result = FC_ENOMEM;
	r = req_new(HUB_OP_QUERY, "POST");
	body = json_object();
	if (r == NULL || body == NULL)
		goto out;
	json_object_set_new(body, "query", json_string(sql));
	result = finish_body(r, body);
	body = NULL;
	if (result != FC_OK)
		goto out;
	result = FC_ENOMEM;
	r->path = strdup("/devices/query");
	if (r->path == NULL)
		goto out;
	if (continuation != NULL) {
		r->continuation = strdup(continuation);
		if (r->continuation == NULL)
			goto out;
	}
	r->page_size = page_size;
	*out = r;
	r = NULL;
	result = FC_OK;
out:
	json_decref(body);
	hub_req_free(r);
	return result;
}
