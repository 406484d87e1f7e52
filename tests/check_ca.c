/*
 * check_ca.c — the issuing CA and the signer: the device certificate
 * profile field by field, CSR and key refusals, request checks, encrypted
 * PEM keys, CRLs, forged requests on the signer socket, a killed worker,
 * and several threads issuing at once. CA material is made by
 * tests/mkca.sh; device keys and CSRs by OpenSSL here.
 */
#include "fc_build.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "signer.h"
#include "testutil.h"

static char ec_dir[512], rsa_dir[512], short_dir[512];
static const char *SE = "0123456789abcdef01";

static void
cfg_for(struct cfg *c, const char *dir)
{
	static char cert[600], key[600], chain[600];

	memset(c, 0, sizeof(*c));
	snprintf(cert, sizeof(cert), "%s/intermediate.pem", dir);
	snprintf(key, sizeof(key), "%s/intermediate.key", dir);
	snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
	c->ca_certificate = cert;
	c->ca_key = key;
	c->ca_chain = chain;
	c->validity_days = 365;
	c->crl_validity_hours = 48;
}

static struct ca *
load(const char *dir)
{
	struct cfg c;
	struct ca *ca = NULL;
	char why[256];

	cfg_for(&c, dir);
	ck_assert_int_eq(ca_load(&c, 0, &ca, why, sizeof(why)), FC_OK);
	return ca;
}

static EVP_PKEY *
keygen(const char *kind)
{
	EVP_PKEY *k = NULL;

	if (strcmp(kind, "P-256") == 0 || strcmp(kind, "P-384") == 0 ||
	    strcmp(kind, "P-521") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", kind);
	else if (strcmp(kind, "RSA1024") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strcmp(kind, "RSA2048") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, kind);
	ck_assert_ptr_nonnull(k);
	return k;
}

static unsigned char *
spki_of(EVP_PKEY *k, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);

	ck_assert_int_gt(n, 0);
	*len = (size_t)n;
	return der;
}

static unsigned char *
csr_of(EVP_PKEY *k, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	int n;

	ck_assert_ptr_nonnull(req);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)"ignored-by-the-ca", -1, -1, 0);
	ck_assert_int_eq(X509_REQ_set_pubkey(req, k), 1);
	ck_assert_int_gt(X509_REQ_sign(req, k, EVP_get_digestbyname(
	    EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? "" : "SHA256") ?
	    EVP_get_digestbyname("SHA256") : NULL), 0);
	n = i2d_X509_REQ(req, &der);
	ck_assert_int_gt(n, 0);
	X509_REQ_free(req);
	*len = (size_t)n;
	return der;
}

static X509 *
cert_of(const struct ca_cert *c)
{
	const unsigned char *p = c->der;
	X509 *x = d2i_X509(NULL, &p, (long)c->der_len);

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_eq(p, c->der + c->der_len);
	return x;
}

static X509 *
pem_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	ck_assert_ptr_nonnull(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(x);
	return x;
}

static void
req_init(struct ca_issue_req *r, char *serial, const char *dev)
{
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(ca_serial_new(serial), FC_OK);
	r->serial = serial;
	r->device_id = dev;
	r->se_serial = SE;
}

/* Every field of the profile (issue 3), checked on the parsed DER. */
static void
check_profile(const struct ca_cert *c, const char *dir, const char *dev,
    EVP_PKEY *subject_key)
{
	X509 *x = cert_of(c), *ca = NULL, *root;
	char path[600], buf[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n;
	BIGNUM *bn;
	char *hex;
	int crit, i;
	time_t now = fc_now();
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	EXTENDED_KEY_USAGE *eku;
	GENERAL_NAMES *san;
	GENERAL_NAME *gn;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	STACK_OF(X509) *untrusted;

	snprintf(path, sizeof(path), "%s/intermediate.pem", dir);
	ca = pem_cert(path);
	ck_assert_int_eq(X509_get_version(x), 2);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	ck_assert(!BN_is_negative(bn));
	ck_assert_int_le(BN_num_bytes(bn), 20);
	ck_assert_int_gt(BN_num_bits(bn), 120);
	hex = BN_bn2hex(bn);
	for (i = 0; hex[i]; i++)
		hex[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] + 32 :
		    hex[i]);
	ck_assert_str_eq(hex, c->serial);
	OPENSSL_free(hex);
	BN_free(bn);
	ck_assert_int_eq(X509_get_signature_nid(x),
	    EVP_PKEY_get_base_id(X509_get0_pubkey(ca)) == EVP_PKEY_EC ?
	    NID_ecdsa_with_SHA256 : NID_sha256WithRSAEncryption);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(x),
	    X509_get_subject_name(ca)), 0);
	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(x)), 1);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    buf, sizeof(buf));
	ck_assert_str_eq(buf, dev);
	/* notBefore = now - 5 min, notAfter = now + 365 days (+- 60 s). */
	ck_assert_int_le(labs((long)(c->not_before - (now - 300))), 60);
	ck_assert_int_le(labs((long)(c->not_after - (now + 365 * 86400L))), 60);
	ck_assert_int_eq(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x),
	    c->not_before), 0);
	ck_assert_int_eq(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x),
	    c->not_after), 0);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(x), subject_key), 1);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	ck_assert_ptr_nonnull(bc);
	ck_assert_int_eq(crit, 1);
	ck_assert_int_eq(bc->ca, 0);
	BASIC_CONSTRAINTS_free(bc);
	ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
	ck_assert_ptr_nonnull(ku);
	ck_assert_int_eq(crit, 1);
	ck_assert_uint_eq(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	ASN1_BIT_STRING_free(ku);
	eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
	ck_assert_ptr_nonnull(eku);
	ck_assert_int_eq(crit, 0);
	ck_assert_int_eq(sk_ASN1_OBJECT_num(eku), 1);
	ck_assert_int_eq(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, 0)),
	    NID_client_auth);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(x));
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
	    X509_get0_subject_key_id(ca)), 0);
	san = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	ck_assert_ptr_nonnull(san);
	ck_assert_int_eq(sk_GENERAL_NAME_num(san), 1);
	gn = sk_GENERAL_NAME_value(san, 0);
	ck_assert_int_eq(gn->type, GEN_URI);
	snprintf(buf, sizeof(buf), "urn:fleetcert:se:%s", SE);
	ck_assert_str_eq((const char *)ASN1_STRING_get0_data(
	    gn->d.uniformResourceIdentifier), buf);
	GENERAL_NAMES_free(san);

	/* Fingerprints: upper-case hex SHA-1 / SHA-256 of the DER. */
	EVP_Digest(c->der, c->der_len, md, &n, EVP_sha1(), NULL);
	fc_hex(md, n, buf, 1);
	ck_assert_str_eq(buf, c->sha1);
	EVP_Digest(c->der, c->der_len, md, &n, EVP_sha256(), NULL);
	fc_hex(md, n, buf, 1);
	ck_assert_str_eq(buf, c->sha256);

	/* The chain verifies: root trusted, intermediate untrusted. */
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	store = X509_STORE_new();
	root = pem_cert(path);
	X509_STORE_add_cert(store, root);
	X509_free(root);
	untrusted = sk_X509_new_null();
	sk_X509_push(untrusted, ca);
	ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, x, untrusted);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	ck_assert_msg(X509_verify_cert(ctx) == 1, "verify: %s",
	    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(ca);
	X509_free(x);
}

