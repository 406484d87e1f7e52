/*
 * hub_int.h — internals shared by the hub_*.c files and tests/check_hub.c.
 * Not for other modules: they use hub.h only.
 */
#ifndef FC_HUB_INT_H
#define FC_HUB_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hub.h"

#define HUB_API_VERSION		"2021-04-12"
#define HUB_HOST_MAX		256
#define HUB_POLICY_MAX		65
#define HUB_CONN_MAX		4096	/* connection string length cap */
#define HUB_SAS_LIFETIME	3600	/* seconds, as the SDKs */
#define HUB_SAS_RESIGN		300	/* re-sign this long before expiry */
#define HUB_METHOD_SLACK_S	15	/* HTTP timeout above connect+response */

/* A parsed service connection string. key is secret (hub_conn_clear). */
struct hub_conn {
	char		 host[HUB_HOST_MAX];
	char		 policy[HUB_POLICY_MAX];
	unsigned char	*key;
	size_t		 keylen;
};

/* Parses "HostName=..;SharedAccessKeyName=..;SharedAccessKey=..". On
 * failure FC_EINVAL/FC_ENOMEM and a message in err naming the field, never
 * its value. */
enum fc_err hub_conn_parse(const char *s, struct hub_conn *out, char *err,
    size_t errlen);
void hub_conn_clear(struct hub_conn *c);

/* RFC 3986 percent-encoding of everything but unreserved characters,
 * upper-case hex. Returns a new string or NULL (no memory). */
char *hub_pct_encode(const char *in);

/* The SAS token "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]" for
 * resource (encoded here), signed with key; policy NULL omits skn.
 * *out: secret, free with fc_secret_free(*out, strlen(*out)). */
enum fc_err hub_sas_token(const char *resource, const char *policy,
    const unsigned char *key, size_t keylen, int64_t expiry, char **out);

/* A built request. */
struct hub_req {
	enum hub_op	 op;
	const char	*method;	/* static: "GET", "PUT", ... */
	char		*path;		/* encoded, without query string */
	char		*body;		/* NULL: none */
	char		 if_match[HUB_ETAG_MAX + 3];	/* "" none */
	char		*continuation;	/* query paging header, NULL none */
	int		 page_size;	/* x-ms-max-item-count, 0 none */
	int		 timeout_ms;	/* 0: the hub's request timeout */
	int		 registry_write;
	unsigned	 registry_ops;
	char		 device_id[FC_DEVICE_ID_MAX];
	char		(*bulk_ids)[FC_DEVICE_ID_MAX];
	size_t		 nbulk;
	void		*user;
};

/* What came back from one HTTP attempt. */
struct hub_answer {
	long		 status;	/* 0: transport failure */
	int		 curl_code;	/* CURLcode */
	const char	*curl_msg;	/* curl's error text, may be NULL */
	const char	*errorcode_hdr;	/* iothub-errorcode, "" none */
	const char	*continuation;	/* x-ms-continuation, NULL none */
	long		 retry_after_ms; /* Retry-After, -1 none */
	const char	*body;
	size_t		 len;
	int		 truncated;	/* body exceeded the cap */
	int		 bad_header;	/* a header we need was oversized */
};

/*
 * Reduces one attempt's answer to res->outcome, res->error and (HUB_DONE)
 * the op-specific fields. Returns 1 when the attempt may be retried inside
 * the client (429, 5xx, transport); then outcome is what the caller sees if
 * the budget is spent (HUB_RETRY or HUB_UNREACHABLE).
 */
int hub_answer_reduce(const struct hub_req *req, const struct hub_answer *a,
    struct hub_result *res);

/* Parses an IoT Hub error from a body (both shapes) and the
 * iothub-errorcode header (either may be NULL). */
void hub_error_parse(const char *body, size_t len, const char *hdr,
    struct hub_error *e);
/* Code for a well-known name, 0 if unknown; name for a code or NULL. */
int hub_error_code_of(const char *name);
const char *hub_error_name_of(int code);

/* Full-jitter exponential back-off for the attempt-th retry (1-based):
 * uniform in [0, min(cap, base * 2^(attempt-1))] from rnd; at least
 * retry_after_ms when that is >= 0. */
int hub_backoff_ms(unsigned attempt, int base_ms, int cap_ms,
    long retry_after_ms, uint32_t rnd);

/* Token bucket: rate tokens per second, up to burst; rate 0 = unlimited. */
struct hub_bucket {
	double	 rate_per_ms;
	double	 burst;
	double	 tokens;
	int64_t	 last_ms;
};
void hub_bucket_init(struct hub_bucket *b, double per_second, double burst,
    int64_t now_ms);
/* Milliseconds until a token is there (0: now). Does not take it. */
int64_t hub_bucket_wait(struct hub_bucket *b, int64_t now_ms);
void hub_bucket_take(struct hub_bucket *b, int64_t now_ms);

/* The engine's state (hub.c, hub_http.c). */
#include <pthread.h>
#include <curl/curl.h>

enum call_state { CALL_READY, CALL_WAITING, CALL_RUNNING };

struct call {
	struct call	*next;
	struct hub	*hub;
	enum call_state	 state;
	struct hub_req	*req;
	hub_done_fn	*cb;
	void		*arg;
	struct hub_result *res;
	CURL		*easy;
	struct curl_slist *hdrs;
	char		*url;
	char		*body;		/* answer */
	size_t		 len, cap;
	int		 truncated;
	char		 errorcode[64];
	char		*continuation;
	int		 bad_header;
	long		 retry_after_ms;
	char		 errbuf[CURL_ERROR_SIZE];
	int64_t		 first_ms, started_ms, due_ms;
	int		 throttled;
};

/*
 * The token buckets of one IoT hub (by host name), shared by every client
 * of this process that talks to it: the delivery loop and the revocation
 * worker each have a client, and the hub's quota is one (hub.c).
 */
struct hub_shared {
	struct hub_shared *next;
	char		 host[HUB_HOST_MAX];
	int		 refs;
	pthread_mutex_t	 mu;
	struct hub_bucket calls, registry;
	double		 set[4];	/* rates and bursts they were made with */
};

/* What hub_tokens_take found missing. */
enum hub_tokens { HUB_TOKENS_TAKEN, HUB_TOKENS_CALLS, HUB_TOKENS_REGISTRY };

struct hub {
	char		*name;
	struct hub_conn	 conn;
	struct hub_opts	 opts;
	char		*ca_file;
	char		*token;
	int64_t		 token_expiry;
	CURLM		*multi;
	CURL		**pool;
	size_t		 npool;
	struct call	*ready, *ready_tail, *waiting, *running;
	size_t		 pending, nrunning;
	struct hub_shared *shared;	/* the hub's token buckets */
	uint64_t	 rng;
	pthread_mutex_t	 mlock;
	struct hub_metrics metrics;
};

/* Monotonic milliseconds. */
int64_t hub_mono_ms(void);
/* Takes a call token, and a registry token when registry is set, from h's
 * shared buckets, both or neither. Otherwise *wait_ms gets the
 * milliseconds until the missing one is due. Thread-safe. */
enum hub_tokens hub_tokens_take(struct hub *h, int registry, int64_t now,
    int64_t *wait_ms);
/* Completes every unfinished call as cancelled (hub_close). */
void hub_engine_cancel_all(struct hub *h);

/* Records into m (caller holds the metrics lock). */
void hub_metrics_attempt(struct hub_metrics *m, enum hub_op op, long status,
    int64_t ms);

#endif
