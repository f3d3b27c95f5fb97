/*
 * A library must not kill its host with SIGPIPE. The CLI ignores SIGPIPE,
 * so its tests never saw it: an embedding program (examples/mini_vmm) with
 * the default disposition died (exit 141) at the end of every TLS
 * migration, when the receiver had verified and closed and the sender sent
 * its close_notify; plaintext sockets already wrote with MSG_NOSIGNAL.
 *
 * Here SIGPIPE keeps its default action, so a write to a closed peer
 * anywhere in the library ends this test with 141 (ctest: failed):
 *  1. TLS (PSK) migrations over socketpairs, run to completion, several
 *     times (the close race goes either way);
 *  2. a TLS migration whose receiver goes away mid-transfer: the sender
 *     fails with an error code.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "livemig.h"
#include "test_util.h"

#define LEN (8u << 20)
#define CH 2

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";

static uint8_t *image(void)
{
	uint8_t *p = malloc(LEN);
	uint64_t s = 42;

	for (size_t i = 0; p && i < LEN; i += 8) {
		uint64_t v = i % 16384 < 8192 ? xs(&s) : 0; /* half random, half zero */
		memcpy(p + i, &v, 8);
	}
	return p;
}

/* One migration of src over CH socketpairs; the receiver cancelled after
 * cancel_after_us when that is not 0. Returns the sender's code. */
static int migrate(const uint8_t *src, uint64_t cancel_after_us, int *rx_rc)
{
	lm_tls_config tls = {.psk = key, .psk_len = sizeof(key), .psk_identity = "test"};
	lm_sender_config sc = {.channels = CH, .tls = &tls, .timeout_ms = 5000};
	lm_receiver_config rc = {.tls = &tls, .timeout_ms = 5000};
	int sfd[CH], rfd[CH], rv;
	lm_sender *s = NULL;
	rx_ctx rx = {0};
	pthread_t t;
	uint8_t *dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(dst != MAP_FAILED);
	for (int i = 0; i < CH; i++) {
		int sv[2];
		CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		sfd[i] = sv[0];
		rfd[i] = sv[1];
	}
	CHECK_EQ(lm_receiver_new(&rx.r, &rc), 0);
	CHECK_EQ(lm_receiver_add_region(rx.r, "ram", dst, LEN, 1), 0);
	CHECK_EQ(lm_receiver_accept_fds(rx.r, rfd, CH), 0);
	CHECK_EQ(pthread_create(&t, NULL, rx_thread, &rx), 0);
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, LEN), 0);
	rv = lm_sender_connect_fds(s, sfd, CH);
	if (!rv && cancel_after_us) {
		sleep_us(cancel_after_us);
		lm_receiver_cancel(rx.r);
	}
	if (!rv)
		rv = lm_sender_run(s);
	pthread_join(t, NULL);
	if (!rv && !cancel_after_us)
		CHECK(!memcmp(dst, src, LEN));
	*rx_rc = rx.rc;
	lm_sender_free(s);
	lm_receiver_free(rx.r);
	munmap(dst, LEN);
	return rv;
}

int main(void)
{
	uint8_t *src = image();
	int rx_rc = 0, rv, failed = 0;

	CHECK(src != NULL);
	signal(SIGPIPE, SIG_DFL); /* as in a program that never thought of it */
	for (int i = 0; i < 5; i++) {
		rv = migrate(src, 0, &rx_rc);
		CHECK_EQ(rv, 0);
		CHECK_EQ(rx_rc, 0);
	}
	printf("sigpipe: 5 TLS migrations completed, the process alive\n");
	/* The receiver cancelled mid-transfer: at once, or a little later. */
	for (int i = 0; i < 4; i++) {
		rv = migrate(src, 1 + (uint64_t)i * 3000, &rx_rc);
		printf("sigpipe: receiver cancelled after %d us: sender %d (%s), receiver %d\n",
		       1 + i * 3000, rv, lm_strerror(rv), rx_rc);
		failed += rv != 0;
	}
	/* A cancel may come after the receiver verified; at least the early
	 * ones must have failed the sender, without a signal. */
	CHECK(failed >= 1);
	free(src);
	TEST_DONE("test_sigpipe");
}
