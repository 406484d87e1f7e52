/*
 * main.c — fleetcertd: parses the command line and wires the modules
 * together. Each module has a start (init) and a stop (finalise) call; the
 * order of daemon_start() is the architecture, and daemon_stop() undoes it
 * in reverse. Main thread. Holds the current configuration and keeps every
 * configuration it replaced on SIGHUP until exit, because threads of other
 * modules may still read the one they were started with.
 */
#include "fc_build.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "api.h"
#include "ca.h"
#include "cfgcheck.h"
#include "config.h"
#include "db.h"
#include "enrol_http.h"
#include "health.h"
#include "inventory.h"
#include "log.h"
#include "renew_service.h"
#include "revoke_service.h"
#include "scheduler.h"
#include "signer.h"

#define DEFAULT_CONFIG	SYSCONFDIR "/fleetcert/fleetcertd.conf"
#define RETIRED_MAX	256
#define INV_STATUS_MS	60000
#define SIGNER_POLL_S	5
#define FP_FILE_MAX	(1024 * 1024)

/* Files read once at start-up whose new content only a restart applies. */
enum { FP_CA_CERT, FP_CA_CHAIN, FP_ENROL_CERT, FP_API_TOKENS, FP_N };
static const char *const fp_names[FP_N] = {
	"[ca] certificate", "[ca] chain", "[enrol] tls_certificate",
	"[api] tokens_file",
};

/* Exit codes: 0 ok; 1 runtime or configuration error; 2 usage. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct daemon {
	const char	*cfg_file;
	struct cfg	*cfg;
	struct cfg	*retired[RETIRED_MAX];
	size_t		 nretired;
	char		*lock_path;
	int		 lock_fd;
	struct db	*db;		/* the main thread's connection */
	int		 signer_up;	/* signer_start succeeded */
	int		 fatal;		/* stopping because of a failure */
	int		 signer_seen;	/* last signer state logged */
	int		 sched_up;
	struct api	*api;		/* NULL: no operator API */
	struct enrol_listener *enrol;	/* NULL: [enrol] listen unset */
	/* SHA-256 of the start-up files (fp_names), to tell on SIGHUP that
	 * one changed on disk and needs a restart */
	unsigned char	 fp[FP_N][32];
	/* cached inventory phrase for STATUS= */
	char		 inv_status[128];
	long long	 inv_status_at;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: fleetcertd [-c FILE] [--check-config] "
	    "[--sweep [--json]] [--version]\n"
	    "  -c, --config FILE  configuration (default %s)\n"
	    "  --check-config     check the configuration and exit\n"
	    "  --sweep            run one revocation sweep and exit\n"
	    "  --json             with --sweep: print the summary as JSON\n"
	    "  --version          print the version and exit\n",
	    DEFAULT_CONFIG);
}

/* The backlog phrase of the inventory, recomputed at most once a minute. */
static void
inv_status(void *arg, char *buf, size_t len)
{
	struct daemon *d = arg;
	int64_t n[INV_CERT_EXPIRED + 1];
	long long now = sched_now_ms();

	if (d->inv_status_at == 0 || now - d->inv_status_at >= INV_STATUS_MS) {
		if (inv_cert_count_by_status(d->db, n) == FC_OK)
			snprintf(d->inv_status, sizeof(d->inv_status),
			    "%" PRId64 " active, %" PRId64 " pending, %" PRId64
			    " delivered, %" PRId64 " expired",
			    n[INV_CERT_ACTIVE], n[INV_CERT_PENDING],
			    n[INV_CERT_DELIVERED], n[INV_CERT_EXPIRED]);
		else
			snprintf(d->inv_status, sizeof(d->inv_status),
			    "unavailable");
		d->inv_status_at = now;
	}
	snprintf(buf, len, "%s", d->inv_status);
}

/* STATUS= phrase of the signer. */
static void
signer_status_phrase(void *arg, char *buf, size_t len)
{
	struct daemon *d = arg;
	struct signer_status st;

	if (!d->signer_up)
		snprintf(buf, len, "not configured");
	else if (signer_health(&st))
		snprintf(buf, len, "up");
	else
		snprintf(buf, len, "down (%s)", st.reason);
}

