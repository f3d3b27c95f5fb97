/*
 * test_mixed: the wire and receiver side of codec auto (LM_FEAT_MIXED), and
 * the sender's reading of FEEDBACK.
 *  1. a mixed session whose packets interleave every codec, over two rounds
 *     and two channels, lands the right image; the receiver's codec_mix
 *     counts what was sent; FEEDBACK comes on every channel at least once a
 *     round, after the SYNC (right before ACK(SYNC) on channel 0),
 *     cumulative and monotonic, with the pages of each codec exact;
 *  2. the slow-decode hook shows as larger decode ns for that codec;
 *  3. refusals: an unknown codec id in a packet (data.codec), FEEDBACK sent
 *     to the receiver (frame.kind), a codec whose context cannot be made
 *     (data.codec and its name);
 *  4. the real sender (pinned codec) against a fake receiver that sends
 *     FEEDBACK while it takes the data, also while the sender's writes wait
 *     for buffer space: the run succeeds and keeps the last FEEDBACK; an
 *     ERROR after FEEDBACK is still reported with the receiver's message;
 *  5. FEEDBACK never keeps a stalled sender alive (timeout 1 s, a bound
 *     that only catches "forever"): a write blocked with FEEDBACK every
 *     500 ms or 50 ms, no ACK(SYNC) or ACK(COMPLETE) but FEEDBACK, each end
 *     with LM_ETIMEDOUT (with LM_ECANCELED at once when lm_sender_cancel
 *     comes while the sender waits for the ack); a FEEDBACK trickled a byte at a time or a flood
 *     after ACK(COMPLETE): the run succeeds at once (the drain is
 *     bounded); a flood during data ends in LM_ETIMEDOUT, or LM_ECANCELED
 *     when cancelled; lm__sender_take_input alone stops at its timeout
 *     and at a drain's deadline however much FEEDBACK is queued;
 *  6. the sender's check of each FEEDBACK against the last one it took.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "fake_peer.h"
#include "fake_receiver.h"

#include "codec/codec.h"
#include "receiver/receiver.h"
#include "sender/sender.h"

#define NCODEC 5 /* ids 0..4 */

/* A compressible page, different for every (page, version). */
static void fill_page(uint8_t *pg, uint32_t page, uint32_t version)
{
	for (uint32_t i = 0; i < PS; i++)
		pg[i] = (uint8_t)('a' + (i / 64 + page * 7 + version * 3) % 26);
	memcpy(pg, &page, sizeof(page));
	memcpy(pg + 8, &version, sizeof(version));
}

/* The codec the test uses for id c: c itself when built, else none. */
static uint16_t built(uint16_t c)
{
	return lm__codec_get(c) ? c : LM_CODEC_NONE;
}

/* Encodes n pages with codec into out as the wire carries them: lens[] and
 * the payload; returns the payload length. */
static uint32_t encode_pages(uint16_t codec, const uint8_t *pages, uint32_t n, uint8_t *out,
			     size_t cap, uint32_t *lens)
{
	const lm__codec_ops *ops = lm__codec_get(codec);
	lm__codec_params p = {.page_size = PS, .packet_pages = PP, .accel = LM_ACCEL_OFF,
			      .busy_retries = 3};
	const void *src[MAXP];
	uint8_t enc[MAXP * PS * 2];
	size_t len = 0, o = 0;
	void *ctx = NULL;

	if (ops->raw_only) {
		memcpy(out, pages, (size_t)n * PS);
		for (uint32_t i = 0; i < n; i++)
			lens[i] = PS;
		return n * PS;
	}
	for (uint32_t i = 0; i < n; i++)
		src[i] = pages + (size_t)i * PS;
	CHECK_EQ(ops->ctx_new(&ctx, &p), 0);
	CHECK_EQ(ops->encode(ctx, src, n, PS, enc, sizeof(enc), lens, &len), 0);
	ops->ctx_free(ctx);
	if (!ops->per_page) {
		CHECK(len <= cap);
		memcpy(out, enc, len);
		return (uint32_t)len;
	}
	/* Per-page: raw pages are not in the codec's output. */
	for (uint32_t i = 0, e = 0; i < n; i++) {
		const uint8_t *from = lens[i] == PS ? (const uint8_t *)src[i] : enc + e;
		e += lens[i] == PS ? 0 : lens[i];
		memcpy(out + o, from, lens[i]);
		o += lens[i];
	}
	return (uint32_t)o;
}

