/*
 * enrol_http.h — starting and stopping the re-enrolment listener, and the
 * issuers that connect the endpoint to the CA. main.c calls enrol_start
 * after the signer, the database and the operator API are up, and
 * enrol_stop first when it shuts down.
 */
#ifndef FC_ENROL_HTTP_H
#define FC_ENROL_HTTP_H

#include "enrol.h"
#include "fc.h"

struct ca;
struct cfg;
struct db;
struct httpd;
struct enrol_listener;

/*
 * Runs start-up recovery on db (enrol_recover), loads the CA certificate
 * (not the key) for the chain, and serves [enrol] listen over TLS with
 * certificates signed by the signer process (signer_start must have run).
 * When [enrol] listen is unset, *out = NULL and FC_OK. On failure (logged)
 * nothing is left running.
 */
enum fc_err enrol_start(const struct cfg *cfg, struct db *db,
    struct enrol_listener **out);
/* Stops serving (in-flight requests finish first) and frees; NULL: no-op. */
void enrol_stop(struct enrol_listener *l);
/* SIGHUP: applies cfg's [enrol] rate limits, TTL and allow_new_key
 * (enrol_reconfigure); NULL l: no-op. FC_OK. */
enum fc_err enrol_reload(struct enrol_listener *l, const struct cfg *cfg);
/* SIGHUP, after signer_reload succeeded: answers from now on carry ca's
 * chain. Takes ca (certificate only) in every case; the replaced one lives
 * until enrol_stop. FC_EBUSY (ca dropped, old chain stays) after 64
 * reloads; NULL l: FC_OK. */
enum fc_err enrol_ca_set(struct enrol_listener *l, struct ca *ca);
/* The bound TCP port (tests with port 0). */
int enrol_listener_port(const struct enrol_listener *l);
/* The endpoint, for enrol_stats_get (metrics). */
struct enrol *enrol_listener_enrol(struct enrol_listener *l);

/* Serves e on cfg's [enrol] listen/TLS settings; *out: httpd_free it
 * before enrol_free(e). */
enum fc_err enrol_listen(const struct cfg *cfg, struct enrol *e,
    struct httpd **out);

/* Issuers: through the signer process, or an in-process CA (serialised by
 * a mutex; the ca must outlive the endpoint). chain_pem is not copied. */
void enrol_issuer_signer(struct enrol_issuer *out, const char *chain_pem);
void enrol_issuer_ca(struct enrol_issuer *out, struct ca *ca);

#endif
