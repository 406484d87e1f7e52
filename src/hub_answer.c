/*
 * hub_answer.c — reads what IoT Hub answers: reduces each HTTP attempt to an
 * outcome class (done, retry, rejected, unreachable, misconfigured), parses
 * IoT Hub errors in both body shapes plus the iothub-errorcode header, and
 * turns device, twin, method, bulk and query bodies into typed results
 * (azure-iothub.md "Errors"). Pure functions, any thread. Everything here is
 * outside input: types are checked, strings capped and made printable.
 */
#include "fc_build.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "fc.h"
#include "hub_int.h"

static const struct {
	int		 code;
	const char	*name;
} codes[] = {
	{ 400001, "InvalidProtocolVersion" },
	{ 400004, "ArgumentInvalid" },
	{ 400011, "DeviceDefinedMultipleTimes" },
	{ 401002, "IotHubUnauthorizedAccess" },
	{ 403002, "IotHubQuotaExceeded" },
	{ 404001, "DeviceNotFound" },
	{ 404103, "DeviceNotOnline" },
	{ 409001, "DeviceAlreadyExists" },
	{ 412001, "PreconditionFailed" },
	{ 413001, "RequestEntityTooLarge" },
	{ 429001, "ThrottlingException" },
	{ 429003, "ThrottlingBacklogTimeout" },
	{ 500001, "ServerError" },
	{ 503001, "ServiceUnavailable" },
	{ 504101, "GatewayTimeout" },
};

int
hub_error_code_of(const char *name)
{
	for (size_t i = 0; i < FC_ARRAY_LEN(codes); i++)
		if (strcmp(codes[i].name, name) == 0)
			return codes[i].code;
	return 0;
}

const char *
hub_error_name_of(int code)
{
	for (size_t i = 0; i < FC_ARRAY_LEN(codes); i++)
		if (codes[i].code == code)
			return codes[i].name;
	return NULL;
}

int
hub_error_is(const struct hub_error *e, int code)
{
	const char *name;

	if (e == NULL)
		return 0;
	if (e->code == code)
		return 1;
	name = hub_error_name_of(code);
	return e->code == 0 && name != NULL && strcmp(e->name, name) == 0;
}

/* Copies at most n bytes of s into dst (size dstlen) as printable ASCII. */
static void
copy_clean(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && s[i] != '\0' && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[o] = '\0';
}

/* A 6-digit code from a JSON integer or numeric string; 0 otherwise. */
static int
code_from_json(const json_t *v)
{
	json_int_t n = 0;

	if (json_is_integer(v))
		n = json_integer_value(v);
	else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = strlen(s);
		if (len != 6 || strspn(s, "0123456789") != 6)
			return 0;
		n = atoi(s);
	}
	return n >= 100000 && n <= 999999 ? (int)n : 0;
}

static void
parse_inner(const json_t *o, struct hub_error *e)
{
	const json_t *v;

	e->code = code_from_json(json_object_get(o, "errorCode"));
	if (e->code == 0 && json_is_string(json_object_get(o, "errorCode")))
		copy_clean(e->name, sizeof(e->name),
		    json_string_value(json_object_get(o, "errorCode")),
		    sizeof(e->name));
	v = json_object_get(o, "message");
	if (json_is_string(v))
		copy_clean(e->message, sizeof(e->message),
		    json_string_value(v), sizeof(e->message));
	v = json_object_get(o, "trackingId");
	if (json_is_string(v))
		copy_clean(e->tracking_id, sizeof(e->tracking_id),
		    json_string_value(v), sizeof(e->tracking_id));
}

/*
 * Shape 1: {"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":
 * "Tracking ID:..."}. Shape 2: {"Message":"<JSON object as a string with
 * errorCode, trackingId, message, info, timestampUtc>"}. A body that is
 * neither (or no JSON) leaves only the header's name.
 */
void
hub_error_parse(const char *body, size_t len, const char *hdr,
    struct hub_error *e)
{
	json_t *root = NULL, *inner = NULL;
	const json_t *m, *x;
	const char *msg;

