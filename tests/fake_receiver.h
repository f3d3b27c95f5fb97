/*
 * fake_receiver.h - hand-written fake receivers that drive test_mixed's real
 * lm_sender over a plain socket: the listening socket and the hello ack, a
 * receiver that takes the data with FEEDBACK in between (and may refuse
 * after N packets), and the stall fakes: a receiver that stops reading, or
 * never acks, or trickles or floods FEEDBACK, to show that FEEDBACK never
 * keeps a stalled sender alive. Static functions in a header, like
 * fake_peer.h: included once.
 */
#ifndef LM_TEST_FAKE_RECEIVER_H
#define LM_TEST_FAKE_RECEIVER_H

#include "fake_peer.h"

typedef struct frx {
	int lfd, fd;
	int refuse_after;   /* 0: take everything; N: after N DATA, FEEDBACK then ERROR */
	uint32_t fb_sent;   /* FEEDBACK frames sent */
	lm__feedback last;  /* the last one */
	int data, ok;
} frx;

static void frx_feedback(frx *f)
{
	uint8_t b[LM_FRAME_HDR + LM_FEEDBACK_LEN];

	f->fb_sent++;
	f->last.round = f->fb_sent;
	f->last.wall_ns = 1000ull * f->fb_sent;
	f->last.codec[LM_CODEC_NONE].pages += 16;
	f->last.codec[LM_CODEC_LZ4].ns = 7ull * f->fb_sent;
	put(f->fd, b, lm__enc_feedback(b, &f->last));
}

/* Reads len body bytes in small pieces with a FEEDBACK every 64 KiB and a
 * short pause after it, so some arrive while the sender's write waits for
 * buffer space. */
static int frx_body(frx *f, uint32_t len, int feedback)
{
	uint8_t sink[16384];
	uint32_t since = 0;

	while (len) {
		uint32_t n = len < sizeof(sink) ? len : (uint32_t)sizeof(sink);
		if (get(f->fd, sink, n))
			return -1;
		len -= n;
		since += n;
		if (feedback && since >= 65536) {
			since = 0;
			frx_feedback(f);
			sleep_ms(1);
		}
	}
	return 0;
}

/* The fake's listening socket, its small receive buffer making the sender's
 * writes block early; its address into addr. */
static void frx_listen(frx *f, char *addr, size_t n)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int small = 64 << 10;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->fd = -1;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || setsockopt(f->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) ||
	    bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(f->lfd, 2) ||
	    getsockname(f->lfd, (struct sockaddr *)&sa, &sl)) {
		perror("fake receiver");
		exit(2);
	}
	snprintf(addr, n, "127.0.0.1:%d", ntohs(sa.sin_port));
}

/* Accepts the sender's connection, reads its hello and regions and acks
 * it (ROUND_ACK if offered, nothing else); the hello into *h. 0 or -1. */
static int frx_hello(frx *f, lm__hello *h)
{
	uint8_t b[LM_ERROR_FRAME_BOUND];
	struct timeval tv = {5, 0};
	struct pollfd pl = {f->lfd, POLLIN, 0};
	lm__frame fr;
	lm__ack a;
	lm__err e;

	if (poll(&pl, 1, 5000) != 1 || (f->fd = accept(f->lfd, NULL, NULL)) < 0)
		return -1;
	setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (get_frame(f->fd, &fr, b, sizeof(b)) || fr.kind != LM_KIND_HELLO ||
	    lm__dec_hello(b, fr.len, h, &e))
		return -1;
	for (uint32_t k = 0; k < h->region_count; k++)
		if (get_frame(f->fd, &fr, b, sizeof(b)))
			return -1;
	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_HELLO;
	a.features = h->features & LM_FEAT_ROUND_ACK;
	memcpy(a.session, h->session, 16);
	put(f->fd, b, lm__enc_ack(b, &a));
	return 0;
}

