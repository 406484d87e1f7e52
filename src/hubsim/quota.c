/*
 * quota.c — per-tier IoT Hub quotas (azure-iothub.md "Quotas"), one token
 * bucket per operation class. A burst up to the quota of one window passes;
 * beyond it requests are shaped (delayed until their token is due) while
 * the backlog stays under a tenth of the quota, then refused with 429 /
 * 429001 and a Retry-After. --time-scale F makes a window last 1/F of its
 * nominal length so tests can exhaust and refill quotas quickly.
 * Called with sim->lock held.
 */
#include "fc_build.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hubsim.h"

static void
setb(struct sim *sim, enum sim_op op, double quota, double window_s,
    const char *window)
{
	struct sim_bucket *b = &sim->buckets[op];

	b->quota = quota;
	b->window = window;
	b->burst = quota;
	b->rate = quota / window_s * sim->time_scale;
	b->backlog = quota / 10 < 1 ? 1 : quota / 10;
	b->tokens = b->burst;
	b->last = sim_clock();
}

void
quota_init(struct sim *sim)
{
	double u = sim->units > 0 ? sim->units : 1;
	int s2 = strcmp(sim->tier, "S2") == 0, s3 = strcmp(sim->tier, "S3") == 0;

	memset(sim->buckets, 0, sizeof(sim->buckets));
	/* Registry create/update/delete: 100/min (S1, S2), 5,000/min (S3). */
	setb(sim, OP_REGISTRY_WRITE, (s3 ? 5000 : 100) * u, 60, "minute");
	/* Twin reads: 100/s, S2 max(100/s, 10/s/unit), S3 500/s. */
	setb(sim, OP_TWIN_READ, s3 ? 500 * u : s2 ? fmax(100, 10 * u) : 100 * u,
	    1, "second");
	/* Twin updates: 50/s, S2 max(50/s, 5/s/unit), S3 250/s. */
	setb(sim, OP_TWIN_UPDATE, s3 ? 250 * u : s2 ? fmax(50, 5 * u) : 50 * u,
	    1, "second");
	/* Direct methods in 4 KB units: 160 KB/s, 480 KB/s, 24 MB/s. */
	setb(sim, OP_METHOD, (s3 ? 24 * 1024 / 4 : s2 ? 480 / 4 : 160 / 4) * u,
	    1, "second");
	/* Queries: 20/min (S1, S2), 1,000/min (S3). */
	setb(sim, OP_QUERY, (s3 ? 1000 : 20) * u, 60, "minute");
}

static struct sim_bucket *
bucket_of(struct sim *sim, enum sim_op op)
{
	/* A bulk call counts as one registry operation. */
	if (op == OP_BULK)
		op = OP_REGISTRY_WRITE;
	if (sim->buckets[op].rate <= 0)
		return NULL;
	return &sim->buckets[op];
}

int
quota_take(struct sim *sim, enum sim_op op, double cost, long *delay_ms,
    long *retry_after)
{
	struct sim_bucket *b;
	double now = sim_clock();

	*delay_ms = 0;
	if (!sim->quotas_on || (b = bucket_of(sim, op)) == NULL)
		return 0;
	b->tokens += (now - b->last) * b->rate;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->last = now;
	if (b->tokens >= cost) {
		b->tokens -= cost;
		b->admitted++;
		b->used += cost;
		return 0;
	}
	if (b->tokens - cost >= -b->backlog) {
		/* Shaped: wait until this request's tokens are due. */
		*delay_ms = (long)ceil((cost - b->tokens) / b->rate * 1000);
		b->tokens -= cost;
		b->admitted++;
		b->shaped++;
		b->used += cost;
		return 0;
	}
	b->throttled++;
	*retry_after = (long)ceil((cost - b->tokens) / b->rate);
	if (*retry_after < 1)
		*retry_after = 1;
	return -1;
}

json_t *
quota_json(struct sim *sim)
{
	static const enum sim_op ops[] = { OP_REGISTRY_WRITE, OP_TWIN_READ,
	    OP_TWIN_UPDATE, OP_METHOD, OP_QUERY };
	json_t *o = json_object();
	size_t i;
	double now = sim_clock();

	for (i = 0; i < FC_ARRAY_LEN(ops); i++) {
		struct sim_bucket *b = &sim->buckets[ops[i]];
		double t = b->tokens + (now - b->last) * b->rate;
		if (t > b->burst)
			t = b->burst;
		json_object_set_new(o, sim_op_name(ops[i]), json_pack(
		    "{s:f, s:s, s:f, s:f, s:I, s:I, s:I, s:f}",
		    "quota", b->quota, "per", b->window ? b->window : "",
		    "windowSeconds", b->rate > 0 ? b->quota / b->rate : 0.0,
		    "available", t,
		    "admitted", (json_int_t)b->admitted,
		    "shaped", (json_int_t)b->shaped,
		    "throttled", (json_int_t)b->throttled,
		    "used", b->used));
	}
	return json_pack("{s:b, s:s, s:i, s:f, s:o}", "enabled", sim->quotas_on,
	    "tier", sim->tier, "units", sim->units, "timeScale", sim->time_scale,
	    "operations", o);
}
