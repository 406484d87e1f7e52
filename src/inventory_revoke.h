/*
 * inventory_revoke.h — the SQL of revocation (issue 8): selectors, revoking
 * a device and its certificates, the propagation queue (sql/060), bulk
 * requests (table revocations), the CRL's entries and number, expiry
 * marking and the drift table. Any thread, on its own connection. Every
 * state change is audited in the same transaction (inventory.c / audit.c).
 */
#ifndef FC_INVENTORY_REVOKE_H
#define FC_INVENTORY_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"
#include "db.h"
#include "fc.h"

/*
 * A bulk selector. Every criterion given must match (AND); at least one
 * must be given. Only devices neither revoked nor decommissioned match.
 * Order: the order of device_ids when given, else device id order.
 */
struct inv_selector {
	const char	*device_ids_json;	/* JSON array of ids, or NULL */
	const char	*serials_json;		/* JSON array of serials, or NULL */
	int64_t		 issued_from, issued_to;	/* a certificate with
						   not_before in [from, to];
						   both 0: unused */
	const char	*batch;
	const char	*owner;
	const char	*lineage;		/* a serial: it and every
						   certificate renewed from it */
};

/* Calls cb with each matching device id (valid during the call), in
 * selector order; cb returns non-zero to stop. FC_EINVAL for an empty
 * selector. */
enum fc_err inv_rev_match(struct db *db, const struct inv_selector *s,
    int (*cb)(void *arg, const char *device_id, const char *hub), void *arg);

enum inv_rev_action { INV_REV_DISABLE = 0, INV_REV_DELETE };

/*
 * Revokes device_id in one transaction: every certificate of the device
 * that is not revoked and not expired (reason: RFC 5280 code), its open
 * deliveries cancelled, device status revoked (or decommissioned for
 * INV_REV_DELETE), and a propagation row (action, reason_text as the hub's
 * statusReason, revocation_id 0 = single, rank) queued unless one with the
 * same action is already pending. Idempotent. *ncerts (may be NULL) gets
 * the certificates revoked now. FC_ENOTFOUND for an unknown device.
 */
enum fc_err inv_rev_device(struct db *db, const char *device_id, int reason,
    const char *reason_text, enum inv_rev_action action,
    int64_t revocation_id, int64_t rank, const char *actor, int *ncerts);

/* ---- propagation queue ---------------------------------------------------- */

struct inv_prop {
	char		 device_id[FC_DEVICE_ID_MAX];
	char		 hub[FC_NAME_MAX];
	enum inv_rev_action action;
	char		 reason[129];		/* statusReason */
	int64_t		 revocation_id;
	int		 inflight;	/* was inflight (a crash interrupted it) */
	int		 attempts;
};

/*
 * Takes up to max (<= 100) rows of hub that are not done, inflight ones
 * first, then by rank; marks them inflight under a new batch number, and
 * commits before returning (so a crash after the hub call is visible).
 * out[] receives them; *n how many. only_device: NULL, or one device.
 */
enum fc_err inv_prop_claim(struct db *db, const char *hub,
    const char *only_device, struct inv_prop *out, size_t max, size_t *n,
    int64_t *batch);
/* The hub applied it (or it was found applied): state done; the bulk
 * request's propagated count moves on. Audited "device.propagated". */
enum fc_err inv_prop_done(struct db *db, const char *device_id,
    const char *actor, const char *detail);
/* Not applied: back to pending with attempts + 1 and last_error. */
enum fc_err inv_prop_retry(struct db *db, const char *device_id,
    const char *why);
/* Rows not done, for one hub ("" default, NULL all). */
enum fc_err inv_prop_count(struct db *db, const char *hub, int64_t *pending);
/* The state of one device's row: "pending", "inflight", "done" or "" */
enum fc_err inv_prop_state(struct db *db, const char *device_id,
    char state[16], char last_error[256]);
/* Calls cb with each distinct hub that has work. */
enum fc_err inv_prop_hubs(struct db *db,
    int (*cb)(void *arg, const char *hub), void *arg);

/* ---- bulk requests -------------------------------------------------------- */

struct inv_revocation {
	int64_t		 id;
	char		*selector;		/* JSON text, owned */
	char		 reason[64];
	char		 requester[64];
	int		 dry_run;
	int64_t		 matched, propagated;
	char		 state[16];		/* pending, propagating, done,
						   dryrun */
	char		 last_error[256];
	int64_t		 estimate_seconds;
	int64_t		 created_at, crl_at, finished_at;
};
void inv_revocation_clear(struct inv_revocation *r);

enum fc_err inv_rev_request_insert(struct db *db, const char *selector,
    const char *reason, const char *requester, int dry_run, int64_t matched,
    int64_t estimate_seconds, const char *state, int64_t *id);
enum fc_err inv_rev_request_get(struct db *db, int64_t id,
    struct inv_revocation *out);
/* Sets state (and matched when >= 0). */
enum fc_err inv_rev_request_state(struct db *db, int64_t id,
    const char *state, int64_t matched);
/* Requests in state pending, in id order. */
enum fc_err inv_rev_request_pending(struct db *db,
    int (*cb)(void *arg, int64_t id), void *arg);
/* Stamps crl_at = now on every propagating request without one. */
enum fc_err inv_rev_request_crl_published(struct db *db, int64_t now);
/* Finishes propagating requests whose rows are all done. */
enum fc_err inv_rev_request_finish(struct db *db, int64_t now);

/* ---- CRL, expiry ---------------------------------------------------------- */

/* Increments meta crl_number in a committed transaction; *out the new. */
enum fc_err inv_crl_number_next(struct db *db, uint64_t *out);

/* Iterator over every revoked certificate (serial order). */
struct inv_crl_iter;
enum fc_err inv_crl_iter_open(struct db *db, struct inv_crl_iter **out);
/* 1 with *e, 0 at the end, -1 on error (signer_crl's next()). */
int inv_crl_iter_next(void *it, struct ca_crl_entry *e);
void inv_crl_iter_close(struct inv_crl_iter *it);

/* Marks certificates past not_after (not revoked) expired; audited. */
enum fc_err inv_expire_mark(struct db *db, int64_t now, int *n);

/* ---- drift ---------------------------------------------------------------- */

enum fc_err inv_drift_begin(struct db *db);	/* clears the table */
enum fc_err inv_drift_add(struct db *db, const char *kind,
    const char *device_id, const char *detail);
enum fc_err inv_drift_list(struct db *db, int (*cb)(void *arg,
    const char *kind, const char *device_id, const char *detail,
    int64_t seen_at), void *arg);

#endif
