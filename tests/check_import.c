/*
 * check_import.c — factory-record import against a real SQLite database in
 * a temporary directory, with keys, certificates, a manifest signer and
 * signed manifest entries generated here with OpenSSL (factory_gen.c).
 */
#include "fc_build.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit.h"
#include "db.h"
#include "factory_gen.h"
#include "import.h"
#include "inventory.h"
#include "log.h"

static char tmpdir[256];
static struct db *db;
static struct fgen *gen;
static struct import_result res;
static const char *const hubs[] = { "eu", "us", NULL };
static struct import_opts opts;

static void
setup(void)
{
	char path[512];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_import.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/fc.db", tmpdir);
	ck_assert_int_eq(db_open(path, DB_OPEN_MIGRATE, &db), FC_OK);
	if (gen == NULL)
		gen = fgen_new();
	ck_assert_ptr_nonnull(gen);
	import_result_init(&res);
	memset(&opts, 0, sizeof(opts));
	opts.hubs = hubs;
	opts.actor = "test";
	opts.manifest_signer = fgen_signer_cert(gen);
	fc_clock_set_offset(0);
}

static void
teardown(void)
{
	char cmd[600];

	import_result_clear(&res);
	db_close(db);
	db = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- helpers ---------------------------------------------------------- */

static long
count(const char *sql)
{
	sqlite3_stmt *st = NULL;
	long n = -1;

	ck_assert_int_eq(sqlite3_prepare_v2(db->h, sql, -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static long
devices(void)
{
	return count("SELECT count(*) FROM devices");
}

/* A growing text buffer. */
struct buf {
	char	*p;
	size_t	 len;
};

static void
bput(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	b->p = realloc(b->p, b->len + (size_t)n + 1);
	memcpy(b->p + b->len, s, (size_t)n + 1);
	b->len += (size_t)n;
	free(s);
}

struct tdev {
	struct fgen_dev	 d;
	char		*key64;
	char		*cert64;
	unsigned char	*der;
	size_t		 derlen;
};

static void
tdev_make(struct tdev *t, long i, int with_cert, long from_days, long days)
{
	memset(t, 0, sizeof(*t));
	ck_assert(fgen_device(gen, "dev-", i, &t->d));
	t->key64 = fgen_b64(t->d.spki, sizeof(t->d.spki));
	if (with_cert) {
		ck_assert(fgen_cert(gen, t->d.id, t->d.point, from_days, days,
		    &t->der, &t->derlen));
		t->cert64 = fgen_b64(t->der, t->derlen);
	}
}

static void
tdev_free(struct tdev *t)
{
	free(t->key64);
	free(t->cert64);
	OPENSSL_free(t->der);
}

static const char hdr[] =
    "deviceId,serial,identityPublicKey,certificate,authType,owner,batch,hub\n";

/* A standard row for t with key and (if any) certificate. */
static void
row(struct buf *b, const struct tdev *t)
{
	bput(b, "%s,%s,%s,%s,ca,acme,b1,\n", t->d.id, t->d.serial, t->key64,
	    t->cert64 ? t->cert64 : "");
}

static int
has_error(long line, const char *needle)
{
	size_t i;

	for (i = 0; i < res.nerrors; i++)
		if ((line < 0 || res.errors[i].line == line) &&
		    strstr(res.errors[i].message, needle) != NULL)
			return 1;
	return 0;
}

static void
dump_errors(void)
{
	size_t i;

	for (i = 0; i < res.nerrors; i++)
		fprintf(stderr, "  line %ld index %ld: %s\n", res.errors[i].line,
		    res.errors[i].index, res.errors[i].message);
}

#define ASSERT_ERR(line, needle) do { \
	if (!has_error(line, needle)) { \
		dump_errors(); \
		ck_abort_msg("no error at line %ld containing \"%s\"", \
		    (long)(line), needle); \
	} \
} while (0)

static enum fc_err
run_csv(const struct buf *b)
{
	return import_csv(db, b->p, b->len, &opts, &res);
}

/* ---- CSV: good input -------------------------------------------------- */

START_TEST(csv_good)
{
	struct tdev t[4];
	struct buf b = { 0 };
	struct inv_device d;
	struct inv_cert c;
	unsigned char md[32];
	char hex[65], upper[19];
	int64_t bad_id = -1, n = 0;
	size_t i;

	for (i = 0; i < 4; i++)
		tdev_make(&t[i], (long)i, i >= 1, -1, 365);
	/* Shuffled columns, CRLF, quoted fields with doubled quotes, commas
	 * and a line break, an upper-case "SN" serial, an empty key. */
	bput(&b, "hub,owner,certificate,deviceId,authType,batch,serial,"
	    "identityPublicKey\r\n");
	bput(&b, ",\"Acme \"\"East\"\"\",,%s,,\"b,1\",%s,%s\r\n", t[0].d.id,
	    t[0].d.serial, t[0].key64);
	for (i = 0; i < 18; i++)
		upper[i] = (char)(t[1].d.serial[i] >= 'a' ?
		    t[1].d.serial[i] - 32 : t[1].d.serial[i]);
	upper[18] = '\0';
	bput(&b, "eu,acme,%s,\"%s\",selfsigned,\"two, \"\"2\"\"\",SN%s,%s\r\n",
	    t[1].cert64, t[1].d.id, upper, t[1].key64);
	bput(&b, "us,\"Robert'); DROP TABLE devices;--\",\"%s\",%s,ca,b2,%s,"
	    "\r\n", t[2].cert64, t[2].d.id, t[2].d.serial);
	bput(&b, ",,%s,%s,ca,,%s,%s", t[3].cert64, t[3].d.id, t[3].d.serial,
	    t[3].key64);		/* no final line break */
	if (run_csv(&b) != FC_OK)
		dump_errors();
	ck_assert_int_eq(res.imported, 4);
	ck_assert_int_eq(res.skipped, 0);
	ck_assert_uint_eq(res.nerrors, 0);
	ck_assert_int_eq(devices(), 4);

	ck_assert_int_eq(inv_device_get(db, t[0].d.id, &d), FC_OK);
	ck_assert_str_eq(d.owner, "Acme \"East\"");
	ck_assert_str_eq(d.batch, "b,1");
	ck_assert_str_eq(d.hub, "");
	ck_assert_int_eq(d.auth_type, INV_AUTH_CA);
	ck_assert_uint_eq(d.identity_key_len, 91);
	ck_assert_mem_eq(d.identity_key, t[0].d.spki, 91);
	inv_device_clear(&d);

	ck_assert_int_eq(inv_device_get(db, t[1].d.id, &d), FC_OK);
	ck_assert_str_eq(d.se_serial, t[1].d.serial);	/* canonical */
	ck_assert_str_eq(d.batch, "two, \"2\"");
	ck_assert_str_eq(d.hub, "eu");
	ck_assert_int_eq(d.auth_type, INV_AUTH_SELFSIGNED);
	inv_device_clear(&d);

	/* Key taken from the certificate when identityPublicKey is empty. */
	ck_assert_int_eq(inv_device_get(db, t[2].d.id, &d), FC_OK);
	ck_assert_mem_eq(d.identity_key, t[2].d.spki, 91);
	ck_assert_str_eq(d.owner, "Robert'); DROP TABLE devices;--");
	inv_device_clear(&d);

	ck_assert_int_eq(inv_cert_current(db, t[2].d.id, &c), FC_OK);
	ck_assert_int_eq(c.status, INV_CERT_ACTIVE);
	ck_assert_int_eq(c.issued_by, INV_ISSUED_IMPORT);
	ck_assert_uint_eq(c.der_len, t[2].derlen);
	EVP_Digest(t[2].der, t[2].derlen, md, NULL, EVP_sha256(), NULL);
	fc_hex(md, 32, hex, 1);
	ck_assert_str_eq(c.sha256, hex);
	ck_assert_uint_eq(strlen(c.sha1), 40);
	for (i = 0; c.serial[i] != '\0'; i++)
		ck_assert(strchr("0123456789abcdef", c.serial[i]) != NULL);
	{
		const unsigned char *p = t[2].der;
		X509 *x = d2i_X509(NULL, &p, (long)t[2].derlen);
		ASN1_INTEGER *ai = X509_get_serialNumber(x);
		char sh[64];
		fc_hex(ASN1_STRING_get0_data(ai), (size_t)ASN1_STRING_length(ai),
		    sh, 0);
		ck_assert_str_eq(c.serial, sh);
		X509_free(x);
	}
	inv_cert_clear(&c);

	/* Every change audited, chain intact. */
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'device.create'"), 4);
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'cert.import'"), 3);
	ck_assert_int_eq(audit_verify(db, &bad_id, &n), FC_OK);
	ck_assert_int_eq(n, 7);
	for (i = 0; i < 4; i++)
		tdev_free(&t[i]);
	free(b.p);
}
END_TEST

START_TEST(csv_expired_cert)
{
	struct tdev t;
	struct buf b = { 0 };
	struct inv_cert c;

	tdev_make(&t, 1, 1, -400, 30);
	bput(&b, "%s", hdr);
	row(&b, &t);
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(inv_cert_current(db, t.d.id, &c), FC_ENOTFOUND);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'expired' AND issued_by = 'import'"), 1);
	tdev_free(&t);
	free(b.p);
}
END_TEST

START_TEST(csv_header_only_and_bom)
{
	struct buf b = { 0 };

	bput(&b, "\xef\xbb\xbf%s\n\n", hdr);
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(res.imported, 0);
	ck_assert_int_eq(import_csv(db, "", 0, &opts, &res), FC_EINVAL);
	ASSERT_ERR(1, "no header");
	free(b.p);
}
END_TEST

/* ---- CSV: every bad row, strict: nothing applied --------------------- */

static char *
spki_b64_of(EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	char *s = fgen_b64(der, (size_t)n);

	OPENSSL_free(der);
	return s;
}

START_TEST(csv_bad_rows)
{
	struct tdev good, t, other;
	EVP_PKEY *rsa = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384");
	EVP_PKEY *comp = EVP_EC_gen("P-256");
	char *rsa64 = spki_b64_of(rsa), *p384_64 = spki_b64_of(p384);
	char *comp64;
	char *off64, *trunc64, *short64, *garbage64;
	unsigned char offcurve[91];
	struct {
		const char *line;
		const char *needle;
	} cases[32];
	char lines[32][4096];
	size_t ncases = 0, i;

	tdev_make(&good, 100, 0, 0, 0);
	tdev_make(&t, 101, 1, -1, 365);
	tdev_make(&other, 102, 1, -1, 365);
	ck_assert(EVP_PKEY_set_utf8_string_param(comp, "point-format",
	    "compressed"));
	comp64 = spki_b64_of(comp);
	memcpy(offcurve, t.d.spki, 91);
	offcurve[90] ^= 0x01;
	off64 = fgen_b64(offcurve, 91);
	trunc64 = strndup(t.key64, strlen(t.key64) - 3);
	short64 = fgen_b64(t.d.spki, 50);
	garbage64 = fgen_b64((const unsigned char *)"hello world", 11);

#define CASE(ndl, ...) do { \
	ck_assert_uint_lt(ncases, FC_ARRAY_LEN(cases)); \
	snprintf(lines[ncases], sizeof(lines[0]), __VA_ARGS__); \
	cases[ncases].line = lines[ncases]; \
	cases[ncases].needle = ndl; \
	ncases++; \
} while (0)
	CASE("not a valid IoT Hub device id", "dev 1,%s,%s,,ca,,,",
	    t.d.serial, t.key64);
	CASE("deviceId is empty", ",%s,%s,,ca,,,", t.d.serial, t.key64);
	CASE("not an ATECC608B serial", "%s,0124%s,%s,,ca,,,", t.d.id,
	    t.d.serial + 4, t.key64);
	CASE("not an ATECC608B serial", "%s,%.17s,%s,,ca,,,", t.d.id,
	    t.d.serial, t.key64);
	CASE("serial is empty", "%s,,%s,,ca,,,", t.d.id, t.key64);
	CASE("RSA key, not EC P-256", "%s,%s,%s,,ca,,,", t.d.id, t.d.serial,
	    rsa64);
	CASE("secp384r1, not P-256", "%s,%s,%s,,ca,,,", t.d.id, t.d.serial,
	    p384_64);
	CASE("not a point on P-256", "%s,%s,%s,,ca,,,", t.d.id, t.d.serial,
	    off64);
	CASE("must be an uncompressed P-256 point", "%s,%s,%s,,ca,,,", t.d.id,
	    t.d.serial, comp64);
	CASE("not valid base64", "%s,%s,%s,,ca,,,", t.d.id, t.d.serial,
	    trunc64);
	CASE("not a DER SubjectPublicKeyInfo", "%s,%s,%s,,ca,,,", t.d.id,
	    t.d.serial, short64);
	CASE("not a DER X.509 certificate", "%s,%s,%s,%s,ca,,,", t.d.id,
	    t.d.serial, t.key64, garbage64);
	CASE("subject CN", "%s,%s,,%s,ca,,,", "dev-other", t.d.serial,
	    t.cert64);
	CASE("differs from identityPublicKey", "%s,%s,%s,%s,ca,,,", t.d.id,
	    t.d.serial, other.key64, t.cert64);
	CASE("authType", "%s,%s,%s,,x509,,,", t.d.id, t.d.serial, t.key64);
	CASE("not a configured", "%s,%s,%s,,ca,,,nohub", t.d.id, t.d.serial,
	    t.key64);
	CASE("formula", "%s,%s,%s,,ca,\"=HYPERLINK(\"\"http://x\"\")\",,", t.d.id,
	    t.d.serial, t.key64);
	CASE("formula", "%s,%s,%s,,ca,,@SUM(A1),", t.d.id, t.d.serial,
	    t.key64);
	CASE("formula", "-2+3,%s,%s,,ca,,,", t.d.serial, t.key64);
	CASE("not valid UTF-8", "%s,%s,%s,,ca,caf\xc3,,", t.d.id, t.d.serial,
	    t.key64);
	CASE("not valid UTF-8", "%s,%s,%s,,ca,\xc0\xaf,,", t.d.id,
	    t.d.serial, t.key64);
	CASE("fields, the header has 8", "%s,%s,%s,,ca,,", t.d.id, t.d.serial,
	    t.key64);
	CASE("fields, the header has 8", "%s,%s,%s,,ca,,,,", t.d.id,
	    t.d.serial, t.key64);
	CASE("quote inside an unquoted", "%s,%s,%s,,ca,ac\"me,,", t.d.id,
	    t.d.serial, t.key64);
	CASE("after a closing quote", "%s,%s,%s,,ca,\"acme\"x,,", t.d.id,
	    t.d.serial, t.key64);
	CASE("no certificate", "%s,%s,,,ca,,,", t.d.id, t.d.serial);
	CASE("control characters", "%s,%s,%s,,ca,\"a\tb\",,", t.d.id,
	    t.d.serial, t.key64);
	CASE("SELECT", "%s,%s,%s,,ca,,,x'; DROP TABLE devices; --",
	    t.d.id, t.d.serial, t.key64);

	for (i = 0; i < ncases; i++) {
		struct buf b = { 0 };
		enum fc_err r;

		bput(&b, "%s", hdr);
		row(&b, &good);
		bput(&b, "%s\n", cases[i].line);
		r = run_csv(&b);
		if (strcmp(cases[i].needle, "SELECT") == 0) {
			/* hub names are device-id syntax: refused, no SQL run */
			ck_assert_int_eq(r, FC_EINVAL);
			ck_assert_int_eq(devices(), 0);
			free(b.p);
			continue;
		}
		if (r != FC_EINVAL || !has_error(3, cases[i].needle)) {
			dump_errors();
			ck_abort_msg("case %zu (%s): result %d", i,
			    cases[i].needle, r);
		}
		ck_assert_int_eq(res.imported, 0);
		ck_assert_int_eq(res.skipped, 2);
		ck_assert_int_eq(devices(), 0);
		ck_assert_int_eq(count("SELECT count(*) FROM audit"), 0);
		free(b.p);
	}
	/* The NUL byte is not expressible in a C string literal above. */
	{
		struct buf b = { 0 };
		bput(&b, "%s", hdr);
		row(&b, &good);
		bput(&b, "%s,%s,%s,,ca,ac", t.d.id, t.d.serial, t.key64);
		b.p = realloc(b.p, b.len + 8);
		memcpy(b.p + b.len, "\0me,,\n", 6);
		b.len += 6;
		ck_assert_int_eq(run_csv(&b), FC_EINVAL);
		ASSERT_ERR(3, "NUL byte");
		ck_assert_int_eq(devices(), 0);
		free(b.p);
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(comp);
	free(comp64);
	free(rsa64);
	free(p384_64);
	free(off64);
	free(trunc64);
	free(short64);
	free(garbage64);
	tdev_free(&good);
	tdev_free(&t);
	tdev_free(&other);
}
END_TEST

START_TEST(csv_bad_framing)
{
	struct tdev t;
	struct buf b = { 0 };
	char *big;

	tdev_make(&t, 1, 0, 0, 0);
	ck_assert_int_eq(import_csv(db, "deviceId,serial,colour\n", 23, &opts,
	    &res), FC_EINVAL);
	ASSERT_ERR(1, "unknown column \"colour\"");
	ck_assert_int_eq(import_csv(db, "deviceId,serial,serial,"
	    "identityPublicKey\n", 41, &opts, &res), FC_EINVAL);
	ASSERT_ERR(1, "duplicate column \"serial\"");
	ck_assert_int_eq(import_csv(db, "serial,identityPublicKey\n", 25,
	    &opts, &res), FC_EINVAL);
	ASSERT_ERR(1, "must name deviceId");
	/* The header's line is where it is, after blank lines. */
	ck_assert_int_eq(import_csv(db, "\n\r\ndeviceId,sn\n", 15, &opts,
	    &res), FC_EINVAL);
	ASSERT_ERR(3, "unknown column \"sn\"");

	/* Unterminated quote: fatal even with skip_bad. */
	opts.skip_bad = 1;
	bput(&b, "%s", hdr);
	row(&b, &t);
	bput(&b, "x,\"open\n\n\n");
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(3, "not terminated");
	ck_assert_int_eq(devices(), 0);
	free(b.p);

	/* A record over 1 MiB. */
	big = malloc(IMPORT_FIELD_MAX + 2);
	memset(big, 'A', IMPORT_FIELD_MAX + 1);
	big[IMPORT_FIELD_MAX + 1] = '\0';
	memset(&b, 0, sizeof(b));
	bput(&b, "%s", hdr);
	row(&b, &t);
	bput(&b, "x,y,%s,,,,,\n", big);
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(3, "longer than");
	ck_assert_int_eq(devices(), 0);
	free(big);
	free(b.p);

	/* Over 64 MiB: refused before reading. */
	big = calloc(1, IMPORT_INPUT_MAX + 1);
	ck_assert_int_eq(import_csv(db, big, IMPORT_INPUT_MAX + 1, &opts, &res),
	    FC_EINVAL);
	ASSERT_ERR(0, "larger than");
	ck_assert_int_eq(import_manifest(db, big, IMPORT_INPUT_MAX + 1, &opts,
	    &res), FC_EINVAL);
	ASSERT_ERR(0, "larger than");
	free(big);
	tdev_free(&t);
}
END_TEST

/* Line numbers are physical lines where the record starts. */
START_TEST(csv_line_numbers)
{
	struct tdev t[3];
	struct buf b = { 0 };
	int i;

	for (i = 0; i < 3; i++)
		tdev_make(&t[i], i, 0, 0, 0);
	bput(&b, "%s", hdr);				/* line 1 */
	bput(&b, "%s,%s,%s,,ca,\"a\nb\nc\",,\n", t[0].d.id, t[0].d.serial,
	    t[0].key64);				/* lines 2-4 */
	bput(&b, "\n");					/* line 5, blank */
	bput(&b, "%s,%s,%s,,xx,,,\r\n", t[1].d.id, t[1].d.serial,
	    t[1].key64);				/* line 6 */
	bput(&b, "%s,%s,%s,,ca,,,\n", t[2].d.id, t[2].d.serial, "AAAA");
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(2, "control characters");	/* owner "a\nb\nc" */
	ASSERT_ERR(6, "authType");
	ASSERT_ERR(7, "identityPublicKey");
	ck_assert_uint_eq(res.nerrors, 3);
	ck_assert_int_eq(res.skipped, 3);
	for (i = 0; i < 3; i++)
		tdev_free(&t[i]);
	free(b.p);
}
END_TEST

START_TEST(csv_skip_bad)
{
	struct tdev t[5];
	struct buf b = { 0 };
	json_t *j;
	char *s;
	int i;

	for (i = 0; i < 5; i++)
		tdev_make(&t[i], i, i == 2, -1, 365);
	bput(&b, "%s", hdr);
	row(&b, &t[0]);
	bput(&b, "%s,%s,%s,,nope,,,\n", t[1].d.id, t[1].d.serial, t[1].key64);
	row(&b, &t[2]);
	bput(&b, "%s,0000,%s,,ca,,,\n", t[3].d.id, t[3].key64);
	row(&b, &t[4]);
	opts.skip_bad = 1;
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(res.imported, 3);
	ck_assert_int_eq(res.skipped, 2);
	ck_assert_uint_eq(res.nerrors, 2);
	ASSERT_ERR(3, "authType");
	ASSERT_ERR(5, "serial");
	ck_assert_int_eq(devices(), 3);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates"), 1);

	j = import_result_to_json(&res);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_ptr_nonnull(strstr(s, "\"imported\":3"));
	ck_assert_ptr_nonnull(strstr(s, "\"skipped\":2"));
	ck_assert_ptr_nonnull(strstr(s, "{\"line\":3,\"message\":\"authType"));
	ck_assert_int_eq(json_array_size(json_object_get(j, "errors")), 2);
	free(s);
	json_decref(j);
	for (i = 0; i < 5; i++)
		tdev_free(&t[i]);
	free(b.p);
}
END_TEST

START_TEST(csv_duplicates)
{
	struct tdev t[4];
	struct buf b = { 0 }, b2 = { 0 };
	int i;

	for (i = 0; i < 4; i++)
		tdev_make(&t[i], i, 1, -1, 365);
	bput(&b, "%s", hdr);
	row(&b, &t[0]);					/* 2 */
	row(&b, &t[1]);					/* 3 */
	row(&b, &t[0]);					/* 4: same id */
	bput(&b, "other-id,%s,%s,,ca,,,\n", t[1].d.serial, t[2].key64);
	bput(&b, "other-id2,%s,%s,,ca,,,\n", t[2].d.serial, t[1].key64);
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(4, "duplicates line 2");
	ASSERT_ERR(5, "serial");
	ASSERT_ERR(5, "duplicates line 3");
	ASSERT_ERR(6, "identityPublicKey duplicates line 3");
	ck_assert_int_eq(devices(), 0);

	/* Import t0, t1; then t2 fine but t3 reuses t0's id / serial. */
	free(b.p);
	memset(&b, 0, sizeof(b));
	bput(&b, "%s", hdr);
	row(&b, &t[0]);
	row(&b, &t[1]);
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(devices(), 2);

	/* Re-import of the same file: every row refused, nothing changes. */
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(2, "already in the inventory");
	ASSERT_ERR(3, "already in the inventory");
	ck_assert_int_eq(devices(), 2);
	opts.skip_bad = 1;
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(res.imported, 0);
	ck_assert_int_eq(res.skipped, 2);
	opts.skip_bad = 0;

	bput(&b2, "%s", hdr);
	row(&b2, &t[2]);
	bput(&b2, "dev-new,%s,%s,,ca,,,\n", t[0].d.serial, t[3].key64);
	ck_assert_int_eq(run_csv(&b2), FC_EINVAL);
	ASSERT_ERR(3, "serial");
	ASSERT_ERR(3, "already in the inventory (device dev-0000000)");
	ck_assert_int_eq(devices(), 2);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates"), 2);
	for (i = 0; i < 4; i++)
		tdev_free(&t[i]);
	free(b.p);
	free(b2.p);
}
END_TEST

START_TEST(csv_many_errors_capped)
{
	struct buf b = { 0 };
	json_t *j;
	int i;

	bput(&b, "%s", hdr);
	for (i = 0; i < IMPORT_ERRORS_MAX + 50; i++)
		bput(&b, "bad id,x,,,,,,\n");
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ck_assert_uint_eq(res.nerrors, IMPORT_ERRORS_MAX);
	ck_assert_int_eq(res.errors_dropped, 50);
	ck_assert_int_eq(res.skipped, IMPORT_ERRORS_MAX + 50);
	j = import_result_to_json(&res);
	ck_assert_int_eq(json_array_size(json_object_get(j, "errors")),
	    IMPORT_ERRORS_MAX + 1);
	json_decref(j);
	free(b.p);
}
END_TEST

/* ---- manifests -------------------------------------------------------- */

/* Appends one entry for t (cert optional) signed as given. */
static char *
entry_for(const struct tdev *t, const unsigned char *jwk_point,
    EVP_PKEY *key, X509 *x5t_cert, const char *header_uid)
{
	char *pl = fgen_payload(gen, t->d.serial, jwk_point ? jwk_point :
	    t->d.point, t->der, t->derlen);
	char *e = fgen_jws(key ? key : fgen_signer_key(gen),
	    x5t_cert ? x5t_cert : fgen_signer_cert(gen), pl,
	    header_uid ? header_uid : t->d.serial);

	free(pl);
	ck_assert_ptr_nonnull(e);
	return e;
}

static enum fc_err
run_manifest(char **entries, size_t n)
{
	struct buf b = { 0 };
	enum fc_err r;
	size_t i;

	bput(&b, "[\n");
	for (i = 0; i < n; i++)
		bput(&b, "  %s%s\n", entries[i], i + 1 < n ? "," : "");
	bput(&b, "]\n");
	r = import_manifest(db, b.p, b.len, &opts, &res);
	free(b.p);
	return r;
}

START_TEST(manifest_good)
{
	struct tdev t[3];
	char *e[3];
	struct inv_device d;
	int i;

	for (i = 0; i < 3; i++) {
		tdev_make(&t[i], i, i < 2, -1, 365);
		e[i] = entry_for(&t[i], NULL, NULL, NULL, NULL);
	}
	opts.owner = "acme";
	opts.batch = "lot-7";
	opts.hub = "eu";
	opts.auth_type = "selfsigned";
	if (run_manifest(e, 3) != FC_OK)
		dump_errors();
	ck_assert_int_eq(res.imported, 3);
	ck_assert_int_eq(devices(), 3);
	/* Device id = CN of x5c[0] ... */
	ck_assert_int_eq(inv_device_get(db, t[0].d.id, &d), FC_OK);
	ck_assert_str_eq(d.se_serial, t[0].d.serial);
	ck_assert_str_eq(d.owner, "acme");
	ck_assert_str_eq(d.batch, "lot-7");
	ck_assert_str_eq(d.hub, "eu");
	ck_assert_int_eq(d.auth_type, INV_AUTH_SELFSIGNED);
	ck_assert_mem_eq(d.identity_key, t[0].d.spki, 91);
	inv_device_clear(&d);
	/* ... or "sn" + uniqueId without a certificate. */
	{
		char id[32];
		snprintf(id, sizeof(id), "sn%s", t[2].d.serial);
		ck_assert_int_eq(inv_device_get(db, id, &d), FC_OK);
		inv_device_clear(&d);
	}
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "issued_by = 'import' AND status = 'active'"), 2);
	for (i = 0; i < 3; i++) {
		free(e[i]);
		tdev_free(&t[i]);
	}
}
END_TEST

/* Replaces the first occurrence of member's string value in a JWS. */
static char *
tamper(const char *entry, const char *member, const char *newval)
{
	json_t *j = json_loads(entry, 0, NULL);
	char *out;

	json_object_set_new(j, member, json_string(newval));
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

START_TEST(manifest_bad_entries)
{
	struct tdev t[8];
	char *e[8], *s;
	X509 *other_cert = NULL;
	EVP_PKEY *other_key = NULL;
	json_t *j;
	int i;

	for (i = 0; i < 8; i++)
		tdev_make(&t[i], i, 1, -1, 365);
	ck_assert(fgen_selfsigned("another signer", &other_cert, &other_key));
	e[0] = entry_for(&t[0], NULL, NULL, NULL, NULL);
	/* 1: forged signature (one byte of R changed) */
	{
		char *orig = entry_for(&t[1], NULL, NULL, NULL, NULL);
		j = json_loads(orig, 0, NULL);
		s = strdup(json_string_value(json_object_get(j, "signature")));
		s[5] = s[5] == 'A' ? 'B' : 'A';
		e[1] = tamper(orig, "signature", s);
		free(s);
		free(orig);
		json_decref(j);
	}
	/* 2: unsigned header names another uniqueId */
	e[2] = entry_for(&t[2], NULL, NULL, NULL, t[3].d.serial);
	/* 3: slot-0 JWK differs from x5c[0]'s key */
	e[3] = entry_for(&t[3], t[4].d.point, NULL, NULL, NULL);
	/* 4: signed by another signer (its own x5t) */
	e[4] = entry_for(&t[4], NULL, other_key, other_cert, NULL);
	/* 5: another key, claiming our signer's x5t */
	e[5] = entry_for(&t[5], NULL, other_key, NULL, NULL);
	/* 6: payload swapped for another (validly encoded) payload */
	{
		char *pl = fgen_payload(gen, t[7].d.serial, t[7].d.point,
		    t[7].der, t[7].derlen);
		char *p64 = fgen_b64url((unsigned char *)pl, strlen(pl));
		char *orig = entry_for(&t[6], NULL, NULL, NULL, NULL);
		e[6] = tamper(orig, "payload", p64);
		free(orig);
		free(pl);
		free(p64);
	}
	e[7] = entry_for(&t[7], NULL, NULL, NULL, NULL);

	ck_assert_int_eq(run_manifest(e, 8), FC_EINVAL);
	ck_assert_int_eq(devices(), 0);
	ck_assert_int_eq(res.imported, 0);
	ck_assert_int_eq(res.skipped, 8);
	ck_assert_uint_eq(res.nerrors, 6);
#ifndef MERR
#define MERR(idx, needle) do { \
	size_t k_; int f_ = 0; \
	for (k_ = 0; k_ < res.nerrors; k_++) \
		if (res.errors[k_].index == (idx) && \
		    strstr(res.errors[k_].message, needle)) \
			f_ = 1; \
	if (!f_) { dump_errors(); ck_abort_msg("entry %d: no \"%s\"", \
	    (int)(idx), needle); } \
} while (0)
#endif
	MERR(1, "signature does not verify");
	MERR(2, "unsigned header uniqueId differs");
	MERR(3, "JWK differs from the x5c[0]");
	MERR(4, "signed by another signer");
	MERR(5, "signature does not verify");
	MERR(6, "signature does not verify");
	/* Entries are reported by index and by the line they start on. */
	ck_assert_int_eq(res.errors[0].line, 3);

	opts.skip_bad = 1;
	ck_assert_int_eq(run_manifest(e, 8), FC_OK);
	ck_assert_int_eq(res.imported, 2);
	ck_assert_int_eq(res.skipped, 6);
	ck_assert_int_eq(devices(), 2);
	{
		json_t *jr = import_result_to_json(&res);
		json_t *e0 = json_array_get(json_object_get(jr, "errors"), 0);
		ck_assert_int_eq(json_integer_value(json_object_get(e0,
		    "index")), 1);
		ck_assert_int_eq(json_integer_value(json_object_get(e0,
		    "line")), 3);
		json_decref(jr);
	}
	for (i = 0; i < 8; i++) {
		free(e[i]);
		tdev_free(&t[i]);
	}
	X509_free(other_cert);
	EVP_PKEY_free(other_key);
}
END_TEST

/* Signs a payload edited by edit() (on the parsed payload object). */
static char *
entry_edited(const struct tdev *t, void (*edit)(json_t *, const struct tdev *))
{
	char *pl = fgen_payload(gen, t->d.serial, t->d.point, t->der,
	    t->derlen), *out, *e;
	json_t *j = json_loads(pl, 0, NULL);

	edit(j, t);
	out = json_dumps(j, JSON_COMPACT);
	e = fgen_jws(fgen_signer_key(gen), fgen_signer_cert(gen), out, NULL);
	json_decref(j);
	free(pl);
	free(out);
	return e;
}

static json_t *
jwk0(json_t *payload)
{
	return json_array_get(json_object_get(json_object_get(payload,
	    "publicKeySet"), "keys"), 0);
}

static void
edit_x5c_up(json_t *p, const struct tdev *t)
{
	json_object_set(p, "x5c", json_object_get(jwk0(p), "x5c"));
	json_object_del(jwk0(p), "x5c");
}

static void
edit_bad_uid(json_t *p, const struct tdev *t)
{
	json_object_set_new(p, "uniqueId", json_string("0124000000000001ee"));
}

static void
edit_rsa(json_t *p, const struct tdev *t)
{
	json_object_set_new(jwk0(p), "kty", json_string("RSA"));
}

static void
edit_off_curve(json_t *p, const struct tdev *t)
{
	unsigned char y[32];
	char *b;

	memcpy(y, t->d.point + 33, 32);
	y[31] ^= 1;
	b = fgen_b64url(y, 32);
	json_object_set_new(jwk0(p), "y", json_string(b));
	free(b);
}

static void
edit_no_kid0(json_t *p, const struct tdev *t)
{
	json_object_set_new(jwk0(p), "kid", json_string("2"));
}

START_TEST(manifest_variants)
{
	struct tdev t[7];
	char *e[7], *orig, *h;
	struct inv_device d;
	int i;

	for (i = 0; i < 7; i++)
		tdev_make(&t[i], i, 1, -1, 365);
	e[0] = entry_edited(&t[0], edit_x5c_up);	/* payload-level x5c */
	e[1] = entry_edited(&t[1], edit_bad_uid);
	e[2] = entry_edited(&t[2], edit_rsa);
	e[3] = entry_edited(&t[3], edit_off_curve);
	e[4] = entry_edited(&t[4], edit_no_kid0);
	orig = entry_for(&t[5], NULL, NULL, NULL, NULL);
	h = fgen_b64url((const unsigned char *)"{\"alg\":\"none\"}", 14);
	e[5] = tamper(orig, "protected", h);
	free(orig);
	free(h);
	orig = entry_for(&t[6], NULL, NULL, NULL, NULL);
	h = fgen_b64url((const unsigned char *)"{\"alg\":\"ES256\",\"crit\":"
	    "[\"exp\"]}", 30);
	e[6] = tamper(orig, "protected", h);
	free(orig);
	free(h);

	opts.skip_bad = 1;
	ck_assert_int_eq(run_manifest(e, 7), FC_OK);
	ck_assert_int_eq(res.imported, 1);
	ck_assert_int_eq(inv_device_get(db, t[0].d.id, &d), FC_OK);
	inv_device_clear(&d);
	MERR(1, "uniqueId is not an ATECC608B serial");
	MERR(2, "kty EC");
	MERR(3, "not a point on P-256");
	MERR(4, "no slot-0 key");
	MERR(5, "alg must be ES256");
	MERR(6, "crit");
	for (i = 0; i < 7; i++) {
		free(e[i]);
		tdev_free(&t[i]);
	}
}
END_TEST

START_TEST(manifest_hostile)
{
	struct tdev t;
	char *e, *deep;
	size_t n = 100000, i;
	static const char *bad[] = {
		"{}", "[1]", "[{}]", "[\"x\"]", "[{\"a\":1}", "[{\"payload\":1,"
		"\"protected\":\"e30\",\"signature\":\"\"}]", "[] x",
		"[{\"payload\":\"!!\",\"protected\":\"!!\",\"signature\":\"\"}]",
		"[{\"a\":1,\"a\":2}]",
	};

	/* Deep nesting: refused before jansson recurses into it. */
	deep = malloc(2 * n + 1);
	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[2 * n - 1 - i] = ']';
	}
	deep[2 * n] = '\0';
	ck_assert_int_eq(import_manifest(db, deep, 2 * n, &opts, &res),
	    FC_EINVAL);
	ASSERT_ERR(1, "nests deeper");
	free(deep);

	for (i = 0; i < FC_ARRAY_LEN(bad); i++) {
		ck_assert_int_eq(import_manifest(db, bad[i], strlen(bad[i]),
		    &opts, &res), FC_EINVAL);
		ck_assert_uint_ge(res.nerrors, 1);
	}

	/* Invalid UTF-8 and control bytes: the errors still serialise. */
	{
		static const char inv[] = "[{\"payload\":\"\xff\xfe\x01\"}]";
		json_t *j;
		ck_assert_int_eq(import_manifest(db, inv, sizeof(inv) - 1, &opts,
		    &res), FC_EINVAL);
		j = import_result_to_json(&res);
		ck_assert_ptr_nonnull(j);
		json_decref(j);
		static const char nul[] = "[{\"x\"\x00:1}]";
		ck_assert_int_eq(import_manifest(db, nul, sizeof(nul) - 1,
		    &opts, &res), FC_EINVAL);
		j = import_result_to_json(&res);
		ck_assert_ptr_nonnull(j);
		json_decref(j);
	}

	/* A truncated manifest. */
	tdev_make(&t, 1, 1, -1, 365);
	e = entry_for(&t, NULL, NULL, NULL, NULL);
	ck_assert_int_eq(import_manifest(db, e, strlen(e) / 2, &opts, &res),
	    FC_EINVAL);
	/* No signer configured. */
	opts.manifest_signer = NULL;
	ck_assert_int_eq(run_manifest(&e, 1), FC_EINVAL);
	ASSERT_ERR(0, "manifest_signer");
	ck_assert_int_eq(devices(), 0);
	free(e);
	tdev_free(&t);
}
END_TEST

