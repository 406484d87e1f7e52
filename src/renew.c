/*
 * renew.c — proactive renewal: schedule, due scan, reserve / sign / record
 * in batches, void and recovery (renew.h has the protocol). Main process,
 * scheduler thread; touches the database through inventory_renew.c and the
 * CA key only through the issue callback (the signer process).
 */
#include "fc_build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "der.h"
#include "inventory_renew.h"
#include "log.h"
#include "renew.h"
#include "signer.h"

#define ACTOR		"daemon:renew"
#define BATCH_MAX	1024
#define SCHEDULE_CHUNK	20000
#define SPKI_MAX	512
#define STEP_STAGE	"stage"
#define STEP_INSTALL	"install"
#define CSR_BUSY_RETRY_S 30

/* One renewal of a batch. */
struct item {
	int64_t		 old_rowid;
	char		 old_serial[FC_CERT_SERIAL_MAX];
	char		 serial[FC_CERT_SERIAL_MAX];
	char		 device_id[FC_DEVICE_ID_MAX];
	char		 se_serial[FC_SE_SERIAL_LEN];
	char		 hub[FC_NAME_MAX];
	enum inv_auth	 auth_type;
	unsigned char	 spki[SPKI_MAX];
	size_t		 spki_len;
	int		 rekey;
	int		 skip;		/* postponed / not reserved */
	int		 reserved;
	int		 failed;	/* signing or CSR request failed */
	int		 retry_s;	/* when voided: retry after (0: retry_s) */
	struct ca_cert	*cert;		/* signed */
	char		 why[160];
};

/* A batch of renewals; two alternate so that signing one overlaps the
 * database work of the others. */
struct batch {
	struct item	*items;		/* BATCH_MAX */
	int		 n;
	int64_t		 rekey_gen;	/* rekey requests when collected */
	struct renew	*r;
	pthread_t	 th;
	int		 threaded;
};

struct renew {
	struct db	*db;
	struct renew_opts o;
	struct renew_stats st;
	struct batch	 bufs[2];
	struct batch	*cur;		/* the one being collected */
	int64_t		*rowids;	/* BATCH_MAX */
	int64_t		 now;
};

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static enum fc_err
signer_issue_cb(void *arg, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen)
{
	(void)arg;
	return signer_issue(req, out, why, whylen);
}

void
renew_opts_from_cfg(struct renew_opts *o, const struct cfg *cfg)
{
	memset(o, 0, sizeof(*o));
	o->before_s = (int64_t)cfg->renew_before_days * 86400;
	o->jitter_s = (int64_t)cfg->jitter_days * 86400;
	o->rekey = cfg->rekey;
	o->batch = BATCH_MAX;
	o->retry_s = cfg->retry_max_seconds;
	o->issue = signer_issue_cb;
}

enum fc_err
renew_cert_spki(const unsigned char *der, size_t len,
    const unsigned char **spki, size_t *spki_len)
{
	struct der_rd r = { der, len }, cert, tbs, skip, key;

	/* RFC 5280 4.1: Certificate ::= SEQUENCE { tbsCertificate, ... };
	 * TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
	 * signature, issuer, validity, subject, subjectPublicKeyInfo, ... } */
	if (der == NULL || der_get(&r, DER_SEQUENCE, &cert, NULL) != 0 ||
	    der_get(&cert, DER_SEQUENCE, &tbs, NULL) != 0)
		return FC_EINVAL;
	if (der_peek(&tbs) == 0xa0 && der_get(&tbs, 0xa0, &skip, NULL) != 0)
		return FC_EINVAL;
	if (der_get(&tbs, DER_INTEGER, &skip, NULL) != 0 ||
	    der_get(&tbs, DER_SEQUENCE, &skip, NULL) != 0 ||
	    der_get(&tbs, DER_SEQUENCE, &skip, NULL) != 0 ||
	    der_get(&tbs, DER_SEQUENCE, &skip, NULL) != 0 ||
	    der_get(&tbs, DER_SEQUENCE, &skip, NULL) != 0 ||
	    der_get(&tbs, DER_SEQUENCE, &skip, &key) != 0)
		return FC_EINVAL;
	*spki = key.p;
	*spki_len = key.len;
	return FC_OK;
}

