/*
 * hubsim.h — internal interfaces of fleetcert-hubsim, the strict local Azure
 * IoT Hub simulator (azure-iothub.md) with simulated devices
 * (device-protocol.md §1). Not part of libfleetcert: only the files under
 * src/hubsim/ include it.
 *
 * Concurrency: libmicrohttpd runs one thread per connection. All registry,
 * twin, device, fault and call-log state lives in one struct sim guarded by
 * sim->lock; handlers take it for short critical sections and never sleep
 * while holding it (shaping delays, injected latency and slow devices sleep
 * outside).
 */
#ifndef FC_HUBSIM_H
#define FC_HUBSIM_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fc.h"

/* Operation classes: quotas, faults and the call log are kept per class. */
enum sim_op {
	OP_ANY = 0,		/* faults: applies to every class */
	OP_REGISTRY_READ,
	OP_REGISTRY_WRITE,
	OP_BULK,
	OP_STATS,
	OP_TWIN_READ,
	OP_TWIN_UPDATE,
	OP_METHOD,
	OP_QUERY,
	OP_COUNT
};

/* Shared access policy permissions. */
enum {
	PERM_REGISTRY_READ = 1,
	PERM_REGISTRY_WRITE = 2,
	PERM_SERVICE_CONNECT = 4,
	PERM_DEVICE_CONNECT = 8
};

#define SIM_KEY_SLOTS		16
#define SIM_MAX_POLICIES	16
#define SIM_REASON_MAX		129

/* The device side of a simulated device (absent for identities created
 * through the REST API that no simulated device stands behind). */
struct sim_devside {
	char		 serial[FC_SE_SERIAL_LEN];
	EVP_PKEY	*keys[SIM_KEY_SLOTS];	/* slot 0: identity key */
	char		*key_pem[SIM_KEY_SLOTS];	/* PEM not parsed yet */
	X509		*cert;			/* certificate in use, or NULL */
	STACK_OF(X509)	*chain;			/* intermediates sent with it */
	int		 online;		/* wants to be connected */
	int		 connected;		/* last connection succeeded */
	unsigned	 connect_failures;
	char		 last_connect_error[160];
	time_t		 last_connect_failure;
	/* Misbehaviour, set from the fixture or /_sim/. */
	long		 slow_ms;		/* delay before answering a method */
	int		 reject_status;		/* != 0: refuse installs with it */
	int		 no_confirm;		/* answer 200, never switch/report */
	unsigned long	 installs;		/* successful installs */
};

/* One identity in the registry plus its twin. */
struct sim_dev {
	char		 id[FC_DEVICE_ID_MAX];
	int		 registered;		/* 0: device side only, not in the hub */
	char		 generation[24];
	unsigned long	 etag_n;		/* device etag counter */
	int		 enabled;
	char		 status_reason[SIM_REASON_MAX];
	time_t		 status_updated;
	time_t		 last_activity;
	char		 auth_type[24];	/* sas selfSigned certificateAuthority none */
	char		 thumb1[FC_SHA256_HEX];	/* upper-case hex, "" = null */
	char		 thumb2[FC_SHA256_HEX];
	char		 sas1[64], sas2[64];	/* symmetric keys (base64) */
	/* Twin. */
	json_t		*tags;
	json_t		*desired;
	json_t		*reported;
	unsigned long	 twin_version;
	unsigned long	 desired_version;
	unsigned long	 reported_version;
	struct sim_devside *sd;
};

struct sim_policy {
	char		 name[64];
	unsigned char	 key[64];
	size_t		 key_len;
	unsigned	 perms;
};

struct sim_fault {
	int		 set;
	double		 p429, p500, p503, preset;
	long		 latency_ms;
	long		 retry_after;	/* seconds for injected 429s; 0: none */
};

struct sim_call {
	unsigned long	 seq;
	double		 t;		/* Unix time, seconds with ms */
	char		 method[12];
	char		 path[200];
	enum sim_op	 op;
	int		 status;	/* 0: connection reset */
	long		 code;		/* IoT Hub error code, 0 when none */
	char		 name[40];	/* error code name */
	char		 device[FC_DEVICE_ID_MAX];
	long		 delay_ms;	/* shaping delay applied */
};

struct sim_bucket {
	double		 rate;		/* tokens per second (time-scaled) */
	double		 burst;		/* bucket size */
	double		 backlog;	/* tokens that may be owed (shaping) */
	double		 tokens;
	double		 last;
	unsigned long	 admitted, shaped, throttled;
	double		 used;		/* tokens taken in total */
	const char	*window;	/* "minute" or "second" */
	double		 quota;		/* nominal quota per window */
};

