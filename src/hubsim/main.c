/*
 * main.c — fleetcert-hubsim: wiring only. Parses the command line, loads
 * the TLS identity, policies, trust root, fixture or state file, starts the
 * HTTPS server, writes the bound port, then waits for SIGINT/SIGTERM while
 * saving the state file when it changed. `fleetcert-hubsim gen-fleet ...`
 * goes to genfleet.c.
 * Main thread; the server runs in libmicrohttpd's threads.
 */
#include "fc_build.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hubsim.h"
#include "log.h"

#define PEM_MAX		(64 * 1024)

static void
usage(FILE *f)
{
	fprintf(f,
"usage: fleetcert-hubsim --cert FILE --key FILE --policy NAME=KEY [options]\n"
"       fleetcert-hubsim gen-fleet --help\n"
"\n"
"A strict local Azure IoT Hub (service REST API over HTTPS) with simulated\n"
"devices that speak the fleetcert device protocol. For tests and demos.\n"
"\n"
"Server:\n"
"  --listen ADDR:PORT      IPv4 address and port (default 127.0.0.1:0;\n"
"                          port 0 picks a free port, see --port-file)\n"
"  --port-file FILE        write the bound port number to FILE\n"
"  --cert FILE, --key FILE TLS certificate (chain) and key, PEM\n"
"  --hub-name NAME         hub name; tokens for NAME.azure-devices.net are\n"
"                          accepted as well as for the Host the client used\n"
"  --policy NAME=KEY       shared access policy, KEY base64 (or NAME=@FILE to\n"
"                          read it from FILE); NAME is iothubowner, service,\n"
"                          registryRead or registryReadWrite; repeatable\n"
"Devices:\n"
"  --devices FILE          fixture JSON with the simulated devices\n"
"  --trust-root FILE       root CA the devices trust (and the hub's verified\n"
"                          CA for certificateAuthority devices)\n"
"  --state-file FILE       keep registry, twins and devices across restarts\n"
"Quotas:\n"
"  --tier S1|S2|S3         quota tier (default S1)\n"
"  --units N               number of units (default 1)\n"
"  --time-scale F          quota windows last 1/F of their length (default 1)\n"
"  --quotas on|off         enforce quotas (default on)\n"
"Control:\n"
"  --control-token FILE    bearer token for the /_sim/ control endpoints\n"
"                          (without it they are disabled)\n"
"  --call-log-size N       calls kept in the call log (default 100000)\n"
"  --log-level LEVEL       error, warn, info (default) or debug\n"
"  --help                  this text\n"
"\n"
"Connection string for clients:\n"
"  HostName=127.0.0.1:PORT;SharedAccessKeyName=NAME;SharedAccessKey=KEY\n"
"See fleetcert-hubsim(1) for the fixture format and the /_sim/ API.\n");
}

static char *
read_text(const char *path, const char *what)
{
	char *buf = NULL;

	if (fc_file_read(path, PEM_MAX, &buf, NULL) != FC_OK) {
		log_error("%s %s: cannot read (missing or over %d bytes)", what,
		    path, PEM_MAX);
		return NULL;
	}
	return buf;
}

static enum fc_err
policy_arg(struct sim *sim, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *spec = NULL, *key = NULL;
	enum fc_err e;
	size_t kl;

	if (eq == NULL || eq[1] != '@')
		return sas_policy_add(sim, arg);
	key = read_text(eq + 2, "policy key file");
	if (key == NULL)
		return FC_EIO;
	kl = strcspn(key, "\r\n");
	key[kl] = '\0';
	if (asprintf(&spec, "%.*s=%s", (int)(eq - arg), arg, key) < 0) {
		fc_secret_free(key, kl);
		return FC_ENOMEM;
	}
	e = sas_policy_add(sim, spec);
	fc_secret_free(spec, strlen(spec));
	fc_secret_free(key, kl);
	return e;
}

