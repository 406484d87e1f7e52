/*
 * renew_service.c — renewal and delivery inside fleetcertd: scheduler jobs,
 * the hubs' libcurl sockets and timers on the scheduler's poll loop,
 * STATUS=, drain, health and metrics (renew_service.h). Main thread, except
 * the metrics collector, which runs on the API's rendering thread with its
 * own database connection and only reads thread-safe state.
 */
#include "fc_build.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "ca.h"
#include "config.h"
#include "deliver.h"
#include "health.h"
#include "hub.h"
#include "inventory_renew.h"
#include "log.h"
#include "metrics.h"
#include "renew.h"
#include "renew_service.h"
#include "scheduler.h"

#define RENEW_PER_RUN	4096	/* certificates per job run; then yield */
#define PUMP_MAX_MS	1000

struct rs {
	const struct cfg *cfg;
	struct db	*db;
	struct ca	*ca;		/* certificate and chain only */
	int64_t		 chain_id;	/* its chain in the chains table */
	struct renew	*renew;
	struct deliver	*deliver;
	int		 job_renew, job_deliver;
	int		 pump_id;	/* 0: none armed */
	short		 watched[FD_SETSIZE];
	struct renew_stats rlast;
	struct deliver_stats dlast;
	int		 healthy;
	int		 up;
};
static struct rs rs = { .job_renew = -1, .job_deliver = -1 };

static struct metric *m_renewals, *m_deliveries;
static pthread_mutex_t hub_mx = PTHREAD_MUTEX_INITIALIZER;

/* ---- metrics ----------------------------------------------------------- */

static void
publish_counters(void)
{
	struct renew_stats r;
	struct deliver_stats d;
	int i;

	if (rs.renew == NULL || rs.deliver == NULL)
		return;
	renew_stats_get(rs.renew, &r);
	metrics_add(m_renewals, (double)(r.issued - rs.rlast.issued),
	    "issued");
	metrics_add(m_renewals, (double)(r.voided - rs.rlast.voided),
	    "voided");
	metrics_add(m_renewals, (double)(r.postponed - rs.rlast.postponed),
	    "postponed");
	metrics_add(m_renewals, (double)(r.sign_failed - rs.rlast.sign_failed),
	    "sign_failed");
	metrics_add(m_renewals, (double)(r.csr_requested -
	    rs.rlast.csr_requested), "csr_requested");
	rs.rlast = r;
	deliver_stats_get(rs.deliver, &d);
	for (i = 0; i < DELIVER_OUT_COUNT; i++)
		metrics_add(m_deliveries, (double)(d.outcomes[i] -
		    rs.dlast.outcomes[i]),
		    deliver_outcome_name((enum deliver_outcome)i));
	rs.dlast = d;
}

/* Hub counters are cumulative in hub.c; the registry's counters take
 * increments, so the collector remembers what it published (under
 * hub_mx: renderers may run on several API threads). */
struct hub_pub {
	struct metric	*req, *lat;
	int		 idx;
};

static void
publish_hub(void *arg, const char *name, struct hub *h)
{
	static const int statuses[HUB_NSTATUS] = HUB_STATUSES;
	static const int lat_ms[HUB_NLATENCY] = HUB_LATENCY_MS;
	static uint64_t last[16][HUB_OP_COUNT][HUB_NSTATUS];
	struct hub_pub *p = arg;
	struct hub_metrics m;
	const char *hn = name[0] ? name : "default";
	char code[16], le[16];
	int op, k;
	uint64_t cum;

	if (p->idx >= 16)
		return;
	hub_metrics_read(h, &m);
	for (op = 0; op < HUB_OP_COUNT; op++) {
		for (k = 0; k < HUB_NSTATUS; k++) {
			uint64_t v = m.attempts[op][k];
			if (v == last[p->idx][op][k])
				continue;
			if (statuses[k] < 0)
				snprintf(code, sizeof(code), "other");
			else if (statuses[k] == 0)
				snprintf(code, sizeof(code), "transport");
			else
				snprintf(code, sizeof(code), "%d",
				    statuses[k]);
			metrics_add(p->req, (double)(v - last[p->idx][op][k]),
			    hn, hub_op_name((enum hub_op)op), code);
			last[p->idx][op][k] = v;
		}
		cum = 0;
		for (k = 0; k < HUB_NLATENCY; k++) {
			cum += m.latency[op][k];
			if (cum == 0)
				continue;
			if (lat_ms[k] < 0)
				snprintf(le, sizeof(le), "+Inf");
			else
				snprintf(le, sizeof(le), "%g",
				    lat_ms[k] / 1000.0);
			metrics_set(p->lat, (double)cum, hn,
			    hub_op_name((enum hub_op)op), le);
		}
	}
	p->idx++;
}