static void
issue_ok(struct ca *ca, const char *dir, const char *kind, int csr)
{
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	char serial[FC_CERT_SERIAL_MAX], why[256] = "";
	EVP_PKEY *k = keygen(kind);
	unsigned char *der;
	size_t len;

	req_init(&r, serial, "dev-ok.1");
	der = csr ? csr_of(k, &len) : spki_of(k, &len);
	if (csr) {
		r.csr = der;
		r.csr_len = len;
	} else {
		r.spki = der;
		r.spki_len = len;
	}
	ck_assert_msg(ca_cert_issue(ca, &r, &c, why, sizeof(why)) == FC_OK,
	    "%s %s: %s", kind, csr ? "csr" : "spki", why);
	check_profile(c, dir, "dev-ok.1", k);
	ca_cert_free(c);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

START_TEST(test_issue_ec_ca)
{
	struct ca *ca = load(ec_dir);

	issue_ok(ca, ec_dir, "P-256", 0);
	issue_ok(ca, ec_dir, "P-256", 1);
	issue_ok(ca, ec_dir, "P-384", 0);
	issue_ok(ca, ec_dir, "P-384", 1);
	issue_ok(ca, ec_dir, "RSA2048", 0);
	issue_ok(ca, ec_dir, "RSA2048", 1);
	ca_free(ca);
}
END_TEST

START_TEST(test_issue_rsa_ca)
{
	struct ca *ca = load(rsa_dir);

	issue_ok(ca, rsa_dir, "P-256", 0);
	issue_ok(ca, rsa_dir, "P-256", 1);
	ca_free(ca);
}
END_TEST

static enum fc_err
try_csr(struct ca *ca, const unsigned char *der, size_t len, char *why,
    size_t whylen)
{
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	char serial[FC_CERT_SERIAL_MAX];
	enum fc_err e;

	req_init(&r, serial, "dev-bad");
	r.csr = der;
	r.csr_len = len;
	why[0] = '\0';
	e = ca_cert_issue(ca, &r, &c, why, whylen);
	ck_assert_ptr_null(c);
	return e;
}

START_TEST(test_csr_refused)
{
	struct ca *ca = load(ec_dir);
	EVP_PKEY *k = keygen("P-256"), *k2;
	unsigned char *der, *big;
	size_t len, i;
	char why[256];

	/* A CSR whose body changed after signing. */
	der = csr_of(k, &len);
	for (i = 0; i + 17 < len; i++)
		if (memcmp(der + i, "ignored-by-the-ca", 17) == 0)
			der[i] = 'J';
	ck_assert_int_eq(try_csr(ca, der, len, why, sizeof(why)), FC_EINVAL);
	ck_assert_str_eq(why, "CSR signature does not verify");
	/* Truncated DER. */
	for (i = 1; i < len; i += 7)
		ck_assert_int_eq(try_csr(ca, der, len - i, why, sizeof(why)),
		    FC_EINVAL);
	ck_assert_str_eq(why, "CSR is not a DER PKCS#10 request");
	/* Trailing garbage. */
	OPENSSL_free(der);
	der = csr_of(k, &len);
	big = malloc(65536);
	memcpy(big, der, len);
	big[len] = 0;
	ck_assert_int_eq(try_csr(ca, big, len + 1, why, sizeof(why)),
	    FC_EINVAL);
	/* Garbage and a 64 KiB blob. */
	RAND_bytes(big, 65536);
	ck_assert_int_eq(try_csr(ca, big, 300, why, sizeof(why)), FC_EINVAL);
	ck_assert_str_eq(why, "CSR is not a DER PKCS#10 request");
	ck_assert_int_eq(try_csr(ca, big, 65536, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "larger than"));
	ck_assert_int_eq(try_csr(ca, big, 0, why, sizeof(why)), FC_EINVAL);
	free(big);
	OPENSSL_free(der);
	EVP_PKEY_free(k);

	/* Wrong key types and a short RSA key. */
	k2 = keygen("RSA1024");
	der = csr_of(k2, &len);
	ck_assert_int_eq(try_csr(ca, der, len, why, sizeof(why)), FC_EINVAL);
	ck_assert_str_eq(why, "RSA key of 1024 bits: at least 2048 required");
	OPENSSL_free(der);
	EVP_PKEY_free(k2);
	k2 = keygen("ED25519");
	der = csr_of(k2, &len);
	ck_assert_int_eq(try_csr(ca, der, len, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "not allowed"));
	OPENSSL_free(der);
	EVP_PKEY_free(k2);
	k2 = keygen("P-521");
	der = csr_of(k2, &len);
	ck_assert_int_eq(try_csr(ca, der, len, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "P-256/P-384"));
	OPENSSL_free(der);
	EVP_PKEY_free(k2);
	ca_free(ca);
}
END_TEST

/* Random damage to a CSR and to an SPKI: refused or (rarely) accepted,
 * never a crash (the sanitizer build runs this too). */
START_TEST(test_mutations)
{
	struct ca *ca = load(ec_dir);
	EVP_PKEY *k = keygen("P-256"), *r = keygen("RSA2048");
	unsigned char *csr, *spki, *rcsr, *buf;
	size_t clen, slen, rlen;
	struct ca_issue_req q;
	struct ca_cert *c;
	char serial[FC_CERT_SERIAL_MAX], why[256];
	unsigned char rnd[3];
	int i, accepted = 0;
	enum fc_err e;

	csr = csr_of(k, &clen);
	spki = spki_of(k, &slen);
	rcsr = csr_of(r, &rlen);
	buf = malloc(4096);
	for (i = 0; i < 3000; i++) {
		const unsigned char *src = i % 3 == 0 ? csr : i % 3 == 1 ?
		    spki : rcsr;
		size_t len = i % 3 == 0 ? clen : i % 3 == 1 ? slen : rlen;
		RAND_bytes(rnd, sizeof(rnd));
		memcpy(buf, src, len);
		buf[((size_t)rnd[0] << 8 | rnd[1]) % len] ^= (unsigned char)(
		    rnd[2] ? rnd[2] : 1);
		if (i % 7 == 0)
			len -= rnd[2] % len;
		req_init(&q, serial, "dev-mut");
		if (i % 3 == 1) {
			q.spki = buf;
			q.spki_len = len;
		} else {
			q.csr = buf;
			q.csr_len = len;
		}
		c = NULL;
		e = ca_cert_issue(ca, &q, &c, why, sizeof(why));
		ck_assert_msg(e == FC_OK || e == FC_EINVAL, "mutation %d: %d",
		    i, e);
		if (e == FC_OK)
			accepted++;
		ca_cert_free(c);
	}
	/* Only SPKI damage that keeps a valid key can pass (e.g. an RSA
	 * exponent bit); CSR damage never verifies. */
	ck_assert_int_lt(accepted, 100);
	free(buf);
	OPENSSL_free(csr);
	OPENSSL_free(spki);
	OPENSSL_free(rcsr);
	EVP_PKEY_free(k);
	EVP_PKEY_free(r);
	ca_free(ca);
}
END_TEST

START_TEST(test_spki_refused)
{
	struct ca *ca = load(ec_dir);
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	char serial[FC_CERT_SERIAL_MAX], why[256];
	EVP_PKEY *k = keygen("P-256");
	unsigned char *der;
	size_t len;

	der = spki_of(k, &len);
	req_init(&r, serial, "dev-x");
	r.spki = der;
	r.spki_len = len;
	/* A point off the curve, with the P-256 prefix intact. */
	der[len - 1] ^= 0x01;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)),
	    FC_EINVAL);
	ck_assert_str_eq(why, "EC public key is not a point on its curve");
	der[len - 1] ^= 0x01;
	r.spki_len = len - 3;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)),
	    FC_EINVAL);
	/* Both a key and a CSR, or neither. */
	r.spki_len = len;
	r.csr = der;
	r.csr_len = len;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)),
	    FC_EINVAL);
	r.csr = NULL;
	r.spki = NULL;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)),
	    FC_EINVAL);
	ck_assert_ptr_null(c);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	ca_free(ca);
}
END_TEST

