/*
 * import_cert.c — reads the fields import needs from a device certificate
 * (subject CN, SubjectPublicKeyInfo, serial, validity) with OpenSSL's ASN.1
 * template decoder, but without d2i_X509: OpenSSL 3's d2i_X509 decodes the
 * subject key through the provider decoder layer (~100 µs, most of a
 * certificate row's cost; performance-ceilings.md), and import checks the
 * P-256 key itself from its fixed DER form. The structure decoded is RFC
 * 5280 §4.1 Certificate; the input must be DER (it is re-encoded and
 * compared) so that fingerprints are those of the one canonical encoding.
 * Runs on the calling thread; no global state.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "import_int.h"

struct lite_spki {
	X509_ALGOR		*alg;
	ASN1_BIT_STRING		*key;
};

struct lite_tbs {
	ASN1_INTEGER		*version;
	ASN1_INTEGER		*serial;
	X509_ALGOR		*sig_alg;
	X509_NAME		*issuer;
	X509_VAL		*validity;
	X509_NAME		*subject;
	struct lite_spki	*spki;
	ASN1_BIT_STRING		*issuer_uid;
	ASN1_BIT_STRING		*subject_uid;
	STACK_OF(X509_EXTENSION) *exts;
};

struct lite_cert {
	struct lite_tbs		*tbs;
	X509_ALGOR		*sig_alg;
	ASN1_BIT_STRING		*sig;
};

typedef struct lite_spki LITE_SPKI;	/* the ASN.1 macros want these names */
typedef struct lite_tbs LITE_TBS;
typedef struct lite_cert LITE_CERT;

ASN1_SEQUENCE(LITE_SPKI) = {
	ASN1_SIMPLE(LITE_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(LITE_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(LITE_SPKI)

/* RFC 5280 §4.1: TBSCertificate. */
ASN1_SEQUENCE(LITE_TBS) = {
	ASN1_EXP_OPT(LITE_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(LITE_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(LITE_TBS, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(LITE_TBS, issuer, X509_NAME),
	ASN1_SIMPLE(LITE_TBS, validity, X509_VAL),
	ASN1_SIMPLE(LITE_TBS, subject, X509_NAME),
	ASN1_SIMPLE(LITE_TBS, spki, LITE_SPKI),
	ASN1_IMP_OPT(LITE_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(LITE_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(LITE_TBS, exts, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(LITE_TBS)

ASN1_SEQUENCE(LITE_CERT) = {
	ASN1_SIMPLE(LITE_CERT, tbs, LITE_TBS),
	ASN1_SIMPLE(LITE_CERT, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(LITE_CERT, sig, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(LITE_CERT)

void
import_cert_clear(struct import_cert *c)
{
	if (c == NULL)
		return;
	OPENSSL_free(c->spki);
	memset(c, 0, sizeof(*c));
}

static int
asn1_time_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	*out = (int64_t)timegm(&tm);
	return 1;
}

/* The single subject CN as UTF-8; 0 if none, several, or unusable. */
static int
subject_cn(X509_NAME *n, char *out, size_t cap)
{
	unsigned char *utf8 = NULL;
	int i, len, ok = 0;

	i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	if (i < 0 || X509_NAME_get_index_by_NID(n, NID_commonName, i) >= 0)
		return 0;
	len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
	if (len > 0 && (size_t)len < cap &&
	    memchr(utf8, 0, (size_t)len) == NULL) {
		memcpy(out, utf8, (size_t)len);
		out[len] = '\0';
		ok = 1;
	}
	OPENSSL_free(utf8);
	return ok;
}

enum fc_err
import_cert_parse(const unsigned char *der, size_t len,
    struct import_cert *out, char *why, size_t whylen)
{
	const ASN1_ITEM *it = ASN1_ITEM_rptr(LITE_CERT);
	const unsigned char *p = der;
	unsigned char *re = NULL;
	struct import_cert c;
	LITE_CERT *x = NULL;
	LITE_TBS *t;
	long version = 0;
	int relen, snlen;
	enum fc_err result = FC_EINVAL;

	memset(&c, 0, sizeof(c));
	if (len == 0 || len > IMPORT_CERT_MAX) {
		snprintf(why, whylen, "certificate is empty or larger than %d "
		    "bytes", IMPORT_CERT_MAX);
		return FC_EINVAL;
	}
	x = (LITE_CERT *)ASN1_item_d2i(NULL, &p, (long)len, it);
	if (x == NULL || p != der + len) {
		snprintf(why, whylen, "certificate is not a DER X.509 "
		    "certificate");
		goto out;
	}
	relen = ASN1_item_i2d((ASN1_VALUE *)x, &re, it);
	if (relen != (int)len || memcmp(re, der, len) != 0) {
		snprintf(why, whylen, "certificate is not in DER (distinguished) "
		    "encoding");
		goto out;
	}
	t = x->tbs;
	/* RFC 5280 §4.1.2.1: unique ids need v2 or v3, extensions v3. */
	if (t->version != NULL)
		version = ASN1_INTEGER_get(t->version);
	if (version < 0 || version > 2 ||
	    (t->exts != NULL && version != 2) ||
	    ((t->issuer_uid != NULL || t->subject_uid != NULL) && version < 1)) {
		snprintf(why, whylen, "certificate version does not match its "
		    "fields");
		goto out;
	}
	snlen = ASN1_STRING_length(t->serial);
	if (ASN1_STRING_type(t->serial) != V_ASN1_INTEGER || snlen < 1 ||
	    snlen > 20) {
		snprintf(why, whylen, "certificate serial must be positive and "
		    "at most 20 octets (RFC 5280 4.1.2.2)");
		goto out;
	}
	fc_hex(ASN1_STRING_get0_data(t->serial), (size_t)snlen, c.serial, 0);
	if (!asn1_time_unix(t->validity->notBefore, &c.not_before) ||
	    !asn1_time_unix(t->validity->notAfter, &c.not_after) ||
	    c.not_after < c.not_before) {
		snprintf(why, whylen, "certificate validity is malformed");
		goto out;
	}
	c.has_cn = subject_cn(t->subject, c.cn, sizeof(c.cn));
	relen = ASN1_item_i2d((ASN1_VALUE *)t->spki, &c.spki,
	    ASN1_ITEM_rptr(LITE_SPKI));
	if (relen <= 0) {
		result = FC_ENOMEM;
		goto out;
	}
	c.spki_len = (size_t)relen;
	*out = c;
	memset(&c, 0, sizeof(c));
	result = FC_OK;
out:
	ERR_clear_error();
	import_cert_clear(&c);
	OPENSSL_free(re);
	ASN1_item_free((ASN1_VALUE *)x, it);
	return result;
}
