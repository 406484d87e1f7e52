/*
 * httpd.h — the one HTTP server layer of fleetcert, on libmicrohttpd. Used by
 * the operator API (api.c) and the re-enrolment endpoint (enrol.c); each runs
 * its own struct httpd. Runs MHD's internal thread pool; handlers run on those
 * threads, each with its own SQLite connection.
 *
 * Usage:
 *	struct httpd_opts o;
 *	httpd_opts_init(&o);			// safe defaults
 *	o.name = "api"; o.listen = "127.0.0.1:8450"; o.db_path = cfg->db_path;
 *	httpd_new(&o, &h);			// parses, checks TLS files
 *	httpd_route_add(h, "GET", "/v1/devices/{id}", device_get, ctx);
 *	httpd_start(h);				// binds and serves
 *	...
 *	httpd_free(h);				// stops, joins, closes
 *
 * Listen addresses (o.listen):
 *	"HOST:PORT", "[V6]:PORT"	TCP (PORT 0: any; see httpd_port)
 *	"unix:/PATH"			Unix socket, mode 0660; a stale socket
 *					file is removed, a live one is an error
 *	"fd:N"				an inherited listening socket
 *	"systemd" / "systemd:NAME"	socket activation (LISTEN_FDS/LISTEN_PID):
 *					the first passed fd, or the one whose
 *					FileDescriptorName= is NAME
 *
 * Limits: total and per-IP connection limits (at the total limit MHD stops
 * accepting, so new clients wait in the listen backlog; over the per-IP
 * limit a connection is accepted and closed at once); an idle timeout
 * (MHD's, which counts only idle time) and a request deadline: a
 * connection whose current
 * request has not fully arrived within deadline_seconds of its first byte
 * (or of the end of the previous request) is cut, so a client dripping one
 * byte a second cannot hold a slot. Bodies over body_max get 413. MHD's own
 * log messages go through a rate limiter (a burst of 10, then one a second,
 * with a count of what was suppressed).
 *
 * Errors are answered as {"error": {"code": "...", "message": "..."}}.
 */
#ifndef FC_HTTPD_H
#define FC_HTTPD_H

#include <stddef.h>

#include <jansson.h>

#include "db.h"
#include "fc.h"

struct httpd;
struct httpd_request;
struct httpd_response;

struct httpd_opts {
	const char	*name;		/* for logs: "api", "enrol" */
	const char	*listen;	/* see above; required */
	const char	*tls_cert;	/* PEM chain file; NULL: plain HTTP */
	const char	*tls_key;	/* PEM key file (read as a secret) */
	const char	*tls_priorities;/* NULL: HTTPD_TLS_PRIORITIES */
	const char	*db_path;	/* NULL: handlers get req->db = NULL */
	int		 threads;	/* MHD thread pool size, 1-64 */
	int		 conn_limit;	/* total connections */
	int		 per_ip_limit;	/* 0: none */
	int		 idle_seconds;	/* MHD_OPTION_CONNECTION_TIMEOUT */
	int		 deadline_seconds; /* whole request must arrive by then */
	size_t		 body_max;	/* bytes; larger bodies get 413 */

	/*
	 * Optional: called once the request line and headers are in and a
	 * route matched, before any body is read (req->body is NULL, req->db
	 * NULL). Returns 0 to go on, or non-zero after filling resp, which is
	 * sent at once (the body is never read). It may record who the
	 * client is in req->principal / req->principal_role for the handler.
	 * The API authenticates here, so an unauthenticated client cannot
	 * make it buffer a large body.
	 */
	int		(*precheck)(void *arg, struct httpd_request *req,
			    struct httpd_response *resp);
	void		*precheck_arg;
};

/* TLS 1.2 and 1.3 only (GnuTLS priority string). */
#define HTTPD_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Defaults: 4 threads, 256 connections, 32 per IP, idle 15 s, deadline
 * 30 s, body 16 KiB, no TLS, no database. */
void httpd_opts_init(struct httpd_opts *o);

#define HTTPD_MAX_PARAMS	4	/* {x} segments in one pattern */
#define HTTPD_PARAM_MAX		256	/* bytes of one decoded {x} value */
#define HTTPD_MAX_QUERY		32	/* query arguments kept */

struct httpd_kv {
	const char	*key;
	const char	*value;		/* percent-decoded; "" if absent */
};

/*
 * A complete request, handed to a handler. Everything lives until the
 * handler returns. Path parameters are percent-decoded and guaranteed
 * non-empty, at most HTTPD_PARAM_MAX - 1 bytes, free of NUL, '/', and not
 * "." or "..". body is NUL-terminated (the NUL not counted in body_len).
 */
