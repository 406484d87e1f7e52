/*
 * import_manifest.c — Microchip Trust Platform manifests: a JSON array of
 * JWS entries in the flattened JSON serialisation (RFC 7515 §7.2.2), one
 * per secure element. Each entry's ES256 signature is verified against the
 * configured manifest-signer certificate before anything in it is used;
 * the SE serial comes from the signed payload only. Runs on the calling
 * thread; reads only the buffer and the signer certificate it is given.
 *
 * The array is read one entry at a time (jansson with
 * JSON_DISABLE_EOF_CHECK), so memory stays at one entry, not the file.
 */
#include "fc_build.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "import_int.h"
#include "inventory.h"
#include "log.h"

#define JSON_DEPTH_MAX	16		/* nesting of any JSON we parse */
#define ENTRY_PART_MAX	(256u << 10)	/* bytes of a decoded JWS part */

struct signer {
	EVP_PKEY	*key;
	char		 x5t[64];	/* base64url SHA-256 of its DER */
	EVP_MD		*sha256;	/* fetched once */
	EVP_MD_CTX	*md;
	EVP_PKEY_CTX	*vctx;		/* verify context, initialised once */
};

/* ---- small helpers ---------------------------------------------------- */

static int
b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* RFC 7515 §2 / RFC 4648 §5 without padding; non-canonical trailing
 * bits refused. */
enum fc_err
import_b64url_decode(const char *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf;
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0, v;

	if (len % 4 == 1 || len > (1u << 28))
		return FC_EINVAL;
	buf = malloc(len * 3 / 4 + 1);
	if (buf == NULL)
		return FC_ENOMEM;
	for (i = 0; i < len; i++) {
		v = b64url_val((unsigned char)in[i]);
		if (v < 0)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		goto bad;
	*out = buf;
	*outlen = o;
	return FC_OK;
bad:
	free(buf);
	return FC_EINVAL;
}

static void
b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (i = 0; i < len && o + 2 < cap; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6 && o + 1 < cap) {
			bits -= 6;
			out[o++] = al[(acc >> bits) & 0x3f];
		}
	}
	if (bits > 0 && o + 1 < cap)
		out[o++] = al[(acc << (6 - bits)) & 0x3f];
	out[o] = '\0';
}

/* Offset where JSON text first nests deeper than limit (strings skipped),
 * or -1: bounds the recursion before jansson parses it. */
static long
json_too_deep(const char *s, size_t len, int limit)
{
	int d = 0, instr = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];
		if (instr) {
			if (c == '\\')
				i++;
			else if (c == '"')
				instr = 0;
		} else if (c == '"')
			instr = 1;
		else if (c == '[' || c == '{') {
			if (++d > limit)
				return (long)i;
		} else if (c == ']' || c == '}')
			d--;
	}
	return -1;
}

/* Decodes a base64url member into a JSON object. */
static json_t *
b64url_json(const char *text, char *why, size_t whylen, const char *what)
{
	unsigned char *raw = NULL;
	size_t len = 0;
	json_t *j = NULL;
	json_error_t jerr;

	if (strlen(text) > ENTRY_PART_MAX ||
	    import_b64url_decode(text, strlen(text), &raw, &len) != FC_OK) {
		snprintf(why, whylen, "%s is not base64url", what);
		return NULL;
	}
	if (json_too_deep((const char *)raw, len, JSON_DEPTH_MAX) >= 0)
		snprintf(why, whylen, "%s nests deeper than %d levels", what,
		    JSON_DEPTH_MAX);
	else {
		j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES,
		    &jerr);
		if (j != NULL && !json_is_object(j)) {
			json_decref(j);
			j = NULL;
		}
		if (j == NULL)
			snprintf(why, whylen, "%s is not a JSON object", what);
	}
	free(raw);
	return j;
}

