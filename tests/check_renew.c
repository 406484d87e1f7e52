/*
 * check_renew.c — renewal (renew.c) and its SQL (inventory_renew.c) on a
 * real SQLite database with a real CA made by tests/mkca.sh: schedule and
 * jitter, the due scan's query plan, reserve / sign / record, kill -9 in
 * the middle of a batch (a forked child dies while signing) and start-up
 * recovery, signer refusals, the real signer process, and the delivery
 * outbox's SQL transitions. Time moves through fc_clock_set_offset().
 */
#include "fc_build.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "ca.h"
#include "config.h"
#include "db.h"
#include "deliver.h"
#include "inventory.h"
#include "inventory_renew.h"
#include "log.h"
#include "renew.h"
#include "signer.h"
#include "testutil.h"

#define DAY	86400

static char ca_dir[512];
static char ca_cert_path[600], ca_key_path[600], ca_chain_path[600];

/* Per-test state. */
static struct db *db;
static struct ca *ca;
static struct cfg cfg;

static void
setup(void)
{
	const char *dir = tu_tmpdir();
	char path[600], why[256];

	fc_clock_set_offset(0);
	snprintf(path, sizeof(path), "%s/fleet.db", dir);
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	memset(&cfg, 0, sizeof(cfg));
	cfg.ca_certificate = ca_cert_path;
	cfg.ca_key = ca_key_path;
	cfg.ca_chain = ca_chain_path;
	cfg.validity_days = 365;
	cfg.crl_validity_hours = 48;
	cfg.renew_before_days = 30;
	cfg.jitter_days = 7;
	cfg.retry_max_seconds = 3600;
	ck_assert_msg(ca_load(&cfg, 0, &ca, why, sizeof(why)) == FC_OK, "%s",
	    why);
}

static void
teardown(void)
{
	ca_free(ca);
	ca = NULL;
	db_close(db);
	db = NULL;
	fc_clock_set_offset(0);
}

static enum fc_err
inproc_issue(void *arg, const struct ca_issue_req *req, struct ca_cert **out,
    char *why, size_t whylen)
{
	(void)arg;
	return ca_cert_issue(ca, req, out, why, whylen);
}

/* Issuer that dies (as kill -9 would) after *arg signatures. */
static enum fc_err
dying_issue(void *arg, const struct ca_issue_req *req, struct ca_cert **out,
    char *why, size_t whylen)
{
	int *left = arg;

	if ((*left)-- <= 0)
		_exit(9);
	return ca_cert_issue(ca, req, out, why, whylen);
}

/* Issuer that refuses one device. */
static const char *refuse_id;
static enum fc_err
refusing_issue(void *arg, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen)
{
	(void)arg;
	if (refuse_id != NULL && strcmp(req->device_id, refuse_id) == 0) {
		snprintf(why, whylen, "test refusal");
		return FC_EINVAL;
	}
	return ca_cert_issue(ca, req, out, why, whylen);
}

static void
opts(struct renew_opts *o, renew_issue_fn *fn, void *arg)
{
	renew_opts_from_cfg(o, &cfg);
	o->issue = fn;
	o->issue_arg = arg;
	o->batch = 16;
}

/*
 * Makes n devices dev-<prefix>-NNNN, each with a fresh P-256 identity key
 * and an active certificate valid for `days` days from now. auth alternates
 * when mixed is set.
 */
static void
fleet(const char *prefix, int n, int days, int mixed)
{
	int i;

	ck_assert_int_eq(db_begin(db), FC_OK);
	for (i = 0; i < n; i++) {
		struct inv_device d;
		struct inv_cert c;
		struct ca_issue_req req;
		struct ca_cert *cc = NULL;
		EVP_PKEY *k = EVP_EC_gen("P-256");
		unsigned char *spki = NULL;
		char why[160];
		int len;

		ck_assert_ptr_nonnull(k);
		len = i2d_PUBKEY(k, &spki);
		ck_assert_int_gt(len, 0);
		memset(&d, 0, sizeof(d));
		snprintf(d.device_id, sizeof(d.device_id), "dev-%s-%04d",
		    prefix, i);
		snprintf(d.se_serial, sizeof(d.se_serial), "0123%012x%02x",
		    (unsigned)(i + 1) * 7919u + (unsigned)prefix[0], 0xee);
		d.auth_type = mixed && i % 2 ? INV_AUTH_SELFSIGNED : INV_AUTH_CA;
		d.identity_key = spki;
		d.identity_key_len = (size_t)len;
		ck_assert_int_eq(inv_device_insert(db, &d, "test"), FC_OK);

		memset(&req, 0, sizeof(req));
		ck_assert_int_eq(ca_serial_new(c.serial), FC_OK);
		req.serial = c.serial;
		req.device_id = d.device_id;
		req.se_serial = d.se_serial;
		req.validity_days = days;
		req.spki = spki;
		req.spki_len = (size_t)len;
		ck_assert_msg(ca_cert_issue(ca, &req, &cc, why, sizeof(why)) ==
		    FC_OK, "%s", why);
		memset(&c, 0, sizeof(c));
		snprintf(c.serial, sizeof(c.serial), "%s", cc->serial);
		snprintf(c.device_id, sizeof(c.device_id), "%s", d.device_id);
		c.der = cc->der;
		c.der_len = cc->der_len;
		c.not_before = cc->not_before;
		c.not_after = cc->not_after;
		snprintf(c.sha1, sizeof(c.sha1), "%s", cc->sha1);
		snprintf(c.sha256, sizeof(c.sha256), "%s", cc->sha256);
		c.status = INV_CERT_ACTIVE;
		c.issued_by = INV_ISSUED_IMPORT;
		ck_assert_int_eq(inv_cert_insert(db, &c, "test"), FC_OK);
		ca_cert_free(cc);
		OPENSSL_free(spki);
		EVP_PKEY_free(k);
	}
	ck_assert_int_eq(db_commit(db), FC_OK);
}