START_TEST(test_request_checks)
{
	struct ca *ca = load(ec_dir), *shortca;
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	char serial[FC_CERT_SERIAL_MAX], why[256], longid[200];
	EVP_PKEY *k = keygen("P-256");
	unsigned char *der;
	size_t len;

	der = spki_of(k, &len);
	req_init(&r, serial, "dev-1");
	r.spki = der;
	r.spki_len = len;
#define REFUSED(code) do { \
	c = NULL; \
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)), code); \
	ck_assert_ptr_null(c); ck_assert_int_gt(strlen(why), 5); } while (0)
	r.device_id = "has/slash";
	REFUSED(FC_EINVAL);
	r.device_id = "";
	REFUSED(FC_EINVAL);
	memset(longid, 'a', 129);
	longid[129] = '\0';
	r.device_id = longid;
	REFUSED(FC_EINVAL);
	r.device_id = "dev-1";
	r.se_serial = "0123456789ABCDEF01";
	REFUSED(FC_EINVAL);
	r.se_serial = "9923456789abcdef01";
	REFUSED(FC_EINVAL);
	r.se_serial = SE;
	r.serial = "00aa5678901234567890123456789012";
	REFUSED(FC_EINVAL);
	r.serial = "AA345678901234567890123456789012";
	REFUSED(FC_EINVAL);
	r.serial = "1234";
	REFUSED(FC_EINVAL);
	r.serial = serial;
	r.validity_days = 366;
	REFUSED(FC_EINVAL);
	r.validity_days = -1;
	REFUSED(FC_EINVAL);
	r.validity_days = 10;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)), FC_OK);
	ck_assert_int_le(labs((long)(c->not_after - fc_now() - 10 * 86400L)),
	    60);
	ca_cert_free(c);
	ca_free(ca);

	/* A CA that ends in 30 days: a 365-day certificate fails loudly. */
	ca = shortca = load(short_dir);
	r.validity_days = 0;
	REFUSED(FC_ECONFLICT);
	ck_assert_ptr_nonnull(strstr(why, "outlive the issuing CA"));
	r.validity_days = 20;
	ck_assert_int_eq(ca_cert_issue(ca, &r, &c, why, sizeof(why)), FC_OK);
	ca_cert_free(c);
	ca_free(shortca);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_key_files)
{
	const char *d = tu_tmpdir();
	struct cfg cfg;
	struct ca *ca = NULL;
	char why[256], cmd[2048], *enc, *pass, *wrong, *pin;

	cfg_for(&cfg, ec_dir);
	enc = tu_write_str(d, "x", "");
	snprintf(cmd, sizeof(cmd), "openssl pkey -in %s/intermediate.key "
	    "-aes256 -passout pass:s3cret-passphrase -out %s", ec_dir, enc);
	ck_assert_int_eq(system(cmd), 0);
	pass = tu_write(d, "pass", "s3cret-passphrase\n", 18, 0600);
	wrong = tu_write(d, "wrong", "not-it\n", 7, 0600);
	cfg.ca_key = enc;
	/* No passphrase file: a clear error, no prompt. */
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_ECRYPTO);
	ck_assert_ptr_nonnull(strstr(why, "key_passphrase_file"));
	cfg.ca_key_passphrase_file = wrong;
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_ECRYPTO);
	ck_assert_ptr_null(strstr(why, "not-it"));
	cfg.ca_key_passphrase_file = pass;
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_OK);
	ca_free(ca);
	ca = NULL;

	/* The key of another CA. */
	cfg_for(&cfg, ec_dir);
	snprintf(cmd, sizeof(cmd), "%s/root.key", ec_dir);
	cfg.ca_key = cmd;
	ck_assert_int_ne(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_OK);
	ck_assert_ptr_nonnull(strstr(why, "does not belong"));
	/* A pkcs11 URI with a PIN is refused and not echoed. */
	cfg.ca_key = "pkcs11:token=t;object=o;pin-value=424242";
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_null(strstr(why, "424242"));
	/* A world-readable PIN file is refused. */
	pin = tu_write(d, "pin", "1234\n", 5, 0644);
	cfg.ca_key = "pkcs11:token=t;object=o";
	cfg.ca_key_pin_file = pin;
	ck_assert_int_ne(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_OK);
	ck_assert_ptr_null(strstr(why, "1234"));
	/* Not a CA certificate. */
	cfg_for(&cfg, ec_dir);
	cfg.ca_key = "/nonexistent/key.pem";
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_EIO);
	/* A CA key others can read is refused, and so is a symlink. */
	snprintf(cmd, sizeof(cmd), "cp %s/intermediate.key %s/open.key && "
	    "chmod 644 %s/open.key && ln -s %s/intermediate.key %s/link.key",
	    ec_dir, d, d, ec_dir, d);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/open.key", d);
	cfg.ca_key = cmd;
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_EPERM);
	ck_assert_ptr_nonnull(strstr(why, "accessible to others"));
	snprintf(cmd, sizeof(cmd), "%s/link.key", d);
	ck_assert_int_ne(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_OK);
	/* A bare name is a systemd credential. */
	setenv("CREDENTIALS_DIRECTORY", ec_dir, 1);
	cfg.ca_key = "intermediate.key";
	ck_assert_int_eq(ca_load(&cfg, 0, &ca, why, sizeof(why)), FC_OK);
	ca_free(ca);
	ca = NULL;
	unsetenv("CREDENTIALS_DIRECTORY");
	cfg_for(&cfg, ec_dir);
	ck_assert_int_eq(ca_load(&cfg, CA_LOAD_CERT_ONLY, &ca, why,
	    sizeof(why)), FC_OK);
	ck_assert_ptr_nonnull(strstr(ca_chain_pem(ca), "BEGIN CERTIFICATE"));
	ck_assert_int_gt(ca_not_after(ca), fc_now());
	ca_free(ca);
	free(enc);
	free(pass);
	free(wrong);
	free(pin);
}
END_TEST

