/*
 * check.c — what the device checks before it stores a certificate it was
 * given (device-protocol.md §1 and §2): it chains to the root the device
 * trusts, and its key is the device's own. On the device:
 * mbedtls_x509_crt_parse + mbedtls_x509_crt_verify against the root, then
 * a comparison of the certificate's public key with atcab_get_pubkey(0).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "device.h"

static STACK_OF(X509) *
pem_stack(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	while (sk && b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

int
check_certificate(const char *cert_pem, const char *chain_pem,
    const char *root_pem_path, EVP_PKEY *key, char *why, size_t whylen)
{
	STACK_OF(X509) *leaf = pem_stack(cert_pem);
	STACK_OF(X509) *chain = pem_stack(chain_pem);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *cert;
	int rc = -1;

	if (leaf == NULL || sk_X509_num(leaf) != 1 || chain == NULL ||
	    store == NULL || ctx == NULL) {
		snprintf(why, whylen, "certificate: not one PEM certificate");
		goto out;
	}
	cert = sk_X509_value(leaf, 0);
	if (X509_STORE_load_file(store, root_pem_path) != 1) {
		snprintf(why, whylen, "root %s: cannot load", root_pem_path);
		goto out;
	}
	/* Step 1: the chain, up to the root the device trusts. */
	if (X509_STORE_CTX_init(ctx, store, cert, chain) != 1 ||
	    X509_verify_cert(ctx) != 1) {
		snprintf(why, whylen, "certificate does not chain to the root: "
		    "%s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	/* Step 2: the key is the device's own (atcab_get_pubkey). */
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		snprintf(why, whylen, "certificate is for another key");
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