enum fc_err
renew_open(struct db *db, const struct renew_opts *o, struct renew **out)
{
	struct renew *r;
	enum fc_err result;

	if (o->issue == NULL || o->before_s <= 0 || o->jitter_s < 0 ||
	    o->jitter_s > o->before_s)
		return FC_EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return FC_ENOMEM;
	r->bufs[0].items = calloc(BATCH_MAX, sizeof(struct item));
	r->bufs[1].items = calloc(BATCH_MAX, sizeof(struct item));
	r->rowids = calloc(BATCH_MAX, sizeof(*r->rowids));
	r->cur = &r->bufs[0];
	if (r->bufs[0].items == NULL || r->bufs[1].items == NULL ||
	    r->rowids == NULL) {
		free(r->bufs[0].items);
		free(r->bufs[1].items);
		free(r->rowids);
		free(r);
		return FC_ENOMEM;
	}
	r->db = db;
	/* A renewal wave touches certificates, their devices, the audit
	 * chain and the outbox in scattered pages; a 16 MiB page cache keeps
	 * it from re-reading them (the daemon's RSS budget is 64 MiB). The
	 * WAL's checkpoint size is db_open's. */
	(void)db_exec(db, "PRAGMA cache_size = -16384");
	result = renew_reconfigure(r, o);
	if (result != FC_OK) {
		renew_close(r);
		return result;
	}
	*out = r;
	return FC_OK;
}

void
renew_close(struct renew *r)
{
	int i, k;

	if (r == NULL)
		return;
	for (k = 0; k < 2; k++) {
		for (i = 0; i < r->bufs[k].n; i++)
			ca_cert_free(r->bufs[k].items[i].cert);
		free(r->bufs[k].items);
	}
	free(r->rowids);
	free(r);
}

enum fc_err
renew_reconfigure(struct renew *r, const struct renew_opts *o)
{
	enum fc_err result;
	int reset = 0;

	if (o->issue == NULL || o->before_s <= 0 || o->jitter_s < 0 ||
	    o->jitter_s > o->before_s)
		return FC_EINVAL;
	result = inv_renew_window_sync(r->db, o->before_s, o->jitter_s,
	    &reset);
	if (result != FC_OK)
		return result;
	if (reset)
		log_info("renewal: window changed to %lld s before expiry, "
		    "jitter %lld s; rescheduling every certificate",
		    (long long)o->before_s, (long long)o->jitter_s);
	r->o = *o;
	if (r->o.batch < 1 || r->o.batch > BATCH_MAX)
		r->o.batch = 256;
	if (r->o.retry_s < 1)
		r->o.retry_s = 3600;
	if (r->o.schedule_chunk < 1)
		r->o.schedule_chunk = SCHEDULE_CHUNK;
	return FC_OK;
}

static int
recover_one(void *arg, const char *serial, const char *device_id)
{
	struct batch *b = arg;

	/* Collected first: voiding while the list statement runs would
	 * change the rows it walks. */
	if (b->n == BATCH_MAX)
		return 1;
	snprintf(b->items[b->n].serial, sizeof(b->items[b->n].serial), "%s",
	    serial);
	snprintf(b->items[b->n].device_id, sizeof(b->items[b->n].device_id),
	    "%s", device_id ? device_id : "");
	b->n++;
	return 0;
}

enum fc_err
renew_recover(struct renew *r, int *voided)
{
	struct batch *b = &r->bufs[0];
	enum fc_err result;
	int i, count = 0;

	for (;;) {
		b->n = 0;
		result = inv_renew_reserved_list(r->db, recover_one, b);
		if (result != FC_OK || b->n == 0)
			break;
		result = db_begin(r->db);
		if (result != FC_OK)
			break;
		for (i = 0; i < b->n && result == FC_OK; i++) {
			result = inv_renew_void(r->db, b->items[i].serial, 0,
			    "interrupted before its certificate was recorded",
			    ACTOR);
			if (result == FC_OK)
				log_info("device %s: renewal %s voided "
				    "(interrupted); it will be renewed again",
				    b->items[i].device_id, b->items[i].serial);
		}
		if (result != FC_OK) {
			db_rollback(r->db);
			break;
		}
		result = db_commit(r->db);
		if (result != FC_OK)
			break;
		count += b->n;
		r->st.voided += (uint64_t)b->n;
	}
	b->n = 0;
	if (result == FC_OK && voided != NULL)
		*voided = count;
	return result;
}

