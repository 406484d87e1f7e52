/*
 * factory_gen.c — test-data generator for factory records (see
 * factory_gen.h). Test and benchmark code only.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "factory_gen.h"

static const unsigned char p256_prefix[26] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
	0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	0x07, 0x03, 0x42, 0x00,
};

struct fgen {
	EC_GROUP	*group;
	EC_POINT	*pt;
	BIGNUM		*k;
	BN_CTX		*bn;
	X509		*ca;
	EVP_PKEY	*ca_key;
	X509		*signer;
	EVP_PKEY	*signer_key;
	long		 serial;
};

static EVP_PKEY *
p256_key(void)
{
	return EVP_EC_gen("P-256");
}

static X509 *
make_cert(const char *cn, EVP_PKEY *subject_key, const unsigned char *point,
    X509 *issuer, EVP_PKEY *issuer_key, long serial, long from_days,
    long days, int ca)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext = NULL;
	int ok;

	if (x == NULL || n == NULL)
		goto bad;
	ok = X509_set_version(x, 2) &&
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
	    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400L) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), (from_days + days) * 86400L) &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) &&
	    X509_set_subject_name(x, n) &&
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	if (!ok)
		goto bad;
	if (point != NULL) {
		/* The raw-point trick: set the SPKI fields directly instead of
		 * encoding an EVP_PKEY (see performance-ceilings.md). */
		unsigned char *enc = OPENSSL_malloc(65);
		if (enc == NULL)
			goto bad;
		memcpy(enc, point, 65);
		if (!X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x),
		    OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
		    OBJ_nid2obj(NID_X9_62_prime256v1), enc, 65)) {
			OPENSSL_free(enc);
			goto bad;
		}
	}
	if (subject_key != NULL && !X509_set_pubkey(x, subject_key))
		goto bad;
	if (ca) {
		X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
		    "critical,CA:TRUE");
		if (ext == NULL || !X509_add_ext(x, ext, -1))
			goto bad;
	}
	if (!X509_sign(x, issuer_key, EVP_sha256()))
		goto bad;
	X509_EXTENSION_free(ext);
	X509_NAME_free(n);
	return x;
bad:
	X509_EXTENSION_free(ext);
	X509_NAME_free(n);
	X509_free(x);
	return NULL;
}

int
fgen_selfsigned(const char *cn, X509 **cert, EVP_PKEY **key)
{
	EVP_PKEY *k = p256_key();
	X509 *x;

	if (k == NULL)
		return 0;
	x = make_cert(cn, k, NULL, NULL, k, 1, -1, 3650, 1);
	if (x == NULL) {
		EVP_PKEY_free(k);
		return 0;
	}
	*cert = x;
	*key = k;
	return 1;
}

struct fgen *
fgen_new(void)
{
	struct fgen *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	g->pt = g->group ? EC_POINT_new(g->group) : NULL;
	g->k = BN_new();
	g->bn = BN_CTX_new();
	g->serial = 0x1000;
	if (g->pt == NULL || g->k == NULL || g->bn == NULL ||
	    !fgen_selfsigned("fleetcert test factory CA", &g->ca, &g->ca_key) ||
	    !fgen_selfsigned("fleetcert test manifest signer", &g->signer,
	    &g->signer_key)) {
		fgen_free(g);
		return NULL;
	}
	return g;
}

void
fgen_free(struct fgen *g)
{
	if (g == NULL)
		return;
	EC_POINT_free(g->pt);
	EC_GROUP_free(g->group);
	BN_free(g->k);
	BN_CTX_free(g->bn);
	X509_free(g->ca);
	EVP_PKEY_free(g->ca_key);
	X509_free(g->signer);
	EVP_PKEY_free(g->signer_key);
	free(g);
}

X509 *fgen_ca_cert(struct fgen *g) { return g->ca; }
X509 *fgen_signer_cert(struct fgen *g) { return g->signer; }
EVP_PKEY *fgen_signer_key(struct fgen *g) { return g->signer_key; }

int
fgen_device(struct fgen *g, const char *prefix, long i, struct fgen_dev *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s%07ld", prefix, i);
	snprintf(out->serial, sizeof(out->serial), "0123%012lxee",
	    (unsigned long)i & 0xffffffffffffUL);
	/* A private scalar in [1, n-1] and its point k*G. */
	if (!BN_rand_range(g->k, EC_GROUP_get0_order(g->group)) ||
	    BN_is_zero(g->k) ||
	    !EC_POINT_mul(g->group, g->pt, g->k, NULL, NULL, g->bn) ||
	    EC_POINT_point2oct(g->group, g->pt, POINT_CONVERSION_UNCOMPRESSED,
	    out->point, 65, g->bn) != 65 ||
	    BN_bn2binpad(g->k, out->priv, 32) != 32)
		return 0;
	memcpy(out->spki, p256_prefix, 26);
	memcpy(out->spki + 26, out->point, 65);
	return 1;
}