static const char *
str_member(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- signer ----------------------------------------------------------- */

static enum fc_err
signer_init(struct signer *s, X509 *cert, char *why, size_t whylen)
{
	unsigned char md[32], *der = NULL;
	char group[32];
	size_t glen = 0;
	int len;

	memset(s, 0, sizeof(*s));
	if (cert == NULL) {
		snprintf(why, whylen, "no manifest signer certificate is "
		    "configured ([import] manifest_signer)");
		return FC_EINVAL;
	}
	s->key = X509_get_pubkey(cert);
	if (s->key == NULL || EVP_PKEY_get_base_id(s->key) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(s->key, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) || strcmp(group, "prime256v1") != 0) {
		ERR_clear_error();
		snprintf(why, whylen, "the manifest signer certificate's key is "
		    "not EC P-256 (ES256)");
		return FC_EINVAL;
	}
	len = i2d_X509(cert, &der);
	if (len <= 0 || !EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(),
	    NULL)) {
		OPENSSL_free(der);
		return FC_ECRYPTO;
	}
	OPENSSL_free(der);
	b64url_encode(md, sizeof(md), s->x5t, sizeof(s->x5t));
	/* The key, digest and verify context are set up once per import:
	 * per-entry EVP_DigestVerifyInit costs as much as the curve maths. */
	s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	s->md = EVP_MD_CTX_new();
	s->vctx = EVP_PKEY_CTX_new(s->key, NULL);
	if (s->sha256 == NULL || s->md == NULL || s->vctx == NULL ||
	    EVP_PKEY_verify_init(s->vctx) != 1) {
		ERR_clear_error();
		return FC_ENOMEM;
	}
	return FC_OK;
}

static void
signer_free(struct signer *s)
{
	EVP_PKEY_free(s->key);
	EVP_PKEY_CTX_free(s->vctx);
	EVP_MD_CTX_free(s->md);
	EVP_MD_free(s->sha256);
	memset(s, 0, sizeof(*s));
}

/* ES256 (RFC 7518 §3.4): 64-byte R || S over protected "." payload. */
static int
es256_verify(struct signer *s, const char *prot, const char *payload,
    const unsigned char *sig, size_t siglen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int derlen, ok = 0;

	if (siglen != 64)
		return 0;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	sv = BN_bin2bn(sig + 32, 32, NULL);
	if (es == NULL || r == NULL || sv == NULL || !ECDSA_SIG_set0(es, r, sv))
		goto out;
	r = sv = NULL;
	derlen = i2d_ECDSA_SIG(es, &der);
	if (derlen <= 0)
		goto out;
	ok = EVP_DigestInit_ex(s->md, s->sha256, NULL) == 1 &&
	    EVP_DigestUpdate(s->md, prot, strlen(prot)) == 1 &&
	    EVP_DigestUpdate(s->md, ".", 1) == 1 &&
	    EVP_DigestUpdate(s->md, payload, strlen(payload)) == 1 &&
	    EVP_DigestFinal_ex(s->md, md, &mdlen) == 1 && mdlen == 32 &&
	    EVP_PKEY_verify(s->vctx, der, (size_t)derlen, md, mdlen) == 1;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(es);
	return ok;
}

/* ---- one entry -------------------------------------------------------- */

/* The slot-0 key of publicKeySet.keys[]; NULL if absent. */
static json_t *
slot0_jwk(json_t *payload)
{
	json_t *keys = json_object_get(json_object_get(payload, "publicKeySet"),
	    "keys"), *k;
	size_t i;

	json_array_foreach(keys, i, k) {
		const char *kid = str_member(k, "kid");
		if (kid != NULL && strcmp(kid, "0") == 0)
			return k;
	}
	return NULL;
}

static int
jwk_coord(json_t *jwk, const char *name, unsigned char out[32])
{
	const char *t = str_member(jwk, name);
	unsigned char *raw = NULL;
	size_t len = 0;
	int ok;

	if (t == NULL || import_b64url_decode(t, strlen(t), &raw, &len) != FC_OK)
		return 0;
	ok = len == 32;
	if (ok)
		memcpy(out, raw, 32);
	free(raw);
	return ok;
}

#define E(...) do { import_err(ctx, line, index, __VA_ARGS__); goto bad; } \
	while (0)

