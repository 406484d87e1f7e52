/*
 * http.c — the HTTPS front of fleetcert-hubsim: libmicrohttpd (GnuTLS) with
 * one thread per connection, request bodies read under a size cap, routing
 * of the IoT Hub REST paths, the checks every request passes in the order the
 * hub applies them (route, api-version, SAS, injected faults, quota), the
 * two error body shapes and the call log entry of every request.
 * Runs in libmicrohttpd's threads; touches struct sim only under sim->lock.
 */
#include "fc_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>

#include <microhttpd.h>
#include <openssl/rand.h>

#include "hubsim.h"
#include "log.h"

#define BODY_MAX	(512 * 1024)	/* largest request body accepted */
#define URI_MAX		4096

/* Per-request state, created by the URI log callback (raw URI). */
struct hreq {
	char		*uri;		/* raw, as sent */
	char		*body;
	size_t		 len, cap;
	int		 too_big;
	int		 started;
};

static struct sim *gsim;
static _Atomic unsigned long tracking_seq;

double
sim_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
sim_sleep_ms(long ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
http_pct_decode(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -1;
			h = hexval((unsigned char)in[i + 1]);
			l = hexval((unsigned char)in[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0 || o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

const char *
http_header(struct sim_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void
reply_json(struct sim_reply *rep, int status, json_t *body)
{
	rep->status = status;
	free(rep->body);
	rep->body = NULL;
	if (body != NULL) {
		rep->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(body);
	}
}

void
reply_header(struct sim_reply *rep, const char *name, const char *value)
{
	if (rep->nhdr >= (int)FC_ARRAY_LEN(rep->hdr_values))
		return;
	snprintf(rep->hdr_names[rep->nhdr], sizeof(rep->hdr_names[0]), "%s",
	    name);
	rep->hdr_values[rep->nhdr] = strdup(value);
	rep->nhdr++;
}

static void
tracking_id(struct sim *sim, char out[40])
{
	unsigned char r[8];
	unsigned long n;

	(void)sim;
	(void)RAND_bytes(r, sizeof(r));
	n = atomic_fetch_add(&tracking_seq, 1) + 1;
	snprintf(out, 40, "%08lx%02x%02x%02x%02x%02x%02x%02x%02x", n & 0xffffffffUL,
	    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

static void
set_error(struct sim_reply *rep, long code, const char *name)
{
	rep->status = (int)(code / 1000);
	rep->code = code;
	snprintf(rep->name, sizeof(rep->name), "%s", name);
}

void
reply_error(struct sim *sim, struct sim_reply *rep, long code,
    const char *name, const char *fmt, ...)
{
	char text[512], tid[40], ts[32], *msg = NULL;
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tracking_id(sim, tid);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%m/%d/%Y %H:%M:%S", &tm);
	set_error(rep, code, name);
	if (asprintf(&msg, "ErrorCode:%s;%s", name, text) < 0)
		msg = NULL;
	o = json_pack("{s:s, s:s+++}", "Message", msg ? msg : name,
	    "ExceptionMessage", "Tracking ID:", tid, "-G:0-TimeStamp:", ts);
	free(msg);
	reply_json(rep, rep->status, o);
	rep->status = (int)(code / 1000);
}

void
reply_error_b(struct sim *sim, struct sim_reply *rep, long code,
    const char *name, const char *fmt, ...)
{
	char text[512], tid[40], ts[21];
	char *inner = NULL;
	va_list ap;
	json_t *in, *o;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tracking_id(sim, tid);
	fc_time_iso(time(NULL), ts);
	set_error(rep, code, name);
	in = json_pack("{s:I, s:s, s:s, s:{}, s:s}", "errorCode", (json_int_t)code,
	    "trackingId", tid, "message", text, "info", "timestampUtc", ts);
	if (in != NULL)
		inner = json_dumps(in, JSON_COMPACT);
	json_decref(in);
	o = json_pack("{s:s, s:s}", "Message", inner ? inner : text,
	    "ExceptionMessage", "");
	free(inner);
	reply_json(rep, rep->status, o);
	rep->status = (int)(code / 1000);
}

json_t *
http_body_json(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	json_error_t jerr;
	json_t *j;

	if (req->body == NULL || req->body_len == 0) {
		reply_error(sim, rep, 400004, "ArgumentInvalid",
		    "request body is required");
		return NULL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		reply_error(sim, rep, 400006, "IotHubFormatError",
		    "malformed JSON at line %d: %s", jerr.line, jerr.text);
		return NULL;
	}
	return j;
}

/* ---- routing ---- */

enum route {
	R_NONE, R_DEVICE, R_BULK, R_QUERY, R_STATS, R_TWIN, R_METHOD
};

/* Splits path into route + decoded device id. Returns -1 with a reply for
 * a malformed id, 0 otherwise (R_NONE when nothing matches). */
static int
route_of(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    enum route *r, char *id, int shape_b)
{
	const char *p = req->path, *seg, *slash;
	size_t n;

	*r = R_NONE;
	if (strcmp(p, "/devices") == 0) {
		*r = R_BULK;
		return 0;
	}
	if (strcmp(p, "/devices/query") == 0 && strcmp(req->method, "POST") == 0) {
		*r = R_QUERY;
		return 0;
	}
	if (strcmp(p, "/statistics/devices") == 0) {
		*r = R_STATS;
		return 0;
	}
	if (strncmp(p, "/devices/", 9) == 0)
		seg = p + 9;
	else if (strncmp(p, "/twins/", 7) == 0)
		seg = p + 7;
	else
		return 0;
	slash = strchr(seg, '/');
	n = slash ? (size_t)(slash - seg) : strlen(seg);
	if (p[1] == 'd' && slash != NULL)
		return 0;
	if (p[1] == 't' && slash != NULL && strcmp(slash, "/methods") != 0)
		return 0;
	if (p[1] == 'd')
		*r = R_DEVICE;
	else
		*r = slash ? R_METHOD : R_TWIN;
	if (http_pct_decode(seg, n, id, FC_DEVICE_ID_MAX) != 0 ||
	    !fc_device_id_valid(id)) {
		if (*r == R_METHOD)
			reply_error_b(sim, rep, 400004, "ArgumentInvalid",
			    "invalid device id");
		else
			reply_error(sim, rep, 400004, "ArgumentInvalid",
			    "invalid device id: it must be 1-128 characters of "
			    "letters, digits and -.+%%_#*?!(),:=@$'");
		(void)shape_b;
		return -1;
	}
	snprintf(req->device, sizeof(req->device), "%s", id);
	return 0;
}

static int
api_version_ok(const char *query)
{
	const char *p = query;
	char val[64];

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '&');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > 12 && strncmp(p, "api-version=", 12) == 0) {
			if (http_pct_decode(p + 12, n - 12, val, sizeof(val)) != 0)
				return 0;
			return strcmp(val, "2021-04-12") == 0 ||
			    strcmp(val, "2020-09-30") == 0;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static void
method_not_allowed(struct sim *sim, struct sim_reply *rep, const char *m)
{
	reply_error(sim, rep, 405001, "InvalidOperation",
	    "method %s is not allowed on this resource", m);
	rep->code = 0;
}

/* The hub side of one request, everything but sending. */
static void
dispatch(struct sim *sim, struct sim_req *req, struct sim_reply *rep)
{
	char id[FC_DEVICE_ID_MAX] = "";
	enum route r;
	unsigned need = 0;
	const char *m = req->method;
	long latency = 0, delay = 0, retry = 0;
	double cost = 1;
	int shape_b;

	shape_b = strncmp(req->path, "/twins/", 7) == 0 &&
	    strstr(req->path + 7, "/methods") != NULL;
	if (route_of(sim, req, rep, &r, id, shape_b) != 0)
		return;
	switch (r) {
	case R_NONE:
		reply_error(sim, rep, 404000, "NotFound", "no such resource: %s",
		    req->path);
		rep->code = 0;
		return;
	case R_DEVICE:
		if (strcmp(m, "GET") == 0) {
			req->op = OP_REGISTRY_READ;
			need = PERM_REGISTRY_READ;
		} else if (strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0) {
			req->op = OP_REGISTRY_WRITE;
			need = PERM_REGISTRY_WRITE;
		} else {
			method_not_allowed(sim, rep, m);
			return;
		}
		break;
	case R_BULK:
		if (strcmp(m, "POST") != 0) {
			method_not_allowed(sim, rep, m);
			return;
		}
		req->op = OP_BULK;
		need = PERM_REGISTRY_WRITE;
		break;
	case R_QUERY:
		req->op = OP_QUERY;
		need = PERM_REGISTRY_READ | PERM_SERVICE_CONNECT;
		break;
	case R_STATS:
		if (strcmp(m, "GET") != 0) {
			method_not_allowed(sim, rep, m);
			return;
		}
		req->op = OP_STATS;
		need = PERM_REGISTRY_READ;
		break;
	case R_TWIN:
		if (strcmp(m, "GET") == 0) {
			req->op = OP_TWIN_READ;
			need = PERM_REGISTRY_READ | PERM_SERVICE_CONNECT;
		} else if (strcmp(m, "PATCH") == 0 || strcmp(m, "PUT") == 0) {
			req->op = OP_TWIN_UPDATE;
			need = PERM_SERVICE_CONNECT;
		} else {
			method_not_allowed(sim, rep, m);
			return;
		}
		break;
	case R_METHOD:
		if (strcmp(m, "POST") != 0) {
			method_not_allowed(sim, rep, m);
			return;
		}
		req->op = OP_METHOD;
		need = PERM_SERVICE_CONNECT;
		/* Metered in 4 KB units; the answer is charged with the
		 * request as the hub cannot know it in advance. */
		cost = (double)((req->body_len + 4095) / 4096);
		if (cost < 1)
			cost = 1;
		break;
	}
	if (!api_version_ok(req->query)) {
		if (shape_b)
			reply_error_b(sim, rep, 400001, "InvalidProtocolVersion",
			    "api-version is missing or not supported; use "
			    "2021-04-12 or 2020-09-30");
		else
			reply_error(sim, rep, 400001, "InvalidProtocolVersion",
			    "api-version is missing or not supported; use "
			    "2021-04-12 or 2020-09-30");
		return;
	}
	if (sas_check(sim, req, rep, need) != 0)
		return;

	pthread_mutex_lock(&sim->lock);
	if (fault_pick(sim, req->op, rep, &latency)) {
		pthread_mutex_unlock(&sim->lock);
		sim_sleep_ms(latency);
		return;
	}
	if (quota_take(sim, req->op, cost, &delay, &retry) != 0) {
		char ra[24];
		pthread_mutex_unlock(&sim->lock);
		reply_error(sim, rep, 429001, "ThrottlingException",
		    "Throttling request. Wait %ld seconds and try again.",
		    retry);
		snprintf(ra, sizeof(ra), "%ld", retry);
		reply_header(rep, "Retry-After", ra);
		sim_sleep_ms(latency);
		return;
	}
	pthread_mutex_unlock(&sim->lock);
	rep->delay_ms = delay;
	sim_sleep_ms(latency + delay);

	switch (r) {
	case R_DEVICE:
		reg_handle_device(sim, req, rep, id);
		break;
	case R_BULK:
		reg_handle_bulk(sim, req, rep);
		break;
	case R_QUERY:
		query_handle(sim, req, rep);
		break;
	case R_STATS:
		reg_handle_stats(sim, req, rep);
		break;
	case R_TWIN:
		twin_handle(sim, req, rep, id);
		break;
	case R_METHOD:
		methods_handle(sim, req, rep, id);
		break;
	case R_NONE:
		break;
	}
}

static void
reply_clear(struct sim_reply *rep)
{
	int i;

	free(rep->body);
	for (i = 0; i < rep->nhdr; i++)
		free(rep->hdr_values[i]);
}

static enum MHD_Result
send_reply(struct MHD_Connection *conn, struct sim_reply *rep)
{
	struct MHD_Response *resp;
	const char *body = rep->body ? rep->body : "";
	size_t len = strlen(body);
	enum MHD_Result ret;
	char *copy;
	int i;

	copy = malloc(len + 1);
	if (copy == NULL)
		return MHD_NO;
	memcpy(copy, body, len + 1);
	resp = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(copy);
		return MHD_NO;
	}
	if (len > 0)
		MHD_add_response_header(resp, "Content-Type",
		    "application/json; charset=utf-8");
	if (rep->name[0] != '\0')
		MHD_add_response_header(resp, "iothub-errorcode", rep->name);
	for (i = 0; i < rep->nhdr; i++)
		MHD_add_response_header(resp, rep->hdr_names[i],
		    rep->hdr_values[i]);
	ret = MHD_queue_response(conn, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void *
uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct hreq *h = calloc(1, sizeof(*h));

	(void)cls;
	(void)conn;
	if (h != NULL)
		h->uri = strndup(uri, URI_MAX);
	return h;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct hreq *h = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (h != NULL) {
		free(h->uri);
		free(h->body);
		free(h);
	}
	*con_cls = NULL;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
	struct sim *sim = cls;
	struct hreq *h = *con_cls;
	struct sim_reply rep;
	struct sim_req req;
	char *path = NULL, *q;
	enum MHD_Result ret;
	int control;

	(void)url;
	(void)version;
	if (h == NULL || h->uri == NULL)
		return MHD_NO;
	if (!h->started) {
		h->started = 1;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		if (!h->too_big && h->len + *upload_size <= BODY_MAX) {
			if (h->len + *upload_size + 1 > h->cap) {
				size_t nc = (h->len + *upload_size + 1) * 2;
				char *nb;
				if (nc > BODY_MAX + 1)
					nc = BODY_MAX + 1;
				nb = realloc(h->body, nc);
				if (nb == NULL)
					return MHD_NO;
				h->body = nb;
				h->cap = nc;
			}
			memcpy(h->body + h->len, upload_data, *upload_size);
			h->len += *upload_size;
			h->body[h->len] = '\0';
		} else {
			h->too_big = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}

	memset(&rep, 0, sizeof(rep));
	memset(&req, 0, sizeof(req));
	path = strdup(h->uri);
	if (path == NULL)
		return MHD_NO;
	q = strchr(path, '?');
	req.query = "";
	if (q != NULL) {
		*q = '\0';
		req.query = q + 1;
	}
	req.method = method;
	req.path = path;
	req.body = h->body;
	req.body_len = h->len;
	req.conn = conn;
	req.op = OP_ANY;
	control = strncmp(path, "/_sim/", 6) == 0 || strcmp(path, "/_sim") == 0;

	if (h->too_big)
		reply_error(sim, &rep, 413001, "MessageTooLarge",
		    "request body larger than %d bytes", BODY_MAX);
	else if (control)
		control_handle(sim, &req, &rep);
	else
		dispatch(sim, &req, &rep);

	if (!control) {
		pthread_mutex_lock(&sim->lock);
		calllog_add(sim, method, path, req.op, rep.reset ? 0 : rep.status,
		    rep.code, rep.name, req.device, rep.delay_ms);
		pthread_mutex_unlock(&sim->lock);
	}
	if (rep.reset)
		ret = MHD_NO;
	else
		ret = send_reply(conn, &rep);
	reply_clear(&rep);
	free(path);
	return ret;
}

void *
http_start(struct sim *sim, const char *addr, int port, const char *cert_pem,
    const char *key_pem, int *bound)
{
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;

	gsim = sim;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		log_error("listen address %s: not an IPv4 address", addr);
		return NULL;
	}
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL, NULL,
	    &handler, sim,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_HTTPS_MEM_CERT, cert_pem,
	    MHD_OPTION_HTTPS_MEM_KEY, key_pem,
	    MHD_OPTION_HTTPS_PRIORITIES,
	    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_URI_LOG_CALLBACK, &uri_logger, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, &completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
	    MHD_OPTION_END);
	if (d == NULL) {
		log_error("cannot start HTTPS server on %s:%d (address in use, "
		    "or bad certificate/key)", addr, port);
		return NULL;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	*bound = info ? info->port : port;
	return d;
}

void
http_stop(void *daemon)
{
	if (daemon != NULL)
		MHD_stop_daemon(daemon);
}
