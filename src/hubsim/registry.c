/*
 * registry.c — the simulated identity registry (azure-iothub.md "Identity
 * registry"): the sorted device table, the device JSON, PUT-is-replace with
 * the If-Match rules (quoted etag checked, 412001 when stale; unquoted etag
 * silently ignored, as observed on the real hub), 409001 on create of an
 * existing id, DELETE, the bulk endpoint (<= 100 entries, per-entry
 * errors, 400011 for duplicate ids) and device statistics.
 * Runs in request threads; all table access under sim->lock.
 */
#include "fc_build.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "hubsim.h"
#include "log.h"

#define BULK_MAX	100

static unsigned long etag_seq = 100000;

static size_t
lower_bound(struct sim *sim, const char *id)
{
	size_t lo = 0, hi = sim->ndevs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(sim->devs[mid]->id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct sim_dev *
reg_find(struct sim *sim, const char *id)
{
	size_t i = lower_bound(sim, id);

	if (i < sim->ndevs && strcmp(sim->devs[i]->id, id) == 0)
		return sim->devs[i];
	return NULL;
}

struct sim_dev *
reg_find_or_add(struct sim *sim, const char *id)
{
	size_t i = lower_bound(sim, id);
	struct sim_dev *d;

	if (i < sim->ndevs && strcmp(sim->devs[i]->id, id) == 0)
		return sim->devs[i];
	if (strlen(id) >= FC_DEVICE_ID_MAX)
		return NULL;
	if (sim->ndevs == sim->cap) {
		size_t nc = sim->cap ? sim->cap * 2 : 256;
		struct sim_dev **nd = realloc(sim->devs, nc * sizeof(*nd));
		if (nd == NULL)
			return NULL;
		sim->devs = nd;
		sim->cap = nc;
	}
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->tags = json_object();
	d->desired = json_object();
	d->reported = json_object();
	if (d->tags == NULL || d->desired == NULL || d->reported == NULL) {
		reg_dev_free(d);
		return NULL;
	}
	memmove(&sim->devs[i + 1], &sim->devs[i],
	    (sim->ndevs - i) * sizeof(*sim->devs));
	sim->devs[i] = d;
	sim->ndevs++;
	return d;
}

static void
reg_remove(struct sim *sim, struct sim_dev *d)
{
	size_t i = lower_bound(sim, d->id);

	if (i < sim->ndevs && sim->devs[i] == d) {
		memmove(&sim->devs[i], &sim->devs[i + 1],
		    (sim->ndevs - i - 1) * sizeof(*sim->devs));
		sim->ndevs--;
	}
	reg_dev_free(d);
}

void
reg_dev_free(struct sim_dev *d)
{
	if (d == NULL)
		return;
	json_decref(d->tags);
	json_decref(d->desired);
	json_decref(d->reported);
	dev_side_free(d->sd);
	free(d);
}

void
reg_etag(unsigned long n, char out[32])
{
	char num[24], *b = NULL;

	snprintf(num, sizeof(num), "%lu", n);
	if (fc_b64_encode((unsigned char *)num, strlen(num), &b) == FC_OK) {
		snprintf(out, 32, "%s", b);
		free(b);
	} else {
		snprintf(out, 32, "%s", num);
	}
}

static void
gen_sas_key(char out[64])
{
	unsigned char k[32];
	char *b = NULL;

	(void)RAND_bytes(k, sizeof(k));
	if (fc_b64_encode(k, sizeof(k), &b) == FC_OK)
		snprintf(out, 64, "%s", b);
	free(b);
}

void
reg_dev_register(struct sim_dev *d)
{
	unsigned char g[8];
	char hex[17];

	(void)RAND_bytes(g, sizeof(g));
	fc_hex(g, sizeof(g), hex, 0);
	snprintf(d->generation, sizeof(d->generation), "6%.17s", hex);
	d->registered = 1;
	d->etag_n = ++etag_seq;
	d->enabled = 1;
	d->status_reason[0] = '\0';
	d->status_updated = 0;
	snprintf(d->auth_type, sizeof(d->auth_type), "sas");
	d->thumb1[0] = d->thumb2[0] = '\0';
	gen_sas_key(d->sas1);
	gen_sas_key(d->sas2);
	json_object_clear(d->tags);
	json_object_clear(d->desired);
	json_object_clear(d->reported);
	d->twin_version = 1;
	d->desired_version = 1;
	d->reported_version = 1;
}

static json_t *
str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static json_t *
time_json(time_t t)
{
	char iso[21];

	if (t == 0)
		return json_string("0001-01-01T00:00:00Z");
	fc_time_iso(t, iso);
	return json_string(iso);
}

json_t *
reg_dev_json(struct sim_dev *d)
{
	char etag[32];
	int conn = d->sd != NULL && d->sd->connected;

	reg_etag(d->etag_n, etag);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, "
	    "s:i, s:{s:{s:o, s:o}, s:{s:o, s:o}, s:s}, s:{s:b}}",
	    "deviceId", d->id,
	    "generationId", d->generation,
	    "etag", etag,
	    "connectionState", conn ? "Connected" : "Disconnected",
	    "status", d->enabled ? "enabled" : "disabled",
	    "statusReason", str_or_null(d->status_reason),
	    "connectionStateUpdatedTime", time_json(d->last_activity),
	    "statusUpdatedTime", time_json(d->status_updated),
	    "lastActivityTime", time_json(d->last_activity),
	    "modelId", json_string(""),
	    "cloudToDeviceMessageCount", 0,
	    "authentication",
	      "symmetricKey",
	        "primaryKey", strcmp(d->auth_type, "sas") == 0 ?
		    str_or_null(d->sas1) : json_null(),
	        "secondaryKey", strcmp(d->auth_type, "sas") == 0 ?
		    str_or_null(d->sas2) : json_null(),
	      "x509Thumbprint",
	        "primaryThumbprint", str_or_null(d->thumb1),
	        "secondaryThumbprint", str_or_null(d->thumb2),
	      "type", d->auth_type,
	    "capabilities", "iotEdge", 0);
}

int
reg_if_match(const char *im, const char *etag)
{
	size_t n;

	if (im == NULL)
		return -1;
	if (strcmp(im, "*") == 0)
		return 0;
	if (strncmp(im, "W/", 2) == 0)
		im += 2;
	n = strlen(im);
	if (n >= 2 && im[0] == '"' && im[n - 1] == '"') {
		if (n - 2 == strlen(etag) && strncmp(im + 1, etag, n - 2) == 0)
			return 0;
		return 1;
	}
	/* (observed) an unquoted etag is ignored: the write is unconditional. */
	return 2;
}

/* Thumbprint: hex SHA-1 (40) or SHA-256 (64), stored upper-case. */
static int
thumb_parse(json_t *v, char out[FC_SHA256_HEX])
{
	const char *s;
	size_t n, i;

	if (v == NULL || json_is_null(v)) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = strlen(s);
	if (n != 40 && n != 64)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -1;
		out[i] = (char)toupper((unsigned char)s[i]);
	}
	out[n] = '\0';
	return 0;
}

