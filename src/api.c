/*
 * api.c — the operator API's frame: start/stop on httpd, the token file,
 * bearer authentication and roles (in httpd's precheck, before any body is
 * read), the route registry other modules add to, request metrics, and the
 * JSON helpers handlers share. Daemon process; handlers run on the API's
 * httpd threads, each with its own database connection.
 */
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "api_int.h"
#include "health.h"
#include "import.h"
#include "log.h"
#include "metrics.h"

#define TOKENS_MAX	256
#define TOKEN_LEN_MAX	1024
#define BODY_DEFAULT	(64 * 1024)

struct token {
	enum api_role	 role;
	unsigned char	 hash[32];
	char		 actor[16];	/* "api:" + 8 hex */
};

struct reg {
	struct api_route r;		/* r.api points back */
	struct reg	*next;
};

struct api {
	const struct cfg *cfg;
	struct reg	*regs;		/* under reg_lock */
	struct httpd	*h;
	struct token	*tokens;
	size_t		 ntokens;
	X509		*signer;
	struct api	*next;		/* running APIs */
};

/* Routes added by other modules, and the APIs they go to. */
struct ext_route {
	struct api_route r;
	char		*method, *pattern;
	struct ext_route *next;
};
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ext_route *ext_routes;
static struct api *running;


static struct metric *m_requests, *m_seconds, *m_auth_fail;
static int collector_added;

/* ---- the token file ---- */

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

/*
 * Lines "ROLE SHA256-HEX" (ROLE read or admin), '#' comments, blank
 * lines. The file holds hashes, not tokens, but is still read as a
 * secret (not world-readable).
 */
static enum fc_err
tokens_load(struct api *a, const char *path)
{
	char err[512], *text = NULL, *line, *p, role[16],
	    hex[80];
	size_t len = 0, i;
	int lineno = 0, n;
	enum fc_err result;

	result = cfg_secret_read(path, &text, &len, err, sizeof(err));
	if (result != FC_OK) {
		log_error("api: tokens_file: %s", err);
		return result;
	}
	if ((a->tokens = calloc(TOKENS_MAX, sizeof(*a->tokens))) == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	/* strtok_r would skip empty lines and lose the count; split by hand */
	for (line = text; line != NULL; line = p) {
		struct token *t;
		char extra;

		lineno++;
		if ((p = strchr(line, '\n')) != NULL)
			*p++ = '\0';
		while (isspace((unsigned char)*line))
			line++;
		if (*line == '\0' || *line == '#')
			continue;
		n = sscanf(line, "%15s %79s %c", role, hex, &extra);
		if (n != 2 || strlen(hex) != 64) {
			log_error("%s:%d: want \"read|admin SHA256-HEX\"", path,
			    lineno);
			result = FC_EINVAL;
			goto out;
		}
		if (a->ntokens == TOKENS_MAX) {
			log_error("%s:%d: more than %d tokens", path, lineno,
			    TOKENS_MAX);
			result = FC_EINVAL;
			goto out;
		}
		t = &a->tokens[a->ntokens];
		if (strcmp(role, "read") == 0)
			t->role = API_ROLE_READ;
		else if (strcmp(role, "admin") == 0)
			t->role = API_ROLE_ADMIN;
		else {
			log_error("%s:%d: unknown role \"%s\" (read or admin)",
			    path, lineno, role);
			result = FC_EINVAL;
			goto out;
		}
		for (i = 0; i < 32; i++) {
			int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				log_error("%s:%d: the hash is not hex", path,
				    lineno);
				result = FC_EINVAL;
				goto out;
			}
			t->hash[i] = (unsigned char)(hi << 4 | lo);
		}
		snprintf(t->actor, sizeof(t->actor), "api:");
		fc_hex(t->hash, 4, t->actor + 4, 0);
		a->ntokens++;
	}
	if (a->ntokens == 0)
		log_warn("api: %s holds no token; every request will get 401",
		    path);
	result = FC_OK;
out:
	fc_secret_free(text, len + 1);
	return result;
}

/* ---- authentication (httpd precheck) ---- */

static void
unauthorized(struct httpd_response *r, const char *why, int bad_token)
{
	httpd_resp_error(r, 401, "unauthorized", "%s", why);
	httpd_resp_header(r, "WWW-Authenticate", bad_token ?
	    "Bearer realm=\"fleetcert\", error=\"invalid_token\"" :
	    "Bearer realm=\"fleetcert\"");
	metrics_add(m_auth_fail, 1);
}

