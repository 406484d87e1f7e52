/*
 * httpd.c — the HTTP server layer on libmicrohttpd: TLS, connection limits,
 * the request deadline reaper, the rate-limited MHD log, body collection
 * with a cap, and dispatch to httpd_route.c (router) on the sockets of
 * httpd_listen.c.
 * Runs in the daemon process: MHD's pool threads call the handlers, one
 * reaper thread per server enforces the deadline. Each pool thread opens
 * its own SQLite connection on first use; all are closed at stop.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "httpd_int.h"
#include "log.h"

#define PEM_MAX		(256 * 1024)
#define LOG_BURST	10.0

/* One per TCP/Unix connection, from MHD's "started" to "closed" notice. */
struct conn {
	int		 fd;
	struct timespec	 start;		/* current request's start */
	int		 receiving;	/* request not yet complete */
	struct conn	*prev, *next;
};

/* One per request, from its headers to the completion callback. */
struct req {
	struct httpd_request hr;	/* params/query strings owned */
	httpd_handler	 fn;
	size_t		 body_max;
	char		*body;
	size_t		 len, cap;
	size_t		 discarded;
	int		 too_big;
	int		 answered;	/* a response was queued early */
	char		 peer[INET6_ADDRSTRLEN];
};

/* A pool thread's database, closed by the key destructor or at stop. */
struct tdb {
	struct httpd	*h;
	struct db	*db;
	struct tdb	*prev, *next;
};

struct httpd {
	struct httpd_opts o;		/* strings owned */
	char		*cert_pem;
	char		*key_pem;
	size_t		 key_len;
	int		 fd;
	char		*unix_path;	/* created by us: unlink at stop */
	int		 port;
	struct MHD_Daemon *mhd;
	struct httpd_router *router;

	pthread_mutex_t	 lock;		/* conns, dbs */
	struct conn	*conns;
	struct tdb	*dbs;
	pthread_key_t	 db_key;
	int		 key_ok;

	pthread_t	 reaper;
	int		 reaper_started;
	int		 stopping;
	pthread_cond_t	 cond;

	pthread_mutex_t	 log_lock;
	double		 log_tokens;
	struct timespec	 log_last;
	unsigned long	 logged, suppressed, pending_suppressed;
};

void
httpd_opts_init(struct httpd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->name = "httpd";
	o->threads = 4;
	o->conn_limit = 256;
	o->per_ip_limit = 32;
	o->idle_seconds = 15;
	o->deadline_seconds = 30;
	o->body_max = 16 * 1024;
}

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(a->tv_sec - b->tv_sec) +
	    (double)(a->tv_nsec - b->tv_nsec) / 1e9;
}

/*
 * MHD's messages (refused connections, TLS failures) can come at the rate
 * an attacker chooses, so they pass a token bucket: LOG_BURST lines, then
 * one a second; the count of dropped lines is reported with the next one.
 */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct httpd *h = cls;
	struct timespec now;
	char msg[512];
	size_t n;
	unsigned long dropped = 0;
	int ok = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&h->log_lock);
	h->log_tokens += ts_diff(&now, &h->log_last);
	if (h->log_tokens > LOG_BURST)
		h->log_tokens = LOG_BURST;
	h->log_last = now;
	if (h->log_tokens >= 1.0) {
		h->log_tokens -= 1.0;
		ok = 1;
		h->logged++;
		dropped = h->pending_suppressed;
		h->pending_suppressed = 0;
	} else {
		h->suppressed++;
		h->pending_suppressed++;
	}
	pthread_mutex_unlock(&h->log_lock);
	if (!ok)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	if (dropped > 0)
		log_warn("httpd %s: %s (%lu similar messages suppressed)",
		    h->o.name, msg, dropped);
	else
		log_warn("httpd %s: %s", h->o.name, msg);
}

void
httpd_log_stats(const struct httpd *h, unsigned long *logged,
    unsigned long *suppressed)
{
	pthread_mutex_lock((pthread_mutex_t *)&h->log_lock);
	*logged = h->logged;
	*suppressed = h->suppressed;
	pthread_mutex_unlock((pthread_mutex_t *)&h->log_lock);
}

