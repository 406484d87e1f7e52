/*
 * testd-signals.h — how the test daemons (httpd-testd, api-testd,
 * enrol-testd) wait for SIGTERM/SIGINT. The signals are blocked before
 * any thread starts and taken with sigwait() by the main thread: with a
 * handler and pause() instead, the kernel may deliver the signal to a
 * server thread, the handler sets the flag and the main thread sleeps on
 * in pause() (a lost wake-up that made tests/httpd.sh fail now and then).
 */
#ifndef FC_TESTD_SIGNALS_H
#define FC_TESTD_SIGNALS_H

#include <pthread.h>
#include <signal.h>

static sigset_t testd_stop_sigs;

/* Call before the first thread is created. */
static inline void
testd_signals_block(void)
{
	sigemptyset(&testd_stop_sigs);
	sigaddset(&testd_stop_sigs, SIGTERM);
	sigaddset(&testd_stop_sigs, SIGINT);
	(void)pthread_sigmask(SIG_BLOCK, &testd_stop_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Returns once SIGTERM or SIGINT arrived. */
static inline void
testd_signals_wait(void)
{
	int sig = 0;

	while (sigwait(&testd_stop_sigs, &sig) != 0)
		;
}

#endif