	memset(e, 0, sizeof(*e));
	if (body != NULL && len > 0)
		root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(root)) {
		m = json_object_get(root, "Message");
		if (m == NULL)
			m = json_object_get(root, "message");
		msg = json_is_string(m) ? json_string_value(m) : NULL;
		if (msg != NULL && strncmp(msg, "ErrorCode:", 10) == 0) {
			const char *semi = strchr(msg + 10, ';');
			size_t n = semi != NULL ? (size_t)(semi - msg - 10) :
			    strlen(msg + 10);
			copy_clean(e->name, sizeof(e->name), msg + 10,
			    n < sizeof(e->name) ? n : sizeof(e->name) - 1);
			if (semi != NULL)
				copy_clean(e->message, sizeof(e->message),
				    semi + 1, sizeof(e->message));
		} else if (msg != NULL && msg[0] == '{' &&
		    (inner = json_loads(msg, 0, NULL)) != NULL &&
		    json_is_object(inner)) {
			parse_inner(inner, e);
		} else if (msg != NULL) {
			copy_clean(e->message, sizeof(e->message), msg,
			    sizeof(e->message));
		}
		if (msg == NULL && json_object_get(root, "errorCode") != NULL)
			parse_inner(root, e);
		x = json_object_get(root, "ExceptionMessage");
		if (e->tracking_id[0] == '\0' && json_is_string(x)) {
			const char *t = strstr(json_string_value(x),
			    "Tracking ID:");
			if (t != NULL)
				copy_clean(e->tracking_id,
				    sizeof(e->tracking_id), t + 12,
				    strcspn(t + 12, "-\r\n "));
		}
	}
	/* An answer that quotes a credential back is not passed on to logs. */
	if (strstr(e->message, "SharedAccess") != NULL ||
	    strstr(e->message, "sig=") != NULL)
		snprintf(e->message, sizeof(e->message), "(the hub's message "
		    "quoted a credential; withheld)");
	if (hdr != NULL && hdr[0] != '\0' && e->name[0] == '\0')
		copy_clean(e->name, sizeof(e->name), hdr, sizeof(e->name));
	if (e->code == 0 && e->name[0] != '\0')
		e->code = hub_error_code_of(e->name);
	if (e->name[0] == '\0' && e->code != 0 &&
	    hub_error_name_of(e->code) != NULL)
		snprintf(e->name, sizeof(e->name), "%s",
		    hub_error_name_of(e->code));
	json_decref(inner);
	json_decref(root);
}

/* "2027-11-25T12:00:00.1234567Z" → Unix seconds; 0 for the hub's "never"
 * (year 1) or anything unparsable. */
static time_t
iso_time(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi,
	    &sec) != 6 || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || sec > 60)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return timegm(&tm);
}

static int
get_thumb(const json_t *x5, const char *key, char *out)
{
	const json_t *v = json_object_get(x5, key);
	const char *s;
	size_t n;

	out[0] = '\0';
	if (v == NULL || json_is_null(v))
		return 1;
	if (!json_is_string(v))
		return 0;
	s = json_string_value(v);
	n = strlen(s);
	if (n == 0)
		return 1;
	if ((n != 40 && n != 64) || strspn(s, "0123456789abcdefABCDEF") != n)
		return 0;
	memcpy(out, s, n + 1);
	return 1;
}

enum fc_err
hub_device_init(struct hub_device *d, const char *id)
{
	if (id == NULL || strlen(id) >= sizeof(d->id))
		return FC_EINVAL;
	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->enabled = 1;
	return FC_OK;
}

/* Registry devices carry authentication{type, x509Thumbprint}; twins and
 * query rows carry authenticationType and x509Thumbprint at the top. */
