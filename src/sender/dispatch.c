/*
 * Sender dispatch: the thread driving the sender walks the regions (round
 * one) or the dirty bitmaps (later rounds), gathers packets, hands each to
 * the next idle channel, paces them under max_bandwidth and ends a round
 * with SYNC on every channel. It never touches a connection while a channel
 * thread owns it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/dedup.h"
#include "compat.h"
#include "sender/sender.h"

/* ---- main thread --------------------------------------------------------- */

/* Under s->lock, round one: every byte below the lowest page a busy
 * channel holds is sent (round one hands pages out in order). */
static void cursor_update(lm_sender *s)
{
	uint64_t done = __atomic_load_n(&s->cursor_handed, __ATOMIC_RELAXED);

	if (s->round)
		return;
	for (uint32_t i = 0; i < s->nch; i++)
		if (s->ch[i].state == LM_TX_JOB && s->ch[i].job_pos < done)
			done = s->ch[i].job_pos;
	__atomic_store_n(&s->cursor_done, done, __ATOMIC_RELAXED);
}

/* Next idle channel, round robin; NULL once the migration has failed. */
static lm__tx_chan *idle_channel(lm_sender *s)
{
	lm__tx_chan *found = NULL;

	if (lm__sender_cancelled(s))
		return NULL;
	pthread_mutex_lock(&s->lock);
	while (!s->err && !found) {
		for (uint32_t k = 0; k < s->nch && !found; k++) {
			lm__tx_chan *ch = &s->ch[(s->next_ch + k) % s->nch];
			if (ch->state == LM_TX_IDLE) {
				found = ch;
				s->next_ch = (ch->idx + 1u) % s->nch;
			}
		}
		if (!found)
			pthread_cond_wait(&s->idle_cond, &s->lock);
	}
	if (found)
		cursor_update(s);
	pthread_mutex_unlock(&s->lock);
	return found;
}

lm__tx_chan *lm__sender_idle_channel(lm_sender *s)
{
	return idle_channel(s);
}

void lm__sender_post(lm_sender *s, lm__tx_chan *ch, int state)
{
	pthread_mutex_lock(&s->lock);
	ch->state = state;
	pthread_mutex_unlock(&s->lock);
	/* After the unlock, as the channel's own broadcast (channel.c); the
	 * channel's cond lives until its thread is joined. */
	pthread_cond_signal(&ch->cond);
}

/* Waits until no channel is busy; returns the first error, if any. */
int lm__sender_wait_idle(lm_sender *s)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint32_t busy = 0;
		for (uint32_t i = 0; i < s->nch; i++)
			busy += s->ch[i].state != LM_TX_IDLE;
		if (!busy)
			break;
		pthread_cond_wait(&s->idle_cond, &s->lock);
	}
	rc = s->err;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* max_bandwidth as a token bucket: bytes are charged as the channels report
 * them written, tokens refill at the rate and are capped at one packet, so
 * idle time between rounds (dirty scans, syncs) buys no burst. At most the
 * packets in flight on the channels are sent ahead of their charge. Sleeping
 * here, not in the channels, keeps every channel's share even. */
#define LM__PACE_SLICE_US 20000

static void pace(lm_sender *s)
{
	double cap = (double)s->packet_pages * s->page_size;

	if (cap < 65536)
		cap = 65536;
	for (;;) {
		uint64_t now = lm__now_us(), seen = __atomic_load_n(&s->wire_bytes, __ATOMIC_RELAXED);
		double wait_us;

		/* A new limit or a cancel may come while we wait: checked
		 * every LM__PACE_SLICE_US, not after a sleep a low limit
		 * would make minutes long. */
		lm__sender_ctl_rate(s);
		if (!s->rate_limit) {
			s->rate_last_us = 0; /* what went unlimited is not owed later */
			return;
		}
		if (__atomic_load_n(&s->cancelled, __ATOMIC_SEQ_CST))
			return;
		if (!s->rate_last_us) { /* the bucket starts full */
			s->rate_last_us = now;
			s->rate_seen = seen;
			s->rate_tokens = cap;
		}
		s->rate_tokens += (double)(now - s->rate_last_us) * (double)s->rate_limit / 1e6;
		if (s->rate_tokens > cap)
			s->rate_tokens = cap;
		s->rate_tokens -= (double)(seen - s->rate_seen);
		s->rate_last_us = now;
		s->rate_seen = seen;
		if (s->rate_tokens >= 0)
			return;
		wait_us = -s->rate_tokens * 1e6 / (double)s->rate_limit + 1;
		usleep((useconds_t)(wait_us < LM__PACE_SLICE_US ? wait_us : LM__PACE_SLICE_US));
	}
}

