/*
 * enrol_proto.c — the bytes of device-protocol.md §2: strict parsing of the
 * two request bodies, the digest m / d, signature encodings (raw R || S and
 * DER) and their verification, and the CSR's form and self-signature.
 * Pure functions without state; runs on the enrolment listener's threads and
 * in the fuzz harness. Touches nothing but its arguments.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "der.h"
#include "enrol.h"

/*
 * Rejects nesting deeper than max before jansson sees the body, so a body of
 * 16 KiB of '[' costs a scan, not a recursive parse. Brackets inside strings
 * do not count.
 */
static int
depth_ok(const char *s, size_t len, int max)
{
	int depth = 0, in_str = 0, esc = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[') {
			if (++depth > max)
				return 0;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return 1;
}

/* A string member of obj, or NULL if missing or not a string. */
static const char *
str_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || !json_is_string(v))
		return NULL;
	return json_string_value(v);
}

/* Decodes base64 field s into exactly want bytes (want 0: 1..max bytes). */
static enum fc_err
b64_field(const char *s, size_t want, size_t max, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	enum fc_err result;

	/* Cheap length check before decoding anything large. */
	if (strlen(s) > ((want ? want : max) + 2) / 3 * 4)
		return FC_EINVAL;
	result = fc_b64_decode(s, &buf, &len);
	if (result != FC_OK)
		return result;
	if ((want != 0 && len != want) || len == 0 || len > max) {
		free(buf);
		return FC_EINVAL;
	}
	*out = buf;
	*outlen = len;
	return FC_OK;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return c - 'a' + 10;	/* canonical form: lower case only */
}

enum fc_err
enrol_req_parse(const char *body, size_t len, enum enrol_req_kind kind,
    struct enrol_req *out, const char **why)
{
	struct enrol_req r;
	json_error_t jerr;
	json_t *root = NULL;
	const char *serial, *nonce = NULL, *csr = NULL, *sig = NULL;
	unsigned char *buf = NULL;
	size_t blen, want_fields, i;
	enum fc_err result = FC_EINVAL;

	memset(&r, 0, sizeof(r));
	*why = "malformed request";
	if (body == NULL || len == 0 || len > ENROL_BODY_MAX) {
		*why = len > ENROL_BODY_MAX ? "body too large" : "empty body";
		goto out;
	}
	if (!depth_ok(body, len, ENROL_JSON_DEPTH_MAX)) {
		*why = "JSON nested too deeply";
		goto out;
	}
	/* Whole input, UTF-8 checked by jansson, no NUL in strings, no
	 * duplicate keys. */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*why = "invalid JSON";
		goto out;
	}
	if (!json_is_object(root)) {
		*why = "JSON object expected";
		goto out;
	}
	want_fields = kind == ENROL_REQ_CHALLENGE ? 1 : 4;
	serial = str_member(root, "serial");
	if (kind == ENROL_REQ_REENROL) {
		nonce = str_member(root, "nonce");
		csr = str_member(root, "csr");
		sig = str_member(root, "signature");
	}
	if (json_object_size(root) != want_fields || serial == NULL ||
	    (kind == ENROL_REQ_REENROL &&
	    (nonce == NULL || csr == NULL || sig == NULL))) {
		*why = kind == ENROL_REQ_CHALLENGE ?
		    "expected exactly the string field serial" :
		    "expected exactly the string fields serial, nonce, csr, "
		    "signature";
		goto out;
	}
	if (strlen(serial) > 20 ||
	    fc_se_serial_canon(serial, r.serial) != FC_OK) {
		*why = "bad serial";
		goto out;
	}
	for (i = 0; i < ENROL_SERIAL_RAW_LEN; i++)
		r.serial_raw[i] = (unsigned char)(hexval(r.serial[2 * i]) << 4 |
		    hexval(r.serial[2 * i + 1]));
	if (kind == ENROL_REQ_CHALLENGE) {
		result = FC_OK;
		goto done;
	}

	if (b64_field(nonce, ENROL_NONCE_LEN, ENROL_NONCE_LEN, &buf,
	    &blen) != FC_OK) {
		*why = "bad nonce: base64 of 32 bytes expected";
		goto out;
	}
	memcpy(r.nonce, buf, ENROL_NONCE_LEN);
	free(buf);
	buf = NULL;
	if (b64_field(sig, 0, 80, &buf, &blen) != FC_OK ||
	    enrol_sig_decode(buf, blen, r.sig) != FC_OK) {
		*why = "bad signature: base64 of 64-byte R||S or DER expected";
		goto out;
	}
	r.sig_was_der = blen != 64;
	free(buf);
	buf = NULL;
	if (b64_field(csr, 0, ENROL_CSR_MAX, &r.csr, &r.csr_len) != FC_OK) {
		*why = "bad csr: base64 of a DER PKCS#10 request expected";
		goto out;
	}
	result = FC_OK;
