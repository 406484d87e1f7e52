/*
 * signer.c — the signer: a supervisor and a worker process, forked from
 * main() before any network input, and the client side used by the main
 * process's threads.
 *   supervisor: holds no key; (re)starts the worker with back-off and hands
 *     the main process a fresh SOCK_SEQPACKET socket for each worker.
 *   worker: loads the CA key (ca_load), answers fixed-size requests,
 *     re-checking each one (ca_cert_issue checks device id, SE serial,
 *     serial, key type and the validity ceiling); may touch the key files
 *     and the PKCS#11 token only.
 *   client (main process, any thread): one mutex serialises requests.
 */
#include "fc_build.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ca.h"
#include "config.h"
#include "der.h"
#include "log.h"
#include "signer.h"

#define ISSUE_TIMEOUT_MS	15000
#define READY_TIMEOUT_MS	30000
#define CRL_TIMEOUT_MS		600000
#define BACKOFF_MAX_S		60
#define CRL_CHUNK		512
#define CRL_MAX_ENTRIES		50000000u
#define DATA_CHUNK		(SIGNER_MSG_MAX - (int)sizeof(struct signer_hdr))

struct crl_wire_entry {
	char		serial[FC_CERT_SERIAL_MAX];
	int32_t		reason;
	int64_t		revoked_at;
};
struct crl_begin_msg {
	struct signer_hdr h;
	uint64_t	number;
};
struct crl_entries_msg {
	struct signer_hdr h;
	uint32_t	count;
	struct crl_wire_entry e[CRL_CHUNK];
};

/* ---------------------------------------------------------------- worker */

static void
answer(int fd, uint32_t id, enum fc_err st, const char *why,
    struct signer_answer_msg *a, size_t der_len)
{
	a->h.magic = SIGNER_MAGIC;
	a->h.type = SIGNER_ANSWER;
	a->h.id = id;
	a->h.length = (uint32_t)(offsetof(struct signer_answer_msg, der) +
	    der_len);
	a->status = (int32_t)st;
	a->pid = (int32_t)getpid();
	a->der_len = (uint32_t)der_len;
	snprintf(a->why, sizeof(a->why), "%s", why ? why : "");
	if (send(fd, a, a->h.length, MSG_NOSIGNAL) < 0)
		log_warn("signer: send answer: %s", strerror(errno));
}

static int
field_ok(const char *f, size_t size)
{
	return memchr(f, '\0', size) != NULL;
}

/* One issue request: framing checked here, content by ca_cert_issue. */
static int
serve_issue(int fd, struct ca *ca, const unsigned char *buf, size_t n)
{
	const struct signer_issue_msg *m = (const void *)buf;
	struct signer_answer_msg a;
	struct ca_issue_req req;
	struct ca_cert *cert = NULL;
	char why[160] = "";
	enum fc_err r;

	memset(&a, 0, offsetof(struct signer_answer_msg, der));
	if (n < offsetof(struct signer_issue_msg, key) ||
	    m->key_len > CA_INPUT_MAX ||
	    n != offsetof(struct signer_issue_msg, key) + m->key_len ||
	    !field_ok(m->serial, sizeof(m->serial)) ||
	    !field_ok(m->device_id, sizeof(m->device_id)) ||
	    !field_ok(m->se_serial, sizeof(m->se_serial))) {
		log_warn("signer: refused a malformed issue request");
		answer(fd, m->h.id, FC_EINVAL, "malformed request", &a, 0);
		return 0;
	}
	memset(&req, 0, sizeof(req));
	req.serial = m->serial;
	req.device_id = m->device_id;
	req.se_serial = m->se_serial;
	req.validity_days = m->validity_days;
	if (m->h.type == SIGNER_ISSUE_CSR) {
		req.csr = m->key;
		req.csr_len = m->key_len;
	} else {
		req.spki = m->key;
		req.spki_len = m->key_len;
	}
	r = ca_cert_issue(ca, &req, &cert, why, sizeof(why));
	if (r != FC_OK) {
		answer(fd, m->h.id, r, why, &a, 0);
		return r == FC_ECRYPTO;
	}
	if (cert->der_len > CA_CERT_MAX) {
		answer(fd, m->h.id, FC_EINTERNAL, "certificate too large", &a, 0);
	} else {
		a.not_before = cert->not_before;
		a.not_after = cert->not_after;
		memcpy(a.der, cert->der, cert->der_len);
		answer(fd, m->h.id, FC_OK, NULL, &a, cert->der_len);
	}
	ca_cert_free(cert);
	return 0;
}

