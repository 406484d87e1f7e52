/*
 * check_enrol.c — the re-enrolment endpoint without HTTP: the test vector of
 * device-protocol.md, the strict request parser, and every answer of
 * enrol_challenge/enrol_reenrol against a real SQLite database and a real
 * in-process CA (made by tests/mkca.sh), with the database checked after
 * each refusal. Also start-up recovery of an interrupted re-enrolment.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "ca.h"
#include "config.h"
#include "db.h"
#include "enrol.h"
#include "enrol_http.h"
#include "enrol_int.h"
#include "inventory.h"
#include "inventory_enrol.h"
#include "log.h"
#include "metrics.h"
#include "testutil.h"

/* ---- the test vector of device-protocol.md ---- */

static const char TV_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZ8ncOlwF4yd6g8P0wUl5ifQA0WP+\n"
    "fvYJR2Hop44jcF2CcqXwgNWa6m69ii9+IavbXNHx62FBCXuKTgAGRC6XCw==\n"
    "-----END PUBLIC KEY-----\n";
static const char TV_SERIAL[] = "0123a1b2c3d4e5f601";
static const char TV_NONCE[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char TV_CSR[] =
    "MIHaMIGBAgEAMB8xHTAbBgNVBAMMFHNuMDEyM0ExQjJDM0Q0RTVGNjAxMFkwEwYHKoZI"
    "zj0CAQYIKoZIzj0DAQcDQgAEZ8ncOlwF4yd6g8P0wUl5ifQA0WP+fvYJR2Hop44jcF2C"
    "cqXwgNWa6m69ii9+IavbXNHx62FBCXuKTgAGRC6XC6AAMAoGCCqGSM49BAMCA0gAMEUC"
    "IQCRcY3qi7IOBdePlu9vC4OvWrS4YaUNuOpkDvLO9lCPxgIgH9PVBraQkjE8OE048CnD"
    "nz0psNp2HBdKlOZcjl50O9c=";
static const char TV_M[] =
    "666c656574636572742d7265656e726f6c2d7631"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "0123a1b2c3d4e5f601"
    "8278ae8cb5e57984149e48afc2934fd41728048e024baa755257fb9070f199c2";
static const char TV_D[] =
    "02b6041a9f25e8028a2378453d26b336eafc46a552be2abd09bfcf71dc563438";
static const char TV_SIG_RAW[] =
    "90mnXPM82xYrjWWNWL3Xo1sQqXaJtAfZ7OBK8kdxsi3sw/KLkjoF5fbDHU9bEnjXUkNe"
    "nHb9FIqdKntGCHRkUg==";
static const char TV_SIG_DER[] =
    "MEYCIQD3Sadc8zzbFiuNZY1YvdejWxCpdom0B9ns4EryR3GyLQIhAOzD8ouSOgXl9sMd"
    "T1sSeNdSQ16cdv0Uip0qe0YIdGRS";

static EVP_PKEY *
pem_pub(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);

	BIO_free(b);
	ck_assert_ptr_nonnull(k);
	return k;
}

static unsigned char *
b64(const char *s, size_t *len)
{
	unsigned char *out = NULL;

	ck_assert_int_eq(fc_b64_decode(s, &out, len), FC_OK);
	return out;
}

