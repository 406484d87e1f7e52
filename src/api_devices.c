/*
 * api_devices.c — operator API endpoints on the inventory: devices (list
 * with filters and cursor, one, register), their certificates, one
 * certificate, and the expiry histogram. Runs on the API's threads with
 * the thread's database connection; writes only through inventory.h and
 * import.h, which audit with the caller's actor.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "import.h"
#include "log.h"

#define DAY	86400

static int
device_param(struct api_call *c, struct httpd_response *r, const char **id)
{
	*id = c->req->params[0];
	if (!fc_device_id_valid(*id)) {
		httpd_resp_error(r, 400, "bad_device_id",
		    "not a valid device id");
		return -1;
	}
	return 0;
}

/* A duration "N", "Ns", "Nm", "Nh", "Nd" (N >= 0) in seconds, or -1. */
static long long
duration_parse(const char *s)
{
	static const struct { char u; long long mul; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', DAY } };
	char *end;
	long long v, mul = 1;
	size_t i;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		for (i = 0; i < FC_ARRAY_LEN(units); i++)
			if (end[0] == units[i].u && end[1] == '\0')
				mul = units[i].mul;
		if (mul == 1 && !(end[0] == 's' && end[1] == '\0'))
			return -1;
	}
	if (v > 100LL * 366 * DAY / mul)
		return -1;
	return v * mul;
}

static int
name_param(struct api_call *c, struct httpd_response *r, const char *name,
    const char **out)
{
	*out = httpd_query(c->req, name);
	if (*out != NULL && strlen(*out) >= FC_NAME_MAX) {
		httpd_resp_error(r, 400, "bad_parameter", "%s is too long",
		    name);
		return -1;
	}
	return 0;
}

static int
list_cb(void *arg, const struct inv_device *d, const struct inv_cert *c)
{
	json_t *j = api_device_json(d, c);

	if (j == NULL || json_array_append_new(arg, j) != 0)
		return 1;
	return 0;
}

/* GET /v1/devices?status=&expiringWithin=&owner=&batch=&hub=&limit=&cursor= */
static void
devices_list(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { "status", "expiringWithin",
	    "owner", "batch", "hub", "limit", "cursor", NULL };
	struct inv_device_filter f;
	char next[INV_CURSOR_MAX];
	const char *s, *cursor;
	json_t *items = NULL;
	long long limit, within;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0)
		return;
	memset(&f, 0, sizeof(f));
	f.status = -1;
	if ((s = httpd_query(c->req, "status")) != NULL &&
	    (f.status = inv_dev_status_parse(s)) < 0) {
		httpd_resp_error(r, 400, "bad_parameter", "status must be one "
		    "of active, suspended, revoked, decommissioned");
		return;
	}
	if ((s = httpd_query(c->req, "expiringWithin")) != NULL) {
		if ((within = duration_parse(s)) < 0) {
			httpd_resp_error(r, 400, "bad_parameter",
			    "expiringWithin must be a duration such as 30d, "
			    "12h or 3600");
			return;
		}
		f.expiring_before = (int64_t)fc_now() + within;
	}
	if (name_param(c, r, "owner", &f.owner) < 0 ||
	    name_param(c, r, "batch", &f.batch) < 0 ||
	    name_param(c, r, "hub", &f.hub) < 0)
		return;
	if (api_query_int(c, r, "limit", 1, API_LIST_LIMIT_MAX,
	    API_LIST_LIMIT_DEFAULT, &limit) < 0)
		return;
	cursor = httpd_query(c->req, "cursor");
	if (cursor != NULL && strlen(cursor) >= INV_CURSOR_MAX) {
		httpd_resp_error(r, 400, "bad_cursor", "malformed cursor");
		return;
	}
	if ((items = json_array()) == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	err = inv_device_list(c->req->db, &f, cursor, (int)limit, list_cb,
	    items, next);
	if (err == FC_EINVAL) {
		httpd_resp_error(r, 400, "bad_cursor", "malformed cursor");
		json_decref(items);
		return;
	}
	if (err != FC_OK) {
		httpd_resp_fc_err(r, err, "cannot list devices");
		json_decref(items);
		return;
	}
	httpd_resp_json(r, 200, json_pack("{s:o, s:o}", "items", items,
	    "nextCursor", next[0] != '\0' ? json_string(next) : json_null()));
}

/* The device with its current certificate, as JSON; FC_ENOTFOUND. */
static enum fc_err
device_load(struct db *db, const char *id, json_t **out)
{
	struct inv_device d;
	struct inv_cert cert;
	enum fc_err err;
	int have;

	memset(&d, 0, sizeof(d));
	memset(&cert, 0, sizeof(cert));
	if ((err = inv_device_get(db, id, &d)) != FC_OK)
		return err;
	err = inv_cert_current(db, id, &cert);
	if (err != FC_OK && err != FC_ENOTFOUND) {
		inv_device_clear(&d);
		return err;
	}
	have = err == FC_OK;
	*out = api_device_json(&d, have ? &cert : NULL);
	inv_device_clear(&d);
	inv_cert_clear(&cert);
	return *out != NULL ? FC_OK : FC_ENOMEM;
}

