/*
 * hub.c — a hub's life: opening it from its [hub] section (connection
 * string read with cfg_secret_read, options), closing it, the blocking
 * wrappers around the engine (hub_call, hub_run) and the metrics snapshot.
 * Runs on the thread that drives the hub; hub_metrics_read on any thread.
 * Holds the key only through struct hub_conn (wiped on close).
 */
#include "fc_build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/rand.h>

#include "config.h"
#include "hub_int.h"
#include "log.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t
hub_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
hub_opts_default(struct hub_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_attempts = 5;
	o->retry_budget_ms = 60000;
	o->backoff_base_ms = 500;
	o->backoff_max_ms = 30000;
	o->connect_timeout_ms = 10000;
	o->request_timeout_ms = 30000;
	o->max_in_flight = 32;
	o->max_body = 16u << 20;
}

const char *
hub_host(const struct hub *h)
{
	return h->conn.host;
}

size_t
hub_pending(const struct hub *h)
{
	return h->pending;
}

static void
opts_fix(struct hub_opts *o)
{
	struct hub_opts d;

	hub_opts_default(&d);
	if (o->max_attempts < 1)
		o->max_attempts = d.max_attempts;
	if (o->retry_budget_ms < 0)
		o->retry_budget_ms = d.retry_budget_ms;
	if (o->backoff_base_ms < 1)
		o->backoff_base_ms = d.backoff_base_ms;
	if (o->backoff_max_ms < o->backoff_base_ms)
		o->backoff_max_ms = o->backoff_base_ms;
	if (o->connect_timeout_ms < 1)
		o->connect_timeout_ms = d.connect_timeout_ms;
	if (o->request_timeout_ms < 1)
		o->request_timeout_ms = d.request_timeout_ms;
	if (o->max_in_flight < 1)
		o->max_in_flight = d.max_in_flight;
	if (o->max_body < 1024)
		o->max_body = d.max_body;
	if (o->burst_calls < 1)
		o->burst_calls = o->rate_per_second / 10 > 1 ?
		    o->rate_per_second / 10 : 1;
	if (o->burst_registry < 1)
		o->burst_registry = o->registry_per_minute / 60 > 1 ?
		    o->registry_per_minute / 60 : 1;
}

/* ---- token buckets shared per hub host --------------------------------- */

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hub_shared *shared_head;

/* (Re)makes s's buckets from o unless they were made with the same
 * settings; tokens already spent stay spent. shared_mu held. */
static void
shared_set(struct hub_shared *s, const struct hub_opts *o, int64_t now)
{
	double want[4] = { o->rate_per_second, o->burst_calls,
	    o->registry_per_minute / 60.0, o->burst_registry };
	double tc, tr;
	int fresh = s->refs == 0;

	if (!fresh && memcmp(want, s->set, sizeof(want)) == 0)
		return;
	pthread_mutex_lock(&s->mu);
	tc = s->calls.tokens;
	tr = s->registry.tokens;
	hub_bucket_init(&s->calls, want[0], want[1], now);
	hub_bucket_init(&s->registry, want[2], want[3], now);
	if (!fresh) {
		if (tc < s->calls.tokens)
			s->calls.tokens = tc;
		if (tr < s->registry.tokens)
			s->registry.tokens = tr;
	}
	pthread_mutex_unlock(&s->mu);
	memcpy(s->set, want, sizeof(want));
}

static struct hub_shared *
shared_get(const char *host, const struct hub_opts *o, int64_t now)
{
	struct hub_shared *s;

	pthread_mutex_lock(&shared_mu);
	for (s = shared_head; s != NULL; s = s->next)
		if (strcasecmp(s->host, host) == 0)	/* DNS names */
			break;
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			pthread_mutex_unlock(&shared_mu);
			return NULL;
		}
		snprintf(s->host, sizeof(s->host), "%s", host);
		pthread_mutex_init(&s->mu, NULL);
		s->next = shared_head;
		shared_head = s;
	}
	shared_set(s, o, now);
	s->refs++;
	pthread_mutex_unlock(&shared_mu);
	return s;
}

