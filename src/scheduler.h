/*
 * scheduler.h — fleetcertd's main loop. One thread (the main thread) runs
 * sched_run(): it waits in poll(2) on the descriptors modules registered,
 * runs one-shot timeouts and periodic jobs when they are due, pings the
 * systemd watchdog, and turns SIGTERM/SIGINT/SIGHUP (read from a signalfd,
 * so no work happens in a signal handler) into stop and reload.
 *
 * Everything here is called from the main thread only, except sched_wake(),
 * sched_job_kick() and sched_stop(), which any thread may call.
 *
 * Hooking a module in (see main.c for the order):
 *   - periodic work:  sched_job_add("renew", cfg->renew_interval_seconds,
 *                     renew_scan, ctx, &id);  sched_job_kick(id) runs it soon.
 *   - descriptors:    sched_fd_watch(fd, POLLIN, on_readable, ctx); calling it
 *                     again changes the events; events 0 removes the fd.
 *   - timeouts:       sched_timeout_add(ms, fn, ctx, &id) / sched_timeout_cancel.
 *     libcurl multi maps onto these two: CURLMOPT_SOCKETFUNCTION calls
 *     sched_fd_watch (CURL_POLL_REMOVE -> events 0), CURLMOPT_TIMERFUNCTION
 *     calls sched_timeout_cancel + sched_timeout_add (ms -1: cancel only),
 *     and both callbacks call curl_multi_socket_action.
 *     A module that owns a whole set of descriptors (curl_multi_fdset,
 *     curl_multi_timeout) registers a poller instead: sched_poller_add.
 *   - backlog:        sched_status_add("delivery", fn, ctx): fn writes a short
 *                     phrase ("5 queued, 2 in flight") for systemd's STATUS=.
 *   - shutdown:       sched_drain_add("delivery", busy, ctx): after SIGTERM the
 *                     loop stops starting jobs and keeps serving fds and
 *                     timeouts while any busy() returns non-zero, for at most
 *                     SCHED_DRAIN_MS, then sched_run returns.
 */
#ifndef FC_SCHED_H
#define FC_SCHED_H

#include <poll.h>
#include <stddef.h>

#include "fc.h"

#define SCHED_DRAIN_MS		4000	/* in-flight work after SIGTERM */
#define SCHED_STATUS_MS		10000	/* how often STATUS= is refreshed */
#define SCHED_NAME_MAX		32
#define SCHED_POLLER_FDS	256	/* descriptors one poller may add */

/*
 * Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (threads created
 * afterwards inherit the mask, so call it before any module starts a
 * thread) and opens the signalfd and the wake-up eventfd. FC_OK or FC_EIO.
 */
enum fc_err sched_init(void);
/* Drops every job, fd, timeout and hook; restores the signal mask. */
void sched_finalise(void);

/*
 * Runs fn(arg) every interval_seconds (1..86400), first after one interval
 * (sched_job_kick to run it at once). name is copied (for logs). *id is set
 * on FC_OK; FC_EINVAL for a bad interval, FC_ENOMEM.
 */
enum fc_err sched_job_add(const char *name, int interval_seconds,
    void (*fn)(void *arg), void *arg, int *id);
/* Changes the interval (SIGHUP); the next run is rescheduled from now. */
enum fc_err sched_job_interval_set(int id, int interval_seconds);
void sched_job_remove(int id);
/* Asks for job id to run at the next loop turn. Any thread. */
void sched_job_kick(int id);

/*
 * Watches fd for events (POLLIN | POLLOUT); fn(fd, revents, arg) runs when
 * poll reports it. A second call for the same fd replaces events, fn and
 * arg; events 0 stops watching. FC_OK, FC_EINVAL (fd < 0), FC_ENOMEM.
 */
enum fc_err sched_fd_watch(int fd, short events,
    void (*fn)(int fd, short revents, void *arg), void *arg);

/*
 * Runs fn(arg) once, ms milliseconds from now (0: next loop turn). *id is
 * set on FC_OK; it is no longer valid once fn has started.
 */
enum fc_err sched_timeout_add(long ms, void (*fn)(void *arg), void *arg,
    int *id);
/* Cancels a pending timeout; an unknown or fired id is ignored. */
void sched_timeout_cancel(int id);

/*
 * A poller adds descriptors of its own to every wait: before each poll,
 * prepare(arg, fds, max, &timeout_ms) fills up to max (SCHED_POLLER_FDS)
 * pollfd entries (fd and events) and returns how many, and may lower the
 * wait with *timeout_ms >= 0 (it starts at -1: no limit of its own). After
 * each poll, dispatch(arg, fds, n) gets the same entries with revents set,
 * whether or not any is ready (so a timeout is noticed). Loop thread only.
 */
enum fc_err sched_poller_add(const char *name,
    int (*prepare)(void *arg, struct pollfd *fds, int max, int *timeout_ms),
    void (*dispatch)(void *arg, const struct pollfd *fds, int n), void *arg);

/*
 * Backlog reporter for STATUS=: fn writes a NUL-terminated phrase of at most
 * len bytes into buf (nothing secret). Called from the loop thread.
 */
enum fc_err sched_status_add(const char *name,
    void (*fn)(void *arg, char *buf, size_t len), void *arg);

/* In-flight work reporter for shutdown: busy(arg) != 0 while work remains. */
enum fc_err sched_drain_add(const char *name, int (*busy)(void *arg),
    void *arg);

/*
 * What SIGHUP does: fn(arg) runs on the loop thread, between RELOADING=1
 * and READY=1. Only one handler (main.c's); a later call replaces it.
 */
void sched_reload_set(void (*fn)(void *arg), void *arg);

/*
 * Tells systemd the service is up (READY=1 with a first STATUS=). main.c
 * calls it once the database, the signer and every listener are up.
 */
void sched_ready(void);

/*
 * The loop. Returns FC_OK after SIGTERM/SIGINT or sched_stop() once
 * in-flight work drained (or SCHED_DRAIN_MS passed), FC_EIO if poll fails.
 */
enum fc_err sched_run(void);
/* Asks the loop to stop, as SIGTERM does. Any thread. */
void sched_stop(void);
/* Non-zero once a stop was asked for (jobs may cut long work short). */
int sched_stopping(void);
/* Wakes the loop from poll (another thread queued work). Any thread. */
void sched_wake(void);

/* Monotonic milliseconds, the loop's clock. */
long long sched_now_ms(void);

#endif
