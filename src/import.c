/*
 * import.c — the common half of factory-record import: result bookkeeping
 * and its JSON form, format detection, the checks every record passes (ids,
 * SE serial, P-256 identity key, certificate, hub, duplicates) and the
 * insertion through inventory.c, all inside one transaction. Runs on the
 * calling thread with its connection; touches the devices and certificates
 * tables (through inventory.c) and the audit log.
 */
#include "fc_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "import_int.h"
#include "inventory.h"
#include "log.h"

/* DER of SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } up to the
 * BIT STRING's unused-bits octet (RFC 5480 §2). */
static const unsigned char p256_prefix[IMPORT_P256_PREFIX_LEN] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
	0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	0x07, 0x03, 0x42, 0x00,
};

/* ---- results ---------------------------------------------------------- */

void
import_result_init(struct import_result *r)
{
	memset(r, 0, sizeof(*r));
}

void
import_result_clear(struct import_result *r)
{
	if (r == NULL)
		return;
	free(r->errors);
	import_result_init(r);
}

json_t *
import_result_to_json(const struct import_result *r)
{
	json_t *o = NULL, *arr, *e;
	size_t i;

	o = json_object();
	arr = json_array();
	if (o == NULL || arr == NULL ||
	    json_object_set_new(o, "imported", json_integer(r->imported)) ||
	    json_object_set_new(o, "skipped", json_integer(r->skipped)) ||
	    json_object_set_new(o, "errors", arr)) {
		json_decref(o);
		return NULL;
	}
	for (i = 0; i < r->nerrors; i++) {
		const struct import_error *er = &r->errors[i];
		e = json_pack("{s:I,s:s}", "line", (json_int_t)er->line,
		    "message", er->message);
		if (e != NULL && er->index >= 0 &&
		    json_object_set_new(e, "index", json_integer(er->index))) {
			json_decref(e);
			e = NULL;
		}
		if (e == NULL || json_array_append_new(arr, e)) {
			json_decref(o);
			return NULL;
		}
	}
	if (r->errors_dropped > 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%ld more errors not listed",
		    r->errors_dropped);
		e = json_pack("{s:i,s:s}", "line", 0, "message", msg);
		if (e == NULL || json_array_append_new(arr, e)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

void
import_err(struct import_ctx *ctx, long line, long index, const char *fmt,
    ...)
{
	struct import_result *r = ctx->res;
	struct import_error *e;
	va_list ap;
	char *p;

	if (r->nerrors >= IMPORT_ERRORS_MAX) {
		r->errors_dropped++;
		return;
	}
	if (r->nerrors == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		void *n = realloc(r->errors, ncap * sizeof(*r->errors));
		if (n == NULL) {
			r->errors_dropped++;
			return;
		}
		r->errors = n;
		r->cap = ncap;
	}
	e = &r->errors[r->nerrors++];
	e->line = line;
	e->index = index;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	/* Messages may quote the input (jansson's own texts do): keep them
	 * printable ASCII so that logs and the JSON answer stay clean. */
	for (p = e->message; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

void
import_quote(char *out, size_t cap, const char *value, size_t len)
{
	size_t i, o = 0;

	if (cap < 8) {
		if (cap > 0)
			out[0] = '\0';
		return;
	}
	for (i = 0; i < len && o + 4 < cap; i++) {
		unsigned char c = (unsigned char)value[i];
		if (i == 48) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
	}
	out[o] = '\0';
}

enum import_format
import_detect(const char *buf, size_t len)
{
	size_t i = 0;

	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	for (; i < len; i++) {
		char c = buf[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		return (c == '[' || c == '{') ? IMPORT_FMT_MANIFEST :
		    IMPORT_FMT_CSV;
	}
	return IMPORT_FMT_UNKNOWN;
}

enum fc_err
import_any(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res)
{
	switch (import_detect(buf, len)) {
	case IMPORT_FMT_CSV:
		return import_csv(db, buf, len, opts, res);
	case IMPORT_FMT_MANIFEST:
		return import_manifest(db, buf, len, opts, res);
	case IMPORT_FMT_UNKNOWN:
		break;
	}
	import_result_clear(res);
	if (res->cap == 0) {
		res->errors = calloc(1, sizeof(*res->errors));
		if (res->errors == NULL)
			return FC_ENOMEM;
		res->cap = 1;
	}
	res->nerrors = 1;
	res->errors[0].line = 0;
	res->errors[0].index = -1;
	snprintf(res->errors[0].message, IMPORT_MSG_MAX, "empty input");
	return FC_EINVAL;
}

enum fc_err
import_signer_load(const char *path, X509 **out)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	enum fc_err result;

	result = fc_file_read(path, 1u << 20, &pem, &len);
	if (result != FC_OK) {
		log_error("manifest signer %s: cannot read (%s)", path,
		    fc_strerror(result));
		return result;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio != NULL)
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x == NULL) {
		log_openssl("manifest signer %s: no PEM certificate", path);
		result = FC_EINVAL;
		goto out;
	}
	*out = x;
	result = FC_OK;
out:
	BIO_free(bio);
	free(pem);
	return result;
}

/* ---- context ---------------------------------------------------------- */

enum fc_err
import_ctx_init(struct import_ctx *ctx, struct db *db,
    const struct import_opts *opts, struct import_result *res)
{
	enum fc_err result;

	memset(ctx, 0, sizeof(*ctx));
	ctx->db = db;
	ctx->opts = opts;
	ctx->res = res;
	ctx->actor = opts->actor ? opts->actor : "import";
	import_result_clear(res);
	ctx->p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	ctx->point = ctx->p256 ? EC_POINT_new(ctx->p256) : NULL;
	ctx->bn = BN_CTX_new();
	if (ctx->point == NULL || ctx->bn == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	result = db_begin(db);
	if (result != FC_OK)
		goto out;
	ctx->in_tx = 1;
	return FC_OK;
out:
	EC_POINT_free(ctx->point);
	EC_GROUP_free(ctx->p256);
	BN_CTX_free(ctx->bn);
	memset(ctx, 0, sizeof(*ctx));
	return result;
}

enum fc_err
import_ctx_finish(struct import_ctx *ctx, enum fc_err fatal)
{
	struct import_result *res = ctx->res;
	enum fc_err result = fatal;
	long applied = res->imported;

	if (result == FC_OK && ctx->fatal)
		result = FC_EINVAL;
	if (result == FC_OK && ctx->bad && !ctx->opts->skip_bad)
		result = FC_EINVAL;
	if (ctx->in_tx) {
		if (result == FC_OK)
			result = db_commit(ctx->db);
		else
			db_rollback(ctx->db);
	}
	if (result != FC_OK)
		applied = 0;
	res->imported = applied;
	res->skipped = ctx->records - applied;
	if (result == FC_OK)
		log_info("import: %ld records imported, %ld skipped",
		    res->imported, res->skipped);
	else
		log_warn("import: nothing applied (%s; %zu errors)",
		    fc_strerror(result), res->nerrors);
	import_dupset_free(&ctx->ids);
	import_dupset_free(&ctx->serials);
	import_dupset_free(&ctx->certs);
	import_dupset_free(&ctx->keys);
	EC_POINT_free(ctx->point);
	EC_GROUP_free(ctx->p256);
	BN_CTX_free(ctx->bn);
	memset(ctx, 0, sizeof(*ctx));
	return result;
}

/* ---- keys and certificates ------------------------------------------- */

void
import_key_from_xy(const unsigned char x[32], const unsigned char y[32],
    unsigned char out[IMPORT_P256_SPKI_LEN])
{
	memcpy(out, p256_prefix, IMPORT_P256_PREFIX_LEN);
	out[IMPORT_P256_PREFIX_LEN] = 0x04;
	memcpy(out + IMPORT_P256_PREFIX_LEN + 1, x, 32);
	memcpy(out + IMPORT_P256_PREFIX_LEN + 33, y, 32);
}

/* Names what a key that is not the canonical P-256 form is, by a full
 * decode (the slow path, only for bad input). */
static void
key_explain(const unsigned char *der, size_t len, char *why, size_t whylen)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;
	char group[64];
	size_t glen = 0;

	pk = d2i_PUBKEY(NULL, &p, (long)len);
	ERR_clear_error();
	if (pk == NULL || p != der + len)
		snprintf(why, whylen, "is not a DER SubjectPublicKeyInfo");
	else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
		snprintf(why, whylen, "is a %s key, not EC P-256",
		    EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) :
		    "non-EC");
	else if (!EVP_PKEY_get_utf8_string_param(pk, "group", group,
	    sizeof(group), &glen) || strcmp(group, "prime256v1") != 0)
		snprintf(why, whylen, "is an EC key on %s, not P-256",
		    glen ? group : "an explicit curve");
	else
		snprintf(why, whylen, "must be an uncompressed P-256 point "
		    "with the named curve");
	EVP_PKEY_free(pk);
}

enum fc_err
import_key_check(struct import_ctx *ctx, const unsigned char *der,
    size_t len, char *why, size_t whylen)
{
	/*
	 * The ATECC608B slot-0 key as SPKI has one DER form: the fixed
	 * prefix and an uncompressed point. Checking the bytes and the point
	 * costs a few microseconds; d2i_PUBKEY costs ~110.
	 */
	if (len != IMPORT_P256_SPKI_LEN ||
	    memcmp(der, p256_prefix, IMPORT_P256_PREFIX_LEN) != 0 ||
	    der[IMPORT_P256_PREFIX_LEN] != 0x04) {
		key_explain(der, len, why, whylen);
		return FC_EINVAL;
	}
	if (!EC_POINT_oct2point(ctx->p256, ctx->point,
	    der + IMPORT_P256_PREFIX_LEN, 65, ctx->bn)) {
		ERR_clear_error();
		snprintf(why, whylen, "is not a point on P-256");
		return FC_EINVAL;
	}
	return FC_OK;
}

/* Fills c's certificate fields from a parsed certificate: serial,
 * validity, DER (borrowed) and upper-case hex fingerprints. */
static int
cert_fill(const struct import_cert *ic, const unsigned char *der, size_t len,
    struct inv_cert *c)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	snprintf(c->serial, sizeof(c->serial), "%s", ic->serial);
	c->not_before = ic->not_before;
	c->not_after = ic->not_after;
	c->der = (unsigned char *)der;
	c->der_len = len;
	if (!EVP_Digest(der, len, md, &mdlen, EVP_sha1(), NULL))
		return 0;
	fc_hex(md, mdlen, c->sha1, 1);
	if (!EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL))
		return 0;
	fc_hex(md, mdlen, c->sha256, 1);
	return 1;
}

