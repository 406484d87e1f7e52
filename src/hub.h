/*
 * hub.h — the Azure IoT Hub service client: the only API through which
 * fleetcert talks to a hub (delivery, revocation, reconciliation, sweep, CLI).
 * hub_*.c are the only files that know IoT Hub's wire format
 * (shared/azure-iothub.md); callers see typed requests and outcome classes.
 *
 * Model
 * - One struct hub per configured hub: a libcurl multi handle (connection
 *   cache, HTTP/1.1 keep-alive, TLS verification always on), a SAS token
 *   re-signed before expiry, two token buckets (all calls; registry writes),
 *   metrics. A struct hub is driven by ONE thread (the scheduler's); only
 *   hub_wakeup() and hub_metrics_read() may be called from other threads.
 * - A request is built by a pure hub_req_*() function (no I/O) and then either
 *   submitted (hub_submit: asynchronous, completion callback) or run to its
 *   end (hub_call: blocking, for the CLI, the sweep and tests).
 * - 429/500/502/503/504 and transport errors are retried inside the client
 *   (exponential back-off with full jitter, Retry-After honoured) within an
 *   attempt and time budget. The caller sees one final answer, reduced to an
 *   outcome class plus the parsed IoT Hub error. A direct method is not
 *   resent when the device was too slow (504101: HUB_RETRY) or the HTTP
 *   timeout expired (HUB_UNREACHABLE): the caller decides (twin fallback).
 * - A write retried after a transport error may have been applied by the
 *   attempt whose answer was lost: a create may then answer 409001, an
 *   If-Match update 412001, a method may reach the device twice. Callers
 *   re-read before concluding; device methods are idempotent by protocol.
 * - Nothing here logs the connection string, the key or a token.
 *
 * Driving it from an event loop:
 *	hub_submit(h, req, done_cb, arg);           any number of times
 *	for (;;) {
 *		hub_perform(h, &timeout_ms);        starts, advances, completes
 *		hub_poll(h, timeout_ms);            or hub_fdset() + own select()
 *	}
 * Callbacks run inside hub_perform() (and hub_call()/hub_run()) on the
 * driving thread. A callback may submit new requests; it must not call
 * hub_perform, hub_poll, hub_call, hub_run or hub_close.
 */
#ifndef FC_HUB_H
#define FC_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/select.h>
#include <time.h>

#include <jansson.h>

#include "fc.h"

struct cfg_hub;
struct hub;
struct hub_req;

/* What a call came to. Every hub answer is reduced to one of these. */
enum hub_outcome {
	HUB_DONE = 0,		/* the hub did it (2xx) */
	HUB_RETRY,		/* throttled/server error after the retry budget:
				 * try again after retry_after_ms */
	HUB_REJECTED,		/* the hub refused this request (4xx: not
				 * found, exists, stale etag, bad input...) */
	HUB_UNREACHABLE,	/* no answer (connect/reset/timeout) after the
				 * budget; retry_after_ms is a suggestion */
	HUB_MISCONFIGURED,	/* our side is wrong: auth (401/403), bad host,
				 * TLS verification, protocol version */
	HUB_OUTCOME_COUNT
};

/* Operations, for metrics and results. */
enum hub_op {
	HUB_OP_DEVICE_GET = 0,
	HUB_OP_DEVICE_CREATE,
	HUB_OP_DEVICE_UPDATE,	/* update, disable, thumbprint changes */
	HUB_OP_DEVICE_DELETE,
	HUB_OP_BULK,
	HUB_OP_TWIN_GET,
	HUB_OP_TWIN_PATCH,
	HUB_OP_METHOD,
	HUB_OP_QUERY,
	HUB_OP_COUNT
};

/* IoT Hub error codes (HTTP status x 1000 + n) fleetcert acts on. */
#define HUB_E_INVALID_PROTOCOL_VERSION	400001
#define HUB_E_ARGUMENT_INVALID		400004
#define HUB_E_DEVICE_DEFINED_MULTIPLE	400011
#define HUB_E_UNAUTHORIZED		401002
#define HUB_E_QUOTA_EXCEEDED		403002
#define HUB_E_DEVICE_NOT_FOUND		404001
#define HUB_E_DEVICE_NOT_ONLINE		404103
#define HUB_E_DEVICE_ALREADY_EXISTS	409001
#define HUB_E_PRECONDITION_FAILED	412001
#define HUB_E_THROTTLED			429001
#define HUB_E_THROTTLING_BACKLOG	429003
#define HUB_E_SERVER_ERROR		500001
#define HUB_E_SERVICE_UNAVAILABLE	503001
#define HUB_E_GATEWAY_TIMEOUT		504101

