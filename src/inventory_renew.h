/*
 * inventory_renew.h — the SQL of renewal and delivery (issue 5): the renewal
 * schedule (certificates.renew_at, sql/050_renewal.sql), the reserve /
 * record / void steps of a crash-safe renewal, and the delivery outbox.
 * Main thread (the scheduler's connection); any connection in tests.
 * Every certificate state change writes its audit entry in the same
 * transaction (through inventory.c or audit.c).
 */
#ifndef FC_INVENTORY_RENEW_H
#define FC_INVENTORY_RENEW_H

#include <stdint.h>

#include "db.h"
#include "fc.h"
#include "inventory.h"

/* ---- schedule ---------------------------------------------------------- */

/*
 * When the renewal of a certificate of device_id expiring at not_after
 * starts: not_after - before_s + a stable jitter in [0, jitter_s] derived
 * from the device id (FNV-1a), so a fleet made in one day spreads out.
 */
int64_t inv_renew_at(const char *device_id, int64_t not_after,
    int64_t before_s, int64_t jitter_s);

/*
 * Fills renew_at for up to limit active certificates that have none yet,
 * in one transaction. *n gets how many were scheduled (limit: call again).
 */
enum fc_err inv_renew_schedule(struct db *db, int64_t before_s,
    int64_t jitter_s, int limit, int *n);

/*
 * Compares the window settings the stored schedule was computed with (meta
 * 'renew_window') with before_s/jitter_s; when they differ, unschedules
 * every active certificate (renew_at = NULL) and stores the new settings.
 * *reset is 1 when it did.
 */
enum fc_err inv_renew_window_sync(struct db *db, int64_t before_s,
    int64_t jitter_s, int *reset);

/* A certificate due for renewal and what issuing needs of its device. */
struct inv_due {
	int64_t		 rowid;		/* the certificate's row */
	char		 serial[FC_CERT_SERIAL_MAX];
	char		 device_id[FC_DEVICE_ID_MAX];
	char		 se_serial[FC_SE_SERIAL_LEN];
	char		 hub[FC_NAME_MAX];
	enum inv_auth	 auth_type;
	enum inv_dev_status dev_status;
	int		 rekey;
	int		 rekey_once;	/* operator's one-shot rekey */
	int64_t		 not_after, renew_at;
	const unsigned char *der;	/* the certificate; valid during cb */
	size_t		 der_len;
};

/*
 * Fills rowids[] with up to limit certificates that are active, have
 * renew_at <= now and no renewal in flight, earliest first; *n gets how
 * many. An index-only range scan on certificates_renew_due (status,
 * renewal, renew_at): cost O(rows returned), not O(fleet).
 */
enum fc_err inv_renew_due(struct db *db, int64_t now, int limit,
    int64_t *rowids, int *n);
/* The SQL of inv_renew_due, for EXPLAIN QUERY PLAN in tests. */
extern const char inv_renew_due_sql[];

/*
 * Calls cb once with everything renewing the certificate in row rowid
 * needs (its DER and its device), if it is still due; returns
 * FC_ENOTFOUND when it is not (renewed or changed meanwhile).
 */
enum fc_err inv_renew_due_get(struct db *db, int64_t rowid,
    int (*cb)(void *arg, const struct inv_due *d), void *arg);

/* Moves a certificate's renew_at (a device that cannot be renewed now). */
enum fc_err inv_renew_postpone(struct db *db, const char *serial,
    int64_t renew_at);

/* Why an operator renewal request was refused (inv_renew_request). */
enum inv_renew_refusal {
	INV_RENEW_ACCEPTED = 0,
	INV_RENEW_DEVICE_NOT_ACTIVE,	/* device status is not active */
	INV_RENEW_NO_CERTIFICATE,	/* no active certificate */
	INV_RENEW_IN_FLIGHT		/* a renewal is already in flight */
};

