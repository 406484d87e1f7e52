/*
 * signer.c — the signer process: a supervisor and the worker it forks,
 * both started by signer_start() (signer_client.c) before any network
 * input is read.
 *   supervisor: holds no key and nothing of the main process; (re)starts
 *     the worker with back-off (1 s doubling to 60 s) and hands the main
 *     process a fresh SOCK_SEQPACKET socket for each worker; ends a worker
 *     the main process reports as hung.
 *   worker: loads the CA key (ca_load), answers fixed-size requests and
 *     re-checks each one (framing here; device id, SE serial, serial, key
 *     type and validity ceiling in ca_cert_issue); exits after a signing
 *     failure so that a new worker logs in to the token again. May touch
 *     the key files and the PKCS#11 token only.
 */
#include "fc_build.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "signer.h"

#define BACKOFF_MAX_S		60

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
	for (off = 0; off < len; off += (size_t)SIGNER_DATA_CHUNK) {
		size_t n = len - off < (size_t)SIGNER_DATA_CHUNK ? len - off :
		    (size_t)SIGNER_DATA_CHUNK;
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
	const struct signer_crl_entries_msg *m = (const void *)buf;
	struct ca_crl_entry e;
	uint32_t i;

	(void)ca;
	if (s->crl == NULL || s->crl_err != FC_OK)
		return;
	if (n < offsetof(struct signer_crl_entries_msg, e) ||
	    m->count > SIGNER_CRL_CHUNK ||
	    n != offsetof(struct signer_crl_entries_msg, e) +
	    m->count * sizeof(m->e[0]) ||
	    s->count + m->count > SIGNER_CRL_MAX) {
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
			const struct signer_crl_begin_msg *m = (const void *)buf;
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
	if (r == FC_OK) {
		/* The key identifier of the certificate the key was checked
		 * against: the main process compares it on a reload. */
		size_t kl = 0;
		const unsigned char *kid = ca_key_id(ca, &kl);
		if (kl <= SIGNER_KEY_ID_MAX) {
			memcpy(a.der, kid, kl);
			a.der_len = (uint32_t)kl;
			a.h.length += (uint32_t)kl;
		}
	}
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

/* Hands fd to the main process with a tag: 'F' a (re)started worker,
 * 'C' a candidate worker for a reload. */
static int
send_fd(int ctl, int fd, char byte)
{
	struct msghdr msg = { 0 };
	struct iovec iov;
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

/*
 * Waits up to ms for a word from the main process on ctl. Returns 1 when
 * ctl closed (main process gone), 2 for a request to end the worker (it
 * hangs), 3 for a reload ('R'), 4 and 5 for the verdict on a candidate
 * ('Y' take it, 'N' drop it), 0 otherwise.
 */
static int
ctl_poll(int ctl, int ms)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	ssize_t n;
	char b;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	n = recv(ctl, &b, 1, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return 1;
	if (n != 1)
		return 0;
	return b == 'K' ? 2 : b == 'R' ? 3 : b == 'Y' ? 4 : b == 'N' ? 5 : 0;
}

static void
reap(pid_t w)
{
	kill(w, SIGKILL);
	while (waitpid(w, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Forks a worker on a new socketpair; *fd: the main process's end. */
static pid_t
worker_fork(const struct cfg *cfg, int ctl, int *fd)
{
	int sv[2];
	pid_t w;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		fatal("signer: socketpair: %s", strerror(errno));
	w = fork();
	if (w < 0)
		fatal("signer: fork: %s", strerror(errno));
	if (w == 0) {
		close(ctl);
		close(sv[0]);
		worker_main(cfg, sv[1]);
	}
	close(sv[1]);
	*fd = sv[0];
	return w;
}

/*
 * A reload ('R'): starts a candidate worker, which loads the CA files
 * again, and hands its socket to the main process, which reads its READY
 * and answers 'Y' (take it: the old worker w is ended) or 'N' (drop it:
 * w keeps serving). The main process holds its request mutex meanwhile,
 * so nothing else arrives on ctl. Returns the worker that now serves.
 */
static pid_t
reload(const struct cfg *cfg, int ctl, pid_t w)
{
	pid_t c;
	int fd, i, v = 0;

	c = worker_fork(cfg, ctl, &fd);
	if (send_fd(ctl, fd, 'C') != 0) {
		reap(c);
		reap(w);
		_exit(0);
	}
	close(fd);
	/* The main process waits at most 30 s for READY; then answers. */
	for (i = 0; i < 5 * 60 && v == 0; i++) {
		v = ctl_poll(ctl, 200);
		if (v == 1) {
			reap(c);
			reap(w);
			_exit(0);
		}
		if (v != 4 && v != 5)
			v = 0;
	}
	if (v != 4) {
		log_info("signer: reload: candidate worker %ld dropped; worker "
		    "%ld keeps serving", (long)c, (long)w);
		reap(c);
		return w;
	}
	log_info("signer: reload: worker %ld replaces worker %ld", (long)c,
	    (long)w);
	reap(w);
	return c;
}

void
signer_supervisor_run(const struct cfg *cfg, int ctl)
{
	int backoff = 1, i;

	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Nothing of the main process (database, listeners) stays open
	 * here or in the worker: only the control socket and stdio. */
	if (ctl > 3)
		(void)close_range(3, (unsigned)ctl - 1, 0);
	(void)close_range((unsigned)ctl + 1, ~0U, 0);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int fd, status = 0;
		pid_t w;
		time_t started;

		started = time(NULL);
		w = worker_fork(cfg, ctl, &fd);
		if (send_fd(ctl, fd, 'F') != 0) {
			/* The main process is gone. */
			reap(w);
			_exit(0);
		}
		close(fd);
		for (;;) {
			pid_t got = waitpid(w, &status, WNOHANG);
			if (got == w)
				break;
			switch (ctl_poll(ctl, 200)) {
			case 1:
				reap(w);
				_exit(0);
			case 2:
				/* Not reaped yet, so w is still our child. */
				log_error("signer: worker %ld does not answer; "
				    "ending it", (long)w);
				kill(w, SIGKILL);
				break;
			case 3:
				w = reload(cfg, ctl, w);
				started = time(NULL);
				break;
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
		for (i = 0; i < backoff * 5; i++)
			if (ctl_poll(ctl, 200) == 1)
				_exit(0);
		backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S :
		    backoff * 2;
	}
}