/* Job: mirrors the signer's state into the health registry; logs changes. */
static void
signer_poll(void *arg)
{
	struct daemon *d = arg;
	struct signer_status st;
	int up = signer_health(&st);

	health_set("signer", up, up ? NULL : st.reason);
	if (st.gone && !d->fatal) {
		/* Nothing can restart the signer's worker now: exit with a
		 * failure so that the service manager starts us afresh. */
		log_error("signer: its supervisor is gone; stopping so that "
		    "the service manager restarts fleetcertd");
		d->fatal = 1;
		sched_stop();
		return;
	}
	if (up != d->signer_seen) {
		if (up)
			log_info("signer: up again (worker %ld, %u restarts)",
			    (long)st.worker_pid, st.restarts);
		else
			log_error("signer: down: %s", st.reason);
		d->signer_seen = up;
	}
}

/* SHA-256 of a file's content; all zero when unset or unreadable. */
static void
fp_file(const char *path, int secret, unsigned char out[32])
{
	char *buf = NULL, why[256];
	size_t len = 0;
	unsigned int mdlen = 0;
	enum fc_err result;

	memset(out, 0, 32);
	if (path == NULL)
		return;
	if (secret)
		result = cfg_secret_read(path, &buf, &len, why, sizeof(why));
	else
		result = fc_file_read(path, FP_FILE_MAX, &buf, &len);
	if (result != FC_OK)
		return;
	if (EVP_Digest(buf, len, out, &mdlen, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
	fc_secret_free(buf, len + 1);
}

static void
fp_all(const struct cfg *cfg, unsigned char fp[FP_N][32])
{
	fp_file(cfg->ca_certificate, 0, fp[FP_CA_CERT]);
	fp_file(cfg->ca_chain, 0, fp[FP_CA_CHAIN]);
	fp_file(cfg->enrol_tls_certificate, 0, fp[FP_ENROL_CERT]);
	fp_file(cfg->api_tokens_file, 1, fp[FP_API_TOKENS]);
}

static int
str_changed(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* The [ca] file settings the signer's supervisor copied at start. */
static int
ca_paths_changed(const struct cfg *old, const struct cfg *nw)
{
	return str_changed(old->ca_key, nw->ca_key) ||
	    str_changed(old->ca_certificate, nw->ca_certificate) ||
	    str_changed(old->ca_chain, nw->ca_chain) ||
	    str_changed(old->ca_key_pin_file, nw->ca_key_pin_file) ||
	    str_changed(old->ca_key_passphrase_file,
	    nw->ca_key_passphrase_file);
}

/*
 * SIGHUP, new CA files at the same paths (a new intermediate certificate
 * and chain, maybe a new key): the certificate is parsed here, then the
 * signer starts a candidate worker with the new key and swaps it in only
 * when the key matches; only then do delivery and the enrolment endpoint
 * hand out the new chain. Anything refused leaves the running CA serving.
 */
static void
reload_ca(struct daemon *d, const struct cfg *nw)
{
	struct ca *nca = NULL;
	unsigned char fp_cert[32], fp_chain[32];
	const unsigned char *p;
	X509_NAME *name = NULL;
	char why[256], subject[256] = "?", na[21];
	size_t len = 0;

	if (!d->signer_up || ca_paths_changed(d->cfg, nw))
		return;
	fp_file(nw->ca_certificate, 0, fp_cert);
	fp_file(nw->ca_chain, 0, fp_chain);
	if (memcmp(fp_cert, d->fp[FP_CA_CERT], 32) == 0 &&
	    memcmp(fp_chain, d->fp[FP_CA_CHAIN], 32) == 0) {
		log_debug("reload: CA certificate and chain unchanged");
		return;
	}
	if (ca_load(nw, CA_LOAD_CERT_ONLY, &nca, why, sizeof(why)) != FC_OK)
		goto refused;
	p = ca_key_id(nca, &len);
	if (signer_reload(p, len, why, sizeof(why)) != FC_OK)
		goto refused;
	if (renew_service_chain_set(ca_chain_pem(nca)) != FC_OK)
		log_error("reload: delivery keeps sending the previous chain "
		    "(out of memory)");
	p = ca_subject_der(nca, &len);
	name = d2i_X509_NAME(NULL, &p, (long)len);
	if (name != NULL)
		(void)X509_NAME_oneline(name, subject, sizeof(subject));
	X509_NAME_free(name);
	fc_time_iso(ca_not_after(nca), na);
	if (enrol_ca_set(d->enrol, nca) != FC_OK)
		log_error("reload: the enrolment endpoint keeps sending the "
		    "previous chain (too many reloads; restart fleetcertd)");
	memcpy(d->fp[FP_CA_CERT], fp_cert, 32);
	memcpy(d->fp[FP_CA_CHAIN], fp_chain, 32);
	log_info("CA reloaded: subject %s, notAfter %s", subject, na);
	return;
refused:
	log_error("reload: new CA refused, the running CA keeps serving: %s",
	    why);
	ca_free(nca);
}

/* Names the settings that only a restart applies. */
static void
reload_restart_only(const struct daemon *d, const struct cfg *nw)
{
	const struct cfg *old = d->cfg;
	unsigned char fp[FP_N][32];
	int i;

	if (str_changed(old->db_path, nw->db_path))
		log_warn("reload: [database] path changed; the running daemon "
		    "keeps %s until it is restarted", old->db_path);
	if (str_changed(old->lock_path, nw->lock_path))
		log_warn("reload: [daemon] lock_file changed; takes effect "
		    "at the next restart");
	if (str_changed(old->api_listen, nw->api_listen))
		log_warn("reload: [api] listen changed; takes effect at the "
		    "next restart");
	if (str_changed(old->enrol_listen, nw->enrol_listen))
		log_warn("reload: [enrol] listen changed; takes effect at the "
		    "next restart");
	if (ca_paths_changed(old, nw) || old->validity_days != nw->validity_days)
		log_warn("reload: [ca] settings changed; the signer and the "
		    "enrolment endpoint keep the running CA until the next "
		    "restart (new content at the same paths is reloaded)");
	if (str_changed(old->api_tokens_file, nw->api_tokens_file))
		log_warn("reload: [api] tokens_file changed; takes effect at "
		    "the next restart");
	/* Same paths, new content (a renewed intermediate, new tokens):
	 * compared with what the running daemon loaded at start-up. */
	fp_all(nw, fp);
	for (i = 0; i < FP_N; i++)
		if (memcmp(fp[i], d->fp[i], 32) != 0 && !(d->signer_up &&
		    !ca_paths_changed(old, nw) &&
		    (i == FP_CA_CERT || i == FP_CA_CHAIN)))
			log_warn("reload: the file of %s differs from the one "
			    "loaded at start-up; restart fleetcertd to use it",
			    fp_names[i]);
}

/*
 * SIGHUP: load and check the file again; apply it only when it is good.
 * A bad file is refused with its file:line:key message and the running
 * configuration stays.
 */
static void
daemon_reload(void *arg)
{
	struct daemon *d = arg;
	struct cfg *nw = NULL;
	char err[1024];

	if (d->nretired == RETIRED_MAX) {
		log_error("reload: refused: %d reloads since start; restart "
		    "the daemon", RETIRED_MAX);
		return;
	}
	if (cfg_load(d->cfg_file, &nw, err, sizeof(err)) != FC_OK) {
		log_error("reload: refused, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (cfgcheck_run(nw, 0, err, sizeof(err)) != FC_OK) {
		log_error("reload: refused, keeping the running configuration: "
		    "%s", err);
		cfg_free(nw);
		return;
	}
	reload_restart_only(d, nw);

	/* Modules that apply new settings at run time, in start order
	 * (the CA files at unchanged paths, renewal, delivery and the
	 * enrolment endpoint's TTL and rate limits do; [ca] paths, the
	 * enrolment endpoint's listen address and TLS certificate and the
	 * API tokens apply at restart). A module reload function must leave its module unchanged
	 * when it fails; it returns an fc_err and logs the cause itself. */
	log_set_level((enum log_level)nw->log_level);
	reload_ca(d, nw);
	if (renew_service_reload(nw) != FC_OK)
		log_error("reload: renewal keeps its previous settings");
	if (enrol_reload(d->enrol, nw) != FC_OK)
		log_error("reload: the enrolment endpoint keeps its previous "
		    "settings");

	d->retired[d->nretired++] = d->cfg;
	d->cfg = nw;
	log_info("reload: configuration %s applied", d->cfg_file);
}

/* Undoes daemon_start, in reverse order; safe on a partial start. */
static void
daemon_stop(struct daemon *d)
{
	enrol_stop(d->enrol);
	d->enrol = NULL;
	api_stop(d->api);
	d->api = NULL;
	revoke_service_stop();
	renew_service_stop();
	if (d->sched_up)
		sched_finalise();
	d->sched_up = 0;
	db_close(d->db);
	d->db = NULL;
	if (d->signer_up)
		signer_stop();
	d->signer_up = 0;
	if (d->lock_fd >= 0)
		db_lock_release(d->lock_fd);
	d->lock_fd = -1;
}

/*
 * Brings the daemon up, in this order:
 *   1. the one-writer lock  2. the signer (forks; before the database is
 *   opened and before any thread exists)  3. the database (migrated)
 *   4. the scheduler (blocks signals: before any thread)  5. hub client,
 *   renewal and delivery (renew_service)  6. operator API  7. enrolment
 *   listener.
 * Then READY=1. Returns FC_OK or the first failure (logged).
 */
static enum fc_err
daemon_start(struct daemon *d)
{
	enum fc_err result;
	size_t n;

	if (d->cfg->lock_path != NULL) {
		d->lock_path = strdup(d->cfg->lock_path);
	} else {
		n = strlen(d->cfg->db_path) + sizeof(".lock");
		d->lock_path = malloc(n);
		if (d->lock_path != NULL)
			snprintf(d->lock_path, n, "%s.lock", d->cfg->db_path);
	}
	if (d->lock_path == NULL)
		return FC_ENOMEM;
	result = db_lock_acquire(d->lock_path, &d->lock_fd);
	if (result == FC_EBUSY) {
		log_error("database %s is in use by another fleetcertd (lock "
		    "%s is held); only one daemon may run per database",
		    d->cfg->db_path, d->lock_path);
		return result;
	}
	if (result != FC_OK)
		return result;

	/* The signer forks before the database is opened (no SQLite handle
	 * crosses a fork) and before any thread or blocked signal exists.
	 * Without a [ca] the daemon serves the inventory only: no signer,
	 * no renewal (logged by renew_service_start). */
	if (d->cfg->ca_certificate != NULL && d->cfg->ca_key != NULL) {
		char why[256] = "";
		result = signer_start(d->cfg, why, sizeof(why));
		if (result != FC_OK) {
			log_error("signer: cannot start: %s", why);
			return result;
		}
		d->signer_up = d->signer_seen = 1;
		health_set("signer", 1, NULL);
		log_info("signer: up, CA key loaded");
	} else {
		log_warn("no [ca] certificate and key configured: no "
		    "certificate can be issued");
		health_set("signer", 0, "no [ca] configured");
	}

	result = db_open(d->cfg->db_path, DB_OPEN_MIGRATE, &d->db);
	if (result != FC_OK) {
		log_error("database %s: cannot open (%s)", d->cfg->db_path,
		    fc_strerror(result));
		return result;
	}
	log_info("database %s: schema version %d", d->cfg->db_path,
	    db_schema_version(d->db));
	health_set("database", 1, NULL);

	result = sched_init();
	if (result != FC_OK)
		return result;
	d->sched_up = 1;
	sched_reload_set(daemon_reload, d);
	result = sched_status_add("certificates", inv_status, d);
	if (result == FC_OK)
		result = sched_status_add("signer", signer_status_phrase, d);
	if (result == FC_OK && d->signer_up) {
		int id;
		result = sched_job_add("signer-health", SIGNER_POLL_S,
		    signer_poll, d, &id);
	}
	if (result != FC_OK)
		return result;

	/* hub client, renewal and delivery: jobs, hub sockets, status,
	 * drain, health and metrics. */
	result = renew_service_start(d->cfg, d->db);
	if (result != FC_OK)
		return result;
	/* Revocation: its worker (own connection and hub clients) and its
	 * API endpoints. */
	result = revoke_service_start(d->cfg);
	if (result == FC_OK)
		result = revoke_api_register();
	if (result != FC_OK)
		return result;
	result = api_start(d->cfg, &d->api);
	if (result != FC_OK) {
		log_error("operator API: cannot start on %s",
		    d->cfg->api_listen ? d->cfg->api_listen : "(none)");
		return result;
	}
	/* Last, so that nothing from the Internet arrives before the rest
	 * is up; stopped first. */
	result = enrol_start(d->cfg, d->db, &d->enrol);
	if (result != FC_OK)
		return result;
	return FC_OK;
}

/* --check-config: prints the first error, or a confirmation. */
static int
check_config(const char *file)
{
	struct cfg *cfg = NULL;
	char err[1024];
	int rc = EXIT_FAIL;

	if (cfg_load(file, &cfg, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (cfgcheck_run(cfg, CFGCHECK_MISSING_OK, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	printf("%s: configuration is valid\n", file);
	rc = EXIT_OK;
out:
	cfg_free(cfg);
	return rc;
}

static int
run_daemon(const char *file)
{
	struct daemon d;
	char err[1024];
	enum fc_err result;
	int rc = EXIT_FAIL;
	size_t i;

	memset(&d, 0, sizeof(d));
	d.cfg_file = file;
	d.lock_fd = -1;
	if (cfg_load(file, &d.cfg, err, sizeof(err)) != FC_OK) {
		log_error("%s", err);
		goto out;
	}
	log_set_level((enum log_level)d.cfg->log_level);
	if (cfgcheck_run(d.cfg, 0, err, sizeof(err)) != FC_OK) {
		log_error("%s", err);
		goto out;
	}
	log_info("fleetcertd %s starting with %s", PACKAGE_VERSION, file);
	fp_all(d.cfg, d.fp);
	result = daemon_start(&d);
	if (result != FC_OK) {
		log_error("start-up failed (%s)", fc_strerror(result));
		goto out;
	}
	sched_ready();
	result = sched_run();
	log_info("stopping");
	if (result == FC_OK && !d.fatal)
		rc = EXIT_OK;
out:
	daemon_stop(&d);
	free(d.lock_path);
	for (i = 0; i < d.nretired; i++)
		cfg_free(d.retired[i]);
	cfg_free(d.cfg);
	if (rc == EXIT_OK)
		log_info("stopped");
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "sweep", no_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'J' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = DEFAULT_CONFIG;
	int ch, check = 0, sweep = 0, json = 0, version = 0;

	log_init("fleetcertd", LOG_LVL_INFO);
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'S':
			sweep = 1;
			break;
		case 'J':
			json = 1;
			break;
		case 'V':
			version = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "fleetcertd: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (version) {
		printf("fleetcertd %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	if (json && !sweep) {
		fprintf(stderr, "fleetcertd: --json is only valid with --sweep\n");
		return EXIT_USAGE;
	}
	if (check + sweep > 1) {
		fprintf(stderr, "fleetcertd: --check-config and --sweep "
		    "exclude each other\n");
		return EXIT_USAGE;
	}
	if (check)
		return check_config(file);
	if (sweep) {
		/* Exit codes of its own: 0 all propagated, 1 retry, 2
		 * configuration (DESIGN.md "Revocation"). */
		return sweep_cli(file, json);
	}
	return run_daemon(file);
}