/*
 * Authorization: Bearer TOKEN. The token's SHA-256 is compared with every
 * configured hash by CRYPTO_memcmp, without stopping at a match, so the
 * time taken says nothing about which or how much matched.
 */
static int
precheck(void *arg, struct httpd_request *req, struct httpd_response *r)
{
	struct api *a = arg;
	const struct api_route *rt = req->arg;
	const char *h = httpd_header(req, "Authorization"), *tok;
	unsigned char md[32];
	unsigned int mdlen = 0;
	const struct token *match = NULL;
	enum api_role need;
	size_t i;

	if (h == NULL) {
		unauthorized(r, "a bearer token is required", 0);
		return 1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		unauthorized(r, "only Bearer authentication is accepted", 0);
		return 1;
	}
	for (tok = h + 7; *tok == ' '; tok++)
		;
	if (*tok == '\0' || strlen(tok) > TOKEN_LEN_MAX ||
	    !EVP_Digest(tok, strlen(tok), md, &mdlen, EVP_sha256(), NULL)) {
		unauthorized(r, "bad token", 1);
		return 1;
	}
	for (i = 0; i < a->ntokens; i++)
		if (CRYPTO_memcmp(md, a->tokens[i].hash, 32) == 0)
			match = &a->tokens[i];
	OPENSSL_cleanse(md, sizeof(md));
	if (match == NULL) {
		unauthorized(r, "bad token", 1);
		return 1;
	}
	need = rt->role;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD"))
		need = API_ROLE_ADMIN;
	if (match->role < need) {
		httpd_resp_error(r, 403, "forbidden",
		    "the %s role may not %s %s", match->role == API_ROLE_READ ?
		    "read" : "admin", req->method, rt->pattern);
		return 1;
	}
	snprintf(req->principal, sizeof(req->principal), "%s", match->actor);
	req->principal_role = (int)match->role;
	return 0;
}

/* ---- dispatch ---- */

static void
dispatch(struct httpd_request *req, struct httpd_response *r)
{
	const struct api_route *rt = req->arg;
	struct api_call c;
	struct timespec t0, t1;
	char code[8];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&c, 0, sizeof(c));
	c.req = req;
	c.cfg = rt->api->cfg;
	c.actor = req->principal;
	c.role = (enum api_role)req->principal_role;
	c.api = rt->api;
	rt->fn(&c, r);
	if (r->status == 0)
		httpd_resp_error(r, 500, "internal", "no response");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	snprintf(code, sizeof(code), "%d", r->status);
	metrics_add(m_requests, 1, req->method, rt->pattern, code);
	metrics_observe(m_seconds, (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, rt->pattern);
	if (strcmp(req->method, "GET") != 0)
		log_info("api: %s %s %s -> %d", c.actor, req->method,
		    req->path, r->status);
}

/* Registers one route with an API; the route is copied (freed with the
 * API) so it can carry the api pointer. reg_lock held. */
static enum fc_err
route_register(struct api *a, const struct api_route *src)
{
	struct reg *g;
	enum fc_err err;

	if ((g = malloc(sizeof(*g))) == NULL)
		return FC_ENOMEM;
	g->r = *src;
	g->r.api = a;
	err = httpd_route_add_limit(a->h, g->r.method, g->r.pattern, dispatch,
	    &g->r, g->r.body_max);
	if (err != FC_OK) {
		free(g);
		return err;
	}
	g->next = a->regs;
	a->regs = g;
	return FC_OK;
}

enum fc_err
api_route_add(const char *method, const char *pattern, enum api_role role,
    api_handler fn)
{
	struct ext_route *e, *it;
	struct api *a;
	enum fc_err err = FC_OK;

	if (method == NULL || pattern == NULL || fn == NULL ||
	    (role != API_ROLE_READ && role != API_ROLE_ADMIN))
		return FC_EINVAL;
	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    (e->method = strdup(method)) == NULL ||
	    (e->pattern = strdup(pattern)) == NULL) {
		if (e != NULL) {
			free(e->method);
			free(e);
		}
		return FC_ENOMEM;
	}
	e->r.method = e->method;
	e->r.pattern = e->pattern;
	e->r.role = role;
	e->r.fn = fn;
	pthread_mutex_lock(&reg_lock);
	for (it = ext_routes; it != NULL; it = it->next)
		if (strcmp(it->method, method) == 0 &&
		    strcmp(it->pattern, pattern) == 0)
			err = FC_ECONFLICT;
	for (a = running; a != NULL && err == FC_OK; a = a->next)
		err = route_register(a, &e->r);
	if (err == FC_OK) {
		e->next = ext_routes;
		ext_routes = e;
	}
	pthread_mutex_unlock(&reg_lock);
	if (err != FC_OK) {
		log_error("api: cannot add route %s %s: %s", method, pattern,
		    fc_strerror(err));
		free(e->method);
		free(e->pattern);
		free(e);
	}
	return err;
}