static void
collect(void *arg, struct db *db)
{
	static struct metric *g_exp, *g_backlog, *g_oldest, *g_flag, *g_end;
	struct inv_delivery_stats s;
	struct hub_pub hp;
	int64_t now = fc_now();

	(void)arg;
	if (g_exp == NULL) {
		g_exp = metrics_gauge("fleetcert_certificates_expiring",
		    "Active certificates whose notAfter is within the window",
		    "within");
		g_backlog = metrics_gauge("fleetcert_delivery_backlog",
		    "Deliveries not finished (open) and due now (due)",
		    "state");
		g_oldest = metrics_gauge(
		    "fleetcert_delivery_oldest_pending_seconds",
		    "Age of the oldest unfinished delivery", NULL);
		g_flag = metrics_gauge("fleetcert_devices_needing_reenrolment",
		    "Devices whose certificate expired before they confirmed "
		    "its successor", NULL);
		g_end = metrics_gauge("fleetcert_deliveries_finished",
		    "Deliveries in a terminal step", "step");
	}
	if (db != NULL && inv_delivery_stats(db, now, &s) == FC_OK) {
		metrics_set(g_exp, (double)s.expiring_7d, "7d");
		metrics_set(g_exp, (double)s.expiring_30d, "30d");
		metrics_set(g_backlog, (double)s.open, "open");
		metrics_set(g_backlog, (double)s.due, "due");
		metrics_set(g_oldest, s.oldest_open_created > 0 ?
		    (double)(now - s.oldest_open_created) : 0.0);
		metrics_set(g_flag, (double)s.needs_reenrol);
		metrics_set(g_end, (double)s.done, "done");
		metrics_set(g_end, (double)s.failed, "failed");
		metrics_set(g_end, (double)s.cancelled, "cancelled");
	}
	/* The hub list is fixed between start and stop, and the API (the
	 * only renderer) stops before renewal does. */
	pthread_mutex_lock(&hub_mx);
	if (rs.up) {
		hp.req = metrics_counter("fleetcert_hub_requests_total",
		    "HTTP attempts to IoT Hub, by hub, operation and status",
		    "hub,operation,code");
		hp.lat = metrics_gauge("fleetcert_hub_attempts_within_seconds",
		    "IoT Hub attempts that took at most `within` seconds "
		    "(cumulative, a histogram's buckets)",
		    "hub,operation,within");
		hp.idx = 0;
		deliver_hubs_foreach(rs.deliver, publish_hub, &hp);
	}
	pthread_mutex_unlock(&hub_mx);
}

static void
health_update(void)
{
	char why[512];
	int ok = deliver_health(rs.deliver, why, sizeof(why));

	if (ok != rs.healthy) {
		health_set("delivery", ok, ok ? NULL : why);
		rs.healthy = ok;
	}
}

/* ---- the hubs on the scheduler's loop ---------------------------------- */

static void pump(void *arg);

struct fdcol {
	fd_set	*rd, *wr, *ex;
	int	*maxfd;
};

static void
collect_fds(void *a, const char *n, struct hub *h)
{
	struct fdcol *c = a;
	int m = -1;

	(void)n;
	if (hub_fdset(h, c->rd, c->wr, c->ex, &m) == FC_OK && m > *c->maxfd)
		*c->maxfd = m;
}

static void
on_fd(int fd, short revents, void *arg)
{
	(void)fd;
	(void)revents;
	pump(arg);
}

/* Drives the hubs, then re-registers their sockets and the next wake-up
 * (libcurl's sockets come from curl_multi_fdset through hub_fdset). */
static void
pump(void *arg)
{
	struct fdcol c;
	fd_set rd, wr, ex;
	short want[FD_SETSIZE];
	int timeout = -1, maxfd = -1, fd;

	(void)arg;
	if (rs.pump_id != 0) {
		sched_timeout_cancel(rs.pump_id);
		rs.pump_id = 0;
	}
	(void)deliver_perform(rs.deliver, &timeout);
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_ZERO(&ex);
	memset(want, 0, sizeof(want));
	c.rd = &rd;
	c.wr = &wr;
	c.ex = &ex;
	c.maxfd = &maxfd;
	deliver_hubs_foreach(rs.deliver, collect_fds, &c);
	for (fd = 0; fd <= maxfd && fd < FD_SETSIZE; fd++) {
		if (FD_ISSET(fd, &rd))
			want[fd] |= POLLIN;
		if (FD_ISSET(fd, &wr))
			want[fd] |= POLLOUT;
	}
	for (fd = 0; fd < FD_SETSIZE; fd++) {
		if (want[fd] == rs.watched[fd])
			continue;
		(void)sched_fd_watch(fd, want[fd], on_fd, NULL);
		rs.watched[fd] = want[fd];
	}
	if (deliver_in_flight(rs.deliver) > 0 || timeout >= 0) {
		if (timeout < 0 || timeout > PUMP_MAX_MS)
			timeout = PUMP_MAX_MS;
		(void)sched_timeout_add(timeout, pump, NULL, &rs.pump_id);
	}
	publish_counters();
}

