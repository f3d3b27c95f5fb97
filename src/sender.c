/*
 * Sender: the main thread walks the regions and hands packets of up to
 * packet_pages pages to idle channel threads; each channel thread scans its
 * pages for zeros, encodes and sends. Control frames (hello, region, sync,
 * complete) are written by whoever owns the conn at that moment: the main
 * thread before the channel threads start and while they are idle.
 */
#include "sender.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checksum.h"
#include "stats.h"
#include "zero.h"

/* ---- errors ------------------------------------------------------------- */

static void abort_channels(lm_sender *s);
static int await_ack(lm_sender *s, lm__tx_chan *ch, uint8_t kind, lm__ack *ack, lm__err *e);

/* Records the first failure; later ones are consequences. */
static void set_error(lm_sender *s, int code, int channel, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	if (!s->err) {
		s->err = code;
		if (channel >= 0)
			snprintf(s->errmsg, sizeof(s->errmsg), "channel %d: %s", channel, msg);
		else
			snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg);
	}
	pthread_cond_broadcast(&s->idle_cond);
	pthread_mutex_unlock(&s->lock);
	/* Channels blocked on a stalled peer give up now, not at the timeout. */
	uint64_t one = 1;
	if (write(s->wake_fd, &one, sizeof(one)) < 0) {
		/* an eventfd counter cannot overflow here */
	}
}

/* A failed write may be the receiver closing after an error frame: read it,
 * so the user sees the receiver's reason rather than "connection reset". */
static int peer_reason(lm__tx_chan *ch, int rc, lm__err *e)
{
	lm__frame f;
	lm__error_msg m;
	int saved = ch->conn.timeout_ms;

	int got;

	if (rc == -ECANCELED) {
		lm__err_set(e, "cancelled after another channel failed");
		return rc;
	}
	ch->conn.timeout_ms = rc == LM_EPEER ? saved : 200;
	ch->conn.watch_in = 0;
	got = lm__read_frame(&ch->conn, &f, ch->s->page_size, ch->s->packet_pages, e);
	if (got == 0 && f.kind == LM_KIND_ERROR && lm__read_error_body(&ch->conn, &f, &m, e) == 0) {
		lm__err_set(e, "receiver reported: %s (%s)", m.msg, lm_strerror(m.code));
		rc = LM_EPEER;
	} else if (got == 0) {
		lm__err_set(e, "unexpected %s frame from the receiver during data",
			    lm__kind_name(f.kind));
		rc = LM_EKIND;
	} else if (rc == LM_EPEER || got == LM_EEOF) {
		lm__err_set(e, "the receiver closed the connection");
		rc = LM_EEOF;
	} else {
		lm__err_set(e, "send: %s", lm_strerror(rc));
	}
	ch->conn.timeout_ms = saved;
	ch->conn.watch_in = 1;
	return rc;
}

/* ---- channel thread ------------------------------------------------------ */

/* The partial last page of a region goes through a zero-padded copy, so only
 * [base, base + len) of the caller's memory is ever read. */
static const uint8_t *page_ptr(lm__tx_chan *ch, const lm__tx_region *r, uint64_t off)
{
	uint32_t ps = ch->s->page_size;

	if (off + ps <= r->len)
		return r->base + off;
	memset(ch->tail, 0, ps);
	memcpy(ch->tail, r->base + off, (size_t)(r->len - off));
	return ch->tail;
}

/* Appends len bytes at p to the packet's iovecs, merging with the previous
 * one when contiguous (neighbouring pages, packed encoded pages). */
static void iov_add(lm__tx_chan *ch, int *iovc, const uint8_t *p, size_t len)
{
	struct iovec *last = &ch->iov[*iovc - 1];

	if (*iovc > 1 && (const uint8_t *)last->iov_base + last->iov_len == p)
		last->iov_len += len;
	else
		ch->iov[(*iovc)++] = (struct iovec){(void *)p, len};
}

/* Encodes the packet's normal pages with the session's codec. Sets lens[]
 * and the packet's codec; returns the payload size, or a negative error.
 * A packet the codec cannot shrink goes raw (codec none). */
