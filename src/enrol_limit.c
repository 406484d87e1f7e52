/*
 * enrol_limit.c — rate limits of the enrolment endpoint: fixed-window
 * counters per SE serial (per hour) and per client address (per minute),
 * and the count of failures per serial that makes an anomaly. In memory,
 * bounded; shared by the listener threads under one mutex.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "enrol_int.h"

#define PROBES	8

struct slot {
	unsigned char	 key[LIMIT_KEY_MAX];
	uint8_t		 keylen;		/* 0: empty */
	int64_t		 window_start;
	int		 hits;
	int		 failures;
};

struct enrol_limit {
	pthread_mutex_t	 mu;
	struct slot	*slots;
	size_t		 mask;
	int		 limit;
	int		 window;
	uint64_t	 seed;
};

enum fc_err
enrol_limit_new(size_t slots, int limit, int window_seconds,
    struct enrol_limit **out)
{
	struct enrol_limit *l;

	if (slots == 0 || (slots & (slots - 1)) != 0 || limit < 1 ||
	    window_seconds < 1)
		return FC_EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return FC_ENOMEM;
	l->slots = calloc(slots, sizeof(*l->slots));
	if (l->slots == NULL) {
		free(l);
		return FC_ENOMEM;
	}
	pthread_mutex_init(&l->mu, NULL);
	l->mask = slots - 1;
	l->limit = limit;
	l->window = window_seconds;
	/* A per-process seed, so clients cannot aim keys at one bucket. */
	l->seed = (uint64_t)(uintptr_t)l ^ (uint64_t)fc_now() * 0x9e3779b97f4a7c15ULL;
	*out = l;
	return FC_OK;
}

void
enrol_limit_free(struct enrol_limit *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->slots);
	free(l);
}

/* FNV-1a, seeded. */
static uint64_t
hash(const struct enrol_limit *l, const unsigned char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ l->seed;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= k[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/*
 * The slot for key, created (or its expired window restarted) if need be.
 * Called with the mutex held. Never NULL: the oldest probed slot is evicted
 * when all are live.
 */
static struct slot *
find(struct enrol_limit *l, const void *key, size_t keylen, int64_t now)
{
	size_t base, i, idx;
	struct slot *s, *victim = NULL;

	if (keylen > LIMIT_KEY_MAX)
		keylen = LIMIT_KEY_MAX;
	base = (size_t)hash(l, key, keylen);
	for (i = 0; i < PROBES; i++) {
		idx = (base + i) & l->mask;
		s = &l->slots[idx];
		if (s->keylen == keylen && memcmp(s->key, key, keylen) == 0) {
			if (now - s->window_start >= l->window) {
				s->window_start = now;
				s->hits = 0;
				s->failures = 0;
			}
			return s;
		}
		if (victim == NULL || s->keylen == 0 ||
		    (victim->keylen != 0 &&
		    s->window_start < victim->window_start))
			victim = s;
	}
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->key, key, keylen);
	victim->keylen = (uint8_t)keylen;
	victim->window_start = now;
	return victim;
}

int
enrol_limit_hit(struct enrol_limit *l, const void *key, size_t keylen,
    int64_t now, int *retry_after)
{
	struct slot *s;
	int ok;

	pthread_mutex_lock(&l->mu);
	s = find(l, key, keylen, now);
	ok = s->hits < l->limit;
	if (ok)
		s->hits++;
	else {
		int64_t left = s->window_start + l->window - now;
		*retry_after = left < 1 ? 1 : (int)left;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void
enrol_limit_set(struct enrol_limit *l, int limit)
{
	pthread_mutex_lock(&l->mu);
	l->limit = limit;
	pthread_mutex_unlock(&l->mu);
}

int
enrol_limit_fail(struct enrol_limit *l, const void *key, size_t keylen,
    int64_t now)
{
	struct slot *s;
	int n;

	pthread_mutex_lock(&l->mu);
	s = find(l, key, keylen, now);
	n = ++s->failures;
	pthread_mutex_unlock(&l->mu);
	return n;
}

int
enrol_limit_failures(struct enrol_limit *l, const void *key, size_t keylen,
    int64_t now)
{
	struct slot *s;
	int n;

	pthread_mutex_lock(&l->mu);
	s = find(l, key, keylen, now);
	n = s->failures;
	pthread_mutex_unlock(&l->mu);
	return n;
}
