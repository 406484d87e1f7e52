/*
 * sweep.h — the one-pass revocation sweep (DESIGN.md "Revocation",
 * `fleetcertd --sweep`): pending requests and drop-in files -> revoke ->
 * CRL -> propagate -> mark expired -> reconcile -> summary. The same code
 * runs in the daemon's revocation worker (POST /v1/sweep) and in a
 * stand-alone `fleetcertd --sweep` that holds the database lock. Runs on the
 * thread that drives ctx's hubs.
 */
#ifndef FC_SWEEP_H
#define FC_SWEEP_H

#include <stdint.h>

#include <jansson.h>

#include "fc.h"
#include "revoke.h"

struct sweep_summary {
	int64_t		 requests;	/* pending requests applied */
	int64_t		 dropins;	/* drop-in files taken */
	int64_t		 dropin_bad;	/* bad lines in drop-in files */
	int64_t		 revoked;	/* devices revoked by this sweep */
	int64_t		 propagated;	/* propagation rows finished */
	int64_t		 bulk_calls;
	int64_t		 pending;	/* rows still to propagate */
	int64_t		 expired;
	int64_t		 drift;
	int		 crl_published;
	uint64_t	 crl_number;
	int64_t		 crl_entries;
	double		 crl_seconds;	/* number, signing, writing */
	double		 propagate_seconds;
	double		 seconds;
	int		 errors;	/* steps that failed (retry) */
	char		 error[256];	/* the last failure */
	int		 exit_code;	/* 0 all propagated, 1 retry */
};

/*
 * One pass. Never leaves the database inconsistent; whatever could not be
 * done stays queued for the next pass. FC_OK unless the database failed.
 */
enum fc_err sweep_run(struct revoke_ctx *ctx, struct sweep_summary *s);

/* One line for the log / stdout, and the JSON form (new reference). */
void sweep_summary_line(const struct sweep_summary *s, char *buf,
    size_t len);
json_t *sweep_summary_json(const struct sweep_summary *s);

#endif