struct serve_state {
	struct ca_crl	*crl;
	enum fc_err	 crl_err;
	uint64_t	 crl_number;
	uint64_t	 last_number;
	int		 have_last;
	uint64_t	 count;
};

static int
serve_crl_finish(int fd, struct ca *ca, struct serve_state *s, uint32_t id)
{
	struct signer_answer_msg a;
	unsigned char *der = NULL;
	size_t len = 0, off;
	enum fc_err r = s->crl_err;
	unsigned char chunk[SIGNER_MSG_MAX];
	struct signer_hdr *h = (struct signer_hdr *)chunk;

	memset(&a, 0, offsetof(struct signer_answer_msg, der));
	if (s->crl == NULL)
		r = FC_EINVAL;
	if (r == FC_OK)
		r = ca_crl_finish(s->crl, &der, &len);
	ca_crl_free(s->crl);
	s->crl = NULL;
	if (r != FC_OK) {
		answer(fd, id, r, r == FC_EINVAL ? "bad CRL request or entry" :
		    "CRL signing failed", &a, 0);
		return r == FC_ECRYPTO;
	}
	s->last_number = s->crl_number;
	s->have_last = 1;
	a.total = len;
	answer(fd, id, FC_OK, NULL, &a, 0);
	for (off = 0; off < len; off += (size_t)DATA_CHUNK) {
		size_t n = len - off < (size_t)DATA_CHUNK ? len - off :
		    (size_t)DATA_CHUNK;
		h->magic = SIGNER_MAGIC;
		h->type = SIGNER_DATA;
		h->id = id;
		h->length = (uint32_t)(sizeof(*h) + n);
		memcpy(chunk + sizeof(*h), der + off, n);
		if (send(fd, chunk, h->length, MSG_NOSIGNAL) < 0) {
			log_warn("signer: send CRL: %s", strerror(errno));
			break;
		}
	}
	free(der);
	return 0;
}

static void
serve_crl_entries(struct ca *ca, struct serve_state *s,
    const unsigned char *buf, size_t n)
{
	const struct crl_entries_msg *m = (const void *)buf;
	struct ca_crl_entry e;
	uint32_t i;

	(void)ca;
	if (s->crl == NULL || s->crl_err != FC_OK)
		return;
	if (n < offsetof(struct crl_entries_msg, e) || m->count > CRL_CHUNK ||
	    n != offsetof(struct crl_entries_msg, e) +
	    m->count * sizeof(m->e[0]) ||
	    s->count + m->count > CRL_MAX_ENTRIES) {
		s->crl_err = FC_EINVAL;
		return;
	}
	for (i = 0; i < m->count; i++) {
		if (!field_ok(m->e[i].serial, sizeof(m->e[i].serial))) {
			s->crl_err = FC_EINVAL;
			return;
		}
		memcpy(e.serial, m->e[i].serial, sizeof(e.serial));
		e.reason = m->e[i].reason;
		e.revoked_at = m->e[i].revoked_at;
		if (ca_crl_add(s->crl, &e) != FC_OK) {
			log_warn("signer: CRL entry %s refused", e.serial);
			s->crl_err = FC_EINVAL;
			return;
		}
	}
	s->count += m->count;
}

