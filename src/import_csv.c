/*
 * import_csv.c — the factory-record CSV (device-protocol.md "Factory
 * records"): an RFC 4180 reader (quoted fields, doubled quotes, CRLF or LF)
 * that hands each record to import.c. Runs on the calling thread; reads
 * only the buffer it is given.
 *
 * Errors that break the framing (an unterminated quote, a record over
 * IMPORT_FIELD_MAX, a bad header) stop the import; errors inside a record
 * are that record's and the reader goes on with the next line.
 */
#include "fc_build.h"

#include <stdlib.h>
#include <string.h>

#include "import_int.h"
#include "log.h"

enum col {
	COL_DEVICE_ID = 0, COL_SERIAL, COL_KEY, COL_CERT, COL_AUTH, COL_OWNER,
	COL_BATCH, COL_HUB, COL_COUNT
};
static const char *col_names[COL_COUNT] = {
	"deviceId", "serial", "identityPublicKey", "certificate", "authType",
	"owner", "batch", "hub",
};

struct csv {
	const char	*buf;
	size_t		 len, pos;
	long		 line;		/* physical line of buf[pos], 1-based */
	char		*rec;		/* fields, each NUL-terminated */
	size_t		 reclen, reccap;
	size_t		*fstart;
	size_t		 nf, fcap;
	char		 err[128];	/* first problem inside the record */
};

enum rd { RD_EOF = 0, RD_RECORD, RD_FATAL };

static int
put(struct csv *c, char ch)
{
	if (c->reclen == c->reccap) {
		size_t n = c->reccap ? c->reccap * 2 : 4096;
		char *p;

		if (n > IMPORT_FIELD_MAX + 2)
			n = IMPORT_FIELD_MAX + 2;
		if (c->reclen >= n)
			return 0;
		p = realloc(c->rec, n);
		if (p == NULL)
			return 0;
		c->rec = p;
		c->reccap = n;
	}
	c->rec[c->reclen++] = ch;
	return 1;
}

static int
field_start(struct csv *c)
{
	if (c->nf == c->fcap) {
		size_t n = c->fcap ? c->fcap * 2 : 16;
		size_t *p = realloc(c->fstart, n * sizeof(*p));
		if (p == NULL)
			return 0;
		c->fstart = p;
		c->fcap = n;
	}
	c->fstart[c->nf++] = c->reclen;
	return 1;
}

static void
rec_err(struct csv *c, const char *msg)
{
	if (c->err[0] == '\0')
		snprintf(c->err, sizeof(c->err), "%s", msg);
}

/*
 * Reads one record (RFC 4180 §2). On RD_RECORD the fields are in c->rec /
 * c->fstart and c->err may hold a problem; on RD_FATAL why holds the
 * reason.
 */
