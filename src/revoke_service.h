/*
 * revoke_service.h — revocation inside fleetcertd: one worker thread with
 * its own database connection and its own client per hub (the renewal
 * module's hubs are driven by the scheduler thread, which must not block
 * for the minutes a bulk revocation waits for registry tokens). It
 * propagates single revocations at once, runs sweeps on request (POST
 * /v1/sweep, used by `fleetcertd --sweep` while the daemon holds the lock),
 * retries pending propagation every 30 s and reconciles every 15 minutes.
 * API threads call the functions below; start/stop from the main thread.
 */
#ifndef FC_REVOKE_SERVICE_H
#define FC_REVOKE_SERVICE_H

#include <jansson.h>

#include "fc.h"

struct cfg;

#define REVOKE_RETRY_S		30
#define REVOKE_RECONCILE_S	900

/* Starts the worker (after signer_start and the database migration).
 * cfg must outlive revoke_service_stop. */
enum fc_err revoke_service_start(const struct cfg *cfg);
/* Stops the worker after its current step; idempotent. */
void revoke_service_stop(void);

/*
 * Any thread: asks the worker to propagate device_id's queued revocation
 * now and waits up to timeout_ms. FC_OK: the hub accepted it. FC_EBUSY:
 * still pending, why says why (hub down, throttled, timeout). FC_EINVAL:
 * no worker (not running in the daemon).
 */
enum fc_err revoke_service_propagate(const char *device_id, int timeout_ms,
    char *why, size_t whylen);

/* Any thread: runs a sweep that starts after this call and waits for its
 * summary (*out, new reference). FC_EBUSY on timeout, FC_EINVAL: no
 * worker. */
enum fc_err revoke_service_sweep(int timeout_ms, json_t **out);

/* Any thread: work the propagation queue soon (after a bulk request). */
void revoke_service_kick(void);

/* Registers the revocation endpoints of the operator API (api_revoke.c);
 * call before api_start. */
enum fc_err revoke_api_register(void);

/*
 * `fleetcertd --sweep [--json]` (sweep_cli.c): when the daemon holds the
 * database lock, asks it (POST /v1/sweep with the admin token of [sweep]
 * api_token_file) and prints its summary; otherwise takes the lock, starts
 * the signer and runs the sweep itself. Returns the exit code: 0 all
 * propagated, 1 retry needed, 2 configuration error.
 */
int sweep_cli(const char *cfg_file, int json);

#endif
