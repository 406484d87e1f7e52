/*
 * deliver.c — the delivery outbox worker: one in-memory slot per delivery
 * with a hub call outstanding, the step machine of deliver.h, back-off,
 * hub pauses, the needs-re-enrolment flag, and the rekey CSR fetch.
 * Main thread (scheduler); talks to IoT Hub only through hub.h and to the
 * database only through inventory_renew.c / inventory.c.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "deliver.h"
#include "hub.h"
#include "inventory_renew.h"
#include "log.h"
#include "renew.h"

#define ACTOR		"daemon:deliver"
#define SLOTS_MAX	1024
#define HUBS_MAX	64
#define FLAG_EVERY_S	60
#define PAUSE_MAX_S	300
#define CSR_SLOT	2
#define CSR_MAX		(8 * 1024)

enum sub { SUB_NONE = 0, SUB_GET, SUB_PUT, SUB_CALL, SUB_CSR };

struct slot {
	int		 used;
	int		 probe;		/* the one call after a hub pause */
	enum sub	 sub;
	int		 hub;
	struct inv_delivery d;
	struct deliver	*dv;
};

struct dhub {
	char		 name[FC_NAME_MAX];
	struct hub	*h;
	int64_t		 paused_until;
	char		 reason[200];	/* "" once a call went through again */
	int		 probing;	/* one call in flight after a pause */
};

struct deliver {
	struct db	*db;
	struct deliver_opts o;
	char		*chain_pem;
	struct dhub	 hubs[HUBS_MAX];
	int		 nhubs;
	struct slot	*slots;		/* SLOTS_MAX */
	int		 in_flight;
	int		 closing;
	int64_t		 last_flag;
	struct deliver_stats st;
	struct renew	*renew;
};

static const char *outcome_names[DELIVER_OUT_COUNT] = {
	"done", "failed", "cancelled", "retried", "twin_fallback",
	"installed", "paused",
};

const char *
deliver_outcome_name(enum deliver_outcome o)
{
	return (unsigned)o < DELIVER_OUT_COUNT ? outcome_names[o] : "unknown";
}

void
deliver_opts_from_cfg(struct deliver_opts *o, const struct cfg *cfg)
{
	memset(o, 0, sizeof(*o));
	o->method_timeout_s = cfg->method_timeout_seconds;
	o->max_in_flight = cfg->max_in_flight;
	o->retry_initial_s = cfg->retry_initial_seconds;
	o->retry_max_s = cfg->retry_max_seconds;
}

static void
opts_fix(struct deliver_opts *o)
{
	if (o->method_timeout_s < 5 || o->method_timeout_s > 300)
		o->method_timeout_s = 30;
	if (o->max_in_flight < 1 || o->max_in_flight > SLOTS_MAX)
		o->max_in_flight = 32;
	if (o->retry_initial_s < 1)
		o->retry_initial_s = 30;
	if (o->retry_max_s < o->retry_initial_s)
		o->retry_max_s = o->retry_initial_s;
}

enum fc_err
deliver_open(struct db *db, const struct deliver_opts *o, struct deliver **out)
{
	struct deliver *dv;

	dv = calloc(1, sizeof(*dv));
	if (dv == NULL)
		return FC_ENOMEM;
	dv->slots = calloc(SLOTS_MAX, sizeof(*dv->slots));
	dv->chain_pem = strdup(o->chain_pem ? o->chain_pem : "");
	if (dv->slots == NULL || dv->chain_pem == NULL) {
		free(dv->slots);
		free(dv->chain_pem);
		free(dv);
		return FC_ENOMEM;
	}
	dv->db = db;
	dv->o = *o;
	dv->o.chain_pem = dv->chain_pem;
	opts_fix(&dv->o);
	*out = dv;
	return FC_OK;
}

void
deliver_close(struct deliver *dv)
{
	int i;

	if (dv == NULL)
		return;
	dv->closing = 1;
	for (i = 0; i < dv->nhubs; i++)
		hub_close(dv->hubs[i].h);	/* cancels: callbacks run */
	free(dv->slots);
	free(dv->chain_pem);
	free(dv);
}

enum fc_err
deliver_hub_add(struct deliver *dv, const char *name, struct hub *h)
{
	if (dv->nhubs == HUBS_MAX) {
		hub_close(h);
		return FC_EINVAL;
	}
	snprintf(dv->hubs[dv->nhubs].name, sizeof(dv->hubs[0].name), "%s",
	    name ? name : "");
	dv->hubs[dv->nhubs].h = h;
	dv->nhubs++;
	return FC_OK;
}

