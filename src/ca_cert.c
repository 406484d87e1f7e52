/*
 * ca_cert.c — device certificates: checks a request, takes the subject key
 * from an SPKI (same-key renewal) or a verified CSR, and encodes and signs
 * the profile of issue 3 (RFC 5280 4.1, 4.2).
 * Also ca_cert_fill (any process: fields of a DER certificate).
 * Runs in the signer process (and in tests, in process). The TBS is
 * written directly as DER and EC keys are never decoded into an EVP_PKEY:
 * OpenSSL 3's encoder/decoder layer costs several signatures per
 * certificate (shared/performance-ceilings.md).
 */
#define OPENSSL_API_COMPAT 10101	/* EC_KEY/ECDSA_verify: no decoders */
#include "fc_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ca_priv.h"
#include "log.h"

/* SubjectPublicKeyInfo prefixes of named-curve, uncompressed EC keys. */
static const unsigned char spki_p256[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
	0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
	0x42, 0x00, 0x04
};
static const unsigned char spki_p384[] = {
	0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
	0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00, 0x04
};
static const struct {
	const unsigned char	*prefix;
	size_t			 prefix_len;
	size_t			 point_len;
} curves[CA_NCURVES] = {
	{ spki_p256, sizeof(spki_p256), 65 },
	{ spki_p384, sizeof(spki_p384), 97 },
};
static const unsigned char oid_ecdsa_sha256[] = {
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02
};
static const unsigned char oid_ecdsa_sha384[] = {
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03
};

/* Extensions that are the same in every device certificate. */
static const unsigned char ext_fixed[] = {
	/* basicConstraints, critical: CA:FALSE (an empty SEQUENCE) */
	0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02,
	0x30, 0x00,
	/* keyUsage, critical: digitalSignature */
	0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04,
	0x03, 0x02, 0x07, 0x80,
	/* extendedKeyUsage: clientAuth */
	0x30, 0x13, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x0c, 0x30, 0x0a, 0x06,
	0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
};
static const unsigned char oid_cn[] = { 0x55, 0x04, 0x03 };
static const unsigned char oid_ski[] = { 0x55, 0x1d, 0x0e };
static const unsigned char oid_aki[] = { 0x55, 0x1d, 0x23 };
static const unsigned char oid_san[] = { 0x55, 0x1d, 0x11 };

#define SAN_PREFIX	"urn:fleetcert:se:"

/* The subject key of a request, checked. */
struct subject_key {
	const unsigned char	*spki;		/* canonical DER SPKI */
	size_t			 spki_len;
	const unsigned char	*pub;		/* subjectPublicKey bits */
	size_t			 pub_len;
	int			 curve;		/* CA_CURVE_*, or -1 */
	unsigned char		*owned;		/* re-encoded SPKI */
};

static enum fc_err
refuse(char *why, size_t whylen, const char *dev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum fc_err
refuse(char *why, size_t whylen, const char *dev, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ERR_clear_error();
	log_warn("device %s: certificate refused: %s",
	    dev && fc_device_id_valid(dev) ? dev : "(invalid id)", buf);
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", buf);
	return FC_EINVAL;
}

/* Finds the BIT STRING value of a canonical SPKI. */
static int
spki_bits(const unsigned char *spki, size_t len, const unsigned char **pub,
    size_t *pub_len)
{
	struct der_rd r = { spki, len }, seq, alg, bits;

	if (der_get(&r, DER_SEQUENCE, &seq, NULL) != 0 || r.len != 0 ||
	    der_get(&seq, DER_SEQUENCE, &alg, NULL) != 0 ||
	    der_get(&seq, DER_BITSTRING, &bits, NULL) != 0 || seq.len != 0 ||
	    bits.len < 2 || bits.p[0] != 0)
		return -1;
	*pub = bits.p + 1;
	*pub_len = bits.len - 1;
	return 0;
}

/* Checks an EVP_PKEY against the allowed key types. */
static int
key_allowed(const EVP_PKEY *k, char *what, size_t wlen)
{
	char group[64];
	size_t glen = 0;

	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(k) < 2048) {
			snprintf(what, wlen, "RSA key of %d bits: at least 2048 "
			    "required", EVP_PKEY_get_bits(k));
			return 0;
		}
		if (EVP_PKEY_get_bits(k) > 8192) {
			snprintf(what, wlen, "RSA key larger than 8192 bits");
			return 0;
		}
		return 1;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) == 1 &&
		    (strcmp(group, "prime256v1") == 0 ||
		    strcmp(group, "secp384r1") == 0))
			return 1;
		snprintf(what, wlen, "EC key on a curve other than P-256/P-384");
		return 0;
	default:
		snprintf(what, wlen, "key type %s not allowed (EC P-256/P-384 "
		    "or RSA >= 2048 only)", OBJ_nid2sn(EVP_PKEY_get_base_id(k)));
		return 0;
	}
}

