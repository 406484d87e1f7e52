/*
 * ca.h — the issuing (intermediate) CA of fleetcert, in process: load the CA
 * certificate, chain and key (PEM or PKCS#11 through libp11's engine), issue
 * device certificates in the profile of issue 3 / DESIGN.md, build CRLs.
 *
 * In the daemon only the signer process (signer.c) loads the key; the main
 * process may load the certificate alone (CA_LOAD_CERT_ONLY) for the chain
 * and the CA's dates. Tests and tools may use everything in process.
 * A struct ca is used by one thread at a time.
 */
#ifndef FC_CA_H
#define FC_CA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "fc.h"

struct cfg;
struct ca;

/* Certificate serials: 128 bits (48 bits of Unix milliseconds, then 80
 * random bits) as 32 lower-case hex digits, first octet never zero (so the
 * hex form is canonical). */
#define CA_SERIAL_HEX_LEN	32
/* Largest CSR or SPKI accepted, in bytes. */
#define CA_INPUT_MAX		8192
/* Largest device certificate produced. */
#define CA_CERT_MAX		4096
/* notBefore is backdated by this much (clock skew of devices). */
#define CA_BACKDATE_SECONDS	300

enum ca_load_flags {
	CA_LOAD_CERT_ONLY = 1 << 0,	/* no private key (main process) */
};

/*
 * Loads [ca] certificate, chain and (unless CA_LOAD_CERT_ONLY) the key of
 * cfg: a PEM file read like any secret (cfg_secret_read: refused when
 * others may read it; a bare name is a systemd credential), encrypted ones
 * with key_passphrase_file, or a pkcs11: URI
 * (PIN from key_pin_file, never from the URI; "module-path" in the URI's
 * query selects the PKCS#11 module, default p11-kit's proxy). Checks that
 * the key matches the certificate and that it is a CA certificate.
 * On FC_OK *out is set (ca_free it). On failure a one-line reason without
 * secrets is written into why (whylen bytes) and also logged.
 */
enum fc_err ca_load(const struct cfg *cfg, int flags, struct ca **out,
    char *why, size_t whylen);
/* Frees everything; finishes and frees the PKCS#11 engine. NULL: no-op. */
void ca_free(struct ca *ca);

/* The CA's validity end, its chain as PEM (intermediate first; owned by ca,
 * NUL-terminated) and the configured validity ceiling in days. */
time_t ca_not_after(const struct ca *ca);
const char *ca_chain_pem(const struct ca *ca);
int ca_validity_days(const struct ca *ca);
int ca_crl_validity_hours(const struct ca *ca);

/*
 * A new certificate serial (CA_SERIAL_HEX_LEN lower-case hex digits + NUL):
 * the time in milliseconds, then 80 bits from the CSPRNG. Called by the
 * main process, which reserves it in the database before asking the
 * signer. FC_ECRYPTO if the RNG fails.
 */
enum fc_err ca_serial_new(char out[FC_CERT_SERIAL_MAX]);
/* 1 if s has the form ca_serial_new() produces, else 0. */
int ca_serial_valid(const char *s);

/* What to issue. Exactly one of spki (same-key renewal: a DER
 * SubjectPublicKeyInfo) or csr (a DER PKCS#10 request: its self-signature
 * is verified, only its key is used) is set. */
struct ca_issue_req {
	const char		*serial;	/* from ca_serial_new() */
	const char		*device_id;	/* becomes CN */
	const char		*se_serial;	/* canonical, 18 hex digits */
	int			 validity_days;	/* 0: the configured value */
	const unsigned char	*spki;
	size_t			 spki_len;
	const unsigned char	*csr;
	size_t			 csr_len;
};

/* An issued certificate. */
struct ca_cert {
	unsigned char	*der;
	size_t		 der_len;
	char		 serial[FC_CERT_SERIAL_MAX];	/* lower-case hex */
	time_t		 not_before;
	time_t		 not_after;
	char		 sha1[FC_SHA1_HEX];	/* upper-case hex: IoT Hub thumbprint */
	char		 sha256[FC_SHA256_HEX];	/* upper-case hex */
};