/* GET /v1/devices/{id} */
static void
device_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	const char *id;
	json_t *j = NULL;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0 || device_param(c, r, &id) < 0)
		return;
	if ((err = device_load(c->req->db, id, &j)) != FC_OK) {
		httpd_resp_fc_err(r, err, "no such device");
		return;
	}
	httpd_resp_json(r, 200, j);
}

static int
cert_cb(void *arg, const struct inv_cert *c)
{
	json_t *j = api_cert_json(c);

	if (j == NULL || json_array_append_new(arg, j) != 0)
		return 1;
	return 0;
}

/* GET /v1/devices/{id}/certificates */
static void
device_certs(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	struct inv_device d;
	const char *id;
	json_t *items;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0 || device_param(c, r, &id) < 0)
		return;
	memset(&d, 0, sizeof(d));
	if ((err = inv_device_get(c->req->db, id, &d)) != FC_OK) {
		httpd_resp_fc_err(r, err, "no such device");
		return;
	}
	inv_device_clear(&d);
	if ((items = json_array()) == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	if ((err = inv_cert_list_by_device(c->req->db, id, cert_cb, items)) !=
	    FC_OK) {
		json_decref(items);
		httpd_resp_fc_err(r, err, "cannot list certificates");
		return;
	}
	httpd_resp_json(r, 200, json_pack("{s:o}", "items", items));
}

/* DER as PEM text; NULL when out of memory. */
static char *
der_to_pem(const unsigned char *der, size_t len)
{
	char *b64 = NULL, *pem, *p;
	size_t n, i;

	if (fc_b64_encode(der, len, &b64) != FC_OK)
		return NULL;
	n = strlen(b64);
	if ((pem = malloc(n + n / 64 + 64)) == NULL) {
		free(b64);
		return NULL;
	}
	p = pem + sprintf(pem, "-----BEGIN CERTIFICATE-----\n");
	for (i = 0; i < n; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;

		memcpy(p, b64 + i, k);
		p += k;
		*p++ = '\n';
	}
	sprintf(p, "-----END CERTIFICATE-----\n");
	free(b64);
	return pem;
}

/* GET /v1/certificates/{serial}: serial in hex, any case. */
static void
cert_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	char serial[FC_CERT_SERIAL_MAX], *pem = NULL;
	const char *s = c->req->params[0];
	struct inv_cert cert;
	json_t *j;
	size_t i, n = strlen(s);
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0)
		return;
	if (n == 0 || n >= sizeof(serial)) {
		httpd_resp_error(r, 400, "bad_serial", "not a certificate "
		    "serial (hex)");
		return;
	}
	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i])) {
			httpd_resp_error(r, 400, "bad_serial",
			    "not a certificate serial (hex)");
			return;
		}
		serial[i] = (char)tolower((unsigned char)s[i]);
	}
	serial[n] = '\0';
	memset(&cert, 0, sizeof(cert));
	if ((err = inv_cert_get(c->req->db, serial, &cert)) != FC_OK) {
		httpd_resp_fc_err(r, err, "no such certificate");
		return;
	}
	j = api_cert_json(&cert);
	if (j != NULL && cert.der != NULL &&
	    (pem = der_to_pem(cert.der, cert.der_len)) != NULL)
		json_object_set_new(j, "pem", json_string(pem));
	free(pem);
	inv_cert_clear(&cert);
	httpd_resp_json(r, 200, j);
}