/* The parsed IoT Hub error of a failed call (all "" / 0 when unknown). */
struct hub_error {
	int	 code;		/* 6-digit code from the body, or from the name */
	char	 name[64];	/* "DeviceNotFound", from body or iothub-errorcode */
	char	 message[256];	/* the hub's text, printable ASCII, truncated;
				 * for transport errors curl's text */
	char	 tracking_id[96];
};

/* 1 when e matches code by number or by its well-known name. */
int hub_error_is(const struct hub_error *e, int code);

enum hub_auth {
	HUB_AUTH_UNKNOWN = 0,
	HUB_AUTH_SAS,
	HUB_AUTH_SELFSIGNED,
	HUB_AUTH_CA,		/* "certificateAuthority" */
	HUB_AUTH_NONE
};

#define HUB_ETAG_MAX	128
#define HUB_REASON_MAX	129

/*
 * A registry device (or the device part of a twin / query row). raw is the
 * whole object as the hub sent it (or NULL for a new device): an update sends
 * raw back with the typed fields written over it, because a PUT replaces the
 * whole device. Empty thumbprint strings mean "none" (JSON null).
 */
struct hub_device {
	char	 id[FC_DEVICE_ID_MAX];
	char	 etag[HUB_ETAG_MAX];	/* unquoted, as in the JSON body */
	int	 enabled;		/* status "enabled" */
	char	 status_reason[HUB_REASON_MAX];
	enum hub_auth auth;
	char	 primary_thumbprint[FC_SHA256_HEX];
	char	 secondary_thumbprint[FC_SHA256_HEX];
	int	 connected;		/* connectionState "Connected" */
	time_t	 last_activity;		/* 0 when unknown / never */
	json_t	*raw;
};

/* Initialises d as a new enabled device with id (truncated ids: FC_EINVAL). */
enum fc_err hub_device_init(struct hub_device *d, const char *id);
/* Fills out from a registry device, twin or query row; FC_EINVAL when obj
 * is not one. out->raw holds a new reference (hub_device_clear it). */
enum fc_err hub_device_from_json(const json_t *obj, struct hub_device *out);
/* Copies src into dst (dst->raw: new reference). */
void hub_device_copy(struct hub_device *dst, const struct hub_device *src);
/* Drops d->raw; d may be reused. NULL is a no-op. */
void hub_device_clear(struct hub_device *d);

/* Bulk registry (POST /devices, <= HUB_BULK_MAX entries). */
#define HUB_BULK_MAX	100
enum hub_import_mode {
	HUB_IMPORT_CREATE = 0,
	HUB_IMPORT_UPDATE,
	HUB_IMPORT_UPDATE_IF_MATCH_ETAG,
	HUB_IMPORT_DELETE,
	HUB_IMPORT_DELETE_IF_MATCH_ETAG,
};
struct hub_bulk_entry {
	const struct hub_device *device;  /* id always; all fields for create
					   * and update; etag for *IfMatchETag */
	enum hub_import_mode mode;
};
/* Per-entry result, in the order of the request's entries. */
struct hub_bulk_item {
	char	 device_id[FC_DEVICE_ID_MAX];
	int	 ok;
	struct hub_error error;	/* when !ok: errorCode (name), errorStatus */
};

/*
 * A finished call, handed to the completion callback, which OWNS it (free
 * with hub_result_free). Fields below "op-specific" are set on HUB_DONE only.
 */
struct hub_result {
	enum hub_op	 op;
	enum hub_outcome outcome;
	long		 http_status;	/* last HTTP status, 0: no answer */
	int		 retry_after_ms; /* HUB_RETRY/HUB_UNREACHABLE: wait this */
	unsigned	 attempts;	/* HTTP attempts made */
	struct hub_error error;		/* outcome != HUB_DONE */
	char		 device_id[FC_DEVICE_ID_MAX]; /* "" for bulk, query */
	void		*user;		/* hub_req_set_user() value */

	/* op-specific */
	json_t		*json;		/* parsed 2xx body (NULL for 204) */
	struct hub_device device;	/* device get/create/update, twin get */
	char		 twin_etag[HUB_ETAG_MAX];	/* twin get/patch */
	int64_t		 twin_version;
	int		 method_status;	/* the device's status (not HTTP) */
	json_t		*method_payload; /* borrowed from json; may be NULL */
	char		*continuation;	/* query: next page, NULL on last */
	struct hub_bulk_item *bulk;	/* bulk: one per entry */
	size_t		 nbulk;
	size_t		 nbulk_failed;
};

void hub_result_free(struct hub_result *res);

typedef void hub_done_fn(struct hub_result *res, void *arg);