static void
shared_put(struct hub_shared *s)
{
	struct hub_shared **pp;

	if (s == NULL)
		return;
	pthread_mutex_lock(&shared_mu);
	if (--s->refs == 0) {
		for (pp = &shared_head; *pp != NULL; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		pthread_mutex_destroy(&s->mu);
		free(s);
	}
	pthread_mutex_unlock(&shared_mu);
}

enum hub_tokens
hub_tokens_take(struct hub *h, int registry, int64_t now, int64_t *wait_ms)
{
	struct hub_shared *s = h->shared;
	enum hub_tokens missing = HUB_TOKENS_TAKEN;
	int64_t w;

	pthread_mutex_lock(&s->mu);
	w = hub_bucket_wait(&s->calls, now);
	if (w > 0)
		missing = HUB_TOKENS_CALLS;
	else if (registry && (w = hub_bucket_wait(&s->registry, now)) > 0)
		missing = HUB_TOKENS_REGISTRY;
	else {
		if (registry)
			hub_bucket_take(&s->registry, now);
		hub_bucket_take(&s->calls, now);
	}
	pthread_mutex_unlock(&s->mu);
	*wait_ms = w;
	return missing;
}

enum fc_err
hub_open_string(const char *name, const char *conn,
    const struct hub_opts *opts, struct hub **out)
{
	struct hub *h = NULL;
	char err[256];
	enum fc_err result = FC_ENOMEM;
	int64_t now = hub_mono_ms();

	pthread_once(&curl_once, curl_init_once);
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto out;
	pthread_mutex_init(&h->mlock, NULL);
	if (opts != NULL)
		h->opts = *opts;
	else
		hub_opts_default(&h->opts);
	opts_fix(&h->opts);
	h->name = strdup(name != NULL && name[0] != '\0' ? name : "default");
	if (h->name == NULL)
		goto out;
	result = hub_conn_parse(conn, &h->conn, err, sizeof(err));
	if (result != FC_OK) {
		log_error("hub %s: %s", h->name, err);
		goto out;
	}
	result = FC_ENOMEM;
	if (h->opts.ca_file != NULL && h->opts.ca_file[0] != '\0') {
		if (access(h->opts.ca_file, R_OK) != 0) {
			log_error("hub %s: ca_file %s is not readable",
			    h->name, h->opts.ca_file);
			result = FC_EIO;
			goto out;
		}
		h->ca_file = strdup(h->opts.ca_file);
		if (h->ca_file == NULL)
			goto out;
	}
	h->opts.ca_file = h->ca_file;
	h->pool = calloc((size_t)h->opts.max_in_flight, sizeof(*h->pool));
	h->multi = curl_multi_init();
	if (h->pool == NULL || h->multi == NULL)
		goto out;
	/* Bound connections to what we run at once; keep them all cached so
	 * that every call after the first reuses a warm TLS connection. */
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)h->opts.max_in_flight);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	    (long)h->opts.max_in_flight);
	h->shared = shared_get(h->conn.host, &h->opts, now);
	if (h->shared == NULL)
		goto out;
	if (RAND_bytes((unsigned char *)&h->rng, sizeof(h->rng)) != 1)
		h->rng = (uint64_t)now ^ (uint64_t)getpid();
	h->rng |= 1;
	*out = h;
	h = NULL;
	result = FC_OK;
out:
	hub_close(h);
	return result;
}

enum fc_err
hub_open(const struct cfg_hub *ch, struct hub **out)
{
	struct hub_opts o;
	char err[512], *conn = NULL;
	size_t len = 0;
	const char *name = ch->name != NULL && ch->name[0] != '\0' ?
	    ch->name : "default";
	enum fc_err result;

	result = cfg_secret_read(ch->connection_string_file, &conn, &len, err,
	    sizeof(err));
	if (result != FC_OK) {
		log_error("hub %s: connection_string_file: %s", name, err);
		return result;
	}
	hub_opts_default(&o);
	o.rate_per_second = ch->rate_per_second;
	o.registry_per_minute = ch->registry_per_minute;
	o.ca_file = ch->ca_file;
	result = hub_open_string(name, conn, &o, out);
	fc_secret_free(conn, len + 1);
	return result;
}

struct sync {
	struct hub_result *res;
};

static void
sync_done(struct hub_result *res, void *arg)
{
	((struct sync *)arg)->res = res;
}

enum fc_err
hub_call(struct hub *h, struct hub_req *req, struct hub_result **out)
{
	struct sync s = { NULL };
	enum fc_err result;
	int t;

	result = hub_submit(h, req, sync_done, &s);
	if (result != FC_OK)
		return result;
	for (;;) {
		hub_perform(h, &t);
		if (s.res != NULL)
			break;
		hub_poll(h, t);
	}
	*out = s.res;
	return FC_OK;
}

void
hub_run(struct hub *h)
{
	int t;

	while (hub_perform(h, &t) > 0)
		hub_poll(h, t);
}

void
hub_close(struct hub *h)
{
	if (h == NULL)
		return;
	hub_engine_cancel_all(h);
	for (size_t i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	free(h->pool);
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi);
	if (h->token != NULL)
		fc_secret_free(h->token, strlen(h->token));
	shared_put(h->shared);
	hub_conn_clear(&h->conn);
	pthread_mutex_destroy(&h->mlock);
	free(h->ca_file);
	free(h->name);
	free(h);
}

void
hub_metrics_read(struct hub *h, struct hub_metrics *out)
{
	pthread_mutex_lock(&h->mlock);
	*out = h->metrics;
	pthread_mutex_unlock(&h->mlock);
}