static int64_t
count(const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	ck_assert_int_eq(db_prepare(db, sql, &st), FC_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Every device renewed exactly once: one non-voided renewal each, with
 * renewed_from its original certificate and the identity key. */
static void
check_renewed_once(int ndev)
{
	sqlite3_stmt *st = NULL;
	int rows = 0;

	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'renewal' AND status NOT IN ('revoked')"), ndev);
	ck_assert_int_eq(count("SELECT count(*) FROM (SELECT device_id FROM "
	    "certificates WHERE issued_by = 'renewal' AND status != 'revoked'"
	    " GROUP BY device_id HAVING count(*) != 1)"), 0);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'reserved'"), 0);
	/* Voided reservations carry no certificate. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'renewal' AND status = 'revoked' AND der IS NOT "
	    "NULL"), 0);
	/* Each recorded certificate has its reserve and issue audit. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates c WHERE "
	    "issued_by = 'renewal' AND der IS NOT NULL AND (SELECT count(*) "
	    "FROM audit a WHERE a.serial = c.serial AND a.action IN "
	    "('cert.reserve', 'cert.issue')) != 2"), 0);
	ck_assert_int_eq(count("SELECT count(*) FROM deliveries"), ndev);
	/* The new certificate's key is the device's identity key. */
	ck_assert_int_eq(db_prepare(db, "SELECT c.der, d.identity_key FROM "
	    "certificates c JOIN devices d USING (device_id) WHERE "
	    "c.issued_by = 'renewal' AND c.der IS NOT NULL", &st), FC_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *der = sqlite3_column_blob(st, 0);
		const unsigned char *spki = NULL;
		size_t spki_len = 0;
		ck_assert_int_eq(renew_cert_spki(der,
		    (size_t)sqlite3_column_bytes(st, 0), &spki, &spki_len),
		    FC_OK);
		ck_assert_int_eq((int)spki_len, sqlite3_column_bytes(st, 1));
		ck_assert(memcmp(spki, sqlite3_column_blob(st, 1),
		    spki_len) == 0);
		rows++;
	}
	sqlite3_finalize(st);
	ck_assert_int_eq(rows, ndev);
	{
		int64_t bad = -1;
		ck_assert_int_eq(audit_verify(db, &bad, NULL), FC_OK);
	}
}

START_TEST(test_jitter)
{
	char id[32];
	int64_t at, seen_min = INT64_MAX, seen_max = INT64_MIN;
	int i;

	ck_assert_int_eq(inv_renew_at("a", 1000 * DAY, 30 * DAY, 0),
	    970 * DAY);
	ck_assert_int_eq(inv_renew_at("dev-1", 1000 * DAY, 30 * DAY, 7 * DAY),
	    inv_renew_at("dev-1", 1000 * DAY, 30 * DAY, 7 * DAY));
	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof(id), "dev-%d", i);
		at = inv_renew_at(id, 1000 * DAY, 30 * DAY, 7 * DAY);
		ck_assert_int_ge(at, 970 * DAY);
		ck_assert_int_le(at, 977 * DAY);
		if (at < seen_min)
			seen_min = at;
		if (at > seen_max)
			seen_max = at;
	}
	/* Spread over (nearly) the whole jitter range. */
	ck_assert_int_lt(seen_min, 970 * DAY + DAY / 2);
	ck_assert_int_gt(seen_max, 977 * DAY - DAY / 2);
}
END_TEST

/* The due scan is a range scan on the partial index; no table scan. */
START_TEST(test_scan_plan)
{
	char q[2048];
	sqlite3_stmt *st = NULL;
	int uses_index = 0, full_scan = 0;

	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", inv_renew_due_sql);
	ck_assert_int_eq(db_prepare(db, q, &st), FC_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);
		if (strstr(d, "USING COVERING INDEX certificates_renew_due "
		    "(status=? AND renewal=? AND renew_at<?)") != NULL)
			uses_index = 1;
		if (strncmp(d, "SCAN ", 5) == 0)
			full_scan = 1;
		if (strstr(d, "TEMP B-TREE") != NULL)
			full_scan = 1;
	}
	sqlite3_finalize(st);
	ck_assert_msg(uses_index, "due scan is not an index-only range scan");
	ck_assert_msg(!full_scan, "due scan scans a table or sorts");
}
END_TEST

