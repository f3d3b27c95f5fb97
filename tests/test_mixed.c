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
 *     ERROR after FEEDBACK is still reported with the receiver's message.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake_peer.h"

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
	int bad = 0;

	rx_start(&s->x, o);
	s->n = nch;
	for (int i = 0; i < nch; i++) {
		lm__hello h = mk_hello((uint16_t)i, (uint16_t)nch);
		h.codec = LM_CODEC_AUTO;
		h.features = LM_FEAT_ROUND_ACK | LM_FEAT_MIXED;
		h.required = LM_FEAT_MIXED;
		s->fd[i] = fs_connect(s->x.port);
		send_hello(s->fd[i], &h);
		if (i == 0)
			send_region(s->fd[0], 0, s->x.len, "ram");
	}
	for (int i = 0; i < nch; i++) {
		lm__ack a;
		int r = expect_ack_a(s->fd[i], LM_KIND_HELLO, &a);
		bad |= r || a.features != (LM_FEAT_ROUND_ACK | LM_FEAT_MIXED);
	}
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
	lm_stats st;
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

static void *frx_main(void *arg)
{
	frx *f = arg;
	uint8_t b[LM_ERROR_FRAME_BOUND];
	struct timeval tv = {5, 0};
	struct pollfd pl = {f->lfd, POLLIN, 0};
	lm__frame fr;
	lm__hello h;
	lm__ack a;
	lm__err e;

	if (poll(&pl, 1, 5000) != 1 || (f->fd = accept(f->lfd, NULL, NULL)) < 0)
		return NULL;
	setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (get_frame(f->fd, &fr, b, sizeof(b)) || fr.kind != LM_KIND_HELLO ||
	    lm__dec_hello(b, fr.len, &h, &e))
		return NULL;
	for (uint32_t k = 0; k < h.region_count; k++)
		if (get_frame(f->fd, &fr, b, sizeof(b)))
			return NULL;
	memset(&a, 0, sizeof(a));
	a.kind = LM_KIND_HELLO;
	a.features = h.features & LM_FEAT_ROUND_ACK;
	memcpy(a.session, h.session, 16);
	put(f->fd, b, lm__enc_ack(b, &a));
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

static void sender_case(const char *name, uint16_t codec, int refuse_after)
{
	const uint64_t len = 8ull << 20;
	int f0 = lm_test_failures, small = 64 << 10, rc;
	uint8_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
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
	f.fd = -1;
	f.refuse_after = refuse_after;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(f.lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (f.lfd < 0 || bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(f.lfd, 2) ||
	    getsockname(f.lfd, (struct sockaddr *)&sa, &sl)) {
		perror("fake receiver");
		exit(2);
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
	pthread_create(&t, NULL, frx_main, &f);
	memset(&sc, 0, sizeof(sc));
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

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_interleaved();
	test_slow_decode();
	test_unknown_codec();
	test_feedback_to_receiver();
	test_ctx_fails();
	sender_case("sender_feedback_mid_data", LM_CODEC_NONE, 0);
	if (lm__codec_get(LM_CODEC_LZ4))
		sender_case("sender_feedback_mid_data_lz4", LM_CODEC_LZ4, 0);
	sender_case("sender_error_after_feedback", LM_CODEC_NONE, 3);
	TEST_DONE("test_mixed");
}
