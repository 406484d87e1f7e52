/*
 * renew.h — proactive renewal (DESIGN.md "Renewal", issue 5): selects the
 * active certificates whose renewal window opened (renew_before_days before
 * expiry, spread by a stable per-device jitter of up to jitter_days) and
 * that have no renewal in flight, and issues their successors through the
 * signer, crash-safe:
 *   1. reserve: serial (ca_serial_new) + reserved certificate row + "old
 *      certificate has a renewal in flight", committed with
 *      synchronous=FULL, in batches;
 *   2. sign through the signer (same key; or the device's CSR for rekey);
 *   3. record: the signed certificate (pending), its next renew_at, its
 *      delivery row and audit entries, in the next committed transaction.
 * A reserved row whose certificate was never recorded (a crash or a signer
 * refusal) is voided: kept for ever as revoked (reason superseded, no DER),
 * so its serial is never reused and a certificate the signer may have made
 * for it is on the CRL; the old certificate is renewed again under a fresh
 * serial. So one renewal never ends with two valid certificates.
 * Main thread (the scheduler) only.
 */
#ifndef FC_RENEW_H
#define FC_RENEW_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"
#include "db.h"
#include "fc.h"

struct cfg;
struct renew;

/* How certificates are signed: signer_issue() in the daemon. Same
 * contract as signer_issue (FC_EIO/FC_EBUSY: signer trouble). */
typedef enum fc_err renew_issue_fn(void *arg, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen);

/*
 * Rekey: asks the device for a CSR (fleetcertCsr). Called with a reserved
 * renewal; the callee later calls renew_csr_done() exactly once with the
 * same serial (or never, if the daemon stops: recovery voids it).
 * FC_OK when the request was queued; anything else voids the renewal.
 */
typedef enum fc_err renew_csr_fn(void *arg, const char *serial,
    const char *device_id, const char *hub);

struct renew_opts {
	int64_t		 before_s;	/* renew_before_days in seconds */
	int64_t		 jitter_s;	/* jitter_days in seconds */
	int		 rekey;		/* [renewal] rekey for every device */
	int		 batch;		/* renewals per reserve transaction */
	int		 retry_s;	/* a failed renewal is retried after */
	int		 schedule_chunk; /* scheduled per pass; 0: 20,000 */
	int64_t		 chain_id;	/* recorded with each certificate
					 * (inv_chain_put); 0: none */
	renew_issue_fn	*issue;
	void		*issue_arg;
	renew_csr_fn	*csr;		/* NULL: rekey devices are postponed */
	void		*csr_arg;
};

/* Fills o from cfg (signer_issue as issuer, no CSR fetcher, batches of
 * 1,024). */
void renew_opts_from_cfg(struct renew_opts *o, const struct cfg *cfg);

/* Counters since start, for metrics. */
struct renew_stats {
	uint64_t	 scans;
	uint64_t	 issued;	/* certificates signed and recorded */
	uint64_t	 voided;	/* reservations voided (failure, crash) */
	uint64_t	 postponed;	/* device not active, rekey impossible */
	uint64_t	 csr_requested;
	uint64_t	 sign_failed;	/* signer refusals and errors */
	int64_t		 last_scan_us;	/* duration of the last due scan */
	int64_t		 load_us, reserve_us, sign_us, record_us; /* totals */
};

/*
 * Creates the renewal module on db (which it uses, never closes) and
 * brings the stored schedule in line with the window settings
 * (inv_renew_window_sync). *out: renew_close it.
 */
enum fc_err renew_open(struct db *db, const struct renew_opts *o,
    struct renew **out);
void renew_close(struct renew *r);

/* Applies new window/rekey/retry settings (SIGHUP). */
enum fc_err renew_reconfigure(struct renew *r, const struct renew_opts *o);

/* The chain id recorded with certificates from now on (a CA reload). */
void renew_chain_set(struct renew *r, int64_t chain_id);

/*
 * Start-up recovery: voids every reserved renewal (their signed
 * certificates, if any were made, were never recorded) so that they are
 * renewed again with fresh serials. *voided may be NULL.
 */
enum fc_err renew_recover(struct renew *r, int *voided);

/*
 * One pass: schedules up to o->schedule_chunk unscheduled certificates (earliest
 * notAfter first), then renews up to max certificates due at now, batch by
 * batch. *issued (may be NULL) gets the number of certificates issued (or
 * handed to the CSR fetcher). *more is set to 1 when due certificates or
 * unscheduled ones may remain (call again soon).
 * FC_EDB on a database failure.
 */
enum fc_err renew_run(struct renew *r, int64_t now, int max, int *issued,
    int *more);

/*
 * Completes a rekey renewal: signs csr (DER PKCS#10) for the reserved
 * serial and records it; csr NULL (the device did not answer, or refused)
 * voids it with why and retries after retry_s.
 */
enum fc_err renew_csr_done(struct renew *r, const char *serial,
    const unsigned char *csr, size_t csr_len, const char *why);

void renew_stats_get(const struct renew *r, struct renew_stats *out);

/*
 * Extracts the SubjectPublicKeyInfo of a DER certificate without a full
 * parse (pointer into der). FC_EINVAL if der is not a certificate.
 */
enum fc_err renew_cert_spki(const unsigned char *der, size_t len,
    const unsigned char **spki, size_t *spki_len);

#endif
