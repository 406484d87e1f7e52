/*
 * import_dup.c — the sets an import uses to find duplicates inside its
 * input (device ids, SE serials, identity keys, certificate serials):
 * open addressing over compact slots, keys kept back to back in one arena,
 * hashed with SipHash-2-4 under a random per-process key so that a hostile
 * file cannot make every key collide. Calling thread only; the SipHash key
 * is drawn once per process (pthread_once).
 */
#include "fc_build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "import_int.h"

struct import_dupent {		/* 16 bytes */
	uint32_t	 h;		/* high half of the hash */
	uint32_t	 off;		/* key's offset in the arena */
	uint16_t	 len;
	uint16_t	 used;		/* 0: empty slot */
	int32_t		 line;
};

static unsigned char sip_key[16];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;
static int sip_key_ok;

static void
sip_key_init(void)
{
	sip_key_ok = RAND_bytes(sip_key, sizeof(sip_key)) == 1;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012). */
static uint64_t
siphash(const unsigned char *in, size_t len)
{
	uint64_t k0 = le64(sip_key), k1 = le64(sip_key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < len % 8; i++)
		b |= (uint64_t)in[end + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

void
import_dupset_free(struct import_dupset *s)
{
	free(s->slots);
	free(s->arena);
	memset(s, 0, sizeof(*s));
}

/* Slot of key (hash h), or the empty slot where it belongs. The low bits
 * of h pick the start; the high half is kept to skip most compares. */
static struct import_dupent *
slot(struct import_dupset *s, const void *key, size_t len, uint64_t h)
{
	size_t i = (size_t)h & (s->cap - 1);
	uint32_t hi = (uint32_t)(h >> 32);

	for (;;) {
		struct import_dupent *e = &s->slots[i];
		if (!e->used || (e->h == hi && e->len == len &&
		    memcmp(s->arena + e->off, key, len) == 0))
			return e;
		i = (i + 1) & (s->cap - 1);
	}
}

static enum fc_err
grow(struct import_dupset *s)
{
	struct import_dupent *old = s->slots;
	size_t i, oldcap = s->cap;

	s->cap = oldcap ? oldcap * 2 : 1024;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (s->slots == NULL) {
		s->slots = old;
		s->cap = oldcap;
		return FC_ENOMEM;
	}
	for (i = 0; i < oldcap; i++) {
		const unsigned char *k = s->arena + old[i].off;
		if (old[i].used)
			*slot(s, k, old[i].len, siphash(k, old[i].len)) = old[i];
	}
	free(old);
	return FC_OK;
}

enum fc_err
import_dupset_add(struct import_dupset *s, const void *key, size_t len,
    long line, long *first)
{
	struct import_dupent *e;
	uint64_t h;

	if (pthread_once(&sip_once, sip_key_init) != 0 || !sip_key_ok)
		return FC_EINTERNAL;
	if (len > UINT16_MAX || s->arena_len + len > UINT32_MAX)
		return FC_ENOMEM;
	/* Load factor at most 3/4. */
	if ((s->used + 1) * 4 > s->cap * 3 && grow(s) != FC_OK)
		return FC_ENOMEM;
	h = siphash(key, len);
	e = slot(s, key, len, h);
	if (e->used) {
		*first = e->line;
		return FC_OK;
	}
	if (s->arena_len + len > s->arena_cap) {
		size_t ncap = s->arena_cap ? s->arena_cap * 2 : 16384;
		unsigned char *n;
		while (ncap < s->arena_len + len)
			ncap *= 2;
		n = realloc(s->arena, ncap);
		if (n == NULL)
			return FC_ENOMEM;
		s->arena = n;
		s->arena_cap = ncap;
	}
	memcpy(s->arena + s->arena_len, key, len);
	e->off = (uint32_t)s->arena_len;
	e->len = (uint16_t)len;
	e->used = 1;
	e->h = (uint32_t)(h >> 32);
	e->line = line > INT32_MAX ? INT32_MAX : (int32_t)line;
	s->arena_len += len;
	s->used++;
	*first = 0;
	return FC_OK;
}
