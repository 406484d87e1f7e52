/*
 * api_renew.c — the operator API's out-of-schedule renewal (doc/api.md,
 * POST /v1/devices/{id}/renew): makes the device's active certificate due
 * now (optionally with a one-shot rekey) and wakes the renewal job, which
 * renews and delivers it as any due certificate. Runs on the API's
 * threads with their own database connections; touches the inventory
 * through inventory_renew.h only and the renewal job through
 * renew_service_kick(). Registered by renew_service_start().
 */
#include "fc_build.h"

#include <stdio.h>
#include <string.h>

#include "api.h"
#include "inventory_renew.h"
#include "log.h"
#include "renew_service.h"

static void
renew_post(struct api_call *c, struct httpd_response *r)
{
	static const struct api_field f[] = {
		{ "rekey", API_T_BOOL, 0 }, { NULL, 0, 0 } };
	const char *id = c->req->params[0];
	char serial[FC_CERT_SERIAL_MAX], status[32] = "", at[21];
	enum inv_renew_refusal why = INV_RENEW_ACCEPTED;
	json_t *b = NULL;
	int64_t now = fc_now();
	int rekey = 0, will_rekey = 0;
	enum fc_err result;

	if (!fc_device_id_valid(id)) {
		httpd_resp_error(r, 400, "bad_device_id",
		    "not a valid device id");
		return;
	}
	/* An empty body is {"rekey": false}. */
	if (c->req->body_len > 0) {
		if (api_body_object(c, r, f, &b) < 0)
			return;
		rekey = json_is_true(json_object_get(b, "rekey"));
	}
	result = inv_renew_request(c->req->db, id, rekey, now, c->actor,
	    serial, &will_rekey, &why, status, sizeof(status));
	if (result == FC_ENOTFOUND) {
		httpd_resp_error(r, 404, "not_found", "no device %s", id);
		goto out;
	}
	if (result == FC_ECONFLICT) {
		if (why == INV_RENEW_DEVICE_NOT_ACTIVE)
			httpd_resp_error(r, 409, "device_not_active",
			    "device %s is %s", id, status);
		else if (why == INV_RENEW_NO_CERTIFICATE)
			httpd_resp_error(r, 409, "no_active_certificate",
			    "device %s has no active certificate", id);
		else
			httpd_resp_error(r, 409, "renewal_in_flight",
			    "a renewal of %s is in flight; try again when it "
			    "is delivered", id);
		goto out;
	}
	if (result != FC_OK) {
		httpd_resp_error(r, 500, "internal", "%s", fc_strerror(result));
		goto out;
	}
	renew_service_kick();
	log_info("device %s: renewal of %s requested by %s%s", id, serial,
	    c->actor, will_rekey ? " (rekey)" : "");
	fc_time_iso((time_t)now, at);
	httpd_resp_json(r, 202, json_pack("{s:s, s:{s:s}, s:s, s:b}",
	    "deviceId", id, "certificate", "serial", serial, "renewAt", at,
	    "rekey", will_rekey));
out:
	json_decref(b);
}

enum fc_err
renew_api_register(void)
{
	enum fc_err result;

	result = api_route_add("POST", "/v1/devices/{id}/renew",
	    API_ROLE_ADMIN, renew_post);
	return result == FC_ECONFLICT ? FC_OK : result;
}
