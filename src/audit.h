/*
 * audit.h — the append-only, hash-chained audit log. Every state change of a
 * device or certificate appends one entry in the same transaction as the
 * change. Each row stores hash = SHA-256(prev_hash || canonical content);
 * the first row's prev_hash is 32 zero bytes.
 */
#ifndef FC_AUDIT_H
#define FC_AUDIT_H

#include <stdint.h>

#include "db.h"
#include "fc.h"

struct audit_entry {
	int64_t		 id;
	int64_t		 at;
	const char	*actor;		/* "daemon", "api:<hash prefix>", ... */
	const char	*action;	/* "device.create", "cert.revoke", ... */
	const char	*device_id;	/* may be NULL */
	const char	*serial;	/* may be NULL */
	const char	*detail;	/* JSON text or NULL; never a secret */
};

/*
 * Appends one entry (at = fc_now()). Call inside the transaction that makes
 * the change; opens its own when none is open. FC_OK or FC_EDB.
 */
enum fc_err audit_append(struct db *db, const char *actor, const char *action,
    const char *device_id, const char *serial, const char *detail);

/*
 * Recomputes the whole chain. FC_OK if intact (*bad_id = 0); FC_ECONFLICT
 * with *bad_id = the first row whose hash or link is wrong; FC_EDB.
 * *count receives the number of rows checked (may be NULL).
 */
enum fc_err audit_verify(struct db *db, int64_t *bad_id, int64_t *count);

/*
 * Calls cb for up to limit entries with id > after, in id order. The
 * entry's strings live only during the call. cb returns non-zero to stop.
 */
enum fc_err audit_list(struct db *db, int64_t after, int limit,
    const char *device_id,
    int (*cb)(void *arg, const struct audit_entry *e), void *arg);

#endif