done:
	*out = r;
	memset(&r, 0, sizeof(r));
	*why = NULL;
out:
	free(buf);
	free(r.csr);
	json_decref(root);
	return result;
}

void
enrol_req_clear(struct enrol_req *r)
{
	if (r == NULL)
		return;
	free(r->csr);
	memset(r, 0, sizeof(*r));
}

void
enrol_digest(const unsigned char nonce[ENROL_NONCE_LEN],
    const unsigned char serial[ENROL_SERIAL_RAW_LEN],
    const unsigned char *csr, size_t csr_len,
    unsigned char m[ENROL_MSG_LEN], unsigned char d[ENROL_DIGEST_LEN])
{
	unsigned char msg[ENROL_MSG_LEN];
	unsigned char *p = msg;

	memcpy(p, ENROL_TAG, ENROL_TAG_LEN);
	p += ENROL_TAG_LEN;
	memcpy(p, nonce, ENROL_NONCE_LEN);
	p += ENROL_NONCE_LEN;
	memcpy(p, serial, ENROL_SERIAL_RAW_LEN);
	p += ENROL_SERIAL_RAW_LEN;
	SHA256(csr, csr_len, p);
	SHA256(msg, sizeof(msg), d);
	if (m != NULL)
		memcpy(m, msg, sizeof(msg));
}

/* Writes an unsigned big integer into 32 bytes, left-padded. 0 if too big. */
static int
bn_to_32(const BIGNUM *bn, unsigned char out[32])
{
	return BN_bn2binpad(bn, out, 32) == 32;
}

enum fc_err
enrol_sig_decode(const unsigned char *in, size_t len, unsigned char out[64])
{
	const unsigned char *p = in;
	unsigned char *re = NULL;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	enum fc_err result = FC_EINVAL;
	int relen;

	if (len == 64) {
		memcpy(out, in, 64);
		return FC_OK;
	}
	if (len < 8 || len > 72)
		return FC_EINVAL;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (sig == NULL || p != in + len)
		goto out;
	/* Only the canonical DER: re-encoding must give the same bytes. */
	relen = i2d_ECDSA_SIG(sig, &re);
	if (relen <= 0 || (size_t)relen != len || memcmp(re, in, len) != 0)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_is_negative(r) || BN_is_negative(s) || !bn_to_32(r, out) ||
	    !bn_to_32(s, out + 32))
		goto out;
	result = FC_OK;
out:
	OPENSSL_free(re);
	ECDSA_SIG_free(sig);
	return result;
}

enum fc_err
enrol_sig_verify(EVP_PKEY *key, const unsigned char d[ENROL_DIGEST_LEN],
    const unsigned char sig[64])
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char *der = NULL;
	enum fc_err result = FC_ECRYPTO;
	int derlen;

	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		goto out;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (es == NULL || r == NULL || s == NULL)
		goto out;
	if (ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL;
	derlen = i2d_ECDSA_SIG(es, &der);
	if (derlen <= 0)
		goto out;
	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1)
		goto out;
	if (EVP_PKEY_verify(ctx, der, (size_t)derlen, d,
	    ENROL_DIGEST_LEN) == 1)
		result = FC_OK;
out:
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return result;
}

/* ecdsa-with-SHA256 (RFC 5758 3.2): 1.2.840.10045.4.3.2 */
static const unsigned char OID_ECDSA_SHA256[] = {
	0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02
};