static X509_STORE *
trust_load(const char *path)
{
	X509_STORE *st = X509_STORE_new();

	if (st == NULL || X509_STORE_load_file(st, path) != 1) {
		log_openssl("trust root %s: cannot load", path);
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

static void
sim_free(struct sim *sim)
{
	size_t i;

	for (i = 0; i < sim->ndevs; i++)
		reg_dev_free(sim->devs[i]);
	free(sim->devs);
	free(sim->calls);
	X509_STORE_free(sim->trust);
	if (sim->control_token != NULL)
		fc_secret_free(sim->control_token, strlen(sim->control_token));
	OPENSSL_cleanse(sim->policies, sizeof(sim->policies));
	pthread_mutex_destroy(&sim->lock);
}

int
main(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_PORTFILE, O_CERT, O_KEY, O_HUB, O_POLICY,
	    O_DEVICES, O_TRUST, O_TIER, O_UNITS, O_SCALE, O_QUOTAS, O_STATE,
	    O_TOKEN, O_CALLLOG, O_LOGLEVEL, O_HELP };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "hub-name", required_argument, NULL, O_HUB },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "devices", required_argument, NULL, O_DEVICES },
		{ "trust-root", required_argument, NULL, O_TRUST },
		{ "tier", required_argument, NULL, O_TIER },
		{ "units", required_argument, NULL, O_UNITS },
		{ "time-scale", required_argument, NULL, O_SCALE },
		{ "quotas", required_argument, NULL, O_QUOTAS },
		{ "state-file", required_argument, NULL, O_STATE },
		{ "control-token", required_argument, NULL, O_TOKEN },
		{ "call-log-size", required_argument, NULL, O_CALLLOG },
		{ "log-level", required_argument, NULL, O_LOGLEVEL },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 }
	};
	static struct sim sim;
	const char *listen = "127.0.0.1:0", *port_file = NULL, *cert = NULL;
	const char *key = NULL, *devices = NULL, *trust = NULL, *token = NULL;
	char *cert_pem = NULL, *key_pem = NULL, addr[64], *colon, *end;
	long port, calllog = 100000;
	void *daemon = NULL;
	int c, bound = 0, rc = 1, lvl;
	sigset_t set;
	size_t i;

	if (argc > 1 && strcmp(argv[1], "gen-fleet") == 0)
		return genfleet_main(argc - 1, argv + 1);
	log_init("fleetcert-hubsim", LOG_LVL_INFO);
	pthread_mutex_init(&sim.lock, NULL);
	snprintf(sim.hub_name, sizeof(sim.hub_name), "fleetcert-sim");
	snprintf(sim.tier, sizeof(sim.tier), "S1");
	sim.units = 1;
	sim.time_scale = 1;
	sim.quotas_on = 1;
	srand48((long)time(NULL) ^ (long)getpid());

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen = optarg; break;
		case O_PORTFILE: port_file = optarg; break;
		case O_CERT: cert = optarg; break;
		case O_KEY: key = optarg; break;
		case O_HUB:
			if (strlen(optarg) == 0 || strlen(optarg) >= 64)
				fatal("--hub-name: 1-63 characters");
			snprintf(sim.hub_name, sizeof(sim.hub_name), "%s", optarg);
			break;
		case O_POLICY:
			if (policy_arg(&sim, optarg) != FC_OK)
				fatal("--policy: expected NAME=BASE64KEY or "
				    "NAME=@FILE with a known policy name");
			break;
		case O_DEVICES: devices = optarg; break;
		case O_TRUST: trust = optarg; break;
		case O_TIER:
			if (strcasecmp(optarg, "S1") != 0 &&
			    strcasecmp(optarg, "S2") != 0 &&
			    strcasecmp(optarg, "S3") != 0)
				fatal("--tier: S1, S2 or S3");
			snprintf(sim.tier, sizeof(sim.tier), "S%c", optarg[1]);
			break;
		case O_UNITS:
			sim.units = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || sim.units < 1 || sim.units > 200)
				fatal("--units: 1-200");
			break;
		case O_SCALE:
			sim.time_scale = strtod(optarg, &end);
			if (*end != '\0' || !(sim.time_scale >= 0.001) ||
			    sim.time_scale > 100000)
				fatal("--time-scale: a number from 0.001 to 100000");
			break;
		case O_QUOTAS:
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
				fatal("--quotas: on or off");
			sim.quotas_on = strcmp(optarg, "on") == 0;
			break;
		case O_STATE: sim.state_file = optarg; break;
		case O_TOKEN: token = optarg; break;
		case O_CALLLOG:
			calllog = strtol(optarg, &end, 10);
			if (*end != '\0' || calllog < 0 || calllog > 10000000)
				fatal("--call-log-size: 0-10000000");
			break;
		case O_LOGLEVEL:
			lvl = log_level_parse(optarg);
			if (lvl < 0)
				fatal("--log-level: error, warn, info or debug");
			log_set_level((enum log_level)lvl);
			break;
		case O_HELP:
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cert == NULL || key == NULL || sim.npolicies == 0) {
		usage(stderr);
		fprintf(stderr, "\n--cert, --key and at least one --policy are "
		    "required\n");
		return 2;
	}
	snprintf(addr, sizeof(addr), "%s", listen);
	colon = strrchr(addr, ':');
	if (colon == NULL)
		fatal("--listen: expected ADDR:PORT");
	*colon = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		fatal("--listen: bad port");

	if (token != NULL) {
		size_t n;
		sim.control_token = read_text(token, "control token");
		if (sim.control_token == NULL)
			goto out;
		n = strcspn(sim.control_token, "\r\n");
		sim.control_token[n] = '\0';
		if (n < 16)
			fatal("control token %s: at least 16 characters", token);
	}
	sim.calls_cap = (size_t)calllog;
	if (calllog > 0) {
		sim.calls = calloc(sim.calls_cap, sizeof(*sim.calls));
		if (sim.calls == NULL)
			fatal("out of memory for the call log");
	}
	if (trust != NULL && (sim.trust = trust_load(trust)) == NULL)
		goto out;
	if (sim.state_file != NULL && access(sim.state_file, F_OK) == 0) {
		if (state_load(&sim, sim.state_file) != FC_OK)
			goto out;
		log_info("state restored from %s", sim.state_file);
	} else if (devices != NULL && fixture_load(&sim, devices) != FC_OK) {
		goto out;
	}
	quota_init(&sim);
	/* Devices marked online connect now. */
	for (i = 0; i < sim.ndevs; i++)
		if (sim.devs[i]->sd != NULL && sim.devs[i]->sd->online)
			dev_set_online(&sim, sim.devs[i], 1);

	cert_pem = read_text(cert, "TLS certificate");
	key_pem = read_text(key, "TLS key");
	if (cert_pem == NULL || key_pem == NULL)
		goto out;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	daemon = http_start(&sim, addr, (int)port, cert_pem, key_pem, &bound);
	fc_secret_free(key_pem, strlen(key_pem));
	key_pem = NULL;
	if (daemon == NULL)
		goto out;
	if (port_file != NULL) {
		char num[16];
		int n = snprintf(num, sizeof(num), "%d\n", bound);
		if (fc_file_write_atomic(port_file, num, (size_t)n, 0644) != FC_OK) {
			log_error("port file %s: cannot write", port_file);
			goto out;
		}
	}
	log_info("hub %s listening on https://%s:%d (%zu devices, tier %s, "
	    "quotas %s)", sim.hub_name, addr, bound, sim.ndevs, sim.tier,
	    sim.quotas_on ? "on" : "off");
	for (;;) {
		struct timespec ts = { 1, 0 };
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (sim.state_file != NULL) {
			pthread_mutex_lock(&sim.lock);
			if (sim.dirty)
				(void)state_save(&sim, sim.state_file);
			pthread_mutex_unlock(&sim.lock);
		}
	}
	log_info("shutting down");
	rc = 0;
out:
	http_stop(daemon);
	if (sim.state_file != NULL && rc == 0 && state_save(&sim,
	    sim.state_file) != FC_OK)
		rc = 1;
	if (key_pem != NULL)
		fc_secret_free(key_pem, strlen(key_pem));
	free(cert_pem);
	sim_free(&sim);
	return rc;
}