START_TEST(test_not_due_then_due)
{
	struct renew *r = NULL;
	struct renew_opts o;
	int issued = -1, more = -1;

	fleet("a", 20, 60, 0);
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "renew_at IS NULL AND status = 'active'"), 0);
	/* 29 days on: 31 days left, window 30 days: none due yet. */
	ck_assert_int_eq(renew_run(r, fc_now() + 29 * DAY, 1000, &issued,
	    &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	/* 38 days on: 22 days left, past every device's jitter. */
	ck_assert_int_eq(renew_run(r, fc_now() + 38 * DAY, 1000, &issued,
	    &more), FC_OK);
	ck_assert_int_eq(issued, 20);
	ck_assert_int_eq(more, 0);
	/* In flight: not renewed twice. */
	ck_assert_int_eq(renew_run(r, fc_now() + 39 * DAY, 1000, &issued,
	    &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	check_renewed_once(20);
	renew_close(r);
}
END_TEST

/* After a big import the fleet is scheduled a chunk per pass, earliest
 * notAfter first, so what is due is renewed before the rest is scheduled
 * and no pass holds the scheduler thread for the whole fleet. */
START_TEST(test_schedule_chunks)
{
	struct renew *r = NULL;
	struct renew_opts o;
	int issued = 0, more = 0, passes = 0, total = 0;

	fleet("c", 10, 10, 0);		/* due */
	fleet("d", 30, 200, 0);		/* not due */
	opts(&o, inproc_issue, NULL);
	o.schedule_chunk = 7;
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	/* The first chunk was the 7 earliest: all due, all renewed. */
	ck_assert_int_eq(issued, 7);
	ck_assert_int_eq(more, 1);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "renew_at IS NOT NULL AND status = 'active'"), 7);
	total = issued;
	while (more) {
		ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more),
		    FC_OK);
		total += issued;
		ck_assert_int_lt(++passes, 10);
	}
	/* 40 rows, 7 a pass: 5 more passes (the last one short). */
	ck_assert_int_eq(passes, 5);
	ck_assert_int_eq(total, 10);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "renew_at IS NULL AND status = 'active'"), 0);
	check_renewed_once(10);
	renew_close(r);
}
END_TEST

START_TEST(test_batches_and_max)
{
	struct renew *r = NULL;
	struct renew_opts o;
	int issued = 0, more = 0, total = 0;

	fleet("b", 50, 10, 1);
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 20, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 20);
	ck_assert_int_eq(more, 1);
	total = issued;
	while (more) {
		ck_assert_int_eq(renew_run(r, fc_now(), 20, &issued, &more),
		    FC_OK);
		total += issued;
	}
	ck_assert_int_eq(total, 50);
	check_renewed_once(50);
	/* Self-signed devices start by staging the thumbprint. */
	ck_assert_int_eq(count("SELECT count(*) FROM deliveries dl JOIN "
	    "devices d USING (device_id) WHERE (d.auth_type = 'selfsigned')"
	    " != (dl.step = 'stage')"), 0);
	/* The next renewal is scheduled from the new certificate. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'renewal' AND (renew_at IS NULL OR renew_at > "
	    "not_after - 23 * 86400 OR renew_at < not_after - 30 * 86400)"),
	    0);
	renew_close(r);
}
END_TEST

/* A reservation committed before a crash is voided at start-up and the
 * device renewed under a fresh serial. */
START_TEST(test_recover_reserved)
{
	struct renew *r = NULL;
	struct renew_opts o;
	struct inv_cert old, v;
	char serial[FC_CERT_SERIAL_MAX];
	int voided = -1, issued = 0, more = 0;

	fleet("c", 3, 10, 0);
	ck_assert_int_eq(inv_cert_current(db, "dev-c-0001", &old), FC_OK);
	ck_assert_int_eq(ca_serial_new(serial), FC_OK);
	ck_assert_int_eq(inv_renew_reserve(db, old.serial, "dev-c-0001",
	    serial, "test"), FC_OK);
	/* A second reservation of the same renewal is refused. */
	{
		char s2[FC_CERT_SERIAL_MAX];
		ck_assert_int_eq(ca_serial_new(s2), FC_OK);
		ck_assert_int_eq(inv_renew_reserve(db, old.serial,
		    "dev-c-0001", s2, "test"), FC_ECONFLICT);
	}
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_recover(r, &voided), FC_OK);
	ck_assert_int_eq(voided, 1);
	ck_assert_int_eq(inv_cert_get(db, serial, &v), FC_OK);
	ck_assert_int_eq(v.status, INV_CERT_REVOKED);
	ck_assert_ptr_null(v.der);
	ck_assert_int_eq(v.revocation_reason, 4);
	inv_cert_clear(&v);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 3);
	check_renewed_once(3);
	/* The voided serial was not reused. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "renewed_from IS NOT NULL AND status = 'pending'"), 3);
	ck_assert_int_eq(inv_cert_get(db, serial, &v), FC_OK);
	ck_assert_int_eq(v.status, INV_CERT_REVOKED);
	inv_cert_clear(&v);
	inv_cert_clear(&old);
	renew_close(r);
}
END_TEST

/*
 * kill -9 at several moments of a wave: a forked child renews and dies
 * after k signatures (inside a batch, between reserve and record); the
 * parent recovers and continues. Every device ends renewed exactly once.
 */