/* The packet of n pages whose offsets the caller then writes into the
 * returned channel's job_off; NULL once the run failed. */
static lm__tx_chan *next_job(lm_sender *s, uint32_t rid, uint32_t n)
{
	lm__tx_chan *ch;

	if (!(ch = idle_channel(s)))
		return NULL;
	/* After the wait: the packet just finished is charged. A new max
	 * bandwidth (lm_sender_set_max_bandwidth) applies from this packet. */
	pace(s);
	lm__sender_auto_tick(s); /* codec auto re-decides every 100 ms */
	if (!s->t_first_data)
		s->t_first_data = lm__now_us();
	lm__sender_publish(s, 0); /* the channels publish their own */
	ch->job_region = rid;
	ch->job_pages = n;
	ch->job_num = s->next_packet++;
	return ch;
}

#define LM__SKIP_REFRESH_US 100000 /* a PAGEMAP_SCAN of 1 GiB takes 1-5 ms */

static void skip_refresh(lm_sender *s)
{
	uint64_t now;

	if (!s->skip_refresh)
		return;
	now = lm__now_us();
	if (now - s->skip_t < LM__SKIP_REFRESH_US)
		return;
	s->skip_t = now;
	s->skip_refresh(s->skip_user);
}

static int skipped(const lm_sender *s, uint32_t rid, uint64_t pg)
{
	return s->skip && (s->skip[rid][pg / 64] >> (pg % 64)) & 1;
}

/* Hands n gathered pages to the next idle channel. span: round one, the
 * packet covers the cursor's [span[0], span[1]). NULL: a later round, so
 * each page's block is hashed again once the page lands (the channel
 * that lands it is idle until post(), which orders the reopening first). */
static int post_pages(lm_sender *s, uint32_t rid, const uint64_t *off, uint32_t n,
		      const uint64_t *span)
{
	lm__tx_chan *ch = next_job(s, rid, n);

	if (!ch)
		return s->err;
	for (uint32_t i = 0; !span && i < n; i++)
		lm__sumtree_reopen(&s->regions[rid].sum, off[i]);
	memcpy(ch->job_off, off, sizeof(uint64_t) * n);
	if (span) {
		ch->job_pos = span[0];
		__atomic_store_n(&s->cursor_handed, span[1], __ATOMIC_RELAXED);
	}
	lm__sender_post(s, ch, LM_TX_JOB);
	return 0;
}

/* Round one: every page in order, less the skip set. A skipped page still
 * counts as landed for the checksum, so its block is hashed again, from the
 * page's next copy, when that lands. */
static int dispatch_region(lm_sender *s, uint32_t rid, uint64_t pos)
{
	lm__tx_region *r = &s->regions[rid];
	uint64_t pages = (r->len + s->page_size - 1) / s->page_size, pg = 0;
	uint64_t *off = malloc(sizeof(uint64_t) * s->packet_pages), span[2];
	int rc = 0;

	if (!off)
		return -ENOMEM;
	while (pg < pages && !rc) {
		uint32_t n = 0;
		uint64_t first = pg * s->page_size;
		skip_refresh(s);
		for (; pg < pages && n < s->packet_pages; pg++) {
			uint64_t o = pg * s->page_size;
			if (!skipped(s, rid, pg)) {
				off[n++] = o;
				continue;
			}
			lm__sumtree_land(&r->sum, &o, 1);
			s->skipped_pages++;
		}
		span[0] = pos + first;
		span[1] = pos + (pg * s->page_size < r->len ? pg * s->page_size : r->len);
		if (n)
			rc = post_pages(s, rid, off, n, span);
	}
	free(off);
	return rc;
}

void lm__sender_round_begin(lm_sender *s, const uint64_t *const *set)
{
	lm__kinds_round(&s->kinds, s->round, s->live);
	if (s->kinds.dedup)
		lm__dedup_round(s->kinds.dedup, s->round, set);
}