int
signer_serve(int fd, struct ca *ca)
{
	struct serve_state s = { 0 };
	struct signer_answer_msg a;
	unsigned char *buf = NULL;
	const struct signer_hdr *h;
	int rc = 0;

	buf = malloc(SIGNER_MSG_MAX + 1);
	if (buf == NULL)
		return 1;
	h = (const void *)buf;
	for (;;) {
		ssize_t n = recv(fd, buf, SIGNER_MSG_MAX + 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		memset(&a, 0, offsetof(struct signer_answer_msg, der));
		if ((size_t)n < sizeof(*h) || n > SIGNER_MSG_MAX ||
		    h->magic != SIGNER_MAGIC || h->length != (uint32_t)n) {
			log_warn("signer: refused a malformed message of %zd "
			    "bytes", n);
			answer(fd, (size_t)n >= sizeof(*h) ? h->id : 0,
			    FC_EINVAL, "malformed request", &a, 0);
			continue;
		}
		switch (h->type) {
		case SIGNER_ISSUE_SPKI:
		case SIGNER_ISSUE_CSR:
			rc = serve_issue(fd, ca, buf, (size_t)n);
			break;
		case SIGNER_CRL_BEGIN: {
			const struct crl_begin_msg *m = (const void *)buf;
			ca_crl_free(s.crl);
			s.crl = NULL;
			s.count = 0;
			s.crl_err = FC_OK;
			if ((size_t)n != sizeof(*m) ||
			    (s.have_last && m->number <= s.last_number)) {
				log_warn("signer: refused a CRL request (bad "
				    "size or number not increasing)");
				s.crl_err = FC_EINVAL;
				break;
			}
			s.crl_number = m->number;
			s.crl_err = ca_crl_begin(ca, m->number,
			    ca_crl_validity_hours(ca), &s.crl);
			break;
		}
		case SIGNER_CRL_ENTRIES:
			serve_crl_entries(ca, &s, buf, (size_t)n);
			break;
		case SIGNER_CRL_FINISH:
			rc = serve_crl_finish(fd, ca, &s, h->id);
			break;
		default:
			log_warn("signer: refused a message of unknown type %u",
			    h->type);
			answer(fd, h->id, FC_EINVAL, "unknown request type", &a,
			    0);
		}
		if (rc != 0)
			break;
	}
	ca_crl_free(s.crl);
	free(buf);
	return rc;
}

/* The worker: loads the key, says READY (or why not) and serves. */
static void __attribute__((noreturn))
worker_main(const struct cfg *cfg, int fd)
{
	struct signer_answer_msg a;
	struct ca *ca = NULL;
	char why[160] = "";
	enum fc_err r;
	int rc;

	(void)prctl(PR_SET_DUMPABLE, 0);	/* no core dump with the key */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&a, 0, offsetof(struct signer_answer_msg, der));
	r = ca_load(cfg, 0, &ca, why, sizeof(why));
	a.h.magic = SIGNER_MAGIC;
	a.h.type = SIGNER_READY;
	a.h.length = offsetof(struct signer_answer_msg, der);
	a.status = (int32_t)r;
	a.pid = (int32_t)getpid();
	snprintf(a.why, sizeof(a.why), "%s", why);
	(void)send(fd, &a, a.h.length, MSG_NOSIGNAL);
	if (r != FC_OK)
		_exit(2);
	log_debug("signer: worker %ld ready", (long)getpid());
	rc = signer_serve(fd, ca);
	ca_free(ca);
	close(fd);
	_exit(rc ? 3 : 0);
}

/* ------------------------------------------------------------ supervisor */

