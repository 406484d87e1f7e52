/*
 * enrol_http.c — the enrolment listener: the HTTPS server ([enrol] listen,
 * tls_certificate, tls_key) on httpd.c that carries the two handlers of
 * enrol.c, and the issuers that connect enrol.c to the CA: the signer
 * process (the daemon) or an in-process struct ca (tests, tools).
 * Runs in the main process: enrol_start/enrol_stop from main.c's thread,
 * the handlers on the listener's MHD threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "config.h"
#include "db.h"
#include "enrol.h"
#include "enrol_http.h"
#include "httpd.h"
#include "log.h"
#include "signer.h"

#define RETIRED_CA_MAX	64

struct enrol_listener {
	struct httpd	*h;
	struct enrol	*e;
	struct ca	*ca;		/* certificate only: the chain */
	/* CAs a reload replaced: their chains may still be read by a
	 * request in flight, so they live until enrol_stop. */
	struct ca	*retired[RETIRED_CA_MAX];
	int		 nretired;
};

/* ---- issuers ---- */

static enum fc_err
serial_new(void *arg, char out[FC_CERT_SERIAL_MAX])
{
	(void)arg;
	return ca_serial_new(out);
}

static void
issued_from(struct ca_cert *c, struct enrol_issued *out)
{
	out->der = c->der;
	out->der_len = c->der_len;
	c->der = NULL;
	out->not_before = (int64_t)c->not_before;
	out->not_after = (int64_t)c->not_after;
	memcpy(out->sha1, c->sha1, sizeof(out->sha1));
	memcpy(out->sha256, c->sha256, sizeof(out->sha256));
}

/* Through the signer process: the CA key never enters this process. */
static enum fc_err
issue_signer(void *arg, const char *serial, const char *device_id,
    const char *se_serial, const unsigned char *spki, size_t spki_len,
    struct enrol_issued *out)
{
	struct ca_issue_req req;
	struct ca_cert *c = NULL;
	char why[256];
	enum fc_err result;

	(void)arg;
	memset(&req, 0, sizeof(req));
	req.serial = serial;
	req.device_id = device_id;
	req.se_serial = se_serial;
	req.spki = spki;
	req.spki_len = spki_len;
	result = signer_issue(&req, &c, why, sizeof(why));
	if (result != FC_OK) {
		log_error("enrol device %s: signer refused serial %s: %s",
		    device_id, serial, why);
		return result;
	}
	issued_from(c, out);
	ca_cert_free(c);
	return FC_OK;
}

void
enrol_issuer_signer(struct enrol_issuer *out, const char *chain_pem)
{
	memset(out, 0, sizeof(*out));
	out->serial_new = serial_new;
	out->issue = issue_signer;
	out->chain_pem = chain_pem;
}

/* In process: struct ca is for one thread at a time. */
static pthread_mutex_t ca_mu = PTHREAD_MUTEX_INITIALIZER;

static enum fc_err
issue_ca(void *arg, const char *serial, const char *device_id,
    const char *se_serial, const unsigned char *spki, size_t spki_len,
    struct enrol_issued *out)
{
	struct ca_issue_req req;
	struct ca_cert *c = NULL;
	char why[256];
	enum fc_err result;

	memset(&req, 0, sizeof(req));
	req.serial = serial;
	req.device_id = device_id;
	req.se_serial = se_serial;
	req.spki = spki;
	req.spki_len = spki_len;
	pthread_mutex_lock(&ca_mu);
	result = ca_cert_issue(arg, &req, &c, why, sizeof(why));
	pthread_mutex_unlock(&ca_mu);
	if (result != FC_OK) {
		log_error("enrol device %s: CA refused serial %s: %s",
		    device_id, serial, why);
		return result;
	}
	issued_from(c, out);
	ca_cert_free(c);
	return FC_OK;
}

void
enrol_issuer_ca(struct enrol_issuer *out, struct ca *ca)
{
	memset(out, 0, sizeof(*out));
	out->serial_new = serial_new;
	out->issue = issue_ca;
	out->arg = ca;
	out->chain_pem = ca_chain_pem(ca);
}

/* ---- HTTP ---- */

static void
respond(struct httpd_response *resp, struct enrol_answer *a, enum fc_err r)
{
	char ra[16];

	if (r != FC_OK || a->body == NULL) {
		httpd_resp_error(resp, 500, "internal", "internal error");
		return;
	}
	httpd_resp_raw_take(resp, a->status, "application/json", a->body,
	    a->body_len);
	a->body = NULL;
	if (a->retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", a->retry_after);
		httpd_resp_header(resp, "Retry-After", ra);
	}
	httpd_resp_header(resp, "Cache-Control", "no-store");
}

