/*
 * bench_hub.c — how many hub calls per second the client sustains (twin
 * GETs against fleetcert-hubsim on loopback, quotas off), with N calls
 * kept in flight on one thread. Also writes a curl config for the same
 * calls (--curl-config FILE) so that bench/hub.sh can measure curl's own
 * rate against the same simulator in the same run.
 *
 * usage: bench_hub CONNFILE CAFILE DEVICE-ID CALLS INFLIGHT [client|curl]
 * "curl" runs curl(1) -Z over the same calls (one config file, one
 * process) and reports its rate and CPU time the same way, so that the
 * two figures come from the same simulator in the same run.
 */
#include "fc_build.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "hub_int.h"
#include "log.h"

static long ndone, nok;

static void
done(struct hub_result *res, void *arg)
{
	ndone++;
	if (res->outcome == HUB_DONE)
		nok++;
	hub_result_free(res);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One URL + headers per call, for `curl -Z --parallel-max INFLIGHT -K`. */
static int
curl_config(const char *path, const struct hub_conn *c, const char *ca,
    const char *id, long calls)
{
	char *tok = NULL, *enc = hub_pct_encode(id);
	FILE *f;
	int fd;

	if (hub_sas_token(c->host, c->policy, c->key, c->keylen,
	    (int64_t)time(NULL) + 3600, &tok) != FC_OK || enc == NULL)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL)
		return -1;
	fprintf(f, "cacert = \"%s\"\nhttp1.1\nsilent\nno-progress-meter\nparallel\n"
	    "header = \"Authorization: %s\"\nheader = \"Accept: "
	    "application/json\"\n", ca, tok);
	for (long i = 0; i < calls; i++)
		fprintf(f, "url = \"https://%s/twins/%s?api-version=%s\"\n",
		    c->host, enc, HUB_API_VERSION);
	fclose(f);
	fc_secret_free(tok, strlen(tok));
	free(enc);
	return 0;
}

static double
cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 +
	    (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

/* curl -Z --parallel-max INFLIGHT -K CONFIG, timed; its CPU from wait4. */
static int
run_curl(const char *cfgpath, long calls, long inflight)
{
	char pmax[16];
	struct rusage ru;
	double t0, t1;
	pid_t pid;
	int st = 0;

	snprintf(pmax, sizeof(pmax), "%ld", inflight > 300 ? 300 : inflight);
	t0 = now_s();
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		execlp("curl", "curl", "--parallel-max", pmax, "-K", cfgpath,
		    (char *)NULL);
		_exit(127);
	}
	if (wait4(pid, &st, 0, &ru) < 0)
		return 1;
	t1 = now_s();
	printf("curl: calls=%ld inflight=%ld seconds=%.3f rate=%.0f "
	    "cpu_us_per_call=%.1f\n", calls, inflight, t1 - t0,
	    (double)calls / (t1 - t0), cpu_s(&ru) * 1e6 / (double)calls);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct hub_opts o;
	struct hub *h = NULL;
	struct hub_conn c;
	struct hub_req *r = NULL;
	char err[256], *conn = NULL;
	size_t len = 0;
	long calls, inflight, submitted = 0;
	double t0, t1;
	struct rusage ru0, ru1;
	int t;

	if (argc < 6) {
		fprintf(stderr, "usage: bench_hub CONNFILE CAFILE DEVICE-ID "
		    "CALLS INFLIGHT [client|curl]\n");
		return 2;
	}
	log_init("bench_hub", LOG_LVL_WARN);
	calls = atol(argv[4]);
	inflight = atol(argv[5]);
	if (calls < 1 || inflight < 1 || inflight > 1024)
		fatal("bad CALLS or INFLIGHT");
	if (cfg_secret_read(argv[1], &conn, &len, err, sizeof(err)) != FC_OK)
		fatal("%s", err);
	if (argc >= 7 && strcmp(argv[6], "curl") == 0) {
		char cfgpath[] = "/tmp/bench_hub.curl.XXXXXX";
		int fd = mkstemp(cfgpath), rc;

		if (fd < 0)
			fatal("mkstemp failed");
		close(fd);
		if (hub_conn_parse(conn, &c, err, sizeof(err)) != FC_OK)
			fatal("%s", err);
		if (curl_config(cfgpath, &c, argv[2], argv[3], calls) != 0)
			fatal("cannot write %s", cfgpath);
		hub_conn_clear(&c);
		fc_secret_free(conn, len + 1);
		rc = run_curl(cfgpath, calls, inflight);
		unlink(cfgpath);
		return rc;
	}
	hub_opts_default(&o);
	o.ca_file = argv[2];
	o.max_in_flight = (int)inflight;
	if (hub_open_string("bench", conn, &o, &h) != FC_OK)
		fatal("cannot open the hub");
	fc_secret_free(conn, len + 1);

	/* Warm-up: open the connections once. */
	for (long i = 0; i < inflight; i++) {
		if (hub_req_twin_get(argv[3], &r) != FC_OK)
			fatal("bad device id");
		hub_submit(h, r, done, NULL);
	}
	hub_run(h);
	ndone = nok = 0;

	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_s();
	while (ndone < calls) {
		while (submitted < calls &&
		    submitted - ndone < inflight) {
			hub_req_twin_get(argv[3], &r);
			hub_submit(h, r, done, NULL);
			submitted++;
		}
		hub_perform(h, &t);
		if (submitted < calls && submitted - ndone < inflight)
			continue;
		if (ndone < calls && hub_pending(h) > 0)
			hub_poll(h, t);
	}
	t1 = now_s();
	getrusage(RUSAGE_SELF, &ru1);
	printf("client: calls=%ld inflight=%ld seconds=%.3f rate=%.0f "
	    "cpu_us_per_call=%.1f ok=%ld\n", calls, inflight, t1 - t0,
	    (double)calls / (t1 - t0), (cpu_s(&ru1) - cpu_s(&ru0)) * 1e6 /
	    (double)calls, nok);
	hub_close(h);
	return nok == calls ? 0 : 1;
}