enum fc_err
hub_device_from_json(const json_t *obj, struct hub_device *out)
{
	struct hub_device d;
	const json_t *v, *auth, *x5;
	const char *s;

	if (!json_is_object(obj))
		return FC_EINVAL;
	memset(&d, 0, sizeof(d));
	v = json_object_get(obj, "deviceId");
	if (!json_is_string(v) || !fc_device_id_valid(json_string_value(v)))
		return FC_EINVAL;
	snprintf(d.id, sizeof(d.id), "%s", json_string_value(v));
	v = json_object_get(obj, "etag");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) >= sizeof(d.etag) ||
		    strpbrk(json_string_value(v), "\"\r\n") != NULL)
			return FC_EINVAL;
		snprintf(d.etag, sizeof(d.etag), "%s", json_string_value(v));
	}
	v = json_object_get(obj, "status");
	s = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(s, "enabled") == 0)
		d.enabled = 1;
	else if (strcmp(s, "disabled") != 0)
		return FC_EINVAL;
	v = json_object_get(obj, "statusReason");
	if (json_is_string(v))
		copy_clean(d.status_reason, sizeof(d.status_reason),
		    json_string_value(v), sizeof(d.status_reason));
	auth = json_object_get(obj, "authentication");
	v = json_is_object(auth) ? json_object_get(auth, "type") :
	    json_object_get(obj, "authenticationType");
	s = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(s, "sas") == 0)
		d.auth = HUB_AUTH_SAS;
	else if (strcmp(s, "selfSigned") == 0)
		d.auth = HUB_AUTH_SELFSIGNED;
	else if (strcmp(s, "certificateAuthority") == 0)
		d.auth = HUB_AUTH_CA;
	else if (strcmp(s, "none") == 0)
		d.auth = HUB_AUTH_NONE;
	x5 = json_is_object(auth) ? json_object_get(auth, "x509Thumbprint") :
	    json_object_get(obj, "x509Thumbprint");
	if (x5 != NULL && !json_is_null(x5)) {
		if (!json_is_object(x5) ||
		    !get_thumb(x5, "primaryThumbprint", d.primary_thumbprint) ||
		    !get_thumb(x5, "secondaryThumbprint",
		    d.secondary_thumbprint))
			return FC_EINVAL;
	}
	v = json_object_get(obj, "connectionState");
	d.connected = json_is_string(v) &&
	    strcmp(json_string_value(v), "Connected") == 0;
	v = json_object_get(obj, "lastActivityTime");
	if (json_is_string(v))
		d.last_activity = iso_time(json_string_value(v));
	d.raw = json_incref((json_t *)obj);
	*out = d;
	return FC_OK;
}

void
hub_device_copy(struct hub_device *dst, const struct hub_device *src)
{
	*dst = *src;
	dst->raw = json_incref(src->raw);
}

void
hub_device_clear(struct hub_device *d)
{
	if (d == NULL)
		return;
	json_decref(d->raw);
	d->raw = NULL;
}

/* {isSuccessful, errors:[{deviceId, errorCode, errorStatus}], warnings}:
 * one item per request entry; errors naming ids not in the request are
 * ignored. */
static int
parse_bulk(const struct hub_req *req, const json_t *body,
    struct hub_result *res)
{
	const json_t *errs, *e;
	size_t i, k;

	if (!json_is_object(body) ||
	    !json_is_boolean(json_object_get(body, "isSuccessful")))
		return 0;
	errs = json_object_get(body, "errors");
	if (errs != NULL && !json_is_null(errs) && !json_is_array(errs))
		return 0;
	res->bulk = calloc(req->nbulk ? req->nbulk : 1, sizeof(*res->bulk));
	if (res->bulk == NULL)
		return 0;
	res->nbulk = req->nbulk;
	for (k = 0; k < req->nbulk; k++) {
		memcpy(res->bulk[k].device_id, req->bulk_ids[k],
		    FC_DEVICE_ID_MAX);
		res->bulk[k].ok = 1;
	}
	json_array_foreach(errs, i, e) {
		const json_t *id = json_object_get(e, "deviceId");
		const json_t *c = json_object_get(e, "errorCode");
		const json_t *st = json_object_get(e, "errorStatus");

		if (!json_is_string(id))
			continue;
		for (k = 0; k < req->nbulk; k++) {
			struct hub_bulk_item *it = &res->bulk[k];
			if (strcmp(it->device_id, json_string_value(id)) != 0)
				continue;
			if (it->ok)
				res->nbulk_failed++;
			it->ok = 0;
			memset(&it->error, 0, sizeof(it->error));
			it->error.code = code_from_json(c);
			if (json_is_string(c) && it->error.code == 0) {
				copy_clean(it->error.name,
				    sizeof(it->error.name),
				    json_string_value(c),
				    sizeof(it->error.name));
				it->error.code =
				    hub_error_code_of(it->error.name);
			} else if (hub_error_name_of(it->error.code) != NULL)
				snprintf(it->error.name,
				    sizeof(it->error.name), "%s",
				    hub_error_name_of(it->error.code));
			if (json_is_string(st))
				copy_clean(it->error.message,
				    sizeof(it->error.message),
				    json_string_value(st),
				    sizeof(it->error.message));
		}
	}
	/* isSuccessful false with no attributable error: fail them all. */
	if (!json_is_true(json_object_get(body, "isSuccessful")) &&
	    res->nbulk_failed == 0) {
		for (k = 0; k < req->nbulk; k++) {
			res->bulk[k].ok = 0;
			snprintf(res->bulk[k].error.message,
			    sizeof(res->bulk[k].error.message),
			    "bulk call not successful");
		}
		res->nbulk_failed = req->nbulk;
	}
	return 1;
}