/* ---- a mixed session, driven by hand ------------------------------------- */

#define NCH 2
#define REGION_PAGES 40u

typedef struct fbtrack {
	lm__feedback last;
	int n;          /* FEEDBACK frames read */
	int bad;        /* one went backwards, or did not decode */
	uint8_t prev;   /* kind of the frame read before the current one */
} fbtrack;

typedef struct mixed {
	sess s;
	uint8_t want[REGION_PAGES * PS];      /* the image the receiver must hold */
	uint64_t num;                          /* next packet number */
	uint64_t round_packets[NCH];
	uint64_t pages[NCH][NCODEC];           /* pages sent per channel and codec */
	uint64_t packets[NCODEC], payload[NCODEC];
	fbtrack fb[NCH];
} mixed;

static uint8_t pay[MAXP * PS * 2];

static int mixed_open(sess *s, const rxopt *o, int nch)
{
	const uint64_t feat = LM_FEAT_ROUND_ACK | LM_FEAT_MIXED;
	uint64_t offer[4], acked[4];
	int bad;

	for (int i = 0; i < nch; i++)
		offer[i] = feat;
	bad = sess_open_x(s, o, nch, offer, LM_FEAT_MIXED, LM_CODEC_AUTO, acked);
	for (int i = 0; i < nch; i++)
		bad |= acked[i] != feat;
	CHECK_EQ(bad, 0);
	return bad;
}

/* One FEEDBACK body into t: decodes, and every counter only grows. */
static void fb_note(fbtrack *t, const uint8_t *body, uint32_t len)
{
	lm__feedback f;
	lm__err e;

	if (lm__dec_feedback(body, len, &f, &e)) {
		t->bad = 1;
		return;
	}
	if (t->n) {
		int back = f.round < t->last.round || f.cpu_ns < t->last.cpu_ns ||
			   f.wall_ns < t->last.wall_ns;
		for (uint32_t c = 0; c < LM_FEEDBACK_CODECS; c++)
			back |= f.codec[c].pages < t->last.codec[c].pages ||
				f.codec[c].ns < t->last.codec[c].ns;
		t->bad |= back;
	}
	t->last = f;
	t->n++;
}

/* Reads fd's frames, FEEDBACK noted, up to the first other one (into f,
 * body); 0, or -1 when none came within 3 s (SO_RCVTIMEO) or it is bad. */
static int next_other(int fd, fbtrack *t, lm__frame *f, uint8_t *body, size_t cap)
{
	for (;;) {
		if (get_frame(fd, f, body, cap))
			return -1;
		if (f->kind != LM_KIND_FEEDBACK) {
			return 0;
		}
		fb_note(t, body, f->len);
		t->prev = LM_KIND_FEEDBACK;
	}
}

/* Reads FEEDBACK on fd until one reports round (or later); 0 or -1. */
static int await_fb_round(int fd, fbtrack *t, uint32_t round)
{
	uint8_t body[LM_ERROR_FRAME_BOUND];
	lm__frame f;

	while (!t->n || t->last.round < round) {
		if (get_frame(fd, &f, body, sizeof(body)) || f.kind != LM_KIND_FEEDBACK)
			return -1;
		fb_note(t, body, f.len);
	}
	return 0;
}

/* One packet of n pages from page first on channel ch: normal pages of
 * version v, the last nzero of them zero pages, through codec. */
static void mixed_pkt(mixed *m, int ch, uint32_t round, uint32_t first, uint32_t n, uint32_t nzero,
		      uint32_t v, uint16_t codec)
{
	uint32_t normal = n - nzero;
	uint8_t pages[PP * PS];
	pkt p;

	codec = built(codec);
	for (uint32_t i = 0; i < normal; i++) {
		fill_page(pages + (size_t)i * PS, first + i, v);
		memcpy(m->want + (size_t)(first + i) * PS, pages + (size_t)i * PS, PS);
	}
	for (uint32_t i = normal; i < n; i++)
		memset(m->want + (size_t)(first + i) * PS, 0, PS);
	p = good_pkt(m->num++, round, (uint64_t)first * PS, normal, nzero, 0);
	p.d.codec_flags = codec;
	p.d.payload = encode_pages(codec, pages, normal, pay, sizeof(pay), p.plen);
	p.npay = p.d.payload;
	p.pay = pay;
	send_pkt(m->s.fd[ch], &p);
	m->round_packets[ch]++;
	m->pages[ch][codec] += normal;
	m->packets[codec]++;
	m->payload[codec] += p.d.payload;
}