static int
sas_key_parse(json_t *v, char out[64])
{
	unsigned char *k = NULL;
	size_t kl = 0;
	const char *s;

	if (v == NULL || json_is_null(v)) {
		gen_sas_key(out);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	if (strlen(s) >= 64 || fc_b64_decode(s, &k, &kl) != FC_OK)
		return -1;
	fc_secret_free(k, kl);
	if (kl < 16 || kl > 64)
		return -1;
	snprintf(out, 64, "%s", s);
	return 0;
}

#define FAIL(c, n, ...) do { *code = (c); *name = (n); \
	snprintf(msg, msgsz, __VA_ARGS__); return -1; } while (0)

int
reg_apply(struct sim_dev *d, json_t *obj, const char *idkey, long *code,
    const char **name, char *msg, size_t msgsz)
{
	json_t *v, *auth, *x5;
	const char *type = "sas", *st = "enabled", *reason = "";
	char t1[FC_SHA256_HEX] = "", t2[FC_SHA256_HEX] = "";
	char k1[64] = "", k2[64] = "";
	int enabled;

	if (!json_is_object(obj))
		FAIL(400004, "ArgumentInvalid", "device must be a JSON object");
	v = json_object_get(obj, idkey);
	if (!json_is_string(v) || strcmp(json_string_value(v), d->id) != 0)
		FAIL(400004, "ArgumentInvalid",
		    "%s in the body must equal the device id in the path", idkey);
	v = json_object_get(obj, "status");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v))
			FAIL(400004, "ArgumentInvalid", "status must be a string");
		st = json_string_value(v);
		if (strcasecmp(st, "enabled") != 0 && strcasecmp(st, "disabled") != 0)
			FAIL(400004, "ArgumentInvalid",
			    "status must be enabled or disabled");
	}
	enabled = strcasecmp(st, "enabled") == 0;
	v = json_object_get(obj, "statusReason");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || strlen(json_string_value(v)) >=
		    SIM_REASON_MAX)
			FAIL(400004, "ArgumentInvalid",
			    "statusReason must be a string of at most 128 characters");
		reason = json_string_value(v);
	}
	auth = json_object_get(obj, "authentication");
	if (auth != NULL && !json_is_null(auth)) {
		if (!json_is_object(auth))
			FAIL(400004, "ArgumentInvalid",
			    "authentication must be an object");
		v = json_object_get(auth, "type");
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_string(v))
				FAIL(400004, "ArgumentInvalid",
				    "authentication.type must be a string");
			type = json_string_value(v);
		}
		if (strcasecmp(type, "sas") == 0)
			type = "sas";
		else if (strcasecmp(type, "selfSigned") == 0)
			type = "selfSigned";
		else if (strcasecmp(type, "certificateAuthority") == 0)
			type = "certificateAuthority";
		else if (strcasecmp(type, "none") == 0)
			type = "none";
		else
			FAIL(400004, "ArgumentInvalid",
			    "authentication.type must be sas, selfSigned, "
			    "certificateAuthority or none");
		x5 = json_object_get(auth, "x509Thumbprint");
		if (x5 != NULL && !json_is_null(x5) && !json_is_object(x5))
			FAIL(400004, "ArgumentInvalid",
			    "x509Thumbprint must be an object");
		if (thumb_parse(json_object_get(x5, "primaryThumbprint"), t1) != 0 ||
		    thumb_parse(json_object_get(x5, "secondaryThumbprint"), t2) != 0)
			FAIL(400004, "ArgumentInvalid",
			    "thumbprints must be 40 or 64 hex digits");
		if (strcmp(type, "sas") == 0) {
			json_t *sk = json_object_get(auth, "symmetricKey");
			if (sas_key_parse(json_object_get(sk, "primaryKey"), k1) != 0 ||
			    sas_key_parse(json_object_get(sk, "secondaryKey"), k2) != 0)
				FAIL(400004, "ArgumentInvalid",
				    "symmetric keys must be base64 of 16-64 bytes");
		}
	} else {
		gen_sas_key(k1);
		gen_sas_key(k2);
	}
	if (strcmp(type, "selfSigned") == 0) {
		if (t1[0] == '\0' && t2[0] == '\0')
			FAIL(400004, "ArgumentInvalid",
			    "selfSigned authentication needs a thumbprint");
		if (t1[0] != '\0' && t2[0] != '\0' && strlen(t1) != strlen(t2))
			FAIL(400004, "ArgumentInvalid",
			    "primary and secondary thumbprints must have the same "
			    "length");
	} else if (t1[0] != '\0' || t2[0] != '\0') {
		FAIL(400004, "ArgumentInvalid",
		    "thumbprints are only allowed with selfSigned authentication");
	}

	/* PUT replaces the whole device: what is absent is reset. */
	if (enabled != d->enabled || d->status_updated == 0)
		d->status_updated = fc_now();
	d->enabled = enabled;
	snprintf(d->status_reason, sizeof(d->status_reason), "%s", reason);
	snprintf(d->auth_type, sizeof(d->auth_type), "%s", type);
	memcpy(d->thumb1, t1, sizeof(t1));
	memcpy(d->thumb2, t2, sizeof(t2));
	memcpy(d->sas1, k1, sizeof(k1));
	memcpy(d->sas2, k2, sizeof(k2));
	d->etag_n = ++etag_seq;
	return 0;
}

