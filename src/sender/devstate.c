/*
 * Sender: the device state at the switchover (docs/protocol.md, DEVSTATE).
 * The application's callback writes it through an lm_devstate_writer; the
 * bytes fill a piece buffer of the next idle channel, and each full piece
 * is posted to that channel as a job of its own, so the pieces spread over
 * the channels like packets, in order of their offsets on each channel,
 * while the callback goes on writing. Memory: one piece per channel. The
 * pieces go before the round's SYNC; the size and checksum of all of it
 * (DEVSTATE_END) go on channel 0 right before COMPLETE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "checksum.h"
#include "sender/sender.h"

/* Bytes of state per DEVSTATE frame: as large as a default packet, well
 * under the wire's LM_DEVSTATE_MAX_PIECE. */
#define LM__DEVSTATE_PIECE (512u << 10)
_Static_assert(LM__DEVSTATE_PIECE <= LM_DEVSTATE_MAX_PIECE, "a piece the receiver takes");

struct lm_devstate_writer {
	lm_sender *s;
	lm__tx_chan *ch;    /* whose piece is being filled; NULL: none yet */
	uint64_t off, max;  /* bytes written so far; device_state_max */
	lm__sumstream sum;  /* the checksum DEVSTATE_END carries */
	int err;            /* the first failure: every later write returns it */
};

uint64_t lm__sender_devstate_feature(const lm_sender *s)
{
	return s->cfg.device_state ? LM_FEAT_DEVSTATE : 0;
}

/* device_state_max, or its default. */
static uint64_t state_max(const lm_sender *s)
{
	return s->cfg.device_state_max ? s->cfg.device_state_max : LM_DEFAULT_DEVICE_STATE_MAX;
}

uint64_t lm__sender_devstate_expected(lm_sender *s)
{
	uint64_t n;

	if (!s->cfg.device_state || !s->cfg.device_state_size)
		return 0;
	n = s->cfg.device_state_size(s->cfg.device_state_user);
	return n < state_max(s) ? n : state_max(s);
}

static int run_error(lm_sender *s)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = s->err;
	pthread_mutex_unlock(&s->lock);
	return rc ? rc : LM_ECANCELED;
}

static int writer_fail(lm_devstate_writer *w, int code, const char *msg)
{
	lm__sender_error(w->s, code, -1, msg);
	w->err = run_error(w->s); /* the first failure, which may be another */
	return w->err;
}

/* The next idle channel's piece buffer, empty, at the writer's offset. */
static int take_channel(lm_devstate_writer *w)
{
	lm__tx_chan *ch = lm__sender_idle_channel(w->s);

	if (!ch) {
		w->err = run_error(w->s);
		return w->err;
	}
	if (!ch->ds_buf && !(ch->ds_buf = malloc(LM__DEVSTATE_PIECE)))
		return writer_fail(w, -ENOMEM, "device state: no memory for a piece");
	ch->ds_len = 0;
	ch->ds_off = w->off;
	w->ch = ch;
	return 0;
}

static void post_piece(lm_devstate_writer *w)
{
	lm__sender_post(w->s, w->ch, LM_TX_DEVSTATE);
	w->ch = NULL;
}

int lm_devstate_write(lm_devstate_writer *w, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int rc;

	if (!w || (!buf && len))
		return LM_EINVAL;
	if (w->err)
		return w->err;
	if (len > w->max - w->off) {
		char m[160];
		snprintf(m, sizeof(m), "device state: the callback wrote more than device_state_max (%llu bytes)",
			 (unsigned long long)w->max);
		return writer_fail(w, LM_ELIMIT, m);
	}
	if (lm__sender_cancelled(w->s))
		return w->err = LM_ECANCELED;
	if ((rc = lm__sumstream_update(&w->sum, buf, len)))
		return writer_fail(w, rc, "device state: no memory for its checksum");
	while (len) {
		size_t k;
		if (!w->ch && (rc = take_channel(w)))
			return rc;
		k = LM__DEVSTATE_PIECE - w->ch->ds_len;
		if (k > len)
			k = len;
		memcpy(w->ch->ds_buf + w->ch->ds_len, p, k);
		w->ch->ds_len += (uint32_t)k;
		w->off += k;
		p += k;
		len -= k;
		if (w->ch->ds_len == LM__DEVSTATE_PIECE)
			post_piece(w);
	}
	return 0;
}

int lm__sender_devstate(lm_sender *s)
{
	lm_devstate_writer w = {.s = s};
	uint64_t t0 = lm__now_us();
	char m[160];
	int rc;

	if (!s->cfg.device_state)
		return 0;
	if (!(s->features & LM_FEAT_DEVSTATE)) { /* required: a conforming receiver refused */
		lm__sender_fail(s, LM_EFEATURE, "the receiver did not accept the device state feature");
		return LM_EFEATURE;
	}
	w.max = state_max(s);
	lm__sumstream_init(&w.sum);
	rc = s->cfg.device_state(s->cfg.device_state_user, &w);
	if (!w.err && rc) {
		snprintf(m, sizeof(m), "the device state callback failed: %s", lm_strerror(rc));
		writer_fail(&w, rc, m);
	}
	if (!w.err && w.ch)
		post_piece(&w); /* the last, partial piece */
	rc = w.err;
	if (!rc && (rc = lm__sumstream_final(&w.sum, &s->ds_sum)))
		writer_fail(&w, rc, "device state: no memory for its checksum");
	lm__sumstream_free(&w.sum);
	/* Its time ends when its last piece is on a socket. */
	if (!rc)
		rc = lm__sender_wait_idle(s);
	if (rc)
		return rc;
	s->ds_bytes = w.off;
	s->ds_us = lm__now_us() - t0;
	s->ds_sent = 1;
	return 0;
}

int lm__tx_devstate_piece(lm__tx_chan *ch, lm__err *e)
{
	uint8_t hdr[LM_FRAME_HDR + LM_DEVSTATE_FIXED];
	lm__devstate d = {ch->ds_off, ch->ds_len};
	struct iovec v[2];
	int rc;

	v[0] = (struct iovec){hdr, lm__enc_devstate(hdr, &d)};
	v[1] = (struct iovec){ch->ds_buf, ch->ds_len};
	rc = lm__writev_full(&ch->conn, v, 2);
	/* As after a packet: the receiver may have refused meanwhile. */
	if (!rc && lm__sender_take_input(&ch->conn, ch))
		rc = LM_EPEER;
	if (rc)
		return lm__sender_peer_reason(ch, rc, e);
	__atomic_add_fetch(&ch->s->wire_bytes, LM_FRAME_HDR + LM_DEVSTATE_FIXED + (uint64_t)d.len,
			   __ATOMIC_RELAXED);
	return 0;
}

int lm__sender_devstate_end(lm_sender *s, lm__err *e)
{
	uint8_t b[LM_FRAME_HDR + LM_DEVSTATE_END_LEN];
	lm__devstate_end d = {s->ds_bytes, s->ds_sum};
	int rc;

	if (!s->ds_sent)
		return 0;
	rc = lm__write_full(&s->ch[0].conn, b, lm__enc_devstate_end(b, &d));
	if (rc)
		rc = lm__sender_peer_reason(&s->ch[0], rc, e);
	return rc;
}