static X509_CRL *
crl_build(struct ca *ca, uint64_t number, int n)
{
	struct ca_crl *crl = NULL;
	struct ca_crl_entry e;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len;
	X509_CRL *x;
	int i;

	ck_assert_int_eq(ca_crl_begin(ca, number, 48, &crl), FC_OK);
	for (i = 0; i < n; i++) {
		snprintf(e.serial, sizeof(e.serial), "%x", 0x100 + i);
		e.reason = i % 2 ? CA_REASON_KEY_COMPROMISE :
		    CA_REASON_UNSPECIFIED;
		e.revoked_at = fc_now() - i;
		ck_assert_int_eq(ca_crl_add(crl, &e), FC_OK);
	}
	snprintf(e.serial, sizeof(e.serial), "xyz");
	ck_assert_int_eq(ca_crl_add(crl, &e), FC_EINVAL);
	snprintf(e.serial, sizeof(e.serial), "12");
	e.reason = 7;
	ck_assert_int_eq(ca_crl_add(crl, &e), FC_EINVAL);
	e.reason = 1;
	e.revoked_at = 253402300800LL;
	ck_assert_int_eq(ca_crl_add(crl, &e), FC_EINVAL);
	e.revoked_at = 2524608000LL;	/* 2050: GeneralizedTime */
	ck_assert_int_eq(ca_crl_add(crl, &e), FC_OK);
	ck_assert_int_eq(ca_crl_finish(crl, &der, &len), FC_OK);
	ca_crl_free(crl);
	p = der;
	x = d2i_X509_CRL(NULL, &p, (long)len);
	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_eq(p, der + len);
	free(der);
	return x;
}