static int64_t encode_pages(lm__tx_chan *ch, const lm__tx_region *r, uint32_t nn, uint16_t *codec)
{
	lm_sender *s = ch->s;
	uint32_t ps = s->page_size;
	size_t enc_len = 0;
	int rc;

	*codec = LM_CODEC_NONE;
	if (!ch->ops->raw_only && nn) {
		for (uint32_t i = 0; i < nn; i++) {
			ch->pages[i] = page_ptr(ch, r, ch->normal_off[i]);
			/* A live workload may write the page while the encoder
			 * reads it twice (match search, then emit): encoders,
			 * hardware ones above all, only promise a correct stream
			 * for stable input. The page is dirty again anyway. */
			if (ch->bounce) {
				memcpy(ch->bounce + (size_t)i * ps, ch->pages[i], ps);
				ch->pages[i] = ch->bounce + (size_t)i * ps;
			}
		}
		rc = ch->ops->encode(ch->codec_ctx, ch->pages, nn, ps, ch->enc, ch->enc_cap,
				     ch->lens, &enc_len);
		if (rc == 0) {
			uint64_t sum = 0;
			*codec = ch->ops->id;
			if (!ch->ops->per_page)
				return (int64_t)enc_len;
			for (uint32_t i = 0; i < nn; i++)
				sum += ch->lens[i];
			return (int64_t)sum;
		}
		if (rc != LM_ECODEC)
			return rc;
	}
	for (uint32_t i = 0; i < nn; i++)
		ch->lens[i] = ps;
	return (int64_t)nn * ps;
}

static int send_packet(lm__tx_chan *ch, lm__err *e)
{
	lm_sender *s = ch->s;
	const lm__tx_region *r = &s->regions[ch->job_region];
	uint32_t ps = s->page_size, nn = 0, nz = 0, n = ch->job_pages;
	const uint8_t *enc = ch->enc;
	lm__data_hdr d;
	uint16_t codec;
	int64_t payload;
	uint8_t *p;
	uint64_t wire = 0;
	int iovc = 1, rc;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *pg = page_ptr(ch, r, ch->job_off[i]);
		if (lm__is_zero(pg, ps))
			ch->zero_off[nz++] = ch->job_off[i];
		else
			ch->normal_off[nn++] = ch->job_off[i];
	}
	payload = encode_pages(ch, r, nn, &codec);
	if (payload < 0) {
		lm__err_set(e, "codec %s: %s", ch->ops->name, lm_strerror((int)payload));
		return (int)payload;
	}
	memset(&d, 0, sizeof(d));
	d.packet_num = ch->job_num;
	d.region = ch->job_region;
	d.round = s->round;
	d.pages = n;
	d.normal = nn;
	d.zero = nz;
	d.payload = (uint32_t)payload;
	d.codec_flags = codec;
	p = ch->hdr + lm__enc_data_hdr(ch->hdr, &d, (uint32_t)lm__data_body_len(&d));
	for (uint32_t i = 0; i < nn; i++, p += 8)
		lm__put64(p, ch->normal_off[i]);
	for (uint32_t i = 0; i < nz; i++, p += 8)
		lm__put64(p, ch->zero_off[i]);
	for (uint32_t i = 0; i < nn; i++, p += 4)
		lm__put32(p, ch->lens[i]);
	ch->iov[0].iov_base = ch->hdr;
	ch->iov[0].iov_len = (size_t)(p - ch->hdr);
	if (codec != LM_CODEC_NONE && !ch->ops->per_page) {
		iov_add(ch, &iovc, enc, (size_t)payload);
	} else {
		/* Raw pages go from the region to the socket with no copy;
		 * encoded ones from the codec's buffer, in page order. */
		for (uint32_t i = 0; i < nn; i++) {
			if (ch->lens[i] == ps) {
				iov_add(ch, &iovc, page_ptr(ch, r, ch->normal_off[i]), ps);
			} else {
				iov_add(ch, &iovc, enc, ch->lens[i]);
				enc += ch->lens[i];
			}
		}
	}
	rc = lm__writev_full(&ch->conn, ch->iov, iovc);
	if (rc)
		return peer_reason(ch, rc, e);
	for (int i = 0; i < iovc; i++)
		wire += ch->iov[i].iov_len;
	__atomic_add_fetch(&s->wire_bytes, wire, __ATOMIC_RELAXED);
	lm__sumtree_land(&s->regions[ch->job_region].sum, ch->job_off, n);
	ch->zero_pages += nz;
	ch->normal_pages += nn;
	ch->payload += d.payload;
	ch->packets++;
	ch->round_packets++;
	return 0;
}