START_TEST(test_crash_mid_wave)
{
	static const int deaths[] = { 0, 3, 16, 17, 40, 41, 5 };
	struct renew *r = NULL;
	struct renew_opts o;
	size_t i;
	int issued, more, status;

	fleet("k", 60, 10, 1);
	for (i = 0; i < FC_ARRAY_LEN(deaths); i++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int left = deaths[i];
			struct db *cdb = NULL;
			/* The child opens its own connection, as a restarted
			 * daemon would. */
			if (db_open(db->path, 0, &cdb) != FC_OK)
				_exit(2);
			opts(&o, dying_issue, &left);
			if (renew_open(cdb, &o, &r) != FC_OK ||
			    renew_recover(r, NULL) != FC_OK)
				_exit(3);
			for (;;)
				if (renew_run(r, fc_now(), 1000, &issued,
				    &more) != FC_OK || !more)
					break;
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status));
		ck_assert_msg(WEXITSTATUS(status) == 9 ||
		    WEXITSTATUS(status) == 0, "child exit %d",
		    WEXITSTATUS(status));
	}
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_recover(r, NULL), FC_OK);
	/* Voided renewals are retried after retry_s; move past it. */
	do {
		ck_assert_int_eq(renew_run(r, fc_now() + 2 * 3600, 1000,
		    &issued, &more), FC_OK);
	} while (more);
	check_renewed_once(60);
	/* Some reservations were voided by the crashes, none reused. */
	ck_assert_int_gt(count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'renewal' AND status = 'revoked'"), 0);
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'cert.void'"), count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'renewal' AND status = 'revoked'"));
	renew_close(r);
}
END_TEST