static int
send_fd(int ctl, int fd)
{
	struct msghdr msg = { 0 };
	struct iovec iov;
	char byte = 'F';
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	iov.iov_base = &byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(ctl, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* Waits up to ms for ctl to close (main process gone). 1 if it did. */
static int
ctl_closed(int ctl, int ms)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	char b;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return recv(ctl, &b, 1, MSG_DONTWAIT) == 0 ||
	    (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void __attribute__((noreturn))
supervisor_main(const struct cfg *cfg, int ctl)
{
	int backoff = 1;

	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int sv[2], status = 0;
		pid_t w;
		time_t started;

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    sv) != 0)
			fatal("signer: socketpair: %s", strerror(errno));
		started = time(NULL);
		w = fork();
		if (w < 0)
			fatal("signer: fork: %s", strerror(errno));
		if (w == 0) {
			close(ctl);
			close(sv[0]);
			worker_main(cfg, sv[1]);
		}
		close(sv[1]);
		if (send_fd(ctl, sv[0]) != 0) {
			/* The main process is gone. */
			kill(w, SIGKILL);
			waitpid(w, NULL, 0);
			_exit(0);
		}
		close(sv[0]);
		for (;;) {
			pid_t got = waitpid(w, &status, WNOHANG);
			if (got == w)
				break;
			if (ctl_closed(ctl, 200)) {
				kill(w, SIGKILL);
				waitpid(w, NULL, 0);
				_exit(0);
			}
		}
		if (WIFSIGNALED(status))
			log_error("signer: worker %ld killed by signal %d",
			    (long)w, WTERMSIG(status));
		else if (WEXITSTATUS(status) != 0)
			log_error("signer: worker %ld exited with status %d",
			    (long)w, WEXITSTATUS(status));
		if (time(NULL) - started > 2 * BACKOFF_MAX_S)
			backoff = 1;
		log_info("signer: starting a new worker in %d s", backoff);
		if (ctl_closed(ctl, backoff * 1000))
			_exit(0);
		backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S :
		    backoff * 2;
	}
}

/* ---------------------------------------------------------------- client */

static struct {
	pthread_mutex_t	 mu;		/* one request at a time */
	pthread_mutex_t	 st_mu;		/* st only: health never waits */
	int		 ctl;		/* to the supervisor */
	int		 data;		/* to the current worker, or -1 */
	pid_t		 sup;
	uint32_t	 next_id;
	int		 started;	/* workers seen */
	struct signer_status st;
} cl = { .mu = PTHREAD_MUTEX_INITIALIZER, .st_mu = PTHREAD_MUTEX_INITIALIZER,
    .ctl = -1, .data = -1 };

static void
set_down(const char *reason)
{
	pthread_mutex_lock(&cl.st_mu);
	if (cl.st.up || strcmp(cl.st.reason, reason) != 0) {
		log_error("signer: %s", reason);
		cl.st.since = time(NULL);
	}
	cl.st.up = 0;
	snprintf(cl.st.reason, sizeof(cl.st.reason), "%s", reason);
	pthread_mutex_unlock(&cl.st_mu);
}

