/*
 * scheduler.c — the main loop of fleetcertd: poll(2) over module descriptors,
 * one-shot timeouts, periodic jobs, the signalfd (SIGTERM, SIGINT, SIGHUP)
 * and an eventfd other threads use to wake the loop; sd_notify for READY=,
 * STATUS=, RELOADING=, STOPPING= and the watchdog. Main thread only, except
 * the functions scheduler.h marks "any thread". Touches no database and no
 * configuration: modules bring their own through the callbacks.
 */
#include "fc_build.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "scheduler.h"

#define SCHED_JOBS_MAX		64
#define SCHED_HOOKS_MAX		32
#define SCHED_STATUS_LEN	512

struct job {
	char		 name[SCHED_NAME_MAX];
	void		(*fn)(void *);
	void		*arg;
	long long	 interval_ms;
	long long	 due_ms;
	int		 used;
	_Atomic int	 kicked;
};

struct watch {
	int		 fd;
	short		 events;
	void		(*fn)(int, short, void *);
	void		*arg;
};

struct timeout {
	int		 id;
	long long	 due_ms;
	void		(*fn)(void *);
	void		*arg;
};

struct hook {
	char		 name[SCHED_NAME_MAX];
	void		(*status)(void *, char *, size_t);
	int		(*busy)(void *);
	void		*arg;
};

struct poller {
	char		 name[SCHED_NAME_MAX];
	int		(*prepare)(void *, struct pollfd *, int, int *);
	void		(*dispatch)(void *, const struct pollfd *, int);
	void		*arg;
	size_t		 first;		/* its slice of this turn's pollfds */
	int		 count;
};

static struct job jobs[SCHED_JOBS_MAX];
static struct poller pollers[SCHED_HOOKS_MAX];
static size_t npollers;
static struct watch *watches;
static size_t nwatches, capwatches;
static struct timeout *timeouts;
static size_t ntimeouts, captimeouts;
static int next_timeout_id = 1;
static struct hook status_hooks[SCHED_HOOKS_MAX], drain_hooks[SCHED_HOOKS_MAX];
static size_t nstatus_hooks, ndrain_hooks;
static void (*reload_fn)(void *);
static void *reload_arg;

static int sig_fd = -1;
static int wake_fd = -1;
static sigset_t old_mask;
static int mask_saved;
static _Atomic int stop_asked;
static int ready_sent;
static char last_status[SCHED_STATUS_LEN];

long long
sched_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum fc_err
sched_init(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, &old_mask) != 0) {
		log_error("sched: pthread_sigmask failed");
		return FC_EIO;
	}
	mask_saved = 1;
	/* A peer that hangs up must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0) {
		log_error("sched: signalfd: %s", strerror(errno));
		sched_finalise();
		return FC_EIO;
	}
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0) {
		log_error("sched: eventfd: %s", strerror(errno));
		sched_finalise();
		return FC_EIO;
	}
	atomic_store(&stop_asked, 0);
	ready_sent = 0;
	last_status[0] = '\0';
	return FC_OK;
}

void
sched_finalise(void)
{
	memset(jobs, 0, sizeof(jobs));
	free(watches);
	watches = NULL;
	nwatches = capwatches = 0;
	free(timeouts);
	timeouts = NULL;
	ntimeouts = captimeouts = 0;
	nstatus_hooks = ndrain_hooks = 0;
	npollers = 0;
	reload_fn = NULL;
	reload_arg = NULL;
	if (sig_fd >= 0)
		close(sig_fd);
	sig_fd = -1;
	if (wake_fd >= 0)
		close(wake_fd);
	wake_fd = -1;
	if (mask_saved)
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	mask_saved = 0;
}

/* ---- periodic jobs ---- */

static int
interval_valid(int s)
{
	return s >= 1 && s <= 86400;
}

enum fc_err
sched_job_add(const char *name, int interval_seconds, void (*fn)(void *),
    void *arg, int *id)
{
	size_t i;

	if (!interval_valid(interval_seconds) || fn == NULL) {
		log_error("sched: job %s: bad interval %d", name, interval_seconds);
		return FC_EINVAL;
	}
	for (i = 0; i < SCHED_JOBS_MAX; i++)
		if (!jobs[i].used)
			break;
	if (i == SCHED_JOBS_MAX) {
		log_error("sched: job %s: too many jobs", name);
		return FC_ENOMEM;
	}
	snprintf(jobs[i].name, sizeof(jobs[i].name), "%s", name);
	jobs[i].fn = fn;
	jobs[i].arg = arg;
	jobs[i].interval_ms = (long long)interval_seconds * 1000;
	jobs[i].due_ms = sched_now_ms() + jobs[i].interval_ms;
	atomic_store(&jobs[i].kicked, 0);
	jobs[i].used = 1;
	*id = (int)i + 1;
	return FC_OK;
}