void
deliver_reconfigure(struct deliver *dv, const struct deliver_opts *o)
{
	dv->o.method_timeout_s = o->method_timeout_s;
	dv->o.max_in_flight = o->max_in_flight;
	dv->o.retry_initial_s = o->retry_initial_s;
	dv->o.retry_max_s = o->retry_max_s;
	opts_fix(&dv->o);
}

enum fc_err
deliver_chain_set(struct deliver *dv, const char *chain_pem)
{
	char *c = strdup(chain_pem ? chain_pem : "");

	if (c == NULL)
		return FC_ENOMEM;
	free(dv->chain_pem);
	dv->chain_pem = c;
	dv->o.chain_pem = c;
	return FC_OK;
}

void
deliver_set_renew(struct deliver *dv, struct renew *r)
{
	dv->renew = r;
}

static int
hub_index(const struct deliver *dv, const char *name)
{
	int i;

	for (i = 0; i < dv->nhubs; i++)
		if (strcmp(dv->hubs[i].name, name) == 0)
			return i;
	return -1;
}

/* Exponential back-off with jitter: [d/2, d] where d doubles per attempt
 * from retry_initial_s up to retry_max_s; never less than the hub's
 * Retry-After. */
static int64_t
backoff_s(const struct deliver *dv, int attempts, int retry_after_ms)
{
	int64_t d = dv->o.retry_initial_s, lo;
	int i;

	for (i = 1; i < attempts && d < dv->o.retry_max_s; i++)
		d *= 2;
	if (d > dv->o.retry_max_s)
		d = dv->o.retry_max_s;
	lo = d / 2;
	d = lo + (d - lo > 0 ? (int64_t)(random() % (d - lo + 1)) : 0);
	if (d < 1)
		d = 1;
	if (retry_after_ms > 0 && d < (retry_after_ms + 999) / 1000)
		d = (retry_after_ms + 999) / 1000;
	return d;
}

static void
slot_release(struct slot *s)
{
	if (s->used) {
		if (s->probe)
			s->dv->hubs[s->hub].probing = 0;
		s->used = 0;
		s->dv->in_flight--;
	}
}

/* Describes a failed hub call for last_error (no secrets in it). */
static void
describe(const struct hub_result *res, const char *what, char *buf,
    size_t len)
{
	int n;

	/* Truncation is fine: last_error is for people. */
	n = snprintf(buf, len, "%s: %s (HTTP %ld, %d %s%s%.120s)", what,
	    hub_outcome_name(res->outcome), res->http_status, res->error.code,
	    res->error.name, res->error.message[0] ? ": " : "",
	    res->error.message);
	if (n < 0 && len > 0)
		buf[0] = '\0';
}

/* The step backs off: row stays at its step, attempts + 1. */
static void
retry_later(struct slot *s, int retry_after_ms, const char *why)
{
	struct deliver *dv = s->dv;
	int64_t at;

	s->d.attempts++;
	at = fc_now() + backoff_s(dv, s->d.attempts, retry_after_ms);
	if (inv_delivery_update(dv->db, s->d.serial, s->d.step, s->d.attempts,
	    at, why) != FC_OK)
		log_warn("delivery %s: cannot store its back-off", s->d.serial);
	dv->st.outcomes[DELIVER_OUT_RETRIED]++;
	log_debug("device %s: delivery %s step %s retries in %llds: %s",
	    s->d.device_id, s->d.serial, s->d.step,
	    (long long)(at - fc_now()), why);
	slot_release(s);
}

static void
finish(struct slot *s, const char *step, const char *why)
{
	struct deliver *dv = s->dv;
	enum fc_err result;

	result = inv_delivery_finish(dv->db, s->d.serial, step, why,
	    fc_now() + dv->o.retry_max_s, ACTOR);
	if (result != FC_OK)
		log_error("delivery %s: cannot record %s (%s)", s->d.serial,
		    step, fc_strerror(result));
	if (strcmp(step, INV_STEP_FAILED) == 0) {
		dv->st.outcomes[DELIVER_OUT_FAILED]++;
		log_warn("device %s: delivery of %s failed: %s",
		    s->d.device_id, s->d.serial, why);
	} else if (strcmp(step, INV_STEP_CANCELLED) == 0) {
		dv->st.outcomes[DELIVER_OUT_CANCELLED]++;
		log_info("device %s: delivery of %s cancelled: %s",
		    s->d.device_id, s->d.serial, why);
	} else
		dv->st.outcomes[DELIVER_OUT_DONE]++;
	slot_release(s);
}