static void
tdb_destroy(void *p)
{
	struct tdb *t = p;
	struct httpd *h = t->h;

	pthread_mutex_lock(&h->lock);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		h->dbs = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&h->lock);
	db_close(t->db);
	free(t);
}

/* This thread's database connection, opened on first use; NULL on error. */
static struct db *
thread_db(struct httpd *h)
{
	struct tdb *t;
	struct db *db = NULL;

	if (h->o.db_path == NULL || !h->key_ok)
		return NULL;
	if ((t = pthread_getspecific(h->db_key)) != NULL)
		return t->db;
	if (db_open(h->o.db_path, 0, &db) != FC_OK)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		db_close(db);
		return NULL;
	}
	t->h = h;
	t->db = db;
	pthread_mutex_lock(&h->lock);
	t->next = h->dbs;
	if (h->dbs != NULL)
		h->dbs->prev = t;
	h->dbs = t;
	pthread_mutex_unlock(&h->lock);
	pthread_setspecific(h->db_key, t);
	return db;
}

const char *
httpd_header(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
httpd_query(const struct httpd_request *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].key, name) == 0)
			return req->query[i].value;
	return NULL;
}

/* MHD would decode the path before we split it (turning %2F into '/');
 * keep it raw, httpd_route.c decodes each segment and each query value. */
static size_t
unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

struct qctx {
	struct httpd_request *req;
	int bad;
};

static enum MHD_Result
query_collect(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct qctx *q = cls;
	struct httpd_request *req = q->req;
	char *k, *v;

	if (req->nquery == HTTPD_MAX_QUERY) {
		q->bad = 1;
		return MHD_NO;
	}
	k = httpd_pct_decode(key, 1, NULL);
	v = httpd_pct_decode(value != NULL ? value : "", 1, NULL);
	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		q->bad = 1;
		return MHD_NO;
	}
	req->query[req->nquery].key = k;
	req->query[req->nquery++].value = v;
	return MHD_YES;
}

static struct conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

static void
peer_name(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(buf, len, "unix");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)len);
}

static void
req_free(struct req *rq)
{
	size_t i;

	if (rq == NULL)
		return;
	for (i = 0; i < rq->hr.nparams; i++)
		free((char *)rq->hr.params[i]);
	for (i = 0; i < rq->hr.nquery; i++) {
		free((char *)rq->hr.query[i].key);
		free((char *)rq->hr.query[i].value);
	}
	free(rq->body);
	free(rq);
}

/*
 * The request line and headers are in: parse the query, route, apply the
 * body cap and the precheck. Returns 0 to go on reading the body, or the
 * status of the response it queued (*ret is MHD's answer).
 */
static int
req_begin(struct httpd *h, struct MHD_Connection *c, const char *url,
    const char *method, struct req *rq, enum MHD_Result *ret)
{
	struct httpd_response resp;
	struct qctx q;
	const char *cl;
	char *params[HTTPD_MAX_PARAMS] = { 0 };
	size_t np = 0, i, bmax = 0;
	void *arg = NULL;
	int st;

	rq->hr.conn = c;
	rq->hr.method = method;
	rq->hr.path = url;
	peer_name(c, rq->peer, sizeof(rq->peer));
	rq->hr.peer = rq->peer;
	q.req = &rq->hr;
	q.bad = 0;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_collect, &q);
	if (q.bad) {
		*ret = httpd_send_error(c, 400, "bad_request",
		    "bad query string");
		return 400;
	}
	st = httpd_router_match(h->router, method, url, &rq->fn, &arg, &bmax,
	    params, &np);
	if (st == 404) {
		*ret = httpd_send_error(c, 404, "not_found",
		    "no such resource");
		return 404;
	} else if (st == 405) {
		*ret = httpd_send_error(c, 405, "method_not_allowed",
		    "method not allowed on this resource");
		return 405;
	} else if (st != 0) {
		*ret = httpd_send_error(c, 400, "bad_request", "bad path");
		return 400;
	}
	for (i = 0; i < np; i++)
		rq->hr.params[i] = params[i];
	rq->hr.nparams = np;
	rq->hr.arg = arg;
	rq->body_max = bmax > 0 ? bmax : h->o.body_max;

	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && strtoull(cl, NULL, 10) > rq->body_max) {
		rq->too_big = 1;
		*ret = httpd_send_error(c, 413, "too_large",
		    "request body too large");
		return 413;
	}
	if (h->o.precheck == NULL)
		return 0;
	memset(&resp, 0, sizeof(resp));
	if (h->o.precheck(h->o.precheck_arg, &rq->hr, &resp) == 0) {
		httpd_resp_clear(&resp);
		return 0;
	}
	*ret = httpd_send(c, &resp);
	st = resp.status;
	httpd_resp_clear(&resp);
	return st > 0 ? st : 500;
}