/*
 * Takes the subject key from SPKI DER. Named-curve uncompressed P-256 and
 * P-384 keys are recognised by their fixed prefix and the point checked on
 * the curve; anything else is decoded by OpenSSL, checked and re-encoded.
 */
static enum fc_err
subject_key_get(struct ca *ca, const unsigned char *der, size_t len,
    struct subject_key *sk, const char *dev, char *why, size_t whylen)
{
	const unsigned char *p = der;
	EVP_PKEY *k = NULL;
	unsigned char *q;
	char what[128];
	int i, n;
	enum fc_err result;

	memset(sk, 0, sizeof(*sk));
	sk->curve = -1;
	for (i = 0; i < CA_NCURVES; i++) {
		size_t pl = curves[i].prefix_len;
		if (len != pl - 1 + curves[i].point_len ||
		    memcmp(der, curves[i].prefix, pl) != 0)
			continue;
		if (EC_POINT_oct2point(ca->group[i], ca->point[i], der + pl - 1,
		    curves[i].point_len, NULL) != 1)
			return refuse(why, whylen, dev, "EC public key is not a "
			    "point on its curve");
		sk->spki = der;
		sk->spki_len = len;
		sk->pub = der + pl - 1;
		sk->pub_len = curves[i].point_len;
		sk->curve = i;
		return FC_OK;
	}
	if (len == 0 || len > CA_INPUT_MAX)
		return refuse(why, whylen, dev, "public key missing or too large");
	k = d2i_PUBKEY(NULL, &p, (long)len);
	if (k == NULL || p != der + len) {
		result = refuse(why, whylen, dev, "public key is not a valid "
		    "DER SubjectPublicKeyInfo");
		goto out;
	}
	if (!key_allowed(k, what, sizeof(what))) {
		result = refuse(why, whylen, dev, "%s", what);
		goto out;
	}
	result = FC_ENOMEM;
	n = i2d_PUBKEY(k, NULL);
	if (n <= 0 || (sk->owned = malloc((size_t)n)) == NULL)
		goto out;
	q = sk->owned;
	i2d_PUBKEY(k, &q);
	sk->spki = sk->owned;
	sk->spki_len = (size_t)n;
	result = FC_EINTERNAL;
	if (spki_bits(sk->spki, sk->spki_len, &sk->pub, &sk->pub_len) != 0)
		goto out;
	result = FC_OK;
out:
	EVP_PKEY_free(k);
	if (result != FC_OK) {
		free(sk->owned);
		sk->owned = NULL;
	}
	return result;
}

/*
 * Verifies a PKCS#10 request's self-signature (RFC 2986) and takes its key.
 * ECDSA over P-256/P-384 is checked on the raw point with a cached EC_KEY;
 * other algorithms go through OpenSSL's X509_REQ. Subject, attributes and
 * extensions of the CSR are ignored.
 */
static enum fc_err
csr_key_get(struct ca *ca, const unsigned char *der, size_t len,
    struct subject_key *sk, const char *dev, char *why, size_t whylen)
{
	struct der_rd r = { der, len }, csr, info, info_raw, ver, name, spki,
	    attrs, alg, oid, sig, spki_c;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	const EVP_MD *md = NULL;
	X509_REQ *req = NULL;
	const unsigned char *p = der;
	unsigned dlen;
	enum fc_err result;