START_TEST(test_crl)
{
	struct ca *ca = load(ec_dir);
	X509 *cert;
	X509_CRL *x;
	ASN1_INTEGER *num;
	char path[600];
	int crit, i, reason;

	snprintf(path, sizeof(path), "%s/intermediate.pem", ec_dir);
	cert = pem_cert(path);
	for (i = 0; i < 3; i++) {
		int n = i == 0 ? 0 : i == 1 ? 1 : 1000;
		x = crl_build(ca, 7 + (uint64_t)i, n);
		ck_assert_int_eq(X509_CRL_verify(x, X509_get0_pubkey(cert)), 1);
		ck_assert_int_eq(X509_CRL_get_version(x), 1);
		/* No entries: the field is absent (RFC 5280 5.1.2.6). */
		ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)),
		    n + 1);
		num = X509_CRL_get_ext_d2i(x, NID_crl_number, &crit, NULL);
		ck_assert_ptr_nonnull(num);
		ck_assert_int_eq(ASN1_INTEGER_get(num), 7 + i);
		ASN1_INTEGER_free(num);
		ck_assert_int_eq(X509_NAME_cmp(X509_CRL_get_issuer(x),
		    X509_get_subject_name(cert)), 0);
		ck_assert_int_eq(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(x),
		    fc_now() + 48 * 3600 + 60), -1);
		if (n == 1000) {
			X509_REVOKED *rv = sk_X509_REVOKED_value(
			    X509_CRL_get_REVOKED(x), 1);
			ASN1_ENUMERATED *re = X509_REVOKED_get_ext_d2i(rv,
			    NID_crl_reason, &crit, NULL);
			ck_assert_ptr_nonnull(re);
			reason = (int)ASN1_ENUMERATED_get(re);
			ck_assert_int_eq(reason, CA_REASON_KEY_COMPROMISE);
			ASN1_ENUMERATED_free(re);
			ck_assert_int_eq(ASN1_INTEGER_get(
			    X509_REVOKED_get0_serialNumber(rv)), 0x101);
		}
		X509_CRL_free(x);
	}
	ck_assert_int_eq(ca_reason_parse("keyCompromise"), 1);
	ck_assert_int_eq(ca_reason_parse("nonsense"), -1);
	X509_free(cert);
	ca_free(ca);
}
END_TEST

/* Sends msg straight onto a signer socket; returns the answer status. */
static int
forged(int fd, const void *msg, size_t len)
{
	struct signer_answer_msg a;
	ssize_t n;

	ck_assert_int_eq(send(fd, msg, len, 0), (ssize_t)len);
	n = recv(fd, &a, sizeof(a), 0);
	ck_assert_int_ge(n, (ssize_t)offsetof(struct signer_answer_msg, der));
	ck_assert_uint_eq(a.h.type, SIGNER_ANSWER);
	return a.status;
}

struct serve_arg {
	int		 fd;
	struct ca	*ca;
	int		 rc;
};

static void *
serve_thread(void *arg)
{
	struct serve_arg *a = arg;

	a->rc = signer_serve(a->fd, a->ca);
	return NULL;
}

/* The worker's loop runs in a thread here, so that the sanitizers see
 * its memory too. */
