/*
 * A rate-limited TCP proxy for tests: listens on 127.0.0.1, and relays each
 * connection it accepts to a target port, the sender->receiver direction
 * through one token bucket shared by all connections (a link), the other
 * way unshaped. The rate can be changed while it runs (shaper_set_rate), or
 * switched once after a number of bytes went through (switch_after /
 * switch_rate), which does not depend on timing.
 *
 * It also reads the plaintext frame stream it forwards (12-byte header:
 * magic, kind, flags, reserved, u32 length; docs/protocol.md) and counts
 * each DATA frame's payload bytes by its codec (body offset 36, low 8 bits),
 * separately before and after the switch (phase 0 and 1; shaper_set_rate
 * also starts phase 1).
 *
 *   shaper sh;
 *   shaper_start(&sh, receiver_port, 40 << 20);   // bytes/s, 0 = unshaped
 *   ... connect the sender to sh.port ...
 *   shaper_stop(&sh);                              // joins every thread
 */
#ifndef LM_TEST_SHAPER_H
#define LM_TEST_SHAPER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SHAPER_MAX_CONNS 16
#define SHAPER_CODECS 8

struct shaper;

typedef struct shaper_pipe {
	struct shaper *sh;
	int from, to, shaped;
	pthread_t tid;
	/* Frame parser state (shaped direction only; its thread's). */
	uint8_t hdr[12 + 40];
	uint32_t have, need;   /* header bytes held, of need */
	uint64_t skip;         /* body bytes left to pass unparsed */
} shaper_pipe;

typedef struct shaper {
	int lfd, port, target;
	pthread_t acceptor;
	int stop;              /* atomic */
	pthread_mutex_t lock;  /* guards everything below */
	double rate;           /* bytes/s, 0 = unshaped */
	double tokens;
	uint64_t last_ns;
	uint64_t forwarded;    /* shaped bytes */
	uint64_t switch_after; /* 0: never */
	double switch_rate;
	int phase;
	uint64_t payload[2][SHAPER_CODECS]; /* DATA payload bytes by phase, codec */
	uint64_t packets[2][SHAPER_CODECS];
	shaper_pipe pipes[2 * SHAPER_MAX_CONNS];
	int npipes;
} shaper;

static inline uint64_t shaper_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void shaper_set_rate(shaper *sh, double rate)
{
	pthread_mutex_lock(&sh->lock);
	sh->rate = rate;
	sh->tokens = 0;
	sh->last_ns = shaper_now_ns();
	sh->phase = 1;
	pthread_mutex_unlock(&sh->lock);
}

/* Waits until n bytes may pass (the bucket holds at most 64 KiB, so an
 * idle link buys no burst). */
static inline void shaper_take(shaper *sh, size_t n)
{
	pthread_mutex_lock(&sh->lock);
	sh->forwarded += n;
	if (sh->switch_after && sh->forwarded >= sh->switch_after && !sh->phase) {
		sh->rate = sh->switch_rate;
		sh->tokens = 0;
		sh->last_ns = shaper_now_ns();
		sh->phase = 1;
	}
	while (sh->rate > 0) {
		uint64_t now = shaper_now_ns();
		double wait;
		sh->tokens += (double)(now - sh->last_ns) * sh->rate / 1e9;
		if (sh->tokens > 65536)
			sh->tokens = 65536;
		sh->last_ns = now;
		if (sh->tokens >= (double)n) {
			sh->tokens -= (double)n;
			break;
		}
		wait = ((double)n - sh->tokens) / sh->rate;
		pthread_mutex_unlock(&sh->lock);
		{
			struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&sh->lock);
	}
	pthread_mutex_unlock(&sh->lock);
}

