/*
 * Receiver channel: a session channel's data loop, frames to pages. It
 * validates each DATA, SYNC and COMPLETE frame (src/wire.c) and lands pages
 * straight into the destination memory; it owns its slot's conn and buffers.
 * Rounds and the barrier are in barrier.c; accepting, the handshake and the
 * public calls in session.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checksum.h"
#include "cpuidle.h"
#include "receiver/receiver.h"
#include "zero.h"

/* ---- codecs and what they cost --------------------------------------------- */

static int new_ctx(lm__rx_chan *ch, const lm__codec_ops *ops)
{
	lm_receiver *r = ch->r;
	lm__codec_params p = {
		.page_size = r->page_size,
		.packet_pages = r->packet_pages,
		.accel = r->cfg.accel,
		.engine = r->cfg.engine,
		.busy_retries = 3,
		.stats = ch->eng,
		.accel_ops = r->accel_ops,
	};

	return ops->ctx_new(&ch->codec_ctx[ops->id], &p);
}

/* The channel's context for ops: the session's codec has one from the
 * start; under MIXED each codec gets its own on its first packet, so a
 * session pays only for the codecs its sender picks. */
static int codec_ctx(lm__rx_chan *ch, const lm__codec_ops *ops, lm__err *e)
{
	lm__err why = {0};
	int rc;

	if (ch->codec_ctx[ops->id])
		return 0;
	if (!(rc = new_ctx(ch, ops)))
		return 0;
	lm__codec_unavailable(&why, ops->id, ch->r->cfg.accel, rc);
	lm__err_set(e, "data.codec %u: %s", ops->id, why.msg);
	return rc;
}

void lm__receiver_slow_decode(lm_receiver *r, uint16_t codec, uint32_t ns_per_page)
{
	if (r && codec < LM_MAX_CODECS)
		r->slow_ns[codec] = ns_per_page;
}

void lm__receiver_slow_verify(lm_receiver *r, uint32_t ms)
{
	if (r)
		r->slow_verify_ms = ms;
}

/* Counts pages decoded by codec since t0 (ns) for FEEDBACK, after the
 * tests' delay (lm__receiver_slow_decode), which the time includes. */
