/*
 * Receiver rounds: the barrier every channel passes after its SYNC (so no
 * channel applies round r+1 before all applied round r), the rehash of the
 * blocks a round changed, and channel 0's wait before it verifies. Touches
 * the session only under r->lock.
 */
#include <poll.h>
#include <string.h>
#include <time.h>

#include "receiver/receiver.h"

struct timespec lm__rx_deadline(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts); /* the clock of r->cond */
	ts.tv_nsec += ms * 1000 * 1000;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* While a channel waits at the round barrier it reads nothing, so its own
 * stall timeout cannot fire: a sender that closed this channel, or one whose
 * other channels never end the round, is noticed here. The others normally
 * finish within a packet of each other, so the stall timeout is ample. */
static int barrier_check(lm__rx_chan *ch, uint64_t t0, lm__err *e)
{
	struct pollfd p = {ch->conn.rfd, POLLRDHUP, 0};
	int timeout_ms = ch->r->cfg.timeout_ms;

	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
		lm__err_set(e, "the sender closed the connection while the other channels were "
			       "still in round %u", ch->round - 1);
		return LM_EEOF;
	}
	if (lm__now_us() - t0 > (uint64_t)timeout_ms * 1000u) {
		lm__err_set(e, "round %u: waited %d ms for the other channels' sync", ch->round - 1,
			    timeout_ms);
		return LM_ETIMEDOUT;
	}
	return 0;
}

/* The channels apply a page's rounds in order only if no channel starts
 * round r+1 before all have finished round r: a page sent in round r on one
 * channel and again in round r+1 on another would otherwise land stale. So
 * each channel waits here after its sync (QEMU's multifd recv sync does the
 * same). The last to arrive hashes the blocks this round changed, so that
 * only the final round's blocks are left to hash while the source is
 * paused. It hashes without r->lock (a failing channel, the accept loop and
 * the stats must not wait for it) and releases the barrier only afterwards:
 * every other session channel waits here until then, so nothing lands while
 * the rehash reads the pages. That is the invariant lm__sumtree_refresh()
 * needs ("channels quiet"). */
int lm__rx_round_barrier(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint64_t t0 = lm__now_us();
	uint32_t behind = 0, nregions;
	uint16_t nch;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	r->synced[ch->channel] = ch->round;
	lm__rx_publish(ch); /* the stats (and the progress callback) see the round */
	for (uint32_t i = 0; i < r->channels; i++)
		behind += r->synced[i] < ch->round;
	if (!behind && !r->err) {
		r->rehashing = 1;
		nregions = r->region_count;
		nch = r->channels;
		pthread_mutex_unlock(&r->lock);
		for (uint32_t i = 0; i < nregions; i++) {
			lm__rx_region *g = r->by_id[i];
			lm__sumtree_refresh(&g->sum, nch);
			size_t words = (g->len + r->page_size - 1) / r->page_size / 64 + 1;
			memset(g->claimed, 0, words * 8);
			if (g->pinned)
				memset(g->pinned, 0, words * 8);
		}
		pthread_mutex_lock(&r->lock);
		r->rehashing = 0;
		r->released = ch->round;
		pthread_cond_broadcast(&r->cond);
	}
	while (r->released < ch->round && !r->err && !rc) {
		struct timespec ts = lm__rx_deadline(100);
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		/* Every channel has synced: the rehash is the barrier's
		 * progress, so the stall timeout counts from its end. */
		if (r->rehashing)
			t0 = lm__now_us();
		if (r->released < ch->round && !r->err)
			rc = barrier_check(ch, t0, e);
	}
	if (!rc)
		rc = r->err;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Channel 0 tells the sender that every channel's round is applied. */

int lm__rx_wait_all_synced(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;
	int rc;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		uint32_t behind = 0;
		for (uint32_t i = 0; i < r->channels; i++)
			behind += r->synced[i] < ch->round;
		if (!behind || r->err)
			break;
		pthread_cond_wait(&r->cond, &r->lock);
	}
	rc = r->err;
	if (rc)
		goto out;
	/* From here no DATA may land. A channel counts a packet in unsynced
	 * before it checks verifying, and we set verifying before we read
	 * the counts (both seq_cst): either we see its packet, or it sees
	 * verifying and does not apply the packet. synced[] is read under
	 * the lock: the other channels write it in their barrier. */
	__atomic_store_n(&r->verifying, 1, __ATOMIC_SEQ_CST);
	for (uint32_t i = 0; i < r->channels && !rc; i++) {
		if (__atomic_load_n(&r->unsynced[i], __ATOMIC_SEQ_CST)) {
			lm__err_set(e, "complete: channel %u sent data after its last sync", i);
			rc = LM_EKIND;
		} else if (r->synced[i] != ch->round) {
			lm__err_set(e, "complete: channel %u synced round %u, channel 0 round %u", i,
				    r->synced[i], ch->round);
			rc = LM_EKIND;
		}
	}
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