START_TEST(test_vector)
{
	unsigned char *nonce, *csr, *raw, *der, m[ENROL_MSG_LEN], d[32];
	unsigned char serial[9], sig[64], sig2[64], d2[32];
	char hex[2 * ENROL_MSG_LEN + 1];
	size_t nlen, clen, rlen, dlen, i;
	EVP_PKEY *key = pem_pub(TV_PUB);
	unsigned int v;

	nonce = b64(TV_NONCE, &nlen);
	csr = b64(TV_CSR, &clen);
	raw = b64(TV_SIG_RAW, &rlen);
	der = b64(TV_SIG_DER, &dlen);
	ck_assert_uint_eq(nlen, 32);
	ck_assert_uint_eq(rlen, 64);
	for (i = 0; i < 9; i++) {
		sscanf(TV_SERIAL + 2 * i, "%2x", &v);
		serial[i] = (unsigned char)v;
	}
	enrol_digest(nonce, serial, csr, clen, m, d);
	fc_hex(m, sizeof(m), hex, 0);
	ck_assert_str_eq(hex, TV_M);
	fc_hex(d, sizeof(d), hex, 0);
	ck_assert_str_eq(hex, TV_D);

	/* Both encodings decode to the same R || S and verify. */
	ck_assert_int_eq(enrol_sig_decode(raw, rlen, sig), FC_OK);
	ck_assert_int_eq(enrol_sig_decode(der, dlen, sig2), FC_OK);
	ck_assert_mem_eq(sig, sig2, 64);
	ck_assert_int_eq(enrol_sig_verify(key, d, sig), FC_OK);

	/* Any flipped byte of m fails. */
	for (i = 0; i < sizeof(m); i++) {
		unsigned char mm[ENROL_MSG_LEN];
		memcpy(mm, m, sizeof(mm));
		mm[i] ^= 0x01;
		SHA256(mm, sizeof(mm), d2);
		ck_assert_int_eq(enrol_sig_verify(key, d2, sig), FC_ECRYPTO);
	}
	/* And a flipped signature byte fails too. */
	sig[17] ^= 0x80;
	ck_assert_int_eq(enrol_sig_verify(key, d, sig), FC_ECRYPTO);

	/* The fast path: structure, then the self-signature with the parsed
	 * identity key; a flipped byte anywhere in the signed part fails. */
	{
		struct enrol_csr c;
		unsigned char *cp = malloc(clen);
		size_t k;
		ck_assert_int_eq(enrol_csr_parse(csr, clen, &c), FC_OK);
		ck_assert_int_eq(c.ecdsa_sha256, 1);
		ck_assert_int_eq(enrol_csr_verify(&c, key), FC_OK);
		for (k = 0; k < clen; k++) {
			memcpy(cp, csr, clen);
			cp[k] ^= 0x01;
			if (enrol_csr_parse(cp, clen, &c) == FC_OK)
				ck_assert_int_eq(enrol_csr_verify(&c, key),
				    FC_ECRYPTO);
		}
		ck_assert_int_eq(enrol_csr_parse(csr, clen - 1, &c), FC_EINVAL);
		free(cp);
	}
	/* The CSR of the vector is well formed, self-signed by the key. */
	{
		unsigned char *spki = NULL;
		size_t slen;
		int ok = 0;
		ck_assert_int_eq(enrol_csr_inspect(csr, clen, &spki, &slen,
		    &ok), FC_OK);
		ck_assert_int_eq(ok, 1);
		free(spki);
	}
	free(nonce);
	free(csr);
	free(raw);
	free(der);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_sig_encodings)
{
	unsigned char *der, out[64], bad[80];
	size_t dlen;

	der = b64(TV_SIG_DER, &dlen);
	/* Non-canonical DER: a long-form length for the SEQUENCE. */
	bad[0] = 0x30;
	bad[1] = 0x81;
	bad[2] = der[1];
	memcpy(bad + 3, der + 2, dlen - 2);
	ck_assert_int_eq(enrol_sig_decode(bad, dlen + 1, out), FC_EINVAL);
	/* Trailing byte. */
	memcpy(bad, der, dlen);
	bad[dlen] = 0;
	ck_assert_int_eq(enrol_sig_decode(bad, dlen + 1, out), FC_EINVAL);
	/* Truncated. */
	ck_assert_int_eq(enrol_sig_decode(der, dlen - 1, out), FC_EINVAL);
	ck_assert_int_eq(enrol_sig_decode(der, 63, out), FC_EINVAL);
	ck_assert_int_eq(enrol_sig_decode(der, 65, out), FC_EINVAL);
	free(der);
}
END_TEST

/* ---- parser ---- */

static enum fc_err
parse(const char *body, enum enrol_req_kind kind)
{
	struct enrol_req r;
	const char *why = NULL;
	enum fc_err e = enrol_req_parse(body, strlen(body), kind, &r, &why);

	if (e == FC_OK)
		enrol_req_clear(&r);
	else
		ck_assert_ptr_nonnull(why);
	return e;
}

static char *
reenrol_body(const char *serial, const char *nonce, const char *csr,
    const char *sig)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "serial", serial, "nonce",
	    nonce, "csr", csr, "signature", sig);
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return s;
}

START_TEST(test_parse)
{
	char *ok, *big;
	size_t i;

	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f601\"}",
	    ENROL_REQ_CHALLENGE), FC_OK);
	ck_assert_int_eq(parse("{\"serial\":\"sn0123A1B2C3D4E5F601\"}",
	    ENROL_REQ_CHALLENGE), FC_OK);
	ck_assert_int_eq(parse(" {\"serial\" : \"0123a1b2c3d4e5f601\"}\n",
	    ENROL_REQ_CHALLENGE), FC_OK);
	/* Wrong prefix, length, type, extra and duplicate fields. */
	ck_assert_int_eq(parse("{\"serial\":\"0124a1b2c3d4e5f601\"}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f6\"}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":123}", ENROL_REQ_CHALLENGE),
	    FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f601\",\"x\":1}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f601\","
	    "\"serial\":\"0123a1b2c3d4e5f601\"}", ENROL_REQ_CHALLENGE),
	    FC_EINVAL);
	ck_assert_int_eq(parse("[\"0123a1b2c3d4e5f601\"]",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f601\"} x",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f6\\u0000\"}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":\"\xff\xfe\"}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	ck_assert_int_eq(parse("", ENROL_REQ_CHALLENGE), FC_EINVAL);

	ok = reenrol_body(TV_SERIAL, TV_NONCE, TV_CSR, TV_SIG_RAW);
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_OK);
	free(ok);
	ok = reenrol_body(TV_SERIAL, TV_NONCE, TV_CSR, TV_SIG_DER);
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_OK);
	free(ok);
	/* A challenge body is not a re-enrol body. */
	ck_assert_int_eq(parse("{\"serial\":\"0123a1b2c3d4e5f601\"}",
	    ENROL_REQ_REENROL), FC_EINVAL);
	/* Bad base64: wrong alphabet, missing padding, whitespace. */
	ok = reenrol_body(TV_SERIAL, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
	    TV_CSR, TV_SIG_RAW);
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_EINVAL);
	free(ok);
	ok = reenrol_body(TV_SERIAL, TV_NONCE, TV_CSR,
	    "90mnXPM82xYrjWWNWL3Xo1sQqXaJtAfZ7OBK8kdxsi3sw_KLkjoF5fbDHU9bEnjXUkNe"
	    "nHb9FIqdKntGCHRkUg==");
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_EINVAL);
	free(ok);
	ok = reenrol_body(TV_SERIAL, TV_NONCE, "MIHa MIGB", TV_SIG_RAW);
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_EINVAL);
	free(ok);
	/* Wrong lengths: a 31-byte nonce, a 63-byte signature. */
	ok = reenrol_body(TV_SERIAL, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
	    TV_CSR, TV_SIG_RAW);
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_EINVAL);
	free(ok);
	ok = reenrol_body(TV_SERIAL, TV_NONCE, TV_CSR,
	    "90mnXPM82xYrjWWNWL3Xo1sQqXaJtAfZ7OBK8kdxsi3sw/KLkjoF5fbDHU9bEnjXUkNe"
	    "nHb9FIqdKntGCHRk");
	ck_assert_int_eq(parse(ok, ENROL_REQ_REENROL), FC_EINVAL);
	free(ok);

	/* Deep nesting and a 1 MiB body. */
	big = malloc(1024 * 1024 + 1);
	for (i = 0; i < 1024 * 1024; i++)
		big[i] = '[';
	big[i] = '\0';
	ck_assert_int_eq(parse(big, ENROL_REQ_REENROL), FC_EINVAL);
	ck_assert_int_eq(enrol_req_parse(big, 5000, ENROL_REQ_REENROL,
	    &(struct enrol_req){0}, &(const char *){NULL}), FC_EINVAL);
	ck_assert_int_eq(parse("{\"serial\":{\"a\":{\"b\":{\"c\":{}}}}}",
	    ENROL_REQ_CHALLENGE), FC_EINVAL);
	free(big);
}
END_TEST