static struct job *
job_get(int id)
{
	if (id < 1 || id > SCHED_JOBS_MAX || !jobs[id - 1].used)
		return NULL;
	return &jobs[id - 1];
}

enum fc_err
sched_job_interval_set(int id, int interval_seconds)
{
	struct job *j = job_get(id);

	if (j == NULL || !interval_valid(interval_seconds))
		return FC_EINVAL;
	j->interval_ms = (long long)interval_seconds * 1000;
	j->due_ms = sched_now_ms() + j->interval_ms;
	return FC_OK;
}

void
sched_job_remove(int id)
{
	struct job *j = job_get(id);

	if (j != NULL)
		memset(j, 0, sizeof(*j));
}

void
sched_job_kick(int id)
{
	if (id < 1 || id > SCHED_JOBS_MAX)
		return;
	atomic_store(&jobs[id - 1].kicked, 1);
	sched_wake();
}

/* ---- descriptors ---- */

enum fc_err
sched_fd_watch(int fd, short events, void (*fn)(int, short, void *), void *arg)
{
	size_t i;

	if (fd < 0)
		return FC_EINVAL;
	for (i = 0; i < nwatches; i++)
		if (watches[i].fd == fd)
			break;
	if (events == 0) {
		if (i < nwatches) {
			watches[i] = watches[nwatches - 1];
			nwatches--;
		}
		return FC_OK;
	}
	if (fn == NULL)
		return FC_EINVAL;
	if (i == nwatches) {
		if (nwatches == capwatches) {
			size_t ncap = capwatches ? capwatches * 2 : 16;
			struct watch *nw = realloc(watches, ncap * sizeof(*nw));
			if (nw == NULL)
				return FC_ENOMEM;
			watches = nw;
			capwatches = ncap;
		}
		nwatches++;
	}
	watches[i].fd = fd;
	watches[i].events = events;
	watches[i].fn = fn;
	watches[i].arg = arg;
	return FC_OK;
}

/* ---- timeouts ---- */

enum fc_err
sched_timeout_add(long ms, void (*fn)(void *), void *arg, int *id)
{
	if (fn == NULL || ms < 0)
		return FC_EINVAL;
	if (ntimeouts == captimeouts) {
		size_t ncap = captimeouts ? captimeouts * 2 : 16;
		struct timeout *nt = realloc(timeouts, ncap * sizeof(*nt));
		if (nt == NULL)
			return FC_ENOMEM;
		timeouts = nt;
		captimeouts = ncap;
	}
	if (next_timeout_id == INT32_MAX)
		next_timeout_id = 1;
	timeouts[ntimeouts].id = next_timeout_id++;
	timeouts[ntimeouts].due_ms = sched_now_ms() + ms;
	timeouts[ntimeouts].fn = fn;
	timeouts[ntimeouts].arg = arg;
	*id = timeouts[ntimeouts].id;
	ntimeouts++;
	return FC_OK;
}

void
sched_timeout_cancel(int id)
{
	size_t i;

	for (i = 0; i < ntimeouts; i++) {
		if (timeouts[i].id == id) {
			timeouts[i] = timeouts[ntimeouts - 1];
			ntimeouts--;
			return;
		}
	}
}

/* ---- hooks ---- */

static enum fc_err
hook_add(struct hook *tab, size_t *n, const char *name,
    void (*status)(void *, char *, size_t), int (*busy)(void *), void *arg)
{
	if (*n == SCHED_HOOKS_MAX) {
		log_error("sched: hook %s: too many hooks", name);
		return FC_ENOMEM;
	}
	snprintf(tab[*n].name, sizeof(tab[*n].name), "%s", name);
	tab[*n].status = status;
	tab[*n].busy = busy;
	tab[*n].arg = arg;
	(*n)++;
	return FC_OK;
}

enum fc_err
sched_status_add(const char *name, void (*fn)(void *, char *, size_t),
    void *arg)
{
	if (fn == NULL)
		return FC_EINVAL;
	return hook_add(status_hooks, &nstatus_hooks, name, fn, NULL, arg);
}

enum fc_err
sched_drain_add(const char *name, int (*busy)(void *), void *arg)
{
	if (busy == NULL)
		return FC_EINVAL;
	return hook_add(drain_hooks, &ndrain_hooks, name, NULL, busy, arg);
}

