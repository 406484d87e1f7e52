/*
 * enrol.c — the re-enrolment endpoint's logic (device-protocol.md §2,
 * DESIGN.md "Re-enrolment"): rate limits, hands out nonces, checks a
 * device's proof and answers every refusal; enrol_issue.c does the issuing.
 * Runs in the main process on the enrolment listener's threads; each call
 * borrows a database connection of its own from a small pool. Never sees the
 * CA key: signing goes through struct enrol_issuer.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "audit.h"
#include "config.h"
#include "db.h"
#include "enrol.h"
#include "enrol_int.h"
#include "inventory.h"
#include "inventory_enrol.h"
#include "log.h"
#include "metrics.h"

#define LIMIT_SLOTS	65536
#define KEY_SLOTS	16384

/* Proof failures, named in the audit log only; the client sees one 401. */
static const char *const UNAUTH_MSG = "proof rejected";

void
enrol_answer_clear(struct enrol_answer *a)
{
	if (a == NULL)
		return;
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* Exported by GET /metrics (metrics.c); registered in enrol_new. */
static struct metric *m_requests, *m_anomalies;

/* Counts one outcome in the endpoint's counters and in /metrics. */
void
enrol_stat_add(struct enrol *e, uint64_t *counter, const char *outcome)
{
	pthread_mutex_lock(&e->mu);
	(*counter)++;
	pthread_mutex_unlock(&e->mu);
	if (counter == &e->st.anomalies)
		metrics_add(m_anomalies, 1);
	else
		metrics_add(m_requests, 1, outcome);
}

void
enrol_stats_get(struct enrol *e, struct enrol_stats *out)
{
	pthread_mutex_lock(&e->mu);
	*out = e->st;
	pthread_mutex_unlock(&e->mu);
}

enum fc_err
enrol_answer_json(struct enrol_answer *a, int status, json_t *body)
{
	char *s;

	if (body == NULL)
		return FC_ENOMEM;
	s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (s == NULL)
		return FC_ENOMEM;
	a->status = status;
	a->body = s;
	a->body_len = strlen(s);
	return FC_OK;
}

static enum fc_err
answer_error(struct enrol_answer *a, int status, const char *code,
    const char *message)
{
	return enrol_answer_json(a, status, json_pack("{s:{s:s,s:s}}", "error",
	    "code", code, "message", message));
}

static enum fc_err
answer_limited(struct enrol *e, struct enrol_answer *a, int retry_after)
{
	enrol_stat_add(e, &e->st.limited, "limited");
	a->retry_after = retry_after;
	return answer_error(a, 429, "too_many_requests",
	    "too many requests; retry later");
}

static enum fc_err
answer_internal(struct enrol *e, struct enrol_answer *a)
{
	enrol_stat_add(e, &e->st.failed, "failed");
	return answer_error(a, 500, "internal", "internal error; retry later");
}

/*
 * The rate-limit key of a client address: an IPv4 address (also when
 * IPv4-mapped), or the /64 of an IPv6 address (one subscriber commonly
 * holds a whole /64). Anything else ("unix") is its text, truncated.
 */
static size_t
addr_key(const char *peer, unsigned char key[16])
{
	unsigned char a6[16];
	size_t n;

	if (inet_pton(AF_INET, peer, key) == 1)
		return 4;
	if (inet_pton(AF_INET6, peer, a6) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0,
		    0, 0, 0, 0xff, 0xff };
		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(key, a6 + 12, 4);
			return 4;
		}
		memcpy(key, a6, 8);
		key[8] = 6;	/* never equal to an IPv4 key */
		return 9;
	}
	n = strlen(peer);
	if (n > 16)
		n = 16;
	memcpy(key, peer, n);
	return n;
}

static int
addr_allowed(struct enrol *e, const char *peer, int64_t now, int *retry)
{
	unsigned char key[16];
	size_t n = addr_key(peer, key);

	return enrol_limit_hit(e->per_addr, key, n, now, retry);
}

/*
 * per_serial_per_hour counts challenges for one serial FROM ONE ADDRESS
 * (IPv4 address or IPv6 /64). Counting them per serial alone would let
 * anyone who reads a serial off a device spend its allowance and lock the
 * device, which can no longer reach its hub, out of re-enrolment. The key
 * is SHA-256(serial || address key) cut to LIMIT_KEY_MAX bytes; failures
 * for the anomaly metric stay counted per serial (9-byte keys).
 */
