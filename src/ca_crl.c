/*
 * ca_crl.c — CRL v2 (RFC 5280 5.1): entries are encoded as they are added,
 * so a CRL of millions of entries costs one pass and one signature; and
 * the CRL files (DER + PEM, each written atomically).
 * Builds run in the signer process (and in tests, in process); files are
 * written by the main process.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_priv.h"
#include "log.h"

struct ca_crl {
	struct ca	*ca;
	uint64_t	 number;
	int		 validity_hours;
	size_t		 count;
	struct der_buf	 entries;	/* revokedCertificates content */
};

static const unsigned char oid_crl_number[] = { 0x55, 0x1d, 0x14 };
static const unsigned char oid_aki[] = { 0x55, 0x1d, 0x23 };

enum fc_err
ca_crl_begin(struct ca *ca, uint64_t crl_number, int validity_hours,
    struct ca_crl **out)
{
	struct ca_crl *crl;

	if (validity_hours < 1 || validity_hours > 8760)
		return FC_EINVAL;
	crl = calloc(1, sizeof(*crl));
	if (crl == NULL)
		return FC_ENOMEM;
	crl->ca = ca;
	crl->number = crl_number;
	crl->validity_hours = validity_hours;
	*out = crl;
	return FC_OK;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum fc_err
ca_crl_add(struct ca_crl *crl, const struct ca_crl_entry *e)
{
	unsigned char serial[20];
	char hex[FC_CERT_SERIAL_MAX + 1];
	size_t n, i, nb, m;
	int hi, lo;

	n = strnlen(e->serial, FC_CERT_SERIAL_MAX);
	if (n == 0 || n >= FC_CERT_SERIAL_MAX)
		return FC_EINVAL;
	/* An odd number of digits gets a leading zero. */
	snprintf(hex, sizeof(hex), "%s%s", n % 2 ? "0" : "", e->serial);
	nb = (n + 1) / 2;
	for (i = 0; i < nb; i++) {
		hi = hexval(hex[2 * i]);
		lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return FC_EINVAL;
		serial[i] = (unsigned char)(hi << 4 | lo);
	}
	/* Reason 7 is unassigned; times must fit GeneralizedTime (9999). */
	if (e->reason < 0 || e->reason > 10 || e->reason == 7 ||
	    e->revoked_at < 0 || e->revoked_at > 253402300799LL)
		return FC_EINVAL;

	m = der_open(&crl->entries, DER_SEQUENCE);
	der_uint(&crl->entries, DER_INTEGER, serial, nb);
	der_time(&crl->entries, (time_t)e->revoked_at);
	/* 5.3.1: reasonCode; "unspecified" is left out. */
	if (e->reason != CA_REASON_UNSPECIFIED) {
		unsigned char ext[] = { 0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55,
		    0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, (unsigned char)e->reason };
		der_put(&crl->entries, ext, sizeof(ext));
	}
	der_close(&crl->entries, m);
	if (crl->entries.err)
		return FC_ENOMEM;
	crl->count++;
	return FC_OK;
}

enum fc_err
ca_crl_finish(struct ca_crl *crl, unsigned char **der, size_t *len)
{
	static const unsigned char version[] = { 0x02, 0x01, 0x01 };
	struct ca *ca = crl->ca;
	struct der_buf tbs = { 0 }, out = { 0 };
	time_t now = fc_now();
	size_t m, m2, m3, m4, m5;
	enum fc_err result;

	m = der_open(&tbs, DER_SEQUENCE);
	der_put(&tbs, version, sizeof(version));
	der_put(&tbs, ca->sigalg, ca->sigalg_len);
	der_put(&tbs, ca->subject_der, ca->subject_len);
	der_time(&tbs, now);
	der_time(&tbs, now + (time_t)crl->validity_hours * 3600);
	/* 5.1.2.6: absent, not empty, when nothing is revoked. */
	if (crl->count > 0)
		der_tlv(&tbs, DER_SEQUENCE, crl->entries.p, crl->entries.len);
	m2 = der_open(&tbs, 0xa0);
	m3 = der_open(&tbs, DER_SEQUENCE);
	/* 5.2.1 AKI keyIdentifier; 5.2.3 cRLNumber. */
	m4 = der_open(&tbs, DER_SEQUENCE);
	der_tlv(&tbs, DER_OID, oid_aki, sizeof(oid_aki));
	m5 = der_open(&tbs, DER_OCTETSTRING);
	{
		size_t s = der_open(&tbs, DER_SEQUENCE);
		der_tlv(&tbs, 0x80, ca->key_id, ca->key_id_len);
		der_close(&tbs, s);
	}
	der_close(&tbs, m5);
	der_close(&tbs, m4);
	m4 = der_open(&tbs, DER_SEQUENCE);
	der_tlv(&tbs, DER_OID, oid_crl_number, sizeof(oid_crl_number));
	m5 = der_open(&tbs, DER_OCTETSTRING);
	der_uint64(&tbs, DER_INTEGER, crl->number);
	der_close(&tbs, m5);
	der_close(&tbs, m4);
	der_close(&tbs, m3);
	der_close(&tbs, m2);
	der_close(&tbs, m);
	result = FC_ENOMEM;
	if (tbs.err)
		goto out;
	m = der_open(&out, DER_SEQUENCE);
	der_put(&out, tbs.p, tbs.len);
	result = ca_sign_append(ca, tbs.p, tbs.len, &out);
	if (result != FC_OK)
		goto out;
	der_close(&out, m);
	result = FC_ENOMEM;
	if (out.err)
		goto out;
	log_info("ca: CRL %llu signed: %zu entries, %zu bytes",
	    (unsigned long long)crl->number, crl->count, out.len);
	*der = out.p;
	*len = out.len;
	out.p = NULL;
	result = FC_OK;
out:
	der_buf_free(&tbs);
	der_buf_free(&out);
	return result;
}

void
ca_crl_free(struct ca_crl *crl)
{
	if (crl == NULL)
		return;
	der_buf_free(&crl->entries);
	free(crl);
}

int
ca_reason_parse(const char *name)
{
	static const struct { const char *name; int code; } reasons[] = {
		{ "unspecified", CA_REASON_UNSPECIFIED },
		{ "keyCompromise", CA_REASON_KEY_COMPROMISE },
		{ "cACompromise", CA_REASON_CA_COMPROMISE },
		{ "affiliationChanged", CA_REASON_AFFILIATION_CHANGED },
		{ "superseded", CA_REASON_SUPERSEDED },
		{ "cessationOfOperation", CA_REASON_CESSATION_OF_OPERATION },
		{ "certificateHold", CA_REASON_CERTIFICATE_HOLD },
		{ "privilegeWithdrawn", CA_REASON_PRIVILEGE_WITHDRAWN },
	};
	size_t i;

	for (i = 0; i < FC_ARRAY_LEN(reasons); i++)
		if (strcmp(name, reasons[i].name) == 0)
			return reasons[i].code;
	return -1;
}

enum fc_err
ca_crl_write(const char *path, const unsigned char *der, size_t len)
{
	char *pem_path = NULL, *b64 = NULL;
	struct der_buf pem = { 0 };
	enum fc_err result;
	size_t i, n;

	result = fc_b64_encode(der, len, &b64);
	if (result != FC_OK)
		return result;
	der_put(&pem, "-----BEGIN X509 CRL-----\n", 25);
	n = strlen(b64);
	for (i = 0; i < n; i += 64) {
		der_put(&pem, b64 + i, n - i < 64 ? n - i : 64);
		der_put(&pem, "\n", 1);
	}
	der_put(&pem, "-----END X509 CRL-----\n", 23);
	if (pem.err || asprintf(&pem_path, "%s.pem", path) < 0) {
		pem_path = NULL;
		result = FC_ENOMEM;
		goto out;
	}
	result = fc_file_write_atomic(path, der, len, 0644);
	if (result == FC_OK)
		result = fc_file_write_atomic(pem_path, pem.p, pem.len, 0644);
	if (result != FC_OK)
		log_error("ca: CRL %s: write failed", path);
out:
	free(b64);
	free(pem_path);
	der_buf_free(&pem);
	return result;
}