	if (len == 0 || len > CA_INPUT_MAX)
		return refuse(why, whylen, dev, "CSR empty or larger than %d "
		    "bytes", CA_INPUT_MAX);
	if (der_get(&r, DER_SEQUENCE, &csr, NULL) != 0 || r.len != 0 ||
	    der_get(&csr, DER_SEQUENCE, &info, &info_raw) != 0 ||
	    der_get(&csr, DER_SEQUENCE, &alg, NULL) != 0 ||
	    der_get(&csr, DER_BITSTRING, &sig, NULL) != 0 || csr.len != 0 ||
	    der_get(&info, DER_INTEGER, &ver, NULL) != 0 ||
	    ver.len != 1 || ver.p[0] != 0 ||
	    der_get(&info, DER_SEQUENCE, &name, NULL) != 0 ||
	    der_get(&info, DER_SEQUENCE, &spki_c, &spki) != 0 ||
	    (info.len > 0 && der_get(&info, 0xa0, &attrs, NULL) != 0) ||
	    info.len != 0 || sig.len < 2 || sig.p[0] != 0)
		return refuse(why, whylen, dev, "CSR is not a DER PKCS#10 "
		    "request");
	result = subject_key_get(ca, spki.p, spki.len, sk, dev, why, whylen);
	if (result != FC_OK)
		return result;

	if (sk->curve >= 0 && der_get(&alg, DER_OID, &oid, NULL) == 0 &&
	    alg.len == 0 && oid.len == sizeof(oid_ecdsa_sha256)) {
		if (memcmp(oid.p, oid_ecdsa_sha256, oid.len) == 0)
			md = ca->sha256;
		else if (memcmp(oid.p, oid_ecdsa_sha384, oid.len) == 0)
			md = ca->sha384;
	}
	if (md != NULL) {
		EC_KEY *vk = ca->vkey[sk->curve];
		if (EC_KEY_set_public_key(vk, ca->point[sk->curve]) != 1 ||
		    ca_digest(md, info_raw.p, info_raw.len, dgst, &dlen) != 0) {
			log_openssl("device %s: CSR check", dev);
			result = FC_ECRYPTO;
			goto out;
		}
		if (ECDSA_verify(0, dgst, (int)dlen, sig.p + 1,
		    (int)sig.len - 1, vk) != 1) {
			result = refuse(why, whylen, dev, "CSR signature does "
			    "not verify");
			goto out;
		}
		result = FC_OK;
		goto out;
	}
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL || p != der + len) {
		result = refuse(why, whylen, dev, "CSR is not a DER PKCS#10 "
		    "request");
		goto out;
	}
	if (X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1) {
		result = refuse(why, whylen, dev, "CSR signature does not "
		    "verify");
		goto out;
	}
	result = FC_OK;
out:
	X509_REQ_free(req);
	if (result != FC_OK) {
		free(sk->owned);
		sk->owned = NULL;
	}
	return result;
}

