/*
 * bench_import — times one factory-record import into a fresh database, or
 * SQLite's own bulk-insert ceiling on the same machine, and prints rows/s
 * and the process's peak RSS. Driven by bench/import.sh, which generates
 * the inputs with gen-factory-csv and prints the ratios.
 *
 *   bench_import csv FILE DB
 *   bench_import manifest FILE SIGNER.pem DB
 *   bench_import ceiling N DB
 *   bench_import schema N DB   (bare inserts into fleetcert's own devices
 *                               and audit tables: the same rows import
 *                               writes, without any checking)
 *   bench_import verify N      (ES256 verifies/s: the manifest's ceiling)
 *   bench_import parse FILE    (per-row key and certificate checks against
 *                               OpenSSL's d2i_PUBKEY / d2i_X509, on the
 *                               rows of a CSV made with --certs)
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "db.h"
#include "import.h"
#include "import_int.h"
#include "log.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static long base_rss;	/* peak RSS before the import starts */

static void
report(const char *what, long rows, double secs)
{
	printf("%s rows=%ld seconds=%.3f rows_per_s=%.0f peak_rss_kib=%ld "
	    "base_rss_kib=%ld\n", what, rows, secs,
	    secs > 0 ? (double)rows / secs : 0.0, peak_rss_kib(), base_rss);
}

/*
 * The ceiling: rows shaped like a device row (id, serial, 91-byte key,
 * owner, batch, times) plus one audit-sized row each, inserted with bare
 * prepared statements in one transaction, same pragmas as fleetcert.
 */
static int
ceiling(long n, const char *path)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	unsigned char key[91], hash[32];
	char id[32], serial[19];
	double t0;
	long i;

	if (sqlite3_open(path, &h) != SQLITE_OK ||
	    sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA synchronous = "
	    "NORMAL; CREATE TABLE t (id TEXT PRIMARY KEY, serial TEXT NOT NULL "
	    "UNIQUE, key BLOB, owner TEXT, batch TEXT, created INTEGER, "
	    "updated INTEGER)", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(h, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
	    -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "ceiling: %s\n", h ? sqlite3_errmsg(h) : "open");
		return 1;
	}
	RAND_bytes(key, sizeof(key));
	RAND_bytes(hash, sizeof(hash));
	base_rss = peak_rss_kib();
	t0 = now();
	sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "dev-%07ld", i);
		snprintf(serial, sizeof(serial), "0123%012lxee",
		    (unsigned long)i & 0xffffffffffffUL);
		key[90] = (unsigned char)i;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, key, sizeof(key), SQLITE_STATIC);
		sqlite3_bind_text(st, 4, "acme", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, "b1", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)i);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)i);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "ceiling: %s\n", sqlite3_errmsg(h));
			return 1;
		}
		sqlite3_reset(st);
	}
	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	report("ceiling", n, now() - t0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return 0;
}

/*
 * Second ceiling: what the database alone costs for the rows a keys-only
 * import writes (one devices row with its indexes, one audit row), with
 * bare cached statements and no validation, hashing or lookups.
 */