/* SYNC of round on every channel; then on every channel a FEEDBACK of
 * round + 1, and on channel 0 ACK(SYNC) right after one. */
static void mixed_sync(mixed *m, uint32_t round)
{
	uint8_t body[LM_ERROR_FRAME_BOUND];
	lm__frame f;
	lm__ack a;
	lm__err e;

	for (int c = 0; c < NCH; c++) {
		send_sync(m->s.fd[c], round, m->round_packets[c]);
		m->round_packets[c] = 0;
	}
	m->fb[0].prev = 0;
	CHECK_EQ(next_other(m->s.fd[0], &m->fb[0], &f, body, sizeof(body)), 0);
	CHECK_EQ(f.kind, LM_KIND_ACK);
	CHECK(f.kind == LM_KIND_ACK && lm__dec_ack(body, f.len, &a, &e) == 0 &&
	      a.kind == LM_KIND_SYNC && a.features == round);
	/* The round's FEEDBACK came right before the ACK. */
	CHECK_EQ(m->fb[0].prev, LM_KIND_FEEDBACK);
	CHECK_EQ(m->fb[0].last.round, round + 1);
	for (int c = 1; c < NCH; c++) {
		CHECK_EQ(await_fb_round(m->s.fd[c], &m->fb[c], round + 1), 0);
		CHECK_EQ(m->fb[c].last.round, round + 1);
	}
	/* Every page decoded so far, by codec, on each channel. */
	for (int c = 0; c < NCH; c++) {
		CHECK_EQ(m->fb[c].bad, 0);
		for (uint16_t k = 0; k < NCODEC; k++) {
			CHECK_EQ(m->fb[c].last.codec[k].pages, m->pages[c][k]);
			if (k == LM_CODEC_NONE)
				CHECK_EQ(m->fb[c].last.codec[k].ns, 0); /* nothing to decode */
			else if (m->pages[c][k])
				CHECK(m->fb[c].last.codec[k].ns > 0);
		}
		for (uint32_t k = NCODEC; k < LM_FEEDBACK_CODECS; k++)
			CHECK(m->fb[c].last.codec[k].pages == 0 && m->fb[c].last.codec[k].ns == 0);
		CHECK(m->fb[c].last.wall_ns > 0);
	}
}

static void test_interleaved(void)
{
	static mixed m;
	rxopt o = {.len = REGION_PAGES * PS};
	int f0 = lm_test_failures;
	uint8_t body[LM_ERROR_FRAME_BOUND];
	lm__region_sum sum = {0, REGION_PAGES * PS, 0};
	lm__frame f;
	lm_stats st = LM_STATS_INIT;
	char text[8192];
	int fbs0;

	memset(&m, 0, sizeof(m));
	if (mixed_open(&m.s, &o, NCH))
		goto out;
	/* Round 0: every page, each packet another codec, on alternating
	 * channels (zlib's packets with a zero page in them). */
	for (uint32_t k = 0; k < REGION_PAGES / PP; k++)
		mixed_pkt(&m, (int)(k % NCH), 0, k * PP, PP, k % NCODEC == 4 ? 1 : 0, 0,
			  (uint16_t)(k % NCODEC));
	mixed_sync(&m, 0);
	fbs0 = m.fb[0].n;
	/* Round 1: half the pages again, other codecs on other channels. */
	for (uint32_t k = 0; k < REGION_PAGES / PP / 2; k++)
		mixed_pkt(&m, (int)((k + 1) % NCH), 1, k * PP, PP, k == 3 ? 2 : 0, 1,
			  (uint16_t)((k + 2) % NCODEC));
	mixed_sync(&m, 1);
	CHECK(m.fb[0].n > fbs0); /* at least one per round */
	CHECK(lm_region_checksum(m.want, sizeof(m.want), &sum.checksum) == 0);
	send_complete(m.s.fd[0], &sum, 1);
	CHECK_EQ(next_other(m.s.fd[0], &m.fb[0], &f, body, sizeof(body)), 0);
	CHECK(f.kind == LM_KIND_ACK);
	for (int c = 0; c < NCH; c++)
		close(m.s.fd[c]);
	rx_join(&m.s.x);
	CHECK_EQ(m.s.x.rc, 0);
	CHECK(memcmp(m.s.x.base, m.want, sizeof(m.want)) == 0);
	CHECK(canaries_ok(&m.s.x));
	lm_receiver_stats(m.s.x.r, &st);
	CHECK_EQ(st.codec, LM_CODEC_AUTO);
	for (uint16_t k = 0; k < NCODEC; k++) {
		uint64_t pages = 0;
		for (int c = 0; c < NCH; c++)
			pages += m.pages[c][k];
		CHECK_EQ(st.codec_mix[k].packets, m.packets[k]);
		CHECK_EQ(st.codec_mix[k].bytes_in, pages * PS);
		CHECK_EQ(st.codec_mix[k].bytes_out, m.payload[k]);
		if (lm__codec_get(k))
			CHECK(m.packets[k] > 0); /* every built codec was in the mix */
	}
	lm_stats_format(&st, LM_STATS_HUMAN, text, sizeof(text));
	CHECK(strstr(text, "codec: auto") != NULL);
out:
	report("mixed_interleaved_codecs", f0, &m.s.x);
	rx_free(&m.s.x);
}