static int send_sync(lm__tx_chan *ch, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync sy = {ch->s->round, ch->round_packets};
	int rc = lm__write_full(&ch->conn, buf, lm__enc_sync(buf, &sy));

	if (rc)
		return peer_reason(ch, rc, e);
	ch->round_packets = 0;
	return 0;
}

static void *chan_main(void *arg)
{
	lm__tx_chan *ch = arg;
	lm_sender *s = ch->s;
	double cpu0 = lm__thread_cpu();

	for (;;) {
		lm__err e = {0};
		int st, rc = 0;

		pthread_mutex_lock(&s->lock);
		while (ch->state == LM_TX_IDLE)
			pthread_cond_wait(&ch->cond, &s->lock);
		st = ch->state;
		pthread_mutex_unlock(&s->lock);
		if (st == LM_TX_QUIT)
			break;
		rc = st == LM_TX_JOB ? send_packet(ch, &e) : send_sync(ch, &e);
		if (rc)
			set_error(s, rc, ch->idx, e.msg);
		pthread_mutex_lock(&s->lock);
		if (ch->state != LM_TX_QUIT) /* a QUIT posted meanwhile stands */
			ch->state = LM_TX_IDLE;
		pthread_cond_broadcast(&s->idle_cond);
		pthread_mutex_unlock(&s->lock);
	}
	ch->cpu = lm__thread_cpu() - cpu0;
	return NULL;
}

/* ---- main thread --------------------------------------------------------- */

/* Next idle channel, round robin; NULL once the migration has failed. */
static lm__tx_chan *idle_channel(lm_sender *s)
{
	lm__tx_chan *found = NULL;

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
	pthread_mutex_unlock(&s->lock);
	return found;
}