START_TEST(test_signer_forged)
{
	struct ca *ca = load(ec_dir);
	struct signer_issue_msg *m = calloc(1, sizeof(*m));
	EVP_PKEY *k = keygen("P-256");
	unsigned char *der, junk[SIGNER_MSG_MAX + 100];
	size_t len, base = offsetof(struct signer_issue_msg, key);
	struct serve_arg sa;
	pthread_t th;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	sa.fd = sv[1];
	sa.ca = ca;
	sa.rc = -1;
	ck_assert_int_eq(pthread_create(&th, NULL, serve_thread, &sa), 0);
	der = spki_of(k, &len);

	memset(junk, 0x41, sizeof(junk));
	ck_assert_int_eq(forged(sv[0], junk, 3), FC_EINVAL);
	ck_assert_int_eq(forged(sv[0], junk, 100), FC_EINVAL);
	ck_assert_int_eq(forged(sv[0], junk, sizeof(junk)), FC_EINVAL);

	m->h.magic = SIGNER_MAGIC;
	m->h.type = SIGNER_ISSUE_SPKI;
	ck_assert_int_eq(ca_serial_new(m->serial), FC_OK);
	strcpy(m->device_id, "forged-1");
	strcpy(m->se_serial, SE);
	m->key_len = (uint32_t)len;
	memcpy(m->key, der, len);
	/* Length field disagreeing with the message. */
	m->h.length = (uint32_t)(base + len + 1);
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	/* key_len disagreeing with the message. */
	m->h.length = (uint32_t)(base + len);
	m->key_len = (uint32_t)len + 5;
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	m->key_len = (uint32_t)len;
	/* An unterminated device id. */
	memset(m->device_id, 'a', sizeof(m->device_id));
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	/* A syntactically invalid device id, a bad SE serial. */
	strcpy(m->device_id, "../../etc/passwd");
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	strcpy(m->device_id, "forged-1");
	strcpy(m->se_serial, "0123456789abcdefXY");
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	strcpy(m->se_serial, SE);
	/* Validity over the ceiling. */
	m->validity_days = 100000;
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	m->validity_days = 0;
	/* Unknown type. */
	m->h.type = 77;
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_EINVAL);
	/* A CRL finish without a begin. */
	{
		struct signer_hdr f = { SIGNER_MAGIC, SIGNER_CRL_FINISH,
		    sizeof(f), 9 };
		ck_assert_int_eq(forged(sv[0], &f, sizeof(f)), FC_EINVAL);
	}
	/* CRL messages: a BEGIN of the wrong size, entries with a count that
	 * disagrees with the message, an unterminated serial. */
	{
		struct signer_crl_begin_msg b = { { SIGNER_MAGIC,
		    SIGNER_CRL_BEGIN, sizeof(b), 10 }, 5 };
		struct signer_crl_entries_msg *en = calloc(1, sizeof(*en));
		struct signer_hdr f = { SIGNER_MAGIC, SIGNER_CRL_FINISH,
		    sizeof(f), 11 };
		struct signer_answer_msg a;
		unsigned char chunk[SIGNER_MSG_MAX];
		size_t elen = offsetof(struct signer_crl_entries_msg, e) +
		    sizeof(en->e[0]);

		b.h.length = sizeof(b) + 1;
		ck_assert_int_eq(forged(sv[0], &b, sizeof(b)), FC_EINVAL);
		ck_assert_int_eq(forged(sv[0], &f, sizeof(f)), FC_EINVAL);
		b.h.length = sizeof(b);
		en->h.magic = SIGNER_MAGIC;
		en->h.type = SIGNER_CRL_ENTRIES;
		en->h.length = (uint32_t)elen;
		en->count = 2;
		strcpy(en->e[0].serial, "abcdef");
		ck_assert_int_eq(send(sv[0], &b, sizeof(b), 0), sizeof(b));
		ck_assert_int_eq(send(sv[0], en, elen, 0), (ssize_t)elen);
		ck_assert_int_eq(forged(sv[0], &f, sizeof(f)), FC_EINVAL);
		en->count = 1;
		memset(en->e[0].serial, '1', sizeof(en->e[0].serial));
		b.number = 6;
		ck_assert_int_eq(send(sv[0], &b, sizeof(b), 0), sizeof(b));
		ck_assert_int_eq(send(sv[0], en, elen, 0), (ssize_t)elen);
		ck_assert_int_eq(forged(sv[0], &f, sizeof(f)), FC_EINVAL);
		/* A good one: answer, then the DER in DATA messages. */
		strcpy(en->e[0].serial, "abcdef");
		b.number = 7;
		ck_assert_int_eq(send(sv[0], &b, sizeof(b), 0), sizeof(b));
		ck_assert_int_eq(send(sv[0], en, elen, 0), (ssize_t)elen);
		ck_assert_int_eq(send(sv[0], &f, sizeof(f), 0), sizeof(f));
		ck_assert_int_gt(recv(sv[0], &a, sizeof(a), 0), 0);
		ck_assert_int_eq(a.status, FC_OK);
		ck_assert_int_gt(a.total, 100);
		ck_assert_int_eq(recv(sv[0], chunk, sizeof(chunk), 0),
		    (ssize_t)(sizeof(struct signer_hdr) + a.total));
		/* CRL numbers only go up. */
		ck_assert_int_eq(send(sv[0], &b, sizeof(b), 0), sizeof(b));
		ck_assert_int_eq(forged(sv[0], &f, sizeof(f)), FC_EINVAL);
		free(en);
	}
	/* And the signer still serves a well-formed request. */
	m->h.type = SIGNER_ISSUE_SPKI;
	ck_assert_int_eq(forged(sv[0], m, base + len), FC_OK);

	close(sv[0]);
	pthread_join(th, NULL);
	close(sv[1]);
	ck_assert_int_eq(sa.rc, 0);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	free(m);
	ca_free(ca);
}
END_TEST

