/*
 * devices.c — the simulated devices behind the hub (device-protocol.md §1):
 * each connects with its certificate (selfSigned: SHA-1 or SHA-256
 * thumbprint must match the primary or secondary registered one;
 * certificateAuthority: chain to the hub's verified CA and CN = deviceId;
 * both: within validity), answers fleetcertInstall (chain to the trusted
 * root, key is its own, serial matches) and fleetcertCsr (PKCS#10 signed by
 * the key in the requested slot), applies desired "fleetcert" on connect or
 * change unless it already has that serial, reports "fleetcert", and can be
 * told to misbehave (slow, reject, never confirm).
 * Called with sim->lock held, from request threads and main.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hubsim.h"
#include "log.h"

#define CERT_PEM_MAX	(16 * 1024)
#define CHAIN_PEM_MAX	(32 * 1024)

void
dev_side_free(struct sim_devside *sd)
{
	int i;

	if (sd == NULL)
		return;
	for (i = 0; i < SIM_KEY_SLOTS; i++) {
		EVP_PKEY_free(sd->keys[i]);
		if (sd->key_pem[i] != NULL)
			fc_secret_free(sd->key_pem[i], strlen(sd->key_pem[i]));
	}
	X509_free(sd->cert);
	sk_X509_pop_free(sd->chain, X509_free);
	free(sd);
}

EVP_PKEY *
dev_key_parse(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	char grp[32] = "";
	size_t gl = 0;

	BIO_free(b);
	if (k != NULL && (!EVP_PKEY_is_a(k, "EC") ||
	    EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, grp,
	    sizeof(grp), &gl) != 1 || strcmp(grp, "prime256v1") != 0)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	ERR_clear_error();
	return k;
}

EVP_PKEY *
dev_key(struct sim_devside *sd, int slot)
{
	if (slot < 0 || slot >= SIM_KEY_SLOTS)
		return NULL;
	if (sd->keys[slot] == NULL && sd->key_pem[slot] != NULL) {
		sd->keys[slot] = dev_key_parse(sd->key_pem[slot]);
		if (sd->keys[slot] == NULL)
			log_warn("device key slot %d: not a PEM P-256 private key",
			    slot);
		fc_secret_free(sd->key_pem[slot], strlen(sd->key_pem[slot]));
		sd->key_pem[slot] = NULL;
	}
	return sd->keys[slot];
}

void
dev_cert_serial(X509 *x, char out[FC_CERT_SERIAL_MAX])
{
	const ASN1_INTEGER *ai = X509_get0_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(ai, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	size_t i;

	out[0] = '\0';
	if (hex != NULL) {
		for (i = 0; hex[i] != '\0' && i < FC_CERT_SERIAL_MAX - 1; i++)
			out[i] = (char)((hex[i] >= 'A' && hex[i] <= 'F') ?
			    hex[i] - 'A' + 'a' : hex[i]);
		out[i] = '\0';
	}
	OPENSSL_free(hex);
	BN_free(bn);
}

void
dev_thumbprints(X509 *x, char sha1[FC_SHA1_HEX], char sha256[FC_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	sha1[0] = sha256[0] = '\0';
	if (X509_digest(x, EVP_sha1(), md, &n) == 1 && n == 20)
		fc_hex(md, n, sha1, 1);
	if (X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32)
		fc_hex(md, n, sha256, 1);
}

/* Chain check against the trust root at simulated time. NULL when good,
 * else a static reason. */
static const char *
verify_chain(struct sim *sim, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	const char *why = NULL;

	if (ctx == NULL || sim->trust == NULL ||
	    X509_STORE_CTX_init(ctx, sim->trust, leaf, chain) != 1) {
		why = "no trust root configured";
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, fc_now());
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(ctx) != 1)
		why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
out:
	X509_STORE_CTX_free(ctx);
	return why;
}