/* After a registry write, a simulated device that is refused retries. */
static void
maybe_reconnect(struct sim *sim, struct sim_dev *d)
{
	if (d->registered && d->sd != NULL && d->sd->online && !d->sd->connected)
		dev_set_online(sim, d, 1);
}

/* The device JSON plus its etag as an ETag header (quoted). */
static void
reply_device(struct sim_reply *rep, struct sim_dev *d)
{
	char etag[32], q[40];

	reg_etag(d->etag_n, etag);
	snprintf(q, sizeof(q), "\"%s\"", etag);
	reply_header(rep, "ETag", q);
	reply_json(rep, 200, reg_dev_json(d));
}

static void
unregister(struct sim *sim, struct sim_dev *d)
{
	if (d->sd != NULL) {
		d->registered = 0;
		d->sd->connected = 0;
	} else {
		reg_remove(sim, d);
	}
}

void
reg_handle_device(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    const char *id)
{
	const char *im = http_header(req, "If-Match");
	json_t *body = NULL;
	struct sim_dev *d;
	char etag[32], msg[256];
	const char *name = NULL;
	long code = 0;
	int m, created = 0;

	if (strcmp(req->method, "PUT") == 0) {
		body = http_body_json(sim, req, rep);
		if (body == NULL)
			return;
	}
	pthread_mutex_lock(&sim->lock);
	d = reg_find(sim, id);
	if (d != NULL && !d->registered)
		d = NULL;
	if (strcmp(req->method, "GET") == 0) {
		if (d == NULL)
			goto notfound;
		reply_device(rep, d);
		goto out;
	}
	if (d != NULL) {
		reg_etag(d->etag_n, etag);
		m = reg_if_match(im, etag);
	} else {
		m = reg_if_match(im, "");
	}
	if (strcmp(req->method, "DELETE") == 0) {
		if (d == NULL)
			goto notfound;
		if (m == 1)
			goto stale;
		unregister(sim, d);
		sim->dirty = 1;
		rep->status = 204;
		goto out;
	}
	/* PUT */
	if (d == NULL && m != -1 && m != 2)
		goto notfound;
	if (d != NULL && m == -1) {
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, 409001, "DeviceAlreadyExists",
		    "A device with ID '%s' is already registered.", id);
		json_decref(body);
		return;
	}
	if (m == 1)
		goto stale;
	if (d == NULL) {
		d = reg_find_or_add(sim, id);
		if (d == NULL) {
			pthread_mutex_unlock(&sim->lock);
			reply_error(sim, rep, 500001, "ServerError", "out of memory");
			json_decref(body);
			return;
		}
		reg_dev_register(d);
		created = 1;
	}
	if (reg_apply(d, body, "deviceId", &code, &name, msg, sizeof(msg)) != 0) {
		if (created)
			unregister(sim, d);
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, code, name, "%s", msg);
		json_decref(body);
		return;
	}
	sim->dirty = 1;
	maybe_reconnect(sim, d);
	reply_device(rep, d);
	goto out;
