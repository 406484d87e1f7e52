/*
 * ca.c — the issuing CA: loads the intermediate's certificate, chain and
 * private key (PEM, or PKCS#11 through libp11's "pkcs11" engine), signs
 * with it, makes serials and writes CRL files.
 * Runs in the signer process (key) and in the main process (certificate
 * only, serials, CRL files); tests use it in process. Touches the files
 * named in [ca] and, for PKCS#11, the token.
 */
#define OPENSSL_API_COMPAT 10101	/* ENGINE and EC_KEY: libp11 needs them */
#include "fc_build.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ui.h>
#include <openssl/x509v3.h>

#include "ca_priv.h"
#include "config.h"
#include "log.h"

#define CA_FILE_MAX	(1024 * 1024)

static const unsigned char alg_ecdsa_sha256[] = {
	0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02
};
static const unsigned char alg_rsa_sha256[] = {
	0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
	0x0b, 0x05, 0x00
};

/* Writes a reason for the caller and logs it once. */
static void
say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
say(char *why, size_t whylen, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	log_error("ca: %s", buf);
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", buf);
}

int
ca_digest(const EVP_MD *md, const void *data, size_t len, unsigned char *out,
    unsigned *outlen)
{
	return EVP_Digest(data, len, out, outlen, md, NULL) == 1 ? 0 : -1;
}

time_t
ca_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

/* Passphrase callback for encrypted PEM keys: never prompts. */
static int
pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	size_t n;

	(void)rwflag;
	if (pass == NULL)
		return -1;
	n = strlen(pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pass, n);
	return (int)n;
}

static enum fc_err
load_pem_key(struct ca *ca, const struct cfg *cfg, char *why, size_t whylen)
{
	char *pem = NULL, *pass = NULL;
	size_t pem_len = 0, pass_len = 0;
	BIO *bio = NULL;
	char err[256];
	enum fc_err result;

	if (cfg->ca_key_passphrase_file != NULL &&
	    cfg->ca_key_passphrase_file[0] != '\0') {
		result = cfg_secret_read(cfg->ca_key_passphrase_file, &pass,
		    &pass_len, err, sizeof(err));
		if (result != FC_OK) {
			say(why, whylen, "key passphrase: %s", err);
			goto out;
		}
	}
	/* The key is a secret like the others: not readable by others, and
	 * a bare name is a systemd credential (LoadCredential=). */
	result = cfg_secret_read(cfg->ca_key, &pem, &pem_len, err,
	    sizeof(err));
	if (result != FC_OK) {
		say(why, whylen, "key: %s", err);
		goto out;
	}
	result = FC_ECRYPTO;
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	ca->key = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, pass);
	if (ca->key == NULL) {
		say(why, whylen, "key %s: not a PEM private key, or encrypted "
		    "and key_passphrase_file is missing or wrong", cfg->ca_key);
		goto out;
	}
	result = FC_OK;
out:
	BIO_free(bio);
	fc_secret_free(pem, pem_len + 1);
	fc_secret_free(pass, pass_len + 1);
	return result;
}

/* Percent-decodes src (RFC 3986) into a new string; NULL on bad input. */
static char *
pct_decode(const char *src, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (src[i] == '%') {
			unsigned v;
			if (i + 2 >= len || !isxdigit((unsigned char)src[i + 1]) ||
			    !isxdigit((unsigned char)src[i + 2]) ||
			    sscanf(src + i + 1, "%2x", &v) != 1 || v == 0) {
				free(out);
				return NULL;
			}
			*o++ = (char)v;
			i += 2;
		} else
			*o++ = src[i];
	}
	*o = '\0';
	return out;
}

/*
 * Splits a pkcs11: URI into the URI given to libp11 (without a query) and
 * the module path from the "module-path" query attribute (RFC 7512 2.3).
 * Refuses a URI that carries a PIN. The URI is never echoed in messages:
 * a mistaken one could still hold a secret.
 */
