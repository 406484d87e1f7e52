/*
 * renew_service.h — wires renewal (renew.h) and delivery (deliver.h) into
 * fleetcertd: opens the hubs, loads the CA chain (certificate only; the
 * key stays in the signer), recovers interrupted renewals, registers the
 * scheduler jobs, the hubs' sockets and timers, STATUS=, drain, health and
 * metrics. Main thread; one instance per process.
 */
#ifndef FC_RENEW_SERVICE_H
#define FC_RENEW_SERVICE_H

#include "db.h"
#include "fc.h"

struct cfg;

/*
 * Starts renewal and delivery on db (the main thread's connection, which
 * must outlive renew_service_stop). Call after sched_init() and
 * signer_start(). cfg must stay valid until the next reload or stop.
 * FC_OK or the first failure (logged).
 */
enum fc_err renew_service_start(const struct cfg *cfg, struct db *db);
/* Applies a reloaded configuration (intervals, window, rates of retry). */
enum fc_err renew_service_reload(const struct cfg *cfg);
/* Wakes the renewal job now (no-op when renewal is off). Any thread. */
void renew_service_kick(void);
/*
 * Registers the renewal endpoint of the operator API (api_renew.c,
 * POST /v1/devices/{id}/renew); called by renew_service_start before
 * api_start. FC_OK or api_route_add's failure.
 */
enum fc_err renew_api_register(void);
/* A reloaded CA (SIGHUP, scheduler thread): deliveries from now on carry
 * chain_pem (copied). FC_OK also when renewal is off. */
enum fc_err renew_service_chain_set(const char *chain_pem);
/* The id (chains table) of the chain certificates are issued under now;
 * 0 when renewal is off. Any thread. */
int64_t renew_service_chain_id(void);
/* Cancels outstanding hub calls and frees everything. Idempotent. */
void renew_service_stop(void);

#endif