enum fc_err
sched_poller_add(const char *name,
    int (*prepare)(void *arg, struct pollfd *fds, int max, int *timeout_ms),
    void (*dispatch)(void *arg, const struct pollfd *fds, int n), void *arg)
{
	if (prepare == NULL || dispatch == NULL)
		return FC_EINVAL;
	if (npollers == SCHED_HOOKS_MAX) {
		log_error("sched: poller %s: too many pollers", name);
		return FC_ENOMEM;
	}
	snprintf(pollers[npollers].name, sizeof(pollers[npollers].name), "%s",
	    name);
	pollers[npollers].prepare = prepare;
	pollers[npollers].dispatch = dispatch;
	pollers[npollers].arg = arg;
	npollers++;
	return FC_OK;
}

void
sched_reload_set(void (*fn)(void *), void *arg)
{
	reload_fn = fn;
	reload_arg = arg;
}

/* ---- systemd ---- */

/* Composes "name: phrase; name: phrase" from the status hooks. */
static void
status_compose(char *out, size_t len)
{
	char part[128];
	size_t i, used = 0;
	int n;

	out[0] = '\0';
	for (i = 0; i < nstatus_hooks; i++) {
		part[0] = '\0';
		status_hooks[i].status(status_hooks[i].arg, part, sizeof(part));
		part[sizeof(part) - 1] = '\0';
		n = snprintf(out + used, len - used, "%s%s: %s",
		    used ? "; " : "", status_hooks[i].name, part);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (used == 0)
		snprintf(out, len, "running");
}

/* Sends STATUS= when it changed (always when force). */
static void
status_send(int force)
{
	char st[SCHED_STATUS_LEN];

	status_compose(st, sizeof(st));
	if (!force && strcmp(st, last_status) == 0)
		return;
	memcpy(last_status, st, sizeof(st));
	sd_notifyf(0, "STATUS=%s", st);
}

void
sched_ready(void)
{
	char st[SCHED_STATUS_LEN];

	status_compose(st, sizeof(st));
	memcpy(last_status, st, sizeof(st));
	sd_notifyf(0, "READY=1\nSTATUS=%s", st);
	ready_sent = 1;
	log_info("ready: %s", st);
}

/* ---- the loop ---- */

void
sched_stop(void)
{
	atomic_store(&stop_asked, 1);
	sched_wake();
}

int
sched_stopping(void)
{
	return atomic_load(&stop_asked);
}

void
sched_wake(void)
{
	uint64_t one = 1;

	if (wake_fd >= 0)
		(void)!write(wake_fd, &one, sizeof(one));
}

/* Reads every pending signal. Sets *reload for SIGHUP; counts stops. */
static void
signals_read(int *reload, int *stops)
{
	struct signalfd_siginfo si;

	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			*reload = 1;
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			(*stops)++;
			log_info("signal %s received: stopping",
			    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		}
	}
}

/* Runs every timeout due by now; a callback may add or cancel others. */
static void
timeouts_run(long long now)
{
	size_t i = 0;

	while (i < ntimeouts) {
		if (timeouts[i].due_ms <= now) {
			struct timeout t = timeouts[i];
			timeouts[i] = timeouts[ntimeouts - 1];
			ntimeouts--;
			t.fn(t.arg);
			i = 0;		/* the array may have changed */
			continue;
		}
		i++;
	}
}

static void
jobs_run(long long now)
{
	size_t i;

	for (i = 0; i < SCHED_JOBS_MAX && !sched_stopping(); i++) {
		struct job *j = &jobs[i];
		if (!j->used)
			continue;
		if (j->due_ms > now && !atomic_exchange(&j->kicked, 0))
			continue;
		atomic_store(&j->kicked, 0);
		j->due_ms = now + j->interval_ms;
		log_debug("sched: running job %s", j->name);
		j->fn(j->arg);
	}
}

static int
drain_busy(void)
{
	size_t i;

	for (i = 0; i < ndrain_hooks; i++)
		if (drain_hooks[i].busy(drain_hooks[i].arg)) {
			log_debug("sched: waiting for %s", drain_hooks[i].name);
			return 1;
		}
	return 0;
}

static long long
min_ll(long long a, long long b)
{
	return a < b ? a : b;
}

/* The poll timeout in ms: the earliest deadline of anything pending. */
static int
poll_timeout(long long now, long long next_wd, long long next_status,
    long long drain_end)
{
	long long due = next_status;
	size_t i;

	if (next_wd > 0)
		due = min_ll(due, next_wd);
	if (drain_end > 0)
		due = min_ll(due, drain_end);
	for (i = 0; i < ntimeouts; i++)
		due = min_ll(due, timeouts[i].due_ms);
	if (drain_end == 0)
		for (i = 0; i < SCHED_JOBS_MAX; i++)
			if (jobs[i].used)
				due = min_ll(due, jobs[i].due_ms);
	if (due <= now)
		return 0;
	if (due - now > 60000)
		return 60000;
	return (int)(due - now);
}

