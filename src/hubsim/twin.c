/*
 * twin.c — device twins (azure-iothub.md "Twins"): GET, PATCH (merge of tags
 * and desired, null deletes), PUT (replaces tags and desired), the limits
 * (desired and reported 32 KB, tags 8 KB, depth 10, keys 1 KB without
 * '.', '$', space or control characters, strings 4 KB), $version counters,
 * twin etags with the same If-Match rules as the registry, and the
 * reported properties the simulated devices write.
 * Runs in request threads; twin state only under sim->lock.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubsim.h"
#include "log.h"

#define DEPTH_MAX	10
#define KEY_MAX		1024
#define STRING_MAX	4096
#define DESIRED_MAX	(32 * 1024)
#define TAGS_MAX	(8 * 1024)

void
twin_etag(struct sim_dev *d, char out[32])
{
	unsigned char v[8];
	unsigned long n = d->twin_version;
	char *b = NULL;
	int i;

	for (i = 7; i >= 0; i--) {
		v[i] = (unsigned char)(n & 0xff);
		n >>= 8;
	}
	if (fc_b64_encode(v, sizeof(v), &b) == FC_OK)
		snprintf(out, 32, "%s", b);
	else
		snprintf(out, 32, "%lu", d->twin_version);
	free(b);
}

static json_t *
section_json(json_t *sec, unsigned long version, time_t t)
{
	json_t *o = json_deep_copy(sec);
	char iso[21];

	fc_time_iso(t ? t : fc_now(), iso);
	json_object_set_new(o, "$metadata", json_pack("{s:s}", "$lastUpdated",
	    iso));
	json_object_set_new(o, "$version", json_integer((json_int_t)version));
	return o;
}

json_t *
twin_json(struct sim_dev *d)
{
	char etag[32], iso[21], su[21];
	int conn = d->sd != NULL && d->sd->connected;
	const char *atype = d->auth_type;

	twin_etag(d, etag);
	if (d->last_activity != 0)
		fc_time_iso(d->last_activity, iso);
	else
		snprintf(iso, sizeof(iso), "0001-01-01T00:00:00Z");
	fc_time_iso(d->status_updated ? d->status_updated : fc_now(), su);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:s, "
	    "s:{s:o, s:o}, s:s, s:{s:b}, s:O, s:{s:o, s:o}}",
	    "deviceId", d->id,
	    "etag", etag,
	    "deviceEtag", "",
	    "version", (json_int_t)d->twin_version,
	    "status", d->enabled ? "enabled" : "disabled",
	    "statusUpdateTime", su,
	    "connectionState", conn ? "Connected" : "Disconnected",
	    "lastActivityTime", iso,
	    "cloudToDeviceMessageCount", 0,
	    "authenticationType", atype,
	    "x509Thumbprint",
	      "primaryThumbprint", d->thumb1[0] ? json_string(d->thumb1) :
		  json_null(),
	      "secondaryThumbprint", d->thumb2[0] ? json_string(d->thumb2) :
		  json_null(),
	    "modelId", "",
	    "capabilities", "iotEdge", 0,
	    "tags", d->tags,
	    "properties",
	      "desired", section_json(d->desired, d->desired_version, 0),
	      "reported", section_json(d->reported, d->reported_version,
		  d->last_activity));
}

static json_t *
strip_nulls(json_t *v)
{
	json_t *o;
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return json_deep_copy(v);
	o = json_object();
	json_object_foreach(v, k, x) {
		if (json_is_null(x))
			continue;
		json_object_set_new(o, k, strip_nulls(x));
	}
	return o;
}

int
twin_merge(json_t *target, json_t *patch)
{
	const char *k;
	json_t *v, *cur;
	int changed = 0;

	json_object_foreach(patch, k, v) {
		cur = json_object_get(target, k);
		if (json_is_null(v)) {
			if (cur != NULL) {
				json_object_del(target, k);
				changed = 1;
			}
		} else if (json_is_object(v) && json_is_object(cur)) {
			changed |= twin_merge(cur, v);
		} else {
			json_t *n = strip_nulls(v);
			if (cur == NULL || !json_equal(cur, n))
				changed = 1;
			json_object_set_new(target, k, n);
		}
	}
	return changed;
}

#define FAIL(c, n, ...) do { *code = (c); *name = (n); \
	snprintf(msg, msgsz, __VA_ARGS__); return -1; } while (0)

static int
check_value(json_t *v, int depth, long *code, const char **name, char *msg,
    size_t msgsz)
{
	const char *k;
	json_t *x;
	size_t i;

	if (depth > DEPTH_MAX)
		FAIL(400004, "ArgumentInvalid",
		    "twin nesting deeper than %d levels", DEPTH_MAX);
	if (json_is_string(v) && json_string_length(v) > STRING_MAX)
		FAIL(400004, "ArgumentInvalid",
		    "twin string values are limited to %d bytes", STRING_MAX);
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (check_value(x, depth + 1, code, name, msg, msgsz) != 0)
				return -1;
	}
	if (!json_is_object(v))
		return 0;
	json_object_foreach(v, k, x) {
		const char *c;
		if (strlen(k) > KEY_MAX)
			FAIL(400004, "ArgumentInvalid",
			    "twin keys are limited to %d bytes", KEY_MAX);
		if (k[0] == '\0')
			FAIL(400004, "ArgumentInvalid", "empty twin key");
		for (c = k; *c != '\0'; c++)
			if (*c == '.' || *c == '$' || *c == ' ' ||
			    (unsigned char)*c < 0x20 || *c == 0x7f)
				FAIL(400004, "ArgumentInvalid",
				    "twin key '%.64s' contains '.', '$', space or a "
				    "control character", k);
		if (check_value(x, depth + 1, code, name, msg, msgsz) != 0)
			return -1;
	}
	return 0;
}

int
twin_check(json_t *section, size_t max_bytes, long *code, const char **name,
    char *msg, size_t msgsz)
{
	size_t n;
	char *s;

	if (check_value(section, 0, code, name, msg, msgsz) != 0)
		return -1;
	s = json_dumps(section, JSON_COMPACT);
	n = s ? strlen(s) : 0;
	free(s);
	if (n > max_bytes)
		FAIL(413001, "MessageTooLarge",
		    "twin section is %zu bytes, the limit is %zu", n, max_bytes);
	return 0;
}

void
twin_report_fleetcert(struct sim_dev *d, const char *installed,
    const char *status, const char *error)
{
	json_t *o = json_pack("{s:s?, s:s}", "installedSerial",
	    installed && installed[0] ? installed : NULL, "status", status);

	if (o == NULL)
		return;
	if (error != NULL)
		json_object_set_new(o, "error", json_string(error));
	json_object_set_new(d->reported, "fleetcert", o);
	d->reported_version++;
	d->twin_version++;
	d->last_activity = fc_now();
}

/* Drops the read-only "$metadata"/"$version" a client may echo back. */
static void
drop_meta(json_t *sec)
{
	if (json_is_object(sec)) {
		json_object_del(sec, "$metadata");
		json_object_del(sec, "$version");
	}
}