struct thr {
	unsigned char	*spki;
	size_t		 len;
	int		 ok;
};

static void *
issue_many(void *arg)
{
	struct thr *t = arg;
	struct ca_issue_req r;
	struct ca_cert *c;
	char serial[FC_CERT_SERIAL_MAX], why[256];
	int i;

	for (i = 0; i < 50; i++) {
		memset(&r, 0, sizeof(r));
		ca_serial_new(serial);
		r.serial = serial;
		r.device_id = "dev-thread";
		r.se_serial = SE;
		r.spki = t->spki;
		r.spki_len = t->len;
		c = NULL;
		if (signer_issue(&r, &c, why, sizeof(why)) == FC_OK &&
		    strcmp(c->serial, serial) == 0)
			t->ok++;
		ca_cert_free(c);
	}
	return NULL;
}

START_TEST(test_signer_process)
{
	struct cfg cfg;
	struct signer_status st;
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	struct thr t[4];
	pthread_t th[4];
	char serial[FC_CERT_SERIAL_MAX], why[256];
	EVP_PKEY *k = keygen("P-256");
	unsigned char *der, *big;
	size_t len;
	pid_t old;
	enum fc_err e = FC_EIO;
	int i;

	cfg_for(&cfg, ec_dir);
	ck_assert_int_eq(signer_start(&cfg, why, sizeof(why)), FC_OK);
	ck_assert_int_eq(signer_health(&st), 1);
	ck_assert_int_gt(st.worker_pid, 0);
	der = spki_of(k, &len);
	req_init(&r, serial, "dev-signer");
	r.spki = der;
	r.spki_len = len;
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_OK);
	check_profile(c, ec_dir, "dev-signer", k);
	ca_cert_free(c);
	c = NULL;
	/* A refusal crosses the socket with its reason. */
	r.device_id = "bad id";
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "device id"));
	r.device_id = "dev-signer";
	/* The 64 KiB blob never reaches the signer. */
	big = calloc(1, 65536);
	r.spki = NULL;
	r.csr = big;
	r.csr_len = 65536;
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "larger than"));
	free(big);
	r.csr = NULL;
	r.spki = der;

	/* Four threads at once. */
	for (i = 0; i < 4; i++) {
		t[i].spki = der;
		t[i].len = len;
		t[i].ok = 0;
		ck_assert_int_eq(pthread_create(&th[i], NULL, issue_many,
		    &t[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(t[i].ok, 50);
	}

	/* The worker dies: the request fails cleanly, health says why, and
	 * a new worker answers after the back-off. */
	signer_health(&st);
	old = st.worker_pid;
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	usleep(100000);
	ck_assert_int_eq(ca_serial_new(serial), FC_OK);
	e = signer_issue(&r, &c, why, sizeof(why));
	ck_assert(e == FC_EIO || e == FC_EBUSY);
	ck_assert_int_eq(signer_health(&st), 0);
	ck_assert_int_gt(strlen(st.reason), 0);
	for (i = 0; i < 100 && e != FC_OK; i++) {
		usleep(100000);
		e = signer_issue(&r, &c, why, sizeof(why));
	}
	ck_assert_int_eq(e, FC_OK);
	ca_cert_free(c);
	ck_assert_int_eq(signer_health(&st), 1);
	ck_assert_int_eq(st.restarts, 1);
	ck_assert_int_ne(st.worker_pid, old);

	/* Polling the health alone notices a dead worker, then the new one
	 * (after the back-off, now 2 s). */
	old = st.worker_pid;
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	for (i = 0; i < 50 && signer_health(&st); i++)
		usleep(100000);
	ck_assert_int_eq(st.up, 0);
	ck_assert_str_eq(st.reason, "signer worker exited");
	for (i = 0; i < 100 && !signer_health(&st); i++)
		usleep(100000);
	ck_assert_int_eq(st.up, 1);
	ck_assert_int_eq(st.restarts, 2);
	ck_assert_int_ne(st.worker_pid, old);
	ck_assert_int_eq(ca_serial_new(serial), FC_OK);
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_OK);
	ca_cert_free(c);
	c = NULL;
	signer_stop();
	ck_assert_int_eq(signer_health(&st), 0);
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_EIO);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}
END_TEST

/* A worker that hangs (a stuck HSM call): the request times out with
 * FC_EIO, the supervisor ends the worker and starts a new one. */
START_TEST(test_signer_hang)
{
	struct cfg cfg;
	struct signer_status st;
	struct ca_issue_req r;
	struct ca_cert *c = NULL;
	char serial[FC_CERT_SERIAL_MAX], why[256];
	EVP_PKEY *k = keygen("P-256");
	unsigned char *der;
	size_t len;
	pid_t old;
	enum fc_err e;
	int i;

	cfg_for(&cfg, ec_dir);
	ck_assert_int_eq(signer_start(&cfg, why, sizeof(why)), FC_OK);
	der = spki_of(k, &len);
	req_init(&r, serial, "dev-hang");
	r.spki = der;
	r.spki_len = len;
	signer_health(&st);
	old = st.worker_pid;
	ck_assert_int_eq(kill(old, SIGSTOP), 0);
	ck_assert_int_eq(signer_issue(&r, &c, why, sizeof(why)), FC_EIO);
	ck_assert_int_eq(signer_health(&st), 0);
	ck_assert_str_eq(st.reason, "signer worker timed out");
	e = FC_EIO;
	for (i = 0; i < 100 && e != FC_OK; i++) {
		usleep(100000);
		e = signer_issue(&r, &c, why, sizeof(why));
	}
	ck_assert_int_eq(e, FC_OK);
	ca_cert_free(c);
	ck_assert_int_eq(signer_health(&st), 1);
	ck_assert_int_ne(st.worker_pid, old);
	ck_assert_int_eq(kill(old, 0), -1);	/* gone */
	signer_stop();
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}
END_TEST

