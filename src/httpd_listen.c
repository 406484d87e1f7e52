/*
 * httpd_listen.c — the listening sockets of httpd: TCP (any port, port 0
 * reported back), a Unix socket created with mode 0660 (a stale socket file
 * removed, a live one refused), an inherited fd, or one passed by systemd
 * socket activation (sd_listen_fds_with_names). Called by httpd_start on
 * the starting thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "httpd_int.h"
#include "log.h"

struct lst {
	const char	*name;
	int		 fd;
	int		 port;
	char		*unix_path;
};

/* "HOST:PORT" or "[V6]:PORT" into host and port strings. */
static int
split_hostport(const char *s, char *host, size_t hl, char *port, size_t pl)
{
	const char *colon;
	size_t n;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		n = (size_t)(end - s - 1);
		if (n == 0 || n >= hl)
			return -1;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || (n = (size_t)(colon - s)) == 0 ||
		    n >= hl || memchr(s, ':', n) != NULL)
			return -1;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (strlen(colon + 1) == 0 || strlen(colon + 1) >= pl ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atoi(colon + 1) > 65535)
		return -1;
	snprintf(port, pl, "%s", colon + 1);
	return 0;
}

static enum fc_err
listen_tcp(struct lst *h, const char *spec)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[8];
	int fd = -1, one = 1, rc;

	if (split_hostport(spec, host, sizeof(host), port, sizeof(port)) < 0) {
		log_error("httpd %s: bad listen address \"%s\"", h->name,
		    spec);
		return FC_EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_error("httpd %s: listen address %s: %s", h->name, spec,
		    gai_strerror(rc));
		return FC_EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		goto fail;
	h->port = ss.ss_family == AF_INET ?
	    ntohs(((struct sockaddr_in *)&ss)->sin_port) :
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	h->fd = fd;
	freeaddrinfo(res);
	return FC_OK;
fail:
	log_error("httpd %s: listen on %s: %s", h->name, spec,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return FC_EIO;
}

static enum fc_err
listen_unix(struct lst *h, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1, probe;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		log_error("httpd %s: bad Unix socket path \"%s\"", h->name,
		    path);
		return FC_EINVAL;
	}
	memcpy(sun.sun_path, path, strlen(path));
	/* A socket file left by a dead daemon is removed; a live one (some
	 * process accepts on it) or any other file is an error. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("httpd %s: %s exists and is not a socket",
			    h->name, path);
			return FC_EIO;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0) {
			close(probe);
			log_error("httpd %s: %s is in use by another process",
			    h->name, path);
			return FC_EBUSY;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) < 0) {
			log_error("httpd %s: unlink stale %s: %s", h->name,
			    path, strerror(errno));
			return FC_EIO;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	/* Nobody can connect before listen(), so the mode is set in time. */
	if (chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
		unlink(path);
		goto fail;
	}
	if ((h->unix_path = strdup(path)) == NULL) {
		unlink(path);
		close(fd);
		return FC_ENOMEM;
	}
	h->fd = fd;
	return FC_OK;
fail:
	log_error("httpd %s: listen on unix:%s: %s", h->name, path,
	    strerror(errno));
	if (fd >= 0)
		close(fd);
	return FC_EIO;
}

static enum fc_err
listen_inherited(struct lst *h, const char *spec)
{
	char **names = NULL, *end;
	int n, i, fd = -1, acc = 0;
	socklen_t al = sizeof(acc);

	if (strncmp(spec, "fd:", 3) == 0) {
		long v = strtol(spec + 3, &end, 10);

		if (*end != '\0' || end == spec + 3 || v < 0 || v > 65535) {
			log_error("httpd %s: bad listen \"%s\"", h->name,
			    spec);
			return FC_EINVAL;
		}
		fd = (int)v;
	} else {
		const char *want = spec[7] == ':' ? spec + 8 : NULL;

		n = sd_listen_fds_with_names(0, &names);
		for (i = 0; i < n && fd < 0; i++)
			if (want == NULL || (names != NULL &&
			    strcmp(names[i], want) == 0))
				fd = SD_LISTEN_FDS_START + i;
		for (i = 0; names != NULL && i < n; i++)
			free(names[i]);
		free(names);
		if (fd < 0) {
			log_error("httpd %s: %s: no such socket passed by "
			    "systemd", h->name, spec);
			return FC_EINVAL;
		}
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc) {
		log_error("httpd %s: %s: fd %d is not a listening socket",
		    h->name, spec, fd);
		return FC_EINVAL;
	}
	h->fd = fd;
	return FC_OK;
}

enum fc_err
httpd_listen_open(const char *name, const char *spec, int *fd, int *port,
    char **unix_path)
{
	struct lst l = { name, -1, 0, NULL };
	enum fc_err rc;

	if (strncmp(spec, "unix:", 5) == 0)
		rc = listen_unix(&l, spec + 5);
	else if (strncmp(spec, "fd:", 3) == 0 || strcmp(spec, "systemd") == 0 ||
	    strncmp(spec, "systemd:", 8) == 0)
		rc = listen_inherited(&l, spec);
	else
		rc = listen_tcp(&l, spec);
	if (rc != FC_OK)
		return rc;
	*fd = l.fd;
	*port = l.port;
	*unix_path = l.unix_path;
	return FC_OK;
}
