/*
 * config.c — parser for fleetcertd.conf (INI). Runs in the main process at
 * start-up and on reload; allocates a fresh struct cfg each time. Every error
 * names file, line, section and key; the first error stops the parse.
 */
#include "fc_build.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CFG_LINE_MAX	4096	/* longer lines are an error, not truncated */

enum key_type { K_STR, K_PATH, K_INT, K_BOOL, K_LEVEL };

struct key_def {
	const char	*section;	/* "hub" covers [hub] and [hub NAME] */
	const char	*key;
	enum key_type	 type;
	size_t		 off;		/* in struct cfg, or struct cfg_hub */
	long		 min, max;
};

#define C(f) offsetof(struct cfg, f)
#define H(f) offsetof(struct cfg_hub, f)

static const struct key_def keys[] = {
	{ "daemon", "log_level", K_LEVEL, C(log_level), 0, 3 },
	{ "daemon", "lock_file", K_PATH, C(lock_path), 0, 0 },
	{ "database", "path", K_PATH, C(db_path), 0, 0 },
	{ "ca", "certificate", K_PATH, C(ca_certificate), 0, 0 },
	{ "ca", "chain", K_PATH, C(ca_chain), 0, 0 },
	{ "ca", "key", K_STR, C(ca_key), 0, 0 },
	{ "ca", "key_pin_file", K_PATH, C(ca_key_pin_file), 0, 0 },
	{ "ca", "key_passphrase_file", K_PATH, C(ca_key_passphrase_file), 0, 0 },
	{ "ca", "validity_days", K_INT, C(validity_days), 1, 3650 },
	{ "ca", "crl_path", K_PATH, C(crl_path), 0, 0 },
	{ "ca", "crl_validity_hours", K_INT, C(crl_validity_hours), 1, 8760 },
	{ "hub", "connection_string_file", K_PATH, H(connection_string_file), 0, 0 },
	{ "hub", "ca_file", K_PATH, H(ca_file), 0, 0 },
	{ "hub", "rate_per_second", K_INT, H(rate_per_second), 1, 10000 },
	{ "hub", "registry_per_minute", K_INT, H(registry_per_minute), 1, 1000000 },
	{ "renewal", "interval_seconds", K_INT, C(renew_interval_seconds), 1, 86400 },
	{ "renewal", "renew_before_days", K_INT, C(renew_before_days), 1, 3650 },
	{ "renewal", "jitter_days", K_INT, C(jitter_days), 0, 3650 },
	{ "renewal", "rekey", K_BOOL, C(rekey), 0, 1 },
	{ "delivery", "method_timeout_seconds", K_INT, C(method_timeout_seconds), 5, 300 },
	{ "delivery", "max_in_flight", K_INT, C(max_in_flight), 1, 1024 },
	{ "delivery", "retry_initial_seconds", K_INT, C(retry_initial_seconds), 1, 86400 },
	{ "delivery", "retry_max_seconds", K_INT, C(retry_max_seconds), 1, 86400 },
	{ "enrol", "listen", K_STR, C(enrol_listen), 0, 0 },
	{ "enrol", "tls_certificate", K_PATH, C(enrol_tls_certificate), 0, 0 },
	{ "enrol", "tls_key", K_PATH, C(enrol_tls_key), 0, 0 },
	{ "enrol", "challenge_ttl_seconds", K_INT, C(challenge_ttl_seconds), 10, 3600 },
	{ "enrol", "allow_new_key", K_BOOL, C(allow_new_key), 0, 1 },
	{ "enrol", "per_serial_per_hour", K_INT, C(per_serial_per_hour), 1, 3600 },
	{ "enrol", "per_address_per_minute", K_INT, C(per_address_per_minute), 1, 100000 },
	{ "api", "listen", K_STR, C(api_listen), 0, 0 },
	{ "api", "tokens_file", K_PATH, C(api_tokens_file), 0, 0 },
	{ "api", "allow_remote", K_BOOL, C(api_allow_remote), 0, 1 },
	{ "sweep", "dropin_dir", K_PATH, C(dropin_dir), 0, 0 },
	{ "sweep", "api_token_file", K_PATH, C(sweep_token_file), 0, 0 },
	{ "import", "manifest_signer", K_PATH, C(manifest_signer), 0, 0 },
};