static void *frx_main(void *arg)
{
	frx *f = arg;
	uint8_t b[LM_ERROR_FRAME_BOUND];
	lm__frame fr;
	lm__hello h;
	lm__ack a;
	lm__err e;

	if (frx_hello(f, &h))
		return NULL;
	for (;;) {
		uint8_t hdr[LM_FRAME_HDR];
		if (get(f->fd, hdr, sizeof(hdr)) || lm__dec_frame(hdr, &fr, &e))
			return NULL;
		if (fr.kind == LM_KIND_DATA) {
			if (frx_body(f, fr.len, 1))
				return NULL;
			if (++f->data == f->refuse_after) {
				frx_feedback(f);
				put(f->fd, b, lm__enc_error(b, LM_EFIELD, 0,
							    "channel 0: test refusal after feedback"));
				shutdown(f->fd, SHUT_WR);
				f->ok = 1;
				while (recv(f->fd, b, sizeof(b), 0) > 0)
					;
				return NULL;
			}
			continue;
		}
		if (fr.kind != LM_KIND_SYNC && fr.kind != LM_KIND_COMPLETE)
			return NULL;
		if (frx_body(f, fr.len, 0))
			return NULL;
		memset(&a, 0, sizeof(a));
		a.kind = fr.kind;
		a.features = 0; /* the round: one-pass, round 0 */
		memcpy(a.session, h.session, 16);
		if (fr.kind == LM_KIND_SYNC)
			frx_feedback(f); /* as a mixed receiver does, right before the ACK */
		put(f->fd, b, lm__enc_ack(b, &a));
		if (fr.kind == LM_KIND_COMPLETE) {
			f->ok = 1;
			while (recv(f->fd, b, sizeof(b), 0) > 0)
				;
			return NULL;
		}
	}
}

/* ---- stall fakes ----------------------------------------------------------- */

#define STALL_T 1000         /* the sender's timeout_ms */
/* A stall ends within this: the timeout (up to 1.5 of it with FEEDBACK
 * every half), the 200 ms wait for a reason, then the error frame's write
 * and the drain before the close, up to a second each. */
#define STALL_BOUND (6 * STALL_T)
#define STALL_GIVE_UP (2 * STALL_BOUND) /* ms: the fake closes: a sender kept alive ends */

enum stall_mode {
	ST_WRITE,      /* reads nothing after the hello: the sender's writes block */
	ST_SYNC,       /* takes the data, never acks the SYNC */
	ST_COMPLETE,   /* acks the SYNC, never the COMPLETE */
	ST_TRICKLE,    /* acks everything, then a FEEDBACK one byte at a time */
	ST_FLOOD_END,  /* acks everything, then FEEDBACK as fast as it can */
	ST_FLOOD_DATA, /* FEEDBACK as fast as it can from the hello on, reads nothing */
};

typedef struct stall {
	frx f;            /* the connection; fb_sent counts whole frames */
	int mode;
	int every_ms;     /* FEEDBACK period while stalled (ST_WRITE, ST_SYNC, ST_COMPLETE) */
	int cancel_ms;    /* ST_FLOOD_DATA, ST_SYNC, ST_COMPLETE: lm_sender_cancel after
			     this long (of the flood, of the stall), 0: never */
	lm_sender *s;     /* set before the thread starts */
	uint64_t t0;      /* now_ms() at the hello ack: the give-up clock */
	uint64_t t_ack;   /* atomic: now_ms() when ACK(COMPLETE) went out */
	int stop;         /* atomic: the run returned */
	int got_error;    /* the sender's ERROR frame arrived (ST_SYNC, ST_COMPLETE) */
} stall;

static int stall_over(stall *st)
{
	return __atomic_load_n(&st->stop, __ATOMIC_SEQ_CST) || now_ms() - st->t0 > STALL_GIVE_UP;
}

/* Writes all of p unless the sender is gone or the fake gives up; a full
 * socket buffer (SO_SNDTIMEO) is waited out. 0, or -1 to stop. */