static int
recv_fd(int ctl, int ms)
{
	struct msghdr msg = { 0 };
	struct iovec iov;
	char byte;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct cmsghdr *c;
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	int fd = -1;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	iov.iov_base = &byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	if (recvmsg(ctl, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return -2;
	c = CMSG_FIRSTHDR(&msg);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -2;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* Receives one message of the expected type into buf (cap bytes). */
static enum fc_err
recv_msg(int fd, void *buf, size_t cap, uint32_t type, int ms,
    size_t *got)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct signer_hdr *h = buf;
	ssize_t n;
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return FC_EBUSY;
	n = recv(fd, buf, cap, MSG_DONTWAIT);
	if (n <= 0)
		return FC_EIO;
	if ((size_t)n < sizeof(*h) || h->magic != SIGNER_MAGIC ||
	    h->type != type || h->length != (uint32_t)n)
		return FC_EINTERNAL;
	*got = (size_t)n;
	return FC_OK;
}

/* Makes sure a worker is connected and ready; mutex held. */
static enum fc_err
worker_get(int wait_ms)
{
	struct signer_answer_msg a;
	size_t n;
	enum fc_err r;
	int fd;

	if (cl.data >= 0)
		return FC_OK;
	if (cl.ctl < 0)
		return FC_EIO;
	fd = recv_fd(cl.ctl, wait_ms);
	if (fd == -2) {
		set_down("signer supervisor is gone");
		close(cl.ctl);
		cl.ctl = -1;
		return FC_EIO;
	}
	if (fd < 0) {
		if (cl.st.reason[0] == '\0')
			set_down("signer restarting");
		return FC_EBUSY;
	}
	r = recv_msg(fd, &a, sizeof(a), SIGNER_READY, READY_TIMEOUT_MS, &n);
	if (r != FC_OK || n != offsetof(struct signer_answer_msg, der)) {
		close(fd);
		set_down("signer worker did not start");
		return FC_EIO;
	}
	a.why[sizeof(a.why) - 1] = '\0';
	pthread_mutex_lock(&cl.st_mu);
	cl.st.worker_pid = a.pid;
	pthread_mutex_unlock(&cl.st_mu);
	if (a.status != FC_OK) {
		char reason[sizeof(cl.st.reason) + sizeof(a.why)];
		close(fd);
		snprintf(reason, sizeof(reason), "signer cannot load the CA "
		    "key: %s", a.why);
		set_down(reason);
		return FC_ECRYPTO;
	}
	pthread_mutex_lock(&cl.st_mu);
	if (cl.started++ > 0)
		cl.st.restarts++;
	if (!cl.st.up)
		cl.st.since = time(NULL);
	cl.st.up = 1;
	cl.st.reason[0] = '\0';
	pthread_mutex_unlock(&cl.st_mu);
	cl.data = fd;
	log_info("signer: worker %ld ready", (long)a.pid);
	return FC_OK;
}

static void
worker_lost(enum fc_err r)
{
	close(cl.data);
	cl.data = -1;
	set_down(r == FC_EBUSY ? "signer worker timed out" :
	    "signer worker exited");
	/* A worker that hangs is ended so that the supervisor restarts it. */
	if (r == FC_EBUSY && cl.st.worker_pid > 0)
		kill(cl.st.worker_pid, SIGKILL);
}

static enum fc_err
send_msg(const void *m, size_t len)
{
	ssize_t n;

	do
		n = send(cl.data, m, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? FC_OK : FC_EIO;
}

enum fc_err
signer_start(const struct cfg *cfg, char *why, size_t whylen)
{
	int sv[2];
	pid_t pid;
	enum fc_err r;

	if (cl.sup > 0)
		return FC_ECONFLICT;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(why, whylen, "socketpair: %s", strerror(errno));
		return FC_EIO;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return FC_EIO;
	}
	if (pid == 0) {
		close(sv[0]);
		supervisor_main(cfg, sv[1]);
	}
	close(sv[1]);
	pthread_mutex_lock(&cl.mu);
	cl.sup = pid;
	cl.ctl = sv[0];
	cl.started = 0;
	pthread_mutex_lock(&cl.st_mu);
	memset(&cl.st, 0, sizeof(cl.st));
	pthread_mutex_unlock(&cl.st_mu);
	r = worker_get(READY_TIMEOUT_MS);
	if (r != FC_OK)
		snprintf(why, whylen, "%s", cl.st.reason[0] ? cl.st.reason :
		    "signer did not start");
	pthread_mutex_unlock(&cl.mu);
	if (r != FC_OK)
		signer_stop();
	return r;
}

void
signer_stop(void)
{
	pthread_mutex_lock(&cl.mu);
	if (cl.data >= 0)
		close(cl.data);
	if (cl.ctl >= 0)
		close(cl.ctl);
	cl.data = cl.ctl = -1;
	if (cl.sup > 0) {
		/* The supervisor sees ctl close and ends the worker. */
		int status;
		if (waitpid(cl.sup, &status, 0) < 0)
			log_warn("signer: waitpid: %s", strerror(errno));
		cl.sup = 0;
	}
	pthread_mutex_lock(&cl.st_mu);
	cl.st.up = 0;
	snprintf(cl.st.reason, sizeof(cl.st.reason), "stopped");
	pthread_mutex_unlock(&cl.st_mu);
	pthread_mutex_unlock(&cl.mu);
}

int
signer_health(struct signer_status *st)
{
	pthread_mutex_lock(&cl.st_mu);
	*st = cl.st;
	pthread_mutex_unlock(&cl.st_mu);
	return st->up;
}

/* 0 if the DER certificate's serialNumber is the hex serial. */
static int
der_serial_matches(const unsigned char *der, size_t len, const char *serial)
{
	struct der_rd r = { der, len }, cert, tbs, v, sn;
	char hex[2 * 21 + 1];

	if (der_get(&r, DER_SEQUENCE, &cert, NULL) != 0 ||
	    der_get(&cert, DER_SEQUENCE, &tbs, NULL) != 0 ||
	    der_get(&tbs, 0xa0, &v, NULL) != 0 ||
	    der_get(&tbs, DER_INTEGER, &sn, NULL) != 0 || sn.len > 21)
		return -1;
	if (sn.len > 1 && sn.p[0] == 0) {
		sn.p++;
		sn.len--;
	}
	fc_hex(sn.p, sn.len, hex, 0);
	return strcmp(hex, serial) == 0 ? 0 : -1;
}

static EVP_MD *md_sha1, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

/* Fetched once: an implicit fetch per call costs more than the hash. */
static void
md_fetch(void)
{
	md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int
fingerprints(struct ca_cert *c)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n;

	pthread_once(&md_once, md_fetch);
	if (md_sha1 == NULL || md_sha256 == NULL)
		return -1;
	if (EVP_Digest(c->der, c->der_len, md, &n, md_sha1, NULL) != 1)
		return -1;
	fc_hex(md, n, c->sha1, 1);
	if (EVP_Digest(c->der, c->der_len, md, &n, md_sha256, NULL) != 1)
		return -1;
	fc_hex(md, n, c->sha256, 1);
	return 0;
}

/* One exchange with the worker: mutex held. On a lost worker the request
 * fails with FC_EIO and the next call picks up the restarted one. */
static enum fc_err
exchange(const void *req, size_t len, struct signer_answer_msg *a,
    size_t *got)
{
	enum fc_err r;

	r = worker_get(0);
	if (r != FC_OK)
		return r;
	r = send_msg(req, len);
	if (r == FC_OK)
		r = recv_msg(cl.data, a, sizeof(*a), SIGNER_ANSWER,
		    ISSUE_TIMEOUT_MS, got);
	if (r == FC_EIO || r == FC_EBUSY || r == FC_EINTERNAL) {
		worker_lost(r);
		return r == FC_EBUSY ? FC_EIO : r;
	}
	if (r == FC_OK && (a->h.id != ((const struct signer_hdr *)req)->id ||
	    a->der_len > CA_CERT_MAX ||
	    *got != offsetof(struct signer_answer_msg, der) + a->der_len ||
	    a->status < FC_OK || a->status > FC_EBUSY)) {
		worker_lost(FC_EIO);
		return FC_EINTERNAL;
	}
	return r;
}

/* After a signing failure the worker exits to log in again. */
static void
check_key_failure(const struct signer_answer_msg *a)
{
	if (a->status == FC_ECRYPTO) {
		close(cl.data);
		cl.data = -1;
		set_down("signer: signing failed (token session lost?); "
		    "logging in again");
	}
}

enum fc_err
signer_issue(const struct ca_issue_req *req, struct ca_cert **out, char *why,
    size_t whylen)
{
	struct signer_issue_msg *m = NULL;
	struct signer_answer_msg *a = NULL;
	struct ca_cert *cert = NULL;
	const unsigned char *key = req->spki ? req->spki : req->csr;
	size_t key_len = req->spki ? req->spki_len : req->csr_len, got = 0;
	enum fc_err r = FC_ENOMEM;

	if ((req->spki == NULL) == (req->csr == NULL) || key_len == 0 ||
	    key_len > CA_INPUT_MAX || req->serial == NULL ||
	    req->device_id == NULL || req->se_serial == NULL ||
	    strlen(req->serial) >= FC_CERT_SERIAL_MAX ||
	    strlen(req->device_id) >= FC_DEVICE_ID_MAX ||
	    strlen(req->se_serial) >= FC_SE_SERIAL_LEN) {
		snprintf(why, whylen, "%s", key_len > CA_INPUT_MAX ?
		    "public key or CSR larger than 8192 bytes" :
		    "malformed request");
		log_warn("device %s: certificate refused: %s",
		    req->device_id && fc_device_id_valid(req->device_id) ?
		    req->device_id : "(invalid id)", why);
		return FC_EINVAL;
	}
	m = calloc(1, sizeof(*m));
	a = malloc(sizeof(*a));
	if (m == NULL || a == NULL)
		goto out;
	m->h.magic = SIGNER_MAGIC;
	m->h.type = req->csr ? SIGNER_ISSUE_CSR : SIGNER_ISSUE_SPKI;
	m->h.length = (uint32_t)(offsetof(struct signer_issue_msg, key) +
	    key_len);
	strcpy(m->serial, req->serial);
	strcpy(m->device_id, req->device_id);
	strcpy(m->se_serial, req->se_serial);
	m->validity_days = req->validity_days;
	m->key_len = (uint32_t)key_len;
	memcpy(m->key, key, key_len);

	pthread_mutex_lock(&cl.mu);
	m->h.id = ++cl.next_id;
	r = exchange(m, m->h.length, a, &got);
	if (r == FC_OK)
		check_key_failure(a);
	pthread_mutex_unlock(&cl.mu);
	if (r != FC_OK) {
		snprintf(why, whylen, "%s", r == FC_EBUSY ?
		    "signer restarting" : "signer unavailable");
		goto out;
	}
	a->why[sizeof(a->why) - 1] = '\0';
	r = (enum fc_err)a->status;
	if (r != FC_OK) {
		snprintf(why, whylen, "%s", a->why);
		goto out;
	}
	r = FC_ENOMEM;
	cert = calloc(1, sizeof(*cert));
	if (cert == NULL || (cert->der = malloc(a->der_len)) == NULL)
		goto out;
	memcpy(cert->der, a->der, a->der_len);
	cert->der_len = a->der_len;
	/* The main process stores what was really signed: the serial is
	 * read back from the DER, the fingerprints hashed here. */
	if (der_serial_matches(cert->der, cert->der_len, req->serial) != 0 ||
	    fingerprints(cert) != 0) {
		log_error("device %s: signer answered a certificate that does "
		    "not match the request", req->device_id);
		r = FC_EINTERNAL;
		goto out;
	}
	snprintf(cert->serial, sizeof(cert->serial), "%s", req->serial);
	cert->not_before = (time_t)a->not_before;
	cert->not_after = (time_t)a->not_after;
	r = FC_OK;
	*out = cert;
	cert = NULL;
out:
	ca_cert_free(cert);
	free(m);
	free(a);
	return r;
}

enum fc_err
signer_crl(uint64_t crl_number, int (*next)(void *arg, struct ca_crl_entry *e),
    void *arg, unsigned char **der, size_t *len, char *why, size_t whylen)
{
	struct crl_begin_msg b;
	struct crl_entries_msg *m = NULL;
	struct signer_answer_msg a;
	struct ca_crl_entry e;
	unsigned char *buf = NULL, *out = NULL;
	size_t got, off = 0;
	uint64_t total = 0;
	int more = 1, rc;
	enum fc_err r = FC_ENOMEM;

	m = calloc(1, sizeof(*m));
	buf = malloc(SIGNER_MSG_MAX);
	if (m == NULL || buf == NULL) {
		free(m);
		free(buf);
		return FC_ENOMEM;
	}
	pthread_mutex_lock(&cl.mu);
	r = worker_get(0);
	if (r != FC_OK) {
		snprintf(why, whylen, "signer unavailable");
		goto out;
	}
	memset(&b, 0, sizeof(b));
	b.h.magic = SIGNER_MAGIC;
	b.h.type = SIGNER_CRL_BEGIN;
	b.h.length = sizeof(b);
	b.h.id = ++cl.next_id;
	b.number = crl_number;
	r = send_msg(&b, sizeof(b));
	/* Entries in chunks: a CRL of millions never sits twice in memory
	 * on this side. */
	while (r == FC_OK && more) {
		m->count = 0;
		while (m->count < CRL_CHUNK) {
			memset(&e, 0, sizeof(e));
			rc = next(arg, &e);
			if (rc < 0) {
				snprintf(why, whylen, "CRL entries: source "
				    "failed");
				/* Abandon: an empty BEGIN resets the worker. */
				b.h.id = ++cl.next_id;
				b.number = 0;
				(void)send_msg(&b, sizeof(b));
				r = FC_EIO;
				goto out;
			}
			if (rc == 0) {
				more = 0;
				break;
			}
			memcpy(m->e[m->count].serial, e.serial,
			    sizeof(e.serial));
			m->e[m->count].serial[FC_CERT_SERIAL_MAX - 1] = '\0';
			m->e[m->count].reason = e.reason;
			m->e[m->count].revoked_at = e.revoked_at;
			m->count++;
		}
		if (m->count == 0)
			break;
		m->h.magic = SIGNER_MAGIC;
		m->h.type = SIGNER_CRL_ENTRIES;
		m->h.id = ++cl.next_id;
		m->h.length = (uint32_t)(offsetof(struct crl_entries_msg, e) +
		    m->count * sizeof(m->e[0]));
		r = send_msg(m, m->h.length);
	}
	if (r == FC_OK) {
		struct signer_hdr f = { SIGNER_MAGIC, SIGNER_CRL_FINISH,
		    sizeof(f), ++cl.next_id };
		r = send_msg(&f, sizeof(f));
		if (r == FC_OK)
			r = recv_msg(cl.data, &a, sizeof(a), SIGNER_ANSWER,
			    CRL_TIMEOUT_MS, &got);
	}
	if (r != FC_OK) {
		worker_lost(r);
		snprintf(why, whylen, "signer unavailable");
		r = FC_EIO;
		goto out;
	}
	a.why[sizeof(a.why) - 1] = '\0';
	if (a.status != FC_OK) {
		r = a.status >= FC_OK && a.status <= FC_EBUSY ?
		    (enum fc_err)a.status : FC_EINTERNAL;
		snprintf(why, whylen, "%s", a.why);
		check_key_failure(&a);
		goto out;
	}
	total = a.total;
	r = FC_ENOMEM;
	if (total == 0 || total > (uint64_t)CRL_MAX_ENTRIES * 128 ||
	    (out = malloc(total)) == NULL)
		goto out;
	while (off < total) {
		r = recv_msg(cl.data, buf, SIGNER_MSG_MAX, SIGNER_DATA,
		    ISSUE_TIMEOUT_MS, &got);
		if (r == FC_OK && got - sizeof(struct signer_hdr) > total - off)
			r = FC_EINTERNAL;
		if (r != FC_OK) {
			worker_lost(r);
			snprintf(why, whylen, "signer unavailable");
			r = FC_EIO;
			goto out;
		}
		memcpy(out + off, buf + sizeof(struct signer_hdr),
		    got - sizeof(struct signer_hdr));
		off += got - sizeof(struct signer_hdr);
	}
	*der = out;
	*len = total;
	out = NULL;
	r = FC_OK;
out:
	pthread_mutex_unlock(&cl.mu);
	free(out);
	free(m);
	free(buf);
	return r;
}