struct parser {
	const char	*file;
	struct cfg	*cfg;
	struct cfg_hub	*hub;		/* current [hub] section, or NULL */
	char		 section[FC_NAME_MAX + 8];
	int		 line;
	unsigned char	 seen[FC_ARRAY_LEN(keys)];	/* for non-hub keys */
	unsigned char	 hub_seen[64][FC_ARRAY_LEN(keys)];
	char		 sections_seen[16][16];
	size_t		 nsections_seen;
	char		*err;
	size_t		 errlen;
};

static enum fc_err
perr(struct parser *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum fc_err
perr(struct parser *p, const char *key, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key != NULL)
		snprintf(p->err, p->errlen, "%s:%d: [%s] %s: %s", p->file,
		    p->line, p->section, key, msg);
	else if (p->section[0] != '\0')
		snprintf(p->err, p->errlen, "%s:%d: [%s]: %s", p->file,
		    p->line, p->section, msg);
	else
		snprintf(p->err, p->errlen, "%s:%d: %s", p->file, p->line, msg);
	return FC_EINVAL;
}

static void
cfg_defaults(struct cfg *c)
{
	c->log_level = LOG_LVL_INFO;
	c->validity_days = 365;
	c->crl_validity_hours = 48;
	c->renew_interval_seconds = 60;
	c->renew_before_days = 30;
	c->jitter_days = 7;
	c->rekey = 0;
	c->method_timeout_seconds = 30;
	c->max_in_flight = 32;
	c->retry_initial_seconds = 30;
	c->retry_max_seconds = 3600;
	c->challenge_ttl_seconds = 300;
	c->allow_new_key = 0;
	c->per_serial_per_hour = 10;
	c->per_address_per_minute = 600;
}

static enum fc_err
cfg_set_string_default(char **slot, const char *v)
{
	if (*slot != NULL)
		return FC_OK;
	*slot = strdup(v);
	return *slot == NULL ? FC_ENOMEM : FC_OK;
}