/*
 * Operator request to renew device_id now (sql/070_renew_request.sql):
 * in one transaction its active certificate's renew_at becomes now and,
 * with rekey, the one-shot devices.rekey_once is set; audited
 * "device.renew" by actor. FC_OK with *refusal INV_RENEW_ACCEPTED and
 * serial (the current certificate) / *rekey_out (this renewal rekeys) set;
 * FC_ECONFLICT with *refusal saying why (nothing written; dev_status gets
 * the device's status name); FC_ENOTFOUND: no such device.
 */
enum fc_err inv_renew_request(struct db *db, const char *device_id,
    int rekey, int64_t now, const char *actor,
    char serial[FC_CERT_SERIAL_MAX], int *rekey_out,
    enum inv_renew_refusal *refusal, char *dev_status, size_t status_cap);

/* ---- reserve, record, void --------------------------------------------- */

/*
 * Reserves new_serial as the renewal of old_serial: inserts the reserved
 * certificate row (issued_by renewal, renewed_from old_serial; audited
 * "cert.reserve") and marks old_serial's renewal in flight. Call inside
 * the caller's transaction (committed with synchronous=FULL before any
 * signing). FC_ECONFLICT if old_serial is not active or already has a
 * renewal in flight, or new_serial exists.
 */
enum fc_err inv_renew_reserve(struct db *db, const char *old_serial,
    const char *device_id, const char *new_serial, const char *actor);
/* The same, with the old certificate's rowid (from inv_renew_due) to
 * spare a lookup by serial; old_serial must match that row. */
enum fc_err inv_renew_reserve_row(struct db *db, int64_t old_rowid,
    const char *old_serial, const char *device_id, const char *new_serial,
    const char *actor);

/*
 * Records the signed certificate c of a reserved renewal: fills the row
 * (status pending, audited "cert.issue", inv_cert_complete), sets its
 * renew_at (renew_at, the next renewal's start) and queues its delivery
 * at step first_step; c->chain_id (if not 0) is stored with it.
 * rekeyed: c was signed from a CSR with a new key;
 * only then is the device's one-shot rekey_once cleared (a same-key
 * renewal or reissue leaves an operator's rekey request pending). Call
 * inside the caller's transaction.
 * FC_ECONFLICT if c->serial is not reserved, or if its device is no longer
 * active (revoked meanwhile: the caller voids the reservation, so that
 * the serial ends on the CRL and the certificate is never delivered).
 */
enum fc_err inv_renew_record(struct db *db, const struct inv_cert *c,
    int64_t renew_at, const char *first_step, int rekeyed,
    const char *actor);

/*
 * *want = 1 if device_id's next renewal must ask for a new key
 * (devices.rekey or the operator's one-shot rekey_once). Read inside the
 * reservation's transaction when a rekey request committed after the due
 * certificate was read, so that it is still honoured. FC_ENOTFOUND: no
 * such device.
 */
enum fc_err inv_renew_rekey_wanted(struct db *db, const char *device_id,
    int *want);

/*
 * The id of the chain PEM in the chains table, added if new (own
 * transaction when none is open). Certificates recorded with that id are
 * delivered with that chain, whatever the CA is by then.
 */
enum fc_err inv_chain_put(struct db *db, const char *pem, int64_t *id);

/*
 * The chain recorded with certificate serial (malloc'd PEM in *pem).
 * FC_ENOTFOUND: no such certificate, or none recorded with it.
 */
enum fc_err inv_cert_chain(struct db *db, const char *serial, char **pem);

/*
 * A counter that every accepted rekey request (inv_renew_request with
 * rekey) increments in its transaction (meta 'rekey_requests'; 0 before
 * the first). The renewal job reads it before collecting a batch and again
 * inside the batch's reservation: only when it moved are the batch's
 * devices re-read with inv_renew_rekey_wanted.
 */
enum fc_err inv_renew_rekey_generation(struct db *db, int64_t *gen);

/*
 * Voids a reserved renewal whose signed certificate was never recorded:
 * the serial stays in the table for ever (never reused) as revoked
 * (reason superseded, no DER, audited "cert.void" with why), and the old
 * certificate's renewal is cleared with renew_at = retry_at so it is
 * renewed again under a fresh serial. Own transaction when none is open.
 * FC_ECONFLICT if serial is not reserved.
 */
