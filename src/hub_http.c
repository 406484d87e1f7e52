/*
 * hub_http.c — the hub client's engine: libcurl's multi interface driven by
 * one thread (the daemon's scheduler, or hub_call for blocking callers).
 * Queues calls behind two token buckets, runs many transfers at once over
 * reused HTTP/1.1 keep-alive connections with TLS verification always on,
 * retries transient failures with back-off, keeps the SAS token fresh and
 * counts everything. Holds the hub's key and token: neither is ever logged,
 * and both are wiped when freed.
 */
#include "fc_build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hub_int.h"
#include "log.h"

#define HDR_VALUE_MAX	4096
#define RETRY_AFTER_MAX	(3600 * 1000L)

/* The system trust directory, kept beside an extra ca_file. */
static const char *
system_capath(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	if (v != NULL && v->age >= CURLVERSION_EIGHTH && v->capath != NULL)
		return v->capath;
	return "/etc/ssl/certs";
}

static uint32_t
rnd32(struct hub *h)
{
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return (uint32_t)((h->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static void
hdrs_free(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p != NULL; p = p->next)
		OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static void
call_free(struct call *c)
{
	if (c == NULL)
		return;
	hdrs_free(c->hdrs);
	hub_req_free(c->req);
	hub_result_free(c->res);
	free(c->url);
	free(c->body);
	free(c->continuation);
	free(c);
}

/* Hands the result to the caller, counts it and frees the call. */
static void
complete(struct hub *h, struct call *c)
{
	struct hub_result *res = c->res;
	const struct hub_error *e = &res->error;

	pthread_mutex_lock(&h->mlock);
	h->metrics.calls[c->req->op][res->outcome]++;
	pthread_mutex_unlock(&h->mlock);
	if (res->outcome == HUB_REJECTED)
		log_info("hub %s: %s%s%s: %s after %u attempt(s): HTTP %ld "
		    "%s %d: %s", h->name, hub_op_name(c->req->op),
		    c->req->device_id[0] != '\0' ? " device " : "",
		    c->req->device_id, hub_outcome_name(res->outcome),
		    res->attempts, res->http_status,
		    e->name[0] != '\0' ? e->name : "-", e->code,
		    e->message[0] != '\0' ? e->message : "-");
	else if (res->outcome != HUB_DONE)
		log_warn("hub %s: %s%s%s: %s after %u attempt(s): HTTP %ld "
		    "%s %d: %s", h->name, hub_op_name(c->req->op),
		    c->req->device_id[0] != '\0' ? " device " : "",
		    c->req->device_id, hub_outcome_name(res->outcome),
		    res->attempts, res->http_status,
		    e->name[0] != '\0' ? e->name : "-", e->code,
		    e->message[0] != '\0' ? e->message : "-");
	h->pending--;
	c->res = NULL;
	res->user = c->req->user;
	c->cb(res, c->arg);
	call_free(c);
}

enum fc_err
hub_submit(struct hub *h, struct hub_req *req, hub_done_fn *cb, void *arg)
{
	struct call *c = NULL;

	if (req == NULL || cb == NULL) {
		hub_req_free(req);
		return FC_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->res = calloc(1, sizeof(*c->res))) == NULL) {
		free(c);
		hub_req_free(req);
		return FC_ENOMEM;
	}
	c->hub = h;
	c->req = req;
	c->cb = cb;
	c->arg = arg;
	c->res->op = req->op;
	snprintf(c->res->device_id, sizeof(c->res->device_id), "%s",
	    req->device_id);
	c->first_ms = hub_mono_ms();
	c->state = CALL_READY;
	if (h->ready_tail != NULL)
		h->ready_tail->next = c;
	else
		h->ready = c;
	h->ready_tail = c;
	h->pending++;
	return FC_OK;
}

/* A token signed for HUB_SAS_LIFETIME, re-signed HUB_SAS_RESIGN before it
 * expires (and at once if the clock moved back past its start). */
static enum fc_err
token_fresh(struct hub *h)
{
	int64_t now = (int64_t)fc_now();
	char *tok = NULL;
	enum fc_err result;

	if (h->token != NULL && now < h->token_expiry - HUB_SAS_RESIGN &&
	    now > h->token_expiry - HUB_SAS_LIFETIME - HUB_SAS_RESIGN)
		return FC_OK;
	result = hub_sas_token(h->conn.host, h->conn.policy, h->conn.key,
	    h->conn.keylen, now + HUB_SAS_LIFETIME, &tok);
	if (result != FC_OK) {
		log_error("hub %s: cannot sign a SAS token (%s)", h->name,
		    fc_strerror(result));
		return result;
	}
	if (h->token != NULL)
		fc_secret_free(h->token, strlen(h->token));
	h->token = tok;
	h->token_expiry = now + HUB_SAS_LIFETIME;
	pthread_mutex_lock(&h->mlock);
	h->metrics.sas_signed++;
	pthread_mutex_unlock(&h->mlock);
	return FC_OK;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	struct hub *h = c->hub;
	size_t add = size * n, ncap;
	char *nb;

	if (add > h->opts.max_body || c->len + add > h->opts.max_body) {
		c->truncated = 1;
		return 0;
	}
	if (c->len + add + 1 > c->cap) {
		ncap = c->cap ? c->cap : 4096;
		while (ncap < c->len + add + 1)
			ncap *= 2;
		nb = realloc(c->body, ncap);
		if (nb == NULL)
			return 0;
		c->body = nb;
		c->cap = ncap;
	}
	memcpy(c->body + c->len, p, add);
	c->len += add;
	c->body[c->len] = '\0';
	return add;
}

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static long
retry_after(const char *v)
{
	time_t t;
	long s;

	if (v[0] >= '0' && v[0] <= '9' && strspn(v, "0123456789") ==
	    strlen(v)) {
		s = strlen(v) > 7 ? RETRY_AFTER_MAX / 1000 : atol(v);
		return s * 1000 > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s * 1000;
	}
	t = curl_getdate(v, NULL);
	if (t < 0)
		return -1;
	s = (long)(t - time(NULL));
	s = s < 0 ? 0 : s;
	return s * 1000 > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : s * 1000;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct call *c = arg;
	size_t len = size * n, nl;
	const char *colon = memchr(p, ':', len);
	char v[HDR_VALUE_MAX];
	const char *vs;

	if (colon == NULL)
		return len;
	nl = (size_t)(colon - p);
	vs = colon + 1;
	while (vs < p + len && (*vs == ' ' || *vs == '\t'))
		vs++;
	n = (size_t)(p + len - vs);
	while (n > 0 && (vs[n - 1] == '\r' || vs[n - 1] == '\n' ||
	    vs[n - 1] == ' ' || vs[n - 1] == '\t'))
		n--;
	if (n >= sizeof(v)) {
		/* oversized: a continuation we cannot hold would end a
		 * query early, so the answer is refused */
		if (nl == 17 && strncasecmp(p, "x-ms-continuation", 17) == 0)
			c->bad_header = 1;
		return len;
	}
	memcpy(v, vs, n);
	v[n] = '\0';
	if (nl == 16 && strncasecmp(p, "iothub-errorcode", 16) == 0)
		snprintf(c->errorcode, sizeof(c->errorcode), "%s", v);
	else if (nl == 17 && strncasecmp(p, "x-ms-continuation", 17) == 0) {
		free(c->continuation);
		c->continuation = n > 0 ? strdup(v) : NULL;
	} else if (nl == 11 && strncasecmp(p, "retry-after", 11) == 0)
		c->retry_after_ms = retry_after(v);
	return len;
}

/* "Name: value"; an empty value ("Name:") removes curl's own header. */
static enum fc_err
add_hdr(struct curl_slist **l, const char *name, const char *v)
{
	char line[HDR_VALUE_MAX + 64];
	struct curl_slist *n;

	if (v[0] == '\0')
		snprintf(line, sizeof(line), "%s:", name);
	else
		snprintf(line, sizeof(line), "%s: %s", name, v);
	n = curl_slist_append(*l, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (n == NULL)
		return FC_ENOMEM;
	*l = n;
	return FC_OK;
}

static void
uuid4(struct hub *h, char out[37])
{
	unsigned char b[16];

	for (int i = 0; i < 16; i += 4) {
		uint32_t r = rnd32(h);
		memcpy(b + i, &r, 4);
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Sets up one HTTP attempt of c and adds it to the multi handle. */
static enum fc_err
start(struct hub *h, struct call *c)
{
	struct hub_req *r = c->req;
	CURL *e;
	char rid[37], num[16];
	size_t n;
	enum fc_err result;

	result = token_fresh(h);
	if (result != FC_OK)
		return result;
	e = h->npool > 0 ? h->pool[--h->npool] : curl_easy_init();
	if (e == NULL)
		return FC_ENOMEM;
	c->easy = e;
	hdrs_free(c->hdrs);
	c->hdrs = NULL;
	free(c->url);
	n = strlen(h->conn.host) + strlen(r->path) + 64;
	c->url = malloc(n);
	if (c->url == NULL)
		return FC_ENOMEM;
	snprintf(c->url, n, "https://%s%s?api-version=%s", h->conn.host,
	    r->path, HUB_API_VERSION);
	c->len = 0;
	c->truncated = 0;
	c->bad_header = 0;
	c->errorcode[0] = '\0';
	free(c->continuation);
	c->continuation = NULL;
	c->retry_after_ms = -1;
	c->errbuf[0] = '\0';

	uuid4(h, rid);
	if (add_hdr(&c->hdrs, "Authorization", h->token) != FC_OK ||
	    add_hdr(&c->hdrs, "Accept", "application/json") != FC_OK ||
	    add_hdr(&c->hdrs, "Request-Id", rid) != FC_OK ||
	    add_hdr(&c->hdrs, "Expect", "") != FC_OK ||
	    (r->body != NULL && add_hdr(&c->hdrs, "Content-Type",
	    "application/json; charset=utf-8") != FC_OK) ||
	    (r->if_match[0] != '\0' && add_hdr(&c->hdrs, "If-Match",
	    r->if_match) != FC_OK) ||
	    (r->continuation != NULL && add_hdr(&c->hdrs,
	    "x-ms-continuation", r->continuation) != FC_OK))
		return FC_ENOMEM;
	if (r->page_size > 0) {
		snprintf(num, sizeof(num), "%d", r->page_size);
		if (add_hdr(&c->hdrs, "x-ms-max-item-count", num) != FC_OK)
			return FC_ENOMEM;
	}

	curl_easy_setopt(e, CURLOPT_URL, c->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	/* TLS: always verified. ca_file is an extra anchor beside the system
	 * store (CAPATH), never a replacement and never a way to skip it. */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (h->ca_file != NULL) {
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, system_capath());
	}
	curl_easy_setopt(e, CURLOPT_USERAGENT, "fleetcert/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)h->opts.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(r->timeout_ms > 0 ?
	    r->timeout_ms : h->opts.request_timeout_ms));
	if (strcmp(r->method, "GET") == 0)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else {
		if (strcmp(r->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		if (r->body != NULL) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
			    (long)strlen(r->body));
		} else if (strcmp(r->method, "POST") == 0) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
		}
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
		return FC_EINTERNAL;
	c->state = CALL_RUNNING;
	c->started_ms = hub_mono_ms();
	c->next = h->running;
	h->running = c;
	h->nrunning++;
	return FC_OK;
}

static void
easy_release(struct hub *h, struct call *c)
{
	if (c->easy == NULL)
		return;
	curl_multi_remove_handle(h->multi, c->easy);
	if (h->npool < (size_t)h->opts.max_in_flight) {
		curl_easy_reset(c->easy);
		h->pool[h->npool++] = c->easy;
	} else
		curl_easy_cleanup(c->easy);
	c->easy = NULL;
}

static void
unlink_running(struct hub *h, struct call *c)
{
	struct call **pp;

	for (pp = &h->running; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			h->nrunning--;
			break;
		}
	c->next = NULL;
}

/* The end of one attempt: reduce, then retry later or complete. */
static void
finish(struct hub *h, struct call *c, CURLcode cc)
{
	struct hub_answer a;
	long status = 0, nconn = 0;
	int64_t now = hub_mono_ms(), delay;
	int transient;

	unlink_running(h, c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &nconn);
	easy_release(h, c);
	c->res->attempts++;
	pthread_mutex_lock(&h->mlock);
	hub_metrics_attempt(&h->metrics, c->req->op, status,
	    now - c->started_ms);
	h->metrics.connects += (uint64_t)(nconn > 0 ? nconn : 0);
	pthread_mutex_unlock(&h->mlock);

	memset(&a, 0, sizeof(a));
	a.status = status;
	a.curl_code = (int)cc;
	a.curl_msg = c->errbuf;
	a.errorcode_hdr = c->errorcode;
	a.continuation = c->continuation;
	a.retry_after_ms = c->retry_after_ms;
	a.body = c->body;
	a.len = c->len;
	a.truncated = c->truncated;
	a.bad_header = c->bad_header;
	transient = hub_answer_reduce(c->req, &a, c->res);
	if (c->res->outcome == HUB_DONE) {
		complete(h, c);
		return;
	}
	delay = hub_backoff_ms(c->res->attempts, h->opts.backoff_base_ms,
	    h->opts.backoff_max_ms, c->retry_after_ms, rnd32(h));
	if (transient && c->res->attempts < (unsigned)h->opts.max_attempts &&
	    now + delay - c->first_ms <= h->opts.retry_budget_ms) {
		log_debug("hub %s: %s%s%s: HTTP %ld (%s), attempt %u, retry "
		    "in %lld ms", h->name, hub_op_name(c->req->op),
		    c->req->device_id[0] != '\0' ? " device " : "",
		    c->req->device_id, status, c->res->error.name,
		    c->res->attempts, (long long)delay);
		pthread_mutex_lock(&h->mlock);
		h->metrics.retries++;
		pthread_mutex_unlock(&h->mlock);
		c->state = CALL_WAITING;
		c->due_ms = now + delay;
		c->next = h->waiting;
		h->waiting = c;
		return;
	}
	if (c->res->outcome == HUB_RETRY || c->res->outcome == HUB_UNREACHABLE)
		c->res->retry_after_ms = (int)delay;
	complete(h, c);
}

static void
fail_start(struct hub *h, struct call *c, enum fc_err err)
{
	if (c->easy != NULL) {
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
	}
	c->res->outcome = err == FC_ECRYPTO ? HUB_MISCONFIGURED :
	    HUB_UNREACHABLE;
	c->res->retry_after_ms = h->opts.backoff_max_ms;
	snprintf(c->res->error.message, sizeof(c->res->error.message),
	    "cannot start the request: %s", fc_strerror(err));
	complete(h, c);
}

/*
 * Starts ready calls in order while the buckets allow. A registry write
 * waiting for the per-minute bucket does not hold up reads behind it, but
 * later registry writes keep their order. Returns ms until a token is due
 * (-1: none awaited).
 */
static int64_t
start_ready(struct hub *h, int64_t now)
{
	struct call **pp = &h->ready, *c, *last = NULL;
	int64_t hint = -1, w;
	int reg_blocked = 0;
	enum fc_err result;

	while ((c = *pp) != NULL && h->nrunning < (size_t)h->opts.max_in_flight) {
		enum hub_tokens missing = HUB_TOKENS_REGISTRY;

		w = -1;
		if (!(c->req->registry_write && reg_blocked))
			missing = hub_tokens_take(h, c->req->registry_write,
			    now, &w);
		if (missing == HUB_TOKENS_CALLS) {
			c->throttled = 1;
			hint = w;
			break;
		}
		if (missing == HUB_TOKENS_REGISTRY) {
			if (w > 0 && (hint < 0 || w < hint))
				hint = w;
			reg_blocked = 1;
			c->throttled = 1;
			last = c;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = NULL;
		if (h->ready_tail == c)
			h->ready_tail = last;
		if (c->throttled == 1) {
			c->throttled = 2;
			pthread_mutex_lock(&h->mlock);
			h->metrics.throttle_waits++;
			pthread_mutex_unlock(&h->mlock);
		}
		if (c->req->registry_write && c->res->attempts == 0) {
			pthread_mutex_lock(&h->mlock);
			h->metrics.registry_ops += c->req->registry_ops;
			pthread_mutex_unlock(&h->mlock);
		}
		result = start(h, c);
		if (result != FC_OK)
			fail_start(h, c, result);
	}
	return hint;
}

static void
wake_due(struct hub *h, int64_t now)
{
	struct call **pp = &h->waiting, *c;

	while ((c = *pp) != NULL) {
		if (c->due_ms <= now) {
			*pp = c->next;
			c->next = NULL;
			c->state = CALL_READY;
			if (h->ready_tail != NULL)
				h->ready_tail->next = c;
			else
				h->ready = c;
			h->ready_tail = c;
			continue;
		}
		pp = &c->next;
	}
}

size_t
hub_perform(struct hub *h, int *timeout_ms)
{
	CURLMsg *m;
	int still = 0, left;
	long ct = -1;
	int64_t hint = -1, bh = -1, now;
	struct call *c;

	for (int round = 0; round < 2; round++) {
		now = hub_mono_ms();
		wake_due(h, now);
		bh = start_ready(h, now);
		curl_multi_perform(h->multi, &still);
		while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
			c = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			    (char **)&c);
			if (c != NULL)
				finish(h, c, m->data.result);
		}
		/* Callbacks and retries may have queued work: once more. */
		if (h->ready == NULL)
			break;
	}
	/* Next wake-up: a token, a retry that falls due, or curl's timer. */
	now = hub_mono_ms();
	if (h->ready != NULL && bh >= 0)
		hint = bh;
	for (c = h->waiting; c != NULL; c = c->next) {
		int64_t d = c->due_ms > now ? c->due_ms - now : 0;
		if (hint < 0 || d < hint)
			hint = d;
	}
	curl_multi_timeout(h->multi, &ct);
	if (ct >= 0 && (hint < 0 || ct < hint))
		hint = ct;
	if (h->pending > 0 && (hint < 0 || hint > 1000))
		hint = 1000;
	if (h->pending == 0)
		hint = -1;
	if (timeout_ms != NULL)
		*timeout_ms = (int)hint;
	return h->pending;
}

void
hub_poll(struct hub *h, int timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = 1000;
	curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
}

enum fc_err
hub_fdset(struct hub *h, fd_set *rd, fd_set *wr, fd_set *ex, int *maxfd)
{
	return curl_multi_fdset(h->multi, rd, wr, ex, maxfd) == CURLM_OK ?
	    FC_OK : FC_EINTERNAL;
}

void
hub_wakeup(struct hub *h)
{
	curl_multi_wakeup(h->multi);
}

static void
cancel_list(struct hub *h, struct call *c)
{
	struct call *next;

	for (; c != NULL; c = next) {
		next = c->next;
		easy_release(h, c);
		c->res->outcome = HUB_UNREACHABLE;
		c->res->retry_after_ms = 0;
		snprintf(c->res->error.message,
		    sizeof(c->res->error.message), "cancelled");
		complete(h, c);
	}
}

void
hub_engine_cancel_all(struct hub *h)
{
	struct call *r, *w, *q;

	/* Callbacks may queue more calls: cancel until nothing is left. */
	while (h->running != NULL || h->waiting != NULL || h->ready != NULL) {
		r = h->running, w = h->waiting, q = h->ready;
		h->running = h->waiting = h->ready = h->ready_tail = NULL;
		h->nrunning = 0;
		cancel_list(h, r);
		cancel_list(h, w);
		cancel_list(h, q);
	}
}