static int
cn_is(X509 *x, const char *id)
{
	X509_NAME *n = X509_get_subject_name(x);
	char cn[FC_DEVICE_ID_MAX + 1];
	int len = X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn));

	return len > 0 && (size_t)len == strlen(id) && strcmp(cn, id) == 0;
}

static void
connect_failed(struct sim *sim, struct sim_dev *d, const char *why)
{
	char path[FC_DEVICE_ID_MAX + 16];

	d->sd->connected = 0;
	d->sd->connect_failures++;
	d->sd->last_connect_failure = fc_now();
	snprintf(d->sd->last_connect_error, sizeof(d->sd->last_connect_error),
	    "%s", why);
	snprintf(path, sizeof(path), "/devices/%s", d->id);
	calllog_add(sim, "CONNECT", path, OP_ANY, 401, 401003,
	    "IoTHubUnauthorized", d->id, 0);
	log_info("device %s: connection refused: %s", d->id, why);
}

int
dev_connect(struct sim *sim, struct sim_dev *d)
{
	struct sim_devside *sd = d->sd;
	char s1[FC_SHA1_HEX], s256[FC_SHA256_HEX];
	const char *why = NULL;
	time_t now = fc_now();

	if (sd == NULL)
		return 0;
	if (!d->registered)
		why = "device is not registered in the hub";
	else if (!d->enabled)
		why = "device is disabled";
	else if (strcmp(d->auth_type, "selfSigned") != 0 &&
	    strcmp(d->auth_type, "certificateAuthority") != 0)
		why = "registered authentication type does not accept "
		    "certificates";
	else if (sd->cert == NULL)
		why = "device has no certificate";
	else if (X509_cmp_time(X509_get0_notAfter(sd->cert), &now) < 0)
		why = "certificate expired";
	else if (X509_cmp_time(X509_get0_notBefore(sd->cert), &now) > 0)
		why = "certificate not yet valid";
	if (why == NULL && strcmp(d->auth_type, "selfSigned") == 0) {
		dev_thumbprints(sd->cert, s1, s256);
		if (strcasecmp(s1, d->thumb1) != 0 && strcasecmp(s1, d->thumb2) != 0 &&
		    strcasecmp(s256, d->thumb1) != 0 &&
		    strcasecmp(s256, d->thumb2) != 0)
			why = "thumbprint does not match the primary or secondary "
			    "thumbprint";
	} else if (why == NULL) {
		why = verify_chain(sim, sd->cert, sd->chain);
		if (why == NULL && !cn_is(sd->cert, d->id))
			why = "certificate CN is not the device id";
	}
	if (why != NULL) {
		connect_failed(sim, d, why);
		return 0;
	}
	sd->connected = 1;
	d->last_activity = now;
	return 1;
}

