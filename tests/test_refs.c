/*
 * Ref and delta pages, end to end against the real receiver
 * (docs/protocol.md §6 "Ref and delta pages"): an in-process lm_receiver
 * and the hand-written fake sender of tests/fake_peer.h, whose sessions
 * agree REF and DELTA. Every hostile ref or delta must fail the session
 * with the documented code, an errmsg naming the channel and the field,
 * and an ERROR frame on the channel that carried it: never a crash (ASan),
 * a write outside the region (guard pages, canaries) or a hang. The valid
 * cases (a same-round ref whose source lands later on another channel, an
 * earlier-round ref, deltas) check the destination byte for byte and
 * complete with the checksum of the expected memory.
 *
 * Deltas are encoded here by hand (XOR runs with our own varint writer),
 * not with lm__delta_encode: the spec, not the encoder, says what is valid.
 * One line per case; arguments select cases by substring of their name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fake_peer.h"

#define KD (LM_FEAT_REF | LM_FEAT_DELTA)

/* ---- packets with every page kind ----------------------------------------- */

/* A packet under construction: pages of each kind in any order of calls;
 * the wire order (normal, zero, ref, delta) is made by kb_pkt(). */
typedef struct kb {
	uint64_t num;
	uint32_t round;
	uint64_t noff[MAXP], zoff[MAXP], roff[MAXP], doff[MAXP];
	uint8_t nfill[MAXP];
	lm__ref ref[MAXP];
	lm__delta dl[MAXP];
	uint32_t nn, nz, nr, nd;
	uint8_t area[MAXP * PS]; /* the encodings back to back, then padding */
	uint32_t alen;
	int32_t area_adj;       /* added to the area's page count (a bad frame length) */
} kb;

static uint8_t kb_pay[2 * MAXP * PS];

static void kb_init(kb *b, uint64_t num, uint32_t round)
{
	memset(b, 0, sizeof(*b));
	b->num = num;
	b->round = round;
}

static void kb_normal(kb *b, uint64_t off, uint8_t fill)
{
	b->nfill[b->nn] = fill;
	b->noff[b->nn++] = off;
}

static void kb_zero(kb *b, uint64_t off) { b->zoff[b->nz++] = off; }

static void kb_ref(kb *b, uint64_t off, uint32_t region, uint32_t round, uint64_t src)
{
	b->ref[b->nr] = (lm__ref){region, round, src};
	b->roff[b->nr++] = off;
}

static void kb_delta(kb *b, uint64_t off, uint32_t base, const uint8_t *enc, uint32_t len)
{
	b->dl[b->nd] = (lm__delta){base, len};
	b->doff[b->nd++] = off;
	if (len)
		memcpy(b->area + b->alen, enc, len);
	b->alen += len;
}

static uint32_t kb_area(const kb *b) { return (b->alen + PS - 1) / PS; }

static pkt kb_pkt(const kb *b)
{
	uint32_t area = (uint32_t)((int32_t)kb_area(b) + b->area_adj), k = 0;
	pkt p;

	memset(&p, 0, sizeof(p));
	p.d.packet_num = b->num;
	p.d.round = b->round;
	p.d.normal = b->nn;
	p.d.zero = b->nz;
	p.d.ref = b->nr;
	p.d.delta = (uint16_t)b->nd;
	p.d.pages = b->nn + b->nz + b->nr + b->nd;
	p.d.area = area;
	p.d.payload = (b->nn + area) * PS;
	for (uint32_t i = 0; i < b->nn; i++)
		p.off[k++] = b->noff[i];
	for (uint32_t i = 0; i < b->nz; i++)
		p.off[k++] = b->zoff[i];
	for (uint32_t i = 0; i < b->nr; i++) {
		p.off[k++] = b->roff[i];
		p.ref[i] = b->ref[i];
	}
	for (uint32_t i = 0; i < b->nd; i++) {
		p.off[k++] = b->doff[i];
		p.dl[i] = b->dl[i];
	}
	p.noff = k;
	p.nref = b->nr;
	p.ndl = b->nd;
	p.nlen = b->nn + area;
	for (uint32_t i = 0; i < p.nlen; i++)
		p.plen[i] = PS;
	for (uint32_t i = 0; i < b->nn; i++)
		memset(kb_pay + (size_t)i * PS, b->nfill[i], PS);
	memset(kb_pay + (size_t)b->nn * PS, 0, (size_t)area * PS);
	/* the area as built, padding included (a test may dirty it) */
	memcpy(kb_pay + (size_t)b->nn * PS, b->area,
	       (size_t)area * PS < sizeof(b->area) ? (size_t)area * PS : sizeof(b->area));
	p.pay = kb_pay;
	p.npay = p.d.payload;
	return p;
}

static void kb_send(int fd, const kb *b)
{
	pkt p = kb_pkt(b);

	send_pkt(fd, &p);
}

/* ---- XOR runs, written by hand ------------------------------------------------ */

