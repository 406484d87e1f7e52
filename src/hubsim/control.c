/*
 * control.c — the simulator's control interface under /_sim/ (bearer
 * control token) for tests and demos: registry and device-side state,
 * online/offline, device misbehaviour, fault injection per operation class,
 * the call log (every hub request and refused device connection) and the
 * quota counters. Also owns the call log ring and the fault table.
 * Runs in request threads; state under sim->lock.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "hubsim.h"
#include "log.h"

static const char *op_names[OP_COUNT] = {
	"any", "registryRead", "registryWrite", "bulk", "statistics",
	"twinRead", "twinUpdate", "method", "query"
};

const char *
sim_op_name(enum sim_op op)
{
	return op < OP_COUNT ? op_names[op] : "?";
}

static int
op_parse(const char *s)
{
	int i;

	for (i = 0; i < OP_COUNT; i++)
		if (s != NULL && strcmp(s, op_names[i]) == 0)
			return i;
	return -1;
}

void
calllog_add(struct sim *sim, const char *method, const char *path,
    enum sim_op op, int status, long code, const char *name,
    const char *device, long delay_ms)
{
	struct sim_call *c;
	size_t idx;

	if (sim->calls_cap == 0)
		return;
	if (sim->ncalls < sim->calls_cap) {
		idx = (sim->calls_head + sim->ncalls) % sim->calls_cap;
		sim->ncalls++;
	} else {
		idx = sim->calls_head;
		sim->calls_head = (sim->calls_head + 1) % sim->calls_cap;
	}
	c = &sim->calls[idx];
	memset(c, 0, sizeof(*c));
	c->seq = ++sim->call_seq;
	c->t = sim_clock();
	snprintf(c->method, sizeof(c->method), "%s", method);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->op = op;
	c->status = status;
	c->code = code;
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	snprintf(c->device, sizeof(c->device), "%s", device ? device : "");
	c->delay_ms = delay_ms;
}

int
fault_pick(struct sim *sim, enum sim_op op, struct sim_reply *rep,
    long *latency_ms)
{
	struct sim_fault *fs[2] = { &sim->faults[OP_ANY], NULL };
	int i;

	*latency_ms = 0;
	if (op != OP_ANY)
		fs[1] = &sim->faults[op];
	for (i = 0; i < 2; i++) {
		struct sim_fault *f = fs[i];
		double r;
		if (f == NULL || !f->set)
			continue;
		*latency_ms += f->latency_ms;
		r = drand48();
		if (r < f->preset) {
			rep->reset = 1;
			return 1;
		}
		r -= f->preset;
		if (r < f->p429) {
			reply_error(sim, rep, 429001, "ThrottlingException",
			    "Throttling request (injected fault). Wait %ld seconds "
			    "and try again.", f->retry_after > 0 ? f->retry_after : 10);
			if (f->retry_after > 0) {
				char ra[24];
				snprintf(ra, sizeof(ra), "%ld", f->retry_after);
				reply_header(rep, "Retry-After", ra);
			}
			return 1;
		}
		r -= f->p429;
		if (r < f->p500) {
			reply_error(sim, rep, 500001, "ServerError",
			    "Internal server error (injected fault)");
			return 1;
		}
		r -= f->p500;
		if (r < f->p503) {
			reply_error(sim, rep, 503001, "ServiceUnavailable",
			    "Service unavailable (injected fault)");
			return 1;
		}
	}
	return 0;
}

static json_t *
faults_json(struct sim *sim)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < OP_COUNT; i++) {
		struct sim_fault *f = &sim->faults[i];
		if (!f->set)
			continue;
		json_object_set_new(o, op_names[i], json_pack(
		    "{s:f, s:f, s:f, s:f, s:I, s:I}", "p429", f->p429,
		    "p500", f->p500, "p503", f->p503, "pReset", f->preset,
		    "latencyMs", (json_int_t)f->latency_ms,
		    "retryAfter", (json_int_t)f->retry_after));
	}
	return json_pack("{s:o}", "faults", o);
}

static double
prob(json_t *o, const char *k, int *bad)
{
	json_t *v = json_object_get(o, k);
	double d;

	if (v == NULL)
		return 0;
	if (!json_is_number(v)) {
		*bad = 1;
		return 0;
	}
	d = json_number_value(v);
	if (d < 0 || d > 1)
		*bad = 1;
	return d;
}

static void
ctl_error(struct sim_reply *rep, int status, const char *msg)
{
	reply_json(rep, status, json_pack("{s:s}", "error", msg));
}

static void
faults_set(struct sim *sim, json_t *b, struct sim_reply *rep)
{
	const char *opn = json_string_value(json_object_get(b, "operation"));
	struct sim_fault f;
	json_t *v;
	int op, bad = 0;

	op = op_parse(opn ? opn : "any");
	memset(&f, 0, sizeof(f));
	f.set = 1;
	f.p429 = prob(b, "p429", &bad);
	f.p500 = prob(b, "p500", &bad);
	f.p503 = prob(b, "p503", &bad);
	f.preset = prob(b, "pReset", &bad);
	v = json_object_get(b, "latencyMs");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 600000))
		bad = 1;
	f.latency_ms = v ? (long)json_integer_value(v) : 0;
	v = json_object_get(b, "retryAfter");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 3600))
		bad = 1;
	f.retry_after = v ? (long)json_integer_value(v) : 0;
	if (op < 0 || bad || f.p429 + f.p500 + f.p503 + f.preset > 1.0 + 1e-9) {
		ctl_error(rep, 400, "faults: operation must be one of any, "
		    "registryRead, registryWrite, bulk, statistics, twinRead, "
		    "twinUpdate, method, query; probabilities 0-1 summing to at "
		    "most 1; latencyMs 0-600000; retryAfter 0-3600");
		return;
	}
	pthread_mutex_lock(&sim->lock);
	sim->faults[op] = f;
	reply_json(rep, 200, faults_json(sim));
	pthread_mutex_unlock(&sim->lock);
}

static json_t *
calls_json(struct sim *sim, unsigned long since)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < sim->ncalls; i++) {
		struct sim_call *c = &sim->calls[(sim->calls_head + i) %
		    sim->calls_cap];
		if (c->seq <= since)
			continue;
		json_array_append_new(a, json_pack("{s:I, s:f, s:s, s:s, s:s, s:i, "
		    "s:I, s:s, s:s, s:I}",
		    "seq", (json_int_t)c->seq, "time", c->t, "method", c->method,
		    "path", c->path, "operation", sim_op_name(c->op),
		    "status", c->status, "errorCode", (json_int_t)c->code,
		    "errorName", c->name, "deviceId", c->device,
		    "shapedMs", (json_int_t)c->delay_ms));
	}
	return json_pack("{s:o, s:I}", "calls", a, "last",
	    (json_int_t)sim->call_seq);
}

static json_t *
dev_summary(struct sim_dev *d, int full)
{
	json_t *o = json_pack("{s:s, s:b, s:o}", "deviceId", d->id,
	    "registered", d->registered, "device", dev_side_json(d));

	if (d->registered)
		json_object_set_new(o, "registry", reg_dev_json(d));
	if (full && d->registered)
		json_object_set_new(o, "twin", twin_json(d));
	return o;
}

static int
set_behaviour(struct sim_dev *d, json_t *b)
{
	json_t *v;

	if (d->sd == NULL || !json_is_object(b))
		return -1;
	v = json_object_get(b, "slowMs");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 600000)
			return -1;
		d->sd->slow_ms = (long)json_integer_value(v);
	}
	v = json_object_get(b, "rejectStatus");
	if (v != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 999)
			return -1;
		d->sd->reject_status = (int)json_integer_value(v);
	}
	v = json_object_get(b, "noConfirm");
	if (v != NULL) {
		if (!json_is_boolean(v))
			return -1;
		d->sd->no_confirm = json_is_true(v);
	}
	return 0;
}

static void
set_online(struct sim *sim, json_t *b, struct sim_reply *rep,
    struct sim_dev *only)
{
	json_t *on = json_object_get(b, "online"), *list, *v;
	size_t i, changed = 0, connected = 0;

	list = json_object_get(b, "devices");
	if (!json_is_boolean(on) || (list != NULL && !json_is_array(list))) {
		ctl_error(rep, 400, "body: {\"online\": true|false, "
		    "\"devices\": [ids] (optional)}");
		return;
	}
	pthread_mutex_lock(&sim->lock);
	if (only != NULL) {
		dev_set_online(sim, only, json_is_true(on));
		reply_json(rep, 200, dev_summary(only, 0));
		pthread_mutex_unlock(&sim->lock);
		return;
	}
	if (list != NULL) {
		json_array_foreach(list, i, v) {
			struct sim_dev *d = json_is_string(v) ?
			    reg_find(sim, json_string_value(v)) : NULL;
			if (d == NULL || d->sd == NULL)
				continue;
			dev_set_online(sim, d, json_is_true(on));
			changed++;
			connected += d->sd->connected;
		}
	} else {
		for (i = 0; i < sim->ndevs; i++) {
			struct sim_dev *d = sim->devs[i];
			if (d->sd == NULL)
				continue;
			dev_set_online(sim, d, json_is_true(on));
			changed++;
			connected += d->sd->connected;
		}
	}
	reply_json(rep, 200, json_pack("{s:I, s:I}", "changed", (json_int_t)changed,
	    "connected", (json_int_t)connected));
	pthread_mutex_unlock(&sim->lock);
}

static int
token_ok(struct sim *sim, struct sim_req *req)
{
	const char *a = http_header(req, "Authorization");
	size_t n;

	if (sim->control_token == NULL || a == NULL ||
	    strncmp(a, "Bearer ", 7) != 0)
		return 0;
	a += 7;
	n = strlen(sim->control_token);
	return strlen(a) == n && CRYPTO_memcmp(a, sim->control_token, n) == 0;
}

void
control_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	const char *p = req->path + 5, *m = req->method;
	json_t *b = NULL;
	char id[FC_DEVICE_ID_MAX];

	if (!token_ok(sim, req)) {
		ctl_error(rep, 401, sim->control_token ? "control token required "
		    "(Authorization: Bearer <token>)" :
		    "control interface disabled (no --control-token)");
		return;
	}
	if (req->body_len > 0) {
		b = json_loadb(req->body, req->body_len, 0, NULL);
		if (b == NULL) {
			ctl_error(rep, 400, "body is not JSON");
			return;
		}
	}
	if (strcmp(p, "/health") == 0 && strcmp(m, "GET") == 0) {
		pthread_mutex_lock(&sim->lock);
		reply_json(rep, 200, json_pack("{s:b, s:I}", "ok", 1, "entries",
		    (json_int_t)sim->ndevs));
		pthread_mutex_unlock(&sim->lock);
	} else if (strcmp(p, "/devices") == 0 && strcmp(m, "GET") == 0) {
		json_t *a = json_array();
		size_t i;
		pthread_mutex_lock(&sim->lock);
		for (i = 0; i < sim->ndevs; i++)
			json_array_append_new(a, dev_summary(sim->devs[i], 0));
		pthread_mutex_unlock(&sim->lock);
		reply_json(rep, 200, json_pack("{s:o}", "devices", a));
	} else if (strncmp(p, "/devices/", 9) == 0) {
		const char *seg = p + 9, *slash = strchr(seg, '/');
		size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
		struct sim_dev *d;

		if (http_pct_decode(seg, n, id, sizeof(id)) != 0) {
			ctl_error(rep, 400, "bad device id");
			goto out;
		}
		pthread_mutex_lock(&sim->lock);
		d = reg_find(sim, id);
		if (d == NULL) {
			pthread_mutex_unlock(&sim->lock);
			ctl_error(rep, 404, "no such device");
			goto out;
		}
		if (slash == NULL && strcmp(m, "GET") == 0) {
			reply_json(rep, 200, dev_summary(d, 1));
			pthread_mutex_unlock(&sim->lock);
		} else if (slash != NULL && strcmp(slash, "/online") == 0 &&
		    strcmp(m, "POST") == 0) {
			pthread_mutex_unlock(&sim->lock);
			if (d->sd == NULL) {
				ctl_error(rep, 400, "not a simulated device");
				goto out;
			}
			set_online(sim, b, rep, d);
		} else if (slash != NULL && strcmp(slash, "/behaviour") == 0 &&
		    strcmp(m, "POST") == 0) {
			if (set_behaviour(d, b) != 0) {
				pthread_mutex_unlock(&sim->lock);
				ctl_error(rep, 400, "behaviour: {\"slowMs\": 0-600000, "
				    "\"rejectStatus\": 0-999, \"noConfirm\": bool} "
				    "on a simulated device");
				goto out;
			}
			reply_json(rep, 200, dev_summary(d, 0));
			pthread_mutex_unlock(&sim->lock);
		} else {
			pthread_mutex_unlock(&sim->lock);
			ctl_error(rep, 404, "no such control endpoint");
		}
	} else if (strcmp(p, "/online") == 0 && strcmp(m, "POST") == 0) {
		set_online(sim, b, rep, NULL);
	} else if (strcmp(p, "/faults") == 0) {
		if (strcmp(m, "POST") == 0) {
			if (!json_is_object(b))
				ctl_error(rep, 400, "body must be a JSON object");
			else
				faults_set(sim, b, rep);
		} else {
			pthread_mutex_lock(&sim->lock);
			if (strcmp(m, "DELETE") == 0)
				memset(sim->faults, 0, sizeof(sim->faults));
			reply_json(rep, 200, faults_json(sim));
			pthread_mutex_unlock(&sim->lock);
		}
	} else if (strcmp(p, "/calls") == 0) {
		unsigned long since = 0;
		const char *q = strstr(req->query, "since=");
		if (q != NULL)
			since = strtoul(q + 6, NULL, 10);
		pthread_mutex_lock(&sim->lock);
		if (strcmp(m, "DELETE") == 0) {
			sim->ncalls = 0;
			sim->calls_head = 0;
		}
		reply_json(rep, 200, calls_json(sim, since));
		pthread_mutex_unlock(&sim->lock);
	} else if (strcmp(p, "/quotas") == 0 && strcmp(m, "GET") == 0) {
		pthread_mutex_lock(&sim->lock);
		reply_json(rep, 200, quota_json(sim));
		pthread_mutex_unlock(&sim->lock);
	} else if (strcmp(p, "/quotas/reset") == 0 && strcmp(m, "POST") == 0) {
		pthread_mutex_lock(&sim->lock);
		quota_init(sim);
		reply_json(rep, 200, quota_json(sim));
		pthread_mutex_unlock(&sim->lock);
	} else if (strcmp(p, "/clock") == 0 && strcmp(m, "POST") == 0) {
		json_t *v = json_object_get(b, "offset");
		if (!json_is_integer(v)) {
			ctl_error(rep, 400, "body: {\"offset\": seconds}");
			goto out;
		}
		fc_clock_set_offset((int64_t)json_integer_value(v));
		reply_json(rep, 200, json_pack("{s:I}", "now", (json_int_t)fc_now()));
	} else if (strcmp(p, "/save") == 0 && strcmp(m, "POST") == 0) {
		enum fc_err e = FC_EINVAL;
		pthread_mutex_lock(&sim->lock);
		if (sim->state_file != NULL)
			e = state_save(sim, sim->state_file);
		pthread_mutex_unlock(&sim->lock);
		if (e == FC_OK)
			reply_json(rep, 200, json_pack("{s:b}", "saved", 1));
		else
			ctl_error(rep, 500, "no --state-file, or saving failed");
	} else {
		ctl_error(rep, 404, "no such control endpoint");
	}
out:
	json_decref(b);
}