/* The whole request is here: run the handler, answer. */
static enum MHD_Result
dispatch(struct httpd *h, struct MHD_Connection *c, struct req *rq)
{
	struct httpd_response resp;
	struct conn *cn;
	enum MHD_Result ret;

	if ((cn = conn_of(c)) != NULL) {
		pthread_mutex_lock(&h->lock);
		cn->receiving = 0;
		pthread_mutex_unlock(&h->lock);
	}
	memset(&resp, 0, sizeof(resp));
	rq->hr.body = rq->body != NULL ? rq->body : "";
	rq->hr.body_len = rq->len;
	rq->hr.db = thread_db(h);
	if (h->o.db_path != NULL && rq->hr.db == NULL)
		return httpd_send_error(c, 503, "unavailable",
		    "database unavailable");
	rq->fn(&rq->hr, &resp);
	ret = httpd_send(c, &resp);
	httpd_resp_clear(&resp);
	return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct httpd *h = cls;
	struct req *rq = *con_cls;
	enum MHD_Result ret = MHD_YES;

	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		if (req_begin(h, c, url, method, rq, &ret) != 0)
			rq->answered = 1;
		return ret;
	}
	if (rq->answered) {
		/* Answered before the body: MHD closes after sending. */
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (rq->too_big || rq->len + n > rq->body_max) {
			/* Chunked and over the cap: drop it, answer 413 at
			 * the end; close at once if it goes on and on. */
			rq->too_big = 1;
			rq->discarded += n;
			return rq->discarded > 4 * rq->body_max + 65536 ?
			    MHD_NO : MHD_YES;
		}
		if (rq->len + n + 1 > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 1024;
			char *nb;

			while (cap < rq->len + n + 1)
				cap *= 2;
			if ((nb = realloc(rq->body, cap)) == NULL)
				return MHD_NO;
			rq->body = nb;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		return MHD_YES;
	}
	rq->answered = 1;
	if (rq->too_big)
		return httpd_send_error(c, 413, "too_large",
		    "request body too large");
	return dispatch(h, c, rq);
}

static void
completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct httpd *h = cls;
	struct req *rq = *con_cls;
	struct conn *cn;

	req_free(rq);
	*con_cls = NULL;
	/* A kept-alive connection's next request starts its clock now. */
	if ((cn = conn_of(c)) != NULL) {
		pthread_mutex_lock(&h->lock);
		clock_gettime(CLOCK_MONOTONIC, &cn->start);
		cn->receiving = 1;
		pthread_mutex_unlock(&h->lock);
	}
}

static void
notify_cb(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct httpd *h = cls;
	struct conn *cn;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci == NULL || (cn = calloc(1, sizeof(*cn))) == NULL)
			return;
		cn->fd = ci->connect_fd;
		cn->receiving = 1;
		clock_gettime(CLOCK_MONOTONIC, &cn->start);
		pthread_mutex_lock(&h->lock);
		cn->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = cn;
		h->conns = cn;
		pthread_mutex_unlock(&h->lock);
		*socket_context = cn;
		return;
	}
	/* Closed: MHD closes the fd after this returns, so once we unlink
	 * under the lock the reaper can no longer touch a reused fd. */
	if ((cn = *socket_context) == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	if (cn->prev != NULL)
		cn->prev->next = cn->next;
	else
		h->conns = cn->next;
	if (cn->next != NULL)
		cn->next->prev = cn->prev;
	pthread_mutex_unlock(&h->lock);
	free(cn);
	*socket_context = NULL;
}