START_TEST(detect)
{
	ck_assert_int_eq(import_detect("", 0), IMPORT_FMT_UNKNOWN);
	ck_assert_int_eq(import_detect(" \r\n", 3), IMPORT_FMT_UNKNOWN);
	ck_assert_int_eq(import_detect("\xef\xbb\xbf [", 5),
	    IMPORT_FMT_MANIFEST);
	ck_assert_int_eq(import_detect("\n{", 2), IMPORT_FMT_MANIFEST);
	ck_assert_int_eq(import_detect("deviceId,", 9), IMPORT_FMT_CSV);
	ck_assert_int_eq(import_any(db, "  ", 2, &opts, &res), FC_EINVAL);
	ASSERT_ERR(0, "empty");
}
END_TEST

START_TEST(signer_load)
{
	char path[512];
	X509 *x = NULL;

	snprintf(path, sizeof(path), "%s/signer.pem", tmpdir);
	ck_assert(fgen_write_pem(fgen_signer_cert(gen), path));
	ck_assert_int_eq(import_signer_load(path, &x), FC_OK);
	ck_assert_int_eq(X509_cmp(x, fgen_signer_cert(gen)), 0);
	X509_free(x);
	x = NULL;
	snprintf(path, sizeof(path), "%s/nope.pem", tmpdir);
	ck_assert_int_eq(import_signer_load(path, &x), FC_EIO);
	ck_assert_ptr_null(x);
}
END_TEST