static void
pause_hub(struct slot *s, const struct hub_result *res)
{
	struct deliver *dv = s->dv;
	struct dhub *hb = &dv->hubs[s->hub];
	int64_t wait = dv->o.retry_max_s < PAUSE_MAX_S ? dv->o.retry_max_s :
	    PAUSE_MAX_S;
	char why[200];

	describe(res, "hub misconfigured", why, sizeof(why));
	if (hb->paused_until <= fc_now()) {
		log_error("hub %s: delivery queue paused for %llds: %s",
		    hb->name[0] ? hb->name : "(default)", (long long)wait, why);
		dv->st.outcomes[DELIVER_OUT_PAUSED]++;
	}
	hb->paused_until = fc_now() + wait;
	hb->probing = 0;
	snprintf(hb->reason, sizeof(hb->reason), "%s", why);
	if (inv_delivery_update(dv->db, s->d.serial, s->d.step, s->d.attempts,
	    hb->paused_until, why) != FC_OK)
		log_warn("delivery %s: cannot store the pause", s->d.serial);
	slot_release(s);
}

static void on_result(struct hub_result *res, void *arg);
static void step_run(struct slot *s);

static void
submit(struct slot *s, struct hub_req *req, enum sub sub)
{
	s->sub = sub;
	if (hub_submit(s->dv->hubs[s->hub].h, req, on_result, s) != FC_OK)
		retry_later(s, 0, "cannot queue the hub call");
}

/* Moves the row to step and works it at once in the same slot. */
static void
advance(struct slot *s, const char *step)
{
	enum fc_err result;

	result = inv_delivery_update(s->dv->db, s->d.serial, step, 0, fc_now(),
	    NULL);
	if (result != FC_OK) {
		log_error("delivery %s: cannot store step %s", s->d.serial,
		    step);
		slot_release(s);
		return;
	}
	snprintf(s->d.step, sizeof(s->d.step), "%s", step);
	s->d.attempts = 0;
	step_run(s);
}

static void
pem_wrap(const char *b64, char *out)
{
	size_t n = strlen(b64), i, o = 0;

	o += (size_t)sprintf(out, "-----BEGIN CERTIFICATE-----\n");
	for (i = 0; i < n; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;
		memcpy(out + o, b64 + i, k);
		o += k;
		out[o++] = '\n';
	}
	sprintf(out + o, "-----END CERTIFICATE-----\n");
}

enum fc_err
deliver_payload(const unsigned char *der, size_t der_len, const char *serial,
    const char *chain_pem, int64_t not_after, int64_t renew_after,
    json_t **out)
{
	char *b64 = NULL, *pem = NULL, na[21], ra[21];
	json_t *o = NULL;
	enum fc_err result;

	if (der == NULL || der_len == 0 || der_len > 16384)
		return FC_EINVAL;
	result = fc_b64_encode(der, der_len, &b64);
	if (result != FC_OK)
		return result;
	pem = malloc(strlen(b64) + strlen(b64) / 64 + 128);
	if (pem == NULL) {
		free(b64);
		return FC_ENOMEM;
	}
	pem_wrap(b64, pem);
	fc_time_iso((time_t)not_after, na);
	fc_time_iso((time_t)renew_after, ra);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "serial", serial,
	    "certificate", pem, "chain", chain_pem ? chain_pem : "",
	    "notAfter", na, "renewAfter", ra);
	free(b64);
	free(pem);
	if (o == NULL)
		return FC_ENOMEM;
	*out = o;
	return FC_OK;
}

/* 1 if both PEM chains start with the same certificate (the issuer). */
static int
same_issuer(const char *a, const char *b)
{
	static const char end[] = "-----END CERTIFICATE-----";
	const char *ea = strstr(a, end), *eb = strstr(b, end);

	return ea != NULL && eb != NULL && ea - a == eb - b &&
	    memcmp(a, b, (size_t)(ea - a)) == 0;
}

