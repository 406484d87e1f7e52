/*
 * enrol_hub.c — after a self-signed device re-enrolled, its new certificate's
 * thumbprint is staged at its IoT Hub (DESIGN.md "Delivery" step 1: the
 * secondary thumbprint, so the device can connect with its new certificate
 * at once; the delivery loop makes it primary when the device reports it).
 * Runs on an enrolment listener thread with a short-lived hub client of its
 * own (a struct hub is driven by one thread; re-enrolments of self-signed
 * devices are rare), bounded by a short retry budget. A disabled device stays
 * disabled: the update writes the hub's own device record back.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "enrol_int.h"
#include "hub.h"
#include "log.h"

/* The listener thread waits for the hub at most about this long. */
#define HUB_BUDGET_MS	5000

static enum fc_err
call(struct hub *h, struct hub_req *req, const char *device_id,
    const char *what, struct hub_result **out)
{
	struct hub_result *res = NULL;
	enum fc_err result;

	result = hub_call(h, req, &res);
	if (result != FC_OK)
		return result;
	if (res->outcome != HUB_DONE) {
		log_warn("enrol device %s: hub %s: %s (HTTP %ld, %s)", device_id,
		    what, res->error.name[0] ? res->error.name : "failed",
		    res->http_status, res->error.message);
		result = res->outcome == HUB_REJECTED ? FC_ECONFLICT :
		    FC_EREMOTE;
		hub_result_free(res);
		return result;
	}
	*out = res;
	return FC_OK;
}

enum fc_err
enrol_hub_stage(const struct cfg *cfg, const char *hub_name,
    const char *device_id, const char *sha1, const char *sha256)
{
	const struct cfg_hub *ch;
	struct hub_opts o;
	struct hub *h = NULL;
	struct hub_req *req = NULL;
	struct hub_result *got = NULL, *put = NULL;
	char *conn = NULL, err[256];
	size_t conn_len = 0;
	const char *thumb;
	enum fc_err result;

	ch = cfg != NULL ? cfg_hub_find(cfg, hub_name) : NULL;
	if (ch == NULL) {
		log_error("enrol device %s: no [hub%s%s] section to stage its "
		    "thumbprint at", device_id, hub_name[0] ? " " : "",
		    hub_name);
		return FC_ENOTFOUND;
	}
	result = cfg_secret_read(ch->connection_string_file, &conn, &conn_len,
	    err, sizeof(err));
	if (result != FC_OK) {
		log_error("enrol device %s: %s", device_id, err);
		return result;
	}
	hub_opts_default(&o);
	o.rate_per_second = ch->rate_per_second;
	o.registry_per_minute = ch->registry_per_minute;
	o.ca_file = ch->ca_file;
	o.max_attempts = 2;
	o.retry_budget_ms = HUB_BUDGET_MS;
	o.connect_timeout_ms = HUB_BUDGET_MS / 2;
	o.request_timeout_ms = HUB_BUDGET_MS;
	result = hub_open_string(ch->name, conn, &o, &h);
	fc_secret_free(conn, conn_len + 1);
	if (result != FC_OK)
		goto out;

	result = hub_req_device_get(device_id, &req);
	if (result != FC_OK)
		goto out;
	result = call(h, req, device_id, "get device", &got);
	req = NULL;
	if (result != FC_OK)
		goto out;
	/* The same kind of thumbprint the hub holds (SHA-1 unless SHA-256). */
	thumb = strlen(got->device.primary_thumbprint) == 64 ? sha256 : sha1;
	if (strcasecmp(got->device.primary_thumbprint, thumb) == 0 ||
	    strcasecmp(got->device.secondary_thumbprint, thumb) == 0)
		goto out;	/* already there: a retry */
	result = hub_req_thumbprint_stage(&got->device, thumb, &req);
	if (result != FC_OK)
		goto out;
	result = call(h, req, device_id, "stage thumbprint", &put);
	req = NULL;
	if (result == FC_OK)
		log_info("enrol device %s: thumbprint staged at hub %s",
		    device_id, hub_host(h));
out:
	hub_result_free(put);
	hub_result_free(got);
	hub_req_free(req);
	hub_close(h);
	return result;
}