static void
reply_twin(struct sim_reply *rep, struct sim_dev *d)
{
	char etag[32], q[40];

	twin_etag(d, etag);
	snprintf(q, sizeof(q), "\"%s\"", etag);
	reply_header(rep, "ETag", q);
	reply_json(rep, 200, twin_json(d));
}

void
twin_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    const char *id)
{
	json_t *body = NULL, *tags = NULL, *props, *des = NULL;
	json_t *nt = NULL, *nd = NULL;
	struct sim_dev *d;
	char etag[32], msg[256];
	const char *name = NULL;
	long code = 0;
	int put = strcmp(req->method, "PUT") == 0, ch = 0;

	if (strcmp(req->method, "GET") != 0) {
		body = http_body_json(sim, req, rep);
		if (body == NULL)
			return;
		if (!json_is_object(body)) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "the twin must be a JSON object");
			goto out;
		}
		tags = json_object_get(body, "tags");
		props = json_object_get(body, "properties");
		if (props != NULL && !json_is_null(props) && !json_is_object(props)) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "properties must be an object");
			goto out;
		}
		des = json_object_get(props, "desired");
		if (json_object_get(props, "reported") != NULL) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "reported properties are written by the device only");
			goto out;
		}
		if ((tags != NULL && !json_is_null(tags) && !json_is_object(tags)) ||
		    (des != NULL && !json_is_null(des) && !json_is_object(des))) {
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "tags and properties.desired must be objects");
			goto out;
		}
		drop_meta(des);
		if ((tags != NULL && check_value(tags, 0, &code, &name, msg,
		    sizeof(msg)) != 0) || (des != NULL && check_value(des, 0,
		    &code, &name, msg, sizeof(msg)) != 0)) {
			reply_error(sim, rep, code, name, "%s", msg);
			goto out;
		}
	}
	pthread_mutex_lock(&sim->lock);
	d = reg_find(sim, id);
	if (d == NULL || !d->registered || !d->enabled) {
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, 404001, "DeviceNotFound",
		    "Device %s not registered or disabled", id);
		goto out;
	}
	if (body == NULL) {
		reply_twin(rep, d);
		pthread_mutex_unlock(&sim->lock);
		goto out;
	}
	twin_etag(d, etag);
	if (reg_if_match(http_header(req, "If-Match"), etag) == 1) {
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, 412001, "PreconditionFailed",
		    "Precondition failed: twin of %s has a different etag", id);
		goto out;
	}
	if (put) {
		nt = json_is_object(tags) ? strip_nulls(tags) : json_object();
		nd = json_is_object(des) ? strip_nulls(des) : json_object();
		ch = (!json_equal(nt, d->tags)) | (!json_equal(nd, d->desired) << 1);
	} else {
		nt = json_deep_copy(d->tags);
		nd = json_deep_copy(d->desired);
		if (json_is_object(tags))
			ch |= twin_merge(nt, tags);
		if (json_is_object(des))
			ch |= twin_merge(nd, des) << 1;
	}
	if (twin_check(nt, TAGS_MAX, &code, &name, msg, sizeof(msg)) != 0 ||
	    twin_check(nd, DESIRED_MAX, &code, &name, msg, sizeof(msg)) != 0) {
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, code, name, "%s", msg);
		goto out;
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
		sim->dirty = 1;
	}
	reply_twin(rep, d);
	pthread_mutex_unlock(&sim->lock);
out:
	json_decref(nt);
	json_decref(nd);
	json_decref(body);
}
