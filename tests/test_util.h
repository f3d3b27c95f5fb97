/*
 * Small helpers the end-to-end C tests share: a monotonic clock, a sleep
 * that survives signals, a seeded xorshift for reproducible content, and a
 * receiver run on its own thread.
 */
#ifndef LM_TEST_UTIL_H
#define LM_TEST_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "livemig.h"

static inline uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* xorshift64*: the next value of the sequence seeded by *s (non-zero). */
static inline uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s * 0x2545F4914F6CDD1Dull;
}

/* pthread_create(&t, NULL, rx_thread, &ctx): lm_receiver_run() there. */
typedef struct rx_ctx {
	lm_receiver *r;
	int rc;
} rx_ctx;

static inline void *rx_thread(void *arg)
{
	rx_ctx *c = arg;

	c->rc = lm_receiver_run(c->r);
	return NULL;
}

#endif