/*
 * MHD's timeout counts idle time only. The reaper cuts connections whose
 * current request (TLS handshake included) has been arriving for longer
 * than the deadline, by shutting the socket down; MHD then sees EOF and
 * closes it through its normal path.
 */
static void *
reaper_main(void *arg)
{
	struct httpd *h = arg;
	struct timespec now, until, last_log = { 0, 0 };
	struct conn *cn;
	unsigned long cut, pending = 0;

	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		cut = 0;
		for (cn = h->conns; cn != NULL; cn = cn->next) {
			if (!cn->receiving ||
			    ts_diff(&now, &cn->start) < h->o.deadline_seconds)
				continue;
			shutdown(cn->fd, SHUT_RDWR);
			cn->receiving = 0;
			cut++;
		}
		/* At most one line per 10 s, however many are cut. */
		pending += cut;
		if (pending > 0 && ts_diff(&now, &last_log) >= 10.0) {
			pthread_mutex_unlock(&h->lock);
			log_info("httpd %s: cut %lu connection(s) whose request "
			    "took over %d s", h->o.name, pending,
			    h->o.deadline_seconds);
			pthread_mutex_lock(&h->lock);
			pending = 0;
			last_log = now;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 250 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&h->cond, &h->lock, &until);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static char *
dup_or_null(const char *s, int *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*fail = 1;
	return d;
}

enum fc_err
httpd_new(const struct httpd_opts *o, struct httpd **out)
{
	struct httpd *h = NULL;
	char err[256];
	size_t len;
	int fail = 0;
	enum fc_err rc = FC_EINVAL;

	if (o->listen == NULL || o->listen[0] == '\0' || o->threads < 1 ||
	    o->threads > 64 || o->conn_limit < 1 || o->per_ip_limit < 0 ||
	    o->idle_seconds < 1 || o->deadline_seconds < 1 ||
	    o->body_max < 1 || (o->tls_cert == NULL) != (o->tls_key == NULL)) {
		log_error("httpd %s: bad options", o->name ? o->name : "?");
		return FC_EINVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return FC_ENOMEM;
	h->fd = -1;
	h->o = *o;
	h->o.name = dup_or_null(o->name ? o->name : "httpd", &fail);
	h->o.listen = dup_or_null(o->listen, &fail);
	h->o.tls_cert = dup_or_null(o->tls_cert, &fail);
	h->o.tls_key = dup_or_null(o->tls_key, &fail);
	h->o.tls_priorities = dup_or_null(o->tls_priorities ?
	    o->tls_priorities : HTTPD_TLS_PRIORITIES, &fail);
	h->o.db_path = dup_or_null(o->db_path, &fail);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->log_lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	h->log_tokens = LOG_BURST;
	clock_gettime(CLOCK_MONOTONIC, &h->log_last);
	if (fail || (h->router = httpd_router_new()) == NULL) {
		rc = FC_ENOMEM;
		goto out;
	}
	if (o->tls_cert != NULL) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			log_error("httpd %s: libmicrohttpd has no TLS",
			    h->o.name);
			goto out;
		}
		if ((rc = fc_file_read(o->tls_cert, PEM_MAX, &h->cert_pem,
		    &len)) != FC_OK) {
			log_error("httpd %s: cannot read TLS certificate %s",
			    h->o.name, o->tls_cert);
			goto out;
		}
		if ((rc = cfg_secret_read(o->tls_key, &h->key_pem, &h->key_len,
		    err, sizeof(err))) != FC_OK) {
			log_error("httpd %s: TLS key: %s", h->o.name, err);
			goto out;
		}
	}
	rc = FC_OK;
out:
	if (rc != FC_OK) {
		httpd_free(h);
		return rc;
	}
	*out = h;
	return FC_OK;
}