static void decoded(lm__rx_chan *ch, uint16_t codec, uint32_t pages, uint64_t t0)
{
	uint64_t slow = (uint64_t)ch->r->slow_ns[codec] * pages;

	if (slow) {
		struct timespec ts = {(time_t)(slow / 1000000000u), (long)(slow % 1000000000u)};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	ch->fb.codec[codec].pages += pages;
	ch->fb.codec[codec].ns += t0 ? lm__now_ns() - t0 : slow;
}

/* ---- pages --------------------------------------------------------------- */

/* Where page data for offset off lands: the region itself, or the bounce
 * page when the page runs past the region's end. */
static uint8_t *page_target(lm__rx_chan *ch, lm__rx_region *g, uint64_t off)
{
	return off + ch->r->page_size <= g->len ? g->base + off : ch->tail;
}

/* The sender pads a partial last page with zeros: copy what belongs to the
 * region and refuse anything else. */
static int land_tail(lm__rx_chan *ch, lm__rx_region *g, uint64_t off, lm__err *e)
{
	size_t keep = (size_t)(g->len - off);

	if (!lm__is_zero(ch->tail + keep, ch->r->page_size - keep)) {
		lm__err_set(e, "data.payload: page at offset 0x%llx has non-zero bytes past the region end",
			    (unsigned long long)off);
		return LM_EFIELD;
	}
	memcpy(g->base + off, ch->tail, keep);
	return 0;
}

static int read_raw_pages(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	uint32_t ps = ch->r->page_size;
	int iovc = 0, rc, tail = -1;

	for (uint32_t i = 0; i < d->normal; i++) {
		uint8_t *t = page_target(ch, g, ch->off[i]);
		struct iovec *last = iovc ? &ch->iov[iovc - 1] : NULL;
		if (t == ch->tail)
			tail = (int)i;
		if (last && t != ch->tail && (uint8_t *)last->iov_base + last->iov_len == t)
			last->iov_len += ps;
		else
			ch->iov[iovc++] = (struct iovec){t, ps};
	}
	if (d->area)
		ch->iov[iovc++] = (struct iovec){ch->area, (size_t)d->area * ps};
	/* Fresh memory was populated by lm__rx_claim(). */
	rc = lm__readv_full(&ch->conn, ch->iov, iovc);
	if (rc) {
		lm__err_read(e, &ch->conn, "data.payload", rc);
		return rc;
	}
	decoded(ch, LM_CODEC_NONE, d->normal + d->area, 0); /* nothing to decode: 0 ns */
	return tail >= 0 ? land_tail(ch, g, ch->off[tail], e) : 0;
}

static int read_coded_pages(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d,
			    const lm__codec_ops *ops, lm__err *e)
{
	int rc = lm__read_full(&ch->conn, ch->payload, d->payload), tail = -1;
	uint64_t t0;

	if (rc) {
		lm__err_read(e, &ch->conn, "data.payload", rc);
		return rc;
	}
	for (uint32_t i = 0; i < d->normal; i++) {
		ch->pages[i] = page_target(ch, g, ch->off[i]);
		if (ch->pages[i] == ch->tail)
			tail = (int)i;
	}
	for (uint32_t i = 0; i < d->area; i++)
		ch->pages[d->normal + i] = ch->area + (size_t)i * ch->r->page_size;
	e->page = 0;
	t0 = lm__now_ns();
	rc = ops->decode(ch->codec_ctx[ops->id], ch->payload, d->payload, ch->plen, ch->pages,
			 d->normal + d->area, ch->r->page_size, e);
	if (!rc)
		decoded(ch, ops->id, d->normal + d->area, t0);
	if (rc) {
		/* Name the packet, and the page's offset where the codec knows
		 * which page failed. */
		char m[sizeof(e->msg)];
		memcpy(m, e->msg, sizeof(m));
		if (e->page && e->page <= d->normal)
			lm__err_set(e, "packet %llu, page at offset 0x%llx: %s",
				    (unsigned long long)d->packet_num,
				    (unsigned long long)ch->off[e->page - 1], m);
		else
			lm__err_set(e, "packet %llu: %s", (unsigned long long)d->packet_num, m);
		return rc;
	}
	return tail >= 0 ? land_tail(ch, g, ch->off[tail], e) : 0;
}

/* The delta area is as large as the largest a packet brought (at most one
 * page per delta page, bounded by the packet size like the payload). */
static int grow_area(lm__rx_chan *ch, uint32_t pages, lm__err *e)
{
	uint8_t *a = realloc(ch->area, (size_t)pages * ch->r->page_size);

	if (!a) {
		lm__err_set(e, "data.delta: no memory for a %u-page delta area", pages);
		return -ENOMEM;
	}
	ch->area = a;
	ch->area_cap = pages;
	return 0;
}

static int is_finishing(lm_receiver *r);

/* MIXED: what this channel spent, cumulative, on its own connection. A
 * failed write fails like a failed ack, but for one after the session
 * ended: the sender reads no more then and may have closed. */
static int send_feedback(lm__rx_chan *ch, lm__err *e)
{
	uint8_t b[LM_FRAME_HDR + LM_FEEDBACK_LEN];
	uint64_t now = lm__now_ns(), busy = lm__thread_busy_ns();
	int rc;

	ch->fb.round = ch->round;
	/* Cumulative: never below what was sent (the wait may become
	 * unreadable, and a sender takes a count that went back as a bug). */
	busy = busy > ch->cpu_hello_ns ? busy - ch->cpu_hello_ns : 0;
	ch->fb.cpu_ns = busy > ch->fb.cpu_ns ? busy : ch->fb.cpu_ns;
	ch->fb.wall_ns = now - ch->t_hello_ns;
	ch->t_fb_ns = now;
	rc = lm__write_full(&ch->conn, b, lm__enc_feedback(b, &ch->fb));
	if (!rc || is_finishing(ch->r))
		return 0;
	lm__err_set(e, "sending feedback of round %u: %s", ch->round, lm_strerror(rc));
	return rc;
}

static int rx_data(lm__rx_chan *ch, const lm__frame *f, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t hb[LM_DATA_HDR];
	lm__data_hdr d;
	lm__limits lim = {r->page_size, r->packet_pages, r->codec, ch->round, r->region_count,
			  r->region_len, r->features};
	const lm__codec_ops *ops;
	lm__rx_region *g;
	int rc;

	if (f->len < LM_DATA_HDR) {
		lm__err_set(e, "data.length %u below the %u-byte header", f->len, LM_DATA_HDR);
		return LM_EFIELD;
	}
	if ((rc = lm__read_full(&ch->conn, hb, sizeof(hb)))) {
		lm__err_read(e, &ch->conn, "data header", rc);
		return rc;
	}
	if ((rc = lm__dec_data_hdr(hb, f->len, &lim, &d, e)))
		return rc;
	if (ch->have_num && d.packet_num <= ch->last_num) {
		lm__err_set(e, "data.packet_num %llu not above the previous %llu",
			    (unsigned long long)d.packet_num, (unsigned long long)ch->last_num);
		return LM_EFIELD;
	}
	/* d.tables is at most LM_DATA_PAGE_TABLES a page: ch->tab holds it. */
	if ((rc = lm__read_full(&ch->conn, ch->tab, d.tables))) {
		lm__err_read(e, &ch->conn, "data tables", rc);
		return rc;
	}
	if (r->features & LM_FEAT_PACKED) {
		rc = lm__dec_data_packed(ch->tab, &d, &lim, ch->off, ch->plen, ch->refs, ch->deltas, e);
		if (rc)
			return rc;
	} else {
		if ((rc = lm__dec_data_tables(ch->tab, &d, &lim, ch->off, ch->plen, e)))
			return rc;
		if ((d.ref || d.delta) &&
		    (rc = lm__dec_data_kinds(ch->tab, &d, &lim, ch->off, ch->refs, ch->deltas, e)))
			return rc;
	}
	if (d.area > ch->area_cap && (rc = grow_area(ch, d.area, e)))
		return rc;
	/* Counted before the check: see lm__rx_wait_all_synced(). */
	__atomic_add_fetch(&r->unsynced[ch->channel], 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->verifying, __ATOMIC_SEQ_CST)) {
		lm__err_set(e, "frame.kind data after complete: not applied");
		return LM_EKIND;
	}
	g = r->by_id[d.region];
	ops = lm__codec_get(d.codec_flags & LM_PKT_CODEC_MASK);
	if (!ops->raw_only && (rc = codec_ctx(ch, ops, e)))
		return rc;
	if ((rc = lm__rx_claim(ch, g, &d, e)))
		return rc;
	rc = ops->raw_only ? read_raw_pages(ch, g, &d, e) : read_coded_pages(ch, g, &d, ops, e);
	if (rc || (rc = lm__rx_land(ch, g, &d, e)))
		return rc;
	ch->mix[ops->id].packets++;
	ch->mix[ops->id].bytes_in += (uint64_t)(d.normal + d.area) * r->page_size;
	ch->mix[ops->id].bytes_out += d.payload;
	ch->have_num = 1;
	ch->last_num = d.packet_num;
	ch->round_packets++;
	ch->packets++;
	ch->normal_pages += d.normal;
	ch->zero_pages += d.zero;
	ch->ref_pages += d.ref;
	ch->delta_pages += d.delta;
	ch->payload_bytes += d.payload;
	if (lm__now_ns() - ch->t_pub_ns >= LM__RX_PUB_NS) {
		ch->t_pub_ns = lm__now_ns();
		pthread_mutex_lock(&r->lock);
		lm__rx_publish(ch);
		pthread_mutex_unlock(&r->lock);
	}
	if (r->features & LM_FEAT_MIXED) {
		uint64_t now = lm__now_ns();
		uint64_t every = now - ch->t_hello_ns < 200000000ull ? LM__FEEDBACK_FIRST_US
								     : LM__FEEDBACK_US;
		if (now - ch->t_fb_ns >= every * 1000ull)
			return send_feedback(ch, e);
	}
	return 0;
}