/* GET /v1/expiry?bucket=day|week&count=N */
static void
expiry(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { "bucket", "count", NULL };
	const char *b = httpd_query(c->req, "bucket");
	int64_t *counts = NULL, before = 0, from = (int64_t)fc_now(), size;
	json_t *arr = NULL, *one;
	long long n;
	int week, i;
	enum fc_err err;

	if (api_query_check(c, r, allowed) < 0)
		return;
	if (b == NULL)
		b = "day";
	if (strcmp(b, "day") != 0 && strcmp(b, "week") != 0) {
		httpd_resp_error(r, 400, "bad_parameter",
		    "bucket must be day or week");
		return;
	}
	week = b[0] == 'w';
	size = week ? 7 * DAY : DAY;
	if (api_query_int(c, r, "count", 1, 400, week ? 26 : 30, &n) < 0)
		return;
	if ((counts = calloc((size_t)n, sizeof(*counts))) == NULL ||
	    (arr = json_array()) == NULL) {
		free(counts);
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	err = inv_cert_expiry_histogram(c->req->db, from, size, (int)n, counts,
	    &before);
	if (err != FC_OK) {
		free(counts);
		json_decref(arr);
		httpd_resp_fc_err(r, err, "cannot compute the histogram");
		return;
	}
	for (i = 0; i < n; i++) {
		one = json_pack("{s:o, s:I}", "start",
		    api_time_json(from + i * size), "count",
		    (json_int_t)counts[i]);
		if (one == NULL || json_array_append_new(arr, one) != 0)
			break;
	}
	free(counts);
	httpd_resp_json(r, 200, json_pack("{s:s, s:o, s:I, s:o}", "bucket", b,
	    "from", api_time_json(from), "expired", (json_int_t)before,
	    "buckets", arr));
}

/* Appends value as one RFC 4180 field; -1 for control characters. */
static int
csv_field(FILE *f, const char *v, int last)
{
	const char *p;

	fputc('"', f);
	for (p = v != NULL ? v : ""; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
		if (*p == '"')
			fputc('"', f);
		fputc(*p, f);
	}
	fputs(last ? "\"\r\n" : "\",", f);
	return 0;
}

/*
 * POST /v1/devices: one factory record as JSON. It goes through the same
 * validation as a bulk import (import.h), as a one-record CSV, so the two
 * ways in cannot disagree on what a valid device is.
 */
static void
device_post(struct api_call *c, struct httpd_response *r)
{
	static const struct api_field fields[] = {
		{ "deviceId", API_T_STRING, 1 },
		{ "serial", API_T_STRING, 1 },
		{ "identityPublicKey", API_T_STRING, 0 },
		{ "certificate", API_T_STRING, 0 },
		{ "authType", API_T_STRING, 0 },
		{ "owner", API_T_STRING, 0 },
		{ "batch", API_T_STRING, 0 },
		{ "hub", API_T_STRING, 0 },
		{ NULL, 0, 0 } };
	static const char *const cols[] = { "deviceId", "serial",
	    "identityPublicKey", "certificate", "authType", "owner", "batch",
	    "hub" };
	const char *hubs[65];
	struct import_opts o;
	struct import_result res;
	json_t *body = NULL, *dev = NULL;
	char *csv = NULL;
	size_t len = 0, i;
	FILE *f;
	int bad = 0;
	enum fc_err err;

	if (api_body_object(c, r, fields, &body) < 0)
		return;
	if ((f = open_memstream(&csv, &len)) == NULL) {
		json_decref(body);
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	fputs("deviceId,serial,identityPublicKey,certificate,authType,owner,"
	    "batch,hub\r\n", f);
	for (i = 0; i < FC_ARRAY_LEN(cols); i++)
		bad |= csv_field(f, json_string_value(json_object_get(body,
		    cols[i])), i + 1 == FC_ARRAY_LEN(cols));
	fclose(f);
	if (bad) {
		httpd_resp_error(r, 400, "invalid", "control characters in a "
		    "field");
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.actor = c->actor;
	o.hubs = api_hub_names(c->cfg, hubs);
	import_result_init(&res);
	err = import_csv(c->req->db, csv, len, &o, &res);
	if (err == FC_EINVAL) {
		const char *msg = res.nerrors > 0 ? res.errors[0].message :
		    "invalid device";

		httpd_resp_error(r, strstr(msg, "already in the inventory") ?
		    409 : 400, strstr(msg, "already in the inventory") ?
		    "conflict" : "invalid", "%s", msg);
	} else if (err != FC_OK) {
		httpd_resp_fc_err(r, err, "cannot register the device");
	} else if ((err = device_load(c->req->db, json_string_value(
	    json_object_get(body, "deviceId")), &dev)) != FC_OK) {
		httpd_resp_fc_err(r, err, "cannot read the device back");
	} else {
		httpd_resp_json(r, 201, dev);
	}
	import_result_clear(&res);
out:
	free(csv);
	json_decref(body);
}

const struct api_route api_devices_routes[] = {
	{ "GET", "/v1/devices", API_ROLE_READ, devices_list, 0, NULL },
	{ "POST", "/v1/devices", API_ROLE_ADMIN, device_post, 0, NULL },
	{ "GET", "/v1/devices/{id}", API_ROLE_READ, device_get, 0, NULL },
	{ "GET", "/v1/devices/{id}/certificates", API_ROLE_READ, device_certs,
	    0, NULL },
	{ "GET", "/v1/certificates/{serial}", API_ROLE_READ, cert_get, 0,
	    NULL },
	{ "GET", "/v1/expiry", API_ROLE_READ, expiry, 0, NULL },
	{ NULL, NULL, 0, NULL, 0, NULL },
};