struct gen {
	int	n, i;
	int	fail_at;
};

static int
gen_next(void *arg, struct ca_crl_entry *e)
{
	struct gen *g = arg;

	if (g->i == g->fail_at)
		return -1;
	if (g->i >= g->n)
		return 0;
	snprintf(e->serial, sizeof(e->serial), "%032x", 0x5000 + g->i);
	e->reason = CA_REASON_SUPERSEDED;
	e->revoked_at = fc_now();
	g->i++;
	return 1;
}

START_TEST(test_signer_crl)
{
	struct cfg cfg;
	struct gen g = { 3000, 0, -1 };
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len;
	char why[256];
	X509_CRL *x;

	cfg_for(&cfg, ec_dir);
	ck_assert_int_eq(signer_start(&cfg, why, sizeof(why)), FC_OK);
	ck_assert_int_eq(signer_crl(5, gen_next, &g, &der, &len, why,
	    sizeof(why)), FC_OK);
	p = der;
	x = d2i_X509_CRL(NULL, &p, (long)len);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 3000);
	X509_CRL_free(x);
	free(der);
	/* The number must increase. */
	g.i = 0;
	ck_assert_int_eq(signer_crl(5, gen_next, &g, &der, &len, why,
	    sizeof(why)), FC_EINVAL);
	/* A failing source abandons the CRL; the next one works. */
	g.i = 0;
	g.fail_at = 700;
	ck_assert_int_eq(signer_crl(6, gen_next, &g, &der, &len, why,
	    sizeof(why)), FC_EIO);
	g.i = 0;
	g.fail_at = -1;
	g.n = 0;
	ck_assert_int_eq(signer_crl(7, gen_next, &g, &der, &len, why,
	    sizeof(why)), FC_OK);
	free(der);
	signer_stop();
}
END_TEST

START_TEST(test_serials)
{
	char a[FC_CERT_SERIAL_MAX], b[FC_CERT_SERIAL_MAX];
	int i;

	struct timespec ts;
	unsigned long long ms, got;
	int same_ms = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(ca_serial_new(a), FC_OK);
		ck_assert(ca_serial_valid(a));
		ck_assert_int_eq(ca_serial_new(b), FC_OK);
		ck_assert_str_ne(a, b);
		/* 48-bit milliseconds first: b is never older than a. */
		ck_assert_int_le(strncmp(a, b, 12), 0);
		if (strncmp(a, b, 12) == 0) {
			/* The 80 bits after the time are random. */
			ck_assert_str_ne(a + 12, b + 12);
			same_ms++;
		}
	}
	ck_assert_int_gt(same_ms, 0);
	got = strtoull((char[13]){ a[0], a[1], a[2], a[3], a[4], a[5], a[6],
	    a[7], a[8], a[9], a[10], a[11], '\0' }, NULL, 16);
	ck_assert(got >= ms && got < ms + 60000);
	ck_assert(!ca_serial_valid("00112233445566778899aabbccddeeff"));
	ck_assert(!ca_serial_valid("0112233445566778899aabbccddeeff"));
	ck_assert(!ca_serial_valid(NULL));
}
END_TEST

static void
mkca(char *dir, size_t len, const char *base, const char *name,
    const char *kind, const char *days)
{
	char cmd[2048];
	const char *src = getenv("top_srcdir");

	snprintf(dir, len, "%s/%s", base, name);
	snprintf(cmd, sizeof(cmd), "sh %s/tests/mkca.sh %s %s %s",
	    src ? src : "..", dir, kind, days);
	if (system(cmd) != 0) {
		fprintf(stderr, "mkca.sh failed\n");
		exit(1);
	}
}

int
main(void)
{
	Suite *s = suite_create("ca");
	TCase *tc = tcase_create("ca");
	SRunner *sr;
	const char *base;
	int failed;

	log_init("check_ca", getenv("FC_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	base = tu_tmpdir();
	mkca(ec_dir, sizeof(ec_dir), base, "ec", "ec", "3650");
	mkca(rsa_dir, sizeof(rsa_dir), base, "rsa", "rsa", "3650");
	mkca(short_dir, sizeof(short_dir), base, "short", "ec", "30");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_serials);
	tcase_add_test(tc, test_issue_ec_ca);
	tcase_add_test(tc, test_issue_rsa_ca);
	tcase_add_test(tc, test_csr_refused);
	tcase_add_test(tc, test_spki_refused);
	tcase_add_test(tc, test_mutations);
	tcase_add_test(tc, test_request_checks);
	tcase_add_test(tc, test_key_files);
	tcase_add_test(tc, test_crl);
	tcase_add_test(tc, test_signer_forged);
	tcase_add_test(tc, test_signer_process);
	tcase_add_test(tc, test_signer_crl);
	tcase_add_test(tc, test_signer_hang);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
