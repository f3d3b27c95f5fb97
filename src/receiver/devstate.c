/*
 * Receiver: the device state (docs/protocol.md, DEVSTATE). Pieces come on
 * any channel, each channel's in increasing offsets; the application gets
 * them in order of their offsets, so a channel whose piece is not next
 * holds it (one piece per channel: the memory is bounded by the channels,
 * never by what the sender announces) until the pieces before it were
 * handed over. At COMPLETE channel 0 checks the size and the checksum that
 * DEVSTATE_END announced, then makes the application's end call: the last
 * word before the acknowledgement.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receiver/receiver.h"

static uint64_t state_max(const lm_receiver *r)
{
	return r->cfg.device_state_max ? r->cfg.device_state_max : LM_DEFAULT_DEVICE_STATE_MAX;
}

int lm__rx_devstate_hello(const lm_receiver *r, const lm__hello *h, lm__err *e)
{
	int has = (lm__hello_features(h) & LM_FEAT_DEVSTATE) != 0;

	if (has && !r->cfg.device_state) {
		lm__err_set(e, "hello.required has devstate: this receiver takes no device state "
			       "(no device_state callback)");
		return LM_EFEATURE;
	}
	if (!has && r->cfg.device_state) {
		lm__err_set(e, "hello.required lacks devstate: this receiver needs the sender's "
			       "device state");
		return LM_EFEATURE;
	}
	return 0;
}

/* The application's refusal, as the session's failure. */
static int refused(lm__err *e, int rc, uint64_t off, const char *what)
{
	lm__err_set(e, "device state refused by the destination %s %llu: %s", what,
		    (unsigned long long)off, lm_strerror(rc < 0 ? rc : LM_EINVAL));
	return rc < 0 ? rc : LM_EINVAL;
}

/* Under r->lock, while ch holds a piece after r->ds_next: whether any other
 * channel can still bring the piece at ds_next. Not one that holds a later
 * piece itself (its own are in increasing order, so the missing one is not
 * behind it), nor one that ended the round ch is in (it waits at the round
 * barrier for ch). One that holds the next piece and has not woken yet
 * can. */
static int others_stuck(const lm__rx_chan *ch)
{
	const lm_receiver *r = ch->r;

	if (r->ds_busy)
		return 0;
	for (uint32_t i = 0; i < r->channels; i++) {
		const lm__rx_chan *o = r->chan[i];
		if ((int)i == ch->channel)
			continue;
		if (o && ((o->ds_wait && o->ds_wait_off == r->ds_next) ||
			  (!o->ds_wait && r->synced[i] <= ch->round)))
			return 0;
	}
	return 1;
}

/* Waits until the piece at off is next. A sender that never sends the
 * piece before it, or closes this channel meanwhile, is told here: ch
 * reads nothing while it waits. */
static int wait_turn(lm__rx_chan *ch, uint64_t off, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint64_t t0 = lm__now_us();
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	ch->ds_wait = 1;
	ch->ds_wait_off = off;
	pthread_cond_broadcast(&r->cond); /* another waiter may be stuck now */
	while (!r->err && !rc && (r->ds_busy || r->ds_next < off)) {
		struct pollfd p = {ch->conn.rfd, POLLRDHUP, 0};
		struct timespec ts;
		if (others_stuck(ch)) {
			lm__err_set(e, "devstate.offset %llu: the piece at offset %llu did not come "
				       "(every other channel waits or ended round %u)",
				    (unsigned long long)off, (unsigned long long)r->ds_next, ch->round);
			rc = LM_EFIELD;
			break;
		}
		ts = lm__rx_deadline(50);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		if (r->err || (!r->ds_busy && r->ds_next >= off))
			break;
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			lm__err_set(e, "the sender closed the connection while the device state was "
				       "incomplete (at offset %llu)", (unsigned long long)r->ds_next);
			rc = LM_EEOF;
		} else if (lm__now_us() - t0 > (uint64_t)r->cfg.timeout_ms * 1000u) {
			lm__err_set(e, "devstate.offset %llu: waited %d ms for the piece at offset %llu",
				    (unsigned long long)off, r->cfg.timeout_ms,
				    (unsigned long long)r->ds_next);
			rc = LM_ETIMEDOUT;
		}
	}
	ch->ds_wait = 0;
	if (!rc)
		rc = r->err;
	if (!rc && off != r->ds_next) {
		lm__err_set(e, "devstate.offset %llu: the state is at %llu (a piece sent twice)",
			    (unsigned long long)off, (unsigned long long)r->ds_next);
		rc = LM_EFIELD;
	}
	if (!rc)
		r->ds_busy = 1;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* The piece is next: into the checksum, then to the application. */
