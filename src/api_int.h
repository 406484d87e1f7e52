/*
 * api_int.h — internals shared by the files of the operator API: api.c
 * (start, tokens, authentication, routes, helpers), api_devices.c
 * (devices, certificates, expiry), api_audit.c (audit, imports, health,
 * metrics). Not for other modules.
 */
#ifndef FC_API_INT_H
#define FC_API_INT_H

#include <openssl/x509.h>

#include "api.h"

struct api_route {
	const char	*method;
	const char	*pattern;
	enum api_role	 role;
	api_handler	 fn;
	size_t		 body_max;	/* 0: the API's default */
	struct api	*api;		/* set per registration */
};

/* Built-in endpoints of each file, terminated by a NULL method. */
extern const struct api_route api_devices_routes[];
extern const struct api_route api_audit_routes[];

/* RFC 3339 string or JSON null for 0. */
json_t *api_time_json(int64_t t);

/* Parses an integer query argument in [min, max]; def if absent. -1 with
 * a 400 in r when malformed. */
int api_query_int(struct api_call *c, struct httpd_response *r,
    const char *name, long long min, long long max, long long def,
    long long *out);

/* The configured hub names ("" = the default [hub]) for import_opts.hubs,
 * in hubs (65 slots, NULL-terminated), or NULL when no hub is configured
 * (import.h: only the default hub then). */
const char *const *api_hub_names(const struct cfg *cfg, const char *hubs[65]);

/* The manifest signer loaded at start ([import] manifest_signer), or
 * NULL. Borrowed. */
X509 *api_manifest_signer(const struct api_call *c);

#endif
