/*
 * der.c — minimal DER writer and strict reader (see der.h). Pure functions
 * over caller memory; any process, any thread.
 */
#include "fc_build.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "der.h"

void
der_buf_free(struct der_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int
grow(struct der_buf *b, size_t more)
{
	size_t ncap;
	unsigned char *np;

	if (b->err)
		return -1;
	if (b->len + more <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (np == NULL) {
		b->err = 1;
		return -1;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

void
der_put(struct der_buf *b, const void *data, size_t len)
{
	if (len == 0 || grow(b, len) != 0)
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static size_t
len_octets(size_t len)
{
	size_t n = 0;

	if (len < 0x80)
		return 0;
	while (len > 0) {
		n++;
		len >>= 8;
	}
	return n;
}

static void
put_len(unsigned char *out, size_t len, size_t k)
{
	size_t i;

	if (k == 0) {
		out[0] = (unsigned char)len;
		return;
	}
	out[0] = (unsigned char)(0x80 | k);
	for (i = 0; i < k; i++)
		out[k - i] = (unsigned char)(len >> (8 * i));
}

void
der_tlv(struct der_buf *b, unsigned tag, const void *data, size_t len)
{
	size_t k = len_octets(len);

	if (grow(b, 2 + k + len) != 0)
		return;
	b->p[b->len++] = (unsigned char)tag;
	put_len(b->p + b->len, len, k);
	b->len += 1 + k;
	der_put(b, data, len);
}

size_t
der_open(struct der_buf *b, unsigned tag)
{
	if (grow(b, 2) != 0)
		return 0;
	b->p[b->len++] = (unsigned char)tag;
	b->p[b->len++] = 0;
	return b->len;
}

void
der_close(struct der_buf *b, size_t mark)
{
	size_t clen, k;

	if (b->err || mark == 0)
		return;
	clen = b->len - mark;
	k = len_octets(clen);
	if (k > 0) {
		if (grow(b, k) != 0)
			return;
		memmove(b->p + mark + k, b->p + mark, clen);
		b->len += k;
	}
	put_len(b->p + mark - 1, clen, k);
}

void
der_uint(struct der_buf *b, unsigned tag, const unsigned char *be, size_t len)
{
	static const unsigned char zero = 0;
	size_t mark;

	while (len > 0 && be[0] == 0) {
		be++;
		len--;
	}
	mark = der_open(b, tag);
	if (len == 0 || (be[0] & 0x80))
		der_put(b, &zero, 1);
	der_put(b, be, len);
	der_close(b, mark);
}

void
der_uint64(struct der_buf *b, unsigned tag, uint64_t v)
{
	unsigned char be[8];
	int i;

	for (i = 7; i >= 0; i--) {
		be[i] = (unsigned char)v;
		v >>= 8;
	}
	der_uint(b, tag, be, sizeof(be));
}

void
der_time(struct der_buf *b, time_t t)
{
	struct tm tm;
	char s[80];

	gmtime_r(&t, &tm);
	if (tm.tm_year + 1900 >= 1950 && tm.tm_year + 1900 <= 2049) {
		/* RFC 5280 4.1.2.5.1: UTCTime YYMMDDHHMMSSZ up to 2049. */
		snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ",
		    tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		der_tlv(b, DER_UTCTIME, s, 13);
	} else {
		strftime(s, sizeof(s), "%Y%m%d%H%M%SZ", &tm);
		der_tlv(b, DER_GENTIME, s, 15);
	}
}

int
der_peek(const struct der_rd *r)
{
	return r->len > 0 ? r->p[0] : -1;
}

int
der_get(struct der_rd *r, unsigned tag, struct der_rd *content,
    struct der_rd *raw)
{
	size_t len, hdr, i, k;

	if (r->len < 2 || r->p[0] != tag)
		return -1;
	if (r->p[1] < 0x80) {
		len = r->p[1];
		hdr = 2;
	} else {
		k = r->p[1] & 0x7f;
		/* No indefinite form, at most 4 length octets, no leading
		 * zero octet, no long form for short lengths. */
		if (k == 0 || k > 4 || r->len < 2 + k || r->p[2] == 0)
			return -1;
		len = 0;
		for (i = 0; i < k; i++)
			len = (len << 8) | r->p[2 + i];
		if (len < 0x80)
			return -1;
		hdr = 2 + k;
	}
	if (len > r->len - hdr)
		return -1;
	content->p = r->p + hdr;
	content->len = len;
	if (raw != NULL) {
		raw->p = r->p;
		raw->len = hdr + len;
	}
	r->p += hdr + len;
	r->len -= hdr + len;
	return 0;
}