static void post(lm_sender *s, lm__tx_chan *ch, int state)
{
	pthread_mutex_lock(&s->lock);
	ch->state = state;
	pthread_cond_signal(&ch->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Waits until no channel is busy; returns the first error, if any. */
static int wait_all_idle(lm_sender *s)
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
static void pace(lm_sender *s)
{
	double cap = (double)s->packet_pages * s->page_size;

	if (!s->rate_limit)
		return;
	if (cap < 65536)
		cap = 65536;
	for (;;) {
		uint64_t now = lm__now_us(), seen = __atomic_load_n(&s->wire_bytes, __ATOMIC_RELAXED);
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
		usleep((useconds_t)(-s->rate_tokens * 1e6 / (double)s->rate_limit) + 1);
	}
}

/* The packet of n pages whose offsets the caller then writes into the
 * returned channel's job_off; NULL once the run failed. */
static lm__tx_chan *next_job(lm_sender *s, uint32_t rid, uint32_t n)
{
	lm__tx_chan *ch;

	if (!(ch = idle_channel(s)))
		return NULL;
	pace(s); /* after the wait: the packet just finished is charged */
	if (!s->t_first_data)
		s->t_first_data = lm__now_us();
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

/* Hands n gathered pages to the next idle channel. reopen: a later round,
 * so each page's block is hashed again once the page lands (the channel
 * that lands it is idle until post(), which orders the reopening first). */
static int post_pages(lm_sender *s, uint32_t rid, const uint64_t *off, uint32_t n, int reopen)
{
	lm__tx_chan *ch = next_job(s, rid, n);

	if (!ch)
		return s->err;
	for (uint32_t i = 0; reopen && i < n; i++)
		lm__sumtree_reopen(&s->regions[rid].sum, off[i]);
	memcpy(ch->job_off, off, sizeof(uint64_t) * n);
	post(s, ch, LM_TX_JOB);
	return 0;
}

/* Round one: every page in order, less the skip set. A skipped page still
 * counts as landed for the checksum, so its block is hashed again, from the
 * page's next copy, when that lands. */
static int dispatch_region(lm_sender *s, uint32_t rid)
{
	lm__tx_region *r = &s->regions[rid];
	uint64_t pages = (r->len + s->page_size - 1) / s->page_size, pg = 0;
	uint64_t *off = malloc(sizeof(uint64_t) * s->packet_pages);
	int rc = 0;

	if (!off)
		return -ENOMEM;
	while (pg < pages && !rc) {
		uint32_t n = 0;
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
		if (n)
			rc = post_pages(s, rid, off, n, 0);
	}
	free(off);
	return rc;
}

int lm__sender_send_all(lm_sender *s)
{
	int rc = 0;

	for (uint32_t i = 0; i < s->nregions && !rc; i++)
		rc = dispatch_region(s, i);
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
		pg = *word * 64 + (uint64_t)__builtin_ctzll(*cur);
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
		rc = post_pages(s, rid, off, n, 1);
	}
	free(off);
	return rc;
}

int lm__sender_send_dirty(lm_sender *s, uint64_t *const *bitmap)
{
	int rc = 0;

	for (uint32_t i = 0; i < s->nregions && !rc; i++)
		rc = dispatch_dirty(s, i, bitmap[i]);
	return rc;
}

int lm__sender_sync(lm_sender *s)
{
	lm__err e = {0};
	lm__ack ack;
	int rc = wait_all_idle(s);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < s->nch; i++)
		post(s, &s->ch[i], LM_TX_SYNC);
	if ((rc = wait_all_idle(s)))
		return rc;
	if (s->features & LM_FEAT_ROUND_ACK) {
		rc = await_ack(s, &s->ch[0], LM_KIND_SYNC, &ack, &e);
		if (!rc && ack.features != s->round) {
			lm__err_set(&e, "ack of round %llu, expected round %u",
				    (unsigned long long)ack.features, s->round);
			rc = LM_EFIELD;
		}
		if (rc) {
			set_error(s, rc, 0, e.msg[0] ? e.msg : lm_strerror(rc));
			return rc;
		}
	}
	s->round++;
	return 0;
}

/* Main thread, ch's conn not in use by its thread: the receiver's ACK of
 * kind (hello on any channel; sync and complete on channel 0), or its ERROR:
 * a refusal of the hello, a failure report later. */
static int await_ack(lm_sender *s, lm__tx_chan *ch, uint8_t kind, lm__ack *ack, lm__err *e)
{
	lm__conn *c = &ch->conn;
	uint8_t b[LM_ACK_LEN];
	lm__frame f;
	int rc, watch = c->watch_in;

	c->watch_in = 0;
	rc = lm__read_frame(c, &f, s->page_size, s->packet_pages, e);
	c->watch_in = watch;
	if (rc)
		return rc;
	if (f.kind == LM_KIND_ERROR) {
		lm__error_msg m;
		if ((rc = lm__read_error_body(c, &f, &m, e)))
			return rc;
		if (kind == LM_KIND_HELLO) {
			lm__err_set(e, "receiver refused: %s (%s)", m.msg, lm_strerror(m.code));
			return LM_EPEER;
		}
		lm__err_set(e, "receiver reported: %s (%s)", m.msg, lm_strerror(m.code));
		return m.code == LM_ECHECKSUM ? LM_ECHECKSUM : LM_EPEER;
	}
	if (f.kind != LM_KIND_ACK || f.len != LM_ACK_LEN) {
		lm__err_set(e, "expected ack of %s, got %s", lm__kind_name(kind), lm__kind_name(f.kind));
		return LM_EKIND;
	}
	if ((rc = lm__read_full(c, b, sizeof(b))) || (rc = lm__dec_ack(b, f.len, ack, e)))
		return rc;
	if (ack->kind != kind) {
		lm__err_set(e, "ack.kind %u, expected %s", ack->kind, lm__kind_name(kind));
		return LM_EFIELD;
	}
	if (memcmp(ack->session, s->session, 16)) {
		lm__err_set(e, "ack.session does not match ours");
		return LM_ESESSION;
	}
	return 0;
}

int lm__sender_complete(lm_sender *s)
{
	lm__region_sum sums[LM_MAX_REGIONS];
	uint8_t *buf = malloc(lm__complete_bound(s->nregions));
	lm__tx_chan *ch0 = &s->ch[0];
	lm__err e = {0};
	lm__ack ack;
	int rc;

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nregions; i++) {
		sums[i].id = i;
		sums[i].len = s->regions[i].len;
		rc = lm__sumtree_final(&s->regions[i].sum, s->nch, &sums[i].checksum);
		if (rc)
			goto out;
	}
	rc = lm__write_full(&ch0->conn, buf, lm__enc_complete(buf, sums, s->nregions));
	if (rc) {
		rc = peer_reason(ch0, rc, &e);
		goto fail;
	}
	/* The receiver hashes everything before it answers: that is the
	 * verification the user waits for. */
	if ((rc = await_ack(s, ch0, LM_KIND_COMPLETE, &ack, &e)))
		goto fail;
	goto out;
fail:
	if (!e.msg[0])
		lm__err_set(&e, "%s", lm_strerror(rc));
	set_error(s, rc, 0, e.msg);
out:
	free(buf);
	return rc;
}

