/* SIGINT / SIGTERM handling for the CLI commands (see signals.h). */
#include "signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Shared with the handler, so only lock-free atomics: the handler may run
 * on any thread, also while the main thread sets a handle. */
static lm_sender *watched_sender;
static lm_receiver *watched_receiver;
static const char *watched_file[SIG_FILES];
static int caught;

static void cancel_watched(void)
{
	lm_sender *s = __atomic_load_n(&watched_sender, __ATOMIC_SEQ_CST);
	lm_receiver *r = __atomic_load_n(&watched_receiver, __ATOMIC_SEQ_CST);

	if (s)
		lm_sender_cancel(s);
	if (r)
		lm_receiver_cancel(r);
}

static void on_signal(int signo)
{
	if (__atomic_exchange_n(&caught, signo, __ATOMIC_SEQ_CST)) {
		/* The user insists: the cleanup the first one started is not
		 * awaited, but no partial file is left behind. */
		for (int i = 0; i < SIG_FILES; i++) {
			const char *f = __atomic_load_n(&watched_file[i], __ATOMIC_SEQ_CST);
			if (f && *f)
				unlink(f);
		}
		_exit(128 + signo);
	}
	cancel_watched();
}

void sig_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking call in the main thread (connect's poll,
	 * fallocate) returns EINTR and the cancel is seen at once. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void sig_watch_sender(lm_sender *s)
{
	__atomic_store_n(&watched_sender, s, __ATOMIC_SEQ_CST);
	if (s && sig_caught())
		lm_sender_cancel(s);
}

void sig_watch_receiver(lm_receiver *r)
{
	__atomic_store_n(&watched_receiver, r, __ATOMIC_SEQ_CST);
	if (r && sig_caught())
		lm_receiver_cancel(r);
}

void sig_watch_file(int slot, const char *path)
{
	if (slot >= 0 && slot < SIG_FILES)
		__atomic_store_n(&watched_file[slot], path, __ATOMIC_SEQ_CST);
}

int sig_caught(void)
{
	return __atomic_load_n(&caught, __ATOMIC_SEQ_CST);
}

int sig_status(int failed)
{
	int signo = sig_caught();

	if (!failed)
		return 0;
	return signo ? 128 + signo : 1;
}
