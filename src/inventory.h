/*
 * inventory.h — devices and certificates: the only module (with db.c and
 * audit.c) that holds SQL for them. Every state change writes its audit entry
 * in the same transaction. Functions that change several rows open a
 * transaction of their own when the caller has none (db_begin nests).
 */
#ifndef FC_INVENTORY_H
#define FC_INVENTORY_H

#include <stdint.h>

#include "db.h"
#include "fc.h"

enum inv_dev_status {
	INV_DEV_ACTIVE = 0, INV_DEV_SUSPENDED, INV_DEV_REVOKED,
	INV_DEV_DECOMMISSIONED,
};
enum inv_auth { INV_AUTH_CA = 0, INV_AUTH_SELFSIGNED };
enum inv_cert_status {
	INV_CERT_RESERVED = 0, INV_CERT_PENDING, INV_CERT_DELIVERED,
	INV_CERT_ACTIVE, INV_CERT_SUPERSEDED, INV_CERT_REVOKED,
	INV_CERT_EXPIRED,
};
enum inv_issuer {
	INV_ISSUED_RENEWAL = 0, INV_ISSUED_REENROLMENT, INV_ISSUED_IMPORT,
	INV_ISSUED_OPERATOR,
};

struct inv_device {
	char		 device_id[FC_DEVICE_ID_MAX];
	char		 se_serial[FC_SE_SERIAL_LEN];
	char		 hub[FC_NAME_MAX];		/* "" = default hub */
	enum inv_auth	 auth_type;
	unsigned char	*identity_key;			/* SPKI DER, owned */
	size_t		 identity_key_len;
	char		 owner[FC_NAME_MAX];
	char		 batch[FC_NAME_MAX];
	enum inv_dev_status status;
	int		 rekey;
	int		 needs_reenrol;
	int64_t		 created_at, updated_at;
};

struct inv_cert {
	char		 serial[FC_CERT_SERIAL_MAX];
	char		 device_id[FC_DEVICE_ID_MAX];
	unsigned char	*der;				/* owned; NULL if reserved */
	size_t		 der_len;
	int64_t		 not_before, not_after;
	char		 sha1[FC_SHA1_HEX];		/* upper-case hex */
	char		 sha256[FC_SHA256_HEX];
	enum inv_cert_status status;
	int64_t		 revoked_at;			/* 0: not revoked */
	int		 revocation_reason;		/* RFC 5280 CRLReason */
	enum inv_issuer	 issued_by;
	char		 renewed_from[FC_CERT_SERIAL_MAX];	/* "" = none */
	int64_t		 created_at, updated_at;
	int64_t		 chain_id;	/* inv_chain_put; 0: none recorded
					 * (written by inv_renew_record only) */
};

/* Frees what the struct owns and zeroes it; NULL is a no-op. */
void inv_device_clear(struct inv_device *d);
void inv_cert_clear(struct inv_cert *c);

/* Names as stored and shown ("active", "selfsigned", "renewal", ...), and
 * their parsers (-1 when unknown). */
const char *inv_dev_status_name(enum inv_dev_status s);
int inv_dev_status_parse(const char *s);
const char *inv_auth_name(enum inv_auth a);
int inv_auth_parse(const char *s);
const char *inv_cert_status_name(enum inv_cert_status s);
int inv_cert_status_parse(const char *s);
const char *inv_issuer_name(enum inv_issuer i);

/* Checks a device's fields (id syntax, canonical SE serial, lengths).
 * FC_OK or FC_EINVAL with a message in err. */
enum fc_err inv_device_check(const struct inv_device *d, char *err,
    size_t errlen);

/*
 * Inserts a device (created/updated = now) and audits "device.create".
 * FC_ECONFLICT if the device id or the SE serial exists; FC_EINVAL if a
 * field is malformed.
 */
enum fc_err inv_device_insert(struct db *db, const struct inv_device *d,
    const char *actor);

/* Reads one device into *out (caller inv_device_clear()s it). FC_ENOTFOUND. */
enum fc_err inv_device_get(struct db *db, const char *device_id,
    struct inv_device *out);