/* ---- the endpoint against a real database and CA ---- */

static const char *dir;
static struct cfg cfg;
static struct ca *ca;
static struct db *db;
static struct enrol *en;
static const char PEER[] = "192.0.2.7";

/* A device as the tests play it: serial, identity key, device id. */
struct dev {
	char		 id[64];
	char		 serial[FC_SE_SERIAL_LEN];
	unsigned char	 raw[9];
	EVP_PKEY	*key;
};

static unsigned char *
spki_of(EVP_PKEY *k, size_t *len)
{
	unsigned char *out = NULL;
	int n = i2d_PUBKEY(k, &out);

	ck_assert_int_gt(n, 0);
	*len = (size_t)n;
	return out;
}

static void
dev_make(struct dev *d, int n, int insert)
{
	struct inv_device row;
	unsigned int v;
	int i;

	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "dev-%04d", n);
	snprintf(d->serial, sizeof(d->serial), "0123%012x01", n);
	for (i = 0; i < 9; i++) {
		sscanf(d->serial + 2 * i, "%2x", &v);
		d->raw[i] = (unsigned char)v;
	}
	d->key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(d->key);
	if (!insert)
		return;
	memset(&row, 0, sizeof(row));
	snprintf(row.device_id, sizeof(row.device_id), "%s", d->id);
	snprintf(row.se_serial, sizeof(row.se_serial), "%s", d->serial);
	row.identity_key = spki_of(d->key, &row.identity_key_len);
	ck_assert_int_eq(inv_device_insert(db, &row, "test"), FC_OK);
	free(row.identity_key);
}

/* A DER CSR for key, signed by key (or, if broken, with a bad signature). */
static unsigned char *
csr_make(EVP_PKEY *key, int broken, size_t *len)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	unsigned char *der = NULL;
	int l;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"ignored", -1, -1, 0);
	X509_REQ_set_subject_name(r, n);
	X509_REQ_set_pubkey(r, key);
	ck_assert_int_gt(X509_REQ_sign(r, key, EVP_sha256()), 0);
	l = i2d_X509_REQ(r, &der);
	ck_assert_int_gt(l, 0);
	if (broken)
		der[l - 3] ^= 0x01;	/* inside the signature's S */
	X509_NAME_free(n);
	X509_REQ_free(r);
	*len = (size_t)l;
	return der;
}

/* Signs d with key, as the chip does: raw R || S (or DER). */
static char *
sign_b64(EVP_PKEY *key, const unsigned char d[32], int as_der)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
	unsigned char der[80], raw[64];
	const unsigned char *p = der;
	size_t dl = sizeof(der);
	ECDSA_SIG *s;
	const BIGNUM *r, *ss;
	char *out = NULL;

	ck_assert_int_eq(EVP_PKEY_sign_init(c), 1);
	ck_assert_int_eq(EVP_PKEY_sign(c, der, &dl, d, 32), 1);
	EVP_PKEY_CTX_free(c);
	if (as_der) {
		ck_assert_int_eq(fc_b64_encode(der, dl, &out), FC_OK);
		return out;
	}
	s = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	ECDSA_SIG_get0(s, &r, &ss);
	BN_bn2binpad(r, raw, 32);
	BN_bn2binpad(ss, raw + 32, 32);
	ECDSA_SIG_free(s);
	ck_assert_int_eq(fc_b64_encode(raw, 64, &out), FC_OK);
	return out;
}

