/*
 * Sender channel thread: one packet at a time, from the region's pages to a
 * data frame on its connection (zero scan, encoding, the frame, the write),
 * and the round's SYNC. It owns its conn and buffers while its state is not
 * IDLE; it touches no other channel and no session state but the error
 * (lm__sender_error), the atomic wire byte count and codec auto's published
 * decision (codecs.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpuidle.h"
#include "sender/sender.h"
#include "zero.h"

int lm__sender_take_feedback(lm__tx_chan *ch, const lm__frame *f, lm__err *e)
{
	uint8_t b[LM_FEEDBACK_LEN];
	lm__feedback fb;
	int rc;

	if (f->len != LM_FEEDBACK_LEN) { /* read_frame bounds it; exact here */
		lm__err_set(e, "feedback.length %u, expected %u", f->len, LM_FEEDBACK_LEN);
		return LM_EFIELD;
	}
	if ((rc = lm__read_full(&ch->conn, b, f->len))) {
		lm__err_read(e, &ch->conn, "feedback", rc);
		return rc;
	}
	if ((rc = lm__dec_feedback(b, f->len, &fb, e)))
		return rc;
	pthread_mutex_lock(&ch->s->lock);
	ch->fb = fb;
	ch->fb_seq++;
	pthread_mutex_unlock(&ch->s->lock);
	return 0;
}

/* FEEDBACK may come at any time during data: taken and kept; whatever
 * else comes is the receiver giving up. */
int lm__sender_take_input(lm__conn *c, void *arg)
{
	lm__tx_chan *ch = arg;
	uint64_t end = lm__now_us() + (uint64_t)c->timeout_ms * 1000u;

	if (ch->have_held || ch->in_rc)
		return 1;
	while (lm__conn_readable(c)) {
		lm__err e = {0};
		uint64_t now = lm__now_us();
		int rc;

		/* A flood must not hide a cancel or another channel's failure. */
		if (__atomic_load_n(&ch->s->cancelled, __ATOMIC_RELAXED)) {
			lm__err_set(&ch->in_err, "cancelled");
			ch->in_rc = -ECANCELED;
			return 1;
		}
		if (now >= end || (c->deadline_us && now >= c->deadline_us)) {
			if (c->deadline_us)
				return 0; /* a bounded drain (lm__sender_finish) */
			lm__err_set(&ch->in_err, "the receiver sent FEEDBACK for %d ms without pause",
				    c->timeout_ms);
			ch->in_rc = LM_ETIMEDOUT;
			return 1;
		}
		rc = lm__read_frame(c, &ch->held, ch->s->page_size, ch->s->packet_pages, &e);
		if (!rc && ch->held.kind != LM_KIND_FEEDBACK) {
			ch->have_held = 1;
			return 1;
		}
		if (!rc)
			rc = lm__sender_take_feedback(ch, &ch->held, &e);
		if (rc) {
			/* A TLS alert reads as an end too: its reason stands. */
			if (rc == LM_EEOF && !e.msg[0])
				lm__err_set(&e, "the receiver closed the connection");
			ch->in_rc = rc;
			ch->in_err = e;
			return 1;
		}
	}
	return 0;
}

/* The receiver's next frame that is not FEEDBACK (those before it are
 * taken): the one take_input held, if any. */
static int next_frame(lm__tx_chan *ch, lm__frame *f, lm__err *e)
{
	uint64_t end = lm__now_us() + (uint64_t)ch->conn.timeout_ms * 1000u;
	int rc;

	if (ch->have_held) {
		ch->have_held = 0;
		*f = ch->held;
		return 0;
	}
	for (;;) {
		if ((rc = lm__read_frame(&ch->conn, f, ch->s->page_size, ch->s->packet_pages, e)))
			return rc;
		if (f->kind != LM_KIND_FEEDBACK)
			return 0;
		if ((rc = lm__sender_take_feedback(ch, f, e)))
			return rc;
		/* FEEDBACK does not stretch the wait for the reason. */
		if (lm__now_us() >= end) {
			lm__err_set(e, "only feedback from the receiver for %d ms", ch->conn.timeout_ms);
			return LM_ETIMEDOUT;
		}
	}
}