static void
h_challenge(struct httpd_request *req, struct httpd_response *resp)
{
	struct enrol_answer a;
	enum fc_err r;

	r = enrol_challenge(req->arg, req->db, req->body, req->body_len,
	    req->peer, &a);
	respond(resp, &a, r);
	enrol_answer_clear(&a);
}

static void
h_reenrol(struct httpd_request *req, struct httpd_response *resp)
{
	struct enrol_answer a;
	enum fc_err r;

	r = enrol_reenrol(req->arg, req->db, req->body, req->body_len,
	    req->peer, &a);
	respond(resp, &a, r);
	enrol_answer_clear(&a);
}

enum fc_err
enrol_listen(const struct cfg *cfg, struct enrol *e, struct httpd **out)
{
	struct httpd_opts o;
	struct httpd *h = NULL;
	enum fc_err result;

	httpd_opts_init(&o);
	o.name = "enrol";
	o.listen = cfg->enrol_listen;
	o.tls_cert = cfg->enrol_tls_certificate;
	o.tls_key = cfg->enrol_tls_key;
	o.tls_priorities = HTTPD_TLS_PRIORITIES;
	o.db_path = cfg->db_path;
	/* A device needs two short requests; nothing legitimate is slow. */
	o.idle_seconds = 10;
	o.deadline_seconds = 10;
	o.body_max = ENROL_BODY_MAX;
	result = httpd_new(&o, &h);
	if (result != FC_OK)
		return result;
	result = httpd_route_add(h, "POST", "/enrol/v1/challenge",
	    h_challenge, e);
	if (result == FC_OK)
		result = httpd_route_add(h, "POST", "/enrol/v1/reenrol",
		    h_reenrol, e);
	if (result == FC_OK)
		result = httpd_start(h);
	if (result != FC_OK) {
		httpd_free(h);
		return result;
	}
	*out = h;
	return FC_OK;
}

enum fc_err
enrol_start(const struct cfg *cfg, struct db *db, struct enrol_listener **out)
{
	struct enrol_listener *l;
	struct enrol_issuer iss;
	char why[256];
	enum fc_err result;
	int voided = 0;

	if (cfg->enrol_listen == NULL || cfg->enrol_listen[0] == '\0') {
		*out = NULL;
		return FC_OK;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return FC_ENOMEM;
	result = enrol_recover(db, &voided);
	if (result != FC_OK)
		goto out;
	if (voided > 0)
		log_warn("enrol: voided %d interrupted re-enrolment(s)", voided);
	result = ca_load(cfg, CA_LOAD_CERT_ONLY, &l->ca, why, sizeof(why));
	if (result != FC_OK)
		goto out;
	enrol_issuer_signer(&iss, ca_chain_pem(l->ca));
	result = enrol_new(cfg, &iss, &l->e);
	if (result != FC_OK)
		goto out;
	result = enrol_listen(cfg, l->e, &l->h);
	if (result != FC_OK)
		goto out;
	log_info("enrol: listening on %s (port %d)", cfg->enrol_listen,
	    httpd_port(l->h));
	*out = l;
	return FC_OK;
out:
	enrol_stop(l);
	return result;
}

void
enrol_stop(struct enrol_listener *l)
{
	if (l == NULL)
		return;
	httpd_free(l->h);	/* joins the threads before e goes */
	enrol_free(l->e);
	ca_free(l->ca);
	while (l->nretired > 0)
		ca_free(l->retired[--l->nretired]);
	free(l);
}

enum fc_err
enrol_reload(struct enrol_listener *l, const struct cfg *cfg)
{
	if (l == NULL)
		return FC_OK;
	return enrol_reconfigure(l->e, cfg);
}

enum fc_err
enrol_ca_set(struct enrol_listener *l, struct ca *ca)
{
	if (l == NULL) {
		ca_free(ca);
		return FC_OK;
	}
	if (l->nretired == RETIRED_CA_MAX) {
		ca_free(ca);
		return FC_EBUSY;
	}
	enrol_chain_set(l->e, ca_chain_pem(ca));
	l->retired[l->nretired++] = l->ca;
	l->ca = ca;
	return FC_OK;
}

int
enrol_listener_port(const struct enrol_listener *l)
{
	return l && l->h ? httpd_port(l->h) : 0;
}

struct enrol *
enrol_listener_enrol(struct enrol_listener *l)
{
	return l ? l->e : NULL;
}
