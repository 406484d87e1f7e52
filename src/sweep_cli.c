/*
 * sweep_cli.c — `fleetcertd --sweep [--json]` (revoke_service.h
 * sweep_cli): one writer per database. When the daemon holds the lock the
 * sweep is run by the daemon (POST /v1/sweep on its operator API with the
 * admin token of [sweep] api_token_file); otherwise this process takes the
 * lock, starts the signer (the CA key stays in its own process), runs the
 * sweep and exits. A second stand-alone sweep waits for the lock (up to
 * 10 minutes) and then finds nothing left to do. Single-threaded process.
 */
#include "fc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cfgcheck.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "revoke_service.h"
#include "signer.h"
#include "sweep.h"

#define LOCK_WAIT_MS	(600 * 1000)
#define ANSWER_MAX	(1u << 20)

enum { SWEEP_OK = 0, SWEEP_RETRY = 1, SWEEP_CONFIG = 2 };

struct buf {
	char	*p;
	size_t	 n;
};

static size_t
on_data(char *d, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	size_t n = sz * nm;
	char *p;

	if (b->n + n > ANSWER_MAX)
		return 0;
	p = realloc(b->p, b->n + n + 1);
	if (p == NULL)
		return 0;
	memcpy(p + b->n, d, n);
	b->n += n;
	p[b->n] = '\0';
	b->p = p;
	return n;
}

static void
print_summary(const json_t *j, int json)
{
	char *s;

	if (json) {
		s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s != NULL)
			printf("%s\n", s);
		free(s);
		return;
	}
	printf("sweep (daemon): %s: %lld revoked, %lld propagated, %lld "
	    "pending, %lld drift, CRL #%lld (%lld entries), %.1f s%s%s\n",
	    json_is_true(json_object_get(j, "complete")) ? "complete" :
	    "incomplete",
	    (long long)json_integer_value(json_object_get(j, "revoked")),
	    (long long)json_integer_value(json_object_get(j, "propagated")),
	    (long long)json_integer_value(json_object_get(j, "pending")),
	    (long long)json_integer_value(json_object_get(j, "drift")),
	    (long long)json_integer_value(json_object_get(j, "crlNumber")),
	    (long long)json_integer_value(json_object_get(j, "crlEntries")),
	    json_real_value(json_object_get(j, "seconds")),
	    json_is_string(json_object_get(j, "lastError")) ?
	    "; last error: " : "",
	    json_is_string(json_object_get(j, "lastError")) ?
	    json_string_value(json_object_get(j, "lastError")) : "");
}

/* Asks the daemon. Returns an exit code, or -1 when it cannot be reached
 * (no daemon: another stand-alone sweep holds the lock). */