static int
serial_allowed(struct enrol *e, const unsigned char *serial_raw,
    const char *peer, int64_t now, int *retry)
{
	unsigned char a[16], md[SHA256_DIGEST_LENGTH];
	unsigned char buf[ENROL_SERIAL_RAW_LEN + sizeof(a)];
	size_t n = addr_key(peer, a);

	memcpy(buf, serial_raw, ENROL_SERIAL_RAW_LEN);
	memcpy(buf + ENROL_SERIAL_RAW_LEN, a, n);
	SHA256(buf, ENROL_SERIAL_RAW_LEN + n, md);
	return enrol_limit_hit(e->per_serial, md, LIMIT_KEY_MAX, now, retry);
}

/* ---- database connections ---- */

static enum fc_err
db_get(struct enrol *e, struct db **out)
{
	struct db *db = NULL;

	pthread_mutex_lock(&e->mu);
	if (e->npool > 0)
		db = e->pool[--e->npool];
	pthread_mutex_unlock(&e->mu);
	if (db != NULL) {
		*out = db;
		return FC_OK;
	}
	return db_open(e->db_path, 0, out);
}

static void
db_put(struct enrol *e, struct db *db)
{
	if (db == NULL)
		return;
	if (db->tx_depth > 0)
		db_rollback(db);
	pthread_mutex_lock(&e->mu);
	if (e->npool < ENROL_POOL_MAX) {
		e->pool[e->npool++] = db;
		db = NULL;
	}
	pthread_mutex_unlock(&e->mu);
	db_close(db);
}

/* ---- life ---- */

enum fc_err
enrol_new(const struct cfg *cfg, const struct enrol_issuer *issuer,
    struct enrol **out)
{
	struct enrol *e;
	enum fc_err result = FC_ENOMEM;

	if (cfg->db_path == NULL || issuer->serial_new == NULL ||
	    issuer->issue == NULL)
		return FC_EINVAL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return FC_ENOMEM;
	pthread_mutex_init(&e->mu, NULL);
	e->iss = *issuer;
	e->chain_pem = issuer->chain_pem;
	e->cfg = cfg;
	e->ttl = cfg->challenge_ttl_seconds;
	e->allow_new_key = cfg->allow_new_key;
	e->renew_before_days = cfg->renew_before_days;
	e->jitter_days = cfg->jitter_days;
	e->db_path = strdup(cfg->db_path);
	if (e->db_path == NULL)
		goto out;
	result = enrol_limit_new(LIMIT_SLOTS, cfg->per_serial_per_hour, 3600,
	    &e->per_serial);
	if (result != FC_OK)
		goto out;
	result = enrol_limit_new(LIMIT_SLOTS, cfg->per_address_per_minute, 60,
	    &e->per_addr);
	if (result != FC_OK)
		goto out;
	result = enrol_keys_new(KEY_SLOTS, &e->keys);
	if (result != FC_OK)
		goto out;
	m_requests = metrics_counter("fleetcert_enrol_requests_total",
	    "Re-enrolment endpoint answers, by outcome (challenge, reenrolled, "
	    "bad_request, rejected, forbidden, limited, failed)", "outcome");
	m_anomalies = metrics_counter("fleetcert_enrol_anomalies_total",
	    "Serials that failed re-enrolment repeatedly within an hour", NULL);
	e->decoy = EVP_EC_gen("P-256");
	if (e->decoy == NULL) {
		log_openssl("enrol: cannot generate the decoy key");
		result = FC_ECRYPTO;
		goto out;
	}
	{
		unsigned char *p = e->decoy_spki;
		int n = i2d_PUBKEY(e->decoy, NULL);

		if (n <= 0 || (size_t)n > sizeof(e->decoy_spki) ||
		    i2d_PUBKEY(e->decoy, &p) != n) {
			log_openssl("enrol: cannot encode the decoy key");
			result = FC_ECRYPTO;
			goto out;
		}
		e->decoy_spki_len = (size_t)n;
	}
	*out = e;
	return FC_OK;
out:
	enrol_free(e);
	return result;
}