struct sim {
	pthread_mutex_t	 lock;
	struct sim_dev	**devs;		/* sorted by id (strcmp) */
	size_t		 ndevs, cap;
	char		 hub_name[128];
	struct sim_policy policies[SIM_MAX_POLICIES];
	size_t		 npolicies;
	X509_STORE	*trust;		/* root the devices trust / hub-verified CA */
	char		*control_token;
	char		*state_file;
	int		 dirty;
	/* Quotas. */
	int		 quotas_on;
	char		 tier[4];
	int		 units;
	double		 time_scale;
	struct sim_bucket buckets[OP_COUNT];
	/* Faults and call log. */
	struct sim_fault faults[OP_COUNT];
	struct sim_call	*calls;		/* ring */
	size_t		 ncalls, calls_head, calls_cap;
	unsigned long	 call_seq;
	unsigned long	 tracking;
};

/* A reply being built by a handler; http.c sends it. */
struct sim_reply {
	int		 status;
	char		*body;		/* malloc'ed JSON or NULL */
	long		 code;		/* IoT Hub error code, 0 when none */
	char		 name[40];	/* iothub-errorcode */
	char		 hdr_names[4][32];
	char		*hdr_values[4];
	int		 nhdr;
	int		 reset;		/* close the connection, send nothing */
	long		 delay_ms;	/* shaping delay applied (for the log) */
};

/* A request as handlers see it. */
struct sim_req {
	const char	*method;
	const char	*path;		/* raw path, still percent-encoded */
	const char	*query;		/* raw query string or "" */
	const char	*body;
	size_t		 body_len;
	struct MHD_Connection *conn;
	enum sim_op	 op;
	char		 device[FC_DEVICE_ID_MAX];	/* decoded, for the log */
};

/* ---- http.c ---- */
/* Starts the HTTPS server on addr:port (port 0: any). cert/key are PEM
 * text. Returns the daemon (opaque) or NULL; *bound gets the port. */
void *http_start(struct sim *sim, const char *addr, int port,
    const char *cert_pem, const char *key_pem, int *bound);