static int
schema_ceiling(long n, const char *path)
{
	static const char qd[] = "INSERT INTO devices (device_id, se_serial, "
	    "hub, auth_type, identity_key, owner, batch, status, rekey, "
	    "needs_reenrol, created_at, updated_at) VALUES (?, ?, '', 'ca', ?, "
	    "'acme', 'b1', 'active', 0, 0, ?, ?)";
	static const char qa[] = "INSERT INTO audit (id, at, actor, action, "
	    "device_id, serial, detail, prev_hash, hash) VALUES (?, ?, 'import', "
	    "'device.create', ?, NULL, ?, ?, ?)";
	struct db *db = NULL;
	sqlite3_stmt *sd, *sa;
	unsigned char key[91], hash[32];
	char id[32], serial[19], detail[96];
	double t0;
	long i;

	if (db_open(path, DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	RAND_bytes(key, sizeof(key));
	RAND_bytes(hash, sizeof(hash));
	base_rss = peak_rss_kib();
	t0 = now();
	if (db_begin(db) != FC_OK)
		return 1;
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "dev-%07ld", i);
		snprintf(serial, sizeof(serial), "0123%012lxee",
		    (unsigned long)i & 0xffffffffffffUL);
		snprintf(detail, sizeof(detail), "{\"serial\":\"%s\","
		    "\"authType\":\"ca\"}", serial);
		key[90] = (unsigned char)i;
		sd = db_stmt(db, qd);
		sa = db_stmt(db, qa);
		if (sd == NULL || sa == NULL)
			return 1;
		sqlite3_bind_text(sd, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(sd, 2, serial, -1, SQLITE_STATIC);
		sqlite3_bind_blob(sd, 3, key, sizeof(key), SQLITE_STATIC);
		sqlite3_bind_int64(sd, 4, (sqlite3_int64)i);
		sqlite3_bind_int64(sd, 5, (sqlite3_int64)i);
		sqlite3_bind_int64(sa, 1, (sqlite3_int64)i + 1);
		sqlite3_bind_int64(sa, 2, (sqlite3_int64)i);
		sqlite3_bind_text(sa, 3, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(sa, 4, detail, -1, SQLITE_STATIC);
		sqlite3_bind_blob(sa, 5, hash, sizeof(hash), SQLITE_STATIC);
		sqlite3_bind_blob(sa, 6, hash, sizeof(hash), SQLITE_STATIC);
		if (sqlite3_step(sd) != SQLITE_DONE ||
		    sqlite3_step(sa) != SQLITE_DONE) {
			fprintf(stderr, "schema: %s\n", sqlite3_errmsg(db->h));
			return 1;
		}
		sqlite3_reset(sd);
		sqlite3_reset(sa);
	}
	if (db_commit(db) != FC_OK)
		return 1;
	report("schema", n, now() - t0);
	db_close(db);
	return 0;
}

/* ES256 verification of a JWS-sized input, the way import_manifest.c does
 * it: SHA-256 of the signing input, then a verify with a context set up
 * once for the signer key. */
static int
verify_ceiling(long n)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *vctx = NULL;
	unsigned char msg[1500], sig[80], dg[32];
	unsigned int dglen = 0;
	size_t siglen = sizeof(sig);
	double t0;
	long i;

	RAND_bytes(msg, sizeof(msg));
	if (k == NULL || md == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) != 1)
		return 1;
	EVP_MD_CTX_free(md);
	md = EVP_MD_CTX_new();
	vctx = EVP_PKEY_CTX_new(k, NULL);
	if (md == NULL || vctx == NULL || EVP_PKEY_verify_init(vctx) != 1)
		return 1;
	base_rss = peak_rss_kib();
	t0 = now();
	for (i = 0; i < n; i++) {
		if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, msg, sizeof(msg)) != 1 ||
		    EVP_DigestFinal_ex(md, dg, &dglen) != 1 ||
		    EVP_PKEY_verify(vctx, sig, siglen, dg, dglen) != 1)
			return 1;
	}
	report("verify", n, now() - t0);
	EVP_PKEY_CTX_free(vctx);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
	return 0;
}

/* Splits a generated CSV row (no quoting) into its key and certificate. */
static int
row_fields(char *line, char **key, char **cert)
{
	char *f[8];
	int i;

	for (i = 0; i < 8 && line != NULL; i++)
		f[i] = strsep(&line, ",");
	if (i < 8)
		return 0;
	*key = f[2];
	*cert = f[3];
	return 1;
}