/* ---- handshake ------------------------------------------------------------ */

static int hello_channel(lm_sender *s, lm__tx_chan *ch, const char *addr, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_HELLO_LEN];
	lm__hello h;
	int fd, rc = lm__tcp_connect(addr, s->cfg.timeout_ms, s->cfg.sndbuf, &fd);

	if (rc) {
		lm__err_set(e, "connect to %s: %s", addr, lm_strerror(rc));
		return rc;
	}
	lm__conn_init(&ch->conn, fd, s->cfg.timeout_ms);
	ch->conn.wake_fd = s->wake_fd;
	memset(&h, 0, sizeof(h));
	h.version = LM_PROTOCOL_VERSION;
	memcpy(h.session, s->session, 16);
	h.channel = ch->idx;
	h.channels = (uint16_t)s->nch;
	h.page_size = s->page_size;
	h.codec = (uint16_t)s->cfg.codec;
	h.packet_pages = s->packet_pages;
	h.region_count = s->nregions;
	h.features = LM_FEAT_ROUND_ACK;
	rc = lm__write_full(&ch->conn, buf, lm__enc_hello(buf, &h));
	if (rc)
		lm__err_set(e, "sending hello: %s", lm_strerror(rc));
	return rc;
}

static int send_regions(lm_sender *s, lm__tx_chan *ch, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];

	for (uint32_t i = 0; i < s->nregions; i++) {
		lm__region_msg m;
		int rc;
		memset(&m, 0, sizeof(m));
		m.id = i;
		m.len = s->regions[i].len;
		m.name_len = (uint16_t)strlen(s->regions[i].name);
		memcpy(m.name, s->regions[i].name, m.name_len);
		rc = lm__write_full(&ch->conn, buf, lm__enc_region(buf, &m));
		if (rc) {
			lm__err_set(e, "sending region %u: %s", i, lm_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int await_hello_ack(lm_sender *s, lm__tx_chan *ch, lm__err *e)
{
	lm__ack a;
	int rc = await_ack(s, ch, LM_KIND_HELLO, &a, e);

	if (rc)
		return rc;
	if (a.features & ~LM_FEAT_ROUND_ACK) {
		lm__err_set(e, "ack.features 0x%llx accepts features we did not offer",
			    (unsigned long long)a.features);
		return LM_EFIELD;
	}
	ch->features = a.features;
	return 0;
}

/* Waits for every channel's ack at once: a channel the receiver refused
 * reports at once, not after the others time out. */
static int await_hello_acks(lm_sender *s, int *who, lm__err *e)
{
	struct pollfd p[LM_MAX_CHANNELS];
	uint32_t left = s->nch;

	for (uint32_t i = 0; i < s->nch; i++)
		p[i] = (struct pollfd){s->ch[i].conn.rfd, POLLIN, 0};
	while (left) {
		int n = poll(p, s->nch, s->cfg.timeout_ms);
		if (n == 0) {
			lm__err_set(e, "no hello ack within %d ms", s->cfg.timeout_ms);
			return LM_ETIMEDOUT;
		}
		if (n < 0 && errno != EINTR)
			return -errno;
		for (uint32_t i = 0; n > 0 && i < s->nch; i++) {
			int rc;
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			*who = (int)i;
			if ((rc = await_hello_ack(s, &s->ch[i], e)))
				return rc;
			p[i].fd = -1; /* poll ignores negative fds */
			left--;
		}
	}
	return 0;
}

/* ---- public API ------------------------------------------------------------ */

int lm_sender_new(lm_sender **out, const lm_sender_config *cfg)
{
	lm_sender *s;
	lm_sender_config c;

	if (!out)
		return LM_EINVAL;
	*out = NULL;
	memset(&c, 0, sizeof(c));
	if (cfg)
		c = *cfg;
	if (!c.channels)
		c.channels = LM_DEFAULT_CHANNELS;
	if (!c.page_size)
		c.page_size = LM_MIN_PAGE_SIZE;
	if (!c.packet_pages)
		c.packet_pages = LM_DEFAULT_PACKET_PAGES;
	if (c.timeout_ms <= 0)
		c.timeout_ms = LM_DEFAULT_TIMEOUT_MS;
	if (!c.busy_retries)
		c.busy_retries = 3;
	if ((unsigned)c.accel > LM_ACCEL_OFF || (unsigned)c.engine > LM_ENGINE_QPL_SW)
		return LM_EINVAL;
	if (c.channels > LM_MAX_CHANNELS || c.page_size < LM_MIN_PAGE_SIZE ||
	    c.page_size > LM_MAX_PAGE_SIZE || (c.page_size & (c.page_size - 1)) ||
	    c.packet_pages > LM_MAX_PACKET_PAGES || !lm__codec_get((uint16_t)c.codec))
		return LM_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		free(s);
		return -errno;
	}
	s->cfg = c;
	s->page_size = c.page_size;
	s->packet_pages = c.packet_pages;
	s->nch = c.channels;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle_cond, NULL);
	lm__zero_init();
	*out = s;
	return 0;
}

int lm_sender_add_region(lm_sender *s, const char *name, const void *base, uint64_t len)
{
	size_t nl = name ? strlen(name) : 0;

	if (!s || nl == 0 || nl > LM_MAX_REGION_NAME || (!base && len) || len > (UINT64_MAX >> 1))
		return LM_EINVAL;
	if (s->ch)
		return LM_ESTATE;
	if (s->nregions >= LM_MAX_REGIONS)
		return LM_EREGION;
	for (uint32_t i = 0; i < s->nregions; i++)
		if (strcmp(s->regions[i].name, name) == 0)
			return LM_EREGION;
	memcpy(s->regions[s->nregions].name, name, nl + 1);
	s->regions[s->nregions].base = base;
	s->regions[s->nregions].len = len;
	s->nregions++;
	return 0;
}

static void chan_free_bufs(lm__tx_chan *ch)
{
	if (ch->ops && ch->codec_ctx)
		ch->ops->ctx_free(ch->codec_ctx);
	free(ch->enc);
	free(ch->pages);
	free(ch->lens);
	free(ch->hdr);
	free(ch->iov);
	free(ch->job_off);
	free(ch->normal_off);
	free(ch->zero_off);
	free(ch->tail);
	free(ch->bounce);
}

static int codec_open(lm_sender *s, lm__tx_chan *ch)
{
	lm__codec_params p = {
		.level = s->cfg.level,
		.page_size = s->page_size,
		.packet_pages = s->packet_pages,
		.accel = s->cfg.accel,
		.engine = s->cfg.engine,
		.busy_retries = s->cfg.busy_retries,
		.stats = ch->eng,
		.accel_ops = s->accel_ops,
	};

	ch->ops = lm__codec_get((uint16_t)s->cfg.codec);
	if (ch->ops->raw_only)
		return 0;
	ch->enc_cap = (size_t)ch->ops->payload_bound(s->page_size, s->packet_pages);
	ch->enc = malloc(ch->enc_cap);
	if (!ch->enc)
		return -ENOMEM;
	return ch->ops->ctx_new(&ch->codec_ctx, &p);
}

static int chan_alloc(lm_sender *s, lm__tx_chan *ch, uint16_t idx)
{
	uint32_t n = s->packet_pages;

	ch->s = s;
	ch->idx = idx;
	ch->conn.rfd = ch->conn.wfd = -1;
	ch->conn.wake_fd = s->wake_fd;
	pthread_cond_init(&ch->cond, NULL);
	ch->hdr = malloc(LM_FRAME_HDR + LM_DATA_HDR + (size_t)n * 12);
	/* Worst case: raw and encoded pages alternate, one iovec each. */
	ch->iov = malloc(sizeof(struct iovec) * (n + 1));
	ch->pages = malloc(sizeof(void *) * n);
	ch->lens = malloc(sizeof(uint32_t) * n);
	ch->job_off = malloc(sizeof(uint64_t) * n);
	ch->normal_off = malloc(sizeof(uint64_t) * n);
	ch->zero_off = malloc(sizeof(uint64_t) * n);
	ch->tail = malloc(s->page_size);
	if (!ch->hdr || !ch->iov || !ch->job_off || !ch->normal_off || !ch->zero_off || !ch->tail ||
	    !ch->pages || !ch->lens)
		return -ENOMEM;
	return codec_open(s, ch);
}

int lm_sender_connect(lm_sender *s, const char *addr)
{
	lm__err e = {0};
	int rc, who = -1;
	double cpu0 = lm__thread_cpu();

	if (!s || !addr)
		return LM_EINVAL;
	if (s->ch)
		return LM_ESTATE;
	s->t_start = lm__now_us();
	s->ch = calloc(s->nch, sizeof(*s->ch));
	if (!s->ch)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nch; i++) {
		if ((rc = chan_alloc(s, &s->ch[i], (uint16_t)i))) {
			lm__codec_unavailable(&e, (uint16_t)s->cfg.codec, s->cfg.accel, rc);
			goto fail;
		}
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		lm__tx_region *g = &s->regions[i];
		if ((rc = lm__sumtree_init(&g->sum, g->base, g->len, s->page_size, NULL)))
			goto fail;
	}
	if (getrandom(s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		rc = -errno;
		goto fail;
	}
	s->session[0] |= 1; /* never all zero: the receiver refuses that */
	for (uint32_t i = 0; i < s->nch; i++) {
		who = (int)i;
		if ((rc = hello_channel(s, &s->ch[i], addr, &e)))
			goto fail;
		if (i == 0 && (rc = send_regions(s, &s->ch[0], &e)))
			goto fail;
	}
	if ((rc = await_hello_acks(s, &who, &e)))
		goto fail;
	s->features = s->ch[0].features;
	for (uint32_t i = 1; i < s->nch; i++) {
		if (s->ch[i].features != s->features) {
			who = (int)i;
			lm__err_set(&e, "ack.features 0x%llx, channel 0 accepted 0x%llx",
				    (unsigned long long)s->ch[i].features,
				    (unsigned long long)s->features);
			rc = LM_EFIELD;
			goto fail;
		}
	}
	for (uint32_t i = 0; i < s->nch; i++) {
		s->ch[i].conn.watch_in = 1;
		if ((rc = -pthread_create(&s->ch[i].tid, NULL, chan_main, &s->ch[i]))) {
			lm__err_set(&e, "starting channel thread: %s", lm_strerror(rc));
			goto fail;
		}
		s->ch[i].started = 1;
	}
	s->t_setup = lm__now_us();
	s->status = LM_STATUS_ACTIVE;
	s->main_cpu += lm__thread_cpu() - cpu0;
	return 0;
fail:
	if (!e.msg[0])
		lm__err_set(&e, "%s", lm_strerror(rc));
	set_error(s, rc, who, e.msg);
	s->status = LM_STATUS_FAILED;
	abort_channels(s);
	s->main_cpu += lm__thread_cpu() - cpu0;
	return rc;
}

static void stop_threads(lm_sender *s)
{
	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		if (!s->ch[i].started)
			continue;
		post(s, &s->ch[i], LM_TX_QUIT);
		pthread_join(s->ch[i].tid, NULL);
		s->ch[i].started = 0;
	}
}