static json_t *
call(int reenrol, const char *body, int want_status)
{
	struct enrol_answer a;
	json_t *j;

	if (reenrol)
		ck_assert_int_eq(enrol_reenrol(en, NULL, body, strlen(body),
		    PEER, &a), FC_OK);
	else
		ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body),
		    PEER, &a), FC_OK);
	ck_assert_msg(a.status == want_status, "status %d, want %d: %s",
	    a.status, want_status, a.body);
	j = json_loads(a.body, 0, NULL);
	ck_assert_ptr_nonnull(j);
	enrol_answer_clear(&a);
	return j;
}

static char *
challenge(const char *serial)
{
	char body[64];
	json_t *j;
	char *n;

	snprintf(body, sizeof(body), "{\"serial\":\"%s\"}", serial);
	j = call(0, body, 200);
	ck_assert_int_eq(json_object_size(j), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "expiresIn")),
	    cfg.challenge_ttl_seconds);
	n = strdup(json_string_value(json_object_get(j, "nonce")));
	json_decref(j);
	return n;
}

/* Options of one re-enrol request as a device builds it. */
struct req_opts {
	const char	*nonce;		/* NULL: ask for one */
	EVP_PKEY	*sign_key;	/* NULL: the device's key */
	EVP_PKEY	*csr_key;	/* NULL: the device's key */
	int		 broken_csr;
	int		 der_sig;
	const char	*serial;	/* NULL: the device's */
};

static char *
build(struct dev *d, const struct req_opts *o)
{
	unsigned char *csr, *nonce, dg[32];
	char *csr64, *sig64, *n, *body;
	size_t clen, nlen;

	n = o->nonce ? strdup(o->nonce) : challenge(d->serial);
	csr = csr_make(o->csr_key ? o->csr_key : d->key, o->broken_csr, &clen);
	nonce = b64(n, &nlen);
	enrol_digest(nonce, d->raw, csr, clen, NULL, dg);
	sig64 = sign_b64(o->sign_key ? o->sign_key : d->key, dg, o->der_sig);
	ck_assert_int_eq(fc_b64_encode(csr, clen, &csr64), FC_OK);
	body = reenrol_body(o->serial ? o->serial : d->serial, n, csr64,
	    sig64);
	free(csr);
	free(nonce);
	free(csr64);
	free(sig64);
	free(n);
	return body;
}

static long long
count(const char *sql)
{
	sqlite3_stmt *st;
	long long n;

	ck_assert_int_eq(sqlite3_prepare_v2(db->h, sql, -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static long long
certs(void)
{
	return count("SELECT count(*) FROM certificates");
}

static void
setup(void)
{
	char cmd[1024], err[256];
	const char *src = getenv("top_srcdir");

	dir = tu_tmpdir();
	snprintf(cmd, sizeof(cmd), "sh %s/tests/mkca.sh %s/ca >/dev/null",
	    src ? src : "..", dir);
	ck_assert_int_eq(system(cmd), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.db_path = tu_write_str(dir, "fleetcert.db", "");
	unlink(cfg.db_path);
	snprintf(cmd, sizeof(cmd), "%s/ca/intermediate.pem", dir);
	cfg.ca_certificate = strdup(cmd);
	snprintf(cmd, sizeof(cmd), "%s/ca/chain.pem", dir);
	cfg.ca_chain = strdup(cmd);
	snprintf(cmd, sizeof(cmd), "%s/ca/intermediate.key", dir);
	cfg.ca_key = strdup(cmd);
	cfg.validity_days = 365;
	cfg.renew_before_days = 30;
	cfg.challenge_ttl_seconds = 300;
	cfg.per_serial_per_hour = 10;
	cfg.per_address_per_minute = 1000;
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, err, sizeof(err)), FC_OK);
	ck_assert_int_eq(db_open(cfg.db_path, DB_OPEN_MIGRATE, &db), FC_OK);
	{
		struct enrol_issuer iss;
		enrol_issuer_ca(&iss, ca);
		ck_assert_int_eq(enrol_new(&cfg, &iss, &en), FC_OK);
	}
	fc_clock_set_offset(0);
}

static void
teardown(void)
{
	enrol_free(en);
	db_close(db);
	ca_free(ca);
	free(cfg.db_path);
	free(cfg.ca_certificate);
	free(cfg.ca_chain);
	free(cfg.ca_key);
	en = NULL;
	db = NULL;
	ca = NULL;
}

static void
dev_free(struct dev *d)
{
	EVP_PKEY_free(d->key);
}

static void
assert_unauthorized(json_t *j)
{
	json_t *e = json_object_get(j, "error");

	ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
	    "unauthorized");
	ck_assert_str_eq(json_string_value(json_object_get(e, "message")),
	    "proof rejected");
	ck_assert_int_eq(json_object_size(j), 1);
	ck_assert_int_eq(json_object_size(e), 2);
	json_decref(j);
}

/* The last audit entry's action and detail. */
static void
last_audit(const char *action, const char *cause)
{
	sqlite3_stmt *st;
	json_t *j;

	ck_assert_int_eq(sqlite3_prepare_v2(db->h, "SELECT action, detail "
	    "FROM audit WHERE action IN ('enrol.reject', 'enrol.forbidden') "
	    "ORDER BY id DESC LIMIT 1",
	    -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), action);
	j = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "cause")),
	    cause);
	json_decref(j);
	sqlite3_finalize(st);
}

