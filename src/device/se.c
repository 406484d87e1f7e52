/*
 * se.c — the secure element, played in software. On the device these are
 * cryptoauthlib calls on the ATECC608B; here a PEM file holds the slot-0
 * key. Nothing else in fleetcert-device touches a private key.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "device.h"

/*
 * atcab_read_serial_number(serial): 9 bytes, bytes 0-1 are always 01 23.
 * Here the serial is given as 18 hex digits (optionally "sn" in front).
 */
int
se_read_serial(struct se *se, const char *hex)
{
	unsigned int v;
	size_t i;

	if (strncmp(hex, "sn", 2) == 0 || strncmp(hex, "SN", 2) == 0)
		hex += 2;
	if (strlen(hex) != 2 * SE_SERIAL_LEN)
		return -1;
	for (i = 0; i < SE_SERIAL_LEN; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		se->serial[i] = (unsigned char)v;
	}
	if (se->serial[0] != 0x01 || se->serial[1] != 0x23)
		return -1;
	return 0;
}

int
se_load_key(const char *pem_path, EVP_PKEY **out)
{
	FILE *f = fopen(pem_path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return -1;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		return -1;
	*out = k;
	return 0;
}

/*
 * atcab_sign(0, digest, signature): the chip signs the 32-byte digest the
 * host computed and returns R || S (64 bytes). OpenSSL returns DER, so it
 * is unpacked here; on the chip there is nothing to unpack.
 */
int
se_sign(EVP_PKEY *key, const unsigned char digest[DIGEST_LEN],
    unsigned char sig[SIG_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int rc = -1;

	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_sign(ctx, der, &derlen, digest, DIGEST_LEN) != 1)
		goto out;
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (es == NULL)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(es);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/*
 * atcacert_create_csr(&csr_def, csr, &csr_size): cryptoauthlib fills a
 * fixed CSR template with the slot's public key and signs it in the chip.
 * The server ignores the subject, so any template will do.
 */
int
se_make_csr(EVP_PKEY *key, unsigned char **der, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char *out = NULL;
	int n, rc = -1;

	if (req == NULL || name == NULL)
		goto out;
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"fleetcert device", -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	n = i2d_X509_REQ(req, &out);
	if (n <= 0)
		goto out;
	*der = out;
	*len = (size_t)n;
	rc = 0;
out:
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}