/* Tells the receiver why we stop, on every channel, then closes them. */
static void abort_channels(lm_sender *s)
{
	lm__conn *cs[LM_MAX_CHANNELS];
	int n = 0;

	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		if (s->ch[i].conn.wfd < 0)
			continue;
		lm__send_error(&s->ch[i].conn, s->err, (uint16_t)i, s->errmsg);
		cs[n++] = &s->ch[i].conn;
	}
	lm__drain_close(cs, n, 1000);
}

int lm__sender_finish(lm_sender *s, int rc)
{
	s->t_end = lm__now_us();
	stop_threads(s);
	if (rc) {
		set_error(s, rc, -1, lm_strerror(rc)); /* kept if one is recorded */
		s->status = LM_STATUS_FAILED;
		abort_channels(s);
		return s->err ? s->err : rc;
	}
	s->status = LM_STATUS_COMPLETED;
	for (uint32_t i = 0; i < s->nch; i++)
		lm__conn_close(&s->ch[i].conn);
	return 0;
}

int lm__sender_set_live(lm_sender *s)
{
	for (uint32_t i = 0; i < s->nch; i++) {
		lm__tx_chan *ch = &s->ch[i];
		if (ch->ops->raw_only || ch->bounce)
			continue;
		ch->bounce = malloc((size_t)s->packet_pages * s->page_size);
		if (!ch->bounce)
			return -ENOMEM;
	}
	s->live = 1;
	return 0;
}

