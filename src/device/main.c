/*
 * fleetcert-device — the reference device client of device-protocol.md §2.
 * A device whose certificate expired re-enrols over HTTPS, proving itself
 * with the identity key in slot 0 of its ATECC608B.
 *
 * Read main() top to bottom: the steps are numbered as a firmware engineer
 * would port them. se.c is the chip, net.c the HTTP client, check.c the
 * certificate checks; this file is the protocol.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/sha.h>

#include "device.h"
#include "fc.h"

/* The 20 ASCII bytes that start m, without a terminator. */
static const char TAG[] = "fleetcert-reenrol-v1";
#define TAG_LEN		20
#define M_LEN		(TAG_LEN + NONCE_LEN + SE_SERIAL_LEN + DIGEST_LEN)	/* 93 */

enum { EXIT_STORED = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_TROUBLE = 3 };

static void
usage(void)
{
	fprintf(stderr, "usage: fleetcert-device --url URL --root ROOT.pem "
	    "--serial HEX --key SLOT0.pem --out CERT.pem\n"
	    "       [--chain-out CHAIN.pem] [--csr-key NEW.pem] "
	    "[--der-signature] [-v]\n");
}

/*
 * The digest the chip signs (device-protocol.md §2):
 *   m = "fleetcert-reenrol-v1" || nonce (32) || serial (9) || SHA-256(csr)
 *   d = SHA-256(m)
 * On the device: atcab_sha_start / atcab_sha_update / atcab_sha_end, or
 * mbedtls_sha256, twice.
 */
static void
reenrol_digest(const unsigned char nonce[NONCE_LEN],
    const unsigned char serial[SE_SERIAL_LEN], const unsigned char *csr,
    size_t csr_len, unsigned char d[DIGEST_LEN])
{
	unsigned char m[M_LEN];
	size_t off = 0;

	memcpy(m + off, TAG, TAG_LEN);
	off += TAG_LEN;
	memcpy(m + off, nonce, NONCE_LEN);
	off += NONCE_LEN;
	memcpy(m + off, serial, SE_SERIAL_LEN);
	off += SE_SERIAL_LEN;
	SHA256(csr, csr_len, m + off);		/* SHA-256(csr DER) */
	SHA256(m, sizeof(m), d);
}

/*
 * R || S as DER ECDSA-Sig-Value (RFC 3279): SEQUENCE { INTEGER r,
 * INTEGER s }, each INTEGER without leading zero bytes, plus one 00 byte
 * when its top bit is set (it must stay positive). Devices do not need
 * this (the server takes R || S); it shows what "DER" means. Returns the
 * length written into der (at most 72 bytes).
 */
static size_t
sig_to_der(const unsigned char sig[SIG_LEN], unsigned char der[72])
{
	unsigned char *p = der + 2;
	int k;

	for (k = 0; k < 2; k++) {
		const unsigned char *v = sig + 32 * k;
		size_t skip = 0, pad;

		while (skip < 31 && v[skip] == 0)
			skip++;
		pad = (v[skip] & 0x80) ? 1 : 0;
		*p++ = 0x02;				/* INTEGER */
		*p++ = (unsigned char)(32 - skip + pad);	/* length */
		if (pad)
			*p++ = 0x00;
		memcpy(p, v + skip, 32 - skip);
		p += 32 - skip;
	}
	der[0] = 0x30;					/* SEQUENCE */
	der[1] = (unsigned char)(p - der - 2);		/* length < 128 */
	return (size_t)(p - der);
}