enum fc_err
enrol_reconfigure(struct enrol *e, const struct cfg *cfg)
{
	e->cfg = cfg;
	e->ttl = cfg->challenge_ttl_seconds;
	e->allow_new_key = cfg->allow_new_key;
	e->renew_before_days = cfg->renew_before_days;
	e->jitter_days = cfg->jitter_days;
	enrol_limit_set(e->per_serial, cfg->per_serial_per_hour);
	enrol_limit_set(e->per_addr, cfg->per_address_per_minute);
	log_info("enrol: settings reloaded (challenge TTL %d s, %d challenges "
	    "per serial per hour, %d requests per address per minute, new "
	    "keys %s)", cfg->challenge_ttl_seconds, cfg->per_serial_per_hour,
	    cfg->per_address_per_minute, cfg->allow_new_key ? "allowed" :
	    "refused");
	return FC_OK;
}

void
enrol_chain_set(struct enrol *e, const char *chain_pem)
{
	e->chain_pem = chain_pem;
}

void
enrol_free(struct enrol *e)
{
	int i;

	if (e == NULL)
		return;
	for (i = 0; i < e->npool; i++)
		db_close(e->pool[i]);
	enrol_limit_free(e->per_serial);
	enrol_limit_free(e->per_addr);
	enrol_keys_free(e->keys);
	EVP_PKEY_free(e->decoy);
	pthread_mutex_destroy(&e->mu);
	free(e->db_path);
	free(e);
}

int
enrol_serial_failures(struct enrol *e, const char *serial)
{
	char canon[FC_SE_SERIAL_LEN];
	unsigned char raw[ENROL_SERIAL_RAW_LEN];
	unsigned int v;
	size_t i;

	if (fc_se_serial_canon(serial, canon) != FC_OK)
		return 0;
	for (i = 0; i < sizeof(raw); i++) {
		if (sscanf(canon + 2 * i, "%2x", &v) != 1)
			return 0;
		raw[i] = (unsigned char)v;
	}
	return enrol_limit_failures(e->per_serial, raw, sizeof(raw), fc_now());
}

enum fc_err
enrol_recover(struct db *db, int *voided)
{
	enum fc_err result;

	result = inv_enrol_recover(db, "daemon", voided);
	if (result != FC_OK)
		return result;
	return inv_challenge_purge(db, fc_now(), NULL);
}

/* ---- challenge ---- */

/*
 * Step 1. The serial is checked for form only and never looked up: the
 * answer (and the work behind it) is the same whether the serial exists or
 * not. The nonce is stored bound to the serial with its expiry.
 */
enum fc_err
enrol_challenge(struct enrol *e, struct db *tdb, const char *body, size_t len,
    const char *peer, struct enrol_answer *ans)
{
	struct enrol_req req;
	struct db *db = tdb;
	unsigned char nonce[ENROL_NONCE_LEN];
	char *b64 = NULL;
	const char *why;
	int64_t now = fc_now();
	enum fc_err result;
	int retry, tries, ttl = e->ttl;

	memset(ans, 0, sizeof(*ans));
	memset(&req, 0, sizeof(req));
	if (!addr_allowed(e, peer, now, &retry))
		return answer_limited(e, ans, retry);
	if (enrol_req_parse(body, len, ENROL_REQ_CHALLENGE, &req, &why) !=
	    FC_OK) {
		enrol_stat_add(e, &e->st.bad_requests, "bad_request");
		return answer_error(ans, 400, "bad_request", why);
	}
	if (!serial_allowed(e, req.serial_raw, peer, now, &retry))
		return answer_limited(e, ans, retry);

	if (db == NULL) {
		result = db_get(e, &db);
		if (result != FC_OK)
			goto fail;
	}
	for (tries = 0; tries < 3; tries++) {
		if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
			log_openssl("enrol %s: RAND_bytes", req.serial);
			goto fail;
		}
		result = inv_challenge_insert(db, nonce, req.serial,
		    now + ttl);
		if (result != FC_ECONFLICT)
			break;
	}
	if (result != FC_OK)
		goto fail;
	if (fc_b64_encode(nonce, sizeof(nonce), &b64) != FC_OK)
		goto fail;
	if (tdb == NULL)
		db_put(e, db);
	enrol_stat_add(e, &e->st.challenges, "challenge");
	log_debug("enrol %s: challenge for %s", req.serial, peer);
	result = enrol_answer_json(ans, 200, json_pack("{s:s,s:i}", "nonce", b64,
	    "expiresIn", ttl));
	free(b64);
	return result;
