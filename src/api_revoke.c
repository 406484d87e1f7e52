/*
 * api_revoke.c — operator API endpoints of revocation (doc/api.md):
 * single revoke, transfer, decommission, bulk requests, CRL, drift and
 * sweep. Runs on the API's threads with their own database connections;
 * hub work is handed to the revocation worker (revoke_service.h).
 * Registered by revoke_api_register() (main.c) through api.h.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "ca.h"
#include "config.h"
#include "inventory.h"
#include "inventory_renew.h"
#include "inventory_revoke.h"
#include "log.h"
#include "renew.h"
#include "renew_service.h"
#include "revoke.h"
#include "revoke_service.h"
#include "signer.h"

#define PROPAGATE_WAIT_MS	3000
#define SWEEP_WAIT_MS		(55 * 60 * 1000)
#define CRL_FILE_MAX		(512u << 20)

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

static void
db_error(struct httpd_response *r, enum fc_err e, const char *id)
{
	if (e == FC_ENOTFOUND)
		httpd_resp_error(r, 404, "not_found", "no device %s", id);
	else if (e == FC_EINVAL)
		httpd_resp_error(r, 400, "bad_reason", "reason: not an RFC "
		    "5280 reason name (keyCompromise, affiliationChanged, "
		    "superseded, cessationOfOperation, ...)");
	else
		httpd_resp_error(r, 500, "internal", "%s", fc_strerror(e));
}

/* Revoke or decommission, then wait briefly for the hub. */
static void
revoke_common(struct api_call *c, struct httpd_response *r, const char *id,
    const char *reason, enum inv_rev_action action)
{
	char why[256] = "";
	enum fc_err result;
	int n = 0;

	result = revoke_device_record(c->req->db, id, reason, action, c->actor,
	    &n);
	if (result != FC_OK) {
		db_error(r, result, id);
		return;
	}
	result = revoke_service_propagate(id, PROPAGATE_WAIT_MS, why,
	    sizeof(why));
	if (result == FC_OK) {
		httpd_resp_json(r, 200, json_pack("{s:s, s:s, s:i, s:s}",
		    "deviceId", id, "status", action == INV_REV_DELETE ?
		    "decommissioned" : "revoked", "revokedCertificates", n,
		    "propagation", "done"));
		return;
	}
	httpd_resp_json(r, 202, json_pack("{s:s, s:s, s:i, s:s, s:s}",
	    "deviceId", id, "status", action == INV_REV_DELETE ?
	    "decommissioned" : "revoked", "revokedCertificates", n,
	    "propagation", "pending", "pendingReason", why));
}

static void
revoke_post(struct api_call *c, struct httpd_response *r)
{
	static const struct api_field f[] = {
		{ "reason", API_T_STRING, 0 }, { NULL, 0, 0 } };
	const char *id;
	json_t *b = NULL;

	if (device_param(c, r, &id) < 0 || api_body_object(c, r, f, &b) < 0)
		return;
	revoke_common(c, r, id, json_string_value(json_object_get(b,
	    "reason")), INV_REV_DISABLE);
	json_decref(b);
}

static void
device_delete(struct api_call *c, struct httpd_response *r)
{
	const char *id;

	if (device_param(c, r, &id) < 0)
		return;
	revoke_common(c, r, id, NULL, INV_REV_DELETE);
}

/*
 * Transfer: the new certificate is reserved as a renewal of the current
 * one (committed before signing), signed by the signer for the same key,
 * recorded with its delivery (the renewal/delivery outbox delivers it),
 * and the old certificate revoked (affiliationChanged), with the owner
 * change, in one transaction.
 */