notfound:
	pthread_mutex_unlock(&sim->lock);
	reply_error(sim, rep, 404001, "DeviceNotFound",
	    "Device %s not registered", id);
	json_decref(body);
	return;
stale:
	pthread_mutex_unlock(&sim->lock);
	reply_error(sim, rep, 412001, "PreconditionFailed",
	    "Precondition failed: device %s has a different etag", id);
	json_decref(body);
	return;
out:
	pthread_mutex_unlock(&sim->lock);
	json_decref(body);
}

static void
bulk_err(json_t *errs, const char *id, const char *mode, const char *name,
    const char *text)
{
	json_array_append_new(errs, json_pack("{s:s, s:s, s:s, s:s}",
	    "deviceId", id, "errorCode", name, "errorStatus", text,
	    "operation", mode));
}

static int
etag_eq(json_t *v, const char *etag)
{
	const char *s = json_string_value(v);
	size_t n;

	if (s == NULL)
		return 0;
	if (strcmp(s, "*") == 0)
		return 1;
	n = strlen(s);
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
		return n - 2 == strlen(etag) && strncmp(s + 1, etag, n - 2) == 0;
	return strcmp(s, etag) == 0;
}

/* One bulk entry; caller holds the lock. */
static void
bulk_one(struct sim *sim, json_t *e, json_t *errs)
{
	const char *id = json_string_value(json_object_get(e, "id"));
	const char *mode = json_string_value(json_object_get(e, "importMode"));
	struct sim_dev *d;
	char etag[32], msg[256];
	const char *name = NULL;
	long code = 0;

	if (mode == NULL)
		mode = "create";
	d = reg_find(sim, id);
	if (d != NULL && !d->registered)
		d = NULL;
	if (strcasecmp(mode, "create") == 0) {
		int created = 0;
		if (d != NULL) {
			bulk_err(errs, id, mode, "DeviceAlreadyExists",
			    "A device with this id is already registered");
			return;
		}
		d = reg_find_or_add(sim, id);
		if (d == NULL) {
			bulk_err(errs, id, mode, "ServerError", "out of memory");
			return;
		}
		reg_dev_register(d);
		created = 1;
		if (reg_apply(d, e, "id", &code, &name, msg, sizeof(msg)) != 0) {
			if (created)
				unregister(sim, d);
			bulk_err(errs, id, mode, name, msg);
			return;
		}
		maybe_reconnect(sim, d);
		return;
	}
	if (d == NULL) {
		bulk_err(errs, id, mode, "DeviceNotFound", "Device not registered");
		return;
	}
	reg_etag(d->etag_n, etag);
	if (strcasecmp(mode, "update") == 0 ||
	    strcasecmp(mode, "updateIfMatchETag") == 0) {
		if (strcasecmp(mode, "updateIfMatchETag") == 0 &&
		    !etag_eq(json_object_get(e, "eTag"), etag)) {
			bulk_err(errs, id, mode, "PreconditionFailed",
			    "eTag does not match");
			return;
		}
		if (reg_apply(d, e, "id", &code, &name, msg, sizeof(msg)) != 0) {
			bulk_err(errs, id, mode, name, msg);
			return;
		}
		maybe_reconnect(sim, d);
	} else if (strcasecmp(mode, "delete") == 0 ||
	    strcasecmp(mode, "deleteIfMatchETag") == 0) {
		if (strcasecmp(mode, "deleteIfMatchETag") == 0 &&
		    !etag_eq(json_object_get(e, "eTag"), etag)) {
			bulk_err(errs, id, mode, "PreconditionFailed",
			    "eTag does not match");
			return;
		}
		unregister(sim, d);
	} else if (strcasecmp(mode, "updateTwin") == 0 ||
	    strcasecmp(mode, "updateTwinIfMatchETag") == 0) {
		json_t *tags = json_object_get(e, "tags");
		json_t *des = json_object_get(json_object_get(e, "properties"),
		    "desired");
		json_t *nt = json_deep_copy(d->tags), *nd = json_deep_copy(d->desired);
		char tet[32];
		int ch = 0;

		twin_etag(d, tet);
		if (strcasecmp(mode, "updateTwinIfMatchETag") == 0 &&
		    !etag_eq(json_object_get(e, "twinETag"), tet)) {
			bulk_err(errs, id, mode, "PreconditionFailed",
			    "twinETag does not match");
			goto twout;
		}
		if ((tags != NULL && !json_is_object(tags)) ||
		    (des != NULL && !json_is_object(des))) {
			bulk_err(errs, id, mode, "ArgumentInvalid",
			    "tags and properties.desired must be objects");
			goto twout;
		}
		if (tags != NULL)
			ch |= twin_merge(nt, tags);
		if (des != NULL)
			ch |= twin_merge(nd, des) << 1;
		if (twin_check(nt, 8 * 1024, &code, &name, msg, sizeof(msg)) != 0 ||
		    twin_check(nd, 32 * 1024, &code, &name, msg, sizeof(msg)) != 0) {
			bulk_err(errs, id, mode, name, msg);
			goto twout;
		}
		if (ch) {
			json_decref(d->tags);
			json_decref(d->desired);
			d->tags = nt;
			d->desired = nd;
			nt = nd = NULL;
			d->twin_version++;
			if (ch & 2) {
				d->desired_version++;
				dev_desired_changed(sim, d);
			}
		}
twout:
		json_decref(nt);
		json_decref(nd);
	} else {
		bulk_err(errs, id, mode, "ArgumentInvalid", "unknown importMode");
	}
}

