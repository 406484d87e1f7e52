/*
 * inventory_enrol.h — the database side of re-enrolment (DESIGN.md
 * "Re-enrolment"): challenge nonces in table `challenges`, superseding a
 * device's old certificates once a re-enrolment issued a new one, and the
 * start-up recovery of re-enrolments a crash interrupted.
 * Called from the enrolment listener's threads, each with its own struct db.
 */
#ifndef FC_INVENTORY_ENROL_H
#define FC_INVENTORY_ENROL_H

#include <stdint.h>

#include "db.h"
#include "fc.h"

#define INV_NONCE_LEN	32

/*
 * Stores a fresh nonce bound to se_serial (canonical text) that expires at
 * expires_at. Also deletes a few expired challenges, so the table holds at
 * most what the rate limits allow in one TTL. FC_OK, FC_ECONFLICT (nonce
 * exists: the RNG repeated itself), FC_EDB.
 */
enum fc_err inv_challenge_insert(struct db *db,
    const unsigned char nonce[INV_NONCE_LEN], const char *se_serial,
    int64_t expires_at);

/*
 * Marks the nonce used, whatever happens next (single use). On FC_OK the
 * nonce was unused until now and se_serial_out / expires_at_out receive what
 * it was bound to. FC_ENOTFOUND: no such nonce; FC_ECONFLICT: used before;
 * FC_EDB.
 */
enum fc_err inv_challenge_consume(struct db *db,
    const unsigned char nonce[INV_NONCE_LEN],
    char se_serial_out[FC_SE_SERIAL_LEN], int64_t *expires_at_out);

/* Deletes challenges that expired before `now`; *count (may be NULL) gets
 * how many. FC_OK or FC_EDB. */
enum fc_err inv_challenge_purge(struct db *db, int64_t now, int64_t *count);

/*
 * After a re-enrolment issued `keep` for device_id: every other certificate
 * of the device that is active, delivered or pending becomes superseded
 * (one audit entry each). Runs in the caller's transaction if one is open.
 * *count (may be NULL) receives how many changed. FC_OK or FC_EDB.
 */
enum fc_err inv_enrol_supersede(struct db *db, const char *device_id,
    const char *keep, const char *actor, int *count);

/*
 * Voids one reserved certificate row (a serial reserved for a re-enrolment
 * that will not be completed): status revoked, reason 4, audit "cert.void"
 * with cause (a short constant text, no quotes). FC_ENOTFOUND if the row is
 * not reserved; FC_EDB.
 */
enum fc_err inv_enrol_void(struct db *db, const char *serial,
    const char *actor, const char *cause);

/*
 * Start-up recovery. A certificate row still `reserved` with issued_by
 * `reenrolment` belongs to a re-enrolment whose answer was never sent (the
 * answer is sent only after the row is completed and committed), so no
 * device holds it. Each such row is voided: status revoked (reason 4,
 * superseded: if the signer did sign it, the CRL still lists it), never
 * reused, audit "cert.void". The device retries with a new nonce.
 * *count (may be NULL) receives how many rows were voided. FC_OK or FC_EDB.
 */
enum fc_err inv_enrol_recover(struct db *db, const char *actor, int *count);

/*
 * Durability of the next commits on this connection: full = 1 syncs the WAL
 * at every commit (a reserved serial, an issued certificate about to be
 * handed out); 0 is the daemon's default (synchronous NORMAL). FC_OK/FC_EDB.
 */
enum fc_err inv_enrol_durable(struct db *db, int full);

#endif