enum fc_err
deliver_cert_payload(struct db *db, const char *serial,
    const char *current_chain, int64_t renew_after, json_t **out)
{
	struct inv_cert c;
	enum fc_err result;
	char *chain = NULL;
	const char *use = current_chain;

	result = inv_cert_get(db, serial, &c);
	if (result != FC_OK)
		return result;
	result = inv_cert_chain(db, serial, &chain);
	/* The chain recorded with the certificate, unless the current one
	 * starts with the same intermediate (then the current one: the
	 * operator may have fixed the rest of it). */
	if (result == FC_OK && (current_chain == NULL ||
	    !same_issuer(chain, current_chain)))
		use = chain;
	if (result == FC_OK || result == FC_ENOTFOUND)
		result = deliver_payload(c.der, c.der_len, c.serial, use,
		    c.not_after, renew_after, out);
	free(chain);
	inv_cert_clear(&c);
	return result;
}

static json_t *
slot_payload(struct slot *s)
{
	json_t *p = NULL;

	if (deliver_cert_payload(s->dv->db, s->d.serial, s->dv->chain_pem,
	    s->d.renew_at, &p) != FC_OK)
		return NULL;
	return p;
}

/* The thumbprint of the new certificate in the form of the device's
 * current primary (IoT Hub wants both slots the same length). */
static enum fc_err
thumb_for(struct slot *s, const struct hub_device *hd, char *out, size_t len)
{
	struct inv_cert c;

	if (inv_cert_get(s->dv->db, s->d.serial, &c) != FC_OK)
		return FC_EDB;
	snprintf(out, len, "%s", strlen(hd->primary_thumbprint) == 64 ?
	    c.sha256 : c.sha1);
	inv_cert_clear(&c);
	return FC_OK;
}

static void
step_run(struct slot *s)
{
	struct hub_req *req = NULL;
	json_t *p = NULL, *desired;
	enum fc_err result = FC_OK;
	const char *st = s->d.step;
	int promote = strcmp(st, "promote") == 0;

	/* A certificate revoked (or otherwise replaced) meanwhile is not
	 * delivered any further. */
	if ((!promote && s->d.cert_status != INV_CERT_PENDING &&
	    s->d.cert_status != INV_CERT_DELIVERED) ||
	    (promote && s->d.cert_status != INV_CERT_ACTIVE)) {
		finish(s, INV_STEP_CANCELLED, "certificate is no longer "
		    "pending");
		return;
	}
	/* Nor to a device that was suspended, revoked or decommissioned. */
	if (s->d.dev_status != INV_DEV_ACTIVE) {
		finish(s, INV_STEP_CANCELLED, "device is no longer active");
		return;
	}
	if (strcmp(st, "stage") == 0 || promote) {
		result = hub_req_device_get(s->d.device_id, &req);
		if (result == FC_OK)
			submit(s, req, SUB_GET);
	} else if (strcmp(st, "install") == 0) {
		p = slot_payload(s);
		if (p == NULL)
			result = FC_EDB;
		else
			result = hub_req_method_invoke(s->d.device_id,
			    "fleetcertInstall", p, s->dv->o.method_timeout_s, 0,
			    &req);
		if (result == FC_OK)
			submit(s, req, SUB_CALL);
	} else if (strcmp(st, "twin") == 0) {
		p = slot_payload(s);
		desired = p ? json_pack("{s:O}", "fleetcert", p) : NULL;
		if (desired == NULL)
			result = FC_EDB;
		else
			result = hub_req_twin_patch_desired(s->d.device_id,
			    desired, NULL, &req);
		json_decref(desired);
		if (result == FC_OK)
			submit(s, req, SUB_CALL);
	} else if (strcmp(st, "confirm") == 0) {
		result = hub_req_twin_get(s->d.device_id, &req);
		if (result == FC_OK)
			submit(s, req, SUB_CALL);
	} else {
		log_error("delivery %s: unknown step '%s'", s->d.serial, st);
		finish(s, INV_STEP_FAILED, "unknown step");
		return;
	}
	json_decref(p);
	if (result != FC_OK) {
		char why[96];
		snprintf(why, sizeof(why), "cannot build the %s request (%s)",
		    st, fc_strerror(result));
		if (result == FC_EINVAL)
			finish(s, INV_STEP_FAILED, why);
		else
			retry_later(s, 0, why);
	}
}

/* Reported fleetcert.installedSerial of a twin, or NULL. */
static const char *
reported_serial(const json_t *twin)
{
	json_t *fc = json_object_get(json_object_get(json_object_get(twin,
	    "properties"), "reported"), "fleetcert");

	return json_string_value(json_object_get(fc, "installedSerial"));
}

