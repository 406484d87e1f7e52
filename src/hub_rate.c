/*
 * hub_rate.c — the hub client's pacing arithmetic and counters: back-off
 * with full jitter, token buckets, metrics recording and label names. Pure
 * functions on caller-owned state; the caller serialises access.
 */
#include "fc_build.h"

#include <string.h>

#include "hub_int.h"

/*
 * Full jitter (the "exponential back-off and jitter" recommended for IoT
 * Hub): sleep = random_between(0, min(cap, base * 2^attempt)), so that many
 * clients throttled together do not come back together. A Retry-After from
 * the hub is a floor, not replaced by a smaller random value.
 */
int
hub_backoff_ms(unsigned attempt, int base_ms, int cap_ms, long retry_after_ms,
    uint32_t rnd)
{
	int64_t ceiling = base_ms > 0 ? base_ms : 1;
	int64_t d;

	if (cap_ms < 1)
		cap_ms = 1;
	for (unsigned i = 1; i < attempt && ceiling < cap_ms; i++)
		ceiling *= 2;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	d = (int64_t)((double)rnd / 4294967296.0 * (double)(ceiling + 1));
	if (d > ceiling)
		d = ceiling;
	if (retry_after_ms >= 0 && d < retry_after_ms)
		d = retry_after_ms;
	if (d > INT32_MAX)
		d = INT32_MAX;
	return (int)d;
}

void
hub_bucket_init(struct hub_bucket *b, double per_second, double burst,
    int64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	if (per_second <= 0)
		return;
	b->rate_per_ms = per_second / 1000.0;
	b->burst = burst >= 1 ? burst : 1;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

static void
refill(struct hub_bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_ms;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
}

int64_t
hub_bucket_wait(struct hub_bucket *b, int64_t now_ms)
{
	double missing;
	int64_t ms;

	if (b->rate_per_ms <= 0)
		return 0;
	refill(b, now_ms);
	if (b->tokens >= 1.0)
		return 0;
	missing = 1.0 - b->tokens;
	ms = (int64_t)(missing / b->rate_per_ms);
	if ((double)ms * b->rate_per_ms < missing)
		ms++;
	return ms > 0 ? ms : 1;
}

void
hub_bucket_take(struct hub_bucket *b, int64_t now_ms)
{
	if (b->rate_per_ms <= 0)
		return;
	refill(b, now_ms);
	b->tokens -= 1.0;
}

void
hub_metrics_attempt(struct hub_metrics *m, enum hub_op op, long status,
    int64_t ms)
{
	static const int statuses[HUB_NSTATUS] = HUB_STATUSES;
	static const int bounds[HUB_NLATENCY] = HUB_LATENCY_MS;
	size_t i;

	if ((unsigned)op >= HUB_OP_COUNT)
		return;
	for (i = 0; i < HUB_NSTATUS - 1; i++)
		if (statuses[i] == status)
			break;
	m->attempts[op][i]++;
	if (ms < 0)
		ms = 0;
	for (i = 0; i < HUB_NLATENCY - 1; i++)
		if (ms <= bounds[i])
			break;
	m->latency[op][i]++;
	m->latency_sum_ms[op] += (uint64_t)ms;
}

const char *
hub_op_name(enum hub_op op)
{
	static const char *names[HUB_OP_COUNT] = {
		"device_get", "device_create", "device_update",
		"device_delete", "bulk", "twin_get", "twin_patch", "method",
		"query",
	};

	return (unsigned)op < HUB_OP_COUNT ? names[op] : "unknown";
}

const char *
hub_outcome_name(enum hub_outcome o)
{
	static const char *names[HUB_OUTCOME_COUNT] = {
		"done", "retry", "rejected", "unreachable", "misconfigured",
	};

	return (unsigned)o < HUB_OUTCOME_COUNT ? names[o] : "unknown";
}