static void
check_success(struct dev *d, json_t *j)
{
	const char *pem = json_string_value(json_object_get(j, "certificate"));
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	char cn[128];

	ck_assert_int_eq(json_object_size(j), 6);
	ck_assert_str_eq(json_string_value(json_object_get(j, "deviceId")),
	    d->id);
	ck_assert_ptr_nonnull(x);
	/* Subject from the inventory, never from the CSR ("ignored"). */
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    cn, sizeof(cn));
	ck_assert_str_eq(cn, d->id);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), d->key), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j,
	    "chain")), "BEGIN CERTIFICATE"));
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j,
	    "notAfter")));
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j,
	    "renewAfter")));
	X509_free(x);
	BIO_free(b);
}

START_TEST(test_happy_and_lineage)
{
	struct dev d;
	struct req_opts o = { 0 };
	char *body;
	json_t *j;
	char first[64];

	dev_make(&d, 1, 1);
	body = build(&d, &o);
	j = call(1, body, 200);
	check_success(&d, j);
	snprintf(first, sizeof(first), "%s",
	    json_string_value(json_object_get(j, "serial")));
	json_decref(j);

	/* The same request again: the nonce is spent. */
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "nonce already used");
	free(body);

	/* A second re-enrolment (DER signature) supersedes the first. */
	o.der_sig = 1;
	body = build(&d, &o);
	j = call(1, body, 200);
	check_success(&d, j);
	json_decref(j);
	free(body);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status IN ('active','delivered','pending')"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'superseded'"), 1);
	{
		char q[256];
		snprintf(q, sizeof(q), "SELECT count(*) FROM certificates "
		    "WHERE renewed_from = '%s' AND issued_by = 'reenrolment'",
		    first);
		ck_assert_int_eq(count(q), 1);
	}
	ck_assert_int_eq(count("SELECT count(*) FROM challenges WHERE "
	    "used = 0"), 0);
	dev_free(&d);
}
END_TEST

/* Each refusal: the documented answer, no certificate, the cause audited. */
START_TEST(test_refusals)
{
	struct dev d, other, unknown;
	struct req_opts o;
	EVP_PKEY *wrong = EVP_EC_gen("P-256");
	char *body, *n;
	long long c0;

	dev_make(&d, 2, 1);
	dev_make(&other, 3, 1);
	dev_make(&unknown, 4, 0);
	c0 = certs();

	/* Nonce for another serial. */
	n = challenge(other.serial);
	memset(&o, 0, sizeof(o));
	o.nonce = n;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "nonce bound to another serial");
	free(body);
	free(n);

	/* Expired nonce. */
	n = challenge(d.serial);
	fc_clock_set_offset(cfg.challenge_ttl_seconds + 1);
	o.nonce = n;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "nonce expired");
	fc_clock_set_offset(0);
	free(body);
	free(n);

	/* Unknown nonce. */
	o.nonce = TV_NONCE;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "unknown nonce");
	free(body);

	/* Wrong identity key. */
	memset(&o, 0, sizeof(o));
	o.sign_key = wrong;
	o.csr_key = wrong;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "identity signature does not verify");
	free(body);

	/* CSR with another key (proof by the right identity key). */
	memset(&o, 0, sizeof(o));
	o.csr_key = wrong;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "CSR key is not the identity key");
	free(body);

	/* CSR with a broken self-signature. */
	memset(&o, 0, sizeof(o));
	o.broken_csr = 1;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "CSR self-signature does not verify");
	free(body);

	/* Unknown serial: a challenge like any other, then the same 401. */
	memset(&o, 0, sizeof(o));
	body = build(&unknown, &o);
	/* Same work as a known serial: the decoy key is decoded and cached
	 * under the serial, as a known key is (no timing oracle). */
	ck_assert(!enrol_keys_cached(en->keys, unknown.serial));
	assert_unauthorized(call(1, body, 401));
	last_audit("enrol.reject", "unknown serial");
	ck_assert(enrol_keys_cached(en->keys, unknown.serial));
	ck_assert(enrol_keys_cached(en->keys, d.serial));
	free(body);

	ck_assert_int_eq(certs(), c0);
	ck_assert_int_eq(count("SELECT count(*) FROM challenges WHERE "
	    "used = 0"), 0);
	/* Three failures within the hour: an anomaly, counted. */
	ck_assert_int_ge(enrol_serial_failures(en, d.serial), 3);
	{
		struct enrol_stats st;
		enrol_stats_get(en, &st);
		ck_assert_uint_ge(st.anomalies, 1);
		ck_assert_uint_eq(st.rejected, 7);
		ck_assert_uint_eq(st.reenrolled, 0);
	}
	ck_assert_int_ge(count("SELECT count(*) FROM audit WHERE action = "
	    "'enrol.anomaly'"), 1);
	{
		char *text = NULL;
		size_t len;
		ck_assert_int_eq(metrics_render(NULL, &text, &len), FC_OK);
		ck_assert_ptr_nonnull(strstr(text,
		    "fleetcert_enrol_requests_total{outcome=\"rejected\"} 7"));
		ck_assert_ptr_nonnull(strstr(text,
		    "fleetcert_enrol_anomalies_total 1"));
		free(text);
	}
	EVP_PKEY_free(wrong);
	dev_free(&d);
	dev_free(&other);
	dev_free(&unknown);
}
END_TEST