static void
on_confirm(struct slot *s, struct hub_result *res)
{
	const char *got = reported_serial(res->json);
	const char *next;
	enum fc_err result;
	char why[160];

	if (got == NULL || strcasecmp(got, s->d.serial) != 0) {
		snprintf(why, sizeof(why), "waiting for the device to report "
		    "%s (it reports %s)", s->d.serial, got ? got : "none");
		retry_later(s, 0, why);
		return;
	}
	next = s->d.auth_type == INV_AUTH_SELFSIGNED ? "promote" :
	    INV_STEP_DONE;
	result = inv_delivery_confirm(s->dv->db, s->d.serial, next, ACTOR);
	if (result != FC_OK) {
		if (result == FC_ECONFLICT)
			finish(s, INV_STEP_CANCELLED, "certificate is no "
			    "longer pending");
		else
			retry_later(s, 0, "cannot record the confirmation");
		return;
	}
	log_info("device %s: certificate %s confirmed", s->d.device_id,
	    s->d.serial);
	if (strcmp(next, INV_STEP_DONE) == 0) {
		s->dv->st.outcomes[DELIVER_OUT_DONE]++;
		slot_release(s);
		return;
	}
	s->d.cert_status = INV_CERT_ACTIVE;
	snprintf(s->d.step, sizeof(s->d.step), "%s", next);
	s->d.attempts = 0;
	step_run(s);
}

static void
on_install(struct slot *s, struct hub_result *res)
{
	char why[300];
	const char *err;

	if (res->outcome == HUB_DONE && res->method_status == 200) {
		(void)inv_cert_set_status(s->dv->db, s->d.serial,
		    INV_CERT_DELIVERED, ACTOR, "{\"via\":\"method\"}");
		s->d.cert_status = INV_CERT_DELIVERED;
		s->dv->st.outcomes[DELIVER_OUT_INSTALLED]++;
		advance(s, "confirm");
		return;
	}
	if (res->outcome == HUB_DONE) {
		err = json_string_value(json_object_get(res->method_payload,
		    "error"));
		snprintf(why, sizeof(why), "device refused the certificate "
		    "(status %d): %.200s", res->method_status,
		    err ? err : "no reason given");
		finish(s, INV_STEP_FAILED, why);
		return;
	}
	/* Offline (404103) or too slow (504101): the twin carries it. */
	if (hub_error_is(&res->error, HUB_E_DEVICE_NOT_ONLINE) ||
	    hub_error_is(&res->error, HUB_E_GATEWAY_TIMEOUT)) {
		s->dv->st.outcomes[DELIVER_OUT_TWIN_FALLBACK]++;
		advance(s, "twin");
		return;
	}
	describe(res, "fleetcertInstall", why, sizeof(why));
	if (res->outcome == HUB_REJECTED)
		finish(s, INV_STEP_FAILED, why);
	else
		retry_later(s, res->retry_after_ms, why);
}

static void
on_thumb_get(struct slot *s, struct hub_result *res)
{
	struct hub_req *req = NULL;
	char thumb[FC_SHA256_HEX];
	enum fc_err result;

	result = thumb_for(s, &res->device, thumb, sizeof(thumb));
	if (result == FC_OK) {
		if (strcmp(s->d.step, "stage") == 0)
			result = hub_req_thumbprint_stage(&res->device, thumb,
			    &req);
		else
			result = hub_req_thumbprint_promote(&res->device,
			    thumb, &req);
	}
	if (result != FC_OK) {
		retry_later(s, 0, "cannot build the thumbprint update");
		return;
	}
	submit(s, req, SUB_PUT);
}