void http_stop(void *daemon);
/* Request header value or NULL. */
const char *http_header(struct sim_req *req, const char *name);
/* Reply helpers; they take ownership of body / value. */
void reply_json(struct sim_reply *rep, int status, json_t *body);
void reply_header(struct sim_reply *rep, const char *name, const char *value);
/* Error, body shape A: {"Message":"ErrorCode:<name>;<text>",...}. */
void reply_error(struct sim *sim, struct sim_reply *rep, long code,
    const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Error, body shape B (method errors): Message is a JSON string. */
void reply_error_b(struct sim *sim, struct sim_reply *rep, long code,
    const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Percent-decodes one path segment (either hex case; '+' stays '+').
 * Returns 0, or -1 on a bad escape, a NUL or overflow. */
int http_pct_decode(const char *in, size_t len, char *out, size_t outsz);
/* Parses a JSON body (object or array); NULL and a 400 reply when bad. */
json_t *http_body_json(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep);
double sim_clock(void);
void sim_sleep_ms(long ms);

/* ---- sas.c ---- */
/* Verifies the Authorization header against the policies; the policy must
 * grant one of the bits in need. 0 when allowed, else -1 with a 401002
 * reply filled in. Host is the request's Host header. */
int sas_check(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    unsigned need);
/* Adds a policy from "NAME=BASE64KEY". FC_EINVAL on a bad spec. */
enum fc_err sas_policy_add(struct sim *sim, const char *spec);

/* ---- registry.c ---- (caller holds sim->lock for lookups/inserts) */
struct sim_dev *reg_find(struct sim *sim, const char *id);
/* Finds or creates an (unregistered) entry; NULL on ENOMEM. */
struct sim_dev *reg_find_or_add(struct sim *sim, const char *id);
void reg_dev_free(struct sim_dev *d);
/* Registers d fresh (new generation, empty twin). */
void reg_dev_register(struct sim_dev *d);
json_t *reg_dev_json(struct sim_dev *d);
void reg_etag(unsigned long n, char out[32]);
void reg_handle_device(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep, const char *id);
void reg_handle_bulk(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep);
void reg_handle_stats(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep);
/* Applies a registry object (PUT body or bulk entry) to d. On failure
 * returns -1 with code, name and msg set. */
int reg_apply(struct sim_dev *d, json_t *obj, const char *idkey,
    long *code, const char **name, char *msg, size_t msgsz);
/* If-Match check: 0 go on; 1 stale (412001). quoted/unquoted per quirk. */
int reg_if_match(const char *if_match, const char *etag);

/* ---- query.c ---- */
void query_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep);

/* ---- twin.c ---- */
json_t *twin_json(struct sim_dev *d);
void twin_etag(struct sim_dev *d, char out[32]);
void twin_handle(struct sim *sim, struct sim_req *req, struct sim_reply *rep,
    const char *id);
/* Merges patch into *target (null deletes). Returns 1 if anything changed. */
int twin_merge(json_t *target, json_t *patch);
/* Checks a twin section against the limits: 0 ok, -1 with code/name/msg. */
int twin_check(json_t *section, size_t max_bytes, long *code,
    const char **name, char *msg, size_t msgsz);
/* Device writes its reported property fleetcert (caller holds the lock). */
void twin_report_fleetcert(struct sim_dev *d, const char *installed,
    const char *status, const char *error);

/* ---- methods.c ---- */
void methods_handle(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep, const char *id);

/* ---- devices.c ---- (caller holds sim->lock) */
/* Simulated connection with the certificate in use: checks thumbprints or
 * the chain, records failures in the call log. 1 connected, 0 refused. */
int dev_connect(struct sim *sim, struct sim_dev *d);
/* Device comes online: connect, then apply desired fleetcert. */
void dev_set_online(struct sim *sim, struct sim_dev *d, int online);
/* Desired properties changed while connected. */
void dev_desired_changed(struct sim *sim, struct sim_dev *d);
/* Runs a direct method on the device; *status and *payload (new ref). */
void dev_method(struct sim *sim, struct sim_dev *d, const char *name,
    json_t *payload, int *status, json_t **out);
void dev_side_free(struct sim_devside *sd);
/* The key in slot, parsed from its PEM on first use (OpenSSL 3's PEM
 * decoder costs milliseconds: start-up stays fast). NULL when none or
 * unparsable. Borrowed. */
EVP_PKEY *dev_key(struct sim_devside *sd, int slot);
/* Parses a PEM P-256 private key; NULL when it is not one. Caller frees. */
EVP_PKEY *dev_key_parse(const char *pem);
json_t *dev_side_json(struct sim_dev *d);
/* Certificate serial as lower-case hex. */
void dev_cert_serial(X509 *x, char out[FC_CERT_SERIAL_MAX]);
/* SHA-1 and SHA-256 thumbprints, upper-case hex. */
void dev_thumbprints(X509 *x, char sha1[FC_SHA1_HEX], char sha256[FC_SHA256_HEX]);

/* ---- quota.c ---- */
void quota_init(struct sim *sim);
/* Takes cost units for op. 0 admitted (*delay_ms to wait outside the
 * lock), -1 throttled (*retry_after seconds). Caller holds the lock. */
int quota_take(struct sim *sim, enum sim_op op, double cost, long *delay_ms,
    long *retry_after);
json_t *quota_json(struct sim *sim);

/* ---- control.c ---- */
void control_handle(struct sim *sim, struct sim_req *req,
    struct sim_reply *rep);
/* Appends to the call log (caller holds the lock). */
void calllog_add(struct sim *sim, const char *method, const char *path,
    enum sim_op op, int status, long code, const char *name,
    const char *device, long delay_ms);
const char *sim_op_name(enum sim_op op);
/* Injected fault for op: 0 none, else fills rep (429/500/503/reset) and
 * returns 1. *latency_ms gets the added latency. Caller holds the lock. */
int fault_pick(struct sim *sim, enum sim_op op, struct sim_reply *rep,
    long *latency_ms);

/* ---- fixture.c ---- */
/* Loads a fixture file into sim (registry + device sides). */
enum fc_err fixture_load(struct sim *sim, const char *path);
/* Saves / loads the registry, twins and device-side state. */
enum fc_err state_save(struct sim *sim, const char *path);
enum fc_err state_load(struct sim *sim, const char *path);
/* PEM helpers shared with gen-fleet. */
char *pem_of_cert(X509 *x);
char *pem_of_key(EVP_PKEY *k);

/* ---- genfleet.c ---- */
int genfleet_main(int argc, char **argv);

#endif
