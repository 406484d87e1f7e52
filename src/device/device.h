/*
 * device.h — fleetcert-device, the reference device side of
 * device-protocol.md §2 (re-enrolment). Written to be read and ported to an
 * ESP32 + ATECC608B firmware: each function stands for one thing the
 * firmware does, and its comment names the cryptoauthlib / ESP-IDF call it
 * replaces. Nothing here is shared with the daemon's implementation of the
 * protocol, so the two check each other.
 */
#ifndef FC_DEVICE_H
#define FC_DEVICE_H

#include <stddef.h>

#include <openssl/evp.h>

#define SE_SERIAL_LEN	9	/* bytes of the ATECC608B serial number */
#define NONCE_LEN	32
#define DIGEST_LEN	32
#define SIG_LEN		64	/* R || S, 32 bytes each, big-endian */

/* ---- se.c: the secure element (a PEM key file stands in for slot 0) ---- */

struct se {
	unsigned char	 serial[SE_SERIAL_LEN];
	EVP_PKEY	*slot0;		/* identity key: never leaves the chip */
	EVP_PKEY	*csr_key;	/* the key to certify (slot 0 by default) */
};

/* atcab_read_serial_number(): the serial, here from its 18 hex digits. */
int se_read_serial(struct se *se, const char *hex);
/* The slot-0 key; on a chip it is generated inside at manufacture. */
int se_load_key(const char *pem_path, EVP_PKEY **out);
/* atcab_sign(0, digest, sig): ECDSA P-256 over a 32-byte digest, R || S. */
int se_sign(EVP_PKEY *key, const unsigned char digest[DIGEST_LEN],
    unsigned char sig[SIG_LEN]);
/* atcacert_create_csr(): a PKCS#10 request for key, signed by key. *der is
 * malloc'd. */
int se_make_csr(EVP_PKEY *key, unsigned char **der, size_t *len);

/* ---- net.c: HTTPS to the re-enrolment endpoint (esp_http_client) ---- */

struct net;
/* Opens a client that trusts only root_pem's CA for the server. */
int net_open(const char *base_url, const char *root_pem, int verbose,
    struct net **out);
/* POSTs a JSON body to base_url + path on the same TLS connection as the
 * previous call. *status and *reply (malloc'd, NUL-terminated) are set. */
int net_post(struct net *n, const char *path, const char *body, int *status,
    char **reply);
void net_close(struct net *n);

/* ---- check.c: what the device checks before it stores a certificate ---- */

/* The certificate (PEM) chains through chain_pem to the root the device
 * trusts, and its public key is the one of `key`. 0 if so. */
int check_certificate(const char *cert_pem, const char *chain_pem,
    const char *root_pem_path, EVP_PKEY *key, char *why, size_t whylen);

#endif
