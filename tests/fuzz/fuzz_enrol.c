/*
 * fuzz_enrol.c — libFuzzer harness for what the re-enrolment endpoint reads
 * from the network before any proof: the request parser (both bodies), the
 * signature decoder and the CSR path (DER parse, self-signature, key
 * extraction), and the digest/verify step on whatever parsed.
 * The first input byte picks the target; the rest is the input.
 * Built and run by tests/fuzz/run.sh with clang -fsanitize=fuzzer,address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "enrol.h"

static EVP_PKEY *key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct enrol_req r;
	const char *why;
	unsigned char *spki = NULL, sig[64], d[ENROL_DIGEST_LEN];
	size_t spki_len;
	int ok;

	if (key == NULL)
		key = EVP_EC_gen("P-256");
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:	/* challenge body */
		if (enrol_req_parse((const char *)data + 1, size - 1,
		    ENROL_REQ_CHALLENGE, &r, &why) == FC_OK)
			enrol_req_clear(&r);
		break;
	case 1:	/* re-enrol body, then everything the handler does with it
		 * before touching the database */
		if (enrol_req_parse((const char *)data + 1, size - 1,
		    ENROL_REQ_REENROL, &r, &why) != FC_OK)
			break;
		{
			struct enrol_csr c;
			if (enrol_csr_parse(r.csr, r.csr_len, &c) == FC_OK)
				(void)enrol_csr_verify(&c, key);
		}
		if (enrol_csr_inspect(r.csr, r.csr_len, &spki, &spki_len,
		    &ok) == FC_OK)
			free(spki);
		enrol_digest(r.nonce, r.serial_raw, r.csr, r.csr_len, NULL, d);
		(void)enrol_sig_verify(key, d, r.sig);
		enrol_req_clear(&r);
		break;
	case 2:	/* the CSR paths on raw DER: the structural parse with the
		 * fast self-signature check, and the general OpenSSL one */
		{
			struct enrol_csr c;
			if (enrol_csr_parse(data + 1, size - 1, &c) == FC_OK)
				(void)enrol_csr_verify(&c, key);
		}
		if (enrol_csr_inspect(data + 1, size - 1, &spki, &spki_len,
		    &ok) == FC_OK)
			free(spki);
		break;
	case 3:	/* signature encodings */
		if (enrol_sig_decode(data + 1, size - 1, sig) == FC_OK) {
			memset(d, 0, sizeof(d));
			(void)enrol_sig_verify(key, d, sig);
		}
		break;
	}
	return 0;
}