fail:
	if (tdb == NULL)
		db_put(e, db);
	free(b64);
	return answer_internal(e, ans);
}

/* ---- re-enrol ---- */

/* Writes the audit entry of a refused request and counts the failure. */
static void
audit_refusal(struct enrol *e, struct db *db, const struct enrol_req *req,
    const char *device_id, const char *peer, const char *action,
    const char *cause)
{
	char actor[96];
	char *detail;
	json_t *j;
	int n;

	snprintf(actor, sizeof(actor), "enrol:%s", peer);
	j = json_pack("{s:s,s:s,s:s}", "serial", req->serial, "cause", cause,
	    "peer", peer);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (audit_append(db, actor, action, device_id, NULL, detail) != FC_OK)
		log_error("enrol %s: cannot audit refusal (%s)", req->serial,
		    cause);
	free(detail);
	log_info("enrol %s: refused from %s: %s", req->serial, peer, cause);

	n = enrol_limit_fail(e->per_serial, req->serial_raw,
	    sizeof(req->serial_raw), fc_now());
	if (n == ENROL_ANOMALY_FAILURES) {
		enrol_stat_add(e, &e->st.anomalies, "anomaly");
		log_warn("enrol %s: %d failed re-enrolments within an hour",
		    req->serial, n);
		if (audit_append(db, actor, "enrol.anomaly", device_id, NULL,
		    "{\"cause\":\"repeated failures\"}") != FC_OK)
			log_error("enrol %s: cannot audit anomaly",
			    req->serial);
	}
}

/*
 * Step 2. Order matters:
 * 1. form (400, nothing changes);
 * 2. the nonce is consumed, whatever follows (single use);
 * 3. every proof is checked, with the decoy key when the serial is unknown,
 *    and any failure is the one 401 (cause audited);
 * 4. only a proven device learns that it is revoked (403);
 * 5. issue.
 */