/* ---- one record ------------------------------------------------------- */

int
import_hub_known(const struct import_opts *o, const char *hub)
{
	const char *const *h;

	if (hub == NULL || hub[0] == '\0')
		return 1;
	for (h = o->hubs; h != NULL && *h != NULL; h++)
		if (strcmp(*h, hub) == 0)
			return 1;
	return 0;
}

/* Spreadsheet formula prefixes (OWASP "CSV injection"): a value starting
 * with one of them is refused rather than stored and exported later. */
static int
formula_like(const char *s)
{
	return s != NULL && s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
}

static int
text_ok(const char *s, size_t max)
{
	size_t n = 0;

	for (; s != NULL && s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
			return 0;
	return 1;
}

#define E(...) do { import_err(ctx, line, index, __VA_ARGS__); goto bad; } \
	while (0)

static enum fc_err
check_dups(struct import_ctx *ctx, long line, long index,
    const struct inv_device *d, const struct inv_cert *c, int *dup)
{
	struct inv_device other;
	struct inv_cert oc;
	long first = 0;
	enum fc_err result;
	const char *what = index >= 0 ? "entry at line" : "line";

	memset(&other, 0, sizeof(other));
	*dup = 1;
	if (import_dupset_add(&ctx->ids, d->device_id, strlen(d->device_id), line,
	    &first) != FC_OK)
		return FC_ENOMEM;
	if (first)
		E("deviceId %s duplicates %s %ld", d->device_id, what, first);
	if (import_dupset_add(&ctx->serials, d->se_serial, strlen(d->se_serial), line,
	    &first) != FC_OK)
		return FC_ENOMEM;
	if (first)
		E("serial %s duplicates %s %ld", d->se_serial, what, first);
	/* Every key here is the canonical P-256 SPKI: the point identifies it. */
	if (import_dupset_add(&ctx->keys, d->identity_key + IMPORT_P256_PREFIX_LEN + 1,
	    64, line, &first) != FC_OK)
		return FC_ENOMEM;
	if (first)
		E("identityPublicKey duplicates %s %ld", what, first);
	if (c->der != NULL) {
		if (import_dupset_add(&ctx->certs, c->serial, strlen(c->serial), line,
		    &first) != FC_OK)
			return FC_ENOMEM;
		if (first)
			E("certificate serial %s duplicates %s %ld", c->serial,
			    what, first);
	}

	result = inv_device_get(ctx->db, d->device_id, &other);
	if (result == FC_OK) {
		inv_device_clear(&other);
		E("deviceId %s is already in the inventory", d->device_id);
	} else if (result != FC_ENOTFOUND)
		return result;
	result = inv_device_get_by_se_serial(ctx->db, d->se_serial, &other);
	if (result == FC_OK) {
		E("serial %s is already in the inventory (device %s)",
		    d->se_serial, other.device_id);
	} else if (result != FC_ENOTFOUND)
		return result;
	if (c->der != NULL) {
		result = inv_cert_get(ctx->db, c->serial, &oc);
		if (result == FC_OK) {
			inv_cert_clear(&oc);
			E("certificate serial %s is already in the inventory",
			    c->serial);
		} else if (result != FC_ENOTFOUND)
			return result;
	}
	*dup = 0;
	return FC_OK;
bad:
	inv_device_clear(&other);
	return FC_OK;
}

enum fc_err
import_row_apply(struct import_ctx *ctx, long line, long index,
    const struct import_row *r)
{
	struct inv_device d;
	struct inv_cert c;
	char why[160], q[64];
	const char *id = r->device_id ? r->device_id : "";
	enum fc_err result = FC_OK;
	int auth, dup;

	memset(&d, 0, sizeof(d));
	memset(&c, 0, sizeof(c));
	ctx->records++;

	import_quote(q, sizeof(q), id, strlen(id));
	if (id[0] == '\0')
		E("deviceId is empty");
	if (formula_like(id))
		E("deviceId \"%s\" starts with a spreadsheet formula character", q);
	if (!fc_device_id_valid(id))
		E("deviceId \"%s\" is not a valid IoT Hub device id (1-128 of "
		    "A-Z a-z 0-9 -.+%%_#*?!(),:=@$')", q);
	snprintf(d.device_id, sizeof(d.device_id), "%s", id);

	if (r->serial == NULL || r->serial[0] == '\0')
		E("serial is empty");
	if (fc_se_serial_canon(r->serial, d.se_serial) != FC_OK) {
		import_quote(q, sizeof(q), r->serial, strlen(r->serial));
		E("serial \"%s\" is not an ATECC608B serial (18 hex digits "
		    "starting 0123, optional \"sn\")", q);
	}

	auth = (r->auth_type == NULL || r->auth_type[0] == '\0') ? INV_AUTH_CA :
	    inv_auth_parse(r->auth_type);
	if (auth < 0) {
		import_quote(q, sizeof(q), r->auth_type, strlen(r->auth_type));
		E("authType \"%s\" is not ca or selfsigned", q);
	}
	d.auth_type = (enum inv_auth)auth;

	if (!text_ok(r->owner, FC_NAME_MAX - 1) ||
	    !text_ok(r->batch, FC_NAME_MAX - 1))
		E("owner and batch must be at most %d bytes without control "
		    "characters", FC_NAME_MAX - 1);
	if (formula_like(r->owner) || formula_like(r->batch))
		E("owner or batch starts with a spreadsheet formula character");
	snprintf(d.owner, sizeof(d.owner), "%s", r->owner ? r->owner : "");
	snprintf(d.batch, sizeof(d.batch), "%s", r->batch ? r->batch : "");
	if (!import_hub_known(ctx->opts, r->hub)) {
		import_quote(q, sizeof(q), r->hub, strlen(r->hub));
		E("hub \"%s\" is not a configured [hub NAME] section", q);
	}
	snprintf(d.hub, sizeof(d.hub), "%s", r->hub ? r->hub : "");

	if (r->key != NULL && import_key_check(ctx, r->key, r->key_len, why,
	    sizeof(why)) != FC_OK)
		E("identityPublicKey %s", why);

	if (r->cert != NULL) {
		const struct import_cert *ic = r->cert;

		if (!ic->has_cn)
			E("certificate has no single subject CN");
		if (strcmp(ic->cn, id) != 0) {
			import_quote(q, sizeof(q), ic->cn, strlen(ic->cn));
			E("certificate subject CN \"%s\" differs from deviceId", q);
		}
		if (import_key_check(ctx, ic->spki, ic->spki_len, why,
		    sizeof(why)) != FC_OK)
			E("certificate key %s", why);
		if (r->key != NULL && (r->key_len != ic->spki_len ||
		    memcmp(r->key, ic->spki, r->key_len) != 0))
			E("certificate key differs from identityPublicKey");
		if (!cert_fill(ic, r->cert_der, r->cert_der_len, &c)) {
			result = FC_ECRYPTO;
			goto out;
		}
		snprintf(c.device_id, sizeof(c.device_id), "%s", id);
		c.issued_by = INV_ISSUED_IMPORT;
		c.status = c.not_after < (int64_t)fc_now() ? INV_CERT_EXPIRED :
		    INV_CERT_ACTIVE;
	} else if (r->key == NULL)
		E("identityPublicKey is empty and there is no certificate");

	d.identity_key = (unsigned char *)(r->key ? r->key : r->cert->spki);
	d.identity_key_len = r->key ? r->key_len : r->cert->spki_len;
	d.status = INV_DEV_ACTIVE;
	if (inv_device_check(&d, why, sizeof(why)) != FC_OK)
		E("%s", why);

	result = check_dups(ctx, line, index, &d, &c, &dup);
	if (result != FC_OK || dup)
		goto bad_counted;

	if (ctx->bad && !ctx->opts->skip_bad)
		goto out;	/* nothing will be applied: only validate */
	result = inv_device_insert(ctx->db, &d, ctx->actor);
	if (result == FC_OK && c.der != NULL)
		result = inv_cert_insert(ctx->db, &c, ctx->actor);
	if (result != FC_OK) {
		/* inventory.c rolled the whole transaction back */
		log_error("import: device %s: insert failed (%s)", d.device_id,
		    fc_strerror(result));
		ctx->in_tx = 0;
		ctx->fatal = 1;
		import_err(ctx, line, index, "device %s: could not be stored "
		    "(%s); nothing applied", d.device_id, fc_strerror(result));
		result = FC_EDB;
		goto out;
	}
	ctx->res->imported++;
	goto out;
bad:
	ctx->bad = 1;
	goto out;
bad_counted:
	if (dup)
		ctx->bad = 1;
out:
	return result;
}