static enum fc_err
split_uri(const char *uri, char **path_part, char **module, char *why,
    size_t whylen)
{
	const char *q;
	char *p = NULL, *m = NULL;

	if (strcasestr(uri, "pin-value") != NULL ||
	    strcasestr(uri, "pin-source") != NULL) {
		say(why, whylen, "key: the pkcs11 URI must not carry a PIN; "
		    "use key_pin_file");
		return FC_EINVAL;
	}
	q = strchr(uri, '?');
	p = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
	if (p == NULL)
		return FC_ENOMEM;
	while (q != NULL && *q != '\0') {
		const char *attr = q + 1, *end = strchr(attr, '&');
		size_t alen = end ? (size_t)(end - attr) : strlen(attr);
		if (alen > 12 && strncmp(attr, "module-path=", 12) == 0) {
			free(m);
			m = pct_decode(attr + 12, alen - 12);
			if (m == NULL) {
				free(p);
				say(why, whylen, "key: bad module-path in the "
				    "pkcs11 URI");
				return FC_EINVAL;
			}
		}
		q = end;
	}
	*path_part = p;
	*module = m;
	return FC_OK;
}

/* The cause of a failed PKCS#11 key load, from the error queue's reason
 * strings only (their data strings may echo the URI). */
static const char *
pkcs11_cause(void)
{
	const char *cause = "token or key object missing, or the PIN "
	    "(key_pin_file) is wrong";
	const char *r;
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		r = ERR_reason_error_string(e);
		if (r == NULL)
			continue;
		if (strstr(r, "PIN") != NULL) {
			cause = "the PIN (key_pin_file) is wrong, locked or "
			    "expired";
			break;
		}
		if (strstr(r, "not found") != NULL)
			cause = "token or key object not found";
	}
	ERR_clear_error();
	return cause;
}

static enum fc_err
load_pkcs11_key(struct ca *ca, const struct cfg *cfg, char *why,
    size_t whylen)
{
	char *uri = NULL, *module = NULL, *pin = NULL;
	size_t pin_len = 0;
	char err[256];
	enum fc_err result;

	result = split_uri(cfg->ca_key, &uri, &module, why, whylen);
	if (result != FC_OK)
		goto out;
	if (cfg->ca_key_pin_file != NULL && cfg->ca_key_pin_file[0] != '\0') {
		result = cfg_secret_read(cfg->ca_key_pin_file, &pin, &pin_len,
		    err, sizeof(err));
		if (result != FC_OK) {
			say(why, whylen, "key PIN: %s", err);
			goto out;
		}
	}
	if (module != NULL && access(module, R_OK) != 0) {
		say(why, whylen, "key: PKCS#11 module %s: %s", module,
		    strerror(errno));
		result = FC_EIO;
		goto out;
	}
	result = FC_ECRYPTO;
	ca->engine = ENGINE_by_id("pkcs11");
	if (ca->engine == NULL) {
		say(why, whylen, "key: OpenSSL engine \"pkcs11\" not found "
		    "(install libengine-pkcs11-openssl)");
		goto out;
	}
	if (module != NULL &&
	    !ENGINE_ctrl_cmd_string(ca->engine, "MODULE_PATH", module, 0)) {
		say(why, whylen, "key: PKCS#11 module %s refused", module);
		goto out;
	}
	/* The PIN goes through the engine's control, never the URI, so
	 * that no OpenSSL or libp11 message can echo it. */
	if (pin != NULL && !ENGINE_ctrl_cmd_string(ca->engine, "PIN", pin, 0)) {
		say(why, whylen, "key: the pkcs11 engine refused the PIN "
		    "control");
		goto out;
	}
	if (!ENGINE_init(ca->engine)) {
		say(why, whylen, "key: cannot initialise the PKCS#11 module%s%s",
		    module ? " " : "", module ? module : "");
		ENGINE_free(ca->engine);
		ca->engine = NULL;
		goto out;
	}
	ca->key = ENGINE_load_private_key(ca->engine, uri,
	    (UI_METHOD *)UI_null(), NULL);
	if (ca->key == NULL) {
		say(why, whylen, "key: PKCS#11 key not available: %s",
		    pkcs11_cause());
		goto out;
	}
	result = FC_OK;
out:
	free(uri);
	free(module);
	fc_secret_free(pin, pin_len + 1);
	return result;
}