START_TEST(test_bad_requests_change_nothing)
{
	struct dev d;
	struct req_opts o = { 0 };
	char *body, *n, *big;
	long long c0, a0, ch0;
	json_t *j;
	size_t i;

	dev_make(&d, 5, 1);
	n = challenge(d.serial);
	c0 = certs();
	a0 = count("SELECT count(*) FROM audit");
	ch0 = count("SELECT count(*) FROM challenges WHERE used = 0");

	/* Bad base64 in the signature: 400, and the nonce is still good. */
	o.nonce = n;
	body = build(&d, &o);
	{
		char *p = strstr(body, "\"signature\":\"") + 13;
		*p = '*';
	}
	j = call(1, body, 400);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "error"), "code")), "bad_request");
	json_decref(j);
	free(body);
	/* An unparsable CSR. */
	body = reenrol_body(d.serial, n, "MAA=", TV_SIG_RAW);
	json_decref(call(1, body, 400));
	free(body);
	big = malloc(1024 * 1024 + 1);
	for (i = 0; i < 1024 * 1024; i++)
		big[i] = i < 100 ? '[' : ' ';
	big[i] = '\0';
	json_decref(call(1, big, 400));
	json_decref(call(0, big, 400));
	free(big);
	json_decref(call(0, "{\"serial\":[[[[[[[[]]]]]]]]}", 400));
	json_decref(call(0, "{\"serial\":\"0123a1b2\"}", 400));

	ck_assert_int_eq(certs(), c0);
	ck_assert_int_eq(count("SELECT count(*) FROM audit"), a0);
	ck_assert_int_eq(count("SELECT count(*) FROM challenges WHERE "
	    "used = 0"), ch0);
	/* The untouched nonce still works. */
	body = build(&d, &o);
	j = call(1, body, 200);
	check_success(&d, j);
	json_decref(j);
	free(body);
	free(n);
	dev_free(&d);
}
END_TEST

START_TEST(test_revoked_and_decommissioned)
{
	struct dev d;
	struct req_opts o = { 0 };
	const char *st[] = { "revoked", "decommissioned", "suspended" };
	enum inv_dev_status sv[] = { INV_DEV_REVOKED, INV_DEV_DECOMMISSIONED,
	    INV_DEV_SUSPENDED };
	char *body;
	json_t *j;
	size_t i;
	long long c0;

	dev_make(&d, 6, 1);
	c0 = certs();
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(inv_device_set_status(db, d.id, sv[i], "test",
		    "test"), FC_OK);
		body = build(&d, &o);
		j = call(1, body, 403);
		ck_assert_str_eq(json_string_value(json_object_get(
		    json_object_get(j, "error"), "code")), "forbidden");
		json_decref(j);
		last_audit("enrol.forbidden", st[i]);
		free(body);
		/* Without the proof, a revoked device is just a 401. */
		o.sign_key = EVP_EC_gen("P-256");
		body = build(&d, &o);
		assert_unauthorized(call(1, body, 401));
		EVP_PKEY_free(o.sign_key);
		o.sign_key = NULL;
		free(body);
	}
	ck_assert_int_eq(certs(), c0);
	dev_free(&d);
}
END_TEST

START_TEST(test_rate_limits)
{
	struct dev d;
	struct enrol_answer a;
	const char body[] = "{\"serial\":\"0123000000000007ff\"}";
	int i;

	dev_make(&d, 7, 1);
	for (i = 0; i < cfg.per_serial_per_hour; i++) {
		ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body),
		    PEER, &a), FC_OK);
		ck_assert_int_eq(a.status, 200);
		enrol_answer_clear(&a);
	}
	ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body), PEER,
	    &a), FC_OK);
	ck_assert_int_eq(a.status, 429);
	ck_assert_int_ge(a.retry_after, 1);
	ck_assert_int_le(a.retry_after, 3600);
	enrol_answer_clear(&a);
	/* The allowance is per serial and client address: someone else
	 * asking for this serial from elsewhere has not locked the device
	 * out, and is limited in turn. */
	for (i = 0; i < cfg.per_serial_per_hour; i++) {
		ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body),
		    "198.51.100.7", &a), FC_OK);
		ck_assert_int_eq(a.status, 200);
		enrol_answer_clear(&a);
	}
	ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body),
	    "198.51.100.7", &a), FC_OK);
	ck_assert_int_eq(a.status, 429);
	enrol_answer_clear(&a);
	/* A reload raises the limit and changes the TTL at once. */
	cfg.per_serial_per_hour = 11;
	cfg.challenge_ttl_seconds = 60;
	ck_assert_int_eq(enrol_reconfigure(en, &cfg), FC_OK);
	ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body), PEER,
	    &a), FC_OK);
	ck_assert_int_eq(a.status, 200);
	ck_assert_ptr_nonnull(strstr(a.body, "\"expiresIn\":60"));
	enrol_answer_clear(&a);
	ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body), PEER,
	    &a), FC_OK);
	ck_assert_int_eq(a.status, 429);
	enrol_answer_clear(&a);
	cfg.per_serial_per_hour = 10;
	cfg.challenge_ttl_seconds = 300;
	ck_assert_int_eq(enrol_reconfigure(en, &cfg), FC_OK);
	/* Another serial from the same address still works. */
	free(challenge(d.serial));
	/* An hour later the serial may ask again. */
	fc_clock_set_offset(3601);
	ck_assert_int_eq(enrol_challenge(en, db, body, strlen(body), PEER,
	    &a), FC_OK);
	ck_assert_int_eq(a.status, 200);
	enrol_answer_clear(&a);
	fc_clock_set_offset(0);
	dev_free(&d);
}
END_TEST