/* ---- sync and completion -------------------------------------------------- */

static int ack_round(lm__rx_chan *ch, uint32_t round, lm__err *e)
{
	uint8_t b[LM_FRAME_HDR + LM_ACK_LEN];
	lm__ack a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_SYNC;
	a.features = round;
	memcpy(a.session, ch->r->session, 16);
	if ((rc = lm__write_full(&ch->conn, b, lm__enc_ack(b, &a))))
		lm__err_set(e, "sending the ack of round %u: %s", round, lm_strerror(rc));
	return rc;
}

static int rx_sync(lm__rx_chan *ch, const lm__frame *f, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint8_t b[LM_SYNC_LEN];
	lm__sync s;
	int rc;

	if (f->len != LM_SYNC_LEN) {
		lm__err_set(e, "sync.length %u, expected %u", f->len, LM_SYNC_LEN);
		return LM_EFIELD;
	}
	if ((rc = lm__read_full(&ch->conn, b, sizeof(b)))) {
		lm__err_read(e, &ch->conn, "sync", rc);
		return rc;
	}
	if ((rc = lm__dec_sync(b, f->len, &s, e)))
		return rc;
	if (s.round != ch->round) {
		lm__err_set(e, "sync.round %u, channel is in round %u", s.round, ch->round);
		return LM_EFIELD;
	}
	if (s.packets != ch->round_packets) {
		lm__err_set(e, "sync.packets %llu, received %llu in round %u",
			    (unsigned long long)s.packets, (unsigned long long)ch->round_packets,
			    ch->round);
		return LM_EFIELD;
	}
	ch->round++;
	ch->round_packets = 0;
	__atomic_store_n(&r->unsynced[ch->channel], 0, __ATOMIC_SEQ_CST);
	if ((rc = lm__rx_round_barrier(ch, e)))
		return rc;
	/* A fresh FEEDBACK at every round end; on channel 0 before the
	 * round's ACK, so the sender has it when the ACK arrives. */
	if ((r->features & LM_FEAT_MIXED) && (rc = send_feedback(ch, e)))
		return rc;
	return ch->channel == 0 && (r->features & LM_FEAT_ROUND_ACK) ? ack_round(ch, s.round, e) : 0;
}