enum fc_err inv_renew_void(struct db *db, const char *serial,
    int64_t retry_at, const char *why, const char *actor);

/*
 * Clears the renewal in flight `serial` on the certificate it renews
 * (renewed_from), with renew_at = retry_at when retry_at > 0. Inside the
 * caller's transaction.
 */
enum fc_err inv_renew_clear(struct db *db, const char *serial,
    int64_t retry_at);

/* Calls cb with the serial of every reserved certificate (recovery). The
 * strings are valid only during the call. */
enum fc_err inv_renew_reserved_list(struct db *db,
    int (*cb)(void *arg, const char *serial, const char *device_id),
    void *arg);

/* ---- delivery outbox --------------------------------------------------- */

/* Terminal steps; every other step is worked by deliver.c. */
#define INV_STEP_DONE		"done"
#define INV_STEP_FAILED		"failed"
#define INV_STEP_CANCELLED	"cancelled"
#define INV_STEP_MAX		16

struct inv_delivery {
	char		 serial[FC_CERT_SERIAL_MAX];
	char		 device_id[FC_DEVICE_ID_MAX];
	char		 step[INV_STEP_MAX];
	int		 attempts;
	int64_t		 next_attempt_at;
	int64_t		 created_at;
	char		 hub[FC_NAME_MAX];
	enum inv_auth	 auth_type;
	enum inv_cert_status cert_status;	/* of the new certificate */
	char		 old_serial[FC_CERT_SERIAL_MAX];
	int64_t		 old_not_after;
	int64_t		 renew_at, not_after;	/* of the new certificate */
	enum inv_dev_status dev_status;
};

/*
 * Calls cb for up to limit open deliveries with next_attempt_at <= now,
 * earliest first (partial index deliveries_open). cb returns non-zero to
 * stop. The struct is valid only during the call.
 */
enum fc_err inv_delivery_due(struct db *db, int64_t now, int limit,
    int (*cb)(void *arg, const struct inv_delivery *d), void *arg);

/* Reads one delivery. FC_ENOTFOUND. */
enum fc_err inv_delivery_get(struct db *db, const char *serial,
    struct inv_delivery *out);

/*
 * Moves a delivery to step with attempts, next_attempt_at and last_error
 * (NULL clears it). No audit (the outbox is work, not history); terminal
 * outcomes go through inv_delivery_finish.
 */
enum fc_err inv_delivery_update(struct db *db, const char *serial,
    const char *step, int attempts, int64_t next_attempt_at,
    const char *last_error);

/*
 * Ends a delivery: step done/failed/cancelled, last_error = why, audited
 * "delivery.<step>" with why. For failed and cancelled the old
 * certificate's renewal is cleared (renew_at = retry_at, 0: leave it
 * unscheduled) so that the device is renewed again later.
 */
enum fc_err inv_delivery_finish(struct db *db, const char *serial,
    const char *step, const char *why, int64_t retry_at, const char *actor);

/*
 * The device confirmed serial (reported installedSerial): in one
 * transaction the new certificate becomes active, the one it renewed
 * superseded (both audited), the device's needs_reenrol flag is cleared
 * and the delivery moves to next_step ("promote" or "done").
 */
enum fc_err inv_delivery_confirm(struct db *db, const char *serial,
    const char *next_step, const char *actor);

/*
 * Flags needs_reenrol on every device with an open delivery whose old
 * certificate expired before now (and not flagged yet); *n gets how many.
 */
enum fc_err inv_delivery_flag_expired(struct db *db, int64_t now, int *n);

/* Outbox figures for metrics and STATUS=. */
struct inv_delivery_stats {
	int64_t	 open;			/* not in a terminal step */
	int64_t	 due;			/* open and next_attempt_at <= now */
	int64_t	 failed, done, cancelled;
	int64_t	 oldest_open_created;	/* 0 when none */
	int64_t	 needs_reenrol;		/* devices flagged */
	int64_t	 expiring_7d, expiring_30d;	/* active certificates */
};
enum fc_err inv_delivery_stats(struct db *db, int64_t now,
    struct inv_delivery_stats *out);

#endif
