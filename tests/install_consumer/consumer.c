/* A program built against an installed livemig (tests/test_install.sh):
 * only <livemig.h> from the install, no flag from the source tree. It
 * migrates 4 MiB over two socketpair channels, the receiver on its own
 * thread, and checks that every byte arrived. Exit status 0 on success. */
#include <livemig.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CHANNELS 2
#define LEN      (4u << 20)

static int fail(const char *what, int rc, const char *detail)
{
	fprintf(stderr, "consumer: %s: %s (%s)\n", what, lm_strerror(rc), detail ? detail : "");
	return 1;
}

static void *receive(void *arg)
{
	lm_receiver *r = arg;
	static int rc;

	rc = lm_receiver_run(r);
	return &rc;
}

int main(void)
{
	int sv[CHANNELS][2], rx_fds[CHANNELS], tx_fds[CHANNELS], rc, *rx_rc;
	lm_receiver_config rcfg = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config scfg = LM_SENDER_CONFIG_INIT;
	lm_stats st = LM_STATS_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	unsigned char *src = malloc(LEN), *dst = calloc(1, LEN);
	pthread_t th;

	if (lm_version_number() != LM_VERSION_NUMBER) {
		fprintf(stderr, "consumer: library %s, header %d.%d.%d\n", lm_version(),
			LM_VERSION_MAJOR, LM_VERSION_MINOR, LM_VERSION_PATCH);
		return 1;
	}
	if (!src || !dst)
		return 1;
	for (unsigned i = 0; i < LEN; i++) /* some zero pages, the rest varied */
		src[i] = (i / 4096) % 5 ? (unsigned char)(i * 2654435761u >> 13) : 0;
	for (int i = 0; i < CHANNELS; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]))
			return 1;
		tx_fds[i] = sv[i][0];
		rx_fds[i] = sv[i][1];
	}
	rcfg.timeout_ms = 20000;
	if ((rc = lm_receiver_new(&r, &rcfg)) ||
	    (rc = lm_receiver_add_region(r, "ram", dst, LEN, 1)) ||
	    (rc = lm_receiver_accept_fds(r, rx_fds, CHANNELS)))
		return fail("receiver", rc, r ? lm_receiver_errmsg(r) : NULL);
	if (pthread_create(&th, NULL, receive, r))
		return 1;
	scfg.channels = CHANNELS;
	scfg.codec = LM_CODEC_LZ4;
	if ((rc = lm_sender_new(&s, &scfg)) || (rc = lm_sender_add_region(s, "ram", src, LEN)) ||
	    (rc = lm_sender_connect_fds(s, tx_fds, CHANNELS)) || (rc = lm_sender_run(s))) {
		fail("sender", rc, s ? lm_sender_errmsg(s) : NULL);
		lm_sender_cancel(s);
		lm_receiver_cancel(r);
		pthread_join(th, NULL);
		return 1;
	}
	pthread_join(th, (void **)&rx_rc);
	if (*rx_rc)
		return fail("receiver run", *rx_rc, lm_receiver_errmsg(r));
	if (memcmp(src, dst, LEN)) {
		fprintf(stderr, "consumer: the received bytes differ\n");
		return 1;
	}
	if ((rc = lm_sender_stats(s, &st)) || st.status != LM_STATUS_COMPLETED)
		return fail("stats", rc, lm_status_name(st.status));
	printf("consumer: livemig %s, %u bytes over %u channels, intact\n", lm_version(), LEN,
	       st.channels);
	lm_sender_free(s);
	lm_receiver_free(r);
	free(src);
	free(dst);
	return 0;
}
