/*
 * revoke_service.c — the daemon's revocation worker (revoke_service.h).
 * One thread owns its database connection and its hub clients; API threads
 * hand it work through a mutex-protected queue and wait on a condition
 * variable. Sweeps are serialised here: a sweep request is answered by a
 * sweep that started after it, so two sweeps never do the same work.
 */
#include "fc_build.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "reconcile.h"
#include "revoke.h"
#include "revoke_service.h"
#include "sweep.h"

struct item {
	char		 device_id[FC_DEVICE_ID_MAX];
	enum fc_err	 result;
	char		 why[256];
	int		 done, taken, abandoned;
	struct item	*next;
};

static struct {
	pthread_mutex_t	 mx;
	pthread_cond_t	 cv;
	pthread_t	 thread;
	int		 running, stop, kick;
	volatile int	 vstop;
	struct item	*head, *tail;
	uint64_t	 sweep_wanted, sweep_done;
	json_t		*summary;
	struct revoke_ctx ctx;
	const struct cfg *cfg;
} ws = { .mx = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void
deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Works the single-device queue; called with ws.mx held, returns with it
 * held (drops it around the hub calls). */
static void
drain_locked(void)
{
	struct item *it;

	while ((it = ws.head) != NULL) {
		ws.head = it->next;
		if (ws.head == NULL)
			ws.tail = NULL;
		it->taken = 1;
		pthread_mutex_unlock(&ws.mx);
		it->result = revoke_propagate_one(&ws.ctx, it->device_id,
		    it->why, sizeof(it->why));
		pthread_mutex_lock(&ws.mx);
		it->done = 1;
		if (it->abandoned)
			free(it);
		pthread_cond_broadcast(&ws.cv);
	}
}

static void
between(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ws.mx);
	drain_locked();
	pthread_mutex_unlock(&ws.mx);
}

static void
publish_drift(const struct reconcile_stats *st)
{
	static struct metric *g;

	if (g == NULL)
		g = metrics_gauge("fleetcert_drift_devices",
		    "Differences between the inventory and the hub found by "
		    "the last reconciliation", "kind");
	metrics_set(g, (double)st->revoked_enabled, "revoked-enabled");
	metrics_set(g, (double)st->unknown, "unknown");
	metrics_set(g, (double)st->thumbprint, "thumbprint-mismatch");
	metrics_set(g, (double)st->expiring, "expiring-before-contact");
}

static void *
worker(void *arg)
{
	struct revoke_prop_stats ps;
	struct reconcile_stats rs;
	struct sweep_summary sum;
	struct timespec ts;
	time_t last_retry = time(NULL), last_rec = time(NULL);
	char line[512];

	(void)arg;
	pthread_mutex_lock(&ws.mx);
	while (!ws.stop) {
		time_t now = time(NULL);
		if (ws.head != NULL) {
			drain_locked();
			continue;
		}
		if (ws.sweep_wanted > ws.sweep_done) {
			uint64_t gen = ws.sweep_wanted;
			pthread_mutex_unlock(&ws.mx);
			(void)sweep_run(&ws.ctx, &sum);
			sweep_summary_line(&sum, line, sizeof(line));
			log_info("%s", line);
			pthread_mutex_lock(&ws.mx);
			json_decref(ws.summary);
			ws.summary = sweep_summary_json(&sum);
			ws.sweep_done = gen;
			pthread_cond_broadcast(&ws.cv);
			continue;
		}
		if (ws.kick || now - last_retry >= REVOKE_RETRY_S) {
			ws.kick = 0;
			last_retry = now;
			pthread_mutex_unlock(&ws.mx);
			if (revoke_propagate(&ws.ctx, &ps) == FC_OK) {
				(void)inv_rev_request_finish(ws.ctx.db,
				    fc_now());
				health_set("revocation", ps.hub_errors == 0,
				    ps.hub_errors ? ps.last_error : NULL);
			}
			pthread_mutex_lock(&ws.mx);
			continue;
		}
		if (now - last_rec >= REVOKE_RECONCILE_S) {
			last_rec = now;
			pthread_mutex_unlock(&ws.mx);
			if (reconcile_run(&ws.ctx, &rs) == FC_OK)
				publish_drift(&rs);
			pthread_mutex_lock(&ws.mx);
			continue;
		}
		deadline(&ts, 1000);
		(void)pthread_cond_timedwait(&ws.cv, &ws.mx, &ts);
	}
	pthread_mutex_unlock(&ws.mx);
	return NULL;
}

