/*
 * check_scheduler.c — the main loop: timeouts, periodic jobs, kicks, fd
 * watches, SIGHUP reload, SIGTERM with in-flight work drained (and the drain
 * bounded), sched_stop from another thread. Real signals, real pipes.
 */
#include "fc_build.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scheduler.h"

static int order[8], norder;
static int ticks, reloads, busy_flag, fd_hits;

static void
note(void *arg)
{
	order[norder++] = (int)(long)arg;
}

static void
stop_cb(void *arg)
{
	sched_stop();
}

static void
term_cb(void *arg)
{
	raise(SIGTERM);
}

static void
hup_cb(void *arg)
{
	raise(SIGHUP);
}

static void
tick(void *arg)
{
	ticks++;
}

static void
on_reload(void *arg)
{
	reloads++;
}

static int
busy(void *arg)
{
	return busy_flag;
}

static void
unbusy(void *arg)
{
	busy_flag = 0;
}

static void
on_fd(int fd, short revents, void *arg)
{
	char c;

	ck_assert(revents & POLLIN);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	fd_hits++;
	if (fd_hits == 2)
		sched_fd_watch(fd, 0, NULL, NULL);
}

static void
setup(void)
{
	norder = ticks = reloads = busy_flag = fd_hits = 0;
	ck_assert_int_eq(sched_init(), FC_OK);
}

static void
teardown(void)
{
	sched_finalise();
}

START_TEST(timeouts_in_order_and_cancel)
{
	int a, b, c, d;

	ck_assert_int_eq(sched_timeout_add(200, note, (void *)3L, &a), FC_OK);
	ck_assert_int_eq(sched_timeout_add(0, note, (void *)1L, &b), FC_OK);
	ck_assert_int_eq(sched_timeout_add(100, note, (void *)2L, &c), FC_OK);
	ck_assert_int_eq(sched_timeout_add(150, note, (void *)9L, &d), FC_OK);
	sched_timeout_cancel(d);
	sched_timeout_cancel(12345);	/* unknown: ignored */
	ck_assert_int_eq(sched_timeout_add(400, stop_cb, NULL, &d), FC_OK);
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_eq(norder, 3);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 2);
	ck_assert_int_eq(order[2], 3);
	ck_assert_int_eq(sched_timeout_add(-1, note, NULL, &d), FC_EINVAL);
}
END_TEST