/* ---- jobs -------------------------------------------------------------- */

static void
job_renew(void *arg)
{
	int issued = 0, more = 0;
	enum fc_err result;

	(void)arg;
	result = renew_run(rs.renew, fc_now(), RENEW_PER_RUN, &issued, &more);
	if (result != FC_OK)
		health_set("renewal", 0, "the renewal pass failed; see the log");
	else
		health_set("renewal", 1, NULL);
	if (issued > 0) {
		log_info("renewal: %d certificate(s) issued", issued);
		sched_job_kick(rs.job_deliver);
	}
	if (more)
		sched_job_kick(rs.job_renew);
	pump(NULL);
}

static void
job_deliver(void *arg)
{
	(void)arg;
	(void)deliver_tick(rs.deliver, fc_now());
	health_update();
	pump(NULL);
}

static void
status(void *arg, char *buf, size_t len)
{
	struct renew_stats r;

	(void)arg;
	renew_stats_get(rs.renew, &r);
	snprintf(buf, len, "%llu renewed, %d deliveries in flight",
	    (unsigned long long)r.issued, deliver_in_flight(rs.deliver));
}

static int
busy(void *arg)
{
	(void)arg;
	return deliver_in_flight(rs.deliver) > 0;
}

/* ---- start / stop ------------------------------------------------------ */

void
renew_service_kick(void)
{
	int id = -1;

	pthread_mutex_lock(&hub_mx);
	if (rs.up)
		id = rs.job_renew;
	pthread_mutex_unlock(&hub_mx);
	if (id >= 0)
		sched_job_kick(id);
}

enum fc_err
renew_service_start(const struct cfg *cfg, struct db *db)
{
	struct renew_opts ro;
	struct deliver_opts dopt;
	char why[256];
	enum fc_err result;
	size_t i;
	int voided = 0;
	int64_t chain_id = 0;

	memset(&rs, 0, sizeof(rs));
	rs.job_renew = rs.job_deliver = -1;
	rs.cfg = cfg;
	rs.db = db;
	rs.healthy = 1;
	/* The endpoint exists without [ca] too (it records the request;
	 * renewal runs when the daemon has a CA). */
	result = renew_api_register();
	if (result != FC_OK)
		return result;
	if (cfg->ca_certificate == NULL || cfg->ca_key == NULL) {
		log_warn("renewal: no [ca] certificate and key configured; "
		    "renewal and delivery are off");
		health_set("renewal", 1, "off: no [ca] configured");
		return FC_OK;
	}
	result = ca_load(cfg, CA_LOAD_CERT_ONLY, &rs.ca, why, sizeof(why));
	if (result != FC_OK) {
		log_error("renewal: CA certificate: %s", why);
		goto out;
	}
	deliver_opts_from_cfg(&dopt, cfg);
	dopt.chain_pem = ca_chain_pem(rs.ca);
	result = deliver_open(db, &dopt, &rs.deliver);
	if (result != FC_OK)
		goto out;
	for (i = 0; i < cfg->nhubs; i++) {
		struct hub *h = NULL;
		result = hub_open(&cfg->hubs[i], &h);
		if (result != FC_OK) {
			log_error("hub %s: cannot open (%s)",
			    cfg->hubs[i].name[0] ? cfg->hubs[i].name :
			    "(default)", fc_strerror(result));
			goto out;
		}
		result = deliver_hub_add(rs.deliver, cfg->hubs[i].name, h);
		if (result != FC_OK)
			goto out;
	}
	/* Renewals are recorded with the chain they were signed under. */
	result = inv_chain_put(db, ca_chain_pem(rs.ca), &chain_id);
	if (result != FC_OK)
		goto out;
	pthread_mutex_lock(&hub_mx);
	rs.chain_id = chain_id;
	pthread_mutex_unlock(&hub_mx);
	renew_opts_from_cfg(&ro, cfg);
	ro.chain_id = chain_id;
	ro.csr = deliver_csr_fetch;
	ro.csr_arg = rs.deliver;
	result = renew_open(db, &ro, &rs.renew);
	if (result != FC_OK)
		goto out;
	deliver_set_renew(rs.deliver, rs.renew);
	result = renew_recover(rs.renew, &voided);
	if (result != FC_OK)
		goto out;
	if (voided > 0)
		log_warn("renewal: %d interrupted renewal(s) voided; they are "
		    "renewed again under new serials", voided);

	m_renewals = metrics_counter("fleetcert_renewals_total",
	    "Renewals, by outcome", "outcome");
	m_deliveries = metrics_counter("fleetcert_delivery_events_total",
	    "Delivery steps, by outcome", "outcome");
	result = metrics_collector_add(collect, NULL);
	if (result != FC_OK)
		goto out;
	result = sched_job_add("renew", cfg->renew_interval_seconds, job_renew,
	    NULL, &rs.job_renew);
	if (result != FC_OK)
		goto out;
	result = sched_job_add("deliver", 1, job_deliver, NULL,
	    &rs.job_deliver);
	if (result != FC_OK)
		goto out;
	if (sched_status_add("renewal", status, NULL) != FC_OK ||
	    sched_drain_add("delivery", busy, NULL) != FC_OK) {
		result = FC_ENOMEM;
		goto out;
	}
	health_set("delivery", 1, NULL);
	health_set("renewal", 1, NULL);
	sched_job_kick(rs.job_renew);
	sched_job_kick(rs.job_deliver);
	pthread_mutex_lock(&hub_mx);
	rs.up = 1;
	pthread_mutex_unlock(&hub_mx);
	return FC_OK;
out:
	renew_service_stop();
	return result;
}