void lm_sender_cursor(const lm_sender *s, uint64_t *done, uint64_t *handed)
{
	uint64_t d = s ? __atomic_load_n(&s->cursor_done, __ATOMIC_RELAXED) : 0;
	uint64_t h = s ? __atomic_load_n(&s->cursor_handed, __ATOMIC_RELAXED) : 0;

	if (done)
		*done = d;
	if (handed) /* loaded second: never behind done */
		*handed = h > d ? h : d;
}

int lm__sender_send_all(lm_sender *s)
{
	int rc = 0;
	uint64_t pos = 0;

	lm__sender_round_begin(s, NULL);
	for (uint32_t i = 0; i < s->nregions && !rc; pos += s->regions[i++].len)
		rc = dispatch_region(s, i, pos);
	return rc;
}

/* Gathers up to packet_pages set bits from *word on into off[], leaving
 * out the pages in the skip set; the packet's pages need not be neighbours
 * (the wire carries each offset). */
static uint32_t gather(lm_sender *s, uint32_t rid, const uint64_t *bm, uint64_t words,
		       uint64_t *word, uint64_t *cur, uint64_t *off)
{
	uint32_t n = 0;

	while (n < s->packet_pages && *word < words) {
		uint64_t pg;
		if (!*cur) {
			if (++*word < words)
				*cur = bm[*word];
			continue;
		}
		pg = *word * 64 + lm__ctz64(*cur);
		*cur &= *cur - 1;
		if (skipped(s, rid, pg))
			s->skipped_pages++;
		else
			off[n++] = pg * s->page_size;
	}
	return n;
}

static int dispatch_dirty(lm_sender *s, uint32_t rid, const uint64_t *bm)
{
	const lm__tx_region *r = &s->regions[rid];
	uint64_t pages = (r->len + s->page_size - 1) / s->page_size;
	uint64_t words = (pages + 63) / 64, word = 0, cur = words ? bm[0] : 0;
	uint64_t *off = malloc(sizeof(uint64_t) * s->packet_pages);
	uint32_t n;
	int rc = 0;

	if (!off)
		return -ENOMEM;
	while (!rc) {
		skip_refresh(s);
		if (!(n = gather(s, rid, bm, words, &word, &cur, off)))
			break;
		rc = post_pages(s, rid, off, n, NULL);
	}
	free(off);
	return rc;
}

int lm__sender_send_dirty(lm_sender *s, uint64_t *const *bitmap)
{
	int rc = 0;

	lm__sender_round_begin(s, (const uint64_t *const *)bitmap);
	for (uint32_t i = 0; i < s->nregions && !rc; i++)
		rc = dispatch_dirty(s, i, bitmap[i]);
	return rc;
}

int lm__sender_sync(lm_sender *s)
{
	lm__err e = {0};
	lm__ack ack;
	uint64_t t0;
	int rc = lm__sender_wait_idle(s);

	if (rc)
		return rc;
	if (!s->round) /* round one's pages are all sent */
		__atomic_store_n(&s->cursor_done, __atomic_load_n(&s->cursor_handed, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
	t0 = lm__now_us();
	for (uint32_t i = 0; i < s->nch; i++)
		lm__sender_post(s, &s->ch[i], LM_TX_SYNC);
	if ((rc = lm__sender_wait_idle(s)))
		return rc;
	if (s->features & LM_FEAT_ROUND_ACK) {
		rc = lm__sender_await_ack(s, &s->ch[0], LM_KIND_SYNC, &ack, &e);
		if (!rc && ack.features != s->round) {
			lm__err_set(&e, "ack of round %llu, expected round %u",
				    (unsigned long long)ack.features, s->round);
			rc = LM_EFIELD;
		}
		if (rc) {
			lm__sender_error(s, rc, 0, e.msg[0] ? e.msg : lm_strerror(rc));
			return rc;
		}
	}
	s->sync_us = lm__now_us() - t0;
	s->round++;
	lm__sender_publish(s, 1);
	return 0;
}

/* Main thread, ch's conn not in use by its thread: the receiver's ACK of
 * kind (hello on any channel; sync and complete on channel 0), or its ERROR:
 * a refusal of the hello, a failure report later. */