/* GET /v1: the endpoints this API serves, with the role each needs. */
static void
index_get(struct api_call *c, struct httpd_response *r)
{
	static const char *const allowed[] = { NULL };
	json_t *list = json_array(), *one;
	struct reg *g;

	if (api_query_check(c, r, allowed) < 0 || list == NULL) {
		json_decref(list);
		return;
	}
	pthread_mutex_lock(&reg_lock);
	for (g = c->api->regs; g != NULL; g = g->next) {
		one = json_pack("{s:s, s:s, s:s}", "method", g->r.method,
		    "path", g->r.pattern, "role", g->r.role == API_ROLE_ADMIN ||
		    strcmp(g->r.method, "GET") != 0 ? "admin" : "read");
		if (one == NULL || json_array_append_new(list, one) != 0)
			break;
	}
	pthread_mutex_unlock(&reg_lock);
	httpd_resp_json(r, 200, json_pack("{s:o}", "endpoints", list));
}

static const struct api_route api_index_routes[] = {
	{ "GET", "/v1", API_ROLE_READ, index_get, 0, NULL },
	{ NULL, NULL, 0, NULL, 0, NULL },
};

static const struct api_route *const builtin[] = { api_index_routes,
    api_devices_routes, api_audit_routes };

/* ---- start / stop ---- */

/* A TCP listen address must be loopback unless allow_remote. */
static enum fc_err
listen_check(const struct cfg *cfg)
{
	const char *l = cfg->api_listen, *colon;
	struct addrinfo hints, *res = NULL, *ai;
	char host[256];
	size_t n;
	int lo = 1;

	if (strncmp(l, "unix:", 5) == 0 || strncmp(l, "fd:", 3) == 0 ||
	    strncmp(l, "systemd", 7) == 0 || cfg->api_allow_remote)
		return FC_OK;
	if (l[0] == '[') {
		colon = strchr(l, ']');
		n = colon != NULL ? (size_t)(colon - l - 1) : 0;
		l++;
	} else {
		colon = strrchr(l, ':');
		n = colon != NULL ? (size_t)(colon - l) : 0;
	}
	if (n == 0 || n >= sizeof(host)) {
		log_error("api: bad listen address \"%s\"", cfg->api_listen);
		return FC_EINVAL;
	}
	memcpy(host, l, n);
	host[n] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0) {
		log_error("api: cannot resolve listen host \"%s\"", host);
		return FC_EINVAL;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *s = (void *)ai->ai_addr;

			lo = lo && (ntohl(s->sin_addr.s_addr) >> 24) == 127;
		} else if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *s = (void *)ai->ai_addr;

			lo = lo && IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
		} else
			lo = 0;
	}
	freeaddrinfo(res);
	if (!lo) {
		log_error("api: listen address %s is not loopback; set [api] "
		    "allow_remote = true to allow it", cfg->api_listen);
		return FC_EINVAL;
	}
	return FC_OK;
}

static void
collect_certs(void *arg, struct db *db)
{
	static struct metric *g;
	int64_t counts[INV_CERT_EXPIRED + 1];
	int i;

	if (db == NULL || inv_cert_count_by_status(db, counts) != FC_OK)
		return;
	if (g == NULL)
		g = metrics_gauge("fleetcert_certificates",
		    "Certificates in the inventory, by status", "status");
	for (i = 0; i <= INV_CERT_EXPIRED; i++)
		metrics_set(g, (double)counts[i],
		    inv_cert_status_name((enum inv_cert_status)i));
}

