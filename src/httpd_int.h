/*
 * httpd_int.h — internals shared by httpd.c (server, connections, limits)
 * and httpd_route.c (router, decoding, responses). Not for other modules.
 */
#ifndef FC_HTTPD_INT_H
#define FC_HTTPD_INT_H

#include <microhttpd.h>

#include "httpd.h"

struct httpd_router;

/* A new, empty router; NULL on allocation failure. */
struct httpd_router *httpd_router_new(void);
void httpd_router_free(struct httpd_router *r);
enum fc_err httpd_router_add(struct httpd_router *r, const char *method,
    const char *pattern, httpd_handler fn, void *arg, size_t body_max);

/*
 * Matches method and raw path. On 0, *fn, *arg and *body_max (the route's,
 * 0 = server default) are set and params[]
 * hold malloc'ed decoded values (*nparams of them; caller frees each).
 * Otherwise returns the status to answer (400, 404, 405) and sets nothing.
 */
int httpd_router_match(struct httpd_router *r, const char *method,
    const char *path, httpd_handler *fn, void **arg, size_t *body_max,
    char *params[HTTPD_MAX_PARAMS], size_t *nparams);

/* Percent-decodes s (plus_space: '+' means ' ') into a new string. NULL
 * for a malformed escape, an encoded NUL, or allocation failure. */
char *httpd_pct_decode(const char *s, int plus_space, size_t *len);

/* Opens the listening socket for spec (see httpd.h). On FC_OK: *fd, *port
 * (TCP, else 0) and *unix_path (malloc'ed path of a Unix socket we created,
 * else NULL). Logs failures naming name and spec. */
enum fc_err httpd_listen_open(const char *name, const char *spec, int *fd,
    int *port, char **unix_path);

/* Queues r (JSON or raw, with its headers) on c; MHD's answer. A response
 * without a body becomes a 500. Does not free r. */
enum MHD_Result httpd_send(struct MHD_Connection *c, struct httpd_response *r);
/* Queues the error shape with status, code and msg. */
enum MHD_Result httpd_send_error(struct MHD_Connection *c, int status,
    const char *code, const char *msg);

/* Frees what a response owns. */
void httpd_resp_clear(struct httpd_response *r);

#endif
