/*
 * reconcile.h — drift between the inventory and the hub (DESIGN.md
 * "Reconciliation"): a paged registry query of the hub's enabled devices,
 * compared with the inventory. Kinds recorded in table drift:
 *   revoked-enabled      revoked/decommissioned here, enabled there
 *                        (repaired: its propagation is queued again)
 *   unknown              on the hub, not in the inventory
 *   thumbprint-mismatch  self-signed device whose registered thumbprints
 *                        match none of its current certificates
 *   expiring-before-contact  the certificate expires before the device's
 *                        likely next contact (now + the time since its
 *                        lastActivityTime)
 * Only enabled devices are read: a disabled device cannot connect, and the
 * query stays small after a bulk revocation. Same thread rules as revoke.h.
 */
#ifndef FC_RECONCILE_H
#define FC_RECONCILE_H

#include <stdint.h>

#include "fc.h"
#include "revoke.h"

struct reconcile_stats {
	int64_t	 seen;		/* hub devices read */
	int64_t	 revoked_enabled, unknown, thumbprint, expiring;
	int64_t	 total;
	int64_t	 repaired;	/* propagation queued again */
};

/* One pass over every hub of ctx; replaces table drift. FC_EREMOTE when a
 * hub could not be read (the table then keeps what was found). */
enum fc_err reconcile_run(struct revoke_ctx *ctx, struct reconcile_stats *st);

#endif