/* Checks that s is well-formed UTF-8 (no overlongs, no surrogates). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len, k;
		unsigned int cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else
			return 0;
		if (i + len > n)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

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

static enum fc_err
open_section(struct parser *p, char *name)
{
	char *sp;
	size_t i;

	name = trim(name);
	snprintf(p->section, sizeof(p->section), "%s", name);
	p->hub = NULL;
	if (strncmp(name, "hub", 3) == 0 && (name[3] == '\0' || name[3] == ' ' ||
	    name[3] == '\t')) {
		struct cfg_hub *nh;
		const char *hname = trim(name + 3);
		if (hname[0] != '\0' && !fc_device_id_valid(hname))
			return perr(p, NULL, "hub name \"%s\" is not valid", hname);
		if (strlen(hname) >= FC_NAME_MAX)
			return perr(p, NULL, "hub name is too long");
		if (cfg_hub_find(p->cfg, hname) != NULL)
			return perr(p, NULL, "duplicate section");
		if (p->cfg->nhubs >= 64)
			return perr(p, NULL, "too many hub sections (64 at most)");
		nh = realloc(p->cfg->hubs, (p->cfg->nhubs + 1) * sizeof(*nh));
		if (nh == NULL)
			return FC_ENOMEM;
		p->cfg->hubs = nh;
		p->hub = &nh[p->cfg->nhubs];
		memset(p->hub, 0, sizeof(*p->hub));
		p->hub->name = strdup(hname);
		if (p->hub->name == NULL)
			return FC_ENOMEM;
		p->hub->rate_per_second = 10;
		p->hub->registry_per_minute = 100;
		p->hub->line = p->line;
		p->cfg->nhubs++;
		memset(p->hub_seen[p->cfg->nhubs - 1], 0, sizeof(p->hub_seen[0]));
		return FC_OK;
	}
	sp = strpbrk(name, " \t");
	if (sp != NULL)
		return perr(p, NULL, "unknown section");
	for (i = 0; i < FC_ARRAY_LEN(keys); i++)
		if (strcmp(keys[i].section, name) == 0)
			break;
	if (i == FC_ARRAY_LEN(keys))
		return perr(p, NULL, "unknown section");
	for (i = 0; i < p->nsections_seen; i++)
		if (strcmp(p->sections_seen[i], name) == 0)
			return perr(p, NULL, "duplicate section");
	if (p->nsections_seen < FC_ARRAY_LEN(p->sections_seen))
		snprintf(p->sections_seen[p->nsections_seen++],
		    sizeof(p->sections_seen[0]), "%s", name);
	return FC_OK;
}

static enum fc_err
set_key(struct parser *p, char *key, char *val)
{
	const struct key_def *kd = NULL;
	unsigned char *seen;
	char *base, **sp, *end;
	int *ip;
	size_t i;

	key = trim(key);
	val = trim(val);
	if (p->section[0] == '\0')
		return perr(p, key, "key outside of any section");
	for (i = 0; i < FC_ARRAY_LEN(keys); i++) {
		if (strcmp(keys[i].key, key) != 0)
			continue;
		if ((p->hub != NULL) != (strcmp(keys[i].section, "hub") == 0))
			continue;
		if (p->hub == NULL && strcmp(keys[i].section, p->section) != 0)
			continue;
		kd = &keys[i];
		break;
	}
	if (kd == NULL)
		return perr(p, key, "unknown key");
	seen = p->hub != NULL ? &p->hub_seen[p->hub - p->cfg->hubs][i] : &p->seen[i];
	if (*seen)
		return perr(p, key, "duplicate key");
	*seen = 1;
	base = p->hub != NULL ? (char *)p->hub : (char *)p->cfg;

	switch (kd->type) {
	case K_STR:
	case K_PATH:
		sp = (char **)(void *)(base + kd->off);
		if (kd->type == K_PATH && val[0] != '\0' && val[0] != '/' &&
		    strchr(val, '/') != NULL)
			return perr(p, key, "path \"%s\" must be absolute", val);
		free(*sp);
		*sp = NULL;
		if (val[0] == '\0')
			break;		/* empty: unset */
		*sp = strdup(val);
		if (*sp == NULL)
			return FC_ENOMEM;
		break;
	case K_INT: {
		long v;
		ip = (int *)(void *)(base + kd->off);
		if (val[0] == '\0')
			return perr(p, key, "value is empty");
		errno = 0;
		v = strtol(val, &end, 10);
		if (*end != '\0' || end == val || errno == ERANGE)
			return perr(p, key, "\"%s\" is not an integer", val);
		if (v < kd->min || v > kd->max)
			return perr(p, key, "%ld is out of range (%ld-%ld)", v,
			    kd->min, kd->max);
		*ip = (int)v;
		break;
	}
	case K_BOOL:
		ip = (int *)(void *)(base + kd->off);
		if (strcmp(val, "true") == 0 || strcmp(val, "yes") == 0 ||
		    strcmp(val, "1") == 0)
			*ip = 1;
		else if (strcmp(val, "false") == 0 || strcmp(val, "no") == 0 ||
		    strcmp(val, "0") == 0)
			*ip = 0;
		else
			return perr(p, key, "\"%s\" is not a boolean (true or false)", val);
		break;
	case K_LEVEL: {
		int lvl;
		ip = (int *)(void *)(base + kd->off);
		lvl = log_level_parse(val);
		if (lvl < 0)
			return perr(p, key,
			    "\"%s\" is not one of error, warn, info, debug", val);
		*ip = lvl;
		break;
	}
	}
	return FC_OK;
}

