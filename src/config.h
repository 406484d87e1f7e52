/*
 * config.h — fleetcertd.conf: the typed, range-checked configuration of
 * DESIGN.md "Configuration". Parsed once at start-up (and on SIGHUP into a
 * new struct); read-only afterwards, so any thread may read it.
 */
#ifndef FC_CONFIG_H
#define FC_CONFIG_H

#include <stddef.h>

#include "fc.h"

struct cfg_hub {
	char	*name;			/* "" for the default [hub] */
	char	*connection_string_file;
	char	*ca_file;		/* NULL: system trust only */
	int	 rate_per_second;
	int	 registry_per_minute;
	int	 line;			/* where the section starts */
};

struct cfg {
	char	*file;			/* the path it was read from */

	/* [daemon] */
	int	 log_level;		/* enum log_level */
	char	*lock_path;		/* NULL: <database path>.lock */

	/* [database] */
	char	*db_path;

	/* [ca] */
	char	*ca_certificate;
	char	*ca_chain;		/* NULL: the intermediate alone */
	char	*ca_key;		/* PEM path or pkcs11: URI */
	char	*ca_key_pin_file;	/* PKCS#11 user PIN */
	char	*ca_key_passphrase_file; /* encrypted PEM key */
	int	 validity_days;
	char	*crl_path;
	int	 crl_validity_hours;

	/* [hub] and [hub NAME] */
	struct cfg_hub *hubs;
	size_t	 nhubs;

	/* [renewal] */
	int	 renew_interval_seconds;
	int	 renew_before_days;
	int	 jitter_days;
	int	 rekey;

	/* [delivery] */
	int	 method_timeout_seconds;
	int	 max_in_flight;
	int	 retry_initial_seconds;
	int	 retry_max_seconds;

	/* [enrol] */
	char	*enrol_listen;		/* NULL or "": no enrolment listener */
	char	*enrol_tls_certificate;
	char	*enrol_tls_key;
	int	 challenge_ttl_seconds;
	int	 allow_new_key;
	int	 per_serial_per_hour;
	int	 per_address_per_minute;

	/* [api] */
	char	*api_listen;		/* host:port or unix:/path */
	char	*api_tokens_file;
	int	 api_allow_remote;	/* a non-loopback TCP address */

	/* [sweep] */
	char	*dropin_dir;
	char	*sweep_token_file;	/* admin token: --sweep asks the daemon */

	/* [import] */
	char	*manifest_signer;	/* PEM certificate of the manifest signer */
};

/*
 * Reads and checks FILE. On success *out is a new struct (cfg_free it).
 * On failure returns FC_EINVAL (or FC_EIO/FC_ENOMEM) and writes one message
 * of the form "FILE:LINE: [section] key: what is wrong" into err (errlen
 * bytes); nothing is allocated.
 */
enum fc_err cfg_load(const char *file, struct cfg **out, char *err,
    size_t errlen);
void cfg_free(struct cfg *cfg);

/* The hub section named name ("" or NULL = the default hub); NULL if none. */
const struct cfg_hub *cfg_hub_find(const struct cfg *cfg, const char *name);

/*
 * Reads a secret file. A path without '/' is looked up in
 * $CREDENTIALS_DIRECTORY (systemd LoadCredential=) when that is set.
 * Refuses a file that others can read, or that is not a regular file, with a
 * message in err that names the path (never the content). Trailing newlines
 * are stripped. *out is NUL-terminated; free it with fc_secret_free(*out,
 * *len + 1).
 */
enum fc_err cfg_secret_read(const char *path, char **out, size_t *len,
    char *err, size_t errlen);

#endif