static void
on_result(struct hub_result *res, void *arg)
{
	struct slot *s = arg;
	struct deliver *dv = s->dv;
	char why[300];

	if (dv->closing) {
		hub_result_free(res);
		return;
	}
	if (s->sub == SUB_CSR) {
		const char *csr = NULL;
		unsigned char *bin = NULL;
		size_t len = 0;
		if (res->outcome == HUB_DONE && res->method_status == 200)
			csr = json_string_value(json_object_get(
			    res->method_payload, "csr"));
		if (csr != NULL && strlen(csr) < CSR_MAX &&
		    fc_b64_decode(csr, &bin, &len) == FC_OK) {
			dv->st.csr_ok++;
			(void)renew_csr_done(dv->renew, s->d.serial, bin, len,
			    NULL);
		} else {
			dv->st.csr_failed++;
			describe(res, "fleetcertCsr", why, sizeof(why));
			(void)renew_csr_done(dv->renew, s->d.serial, NULL, 0,
			    res->outcome == HUB_DONE ? "device sent no CSR" :
			    why);
		}
		free(bin);
		slot_release(s);
		hub_result_free(res);
		return;
	}
	if (res->outcome != HUB_MISCONFIGURED && s->dv->hubs[s->hub].reason[0]) {
		/* The hub answers again: its queue runs. */
		log_info("hub %s: delivery queue resumed",
		    dv->hubs[s->hub].name[0] ? dv->hubs[s->hub].name :
		    "(default)");
		dv->hubs[s->hub].reason[0] = '\0';
		dv->hubs[s->hub].probing = 0;
	}
	if (res->outcome == HUB_MISCONFIGURED) {
		pause_hub(s, res);
	} else if (strcmp(s->d.step, "install") == 0) {
		on_install(s, res);
	} else if (res->outcome != HUB_DONE) {
		describe(res, s->d.step, why, sizeof(why));
		if (res->outcome == HUB_REJECTED)
			finish(s, INV_STEP_FAILED, why);
		else
			retry_later(s, res->retry_after_ms, why);
	} else if (strcmp(s->d.step, "confirm") == 0) {
		on_confirm(s, res);
	} else if (strcmp(s->d.step, "twin") == 0) {
		(void)inv_cert_set_status(dv->db, s->d.serial,
		    INV_CERT_DELIVERED, ACTOR, "{\"via\":\"twin\"}");
		s->d.cert_status = INV_CERT_DELIVERED;
		advance(s, "confirm");
	} else if (s->sub == SUB_GET) {
		on_thumb_get(s, res);
	} else if (strcmp(s->d.step, "stage") == 0) {
		advance(s, "install");
	} else {
		/* promote done: the old thumbprint is gone. */
		finish(s, INV_STEP_DONE, "new thumbprint is primary");
	}
	hub_result_free(res);
}

static struct slot *
slot_get(struct deliver *dv)
{
	int i;

	for (i = 0; i < SLOTS_MAX; i++)
		if (!dv->slots[i].used) {
			memset(&dv->slots[i], 0, sizeof(dv->slots[i]));
			dv->slots[i].used = 1;
			dv->slots[i].dv = dv;
			dv->in_flight++;
			return &dv->slots[i];
		}
	return NULL;
}

static int
busy(const struct deliver *dv, const char *serial)
{
	int i;

	for (i = 0; i < SLOTS_MAX; i++)
		if (dv->slots[i].used && strcmp(dv->slots[i].d.serial,
		    serial) == 0)
			return 1;
	return 0;
}

/* Rows of one tick, collected before they are worked (the list statement
 * must be finished before rows are updated). */
struct pick {
	struct deliver		*dv;
	struct inv_delivery	*rows;
	int			 n, cap;
};

static int
collect(void *arg, const struct inv_delivery *d)
{
	struct pick *p = arg;

	if (busy(p->dv, d->serial))
		return 0;
	p->rows[p->n++] = *d;
	return p->n >= p->cap;
}

int
deliver_tick(struct deliver *dv, int64_t now)
{
	struct pick p;
	int i, started = 0, n;

	if (dv->closing)
		return 0;
	if (now - dv->last_flag >= FLAG_EVERY_S) {
		dv->last_flag = now;
		if (inv_delivery_flag_expired(dv->db, now, &n) == FC_OK &&
		    n > 0) {
			dv->st.flagged_reenrol += (uint64_t)n;
			log_warn("delivery: %d device(s) did not confirm before "
			    "their certificate expired; they need re-enrolment",
			    n);
		}
	}
	p.cap = dv->o.max_in_flight - dv->in_flight;
	if (p.cap <= 0)
		return 0;
	p.dv = dv;
	p.n = 0;
	p.rows = calloc((size_t)p.cap, sizeof(*p.rows));
	if (p.rows == NULL)
		return 0;
	if (inv_delivery_due(dv->db, now, p.cap + dv->in_flight, collect, &p)
	    != FC_OK) {
		free(p.rows);
		return 0;
	}
	for (i = 0; i < p.n; i++) {
		struct inv_delivery *d = &p.rows[i];
		int h = hub_index(dv, d->hub);
		struct slot *s;

		if (h < 0) {
			char why[200];
			snprintf(why, sizeof(why), "no [hub %s] configured",
			    d->hub);
			(void)inv_delivery_update(dv->db, d->serial, d->step,
			    d->attempts, now + dv->o.retry_max_s, why);
			continue;
		}
		if (dv->hubs[h].paused_until > now) {
			(void)inv_delivery_update(dv->db, d->serial, d->step,
			    d->attempts, dv->hubs[h].paused_until,
			    dv->hubs[h].reason);
			continue;
		}
		/* After a pause one call probes the hub; the others wait for
		 * its answer. */
		if (dv->hubs[h].reason[0] != '\0' && dv->hubs[h].probing)
			continue;
		s = slot_get(dv);
		if (s == NULL)
			break;
		s->d = *d;
		s->hub = h;
		if (dv->hubs[h].reason[0] != '\0') {
			dv->hubs[h].probing = 1;
			s->probe = 1;
		}
		step_run(s);
		started++;
	}
	free(p.rows);
	return started;
}