static int hand_over(lm__rx_chan *ch, const lm__devstate *d, lm__err *e)
{
	lm_receiver *r = ch->r;
	int rc = lm__sumstream_update(&r->ds_sum, ch->ds_buf, d->len);

	if (rc)
		lm__err_set(e, "device state: no memory for its checksum");
	else if ((rc = r->cfg.device_state(r->cfg.user, d->off, ch->ds_buf, d->len)))
		rc = refused(e, rc, d->off, "at offset");
	pthread_mutex_lock(&r->lock);
	r->ds_busy = 0;
	if (!rc)
		r->ds_next += d->len;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int lm__rx_devstate(lm__rx_chan *ch, const lm__frame *f, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t b[LM_DEVSTATE_FIXED] = {0};
	lm__devstate d;
	int rc;

	if (!(r->features & LM_FEAT_DEVSTATE)) {
		lm__err_set(e, "frame.kind devstate: the session did not agree the devstate feature");
		return LM_EKIND;
	}
	if (f->len <= LM_DEVSTATE_FIXED) /* the decoder's message, before reading past it */
		return lm__dec_devstate(b, f->len, &d, e);
	if ((rc = lm__read_full(&ch->conn, b, sizeof(b)))) {
		lm__err_read(e, &ch->conn, "devstate", rc);
		return rc;
	}
	if ((rc = lm__dec_devstate(b, f->len, &d, e)))
		return rc;
	if (d.off + d.len > state_max(r)) {
		lm__err_set(e, "devstate.offset %llu + %u bytes above this receiver's device_state_max %llu",
			    (unsigned long long)d.off, d.len, (unsigned long long)state_max(r));
		return LM_ELIMIT;
	}
	/* Counted as a packet of the round: a piece after the last SYNC is
	 * refused at COMPLETE, one after COMPLETE here (lm__rx_wait_all_synced). */
	__atomic_add_fetch(&r->unsynced[ch->channel], 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->verifying, __ATOMIC_SEQ_CST)) {
		lm__err_set(e, "frame.kind devstate after complete: not applied");
		return LM_EKIND;
	}
	if (d.len > ch->ds_cap) { /* at most LM_DEVSTATE_MAX_PIECE, checked above */
		uint8_t *p = realloc(ch->ds_buf, d.len);
		if (!p) {
			lm__err_set(e, "devstate: no memory for a piece of %u bytes", d.len);
			return -ENOMEM;
		}
		ch->ds_buf = p;
		ch->ds_cap = d.len;
	}
	if ((rc = lm__read_full(&ch->conn, ch->ds_buf, d.len))) {
		lm__err_read(e, &ch->conn, "devstate data", rc);
		return rc;
	}
	if ((rc = wait_turn(ch, d.off, e)))
		return rc;
	return hand_over(ch, &d, e);
}

int lm__rx_devstate_end(lm__rx_chan *ch, const lm__frame *f, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t b[LM_DEVSTATE_END_LEN] = {0};
	int rc;

	if (!(r->features & LM_FEAT_DEVSTATE) || ch->channel != 0 || ch->round == 0 ||
	    ch->round_packets || r->ds_have_end) {
		lm__err_set(e, "frame.kind devstate_end on channel %d: only valid once, with the "
			       "devstate feature, on channel 0 right after a sync", ch->channel);
		return LM_EKIND;
	}
	if (f->len != LM_DEVSTATE_END_LEN)
		return lm__dec_devstate_end(b, f->len, &r->ds_end, e);
	if ((rc = lm__read_full(&ch->conn, b, sizeof(b)))) {
		lm__err_read(e, &ch->conn, "devstate_end", rc);
		return rc;
	}
	if ((rc = lm__dec_devstate_end(b, f->len, &r->ds_end, e)))
		return rc;
	if (r->ds_end.total > state_max(r)) {
		lm__err_set(e, "devstate_end.total %llu above this receiver's device_state_max %llu",
			    (unsigned long long)r->ds_end.total, (unsigned long long)state_max(r));
		return LM_ELIMIT;
	}
	r->ds_have_end = 1;
	return 0;
}

int lm__rx_devstate_finish(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint64_t got, sum;
	int rc;

	if (!(r->features & LM_FEAT_DEVSTATE))
		return 0;
	if (!r->ds_have_end) {
		lm__err_set(e, "frame.kind complete before devstate_end: the device state has no end");
		return LM_EKIND;
	}
	/* Every channel synced and none may apply anything now. */
	pthread_mutex_lock(&r->lock);
	got = r->ds_next;
	pthread_mutex_unlock(&r->lock);
	if (got != r->ds_end.total) {
		lm__err_set(e, "devstate_end.total %llu, but %llu bytes of device state came",
			    (unsigned long long)r->ds_end.total, (unsigned long long)got);
		return LM_EFIELD;
	}
	if ((rc = lm__sumstream_final(&r->ds_sum, &sum))) {
		lm__err_set(e, "device state: no memory for its checksum");
		return rc;
	}
	if (sum != r->ds_end.checksum) {
		lm__err_set(e, "device state: checksum 0x%016llx, sender's 0x%016llx",
			    (unsigned long long)sum, (unsigned long long)r->ds_end.checksum);
		return LM_ECHECKSUM;
	}
	if ((rc = r->cfg.device_state(r->cfg.user, got, NULL, 0)))
		return refused(e, rc, got, "at its end, size");
	return 0;
}