enum fc_err
enrol_reenrol(struct enrol *e, struct db *tdb, const char *body, size_t len,
    const char *peer, struct enrol_answer *ans)
{
	struct enrol_req req;
	struct inv_device dev;
	struct db *db = tdb;
	EVP_PKEY *key = NULL;
	unsigned char d[ENROL_DIGEST_LEN];
	unsigned char *spki = NULL;
	size_t spki_len = 0;
	char bound[FC_SE_SERIAL_LEN];
	const char *why, *cause = NULL;
	int64_t expires_at = 0, now = fc_now();
	enum fc_err result;
	struct enrol_csr csr;
	int retry, known = 0, self_ok = 0, same_key = 0;

	memset(ans, 0, sizeof(*ans));
	memset(&req, 0, sizeof(req));
	memset(&dev, 0, sizeof(dev));
	if (!addr_allowed(e, peer, now, &retry))
		return answer_limited(e, ans, retry);
	result = enrol_req_parse(body, len, ENROL_REQ_REENROL, &req, &why);
	if (result == FC_OK) {
		result = enrol_csr_parse(req.csr, req.csr_len, &csr);
		why = "bad csr: not a DER PKCS#10 request";
	}
	if (result == FC_ENOMEM)
		goto fail;
	if (result != FC_OK) {
		enrol_req_clear(&req);
		enrol_stat_add(e, &e->st.bad_requests, "bad_request");
		return answer_error(ans, 400, "bad_request", why);
	}

	if (db == NULL) {
		result = db_get(e, &db);
		if (result != FC_OK)
			goto fail;
	}
	result = inv_challenge_consume(db, req.nonce, bound, &expires_at);
	if (result == FC_ENOTFOUND)
		cause = "unknown nonce";
	else if (result == FC_ECONFLICT)
		cause = "nonce already used";
	else if (result != FC_OK)
		goto fail;
	else if (strcmp(bound, req.serial) != 0)
		cause = "nonce bound to another serial";
	else if (expires_at <= now)
		cause = "nonce expired";

	result = inv_device_get_by_se_serial(db, req.serial, &dev);
	if (result == FC_OK)
		known = 1;
	else if (result != FC_ENOTFOUND)
		goto fail;
	if (known && dev.identity_key != NULL &&
	    enrol_keys_get(e->keys, req.serial, dev.identity_key,
	    dev.identity_key_len, &key) != FC_OK)
		key = NULL;
	if (key == NULL) {
		/* The decoy goes through the key cache under this serial, as
		 * a known key does: decoded (about 0.5 ms with OpenSSL 3) the
		 * first time, cached after. Otherwise a known serial's first
		 * attempt is slower than an unknown one's: a timing oracle. */
		if (enrol_keys_get(e->keys, req.serial, e->decoy_spki,
		    e->decoy_spki_len, &key) != FC_OK) {
			EVP_PKEY_up_ref(e->decoy);
			key = e->decoy;
		}
		if (cause == NULL)
			cause = !known ? "unknown serial" :
			    dev.identity_key == NULL ? "no identity key recorded" :
			    "identity key recorded is not P-256";
	}

	/* d = SHA-256("fleetcert-reenrol-v1" || nonce || serial || SHA-256(csr)) */
	enrol_digest(req.nonce, req.serial_raw, req.csr, req.csr_len, NULL, d);
	if (enrol_sig_verify(key, d, req.sig) != FC_OK && cause == NULL)
		cause = "identity signature does not verify";

	/* The CSR. Same key as the identity key (the default and the common
	 * case): its self-signature is checked with the parsed identity key.
	 * An unknown serial gets the same work against the decoy. Another
	 * key (allow_new_key) is decoded and checked the general way. */
	same_key = known && dev.identity_key != NULL &&
	    csr.spki_len == dev.identity_key_len &&
	    memcmp(csr.spki, dev.identity_key, csr.spki_len) == 0;
	if (same_key || cause != NULL) {
		self_ok = enrol_csr_verify(&csr, key) == FC_OK;
		if (same_key && !self_ok && cause == NULL)
			cause = "CSR self-signature does not verify";
	} else if (!e->allow_new_key) {
		cause = "CSR key is not the identity key";
	} else {
		result = enrol_csr_inspect(req.csr, req.csr_len, &spki,
		    &spki_len, &self_ok);
		if (result == FC_ENOMEM)
			goto fail;
		if (result != FC_OK || !self_ok)
			cause = "CSR self-signature does not verify";
	}
	if (cause != NULL) {
		audit_refusal(e, db, &req, known ? dev.device_id : NULL, peer,
		    "enrol.reject", cause);
		enrol_stat_add(e, &e->st.rejected, "rejected");
		result = answer_error(ans, 401, "unauthorized", UNAUTH_MSG);
		goto out;
	}

	/* Proven. A revoked, decommissioned or suspended device never gets a
	 * certificate back this way: re-enrolment re-enables nothing. */
	if (dev.status != INV_DEV_ACTIVE) {
		audit_refusal(e, db, &req, dev.device_id, peer,
		    "enrol.forbidden", inv_dev_status_name(dev.status));
		enrol_stat_add(e, &e->st.forbidden, "forbidden");
		result = answer_error(ans, 403, "forbidden", "device is not "
		    "allowed to re-enrol");
		goto out;
	}
	result = enrol_issue(e, db, &dev, same_key ? dev.identity_key : spki,
	    same_key ? dev.identity_key_len : spki_len, peer, ans);
	if (result == FC_EPERM) {
		audit_refusal(e, db, &req, dev.device_id, peer,
		    "enrol.forbidden", "revoked during the re-enrolment");
		enrol_stat_add(e, &e->st.forbidden, "forbidden");
		result = answer_error(ans, 403, "forbidden", "device is not "
		    "allowed to re-enrol");
		goto out;
	}
	if (result == FC_ENOMEM || result == FC_OK)
		goto out;
fail:
	enrol_answer_clear(ans);
	result = answer_internal(e, ans);
out:
	EVP_PKEY_free(key);
	free(spki);
	inv_device_clear(&dev);
	enrol_req_clear(&req);
	if (tdb == NULL)
		db_put(e, db);
	return result;
}
