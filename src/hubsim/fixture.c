/*
 * fixture.c — loading simulated devices from a fixture file, and saving /
 * restoring the whole simulator state (registry, twins, device sides) with
 * --state-file. The state file is a fixture with extra "registry", "twin"
 * and "side" objects per device; it holds private keys, so it is written
 * 0600 through fc_file_write_atomic.
 * Runs in main (start-up, shutdown) and in the saver; callers hold
 * sim->lock except during start-up.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "hubsim.h"
#include "log.h"

#define FIXTURE_MAX	(512L * 1024 * 1024)

char *
pem_of_cert(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b != NULL && PEM_write_bio_X509(b, x) == 1) {
		n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return out;
}

static char *
pem_of_chain(STACK_OF(X509) *sk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;
	int i;

	if (b == NULL)
		return NULL;
	for (i = 0; sk != NULL && i < sk_X509_num(sk); i++)
		PEM_write_bio_X509(b, sk_X509_value(sk, i));
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

char *
pem_of_key(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *data, *out = NULL;
	long n;

	if (b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL) == 1) {
		n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return out;
}

/* A cheap look at a PEM private key; it is parsed on first use. */
static char *
key_pem_take(const char *pem)
{
	if (pem == NULL || strlen(pem) > 16384 ||
	    strstr(pem, "-----BEGIN ") == NULL ||
	    strstr(pem, "PRIVATE KEY-----") == NULL)
		return NULL;
	return strdup(pem);
}

static X509 *
cert_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	ERR_clear_error();
	return x;
}

static STACK_OF(X509) *
chain_parse(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b;
	X509 *x;

	if (sk == NULL || pem == NULL)
		return sk;
	b = BIO_new_mem_buf(pem, -1);
	while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return sk;
}

static int
jint(json_t *o, const char *k, long dflt)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int)json_integer_value(v) : (int)dflt;
}

static void
replace(json_t **dst, json_t *src)
{
	if (json_is_object(src)) {
		json_decref(*dst);
		*dst = json_deep_copy(src);
	}
}

/* Restores what a state file adds to a fixture entry. */
static void
restore_extra(struct sim_dev *d, json_t *o)
{
	json_t *r = json_object_get(o, "registry"), *t = json_object_get(o, "twin");
	json_t *s = json_object_get(o, "side");
	const char *v;

	if (json_is_object(r)) {
		d->registered = json_is_true(json_object_get(r, "registered"));
		if ((v = json_string_value(json_object_get(r, "generationId"))))
			snprintf(d->generation, sizeof(d->generation), "%s", v);
		d->etag_n = (unsigned long)json_integer_value(
		    json_object_get(r, "etagN"));
		d->enabled = json_is_true(json_object_get(r, "enabled"));
		if ((v = json_string_value(json_object_get(r, "statusReason"))))
			snprintf(d->status_reason, sizeof(d->status_reason), "%s", v);
		d->status_updated = (time_t)json_integer_value(
		    json_object_get(r, "statusUpdated"));
		if ((v = json_string_value(json_object_get(r, "authType"))))
			snprintf(d->auth_type, sizeof(d->auth_type), "%s", v);
		if ((v = json_string_value(json_object_get(r, "thumb1"))))
			snprintf(d->thumb1, sizeof(d->thumb1), "%s", v);
		if ((v = json_string_value(json_object_get(r, "thumb2"))))
			snprintf(d->thumb2, sizeof(d->thumb2), "%s", v);
		if ((v = json_string_value(json_object_get(r, "sas1"))))
			snprintf(d->sas1, sizeof(d->sas1), "%s", v);
		if ((v = json_string_value(json_object_get(r, "sas2"))))
			snprintf(d->sas2, sizeof(d->sas2), "%s", v);
	}
	if (json_is_object(t)) {
		replace(&d->tags, json_object_get(t, "tags"));
		replace(&d->desired, json_object_get(t, "desired"));
		replace(&d->reported, json_object_get(t, "reported"));
		d->twin_version = (unsigned long)jint(t, "version", 1);
		d->desired_version = (unsigned long)jint(t, "desiredVersion", 1);
		d->reported_version = (unsigned long)jint(t, "reportedVersion", 1);
	}
	if (json_is_object(s) && d->sd != NULL) {
		d->sd->connect_failures = (unsigned)jint(s, "connectFailures", 0);
		d->sd->installs = (unsigned long)jint(s, "installs", 0);
		if ((v = json_string_value(json_object_get(s, "lastConnectError"))))
			snprintf(d->sd->last_connect_error,
			    sizeof(d->sd->last_connect_error), "%s", v);
	}
}

