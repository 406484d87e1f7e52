/*
 * cfgcheck.c — checks of a parsed configuration beyond the INI syntax:
 * listen addresses and secret files. Main thread, at start-up, on reload and
 * for --check-config. Reads the configuration file again only to find the
 * line of a key for an error message; opens secret files only to check them
 * (cfg_secret_read) and wipes what it read at once.
 */
#include "fc_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgcheck.h"
#include "log.h"

#define LINE_SCAN_MAX	4096

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/*
 * The line of key in section (as written in messages: "hub", "hub NAME"),
 * 0 when not found. The file parsed already, so a simple scan suffices.
 */
static int
key_line(const char *file, const char *section, const char *key)
{
	char buf[LINE_SCAN_MAX + 2], cur[160] = "";
	FILE *f;
	int line = 0, found = 0;

	f = fopen(file, "r");
	if (f == NULL)
		return 0;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		char *s = trim(buf), *eq;
		line++;
		if (*s == '[') {
			char *close = strchr(s, ']'), *name;
			if (close == NULL)
				continue;
			*close = '\0';
			name = trim(s + 1);
			if (strncmp(name, "hub", 3) == 0 && name[3] != '\0')
				snprintf(cur, sizeof(cur), "hub %s",
				    trim(name + 3));
			else
				snprintf(cur, sizeof(cur), "%s", name);
			continue;
		}
		eq = strchr(s, '=');
		if (eq == NULL || strcmp(cur, section) != 0)
			continue;
		*eq = '\0';
		if (strcmp(trim(s), key) == 0) {
			found = line;
			break;
		}
	}
	fclose(f);
	return found;
}

static enum fc_err
kerr(const struct cfg *cfg, const char *section, const char *key,
    enum fc_err code, char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s:%d: [%s] %s: %s", cfg->file,
	    key_line(cfg->file, section, key), section, key, msg);
	return code;
}

static int
host_name_valid(const char *h)
{
	size_t i, n = strlen(h);

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' &&
		    h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
		    h[i] == '-' || h[i] == '.'))
			return 0;
	return 1;
}

static int
fd_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255)
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
		    *s == '.'))
			return 0;
	return 1;
}

enum fc_err
cfgcheck_listen_parse(const char *s, int *loopback, char *why,
    size_t whylen)
{
	char host[256];
	const char *colon, *p;
	unsigned char addr[16];
	long port = 0;
	size_t hl;
	int lo = 0;

	/* Sockets handed over by systemd (fleetcertd.socket) or a parent:
	 * who may reach them is the socket unit's business. */
	if (strcmp(s, "systemd") == 0 || (strncmp(s, "systemd:", 8) == 0 &&
	    fd_name_valid(s + 8))) {
		*loopback = 1;
		return FC_OK;
	}
	if (strncmp(s, "fd:", 3) == 0) {
		for (p = s + 3; *p >= '0' && *p <= '9' && port <= 65535; p++)
			port = port * 10 + (*p - '0');
		if (p == s + 3 || *p != '\0' || port < 3 || port > 65535)
			goto bad;
		*loopback = 1;
		return FC_OK;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/' || strlen(s + 5) >= 108) {
			snprintf(why, whylen, "\"%s\": the socket path must be "
			    "absolute and shorter than 108 bytes", s);
			return FC_EINVAL;
		}
		*loopback = 1;
		return FC_OK;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		hl = (size_t)(close - s - 1);
		colon = close + 1;
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			goto bad;
		lo = strcmp(host, "::1") == 0;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET, host, addr) == 1)
			lo = addr[0] == 127;
		else if (host_name_valid(host))
			lo = strcmp(host, "localhost") == 0;
		else
			goto bad;
	}
	/* Port 0 binds any free port (tests); the port bound is logged. */
	p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		goto bad;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		port = port * 10 + (*p - '0');
	}
	if (port > 65535)
		goto bad;
	*loopback = lo;
	return FC_OK;
