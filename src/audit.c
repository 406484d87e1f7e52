/*
 * audit.c — the hash-chained audit log (table audit). Any thread, on that
 * thread's connection. The canonical content hashed for a row is each field
 * as a 4-byte big-endian length followed by its bytes (NULL: length
 * 0xffffffff), in the order id, at, actor, action, device_id, serial, detail,
 * so that no two different rows share an encoding.
 */
#include "fc_build.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "log.h"

#define AUDIT_HASH_LEN	32

static void
feed_field(EVP_MD_CTX *ctx, const void *p, size_t len, int isnull)
{
	unsigned char hdr[4];
	uint32_t n = isnull ? 0xffffffffu : (uint32_t)len;

	hdr[0] = (unsigned char)(n >> 24);
	hdr[1] = (unsigned char)(n >> 16);
	hdr[2] = (unsigned char)(n >> 8);
	hdr[3] = (unsigned char)n;
	EVP_DigestUpdate(ctx, hdr, 4);
	if (!isnull && len > 0)
		EVP_DigestUpdate(ctx, p, len);
}

static void
feed_str(EVP_MD_CTX *ctx, const char *s)
{
	feed_field(ctx, s, s ? strlen(s) : 0, s == NULL);
}

static enum fc_err
entry_hash(const unsigned char prev[AUDIT_HASH_LEN],
    const struct audit_entry *e, unsigned char out[AUDIT_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char num[32];
	unsigned int len = 0;
	int ok;

	if (ctx == NULL)
		return FC_ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, prev, AUDIT_HASH_LEN);
	snprintf(num, sizeof(num), "%lld", (long long)e->id);
	feed_str(ctx, num);
	snprintf(num, sizeof(num), "%lld", (long long)e->at);
	feed_str(ctx, num);
	feed_str(ctx, e->actor);
	feed_str(ctx, e->action);
	feed_str(ctx, e->device_id);
	feed_str(ctx, e->serial);
	feed_str(ctx, e->detail);
	ok = ok && EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
	return ok && len == AUDIT_HASH_LEN ? FC_OK : FC_ECRYPTO;
}

static void
bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

enum fc_err
audit_append(struct db *db, const char *actor, const char *action,
    const char *device_id, const char *serial, const char *detail)
{
	static const char q_last[] =
	    "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1";
	static const char q_ins[] =
	    "INSERT INTO audit (id, at, actor, action, device_id, serial, detail, "
	    "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
	unsigned char prev[AUDIT_HASH_LEN] = { 0 }, hash[AUDIT_HASH_LEN];
	struct audit_entry e;
	sqlite3_stmt *st;
	enum fc_err result;
	int rc;

	result = db_begin(db);
	if (result != FC_OK)
		return result;
	memset(&e, 0, sizeof(e));
	e.id = 1;
	st = db_stmt(db, q_last);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 1) != AUDIT_HASH_LEN) {
			log_error("audit: row %lld has a malformed hash",
			    (long long)sqlite3_column_int64(st, 0));
			result = FC_ECONFLICT;
			goto out;
		}
		e.id = sqlite3_column_int64(st, 0) + 1;
		memcpy(prev, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
	} else if (rc != SQLITE_DONE) {
		result = db_fail(db, "audit: read last entry");
		goto out;
	}
	sqlite3_reset(st);
	e.at = fc_now();
	e.actor = actor;
	e.action = action;
	e.device_id = device_id;
	e.serial = serial;
	e.detail = detail;
	result = entry_hash(prev, &e, hash);
	if (result != FC_OK)
		goto out;
	st = db_stmt(db, q_ins);
	if (st == NULL) {
		result = FC_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, e.id);
	sqlite3_bind_int64(st, 2, e.at);
	sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
	bind_opt(st, 5, device_id);
	bind_opt(st, 6, serial);
	bind_opt(st, 7, detail);
	sqlite3_bind_blob(st, 8, prev, AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, hash, AUDIT_HASH_LEN, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		result = db_fail(db, "audit: append");
		goto out;
	}
	sqlite3_reset(st);
	return db_commit(db);
out:
	db_rollback(db);
	return result;
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

enum fc_err
audit_verify(struct db *db, int64_t *bad_id, int64_t *count)
{
	sqlite3_stmt *st = NULL;
	unsigned char prev[AUDIT_HASH_LEN] = { 0 }, hash[AUDIT_HASH_LEN];
	int64_t n = 0, expect_id = 1;
	enum fc_err result;
	int rc;

	result = db_prepare(db, "SELECT id, at, actor, action, device_id, "
	    "serial, detail, prev_hash, hash FROM audit ORDER BY id", &st);
	if (result != FC_OK)
		return result;
	*bad_id = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_entry e;
		e.id = sqlite3_column_int64(st, 0);
		e.at = sqlite3_column_int64(st, 1);
		e.actor = col_text(st, 2);
		e.action = col_text(st, 3);
		e.device_id = col_text(st, 4);
		e.serial = col_text(st, 5);
		e.detail = col_text(st, 6);
		n++;
		/* A deleted row breaks the id sequence and the link. */
		if (e.id != expect_id ||
		    sqlite3_column_bytes(st, 7) != AUDIT_HASH_LEN ||
		    sqlite3_column_bytes(st, 8) != AUDIT_HASH_LEN ||
		    CRYPTO_memcmp(sqlite3_column_blob(st, 7), prev,
		    AUDIT_HASH_LEN) != 0) {
			*bad_id = e.id;
			result = FC_ECONFLICT;
			break;
		}
		result = entry_hash(prev, &e, hash);
		if (result != FC_OK)
			break;
		if (CRYPTO_memcmp(hash, sqlite3_column_blob(st, 8),
		    AUDIT_HASH_LEN) != 0) {
			*bad_id = e.id;
			result = FC_ECONFLICT;
			break;
		}
		memcpy(prev, hash, AUDIT_HASH_LEN);
		expect_id++;
	}
	if (result == FC_OK && rc != SQLITE_DONE)
		result = db_fail(db, "audit: verify");
	sqlite3_finalize(st);
	if (result == FC_ECONFLICT)
		log_warn("audit: chain broken at entry %lld", (long long)*bad_id);
	if (count != NULL)
		*count = n;
	return result;
}

enum fc_err
audit_list(struct db *db, int64_t after, int limit, const char *device_id,
    int (*cb)(void *arg, const struct audit_entry *e), void *arg)
{
	static const char q_all[] = "SELECT id, at, actor, action, device_id, "
	    "serial, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?";
	static const char q_dev[] = "SELECT id, at, actor, action, device_id, "
	    "serial, detail FROM audit WHERE device_id = ? AND id > ? "
	    "ORDER BY id LIMIT ?";
	sqlite3_stmt *st;
	int rc, i = 1;

	st = db_stmt(db, device_id ? q_dev : q_all);
	if (st == NULL)
		return FC_EDB;
	if (device_id != NULL)
		sqlite3_bind_text(st, i++, device_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, after);
	sqlite3_bind_int(st, i, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_entry e;
		e.id = sqlite3_column_int64(st, 0);
		e.at = sqlite3_column_int64(st, 1);
		e.actor = col_text(st, 2);
		e.action = col_text(st, 3);
		e.device_id = col_text(st, 4);
		e.serial = col_text(st, 5);
		e.detail = col_text(st, 6);
		if (cb(arg, &e) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? FC_OK : db_fail(db, "audit: list");
}