/*
 * Checks req (device id, SE serial, serial format, validity within the
 * configured ceiling and the CA's own notAfter, key type: EC P-256/P-384
 * or RSA >= 2048) and signs a device certificate. On FC_OK *out is a new
 * certificate (ca_cert_free it). On refusal returns FC_EINVAL (bad input),
 * FC_ECONFLICT (would outlive the CA) or FC_ECRYPTO (signing failed) and
 * writes the reason into why.
 */
enum fc_err ca_cert_issue(struct ca *ca, const struct ca_issue_req *req,
    struct ca_cert **out, char *why, size_t whylen);
void ca_cert_free(struct ca_cert *cert);

/* Fills serial, dates and fingerprints of cert from cert->der (which the
 * caller set). FC_EINVAL if the DER is not a certificate. */
enum fc_err ca_cert_fill(struct ca_cert *cert);

/* RFC 5280 5.3.1 CRLReason; CA_REASON_UNSPECIFIED is not encoded. */
enum ca_reason {
	CA_REASON_UNSPECIFIED = 0,
	CA_REASON_KEY_COMPROMISE = 1,
	CA_REASON_CA_COMPROMISE = 2,
	CA_REASON_AFFILIATION_CHANGED = 3,
	CA_REASON_SUPERSEDED = 4,
	CA_REASON_CESSATION_OF_OPERATION = 5,
	CA_REASON_CERTIFICATE_HOLD = 6,
	CA_REASON_PRIVILEGE_WITHDRAWN = 9,
};
/* "keyCompromise" etc. to the enum; -1 when unknown. */
int ca_reason_parse(const char *name);

struct ca_crl_entry {
	char	serial[FC_CERT_SERIAL_MAX];	/* hex, any case, 1-40 digits */
	int64_t	revoked_at;
	int	reason;				/* enum ca_reason */
};

/*
 * A CRL under construction: ca_crl_begin, any number of ca_crl_add, then
 * ca_crl_finish, which signs it (thisUpdate = now, nextUpdate = now +
 * crl_validity_hours) and hands the DER to the caller (free() it).
 * ca_crl_free discards a builder (NULL: no-op). FC_EINVAL for a bad entry
 * (the builder stays usable), FC_ECRYPTO if signing fails.
 */
struct ca_crl;
enum fc_err ca_crl_begin(struct ca *ca, uint64_t crl_number,
    int validity_hours, struct ca_crl **out);
enum fc_err ca_crl_add(struct ca_crl *crl, const struct ca_crl_entry *e);
enum fc_err ca_crl_finish(struct ca_crl *crl, unsigned char **der,
    size_t *len);
void ca_crl_free(struct ca_crl *crl);

/* Writes der to path (DER) and path.pem (PEM), each atomically (temp file,
 * fsync, rename), mode 0644. FC_EIO/FC_ENOMEM. */
enum fc_err ca_crl_write(const char *path, const unsigned char *der,
    size_t len);

/*
 * Low level, for the signer and the CRL builder: signs tbs with the CA key
 * and appends the AlgorithmIdentifier and BIT STRING of a signed object
 * (RFC 5280 4.1.1.2/4.1.1.3) to out. FC_ECRYPTO on failure (logged).
 */
struct der_buf;
enum fc_err ca_sign_append(struct ca *ca, const unsigned char *tbs,
    size_t tbs_len, struct der_buf *out);
/* The CA's subject Name and key identifier, DER / raw bytes owned by ca. */
const unsigned char *ca_subject_der(const struct ca *ca, size_t *len);
const unsigned char *ca_key_id(const struct ca *ca, size_t *len);
const unsigned char *ca_sigalg_der(const struct ca *ca, size_t *len);

#endif
