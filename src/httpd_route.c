/*
 * httpd_route.c — the router of httpd (method + path pattern with {name}
 * segments), percent-decoding of path segments and query values, the
 * response helpers handlers use, and the queueing of a response on MHD.
 * Runs on MHD's threads; the route table is guarded by a read-write lock
 * so modules may add routes at any time.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "httpd_int.h"
#include "log.h"

#define MAX_SEGS	16

struct route {
	char		*method;
	char		*segs[MAX_SEGS];	/* "{}" marks a parameter */
	size_t		 nsegs;
	size_t		 nliteral;
	httpd_handler	 fn;
	void		*arg;
	size_t		 body_max;
	struct route	*next;
};

struct httpd_router {
	pthread_rwlock_t lock;
	struct route	*head;
};

struct httpd_router *
httpd_router_new(void)
{
	struct httpd_router *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if (pthread_rwlock_init(&r->lock, NULL) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

static void
route_free(struct route *rt)
{
	size_t i;

	if (rt == NULL)
		return;
	for (i = 0; i < rt->nsegs; i++)
		free(rt->segs[i]);
	free(rt->method);
	free(rt);
}

void
httpd_router_free(struct httpd_router *r)
{
	struct route *rt, *next;

	if (r == NULL)
		return;
	for (rt = r->head; rt != NULL; rt = next) {
		next = rt->next;
		route_free(rt);
	}
	pthread_rwlock_destroy(&r->lock);
	free(r);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
httpd_pct_decode(const char *s, int plus_space, size_t *len)
{
	size_t n = strlen(s), i, o = 0;
	char *out = malloc(n + 1);
	int hi, lo;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '+' && plus_space) {
			out[o++] = ' ';
			continue;
		}
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 ||
		    (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	if (len != NULL)
		*len = o;
	return out;
}

/* Splits a raw path into segments (pointers into buf, which is modified).
 * Returns the count or -1 when the path is not "/seg/seg..." (empty
 * segments, no leading slash, too many). */
static int
split(char *buf, char *segs[MAX_SEGS])
{
	int n = 0;
	char *p, *q;

	if (buf[0] != '/')
		return -1;
	if (buf[1] == '\0')
		return 0;
	for (p = buf + 1; p != NULL; p = q) {
		q = strchr(p, '/');
		if (q != NULL)
			*q++ = '\0';
		if (*p == '\0' || n == MAX_SEGS)
			return -1;
		segs[n++] = p;
	}
	return n;
}

enum fc_err
httpd_router_add(struct httpd_router *r, const char *method,
    const char *pattern, httpd_handler fn, void *arg, size_t body_max)
{
	struct route *rt = NULL, *it;
	char *buf = NULL, *segs[MAX_SEGS];
	size_t nparam = 0;
	int n, i;
	enum fc_err err = FC_EINVAL;

	if (method == NULL || pattern == NULL || fn == NULL ||
	    strlen(pattern) > 512)
		goto out;
	if ((buf = strdup(pattern)) == NULL ||
	    (rt = calloc(1, sizeof(*rt))) == NULL ||
	    (rt->method = strdup(method)) == NULL) {
		err = FC_ENOMEM;
		goto out;
	}
	if ((n = split(buf, segs)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		size_t l = strlen(segs[i]);
		int isparam = segs[i][0] == '{' && segs[i][l - 1] == '}' &&
		    l > 2;

		if (isparam && ++nparam > HTTPD_MAX_PARAMS)
			goto out;
		if (!isparam && (strchr(segs[i], '{') || strchr(segs[i], '}')))
			goto out;
		rt->segs[i] = strdup(isparam ? "{}" : segs[i]);
		if (rt->segs[i] == NULL) {
			err = FC_ENOMEM;
			goto out;
		}
		rt->nsegs = (size_t)i + 1;
		rt->nliteral += !isparam;
	}
	rt->fn = fn;
	rt->arg = arg;
	rt->body_max = body_max;

	pthread_rwlock_wrlock(&r->lock);
	for (it = r->head; it != NULL; it = it->next) {
		size_t k;

		if (strcmp(it->method, rt->method) != 0 ||
		    it->nsegs != rt->nsegs)
			continue;
		for (k = 0; k < it->nsegs; k++)
			if (strcmp(it->segs[k], rt->segs[k]) != 0)
				break;
		if (k == it->nsegs)
			break;
	}
	if (it != NULL) {
		pthread_rwlock_unlock(&r->lock);
		err = FC_ECONFLICT;
		goto out;
	}
	rt->next = r->head;
	r->head = rt;
	rt = NULL;
	pthread_rwlock_unlock(&r->lock);
	err = FC_OK;
out:
	if (err == FC_EINVAL)
		log_error("httpd: bad route %s %s", method ? method : "(null)",
		    pattern ? pattern : "(null)");
	route_free(rt);
	free(buf);
	return err;
}

/* A decoded path parameter must be usable as an identifier and never as a
 * path: no NUL (refused by the decoder), no '/', not "." or "..", short. */
static int
param_ok(const char *v, size_t len)
{
	if (len == 0 || len >= HTTPD_PARAM_MAX)
		return 0;
	if (strchr(v, '/') != NULL || strchr(v, '\\') != NULL)
		return 0;
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
		return 0;
	return 1;
}

int
httpd_router_match(struct httpd_router *r, const char *method,
    const char *path, httpd_handler *fn, void **arg, size_t *body_max,
    char *params[HTTPD_MAX_PARAMS], size_t *nparams)
{
	char *buf = NULL, *segs[MAX_SEGS], *dec[MAX_SEGS] = { 0 };
	struct route *rt, *best = NULL;
	int n, i, status = 404, path_matched = 0;
	size_t k, np = 0;

	if (strlen(path) > 4096 || (buf = strdup(path)) == NULL)
		return 404;
	if ((n = split(buf, segs)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		size_t len;

		if ((dec[i] = httpd_pct_decode(segs[i], 0, &len)) == NULL) {
			status = 400;
			goto out;
		}
	}

	pthread_rwlock_rdlock(&r->lock);
	for (rt = r->head; rt != NULL; rt = rt->next) {
		if (rt->nsegs != (size_t)n)
			continue;
		for (k = 0; k < rt->nsegs; k++)
			if (strcmp(rt->segs[k], "{}") != 0 &&
			    strcmp(rt->segs[k], dec[k]) != 0)
				break;
		if (k != rt->nsegs)
			continue;
		path_matched = 1;
		if (strcmp(rt->method, method) != 0)
			continue;
		if (best == NULL || rt->nliteral > best->nliteral)
			best = rt;
	}
	if (best == NULL) {
		pthread_rwlock_unlock(&r->lock);
		status = path_matched ? 405 : 404;
		goto out;
	}
	for (k = 0; k < best->nsegs; k++) {
		if (strcmp(best->segs[k], "{}") != 0)
			continue;
		if (!param_ok(dec[k], strlen(dec[k]))) {
			pthread_rwlock_unlock(&r->lock);
			status = 400;
			goto out;
		}
	}
	*fn = best->fn;
	*arg = best->arg;
	*body_max = best->body_max;
	for (k = 0; k < best->nsegs; k++) {
		if (strcmp(best->segs[k], "{}") == 0) {
			params[np++] = dec[k];
			dec[k] = NULL;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	*nparams = np;
	status = 0;
out:
	for (i = 0; i < MAX_SEGS; i++)
		free(dec[i]);
	free(buf);
	return status;
}

void
httpd_resp_clear(struct httpd_response *r)
{
	size_t i;

	json_decref(r->json);
	free(r->body);
	for (i = 0; i < r->nhdr; i++) {
		free(r->hdr_name[i]);
		free(r->hdr_value[i]);
	}
	memset(r, 0, sizeof(*r));
}

static void
resp_reset_body(struct httpd_response *r)
{
	json_decref(r->json);
	r->json = NULL;
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	r->content_type[0] = '\0';
}

void
httpd_resp_json(struct httpd_response *r, int status, json_t *json)
{
	resp_reset_body(r);
	if (json == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	r->status = status;
	r->json = json;
}

void
httpd_resp_error(struct httpd_response *r, int status, const char *code,
    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp_reset_body(r);
	r->status = status;
	r->json = json_pack("{s:{s:s, s:s}}", "error", "code", code,
	    "message", msg);
}

void
httpd_resp_raw_take(struct httpd_response *r, int status, const char *ctype,
    char *data, size_t len)
{
	resp_reset_body(r);
	r->status = status;
	r->body = data;
	r->body_len = len;
	snprintf(r->content_type, sizeof(r->content_type), "%s", ctype);
}

void
httpd_resp_raw(struct httpd_response *r, int status, const char *ctype,
    const void *data, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL) {
		httpd_resp_error(r, 500, "internal", "out of memory");
		return;
	}
	memcpy(copy, data, len);
	httpd_resp_raw_take(r, status, ctype, copy, len);
}

void
httpd_resp_header(struct httpd_response *r, const char *name,
    const char *value)
{
	char *n, *v;

	if (r->nhdr == HTTPD_MAX_HEADERS)
		return;
	n = strdup(name);
	v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return;
	}
	r->hdr_name[r->nhdr] = n;
	r->hdr_value[r->nhdr++] = v;
}

void
httpd_resp_fc_err(struct httpd_response *r, enum fc_err err, const char *what)
{
	switch (err) {
	case FC_EINVAL:
		httpd_resp_error(r, 400, "invalid", "%s", what);
		break;
	case FC_ENOTFOUND:
		httpd_resp_error(r, 404, "not_found", "%s", what);
		break;
	case FC_ECONFLICT:
		httpd_resp_error(r, 409, "conflict", "%s", what);
		break;
	case FC_EPERM:
		httpd_resp_error(r, 403, "forbidden", "%s", what);
		break;
	case FC_EBUSY:
		httpd_resp_error(r, 503, "busy", "%s", what);
		httpd_resp_header(r, "Retry-After", "1");
		break;
	case FC_EREMOTE:
		httpd_resp_error(r, 502, "remote", "%s", what);
		break;
	default:
		httpd_resp_error(r, 500, "internal", "%s: %s", what,
		    fc_strerror(err));
		break;
	}
}

enum MHD_Result
httpd_send(struct MHD_Connection *c, struct httpd_response *r)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;
	char *text = NULL;
	size_t len = 0, i;
	const char *ctype = "application/json";

	if (r->status == 0 || (r->json == NULL && r->body == NULL))
		httpd_resp_error(r, 500, "internal", "no response");
	if (r->json != NULL) {
		text = json_dumps(r->json, JSON_COMPACT);
		if (text == NULL)
			return MHD_NO;
		len = strlen(text);
		mr = MHD_create_response_from_buffer(len, text,
		    MHD_RESPMEM_MUST_FREE);
		if (mr == NULL)
			free(text);
	} else {
		ctype = r->content_type[0] != '\0' ? r->content_type :
		    "application/octet-stream";
		mr = MHD_create_response_from_buffer(r->body_len, r->body,
		    MHD_RESPMEM_MUST_FREE);
		if (mr != NULL)
			r->body = NULL;
	}
	if (mr == NULL)
		return MHD_NO;
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
	for (i = 0; i < r->nhdr; i++)
		MHD_add_response_header(mr, r->hdr_name[i], r->hdr_value[i]);
	if (MHD_get_response_header(mr, "Cache-Control") == NULL)
		MHD_add_response_header(mr, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, (unsigned)r->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

enum MHD_Result
httpd_send_error(struct MHD_Connection *c, int status, const char *code,
    const char *msg)
{
	struct httpd_response r;
	enum MHD_Result ret;

	memset(&r, 0, sizeof(r));
	httpd_resp_error(&r, status, code, "%s", msg);
	ret = httpd_send(c, &r);
	httpd_resp_clear(&r);
	return ret;
}