/* ---- building requests (pure: no I/O, no hub needed) ------------------ */
/*
 * Each returns FC_OK and a new request in *out (submit it, or
 * hub_req_free it), or FC_EINVAL for bad arguments (invalid device id,
 * too many entries, timeouts out of range...) / FC_ENOMEM.
 * etag arguments: NULL or "*" mean "any" (If-Match: *); anything else is
 * sent quoted (If-Match: "<etag>"), as IoT Hub silently ignores unquoted.
 */
enum fc_err hub_req_device_get(const char *id, struct hub_req **out);
/* PUT without If-Match: 409001 when it exists. */
enum fc_err hub_req_device_create(const struct hub_device *d,
    struct hub_req **out);
/* Full PUT of d (raw + typed fields), If-Match "d->etag" ("" = *). */
enum fc_err hub_req_device_update(const struct hub_device *d,
    struct hub_req **out);
enum fc_err hub_req_device_delete(const char *id, const char *etag,
    struct hub_req **out);
/* Update of d with status disabled and statusReason reason (<=128). */
enum fc_err hub_req_device_disable(const struct hub_device *d,
    const char *reason, struct hub_req **out);
/* Rolling self-signed certificates: step 1 puts thumb (SHA-1 or SHA-256
 * hex, same length as the primary) in the secondary slot; step 2 makes
 * thumb the primary and removes the old one (secondary = null). */
enum fc_err hub_req_thumbprint_stage(const struct hub_device *d,
    const char *thumb, struct hub_req **out);
enum fc_err hub_req_thumbprint_promote(const struct hub_device *d,
    const char *thumb, struct hub_req **out);
/* 1..HUB_BULK_MAX entries, distinct ids. */
enum fc_err hub_req_bulk(const struct hub_bulk_entry *entries, size_t n,
    struct hub_req **out);
enum fc_err hub_req_twin_get(const char *id, struct hub_req **out);
/* PATCH {"properties":{"desired": desired}}; desired is an object. */
enum fc_err hub_req_twin_patch_desired(const char *id, const json_t *desired,
    const char *etag, struct hub_req **out);
/* Direct method; response 5-300 s, connect 0-300 s; payload may be NULL
 * (JSON null). The HTTP timeout is response + connect + slack. */
enum fc_err hub_req_method_invoke(const char *id, const char *method,
    const json_t *payload, int response_timeout_s, int connect_timeout_s,
    struct hub_req **out);
/* One page (page_size 1..100) of a registry query; continuation NULL for
 * the first page, else the previous result's continuation. */
enum fc_err hub_req_query(const char *sql, int page_size,
    const char *continuation, struct hub_req **out);

/* An opaque value handed back in hub_result.user. */
void hub_req_set_user(struct hub_req *req, void *user);
/* Registry operations this request counts for at the hub (bulk: entries,
 * other registry writes: 1, everything else: 0). It takes ONE token of the
 * registry_per_minute bucket per call. */
unsigned hub_req_registry_ops(const struct hub_req *req);
enum hub_op hub_req_op(const struct hub_req *req);
void hub_req_free(struct hub_req *req);

/* ---- a hub ------------------------------------------------------------ */
struct hub_opts {
	int	 rate_per_second;	/* all calls; 0: unlimited */
	int	 registry_per_minute;	/* registry writes; 0: unlimited */
	int	 burst_calls;		/* bucket sizes; 0: rate/10 and  */
	int	 burst_registry;	/*   registry_per_minute/60, min 1 */
	const char *ca_file;		/* extra trust anchor, PEM; NULL none */
	int	 max_attempts;		/* per call, >= 1 (default 5) */
	int	 retry_budget_ms;	/* give up retrying after (default 60000) */
	int	 backoff_base_ms;	/* first back-off cap (default 500) */
	int	 backoff_max_ms;	/* back-off cap (default 30000) */
	int	 connect_timeout_ms;	/* default 10000 */
	int	 request_timeout_ms;	/* non-method calls (default 30000) */
	int	 max_in_flight;		/* concurrent HTTP requests (default 32) */
	size_t	 max_body;		/* answer size cap (default 16 MiB: a
				 * query page of 100 full twins) */
};

/* Fills o with the defaults above and no rate limits. */
void hub_opts_default(struct hub_opts *o);

/*
 * Opens a hub from its [hub] section: reads connection_string_file with
 * cfg_secret_read, rates and ca_file from the section, defaults otherwise.
 * FC_EINVAL (bad connection string: the message names the field, never the
 * value), FC_EIO/FC_EPERM (file), FC_ENOMEM. *out: hub_close it.
 */