void lm__sender_fail(lm_sender *s, int code, const char *msg)
{
	set_error(s, code, -1, msg);
}

void lm__sender_counts(const lm_sender *s, uint64_t *normal, uint64_t *zero)
{
	*normal = *zero = 0;
	for (uint32_t i = 0; i < s->nch; i++) {
		*normal += s->ch[i].normal_pages;
		*zero += s->ch[i].zero_pages;
	}
}

int lm_sender_run(lm_sender *s)
{
	int rc;
	double cpu0 = lm__thread_cpu();

	if (!s)
		return LM_EINVAL;
	if (!s->ch || s->status != LM_STATUS_ACTIVE)
		return LM_ESTATE;
	rc = lm__sender_send_all(s);
	if (!rc)
		rc = lm__sender_sync(s);
	if (!rc)
		rc = lm__sender_complete(s);
	s->main_cpu += lm__thread_cpu() - cpu0;
	return lm__sender_finish(s, rc);
}

void lm_sender_stats(const lm_sender *s, lm_stats *st)
{
	uint64_t end;

	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	end = s->t_end ? s->t_end : lm__now_us();
	st->status = s->status;
	st->channels = s->nch;
	st->page_size = s->page_size;
	st->codec = s->cfg.codec;
	st->rounds = s->round;
	if (s->t_start) {
		st->total_time_us = end - s->t_start;
		st->setup_time_us = (s->t_setup ? s->t_setup : end) - s->t_start;
	}
	for (uint32_t i = 0; i < s->nregions; i++)
		st->total_ram += s->regions[i].len;
	/* Channel counters are final once the threads are joined (run ended). */
	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		const lm__tx_chan *ch = &s->ch[i];
		st->transferred += ch->conn.bytes_in + ch->conn.bytes_out;
		st->duplicate_pages += ch->zero_pages;
		st->normal_pages += ch->normal_pages;
		st->payload_bytes += ch->payload;
		st->packets += ch->packets;
		st->cpu_seconds += ch->cpu;
		lm__stats_add_engines(st, ch->eng);
	}
	st->cpu_seconds += s->main_cpu;
	lm__stats_derive(st);
	if (s->live) {
		const lm_stats *l = &s->live_st;
		st->live = 1;
		st->dirty_pages = l->dirty_pages;
		st->remaining_bytes = l->remaining_bytes;
		st->dirty_pages_rate = l->dirty_pages_rate;
		st->bandwidth_mbps = l->bandwidth_mbps;
		st->expected_downtime_ms = l->expected_downtime_ms;
		st->downtime_ms = l->downtime_ms;
		st->precopy_bytes = l->precopy_bytes;
		st->downtime_bytes = l->downtime_bytes;
		st->throttle_pct = l->throttle_pct;
		st->skipped_pages = s->skipped_pages;
		memcpy(st->dirty_source, l->dirty_source, sizeof(st->dirty_source));
		memcpy(st->dirty_note, l->dirty_note, sizeof(st->dirty_note));
	}
}

const char *lm_sender_errmsg(const lm_sender *s)
{
	return s ? s->errmsg : "";
}

void lm_sender_free(lm_sender *s)
{
	if (!s)
		return;
	stop_threads(s);
	for (uint32_t i = 0; s->ch && i < s->nch; i++) {
		lm__conn_close(&s->ch[i].conn);
		chan_free_bufs(&s->ch[i]);
		pthread_cond_destroy(&s->ch[i].cond);
	}
	free(s->ch);
	for (uint32_t i = 0; i < s->nregions; i++)
		lm__sumtree_free(&s->regions[i].sum);
	pthread_cond_destroy(&s->idle_cond);
	pthread_mutex_destroy(&s->lock);
	close(s->wake_fd);
	free(s);
}