static STACK_OF(X509) *
chain_parse(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = NULL;
	X509 *x;

	if (sk == NULL)
		return NULL;
	if (pem == NULL || pem[0] == '\0')
		return sk;
	b = BIO_new_mem_buf(pem, -1);
	while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
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

static json_t *
err_payload(const char *why)
{
	return json_pack("{s:s}", "error", why);
}

/* The install itself, shared by the method and the desired property. On
 * failure returns a static reason and leaves the device as it was. */
static const char *
install(struct sim *sim, struct sim_dev *d, json_t *p, int *status,
    char serial_out[FC_CERT_SERIAL_MAX])
{
	struct sim_devside *sd = d->sd;
	const char *serial, *cpem, *chpem, *why = NULL;
	X509 *leaf = NULL, *old = NULL;
	STACK_OF(X509) *chain = NULL, *oldchain = NULL;
	char have[FC_CERT_SERIAL_MAX];
	int i, mine = 0;

	*status = 400;
	serial = json_string_value(json_object_get(p, "serial"));
	cpem = json_string_value(json_object_get(p, "certificate"));
	chpem = json_string_value(json_object_get(p, "chain"));
	if (!json_is_object(p) || serial == NULL || cpem == NULL ||
	    strlen(serial) >= FC_CERT_SERIAL_MAX || strlen(cpem) > CERT_PEM_MAX ||
	    (chpem != NULL && strlen(chpem) > CHAIN_PEM_MAX))
		return "malformed payload";
	if (sd->reject_status != 0) {
		*status = sd->reject_status;
		return "rejected (simulated fault)";
	}
	leaf = cert_parse(cpem);
	chain = chain_parse(chpem);
	if (leaf == NULL || chain == NULL) {
		why = "certificate is not PEM";
		goto out;
	}
	why = verify_chain(sim, leaf, chain);
	if (why != NULL)
		goto out;
	for (i = 0; i < SIM_KEY_SLOTS; i++)
		if (dev_key(sd, i) != NULL &&
		    EVP_PKEY_eq(X509_get0_pubkey(leaf), sd->keys[i]) == 1)
			mine = 1;
	if (!mine) {
		why = "certificate key is not this device's key";
		goto out;
	}
	dev_cert_serial(leaf, have);
	if (strcasecmp(have, serial) != 0) {
		why = "serial does not match the certificate";
		goto out;
	}
	*status = 200;
	snprintf(serial_out, FC_CERT_SERIAL_MAX, "%s", have);
	if (sd->no_confirm)
		goto out;
	/* Store, then reconnect with the new certificate; fall back to the
	 * old one when the hub refuses it. */
	old = sd->cert;
	oldchain = sd->chain;
	sd->cert = leaf;
	sd->chain = chain;
	leaf = NULL;
	chain = NULL;
	if (dev_connect(sim, d)) {
		sd->installs++;
		twin_report_fleetcert(d, have, "installed", NULL);
		sim->dirty = 1;
		goto out;
	}
	leaf = sd->cert;
	chain = sd->chain;
	sd->cert = old;
	sd->chain = oldchain;
	old = NULL;
	oldchain = NULL;
	if (dev_connect(sim, d)) {
		char cur[FC_CERT_SERIAL_MAX] = "";
		if (sd->cert != NULL)
			dev_cert_serial(sd->cert, cur);
		twin_report_fleetcert(d, cur, "failed",
		    "hub refused the new certificate; using the old one");
	}
out:
	X509_free(leaf);
	X509_free(old);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(oldchain, X509_free);
	return why;
}

static void
apply_desired(struct sim *sim, struct sim_dev *d)
{
	json_t *fc = json_object_get(d->desired, "fleetcert");
	const char *serial = json_string_value(json_object_get(fc, "serial"));
	char cur[FC_CERT_SERIAL_MAX] = "", got[FC_CERT_SERIAL_MAX];
	const char *why;
	int status;

	if (serial == NULL || d->sd == NULL || !d->sd->connected)
		return;
	if (d->sd->cert != NULL)
		dev_cert_serial(d->sd->cert, cur);
	if (strcasecmp(cur, serial) == 0)
		return;		/* a serial it already has: ignored */
	why = install(sim, d, fc, &status, got);
	if (why != NULL && d->sd->connected)
		twin_report_fleetcert(d, cur, "failed", why);
}

void
dev_set_online(struct sim *sim, struct sim_dev *d, int online)
{
	if (d->sd == NULL)
		return;
	d->sd->online = online;
	if (!online) {
		d->sd->connected = 0;
		return;
	}
	if (dev_connect(sim, d))
		apply_desired(sim, d);
}

void
dev_desired_changed(struct sim *sim, struct sim_dev *d)
{
	if (d->sd != NULL && d->sd->connected)
		apply_desired(sim, d);
}

static json_t *
make_csr(struct sim_dev *d, int slot, const char **why)
{
	struct sim_devside *sd = d->sd;
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	unsigned char *der = NULL;
	char cn[24], *b64 = NULL;
	json_t *out = NULL;
	int len, i;

	*why = "cannot build CSR";
	if (dev_key(sd, slot) == NULL) {
		sd->keys[slot] = EVP_EC_gen("P-256");
		if (sd->keys[slot] == NULL)
			goto out;
	}
	snprintf(cn, sizeof(cn), "sn%s", sd->serial);
	for (i = 2; cn[i] != '\0'; i++)
		if (cn[i] >= 'a' && cn[i] <= 'f')
			cn[i] = (char)(cn[i] - 'a' + 'A');
	req = X509_REQ_new();
	name = X509_NAME_new();
	if (req == NULL || name == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, sd->keys[slot]) ||
	    X509_REQ_sign(req, sd->keys[slot], EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509_REQ(req, &der);
	if (len <= 0 || fc_b64_encode(der, (size_t)len, &b64) != FC_OK)
		goto out;
	out = json_pack("{s:s}", "csr", b64);
	*why = NULL;
out:
	free(b64);
	OPENSSL_free(der);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return out;
}

void
dev_method(struct sim *sim, struct sim_dev *d, const char *name,
    json_t *payload, int *status, json_t **out)
{
	char serial[FC_CERT_SERIAL_MAX];
	const char *why;

	if (strcmp(name, "fleetcertInstall") == 0) {
		why = install(sim, d, payload, status, serial);
		if (why != NULL)
			*out = err_payload(why);
		else
			*out = json_pack("{s:s}", "installedSerial", serial);
		return;
	}
	if (strcmp(name, "fleetcertCsr") == 0) {
		json_t *ks = json_object_get(payload, "keySlot");
		json_int_t slot = json_is_integer(ks) ? json_integer_value(ks) : -1;
		if (slot < 0 || slot >= SIM_KEY_SLOTS) {
			*status = 400;
			*out = err_payload("keySlot must be an integer 0-15");
			return;
		}
		*out = make_csr(d, (int)slot, &why);
		if (*out == NULL) {
			*status = 500;
			*out = err_payload(why);
			return;
		}
		*status = 200;
		return;
	}
	*status = 501;
	*out = err_payload("method not implemented");
}

json_t *
dev_side_json(struct sim_dev *d)
{
	struct sim_devside *sd = d->sd;
	char serial[FC_CERT_SERIAL_MAX] = "", s1[FC_SHA1_HEX] = "",
	    s256[FC_SHA256_HEX] = "", na[21] = "", lf[21] = "";
	json_t *o;

	if (sd == NULL)
		return json_null();
	if (sd->cert != NULL) {
		ASN1_TIME *t = (ASN1_TIME *)X509_get0_notAfter(sd->cert);
		struct tm tm;
		dev_cert_serial(sd->cert, serial);
		dev_thumbprints(sd->cert, s1, s256);
		if (ASN1_TIME_to_tm(t, &tm) == 1)
			strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (sd->last_connect_failure != 0)
		fc_time_iso(sd->last_connect_failure, lf);
	o = json_pack("{s:s, s:b, s:b, s:s?, s:s?, s:s?, s:s?, s:I, s:s?, s:s?, "
	    "s:I, s:{s:I, s:i, s:b}}",
	    "serial", sd->serial,
	    "online", sd->online,
	    "connected", sd->connected,
	    "installedSerial", serial[0] ? serial : NULL,
	    "certificateNotAfter", na[0] ? na : NULL,
	    "thumbprintSha1", s1[0] ? s1 : NULL,
	    "thumbprintSha256", s256[0] ? s256 : NULL,
	    "connectFailures", (json_int_t)sd->connect_failures,
	    "lastConnectError", sd->last_connect_error[0] ?
		sd->last_connect_error : NULL,
	    "lastConnectFailure", lf[0] ? lf : NULL,
	    "installs", (json_int_t)sd->installs,
	    "behaviour",
	      "slowMs", (json_int_t)sd->slow_ms,
	      "rejectStatus", sd->reject_status,
	      "noConfirm", sd->no_confirm);
	return o;
}