static void
metrics_init(void)
{
	static const double b[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

	m_requests = metrics_counter("fleetcert_api_requests_total",
	    "Operator API requests answered, by method, route and status",
	    "method,route,code");
	m_seconds = metrics_histogram("fleetcert_api_request_seconds",
	    "Operator API handler time, by route", "route", b,
	    FC_ARRAY_LEN(b));
	m_auth_fail = metrics_counter("fleetcert_api_auth_failures_total",
	    "Operator API requests refused with 401", NULL);
	if (!collector_added && metrics_collector_add(collect_certs, NULL) ==
	    FC_OK)
		collector_added = 1;
}

enum fc_err
api_start(const struct cfg *cfg, struct api **out)
{
	struct httpd_opts o;
	struct api *a = NULL;
	struct ext_route *e;
	const struct api_route *rt;
	size_t i;
	enum fc_err err;

	if (cfg->api_listen == NULL || cfg->api_listen[0] == '\0') {
		*out = NULL;
		return FC_OK;
	}
	if ((err = listen_check(cfg)) != FC_OK)
		return err;
	if (cfg->api_tokens_file == NULL) {
		log_error("api: [api] tokens_file is required when [api] "
		    "listen is set");
		return FC_EINVAL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return FC_ENOMEM;
	a->cfg = cfg;
	if ((err = tokens_load(a, cfg->api_tokens_file)) != FC_OK)
		goto out;
	if (cfg->manifest_signer != NULL &&
	    (err = import_signer_load(cfg->manifest_signer, &a->signer)) !=
	    FC_OK) {
		log_error("api: [import] manifest_signer %s: cannot load",
		    cfg->manifest_signer);
		goto out;
	}
	metrics_init();

	httpd_opts_init(&o);
	o.name = "api";
	o.listen = cfg->api_listen;
	o.db_path = cfg->db_path;
	o.threads = 4;
	o.conn_limit = 64;
	o.per_ip_limit = 32;	/* TCP only (allow_remote); not Unix sockets */
	o.idle_seconds = 30;
	o.deadline_seconds = 120;	/* large imports */
	o.body_max = BODY_DEFAULT;
	o.precheck = precheck;
	o.precheck_arg = a;
	if ((err = httpd_new(&o, &a->h)) != FC_OK)
		goto out;
	pthread_mutex_lock(&reg_lock);
	for (i = 0; i < FC_ARRAY_LEN(builtin); i++)
		for (rt = builtin[i]; rt->method != NULL && err == FC_OK; rt++)
			err = route_register(a, rt);
	for (e = ext_routes; e != NULL && err == FC_OK; e = e->next)
		err = route_register(a, &e->r);
	if (err == FC_OK) {
		a->next = running;
		running = a;
	}
	pthread_mutex_unlock(&reg_lock);
	if (err != FC_OK)
		goto out;
	if ((err = httpd_start(a->h)) != FC_OK) {
		api_stop(a);
		return err;
	}
	health_set("api", 1, NULL);
	*out = a;
	return FC_OK;
out:
	api_stop(a);
	return err;
}

void
api_stop(struct api *a)
{
	struct api **pp;
	struct reg *g;

	if (a == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	for (pp = &running; *pp != NULL; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	if (a->h != NULL)
		health_remove("api");
	httpd_free(a->h);	/* joins the threads: no handler runs now */
	while ((g = a->regs) != NULL) {
		a->regs = g->next;
		free(g);
	}
	X509_free(a->signer);
	if (a->tokens != NULL)
		OPENSSL_cleanse(a->tokens, TOKENS_MAX * sizeof(*a->tokens));
	free(a->tokens);
	free(a);
}

void
api_routes_foreach(void (*cb)(void *arg, const char *method,
    const char *pattern, enum api_role role), void *arg)
{
	const struct api_route *rt;
	struct ext_route *e;
	size_t i;

	for (i = 0; i < FC_ARRAY_LEN(builtin); i++)
		for (rt = builtin[i]; rt->method != NULL; rt++)
			cb(arg, rt->method, rt->pattern, rt->role);
	pthread_mutex_lock(&reg_lock);
	for (e = ext_routes; e != NULL; e = e->next)
		cb(arg, e->r.method, e->r.pattern, e->r.role);
	pthread_mutex_unlock(&reg_lock);
}

int
api_port(const struct api *a)
{
	return a != NULL && a->h != NULL ? httpd_port(a->h) : 0;
}

X509 *
api_manifest_signer(const struct api_call *c)
{
	return c->api->signer;
}