enum fc_err
sched_run(void)
{
	struct pollfd *pfds = NULL;
	size_t cap = 0, n, i;
	uint64_t usec = 0;
	long long wd_ms = 0, next_wd = 0, next_status, drain_end = 0, now;
	int reload = 0, stops = 0, rc, ptimeout;
	size_t nwatches_turn;
	enum fc_err result = FC_OK;

	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
		wd_ms = (long long)(usec / 2000);
		next_wd = sched_now_ms();
		log_info("watchdog: pinging every %lld ms", wd_ms);
	}
	next_status = sched_now_ms() + SCHED_STATUS_MS;

	for (;;) {
		now = sched_now_ms();
		if (wd_ms > 0 && now >= next_wd) {
			sd_notify(0, "WATCHDOG=1");
			next_wd = now + wd_ms;
		}
		if (now >= next_status) {
			if (ready_sent)
				status_send(0);
			next_status = now + SCHED_STATUS_MS;
		}
		if (stops > 0 && drain_end == 0) {
			atomic_store(&stop_asked, 1);
		}
		if (sched_stopping() && drain_end == 0) {
			sd_notify(0, "STOPPING=1\nSTATUS=stopping");
			drain_end = now + SCHED_DRAIN_MS;
		}
		if (drain_end > 0 && (stops > 1 || now >= drain_end ||
		    !drain_busy())) {
			if (now >= drain_end)
				log_warn("stop: in-flight work not finished "
				    "after %d ms; stopping anyway", SCHED_DRAIN_MS);
			break;
		}

		n = 2 + nwatches + npollers * SCHED_POLLER_FDS;
		if (n > cap) {
			struct pollfd *np = realloc(pfds, n * sizeof(*np));
			if (np == NULL) {
				log_error("sched: out of memory");
				result = FC_ENOMEM;
				break;
			}
			pfds = np;
			cap = n;
		}
		pfds[0].fd = sig_fd;
		pfds[0].events = POLLIN;
		pfds[1].fd = wake_fd;
		pfds[1].events = POLLIN;
		for (i = 0; i < nwatches; i++) {
			pfds[2 + i].fd = watches[i].fd;
			pfds[2 + i].events = watches[i].events;
		}
		n = 2 + nwatches;
		nwatches_turn = nwatches;
		ptimeout = poll_timeout(now, next_wd, next_status, drain_end);
		for (i = 0; i < npollers; i++) {
			int t = -1, c;
			c = pollers[i].prepare(pollers[i].arg, pfds + n,
			    SCHED_POLLER_FDS, &t);
			if (c < 0 || c > SCHED_POLLER_FDS)
				c = 0;
			pollers[i].first = n;
			pollers[i].count = c;
			n += (size_t)c;
			if (t >= 0 && t < ptimeout)
				ptimeout = t;
		}
		for (i = 0; i < n; i++)
			pfds[i].revents = 0;

		rc = poll(pfds, n, ptimeout);
		if (rc < 0 && errno != EINTR) {
			log_error("sched: poll: %s", strerror(errno));
			result = FC_EIO;
			break;
		}
		if (rc > 0) {
			if (pfds[0].revents & POLLIN)
				signals_read(&reload, &stops);
			if (pfds[1].revents & POLLIN) {
				uint64_t v;
				(void)!read(wake_fd, &v, sizeof(v));
			}
			/* A callback may change the watch list: look each fd
			 * up again before calling it. */
			for (i = 2; i < 2 + nwatches_turn; i++) {
				size_t k;
				if (pfds[i].revents == 0)
					continue;
				for (k = 0; k < nwatches; k++)
					if (watches[k].fd == pfds[i].fd)
						break;
				if (k < nwatches)
					watches[k].fn(pfds[i].fd, pfds[i].revents,
					    watches[k].arg);
			}
		}
		/* Pollers are driven every turn: on events and on their
		 * timeouts alike (libcurl wants both). */
		for (i = 0; i < npollers; i++)
			pollers[i].dispatch(pollers[i].arg,
			    pfds + pollers[i].first, pollers[i].count);
		timeouts_run(sched_now_ms());
		if (reload && !sched_stopping()) {
			reload = 0;
			sd_notify(0, "RELOADING=1\nSTATUS=reloading");
			log_info("SIGHUP received: reloading");
			if (reload_fn != NULL)
				reload_fn(reload_arg);
			sd_notify(0, "READY=1");
			status_send(1);
		}
		if (!sched_stopping())
			jobs_run(sched_now_ms());
	}
	free(pfds);
	return result;
}