int lm__sender_peer_reason(lm__tx_chan *ch, int rc, lm__err *e)
{
	lm__frame f;
	lm__error_msg m;
	int saved = ch->conn.timeout_ms;

	int got;

	if (rc == -ECANCELED) {
		lm__err_set(e, "cancelled after another channel failed");
		return rc;
	}
	if (ch->in_rc) { /* what take_input met, as it met it */
		rc = ch->in_rc;
		*e = ch->in_err;
		ch->in_rc = 0;
		return rc;
	}
	ch->conn.timeout_ms = rc == LM_EPEER ? saved : 200;
	ch->conn.watch_in = 0;
	got = next_frame(ch, &f, e);
	if (got == 0 && f.kind == LM_KIND_ERROR && lm__read_error_body(&ch->conn, &f, &m, e) == 0) {
		lm__err_set(e, "receiver reported: %s (%s)", m.msg, lm_strerror(m.code));
		rc = LM_EPEER;
	} else if (got == 0) {
		lm__err_set(e, "unexpected %s frame from the receiver during data",
			    lm__kind_name(f.kind));
		rc = LM_EKIND;
	} else if (rc == LM_EPEER && got != LM_EEOF && got != LM_ETIMEDOUT && e->msg[0]) {
		/* It spoke but not in frames: a TLS alert, a broken record.
		 * The read's own message says which. */
		rc = got;
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

/* The codec's input: the normal pages, then the delta area's pages (its
 * encodings, zero-padded to whole pages). */
static uint32_t codec_pages(lm__tx_chan *ch, uint32_t area)
{
	lm__plan *pl = &ch->plan;
	uint32_t ps = ch->s->page_size;

	for (uint32_t i = 0; i < pl->nn; i++)
		ch->pages[i] = pl->normal_src[i];
	memset(pl->area + pl->area_len, 0, (size_t)area * ps - pl->area_len);
	for (uint32_t i = 0; i < area; i++)
		ch->pages[pl->nn + i] = pl->area + (size_t)i * ps;
	return pl->nn + area;
}

/* Live: the first nc codec pages copied to the bounce buffer before a codec
 * reads them. A live workload may write a page while the encoder reads it
 * twice (match search, then emit): encoders, hardware ones above all, only
 * promise a correct stream for stable input; the page is dirty again
 * anyway. Outside the codec's measured time: a sample after an encoded
 * packet finds them copied, and would otherwise measure less than the
 * packet did. */
static void stable_pages(lm__tx_chan *ch, uint32_t nc)
{
	uint32_t ps = ch->s->page_size;

	for (uint32_t i = 0; ch->bounce && i < nc; i++) {
		uint8_t *b = ch->bounce + (size_t)i * ps;
		if (ch->pages[i] != b)
			memcpy(b, ch->pages[i], ps);
		ch->pages[i] = b;
	}
}

/* Encodes the packet's codec pages with codec want. Sets lens[] and the
 * packet's codec; returns the payload size, or a negative error. A packet
 * the codec cannot shrink goes raw (codec none). */
static int64_t encode_pages(lm__tx_chan *ch, uint32_t nc, uint16_t want, uint16_t *codec)
{
	lm_sender *s = ch->s;
	const lm__codec_ops *ops = want < LM_MAX_CODECS ? ch->cops[want] : NULL;
	uint32_t ps = s->page_size;
	size_t enc_len = 0;
	int rc;

	*codec = LM_CODEC_NONE;
	if (ops && !ops->raw_only && nc) {
		rc = ops->encode(ch->cctx[want], (const void *const *)ch->pages, nc, ps, ch->enc,
				 ch->enc_cap, ch->lens, &enc_len);
		if (rc == 0) {
			uint64_t sum = 0;
			*codec = ops->id;
			if (!ops->per_page)
				return (int64_t)enc_len;
			for (uint32_t i = 0; i < nc; i++)
				sum += ch->lens[i];
			return (int64_t)sum;
		}
		if (rc != LM_ECODEC)
			return rc;
	}
	for (uint32_t i = 0; i < nc; i++)
		ch->lens[i] = ps;
	return (int64_t)nc * ps;
}

static void add(uint64_t *ctr, uint64_t v)
{
	__atomic_add_fetch(ctr, v, __ATOMIC_RELAXED);
}

/* A packet went: codec auto's counters (t[]: before the plan, after it,
 * after the encoding, before and after the write, and the conn's time
 * waiting for the socket before and after the write; cpu[]: the thread's
 * CPU time at the plan's start, after the plan, after the encoding, after
 * the write and now) and the codec mix. */
static void add_try(lm__auto_try *c, const lm__auto_try *m)
{
	add(&c->packets, m->packets);
	add(&c->in, m->in);
	add(&c->out, m->out);
	add(&c->ns, m->ns);
	add(&c->cpu_ns, m->cpu_ns);
}

/* The thread's run-queue wait so far (0: unknown). An encode's wall time
 * less its wait (lm__wall_own_ns) is the channel's own: a CPU shared with
 * the receiver or other tenants is the budget's to count (the idle and the
 * channels' CPU); left in, a 16-page sample preempted for 2 ms read as 10x
 * its cost and held zstd out of a 1gbit migration. An accelerator's wait
 * stays in: the thread sleeps, it does not queue. */
static uint64_t runq_ns(const lm__tx_chan *ch)
{
	return ch->s->wait_ns ? ch->s->wait_ns(ch->wait_fd) : lm__thread_wait_ns(ch->wait_fd);
}

/* Returns 1 when the codec's measurement was counted (in *m). */
static int count_packet(lm__tx_chan *ch, uint16_t want, uint16_t codec, uint64_t in,
			uint64_t payload, uint64_t wire, const uint64_t *t, uint64_t *cpu,
			uint64_t enc_ns, lm__auto_try *m)
{
	lm__auto_ctr *c = &ch->ctr;
	int64_t unsent = ch->s->is_auto ? lm__conn_unsent(&ch->conn) : 0;
	int coded = in && want != LM_CODEC_NONE && want < LM_MAX_CODECS;
	/* A codec's first packet on this channel: no measurement of it, nor
	 * of the rest (its encode would read as planning CPU). */
	int cold = coded && !(ch->warm >> want & 1);

	if (ch->s->is_auto) /* read with the queue, before the CPU time ends */
		lm__sender_auto_read_tcp(ch);
	cpu[4] = lm__thread_cpu_ns();
	if (cold) {
		ch->warm |= 1u << want;
		cpu[0] += cpu[2] - cpu[1];
	}
	add(&c->plan_ns, t[1] - t[0]);
	add(&c->plan_bytes, in);
	add(&c->write_ns, t[4] - t[3]);
	add(&c->write_wait_ns, t[6] - t[5]);
	add(&c->wire_bytes, wire);
	add(&c->cpu_ns, cpu[4] - cpu[0]);
	add(&c->write_cpu_ns, cpu[3] - cpu[2]);
	__atomic_store_n(&c->unsent, unsent > 0 ? (uint64_t)unsent : 0, __ATOMIC_RELAXED);
	ch->mix[codec].packets++;
	ch->mix[codec].bytes_in += in;
	ch->mix[codec].bytes_out += payload;
	if (!coded || cold)
		return 0;
	*m = (lm__auto_try){.packets = 1,
			    .in = in,
			    .out = payload,
			    .ns = enc_ns,
			    .cpu_ns = cpu[2] - cpu[1]};
	add_try(&c->codec[want], m);
	return 1;
}

/* One encode of a sample: the first k of pages[] with codec,
 * measured into *m and counted as the channel's CPU (the budget counts
 * it). Returns 0 when measured; not the first at its size (*warm, a bit
 * per codec: sender.h), nor a failure. */
static int sample_encode(lm__tx_chan *ch, uint32_t k, uint16_t codec, uint32_t *warm,
			 lm__auto_try *m)
{
	lm_engine_stats eng[LM_MAX_ENGINES];
	uint64_t t0, c0, q0, q1, wall;
	uint16_t got;
	int64_t out;

	/* The engines' statistics count what was sent: a sample is not. */
	memcpy(eng, ch->eng, sizeof(eng));
	c0 = lm__thread_cpu_ns();
	if (ch->bounce) { /* live: the copy is the channel's CPU, not the codec's */
		stable_pages(ch, k);
		t0 = lm__thread_cpu_ns();
		add(&ch->ctr.cpu_ns, t0 - c0);
		c0 = t0;
	}
	/* The readings of the wait inside the wall time's: a thread preempted
	 * as one of them returns waits between the two, and that wait must
	 * be in the wall time it is subtracted from. */
	t0 = lm__now_ns();
	q0 = runq_ns(ch);
	out = encode_pages(ch, k, codec, &got); /* pages that do not shrink: k * ps */
	q1 = runq_ns(ch);
	wall = lm__now_ns() - t0;
	memcpy(ch->eng, eng, sizeof(eng));
	if (out < 0)
		return -1;
	if (!(*warm >> codec & 1)) {
		*warm |= 1u << codec;
		return -1;
	}
	*m = (lm__auto_try){.packets = 1,
			    .in = (uint64_t)k * ch->s->page_size,
			    .out = (uint64_t)out,
			    .cpu_ns = lm__thread_cpu_ns() - c0};
	m->ns = lm__wall_own_ns(wall, q0, q1);
	add(&ch->ctr.cpu_ns, m->cpu_ns);
	return 0;
}

/* Codec auto's sample (probe, lm__auto_pick's): after the packet went (its
 * buffers are free again), the first codec pages (nc > 0: the pick
 * samples only packets with some) encoded with a candidate, counted as
 * its measurement and dropped. A pair (LM__AUTO_WHOLE, on a packet of
 * LM__AUTO_CAL_PAGES or more) also has the whole packet: the packet
 * itself when it went with that codec (pkt: its measurement, NULL if it
 * was not one), else encoded as a sample. A failure only means no
 * measurement: the migration does not depend on it. */
static void sample_codec(lm__tx_chan *ch, uint32_t nc, uint16_t probe, uint16_t want,
			 const lm__auto_try *pkt)
{
	uint16_t codec = LM__AUTO_SAMPLE_ID(probe);
	const lm__codec_ops *ops = codec < LM_MAX_CODECS ? ch->cops[codec] : NULL;
	uint32_t k = nc < LM__AUTO_SAMPLE_PAGES ? nc : LM__AUTO_SAMPLE_PAGES;
	lm__auto_try whole, part;

	if (!ops || ops->raw_only)
		return;
	/* A packet of LM__AUTO_SAMPLE_PAGES or fewer: the sample is the whole
	 * packet, not to be scaled. */
	if (nc <= LM__AUTO_SAMPLE_PAGES) {
		if (codec != want && !sample_encode(ch, nc, codec, &ch->warm, &whole))
			add_try(&ch->ctr.codec[codec], &whole);
		return;
	}
	if (!(probe & LM__AUTO_WHOLE) || nc < LM__AUTO_CAL_PAGES) {
		if (codec != want && !sample_encode(ch, k, codec, &ch->warm_sample, &part))
			add_try(&ch->ctr.sample[codec], &part);
		return;
	}
	if (codec == want) {
		if (!pkt)
			return;
		whole = *pkt;
	} else {
		if (sample_encode(ch, nc, codec, &ch->warm, &whole))
			return;
		add_try(&ch->ctr.codec[codec], &whole);
	}
	if (sample_encode(ch, k, codec, &ch->warm_sample, &part))
		return;
	add_try(&ch->ctr.pair_whole[codec], &whole);
	add_try(&ch->ctr.pair_part[codec], &part);
}

/* The frame header and tables: offsets (normal, zero, ref, delta), the ref
 * and delta tables, the lengths. Returns the end. */
static uint8_t *put_tables(lm__tx_chan *ch, const lm__data_hdr *d, uint32_t nc)
{
	const lm__plan *pl = &ch->plan;
	uint8_t *p;

	if (ch->s->features & LM_FEAT_PACKED) {
		const lm__codec_ops *ops = lm__codec_get(d->codec_flags & LM_PKT_CODEC_MASK);
		const uint64_t *const off[4] = {pl->normal_off, pl->zero_off, pl->ref_off,
						pl->delta_off};
		uint8_t *t = ch->hdr + LM_FRAME_HDR + LM_DATA_HDR;
		size_t n = lm__enc_data_packed(t, d, ch->s->page_size, off, pl->refs, pl->deltas,
					       ch->lens, ops->per_page && !ops->raw_only);
		lm__enc_data_hdr(ch->hdr, d, (uint32_t)(LM_DATA_HDR + n + d->payload));
		return t + n;
	}
	p = ch->hdr + lm__enc_data_hdr(ch->hdr, d, (uint32_t)lm__data_body_len(d));

	for (uint32_t i = 0; i < pl->nn; i++, p += 8)
		lm__put64(p, pl->normal_off[i]);
	for (uint32_t i = 0; i < pl->nz; i++, p += 8)
		lm__put64(p, pl->zero_off[i]);
	for (uint32_t i = 0; i < pl->nr; i++, p += 8)
		lm__put64(p, pl->ref_off[i]);
	for (uint32_t i = 0; i < pl->nd; i++, p += 8)
		lm__put64(p, pl->delta_off[i]);
	for (uint32_t i = 0; i < pl->nr; i++, p += LM_REF_ENTRY) {
		lm__put32(p, pl->refs[i].src_region);
		lm__put32(p + 4, pl->refs[i].src_round);
		lm__put64(p + 8, pl->refs[i].src_offset);
	}
	for (uint32_t i = 0; i < pl->nd; i++, p += LM_DELTA_ENTRY) {
		lm__put32(p, pl->deltas[i].base_round);
		lm__put32(p + 4, pl->deltas[i].len);
	}
	for (uint32_t i = 0; i < nc; i++, p += 4)
		lm__put32(p, ch->lens[i]);
	return p;
}

/* The checksum covers the pages as they were sent, without reading them
 * again where the plan knows their hash: the zero pages hash as zeros
 * (nearly half of a guest's pages), and a normal or ref page hashed by the
 * dedup index takes that hash. A page written between its plan and now is
 * dirty and goes again, so what the last send planned is what the
 * destination holds. */
static void land_sums(lm__sumtree *sum, const lm__plan *pl)
{
	lm__sumtree_land_zero(sum, pl->zero_off, pl->nz);
	lm__sumtree_land_sums(sum, pl->normal_off, pl->normal_sum, pl->nn);
	lm__sumtree_land_sums(sum, pl->ref_off, pl->ref_sum, pl->nr);
	lm__sumtree_land(sum, pl->delta_off, pl->nd);
}

static int send_packet(lm__tx_chan *ch, lm__err *e)
{
	lm_sender *s = ch->s;
	const lm__tx_region *r = &s->regions[ch->job_region];
	lm__plan *pl = &ch->plan;
	uint32_t ps = s->page_size, n = ch->job_pages, area, nc;
	const uint8_t *enc = ch->enc;
	lm__data_hdr d;
	uint16_t codec, want = LM_CODEC_NONE, probe = LM_CODEC_NONE;
	int64_t payload;
	uint64_t wire = 0, t[7], cpu[5], q[2] = {0, 0};
	lm__auto_try pkt;
	int iovc = 1, rc, counted;

	/* Wall and CPU time both: codec auto learns from the wall times how
	 * long a channel takes, from the CPU times what it costs the machine
	 * (a thread waiting for an accelerator spends wall time but no CPU;
	 * one waiting for a CPU too, but the encode's leaves that out:
	 * runq_ns). Up to five reads of the thread's CPU clock (a system
	 * call, about 0.3 us each) are about 1% of a raw packet's time at
	 * loopback speed; the two of the run-queue wait come with an encode. */
	cpu[0] = lm__thread_cpu_ns();
	t[0] = lm__now_ns();
	if ((rc = lm__plan_packet(&s->kinds, pl, ch->job_region, r->base, r->len, ch->job_off, n))) {
		lm__err_set(e, "planning packet %llu: %s", (unsigned long long)ch->job_num,
			    lm_strerror(rc));
		goto out;
	}
	area = (uint32_t)((pl->area_len + ps - 1) / ps);
	nc = codec_pages(ch, area);
	if (nc)
		want = lm__tx_codec_pick(ch, &probe);
	if (want != LM_CODEC_NONE)
		stable_pages(ch, nc);
	t[1] = lm__now_ns();
	cpu[1] = lm__thread_cpu_ns(); /* the plan's CPU is not the write's */
	/* Within t[1]..t[2] and cpu[1]..cpu[2], as a sample's (sample_encode) */
	if (want != LM_CODEC_NONE && ch->s->is_auto)
		q[0] = runq_ns(ch);
	payload = encode_pages(ch, nc, want, &codec);
	if (q[0])
		q[1] = runq_ns(ch);
	cpu[2] = want != LM_CODEC_NONE ? lm__thread_cpu_ns() : cpu[1];
	t[2] = lm__now_ns();
	if (payload < 0) {
		lm__err_set(e, "codec %s: %s", lm_codec_name((lm_codec_id)want),
			    lm_strerror((int)payload));
		rc = (int)payload;
		goto out;
	}
	memset(&d, 0, sizeof(d));
	d.packet_num = ch->job_num;
	d.region = ch->job_region;
	d.round = s->round;
	d.pages = n;
	d.normal = pl->nn;
	d.zero = pl->nz;
	d.ref = pl->nr;
	d.delta = (uint16_t)pl->nd;
	d.area = area;
	d.payload = (uint32_t)payload;
	d.codec_flags = codec;
	ch->iov[0].iov_base = ch->hdr;
	ch->iov[0].iov_len = (size_t)(put_tables(ch, &d, nc) - ch->hdr);
	if (codec != LM_CODEC_NONE && !ch->cops[codec]->per_page) {
		iov_add(ch, &iovc, enc, (size_t)payload);
	} else {
		/* Raw pages go from where the plan read them to the socket
		 * with no copy; encoded ones from the codec's buffer. */
		for (uint32_t i = 0; i < nc; i++) {
			if (ch->lens[i] == ps) {
				iov_add(ch, &iovc, ch->pages[i], ps);
			} else {
				iov_add(ch, &iovc, enc, ch->lens[i]);
				enc += ch->lens[i];
			}
		}
	}
	/* Counted before the write: lm__writev_full consumes the iovecs. */
	for (int i = 0; i < iovc; i++)
		wire += ch->iov[i].iov_len;
	t[5] = ch->conn.wait_out_ns;
	t[3] = lm__now_ns();
	rc = lm__writev_full(&ch->conn, ch->iov, iovc);
	t[4] = lm__now_ns();
	t[6] = ch->conn.wait_out_ns;
	cpu[3] = lm__thread_cpu_ns();
	/* During data a receiver only speaks to refuse, or with FEEDBACK: a
	 * channel whose writes never block would otherwise send on until its
	 * peer stops reading, and another channel blocked on the same
	 * receiver would time out first. One poll per packet. */
	if (!rc && lm__sender_take_input(&ch->conn, ch))
		rc = LM_EPEER;
	if (rc) {
		rc = lm__sender_peer_reason(ch, rc, e);
		goto out;
	}
	__atomic_add_fetch(&s->wire_bytes, wire, __ATOMIC_RELAXED);
	land_sums(&s->regions[ch->job_region].sum, pl);
	ch->zero_pages += pl->nz;
	ch->normal_pages += pl->nn;
	ch->payload += d.payload;
	ch->packets++;
	ch->round_packets++;
	counted = count_packet(ch, want, codec, (uint64_t)nc * ps, d.payload, wire, t, cpu,
			       lm__wall_own_ns(t[2] - t[1], q[0], q[1]), &pkt);
	if (probe != LM_CODEC_NONE)
		sample_codec(ch, nc, probe, want, counted ? &pkt : NULL);
out:
	lm__plan_done(&s->kinds, pl);
	return rc;
}

static int send_sync(lm__tx_chan *ch, lm__err *e)
{
	uint8_t buf[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync sy = {ch->s->round, ch->round_packets};
	int rc = lm__write_full(&ch->conn, buf, lm__enc_sync(buf, &sy));

	if (rc)
		return lm__sender_peer_reason(ch, rc, e);
	ch->round_packets = 0;
	return 0;
}

void *lm__tx_chan_main(void *arg)
{
	lm__tx_chan *ch = arg;
	lm_sender *s = ch->s;
	double cpu0 = lm__thread_cpu();

	ch->wait_fd = s->is_auto ? lm__thread_wait_open() : -1;
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
		rc = st == LM_TX_JOB        ? send_packet(ch, &e)
		     : st == LM_TX_DEVSTATE ? lm__tx_devstate_piece(ch, &e)
					    : send_sync(ch, &e);
		if (rc)
			lm__sender_error(s, rc, ch->idx, e.msg);
		pthread_mutex_lock(&s->lock);
		lm__tx_publish(ch); /* for lm_sender_stats() on any thread */
		if (ch->state != LM_TX_QUIT) /* a QUIT posted meanwhile stands */
			ch->state = LM_TX_IDLE;
		pthread_mutex_unlock(&s->lock);
		/* After the unlock: a waiter woken under the lock would block on
		 * it at once (two more futex calls and a switch per packet). The
		 * state changed under the lock, so no wake-up is lost. */
		pthread_cond_broadcast(&s->idle_cond);
	}
	ch->cpu = lm__thread_cpu() - cpu0;
	if (ch->wait_fd >= 0)
		close(ch->wait_fd);
	ch->wait_fd = -1;
	return NULL;
}

