/*
 * methods.c — direct method invocation, POST /twins/{id}/methods
 * (azure-iothub.md "Direct methods"): method name rules, responseTimeout
 * 5-300 s and connectTimeout 0-300 s (400004 otherwise), payload <= 128 KB,
 * 404001 for unknown or disabled devices, 404103 when the device is not
 * connected (after waiting connectTimeout for it), 504101 when the device
 * answers later than responseTimeout. Errors use body shape B.
 * Runs in request threads; sleeps (slow device, connect wait) happen with
 * sim->lock released.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubsim.h"
#include "log.h"

#define PAYLOAD_MAX	(128 * 1024)

static int
method_name_ok(const char *s)
{
	static const char bad[] = "$()<>@,;:\\\"/[]?={} \t";

	if (s == NULL || s[0] == '\0' || strlen(s) > 128)
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x21 || c > 0x7e || strchr(bad, c) != NULL)
			return 0;
	}
	return 1;
}

/* Reads an optional integer field in [lo, hi]; -1 when bad. */
static int
int_field(json_t *body, const char *key, long lo, long hi, long dflt,
    long *out)
{
	json_t *v = json_object_get(body, key);

	if (v == NULL || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return -1;
	*out = (long)json_integer_value(v);
	return 0;
}

static size_t
json_size(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n = s ? strlen(s) : 0;

	free(s);
	return n;
}

/* Looks the device up again (it may have gone while we slept). Returns the
 * device with the lock held, or NULL (lock released) after replying. */
static struct sim_dev *
lookup(struct sim *sim, struct sim_reply *rep, const char *id)
{
	struct sim_dev *d;

	pthread_mutex_lock(&sim->lock);
	d = reg_find(sim, id);
	if (d == NULL || !d->registered || !d->enabled) {
		pthread_mutex_unlock(&sim->lock);
		reply_error_b(sim, rep, 404001, "DeviceNotFound",
		    "Device %s not registered or disabled", id);
		return NULL;
	}
	return d;
}

void
methods_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    const char *id)
{
	json_t *body = NULL, *payload, *out = NULL;
	const char *name;
	long rto = 30, cto = 0, slow;
	struct sim_dev *d;
	int status = 0;
	double until;

	body = http_body_json(sim, req, rep);
	if (body == NULL) {
		/* Re-shape the registry-style error for the method endpoint. */
		char ename[sizeof(rep->name)];
		long ecode = rep->code;

		snprintf(ename, sizeof(ename), "%s", rep->name);
		reply_error_b(sim, rep, ecode, ename, "%s",
		    "the body must be JSON {methodName, payload, "
		    "responseTimeoutInSeconds, connectTimeoutInSeconds}");
		return;
	}
	name = json_string_value(json_object_get(body, "methodName"));
	if (!json_is_object(body) || !method_name_ok(name)) {
		reply_error_b(sim, rep, 400004, "ArgumentInvalid",
		    "methodName is missing or contains a character that is not "
		    "allowed");
		goto out;
	}
	if (int_field(body, "responseTimeoutInSeconds", 5, 300, 30, &rto) != 0 ||
	    int_field(body, "connectTimeoutInSeconds", 0, 300, 0, &cto) != 0) {
		reply_error_b(sim, rep, 400004, "ArgumentInvalid",
		    "responseTimeoutInSeconds must be 5-300 and "
		    "connectTimeoutInSeconds 0-300");
		goto out;
	}
	payload = json_object_get(body, "payload");
	if (payload != NULL && json_size(payload) > PAYLOAD_MAX) {
		reply_error_b(sim, rep, 413001, "MessageTooLarge",
		    "method payload is limited to %d bytes", PAYLOAD_MAX);
		goto out;
	}

	d = lookup(sim, rep, id);
	if (d == NULL)
		goto out;
	/* Wait up to connectTimeout for an offline device to connect. */
	until = sim_clock() + (double)cto;
	while (d->sd == NULL || !d->sd->connected) {
		pthread_mutex_unlock(&sim->lock);
		if (sim_clock() >= until) {
			reply_error_b(sim, rep, 404103, "DeviceNotOnline",
			    "Timed out waiting for device %s to connect.", id);
			goto out;
		}
		sim_sleep_ms(100);
		d = lookup(sim, rep, id);
		if (d == NULL)
			goto out;
	}
	slow = d->sd->slow_ms;
	pthread_mutex_unlock(&sim->lock);
	if (slow >= rto * 1000) {
		sim_sleep_ms(rto * 1000);
		reply_error_b(sim, rep, 504101, "GatewayTimeout",
		    "Timed out waiting for the response from device %s.", id);
		goto out;
	}
	sim_sleep_ms(slow);
	d = lookup(sim, rep, id);
	if (d == NULL)
		goto out;
	if (d->sd == NULL || !d->sd->connected) {
		pthread_mutex_unlock(&sim->lock);
		reply_error_b(sim, rep, 404103, "DeviceNotOnline",
		    "Device %s disconnected before answering.", id);
		goto out;
	}
	dev_method(sim, d, name, payload, &status, &out);
	d->last_activity = fc_now();
	pthread_mutex_unlock(&sim->lock);
	if (out != NULL && json_size(out) > PAYLOAD_MAX) {
		json_decref(out);
		out = NULL;
		reply_error_b(sim, rep, 413001, "MessageTooLarge",
		    "device answer is larger than %d bytes", PAYLOAD_MAX);
		goto out;
	}
	reply_json(rep, 200, json_pack("{s:i, s:o}", "status", status,
	    "payload", out != NULL ? out : json_null()));
	out = NULL;
out:
	json_decref(out);
	json_decref(body);
}