/* ---- the slow-decode hook ------------------------------------------------ */

#define SLOW_NS 5000000u /* 5 ms a page */

static void slow_lz4(lm_receiver *r)
{
	lm__receiver_slow_decode(r, LM_CODEC_LZ4, SLOW_NS);
}

static void test_slow_decode(void)
{
	static mixed m;
	rxopt o = {.len = REGION_PAGES * PS, .before_run = slow_lz4};
	int f0 = lm_test_failures;
	const lm__feedback *fb = &m.fb[0].last;

	if (!lm__codec_get(LM_CODEC_LZ4) || !lm__codec_get(LM_CODEC_ZSTD)) {
		printf("test_mixed: slow decode skipped: lz4 or zstd not built in\n");
		return;
	}
	memset(&m, 0, sizeof(m));
	if (mixed_open(&m.s, &o, 1))
		goto out;
	for (uint32_t k = 0; k < 6; k++)
		mixed_pkt(&m, 0, 0, k * PP, PP, 0, 0, k % 2 ? LM_CODEC_LZ4 : LM_CODEC_ZSTD);
	send_sync(m.s.fd[0], 0, m.round_packets[0]);
	{
		uint8_t body[LM_ERROR_FRAME_BOUND];
		lm__frame f;
		CHECK_EQ(next_other(m.s.fd[0], &m.fb[0], &f, body, sizeof(body)), 0);
		CHECK(f.kind == LM_KIND_ACK);
	}
	CHECK_EQ(fb->codec[LM_CODEC_LZ4].pages, 3 * PP);
	CHECK_EQ(fb->codec[LM_CODEC_ZSTD].pages, 3 * PP);
	/* The hook's delay is in the reported time, per page. */
	CHECK(fb->codec[LM_CODEC_LZ4].ns >= 3ull * PP * SLOW_NS);
	CHECK(fb->codec[LM_CODEC_ZSTD].ns < fb->codec[LM_CODEC_LZ4].ns);
	printf("test_mixed: slow decode: lz4 %llu ns/page, zstd %llu ns/page\n",
	       (unsigned long long)(fb->codec[LM_CODEC_LZ4].ns / (3 * PP)),
	       (unsigned long long)(fb->codec[LM_CODEC_ZSTD].ns / (3 * PP)));
	CHECK_EQ(lm_receiver_cancel(m.s.x.r), 0);
	close(m.s.fd[0]);
	rx_join(&m.s.x);
	CHECK_EQ(m.s.x.rc, LM_ECANCELED);
out:
	report("mixed_slow_decode_hook", f0, &m.s.x);
	rx_free(&m.s.x);
}

/* ---- refusals -------------------------------------------------------------- */

