/*
 * renew_tool.c — test and benchmark driver for renewal (not installed):
 *   renew-tool import DB CSV        loads a factory CSV (import_csv) into a
 *                                   new or existing database
 *   renew-tool gen DB N DUE_FRAC    writes N devices with active
 *                                   certificates (synthetic DER from one
 *                                   real template, unique serials), a
 *                                   fraction DUE_FRAC of them due now
 *   renew-tool scan DB N ROUNDS     median time of the due scan for the
 *                                   next N (warm), in microseconds
 *   renew-tool wave DB CONF MAX     renews up to MAX due certificates
 *                                   through the real signer (CA of CONF),
 *                                   prints "issued N seconds S rate R"
 * Prints one result line; exit 0 on success.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"
#include "config.h"
#include "db.h"
#include "import.h"
#include "inventory.h"
#include "inventory_renew.h"
#include "log.h"
#include "renew.h"
#include "signer.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmd_import(const char *dbp, const char *csv)
{
	struct import_result res;
	struct import_opts o;
	struct db *db = NULL;
	char *buf = NULL;
	size_t len = 0;
	enum fc_err r;

	if (fc_file_read(csv, 512u << 20, &buf, &len) != FC_OK ||
	    db_open(dbp, DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	memset(&o, 0, sizeof(o));
	o.actor = "test:import";
	import_result_init(&res);
	r = import_csv(db, buf, len, &o, &res);
	printf("imported %ld skipped %ld\n", res.imported, res.skipped);
	if (r != FC_OK && res.nerrors > 0)
		fprintf(stderr, "line %ld: %s\n", res.errors[0].line,
		    res.errors[0].message);
	import_result_clear(&res);
	free(buf);
	db_close(db);
	return r == FC_OK ? 0 : 1;
}

/*
 * Synthetic fleet for the benchmark: one real P-256 key and certificate
 * serve as the DER of every row (the scan and the renewal read only the
 * key from it); serials, ids and dates are per row. Rows are written in
 * one transaction with prepared statements (the inventory API would audit
 * each row, which is not what is measured here).
 */