static enum rd
read_record(struct csv *c, long *start_line, char *why, size_t whylen)
{
	const char *b = c->buf;
	size_t n = c->len;

	c->reclen = 0;
	c->nf = 0;
	c->err[0] = '\0';
	*start_line = c->line;
	if (c->pos >= n)
		return RD_EOF;
	for (;;) {
		if (!field_start(c))
			goto nomem;
		if (c->pos < n && b[c->pos] == '"') {
			c->pos++;
			for (;;) {
				char ch;
				if (c->pos >= n) {
					snprintf(why, whylen, "quoted field "
					    "starting on line %ld is not "
					    "terminated", *start_line);
					return RD_FATAL;
				}
				ch = b[c->pos++];
				if (ch == '"') {
					if (c->pos < n && b[c->pos] == '"')
						c->pos++;
					else
						break;
				} else if (ch == '\n')
					c->line++;
				else if (ch == '\0') {
					rec_err(c, "contains a NUL byte");
					ch = '?';
				}
				if (!put(c, ch))
					goto toolong;
			}
			if (c->pos < n && b[c->pos] != ',' && b[c->pos] != '\n' &&
			    b[c->pos] != '\r')
				rec_err(c, "has a character after a closing quote");
		}
		/* Unquoted text (or what follows a bad closing quote). */
		while (c->pos < n && b[c->pos] != ',' && b[c->pos] != '\n') {
			char ch = b[c->pos];
			if (ch == '\r' && c->pos + 1 < n && b[c->pos + 1] == '\n')
				break;
			if (ch == '"')
				rec_err(c, "has a quote inside an unquoted field");
			else if (ch == '\r')
				rec_err(c, "has a bare carriage return");
			else if (ch == '\0') {
				rec_err(c, "contains a NUL byte");
				ch = '?';
			}
			if (!put(c, ch))
				goto toolong;
			c->pos++;
		}
		if (!put(c, '\0'))
			goto toolong;
		if (c->pos >= n)
			return RD_RECORD;
		if (b[c->pos] == ',') {
			c->pos++;
			continue;
		}
		c->pos += b[c->pos] == '\r' ? 2 : 1;
		c->line++;
		return RD_RECORD;
	}
toolong:
	if (c->reclen >= IMPORT_FIELD_MAX) {
		snprintf(why, whylen, "record starting on line %ld is longer "
		    "than %u bytes", *start_line, IMPORT_FIELD_MAX);
		return RD_FATAL;
	}
nomem:
	snprintf(why, whylen, "out of memory");
	return RD_FATAL;
}

/* UTF-8 as RFC 3629 §4 allows it: no overlongs, surrogates or > U+10FFFF. */
static int
utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned c = *s;
		int k, i;
		unsigned cp, min;

		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3; cp = c & 0x07; min = 0x10000;
		} else
			return 0;
		for (i = 1; i <= k; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += k + 1;
	}
	return 1;
}

/* A record of one empty field: a blank line, skipped. */
static int
blank(const struct csv *c)
{
	return c->nf == 1 && c->rec[0] == '\0' && c->err[0] == '\0';
}

static int
header_parse(struct import_ctx *ctx, struct csv *c, long line,
    int map[COL_COUNT])
{
	size_t i;
	int k;
	char q[64];

	for (k = 0; k < COL_COUNT; k++)
		map[k] = -1;
	if (c->err[0] != '\0') {
		import_err(ctx, line, -1, "header %s", c->err);
		return 0;
	}
	for (i = 0; i < c->nf; i++) {
		const char *name = c->rec + c->fstart[i];
		for (k = 0; k < COL_COUNT; k++)
			if (strcmp(name, col_names[k]) == 0)
				break;
		import_quote(q, sizeof(q), name, strlen(name));
		if (k == COL_COUNT) {
			import_err(ctx, line, -1, "header: unknown column \"%s\" "
			    "(expected deviceId, serial, identityPublicKey, "
			    "certificate, authType, owner, batch, hub)", q);
			return 0;
		}
		if (map[k] >= 0) {
			import_err(ctx, line, -1, "header: duplicate column \"%s\"",
			    q);
			return 0;
		}
		map[k] = (int)i;
	}
	if (map[COL_DEVICE_ID] < 0 || map[COL_SERIAL] < 0 ||
	    (map[COL_KEY] < 0 && map[COL_CERT] < 0)) {
		import_err(ctx, line, -1, "header must name deviceId, serial and "
		    "identityPublicKey or certificate");
		return 0;
	}
	return 1;
}

static const char *
field(const struct csv *c, const int map[COL_COUNT], enum col k)
{
	return map[k] < 0 ? "" : c->rec + c->fstart[map[k]];
}