static void test_unknown_codec(void)
{
	static const uint16_t bad[] = {5, 7, 0xff};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = bad[i] == 5 ? "mixed_data_codec_5"
				   : bad[i] == 7 ? "mixed_data_codec_7" : "mixed_data_codec_255";
		int f0 = lm_test_failures;
		want w = {LM_ECODEC, 1, "data.codec", 1, 1};
		sess s;
		pkt p;

		if (mixed_open(&s, NULL, 2))
			continue;
		p = good_pkt(0, 0, 0, 1, 0, 0x11);
		p.d.codec_flags = bad[i];
		send_pkt(s.fd[1], &p);
		outcome(name, &s.x, s.fd, 2, &w);
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* FEEDBACK flows receiver -> sender only: the receiver refuses it like any
 * frame it does not expect, in a mixed session or not. */
static void test_feedback_to_receiver(void)
{
	for (int mixed_session = 0; mixed_session < 2; mixed_session++) {
		const char *name = mixed_session ? "mixed_feedback_to_receiver"
						 : "feedback_to_receiver";
		uint8_t b[LM_FRAME_HDR + LM_FEEDBACK_LEN];
		lm__feedback fb;
		int f0 = lm_test_failures;
		want w = {LM_EKIND, 1, "frame.kind feedback", 1, 1};
		sess s;

		if (mixed_session ? mixed_open(&s, NULL, 2) : sess_open(&s, NULL, 2))
			continue;
		memset(&fb, 0, sizeof(fb));
		put(s.fd[1], b, lm__enc_feedback(b, &fb));
		outcome(name, &s.x, s.fd, 2, &w);
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* A codec context that cannot be made (deflate with the accelerator
 * required, where none is usable): named with data.codec and the codec. */
static void need_qpl(lm_receiver *r)
{
	r->cfg.accel = LM_ACCEL_QPL; /* internal: lm_receiver_new copied cfg */
}

static void test_ctx_fails(void)
{
	const char *name = "mixed_codec_context_fails";
	lm__codec_params p = {.page_size = PS, .packet_pages = PP, .accel = LM_ACCEL_QPL,
			      .busy_retries = 3};
	rxopt o = {.before_run = need_qpl};
	int f0 = lm_test_failures;
	want w = {LM_ECODEC, 0, "data.codec 1: codec deflate", 0, 1};
	uint8_t page[PS];
	void *ctx = NULL;
	sess s;
	pkt pk;

	if (!lm__codec_get(LM_CODEC_DEFLATE)) {
		printf("test_mixed: %s skipped: deflate not built in\n", name);
		return;
	}
	if (lm__codec_deflate.ctx_new(&ctx, &p) == 0) {
		lm__codec_deflate.ctx_free(ctx);
		printf("test_mixed: %s skipped: this host has a usable IAA accelerator\n", name);
		return;
	}
	if (mixed_open(&s, &o, 1))
		return;
	fill_page(page, 0, 0);
	/* A raw page is a valid deflate packet: the context is what fails. */
	pk = good_pkt(0, 0, 0, 1, 0, 0);
	pk.d.codec_flags = LM_CODEC_DEFLATE;
	pk.pay = page;
	send_pkt(s.fd[0], &pk);
	outcome(name, &s.x, s.fd, 1, &w);
	report(name, f0, &s.x);
	rx_free(&s.x);
}

/* ---- the real sender, FEEDBACK from a fake receiver ------------------------ */

static void sender_case(const char *name, uint16_t codec, int refuse_after)
{
	const uint64_t len = 8ull << 20;
	int f0 = lm_test_failures, small = 64 << 10, rc;
	uint8_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lm_sender_config sc;
	lm_sender *s = NULL;
	char addr[64];
	pthread_t t;
	frx f;
	rx dummy;

	CHECK(src != MAP_FAILED);
	if (src == MAP_FAILED)
		return;
	for (uint64_t pg = 0; pg < len / PS; pg++)
		fill_page(src + pg * PS, (uint32_t)pg, 9);
	memset(&f, 0, sizeof(f));
	memset(&dummy, 0, sizeof(dummy));
	f.refuse_after = refuse_after;
	frx_listen(&f, addr, sizeof(addr));
	pthread_create(&t, NULL, frx_main, &f);
	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.channels = 1;
	sc.codec = (lm_codec_id)codec;
	sc.no_dedup = 1;
	sc.sndbuf = small;
	sc.timeout_ms = 5000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, len), 0);
	rc = lm_sender_connect(s, addr);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = lm_sender_run(s);
	printf("  %s: lm_sender_run returned %d: %s (%u FEEDBACK sent)\n", name, rc,
	       lm_sender_errmsg(s), f.fb_sent);
	pthread_join(t, NULL);
	CHECK(f.ok);
	CHECK(f.fb_sent > 0);
	if (!refuse_after) {
		CHECK_EQ(rc, 0);
		pthread_mutex_lock(&s->lock);
		/* Channel 0 read every FEEDBACK before ACK(COMPLETE). */
		CHECK_EQ(s->ch[0].fb_seq, f.fb_sent);
		CHECK(s->ch[0].fb.round == f.last.round && s->ch[0].fb.wall_ns == f.last.wall_ns &&
		      s->ch[0].fb.codec[LM_CODEC_NONE].pages == f.last.codec[LM_CODEC_NONE].pages &&
		      s->ch[0].fb.codec[LM_CODEC_LZ4].ns == f.last.codec[LM_CODEC_LZ4].ns);
		pthread_mutex_unlock(&s->lock);
	} else {
		CHECK_EQ(rc, LM_EPEER);
		CHECK(strstr(lm_sender_errmsg(s), "test refusal after feedback") != NULL);
	}
	if (f.fd >= 0)
		close(f.fd);
	close(f.lfd);
	dummy.rc = rc;
	report(name, f0, &dummy);
	lm_sender_free(s);
	munmap(src, len);
}

/* ---- FEEDBACK never keeps a stalled sender alive --------------------------- */

/* The real sender (one channel, codec none, timeout_ms as given) against a
 * stall fake: the outcome each mode must have, within a bound that only
 * catches a sender kept alive by FEEDBACK (the fake gives up after
 * STALL_GIVE_UP ms, far beyond it), not a speed. */
static void stall_case(const char *name, int mode, int every_ms, int cancel_ms, int timeout_ms)
{
	const uint64_t len = 4ull << 20;
	uint8_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int f0 = lm_test_failures, rc;
	uint64_t t0, end, t_ack;
	uint32_t taken;
	lm_sender_config sc;
	lm_sender *s = NULL;
	char addr[64];
	const char *msg;
	pthread_t t;
	static stall st;
	rx dummy;

	CHECK(src != MAP_FAILED);
	if (src == MAP_FAILED)
		return;
	for (uint64_t pg = 0; pg < len / PS; pg++)
		fill_page(src + pg * PS, (uint32_t)pg, 5);
	memset(&st, 0, sizeof(st));
	memset(&dummy, 0, sizeof(dummy));
	st.mode = mode;
	st.every_ms = every_ms;
	st.cancel_ms = cancel_ms;
	frx_listen(&st.f, addr, sizeof(addr));
	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.channels = 1;
	sc.codec = LM_CODEC_NONE;
	sc.no_dedup = 1;
	sc.sndbuf = 64 << 10;
	sc.timeout_ms = timeout_ms;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, len), 0);
	st.s = s;
	pthread_create(&t, NULL, stall_main, &st);
	t0 = now_ms();
	rc = lm_sender_connect(s, addr);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = lm_sender_run(s);
	end = now_ms();
	__atomic_store_n(&st.stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	t_ack = __atomic_load_n(&st.t_ack, __ATOMIC_SEQ_CST);
	msg = lm_sender_errmsg(s);
	pthread_mutex_lock(&s->lock);
	taken = s->ch[0].fb_seq;
	pthread_mutex_unlock(&s->lock);
	printf("  %s: lm_sender_run returned %d after %llu ms (%llu after the ack): %s "
	       "(%u FEEDBACK sent, %u taken)\n", name, rc, (unsigned long long)(end - t0),
	       t_ack ? (unsigned long long)(end - t_ack) : 0ull, msg, st.f.fb_sent, taken);
	switch (mode) {
	case ST_WRITE: /* the write's own timeout, FEEDBACK or not */
		CHECK_EQ(rc, LM_ETIMEDOUT);
		CHECK(taken >= 1);
		CHECK(end - t0 < STALL_BOUND);
		break;
	case ST_SYNC:
	case ST_COMPLETE:
		/* Cancelled while waiting for the ack: at once, not at the timeout. */
		CHECK_EQ(rc, cancel_ms ? LM_ECANCELED : LM_ETIMEDOUT);
		CHECK(strstr(msg, cancel_ms ? "cancelled" : "only feedback") != NULL);
		CHECK(cancel_ms || taken >= 2);
		CHECK(!cancel_ms || end - t0 < (uint64_t)timeout_ms);
		CHECK(st.got_error); /* and the receiver was told */
		CHECK(end - t0 < STALL_BOUND);
		break;
	case ST_TRICKLE: /* a byte every 50 ms: 8 s for the frame, were it waited for */
	case ST_FLOOD_END: /* drained for timeout_ms, it would end after 5 s */
		CHECK_EQ(rc, 0);
		CHECK(t_ack != 0);
		CHECK(end - t_ack < 3000);
		CHECK(mode == ST_TRICKLE || st.f.fb_sent >= 2 * FLOOD_BATCH);
		break;
	case ST_FLOOD_DATA:
		/* Ended by take_input's own bound, or, when the flood paused,
		 * by the write's: which one depends on the kernel's timing. */
		CHECK_EQ(rc, cancel_ms ? LM_ECANCELED : LM_ETIMEDOUT);
		CHECK(cancel_ms || strstr(msg, "without pause") || strstr(msg, "peer stalled"));
		CHECK(taken >= FLOOD_BATCH);
		CHECK(end - t0 < STALL_BOUND);
		break;
	}
	if (st.f.fd >= 0)
		close(st.f.fd);
	close(st.f.lfd);
	dummy.rc = rc;
	report(name, f0, &dummy);
	lm_sender_free(s);
	munmap(src, len);
}