static enum fc_err
load_cert(struct ca *ca, const struct cfg *cfg, char *why, size_t whylen)
{
	char *pem = NULL, *chain = NULL;
	size_t pem_len = 0, chain_len = 0;
	BIO *bio = NULL;
	const ASN1_OCTET_STRING *ski;
	const ASN1_BIT_STRING *pub;
	unsigned char *p;
	unsigned int n;
	uint32_t ku;
	int len;
	enum fc_err result;

	result = fc_file_read(cfg->ca_certificate, CA_FILE_MAX, &pem, &pem_len);
	if (result != FC_OK) {
		say(why, whylen, "certificate %s: cannot read",
		    cfg->ca_certificate);
		goto out;
	}
	result = FC_ECRYPTO;
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL)
		goto out;
	ca->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (ca->cert == NULL) {
		say(why, whylen, "certificate %s: not a PEM certificate",
		    cfg->ca_certificate);
		goto out;
	}
	ku = X509_get_key_usage(ca->cert);
	if (X509_check_ca(ca->cert) < 1 ||
	    (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) !=
	    (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
		say(why, whylen, "certificate %s: not a CA certificate with "
		    "keyCertSign and cRLSign", cfg->ca_certificate);
		goto out;
	}
	ca->not_before = ca_asn1_time(X509_get0_notBefore(ca->cert));
	ca->not_after = ca_asn1_time(X509_get0_notAfter(ca->cert));
	if (ca->not_after == (time_t)-1 || ca->not_before == (time_t)-1) {
		say(why, whylen, "certificate %s: bad validity",
		    cfg->ca_certificate);
		goto out;
	}
	if (ca->not_after <= fc_now())
		log_warn("ca: certificate %s expired: nothing can be issued",
		    cfg->ca_certificate);

	/* The subject, kept as encoded: issuer of all we sign. */
	len = i2d_X509_NAME(X509_get_subject_name(ca->cert), NULL);
	if (len <= 0)
		goto out;
	ca->subject_der = malloc((size_t)len);
	if (ca->subject_der == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	p = ca->subject_der;
	i2d_X509_NAME(X509_get_subject_name(ca->cert), &p);
	ca->subject_len = (size_t)len;

	/* RFC 5280 4.2.1.1: our AKI is the CA's SKI (or method 1). */
	ski = X509_get0_subject_key_id(ca->cert);
	if (ski != NULL && ski->length > 0 &&
	    (size_t)ski->length <= sizeof(ca->key_id)) {
		memcpy(ca->key_id, ski->data, (size_t)ski->length);
		ca->key_id_len = (size_t)ski->length;
	} else {
		pub = X509_get0_pubkey_bitstr(ca->cert);
		if (pub == NULL || ca_digest(ca->sha1, pub->data,
		    (size_t)pub->length, ca->key_id, &n) != 0)
			goto out;
		ca->key_id_len = n;
	}

	/* The chain handed to devices: the file as given, if it parses. */
	if (cfg->ca_chain != NULL && cfg->ca_chain[0] != '\0') {
		X509 *x;
		BIO *cb;
		result = fc_file_read(cfg->ca_chain, CA_FILE_MAX, &chain,
		    &chain_len);
		if (result != FC_OK) {
			say(why, whylen, "chain %s: cannot read", cfg->ca_chain);
			goto out;
		}
		result = FC_ECRYPTO;
		cb = BIO_new_mem_buf(chain, (int)chain_len);
		x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
		BIO_free(cb);
		if (x == NULL) {
			say(why, whylen, "chain %s: no PEM certificate",
			    cfg->ca_chain);
			goto out;
		}
		X509_free(x);
		ca->chain_pem = chain;
		chain = NULL;
	} else {
		ca->chain_pem = pem;
		pem = NULL;
	}
	result = FC_OK;
out:
	BIO_free(bio);
	free(pem);
	free(chain);
	return result;
}

/* Prepares the reusable signing context and checks, by signing and
 * verifying a test digest, that the key belongs to the certificate. */
static enum fc_err
prepare_key(struct ca *ca, char *why, size_t whylen)
{
	static const unsigned char probe[32] = "fleetcert key/certificate probe";
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_PKEY_CTX *vctx = NULL;
	EVP_PKEY *pub;
	int type = EVP_PKEY_get_base_id(ca->key);
	enum fc_err result = FC_ECRYPTO;

	if (type == EVP_PKEY_EC) {
		memcpy(ca->sigalg, alg_ecdsa_sha256, sizeof(alg_ecdsa_sha256));
		ca->sigalg_len = sizeof(alg_ecdsa_sha256);
	} else if (type == EVP_PKEY_RSA && EVP_PKEY_get_bits(ca->key) >= 2048) {
		memcpy(ca->sigalg, alg_rsa_sha256, sizeof(alg_rsa_sha256));
		ca->sigalg_len = sizeof(alg_rsa_sha256);
	} else {
		say(why, whylen, "key: only EC and RSA (>= 2048 bits) CA keys "
		    "are supported");
		goto out;
	}
	ca->sig_max = (size_t)EVP_PKEY_get_size(ca->key);
	if (ca->sig_max == 0 || ca->sig_max > sizeof(sig)) {
		say(why, whylen, "key: unsupported signature size");
		goto out;
	}
	ca->sign_ctx = EVP_PKEY_CTX_new(ca->key, ca->engine);
	if (ca->sign_ctx == NULL || EVP_PKEY_sign_init(ca->sign_ctx) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(ca->sign_ctx, ca->sha256) <= 0 ||
	    (type == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_padding(ca->sign_ctx,
	    RSA_PKCS1_PADDING) <= 0)) {
		say(why, whylen, "key: cannot set up signing");
		goto out;
	}
	if (EVP_PKEY_sign(ca->sign_ctx, sig, &siglen, probe,
	    sizeof(probe)) <= 0) {
		say(why, whylen, "key: test signature failed (token session "
		    "or key unusable)");
		goto out;
	}
	pub = X509_get0_pubkey(ca->cert);
	vctx = pub ? EVP_PKEY_CTX_new(pub, NULL) : NULL;
	if (vctx == NULL || EVP_PKEY_verify_init(vctx) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(vctx, ca->sha256) <= 0 ||
	    (type == EVP_PKEY_RSA && EVP_PKEY_CTX_set_rsa_padding(vctx,
	    RSA_PKCS1_PADDING) <= 0) ||
	    EVP_PKEY_verify(vctx, sig, siglen, probe, sizeof(probe)) != 1) {
		say(why, whylen, "key does not belong to the CA certificate");
		goto out;
	}
	result = FC_OK;
out:
	EVP_PKEY_CTX_free(vctx);
	return result;
}

enum fc_err
ca_load(const struct cfg *cfg, int flags, struct ca **out, char *why,
    size_t whylen)
{
	static const int nids[CA_NCURVES] = { NID_X9_62_prime256v1,
	    NID_secp384r1 };
	struct ca *ca = NULL;
	enum fc_err result = FC_ENOMEM;
	int i;

	if (cfg->ca_certificate == NULL || (!(flags & CA_LOAD_CERT_ONLY) &&
	    cfg->ca_key == NULL)) {
		say(why, whylen, "[ca] certificate and key must be set");
		return FC_EINVAL;
	}
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return FC_ENOMEM;
	ca->validity_days = cfg->validity_days;
	ca->crl_validity_hours = cfg->crl_validity_hours;
	ca->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	ca->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	ca->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
	if (ca->sha1 == NULL || ca->sha256 == NULL || ca->sha384 == NULL)
		goto out;
	for (i = 0; i < CA_NCURVES; i++) {
		EC_KEY *k;
		ca->group[i] = EC_GROUP_new_by_curve_name(nids[i]);
		ca->point[i] = ca->group[i] ? EC_POINT_new(ca->group[i]) : NULL;
		k = EC_KEY_new_by_curve_name(nids[i]);
		ca->vkey[i] = k;
		if (ca->point[i] == NULL || k == NULL)
			goto out;
	}
	result = load_cert(ca, cfg, why, whylen);
	if (result != FC_OK)
		goto out;
	if (!(flags & CA_LOAD_CERT_ONLY)) {
		if (strncmp(cfg->ca_key, "pkcs11:", 7) == 0)
			result = load_pkcs11_key(ca, cfg, why, whylen);
		else
			result = load_pem_key(ca, cfg, why, whylen);
		if (result != FC_OK)
			goto out;
		result = prepare_key(ca, why, whylen);
		if (result != FC_OK)
			goto out;
	}
	*out = ca;
	ca = NULL;
	result = FC_OK;
out:
	ca_free(ca);
	return result;
}

void
ca_free(struct ca *ca)
{
	int i;

	if (ca == NULL)
		return;
	/* Key and context before the engine; then finish and free the
	 * engine ourselves: libp11 with SoftHSM2 crashes when this is left
	 * to OpenSSL's exit handlers. */
	EVP_PKEY_CTX_free(ca->sign_ctx);
	EVP_PKEY_free(ca->key);
	if (ca->engine != NULL) {
		ENGINE_finish(ca->engine);
		ENGINE_free(ca->engine);
	}
	X509_free(ca->cert);
	free(ca->chain_pem);
	free(ca->subject_der);
	EVP_MD_free(ca->sha1);
	EVP_MD_free(ca->sha256);
	EVP_MD_free(ca->sha384);
	for (i = 0; i < CA_NCURVES; i++) {
		EC_POINT_free(ca->point[i]);
		EC_GROUP_free(ca->group[i]);
		EC_KEY_free(ca->vkey[i]);
	}
	free(ca);
}

time_t
ca_not_after(const struct ca *ca)
{
	return ca->not_after;
}

const char *
ca_chain_pem(const struct ca *ca)
{
	return ca->chain_pem;
}

int
ca_validity_days(const struct ca *ca)
{
	return ca->validity_days;
}

int
ca_crl_validity_hours(const struct ca *ca)
{
	return ca->crl_validity_hours;
}

const unsigned char *
ca_subject_der(const struct ca *ca, size_t *len)
{
	*len = ca->subject_len;
	return ca->subject_der;
}

const unsigned char *
ca_key_id(const struct ca *ca, size_t *len)
{
	*len = ca->key_id_len;
	return ca->key_id;
}

const unsigned char *
ca_sigalg_der(const struct ca *ca, size_t *len)
{
	*len = ca->sigalg_len;
	return ca->sigalg;
}

enum fc_err
ca_sign_append(struct ca *ca, const unsigned char *tbs, size_t tbs_len,
    struct der_buf *out)
{
	unsigned char dgst[EVP_MAX_MD_SIZE], sig[1 + 1024];
	size_t siglen = sizeof(sig) - 1;
	unsigned dlen;

	if (ca->sign_ctx == NULL) {
		log_error("ca: no key loaded in this process");
		return FC_EINTERNAL;
	}
	if (ca_digest(ca->sha256, tbs, tbs_len, dgst, &dlen) != 0 ||
	    EVP_PKEY_sign(ca->sign_ctx, sig + 1, &siglen, dgst, dlen) <= 0) {
		log_openssl("ca: signing failed");
		return FC_ECRYPTO;
	}
	sig[0] = 0;	/* BIT STRING: no unused bits */
	der_put(out, ca->sigalg, ca->sigalg_len);
	der_tlv(out, DER_BITSTRING, sig, siglen + 1);
	return out->err ? FC_ENOMEM : FC_OK;
}

enum fc_err
ca_serial_new(char out[FC_CERT_SERIAL_MAX])
{
	unsigned char r[CA_SERIAL_HEX_LEN / 2];
	struct timespec ts;
	uint64_t ms;
	int i;

	/*
	 * 48 bits of Unix milliseconds, then 80 bits from the CSPRNG (the
	 * layout of a UUIDv7). The random part is more than the 64 bits the
	 * CA/Browser Forum asks for; the time part makes serials of new
	 * certificates ascend, so the indexes keyed by serial (certificates,
	 * deliveries, audit) grow at their right edge instead of writing a
	 * random page of a million-row index per renewal. It tells nothing
	 * notBefore does not. The first octet is 0x01 until the year 2039
	 * and never zero after.
	 */
	if (RAND_bytes(r + 6, sizeof(r) - 6) != 1) {
		log_openssl("ca: RAND_bytes");
		return FC_ECRYPTO;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (i = 5; i >= 0; i--, ms >>= 8)
		r[i] = (unsigned char)(ms & 0xff);
	if (r[0] == 0)		/* a clock before 2004 */
		r[0] = 0x01;
	fc_hex(r, sizeof(r), out, 0);
	return FC_OK;
}

int
ca_serial_valid(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != CA_SERIAL_HEX_LEN)
		return 0;
	for (i = 0; i < CA_SERIAL_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return !(s[0] == '0' && s[1] == '0');
}