/* One data record: decode, then hand to import_row_apply. */
static enum fc_err
record(struct import_ctx *ctx, struct csv *c, const int map[COL_COUNT],
    size_t ncols, long line)
{
	struct import_row r;
	struct import_cert cert;
	unsigned char *key = NULL, *der = NULL;
	char why[160];
	size_t keylen = 0, derlen = 0, i;
	const char *kt, *ct;
	enum fc_err result = FC_OK;

	memset(&r, 0, sizeof(r));
	memset(&cert, 0, sizeof(cert));
	if (c->err[0] != '\0') {
		import_err(ctx, line, -1, "record %s", c->err);
		goto bad;
	}
	if (c->nf != ncols) {
		import_err(ctx, line, -1, "record has %zu fields, the header "
		    "has %zu", c->nf, ncols);
		goto bad;
	}
	for (i = 0; i < c->nf; i++) {
		if (!utf8_valid((const unsigned char *)c->rec + c->fstart[i])) {
			import_err(ctx, line, -1, "field %zu is not valid UTF-8",
			    i + 1);
			goto bad;
		}
	}
	kt = field(c, map, COL_KEY);
	ct = field(c, map, COL_CERT);
	if (kt[0] != '\0' && fc_b64_decode(kt, &key, &keylen) != FC_OK) {
		import_err(ctx, line, -1, "identityPublicKey is not valid "
		    "base64 (RFC 4648, padded, no whitespace)");
		goto bad;
	}
	if (ct[0] != '\0') {
		if (fc_b64_decode(ct, &der, &derlen) != FC_OK) {
			import_err(ctx, line, -1, "certificate is not valid "
			    "base64 (RFC 4648, padded, no whitespace)");
			goto bad;
		}
		result = import_cert_parse(der, derlen, &cert, why,
		    sizeof(why));
		if (result == FC_EINVAL) {
			result = FC_OK;
			import_err(ctx, line, -1, "%s", why);
			goto bad;
		}
		if (result != FC_OK)
			goto out;
		r.cert = &cert;
		r.cert_der = der;
		r.cert_der_len = derlen;
	}
	r.device_id = field(c, map, COL_DEVICE_ID);
	r.serial = field(c, map, COL_SERIAL);
	r.auth_type = field(c, map, COL_AUTH);
	r.owner = field(c, map, COL_OWNER);
	r.batch = field(c, map, COL_BATCH);
	r.hub = field(c, map, COL_HUB);
	r.key = key;
	r.key_len = keylen;
	result = import_row_apply(ctx, line, -1, &r);
	goto out;
bad:
	ctx->records++;
	ctx->bad = 1;
out:
	import_cert_clear(&cert);
	free(key);
	free(der);
	return result;
}

enum fc_err
import_csv(struct db *db, const char *buf, size_t len,
    const struct import_opts *opts, struct import_result *res)
{
	struct import_ctx ctx;
	struct csv c;
	int map[COL_COUNT], have_header = 0;
	size_t ncols = 0;
	char why[160];
	long line;
	enum fc_err result;

	memset(&c, 0, sizeof(c));
	result = import_ctx_init(&ctx, db, opts, res);
	if (result != FC_OK)
		return result;
	if (len > IMPORT_INPUT_MAX) {
		import_err(&ctx, 0, -1, "input is larger than %u bytes",
		    IMPORT_INPUT_MAX);
		ctx.fatal = 1;
		goto out;
	}
	c.buf = buf;
	c.len = len;
	c.line = 1;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		c.pos = 3;	/* a UTF-8 byte order mark, as spreadsheets write */
	for (;;) {
		enum rd rd = read_record(&c, &line, why, sizeof(why));
		if (rd == RD_FATAL) {
			import_err(&ctx, line, -1, "%s", why);
			ctx.fatal = 1;
			break;
		}
		if (rd == RD_EOF)
			break;
		if (blank(&c))
			continue;
		if (!have_header) {
			if (!header_parse(&ctx, &c, line, map)) {
				ctx.fatal = 1;
				break;
			}
			have_header = 1;
			ncols = c.nf;
			continue;
		}
		result = record(&ctx, &c, map, ncols, line);
		if (result != FC_OK || ctx.fatal)
			break;
	}
	if (!have_header && !ctx.fatal) {
		import_err(&ctx, 1, -1, "no header line");
		ctx.fatal = 1;
	}
out:
	free(c.rec);
	free(c.fstart);
	return import_ctx_finish(&ctx, result);
}