/* Prints the server's error answer ({"error":{"code","message"}}). */
static void
print_refusal(const char *what, int status, const char *reply)
{
	json_t *j = json_loads(reply, 0, NULL);
	json_t *e = j ? json_object_get(j, "error") : NULL;

	fprintf(stderr, "fleetcert-device: %s refused: %d %s: %s\n", what,
	    status, e ? json_string_value(json_object_get(e, "code")) : "?",
	    e ? json_string_value(json_object_get(e, "message")) : reply);
	json_decref(j);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "root", required_argument, NULL, 'r' },
		{ "serial", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "csr-key", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "chain-out", required_argument, NULL, 'c' },
		{ "der-signature", no_argument, NULL, 'D' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *url = NULL, *root = NULL, *serial_hex = NULL, *key_path = NULL;
	const char *csr_key_path = NULL, *out = NULL, *chain_out = NULL;
	struct se se;
	struct net *net = NULL;
	unsigned char *nonce = NULL, *csr = NULL, digest[DIGEST_LEN];
	unsigned char sig[SIG_LEN];
	size_t nonce_len = 0, csr_len = 0;
	char *body = NULL, *reply = NULL, *csr64 = NULL, *sig64 = NULL;
	char serial_text[2 * SE_SERIAL_LEN + 1], why[256];
	json_t *j = NULL;
	const char *cert_pem, *chain_pem;
	int c, status, verbose = 0, der_sig = 0, rc = EXIT_TROUBLE;

	memset(&se, 0, sizeof(se));
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 'r': root = optarg; break;
		case 's': serial_hex = optarg; break;
		case 'k': key_path = optarg; break;
		case 'n': csr_key_path = optarg; break;
		case 'o': out = optarg; break;
		case 'c': chain_out = optarg; break;
		case 'D': der_sig = 1; break;
		case 'v': verbose++; break;
		case 'h': usage(); return EXIT_STORED;
		default: usage(); return EXIT_USAGE;
		}
	}
	if (url == NULL || root == NULL || serial_hex == NULL ||
	    key_path == NULL || out == NULL || optind != argc) {
		usage();
		return EXIT_USAGE;
	}

	/* Step 0: what the chip holds. The serial (atcab_read_serial_number)
	 * and the identity key in slot 0. The key to certify is slot 0 too,
	 * unless the deployment rotates keys (another slot: --csr-key). */
	if (se_read_serial(&se, serial_hex) != 0) {
		fprintf(stderr, "fleetcert-device: bad serial %s\n", serial_hex);
		return EXIT_USAGE;
	}
	fc_hex(se.serial, SE_SERIAL_LEN, serial_text, 0);
	if (se_load_key(key_path, &se.slot0) != 0 || (csr_key_path != NULL &&
	    se_load_key(csr_key_path, &se.csr_key) != 0)) {
		fprintf(stderr, "fleetcert-device: cannot load key\n");
		goto out;
	}
	if (se.csr_key == NULL) {
		EVP_PKEY_up_ref(se.slot0);
		se.csr_key = se.slot0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (net_open(url, root, verbose, &net) != 0)
		goto out;

	/* Step 1: ask for a challenge.
	 *   POST /enrol/v1/challenge {"serial": "<18 lower-case hex>"}
	 *   200 {"nonce": "<base64 of 32 bytes>", "expiresIn": 300} */
	j = json_pack("{s:s}", "serial", serial_text);
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	j = NULL;
	if (body == NULL || net_post(net, "/enrol/v1/challenge", body, &status,
	    &reply) != 0)
		goto out;
	if (status != 200) {
		print_refusal("challenge", status, reply);
		rc = EXIT_REFUSED;
		goto out;
	}
	j = json_loads(reply, 0, NULL);
	if (j == NULL || !json_is_string(json_object_get(j, "nonce")) ||
	    fc_b64_decode(json_string_value(json_object_get(j, "nonce")),
	    &nonce, &nonce_len) != FC_OK || nonce_len != NONCE_LEN) {
		fprintf(stderr, "fleetcert-device: bad challenge answer\n");
		goto out;
	}
	json_decref(j);
	j = NULL;

	/* Step 2: the CSR, made and signed by the chip with the key to
	 * certify (atcacert_create_csr). */
	if (se_make_csr(se.csr_key, &csr, &csr_len) != 0) {
		fprintf(stderr, "fleetcert-device: cannot make the CSR\n");
		goto out;
	}

	/* Step 3: d = SHA-256("fleetcert-reenrol-v1" || nonce || serial ||
	 * SHA-256(csr)), computed by the host. */
	reenrol_digest(nonce, se.serial, csr, csr_len, digest);

	/* Step 4: the identity key signs d: atcab_sign(0, d, sig), R || S. */
	if (se_sign(se.slot0, digest, sig) != 0) {
		fprintf(stderr, "fleetcert-device: signing failed\n");
		goto out;
	}

	/* Step 5: re-enrol. base64 (mbedtls_base64_encode) of the CSR and of
	 * the 64-byte signature; the nonce is sent back as received.
	 * --der-signature sends DER instead, which the server also takes. */
	if (der_sig) {
		unsigned char der[72];
		size_t n = sig_to_der(sig, der);
		if (fc_b64_encode(der, n, &sig64) != FC_OK)
			goto out;
	} else if (fc_b64_encode(sig, SIG_LEN, &sig64) != FC_OK)
		goto out;
	if (fc_b64_encode(csr, csr_len, &csr64) != FC_OK)
		goto out;
	free(body);
	body = NULL;
	{
		char *nonce64 = NULL;
		if (fc_b64_encode(nonce, nonce_len, &nonce64) != FC_OK)
			goto out;
		j = json_pack("{s:s,s:s,s:s,s:s}", "serial", serial_text,
		    "nonce", nonce64, "csr", csr64, "signature", sig64);
		free(nonce64);
	}
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	j = NULL;
	free(reply);
	reply = NULL;
	if (body == NULL || net_post(net, "/enrol/v1/reenrol", body, &status,
	    &reply) != 0)
		goto out;
	if (status != 200) {
		print_refusal("re-enrolment", status, reply);
		rc = EXIT_REFUSED;
		goto out;
	}

	/* Step 6: check before storing: the certificate chains to the root
	 * this device trusts, and it certifies the key it asked for. */
	j = json_loads(reply, 0, NULL);
	cert_pem = j ? json_string_value(json_object_get(j, "certificate")) :
	    NULL;
	chain_pem = j ? json_string_value(json_object_get(j, "chain")) : NULL;
	if (cert_pem == NULL || chain_pem == NULL) {
		fprintf(stderr, "fleetcert-device: bad re-enrolment answer\n");
		goto out;
	}
	if (check_certificate(cert_pem, chain_pem, root, se.csr_key, why,
	    sizeof(why)) != 0) {
		fprintf(stderr, "fleetcert-device: refusing the certificate: "
		    "%s\n", why);
		goto out;
	}

	/* Step 7: store it (nvs_set_blob + nvs_commit on the device; here a
	 * file written atomically) and use it on the next connection. */
	if (fc_file_write_atomic(out, cert_pem, strlen(cert_pem), 0644) !=
	    FC_OK || (chain_out != NULL && fc_file_write_atomic(chain_out,
	    chain_pem, strlen(chain_pem), 0644) != FC_OK)) {
		fprintf(stderr, "fleetcert-device: cannot store the "
		    "certificate\n");
		goto out;
	}
	printf("%s %s %s\n", json_string_value(json_object_get(j, "serial")),
	    json_string_value(json_object_get(j, "notAfter")),
	    json_string_value(json_object_get(j, "renewAfter")));
	rc = EXIT_STORED;
out:
	json_decref(j);
	net_close(net);
	free(body);
	free(reply);
	free(nonce);
	free(csr);
	free(csr64);
	free(sig64);
	EVP_PKEY_free(se.slot0);
	EVP_PKEY_free(se.csr_key);
	curl_global_cleanup();
	return rc;
}