/* Collects due certificates into the batch. */
static int
collect_due(void *arg, const struct inv_due *d)
{
	struct renew *r = arg;
	struct item *it = &r->cur->items[r->cur->n];
	const unsigned char *spki = NULL;
	size_t spki_len = 0;

	memset(it, 0, sizeof(*it));
	it->old_rowid = d->rowid;
	snprintf(it->old_serial, sizeof(it->old_serial), "%s", d->serial);
	snprintf(it->device_id, sizeof(it->device_id), "%s", d->device_id);
	snprintf(it->se_serial, sizeof(it->se_serial), "%s", d->se_serial);
	snprintf(it->hub, sizeof(it->hub), "%s", d->hub);
	it->auth_type = d->auth_type;
	it->rekey = r->o.rekey || d->rekey || d->rekey_once;
	if (d->dev_status != INV_DEV_ACTIVE) {
		snprintf(it->why, sizeof(it->why), "device is %s",
		    inv_dev_status_name(d->dev_status));
		it->skip = 1;
	} else if (it->rekey && r->o.csr == NULL) {
		snprintf(it->why, sizeof(it->why), "rekey needs the hub");
		it->skip = 1;
	} else if (!it->rekey) {
		if (renew_cert_spki(d->der, d->der_len, &spki, &spki_len) !=
		    FC_OK || spki_len > sizeof(it->spki)) {
			snprintf(it->why, sizeof(it->why), "stored certificate "
			    "%s is not readable DER", d->serial);
			it->skip = 1;
		} else {
			memcpy(it->spki, spki, spki_len);
			it->spki_len = spki_len;
		}
	}
	r->cur->n++;
	return 0;
}

/*
 * Transactions whose commit must be on disk before anything depends on it
 * (a reservation before signing, a recorded certificate before it is
 * delivered) run with synchronous=FULL; SQLite refuses to change the
 * level inside a transaction, so it is set around BEGIN and COMMIT.
 */
static enum fc_err
begin_full(struct db *db)
{
	enum fc_err result;

	result = db_exec(db, "PRAGMA synchronous = FULL");
	if (result == FC_OK)
		result = db_begin(db);
	if (result != FC_OK)
		(void)db_exec(db, "PRAGMA synchronous = NORMAL");
	return result;
}

static enum fc_err
commit_full(struct db *db)
{
	enum fc_err result = db_commit(db);

	(void)db_exec(db, "PRAGMA synchronous = NORMAL");
	return result;
}

static void
rollback_full(struct db *db)
{
	db_rollback(db);
	(void)db_exec(db, "PRAGMA synchronous = NORMAL");
}

/* Step 1: reserve every item of the batch in one committed transaction. */
static enum fc_err
reserve_batch(struct renew *r, struct batch *b)
{
	enum fc_err result;
	int64_t gen = 0;
	int i, recheck;

	result = begin_full(r->db);
	if (result != FC_OK)
		return result;
	/* An operator's rekey request may have committed after the rows
	 * were read; inside this transaction nothing can change any more. */
	result = inv_renew_rekey_generation(r->db, &gen);
	if (result != FC_OK)
		goto out;
	recheck = gen != b->rekey_gen;
	for (i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		if (recheck && !it->skip && !it->rekey) {
			int want = 0;

			result = inv_renew_rekey_wanted(r->db, it->device_id,
			    &want);
			if (result != FC_OK && result != FC_ENOTFOUND)
				goto out;
			it->rekey = want;
			if (want && r->o.csr == NULL) {
				snprintf(it->why, sizeof(it->why), "rekey needs "
				    "the hub");
				it->skip = 1;
			}
		}
		if (it->skip) {
			log_info("device %s: renewal of %s postponed: %s",
			    it->device_id, it->old_serial, it->why);
			result = inv_renew_postpone(r->db, it->old_serial,
			    r->now + r->o.retry_s);
			if (result != FC_OK)
				goto out;
			r->st.postponed++;
			continue;
		}
		result = ca_serial_new(it->serial);
		if (result != FC_OK)
			goto out;
		result = inv_renew_reserve_row(r->db, it->old_rowid,
		    it->old_serial, it->device_id, it->serial, ACTOR);
		if (result == FC_ECONFLICT) {
			/* Renewed meanwhile (another path); nothing to do. */
			it->skip = 1;
			continue;
		}
		if (result != FC_OK)
			goto out;
		it->reserved = 1;
	}
	return commit_full(r->db);
out:
	rollback_full(r->db);
	for (i = 0; i < b->n; i++)
		b->items[i].reserved = 0;
	return result;
}