static enum fc_err
entry(struct import_ctx *ctx, struct signer *s, json_t *e, long line,
    long index)
{
	json_t *prot = NULL, *payload = NULL, *jwk, *x5c;
	struct import_row r;
	struct import_cert cert;
	unsigned char *sig = NULL, *der = NULL, x[32], y[32];
	unsigned char spki[IMPORT_P256_SPKI_LEN];
	size_t siglen = 0, derlen = 0;
	const char *pt, *pl, *st, *alg, *x5t, *uid, *hid, *c0;
	char why[160], serial[FC_SE_SERIAL_LEN], hserial[FC_SE_SERIAL_LEN];
	char devid[FC_DEVICE_ID_MAX];
	enum fc_err result = FC_OK;

	memset(&r, 0, sizeof(r));
	memset(&cert, 0, sizeof(cert));
	pt = str_member(e, "protected");
	pl = str_member(e, "payload");
	st = str_member(e, "signature");
	if (!json_is_object(e) || pt == NULL || pl == NULL || st == NULL)
		E("entry is not a flattened JWS (protected, payload and "
		    "signature strings)");

	/* RFC 7515 §5.2: check the protected header, then the signature,
	 * and only then read the payload. */
	prot = b64url_json(pt, why, sizeof(why), "protected header");
	if (prot == NULL)
		E("%s", why);
	alg = str_member(prot, "alg");
	if (alg == NULL || strcmp(alg, "ES256") != 0)
		E("protected header alg must be ES256");
	if (json_object_get(prot, "crit") != NULL)
		E("protected header has crit extensions, which are not "
		    "supported");
	x5t = str_member(prot, "x5t#S256");
	if (x5t == NULL)
		E("protected header has no x5t#S256");
	if (strcmp(x5t, s->x5t) != 0)
		E("entry is signed by another signer (x5t#S256 is not the "
		    "configured manifest signer's)");
	if (strlen(st) > 128 ||
	    import_b64url_decode(st, strlen(st), &sig, &siglen) != FC_OK ||
	    siglen != 64)
		E("signature is not a 64-byte base64url R||S value");
	if (!es256_verify(s, pt, pl, sig, siglen))
		E("signature does not verify against the manifest signer");

	payload = b64url_json(pl, why, sizeof(why), "payload");
	if (payload == NULL)
		E("%s", why);
	uid = str_member(payload, "uniqueId");
	if (uid == NULL || strlen(uid) != 18 ||
	    fc_se_serial_canon(uid, serial) != FC_OK)
		E("payload uniqueId is not an ATECC608B serial (18 hex digits "
		    "starting 0123)");
	hid = str_member(json_object_get(e, "header"), "uniqueId");
	if (hid != NULL && (fc_se_serial_canon(hid, hserial) != FC_OK ||
	    strcmp(hserial, serial) != 0))
		E("unsigned header uniqueId differs from the signed payload's "
		    "(%s)", serial);

	jwk = slot0_jwk(payload);
	if (jwk == NULL)
		E("payload has no slot-0 key (publicKeySet.keys[] kid \"0\")");
	if (str_member(jwk, "kty") == NULL ||
	    strcmp(str_member(jwk, "kty"), "EC") != 0 ||
	    str_member(jwk, "crv") == NULL ||
	    strcmp(str_member(jwk, "crv"), "P-256") != 0)
		E("slot-0 key must be kty EC, crv P-256");
	if (!jwk_coord(jwk, "x", x) || !jwk_coord(jwk, "y", y))
		E("slot-0 key x and y must be 32-byte base64url values");
	import_key_from_xy(x, y, spki);
	if (import_key_check(ctx, spki, sizeof(spki), why, sizeof(why)) != FC_OK)
		E("slot-0 key %s", why);

	/* x5c (RFC 7517 §4.7) sits in the slot-0 JWK in Microchip's files;
	 * a payload-level x5c is accepted too. */
	x5c = json_object_get(jwk, "x5c");
	if (x5c == NULL)
		x5c = json_object_get(payload, "x5c");
	if (x5c != NULL && !json_is_array(x5c))
		E("x5c must be an array of base64 certificates");
	c0 = json_string_value(json_array_get(x5c, 0));
	if (json_array_size(x5c) > 0 && c0 == NULL)
		E("x5c[0] is not a string");
	snprintf(devid, sizeof(devid), "sn%s", serial);
	if (c0 != NULL) {
		if (fc_b64_decode(c0, &der, &derlen) != FC_OK)
			E("x5c[0] is not valid base64");
		result = import_cert_parse(der, derlen, &cert, why,
		    sizeof(why));
		if (result == FC_EINVAL) {
			result = FC_OK;
			E("x5c[0]: %s", why);
		}
		if (result != FC_OK)
			goto out;
		if (cert.spki_len != sizeof(spki) ||
		    memcmp(cert.spki, spki, sizeof(spki)) != 0)
			E("slot-0 JWK differs from the x5c[0] certificate's key");
		if (cert.has_cn)
			snprintf(devid, sizeof(devid), "%s", cert.cn);
		r.cert = &cert;
		r.cert_der = der;
		r.cert_der_len = derlen;
	}

	r.device_id = devid;
	r.serial = serial;
	r.key = spki;
	r.key_len = sizeof(spki);
	r.auth_type = ctx->opts->auth_type;
	r.owner = ctx->opts->owner;
	r.batch = ctx->opts->batch;
	r.hub = ctx->opts->hub;
	result = import_row_apply(ctx, line, index, &r);
	goto out;
bad:
	ctx->records++;
	ctx->bad = 1;
out:
	import_cert_clear(&cert);
	free(der);
	free(sig);
	json_decref(prot);
	json_decref(payload);
	return result;
}