static void
twin_meta(const json_t *body, struct hub_result *res)
{
	const json_t *v = json_object_get(body, "etag");

	if (json_is_string(v) &&
	    strlen(json_string_value(v)) < sizeof(res->twin_etag) &&
	    strpbrk(json_string_value(v), "\"\r\n") == NULL)
		snprintf(res->twin_etag, sizeof(res->twin_etag), "%s",
		    json_string_value(v));
	v = json_object_get(body, "version");
	if (json_is_integer(v))
		res->twin_version = json_integer_value(v);
}

/* The typed fields of a 2xx answer; 0 when the body is not what the
 * operation returns. */
static int
parse_done(const struct hub_req *req, const struct hub_answer *a,
    struct hub_result *res)
{
	json_t *body = NULL;
	const json_t *st;

	if (a->status == 204 || (req->op == HUB_OP_DEVICE_DELETE))
		return 1;
	if (a->len == 0 && req->op == HUB_OP_TWIN_PATCH)
		return 1;
	body = json_loadb(a->body != NULL ? a->body : "", a->len,
	    JSON_REJECT_DUPLICATES, NULL);
	if (body == NULL)
		return 0;
	res->json = body;
	switch (req->op) {
	case HUB_OP_DEVICE_GET:
	case HUB_OP_DEVICE_CREATE:
	case HUB_OP_DEVICE_UPDATE:
	case HUB_OP_TWIN_GET:
		if (hub_device_from_json(body, &res->device) != FC_OK)
			return 0;
		if (req->op == HUB_OP_TWIN_GET)
			twin_meta(body, res);
		return 1;
	case HUB_OP_TWIN_PATCH:
		if (!json_is_object(body))
			return 0;
		twin_meta(body, res);
		return 1;
	case HUB_OP_METHOD:
		st = json_object_get(body, "status");
		if (!json_is_object(body) || !json_is_integer(st) ||
		    json_integer_value(st) < INT32_MIN ||
		    json_integer_value(st) > INT32_MAX)
			return 0;
		res->method_status = (int)json_integer_value(st);
		res->method_payload = json_object_get(body, "payload");
		return 1;
	case HUB_OP_QUERY:
		if (!json_is_array(body))
			return 0;
		if (a->continuation != NULL && a->continuation[0] != '\0') {
			res->continuation = strdup(a->continuation);
			if (res->continuation == NULL)
				return 0;
		}
		return 1;
	case HUB_OP_BULK:
		return parse_bulk(req, body, res);
	case HUB_OP_DEVICE_DELETE:
	case HUB_OP_COUNT:
		break;
	}
	return 1;
}

static void
drop_done_fields(struct hub_result *res)
{
	hub_device_clear(&res->device);
	memset(&res->device, 0, sizeof(res->device));
	json_decref(res->json);
	res->json = NULL;
	res->method_payload = NULL;
	free(res->continuation);
	res->continuation = NULL;
	free(res->bulk);
	res->bulk = NULL;
	res->nbulk = res->nbulk_failed = 0;
}