enum fc_err hub_open(const struct cfg_hub *ch, struct hub **out);
/* Same from a connection string held by the caller; name labels logs. */
enum fc_err hub_open_string(const char *name, const char *conn,
    const struct hub_opts *opts, struct hub **out);
/* Completes every unfinished call with HUB_UNREACHABLE ("cancelled") and
 * frees everything (secrets wiped). NULL is a no-op. */
void hub_close(struct hub *h);

/* HostName as configured ("myhub.azure-devices.net", "127.0.0.1:PORT"). */
const char *hub_host(const struct hub *h);

/*
 * Queues req (ownership passes, even on failure) and returns at once; cb
 * (with arg) is called exactly once from a later hub_perform/hub_call/
 * hub_run/hub_close with the result. FC_EINVAL: req NULL; FC_ENOMEM.
 */
enum fc_err hub_submit(struct hub *h, struct hub_req *req, hub_done_fn *cb,
    void *arg);
/*
 * Does all work that is due without blocking: starts queued calls the token
 * buckets allow, moves transfers, completes finished calls (callbacks),
 * schedules retries. Returns the number of unfinished calls; *timeout_ms
 * (if not NULL) is when to call again at the latest (-1: nothing pending).
 */
size_t hub_perform(struct hub *h, int *timeout_ms);
/* Waits up to timeout_ms for socket activity or hub_wakeup(). */
void hub_poll(struct hub *h, int timeout_ms);
/* The transfers' sockets for an external select(); see curl_multi_fdset. */
enum fc_err hub_fdset(struct hub *h, fd_set *rd, fd_set *wr, fd_set *ex,
    int *maxfd);
/* Any thread: makes a hub_poll() in progress return. */
void hub_wakeup(struct hub *h);
/* Unfinished calls. */
size_t hub_pending(const struct hub *h);

/* Blocking: submits req (ownership passes) and drives the hub until it has
 * finished; other calls in flight progress too (their callbacks run).
 * *out: the result (hub_result_free). FC_OK whatever the outcome. */
enum fc_err hub_call(struct hub *h, struct hub_req *req,
    struct hub_result **out);
/* Blocking: drives the hub until no call is unfinished. */
void hub_run(struct hub *h);

/* ---- metrics ---------------------------------------------------------- */
/*
 * Suggested Prometheus mapping (the metrics module prints them):
 *   fleetcert_hub_calls_total{hub,op,outcome}        calls[op][outcome]
 *   fleetcert_hub_attempts_total{hub,op,status}      attempts[op][i],
 *       status from HUB_STATUSES[i] ("0" = transport, "other" for -1)
 *   fleetcert_hub_attempt_seconds_bucket{hub,op,le}  cumulative sums of
 *       latency[op][..] with le = HUB_LATENCY_MS[i] / 1000 (+Inf for -1);
 *       _sum = latency_sum_ms / 1000, _count = the sum of the buckets
 *   fleetcert_hub_retries_total, _throttle_waits_total,
 *   _registry_operations_total, _sas_tokens_signed_total,
 *   _connections_total                                the scalars
 */
/* HTTP statuses counted per operation; the last slot counts all others, the
 * first transport failures (no HTTP answer). */
#define HUB_STATUSES	{ 0, 200, 204, 400, 401, 403, 404, 409, 412, 413, \
			  429, 500, 502, 503, 504, -1 }
#define HUB_NSTATUS	16
/* Latency buckets (upper bounds, ms) of HTTP attempts; last is +Inf. */
#define HUB_LATENCY_MS	{ 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, \
			  10000, 30000, 60000, -1 }
#define HUB_NLATENCY	14

struct hub_metrics {
	uint64_t calls[HUB_OP_COUNT][HUB_OUTCOME_COUNT]; /* final outcomes */
	uint64_t attempts[HUB_OP_COUNT][HUB_NSTATUS];	 /* by HTTP status */
	uint64_t latency[HUB_OP_COUNT][HUB_NLATENCY];	 /* non-cumulative */
	uint64_t latency_sum_ms[HUB_OP_COUNT];
	uint64_t retries;		/* attempts scheduled after a failure */
	uint64_t throttle_waits;	/* calls that waited for a token */
	uint64_t registry_ops;		/* registry operations sent */
	uint64_t sas_signed;		/* tokens signed */
	uint64_t connects;		/* TCP+TLS connections opened */
};

/* Any thread: a consistent copy of h's counters. */
void hub_metrics_read(struct hub *h, struct hub_metrics *out);
/* Static names for labels: "device_get", "done", ... */
const char *hub_op_name(enum hub_op op);
const char *hub_outcome_name(enum hub_outcome o);

#endif