START_TEST(test_address_limit)
{
	struct enrol_answer a;
	const char body[] = "{\"serial\":\"0123000000000008ff\"}";
	int i, limited = 0;

	enrol_free(en);
	cfg.per_address_per_minute = 5;
	cfg.per_serial_per_hour = 100;
	{
		struct enrol_issuer iss;
		enrol_issuer_ca(&iss, ca);
		ck_assert_int_eq(enrol_new(&cfg, &iss, &en), FC_OK);
	}
	for (i = 0; i < 7; i++) {
		ck_assert_int_eq(enrol_reenrol(en, db, body, strlen(body),
		    "198.51.100.9", &a), FC_OK);
		if (a.status == 429) {
			limited++;
			ck_assert_int_ge(a.retry_after, 1);
			ck_assert_int_le(a.retry_after, 60);
		} else
			ck_assert_int_eq(a.status, 400);
		enrol_answer_clear(&a);
	}
	ck_assert_int_eq(limited, 2);
	/* IPv6: one /64 is one client; another /64 is another. */
	limited = 0;
	for (i = 0; i < 7; i++) {
		char peer[64];
		snprintf(peer, sizeof(peer), "2001:db8:1:2::%x", i + 1);
		ck_assert_int_eq(enrol_reenrol(en, db, body, strlen(body),
		    peer, &a), FC_OK);
		limited += a.status == 429;
		enrol_answer_clear(&a);
	}
	ck_assert_int_eq(limited, 2);
	ck_assert_int_eq(enrol_reenrol(en, db, body, strlen(body),
	    "2001:db8:1:3::1", &a), FC_OK);
	ck_assert_int_eq(a.status, 400);
	enrol_answer_clear(&a);
	ck_assert_int_eq(enrol_reenrol(en, db, body, strlen(body),
	    "::ffff:198.51.100.9", &a), FC_OK);
	ck_assert_int_eq(a.status, 429);
	enrol_answer_clear(&a);
	cfg.per_address_per_minute = 1000;
	cfg.per_serial_per_hour = 10;
}
END_TEST

/* An issuer that "crashes" after signing: the row stays reserved. */
static enum fc_err
issue_crash(void *arg, const char *serial, const char *device_id,
    const char *se_serial, const unsigned char *spki, size_t spki_len,
    struct enrol_issued *out)
{
	(void)arg; (void)serial; (void)device_id; (void)se_serial;
	(void)spki; (void)spki_len; (void)out;
	return FC_EIO;
}

static enum fc_err
serial_fixed(void *arg, char out[FC_CERT_SERIAL_MAX])
{
	return ca_serial_new(out);
}

START_TEST(test_recovery)
{
	struct dev d;
	struct req_opts o = { 0 };
	struct inv_cert row;
	char *body;
	json_t *j;
	int voided = -1;

	dev_make(&d, 9, 1);
	/* A first certificate, as delivered. */
	body = build(&d, &o);
	json_decref(call(1, body, 200));
	free(body);

	/* A crash after the reservation committed and before the answer:
	 * leave a reserved row, as the daemon dying there would. */
	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(ca_serial_new(row.serial), FC_OK);
	snprintf(row.device_id, sizeof(row.device_id), "%s", d.id);
	row.status = INV_CERT_RESERVED;
	row.issued_by = INV_ISSUED_REENROLMENT;
	ck_assert_int_eq(inv_cert_insert(db, &row, "test"), FC_OK);
	/* And a signer failure: the endpoint voids its own row, answers 500. */
	{
		struct enrol_issuer iss = { serial_fixed, issue_crash, NULL,
		    "" };
		struct enrol *e2;
		struct enrol_answer a;
		ck_assert_int_eq(enrol_new(&cfg, &iss, &e2), FC_OK);
		body = build(&d, &o);
		ck_assert_int_eq(enrol_reenrol(e2, db, body, strlen(body),
		    PEER, &a), FC_OK);
		ck_assert_int_eq(a.status, 500);
		enrol_answer_clear(&a);
		enrol_free(e2);
		free(body);
	}
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'reserved'"), 1);

	/* Start-up recovery voids the reserved row; never reused. */
	ck_assert_int_eq(enrol_recover(db, &voided), FC_OK);
	ck_assert_int_eq(voided, 1);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'reserved'"), 0);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'revoked' AND revocation_reason = 4 AND der IS NULL"),
	    2);
	ck_assert_int_eq(count("SELECT count(*) FROM audit WHERE action = "
	    "'cert.void'"), 2);
	ck_assert_int_eq(enrol_recover(db, &voided), FC_OK);
	ck_assert_int_eq(voided, 0);

	/* The device retries with a new nonce and gets a valid certificate;
	 * exactly one live certificate remains. */
	body = build(&d, &o);
	j = call(1, body, 200);
	check_success(&d, j);
	json_decref(j);
	free(body);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status IN ('active','delivered','pending')"), 1);
	dev_free(&d);
}
END_TEST

