/*
 * cfgcheck.h — the checks of a loaded configuration that the INI parser
 * (config.c) does not make: listen addresses, and the secret files (type,
 * permissions, and, at start-up, existence). Used by `fleetcertd
 * --check-config`, at start-up and on SIGHUP. Main thread.
 */
#ifndef FC_CFGCHECK_H
#define FC_CFGCHECK_H

#include <stddef.h>

#include "config.h"
#include "fc.h"

enum cfgcheck_flags {
	CFGCHECK_MISSING_OK = 1 << 0,	/* a secret file that does not exist
					   is a warning, not an error */
};

/*
 * Checks cfg. FC_OK when good; otherwise FC_EINVAL or FC_EPERM with one
 * message "FILE:LINE: [section] key: what is wrong" in err (never a
 * secret's content). Warnings (missing files with CFGCHECK_MISSING_OK) are
 * logged with log_warn.
 */
enum fc_err cfgcheck_run(const struct cfg *cfg, int flags, char *err,
    size_t errlen);

/*
 * Parses a listen address as src/httpd.h takes it: "host:port",
 * "[v6]:port" (port 0-65535; 0 binds any free port), "unix:/absolute/path",
 * "systemd", "systemd:NAME" or "fd:N". FC_OK or FC_EINVAL with the reason
 * in why. *loopback is 1 for 127.0.0.0/8, ::1, localhost, unix: and
 * inherited sockets.
 */
enum fc_err cfgcheck_listen_parse(const char *s, int *loopback, char *why,
    size_t whylen);

#endif