void
reg_handle_bulk(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	json_t *body, *errs = NULL, *e;
	size_t i, j, n;

	body = http_body_json(sim, req, rep);
	if (body == NULL)
		return;
	if (!json_is_array(body)) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "the body must be an array of ExportImportDevice");
		goto out;
	}
	n = json_array_size(body);
	if (n > BULK_MAX) {
		reply_error(sim, rep, 413002, "TooManyDevices",
		    "a bulk operation takes at most %d devices, got %zu",
		    BULK_MAX, n);
		goto out;
	}
	if (n == 0) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "the bulk operation has no devices");
		goto out;
	}
	json_array_foreach(body, i, e) {
		const char *id = json_string_value(json_object_get(e, "id"));
		if (!json_is_object(e) || id == NULL || !fc_device_id_valid(id)) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "entry %zu: id missing or not a valid device id", i);
			goto out;
		}
		for (j = 0; j < i; j++) {
			const char *o = json_string_value(json_object_get(
			    json_array_get(body, j), "id"));
			if (strcmp(o, id) == 0) {
				reply_error(sim, rep, 400011,
				    "DeviceDefinedMultipleTimes",
				    "device %s is defined multiple times", id);
				goto out;
			}
		}
	}
	errs = json_array();
	pthread_mutex_lock(&sim->lock);
	json_array_foreach(body, i, e)
		bulk_one(sim, e, errs);
	sim->dirty = 1;
	pthread_mutex_unlock(&sim->lock);
	reply_json(rep, 200, json_pack("{s:b, s:O, s:[]}", "isSuccessful",
	    json_array_size(errs) == 0, "errors", errs, "warnings"));
out:
	json_decref(errs);
	json_decref(body);
}

void
reg_handle_stats(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	size_t i, total = 0, en = 0;

	(void)req;
	pthread_mutex_lock(&sim->lock);
	for (i = 0; i < sim->ndevs; i++) {
		if (!sim->devs[i]->registered)
			continue;
		total++;
		if (sim->devs[i]->enabled)
			en++;
	}
	pthread_mutex_unlock(&sim->lock);
	reply_json(rep, 200, json_pack("{s:I, s:I, s:I}",
	    "totalDeviceCount", (json_int_t)total,
	    "enabledDeviceCount", (json_int_t)en,
	    "disabledDeviceCount", (json_int_t)(total - en)));
}