START_TEST(csv_hubs)
{
	static const char *const named_only[] = { "eu", NULL };
	struct tdev t;
	struct buf b = { 0 };
	char *e;

	tdev_make(&t, 1, 1, -1, 365);
	bput(&b, "%s", hdr);
	bput(&b, "%s,%s,%s,,ca,,,us\n", t.d.id, t.d.serial, t.key64);
	opts.hubs = named_only;
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(2, "hub \"us\" is not a configured");
	opts.hubs = NULL;		/* no named hubs at all */
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(2, "hub \"us\" is not a configured");
	free(b.p);
	memset(&b, 0, sizeof(b));
	bput(&b, "%s", hdr);
	row(&b, &t);			/* hub "": the default hub */
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(devices(), 1);

	/* A manifest's defaults are checked once, before any entry. */
	opts.hubs = named_only;
	opts.hub = "us";
	e = entry_for(&t, NULL, NULL, NULL, NULL);
	ck_assert_int_eq(run_manifest(&e, 1), FC_EINVAL);
	ASSERT_ERR(0, "hub or authType");
	ck_assert_uint_eq(res.nerrors, 1);
	opts.hub = "eu";
	opts.auth_type = "psk";
	ck_assert_int_eq(run_manifest(&e, 1), FC_EINVAL);
	ASSERT_ERR(0, "hub or authType");
	free(e);
	tdev_free(&t);
	free(b.p);
}
END_TEST

