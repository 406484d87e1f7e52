/*
 * ca_priv.h — the inside of struct ca, shared by ca.c (loading, signing),
 * ca_cert.c (device certificates, CSRs) and ca_crl.c (CRLs). Not for other
 * modules: they use ca.h.
 */
#ifndef FC_CA_PRIV_H
#define FC_CA_PRIV_H

#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"
#include "der.h"

enum { CA_CURVE_P256 = 0, CA_CURVE_P384, CA_NCURVES };

struct ca {
	X509		*cert;
	char		*chain_pem;
	time_t		 not_before;
	time_t		 not_after;
	int		 validity_days;		/* configured ceiling */
	int		 crl_validity_hours;

	unsigned char	*subject_der;		/* issuer of what we sign */
	size_t		 subject_len;
	unsigned char	 key_id[64];		/* the CA's SKI: our AKI */
	size_t		 key_id_len;
	unsigned char	 sigalg[32];		/* AlgorithmIdentifier DER */
	size_t		 sigalg_len;

	/* The key: NULL with CA_LOAD_CERT_ONLY. */
	EVP_PKEY	*key;
	ENGINE		*engine;		/* PKCS#11 keys only */
	EVP_PKEY_CTX	*sign_ctx;		/* initialised once, reused */
	size_t		 sig_max;

	/* Cached so that no request pays a fetch or a decode. */
	EVP_MD		*sha1;
	EVP_MD		*sha256;
	EVP_MD		*sha384;
	EC_GROUP	*group[CA_NCURVES];
	EC_POINT	*point[CA_NCURVES];
	void		*vkey[CA_NCURVES];	/* EC_KEY for CSR checks */
};

/* ASN1_TIME to Unix seconds; (time_t)-1 when invalid. */
time_t ca_asn1_time(const ASN1_TIME *t);

/* Hash with a cached digest; out must hold EVP_MAX_MD_SIZE. */
int ca_digest(const EVP_MD *md, const void *data, size_t len,
    unsigned char *out, unsigned *outlen);

#endif
