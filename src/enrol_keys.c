/*
 * enrol_keys.c — cache of parsed identity public keys, keyed by SE serial
 * and checked against the SPKI bytes the inventory holds now. Shared by the
 * enrolment listener's threads under one mutex; keys are handed out with a
 * reference of their own, so an eviction never frees a key in use.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "enrol_int.h"

#define SPKI_MAX	128	/* P-256 SPKI DER is 91 bytes */

struct key_slot {
	char		 serial[FC_SE_SERIAL_LEN];
	unsigned char	 spki[SPKI_MAX];
	size_t		 spki_len;
	EVP_PKEY	*key;
};

struct enrol_keys {
	pthread_mutex_t	 mu;
	struct key_slot	*slots;
	size_t		 mask;
};

enum fc_err
enrol_keys_new(size_t slots, struct enrol_keys **out)
{
	struct enrol_keys *k;

	if (slots == 0 || (slots & (slots - 1)) != 0)
		return FC_EINVAL;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return FC_ENOMEM;
	k->slots = calloc(slots, sizeof(*k->slots));
	if (k->slots == NULL) {
		free(k);
		return FC_ENOMEM;
	}
	pthread_mutex_init(&k->mu, NULL);
	k->mask = slots - 1;
	*out = k;
	return FC_OK;
}

void
enrol_keys_free(struct enrol_keys *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i <= k->mask; i++)
		EVP_PKEY_free(k->slots[i].key);
	pthread_mutex_destroy(&k->mu);
	free(k->slots);
	free(k);
}

/* The serial is 18 hex digits: its last 8 bytes of text spread well. */
static size_t
slot_of(const struct enrol_keys *k, const char *serial)
{
	size_t h = 5381, i;

	for (i = 0; serial[i] != '\0'; i++)
		h = h * 33 + (unsigned char)serial[i];
	return h & k->mask;
}

/* Parses spki and insists on an EC P-256 key. */
static EVP_PKEY *
parse(const unsigned char *spki, size_t len)
{
	const unsigned char *p = spki;
	EVP_PKEY *key;
	char group[32];
	size_t glen;

	key = d2i_PUBKEY(NULL, &p, (long)len);
	if (key == NULL || p != spki + len ||
	    EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 ||
	    strcmp(group, SN_X9_62_prime256v1) != 0) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

int
enrol_keys_cached(struct enrol_keys *k, const char *se_serial)
{
	struct key_slot *s;
	int r;

	pthread_mutex_lock(&k->mu);
	s = &k->slots[slot_of(k, se_serial)];
	r = s->key != NULL && strcmp(s->serial, se_serial) == 0;
	pthread_mutex_unlock(&k->mu);
	return r;
}

enum fc_err
enrol_keys_get(struct enrol_keys *k, const char *se_serial,
    const unsigned char *spki, size_t spki_len, EVP_PKEY **out)
{
	struct key_slot *s;
	EVP_PKEY *key;

	if (spki == NULL || spki_len == 0 || spki_len > SPKI_MAX)
		return FC_EINVAL;
	pthread_mutex_lock(&k->mu);
	s = &k->slots[slot_of(k, se_serial)];
	if (s->key != NULL && strcmp(s->serial, se_serial) == 0 &&
	    s->spki_len == spki_len && memcmp(s->spki, spki, spki_len) == 0) {
		EVP_PKEY_up_ref(s->key);
		*out = s->key;
		pthread_mutex_unlock(&k->mu);
		return FC_OK;
	}
	pthread_mutex_unlock(&k->mu);

	/* Parse outside the lock: it is the slow part. */
	key = parse(spki, spki_len);
	if (key == NULL) {
		ERR_clear_error();
		return FC_EINVAL;
	}
	pthread_mutex_lock(&k->mu);
	EVP_PKEY_free(s->key);
	snprintf(s->serial, sizeof(s->serial), "%s", se_serial);
	memcpy(s->spki, spki, spki_len);
	s->spki_len = spki_len;
	s->key = key;
	EVP_PKEY_up_ref(key);
	pthread_mutex_unlock(&k->mu);
	*out = key;
	return FC_OK;
}