int
fgen_cert(struct fgen *g, const char *cn, const unsigned char point[65],
    long from_days, long days, unsigned char **der, size_t *len)
{
	unsigned char *d = NULL;
	X509 *x = NULL;
	int n, ok = 0;

	x = make_cert(cn, NULL, point, g->ca, g->ca_key, ++g->serial, from_days,
	    days, 0);
	if (x == NULL)
		return 0;
	n = i2d_X509(x, &d);
	if (n <= 0)
		goto out;
	*der = d;
	*len = (size_t)n;
	ok = 1;
out:
	X509_free(x);
	return ok;
}

char *
fgen_b64(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

char *
fgen_b64url(const unsigned char *in, size_t len)
{
	char *s = fgen_b64(in, len), *p;
	size_t n;

	if (s == NULL)
		return NULL;
	for (p = s; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	n = strlen(s);
	while (n > 0 && s[n - 1] == '=')
		s[--n] = '\0';
	return s;
}

char *
fgen_payload(struct fgen *g, const char *unique_id,
    const unsigned char jwk_point[65], const unsigned char *cert_der,
    size_t cert_len)
{
	json_t *o, *jwk, *keys, *x5c;
	char *x = fgen_b64url(jwk_point + 1, 32);
	char *y = fgen_b64url(jwk_point + 33, 32);
	char *out = NULL;

	jwk = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kid", "0", "kty", "EC",
	    "crv", "P-256", "x", x, "y", y);
	if (cert_der != NULL && jwk != NULL) {
		unsigned char *cad = NULL;
		int calen = i2d_X509(g->ca, &cad);
		char *b0 = fgen_b64(cert_der, cert_len);
		char *b1 = calen > 0 ? fgen_b64(cad, (size_t)calen) : NULL;
		x5c = json_pack("[s,s]", b0, b1);
		json_object_set_new(jwk, "x5c", x5c);
		free(b0);
		free(b1);
		OPENSSL_free(cad);
	}
	keys = json_pack("[o,{s:s,s:s,s:s,s:s,s:s}]", jwk, "kid", "1", "kty",
	    "EC", "crv", "P-256", "x", x, "y", y);
	o = json_pack("{s:i,s:s,s:s,s:s,s:{s:o}}", "version", 1, "model",
	    "ATECC608B", "partNumber", "ATECC608B-TNGTLSU", "uniqueId",
	    unique_id, "publicKeySet", "keys", keys);
	if (o != NULL)
		out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(x);
	free(y);
	return out;
}

char *
fgen_jws(EVP_PKEY *key, X509 *x5t_cert, const char *payload_json,
    const char *header_uid)
{
	unsigned char md[32], *der = NULL, *sigder = NULL, rs[64];
	const unsigned char *sp;
	char *x5t = NULL, *prot = NULL, *prot64 = NULL, *pay64 = NULL;
	char *sig64 = NULL, *hdr = NULL, *out = NULL;
	EVP_MD_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	size_t siglen = 0;
	json_t *o = NULL;
	int n;

	n = i2d_X509(x5t_cert, &der);
	if (n <= 0 || !EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL))
		goto out;
	x5t = fgen_b64url(md, 32);
	o = json_pack("{s:s,s:s,s:s}", "typ", "JWT", "alg", "ES256",
	    "x5t#S256", x5t);
	json_object_set_new(o, "kid", json_string(x5t));
	prot = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	o = NULL;
	prot64 = fgen_b64url((const unsigned char *)prot, strlen(prot));
	pay64 = fgen_b64url((const unsigned char *)payload_json,
	    strlen(payload_json));
	if (prot64 == NULL || pay64 == NULL)
		goto out;
	hdr = malloc(strlen(prot64) + strlen(pay64) + 2);
	if (hdr == NULL)
		goto out;
	sprintf(hdr, "%s.%s", prot64, pay64);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
	    key) != 1 || EVP_DigestSign(ctx, NULL, &siglen,
	    (unsigned char *)hdr, strlen(hdr)) != 1)
		goto out;
	sigder = malloc(siglen);
	if (sigder == NULL || EVP_DigestSign(ctx, sigder, &siglen,
	    (unsigned char *)hdr, strlen(hdr)) != 1)
		goto out;
	sp = sigder;
	es = d2i_ECDSA_SIG(NULL, &sp, (long)siglen);
	if (es == NULL ||
	    BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32) != 32)
		goto out;
	sig64 = fgen_b64url(rs, 64);
	o = json_pack("{s:s,s:s,s:s}", "payload", pay64, "protected", prot64,
	    "signature", sig64);
	if (o != NULL && header_uid != NULL)
		json_object_set_new(o, "header",
		    json_pack("{s:s}", "uniqueId", header_uid));
	if (o != NULL)
		out = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	free(sigder);
	free(x5t);
	free(prot);
	free(prot64);
	free(pay64);
	free(sig64);
	free(hdr);
	return out;
}

int
fgen_write_pem(X509 *x, const char *path)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (f == NULL)
		return 0;
	ok = PEM_write_X509(f, x);
	return fclose(f) == 0 && ok;
}