enum fc_err
revoke_service_start(const struct cfg *cfg)
{
	enum fc_err result;

	memset(&ws.ctx, 0, sizeof(ws.ctx));
	ws.cfg = cfg;
	ws.stop = ws.kick = 0;
	ws.vstop = 0;
	result = db_open(cfg->db_path, 0, &ws.ctx.db);
	if (result != FC_OK)
		return result;
	(void)revoke_ctx_open_hubs(&ws.ctx, cfg);
	ws.ctx.actor = "daemon";
	ws.ctx.between = between;
	ws.ctx.stop = &ws.vstop;
	if (pthread_create(&ws.thread, NULL, worker, NULL) != 0) {
		revoke_ctx_close_hubs(&ws.ctx);
		db_close(ws.ctx.db);
		ws.ctx.db = NULL;
		return FC_ENOMEM;
	}
	pthread_mutex_lock(&ws.mx);
	ws.running = 1;
	ws.kick = 1;
	pthread_mutex_unlock(&ws.mx);
	health_set("revocation", 1, NULL);
	return FC_OK;
}

void
revoke_service_stop(void)
{
	struct item *it;

	pthread_mutex_lock(&ws.mx);
	if (!ws.running) {
		pthread_mutex_unlock(&ws.mx);
		return;
	}
	ws.stop = 1;
	ws.vstop = 1;
	pthread_cond_broadcast(&ws.cv);
	pthread_mutex_unlock(&ws.mx);
	pthread_join(ws.thread, NULL);
	pthread_mutex_lock(&ws.mx);
	ws.running = 0;
	/* Waiters still queued get "pending". */
	while ((it = ws.head) != NULL) {
		ws.head = it->next;
		it->result = FC_EREMOTE;
		snprintf(it->why, sizeof(it->why), "the daemon is stopping");
		it->done = 1;
		if (it->abandoned)
			free(it);
	}
	ws.tail = NULL;
	ws.sweep_done = ws.sweep_wanted;
	pthread_cond_broadcast(&ws.cv);
	json_decref(ws.summary);
	ws.summary = NULL;
	pthread_mutex_unlock(&ws.mx);
	revoke_ctx_close_hubs(&ws.ctx);
	db_close(ws.ctx.db);
	ws.ctx.db = NULL;
}

enum fc_err
revoke_service_propagate(const char *device_id, int timeout_ms, char *why,
    size_t whylen)
{
	struct item *it = calloc(1, sizeof(*it));
	struct timespec ts;
	enum fc_err result;

	if (it == NULL)
		return FC_ENOMEM;
	snprintf(it->device_id, sizeof(it->device_id), "%s", device_id);
	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&ws.mx);
	if (!ws.running) {
		pthread_mutex_unlock(&ws.mx);
		free(it);
		snprintf(why, whylen, "no revocation worker");
		return FC_EINVAL;
	}
	if (ws.tail != NULL)
		ws.tail->next = it;
	else
		ws.head = it;
	ws.tail = it;
	pthread_cond_broadcast(&ws.cv);
	while (!it->done)
		if (pthread_cond_timedwait(&ws.cv, &ws.mx, &ts) == ETIMEDOUT)
			break;
	if (!it->done) {
		snprintf(why, whylen, "the hub has not answered within %d ms; "
		    "the daemon keeps trying", timeout_ms);
		if (!it->taken) {
			/* Still queued: unlink it; the retry job takes the
			 * row from the database. */
			struct item **pp = &ws.head, *prev = NULL;
			while (*pp != NULL && *pp != it) {
				prev = *pp;
				pp = &(*pp)->next;
			}
			if (*pp == it) {
				*pp = it->next;
				if (ws.tail == it)
					ws.tail = prev;
			}
			free(it);
		} else {
			it->abandoned = 1;
		}
		pthread_mutex_unlock(&ws.mx);
		return FC_EBUSY;
	}
	result = it->result;
	if (result != FC_OK)
		snprintf(why, whylen, "%s", it->why[0] ? it->why :
		    fc_strerror(result));
	pthread_mutex_unlock(&ws.mx);
	free(it);
	if (result == FC_ENOTFOUND)
		return FC_OK;
	return result == FC_OK ? FC_OK : FC_EBUSY;
}

enum fc_err
revoke_service_sweep(int timeout_ms, json_t **out)
{
	struct timespec ts;
	uint64_t gen;

	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&ws.mx);
	if (!ws.running) {
		pthread_mutex_unlock(&ws.mx);
		return FC_EINVAL;
	}
	gen = ++ws.sweep_wanted;
	pthread_cond_broadcast(&ws.cv);
	while (ws.sweep_done < gen)
		if (pthread_cond_timedwait(&ws.cv, &ws.mx, &ts) == ETIMEDOUT)
			break;
	if (ws.sweep_done < gen || ws.summary == NULL) {
		pthread_mutex_unlock(&ws.mx);
		return FC_EBUSY;
	}
	*out = json_deep_copy(ws.summary);
	pthread_mutex_unlock(&ws.mx);
	return *out != NULL ? FC_OK : FC_ENOMEM;
}

void
revoke_service_kick(void)
{
	pthread_mutex_lock(&ws.mx);
	ws.kick = 1;
	pthread_cond_broadcast(&ws.cv);
	pthread_mutex_unlock(&ws.mx);
}