/* Rekey items go to the CSR fetcher (main thread: it talks to the hub)
 * and are completed by renew_csr_done. */
static void
csr_batch(struct renew *r, struct batch *b)
{
	enum fc_err result;
	int i;

	for (i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		if (!it->reserved || !it->rekey)
			continue;
		result = r->o.csr(r->o.csr_arg, it->serial, it->device_id,
		    it->hub);
		if (result == FC_OK) {
			r->st.csr_requested++;
			it->reserved = 0;	/* owned by the fetcher now */
		} else {
			snprintf(it->why, sizeof(it->why), "CSR request not "
			    "queued (%s)", fc_strerror(result));
			it->rekey = 0;
			it->failed = 1;
			/* Busy (all delivery slots taken): soon again. */
			if (result == FC_EBUSY)
				it->retry_s = CSR_BUSY_RETRY_S;
		}
	}
}

/*
 * Step 2: sign what was reserved, same key. Runs on a helper thread while
 * the main thread works the database; touches only the batch and the
 * issue callback (signer_issue is thread-safe).
 */
static void *
sign_batch(void *arg)
{
	struct batch *b = arg;
	struct ca_issue_req req;
	enum fc_err result;
	int i;

	for (i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		if (!it->reserved || it->rekey || it->failed)
			continue;
		memset(&req, 0, sizeof(req));
		req.serial = it->serial;
		req.device_id = it->device_id;
		req.se_serial = it->se_serial;
		req.spki = it->spki;
		req.spki_len = it->spki_len;
		result = b->r->o.issue(b->r->o.issue_arg, &req, &it->cert,
		    it->why, sizeof(it->why));
		if (result != FC_OK) {
			it->cert = NULL;
			it->failed = 1;
			log_warn("device %s: signing renewal %s failed: %s (%s)",
			    it->device_id, it->serial, it->why,
			    fc_strerror(result));
		}
	}
	return NULL;
}

/* Starts signing b on a helper thread (or signs it here if no thread can
 * be made). */
static void
sign_start(struct batch *b)
{
	b->threaded = pthread_create(&b->th, NULL, sign_batch, b) == 0;
	if (!b->threaded)
		(void)sign_batch(b);
}

static void
sign_wait(struct batch *b)
{
	if (b->threaded)
		(void)pthread_join(b->th, NULL);
	b->threaded = 0;
}

static void
cert_to_inv(const struct ca_cert *cc, const char *device_id,
    struct inv_cert *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->serial, sizeof(c->serial), "%s", cc->serial);
	snprintf(c->device_id, sizeof(c->device_id), "%s", device_id);
	c->der = cc->der;
	c->der_len = cc->der_len;
	c->not_before = cc->not_before;
	c->not_after = cc->not_after;
	snprintf(c->sha1, sizeof(c->sha1), "%s", cc->sha1);
	snprintf(c->sha256, sizeof(c->sha256), "%s", cc->sha256);
	c->status = INV_CERT_PENDING;
	c->issued_by = INV_ISSUED_RENEWAL;
}

void
renew_chain_set(struct renew *r, int64_t chain_id)
{
	if (r != NULL)
		r->o.chain_id = chain_id;
}

