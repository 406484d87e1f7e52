/*
 * der.h — a minimal DER writer and strict reader, used where OpenSSL 3's
 * encoder/decoder layer costs more than the signature itself (device
 * certificates, CSRs, CRLs; see shared/performance-ceilings.md).
 * Single-byte tags only; definite, minimal lengths only.
 */
#ifndef FC_DER_H
#define FC_DER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define DER_INTEGER	0x02
#define DER_BITSTRING	0x03
#define DER_OCTETSTRING	0x04
#define DER_NULL	0x05
#define DER_OID		0x06
#define DER_ENUMERATED	0x0a
#define DER_UTF8STRING	0x0c
#define DER_IA5STRING	0x16
#define DER_UTCTIME	0x17
#define DER_GENTIME	0x18
#define DER_SEQUENCE	0x30
#define DER_SET		0x31

/* A growable output buffer. After any allocation failure err is set and
 * every later call does nothing; check it once at the end. */
struct der_buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	int		 err;
};

void der_buf_free(struct der_buf *b);
void der_put(struct der_buf *b, const void *data, size_t len);
/* A whole TLV with the given content. */
void der_tlv(struct der_buf *b, unsigned tag, const void *data, size_t len);
/* Opens a constructed TLV; der_close() fills its length. Returns the mark. */
size_t der_open(struct der_buf *b, unsigned tag);
void der_close(struct der_buf *b, size_t mark);
/* An unsigned big-endian integer (leading zeros dropped, 00 added when the
 * top bit is set). len may be 0 for the value 0. */
void der_uint(struct der_buf *b, unsigned tag, const unsigned char *be,
    size_t len);
void der_uint64(struct der_buf *b, unsigned tag, uint64_t v);
/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
void der_time(struct der_buf *b, time_t t);

/* A read cursor. */
struct der_rd {
	const unsigned char	*p;
	size_t			 len;
};

/*
 * Reads the next TLV with tag `tag` from r: its content into *content and
 * (when raw is not NULL) the whole TLV into *raw. Returns 0, or -1 when the
 * tag differs or the encoding is not strict DER; r advances only on 0.
 */
int der_get(struct der_rd *r, unsigned tag, struct der_rd *content,
    struct der_rd *raw);
/* The tag of the next TLV, or -1 at the end. */
int der_peek(const struct der_rd *r);

#endif