START_TEST(test_refusal_and_inactive)
{
	struct renew *r = NULL;
	struct renew_opts o;
	struct inv_cert c;
	int issued = 0, more = 0;

	fleet("r", 5, 10, 0);
	refuse_id = "dev-r-0002";
	ck_assert_int_eq(inv_device_set_status(db, "dev-r-0004",
	    INV_DEV_SUSPENDED, "test", "lost"), FC_OK);
	opts(&o, refusing_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 3);
	/* The refused one is voided and postponed by retry_s; the suspended
	 * device postponed without a reservation. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-r-0002' AND status = 'revoked' AND der IS "
	    "NULL"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-r-0004'"), 1);
	ck_assert_int_eq(renew_run(r, fc_now() + 60, 1000, &issued, &more),
	    FC_OK);
	ck_assert_int_eq(issued, 0);
	refuse_id = NULL;
	ck_assert_int_eq(renew_run(r, fc_now() + 3700, 1000, &issued, &more),
	    FC_OK);
	ck_assert_int_eq(issued, 1);
	ck_assert_int_eq(inv_cert_current(db, "dev-r-0002", &c), FC_OK);
	inv_cert_clear(&c);
	renew_close(r);
	refuse_id = NULL;
}
END_TEST

/* Operator requests (inv_renew_request): due now, one at a time, refusals
 * named, the one-shot rekey kept until a renewal is recorded. */
START_TEST(test_request)
{
	struct renew *r = NULL;
	struct renew_opts o;
	char serial[FC_CERT_SERIAL_MAX], st[32];
	enum inv_renew_refusal why = INV_RENEW_ACCEPTED;
	int issued = -1, more = -1, rk = -1;

	fleet("q", 3, 300, 0);
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	ck_assert_int_eq(inv_renew_request(db, "dev-q-0001", 0, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_OK);
	ck_assert_int_eq(rk, 0);
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'device.renew' AND device_id = 'dev-q-0001'"), 1);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 1);
	ck_assert_int_eq(inv_renew_request(db, "dev-q-0001", 0, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_ECONFLICT);
	ck_assert_int_eq(why, INV_RENEW_IN_FLIGHT);
	ck_assert_int_eq(inv_renew_request(db, "dev-q-nope", 0, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_ENOTFOUND);
	ck_assert_int_eq(inv_device_set_status(db, "dev-q-0002",
	    INV_DEV_SUSPENDED, "test", "lost"), FC_OK);
	ck_assert_int_eq(inv_renew_request(db, "dev-q-0002", 0, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_ECONFLICT);
	ck_assert_int_eq(why, INV_RENEW_DEVICE_NOT_ACTIVE);
	ck_assert_str_eq(st, "suspended");
	/* Rekey without a hub to ask for a CSR: postponed, the flag kept. */
	ck_assert_int_eq(inv_renew_request(db, "dev-q-0000", 1, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_OK);
	ck_assert_int_eq(rk, 1);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	ck_assert_int_eq(count("SELECT rekey_once FROM devices WHERE "
	    "device_id = 'dev-q-0000'"), 1);
	ck_assert_int_eq(sqlite3_exec(db->h, "UPDATE certificates SET status ="
	    " 'superseded' WHERE device_id = 'dev-q-0000'", NULL, NULL, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(inv_renew_request(db, "dev-q-0000", 0, fc_now(),
	    "test", serial, &rk, &why, st, sizeof(st)), FC_ECONFLICT);
	ck_assert_int_eq(why, INV_RENEW_NO_CERTIFICATE);
	renew_close(r);
}
END_TEST

/* CSR fetcher that only notes what it was asked for. */
static char csr_serial[FC_CERT_SERIAL_MAX];
static int csr_asked;

static enum fc_err
noting_csr(void *arg, const char *serial, const char *device_id,
    const char *hub)
{
	(void)arg;
	(void)device_id;
	(void)hub;
	snprintf(csr_serial, sizeof(csr_serial), "%s", serial);
	csr_asked++;
	return FC_OK;
}

/* DER PKCS#10 for CN=cn signed with k. */
static int
make_csr(EVP_PKEY *k, const char *cn, unsigned char **der)
{
	X509_REQ *q = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	int len;

	ck_assert_int_eq(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	ck_assert_int_eq(X509_REQ_set_subject_name(q, n), 1);
	ck_assert_int_eq(X509_REQ_set_pubkey(q, k), 1);
	ck_assert_int_gt(X509_REQ_sign(q, k, EVP_sha256()), 0);
	*der = NULL;
	len = i2d_X509_REQ(q, der);
	ck_assert_int_gt(len, 0);
	X509_NAME_free(n);
	X509_REQ_free(q);
	return len;
}

/*
 * The operator's one-shot rekey is cleared only by a renewal signed from
 * the device's CSR: a same-key renewal or reissue recorded meanwhile (one
 * already read before the request, or an owner transfer) leaves it set.
 */
START_TEST(test_rekey_once)
{
	struct renew *r = NULL;
	struct renew_opts o;
	struct inv_cert old, nc;
	struct inv_device dev;
	struct ca_issue_req req;
	struct ca_cert *cc = NULL;
	char serial[FC_CERT_SERIAL_MAX], st[32], why[160];
	enum inv_renew_refusal refusal = INV_RENEW_ACCEPTED;
	unsigned char *csr = NULL, *spki = NULL;
	const unsigned char *p;
	EVP_PKEY *k = EVP_EC_gen("P-256"), *got;
	X509 *x;
	int issued = -1, more = -1, rk = -1, len, want = -1;
	int64_t gen0 = -1, gen1 = -1;

	fleet("k", 3, 300, 0);
	opts(&o, inproc_issue, NULL);
	o.csr = noting_csr;
	csr_asked = 0;
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	ck_assert_int_eq(inv_renew_rekey_wanted(db, "dev-k-0000", &want),
	    FC_OK);
	ck_assert_int_eq(want, 0);
	ck_assert_int_eq(inv_renew_rekey_wanted(db, "dev-k-nope", &want),
	    FC_ENOTFOUND);

	/* Same key, recorded while a rekey request is pending (what the
	 * transfer does): the request survives. Each rekey request moves
	 * the counter the renewal job compares around a batch. */
	ck_assert_int_eq(inv_renew_rekey_generation(db, &gen0), FC_OK);
	ck_assert_int_eq(gen0, 0);
	ck_assert_int_eq(inv_renew_request(db, "dev-k-0002", 0, fc_now(),
	    "test", serial, &rk, &refusal, st, sizeof(st)), FC_OK);
	ck_assert_int_eq(inv_renew_rekey_generation(db, &gen1), FC_OK);
	ck_assert_int_eq(gen1, 0);
	ck_assert_int_eq(inv_renew_request(db, "dev-k-0001", 1, fc_now(),
	    "test", serial, &rk, &refusal, st, sizeof(st)), FC_OK);
	ck_assert_int_eq(inv_renew_rekey_generation(db, &gen1), FC_OK);
	ck_assert_int_eq(gen1, 1);
	ck_assert_int_eq(inv_renew_rekey_wanted(db, "dev-k-0001", &want),
	    FC_OK);
	ck_assert_int_eq(want, 1);
	ck_assert_int_eq(inv_cert_current(db, "dev-k-0001", &old), FC_OK);
	ck_assert_int_eq(ca_serial_new(serial), FC_OK);
	ck_assert_int_eq(inv_renew_reserve(db, old.serial, "dev-k-0001",
	    serial, "test"), FC_OK);
	p = old.der;
	x = d2i_X509(NULL, &p, (long)old.der_len);
	ck_assert_ptr_nonnull(x);
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
	ck_assert_int_gt(len, 0);
	memset(&req, 0, sizeof(req));
	req.serial = serial;
	req.device_id = "dev-k-0001";
	ck_assert_int_eq(inv_device_get(db, "dev-k-0001", &dev), FC_OK);
	req.se_serial = dev.se_serial;
	req.spki = spki;
	req.spki_len = (size_t)len;
	ck_assert_msg(ca_cert_issue(ca, &req, &cc, why, sizeof(why)) == FC_OK,
	    "%s", why);
	inv_device_clear(&dev);
	memset(&nc, 0, sizeof(nc));
	snprintf(nc.serial, sizeof(nc.serial), "%s", cc->serial);
	snprintf(nc.device_id, sizeof(nc.device_id), "dev-k-0001");
	nc.der = cc->der;
	nc.der_len = cc->der_len;
	nc.not_before = cc->not_before;
	nc.not_after = cc->not_after;
	snprintf(nc.sha1, sizeof(nc.sha1), "%s", cc->sha1);
	snprintf(nc.sha256, sizeof(nc.sha256), "%s", cc->sha256);
	nc.status = INV_CERT_PENDING;
	nc.issued_by = INV_ISSUED_RENEWAL;
	ck_assert_int_eq(inv_renew_record(db, &nc, cc->not_after - DAY,
	    "install", 0, "test"), FC_OK);
	ck_assert_int_eq(count("SELECT rekey_once FROM devices WHERE "
	    "device_id = 'dev-k-0001'"), 1);
	ca_cert_free(cc);
	OPENSSL_free(spki);
	X509_free(x);
	inv_cert_clear(&old);

	/* Rekey request, then the job: a CSR is asked for; the flag stays
	 * until the certificate signed from the CSR is recorded. */
	ck_assert_int_eq(inv_renew_request(db, "dev-k-0000", 1, fc_now(),
	    "test", serial, &rk, &refusal, st, sizeof(st)), FC_OK);
	ck_assert_int_eq(rk, 1);
	ck_assert_int_eq(inv_renew_rekey_generation(db, &gen1), FC_OK);
	ck_assert_int_eq(gen1, 2);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	/* dev-k-0002 (same key, due now) renewed; dev-k-0000 asked for a
	 * CSR. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-k-0002' AND status = 'pending'"), 1);
	ck_assert_int_eq(csr_asked, 1);
	ck_assert_int_eq(count("SELECT rekey_once FROM devices WHERE "
	    "device_id = 'dev-k-0000'"), 1);
	len = make_csr(k, "dev-k-0000", &csr);
	ck_assert_int_eq(renew_csr_done(r, csr_serial, csr, (size_t)len, NULL),
	    FC_OK);
	ck_assert_int_eq(count("SELECT rekey_once FROM devices WHERE "
	    "device_id = 'dev-k-0000'"), 0);
	/* The new certificate carries the new key. */
	ck_assert_int_eq(inv_cert_get(db, csr_serial, &nc), FC_OK);
	ck_assert_int_eq(nc.status, INV_CERT_PENDING);
	p = nc.der;
	x = d2i_X509(NULL, &p, (long)nc.der_len);
	ck_assert_ptr_nonnull(x);
	got = X509_get0_pubkey(x);
	ck_assert_int_eq(EVP_PKEY_eq(got, k), 1);
	X509_free(x);
	inv_cert_clear(&nc);
	OPENSSL_free(csr);
	EVP_PKEY_free(k);
	/* dev-k-0001's request is still pending. */
	ck_assert_int_eq(count("SELECT rekey_once FROM devices WHERE "
	    "device_id = 'dev-k-0001'"), 1);
	renew_close(r);
}
END_TEST

static const char *
payload_chain(const char *serial, const char *current, json_t **p)
{
	ck_assert_int_eq(deliver_cert_payload(db, serial, current, 1900000000,
	    p), FC_OK);
	return json_string_value(json_object_get(*p, "chain"));
}

/* A CA reload between a renewal and its delivery: the certificate goes out
 * with the chain it was signed under, recorded with it, not with the chain
 * of the day. */
START_TEST(test_chain_kept)
{
	static const char chain_b[] = "-----BEGIN CERTIFICATE-----\n"
	    "Qg==\n-----END CERTIFICATE-----\n";
	struct renew *r = NULL;
	struct renew_opts o;
	struct inv_cert old;
	int64_t a = 0, b = 0, again = 0;
	int issued = 0, more = 0;
	char serial_a[FC_CERT_SERIAL_MAX], *pem = NULL;
	json_t *p = NULL;

	ck_assert_int_eq(inv_chain_put(db, ca_chain_pem(ca), &a), FC_OK);
	ck_assert_int_eq(inv_chain_put(db, chain_b, &b), FC_OK);
	ck_assert_int_ne(a, b);
	ck_assert_int_eq(inv_chain_put(db, ca_chain_pem(ca), &again), FC_OK);
	ck_assert_int_eq(again, a);
	ck_assert_int_eq(inv_chain_put(db, "", &again), FC_EINVAL);
	ck_assert_int_eq(count("SELECT count(*) FROM chains"), 2);

	fleet("h", 1, 10, 0);
	opts(&o, inproc_issue, NULL);
	o.chain_id = a;
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 1);
	{
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(db_prepare(db, "SELECT serial FROM "
		    "certificates WHERE status = 'pending'", &st), FC_OK);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		snprintf(serial_a, sizeof(serial_a), "%s",
		    (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	/* The reload: new chain for what is issued from now on. */
	renew_chain_set(r, b);
	fleet("i", 1, 10, 0);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 1);

	/* Pending A-signed certificate: chain A although B is current. */
	ck_assert_str_eq(payload_chain(serial_a, chain_b, &p),
	    ca_chain_pem(ca));
	json_decref(p);
	ck_assert_int_eq(inv_cert_chain(db, serial_a, &pem), FC_OK);
	ck_assert_str_eq(pem, ca_chain_pem(ca));
	free(pem);
	pem = NULL;
	/* The one recorded after the reload: chain B. */
	ck_assert_int_eq(count("SELECT count(*) FROM certificates c JOIN "
	    "chains ch ON ch.id = c.chain_id WHERE c.device_id = 'dev-i-0000'"
	    " AND c.status = 'pending' AND ch.pem LIKE '%Qg==%'"), 1);
	/* The current chain starts with the same intermediate as the
	 * recorded one (the operator fixed the rest): the current one. */
	{
		char *fixed = malloc(strlen(ca_chain_pem(ca)) + 32);
		ck_assert_ptr_nonnull(fixed);
		sprintf(fixed, "%s# fixed\n", ca_chain_pem(ca));
		ck_assert_str_eq(payload_chain(serial_a, fixed, &p), fixed);
		json_decref(p);
		free(fixed);
	}
	/* A certificate recorded without a chain (imported): the current
	 * one. */
	ck_assert_int_eq(inv_cert_current(db, "dev-h-0000", &old), FC_OK);
	ck_assert_int_eq(inv_cert_chain(db, old.serial, &pem), FC_ENOTFOUND);
	ck_assert_ptr_null(pem);
	ck_assert_str_eq(payload_chain(old.serial, chain_b, &p), chain_b);
	json_decref(p);
	inv_cert_clear(&old);
	ck_assert_int_eq(inv_cert_chain(db, "00ff", &pem), FC_ENOTFOUND);
	ck_assert_int_eq(deliver_cert_payload(db, "00ff", chain_b, 0, &p),
	    FC_ENOTFOUND);
	renew_close(r);
}
END_TEST

/* Issuer that suspends the device while its certificate is being signed
 * (an operator revoking it at that moment). */
static enum fc_err
revoking_issue(void *arg, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen)
{
	struct db *other = arg;

	if (strcmp(req->device_id, "dev-v-0001") == 0)
		ck_assert_int_eq(inv_device_set_status(other, req->device_id,
		    INV_DEV_REVOKED, "test", "stolen"), FC_OK);
	return ca_cert_issue(ca, req, out, why, whylen);
}

/* A device revoked while its renewal is signed gets no recorded
 * certificate: the reservation is voided (revoked, on the CRL). */
START_TEST(test_revoked_while_signing)
{
	struct renew *r = NULL;
	struct renew_opts o;
	struct db *other = NULL;
	int issued = 0, more = 0;

	fleet("v", 3, 10, 0);
	ck_assert_int_eq(db_open(db->path, 0, &other), FC_OK);
	opts(&o, revoking_issue, other);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 2);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-v-0001' AND issued_by = 'renewal' AND status = "
	    "'revoked' AND der IS NULL"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM deliveries WHERE "
	    "device_id = 'dev-v-0001'"), 0);
	renew_close(r);
	db_close(other);
}
END_TEST

/* Changing the window reschedules every certificate. */
START_TEST(test_window_change)
{
	struct renew *r = NULL;
	struct renew_opts o;
	int issued = 0, more = 0;

	fleet("w", 10, 50, 0);
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 0);
	o.before_s = 60 * DAY;
	o.jitter_s = 0;
	ck_assert_int_eq(renew_reconfigure(r, &o), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 10);
	renew_close(r);
}
END_TEST

/* Outbox transitions: confirm, fail, flag expired. */
START_TEST(test_delivery_sql)
{
	struct renew *r = NULL;
	struct renew_opts o;
	struct inv_delivery d;
	struct inv_delivery_stats s;
	struct inv_cert c;
	struct inv_device dev;
	char serial[FC_CERT_SERIAL_MAX], old[FC_CERT_SERIAL_MAX];
	int issued = 0, more = 0, n = -1;

	fleet("d", 3, 10, 0);
	opts(&o, inproc_issue, NULL);
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more), FC_OK);
	ck_assert_int_eq(issued, 3);
	ck_assert_int_eq(inv_delivery_stats(db, fc_now(), &s), FC_OK);
	ck_assert_int_eq(s.open, 3);
	ck_assert_int_eq(s.due, 3);
	ck_assert_int_eq(s.expiring_30d, 3);
	ck_assert_int_gt(s.oldest_open_created, 0);

	ck_assert_int_eq(inv_cert_current(db, "dev-d-0000", &c), FC_OK);
	snprintf(old, sizeof(old), "%s", c.serial);
	inv_cert_clear(&c);
	ck_assert_int_eq(count("SELECT count(*) FROM deliveries WHERE "
	    "device_id = 'dev-d-0000'"), 1);
	{
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(db_prepare(db, "SELECT serial FROM deliveries"
		    " WHERE device_id = 'dev-d-0000'", &st), FC_OK);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		snprintf(serial, sizeof(serial), "%s",
		    sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	ck_assert_int_eq(inv_delivery_get(db, serial, &d), FC_OK);
	ck_assert_str_eq(d.step, "install");
	ck_assert_str_eq(d.old_serial, old);
	ck_assert_int_gt(d.renew_at, 0);
	ck_assert_int_eq(inv_delivery_update(db, serial, "confirm", 1,
	    fc_now() + 10, "waiting"), FC_OK);
	ck_assert_int_eq(inv_delivery_confirm(db, serial, INV_STEP_DONE,
	    "test"), FC_OK);
	ck_assert_int_eq(inv_cert_get(db, serial, &c), FC_OK);
	ck_assert_int_eq(c.status, INV_CERT_ACTIVE);
	inv_cert_clear(&c);
	ck_assert_int_eq(inv_cert_get(db, old, &c), FC_OK);
	ck_assert_int_eq(c.status, INV_CERT_SUPERSEDED);
	inv_cert_clear(&c);
	/* Confirming twice is a conflict. */
	ck_assert_int_eq(inv_delivery_confirm(db, serial, INV_STEP_DONE,
	    "test"), FC_ECONFLICT);

	/* Past the old certificates' expiry: the two unconfirmed devices
	 * are flagged, the confirmed one is not. */
	ck_assert_int_eq(inv_delivery_flag_expired(db, fc_now() + 11 * DAY,
	    &n), FC_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(inv_device_get(db, "dev-d-0000", &dev), FC_OK);
	ck_assert_int_eq(dev.needs_reenrol, 0);
	inv_device_clear(&dev);
	ck_assert_int_eq(inv_device_get(db, "dev-d-0001", &dev), FC_OK);
	ck_assert_int_eq(dev.needs_reenrol, 1);
	inv_device_clear(&dev);
	ck_assert_int_eq(inv_delivery_flag_expired(db, fc_now() + 11 * DAY,
	    &n), FC_OK);
	ck_assert_int_eq(n, 0);

	/* A failed delivery frees the old certificate for a later renewal. */
	{
		sqlite3_stmt *st = NULL;
		ck_assert_int_eq(db_prepare(db, "SELECT serial FROM deliveries"
		    " WHERE device_id = 'dev-d-0001'", &st), FC_OK);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
		snprintf(serial, sizeof(serial), "%s",
		    sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	ck_assert_int_eq(inv_delivery_finish(db, serial, INV_STEP_FAILED,
	    "device refused: \"bad chain\"", fc_now() + 100, "test"), FC_OK);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "device_id = 'dev-d-0001' AND renewal IS NULL AND status = "
	    "'active'"), 1);
	ck_assert_int_eq(inv_delivery_stats(db, fc_now(), &s), FC_OK);
	ck_assert_int_eq(s.open, 1);
	ck_assert_int_eq(s.failed, 1);
	ck_assert_int_eq(s.done, 1);
	ck_assert_int_eq(s.needs_reenrol, 2);
	ck_assert_int_eq(renew_run(r, fc_now() + 200, 1000, &issued, &more),
	    FC_OK);
	ck_assert_int_eq(issued, 1);
	renew_close(r);
}
END_TEST

/* The fleetcertInstall payload / desired fleetcert of device-protocol.md
 * §1: serial, certificate PEM (the same DER), chain PEM, RFC 3339 times. */
START_TEST(test_payload)
{
	struct inv_cert c;
	json_t *p = NULL;
	const char *pem, *na, *ra;
	unsigned char *der = NULL;
	BIO *b;
	X509 *x;
	int len;

	fleet("p", 1, 10, 0);
	ck_assert_int_eq(inv_cert_current(db, "dev-p-0000", &c), FC_OK);
	ck_assert_int_eq(deliver_payload(c.der, c.der_len, c.serial,
	    ca_chain_pem(ca), c.not_after, 1900000000, &p), FC_OK);
	ck_assert_int_eq((int)json_object_size(p), 5);
	ck_assert_str_eq(json_string_value(json_object_get(p, "serial")),
	    c.serial);
	ck_assert_str_eq(json_string_value(json_object_get(p, "chain")),
	    ca_chain_pem(ca));
	na = json_string_value(json_object_get(p, "notAfter"));
	ra = json_string_value(json_object_get(p, "renewAfter"));
	ck_assert_ptr_nonnull(na);
	ck_assert_int_eq((int)strlen(na), 20);
	ck_assert_int_eq(na[19], 'Z');
	ck_assert_str_eq(ra, "2030-03-17T17:46:40Z");
	pem = json_string_value(json_object_get(p, "certificate"));
	ck_assert_ptr_nonnull(pem);
	b = BIO_new_mem_buf(pem, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(x);
	len = i2d_X509(x, &der);
	ck_assert_int_eq(len, (int)c.der_len);
	ck_assert(memcmp(der, c.der, c.der_len) == 0);
	/* Bad input: nothing. */
	ck_assert_int_eq(deliver_payload(NULL, 0, "00", "", 0, 0, &p),
	    FC_EINVAL);
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(b);
	json_decref(p);
	inv_cert_clear(&c);
}
END_TEST

/* Through the real signer process. */
START_TEST(test_real_signer)
{
	struct renew *r = NULL;
	struct renew_opts o;
	char why[256];
	int issued = 0, more = 0;

	fleet("s", 24, 10, 1);
	ck_assert_msg(signer_start(&cfg, why, sizeof(why)) == FC_OK, "%s",
	    why);
	renew_opts_from_cfg(&o, &cfg);
	o.batch = 10;
	ck_assert_int_eq(renew_open(db, &o, &r), FC_OK);
	do {
		ck_assert_int_eq(renew_run(r, fc_now(), 1000, &issued, &more),
		    FC_OK);
	} while (more);
	signer_stop();
	check_renewed_once(24);
	renew_close(r);
}
END_TEST

static Suite *
renew_suite(void)
{
	Suite *s = suite_create("renew");
	TCase *tc = tcase_create("renew");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_jitter);
	tcase_add_test(tc, test_scan_plan);
	tcase_add_test(tc, test_not_due_then_due);
	tcase_add_test(tc, test_schedule_chunks);
	tcase_add_test(tc, test_batches_and_max);
	tcase_add_test(tc, test_recover_reserved);
	tcase_add_test(tc, test_crash_mid_wave);
	tcase_add_test(tc, test_refusal_and_inactive);
	tcase_add_test(tc, test_request);
	tcase_add_test(tc, test_rekey_once);
	tcase_add_test(tc, test_chain_kept);
	tcase_add_test(tc, test_window_change);
	tcase_add_test(tc, test_revoked_while_signing);
	tcase_add_test(tc, test_delivery_sql);
	tcase_add_test(tc, test_payload);
	tcase_add_test(tc, test_real_signer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	const char *src = getenv("top_srcdir");
	char cmd[1200];
	SRunner *sr;
	int failed;

	log_init("check_renew", getenv("FC_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	/* The CA is made once (not with tu_tmpdir: the forked tests must
	 * not inherit a directory list they would not free). */
	snprintf(ca_dir, sizeof(ca_dir), "/tmp/fleetcert-renew-ca.XXXXXX");
	if (mkdtemp(ca_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/mkca.sh' '%s' ec 3650",
	    src ? src : "..", ca_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "check_renew: %s failed\n", cmd);
		return 1;
	}
	snprintf(ca_cert_path, sizeof(ca_cert_path), "%s/intermediate.pem",
	    ca_dir);
	snprintf(ca_key_path, sizeof(ca_key_path), "%s/intermediate.key",
	    ca_dir);
	snprintf(ca_chain_path, sizeof(ca_chain_path), "%s/chain.pem", ca_dir);
	sr = srunner_create(renew_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ca_dir);
	(void)!system(cmd);
	return failed == 0 ? 0 : 1;
}