static int
cmd_gen(const char *dbp, long n, double due_frac)
{
	struct db *db = NULL;
	sqlite3_stmt *dev = NULL, *cert = NULL;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char *spki = NULL, *der = NULL;
	int spki_len, der_len;
	long i;
	int64_t now = fc_now();
	double t0 = now_s();

	if (k == NULL || x == NULL || db_open(dbp, DB_OPEN_MIGRATE, &db) !=
	    FC_OK)
		return 1;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)"bench", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	spki_len = i2d_PUBKEY(k, &spki);
	der_len = i2d_X509(x, &der);
	if (spki_len <= 0 || der_len <= 0)
		return 1;
	/* Loading only: no durability needed, a large cache. */
	db_exec(db, "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144");
	if (db_prepare(db, "INSERT INTO devices (device_id, se_serial, "
	    "identity_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
	    &dev) != FC_OK || db_prepare(db, "INSERT INTO certificates "
	    "(serial, device_id, der, not_before, not_after, sha1, sha256, "
	    "status, issued_by, created_at, updated_at) VALUES (?, ?, ?, ?, "
	    "?, '', '', 'active', 'import', ?, ?)", &cert) != FC_OK)
		return 1;
	db_exec(db, "BEGIN");
	for (i = 0; i < n; i++) {
		char id[32], se[FC_SE_SERIAL_LEN], serial[40];
		int64_t na;

		snprintf(id, sizeof(id), "bench-%07ld", i);
		snprintf(se, sizeof(se), "0123%012lx01", (unsigned long)i & 0xffffffffffffUL);
		snprintf(serial, sizeof(serial), "7f%030lx", i);
		/* Due ones expire within 20 days (inside the 30-day window
		 * whatever the jitter); the others are spread over 40-365. */
		na = (long)((i + 1) * due_frac) != (long)(i * due_frac) ?
		    now + 86400 * (1 + i % 20) :
		    now + 86400 * (40 + i % 325);
		sqlite3_bind_text(dev, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(dev, 2, se, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(dev, 3, spki, spki_len, SQLITE_STATIC);
		sqlite3_bind_int64(dev, 4, now);
		sqlite3_bind_int64(dev, 5, now);
		sqlite3_bind_text(cert, 1, serial, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(cert, 2, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(cert, 3, der, der_len, SQLITE_STATIC);
		sqlite3_bind_int64(cert, 4, now);
		sqlite3_bind_int64(cert, 5, na);
		sqlite3_bind_int64(cert, 6, now);
		sqlite3_bind_int64(cert, 7, now);
		if (sqlite3_step(dev) != SQLITE_DONE ||
		    sqlite3_step(cert) != SQLITE_DONE) {
			fprintf(stderr, "insert: %s\n", sqlite3_errmsg(db->h));
			return 1;
		}
		sqlite3_reset(dev);
		sqlite3_reset(cert);
	}
	db_exec(db, "COMMIT");
	sqlite3_finalize(dev);
	sqlite3_finalize(cert);
	printf("generated %ld devices in %.1f s\n", n, now_s() - t0);
	OPENSSL_free(spki);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
	db_close(db);
	return 0;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_scan(const char *dbp, int n, int rounds)
{
	struct db *db = NULL;
	double t[101];
	int64_t rowids[1000];
	int i, got = 0, scheduled = 0;

	if (rounds < 1 || rounds > 101 || n < 1 || n > 1000 ||
	    db_open(dbp, DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	/* Schedule everything first (what the daemon does on its first
	 * pass after an import), then time the due scan alone. */
	do {
		if (inv_renew_schedule(db, 30 * 86400, 7 * 86400, 50000,
		    &scheduled) != FC_OK)
			return 1;
	} while (scheduled == 50000);
	for (i = 0; i < rounds; i++) {
		double t0 = now_s();
		if (inv_renew_due(db, fc_now(), n, rowids, &got) != FC_OK)
			return 1;
		t[i] = (now_s() - t0) * 1e6;
	}
	qsort(t, (size_t)rounds, sizeof(t[0]), cmp_d);
	printf("scan next %d: rows %d median_us %.0f\n", n, got,
	    t[rounds / 2]);
	db_close(db);
	return 0;
}

static int
cmd_wave(const char *dbp, const char *conf, int max)
{
	struct cfg *cfg = NULL;
	struct db *db = NULL;
	struct renew *r = NULL;
	struct renew_opts o;
	char err[512];
	int issued = 0, more = 1, total = 0;
	double t0;

	if (cfg_load(conf, &cfg, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (signer_start(cfg, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "signer: %s\n", err);
		return 1;
	}
	if (db_open(dbp, DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	renew_opts_from_cfg(&o, cfg);
	o.batch = getenv("RENEW_BATCH") ? atoi(getenv("RENEW_BATCH")) : 1024;
	if (renew_open(db, &o, &r) != FC_OK)
		return 1;
	t0 = now_s();
	while (more && total < max) {
		if (renew_run(r, fc_now(), max - total < 4096 ? max - total :
		    4096, &issued, &more) != FC_OK)
			return 1;
		total += issued;
	}
	t0 = now_s() - t0;
	{
		struct renew_stats st;
		renew_stats_get(r, &st);
		printf("issued %d seconds %.2f rate %.0f (load %.1f s, reserve "
		    "%.1f s, sign %.1f s, record %.1f s)\n", total, t0,
		    total / t0, st.load_us / 1e6, st.reserve_us / 1e6,
		    st.sign_us / 1e6, st.record_us / 1e6);
	}
	renew_close(r);
	db_close(db);
	signer_stop();
	cfg_free(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	log_init("renew-tool", getenv("FC_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_WARN);
	if (argc == 4 && strcmp(argv[1], "import") == 0)
		return cmd_import(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "gen") == 0)
		return cmd_gen(argv[2], atol(argv[3]), atof(argv[4]));
	if (argc == 5 && strcmp(argv[1], "scan") == 0)
		return cmd_scan(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "wave") == 0)
		return cmd_wave(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: renew-tool import DB CSV | gen DB N FRAC | "
	    "scan DB N ROUNDS | wave DB CONF MAX\n");
	return 2;
}