/* lm__sender_take_input on its own, over a socketpair holding more FEEDBACK
 * than it can read within its 1 ms timeout: it stops at that timeout
 * (LM_ETIMEDOUT, frames left unread), then at a drain's deadline (0, frames
 * left). Without a pause in between, as no TCP flood can promise. */
static void test_take_input_bounded(void)
{
	static lm_sender s;
	static lm__tx_chan ch;
	uint8_t b[LM_FRAME_HDR + LM_FEEDBACK_LEN];
	int f0 = lm_test_failures, sv[2], big = 4 << 20;
	uint32_t queued = 0, taken;
	lm__feedback fb;
	rx dummy;

	memset(&s, 0, sizeof(s));
	memset(&ch, 0, sizeof(ch));
	memset(&fb, 0, sizeof(fb));
	memset(&dummy, 0, sizeof(dummy));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("socketpair");
		exit(2);
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	for (;; queued++) {
		fb.round = queued;
		if (send(sv[0], b, lm__enc_feedback(b, &fb), MSG_NOSIGNAL) != (ssize_t)sizeof(b))
			break; /* full: the partial frame is never reached */
	}
	s.page_size = PS;
	s.packet_pages = PP;
	pthread_mutex_init(&s.lock, NULL);
	ch.s = &s;
	lm__conn_init(&ch.conn, sv[1], 1);
	CHECK(queued >= 1000);
	CHECK_EQ(lm__sender_take_input(&ch.conn, &ch), 1);
	CHECK_EQ(ch.in_rc, LM_ETIMEDOUT);
	CHECK(strstr(ch.in_err.msg, "without pause") != NULL);
	taken = ch.fb_seq;
	CHECK(taken > 0 && taken < queued);
	ch.in_rc = 0;
	ch.conn.timeout_ms = 1000;
	ch.conn.deadline_us = lm__now_us() + 1000; /* a drain: 1 ms */
	CHECK_EQ(lm__sender_take_input(&ch.conn, &ch), 0);
	CHECK_EQ(ch.in_rc, 0);
	CHECK(ch.fb_seq > taken && ch.fb_seq < queued);
	printf("  take_input_bounded: %u FEEDBACK queued, %u taken in 1 ms, %u by the deadline\n",
	       queued, taken, ch.fb_seq);
	lm__conn_close(&ch.conn);
	close(sv[0]);
	pthread_mutex_destroy(&s.lock);
	report("sender_take_input_bounded", f0, &dummy);
}

