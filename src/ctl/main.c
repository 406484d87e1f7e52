/*
 * main.c — fleetcertctl: global options, the optional config file, the
 * token file, and dispatch to one subcommand of ctl_cmds (cmds.c).
 *
 *	fleetcertctl [--api URL | --socket PATH] [--token-file FILE]
 *	    [--config FILE] [--json] COMMAND [ARGS]
 *
 * Precedence: command line, then the config file (--config, else
 * $FLEETCERTCTL_CONFIG, else ~/.config/fleetcert/fleetcertctl.conf, else
 * /etc/fleetcert/fleetcertctl.conf; each optional), then the default URL
 * http://127.0.0.1:8450.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "ctl.h"
#include "fc_build.h"

#define DEFAULT_API	"http://127.0.0.1:8450"

static void
usage(FILE *f)
{
	const struct ctl_cmd *c;

	fprintf(f,
	    "usage: fleetcertctl [--api URL | --socket PATH] [--token-file FILE]\n"
	    "                    [--config FILE] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "Operator client of the fleetcertd API.\n"
	    "  --api URL          API base URL (default " DEFAULT_API ")\n"
	    "  --socket PATH      talk HTTP over this Unix socket instead\n"
	    "  --token-file FILE  file holding the bearer token\n"
	    "  --config FILE      defaults (keys: api, socket, token_file)\n"
	    "  --json             print the API's JSON instead of tables\n"
	    "\n"
	    "Commands:\n");
	for (c = ctl_cmds; c->name != NULL; c++)
		fprintf(f, "  %s %s\n      %s\n", c->name, c->args, c->help);
	fprintf(f,
	    "\n"
	    "Exit status: 0 success, 1 failure (API error, connection,\n"
	    "a failed check), 2 usage error.\n");
}

static int
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst != NULL ? 0 : -1;
}

/* "key = value" lines; '#' and ';' comments. Unknown keys are errors. */
static int
config_read(struct ctl *c, const char *path, int must, int have_api,
    int have_socket, int have_token)
{
	char line[4096], *k, *v, *e;
	FILE *f = fopen(path, "r");
	int n = 0;

	if (f == NULL) {
		if (!must)
			return 0;
		fprintf(stderr, "fleetcertctl: %s: cannot open\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n++;
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		if (*k == '#' || *k == ';' || *k == '\n' || *k == '\0')
			continue;
		if ((v = strchr(k, '=')) == NULL)
			goto bad;
		for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		for (e = v + strlen(v); e > v && (e[-1] == '\n' ||
		    e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		if (strcmp(k, "api") == 0) {
			if (!have_api && !have_socket && set_str(&c->api, v))
				goto bad;
		} else if (strcmp(k, "socket") == 0) {
			if (!have_api && !have_socket && set_str(&c->socket, v))
				goto bad;
		} else if (strcmp(k, "token_file") == 0) {
			if (!have_token && set_str(&c->token_file, v))
				goto bad;
		} else
			goto bad;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr, "fleetcertctl: %s:%d: expected api, socket or "
	    "token_file = VALUE\n", path, n);
	fclose(f);
	return -1;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "api", required_argument, NULL, 'a' },
		{ "socket", required_argument, NULL, 's' },
		{ "token-file", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl c;
	const struct ctl_cmd *cmd;
	const char *conf = NULL, *home;
	char path[4096], err[512];
	int o, rc = CTL_USAGE, have_api = 0, have_socket = 0, have_token = 0;
	size_t n;

	memset(&c, 0, sizeof(c));
	/* '+': stop at the command; its options are its own. */
	while ((o = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		switch (o) {
		case 'a':
			have_api = 1;
			if (set_str(&c.api, optarg))
				goto out;
			break;
		case 's':
			have_socket = 1;
			if (set_str(&c.socket, optarg))
				goto out;
			break;
		case 't':
			have_token = 1;
			if (set_str(&c.token_file, optarg))
				goto out;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'h':
			usage(stdout);
			rc = CTL_OK;
			goto out;
		case 'V':
			printf("fleetcertctl %s\n", PACKAGE_VERSION);
			rc = CTL_OK;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (have_api && have_socket) {
		fprintf(stderr, "fleetcertctl: --api and --socket exclude each "
		    "other\n");
		goto out;
	}
	if (optind >= argc) {
		usage(stderr);
		goto out;
	}
	for (cmd = ctl_cmds; cmd->name != NULL; cmd++)
		if (strcmp(cmd->name, argv[optind]) == 0)
			break;
	if (cmd->name == NULL) {
		fprintf(stderr, "fleetcertctl: unknown command \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		goto out;
	}

	rc = CTL_FAIL;
	if (conf == NULL)
		conf = getenv("FLEETCERTCTL_CONFIG");
	if (conf != NULL) {
		if (config_read(&c, conf, 1, have_api, have_socket,
		    have_token) < 0)
			goto out;
	} else {
		home = getenv("HOME");
		n = 0;
		if (home != NULL)
			n = (size_t)snprintf(path, sizeof(path),
			    "%s/.config/fleetcert/fleetcertctl.conf", home);
		if (home != NULL && n < sizeof(path) && access(path, F_OK) == 0)
			conf = path;
		else if (access(SYSCONFDIR "/fleetcert/fleetcertctl.conf",
		    F_OK) == 0)
			conf = SYSCONFDIR "/fleetcert/fleetcertctl.conf";
		if (conf != NULL && config_read(&c, conf, 0, have_api,
		    have_socket, have_token) < 0)
			goto out;
	}
	if (c.socket != NULL && c.api == NULL && set_str(&c.api,
	    "http://localhost"))
		goto out;
	if (c.api == NULL && set_str(&c.api, DEFAULT_API))
		goto out;
	n = strlen(c.api);
	while (n > 0 && c.api[n - 1] == '/')
		c.api[--n] = '\0';
	if (c.token_file != NULL && cfg_secret_read(c.token_file, &c.token,
	    &c.token_len, err, sizeof(err)) != FC_OK) {
		fprintf(stderr, "fleetcertctl: token file: %s\n", err);
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* --json is accepted after the command too. */
	for (o = optind + 1; o < argc && strcmp(argv[o], "--") != 0; o++)
		if (strcmp(argv[o], "--json") == 0) {
			c.json = 1;
			memmove(&argv[o], &argv[o + 1],
			    (size_t)(argc - o) * sizeof(*argv));
			argc--;
			o--;
		}
	n = (size_t)optind;
	optind = 0;	/* GNU getopt: start afresh on the command's argv */
	rc = cmd->fn(&c, argc - (int)n, argv + n);
	if (c.curl != NULL)
		curl_easy_cleanup(c.curl);
	curl_global_cleanup();
out:
	if (c.token != NULL)
		fc_secret_free(c.token, c.token_len + 1);
	free(c.api);
	free(c.socket);
	free(c.token_file);
	return rc;
}
