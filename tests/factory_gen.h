/*
 * factory_gen.h — generates factory records for tests and benchmarks:
 * device identity keys (P-256, made from a random scalar with a cached
 * group), device certificates signed by a throw-away CA, a manifest signer
 * and Trust Platform manifest entries (flattened JWS, ES256). Test code
 * only; never linked into fleetcert's programs.
 */
#ifndef FC_FACTORY_GEN_H
#define FC_FACTORY_GEN_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct fgen;

struct fgen_dev {
	char		 id[64];
	char		 serial[19];		/* canonical, 18 hex */
	unsigned char	 priv[32];		/* the identity private scalar */
	unsigned char	 point[65];		/* 04 || X || Y */
	unsigned char	 spki[91];		/* SPKI DER of point */
};

/* A generator with a fresh CA (for device certificates) and a fresh
 * manifest signer. NULL on failure. */
struct fgen *fgen_new(void);
void fgen_free(struct fgen *g);

/* Device number i: id prefix + i, serial 0123 <i in 12 hex> ee, a new key. */
int fgen_device(struct fgen *g, const char *prefix, long i,
    struct fgen_dev *out);

/* A device certificate with subject CN cn for the 65-byte point, valid
 * from now + from_days for days, signed by the generator's CA. *der is
 * the caller's (OPENSSL_free). 1 on success. */
int fgen_cert(struct fgen *g, const char *cn, const unsigned char point[65],
    long from_days, long days, unsigned char **der, size_t *len);

/* The generator's CA and manifest signer certificates (borrowed). */
X509 *fgen_ca_cert(struct fgen *g);
X509 *fgen_signer_cert(struct fgen *g);
EVP_PKEY *fgen_signer_key(struct fgen *g);

/* A new self-signed P-256 certificate and key (another signer). */
int fgen_selfsigned(const char *cn, X509 **cert, EVP_PKEY **key);

/* Standard base64 (malloc'd) and base64url without padding. */
char *fgen_b64(const unsigned char *in, size_t len);
char *fgen_b64url(const unsigned char *in, size_t len);

/*
 * The payload JSON of a manifest entry: uniqueId, and publicKeySet.keys[]
 * with the slot-0 JWK for jwk_point and (when cert_der is given) x5c
 * [device certificate, CA certificate]. malloc'd.
 */
char *fgen_payload(struct fgen *g, const char *unique_id,
    const unsigned char jwk_point[65], const unsigned char *cert_der,
    size_t cert_len);

/*
 * A flattened JWS entry over payload_json, signed with key; the protected
 * header's x5t#S256 names x5t_cert. header_uid (may be NULL) is put in the
 * unsigned header. malloc'd JSON text.
 */
char *fgen_jws(EVP_PKEY *key, X509 *x5t_cert, const char *payload_json,
    const char *header_uid);

/* Writes a certificate as PEM to path. 1 on success. */
int fgen_write_pem(X509 *x, const char *path);

#endif