struct httpd_request {
	const char	*method;
	const char	*path;		/* as received, not decoded */
	const char	*params[HTTPD_MAX_PARAMS];	/* {x} in pattern order */
	size_t		 nparams;
	struct httpd_kv	 query[HTTPD_MAX_QUERY];
	size_t		 nquery;
	const char	*body;
	size_t		 body_len;
	const char	*peer;		/* "127.0.0.1", "::1" or "unix" */
	struct db	*db;		/* this thread's connection, or NULL */
	void		*arg;		/* the route's arg */
	struct MHD_Connection *conn;	/* for httpd_header() */
	char		 principal[64];	/* set by opts.precheck, else "" */
	int		 principal_role;
};

/* A header's value (case-insensitive name), NULL if absent. */
const char *httpd_header(const struct httpd_request *req, const char *name);
/* A query argument's decoded value, NULL if absent. */
const char *httpd_query(const struct httpd_request *req, const char *name);

#define HTTPD_MAX_HEADERS	4

/* What a handler fills in; use the helpers below. */
struct httpd_response {
	int		 status;
	json_t		*json;		/* owned; sent as application/json */
	char		*body;		/* owned raw bytes (malloc) */
	size_t		 body_len;
	char		 content_type[64];
	char		*hdr_name[HTTPD_MAX_HEADERS];	/* owned */
	char		*hdr_value[HTTPD_MAX_HEADERS];
	size_t		 nhdr;
};

/* Sets status and a JSON body; steals json (NULL: 500). */
void httpd_resp_json(struct httpd_response *r, int status, json_t *json);
/* Sets status and the error shape {"error":{"code","message"}}. */
void httpd_resp_error(struct httpd_response *r, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets status and raw bytes (copied) of content type ctype. */
void httpd_resp_raw(struct httpd_response *r, int status, const char *ctype,
    const void *data, size_t len);
/* Like httpd_resp_raw but takes ownership of data (malloc'ed). */
void httpd_resp_raw_take(struct httpd_response *r, int status,
    const char *ctype, char *data, size_t len);
/* Adds a response header (copied); silently ignored past HTTPD_MAX_HEADERS. */
void httpd_resp_header(struct httpd_response *r, const char *name,
    const char *value);
/* Maps an fc_err to a status and error response (e.g. FC_ENOTFOUND: 404). */
void httpd_resp_fc_err(struct httpd_response *r, enum fc_err err,
    const char *what);

/*
 * A handler fills resp (status 0 left unset means 500). It runs on an MHD
 * thread; it must not block for long.
 */
typedef void (*httpd_handler)(struct httpd_request *req,
    struct httpd_response *resp);

/*
 * Creates a server from o (strings are copied). Reads the TLS files and
 * checks the listen address but does not bind. FC_EINVAL (logged) for bad
 * options; FC_EIO for unreadable TLS files.
 */
enum fc_err httpd_new(const struct httpd_opts *o, struct httpd **out);

/*
 * Adds a route: method ("GET", "POST", "DELETE", ...) and a pattern of
 * literal segments and {name} segments ("/v1/devices/{id}/certificates").
 * May be called before or after httpd_start, from any thread. A path that
 * matches no route gets 404; one that matches a pattern under another
 * method gets 405. FC_EINVAL for a bad pattern, FC_ECONFLICT if the same
 * method and pattern exist.
 */
enum fc_err httpd_route_add(struct httpd *h, const char *method,
    const char *pattern, httpd_handler fn, void *arg);
/* The same with a body cap of its own for this route (0: opts.body_max);
 * e.g. a bulk import on a server whose other routes take small bodies. */
enum fc_err httpd_route_add_limit(struct httpd *h, const char *method,
    const char *pattern, httpd_handler fn, void *arg, size_t body_max);

/* Binds and starts serving. FC_EIO (logged) if the address is unusable. */
enum fc_err httpd_start(struct httpd *h);

/* The bound TCP port (after httpd_start), 0 for Unix sockets and fds. */
int httpd_port(const struct httpd *h);

/* Stops serving (joins the threads, closes their databases), removes a
 * Unix socket it created, frees h. NULL is a no-op. */
void httpd_free(struct httpd *h);

/* Number of log lines MHD emitted and how many were suppressed (tests). */
void httpd_log_stats(const struct httpd *h, unsigned long *logged,
    unsigned long *suppressed);

#endif
