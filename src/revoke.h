/*
 * revoke.h — revocation (DESIGN.md "Revocation", issue 8): single and bulk
 * revocation in the inventory, selectors, the planner's estimate, the CRL,
 * and propagation to the hub (disable / delete), checkpointed in table
 * propagation so that it is resumable and nothing is sent twice.
 *
 * The database part (revoke_device_record, revoke_request_*) runs on any
 * thread's connection. The hub part (revoke_propagate*) runs on the thread
 * that drives the hubs of the struct revoke_ctx (blocking hub_call).
 */
#ifndef FC_REVOKE_H
#define FC_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "fc.h"
#include "inventory_revoke.h"

struct cfg;
struct hub;

#define REVOKE_HUBS_MAX	16

/* What the hub part works with: a database connection and one struct hub
 * per configured hub (NULL where none could be opened). */
struct revoke_ctx {
	const struct cfg *cfg;
	struct db	*db;
	size_t		 nhubs;
	const char	*hub_names[REVOKE_HUBS_MAX];	/* "" default */
	struct hub	*hubs[REVOKE_HUBS_MAX];
	int		 registry_per_minute[REVOKE_HUBS_MAX];
	int		 rate_per_second[REVOKE_HUBS_MAX];
	const char	*actor;
	/* Called between bulk batches (the daemon serves single
	 * revocations there); may be NULL. */
	void		(*between)(void *arg);
	void		*between_arg;
	volatile int	*stop;		/* non-NULL and set: stop early */
};

/* Opens one struct hub per [hub] section of cfg into ctx (closing is
 * revoke_ctx_close). A hub that cannot be opened is logged and left NULL
 * (its work stays pending). */
enum fc_err revoke_ctx_open_hubs(struct revoke_ctx *ctx,
    const struct cfg *cfg);
void revoke_ctx_close_hubs(struct revoke_ctx *ctx);

/* RFC 5280 reason name ("keyCompromise"...), NULL/"": keyCompromise.
 * -1 when unknown. */
int revoke_reason_code(const char *name);

/*
 * Single device: revokes its certificates and the device in the inventory
 * (inv_rev_device) and queues its propagation (disable, or delete for a
 * decommission). statusReason at the hub: "fleetcert: <reason>".
 * FC_ENOTFOUND, FC_EINVAL (reason), FC_EDB.
 */
enum fc_err revoke_device_record(struct db *db, const char *device_id,
    const char *reason, enum inv_rev_action action, const char *actor,
    int *ncerts);

/*
 * Propagates one device now: GET it at its hub, clear its desired
 * `fleetcert` (disable only), then disable it (full PUT, quoted If-Match;
 * one re-read on 412) or delete it. FC_OK when the hub accepted it (or
 * it was already so); FC_EREMOTE with the reason in why when it stays
 * pending (hub down, throttled, refused); FC_ENOTFOUND when nothing is
 * queued for the device.
 */
enum fc_err revoke_propagate_one(struct revoke_ctx *ctx,
    const char *device_id, char *why, size_t whylen);

struct revoke_prop_stats {
	int64_t	 done;		/* rows finished now */
	int64_t	 calls;		/* bulk calls made */
	int64_t	 pending;	/* rows left (all hubs) */
	int	 hub_errors;	/* hubs that failed this pass */
	char	 last_error[256];
};

/*
 * Works every hub's queue through the bulk registry endpoint (<= 100 a
 * call, updateIfMatchETag with status disabled, or deleteIfMatchETag),
 * under the hub's registry bucket, inflight rows first then by rank.
 * Each batch is marked inflight (committed) before the call; every device
 * of a batch is read at the hub first, and a device found already
 * disabled (or gone) is marked done without a write. Stops a hub at its
 * first unreachable/throttled/misconfigured answer. FC_OK (see stats).
 */
enum fc_err revoke_propagate(struct revoke_ctx *ctx,
    struct revoke_prop_stats *st);

/*
 * Planner: seconds to propagate n devices at registry_per_minute (one
 * registry token per bulk call of 100, minus the bucket's initial burst)
 * and rate_per_second (one device read each), whichever is slower.
 */
double revoke_estimate(int64_t n, int registry_per_minute,
    int rate_per_second);

/*
 * Bulk request: checks selector (object: deviceIds, serials,
 * issuedBetween [from, to] as RFC 3339 or Unix seconds, batch, owner,
 * lineage) and counts the matching devices; records the request (state
 * dryrun or pending) with its estimate at hub's rates. FC_EINVAL with a
 * message in err for a bad selector.
 */
enum fc_err revoke_request_create(struct db *db, const struct cfg *cfg,
    const json_t *selector, const char *reason, int dry_run,
    const char *requester, int64_t *id, int64_t *matched, double *estimate,
    char *err, size_t errlen);
/* Revokes, in the inventory, every device a pending request matches, and
 * moves it to propagating. Idempotent (a crash mid-way: run it again). */
enum fc_err revoke_request_apply(struct db *db, int64_t id,
    const char *actor, int64_t *revoked);
/* The request as JSON (GET /v1/revocations/{id}); new reference. */
json_t *revoke_request_json(const struct inv_revocation *r);

/*
 * Publishes the CRL: meta crl_number incremented and committed, every
 * revoked certificate streamed to the signer (signer_crl), written with
 * ca_crl_write to [ca] crl_path. FC_EINVAL when no crl_path / no CA is
 * configured; FC_EIO/FC_EBUSY signer trouble.
 */
enum fc_err revoke_crl_publish(struct db *db, const struct cfg *cfg,
    uint64_t *number, int64_t *entries);

#endif