/* Counts the DATA frames in the bytes passing (p, n). */
static inline void shaper_parse(shaper_pipe *pp, const uint8_t *p, size_t n)
{
	shaper *sh = pp->sh;

	while (n) {
		if (pp->skip) {
			size_t k = pp->skip < n ? (size_t)pp->skip : n;
			pp->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		if (!pp->need)
			pp->need = 12;
		while (n && pp->have < pp->need) {
			pp->hdr[pp->have++] = *p++;
			n--;
		}
		if (pp->have < pp->need)
			return;
		{
			uint32_t len = (uint32_t)pp->hdr[8] << 24 | (uint32_t)pp->hdr[9] << 16 |
				       (uint32_t)pp->hdr[10] << 8 | pp->hdr[11];
			if (pp->hdr[4] == 3 && pp->need == 12 && len >= 40) {
				pp->need = 52; /* the data header too */
				continue;
			}
			if (pp->need == 52) {
				const uint8_t *d = pp->hdr + 12;
				uint32_t payload = (uint32_t)d[32] << 24 | (uint32_t)d[33] << 16 |
						   (uint32_t)d[34] << 8 | d[35];
				unsigned codec = d[37] & (SHAPER_CODECS - 1);
				pthread_mutex_lock(&sh->lock);
				sh->payload[sh->phase][codec] += payload;
				sh->packets[sh->phase][codec]++;
				pthread_mutex_unlock(&sh->lock);
				pp->skip = len - 40;
			} else {
				pp->skip = len;
			}
			pp->have = pp->need = 0;
		}
	}
}

static inline void *shaper_pipe_main(void *arg)
{
	shaper_pipe *pp = arg;
	static __thread uint8_t buf[65536];

	for (;;) {
		struct pollfd pf = {pp->from, POLLIN, 0};
		ssize_t n;
		if (__atomic_load_n(&pp->sh->stop, __ATOMIC_RELAXED))
			break;
		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = read(pp->from, buf, pp->shaped ? 16384 : sizeof(buf));
		if (n <= 0)
			break;
		if (pp->shaped) {
			shaper_parse(pp, buf, (size_t)n);
			shaper_take(pp->sh, (size_t)n);
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(pp->to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto out;
			off += w;
		}
	}
out:
	/* One side closed: pass it on, so the other side sees the end. */
	shutdown(pp->to, SHUT_WR);
	shutdown(pp->from, SHUT_RD);
	return NULL;
}

static inline int shaper_connect(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static inline void *shaper_accept_main(void *arg)
{
	shaper *sh = arg;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
		struct pollfd pf = {sh->lfd, POLLIN, 0};
		int c, t;
		if (poll(&pf, 1, 100) <= 0)
			continue;
		if ((c = accept4(sh->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		if (sh->npipes + 2 > 2 * SHAPER_MAX_CONNS || (t = shaper_connect(sh->target)) < 0) {
			close(c);
			continue;
		}
		for (int k = 0; k < 2; k++) {
			shaper_pipe *pp = &sh->pipes[sh->npipes];
			memset(pp, 0, sizeof(*pp));
			pp->sh = sh;
			pp->from = k ? t : c;
			pp->to = k ? c : t;
			pp->shaped = !k;
			if (pthread_create(&pp->tid, NULL, shaper_pipe_main, pp) == 0)
				sh->npipes++;
		}
	}
	return NULL;
}

/* 0, or -1 when the proxy could not start. */
static inline int shaper_start(shaper *sh, int target, double rate)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);

	memset(sh, 0, sizeof(*sh));
	pthread_mutex_init(&sh->lock, NULL);
	sh->target = target;
	sh->rate = rate;
	sh->last_ns = shaper_now_ns();
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sh->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sh->lfd < 0 || bind(sh->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(sh->lfd, 64) < 0 || getsockname(sh->lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	sh->port = ntohs(a.sin_port);
	return pthread_create(&sh->acceptor, NULL, shaper_accept_main, sh) ? -1 : 0;
}

static inline void shaper_stop(shaper *sh)
{
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	pthread_join(sh->acceptor, NULL);
	for (int i = 0; i < sh->npipes; i++)
		pthread_join(sh->pipes[i].tid, NULL);
	for (int i = 0; i < sh->npipes; i++)
		close(sh->pipes[i].from); /* each fd is one pipe's from, once */
	close(sh->lfd);
	pthread_mutex_destroy(&sh->lock);
}

#endif