/* Strips a comment: ';' or '#' at the start, or after whitespace. */
static void
strip_comment(char *s)
{
	char *q;

	for (q = s; *q != '\0'; q++) {
		if ((*q == ';' || *q == '#') &&
		    (q == s || q[-1] == ' ' || q[-1] == '\t')) {
			*q = '\0';
			return;
		}
	}
}

static enum fc_err
parse_line(struct parser *p, char *line, size_t len)
{
	char *s, *eq;

	if (memchr(line, '\0', len) != NULL)
		return perr(p, NULL, "NUL byte in line");
	if (!utf8_valid((unsigned char *)line, len))
		return perr(p, NULL, "invalid UTF-8");
	s = trim(line);
	if (*s == '\0' || *s == ';' || *s == '#')
		return FC_OK;
	if (*s == '[') {
		char *close = strchr(s, ']');
		if (close == NULL)
			return perr(p, NULL, "unterminated section header");
		*close = '\0';
		strip_comment(close + 1);
		if (*trim(close + 1) != '\0')
			return perr(p, NULL, "text after section header");
		return open_section(p, s + 1);
	}
	eq = strchr(s, '=');
	if (eq == NULL)
		return perr(p, NULL, "expected \"key = value\"");
	*eq = '\0';
	strip_comment(eq + 1);
	if (*trim(s) == '\0')
		return perr(p, NULL, "empty key");
	return set_key(p, s, eq + 1);
}

static int
key_seen(const struct parser *p, const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < FC_ARRAY_LEN(keys); i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].key, key) == 0)
			return p->seen[i];
	return 0;
}

/* Checks that need the whole file: cross-key ranges and required keys. A
 * default that conflicts with a value the file sets is clamped to it; two
 * values the file sets that conflict are an error. */
static enum fc_err
cfg_check(struct parser *p)
{
	struct cfg *c = p->cfg;
	size_t i;

	p->line = 0;
	if (!key_seen(p, "renewal", "jitter_days") &&
	    c->jitter_days > c->renew_before_days)
		c->jitter_days = c->renew_before_days;
	if (!key_seen(p, "delivery", "retry_initial_seconds") &&
	    c->retry_initial_seconds > c->retry_max_seconds)
		c->retry_initial_seconds = c->retry_max_seconds;
	if (!key_seen(p, "delivery", "retry_max_seconds") &&
	    c->retry_initial_seconds > c->retry_max_seconds)
		c->retry_max_seconds = c->retry_initial_seconds;
	if (c->jitter_days > c->renew_before_days) {
		snprintf(p->section, sizeof(p->section), "renewal");
		return perr(p, "jitter_days", "%d exceeds renew_before_days (%d)",
		    c->jitter_days, c->renew_before_days);
	}
	if (c->retry_initial_seconds > c->retry_max_seconds) {
		snprintf(p->section, sizeof(p->section), "delivery");
		return perr(p, "retry_initial_seconds",
		    "%d exceeds retry_max_seconds (%d)",
		    c->retry_initial_seconds, c->retry_max_seconds);
	}
	for (i = 0; i < c->nhubs; i++) {
		if (c->hubs[i].connection_string_file == NULL) {
			p->line = c->hubs[i].line;
			snprintf(p->section, sizeof(p->section), "%s%s%s", "hub",
			    c->hubs[i].name[0] ? " " : "", c->hubs[i].name);
			return perr(p, "connection_string_file", "missing");
		}
	}
	if (c->enrol_listen != NULL && (c->enrol_tls_certificate == NULL ||
	    c->enrol_tls_key == NULL)) {
		snprintf(p->section, sizeof(p->section), "enrol");
		return perr(p, c->enrol_tls_certificate == NULL ?
		    "tls_certificate" : "tls_key",
		    "missing (required when listen is set)");
	}
	return FC_OK;
}