/* Completed but never answered (crash after the commit): the retry's
 * certificate supersedes the unanswered one. */
START_TEST(test_unanswered_retry)
{
	struct dev d;
	struct req_opts o = { 0 };
	struct inv_cert c;
	char *body;
	int i;

	dev_make(&d, 10, 1);
	for (i = 0; i < 3; i++) {
		body = build(&d, &o);
		json_decref(call(1, body, 200));
		free(body);
		ck_assert_int_eq(count("SELECT count(*) FROM certificates "
		    "WHERE status IN ('active','delivered','pending')"), 1);
	}
	/* Even if the device had confirmed one (active), the next
	 * re-enrolment leaves one live certificate. */
	ck_assert_int_eq(inv_cert_current(db, d.id, &c), FC_OK);
	ck_assert_int_eq(inv_cert_set_status(db, c.serial, INV_CERT_ACTIVE,
	    "test", NULL), FC_OK);
	inv_cert_clear(&c);
	body = build(&d, &o);
	json_decref(call(1, body, 200));
	free(body);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status IN ('active','delivered','pending')"), 1);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'active'"), 0);
	dev_free(&d);
}
END_TEST

/* An issuer during whose signing an operator revokes the device. */
static enum fc_err
issue_then_revoke(void *arg, const char *serial, const char *device_id,
    const char *se_serial, const unsigned char *spki, size_t spki_len,
    struct enrol_issued *out)
{
	struct enrol_issuer real;

	ck_assert_int_eq(inv_device_set_status(db, device_id, INV_DEV_REVOKED,
	    "test", "keyCompromise"), FC_OK);
	enrol_issuer_ca(&real, arg);
	return real.issue(real.arg, serial, device_id, se_serial, spki,
	    spki_len, out);
}

START_TEST(test_revoked_while_signing)
{
	struct dev d;
	struct req_opts o = { 0 };
	struct enrol_issuer iss;
	struct enrol_answer a;
	struct enrol *e2;
	char *body;

	dev_make(&d, 12, 1);
	enrol_issuer_ca(&iss, ca);
	iss.issue = issue_then_revoke;
	ck_assert_int_eq(enrol_new(&cfg, &iss, &e2), FC_OK);
	body = build(&d, &o);
	/* NULL: the endpoint uses a connection of its own, as a listener
	 * thread does; the revocation comes through the test's. */
	ck_assert_int_eq(enrol_reenrol(e2, NULL, body, strlen(body), PEER,
	    &a), FC_OK);
	ck_assert_int_eq(a.status, 403);
	enrol_answer_clear(&a);
	enrol_free(e2);
	free(body);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status IN ('active','delivered','pending','reserved')"), 0);
	ck_assert_int_eq(count("SELECT count(*) FROM certificates WHERE "
	    "status = 'revoked' AND der IS NULL"), 1);
	last_audit("enrol.forbidden", "revoked during the re-enrolment");
	dev_free(&d);
}
END_TEST

START_TEST(test_allow_new_key)
{
	struct dev d;
	struct req_opts o = { 0 };
	EVP_PKEY *nk = EVP_EC_gen("P-256");
	char *body;
	json_t *j;
	const char *pem;
	BIO *b;
	X509 *x;

	enrol_free(en);
	cfg.allow_new_key = 1;
	{
		struct enrol_issuer iss;
		enrol_issuer_ca(&iss, ca);
		ck_assert_int_eq(enrol_new(&cfg, &iss, &en), FC_OK);
	}
	cfg.allow_new_key = 0;
	dev_make(&d, 11, 1);
	o.csr_key = nk;
	body = build(&d, &o);
	j = call(1, body, 200);
	pem = json_string_value(json_object_get(j, "certificate"));
	b = BIO_new_mem_buf(pem, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), nk), 1);
	X509_free(x);
	BIO_free(b);
	json_decref(j);
	free(body);
	/* Still: the identity signature must be right. */
	o.sign_key = nk;
	body = build(&d, &o);
	assert_unauthorized(call(1, body, 401));
	free(body);
	EVP_PKEY_free(nk);
	dev_free(&d);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("enrol");
	TCase *t;

	t = tcase_create("protocol");
	tcase_add_test(t, test_vector);
	tcase_add_test(t, test_sig_encodings);
	tcase_add_test(t, test_parse);
	suite_add_tcase(s, t);

	t = tcase_create("endpoint");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_happy_and_lineage);
	tcase_add_test(t, test_refusals);
	tcase_add_test(t, test_bad_requests_change_nothing);
	tcase_add_test(t, test_revoked_and_decommissioned);
	tcase_add_test(t, test_rate_limits);
	tcase_add_test(t, test_address_limit);
	tcase_add_test(t, test_recovery);
	tcase_add_test(t, test_unanswered_retry);
	tcase_add_test(t, test_allow_new_key);
	tcase_add_test(t, test_revoked_while_signing);
	suite_add_tcase(s, t);
	return s;
}

int
main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	log_init("check_enrol", LOG_LVL_ERROR);
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