bad:
	snprintf(why, whylen, "\"%s\" is not HOST:PORT, [IPV6]:PORT, "
	    "unix:/PATH, systemd[:NAME] or fd:N", s);
	return FC_EINVAL;
}

/* Checks one secret file: exists (unless missing_ok), regular, not
 * readable by others. */
static enum fc_err
secret_check(const struct cfg *cfg, const char *section, const char *key,
    const char *path, int flags, char *err, size_t errlen)
{
	char why[512];
	char *buf = NULL;
	size_t len = 0;
	enum fc_err result;
	const char *credir = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;

	if (path == NULL)
		return FC_OK;
	if (flags & CFGCHECK_MISSING_OK) {
		char full[4096];
		if (strchr(path, '/') == NULL && credir != NULL)
			snprintf(full, sizeof(full), "%s/%s", credir, path);
		else
			snprintf(full, sizeof(full), "%s", path);
		if (lstat(full, &st) != 0 && errno == ENOENT) {
			log_warn("%s:%d: [%s] %s: %s does not exist (needed "
			    "at start-up)", cfg->file,
			    key_line(cfg->file, section, key), section, key, full);
			return FC_OK;
		}
	}
	result = cfg_secret_read(path, &buf, &len, why, sizeof(why));
	if (result != FC_OK)
		return kerr(cfg, section, key, result == FC_EPERM ? FC_EPERM :
		    FC_EINVAL, err, errlen, why);
	fc_secret_free(buf, len + 1);
	return FC_OK;
}

enum fc_err
cfgcheck_run(const struct cfg *cfg, int flags, char *err, size_t errlen)
{
	char why[512], section[160];
	enum fc_err result;
	size_t i;
	int lo;

	if (cfg->enrol_listen != NULL &&
	    cfgcheck_listen_parse(cfg->enrol_listen, &lo, why,
	    sizeof(why)) != FC_OK)
		return kerr(cfg, "enrol", "listen", FC_EINVAL, err, errlen, why);
	if (cfg->api_listen != NULL) {
		if (cfgcheck_listen_parse(cfg->api_listen, &lo, why,
		    sizeof(why)) != FC_OK)
			return kerr(cfg, "api", "listen", FC_EINVAL, err,
			    errlen, why);
		if (!lo && !cfg->api_allow_remote) {
			snprintf(why, sizeof(why), "\"%s\" is not a loopback "
			    "address (set allow_remote = true to allow it)",
			    cfg->api_listen);
			return kerr(cfg, "api", "listen", FC_EINVAL, err,
			    errlen, why);
		}
	}
	if (cfg->ca_key != NULL && strncmp(cfg->ca_key, "pkcs11:", 7) != 0) {
		if (cfg->ca_key[0] != '/' && strchr(cfg->ca_key, '/') != NULL)
			return kerr(cfg, "ca", "key", FC_EINVAL, err, errlen,
			    "a key file path must be absolute (or a pkcs11: URI)");
		result = secret_check(cfg, "ca", "key", cfg->ca_key, flags,
		    err, errlen);
		if (result != FC_OK)
			return result;
	}
	result = secret_check(cfg, "ca", "key_pin_file", cfg->ca_key_pin_file,
	    flags, err, errlen);
	if (result == FC_OK)
		result = secret_check(cfg, "ca", "key_passphrase_file",
		    cfg->ca_key_passphrase_file, flags, err, errlen);
	if (result == FC_OK && cfg->enrol_listen != NULL)
		result = secret_check(cfg, "enrol", "tls_key",
		    cfg->enrol_tls_key, flags, err, errlen);
	if (result == FC_OK)
		result = secret_check(cfg, "api", "tokens_file",
		    cfg->api_tokens_file, flags, err, errlen);
	for (i = 0; result == FC_OK && i < cfg->nhubs; i++) {
		snprintf(section, sizeof(section), "hub%s%s",
		    cfg->hubs[i].name[0] ? " " : "", cfg->hubs[i].name);
		result = secret_check(cfg, section, "connection_string_file",
		    cfg->hubs[i].connection_string_file, flags, err, errlen);
	}
	return result;
}