static int
transport(const struct hub_req *req, const struct hub_answer *a,
    struct hub_result *res)
{
	copy_clean(res->error.message, sizeof(res->error.message),
	    a->curl_msg != NULL && a->curl_msg[0] != '\0' ? a->curl_msg :
	    curl_easy_strerror((CURLcode)a->curl_code),
	    sizeof(res->error.message));
	switch ((CURLcode)a->curl_code) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
		res->outcome = HUB_MISCONFIGURED;
		return 0;
	case CURLE_WRITE_ERROR:
		if (a->truncated) {
			res->outcome = HUB_RETRY;
			snprintf(res->error.name, sizeof(res->error.name),
			    "AnswerTooLarge");
			return 0;
		}
		break;
	case CURLE_OPERATION_TIMEDOUT:
		/* A method that outlived connect + response + slack: the
		 * device is too slow; resending would only wait again. */
		if (req->op == HUB_OP_METHOD) {
			res->outcome = HUB_UNREACHABLE;
			return 0;
		}
		break;
	default:
		break;
	}
	res->outcome = HUB_UNREACHABLE;
	return 1;
}

int
hub_answer_reduce(const struct hub_req *req, const struct hub_answer *a,
    struct hub_result *res)
{
	long st = a->status;

	drop_done_fields(res);
	memset(&res->error, 0, sizeof(res->error));
	res->http_status = st;
	if (st == 0)
		return transport(req, a, res);
	if (st >= 200 && st <= 299 && !a->truncated) {
		if (!a->bad_header && parse_done(req, a, res)) {
			res->outcome = HUB_DONE;
			return 0;
		}
		drop_done_fields(res);
		res->outcome = HUB_RETRY;
		snprintf(res->error.name, sizeof(res->error.name),
		    "InvalidAnswer");
		snprintf(res->error.message, sizeof(res->error.message),
		    "HTTP %ld with a body that is not a valid %s answer", st,
		    hub_op_name(req->op));
		return 0;
	}
	/* A bulk call with failed entries answers 400 with the bulk result. */
	if (st == 400 && req->op == HUB_OP_BULK && !a->truncated) {
		json_t *b = json_loadb(a->body != NULL ? a->body : "", a->len,
		    0, NULL);
		int isbulk = json_is_object(b) &&
		    json_object_get(b, "isSuccessful") != NULL;
		json_decref(b);
		if (isbulk && parse_done(req, a, res)) {
			res->outcome = HUB_DONE;
			return 0;
		}
		drop_done_fields(res);
	}
	hub_error_parse(a->truncated ? NULL : a->body, a->len,
	    a->errorcode_hdr, &res->error);
	if (st == 429 || st == 500 || st == 502 || st == 503) {
		res->outcome = HUB_RETRY;
		return 1;
	}
	if (st == 504) {
		res->outcome = HUB_RETRY;
		/* 504101 on a method: the device did not answer in time. */
		return req->op != HUB_OP_METHOD;
	}
	if (st == 401 || (st == 403 && !hub_error_is(&res->error,
	    HUB_E_QUOTA_EXCEEDED)) ||
	    hub_error_is(&res->error, HUB_E_INVALID_PROTOCOL_VERSION) ||
	    (st >= 300 && st <= 399)) {
		res->outcome = HUB_MISCONFIGURED;
		return 0;
	}
	if (st == 403) {
		res->outcome = HUB_RETRY;	/* daily quota: later */
		return 0;
	}
	if (st >= 400 && st <= 499) {
		res->outcome = HUB_REJECTED;
		return 0;
	}
	res->outcome = st >= 500 && st <= 599 ? HUB_RETRY : HUB_UNREACHABLE;
	if (res->error.message[0] == '\0')
		snprintf(res->error.message, sizeof(res->error.message),
		    "unexpected HTTP status %ld", st);
	return st >= 500 && st <= 599;
}

void
hub_result_free(struct hub_result *res)
{
	if (res == NULL)
		return;
	drop_done_fields(res);
	free(res);
}