static int
parse_bench(const char *path)
{
	struct import_ctx ctx;
	unsigned char *keys[2000], *certs[2000];
	size_t klen[2000], clen[2000];
	char *buf = NULL, *line, *save = NULL, *k, *c, why[160];
	size_t len = 0;
	int n = 0, i;
	double t0, t_d2i_pub, t_check, t_d2i_x509, t_parse;

	if (fc_file_read(path, IMPORT_INPUT_MAX, &buf, &len) != FC_OK)
		return 1;
	line = strtok_r(buf, "\n", &save);	/* header */
	while (n < 2000 && (line = strtok_r(NULL, "\n", &save)) != NULL) {
		if (!row_fields(line, &k, &c) || c[0] == '\0' ||
		    fc_b64_decode(k, &keys[n], &klen[n]) != FC_OK ||
		    fc_b64_decode(c, &certs[n], &clen[n]) != FC_OK)
			return 1;
		n++;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	ctx.point = EC_POINT_new(ctx.p256);
	ctx.bn = BN_CTX_new();

	t0 = now();
	for (i = 0; i < n; i++) {
		const unsigned char *p = keys[i];
		EVP_PKEY_free(d2i_PUBKEY(NULL, &p, (long)klen[i]));
	}
	t_d2i_pub = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++)
		if (import_key_check(&ctx, keys[i], klen[i], why,
		    sizeof(why)) != FC_OK)
			return 1;
	t_check = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++) {
		const unsigned char *p = certs[i];
		X509_free(d2i_X509(NULL, &p, (long)clen[i]));
	}
	t_d2i_x509 = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++) {
		struct import_cert ic;
		if (import_cert_parse(certs[i], clen[i], &ic, why,
		    sizeof(why)) != FC_OK)
			return 1;
		import_cert_clear(&ic);
	}
	t_parse = now() - t0;
	printf("parse rows=%d d2i_PUBKEY_us=%.2f key_check_us=%.2f "
	    "d2i_X509_us=%.2f cert_parse_us=%.2f\n", n, t_d2i_pub / n * 1e6,
	    t_check / n * 1e6, t_d2i_x509 / n * 1e6, t_parse / n * 1e6);
	for (i = 0; i < n; i++) {
		free(keys[i]);
		free(certs[i]);
	}
	EC_POINT_free(ctx.point);
	EC_GROUP_free(ctx.p256);
	BN_CTX_free(ctx.bn);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct import_opts opts;
	struct import_result res;
	struct db *db = NULL;
	X509 *signer = NULL;
	char *buf = NULL;
	size_t len = 0;
	const char *dbpath;
	double t0, secs;
	enum fc_err r;

	log_init("bench_import", LOG_LVL_WARN);
	if (argc == 3 && strcmp(argv[1], "parse") == 0)
		return parse_bench(argv[2]);
	if (argc == 3 && strcmp(argv[1], "verify") == 0)
		return verify_ceiling(strtol(argv[2], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "schema") == 0)
		return schema_ceiling(strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 4 && strcmp(argv[1], "ceiling") == 0)
		return ceiling(strtol(argv[2], NULL, 10), argv[3]);
	if (!((argc == 4 && strcmp(argv[1], "csv") == 0) ||
	    (argc == 5 && strcmp(argv[1], "manifest") == 0))) {
		fprintf(stderr, "usage: bench_import csv FILE DB | manifest FILE "
		    "SIGNER DB | ceiling N DB\n");
		return 2;
	}
	dbpath = argv[argc - 1];
	if (fc_file_read(argv[2], IMPORT_INPUT_MAX, &buf, &len) != FC_OK ||
	    db_open(dbpath, DB_OPEN_MIGRATE, &db) != FC_OK)
		return 1;
	memset(&opts, 0, sizeof(opts));
	if (argc == 5 && import_signer_load(argv[3], &signer) != FC_OK)
		return 1;
	opts.manifest_signer = signer;
	import_result_init(&res);
	base_rss = peak_rss_kib();
	t0 = now();
	r = argc == 5 ? import_manifest(db, buf, len, &opts, &res) :
	    import_csv(db, buf, len, &opts, &res);
	secs = now() - t0;
	if (r != FC_OK) {
		fprintf(stderr, "import failed: %s (%zu errors; first: %s)\n",
		    fc_strerror(r), res.nerrors,
		    res.nerrors ? res.errors[0].message : "-");
		return 1;
	}
	report(argv[1], res.imported, secs);
	import_result_clear(&res);
	X509_free(signer);
	db_close(db);
	free(buf);
	return 0;
}