static int
hex_to_bin(const char *hex, unsigned char *out, size_t outlen)
{
	size_t i;
	unsigned v;

	if (strlen(hex) != 2 * outlen)
		return -1;
	for (i = 0; i < outlen; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Appends Extension ::= SEQUENCE { extnID, extnValue OCTET STRING { v } }
 * where v is one TLV of tag `tag` holding data (RFC 5280 4.1). */
static void
ext_put(struct der_buf *b, const unsigned char *oid, size_t oid_len,
    unsigned outer, unsigned tag, const void *data, size_t len)
{
	size_t e, o, w = 0;

	e = der_open(b, DER_SEQUENCE);
	der_tlv(b, DER_OID, oid, oid_len);
	o = der_open(b, DER_OCTETSTRING);
	if (outer)
		w = der_open(b, outer);
	der_tlv(b, tag, data, len);
	if (outer)
		der_close(b, w);
	der_close(b, o);
	der_close(b, e);
}

/* Encodes and signs the certificate. RFC 5280 4.1: v3, our serial, the
 * CA's subject as issuer, CN=device id, then the extensions. */
static enum fc_err
encode(struct ca *ca, const struct ca_issue_req *req,
    const struct subject_key *sk, time_t nb, time_t na, struct der_buf *out)
{
	static const unsigned char version[] = { 0xa0, 0x03, 0x02, 0x01, 0x02 };
	unsigned char serial[CA_SERIAL_HEX_LEN / 2], ski[EVP_MAX_MD_SIZE];
	char san[sizeof(SAN_PREFIX) + FC_SE_SERIAL_LEN];
	struct der_buf tbs = { 0 };
	size_t m, m2, m3, m4;
	unsigned ski_len;
	enum fc_err result;

	if (hex_to_bin(req->serial, serial, sizeof(serial)) != 0 ||
	    ca_digest(ca->sha1, sk->pub, sk->pub_len, ski, &ski_len) != 0)
		return FC_EINTERNAL;
	snprintf(san, sizeof(san), "%s%s", SAN_PREFIX, req->se_serial);

	m = der_open(&tbs, DER_SEQUENCE);
	der_put(&tbs, version, sizeof(version));
	der_uint(&tbs, DER_INTEGER, serial, sizeof(serial));
	der_put(&tbs, ca->sigalg, ca->sigalg_len);
	der_put(&tbs, ca->subject_der, ca->subject_len);
	m2 = der_open(&tbs, DER_SEQUENCE);
	der_time(&tbs, nb);
	der_time(&tbs, na);
	der_close(&tbs, m2);
	m2 = der_open(&tbs, DER_SEQUENCE);
	m3 = der_open(&tbs, DER_SET);
	m4 = der_open(&tbs, DER_SEQUENCE);
	der_tlv(&tbs, DER_OID, oid_cn, sizeof(oid_cn));
	der_tlv(&tbs, DER_UTF8STRING, req->device_id, strlen(req->device_id));
	der_close(&tbs, m4);
	der_close(&tbs, m3);
	der_close(&tbs, m2);
	der_put(&tbs, sk->spki, sk->spki_len);
	m2 = der_open(&tbs, 0xa3);
	m3 = der_open(&tbs, DER_SEQUENCE);
	der_put(&tbs, ext_fixed, sizeof(ext_fixed));
	/* 4.2.1.2 SKI: SHA-1 of the subjectPublicKey bits (method 1). */
	ext_put(&tbs, oid_ski, sizeof(oid_ski), 0, DER_OCTETSTRING, ski,
	    ski_len);
	/* 4.2.1.1 AKI: keyIdentifier [0] = the CA's SKI. */
	ext_put(&tbs, oid_aki, sizeof(oid_aki), DER_SEQUENCE, 0x80, ca->key_id,
	    ca->key_id_len);
	/* 4.2.1.6 SAN: uniformResourceIdentifier [6] with the SE serial. */
	ext_put(&tbs, oid_san, sizeof(oid_san), DER_SEQUENCE, 0x86, san,
	    strlen(san));
	der_close(&tbs, m3);
	der_close(&tbs, m2);
	der_close(&tbs, m);
	if (tbs.err) {
		result = FC_ENOMEM;
		goto out;
	}
	m = der_open(out, DER_SEQUENCE);
	der_put(out, tbs.p, tbs.len);
	result = ca_sign_append(ca, tbs.p, tbs.len, out);
	der_close(out, m);
	if (result == FC_OK && out->err)
		result = FC_ENOMEM;
out:
	der_buf_free(&tbs);
	return result;
}

enum fc_err
ca_cert_issue(struct ca *ca, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen)
{
	struct subject_key sk = { .curve = -1 };
	struct der_buf der = { 0 };
	struct ca_cert *cert = NULL;
	char se[FC_SE_SERIAL_LEN], t[21];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n;
	time_t now, nb, na;
	int days;
	enum fc_err result;
	const char *dev = req->device_id;

	if (!fc_device_id_valid(dev))
		return refuse(why, whylen, dev, "device id is not a valid IoT "
		    "Hub device id");
	if (req->se_serial == NULL ||
	    fc_se_serial_canon(req->se_serial, se) != FC_OK ||
	    strcmp(se, req->se_serial) != 0)
		return refuse(why, whylen, dev, "SE serial is not 18 "
		    "lower-case hex digits starting 0123");
	if (!ca_serial_valid(req->serial))
		return refuse(why, whylen, dev, "certificate serial is not "
		    "%d lower-case hex digits", CA_SERIAL_HEX_LEN);
	days = req->validity_days == 0 ? ca->validity_days : req->validity_days;
	if (days < 1 || days > ca->validity_days)
		return refuse(why, whylen, dev, "validity of %d days outside "
		    "1..%d", req->validity_days, ca->validity_days);
	if ((req->spki == NULL) == (req->csr == NULL))
		return refuse(why, whylen, dev, "give a public key or a CSR");

	now = fc_now();
	nb = now - CA_BACKDATE_SECONDS;
	na = now + (time_t)days * 86400;
	if (na > ca->not_after) {
		fc_time_iso(ca->not_after, t);
		log_error("device %s: certificate would outlive the issuing CA "
		    "(notAfter %s): renew the intermediate CA", dev, t);
		snprintf(why, whylen, "certificate would outlive the issuing "
		    "CA (notAfter %s)", t);
		return FC_ECONFLICT;
	}

	if (req->csr != NULL)
		result = csr_key_get(ca, req->csr, req->csr_len, &sk, dev, why,
		    whylen);
	else
		result = subject_key_get(ca, req->spki, req->spki_len, &sk, dev,
		    why, whylen);
	if (result != FC_OK)
		goto out;

	result = encode(ca, req, &sk, nb, na, &der);
	if (result != FC_OK) {
		snprintf(why, whylen, "signing failed");
		goto out;
	}
	result = FC_ENOMEM;
	cert = calloc(1, sizeof(*cert));
	if (cert == NULL)
		goto out;
	cert->der = der.p;
	cert->der_len = der.len;
	der.p = NULL;
	snprintf(cert->serial, sizeof(cert->serial), "%s", req->serial);
	cert->not_before = nb;
	cert->not_after = na;
	result = FC_EINTERNAL;
	if (ca_digest(ca->sha1, cert->der, cert->der_len, md, &n) != 0)
		goto out;
	fc_hex(md, n, cert->sha1, 1);
	if (ca_digest(ca->sha256, cert->der, cert->der_len, md, &n) != 0)
		goto out;
	fc_hex(md, n, cert->sha256, 1);
	*out = cert;
	cert = NULL;
	result = FC_OK;
out:
	ca_cert_free(cert);
	der_buf_free(&der);
	free(sk.owned);
	return result;
}

void
ca_cert_free(struct ca_cert *cert)
{
	if (cert == NULL)
		return;
	free(cert->der);
	free(cert);
}

enum fc_err
ca_cert_fill(struct ca_cert *cert)
{
	const unsigned char *p = cert->der;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	size_t i;
	enum fc_err result = FC_EINVAL;

	if (cert->der_len == 0 || cert->der_len > 65536)
		return FC_EINVAL;
	x = d2i_X509(NULL, &p, (long)cert->der_len);
	if (x == NULL || p != cert->der + cert->der_len)
		goto out;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex == NULL || strlen(hex) >= FC_CERT_SERIAL_MAX || hex[0] == '-')
		goto out;
	for (i = 0; hex[i] != '\0'; i++)
		cert->serial[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ?
		    hex[i] - 'A' + 'a' : hex[i]);
	cert->serial[i] = '\0';
	cert->not_before = ca_asn1_time(X509_get0_notBefore(x));
	cert->not_after = ca_asn1_time(X509_get0_notAfter(x));
	if (EVP_Digest(cert->der, cert->der_len, md, &n, EVP_sha1(), NULL) != 1)
		goto out;
	fc_hex(md, n, cert->sha1, 1);
	if (EVP_Digest(cert->der, cert->der_len, md, &n, EVP_sha256(),
	    NULL) != 1)
		goto out;
	fc_hex(md, n, cert->sha256, 1);
	result = FC_OK;
out:
	ERR_clear_error();
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	return result;
}