/* Channel 0 waits until every channel has synced the round it just synced:
 * only then is every page of the session in memory. */

static int verify(lm__rx_chan *ch, const lm__region_sum *sums, uint32_t n, lm__err *e)
{
	lm_receiver *r = ch->r;

	if (n != r->region_count) {
		lm__err_set(e, "complete.regions %u, session announced %u", n, r->region_count);
		return LM_EFIELD;
	}
	for (uint32_t i = 0; i < n; i++) {
		lm__rx_region *g = r->by_id[i];
		uint64_t sum;
		int rc;

		if (sums[i].id != i || sums[i].len != g->len) {
			lm__err_set(e, "complete.entry[%u] id %u len %llu, expected id %u len %llu", i,
				    sums[i].id, (unsigned long long)sums[i].len, i,
				    (unsigned long long)g->len);
			return LM_EFIELD;
		}
		if ((rc = lm__sumtree_final(&g->sum, r->channels, &sum)))
			return rc;
		if (sum != sums[i].checksum) {
			char name[96]; /* named by the sender: shown escaped */
			lm__escape(name, sizeof(name), g->name, strlen(g->name));
			lm__err_set(e, "region %s: checksum 0x%016llx, sender's 0x%016llx", name,
				    (unsigned long long)sum, (unsigned long long)sums[i].checksum);
			return LM_ECHECKSUM;
		}
	}
	return 0;
}

