/*
 * inventory.c — SQL for devices and certificates. Any thread, on its own
 * connection. Every change writes its audit entry in the same transaction.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "inventory.h"
#include "log.h"

static const char *dev_status_names[] = {
	"active", "suspended", "revoked", "decommissioned",
};
static const char *auth_names[] = { "ca", "selfsigned" };
static const char *cert_status_names[] = {
	"reserved", "pending", "delivered", "active", "superseded", "revoked",
	"expired",
};
static const char *issuer_names[] = {
	"renewal", "reenrolment", "import", "operator",
};

static int
name_parse(const char *s, const char **names, size_t n)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
inv_dev_status_name(enum inv_dev_status s)
{
	return (unsigned)s < FC_ARRAY_LEN(dev_status_names) ?
	    dev_status_names[s] : "unknown";
}

int
inv_dev_status_parse(const char *s)
{
	return name_parse(s, dev_status_names, FC_ARRAY_LEN(dev_status_names));
}

const char *
inv_auth_name(enum inv_auth a)
{
	return (unsigned)a < FC_ARRAY_LEN(auth_names) ? auth_names[a] : "unknown";
}

int
inv_auth_parse(const char *s)
{
	return name_parse(s, auth_names, FC_ARRAY_LEN(auth_names));
}

const char *
inv_cert_status_name(enum inv_cert_status s)
{
	return (unsigned)s < FC_ARRAY_LEN(cert_status_names) ?
	    cert_status_names[s] : "unknown";
}

int
inv_cert_status_parse(const char *s)
{
	return name_parse(s, cert_status_names, FC_ARRAY_LEN(cert_status_names));
}

const char *
inv_issuer_name(enum inv_issuer i)
{
	return (unsigned)i < FC_ARRAY_LEN(issuer_names) ? issuer_names[i] :
	    "unknown";
}

void
inv_device_clear(struct inv_device *d)
{
	if (d == NULL)
		return;
	free(d->identity_key);
	memset(d, 0, sizeof(*d));
}

void
inv_cert_clear(struct inv_cert *c)
{
	if (c == NULL)
		return;
	free(c->der);
	memset(c, 0, sizeof(*c));
}

/* Text fields an operator or a manifest sets: printable, no control bytes. */
static int
label_valid(const char *s)
{
	size_t n = strnlen(s, FC_NAME_MAX);

	if (n >= FC_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

enum fc_err
inv_device_check(const struct inv_device *d, char *err, size_t errlen)
{
	char canon[FC_SE_SERIAL_LEN];

	if (!fc_device_id_valid(d->device_id)) {
		snprintf(err, errlen, "deviceId is not a valid IoT Hub device id");
		return FC_EINVAL;
	}
	if (fc_se_serial_canon(d->se_serial, canon) != FC_OK ||
	    strcmp(canon, d->se_serial) != 0) {
		snprintf(err, errlen, "serial is not a canonical ATECC608B serial");
		return FC_EINVAL;
	}
	if (d->hub[0] != '\0' && !fc_device_id_valid(d->hub)) {
		snprintf(err, errlen, "hub is not a valid hub name");
		return FC_EINVAL;
	}
	if (!label_valid(d->owner) || !label_valid(d->batch)) {
		snprintf(err, errlen, "owner and batch must be printable and "
		    "shorter than %d bytes", FC_NAME_MAX);
		return FC_EINVAL;
	}
	if ((unsigned)d->auth_type > INV_AUTH_SELFSIGNED ||
	    (unsigned)d->status > INV_DEV_DECOMMISSIONED) {
		snprintf(err, errlen, "bad authType or status");
		return FC_EINVAL;
	}
	if (d->identity_key_len > 4096) {
		snprintf(err, errlen, "identity key too large");
		return FC_EINVAL;
	}
	return FC_OK;
}

static enum fc_err
copy_blob(unsigned char **dst, size_t *len, sqlite3_stmt *st, int col)
{
	const void *b = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	*dst = NULL;
	*len = 0;
	if (b == NULL || n <= 0)
		return FC_OK;
	*dst = malloc((size_t)n);
	if (*dst == NULL)
		return FC_ENOMEM;
	memcpy(*dst, b, (size_t)n);
	*len = (size_t)n;
	return FC_OK;
}

#define DEV_COLS "device_id, se_serial, hub, auth_type, identity_key, owner, " \
	"batch, status, rekey, needs_reenrol, created_at, updated_at"

/* Reads a DEV_COLS row starting at column base. */
static enum fc_err
row_device(sqlite3_stmt *st, int base, struct inv_device *d, int with_key)
{
	memset(d, 0, sizeof(*d));
	db_col_text(d->device_id, sizeof(d->device_id), st, base + 0);
	db_col_text(d->se_serial, sizeof(d->se_serial), st, base + 1);
	db_col_text(d->hub, sizeof(d->hub), st, base + 2);
	d->auth_type = (enum inv_auth)inv_auth_parse(
	    (const char *)sqlite3_column_text(st, base + 3));
	db_col_text(d->owner, sizeof(d->owner), st, base + 5);
	db_col_text(d->batch, sizeof(d->batch), st, base + 6);
	d->status = (enum inv_dev_status)inv_dev_status_parse(
	    (const char *)sqlite3_column_text(st, base + 7));
	d->rekey = sqlite3_column_int(st, base + 8);
	d->needs_reenrol = sqlite3_column_int(st, base + 9);
	d->created_at = sqlite3_column_int64(st, base + 10);
	d->updated_at = sqlite3_column_int64(st, base + 11);
	if (with_key)
		return copy_blob(&d->identity_key, &d->identity_key_len, st,
		    base + 4);
	return FC_OK;
}

#define CERT_COLS "serial, device_id, der, not_before, not_after, sha1, " \
	"sha256, status, revoked_at, revocation_reason, issued_by, " \
	"renewed_from, created_at, updated_at"
#define DEV_COLS_D "d.device_id, d.se_serial, d.hub, d.auth_type, " \
	"d.identity_key, d.owner, d.batch, d.status, d.rekey, " \
	"d.needs_reenrol, d.created_at, d.updated_at"
#define CERT_COLS_C "c.serial, c.device_id, c.der, c.not_before, " \
	"c.not_after, c.sha1, c.sha256, c.status, c.revoked_at, " \
	"c.revocation_reason, c.issued_by, c.renewed_from, c.created_at, " \
	"c.updated_at"

static enum fc_err
row_cert(sqlite3_stmt *st, int base, struct inv_cert *c, int with_der)
{
	memset(c, 0, sizeof(*c));
	db_col_text(c->serial, sizeof(c->serial), st, base + 0);
	db_col_text(c->device_id, sizeof(c->device_id), st, base + 1);
	c->not_before = sqlite3_column_int64(st, base + 3);
	c->not_after = sqlite3_column_int64(st, base + 4);
	db_col_text(c->sha1, sizeof(c->sha1), st, base + 5);
	db_col_text(c->sha256, sizeof(c->sha256), st, base + 6);
	c->status = (enum inv_cert_status)inv_cert_status_parse(
	    (const char *)sqlite3_column_text(st, base + 7));
	c->revoked_at = sqlite3_column_int64(st, base + 8);
	c->revocation_reason = sqlite3_column_int(st, base + 9);
	c->issued_by = (enum inv_issuer)name_parse(
	    (const char *)sqlite3_column_text(st, base + 10), issuer_names,
	    FC_ARRAY_LEN(issuer_names));
	db_col_text(c->renewed_from, sizeof(c->renewed_from), st, base + 11);
	c->created_at = sqlite3_column_int64(st, base + 12);
	c->updated_at = sqlite3_column_int64(st, base + 13);
	if (with_der)
		return copy_blob(&c->der, &c->der_len, st, base + 2);
	return FC_OK;
}

enum fc_err
inv_device_insert(struct db *db, const struct inv_device *d, const char *actor)
{
	static const char q[] = "INSERT INTO devices (" DEV_COLS ") VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	char err[128], detail[512];
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t now = fc_now();
	int rc;

	result = inv_device_check(d, err, sizeof(err));
	if (result != FC_OK) {
		log_warn("device %s: %s", d->device_id, err);
		return result;
	}
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, d->se_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, d->hub, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, inv_auth_name(d->auth_type), -1, SQLITE_STATIC);
	if (d->identity_key != NULL)
		sqlite3_bind_blob(st, 5, d->identity_key,
		    (int)d->identity_key_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_text(st, 6, d->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, d->batch, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, inv_dev_status_name(d->status), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, d->rekey);
	sqlite3_bind_int(st, 10, d->needs_reenrol);
	sqlite3_bind_int64(st, 11, now);
	sqlite3_bind_int64(st, 12, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		result = FC_ECONFLICT;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "insert device");
		goto out;
	}
	snprintf(detail, sizeof(detail),
	    "{\"serial\":\"%s\",\"authType\":\"%s\"}", d->se_serial,
	    inv_auth_name(d->auth_type));
	result = audit_append(db, actor, "device.create", d->device_id, NULL,
	    detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

/*
 * Runs a one-key SELECT and leaves the statement on its row: FC_OK (the
 * caller resets *out), FC_ENOTFOUND or FC_EDB (statement already reset).
 */
static enum fc_err
lookup_row(struct db *db, const char *q, const char *key, const char *what,
    sqlite3_stmt **out)
{
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = st;
		return FC_OK;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FC_ENOTFOUND : db_fail(db, what);
}

static enum fc_err
device_get_by(struct db *db, const char *q, const char *key,
    struct inv_device *out)
{
	sqlite3_stmt *st = NULL;
	enum fc_err result;

	result = lookup_row(db, q, key, "read device", &st);
	if (result != FC_OK)
		return result;
	result = row_device(st, 0, out, 1);
	sqlite3_reset(st);
	if (result != FC_OK)
		inv_device_clear(out);
	return result;
}

enum fc_err
inv_device_get(struct db *db, const char *device_id, struct inv_device *out)
{
	static const char q[] = "SELECT " DEV_COLS
	    " FROM devices WHERE device_id = ?";

	return device_get_by(db, q, device_id, out);
}

enum fc_err
inv_device_get_by_se_serial(struct db *db, const char *se_serial,
    struct inv_device *out)
{
	static const char q[] = "SELECT " DEV_COLS
	    " FROM devices WHERE se_serial = ?";

	return device_get_by(db, q, se_serial, out);
}

/* Runs a one-row UPDATE bound to (text, id); FC_ENOTFOUND if no row. */
static enum fc_err
update_one(struct db *db, const char *q, const char *a, const char *id,
    const char *what)
{
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, fc_now());
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(db, what);
	return sqlite3_changes(db->h) == 1 ? FC_OK : FC_ENOTFOUND;
}

enum fc_err
inv_device_set_status(struct db *db, const char *device_id,
    enum inv_dev_status status, const char *actor, const char *reason)
{
	static const char q[] = "UPDATE devices SET status = ?, updated_at = ? "
	    "WHERE device_id = ?";
	char action[64], detail[384], esc[300];
	enum fc_err result;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = update_one(db, q, inv_dev_status_name(status), device_id,
	    "update device status");
	if (result != FC_OK)
		goto out;
	snprintf(action, sizeof(action), "device.%s", inv_dev_status_name(status));
	fc_json_escape(esc, sizeof(esc), reason);
	snprintf(detail, sizeof(detail), "{\"reason\":\"%s\"}", esc);
	result = audit_append(db, actor, action, device_id, NULL, detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_device_set_owner(struct db *db, const char *device_id, const char *owner,
    const char *actor)
{
	static const char q[] = "UPDATE devices SET owner = ?, updated_at = ? "
	    "WHERE device_id = ?";
	char detail[384], esc[300];
	enum fc_err result;

	if (!label_valid(owner))
		return FC_EINVAL;
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = update_one(db, q, owner, device_id, "update device owner");
	if (result != FC_OK)
		goto out;
	fc_json_escape(esc, sizeof(esc), owner);
	snprintf(detail, sizeof(detail), "{\"owner\":\"%s\"}", esc);
	result = audit_append(db, actor, "device.transfer", device_id, NULL,
	    detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_device_set_needs_reenrol(struct db *db, const char *device_id, int flag)
{
	static const char q[] = "UPDATE devices SET needs_reenrol = ?, "
	    "updated_at = ? WHERE device_id = ?";

	return update_one(db, q, flag ? "1" : "0", device_id,
	    "update needs_reenrol");
}

/*
 * Cursors are opaque to clients: "d" + hex of the last device id for the
 * device-id order, "x<not_after>.<rowid>" for the expiry order.
 */
static enum fc_err
cursor_decode_dev(const char *cursor, char out[FC_DEVICE_ID_MAX])
{
	size_t n, i;

	if (cursor[0] != 'd')
		return FC_EINVAL;
	cursor++;
	n = strlen(cursor);
	if (n == 0 || n % 2 != 0 || n / 2 >= FC_DEVICE_ID_MAX)
		return FC_EINVAL;
	for (i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", cursor[i]) || cursor[i] == '\0')
			return FC_EINVAL;
	for (i = 0; i < n / 2; i++) {
		unsigned int v;
		if (sscanf(cursor + 2 * i, "%2x", &v) != 1)
			return FC_EINVAL;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return fc_device_id_valid(out) ? FC_OK : FC_EINVAL;
}

static enum fc_err
cursor_decode_exp(const char *cursor, long long *not_after, long long *rowid)
{
	char tail;

	if (sscanf(cursor, "x%lld.%lld%c", not_after, rowid, &tail) != 2 ||
	    *rowid < 0)
		return FC_EINVAL;
	return FC_OK;
}

/* Binds the filter parameters shared by both list queries (?2..?6). */
static void
bind_filter(sqlite3_stmt *st, const struct inv_device_filter *f)
{
	sqlite3_bind_int(st, 2, f ? f->status : -1);
	if (f && f->status >= 0)
		sqlite3_bind_text(st, 3, inv_dev_status_name(f->status), -1,
		    SQLITE_STATIC);
	if (f && f->owner)
		sqlite3_bind_text(st, 4, f->owner, -1, SQLITE_STATIC);
	if (f && f->batch)
		sqlite3_bind_text(st, 5, f->batch, -1, SQLITE_STATIC);
	if (f && f->hub)
		sqlite3_bind_text(st, 6, f->hub, -1, SQLITE_STATIC);
}

#define FILTER_SQL \
	" AND (?2 < 0 OR d.status = ?3)" \
	" AND (?4 IS NULL OR d.owner = ?4)" \
	" AND (?5 IS NULL OR d.batch = ?5)" \
	" AND (?6 IS NULL OR d.hub = ?6)"

enum fc_err
inv_device_list(struct db *db, const struct inv_device_filter *f,
    const char *cursor, int limit,
    int (*cb)(void *arg, const struct inv_device *d, const struct inv_cert *c),
    void *arg, char next_cursor[INV_CURSOR_MAX])
{
	/* Device-id order; the current certificate is the newest active one,
	 * else the newest in flight. */
	static const char q_dev[] = "SELECT " DEV_COLS_D ", " CERT_COLS_C
	    ", c.rowid FROM devices d LEFT JOIN certificates c ON c.serial = ("
	    "  SELECT serial FROM certificates x WHERE x.device_id = d.device_id"
	    "  AND x.status IN ('active', 'delivered', 'pending')"
	    "  ORDER BY x.status = 'active' DESC, x.created_at DESC, x.serial"
	    "  LIMIT 1)"
	    " WHERE d.device_id > ?1" FILTER_SQL
	    " ORDER BY d.device_id LIMIT ?7";
	/* Expiry order: a range scan on certificates (status, not_after),
	 * cost O(rows returned). */
	static const char q_exp[] = "SELECT " DEV_COLS_D ", " CERT_COLS_C
	    ", c.rowid FROM certificates c JOIN devices d"
	    " ON d.device_id = c.device_id"
	    " WHERE c.status = 'active' AND c.not_after < ?1"
	    " AND (c.not_after > ?8 OR (c.not_after = ?8 AND c.rowid > ?9))"
	    FILTER_SQL
	    " ORDER BY c.not_after, c.rowid LIMIT ?7";
	char after[FC_DEVICE_ID_MAX] = "";
	long long exp_after = -1, rowid_after = -1, last_exp = 0, last_rowid = 0;
	char last[FC_DEVICE_ID_MAX] = "";
	int by_expiry = f != NULL && f->expiring_before != 0;
	sqlite3_stmt *st;
	enum fc_err result = FC_OK;
	int rc = SQLITE_DONE, n = 0, stop = 0;

	if (limit < 1 || limit > 1000)
		return FC_EINVAL;
	if (cursor != NULL && cursor[0] != '\0') {
		result = by_expiry ?
		    cursor_decode_exp(cursor, &exp_after, &rowid_after) :
		    cursor_decode_dev(cursor, after);
		if (result != FC_OK)
			return result;
	}
	st = db_stmt(db, by_expiry ? q_exp : q_dev);
	if (st == NULL)
		return FC_EDB;
	if (by_expiry) {
		sqlite3_bind_int64(st, 1, f->expiring_before);
		sqlite3_bind_int64(st, 8, exp_after);
		sqlite3_bind_int64(st, 9, rowid_after);
	} else
		sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
	bind_filter(st, f);
	sqlite3_bind_int(st, 7, limit);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct inv_device d;
		struct inv_cert c;
		int has_cert = sqlite3_column_type(st, 12) != SQLITE_NULL;
		result = row_device(st, 0, &d, 1);
		if (result == FC_OK && has_cert)
			result = row_cert(st, 12, &c, 1);
		if (result != FC_OK) {
			inv_device_clear(&d);
			break;
		}
		snprintf(last, sizeof(last), "%s", d.device_id);
		if (has_cert)
			last_exp = c.not_after;
		last_rowid = sqlite3_column_int64(st, 26);
		n++;
		stop = cb(arg, &d, has_cert ? &c : NULL) != 0;
		inv_device_clear(&d);
		if (has_cert)
			inv_cert_clear(&c);
	}
	if (result == FC_OK && !stop && rc != SQLITE_DONE)
		result = db_fail(db, "list devices");
	sqlite3_reset(st);
	if (result != FC_OK)
		return result;
	next_cursor[0] = '\0';
	if (n == limit || stop) {
		if (by_expiry)
			snprintf(next_cursor, INV_CURSOR_MAX, "x%lld.%lld",
			    last_exp, last_rowid);
		else {
			next_cursor[0] = 'd';
			fc_hex((const unsigned char *)last, strlen(last),
			    next_cursor + 1, 0);
		}
	}
	return FC_OK;
}

enum fc_err
inv_cert_insert(struct db *db, const struct inv_cert *c, const char *actor)
{
	static const char q[] = "INSERT INTO certificates (" CERT_COLS ") VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	char action[64];
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t now = fc_now();
	int rc;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, c->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->device_id, -1, SQLITE_STATIC);
	if (c->der != NULL) {
		sqlite3_bind_blob(st, 3, c->der, (int)c->der_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, c->not_before);
		sqlite3_bind_int64(st, 5, c->not_after);
		sqlite3_bind_text(st, 6, c->sha1, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, c->sha256, -1, SQLITE_STATIC);
	}
	sqlite3_bind_text(st, 8, inv_cert_status_name(c->status), -1,
	    SQLITE_STATIC);
	if (c->revoked_at != 0) {
		sqlite3_bind_int64(st, 9, c->revoked_at);
		sqlite3_bind_int(st, 10, c->revocation_reason);
	}
	sqlite3_bind_text(st, 11, inv_issuer_name(c->issued_by), -1,
	    SQLITE_STATIC);
	if (c->renewed_from[0] != '\0')
		sqlite3_bind_text(st, 12, c->renewed_from, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 13, now);
	sqlite3_bind_int64(st, 14, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		result = FC_ECONFLICT;
		goto out;
	}
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		result = FC_ENOTFOUND;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "insert certificate");
		goto out;
	}
	if (c->status == INV_CERT_RESERVED)
		snprintf(action, sizeof(action), "cert.reserve");
	else
		snprintf(action, sizeof(action), "cert.%s",
		    inv_issuer_name(c->issued_by));
	result = audit_append(db, actor, action, c->device_id, c->serial,
	    c->der ? "{}" : NULL);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

enum fc_err
inv_cert_complete(struct db *db, const struct inv_cert *c,
    enum inv_cert_status status, const char *actor)
{
	static const char q[] = "UPDATE certificates SET der = ?, "
	    "not_before = ?, not_after = ?, sha1 = ?, sha256 = ?, status = ?, "
	    "updated_at = ? WHERE serial = ? AND status = 'reserved'";
	char detail[160];
	sqlite3_stmt *st;
	enum fc_err result;
	int rc;

	if (c->der == NULL || c->der_len == 0)
		return FC_EINVAL;
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_blob(st, 1, c->der, (int)c->der_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->not_before);
	sqlite3_bind_int64(st, 3, c->not_after);
	sqlite3_bind_text(st, 4, c->sha1, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, inv_cert_status_name(status), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, fc_now());
	sqlite3_bind_text(st, 8, c->serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "complete certificate");
		goto out;
	}
	if (sqlite3_changes(db->h) != 1) {
		result = FC_ECONFLICT;
		goto out;
	}
	snprintf(detail, sizeof(detail), "{\"notAfter\":%lld,\"sha256\":\"%s\"}",
	    (long long)c->not_after, c->sha256);
	result = audit_append(db, actor, "cert.issue", c->device_id, c->serial,
	    detail);
	if (result != FC_OK)
		goto out;
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

static enum fc_err
cert_get_by(struct db *db, const char *q, const char *key,
    struct inv_cert *out)
{
	sqlite3_stmt *st = NULL;
	enum fc_err result;

	result = lookup_row(db, q, key, "read certificate", &st);
	if (result != FC_OK)
		return result;
	result = row_cert(st, 0, out, 1);
	sqlite3_reset(st);
	if (result != FC_OK)
		inv_cert_clear(out);
	return result;
}

enum fc_err
inv_cert_get(struct db *db, const char *serial, struct inv_cert *out)
{
	static const char q[] = "SELECT " CERT_COLS
	    " FROM certificates WHERE serial = ?";

	return cert_get_by(db, q, serial, out);
}

enum fc_err
inv_cert_current(struct db *db, const char *device_id, struct inv_cert *out)
{
	static const char q[] = "SELECT " CERT_COLS " FROM certificates"
	    " WHERE device_id = ? AND status IN ('active', 'delivered', 'pending')"
	    " ORDER BY status = 'active' DESC, created_at DESC, serial LIMIT 1";

	return cert_get_by(db, q, device_id, out);
}

enum fc_err
inv_cert_list_by_device(struct db *db, const char *device_id,
    int (*cb)(void *arg, const struct inv_cert *c), void *arg)
{
	static const char q[] = "SELECT " CERT_COLS " FROM certificates"
	    " WHERE device_id = ? ORDER BY created_at DESC, serial";
	sqlite3_stmt *st = db_stmt(db, q);
	enum fc_err result = FC_OK;
	int rc;

	if (st == NULL)
		return FC_EDB;
	sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct inv_cert c;
		int stop;
		result = row_cert(st, 0, &c, 1);
		if (result != FC_OK)
			break;
		stop = cb(arg, &c);
		inv_cert_clear(&c);
		if (stop) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (result == FC_OK && rc != SQLITE_DONE)
		result = db_fail(db, "list certificates");
	sqlite3_reset(st);
	return result;
}

enum fc_err
inv_cert_set_status(struct db *db, const char *serial,
    enum inv_cert_status status, const char *actor, const char *detail)
{
	static const char q[] = "UPDATE certificates SET status = ?, "
	    "updated_at = ? WHERE serial = ?";
	struct inv_cert c;
	char action[64];
	enum fc_err result;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	result = inv_cert_get(db, serial, &c);
	if (result != FC_OK)
		goto out;
	result = update_one(db, q, inv_cert_status_name(status), serial,
	    "update certificate status");
	if (result != FC_OK)
		goto out;
	snprintf(action, sizeof(action), "cert.%s", inv_cert_status_name(status));
	result = audit_append(db, actor, action, c.device_id, serial, detail);
	if (result != FC_OK)
		goto out;
	inv_cert_clear(&c);
	return db_commit(db);
out:
	inv_cert_clear(&c);
	db_rollback(db);
	return result;
}

enum fc_err
inv_cert_revoke(struct db *db, const char *serial, int reason,
    const char *actor)
{
	static const char q[] = "UPDATE certificates SET status = 'revoked', "
	    "revoked_at = ?, revocation_reason = ?, updated_at = ? "
	    "WHERE serial = ? AND status != 'revoked'";
	struct inv_cert c;
	char detail[64];
	sqlite3_stmt *st;
	enum fc_err result;
	int64_t now = fc_now();
	int rc;

	if (reason < 0 || reason > 10 || reason == 7)
		return FC_EINVAL;
	result = db_begin(db);
	if (result != FC_OK)
		return result;
	memset(&c, 0, sizeof(c));
	result = inv_cert_get(db, serial, &c);
	if (result != FC_OK)
		goto out;
	st = db_stmt(db, q);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		result = db_fail(db, "revoke certificate");
		goto out;
	}
	if (sqlite3_changes(db->h) != 1) {
		result = FC_ECONFLICT;
		goto out;
	}
	snprintf(detail, sizeof(detail), "{\"reason\":%d}", reason);
	result = audit_append(db, actor, "cert.revoke", c.device_id, serial,
	    detail);
	if (result != FC_OK)
		goto out;
	inv_cert_clear(&c);
	return db_commit(db);
out:
	inv_cert_clear(&c);
	db_rollback(db);
	return result;
}

enum fc_err
inv_cert_expiry_histogram(struct db *db, int64_t from, int64_t bucket,
    int nbuckets, int64_t *counts, int64_t *before)
{
	static const char q[] = "SELECT CASE WHEN not_after < ?1 THEN -1"
	    " ELSE (not_after - ?1) / ?2 END, count(*)"
	    " FROM certificates WHERE status = ?3 AND not_after < ?4"
	    " GROUP BY 1";
	static const char *live[] = { "active", "delivered", "pending" };
	sqlite3_stmt *st;
	size_t s;
	int rc;

	if (bucket <= 0 || nbuckets <= 0 || nbuckets > 10000)
		return FC_EINVAL;
	memset(counts, 0, sizeof(*counts) * (size_t)nbuckets);
	*before = 0;
	/* One index range scan on (status, not_after) per live status. */
	for (s = 0; s < FC_ARRAY_LEN(live); s++) {
		st = db_stmt(db, q);
		if (st == NULL)
			return FC_EDB;
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, bucket);
		sqlite3_bind_text(st, 3, live[s], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, from + bucket * nbuckets);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t k = sqlite3_column_int64(st, 0);
			int64_t n = sqlite3_column_int64(st, 1);
			if (k < 0)
				*before += n;
			else if (k < nbuckets)
				counts[k] += n;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return db_fail(db, "expiry histogram");
	}
	return FC_OK;
}

enum fc_err
inv_cert_count_by_status(struct db *db, int64_t *counts)
{
	static const char q[] = "SELECT status, count(*) FROM certificates"
	    " GROUP BY status";
	sqlite3_stmt *st = db_stmt(db, q);
	int rc;

	if (st == NULL)
		return FC_EDB;
	memset(counts, 0, sizeof(*counts) * (INV_CERT_EXPIRED + 1));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int s = inv_cert_status_parse(
		    (const char *)sqlite3_column_text(st, 0));
		if (s >= 0)
			counts[s] = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FC_OK : db_fail(db, "count certificates");
}