static int stall_put(stall *st, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(st->f.fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (stall_over(st))
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static size_t stall_fb(stall *st, uint8_t *b)
{
	st->f.last.round = ++st->f.fb_sent;
	st->f.last.wall_ns = 1000ull * st->f.fb_sent;
	return lm__enc_feedback(b, &st->f.last);
}

/* A FEEDBACK every every_ms and nothing else, until the sender's ERROR or
 * close when it reads (watch), until the end otherwise. */
static void stall_feed(stall *st, int watch)
{
	uint8_t b[LM_ERROR_FRAME_BOUND];
	uint64_t t = now_ms();
	int cancelled = 0;
	lm__frame fr;

	while (!stall_over(st)) {
		if (st->cancel_ms && !cancelled && now_ms() - t >= (uint64_t)st->cancel_ms) {
			lm_sender_cancel(st->s); /* from this thread, while the sender waits */
			cancelled = 1;
		}
		struct pollfd p = {st->f.fd, POLLIN, 0};
		if (watch && poll(&p, 1, st->every_ms) == 1) {
			st->got_error = get_frame(st->f.fd, &fr, b, sizeof(b)) == 0 &&
					fr.kind == LM_KIND_ERROR;
			return;
		}
		if (!watch)
			sleep_ms(st->every_ms);
		if (stall_put(st, b, stall_fb(st, b)))
			return;
	}
}

/* ACK(COMPLETE), then a FEEDBACK a byte every 50 ms: the first byte goes
 * with the ack, so the sender's drain meets an unfinished frame. */
static void stall_trickle(stall *st, const uint8_t *ack, size_t alen)
{
	uint8_t b[LM_FRAME_HDR + LM_ACK_LEN + LM_FRAME_HDR + LM_FEEDBACK_LEN];
	size_t n = alen + stall_fb(st, b + alen);

	memcpy(b, ack, alen);
	__atomic_store_n(&st->t_ack, now_ms(), __ATOMIC_SEQ_CST);
	if (stall_put(st, b, alen + 1))
		return;
	for (size_t i = alen + 1; i < n && !stall_over(st); i++) {
		sleep_ms(50);
		if (stall_put(st, b + i, 1))
			return;
	}
	while (!stall_over(st))
		sleep_ms(10);
}

/* FEEDBACK frames back to back, FLOOD_BATCH a write (the first write after
 * the ack if one is given), until the sender resets the connection or the
 * fake gives up; lm_sender_cancel on the way if asked. The writes are large
 * so that the kernel, not this thread, keeps the sender's input from
 * running dry: a gap would end a drain that has no bound of its own. */
#define FLOOD_BATCH 4096
static uint8_t flood_buf[LM_FRAME_HDR + LM_ACK_LEN + FLOOD_BATCH * (LM_FRAME_HDR + LM_FEEDBACK_LEN)];

static void stall_flood(stall *st, const uint8_t *ack, size_t alen)
{
	uint8_t *frames = flood_buf + LM_FRAME_HDR + LM_ACK_LEN;
	size_t n = 0;
	uint64_t t = now_ms();
	int cancelled = 0;

	for (int k = 0; k < FLOOD_BATCH; k++)
		n += stall_fb(st, frames + n);
	st->f.fb_sent = 0; /* counted as they go out */
	if (alen) {
		memcpy(frames - alen, ack, alen);
		__atomic_store_n(&st->t_ack, now_ms(), __ATOMIC_SEQ_CST);
	}
	for (;; alen = 0) {
		if (stall_put(st, frames - alen, n + alen))
			return;
		st->f.fb_sent += FLOOD_BATCH;
		if (st->cancel_ms && !cancelled && now_ms() - t >= (uint64_t)st->cancel_ms) {
			lm_sender_cancel(st->s);
			cancelled = 1;
		}
	}
}

/* The fake receiver of a stall case: the hello acked, then as its mode
 * says; at the end its side is shut, so a sender still waiting ends. */
static void *stall_main(void *arg)
{
	stall *st = arg;
	uint8_t b[LM_FRAME_HDR + LM_ACK_LEN];
	struct timeval tv = {0, 100000};
	int big = 4 << 20;
	lm__frame fr;
	lm__hello h;
	lm__ack a;
	lm__err e;

	if (frx_hello(&st->f, &h))
		return NULL;
	st->t0 = now_ms();
	setsockopt(st->f.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* A flood queued in the kernel goes on while this thread waits. */
	setsockopt(st->f.fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	if (st->mode == ST_WRITE)
		stall_feed(st, 0);
	else if (st->mode == ST_FLOOD_DATA)
		stall_flood(st, NULL, 0);
	while (st->mode != ST_WRITE && st->mode != ST_FLOOD_DATA) {
		uint8_t hdr[LM_FRAME_HDR];
		size_t alen;

		if (get(st->f.fd, hdr, sizeof(hdr)) || lm__dec_frame(hdr, &fr, &e) ||
		    frx_body(&st->f, fr.len, 0))
			break;
		if (fr.kind == LM_KIND_DATA)
			continue;
		if (fr.kind != LM_KIND_SYNC && fr.kind != LM_KIND_COMPLETE)
			break;
		if ((fr.kind == LM_KIND_SYNC && st->mode == ST_SYNC) ||
		    (fr.kind == LM_KIND_COMPLETE && st->mode == ST_COMPLETE)) {
			stall_feed(st, 1); /* the ack never comes */
			break;
		}
		memset(&a, 0, sizeof(a));
		a.kind = fr.kind;
		memcpy(a.session, h.session, 16);
		alen = lm__enc_ack(b, &a);
		if (fr.kind == LM_KIND_SYNC) {
			if (stall_put(st, b, alen))
				break;
		} else {
			if (st->mode == ST_TRICKLE)
				stall_trickle(st, b, alen);
			else
				stall_flood(st, b, alen);
			break;
		}
	}
	shutdown(st->f.fd, SHUT_RDWR);
	return NULL;
}

#endif