static int rx_complete(lm__rx_chan *ch, const lm__frame *f, lm__err *e)
{
	lm_receiver *r = ch->r;
	lm__region_sum *sums = NULL;
	uint8_t *b = NULL, ack[LM_FRAME_HDR + LM_ACK_LEN];
	lm__ack a;
	uint32_t n = 0;
	int rc;

	if (ch->channel != 0 || ch->round == 0 || ch->round_packets) {
		lm__err_set(e, "frame.kind complete on channel %d: only valid on channel 0 right after a sync",
			    ch->channel);
		return LM_EKIND;
	}
	b = malloc(f->len ? f->len : 1);
	sums = calloc(r->region_count ? r->region_count : 1, sizeof(*sums));
	if (!b || !sums) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = lm__read_full(&ch->conn, b, f->len))) {
		lm__err_read(e, &ch->conn, "complete", rc);
		goto out;
	}
	if ((rc = lm__dec_complete(b, f->len, sums, r->region_count, &n, e)))
		goto out;
	if ((rc = lm__rx_wait_all_synced(ch, e)))
		goto out;
	if (r->slow_verify_ms) { /* tests (lm__receiver_slow_verify) */
		struct timespec ts = {(time_t)(r->slow_verify_ms / 1000),
				      (long)(r->slow_verify_ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if ((rc = verify(ch, sums, n, e)) || (rc = lm__rx_devstate_finish(ch, e)))
		goto out;
	pthread_mutex_lock(&r->lock);
	rc = r->err; /* another channel may have failed meanwhile */
	if (!rc)
		r->finishing = 1;
	pthread_mutex_unlock(&r->lock);
	if (rc)
		goto out;
	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_COMPLETE;
	memcpy(a.session, r->session, 16);
	if ((rc = lm__write_full(&ch->conn, ack, lm__enc_ack(ack, &a))))
		lm__err_set(e, "sending the completion ack: %s", lm_strerror(rc));
	else
		lm__rx_wake(r); /* the accept loop and idle channels can stop now */
out:
	free(b);
	free(sums);
	return rc;
}

/* ---- per-channel loop ------------------------------------------------------ */

static int is_finishing(lm_receiver *r)
{
	int f;

	pthread_mutex_lock(&r->lock);
	f = r->finishing;
	pthread_mutex_unlock(&r->lock);
	return f;
}

int lm__rx_data_loop(lm__rx_chan *ch, lm__err *e)
{
	lm_receiver *r = ch->r;

	/* FEEDBACK's clocks start with the channel's data: its hello acked. */
	ch->t_hello_ns = lm__now_ns();
	ch->cpu_hello_ns = lm__thread_busy_ns();
	ch->t_fb_ns = ch->t_hello_ns;

	for (;;) {
		lm__frame f;
		lm__error_msg m;
		int rc = lm__read_frame(&ch->conn, &f, r->page_size, r->packet_pages, e);

		if (rc) {
			pthread_mutex_lock(&r->lock);
			int quiet = r->finishing || r->done || r->err;
			int wait = __atomic_load_n(&r->verifying, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&r->lock);
			if (quiet)
				return 0; /* the session ended: this is the close */
			if (rc == LM_ETIMEDOUT && wait)
				continue; /* channel 0 is hashing; the sender waits too */
			return rc;
		}
		switch (f.kind) {
		case LM_KIND_DATA:
			rc = rx_data(ch, &f, e);
			if (rc == LM_EKIND && is_finishing(r))
				return 0; /* acknowledged already: not applied, not an error */
			break;
		case LM_KIND_SYNC: rc = rx_sync(ch, &f, e); break;
		case LM_KIND_DEVSTATE: rc = lm__rx_devstate(ch, &f, e); break;
		case LM_KIND_DEVSTATE_END: rc = lm__rx_devstate_end(ch, &f, e); break;
		case LM_KIND_COMPLETE:
			rc = rx_complete(ch, &f, e);
			if (!rc)
				return 0;
			break;
		case LM_KIND_ERROR:
			rc = lm__read_error_body(&ch->conn, &f, &m, e);
			if (!rc) {
				lm__err_set(e, "sender reported: %s (%s)", m.msg, lm_strerror(m.code));
				rc = LM_EPEER;
			}
			break;
		default:
			lm__err_set(e, "frame.kind %s not valid after the handshake",
				    lm__kind_name(f.kind));
			rc = LM_EKIND;
		}
		if (rc)
			return rc;
	}
}


/* ---- buffers ------------------------------------------------------------ */

int lm__rx_chan_alloc(lm__rx_chan *ch)
{
	lm_receiver *r = ch->r;
	uint32_t n = r->packet_pages;
	int mixed = r->codec == LM_CODEC_AUTO;
	const lm__codec_ops *ops = lm__codec_get(mixed ? LM_CODEC_NONE : r->codec);

	/* Offsets, the larger of a ref entry or a delta entry and an area
	 * length, and a length: at most 28 bytes a page. */
	ch->tab = malloc((size_t)n * LM_DATA_PAGE_TABLES + 1);
	ch->refs = malloc(sizeof(lm__ref) * n);
	ch->deltas = malloc(sizeof(lm__delta) * n);
	ch->off = malloc(sizeof(uint64_t) * n);
	ch->plen = malloc(sizeof(uint32_t) * n);
	ch->iov = malloc(sizeof(struct iovec) * (n + 1)); /* + the delta area */
	ch->pages = malloc(sizeof(void *) * n);
	ch->tail = malloc(r->page_size);
	if (!ch->tab || !ch->off || !ch->plen || !ch->iov || !ch->pages || !ch->tail || !ch->refs ||
	    !ch->deltas || !ops)
		return -ENOMEM;
	/* A mixed session's packets may come in any codec: one buffer for
	 * the largest payload of them all, contexts as they are needed. */
	if (mixed) {
		ch->payload = malloc(lm__codec_payload_bound(r->page_size, n));
		return ch->payload ? 0 : -ENOMEM;
	}
	if (ops->raw_only)
		return 0;
	ch->payload = malloc(ops->payload_bound(r->page_size, n));
	if (!ch->payload)
		return -ENOMEM;
	return new_ctx(ch, ops);
}

void lm__rx_chan_free(lm__rx_chan *ch)
{
	for (uint16_t id = 0; id < LM_MAX_CODECS; id++) {
		const lm__codec_ops *ops = lm__codec_get(id);
		if (ops && ch->codec_ctx[id])
			ops->ctx_free(ch->codec_ctx[id]);
		ch->codec_ctx[id] = NULL;
	}
	free(ch->tab);
	free(ch->off);
	free(ch->plen);
	free(ch->iov);
	free(ch->pages);
	free(ch->payload);
	free(ch->tail);
	free(ch->refs);
	free(ch->deltas);
	free(ch->area);
	free(ch->ds_buf);
	ch->ds_buf = NULL;
	ch->ds_cap = 0;
	ch->refs = NULL;
	ch->deltas = NULL;
	ch->area = NULL;
	ch->area_cap = 0;
	ch->tab = ch->payload = ch->tail = NULL;
	ch->off = NULL;
	ch->plen = NULL;
	ch->iov = NULL;
	ch->pages = NULL;
}
