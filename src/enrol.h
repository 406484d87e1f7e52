/*
 * enrol.h — the re-enrolment endpoint of device-protocol.md §2:
 * POST /enrol/v1/challenge and POST /enrol/v1/reenrol. The protocol logic is
 * independent of HTTP: each handler takes the request body and the client's
 * address and produces an answer (status, JSON body, Retry-After); the HTTPS
 * listener (enrol_http.c on top of httpd.c) only carries bytes.
 * Thread-safe: any listener thread may call the handlers concurrently.
 */
#ifndef FC_ENROL_H
#define FC_ENROL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "fc.h"

struct cfg;
struct enrol;

/* Request bodies larger than this are refused (device-protocol.md §2). */
#define ENROL_BODY_MAX		16384
/* JSON nesting deeper than this is refused before it is parsed. */
#define ENROL_JSON_DEPTH_MAX	4
/* Largest CSR accepted (DER bytes). */
#define ENROL_CSR_MAX		8192
#define ENROL_NONCE_LEN		32
#define ENROL_SERIAL_RAW_LEN	9
#define ENROL_DIGEST_LEN	32
/* m = tag || nonce || serial || SHA-256(csr): 20 + 32 + 9 + 32 bytes. */
#define ENROL_TAG		"fleetcert-reenrol-v1"
#define ENROL_TAG_LEN		20
#define ENROL_MSG_LEN		93
/* Failures for one serial within an hour that make it an anomaly. */
#define ENROL_ANOMALY_FAILURES	3

/* ---- Protocol pieces (enrol_proto.c): pure functions, no state. ---- */

enum enrol_req_kind { ENROL_REQ_CHALLENGE = 0, ENROL_REQ_REENROL };

/* A request, decoded and checked for form (not yet for proof). */
struct enrol_req {
	char		 serial[FC_SE_SERIAL_LEN];	/* canonical text */
	unsigned char	 serial_raw[ENROL_SERIAL_RAW_LEN];
	unsigned char	 nonce[ENROL_NONCE_LEN];	/* reenrol only */
	unsigned char	*csr;				/* DER, owned */
	size_t		 csr_len;
	unsigned char	 sig[64];			/* R || S */
	int		 sig_was_der;			/* DER on the wire */
};

/*
 * Parses a request body of kind. Strict: at most ENROL_BODY_MAX bytes, valid
 * UTF-8 JSON, nesting at most ENROL_JSON_DEPTH_MAX, one object with exactly
 * the protocol's fields (no more, no duplicates), string values, strict
 * base64, exact lengths. On FC_OK *out is filled (enrol_req_clear it); on
 * FC_EINVAL *why receives a static, client-safe reason. FC_ENOMEM.
 */
enum fc_err enrol_req_parse(const char *body, size_t len,
    enum enrol_req_kind kind, struct enrol_req *out, const char **why);
void enrol_req_clear(struct enrol_req *r);

/* Builds m (ENROL_MSG_LEN bytes) and d = SHA-256(m) from the decoded nonce,
 * raw serial and CSR DER. m may be NULL. */
void enrol_digest(const unsigned char nonce[ENROL_NONCE_LEN],
    const unsigned char serial[ENROL_SERIAL_RAW_LEN],
    const unsigned char *csr, size_t csr_len,
    unsigned char m[ENROL_MSG_LEN], unsigned char d[ENROL_DIGEST_LEN]);

/*
 * Takes a signature as sent: 64 raw bytes R || S, or a DER ECDSA-Sig-Value
 * in its one canonical encoding, and writes R || S. FC_OK or FC_EINVAL.
 */
enum fc_err enrol_sig_decode(const unsigned char *in, size_t len,
    unsigned char out[64]);

/* Verifies R || S over the digest d with key (EC P-256). FC_OK if valid,
 * FC_ECRYPTO if not (nothing logged: the caller audits the cause). */
enum fc_err enrol_sig_verify(EVP_PKEY *key,
    const unsigned char d[ENROL_DIGEST_LEN], const unsigned char sig[64]);

/* A CSR's parts, pointing into its DER (valid while the DER is). */
struct enrol_csr {
	const unsigned char	*spki;		/* SubjectPublicKeyInfo TLV */
	size_t			 spki_len;
	const unsigned char	*tbs;		/* CertificationRequestInfo */
	size_t			 tbs_len;
	const unsigned char	*sig;		/* signature BIT STRING bytes */
	size_t			 sig_len;
	int			 ecdsa_sha256;	/* signed with ecdsa-with-SHA256 */
};

/*
 * Checks the strict DER structure of a PKCS#10 request (RFC 2986), without
 * decoding the key: FC_OK with *out filled, or FC_EINVAL.
 */
enum fc_err enrol_csr_parse(const unsigned char *der, size_t len,
    struct enrol_csr *out);

/* Verifies the CSR's ecdsa-with-SHA256 self-signature with key (which must
 * be the key its SPKI holds). FC_OK or FC_ECRYPTO (any other algorithm). */
enum fc_err enrol_csr_verify(const struct enrol_csr *c, EVP_PKEY *key);