static int
ask_daemon(const struct cfg *cfg, int json)
{
	CURL *cu = NULL;
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[512], auth[600], err[256];
	char *tok = NULL;
	size_t toklen = 0;
	long status = 0;
	json_t *j = NULL;
	int rc = SWEEP_RETRY;
	CURLcode cc;

	/* Without an address and a token the lock holder cannot be asked:
	 * wait for it like for another sweep. */
	if (cfg->api_listen == NULL || cfg->sweep_token_file == NULL ||
	    strncmp(cfg->api_listen, "systemd", 7) == 0 ||
	    strncmp(cfg->api_listen, "fd:", 3) == 0)
		return -1;
	if (cfg_secret_read(cfg->sweep_token_file, &tok, &toklen, err,
	    sizeof(err)) != FC_OK) {
		fprintf(stderr, "fleetcertd: %s\n", err);
		return SWEEP_CONFIG;
	}
	cu = curl_easy_init();
	if (cu == NULL)
		goto out;
	if (strncmp(cfg->api_listen, "unix:", 5) == 0) {
		curl_easy_setopt(cu, CURLOPT_UNIX_SOCKET_PATH,
		    cfg->api_listen + 5);
		snprintf(url, sizeof(url), "http://localhost/v1/sweep");
	} else {
		snprintf(url, sizeof(url), "http://%s/v1/sweep",
		    cfg->api_listen);
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	h = curl_slist_append(h, auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(cu, CURLOPT_POST, 1L);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT, 3600L);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(cu);
	if (cc == CURLE_COULDNT_CONNECT) {
		rc = -1;
		goto out;
	}
	if (cc != CURLE_OK) {
		fprintf(stderr, "fleetcertd: asking the daemon for a sweep: "
		    "%s\n", curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	j = b.p != NULL ? json_loads(b.p, 0, NULL) : NULL;
	if (status != 200 || j == NULL) {
		fprintf(stderr, "fleetcertd: the daemon refused the sweep "
		    "(HTTP %ld)%s%s\n", status, b.p ? ": " : "", b.p ? b.p : "");
		rc = status == 401 || status == 403 ? SWEEP_CONFIG :
		    SWEEP_RETRY;
		goto out;
	}
	print_summary(j, json);
	rc = (int)json_integer_value(json_object_get(j, "exitCode"));
out:
	json_decref(j);
	free(b.p);
	curl_slist_free_all(h);
	if (cu != NULL)
		curl_easy_cleanup(cu);
	if (tok != NULL)
		fc_secret_free(tok, toklen + 1);
	return rc;
}

static int
run_here(const struct cfg *cfg, int json)
{
	struct revoke_ctx ctx;
	struct sweep_summary s;
	char why[256] = "", line[768];
	int signer = 0, rc = SWEEP_RETRY;
	json_t *j;

	memset(&ctx, 0, sizeof(ctx));
	if (cfg->ca_certificate != NULL && cfg->ca_key != NULL) {
		if (signer_start(cfg, why, sizeof(why)) != FC_OK) {
			fprintf(stderr, "fleetcertd: signer: %s\n", why);
			return SWEEP_CONFIG;
		}
		signer = 1;
	}
	if (db_open(cfg->db_path, DB_OPEN_MIGRATE, &ctx.db) != FC_OK) {
		fprintf(stderr, "fleetcertd: database %s: cannot open\n",
		    cfg->db_path);
		goto out;
	}
	(void)revoke_ctx_open_hubs(&ctx, cfg);
	ctx.actor = "sweep";
	if (sweep_run(&ctx, &s) != FC_OK) {
		fprintf(stderr, "fleetcertd: sweep: database failure\n");
		goto out;
	}
	sweep_summary_line(&s, line, sizeof(line));
	log_info("%s", line);
	if (json) {
		j = sweep_summary_json(&s);
		print_summary(j, 1);
		json_decref(j);
	} else {
		printf("%s\n", line);
	}
	rc = s.exit_code;
out:
	revoke_ctx_close_hubs(&ctx);
	db_close(ctx.db);
	if (signer)
		signer_stop();
	return rc;
}

int
sweep_cli(const char *file, int json)
{
	struct cfg *cfg = NULL;
	char err[1024], *lock = NULL;
	int fd = -1, rc = SWEEP_CONFIG, waited = 0;
	enum fc_err result;
	size_t n;

	if (cfg_load(file, &cfg, err, sizeof(err)) != FC_OK ||
	    cfgcheck_run(cfg, 0, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	log_set_level((enum log_level)cfg->log_level);
	n = strlen(cfg->db_path) + sizeof(".lock");
	lock = cfg->lock_path != NULL ? strdup(cfg->lock_path) : malloc(n);
	if (lock == NULL)
		goto out;
	if (cfg->lock_path == NULL)
		snprintf(lock, n, "%s.lock", cfg->db_path);
	for (;;) {
		result = db_lock_acquire(lock, &fd);
		if (result == FC_OK) {
			rc = run_here(cfg, json);
			db_lock_release(fd);
			break;
		}
		if (result != FC_EBUSY) {
			fprintf(stderr, "fleetcertd: lock %s: %s\n", lock,
			    fc_strerror(result));
			rc = SWEEP_CONFIG;
			break;
		}
		rc = ask_daemon(cfg, json);
		if (rc >= 0)
			break;
		/* No daemon answers: another sweep holds the lock. */
		if (waited >= LOCK_WAIT_MS) {
			fprintf(stderr, "fleetcertd: %s held for over %d s "
			    "by another sweep, or by a daemon that cannot be "
			    "asked (needs [api] listen and [sweep] "
			    "api_token_file)\n", lock, LOCK_WAIT_MS / 1000);
			rc = SWEEP_RETRY;
			break;
		}
		usleep(200 * 1000);
		waited += 200;
	}
out:
	free(lock);
	cfg_free(cfg);
	return rc;
}
