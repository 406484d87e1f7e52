/*
 * deliver.h — the delivery outbox worker (DESIGN.md "Delivery through IoT
 * Hub", device-protocol.md §1). Each row of `deliveries` moves through
 * stable steps, stored in the row:
 *
 *   stage    (self-signed devices) new thumbprint -> secondary slot
 *   install  direct method fleetcertInstall; 404103 / 504101 -> twin
 *   twin     desired property fleetcert (the device applies it on connect)
 *   confirm  poll the twin until reported fleetcert.installedSerial = serial;
 *            then new certificate active, old superseded
 *   promote  (self-signed devices) new thumbprint -> primary, old removed
 *   done | failed | cancelled   terminal (failed: last_error says why)
 *
 * What a hub call is doing lives only in memory: after a crash or restart
 * every row is simply worked again from its stored step (each step is
 * idempotent at the hub and on the device), so every transient state
 * returns to its last stable one. Outcome classes drive it: HUB_RETRY /
 * HUB_UNREACHABLE back off exponentially with jitter between
 * retry_initial_seconds and retry_max_seconds (Retry-After honoured);
 * HUB_REJECTED fails the delivery with the hub's reason; HUB_MISCONFIGURED
 * pauses that hub's queue (deliver_health says why). At most max_in_flight
 * deliveries have a hub call outstanding.
 * Main thread (the scheduler), which also drives the hubs' libcurl multis.
 */
#ifndef FC_DELIVER_H
#define FC_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "fc.h"

struct cfg;
struct hub;
struct deliver;
struct renew;

struct deliver_opts {
	int		 method_timeout_s;	/* [delivery] */
	int		 max_in_flight;
	int		 retry_initial_s;
	int		 retry_max_s;
	const char	*chain_pem;	/* sent with every certificate (copied) */
};
void deliver_opts_from_cfg(struct deliver_opts *o, const struct cfg *cfg);

/*
 * Creates the worker on db (used, never closed). Hubs are added with
 * deliver_hub_add. *out: deliver_close it (closes the hubs it was given).
 */
enum fc_err deliver_open(struct db *db, const struct deliver_opts *o,
    struct deliver **out);
/* Completes every outstanding call as cancelled, closes the hubs. */
void deliver_close(struct deliver *dv);

/* Gives the worker hub h for devices whose hub column is name ("" = the
 * default hub). Ownership of h passes (even on failure). */
enum fc_err deliver_hub_add(struct deliver *dv, const char *name,
    struct hub *h);

/* Applies new [delivery] settings (SIGHUP). */
void deliver_reconfigure(struct deliver *dv, const struct deliver_opts *o);
/* A reloaded CA (SIGHUP): payloads built from now on carry chain_pem
 * (copied). Same thread as the worker. FC_ENOMEM: the old chain stays. */
enum fc_err deliver_chain_set(struct deliver *dv, const char *chain_pem);

/* Rekey: the renewal module's CSR fetcher (renew.h renew_csr_fn); arg is
 * the struct deliver, which must know the struct renew to answer. */
void deliver_set_renew(struct deliver *dv, struct renew *r);
enum fc_err deliver_csr_fetch(void *arg, const char *serial,
    const char *device_id, const char *hub);

/*
 * Starts due deliveries up to max_in_flight, and flags devices whose old
 * certificate expired before they confirmed (needs_reenrol). Returns the
 * number started. Never blocks.
 */
int deliver_tick(struct deliver *dv, int64_t now);

/*
 * Drives the hubs without blocking (hub_perform on each): completes calls,
 * runs their callbacks (which advance the rows). Returns the number of
 * calls outstanding; *timeout_ms gets when to call again at the latest
 * (-1: nothing pending).
 */
size_t deliver_perform(struct deliver *dv, int *timeout_ms);
/* Waits up to timeout_ms for activity on any hub (tests, benches). */
void deliver_poll(struct deliver *dv, int timeout_ms);
/* Deliveries with a hub call outstanding. */
int deliver_in_flight(const struct deliver *dv);

/* Counters since start, for metrics. */
enum deliver_outcome {
	DELIVER_OUT_DONE = 0,		/* confirmed (and promoted) */
	DELIVER_OUT_FAILED,		/* rejected: operator must look */
	DELIVER_OUT_CANCELLED,		/* certificate no longer wanted */
	DELIVER_OUT_RETRIED,		/* a step backed off */
	DELIVER_OUT_TWIN_FALLBACK,	/* device offline or slow */
	DELIVER_OUT_INSTALLED,		/* method answered 200 */
	DELIVER_OUT_PAUSED,		/* hub misconfigured */
	DELIVER_OUT_COUNT
};
const char *deliver_outcome_name(enum deliver_outcome o);
struct deliver_stats {
	uint64_t	 outcomes[DELIVER_OUT_COUNT];
	uint64_t	 csr_ok, csr_failed;
	uint64_t	 flagged_reenrol;
	int		 in_flight;
};
void deliver_stats_get(const struct deliver *dv, struct deliver_stats *out);

/*
 * Health: 1 when every hub's queue runs; 0 with a phrase naming the
 * paused hubs and why (no secrets) in buf.
 */
int deliver_health(const struct deliver *dv, char *buf, size_t len);

/* For metrics: calls fn for each hub (name, struct hub). */
void deliver_hubs_foreach(const struct deliver *dv,
    void (*fn)(void *arg, const char *name, struct hub *h), void *arg);

/*
 * The fleetcertInstall payload / desired fleetcert value for a recorded
 * certificate (device-protocol.md §1): a new JSON object, caller
 * json_decref()s it. Exposed for tests.
 */
struct json_t;
enum fc_err deliver_payload(const unsigned char *der, size_t der_len,
    const char *serial, const char *chain_pem, int64_t not_after,
    int64_t renew_after, struct json_t **out);

/*
 * The same for certificate serial as stored: with the chain recorded with
 * it (inv_cert_chain) when that starts with another intermediate than
 * current_chain, else with current_chain. What delivery sends.
 */
enum fc_err deliver_cert_payload(struct db *db, const char *serial,
    const char *current_chain, int64_t renew_after, struct json_t **out);

#endif