/* Enough rows to grow the duplicate sets several times. */
START_TEST(csv_many_rows)
{
	struct buf b = { 0 };
	struct tdev t;
	long i, n = 5000;

	bput(&b, "%s", hdr);
	for (i = 0; i < n; i++) {
		tdev_make(&t, i, 0, 0, 0);
		row(&b, &t);
		tdev_free(&t);
	}
	tdev_make(&t, 17, 0, 0, 0);	/* serial of line 19 again */
	bput(&b, "late-dup,%s,%s,,ca,,,\n", t.d.serial, t.key64);
	ck_assert_int_eq(run_csv(&b), FC_EINVAL);
	ASSERT_ERR(n + 2, "duplicates line 19");
	ck_assert_uint_eq(res.nerrors, 1);
	ck_assert_int_eq(devices(), 0);
	opts.skip_bad = 1;
	ck_assert_int_eq(run_csv(&b), FC_OK);
	ck_assert_int_eq(res.imported, n);
	ck_assert_int_eq(devices(), n);
	ck_assert_int_eq(count("SELECT count(*) FROM audit"), n);
	tdev_free(&t);
	free(b.p);
}
END_TEST

/*
 * Mutation smoke test: thousands of damaged copies of a good CSV and a good
 * manifest (bytes flipped, CSV/JSON metacharacters and NULs inserted,
 * truncations). Each import must end in FC_OK or FC_EINVAL with a result
 * that serialises; ASan/UBSan builds check the memory side. Fixed seed.
 */