/* ---- the array -------------------------------------------------------- */

struct cursor {
	const char	*buf;
	size_t		 len, pos;
	long		 line;
	size_t		 counted;	/* newlines counted up to here */
};

static void
advance_lines(struct cursor *c)
{
	const char *p = c->buf + c->counted, *end = c->buf + c->pos;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		c->line++;
		p++;
	}
	c->counted = c->pos;
}

static int
skip_ws(struct cursor *c)
{
	while (c->pos < c->len && strchr(" \t\r\n", c->buf[c->pos]) != NULL &&
	    c->buf[c->pos] != '\0')
		c->pos++;
	advance_lines(c);
	return c->pos < c->len ? (unsigned char)c->buf[c->pos] : -1;
}

enum fc_err
import_manifest(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res)
{
	struct import_ctx ctx;
	struct signer s;
	struct cursor c;
	json_t *e = NULL;
	json_error_t jerr;
	char why[160];
	long index = 0, deep;
	int ch;
	enum fc_err result;

	memset(&s, 0, sizeof(s));
	result = import_ctx_init(&ctx, db, opts, res);
	if (result != FC_OK)
		return result;
	result = signer_init(&s, opts->manifest_signer, why, sizeof(why));
	if (result != FC_OK) {
		if (result == FC_EINVAL) {
			import_err(&ctx, 0, -1, "%s", why);
			ctx.fatal = 1;
			result = FC_OK;
		}
		goto out;
	}
	if (len > IMPORT_INPUT_MAX) {
		import_err(&ctx, 0, -1, "input is larger than %u bytes",
		    IMPORT_INPUT_MAX);
		ctx.fatal = 1;
		goto out;
	}
	/* The defaults every entry gets: checked once, not per entry. */
	if (!import_hub_known(opts, opts->hub) || (opts->auth_type != NULL &&
	    opts->auth_type[0] != '\0' && inv_auth_parse(opts->auth_type) < 0)) {
		import_err(&ctx, 0, -1, "the hub or authType given for the "
		    "manifest is not valid");
		ctx.fatal = 1;
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.buf = buf;
	c.len = len;
	c.line = 1;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		c.pos = c.counted = 3;
	if (skip_ws(&c) != '[') {
		import_err(&ctx, c.line, -1, "a manifest is a JSON array of "
		    "JWS entries");
		ctx.fatal = 1;
		goto out;
	}
	deep = json_too_deep(buf + c.pos, len - c.pos, JSON_DEPTH_MAX + 1);
	if (deep >= 0) {
		struct cursor d = c;
		d.pos += (size_t)deep;
		advance_lines(&d);
		import_err(&ctx, d.line, -1, "JSON nests deeper than %d levels",
		    JSON_DEPTH_MAX);
		ctx.fatal = 1;
		goto out;
	}
	c.pos++;
	if (skip_ws(&c) == ']') {
		c.pos++;
		goto tail;
	}
	for (;;) {
		long line;

		if (skip_ws(&c) != '{') {
			import_err(&ctx, c.line, index, "entry %ld is not a JSON "
			    "object", index);
			ctx.fatal = 1;
			goto out;
		}
		line = c.line;
		e = json_loadb(buf + c.pos, len - c.pos,
		    JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
		if (e == NULL) {
			import_err(&ctx, line + jerr.line - 1, index, "JSON "
			    "syntax error in entry %ld: %s", index, jerr.text);
			ctx.fatal = 1;
			goto out;
		}
		c.pos += (size_t)jerr.position;
		result = entry(&ctx, &s, e, line, index);
		json_decref(e);
		e = NULL;
		index++;
		if (result != FC_OK || ctx.fatal)
			goto out;
		advance_lines(&c);
		ch = skip_ws(&c);
		if (ch == ',') {
			c.pos++;
			continue;
		}
		if (ch == ']') {
			c.pos++;
			break;
		}
		import_err(&ctx, c.line, -1, "expected , or ] after entry %ld",
		    index - 1);
		ctx.fatal = 1;
		goto out;
	}
tail:
	if (skip_ws(&c) != -1) {
		import_err(&ctx, c.line, -1, "data after the manifest array");
		ctx.fatal = 1;
	}
out:
	json_decref(e);
	signer_free(&s);
	return import_ctx_finish(&ctx, result);
}