enum fc_err
renew_service_reload(const struct cfg *cfg)
{
	struct renew_opts ro;
	struct deliver_opts dopt;
	enum fc_err result;

	if (rs.renew == NULL)
		return FC_OK;
	renew_opts_from_cfg(&ro, cfg);
	ro.csr = deliver_csr_fetch;
	ro.csr_arg = rs.deliver;
	ro.chain_id = rs.chain_id;
	result = renew_reconfigure(rs.renew, &ro);
	if (result != FC_OK)
		return result;
	deliver_opts_from_cfg(&dopt, cfg);
	deliver_reconfigure(rs.deliver, &dopt);
	(void)sched_job_interval_set(rs.job_renew,
	    cfg->renew_interval_seconds);
	rs.cfg = cfg;
	return FC_OK;
}

int64_t
renew_service_chain_id(void)
{
	int64_t id;

	pthread_mutex_lock(&hub_mx);
	id = rs.chain_id;
	pthread_mutex_unlock(&hub_mx);
	return id;
}

enum fc_err
renew_service_chain_set(const char *chain_pem)
{
	enum fc_err result;
	int64_t id = 0;

	if (rs.deliver == NULL)
		return FC_OK;
	/* Certificates recorded from now on carry the new chain's id; those
	 * recorded before keep theirs (a pending delivery of a certificate
	 * the old intermediate signed still goes out with the old chain). */
	result = inv_chain_put(rs.db, chain_pem, &id);
	if (result != FC_OK) {
		/* Recorded without a chain id, new certificates go out with
		 * the chain current at delivery. */
		log_error("reload: cannot store the new chain (%s); new "
		    "certificates are delivered with the current chain",
		    fc_strerror(result));
		id = 0;
	}
	pthread_mutex_lock(&hub_mx);
	rs.chain_id = id;
	pthread_mutex_unlock(&hub_mx);
	renew_chain_set(rs.renew, id);
	return deliver_chain_set(rs.deliver, chain_pem);
}

void
renew_service_stop(void)
{
	int fd;

	pthread_mutex_lock(&hub_mx);
	rs.up = 0;
	pthread_mutex_unlock(&hub_mx);
	if (rs.pump_id != 0)
		sched_timeout_cancel(rs.pump_id);
	rs.pump_id = 0;
	for (fd = 0; fd < FD_SETSIZE; fd++)
		if (rs.watched[fd] != 0) {
			(void)sched_fd_watch(fd, 0, NULL, NULL);
			rs.watched[fd] = 0;
		}
	if (rs.job_renew >= 0)
		sched_job_remove(rs.job_renew);
	if (rs.job_deliver >= 0)
		sched_job_remove(rs.job_deliver);
	rs.job_renew = rs.job_deliver = -1;
	deliver_close(rs.deliver);
	rs.deliver = NULL;
	renew_close(rs.renew);
	rs.renew = NULL;
	ca_free(rs.ca);
	rs.ca = NULL;
}
