/*
 * enrol_int.h — internals shared by the enrolment files (enrol.c,
 * enrol_limit.c, enrol_keys.c, enrol_http.c); not for other modules.
 */
#ifndef FC_ENROL_INT_H
#define FC_ENROL_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "fc.h"
#include "enrol.h"

struct db;
struct inv_device;
struct enrol_limit;
struct enrol_keys;
struct cfg;

#define ENROL_POOL_MAX	16

/* The endpoint (enrol.c); internal to the enrol files. */
struct enrol {
	pthread_mutex_t		 mu;		/* pool and stats */
	struct db		*pool[ENROL_POOL_MAX];
	int			 npool;
	char			*db_path;
	/* Settings a reload may change while requests run (enrol_reload). */
	const struct cfg *_Atomic cfg;		/* the hubs; outlives e */
	_Atomic int		 ttl;
	_Atomic int		 allow_new_key;
	_Atomic int		 renew_before_days;
	_Atomic int		 jitter_days;
	struct enrol_limit	*per_serial;
	struct enrol_limit	*per_addr;
	struct enrol_keys	*keys;
	struct enrol_issuer	 iss;
	/* Returned to devices; a CA reload swaps it (enrol_chain_set). */
	const char *_Atomic	 chain_pem;
	/* Verified against when the serial is unknown, so that an unknown
	 * serial costs what a known one costs (no timing oracle). */
	EVP_PKEY		*decoy;
	unsigned char		 decoy_spki[128];	/* its SPKI DER */
	size_t			 decoy_spki_len;
	struct enrol_stats	 st;
};

/* Counts one outcome (counter: a field of e->st) here and in /metrics. */
void enrol_stat_add(struct enrol *e, uint64_t *counter, const char *outcome);
/* Sets a's status and JSON body (steals body; NULL: FC_ENOMEM). */
enum fc_err enrol_answer_json(struct enrol_answer *a, int status,
    json_t *body);
/*
 * Issues for a proven, active device (enrol_issue.c): FC_OK with a 200 in
 * *ans; FC_EPERM if the device was revoked meanwhile (row voided, no
 * answer); other errors: nothing issued, no answer.
 */
enum fc_err enrol_issue(struct enrol *e, struct db *db,
    const struct inv_device *dev, const unsigned char *spki,
    size_t spki_len, const char *peer, struct enrol_answer *ans);

/*
 * Fixed-window counters keyed by up to 16 bytes (an SE serial, an IP
 * address), in a bounded open-addressing table: memory stays fixed whatever
 * clients send. When every probed slot is live, the oldest window is
 * evicted. Thread-safe (one mutex).
 */
#define LIMIT_KEY_MAX	16
struct enrol_limit;

/* slots: table size (power of two); limit: hits allowed per window. */
enum fc_err enrol_limit_new(size_t slots, int limit, int window_seconds,
    struct enrol_limit **out);
void enrol_limit_free(struct enrol_limit *l);
/* Counts a hit at now. 1 if allowed; 0 if over the limit, with
 * *retry_after = seconds until the window ends (>= 1). */
int enrol_limit_hit(struct enrol_limit *l, const void *key, size_t keylen,
    int64_t now, int *retry_after);
/* Counts a failure; returns the failures in the current window. */
int enrol_limit_fail(struct enrol_limit *l, const void *key, size_t keylen,
    int64_t now);
/* Changes the hits allowed per window (a reload). */
void enrol_limit_set(struct enrol_limit *l, int limit);
/* Failures in the current window (0 if unknown). */
int enrol_limit_failures(struct enrol_limit *l, const void *key,
    size_t keylen, int64_t now);

/*
 * Parsed identity keys by SE serial: decoding SPKI DER costs ~110 µs, a
 * verify with a parsed key ~65 µs (performance-ceilings.md). An entry is
 * used only if its SPKI bytes equal those in the inventory, so a changed
 * inventory key is never verified against a stale one. Bounded; thread-safe.
 */
struct enrol_keys;
enum fc_err enrol_keys_new(size_t slots, struct enrol_keys **out);
void enrol_keys_free(struct enrol_keys *k);
/* *out gets a reference to the parsed key (EVP_PKEY_free it). FC_EINVAL if
 * spki is not a P-256 SubjectPublicKeyInfo. */
enum fc_err enrol_keys_get(struct enrol_keys *k, const char *se_serial,
    const unsigned char *spki, size_t spki_len, EVP_PKEY **out);
/* 1 if a key is cached for se_serial (any key), else 0. For tests. */
int enrol_keys_cached(struct enrol_keys *k, const char *se_serial);

/*
 * Stages a re-enrolled self-signed device's new thumbprint (sha1 or sha256,
 * whichever kind the hub holds) as its secondary thumbprint at hub_name's
 * hub ("" = default). Blocks for a few seconds at most. FC_OK (also when it
 * is already there), FC_ENOTFOUND (no such hub section), FC_ECONFLICT (hub
 * refused), FC_EREMOTE (unreachable/throttled), FC_EIO (secret file).
 */
struct cfg;
enum fc_err enrol_hub_stage(const struct cfg *cfg, const char *hub_name,
    const char *device_id, const char *sha1, const char *sha256);

#endif