static void
transfer_post(struct api_call *c, struct httpd_response *r)
{
	static const struct api_field f[] = {
		{ "owner", API_T_STRING, 1 }, { NULL, 0, 0 } };
	struct db *db = c->req->db;
	struct inv_device d;
	struct inv_cert old, nc;
	struct ca_issue_req req;
	struct ca_cert *cert = NULL;
	const unsigned char *spki = NULL;
	size_t spki_len = 0;
	char serial[FC_CERT_SERIAL_MAX], why[256] = "";
	const char *id, *owner;
	json_t *b = NULL;
	enum fc_err result;

	memset(&d, 0, sizeof(d));
	memset(&old, 0, sizeof(old));
	memset(&nc, 0, sizeof(nc));
	if (device_param(c, r, &id) < 0 || api_body_object(c, r, f, &b) < 0)
		return;
	owner = json_string_value(json_object_get(b, "owner"));
	if (owner[0] == '\0' || strlen(owner) >= FC_NAME_MAX) {
		httpd_resp_error(r, 400, "bad_owner", "owner: 1 to %d bytes",
		    FC_NAME_MAX - 1);
		goto out;
	}
	if ((result = inv_device_get(db, id, &d)) != FC_OK) {
		db_error(r, result, id);
		goto out;
	}
	if (d.status != INV_DEV_ACTIVE) {
		httpd_resp_error(r, 409, "conflict", "device %s is %s", id,
		    inv_dev_status_name(d.status));
		goto out;
	}
	if (inv_cert_current(db, id, &old) != FC_OK ||
	    old.status != INV_CERT_ACTIVE || old.der == NULL ||
	    renew_cert_spki(old.der, old.der_len, &spki, &spki_len) != FC_OK) {
		httpd_resp_error(r, 409, "conflict", "device %s has no active "
		    "certificate (or a renewal is in flight)", id);
		goto out;
	}
	if (ca_serial_new(serial) != FC_OK || db_begin(db) != FC_OK) {
		httpd_resp_error(r, 500, "internal", "cannot reserve a serial");
		goto out;
	}
	result = inv_renew_reserve(db, old.serial, id, serial, c->actor);
	if (result == FC_OK)
		result = db_commit(db);
	else
		db_rollback(db);
	if (result != FC_OK) {
		httpd_resp_error(r, 409, "conflict", "a renewal of %s is in "
		    "flight; try again when it is delivered", id);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.serial = serial;
	req.device_id = id;
	req.se_serial = d.se_serial;
	req.spki = spki;
	req.spki_len = spki_len;
	result = signer_issue(&req, &cert, why, sizeof(why));
	if (result != FC_OK) {
		(void)inv_renew_void(db, serial, fc_now(), why, c->actor);
		httpd_resp_error(r, 503, "signer_unavailable", "not issued: %s",
		    why);
		goto out;
	}
	snprintf(nc.serial, sizeof(nc.serial), "%s", cert->serial);
	snprintf(nc.device_id, sizeof(nc.device_id), "%s", id);
	nc.der = cert->der;
	nc.der_len = cert->der_len;
	nc.not_before = cert->not_before;
	nc.not_after = cert->not_after;
	snprintf(nc.sha1, sizeof(nc.sha1), "%s", cert->sha1);
	snprintf(nc.sha256, sizeof(nc.sha256), "%s", cert->sha256);
	nc.status = INV_CERT_PENDING;
	nc.issued_by = INV_ISSUED_OPERATOR;
	/* The chain it goes out with. (A CA reload between the signature and
	 * this read would pair the new chain with an old-key certificate:
	 * the reload switches the signer and the chain a few statements
	 * apart on the main thread.) */
	nc.chain_id = renew_service_chain_id();
	snprintf(nc.renewed_from, sizeof(nc.renewed_from), "%s", old.serial);
	result = db_begin(db);
	if (result == FC_OK)
		result = inv_renew_record(db, &nc, inv_renew_at(id,
		    nc.not_after, (int64_t)c->cfg->renew_before_days * 86400,
		    (int64_t)c->cfg->jitter_days * 86400),
		    d.auth_type == INV_AUTH_SELFSIGNED ? "stage" : "install",
		    0, c->actor);
	if (result == FC_OK)
		result = inv_device_set_owner(db, id, owner, c->actor);
	if (result == FC_OK)
		result = inv_cert_revoke(db, old.serial,
		    CA_REASON_AFFILIATION_CHANGED, c->actor);
	if (result == FC_OK)
		result = db_commit(db);
	else
		db_rollback(db);
	nc.der = NULL;
	if (result != FC_OK) {
		(void)inv_renew_void(db, serial, fc_now(), "transfer failed",
		    c->actor);
		httpd_resp_error(r, 500, "internal", "transfer not recorded");
		goto out;
	}
	httpd_resp_json(r, 200, json_pack("{s:s, s:s, s:s, s:s}",
	    "deviceId", id, "owner", owner, "revokedSerial", old.serial,
	    "newSerial", serial));
out:
	ca_cert_free(cert);
	inv_cert_clear(&old);
	inv_device_clear(&d);
	json_decref(b);
}

static void
revocations_post(struct api_call *c, struct httpd_response *r)
{
	static const struct api_field f[] = {
		{ "selector", API_T_OBJECT, 1 }, { "reason", API_T_STRING, 0 },
		{ "dryRun", API_T_BOOL, 0 }, { NULL, 0, 0 } };
	struct db *db = c->req->db;
	json_t *b = NULL;
	int64_t id = 0, matched = 0, revoked = 0, entries = 0;
	uint64_t crl = 0;
	double est = 0;
	char err[256];
	int dry;
	enum fc_err result;

	if (api_body_object(c, r, f, &b) < 0)
		return;
	dry = json_is_true(json_object_get(b, "dryRun"));
	result = revoke_request_create(db, c->cfg, json_object_get(b,
	    "selector"), json_string_value(json_object_get(b, "reason")), dry,
	    c->actor, &id, &matched, &est, err, sizeof(err));
	if (result == FC_EINVAL) {
		httpd_resp_error(r, 400, "bad_selector", "%s", err);
		goto out;
	}
	if (result != FC_OK) {
		httpd_resp_error(r, 500, "internal", "%s", fc_strerror(result));
		goto out;
	}
	if (dry) {
		httpd_resp_json(r, 200, json_pack("{s:I, s:b, s:I, s:f}",
		    "id", (json_int_t)id, "dryRun", 1, "matched",
		    (json_int_t)matched, "estimatedSeconds", est));
		goto out;
	}
	/* Inventory and CRL now (seconds); the hub through the worker. */
	result = revoke_request_apply(db, id, c->actor, &revoked);
	if (result != FC_OK) {
		httpd_resp_error(r, 500, "internal", "request %lld recorded; "
		    "the next sweep applies it", (long long)id);
		goto out;
	}
	if (revoke_crl_publish(db, c->cfg, &crl, &entries) != FC_OK)
		crl = 0;
	revoke_service_kick();
	httpd_resp_json(r, 202, json_pack("{s:I, s:b, s:I, s:I, s:f, s:s, "
	    "s:I}", "id", (json_int_t)id, "dryRun", 0, "matched",
	    (json_int_t)matched, "revoked", (json_int_t)revoked,
	    "estimatedSeconds", est, "state", "propagating", "crlNumber",
	    (json_int_t)crl));
out:
	json_decref(b);
}

static void
revocation_get(struct api_call *c, struct httpd_response *r)
{
	struct inv_revocation rv;
	char *end;
	long long id = strtoll(c->req->params[0], &end, 10);
	enum fc_err result;

	if (*end != '\0' || id <= 0) {
		httpd_resp_error(r, 400, "bad_id", "not a revocation id");
		return;
	}
	memset(&rv, 0, sizeof(rv));
	result = inv_rev_request_get(c->req->db, id, &rv);
	if (result == FC_ENOTFOUND) {
		httpd_resp_error(r, 404, "not_found", "no revocation %lld", id);
		return;
	}
	if (result != FC_OK) {
		httpd_resp_error(r, 500, "internal", "%s", fc_strerror(result));
		return;
	}
	httpd_resp_json(r, 200, revoke_request_json(&rv));
	inv_revocation_clear(&rv);
}

static void
crl_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { "format", NULL };
	const char *fmt = httpd_query(c->req, "format");
	char path[4200], *buf = NULL;
	size_t len = 0;
	int pem;

	if (api_query_check(c, r, allowed) < 0)
		return;
	if (fmt != NULL && strcmp(fmt, "pem") != 0 && strcmp(fmt, "der") != 0) {
		httpd_resp_error(r, 400, "bad_parameter", "format: der or pem");
		return;
	}
	pem = fmt != NULL && strcmp(fmt, "pem") == 0;
	if (c->cfg->crl_path == NULL) {
		httpd_resp_error(r, 404, "not_found", "no [ca] crl_path "
		    "configured");
		return;
	}
	snprintf(path, sizeof(path), "%s%s", c->cfg->crl_path, pem ? ".pem" :
	    "");
	if (fc_file_read(path, CRL_FILE_MAX, &buf, &len) != FC_OK) {
		httpd_resp_error(r, 404, "not_found", "no CRL published yet");
		return;
	}
	httpd_resp_raw_take(r, 200, pem ? "application/x-pem-file" :
	    "application/pkix-crl", buf, len);
}

