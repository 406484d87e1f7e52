/*
 * enrol_issue.c — the last step of a re-enrolment whose proof was accepted:
 * reserve the serial, sign through the issuer, record the certificate and
 * supersede the old lineage, stage a self-signed device's thumbprint at its
 * hub, answer. Runs on an enrolment listener thread with that thread's
 * database connection. Touches certificates, devices (needs_reenrol) and
 * audit through inventory*.c and audit.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "enrol.h"
#include "enrol_int.h"
#include "inventory.h"
#include "inventory_enrol.h"
#include "inventory_renew.h"
#include "log.h"

/* PEM of one certificate, from its DER. Caller frees. */
static char *
cert_pem(const unsigned char *der, size_t len)
{
	static const char head[] = "-----BEGIN CERTIFICATE-----\n";
	static const char tail[] = "-----END CERTIFICATE-----\n";
	char *b64 = NULL, *pem, *p;
	size_t n, i;

	if (fc_b64_encode(der, len, &b64) != FC_OK)
		return NULL;
	n = strlen(b64);
	pem = malloc(sizeof(head) + n + n / 64 + 2 + sizeof(tail));
	if (pem != NULL) {
		p = pem;
		memcpy(p, head, sizeof(head) - 1);
		p += sizeof(head) - 1;
		for (i = 0; i < n; i += 64) {
			size_t k = n - i < 64 ? n - i : 64;
			memcpy(p, b64 + i, k);
			p += k;
			*p++ = '\n';
		}
		memcpy(p, tail, sizeof(tail));
	}
	free(b64);
	return pem;
}

/*
 * Issues for a device whose proof was accepted: reserve (committed, synced),
 * sign, then complete + supersede + audit in one synced transaction. Only
 * then is the answer built; a crash before that leaves a reserved row that
 * enrol_recover() voids, and the device retries with a new nonce.
 */
enum fc_err
enrol_issue(struct enrol *e, struct db *db, const struct inv_device *dev,
    const unsigned char *spki, size_t spki_len, const char *peer,
    struct enrol_answer *ans)
{
	struct inv_cert row, cur;
	struct enrol_issued out;
	char actor[96], na[21], ra[21];
	char *pem = NULL, *detail = NULL;
	int64_t renew_after;
	enum fc_err result;
	json_t *j;
	int n = 0;
	const char *chain;

	memset(&row, 0, sizeof(row));
	memset(&cur, 0, sizeof(cur));
	memset(&out, 0, sizeof(out));
	snprintf(actor, sizeof(actor), "enrol:%s", peer);

	result = e->iss.serial_new(e->iss.arg, row.serial);
	if (result != FC_OK)
		goto out;
	snprintf(row.device_id, sizeof(row.device_id), "%s", dev->device_id);
	row.status = INV_CERT_RESERVED;
	row.issued_by = INV_ISSUED_REENROLMENT;
	if (inv_cert_current(db, dev->device_id, &cur) == FC_OK)
		snprintf(row.renewed_from, sizeof(row.renewed_from), "%s",
		    cur.serial);
	result = inv_enrol_durable(db, 1);
	if (result != FC_OK)
		goto out;
	result = inv_cert_insert(db, &row, actor);
	if (result != FC_OK) {
		log_error("enrol device %s: cannot reserve serial %s: %s",
		    dev->device_id, row.serial, fc_strerror(result));
		goto out;
	}

	result = e->iss.issue(e->iss.arg, row.serial, dev->device_id,
	    dev->se_serial, spki, spki_len, &out);
	if (result != FC_OK) {
		log_error("enrol device %s: signing serial %s failed: %s",
		    dev->device_id, row.serial, fc_strerror(result));
		(void)inv_enrol_void(db, row.serial, actor, "signing failed");
		goto out;
	}
	row.der = out.der;
	row.der_len = out.der_len;
	row.not_before = out.not_before;
	row.not_after = out.not_after;
	memcpy(row.sha1, out.sha1, sizeof(row.sha1));
	memcpy(row.sha256, out.sha256, sizeof(row.sha256));