/*
 * The general path, for a key the inventory does not hold:
 * parses a DER PKCS#10 CSR (exactly len bytes, nothing trailing). FC_EINVAL
 * if unparsable. On FC_OK, *spki (malloc'd SubjectPublicKeyInfo DER, caller
 * frees) and *self_sig_ok (1 if the CSR's self-signature verifies with its
 * own key, else 0) are set.
 */
enum fc_err enrol_csr_inspect(const unsigned char *der, size_t len,
    unsigned char **spki, size_t *spki_len, int *self_sig_ok);

/* ---- The endpoint (enrol.c). ---- */

/* A signed certificate as the issuer hands it back. der is malloc'd. */
struct enrol_issued {
	unsigned char	*der;
	size_t		 der_len;
	int64_t		 not_before, not_after;
	char		 sha1[FC_SHA1_HEX];	/* upper-case hex */
	char		 sha256[FC_SHA256_HEX];
};

/*
 * How the endpoint gets certificates signed. main.c wires this to the
 * signer process (the CA key never enters the listener's process); tests
 * may wire it to an in-process CA. Both callbacks may be called from any
 * listener thread at once.
 */
struct enrol_issuer {
	/* A fresh certificate serial (lower-case hex). FC_OK or FC_ECRYPTO. */
	enum fc_err	(*serial_new)(void *arg, char out[FC_CERT_SERIAL_MAX]);
	/* Signs a certificate with serial, CN device_id, for the public key
	 * spki (already proven). On FC_OK *out is filled (free out->der). */
	enum fc_err	(*issue)(void *arg, const char *serial,
			    const char *device_id, const char *se_serial,
			    const unsigned char *spki, size_t spki_len,
			    struct enrol_issued *out);
	void		*arg;
	const char	*chain_pem;	/* returned to devices; caller keeps it */
};

/* An answer: HTTP status, JSON body (malloc'd, NUL-terminated) and, for
 * 429, the seconds of Retry-After (else 0). */
struct enrol_answer {
	int	 status;
	char	*body;
	size_t	 body_len;
	int	 retry_after;
};
void enrol_answer_clear(struct enrol_answer *a);

/* Counters for metrics (monotonic since start). */
struct enrol_stats {
	uint64_t	challenges;	/* nonces handed out */
	uint64_t	reenrolled;	/* certificates issued */
	uint64_t	bad_requests;	/* 400 */
	uint64_t	rejected;	/* 401 */
	uint64_t	forbidden;	/* 403 */
	uint64_t	limited;	/* 429 */
	uint64_t	failed;		/* 500/503 */
	uint64_t	anomalies;	/* a serial reached ENROL_ANOMALY_FAILURES
					   failures within an hour */
};

/*
 * Creates the endpoint from cfg's [enrol] (challenge_ttl_seconds,
 * allow_new_key, per_serial_per_hour, per_address_per_minute),
 * [renewal] renew_before_days and jitter_days (for renewAfter), [database] path and the
 * [hub] sections (self-signed devices' thumbprints): cfg must outlive the
 * endpoint. Handlers called without a connection borrow one from a small
 * pool. issuer is copied. On FC_OK *out is set; enrol_free it.
 */
enum fc_err enrol_new(const struct cfg *cfg, const struct enrol_issuer *issuer,
    struct enrol **out);
void enrol_free(struct enrol *e);

/*
 * Applies a reloaded configuration (SIGHUP) while requests run: challenge
 * TTL, allow_new_key, the two rate limits (counts so far are kept),
 * renewAfter's settings and the hub sections. cfg must outlive e (main.c
 * keeps retired configurations). Listen address and TLS files apply at
 * restart. FC_OK.
 */
enum fc_err enrol_reconfigure(struct enrol *e, const struct cfg *cfg);
/* A reloaded CA (SIGHUP): answers from now on carry chain_pem (not
 * copied; the caller keeps every chain it set alive until enrol_free). */
void enrol_chain_set(struct enrol *e, const char *chain_pem);

/*
 * The two handlers. db is the calling thread's connection, or NULL to borrow
 * one from the endpoint's pool. peer is the client's address as text (rate
 * limit per address, audit). They always fill *ans (on internal failure
 * with 500), and return FC_OK unless the answer itself could not be built
 * (FC_ENOMEM: answer 500 without a body).
 */
struct db;
enum fc_err enrol_challenge(struct enrol *e, struct db *db, const char *body,
    size_t len, const char *peer, struct enrol_answer *ans);
enum fc_err enrol_reenrol(struct enrol *e, struct db *db, const char *body,
    size_t len, const char *peer, struct enrol_answer *ans);

/* Copies the counters. */
void enrol_stats_get(struct enrol *e, struct enrol_stats *out);

/* Failures counted for one serial (canonical text) in the current hour. */
int enrol_serial_failures(struct enrol *e, const char *serial);

/*
 * Start-up recovery, called before the listener starts: voids the
 * re-enrolments a crash interrupted (inv_enrol_recover) and purges expired
 * challenges. *voided (may be NULL) gets how many rows were voided.
 */
enum fc_err enrol_recover(struct db *db, int *voided);

#endif