/* The sender's check of a FEEDBACK against the last one it took: counts
 * that went back, or a busy time longer than the wall time (a receiver's
 * busy count that wrapped: 2^64 - 48 ms), are dropped, and the next sane
 * frame still counts from the old baseline. */
static void test_feedback_sane(void)
{
	lm__feedback seen, f;

	memset(&seen, 0, sizeof(seen));
	seen.wall_ns = 1000000000;
	seen.cpu_ns = 500000000;
	seen.codec[LM_CODEC_LZ4].pages = 100;
	seen.codec[LM_CODEC_LZ4].ns = 200000;
	f = seen;
	f.wall_ns += 100000000; /* 100 ms later: busy 90 ms, 20 ms decoding */
	f.cpu_ns += 90000000;
	f.codec[LM_CODEC_LZ4].pages += 5000;
	f.codec[LM_CODEC_LZ4].ns += 20000000;
	CHECK(lm__feedback_sane(&f, &seen));
	f.cpu_ns = seen.cpu_ns + 100000000 + 4000000; /* two clocks: a little over */
	CHECK(lm__feedback_sane(&f, &seen));
	f.cpu_ns = UINT64_MAX - 48000000; /* wrapped */
	CHECK(!lm__feedback_sane(&f, &seen));
	f.cpu_ns = seen.cpu_ns - 1; /* backwards */
	CHECK(!lm__feedback_sane(&f, &seen));
	f.cpu_ns = seen.cpu_ns + 90000000;
	f.codec[LM_CODEC_LZ4].ns = UINT64_MAX; /* decoding longer than it ran */
	CHECK(!lm__feedback_sane(&f, &seen));
	f.codec[LM_CODEC_LZ4].ns = seen.codec[LM_CODEC_LZ4].ns + 20000000;
	f.codec[LM_CODEC_LZ4].pages = 99; /* backwards */
	CHECK(!lm__feedback_sane(&f, &seen));
	f.codec[LM_CODEC_LZ4].pages = 5100;
	f.wall_ns = UINT64_MAX; /* any span: a busy time within it is fine */
	CHECK(lm__feedback_sane(&f, &seen));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_feedback_sane();
	test_interleaved();
	test_slow_decode();
	test_unknown_codec();
	test_feedback_to_receiver();
	test_ctx_fails();
	sender_case("sender_feedback_mid_data", LM_CODEC_NONE, 0);
	if (lm__codec_get(LM_CODEC_LZ4))
		sender_case("sender_feedback_mid_data_lz4", LM_CODEC_LZ4, 0);
	sender_case("sender_error_after_feedback", LM_CODEC_NONE, 3);
	stall_case("sender_write_stalled_feedback_every_500ms", ST_WRITE, STALL_T / 2, 0, STALL_T);
	stall_case("sender_write_stalled_feedback_every_50ms", ST_WRITE, 50, 0, STALL_T);
	stall_case("sender_no_ack_sync_only_feedback", ST_SYNC, STALL_T / 4, 0, STALL_T);
	stall_case("sender_no_ack_complete_only_feedback", ST_COMPLETE, STALL_T / 4, 0, STALL_T);
	/* lm_sender_cancel while the sender waits for an ack (timeout 10 s). */
	stall_case("sender_no_ack_sync_cancelled", ST_SYNC, 50, 300, 10 * STALL_T);
	stall_case("sender_no_ack_complete_cancelled", ST_COMPLETE, 50, 300, 10 * STALL_T);
	/* timeout 5 s: the drain after ACK(COMPLETE) has its own bound. */
	stall_case("sender_feedback_trickled_after_complete", ST_TRICKLE, 0, 0, 5 * STALL_T);
	stall_case("sender_feedback_flood_after_complete", ST_FLOOD_END, 0, 0, 5 * STALL_T);
	stall_case("sender_feedback_flood_mid_data", ST_FLOOD_DATA, 0, 0, STALL_T);
	/* A cancel during a flood is seen at the write's next wait (a pause in
	 * the flood) or when take_input gives up: timeout 2 s keeps the
	 * latter within the bound. */
	stall_case("sender_feedback_flood_mid_data_cancelled", ST_FLOOD_DATA, 0, 300, 2 * STALL_T);
	test_take_input_bounded();
	TEST_DONE("test_mixed");
}