enum fc_err
httpd_route_add(struct httpd *h, const char *method, const char *pattern,
    httpd_handler fn, void *arg)
{
	return httpd_router_add(h->router, method, pattern, fn, arg, 0);
}

enum fc_err
httpd_route_add_limit(struct httpd *h, const char *method,
    const char *pattern, httpd_handler fn, void *arg, size_t body_max)
{
	return httpd_router_add(h->router, method, pattern, fn, arg,
	    body_max);
}

int
httpd_port(const struct httpd *h)
{
	return h->port;
}

enum fc_err
httpd_start(struct httpd *h)
{
	struct MHD_OptionItem opts[24];
	const char *l = h->o.listen;
	unsigned flags;
	int n = 0;
	enum fc_err rc;

	if (h->mhd != NULL)
		return FC_ECONFLICT;
	rc = httpd_listen_open(h->o.name, l, &h->fd, &h->port, &h->unix_path);
	if (rc != FC_OK)
		return rc;
	if (pthread_key_create(&h->db_key, tdb_destroy) != 0)
		return FC_ENOMEM;
	h->key_ok = 1;

#define OPT(o, v, p) \
	opts[n++] = (struct MHD_OptionItem){ (o), (intptr_t)(v), (p) }
	OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h);	/* must be first */
	OPT(MHD_OPTION_LISTEN_SOCKET, h->fd, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, h->o.conn_limit, NULL);
	if (h->o.per_ip_limit > 0)
		OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->o.per_ip_limit,
		    NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, h->o.idle_seconds, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, notify_cb, h);
	OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, h);
	OPT(MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL);
	if (h->o.threads > 1)
		OPT(MHD_OPTION_THREAD_POOL_SIZE, h->o.threads, NULL);
	if (h->cert_pem != NULL) {
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem);
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0,
		    (void *)h->o.tls_priorities);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG;
	if (h->cert_pem != NULL)
		flags |= MHD_USE_TLS;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, h,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (h->mhd == NULL) {
		log_error("httpd %s: cannot start libmicrohttpd on %s",
		    h->o.name, l);
		return FC_EIO;
	}
	h->fd = -1;		/* MHD closes it in MHD_stop_daemon */
	if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
		log_error("httpd %s: cannot start the reaper thread",
		    h->o.name);
		MHD_stop_daemon(h->mhd);
		h->mhd = NULL;
		return FC_EINTERNAL;
	}
	h->reaper_started = 1;
	if (h->port > 0)
		log_info("httpd %s: listening on %s (port %d)%s", h->o.name,
		    l, h->port, h->cert_pem != NULL ? " with TLS" : "");
	else
		log_info("httpd %s: listening on %s%s", h->o.name, l,
		    h->cert_pem != NULL ? " with TLS" : "");
	return FC_OK;
}

void
httpd_free(struct httpd *h)
{
	struct tdb *t;

	if (h == NULL)
		return;
	if (h->reaper_started) {
		pthread_mutex_lock(&h->lock);
		h->stopping = 1;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->reaper, NULL);
	}
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd);
	/* Pool threads ran their key destructors as they exited; close
	 * whatever is left (a thread that never exited cleanly). */
	while ((t = h->dbs) != NULL) {
		h->dbs = t->next;
		db_close(t->db);
		free(t);
	}
	if (h->key_ok)
		pthread_key_delete(h->db_key);
	if (h->fd >= 0)
		close(h->fd);
	if (h->unix_path != NULL) {
		unlink(h->unix_path);
		free(h->unix_path);
	}
	httpd_router_free(h->router);
	free(h->cert_pem);
	if (h->key_pem != NULL)
		fc_secret_free(h->key_pem, h->key_len + 1);
	free((char *)h->o.name);
	free((char *)h->o.listen);
	free((char *)h->o.tls_cert);
	free((char *)h->o.tls_key);
	free((char *)h->o.tls_priorities);
	free((char *)h->o.db_path);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->log_lock);
	free(h);
}