enum fc_err
deliver_csr_fetch(void *arg, const char *serial, const char *device_id,
    const char *hub)
{
	struct deliver *dv = arg;
	struct hub_req *req = NULL;
	struct slot *s;
	json_t *p;
	enum fc_err result;
	int h = hub_index(dv, hub);

	if (h < 0 || dv->hubs[h].paused_until > fc_now() || dv->renew == NULL)
		return FC_EBUSY;
	p = json_pack("{s:i}", "keySlot", CSR_SLOT);
	if (p == NULL)
		return FC_ENOMEM;
	result = hub_req_method_invoke(device_id, "fleetcertCsr", p,
	    dv->o.method_timeout_s, 0, &req);
	json_decref(p);
	if (result != FC_OK)
		return result;
	s = slot_get(dv);
	if (s == NULL) {
		hub_req_free(req);
		return FC_EBUSY;
	}
	snprintf(s->d.serial, sizeof(s->d.serial), "%s", serial);
	snprintf(s->d.device_id, sizeof(s->d.device_id), "%s", device_id);
	s->hub = h;
	s->sub = SUB_CSR;
	result = hub_submit(dv->hubs[h].h, req, on_result, s);
	if (result != FC_OK) {
		slot_release(s);
		return result;
	}
	return FC_OK;
}

size_t
deliver_perform(struct deliver *dv, int *timeout_ms)
{
	size_t n = 0;
	int i, t, best = -1;

	for (i = 0; i < dv->nhubs; i++) {
		n += hub_perform(dv->hubs[i].h, &t);
		if (t >= 0 && (best < 0 || t < best))
			best = t;
	}
	if (timeout_ms != NULL)
		*timeout_ms = best;
	return n;
}

void
deliver_poll(struct deliver *dv, int timeout_ms)
{
	/* One hub: wait on it; several: short slices over each. */
	if (dv->nhubs == 1)
		hub_poll(dv->hubs[0].h, timeout_ms);
	else if (dv->nhubs > 1) {
		int i, slice = timeout_ms / dv->nhubs;
		for (i = 0; i < dv->nhubs; i++)
			hub_poll(dv->hubs[i].h, slice > 0 ? slice : 0);
	}
}

int
deliver_in_flight(const struct deliver *dv)
{
	return dv->in_flight;
}

void
deliver_stats_get(const struct deliver *dv, struct deliver_stats *out)
{
	*out = dv->st;
	out->in_flight = dv->in_flight;
}

int
deliver_health(const struct deliver *dv, char *buf, size_t len)
{
	size_t o = 0;
	int i, ok = 1;
	if (len > 0)
		buf[0] = '\0';
	for (i = 0; i < dv->nhubs; i++) {
		const struct dhub *h = &dv->hubs[i];
		if (h->reason[0] == '\0')
			continue;
		ok = 0;
		if (o < len)
			o += (size_t)snprintf(buf + o, len - o, "%shub %s "
			    "paused: %s", o ? "; " : "",
			    h->name[0] ? h->name : "(default)", h->reason);
	}
	return ok;
}

void
deliver_hubs_foreach(const struct deliver *dv,
    void (*fn)(void *arg, const char *name, struct hub *h), void *arg)
{
	int i;

	for (i = 0; i < dv->nhubs; i++)
		fn(arg, dv->hubs[i].name, dv->hubs[i].h);
}