static enum fc_err
load_device(struct sim *sim, json_t *o, size_t idx)
{
	const char *id = json_string_value(json_object_get(o, "deviceId"));
	const char *key = json_string_value(json_object_get(o, "identityKey"));
	const char *cert = json_string_value(json_object_get(o, "certificate"));
	const char *chain = json_string_value(json_object_get(o, "chain"));
	const char *auth = json_string_value(json_object_get(o, "authType"));
	const char *tp = json_string_value(json_object_get(o, "thumbprint"));
	const char *st = json_string_value(json_object_get(o, "status"));
	json_t *reg = json_object_get(o, "registered"), *keys, *kv;
	struct sim_devside *sd = NULL;
	struct sim_dev *d;
	size_t i;

	if (id == NULL || !fc_device_id_valid(id)) {
		log_error("fixture entry %zu: deviceId missing or invalid", idx);
		return FC_EINVAL;
	}
	if (reg_find(sim, id) != NULL) {
		log_error("fixture: device %s defined twice", id);
		return FC_EINVAL;
	}
	if (key != NULL) {
		sd = calloc(1, sizeof(*sd));
		if (sd == NULL)
			return FC_ENOMEM;
		if (fc_se_serial_canon(json_string_value(json_object_get(o,
		    "serial")), sd->serial) != FC_OK) {
			log_error("fixture: device %s: serial missing or not an "
			    "ATECC608B serial", id);
			goto bad;
		}
		sd->key_pem[0] = key_pem_take(key);
		if (sd->key_pem[0] == NULL) {
			log_error("fixture: device %s: identityKey is not a PEM "
			    "P-256 private key", id);
			goto bad;
		}
		keys = json_object_get(o, "slotKeys");
		json_array_foreach(keys, i, kv) {
			if (i + 1 < SIM_KEY_SLOTS && json_is_string(kv))
				sd->key_pem[i + 1] =
				    key_pem_take(json_string_value(kv));
		}
		if (cert != NULL && (sd->cert = cert_parse(cert)) == NULL) {
			log_error("fixture: device %s: certificate is not PEM", id);
			goto bad;
		}
		sd->chain = chain_parse(chain);
		sd->online = !json_is_false(json_object_get(o, "online"));
		kv = json_object_get(o, "behaviour");
		sd->slow_ms = jint(kv, "slowMs", 0);
		sd->reject_status = jint(kv, "rejectStatus", 0);
		sd->no_confirm = json_is_true(json_object_get(kv, "noConfirm"));
	}
	d = reg_find_or_add(sim, id);
	if (d == NULL)
		goto bad;
	d->sd = sd;
	sd = NULL;
	if (!json_is_false(reg)) {
		reg_dev_register(d);
		d->status_updated = fc_now();
		if (st != NULL && strcasecmp(st, "disabled") == 0)
			d->enabled = 0;
		if (auth == NULL || strcasecmp(auth, "certificateAuthority") == 0 ||
		    strcasecmp(auth, "ca") == 0) {
			snprintf(d->auth_type, sizeof(d->auth_type),
			    "certificateAuthority");
		} else if (strcasecmp(auth, "selfSigned") == 0) {
			char s1[FC_SHA1_HEX], s256[FC_SHA256_HEX];
			const char *p1 = json_string_value(json_object_get(o,
			    "primaryThumbprint"));
			const char *p2 = json_string_value(json_object_get(o,
			    "secondaryThumbprint"));
			snprintf(d->auth_type, sizeof(d->auth_type), "selfSigned");
			if (d->sd != NULL && d->sd->cert != NULL) {
				dev_thumbprints(d->sd->cert, s1, s256);
				snprintf(d->thumb1, sizeof(d->thumb1), "%s",
				    tp != NULL && strcasecmp(tp, "sha1") == 0 ?
				    s1 : s256);
			}
			if (p1 != NULL)
				snprintf(d->thumb1, sizeof(d->thumb1), "%s", p1);
			if (p2 != NULL)
				snprintf(d->thumb2, sizeof(d->thumb2), "%s", p2);
		} else {
			snprintf(d->auth_type, sizeof(d->auth_type), "%s",
			    strcasecmp(auth, "none") == 0 ? "none" : "sas");
		}
	}
	restore_extra(d, o);
	return FC_OK;
bad:
	dev_side_free(sd);
	return FC_EINVAL;
}