enum fc_err
enrol_csr_parse(const unsigned char *der, size_t len, struct enrol_csr *out)
{
	struct der_rd r = { der, len }, csr, info, info_raw, ver, name, spki,
	    spki_raw, attrs, alg, oid, sig;

	/* RFC 2986 4: CertificationRequest ::= SEQUENCE {
	 *   certificationRequestInfo SEQUENCE { version INTEGER (0),
	 *     subject Name, subjectPKInfo SubjectPublicKeyInfo,
	 *     attributes [0] }, signatureAlgorithm, signature BIT STRING }.
	 * An absent attributes field is tolerated, as OpenSSL does. */
	if (der == NULL || len == 0 || len > ENROL_CSR_MAX ||
	    der_get(&r, DER_SEQUENCE, &csr, NULL) != 0 || r.len != 0 ||
	    der_get(&csr, DER_SEQUENCE, &info, &info_raw) != 0 ||
	    der_get(&csr, DER_SEQUENCE, &alg, NULL) != 0 ||
	    der_get(&csr, DER_BITSTRING, &sig, NULL) != 0 || csr.len != 0 ||
	    der_get(&info, DER_INTEGER, &ver, NULL) != 0 ||
	    ver.len != 1 || ver.p[0] != 0 ||
	    der_get(&info, DER_SEQUENCE, &name, NULL) != 0 ||
	    der_get(&info, DER_SEQUENCE, &spki, &spki_raw) != 0 ||
	    (info.len > 0 && der_get(&info, 0xa0, &attrs, NULL) != 0) ||
	    info.len != 0 ||
	    der_get(&alg, DER_OID, &oid, NULL) != 0 ||
	    sig.len < 2 || sig.p[0] != 0)
		return FC_EINVAL;
	memset(out, 0, sizeof(*out));
	out->spki = spki_raw.p;
	out->spki_len = spki_raw.len;
	out->tbs = info_raw.p;
	out->tbs_len = info_raw.len;
	out->sig = sig.p + 1;
	out->sig_len = sig.len - 1;
	/* ecdsa-with-SHA256 has no parameters (RFC 5758 3.2). */
	out->ecdsa_sha256 = alg.len == 0 &&
	    oid.len == sizeof(OID_ECDSA_SHA256) &&
	    memcmp(oid.p, OID_ECDSA_SHA256, oid.len) == 0;
	return FC_OK;
}

enum fc_err
enrol_csr_verify(const struct enrol_csr *c, EVP_PKEY *key)
{
	unsigned char d[32];
	EVP_PKEY_CTX *ctx = NULL;
	enum fc_err result = FC_ECRYPTO;

	if (!c->ecdsa_sha256 || key == NULL ||
	    EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return FC_ECRYPTO;
	SHA256(c->tbs, c->tbs_len, d);
	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_verify(ctx, c->sig, c->sig_len, d, sizeof(d)) == 1)
		result = FC_OK;
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	return result;
}

enum fc_err
enrol_csr_inspect(const unsigned char *der, size_t len, unsigned char **spki,
    size_t *spki_len, int *self_sig_ok)
{
	const unsigned char *p = der;
	X509_REQ *req = NULL;
	X509_PUBKEY *xpk;
	EVP_PKEY *pk;
	unsigned char *k = NULL, *kp;
	enum fc_err result = FC_EINVAL;
	int klen, ok;

	if (der == NULL || len == 0 || len > ENROL_CSR_MAX)
		goto out;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req == NULL || p != der + len)
		goto out;
	xpk = X509_REQ_get_X509_PUBKEY(req);
	pk = X509_REQ_get0_pubkey(req);
	if (xpk == NULL || pk == NULL)
		goto out;
	klen = i2d_X509_PUBKEY(xpk, NULL);
	if (klen <= 0)
		goto out;
	k = malloc((size_t)klen);
	if (k == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	kp = k;
	if (i2d_X509_PUBKEY(xpk, &kp) != klen)
		goto out;
	ok = X509_REQ_verify(req, pk) == 1;
	*spki = k;
	*spki_len = (size_t)klen;
	*self_sig_ok = ok;
	k = NULL;
	result = FC_OK;
out:
	ERR_clear_error();
	free(k);
	X509_REQ_free(req);
	return result;
}