static uint32_t varint(uint8_t *q, uint32_t v)
{
	uint32_t n = 0;

	do {
		q[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			q[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

/* Appends a run (skip unchanged bytes, then len bytes XOR x, x + 1, ...). */
static uint32_t run(uint8_t *q, uint32_t skip, uint32_t len, uint8_t x)
{
	uint32_t n = varint(q, skip);

	n += varint(q + n, len);
	for (uint32_t i = 0; i < len; i++)
		q[n++] = (uint8_t)(x + i);
	return n;
}

/* What that run does to a page, independently of the decoder. */
static void xor_run(uint8_t *page, uint32_t *pos, uint32_t skip, uint32_t len, uint8_t x)
{
	*pos += skip;
	for (uint32_t i = 0; i < len; i++)
		page[(*pos)++] ^= (uint8_t)(x + i);
}

/* ---- sessions --------------------------------------------------------------------- */

/* nch channels offering feats (every channel the same); the receiver must
 * accept exactly them. */
static int open_f(sess *s, const rxopt *o, int nch, uint64_t feats)
{
	uint64_t offer[4] = {feats, feats, feats, feats}, acked[4];
	int rc = sess_open_f(s, o, nch, offer, acked);

	for (int i = 0; !rc && i < nch; i++)
		CHECK_EQ(acked[i], feats);
	return rc;
}

/* Ends the session: COMPLETE with the checksum of exp, the ack, a clean
 * return, and the destination equal to exp byte for byte. */
static void finish_ok(const char *name, sess *s, const uint8_t *exp)
{
	lm__region_sum sum = {0, s->x.len, region_sum(exp, s->x.len)};
	int same;

	send_complete(s->fd[0], &sum, 1);
	CHECK_EQ(expect_ack(s->fd[0], LM_KIND_COMPLETE), 0);
	for (int i = 0; i < s->n; i++)
		close(s->fd[i]);
	rx_join(&s->x);
	CHECK_EQ(s->x.rc, 0);
	same = memcmp(exp, s->x.base, s->x.len) == 0;
	CHECK(same);
	if (!same)
		for (uint64_t i = 0; i < s->x.len; i++)
			if (exp[i] != s->x.base[i]) {
				fprintf(stderr, "  %s: byte 0x%llx is 0x%02x, expected 0x%02x\n", name,
					(unsigned long long)i, s->x.base[i], exp[i]);
				break;
			}
	CHECK(canaries_ok(&s->x));
}

static void fill_pages(uint8_t *exp, uint64_t off, uint8_t fill) { memset(exp + off, fill, PS); }

/* Round 0 on channel 0 (packets 0 and 1): normal pages 0..3 filled 0x10 +
 * page, 4..7 zero; exp (if not NULL) gets the same. Synced on every
 * channel: the session is then in round 1. */
static void round0(sess *s, uint8_t *exp)
{
	kb b;

	kb_init(&b, 0, 0);
	for (uint32_t i = 0; i < 4; i++)
		kb_normal(&b, (uint64_t)i * PS, (uint8_t)(0x10 + i));
	kb_send(s->fd[0], &b);
	kb_init(&b, 1, 0);
	for (uint32_t i = 4; i < 8; i++)
		kb_zero(&b, (uint64_t)i * PS);
	kb_send(s->fd[0], &b);
	send_sync(s->fd[0], 0, 2);
	for (int c = 1; c < s->n; c++)
		send_sync(s->fd[c], 0, 0);
	for (uint32_t i = 0; exp && i < 4; i++)
		fill_pages(exp, (uint64_t)i * PS, (uint8_t)(0x10 + i));
}

/* ---- hostile refs and deltas ---------------------------------------------------------- */

/* Also to be found in the errmsg of the next bad_case, if not NULL. */
static const char *bad_also;

/* One channel, round 0 as round0() when r0, then packets; the last one must
 * fail with code naming field; the page at `keep` (if not ~0) must still
 * hold what round 0 left there. */
static void bad_case_o(const char *name, const rxopt *o, uint64_t feats, int r0, const kb *pk,
		       int npk, int code, const char *field, uint64_t keep)
{
	int f0 = lm_test_failures;
	want w = {code, 0, field, 0, 0};
	uint8_t *exp = calloc(1, o && o->len ? round_up(o->len) : NPAGES * PS);
	sess s;

	if (open_f(&s, o, 1, feats) == 0) {
		if (r0)
			round0(&s, exp);
		for (int i = 0; i < npk; i++)
			kb_send(s.fd[0], &pk[i]);
	}
	outcome(name, &s.x, s.fd, 1, &w);
	if (bad_also && !strstr(lm_receiver_errmsg(s.x.r), bad_also)) {
		CHECK(!"errmsg names what is wrong");
		fprintf(stderr, "  %s: errmsg \"%s\" does not say \"%s\"\n", name,
			lm_receiver_errmsg(s.x.r), bad_also);
	}
	if (keep != ~0ull)
		CHECK(memcmp(s.x.base + keep, exp + keep, PS) == 0);
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

static void bad_case(const char *name, int r0, const kb *pk, int npk, const char *field,
		     uint64_t keep)
{
	bad_case_o(name, NULL, KD, r0, pk, npk, LM_EFIELD, field, keep);
}

/* A ref with these fields as the only page of a round-1 packet (round 0 as
 * round0()); or of a round-0 packet after normal page 0 when round is 0. */
static void bad_ref(const char *name, uint32_t round, uint64_t off, lm__ref r, const char *field)
{
	kb b;

	kb_init(&b, 9, round);
	if (round == 0)
		kb_normal(&b, 0, 0x77);
	kb_ref(&b, off, r.src_region, r.src_round, r.src_offset);
	bad_case(name, round > 0, &b, 1, field, round > 0 ? off : ~0ull);
}

static void refs_fields(void)
{
	bad_ref("ref_src_region_1", 1, 5 * PS, (lm__ref){1, 0, 0}, "data.ref[0].src_region 1");
	bad_ref("ref_src_region_2^32-1", 1, 5 * PS, (lm__ref){0xffffffffu, 0, 0},
		"data.ref[0].src_region");
	bad_ref("ref_src_offset_unaligned", 1, 5 * PS, (lm__ref){0, 0, PS + 8},
		"data.ref[0].src_offset");
	bad_ref("ref_src_offset_past_region", 1, 5 * PS, (lm__ref){0, 0, NPAGES * PS},
		"data.ref[0].src_offset");
	bad_ref("ref_src_offset_2^64-4096", 1, 5 * PS, (lm__ref){0, 0, ~0ull << 12},
		"data.ref[0].src_offset");
	bad_ref("ref_src_round_after", 1, 5 * PS, (lm__ref){0, 2, 0}, "data.ref[0].src_round 2");
	bad_ref("ref_src_round_after_r0", 0, 5 * PS, (lm__ref){0, 1, 0}, "data.ref[0].src_round 1");
	bad_ref("ref_to_itself", 1, 5 * PS, (lm__ref){0, 1, 5 * PS}, "data.ref[0] is the page");
	bad_ref("ref_to_itself_earlier_round", 1, 2 * PS, (lm__ref){0, 0, 2 * PS},
		"data.ref[0] is the page");
}

static void refs_sources(void)
{
	kb b[3];

	/* Never received: page 9 does not exist, so a region of 12 pages
	 * whose pages 8.. never came. */
	{
		rxopt o = {0};
		o.len = 12 * PS;
		kb_init(&b[0], 9, 1);
		kb_ref(&b[0], 5 * PS, 0, 0, 9 * PS);
		bad_case_o("ref_source_never_received", &o, KD, 1, b, 1, LM_EFIELD,
			   "data.ref[0]: source page at offset 0x9000 was never received", 5 * PS);
	}
	/* The source landed again in round 1: a round-2 ref to its round-0
	 * content names what the destination no longer holds. */
	kb_init(&b[0], 2, 1);
	kb_normal(&b[0], 2 * PS, 0x99);
	kb_init(&b[1], 3, 2);
	kb_ref(&b[1], 6 * PS, 0, 0, 2 * PS);
	{
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0,
			  "data.ref[0].src_round 0: source page at offset 0x2000 last landed in round 1",
			  0, 0};
		sess s;
		if (open_f(&s, NULL, 1, KD) == 0) {
			round0(&s, NULL);
			kb_send(s.fd[0], &b[0]);
			send_sync(s.fd[0], 1, 1);
			kb_send(s.fd[0], &b[1]);
		}
		outcome("ref_source_landed_in_other_round", &s.x, s.fd, 1, &w);
		CHECK(region_zero(&s.x, 6 * PS, 7 * PS));
		report("ref_source_landed_in_other_round", f0, &s.x);
		rx_free(&s.x);
	}
	/* ...and src_round naming a round the page did not land in at all. */
	{
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0,
			  "data.ref[0].src_round 1: source page at offset 0x1000 last landed in round 0",
			  0, 0};
		sess s;
		kb_init(&b[0], 2, 1);
		kb_normal(&b[0], 2 * PS, 0x99);
		kb_init(&b[1], 3, 2);
		kb_ref(&b[1], 6 * PS, 0, 1, PS);
		if (open_f(&s, NULL, 1, KD) == 0) {
			round0(&s, NULL);
			kb_send(s.fd[0], &b[0]);
			send_sync(s.fd[0], 1, 1);
			kb_send(s.fd[0], &b[1]);
		}
		outcome("ref_src_round_not_the_landing", &s.x, s.fd, 1, &w);
		report("ref_src_round_not_the_landing", f0, &s.x);
		rx_free(&s.x);
	}
}

/* Refs do not chain: a source that landed as a ref, in this round or an
 * earlier one, and a same-round source that is a ref page of this packet. */
static void refs_chains(void)
{
	kb b[2];

	kb_init(&b[0], 2, 1);
	kb_ref(&b[0], 5 * PS, 0, 0, 0); /* valid: page 0 landed in round 0... */
	kb_init(&b[1], 3, 1);
	kb_ref(&b[1], 6 * PS, 0, 1, 5 * PS); /* ...page 5 is a ref of round 1 */
	bad_case("ref_chain_same_round", 1, b, 2,
		 "source page at offset 0x5000 is a ref page (refs do not chain)", 6 * PS);
	{
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0,
			  "source page at offset 0x5000 is a ref page (refs do not chain)", 0, 0};
		sess s;
		kb_init(&b[1], 3, 2);
		kb_ref(&b[1], 6 * PS, 0, 1, 5 * PS);
		if (open_f(&s, NULL, 1, KD) == 0) {
			round0(&s, NULL);
			kb_send(s.fd[0], &b[0]);
			send_sync(s.fd[0], 1, 1);
			kb_send(s.fd[0], &b[1]);
		}
		outcome("ref_chain_earlier_round", &s.x, s.fd, 1, &w);
		CHECK(region_zero(&s.x, 6 * PS, 7 * PS));
		report("ref_chain_earlier_round", f0, &s.x);
		rx_free(&s.x);
	}
	/* Two refs of one packet, the first naming the second (same round). */
	kb_init(&b[0], 0, 0);
	kb_normal(&b[0], 0, 0x44);
	kb_ref(&b[0], PS, 0, 0, 2 * PS);
	kb_ref(&b[0], 2 * PS, 0, 0, 0);
	bad_case("ref_to_ref_of_same_packet", 0, b, 1,
		 "data.ref[0]: source page at offset 0x2000 is a ref page of the same packet", ~0ull);
	/* Its second ref, naming the first. */
	kb_init(&b[0], 0, 0);
	kb_normal(&b[0], 0, 0x44);
	kb_ref(&b[0], PS, 0, 0, 0);
	kb_ref(&b[0], 2 * PS, 0, 0, PS);
	bad_case("ref_to_earlier_ref_of_same_packet", 0, b, 1,
		 "data.ref[1]: source page at offset 0x1000 is a ref page of the same packet", ~0ull);
}

/* A page that a ref of this round read as its earlier-round content cannot
 * land in this round, before or after the ref, on any channel. */
static void refs_pins(void)
{
	kb b[2];

	kb_init(&b[0], 2, 1);
	kb_ref(&b[0], 5 * PS, 0, 0, 2 * PS);
	kb_init(&b[1], 3, 1);
	kb_normal(&b[1], 2 * PS, 0x99);
	bad_case("ref_source_lands_again_after", 1, b, 2,
		 "data.offsets: page at offset 0x2000 was the source of a ref to its earlier content in round 1",
		 2 * PS);
	kb_init(&b[0], 2, 1);
	kb_normal(&b[0], 2 * PS, 0x99);
	kb_init(&b[1], 3, 1);
	kb_ref(&b[1], 5 * PS, 0, 0, 2 * PS);
	bad_case("ref_source_lands_again_before", 1, b, 2,
		 "data.ref[0]: source page at offset 0x2000 of round 0 lands again in round 1",
		 5 * PS);
	/* In the ref's own packet, and as a zero or delta page. */
	kb_init(&b[0], 2, 1);
	kb_normal(&b[0], 2 * PS, 0x99);
	kb_ref(&b[0], 5 * PS, 0, 0, 2 * PS);
	bad_case("ref_source_lands_again_same_packet", 1, b, 1, "of round 0 lands again in round 1",
		 5 * PS);
	kb_init(&b[0], 2, 1);
	kb_zero(&b[0], 2 * PS);
	kb_ref(&b[0], 5 * PS, 0, 0, 2 * PS);
	bad_case("ref_source_lands_again_as_zero", 1, b, 1, "of round 0 lands again in round 1",
		 5 * PS);
	kb_init(&b[0], 2, 1);
	kb_ref(&b[0], 5 * PS, 0, 0, 2 * PS);
	kb_init(&b[1], 3, 1);
	kb_delta(&b[1], 2 * PS, 0, NULL, 0);
	bad_case("ref_source_lands_again_as_delta", 1, b, 2, "was the source of a ref", 2 * PS);
	/* On another channel, after the ref was applied. */
	{
		const char *name = "ref_source_lands_again_other_channel";
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 1, "was the source of a ref to its earlier content in round 1",
			  1, 0};
		sess s;
		kb_init(&b[0], 2, 1);
		kb_ref(&b[0], 5 * PS, 0, 0, 2 * PS);
		kb_init(&b[1], 3, 1);
		kb_normal(&b[1], 2 * PS, 0x99);
		if (open_f(&s, NULL, 2, KD) == 0) {
			round0(&s, NULL);
			kb_send(s.fd[0], &b[0]);
			sleep_ms(150);
			kb_send(s.fd[1], &b[1]);
		}
		outcome(name, &s.x, s.fd, 2, &w);
		CHECK(s.x.base[5 * PS] == 0x12 && s.x.base[2 * PS] == 0x12);
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* Same-round sources that never come: an error once every other channel
 * has ended the round (or at once with one channel), never a hang. */
static void refs_waits(void)
{
	kb b[1];

	kb_init(&b[0], 0, 0);
	kb_ref(&b[0], PS, 0, 0, 3 * PS);
	bad_case("ref_same_round_source_never_comes_1ch", 0, b, 1,
		 "data.ref[0]: source page at offset 0x3000 did not land in round 0 (every other channel ended it)",
		 ~0ull);
	{
		const char *name = "ref_same_round_source_never_comes_3ch";
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0, "did not land in round 0 (every other channel ended it)", 0,
			  0};
		uint64_t t0;
		sess s;
		if (open_f(&s, NULL, 3, KD) == 0) {
			kb_send(s.fd[0], &b[0]);
			sleep_ms(100);
			send_sync(s.fd[1], 0, 0);
			sleep_ms(100);
			/* channel 2 brings other pages, then ends the round */
			kb_init(&b[0], 1, 0);
			kb_normal(&b[0], 2 * PS, 0x22);
			kb_send(s.fd[2], &b[0]);
			send_sync(s.fd[2], 0, 1);
		}
		t0 = now_ms();
		outcome(name, &s.x, s.fd, 3, &w);
		CHECK(now_ms() - t0 < 1500); /* not the 2 s stall timeout */
		CHECK(region_zero(&s.x, PS, 2 * PS));
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
	/* Two channels each waiting for a page the other would send after its
	 * ref: no honest sender does that (refs follow their sources), and
	 * neither channel can move on. The receiver sees every channel of the
	 * round waiting and refuses at once. */
	{
		const char *name = "ref_waits_crossed";
		int f0 = lm_test_failures;
		rxopt o = {0};
		/* Refused as soon as both wait: not after the timeout. */
		want w = {LM_EFIELD, -1, "crossed refs", -1, 0};
		uint64_t t0 = now_ms(), ms;
		sess s;
		o.timeout_ms = 20000;
		if (open_f(&s, &o, 2, KD) == 0) {
			kb_init(&b[0], 0, 0);
			kb_ref(&b[0], PS, 0, 0, 3 * PS);
			kb_send(s.fd[0], &b[0]);
			kb_init(&b[0], 1, 0);
			kb_ref(&b[0], 2 * PS, 0, 0, 4 * PS);
			kb_send(s.fd[1], &b[0]);
			kb_init(&b[0], 2, 0);
			kb_normal(&b[0], 4 * PS, 0x44);
			kb_send(s.fd[0], &b[0]);
			kb_init(&b[0], 3, 0);
			kb_normal(&b[0], 3 * PS, 0x33);
			kb_send(s.fd[1], &b[0]);
		}
		outcome(name, &s.x, s.fd, 2, &w);
		ms = now_ms() - t0;
		CHECK(ms < 5000);
		printf("  %s: %s after %llu ms\n", name, lm_receiver_errmsg(s.x.r),
		       (unsigned long long)ms);
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* Ref and delta pages that the session did not agree. */
static void kinds_not_agreed(void)
{
	uint8_t enc[16];
	uint32_t n = run(enc, 0, 4, 0x50);
	kb b[1];

	kb_init(&b[0], 2, 1);
	kb_ref(&b[0], 5 * PS, 0, 0, 0);
	bad_case_o("ref_without_feature", NULL, 0, 1, b, 1, LM_EFEATURE, "data.ref", 5 * PS);
	bad_case_o("ref_with_delta_only", NULL, LM_FEAT_DELTA, 1, b, 1, LM_EFEATURE, "data.ref",
		   5 * PS);
	bad_case_o("ref_with_round_ack_and_delta", NULL, LM_FEAT_ROUND_ACK | LM_FEAT_DELTA, 1, b, 1,
		   LM_EFEATURE, "data.ref", 5 * PS);
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	bad_case_o("delta_without_feature", NULL, 0, 1, b, 1, LM_EFEATURE, "data.delta", PS);
	bad_case_o("delta_with_ref_only", NULL, LM_FEAT_REF, 1, b, 1, LM_EFEATURE, "data.delta",
		   PS);
}

static void deltas_fields(void)
{
	uint8_t enc[PS + 64];
	uint32_t n = run(enc, 0, 4, 0x50);
	kb b[1];

	kb_init(&b[0], 0, 0);
	kb_delta(&b[0], PS, 0, enc, n);
	bad_case("delta_in_round_0", 0, b, 1, "data.delta[0].base_round 0 not before", ~0ull);
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 1, enc, n);
	bad_case("delta_base_round_is_round", 1, b, 1, "data.delta[0].base_round 1 not before", PS);
	b[0].dl[0].base_round = 0xffffffffu;
	bad_case("delta_base_round_2^32-1", 1, b, 1, "data.delta[0].base_round", PS);
	/* len: below the page size (the encoding itself would be valid). */
	memset(enc, 0, sizeof(enc));
	n = run(enc, 0, PS - 3, 0x01); /* 3 bytes of header: PS + 0 bytes */
	CHECK_EQ(n, PS);
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	bad_case("delta_len_page_size", 1, b, 1, "data.delta[0].len 4096 not below the page size",
		 PS);
	/* Never received, and not landed in base_round. */
	{
		rxopt o = {0};
		o.len = 12 * PS;
		n = run(enc, 0, 4, 0x50);
		kb_init(&b[0], 2, 1);
		kb_delta(&b[0], 9 * PS, 0, enc, n);
		bad_case_o("delta_page_never_received", &o, KD, 1, b, 1, LM_EFIELD,
			   "data.delta[0]: the page at offset 0x9000 was never received", ~0ull);
	}
	{
		const char *name = "delta_base_round_not_last_landing";
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0,
			  "data.delta[0].base_round 0: the page at offset 0x1000 last landed in round 1",
			  0, 0};
		kb c;
		sess s;
		if (open_f(&s, NULL, 1, KD) == 0) {
			round0(&s, NULL);
			kb_init(&c, 2, 1);
			kb_normal(&c, PS, 0x66);
			kb_send(s.fd[0], &c);
			send_sync(s.fd[0], 1, 1);
			kb_init(&c, 3, 2);
			kb_delta(&c, PS, 0, enc, n);
			kb_send(s.fd[0], &c);
		}
		outcome(name, &s.x, s.fd, 1, &w);
		CHECK(s.x.base[PS] == 0x66 && s.x.base[PS + 3] == 0x66); /* not applied */
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* The delta area: its page count (from the frame length) must fit the
 * encodings, and its padding is zero. */
static void deltas_area(void)
{
	uint8_t enc[64];
	uint32_t n = run(enc, 0, 4, 0x50);
	kb b[1];

	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	b[0].area_adj = -1;
	bad_case("delta_area_missing", 1, b, 1,
		 "data.delta: encodings of 6 bytes need 1 area pages, the length table has 0", PS);
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	kb_delta(&b[0], 2 * PS, 0, enc, n);
	b[0].area_adj = 1;
	bad_case("delta_area_too_large", 1, b, 1,
		 "data.delta: encodings of 12 bytes need 1 area pages, the length table has 2", PS);
	/* Only one area page per delta page: a length with more is no DATA. */
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	b[0].area_adj = 1;
	bad_case("delta_area_above_delta_count", 1, b, 1, "data.length", PS);
	/* Padding. */
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	b[0].area[100] = 1;
	bad_case("delta_area_padding_middle", 1, b, 1,
		 "data.delta: the area's padding after 6 bytes is not zero", ~0ull);
	b[0].area[100] = 0;
	b[0].area[PS - 1] = 0x80;
	bad_case("delta_area_padding_last_byte", 1, b, 1, "the area's padding after 6 bytes",
		 ~0ull);
	b[0].area[PS - 1] = 0;
	b[0].area[n] = 0xff; /* the byte right after the encoding */
	bad_case("delta_area_padding_first_byte", 1, b, 1, "the area's padding after 6 bytes",
		 ~0ull);
	/* Two deltas in one packet: the padding follows the second encoding. */
	kb_init(&b[0], 2, 1);
	kb_delta(&b[0], PS, 0, enc, n);
	kb_delta(&b[0], 2 * PS, 0, enc, n);
	b[0].area[2 * n] = 1;
	bad_case("delta_area_padding_two_deltas", 1, b, 1, "the area's padding after 12 bytes",
		 ~0ull);
}

/* Encodings the decoder must refuse (docs/protocol.md "XOR-run encoding"). */
static void deltas_runs(void)
{
	static const struct {
		const char *name;
		uint8_t enc[8];
		uint32_t len;
		const char *what;
	} bad[] = {
		{"delta_run_past_page_end", {0xfc, 0x1f, 0x05, 1, 2, 3, 4, 5}, 8, "past the page end"},
		{"delta_skip_to_page_end_then_run", {0x80, 0x20, 0x01, 1}, 4, "past the page end"},
		{"delta_zero_length_run", {0x00, 0x00, 0x01}, 3, "zero-length run"},
		{"delta_truncated_varint", {0x00, 0x01, 0x07, 0x80}, 4, "truncated"},
		{"delta_truncated_len_varint", {0x05}, 1, "truncated"},
		{"delta_varint_4_bytes", {0x80, 0x80, 0x80, 0x00, 0x01, 1}, 6, "longer than 3 bytes"},
		{"delta_varint_above_page", {0xff, 0xff, 0x03, 0x01, 1}, 5, "above the page size"},
		{"delta_run_bytes_cut_short", {0x00, 0x05, 1, 2}, 4, "delta:"},
	};
	char field[160];
	kb b[1];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kb_init(&b[0], 2, 1);
		kb_delta(&b[0], 3 * PS, 0, bad[i].enc, bad[i].len);
		snprintf(field, sizeof(field), "data.delta[0] (page at offset 0x3000): delta: ");
		bad_also = bad[i].what;
		bad_case(bad[i].name, 1, b, 1, field, ~0ull);
		bad_also = NULL;
	}
	/* The second delta of a packet is named as such. */
	{
		uint8_t enc[8];
		uint32_t n = run(enc, 0, 2, 0x50);
		kb_init(&b[0], 2, 1);
		kb_delta(&b[0], 2 * PS, 0, enc, n);
		kb_delta(&b[0], 3 * PS, 0, (const uint8_t *)"\x00\x00", 2);
		bad_case("delta_second_of_packet_bad", 1, b, 1,
			 "data.delta[1] (page at offset 0x3000): delta: zero-length run", ~0ull);
	}
}

/* A region's partial last page is neither a ref, nor a ref's source, nor a
 * delta page. Region of 2 pages + 100 bytes: page 2 is partial. */
static void partial_page(void)
{
	rxopt o = {0};
	uint8_t enc[8];
	uint32_t n = run(enc, 0, 2, 0x50);
	kb b[2];

	o.len = 2 * PS + 100;
	kb_init(&b[0], 0, 0);
	kb_normal(&b[0], 0, 0x11);
	kb_normal(&b[0], 2 * PS, 0); /* all zero, padding included: it lands */
	kb_init(&b[1], 1, 0);
	kb_ref(&b[1], PS, 0, 0, 2 * PS);
	bad_case_o("ref_source_partial_page", &o, KD, 0, b, 2, LM_EFIELD,
		   "data.ref[0]: a region's partial last page is neither a ref nor its source", ~0ull);
	kb_init(&b[1], 1, 0);
	kb_ref(&b[1], 2 * PS, 0, 0, 0);
	bad_case_o("ref_page_partial_page", &o, KD, 0, b, 2, LM_EFIELD,
		   "data.ref[0]: a region's partial last page is neither a ref nor its source", ~0ull);
	{
		const char *name = "delta_partial_page";
		int f0 = lm_test_failures;
		want w = {LM_EFIELD, 0, "data.delta[0]: a region's partial last page is never a delta",
			  0, 0};
		sess s;
		if (open_f(&s, &o, 1, KD) == 0) {
			kb_send(s.fd[0], &b[0]);
			send_sync(s.fd[0], 0, 1);
			kb_init(&b[1], 1, 1);
			kb_delta(&b[1], 2 * PS, 0, enc, n);
			kb_send(s.fd[0], &b[1]);
		}
		outcome(name, &s.x, s.fd, 1, &w);
		report(name, f0, &s.x);
		rx_free(&s.x);
	}
}

/* ---- valid refs and deltas ------------------------------------------------------ */

/* A same-round ref whose source lands later on another channel: the
 * receiver waits for it, then copies it. Sources of each kind that may be
 * one: normal (round 0), zero and delta (round 1). */
static void ok_ref_waits(void)
{
	const char *name = "ref_same_round_source_later_other_channel";
	int f0 = lm_test_failures;
	uint8_t *exp = calloc(1, NPAGES * PS), enc[16];
	uint32_t n, pos = 0;
	lm_stats st = LM_STATS_INIT;
	kb b;
	sess s;

	if (open_f(&s, NULL, 2, KD) == 0) {
		/* round 0: page 1 refs page 3, which channel 1 sends 150 ms later */
		kb_init(&b, 0, 0);
		kb_normal(&b, 0, 0x10);
		kb_ref(&b, PS, 0, 0, 3 * PS);
		kb_send(s.fd[0], &b);
		sleep_ms(150);
		kb_init(&b, 1, 0);
		kb_normal(&b, 3 * PS, 0x33);
		kb_normal(&b, 6 * PS, 0x66);
		kb_send(s.fd[1], &b);
		send_sync(s.fd[0], 0, 1);
		send_sync(s.fd[1], 0, 1);
		fill_pages(exp, 0, 0x10);
		fill_pages(exp, PS, 0x33);
		fill_pages(exp, 3 * PS, 0x33);
		fill_pages(exp, 6 * PS, 0x66);
		/* round 1: page 2 refs page 3 made zero later; page 4 refs
		 * page 6 after a delta on it, both on channel 1 */
		kb_init(&b, 2, 1);
		kb_ref(&b, 2 * PS, 0, 1, 3 * PS);
		kb_ref(&b, 4 * PS, 0, 1, 6 * PS);
		kb_send(s.fd[0], &b);
		sleep_ms(150);
		n = run(enc, 7, 3, 0xa0);
		kb_init(&b, 3, 1);
		kb_zero(&b, 3 * PS);
		kb_delta(&b, 6 * PS, 0, enc, n);
		kb_send(s.fd[1], &b);
		send_sync(s.fd[0], 1, 1);
		send_sync(s.fd[1], 1, 1);
		memset(exp + 3 * PS, 0, PS);
		xor_run(exp + 6 * PS, &pos, 7, 3, 0xa0);
		memset(exp + 2 * PS, 0, PS);
		memcpy(exp + 4 * PS, exp + 6 * PS, PS);
		CHECK(exp[6 * PS + 7] == (0x66 ^ 0xa0) && exp[6 * PS + 10] == 0x66);
		finish_ok(name, &s, exp);
		lm_receiver_stats(s.x.r, &st);
		CHECK_EQ(st.ref_pages, 3);
		CHECK_EQ(st.delta_pages, 1);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

/* The source is a zero page alone in its packet, on another channel: the
 * waiting channel must be woken by it, not only by its own 50 ms poll, so
 * the round ends within milliseconds of the zero page. ROUND_ACK measures
 * it (channel 0's round ack follows the ref); the zero page comes 120 ms
 * after the ref, 20 ms past a poll: a receiver that only polls takes ~30 ms
 * every round. The best of 4 rounds must be quicker. */
static void ok_ref_waits_zero(void)
{
	const char *name = "ref_same_round_source_zero_page_later";
	int f0 = lm_test_failures;
	uint8_t *exp = calloc(1, NPAGES * PS);
	uint64_t worst = 0, best = ~0ull;
	kb b;
	sess s;

	if (open_f(&s, NULL, 2, KD | LM_FEAT_ROUND_ACK) == 0) {
		round0(&s, exp);
		CHECK_EQ(expect_ack(s.fd[0], LM_KIND_SYNC), 0);
		for (uint32_t r = 1; r <= 4; r++) {
			uint64_t t0;
			/* page 1 (0x11 from round 0) refs page r + 3, made zero
			 * 120 ms later on channel 1 */
			kb_init(&b, 2 * r, r);
			kb_ref(&b, PS, 0, r, (uint64_t)(r + 3) * PS);
			kb_send(s.fd[0], &b);
			send_sync(s.fd[0], r, 1);
			sleep_ms(120);
			kb_init(&b, 2 * r + 1, r);
			kb_zero(&b, (uint64_t)(r + 3) * PS);
			t0 = now_ms();
			kb_send(s.fd[1], &b);
			send_sync(s.fd[1], r, 1);
			CHECK_EQ(expect_ack(s.fd[0], LM_KIND_SYNC), 0);
			t0 = now_ms() - t0;
			worst = t0 > worst ? t0 : worst;
			best = t0 < best ? t0 : best;
			memset(exp + PS, 0, PS);
			memset(exp + (uint64_t)(r + 3) * PS, 0, PS);
		}
		printf("  %s: the round ended %llu..%llu ms after the zero page\n", name,
		       (unsigned long long)best, (unsigned long long)worst);
		CHECK(best < 15);
		finish_ok(name, &s, exp);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

/* Earlier-round refs: to a normal, a zero, a delta page, across regions of
 * one session... (one region here), and to a page landed in the same
 * packet in this round (same-round, no wait). */
static void ok_ref_earlier(void)
{
	const char *name = "ref_earlier_round_and_same_packet";
	int f0 = lm_test_failures;
	uint8_t *exp = calloc(1, NPAGES * PS), enc[32];
	uint32_t n, pos = 0;
	kb b;
	sess s;

	if (open_f(&s, NULL, 1, KD) == 0) {
		round0(&s, exp);
		/* round 1: page 3 as a delta; refs to rounds 0 */
		n = run(enc, 100, 5, 0x01);
		n += run(enc + n, 3000, 2, 0xf0);
		kb_init(&b, 2, 1);
		kb_delta(&b, 3 * PS, 0, enc, n);
		kb_ref(&b, 5 * PS, 0, 0, 2 * PS); /* normal of round 0 */
		kb_ref(&b, 6 * PS, 0, 0, 0);      /* normal of round 0 */
		kb_send(s.fd[0], &b);
		pos = 0;
		xor_run(exp + 3 * PS, &pos, 100, 5, 0x01);
		xor_run(exp + 3 * PS, &pos, 3000, 2, 0xf0);
		memcpy(exp + 5 * PS, exp + 2 * PS, PS);
		memcpy(exp + 6 * PS, exp, PS);
		send_sync(s.fd[0], 1, 1);
		/* round 2: refs to round 1's delta page and round 0's zero page,
		 * and one to a normal page of this very packet */
		kb_init(&b, 3, 2);
		kb_normal(&b, PS, 0x5a);
		kb_ref(&b, 2 * PS, 0, 1, 3 * PS);
		kb_ref(&b, 0, 0, 0, 7 * PS);
		kb_ref(&b, 4 * PS, 0, 2, PS);
		kb_send(s.fd[0], &b);
		fill_pages(exp, PS, 0x5a);
		memcpy(exp + 2 * PS, exp + 3 * PS, PS);
		memset(exp, 0, PS);
		memcpy(exp + 4 * PS, exp + PS, PS);
		send_sync(s.fd[0], 2, 1);
		finish_ok(name, &s, exp);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

/* Deltas: several runs, an area spanning pages (the second encoding
 * crosses an area page boundary), a delta on a delta (rounds 1 and 2), on
 * a ref and on a zero page, an empty delta, runs at the page's both ends,
 * non-minimal varints. */
static void ok_deltas(void)
{
	const char *name = "delta_valid";
	int f0 = lm_test_failures;
	uint8_t *exp = calloc(1, NPAGES * PS), enc[2 * PS];
	uint32_t n, m, k, pos;
	kb b;
	sess s;

	if (open_f(&s, NULL, 1, KD) == 0) {
		round0(&s, exp);
		kb_init(&b, 2, 1);
		kb_ref(&b, 6 * PS, 0, 0, PS);
		kb_send(s.fd[0], &b);
		memcpy(exp + 6 * PS, exp + PS, PS);
		send_sync(s.fd[0], 1, 1);
		/* round 2: page 0 (two runs, the first at byte 0, the last
		 * ending at the page end), page 1 (3000 changed bytes: its
		 * encoding crosses into the second area page), page 4 (a zero
		 * page of round 0), page 6 (a ref of round 1), page 2 empty */
		kb_init(&b, 3, 2);
		n = run(enc, 0, 3, 0x80);
		n += run(enc + n, PS - 3 - 1500, 1500, 0x40);
		kb_delta(&b, 0, 0, enc, n);
		pos = 0;
		xor_run(exp, &pos, 0, 3, 0x80);
		xor_run(exp, &pos, PS - 1503, 1500, 0x40);
		CHECK_EQ(pos, PS);
		m = run(enc, 1000, 3000, 0x07);
		kb_delta(&b, PS, 0, enc, m);
		pos = 0;
		xor_run(exp + PS, &pos, 1000, 3000, 0x07);
		CHECK(n + m > PS); /* two area pages */
		k = run(enc, 17, 1, 0xff);
		kb_delta(&b, 4 * PS, 0, enc, k);
		pos = 0;
		xor_run(exp + 4 * PS, &pos, 17, 1, 0xff);
		/* non-minimal varints: skip 5 as 0x85 0x00, len 2 as 0x82 0x80 0x00 */
		{
			static const uint8_t nm[] = {0x85, 0x00, 0x82, 0x80, 0x00, 0x0f, 0xf0};
			kb_delta(&b, 6 * PS, 1, nm, sizeof(nm));
			exp[6 * PS + 5] ^= 0x0f;
			exp[6 * PS + 6] ^= 0xf0;
		}
		kb_send(s.fd[0], &b);
		CHECK_EQ(kb_area(&b), 2);
		kb_init(&b, 4, 2);
		kb_delta(&b, 2 * PS, 0, NULL, 0); /* unchanged; lands as a delta */
		kb_send(s.fd[0], &b);
		send_sync(s.fd[0], 2, 2);
		/* round 3: deltas on round 2's deltas, one on the empty one */
		kb_init(&b, 5, 3);
		n = run(enc, 2, 2, 0x33);
		kb_delta(&b, 0, 2, enc, n);
		kb_delta(&b, 2 * PS, 2, enc, n);
		kb_send(s.fd[0], &b);
		pos = 0;
		xor_run(exp, &pos, 2, 2, 0x33);
		pos = 0;
		xor_run(exp + 2 * PS, &pos, 2, 2, 0x33);
		send_sync(s.fd[0], 3, 1);
		finish_ok(name, &s, exp);
	}
	report(name, f0, &s.x);
	rx_free(&s.x);
	free(exp);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
#define C(f) {#f, f}
	C(refs_fields),
	C(refs_sources),
	C(refs_chains),
	C(refs_pins),
	C(refs_waits),
	C(kinds_not_agreed),
	C(deltas_fields),
	C(deltas_area),
	C(deltas_runs),
	C(partial_page),
	C(ok_ref_waits),
	C(ok_ref_waits_zero),
	C(ok_ref_earlier),
	C(ok_deltas),
#undef C
};

/* Arguments: substrings of case function names to run (default all). */
int main(int argc, char **argv)
{
	uint64_t t0 = now_ms();

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int run_it = argc < 2;
		for (int a = 1; a < argc && !run_it; a++)
			run_it = strstr(cases[i].name, argv[a]) != NULL;
		if (run_it)
			cases[i].fn();
	}
	printf("test_refs: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	TEST_DONE("test_refs");
}