enum fc_err
cfg_load(const char *file, struct cfg **out, char *err, size_t errlen)
{
	struct parser *p = NULL;
	struct cfg *c = NULL;
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	enum fc_err result = FC_ENOMEM;

	p = calloc(1, sizeof(*p));
	c = calloc(1, sizeof(*c));
	if (p == NULL || c == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		goto out;
	}
	p->file = file;
	p->cfg = c;
	p->err = err;
	p->errlen = errlen;
	cfg_defaults(c);
	c->file = strdup(file);
	if (c->file == NULL)
		goto out;

	f = fopen(file, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
		result = FC_EIO;
		goto out;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		p->line++;
		if (n > CFG_LINE_MAX) {
			result = perr(p, NULL, "line longer than %d bytes",
			    CFG_LINE_MAX);
			goto out;
		}
		result = parse_line(p, line, (size_t)n);
		if (result != FC_OK)
			goto out;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", file, strerror(errno));
		result = FC_EIO;
		goto out;
	}
	result = cfg_set_string_default(&c->db_path,
	    LOCALSTATEDIR "/lib/fleetcert/fleetcert.db");
	if (result == FC_OK)
		result = cfg_set_string_default(&c->api_listen, "127.0.0.1:8450");
	if (result != FC_OK)
		goto out;
	result = cfg_check(p);
	if (result != FC_OK)
		goto out;
	*out = c;
	c = NULL;
out:
	if (result == FC_ENOMEM)
		snprintf(err, errlen, "%s: out of memory", file);
	free(line);
	if (f != NULL)
		fclose(f);
	cfg_free(c);
	free(p);
	return result;
}

void
cfg_free(struct cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < FC_ARRAY_LEN(keys); i++)
		if ((keys[i].type == K_STR || keys[i].type == K_PATH) &&
		    strcmp(keys[i].section, "hub") != 0)
			free(*(char **)(void *)((char *)c + keys[i].off));
	for (i = 0; i < c->nhubs; i++) {
		free(c->hubs[i].name);
		free(c->hubs[i].connection_string_file);
		free(c->hubs[i].ca_file);
	}
	free(c->hubs);
	free(c->file);
	free(c);
}

const struct cfg_hub *
cfg_hub_find(const struct cfg *cfg, const char *name)
{
	size_t i;

	if (name == NULL)
		name = "";
	for (i = 0; i < cfg->nhubs; i++)
		if (strcmp(cfg->hubs[i].name, name) == 0)
			return &cfg->hubs[i];
	return NULL;
}

enum fc_err
cfg_secret_read(const char *path, char **out, size_t *len, char *err,
    size_t errlen)
{
	const char *credir = getenv("CREDENTIALS_DIRECTORY");
	char full[PATH_MAX];
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	enum fc_err result;
	int fd;

	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "secret file not configured");
		return FC_EINVAL;
	}
	if (strchr(path, '/') == NULL && credir != NULL)
		snprintf(full, sizeof(full), "%s/%s", credir, path);
	else
		snprintf(full, sizeof(full), "%s", path);
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open secret file: %s", full,
		    strerror(errno));
		return FC_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: secret is not a regular file", full);
		return FC_EINVAL;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		close(fd);
		snprintf(err, errlen,
		    "%s: secret file is accessible to others (mode %03o); "
		    "chmod o-rwx it", full, (unsigned)(st.st_mode & 0777));
		return FC_EPERM;
	}
	close(fd);
	result = fc_file_read(full, 64 * 1024, &buf, &n);
	if (result != FC_OK) {
		snprintf(err, errlen, "%s: cannot read secret file (%s)", full,
		    fc_strerror(result));
		return result;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
		buf[n - 1] = '\0';
		n--;
	}
	*out = buf;
	*len = n;
	return FC_OK;
}
