/*
 * api.h — the operator API of DESIGN.md "Operator API": HTTP/1.1 + JSON on
 * [api] listen, bearer tokens with roles read/admin, on src/httpd.h.
 * Reference: doc/api.md.
 *
 * Other modules add their endpoints with one call each, before api_start
 * (main.c calls the modules' init functions first) or after it:
 *
 *	static void renew_post(struct api_call *c, struct httpd_response *r);
 *	api_route_add("POST", "/v1/devices/{id}/renew", API_ROLE_ADMIN,
 *	    renew_post);
 *
 * A handler runs on one of the API's threads with c->req->db, that thread's
 * own database connection; it answers with httpd_resp_json/_error/_raw. The
 * dispatcher has already authenticated the caller and checked the role;
 * any method but GET needs API_ROLE_ADMIN whatever the route says. Every
 * change a handler makes must be audited with c->actor as the actor (the
 * inventory functions take it).
 */
#ifndef FC_API_H
#define FC_API_H

#include <jansson.h>

#include "config.h"
#include "fc.h"
#include "httpd.h"
#include "inventory.h"

struct api;

enum api_role { API_ROLE_READ = 1, API_ROLE_ADMIN = 2 };

#define API_BODY_MAX		(64u << 20)	/* POST /v1/imports */
#define API_LIST_LIMIT_MAX	1000
#define API_LIST_LIMIT_DEFAULT	100

struct api_call {
	struct httpd_request	*req;	/* params, query, body, db */
	const struct cfg	*cfg;
	const char		*actor;	/* "api:" + 8 hex of the token's hash */
	enum api_role		 role;
	struct api		*api;	/* opaque */
};

typedef void (*api_handler)(struct api_call *c, struct httpd_response *r);

/*
 * Starts the API on cfg->api_listen (NULL or "": no API, *out = NULL,
 * FC_OK). Reads [api] tokens_file (lines "read|admin SHA256-HEX"; '#'
 * comments and blank lines allowed; a bad line is an error naming
 * FILE:LINE). A TCP address that is not loopback is refused unless
 * [api] allow_remote. cfg must outlive the API. FC_EINVAL, FC_EIO.
 */
enum fc_err api_start(const struct cfg *cfg, struct api **out);

/* Stops serving and frees; NULL is a no-op. */
void api_stop(struct api *api);

/* The bound TCP port (tests listen on port 0), 0 for other listeners. */
int api_port(const struct api *api);

/*
 * Registers an endpoint for every API started in this process (now and
 * later). pattern as in httpd_route_add ({name} segments arrive decoded in
 * c->req->params). FC_EINVAL for a bad pattern, FC_ECONFLICT if taken,
 * FC_ENOMEM.
 */
enum fc_err api_route_add(const char *method, const char *pattern,
    enum api_role role, api_handler fn);

/* Calls cb for every endpoint an API started now would serve (built-in
 * and added), e.g. to check doc/api.md against the code. */
void api_routes_foreach(void (*cb)(void *arg, const char *method,
    const char *pattern, enum api_role role), void *arg);

/* ---- helpers for handlers ---- */

enum api_type {
	API_T_STRING, API_T_INT, API_T_BOOL, API_T_OBJECT, API_T_ARRAY,
};

struct api_field {
	const char	*name;
	enum api_type	 type;
	int		 required;
};

/*
 * Parses the body as one JSON object whose members are all in fields
 * (terminated by a NULL name), of the listed types, with the required ones
 * present. On success *out is a new reference (caller json_decref()s) and
 * 0 is returned; otherwise r holds a 400 naming the offending field and
 * -1 is returned.
 */
int api_body_object(struct api_call *c, struct httpd_response *r,
    const struct api_field *fields, json_t **out);

/* Checks that every query argument is in allowed (NULL-terminated); else
 * a 400 naming it, and -1. */
int api_query_check(struct api_call *c, struct httpd_response *r,
    const char *const *allowed);

/* Shapes of DESIGN.md. New references, NULL when out of memory. */
json_t *api_cert_json(const struct inv_cert *c);
json_t *api_device_json(const struct inv_device *d, const struct inv_cert *c);

#endif