enum fc_err inv_device_get_by_se_serial(struct db *db, const char *se_serial,
    struct inv_device *out);

/* Changes a device's status and audits "device.<status>" with reason. */
enum fc_err inv_device_set_status(struct db *db, const char *device_id,
    enum inv_dev_status status, const char *actor, const char *reason);
/* Changes the owner; audits "device.transfer". */
enum fc_err inv_device_set_owner(struct db *db, const char *device_id,
    const char *owner, const char *actor);
/* Sets or clears the needs-re-enrolment flag (no audit: derived state). */
enum fc_err inv_device_set_needs_reenrol(struct db *db, const char *device_id,
    int flag);

struct inv_device_filter {
	int		 status;		/* enum inv_dev_status, -1 any */
	const char	*owner;			/* NULL: any */
	const char	*batch;
	const char	*hub;
	int64_t		 expiring_before;	/* 0: any; else the active
						   cert's not_after < this */
};

/*
 * Lists devices after cursor (NULL or "" = from the start), at most limit
 * (1-1000): in device-id order, or, when expiring_before is set, in order of
 * the active certificate's notAfter (an index range scan). cb gets each
 * device and its current certificate (NULL if none; both valid only during
 * the call); cb returns non-zero to stop. When more may follow, next_cursor
 * receives an opaque cursor, else "". FC_EINVAL for a malformed cursor.
 */
#define INV_CURSOR_MAX	(FC_DEVICE_ID_MAX * 2 + 2)
enum fc_err inv_device_list(struct db *db, const struct inv_device_filter *f,
    const char *cursor, int limit,
    int (*cb)(void *arg, const struct inv_device *d, const struct inv_cert *c),
    void *arg, char next_cursor[INV_CURSOR_MAX]);

/*
 * Inserts a certificate row (created/updated = now) and audits
 * "cert.<issued_by>" (or "cert.reserve" for a reserved row). FC_ECONFLICT
 * if the serial exists (never reused), FC_ENOTFOUND if the device does not.
 */
enum fc_err inv_cert_insert(struct db *db, const struct inv_cert *c,
    const char *actor);

/* Fills a reserved row with its signed certificate; status becomes
 * `status` (normally pending). Audits "cert.issue". */
enum fc_err inv_cert_complete(struct db *db, const struct inv_cert *c,
    enum inv_cert_status status, const char *actor);

/* Reads one certificate (caller clears). FC_ENOTFOUND. */
enum fc_err inv_cert_get(struct db *db, const char *serial,
    struct inv_cert *out);

/*
 * The device's current certificate: its newest active one, else its newest
 * pending/delivered one. FC_ENOTFOUND if none.
 */
enum fc_err inv_cert_current(struct db *db, const char *device_id,
    struct inv_cert *out);

/* Calls cb for each certificate of a device, newest first. */
enum fc_err inv_cert_list_by_device(struct db *db, const char *device_id,
    int (*cb)(void *arg, const struct inv_cert *c), void *arg);

/* Changes a certificate's status; audits "cert.<status>" with detail. */
enum fc_err inv_cert_set_status(struct db *db, const char *serial,
    enum inv_cert_status status, const char *actor, const char *detail);

/* Revokes (any state but revoked): status revoked, time, reason; audits
 * "cert.revoke". FC_ECONFLICT if already revoked. */
enum fc_err inv_cert_revoke(struct db *db, const char *serial, int reason,
    const char *actor);

/*
 * Expiry histogram of active/delivered/pending certificates: counts of
 * not_after in [from + k*bucket, from + (k+1)*bucket) for k < nbuckets,
 * into counts[] (zeroed first); *before gets those already past `from`.
 */
enum fc_err inv_cert_expiry_histogram(struct db *db, int64_t from,
    int64_t bucket, int nbuckets, int64_t *counts, int64_t *before);

/* Counts certificates per status into counts[INV_CERT_EXPIRED + 1]. */
enum fc_err inv_cert_count_by_status(struct db *db, int64_t *counts);

#endif