	j = json_pack("{s:s,s:s,s:s}", "serial", dev->se_serial,
	    "renewedFrom", row.renewed_from, "peer", peer);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	result = db_begin(db);
	if (result != FC_OK)
		goto void_out;
	/* Re-read the device under the write lock: a revocation that
	 * committed while the certificate was being signed wins. */
	{
		struct inv_device again;
		memset(&again, 0, sizeof(again));
		result = inv_device_get(db, dev->device_id, &again);
		if (result == FC_OK && again.status != INV_DEV_ACTIVE)
			result = FC_EPERM;
		inv_device_clear(&again);
	}
	if (result == FC_OK)
		result = inv_cert_complete(db, &row, INV_CERT_DELIVERED, actor);
	if (result == FC_OK)
		result = inv_enrol_supersede(db, dev->device_id, row.serial,
		    actor, &n);
	if (result == FC_OK && dev->needs_reenrol)
		result = inv_device_set_needs_reenrol(db, dev->device_id, 0);
	if (result == FC_OK)
		result = audit_append(db, actor, "enrol.reenrol",
		    dev->device_id, row.serial, detail);
	if (result == FC_OK)
		result = db_commit(db);
	else
		db_rollback(db);
	if (result == FC_EPERM) {
		log_warn("enrol device %s: revoked while certificate %s was "
		    "being signed; not issued", dev->device_id, row.serial);
		(void)inv_enrol_void(db, row.serial, actor,
		    "device no longer active");
		goto out;
	}
	if (result != FC_OK) {
		log_error("enrol device %s: cannot record certificate %s: %s",
		    dev->device_id, row.serial, fc_strerror(result));
		goto void_out;
	}
	(void)inv_enrol_durable(db, 0);

	/* Self-signed devices authenticate at the hub by thumbprint: stage
	 * the new one before answering, so the device's next connection
	 * works. If the hub cannot be reached the certificate stands (it is
	 * recorded and valid); the gap is audited, and reconciliation reports
	 * the thumbprint drift until the delivery loop or an operator fixes
	 * it. */
	if (dev->auth_type == INV_AUTH_SELFSIGNED &&
	    enrol_hub_stage(e->cfg, dev->hub, dev->device_id, out.sha1,
	    out.sha256) != FC_OK &&
	    audit_append(db, actor, "enrol.hub_pending", dev->device_id,
	    row.serial, "{\"cause\":\"thumbprint not staged at the hub\"}") !=
	    FC_OK)
		log_error("enrol device %s: cannot audit the hub gap",
		    dev->device_id);

	pem = cert_pem(out.der, out.der_len);
	if (pem == NULL) {
		result = FC_ENOMEM;
		goto out;
	}
	/* renewAfter: when fleetcert's own renewal of this certificate will
	 * start (the renewal scheduler's formula, jitter included). */
	renew_after = inv_renew_at(dev->device_id, out.not_after,
	    (int64_t)e->renew_before_days * 86400,
	    (int64_t)e->jitter_days * 86400);
	if (renew_after < out.not_before)
		renew_after = out.not_before;
	fc_time_iso((time_t)out.not_after, na);
	fc_time_iso((time_t)renew_after, ra);
	chain = e->chain_pem;
	result = enrol_answer_json(ans, 200, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}",
	    "deviceId", dev->device_id, "serial", row.serial,
	    "certificate", pem, "chain",
	    chain ? chain : "",
	    "notAfter", na, "renewAfter", ra));
	if (result == FC_OK) {
		enrol_stat_add(e, &e->st.reenrolled, "reenrolled");
		log_info("enrol device %s: re-enrolled, certificate %s "
		    "(%d superseded)", dev->device_id, row.serial, n);
	}
	goto out;
void_out:
	(void)inv_enrol_void(db, row.serial, actor, "recording failed");
out:
	(void)inv_enrol_durable(db, 0);
	free(pem);
	free(detail);
	free(out.der);
	inv_cert_clear(&cur);
	return result;
}
