/*
 * import_int.h — what the two import front ends (import_csv.c,
 * import_manifest.c) share with import.c: one record in neutral form, the
 * per-import context (duplicate sets, cached curve, transaction state), key
 * and certificate checks. Not for other modules.
 */
#ifndef FC_IMPORT_INT_H
#define FC_IMPORT_INT_H

#include <openssl/ec.h>
#include <openssl/x509.h>

#include "import.h"

#define IMPORT_P256_SPKI_LEN	91	/* 26-byte prefix + 04 || X || Y */
#define IMPORT_P256_PREFIX_LEN	26

#define IMPORT_CERT_MAX		16384	/* bytes of one certificate */

/* What import reads from a device certificate (import_cert.c). */
struct import_cert {
	int		 has_cn;		/* exactly one subject CN */
	char		 cn[FC_DEVICE_ID_MAX];
	unsigned char	*spki;			/* SubjectPublicKeyInfo DER */
	size_t		 spki_len;
	char		 serial[FC_CERT_SERIAL_MAX];	/* lower-case hex */
	int64_t		 not_before, not_after;
};

/* One device record; every pointer borrowed from the front end. NULL or
 * "" text means the field was empty. */
struct import_row {
	const char		*device_id;
	const char		*serial;
	const char		*auth_type;
	const char		*owner;
	const char		*batch;
	const char		*hub;
	const unsigned char	*key;		/* SPKI DER or NULL */
	size_t			 key_len;
	const struct import_cert *cert;		/* parsed, or NULL */
	const unsigned char	*cert_der;
	size_t			 cert_der_len;
};

/* A set of byte strings with the line that added each (import_dup.c). */
struct import_dupset {
	struct import_dupent	*slots;
	size_t			 cap;		/* power of two */
	size_t			 used;
	unsigned char		*arena;		/* the keys, back to back */
	size_t			 arena_len, arena_cap;
};

struct import_ctx {
	struct db			*db;
	const struct import_opts	*opts;
	struct import_result		*res;
	const char			*actor;
	EC_GROUP			*p256;
	EC_POINT			*point;
	BN_CTX				*bn;
	struct import_dupset		 ids, serials, certs, keys;
	long				 records;
	int				 bad;		/* a record failed */
	int				 fatal;		/* stop everything */
	int				 in_tx;
};

enum fc_err import_ctx_init(struct import_ctx *ctx, struct db *db,
    const struct import_opts *opts, struct import_result *res);
/*
 * Ends the import: commits when nothing failed (or skip_bad), else rolls
 * back; fixes the counts. Returns the import's overall result (see
 * import_csv). Frees the context.
 */
enum fc_err import_ctx_finish(struct import_ctx *ctx, enum fc_err fatal);

/* Records an error for line/index (index -1 for CSV). */
void import_err(struct import_ctx *ctx, long line, long index,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Validates one record, checks it for duplicates, and (unless an earlier
 * record failed in strict mode) inserts it. A bad record is reported with
 * import_err and FC_OK is returned; other codes are fatal (database, memory).
 */
enum fc_err import_row_apply(struct import_ctx *ctx, long line, long index,
    const struct import_row *r);

/*
 * Checks that der is an uncompressed, named-curve P-256 SPKI whose point is
 * on the curve. FC_OK, or FC_EINVAL with a reason in why.
 */
enum fc_err import_key_check(struct import_ctx *ctx, const unsigned char *der,
    size_t len, char *why, size_t whylen);

/* Builds the P-256 SPKI DER of the point 04 || x || y into out. */
void import_key_from_xy(const unsigned char x[32], const unsigned char y[32],
    unsigned char out[IMPORT_P256_SPKI_LEN]);

/*
 * Parses exactly len bytes of DER as an X.509 certificate into *out
 * (import_cert_clear it). FC_EINVAL with a reason in why; FC_ENOMEM.
 */
enum fc_err import_cert_parse(const unsigned char *der, size_t len,
    struct import_cert *out, char *why, size_t whylen);
void import_cert_clear(struct import_cert *c);

/*
 * Adds key (len < 65536 bytes) for line and sets *first = 0; if already
 * present sets *first to the line that added it. FC_ENOMEM.
 */
enum fc_err import_dupset_add(struct import_dupset *s, const void *key,
    size_t len, long line, long *first);
void import_dupset_free(struct import_dupset *s);

/* 1 if hub is empty (the default hub) or names a configured hub of o. */
int import_hub_known(const struct import_opts *o, const char *hub);

/* Writes value into out (cap bytes) for an error message: printable ASCII
 * only, shortened with "..." past 48 characters. */
void import_quote(char *out, size_t cap, const char *value, size_t len);

/* Decodes base64url without padding (RFC 7515 §2). Caller frees *out. */
enum fc_err import_b64url_decode(const char *in, size_t len,
    unsigned char **out, size_t *outlen);

#endif