static void
mutate(char *p, size_t *len, unsigned *seed)
{
	static const char meta[] = ",\"\n\r\0{}[]:\\=-+@\xff\xc3";
	size_t n = *len, pos;
	int k = rand_r(seed) % 4, i, count = 1 + rand_r(seed) % 4;

	for (i = 0; i < count && n > 0; i++) {
		pos = (size_t)rand_r(seed) % n;
		if (k == 0)
			p[pos] = (char)(p[pos] ^ (1 << (rand_r(seed) % 8)));
		else if (k == 1)
			p[pos] = meta[rand_r(seed) % (sizeof(meta) - 1)];
		else if (k == 2)
			n = pos;
		else {
			memmove(p + pos + 1, p + pos, n - pos);
			p[pos] = meta[rand_r(seed) % (sizeof(meta) - 1)];
			n++;
		}
	}
	*len = n;
}

START_TEST(mutation_smoke)
{
	struct tdev t[3];
	struct buf csv = { 0 }, man = { 0 };
	char *e[3], *copy;
	unsigned seed = 20261125;
	int i, round;
	long okcount = 0;

	bput(&csv, "%s", hdr);
	bput(&man, "[\n");
	for (i = 0; i < 3; i++) {
		tdev_make(&t[i], i, 1, -1, 365);
		row(&csv, &t[i]);
		e[i] = entry_for(&t[i], NULL, NULL, NULL, NULL);
		bput(&man, "%s%s\n", e[i], i < 2 ? "," : "");
	}
	bput(&man, "]\n");
	copy = malloc(man.len * 2 + 64);
	for (round = 0; round < 1500; round++) {
		const struct buf *src = (round & 1) ? &man : &csv;
		size_t len = src->len;
		enum fc_err r;
		json_t *j;

		memcpy(copy, src->p, len);
		mutate(copy, &len, &seed);
		opts.skip_bad = (round / 2) & 1;
		r = (round & 1) ? import_manifest(db, copy, len, &opts, &res) :
		    import_csv(db, copy, len, &opts, &res);
		ck_assert_msg(r == FC_OK || r == FC_EINVAL, "round %d: %d",
		    round, r);
		okcount += r == FC_OK;
		j = import_result_to_json(&res);
		ck_assert_ptr_nonnull(j);
		json_decref(j);
	}
	{
		int64_t bad_id = -1, n = 0;
		ck_assert_int_eq(audit_verify(db, &bad_id, &n), FC_OK);
		ck_assert_int_eq(n, count("SELECT count(*) FROM audit"));
	}
	ck_assert_int_gt(okcount, 0);
	free(copy);
	for (i = 0; i < 3; i++) {
		free(e[i]);
		tdev_free(&t[i]);
	}
	free(csv.p);
	free(man.p);
}
END_TEST

static Suite *
import_suite(void)
{
	Suite *s = suite_create("import");
	TCase *tc = tcase_create("import");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, csv_good);
	tcase_add_test(tc, csv_expired_cert);
	tcase_add_test(tc, csv_header_only_and_bom);
	tcase_add_test(tc, csv_bad_rows);
	tcase_add_test(tc, csv_bad_framing);
	tcase_add_test(tc, csv_line_numbers);
	tcase_add_test(tc, csv_skip_bad);
	tcase_add_test(tc, csv_duplicates);
	tcase_add_test(tc, csv_many_errors_capped);
	tcase_add_test(tc, csv_hubs);
	tcase_add_test(tc, csv_many_rows);
	tcase_add_test(tc, manifest_good);
	tcase_add_test(tc, manifest_bad_entries);
	tcase_add_test(tc, manifest_variants);
	tcase_add_test(tc, manifest_hostile);
	tcase_add_test(tc, detect);
	tcase_add_test(tc, signer_load);
	tcase_add_test(tc, mutation_smoke);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(import_suite());
	int failed;

	log_init("check_import", LOG_LVL_ERROR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	fgen_free(gen);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