static enum fc_err
load_file(struct sim *sim, const char *path)
{
	json_error_t jerr;
	json_t *root, *devs, *o;
	enum fc_err e = FC_OK;
	size_t i;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		log_error("%s:%d: %s", path, jerr.line, jerr.text);
		return FC_EINVAL;
	}
	devs = json_object_get(root, "devices");
	if (!json_is_array(devs)) {
		log_error("%s: no \"devices\" array", path);
		json_decref(root);
		return FC_EINVAL;
	}
	json_array_foreach(devs, i, o) {
		e = load_device(sim, o, i);
		if (e != FC_OK)
			break;
	}
	json_decref(root);
	return e;
}

enum fc_err
fixture_load(struct sim *sim, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0 || st.st_size > FIXTURE_MAX) {
		log_error("fixture %s: missing or larger than %ld bytes", path,
		    FIXTURE_MAX);
		return FC_EIO;
	}
	return load_file(sim, path);
}

enum fc_err
state_load(struct sim *sim, const char *path)
{
	return fixture_load(sim, path);
}

static json_t *
dev_state(struct sim_dev *d)
{
	json_t *o = json_pack("{s:s, s:b}", "deviceId", d->id, "registered",
	    d->registered);
	struct sim_devside *sd = d->sd;
	int i;

	if (sd != NULL) {
		json_t *slots = json_array();
		char *k = sd->keys[0] ? pem_of_key(sd->keys[0]) :
		    sd->key_pem[0] ? strdup(sd->key_pem[0]) : NULL;
		json_object_set_new(o, "serial", json_string(sd->serial));
		json_object_set_new(o, "identityKey", k ? json_string(k) :
		    json_null());
		if (k != NULL)
			fc_secret_free(k, strlen(k));
		for (i = 1; i < SIM_KEY_SLOTS; i++) {
			char *sk = sd->keys[i] ? pem_of_key(sd->keys[i]) :
			    sd->key_pem[i] ? strdup(sd->key_pem[i]) : NULL;
			json_array_append_new(slots, sk ? json_string(sk) :
			    json_null());
			if (sk != NULL)
				fc_secret_free(sk, strlen(sk));
		}
		json_object_set_new(o, "slotKeys", slots);
		if (sd->cert != NULL) {
			char *c = pem_of_cert(sd->cert), *ch = pem_of_chain(sd->chain);
			json_object_set_new(o, "certificate", json_string(c ? c : ""));
			json_object_set_new(o, "chain", json_string(ch ? ch : ""));
			free(c);
			free(ch);
		}
		json_object_set_new(o, "online", json_boolean(sd->online));
		json_object_set_new(o, "behaviour", json_pack("{s:I, s:i, s:b}",
		    "slowMs", (json_int_t)sd->slow_ms, "rejectStatus",
		    sd->reject_status, "noConfirm", sd->no_confirm));
		json_object_set_new(o, "side", json_pack("{s:I, s:I, s:s}",
		    "connectFailures", (json_int_t)sd->connect_failures,
		    "installs", (json_int_t)sd->installs,
		    "lastConnectError", sd->last_connect_error));
	}
	json_object_set_new(o, "registry", json_pack("{s:b, s:s, s:I, s:b, s:s, "
	    "s:I, s:s, s:s, s:s, s:s, s:s}",
	    "registered", d->registered, "generationId", d->generation,
	    "etagN", (json_int_t)d->etag_n, "enabled", d->enabled,
	    "statusReason", d->status_reason,
	    "statusUpdated", (json_int_t)d->status_updated,
	    "authType", d->auth_type, "thumb1", d->thumb1, "thumb2", d->thumb2,
	    "sas1", d->sas1, "sas2", d->sas2));
	json_object_set_new(o, "twin", json_pack("{s:O, s:O, s:O, s:I, s:I, s:I}",
	    "tags", d->tags, "desired", d->desired, "reported", d->reported,
	    "version", (json_int_t)d->twin_version,
	    "desiredVersion", (json_int_t)d->desired_version,
	    "reportedVersion", (json_int_t)d->reported_version));
	return o;
}

enum fc_err
state_save(struct sim *sim, const char *path)
{
	json_t *a = json_array(), *root;
	char *text;
	enum fc_err e;
	size_t i;

	for (i = 0; i < sim->ndevs; i++)
		json_array_append_new(a, dev_state(sim->devs[i]));
	root = json_pack("{s:s, s:o}", "hub", sim->hub_name, "devices", a);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (text == NULL)
		return FC_ENOMEM;
	e = fc_file_write_atomic(path, text, strlen(text), 0600);
	fc_secret_free(text, strlen(text));
	if (e == FC_OK)
		sim->dirty = 0;
	else
		log_error("state file %s: cannot write", path);
	return e;
}