START_TEST(jobs_run_and_kick)
{
	int id, t;
	long long t0 = sched_now_ms();

	ck_assert_int_eq(sched_job_add("bad", 0, tick, NULL, &id), FC_EINVAL);
	ck_assert_int_eq(sched_job_add("bad", 86401, tick, NULL, &id), FC_EINVAL);
	ck_assert_int_eq(sched_job_add("tick", 1, tick, NULL, &id), FC_OK);
	sched_job_kick(id);		/* runs at the first turn */
	ck_assert_int_eq(sched_timeout_add(2500, stop_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_run(), FC_OK);
	/* kick + at least one interval (1 s) in 2.5 s; at most kick + 2. */
	ck_assert_int_ge(ticks, 2);
	ck_assert_int_le(ticks, 3);
	ck_assert_int_ge(sched_now_ms() - t0, 2400);
	sched_job_remove(id);
	ck_assert_int_eq(sched_job_interval_set(id, 5), FC_EINVAL);
}
END_TEST

START_TEST(fd_watch)
{
	int p[2], t;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(sched_fd_watch(-1, POLLIN, on_fd, NULL), FC_EINVAL);
	ck_assert_int_eq(sched_fd_watch(p[0], POLLIN, on_fd, NULL), FC_OK);
	ck_assert_int_eq(write(p[1], "abc", 3), 3);
	ck_assert_int_eq(sched_timeout_add(500, stop_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_run(), FC_OK);
	/* the callback removed its own watch after the second byte */
	ck_assert_int_eq(fd_hits, 2);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(sighup_reloads)
{
	int t;

	sched_reload_set(on_reload, NULL);
	ck_assert_int_eq(sched_timeout_add(50, hup_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_timeout_add(300, stop_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_eq(reloads, 1);
}
END_TEST

START_TEST(sigterm_drains_in_flight_work)
{
	int t, id;
	long long t0;

	busy_flag = 1;
	ck_assert_int_eq(sched_drain_add("work", busy, NULL), FC_OK);
	ck_assert_int_eq(sched_job_add("tick", 1, tick, NULL, &id), FC_OK);
	ck_assert_int_eq(sched_timeout_add(50, term_cb, NULL, &t), FC_OK);
	/* the in-flight work finishes 500 ms after SIGTERM */
	ck_assert_int_eq(sched_timeout_add(550, unbusy, NULL, &t), FC_OK);
	t0 = sched_now_ms();
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_eq(busy_flag, 0);
	ck_assert_int_ge(sched_now_ms() - t0, 500);
	ck_assert(sched_stopping());
	ck_assert_int_eq(ticks, 0);	/* no new job after the stop */
}
END_TEST

START_TEST(drain_is_bounded)
{
	int t;
	long long t0;

	busy_flag = 1;		/* never finishes */
	ck_assert_int_eq(sched_drain_add("stuck", busy, NULL), FC_OK);
	ck_assert_int_eq(sched_timeout_add(0, term_cb, NULL, &t), FC_OK);
	t0 = sched_now_ms();
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_ge(sched_now_ms() - t0, SCHED_DRAIN_MS - 50);
	ck_assert_int_lt(sched_now_ms() - t0, 5000);
}
END_TEST

START_TEST(second_sigterm_stops_at_once)
{
	int t;
	long long t0;

	busy_flag = 1;
	ck_assert_int_eq(sched_drain_add("stuck", busy, NULL), FC_OK);
	ck_assert_int_eq(sched_timeout_add(0, term_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_timeout_add(200, term_cb, NULL, &t), FC_OK);
	t0 = sched_now_ms();
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_lt(sched_now_ms() - t0, SCHED_DRAIN_MS - 1000);
}
END_TEST

static void *
stopper(void *arg)
{
	usleep(200000);
	sched_stop();
	return NULL;
}

START_TEST(stop_from_another_thread)
{
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, stopper, NULL), 0);
	ck_assert_int_eq(sched_run(), FC_OK);
	pthread_join(th, NULL);
}
END_TEST

static int poll_pipe[2], disp_calls, disp_bytes;

static int
pl_prepare(void *arg, struct pollfd *fds, int max, int *timeout_ms)
{
	ck_assert_int_ge(max, 1);
	ck_assert_int_eq(*timeout_ms, -1);
	fds[0].fd = poll_pipe[0];
	fds[0].events = POLLIN;
	*timeout_ms = 100;
	return 1;
}

static void
pl_dispatch(void *arg, const struct pollfd *fds, int n)
{
	char c;

	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(fds[0].fd, poll_pipe[0]);
	disp_calls++;
	if (fds[0].revents & POLLIN) {
		ck_assert_int_eq(read(poll_pipe[0], &c, 1), 1);
		disp_bytes++;
	}
}

static void
pl_write(void *arg)
{
	ck_assert_int_eq(write(poll_pipe[1], "x", 1), 1);
}

START_TEST(poller_events_and_timeouts)
{
	int t;

	disp_calls = disp_bytes = 0;
	ck_assert_int_eq(pipe(poll_pipe), 0);
	ck_assert_int_eq(sched_poller_add("p", NULL, pl_dispatch, NULL),
	    FC_EINVAL);
	ck_assert_int_eq(sched_poller_add("p", pl_prepare, pl_dispatch, NULL),
	    FC_OK);
	ck_assert_int_eq(sched_timeout_add(300, pl_write, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_timeout_add(1000, stop_cb, NULL, &t), FC_OK);
	ck_assert_int_eq(sched_run(), FC_OK);
	ck_assert_int_eq(disp_bytes, 1);
	/* the poller's 100 ms limit woke the loop: about 10 turns in 1 s
	 * (no other deadline is that close); at least 5 on a loaded box */
	ck_assert_int_ge(disp_calls, 5);
	close(poll_pipe[0]);
	close(poll_pipe[1]);
}
END_TEST

static void
st(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%d queued", 7);
}

START_TEST(hooks_limits)
{
	int i;

	for (i = 0; i < 32; i++)
		ck_assert_int_eq(sched_status_add("s", st, NULL), FC_OK);
	ck_assert_int_eq(sched_status_add("s", st, NULL), FC_ENOMEM);
	ck_assert_int_eq(sched_status_add("s", NULL, NULL), FC_EINVAL);
	ck_assert_int_eq(sched_drain_add("d", NULL, NULL), FC_EINVAL);
	sched_ready();		/* no NOTIFY_SOCKET: a no-op that must not fail */
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("loop");
	SRunner *sr;
	int failed;

	unsetenv("NOTIFY_SOCKET");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, timeouts_in_order_and_cancel);
	tcase_add_test(tc, jobs_run_and_kick);
	tcase_add_test(tc, fd_watch);
	tcase_add_test(tc, sighup_reloads);
	tcase_add_test(tc, sigterm_drains_in_flight_work);
	tcase_add_test(tc, drain_is_bounded);
	tcase_add_test(tc, second_sigterm_stops_at_once);
	tcase_add_test(tc, stop_from_another_thread);
	tcase_add_test(tc, hooks_limits);
	tcase_add_test(tc, poller_events_and_timeouts);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