/* Records one signed certificate (inside the caller's transaction). */
static enum fc_err
record_one(struct renew *r, struct item *it)
{
	struct inv_cert c;

	if (strcmp(it->cert->serial, it->serial) != 0) {
		log_error("device %s: signer answered serial %s for %s",
		    it->device_id, it->cert->serial, it->serial);
		return FC_EINTERNAL;
	}
	cert_to_inv(it->cert, it->device_id, &c);
	c.chain_id = r->o.chain_id;
	return inv_renew_record(r->db, &c, inv_renew_at(it->device_id,
	    c.not_after, r->o.before_s, r->o.jitter_s),
	    it->auth_type == INV_AUTH_SELFSIGNED ? STEP_STAGE : STEP_INSTALL,
	    it->rekey, ACTOR);
}

/* Step 3: record signed certificates and void failed reservations, in the
 * next committed transaction. */
static enum fc_err
record_batch(struct renew *r, struct batch *b, int *issued)
{
	enum fc_err result;
	int i, n = 0, nvoid = 0, nfail = 0;

	result = begin_full(r->db);
	if (result != FC_OK)
		return result;
	for (i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		if (!it->reserved)
			continue;
		if (it->cert != NULL) {
			result = record_one(r, it);
			if (result == FC_OK) {
				n++;
				continue;
			}
			if (result == FC_EINTERNAL)
				snprintf(it->why, sizeof(it->why), "signer "
				    "answered the wrong serial");
			else if (result == FC_ECONFLICT)
				snprintf(it->why, sizeof(it->why), "device no "
				    "longer active when the certificate came "
				    "back; not recorded");
			else
				goto out;
		}
		result = inv_renew_void(r->db, it->serial, r->now +
		    (it->retry_s > 0 ? it->retry_s : r->o.retry_s), it->why,
		    ACTOR);
		if (result == FC_ECONFLICT) {
			/* No longer reserved: nothing of ours to void. */
			result = FC_OK;
			continue;
		}
		if (result != FC_OK)
			goto out;
		nvoid++;
		nfail += it->failed && it->retry_s == 0;
	}
	result = commit_full(r->db);
	if (result != FC_OK)
		return result;
	r->st.issued += (uint64_t)n;
	r->st.voided += (uint64_t)nvoid;
	r->st.sign_failed += (uint64_t)nfail;
	*issued += n;
	return FC_OK;
out:
	rollback_full(r->db);
	return result;
}

static void
batch_free(struct batch *b)
{
	int i;

	for (i = 0; i < b->n; i++) {
		ca_cert_free(b->items[i].cert);
		b->items[i].cert = NULL;
	}
	b->n = 0;
}

/* Collects the next batch of due certificates into r->cur. *got: rows the
 * scan returned (some may have been skipped). */
static enum fc_err
collect_batch(struct renew *r, int64_t now, int want, int *got)
{
	enum fc_err result;
	int64_t t0;
	int i;

	r->cur->n = 0;
	r->cur->r = r;
	t0 = mono_us();
	result = inv_renew_rekey_generation(r->db, &r->cur->rekey_gen);
	if (result == FC_OK)
		result = inv_renew_due(r->db, now, want, r->rowids, got);
	r->st.last_scan_us = mono_us() - t0;
	if (result != FC_OK)
		return result;
	for (i = 0; i < *got && result == FC_OK; i++) {
		result = inv_renew_due_get(r->db, r->rowids[i], collect_due, r);
		if (result == FC_ENOTFOUND)
			result = FC_OK;
	}
	r->st.load_us += mono_us() - t0;
	return result;
}

/*
 * The wave, pipelined: while the helper thread signs batch k, the main
 * thread records batch k-1 and reserves batch k+1. Each batch is reserved
 * (committed) before it is handed to the signer, as always.
 */