static int
drift_cb(void *arg, const char *kind, const char *id, const char *detail,
    int64_t at)
{
	char t[21];
	json_t *d = json_loads(detail, 0, NULL);

	fc_time_iso((time_t)at, t);
	json_array_append_new(arg, json_pack("{s:s, s:s, s:o, s:s}", "kind",
	    kind, "deviceId", id, "detail", d ? d : json_null(), "seenAt", t));
	return 0;
}

static void
drift_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	json_t *a = json_array();

	if (api_query_check(c, r, allowed) < 0) {
		json_decref(a);
		return;
	}
	if (inv_drift_list(c->req->db, drift_cb, a) != FC_OK) {
		json_decref(a);
		httpd_resp_error(r, 500, "internal", "cannot read drift");
		return;
	}
	httpd_resp_json(r, 200, json_pack("{s:o}", "items", a));
}

static void
sweep_post(struct api_call *c, struct httpd_response *r)
{
	json_t *sum = NULL;
	enum fc_err result;

	result = revoke_service_sweep(SWEEP_WAIT_MS, &sum);
	if (result == FC_EINVAL) {
		httpd_resp_error(r, 503, "unavailable", "no revocation worker");
		return;
	}
	if (result != FC_OK) {
		httpd_resp_error(r, 504, "timeout", "the sweep is still "
		    "running");
		return;
	}
	log_info("sweep requested by %s", c->actor);
	httpd_resp_json(r, 200, sum);
}

enum fc_err
revoke_api_register(void)
{
	static const struct {
		const char *m, *p;
		enum api_role role;
		api_handler fn;
	} routes[] = {
		{ "POST", "/v1/devices/{id}/revoke", API_ROLE_ADMIN,
		    revoke_post },
		{ "POST", "/v1/devices/{id}/transfer", API_ROLE_ADMIN,
		    transfer_post },
		{ "DELETE", "/v1/devices/{id}", API_ROLE_ADMIN,
		    device_delete },
		{ "POST", "/v1/revocations", API_ROLE_ADMIN, revocations_post },
		{ "GET", "/v1/revocations/{id}", API_ROLE_READ,
		    revocation_get },
		{ "GET", "/v1/crl", API_ROLE_READ, crl_get },
		{ "GET", "/v1/drift", API_ROLE_READ, drift_get },
		{ "POST", "/v1/sweep", API_ROLE_ADMIN, sweep_post },
	};
	enum fc_err result;
	size_t i;

	for (i = 0; i < FC_ARRAY_LEN(routes); i++) {
		result = api_route_add(routes[i].m, routes[i].p, routes[i].role,
		    routes[i].fn);
		if (result != FC_OK && result != FC_ECONFLICT)
			return result;
	}
	return FC_OK;
}