enum fc_err
renew_run(struct renew *r, int64_t now, int max, int *issued, int *more)
{
	struct batch *prev = NULL, *b;
	enum fc_err result = FC_OK, rec;
	int n = 0, scheduled, total = 0, full = 0, got;
	int64_t t0;

	r->now = now;
	/* One chunk per pass: after a big import the fleet is scheduled a
	 * chunk at a time (earliest notAfter first, so whatever is due comes
	 * first) between renewal batches, instead of holding the scheduler
	 * thread for the whole fleet (tens of seconds per million). */
	result = inv_renew_schedule(r->db, r->o.before_s, r->o.jitter_s,
	    r->o.schedule_chunk, &scheduled);
	if (result != FC_OK)
		return result;
	r->st.scans++;
	while (total < max) {
		int want = r->o.batch < max - total ? r->o.batch : max - total;

		b = r->cur;
		result = collect_batch(r, now, want, &got);
		if (result != FC_OK || got == 0)
			break;
		full = got == want;
		total += got;
		if (b->n == 0)
			break;
		t0 = mono_us();
		result = reserve_batch(r, b);
		r->st.reserve_us += mono_us() - t0;
		if (result != FC_OK)
			break;
		csr_batch(r, b);
		t0 = mono_us();
		if (prev != NULL)
			sign_wait(prev);
		r->st.sign_us += mono_us() - t0;
		sign_start(b);
		if (prev != NULL) {
			t0 = mono_us();
			result = record_batch(r, prev, &n);
			r->st.record_us += mono_us() - t0;
			batch_free(prev);
			if (result != FC_OK) {
				prev = b;
				break;
			}
		}
		prev = b;
		r->cur = b == &r->bufs[0] ? &r->bufs[1] : &r->bufs[0];
		if (!full)
			break;
	}
	if (prev != NULL) {
		t0 = mono_us();
		sign_wait(prev);
		r->st.sign_us += mono_us() - t0;
		if (result == FC_OK) {
			t0 = mono_us();
			rec = record_batch(r, prev, &n);
			r->st.record_us += mono_us() - t0;
			result = rec;
		}
		batch_free(prev);
	}
	batch_free(r->cur);
	if (result != FC_OK) {
		/* Reservations not recorded stay reserved; start-up recovery
		 * voids them. */
		log_error("renewal: pass stopped (%s)", fc_strerror(result));
		return result;
	}
	if (issued != NULL)
		*issued = n;
	if (more != NULL)
		*more = (full && total >= max) ||
		    scheduled == r->o.schedule_chunk;
	return FC_OK;
}

enum fc_err
renew_csr_done(struct renew *r, const char *serial, const unsigned char *csr,
    size_t csr_len, const char *why)
{
	struct ca_issue_req req;
	struct inv_cert old, res;
	struct inv_device dev;
	struct item it;
	enum fc_err result;
	int n = 0;

	memset(&old, 0, sizeof(old));
	memset(&res, 0, sizeof(res));
	memset(&dev, 0, sizeof(dev));
	memset(&it, 0, sizeof(it));
	r->now = fc_now();
	result = inv_cert_get(r->db, serial, &res);
	if (result != FC_OK || res.status != INV_CERT_RESERVED) {
		log_warn("renewal %s: CSR answer for a renewal that is no "
		    "longer reserved", serial);
		result = FC_ECONFLICT;
		goto out;
	}
	result = inv_device_get(r->db, res.device_id, &dev);
	if (result != FC_OK)
		goto out;
	snprintf(it.serial, sizeof(it.serial), "%s", serial);
	snprintf(it.device_id, sizeof(it.device_id), "%s", dev.device_id);
	it.auth_type = dev.auth_type;
	it.reserved = 1;
	it.rekey = 1;		/* signed from the device's CSR */
	snprintf(it.why, sizeof(it.why), "%s", why ? why : "no CSR");
	if (csr != NULL) {
		memset(&req, 0, sizeof(req));
		req.serial = serial;
		req.device_id = dev.device_id;
		req.se_serial = dev.se_serial;
		req.csr = csr;
		req.csr_len = csr_len;
		result = r->o.issue(r->o.issue_arg, &req, &it.cert, it.why,
		    sizeof(it.why));
		if (result != FC_OK) {
			it.cert = NULL;
			log_warn("device %s: signing rekey renewal %s failed: "
			    "%s", dev.device_id, serial, it.why);
		}
	}
	r->bufs[0].items[0] = it;
	r->bufs[0].n = 1;
	result = record_batch(r, &r->bufs[0], &n);
	if (it.cert == NULL && csr != NULL)
		r->st.sign_failed++;
	batch_free(&r->bufs[0]);
out:
	inv_cert_clear(&old);
	inv_cert_clear(&res);
	inv_device_clear(&dev);
	return result;
}

void
renew_stats_get(const struct renew *r, struct renew_stats *out)
{
	*out = r->st;
}
