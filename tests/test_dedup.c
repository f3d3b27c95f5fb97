/*
 * Deduplication (ref pages, docs/protocol.md §6 "Ref and delta pages"), end
 * to end and at the content index itself. Outcomes only, never timing:
 *
 *  1. the content index (src/codec/dedup.c) directly: the exact ref a
 *     lookup returns (region, round, offset), a page sent again or sent as
 *     zero/delta is no longer a source, an earlier round's page in this
 *     round's set is no source, the partial last page is never indexed,
 *     collisions (a constant hash) cost comparisons and never a wrong ref,
 *     only MAX_CANDIDATES are compared, the table is emptied at round 256;
 *  2. one-pass transfers of images with known duplicate patterns (region A
 *     holds the originals and copies inside the same packet, region B
 *     copies of A's pages in other packets and channels, singletons, zero
 *     pages and a partial last page whose zero-padded bytes equal a page of
 *     A) over 1, 2 and 4 channels and packets of 1, 3, 8 and 128 pages, with
 *     the real hash, a first-byte hash and a constant hash: the counts are
 *     exact (ref, normal, zero, index entries; for one channel also the
 *     collisions, from a model of the index), sender == receiver, the
 *     destination byte-identical; no_dedup = 1 makes no ref;
 *  3. live migration, every codec and both dirty sources, deterministic
 *     scenarios: a hash hook (s->dedup_hash) runs on the channel thread as a
 *     page is planned and writes the source memory at that exact moment,
 *     building the cases that break a sender comparing against live memory
 *     without the end-of-round recheck (a same-round source rewritten
 *     between its send and the comparison, an earlier round's source
 *     rewritten to equal the ref page, a source changed to the content of a
 *     page not yet sent, which is changed too), plus refs across rounds
 *     (round 3 naming a page last sent in round 0, from the same and from
 *     another region) and a ref to a page that landed as a delta; the
 *     receiver's landing records prove which round each ref named;
 *  4. live migration, every codec and both dirty sources, with a workload
 *     thread that writes pages, copies pages into others (duplicates made
 *     while live), rewrites copy sources and zeroes pages: destination ==
 *     source after the switchover.
 *
 * Multi-channel one-pass counts are exact because the hash hook holds the
 * lookups of region B until every page of A is indexed (a wait for an
 * event, not for time): two channels planning two copies of one content
 * at once may both miss, as the index allows. LM_TEST_ONLY=N runs part N.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "test_util.h"
#include "codec/dedup.h"
#include "hash.h"
#include "livemig.h"
#include "receiver/receiver.h"
#include "sender/sender.h"

#define SLOW LM_TEST_SLOW

#define PS 4096u
#define MIB (1ull << 20)
#define MAX_CAND 8 /* dedup.c's MAX_CANDIDATES */

static int verbose;

/* ---- helpers ------------------------------------------------------------------- */

static uint8_t *map_anon(uint64_t len)
{
	void *p = mmap(NULL, (size_t)(len ? len : 1), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Page content number id (id > 0): pseudo-random bytes, first byte b0.
 * Distinct ids give distinct pages. */
static void fill_page(uint8_t *p, uint64_t id, uint8_t b0)
{
	uint64_t s = id * 0x9E3779B97F4A7C15ull + 0x1234567;

	for (uint32_t i = 0; i < PS; i += 8) {
		uint64_t v = xs(&s);
		memcpy(p + i, &v, 8);
	}
	memcpy(p + 8, &id, 8); /* distinct for sure */
	p[0] = b0;
}

/* ---- the hash hook ---------------------------------------------------------------- */

enum { H_REAL, H_BYTE, H_CONST };

static uint64_t real_hash(const void *p, size_t n)
{
	struct iovec v = {(void *)p, n};

	return lm__hash(&v, 1, 0);
}

static uint64_t mode_hash(int mode, const void *p, size_t n)
{
	switch (mode) {
	case H_BYTE: return (uint64_t)((const uint8_t *)p)[0] << 40;   /* 256 buckets of content */
	case H_CONST: return 0xabcdefull << 40;                      /* every page collides */
	}
	return real_hash(p, n);
}

/* Globals: the hash has no user pointer. Set before connect, read by the
 * channel threads while the sender runs. */
static struct {
	int mode;
	lm_sender *s;
	/* One-pass: pages in [wait_lo, wait_hi) wait until the index holds
	 * wait_entries entries. */
	const uint8_t *wait_lo, *wait_hi;
	uint64_t wait_entries;
	int wait_timeout;
	/* Live: called before and after hashing, on the channel thread. */
	void (*pre)(const uint8_t *p);
	void (*post)(const uint8_t *p);
} H;

static uint64_t hook_hash(const void *p, size_t n)
{
	uint64_t h;

	if (H.wait_lo && (const uint8_t *)p >= H.wait_lo && (const uint8_t *)p < H.wait_hi) {
		uint64_t t0 = now_us();
		lm__dedup_stats st;
		for (;;) {
			lm__dedup_get_stats(H.s->kinds.dedup, &st);
			if (st.entries >= H.wait_entries)
				break;
			if (now_us() - t0 > 20000000u) { /* a bug, not a slow machine */
				__atomic_store_n(&H.wait_timeout, 1, __ATOMIC_RELAXED);
				break;
			}
			sleep_us(100);
		}
	}
	if (H.pre)
		H.pre(p);
	h = mode_hash(H.mode, p, n);
	if (H.post)
		H.post(p);
	return h;
}

/* ---- 1. the content index ------------------------------------------------------- */

static int ref_is(const lm__ref *r, uint32_t rid, uint32_t round, uint64_t off)
{
	return r->src_region == rid && r->src_round == round && r->src_offset == off;
}

static void test_index(void)
{
	const uint64_t la = 16 * PS, lb = 5 * PS + PS / 2; /* B: a partial last page */
	uint8_t *a = map_anon(la), *b = map_anon(6 * PS), page[PS], old0[PS];
	const uint8_t *base[2] = {a, b};
	uint64_t len[2] = {la, lb}, set[2][1] = {{0}, {0}};
	const uint64_t *sets[2] = {set[0], set[1]};
	lm__dedup *d = NULL;
	lm__dedup_stats st;
	lm__ref r;
	int before = lm_test_failures;

	CHECK(a && b);
	for (uint64_t i = 0; i < 16; i++)
		fill_page(a + i * PS, 100 + i, (uint8_t)i);
	for (uint64_t i = 0; i < 5; i++)
		fill_page(b + i * PS, 200 + i, (uint8_t)i);
	/* A1 and B2 copies of A0; A5 a copy of A4. B5 (partial) holds A6's
	 * first half, and A6's second half is zero: padded, they are equal. */
	memcpy(a + 1 * PS, a, PS);
	memcpy(b + 2 * PS, a, PS);
	memcpy(a + 5 * PS, a + 4 * PS, PS);
	memset(a + 6 * PS + PS / 2, 0, PS / 2);
	memcpy(b + 5 * PS, a + 6 * PS, PS / 2);

	CHECK_EQ(lm__dedup_new(&d, base, len, 2, PS), 0);
	lm__dedup_round(d, 0, NULL);
	CHECK_EQ(lm__dedup_page(d, 0, 0, a, &r), 0);
	CHECK_EQ(lm__dedup_page(d, 0, 1, a + PS, &r), 1);
	CHECK(ref_is(&r, 0, 0, 0));
	CHECK_EQ(lm__dedup_page(d, 1, 2, b + 2 * PS, &r), 1); /* across regions */
	CHECK(ref_is(&r, 0, 0, 0));
	CHECK_EQ(lm__dedup_page(d, 0, 4, a + 4 * PS, &r), 0);
	CHECK_EQ(lm__dedup_page(d, 0, 5, a + 5 * PS, &r), 1);
	CHECK(ref_is(&r, 0, 0, 4 * PS));
	/* The partial last page is neither a ref nor a source. */
	memset(page, 0, PS);
	memcpy(page, b + 5 * PS, PS / 2);
	CHECK(memcmp(page, a + 6 * PS, PS) == 0);
	CHECK_EQ(lm__dedup_page(d, 1, 5, page, &r), 0);
	CHECK_EQ(lm__dedup_page(d, 0, 6, a + 6 * PS, &r), 0); /* not a ref to B5 */
	lm__dedup_get_stats(d, &st);
	CHECK_EQ(st.entries, 3); /* A0, A4, A6 */
	CHECK_EQ(st.hits, 3);
	CHECK_EQ(st.collisions, 0);
	for (uint64_t i = 7; i < 16; i++)
		CHECK_EQ(lm__dedup_page(d, 0, i, a + i * PS, &r), 0);
	CHECK_EQ(lm__dedup_page(d, 1, 0, b, &r), 0);

	/* Round 1 may send A3 and A7 again (its set): their round-0 entries are
	 * no sources, A0's and A4's are. Every page looked up holds the bytes
	 * looked up (a later comparison reads its memory). */
	set[0][0] = 1u << 3 | 1u << 7;
	lm__dedup_round(d, 1, sets);
	memcpy(a + 8 * PS, a + 3 * PS, PS);
	CHECK_EQ(lm__dedup_page(d, 0, 8, a + 8 * PS, &r), 0); /* A8 := A3's bytes: no ref */
	memcpy(a + 9 * PS, a, PS);
	CHECK_EQ(lm__dedup_page(d, 0, 9, a + 9 * PS, &r), 1);
	CHECK(ref_is(&r, 0, 0, 0)); /* round 1 names round 0's landing of A0 */
	/* A0 sent again with other bytes: its round-0 entry is gone. */
	memcpy(old0, a, PS);
	fill_page(a, 999, 0x55);
	CHECK_EQ(lm__dedup_page(d, 0, 0, a, &r), 0);
	memcpy(a + 10 * PS, old0, PS);
	CHECK_EQ(lm__dedup_page(d, 0, 10, a + 10 * PS, &r), 0);
	memcpy(a + 11 * PS, a, PS);
	CHECK_EQ(lm__dedup_page(d, 0, 11, a + 11 * PS, &r), 1);
	CHECK(ref_is(&r, 0, 1, 0)); /* A0's round-1 landing */
	/* Sent as a zero or delta page (forget): A4's entry no longer holds. */
	lm__dedup_forget(d, 0, 4);
	memcpy(a + 12 * PS, a + 5 * PS, PS); /* A4's old bytes */
	CHECK_EQ(lm__dedup_page(d, 0, 12, a + 12 * PS, &r), 0);
	/* ... and that lookup indexed A12: the next copy names it. */
	memcpy(a + 13 * PS, a + 5 * PS, PS);
	CHECK_EQ(lm__dedup_page(d, 0, 13, a + 13 * PS, &r), 1);
	CHECK(ref_is(&r, 0, 1, 12 * PS));
	/* Source memory changed under an entry: the hash still matches the
	 * old bytes, the comparison does not: a collision, no ref (the live
	 * recheck covers the opposite case, a source rewritten to equal the
	 * page). */
	memcpy(a + 15 * PS, a + 14 * PS, PS);
	fill_page(a + 14 * PS, 1414, 1);
	CHECK_EQ(lm__dedup_page(d, 0, 15, a + 15 * PS, &r), 0);
	lm__dedup_get_stats(d, &st);
	CHECK_EQ(st.collisions, 1);
	CHECK_EQ(st.hits, 6);
	CHECK(st.bytes > 0);
	/* Round 256: the round's low byte would name two rounds; the table
	 * starts over. */
	lm__dedup_round(d, 256, NULL);
	lm__dedup_get_stats(d, &st);
	CHECK_EQ(st.entries, 0);
	CHECK_EQ(lm__dedup_page(d, 0, 2, a, &r), 0); /* A0's bytes, entry of round 1 gone */
	lm__dedup_free(d);

	/* A constant hash: every lookup compares the first MAX_CAND entries;
	 * a collision is counted, never a ref. 20 distinct pages, then a copy
	 * of each: copies of the first 8 are refs, the others are not found. */
	{
		uint8_t *m = map_anon(40 * PS);
		const uint8_t *mb[1] = {m};
		uint64_t ml[1] = {40 * PS}, coll = 0, hits = 0;
		CHECK(m != NULL);
		for (uint64_t i = 0; i < 20; i++) {
			fill_page(m + i * PS, 500 + i, 7);
			memcpy(m + (20 + i) * PS, m + i * PS, PS);
		}
		CHECK_EQ(lm__dedup_new(&d, mb, ml, 1, PS), 0);
		lm__dedup_set_hash(d, hook_hash);
		H.mode = H_CONST;
		lm__dedup_round(d, 0, NULL);
		for (uint64_t i = 0; i < 20; i++) {
			CHECK_EQ(lm__dedup_page(d, 0, i, m + i * PS, &r), 0);
			coll += i < MAX_CAND ? i : MAX_CAND;
		}
		for (uint64_t i = 0; i < 20; i++) {
			int got = lm__dedup_page(d, 0, 20 + i, m + (20 + i) * PS, &r);
			CHECK_EQ(got, i < MAX_CAND);
			if (got)
				CHECK(ref_is(&r, 0, 0, i * PS));
			coll += i < MAX_CAND ? i : MAX_CAND;
			hits += i < MAX_CAND;
		}
		lm__dedup_get_stats(d, &st);
		CHECK_EQ(st.collisions, coll);
		CHECK_EQ(st.hits, hits);
		CHECK_EQ(st.entries, 20 + (20 - MAX_CAND));
		lm__dedup_free(d);
		H.mode = H_REAL;
		munmap(m, 40 * PS);
	}
	munmap(a, la);
	munmap(b, 6 * PS);
	printf("%-52s %s\n", "content index", lm_test_failures == before ? "ok" : "FAILED");
}

/* ---- 2. one-pass images ------------------------------------------------------------ */

#define SPECIAL 1 /* content 1: its second half is zero (the partial page's twin) */

static void put_content(uint8_t *p, uint64_t id)
{
	if (!id) {
		memset(p, 0, PS);
		return;
	}
	fill_page(p, id, (uint8_t)(id % 16)); /* first byte: 16 groups for H_BYTE */
	if (id == SPECIAL)
		memset(p + PS / 2, 0, PS / 2);
}

/* The index's behaviour on a sequence of lookups (one channel: pages in
 * region order, offsets ascending): entries in insertion order; a lookup
 * compares the first MAX_CAND entries with its hash bits. */
typedef struct model {
	uint64_t *ent_id;
	uint32_t *ent_h;
	uint64_t n, refs, collisions;
} model;

static void model_page(model *M, uint64_t id, const uint8_t *p)
{
	uint32_t h = (uint32_t)(mode_hash(H.mode, p, PS) >> 40);
	int seen = 0;

	for (uint64_t i = 0; i < M->n && seen < MAX_CAND; i++) {
		if (M->ent_h[i] != h)
			continue;
		seen++;
		if (M->ent_id[i] == id) {
			M->refs++;
			return;
		}
		M->collisions++;
	}
	M->ent_id[M->n] = id;
	M->ent_h[M->n++] = h;
}

static void test_onepass(uint32_t nch, uint32_t pp, int mode, int no_dedup)
{
	const uint32_t na = SLOW ? 48 : 96, nb = SLOW ? 40 : 80;
	const uint64_t la = (uint64_t)na * PS, lb = (uint64_t)nb * PS + PS / 2;
	uint64_t *ida = calloc(na, 8), *idb = calloc(nb + 1, 8), next = 2, adist = 0;
	uint64_t zero = 0, nonzero = 0, copies = 0, *distinct_ids = calloc(na + nb + 2, 8);
	uint32_t groups[256] = {0}, max_group = 0, ndist = 0;
	uint8_t *a = map_anon(la), *b = map_anon(lb), *da = map_anon(la), *db = map_anon(lb);
	static const char *const mnames[] = {"real hash", "first-byte hash", "constant hash"};
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	rx_ctx rx = {0};
	pthread_t th;
	lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;
	model M = {0};
	char addr[64], label[128];
	int started = 0, src_rc = -1, before = lm_test_failures, exact;

	snprintf(label, sizeof(label), "one-pass %u ch, %u-page packets, %s%s", nch, pp,
		 mnames[mode], no_dedup ? ", no_dedup" : "");
	CHECK(a && b && da && db && ida && idb && distinct_ids);
	/* Region A: content SPECIAL first, zero pages, new contents, and
	 * copies of the first page of the same packet. */
	for (uint32_t i = 0; i < na; i++) {
		uint32_t first = i - i % pp;
		if (i == 0)
			ida[i] = SPECIAL;
		else if (i % 7 == 3)
			ida[i] = 0;
		else if (i % pp && i % 5 == 1 && ida[first])
			ida[i] = ida[first];
		else
			ida[i] = next++;
	}
	adist = next - 1;
	/* Region B: zero pages, copies of A's contents (spread over packets:
	 * a content's copies land in several), singletons, and the partial
	 * last page: SPECIAL's first half. */
	for (uint32_t j = 0; j < nb; j++) {
		switch (j % 6) {
		case 0: idb[j] = 0; break;
		case 5: idb[j] = next++; break;
		default: idb[j] = 1 + (j * 7) % adist; break;
		}
	}
	for (uint32_t i = 0; i < na; i++)
		put_content(a + (uint64_t)i * PS, ida[i]);
	for (uint32_t j = 0; j < nb; j++)
		put_content(b + (uint64_t)j * PS, idb[j]);
	memcpy(b + (uint64_t)nb * PS, a, PS / 2);
	{
		uint8_t pad[PS] = {0};
		memcpy(pad, b + (uint64_t)nb * PS, PS / 2);
		CHECK(memcmp(pad, a, PS) == 0); /* zero-padded, it equals A's page 0 */
	}

	/* The expected counts. Full pages only: the partial one is normal. */
	H.mode = mode;
	M.ent_id = calloc(na + nb + 2, 8);
	M.ent_h = calloc(na + nb + 2, 4);
	for (int rg = 0; rg < 2; rg++) {
		uint32_t n = rg ? nb : na;
		const uint64_t *id = rg ? idb : ida;
		const uint8_t *base = rg ? b : a;
		for (uint32_t i = 0; i < n; i++) {
			int dup = 0;
			if (!id[i]) {
				zero++;
				continue;
			}
			nonzero++;
			for (uint32_t k = 0; k < ndist; k++)
				dup |= distinct_ids[k] == id[i];
			if (dup) {
				copies++;
			} else {
				distinct_ids[ndist++] = id[i];
				uint32_t g = (uint32_t)(mode_hash(mode, base + (uint64_t)i * PS, PS) >> 40) & 0xff;
				if (++groups[g] > max_group)
					max_group = groups[g];
			}
			model_page(&M, id[i], base + (uint64_t)i * PS);
		}
	}
	nonzero++; /* the partial last page */
	/* The true duplicate count is what the index finds when no hash
	 * bucket holds more than MAX_CAND contents (real hash: 24 bits). */
	exact = mode == H_REAL || max_group <= MAX_CAND;
	if (mode != H_CONST)
		CHECK(exact && M.refs == copies);
	if (verbose)
		printf("  %s: pages %u+%u zero %llu nonzero %llu distinct %u copies %llu model refs %llu collisions %llu\n",
		       label, na, nb + 1, (unsigned long long)zero, (unsigned long long)nonzero, ndist,
		       (unsigned long long)copies, (unsigned long long)M.refs,
		       (unsigned long long)M.collisions);

	rc.timeout_ms = 20000;
	rc.accept_timeout_ms = 20000;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_add_region(r, "A", da, la, 1), 0);
	CHECK_EQ(lm_receiver_add_region(r, "B", db, lb, 1), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	rx.r = r;
	started = pthread_create(&th, NULL, rx_thread, &rx) == 0;
	CHECK(started);

	sc.channels = nch;
	sc.packet_pages = pp;
	sc.timeout_ms = 20000;
	sc.no_dedup = no_dedup;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "A", a, la), 0);
	CHECK_EQ(lm_sender_add_region(s, "B", b, lb), 0);
	s->dedup_hash = hook_hash;
	H.s = s;
	H.wait_timeout = 0;
	if (nch > 1 && !no_dedup) {
		/* B's lookups after A is indexed: its distinct contents, plus the
		 * copies a constant hash does not find (they are indexed too). */
		H.wait_lo = b;
		H.wait_hi = b + lb;
		H.wait_entries = mode == H_CONST ? 1 : adist;
	}
	src_rc = lm_sender_connect(s, addr);
	if (!src_rc)
		src_rc = lm_sender_run(s);
	CHECK_EQ(src_rc, 0);
	if (started)
		pthread_join(th, NULL);
	CHECK_EQ(rx.rc, 0);
	CHECK_EQ(H.wait_timeout, 0);
	H.wait_lo = H.wait_hi = NULL;
	lm_sender_stats(s, &ss);
	lm_receiver_stats(r, &rs);

	CHECK(memcmp(a, da, la) == 0);
	CHECK(memcmp(b, db, lb) == 0);
	CHECK_EQ(ss.duplicate_pages, zero);
	CHECK_EQ(rs.duplicate_pages, zero);
	CHECK_EQ(ss.ref_pages, rs.ref_pages);
	CHECK_EQ(ss.normal_pages, rs.normal_pages);
	CHECK_EQ(ss.normal_pages + ss.ref_pages, nonzero);
	CHECK_EQ(ss.delta_pages, 0);
	CHECK_EQ(ss.ref_saved_bytes, ss.ref_pages * (PS - 16));
	if (no_dedup) {
		CHECK_EQ(ss.ref_pages, 0);
		CHECK_EQ(rs.ref_pages, 0);
		CHECK_EQ(ss.dedup_entries, 0);
		CHECK_EQ(ss.dedup_index_bytes, 0);
		CHECK_EQ(ss.normal_pages, nonzero);
	} else if (nch == 1) {
		/* One channel: the model is exact, collisions included. */
		CHECK_EQ(ss.ref_pages, M.refs);
		CHECK_EQ(ss.dedup_entries, M.n);
		CHECK_EQ(ss.dedup_collisions, M.collisions);
		CHECK(ss.dedup_index_bytes > 0);
	} else if (exact) {
		CHECK_EQ(ss.ref_pages, copies);
		CHECK_EQ(ss.dedup_entries, ndist);
		if (mode == H_BYTE)
			CHECK(ss.dedup_collisions > 0);
	} else {
		CHECK(ss.ref_pages <= copies);
		CHECK(ss.ref_pages > 0);
		CHECK(ss.dedup_collisions > 0);
	}
	if (!no_dedup && mode == H_CONST)
		CHECK(ss.dedup_collisions > 0);
	/* The receiver's records: B's copies landed as refs in round 0, the
	 * partial last page as a normal page. */
	if (!no_dedup && rx.rc == 0) {
		const uint32_t *lb_rec = r->by_id[1]->landed;
		uint64_t refs_b = 0;
		for (uint32_t j = 0; j < nb; j++)
			refs_b += lb_rec[j] == (1u << 2 | LM__LANDED_REF);
		CHECK_EQ(lb_rec[nb], 1u << 2 | LM__LANDED_NORMAL);
		if (nch == 1 || exact)
			CHECK(refs_b > 0);
	}
	printf("%-52s ref %llu normal %llu zero %llu collisions %llu%s\n", label,
	       (unsigned long long)ss.ref_pages, (unsigned long long)ss.normal_pages,
	       (unsigned long long)ss.duplicate_pages, (unsigned long long)ss.dedup_collisions,
	       lm_test_failures == before ? "" : "  FAILED");
	if (lm_test_failures != before)
		fprintf(stderr, "FAILED: %s: sender %d \"%s\" receiver %d \"%s\"\n", label, src_rc,
			lm_sender_errmsg(s), rx.rc, lm_receiver_errmsg(r));
	lm_sender_free(s);
	lm_receiver_free(r);
	H.s = NULL;
	H.mode = H_REAL;
	munmap(a, la);
	munmap(b, lb);
	munmap(da, la);
	munmap(db, lb);
	free(ida);
	free(idb);
	free(distinct_ids);
	free(M.ent_id);
	free(M.ent_h);
}

/* ---- live: shared parts ------------------------------------------------------------- */

#define NRG 2
static const char *const rg_names[NRG] = {"ram", "aux"};

typedef struct lv {
	uint8_t *base[NRG];
	uint64_t len[NRG], pages[NRG];
	uint64_t *dirty[NRG]; /* callback source: pages written (atomic) */
	int cb;
	/* The workload thread (part 4). */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int paused, stop, inflight, running;
	pthread_t th;
	uint64_t seed, writes, copies, resrc, counter;
	uint32_t stable; /* ram pages below this are never written by the thread */
	/* Callbacks. */
	int pause_calls, resume_calls, bad;
	void (*between)(struct lv *L, uint32_t ended); /* after round `ended` ended */
} lv;

static lv *cur; /* the hooks' view of the running migration */

static uint8_t *pg_ptr(lv *L, uint32_t rg, uint64_t pg)
{
	return L->base[rg] + pg * PS;
}

/* The workload's write: memory first, then the dirty bit (a sync that
 * clears the bit sees the write). */
static void wr_page(lv *L, uint32_t rg, uint64_t pg, const uint8_t *src)
{
	memmove(pg_ptr(L, rg, pg), src, PS);
	if (L->cb)
		__atomic_fetch_or(&L->dirty[rg][pg / 64], 1ull << (pg % 64), __ATOMIC_SEQ_CST);
}

static void wr_new(lv *L, uint32_t rg, uint64_t pg, uint8_t b0)
{
	uint8_t buf[PS];

	fill_page(buf, ++L->counter * 1000003ull + 77, b0);
	wr_page(L, rg, pg, buf);
}

static int cb_dirty(void *user, uint32_t region, uint64_t *bm, uint64_t pages)
{
	lv *L = user;

	if (region >= NRG || pages != L->pages[region]) {
		L->bad++;
		return LM_EINVAL;
	}
	for (uint64_t i = 0; i < (pages + 63) / 64; i++)
		bm[i] = __atomic_exchange_n(&L->dirty[region][i], 0, __ATOMIC_SEQ_CST);
	return 0;
}

static int cb_pause(void *user)
{
	lv *L = user;

	L->pause_calls++;
	pthread_mutex_lock(&L->mu);
	L->paused = 1;
	while (L->inflight)
		pthread_cond_wait(&L->cv, &L->mu);
	pthread_mutex_unlock(&L->mu);
	return 0;
}

static void cb_resume(void *user)
{
	lv *L = user;

	L->resume_calls++;
	pthread_mutex_lock(&L->mu);
	L->paused = 0;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
}

static void cb_progress(void *user, const lm_stats *st)
{
	lv *L = user;

	if (verbose)
		printf("      round %u: dirty %llu expected %llu ms ref %llu normal %llu delta %llu\n",
		       st->rounds, (unsigned long long)st->dirty_pages,
		       (unsigned long long)st->expected_downtime_ms, (unsigned long long)st->ref_pages,
		       (unsigned long long)st->normal_pages, (unsigned long long)st->delta_pages);
	if (L->between) /* round (rounds - 1) just ended, its sync read */
		L->between(L, st->rounds - 1);
}

static int lv_init(lv *L, uint64_t pages0, uint64_t pages1, int cb)
{
	memset(L, 0, sizeof(*L));
	L->cb = cb;
	L->pages[0] = pages0;
	L->pages[1] = pages1;
	pthread_mutex_init(&L->mu, NULL);
	pthread_cond_init(&L->cv, NULL);
	for (int i = 0; i < NRG; i++) {
		L->len[i] = L->pages[i] * PS;
		L->base[i] = map_anon(L->len[i]);
		L->dirty[i] = calloc(L->pages[i] / 64 + 2, 8);
		if (!L->base[i] || !L->dirty[i])
			return -1;
		for (uint64_t pg = 0; pg < L->pages[i]; pg++) /* first bytes below 0x80 */
			fill_page(pg_ptr(L, (uint32_t)i, pg), 1 + pg + 100000ull * (uint64_t)i,
				  (uint8_t)(0x10 + (pg * 7 + (uint64_t)i) % 0x60));
	}
	return 0;
}

static void lv_free(lv *L)
{
	for (int i = 0; i < NRG; i++) {
		munmap(L->base[i], L->len[i]);
		free(L->dirty[i]);
	}
	pthread_mutex_destroy(&L->mu);
	pthread_cond_destroy(&L->cv);
}

typedef struct lrun {
	lm_sender *s;
	lm_receiver *r;
	lm_stats ss, rs;
	int rc, rx_rc;
	uint64_t refs_resent;
} lrun;

/* Receiver thread (alloc_regions), sender, connect, migrate: max_rounds
 * pre-copy rounds exactly (a 1 ms downtime limit at max_bandwidth is never
 * met while pages stay dirty; at the limit it switches over). */
static void lv_migrate(lv *L, lrun *R, lm_codec_id codec, lm_dirty_source src, uint32_t nch,
		       uint32_t pp, uint32_t max_rounds, uint64_t bw, int use_hook,
		       void (*start)(lv *L))
{
	lm_receiver_config rc;
	lm_sender_config sc;
	lm_live_config lc;
	rx_ctx rx = {0};
	pthread_t th;
	char addr[64];
	int started;

	memset(R, 0, sizeof(*R));
	memset(&rc, 0, sizeof(rc));
	rc.size = sizeof(rc);
	rc.timeout_ms = 20000;
	rc.accept_timeout_ms = 20000;
	rc.alloc_regions = 1;
	CHECK_EQ(lm_receiver_new(&R->r, &rc), 0);
	CHECK_EQ(lm_receiver_listen(R->r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(R->r));
	rx.r = R->r;
	rx.rc = -1;
	started = pthread_create(&th, NULL, rx_thread, &rx) == 0;
	CHECK(started);

	memset(&sc, 0, sizeof(sc));
	sc.size = sizeof(sc);
	sc.codec = codec;
	sc.channels = nch;
	sc.packet_pages = pp;
	sc.timeout_ms = 20000;
	CHECK_EQ(lm_sender_new(&R->s, &sc), 0);
	for (int i = 0; i < NRG; i++)
		CHECK_EQ(lm_sender_add_region(R->s, rg_names[i], L->base[i], L->len[i]), 0);
	if (use_hook)
		R->s->dedup_hash = hook_hash;
	H.s = R->s;
	cur = L;
	memset(&lc, 0, sizeof(lc));
	lc.size = sizeof(lc);
	lc.dirty = src;
	lc.dirty_log = src == LM_DIRTY_CALLBACK ? cb_dirty : NULL;
	lc.pause = cb_pause;
	lc.resume = cb_resume;
	lc.progress = cb_progress;
	lc.user = L;
	lc.downtime_limit_ms = 1;
	lc.max_bandwidth = bw;
	lc.max_rounds = max_rounds;
	lc.on_limit = LM_LIMIT_SWITCHOVER;
	R->rc = lm_sender_connect(R->s, addr);
	CHECK_EQ(R->rc, 0);
	if (!R->rc) {
		if (start)
			start(L);
		R->rc = lm_sender_migrate(R->s, &lc);
	}
	/* The workload stays paused from here on (migrate left it so). */
	cb_pause(L);
	L->pause_calls--;
	R->ss.size = sizeof(R->ss);
	lm_sender_stats(R->s, &R->ss);
	R->refs_resent = R->s->refs_resent;
	if (started)
		pthread_join(th, NULL);
	R->rx_rc = rx.rc;
	R->rs.size = sizeof(R->rs);
	lm_receiver_stats(R->r, &R->rs);
	cur = NULL;
}

/* Destination == source; the migration completed, paused once. */
static void lv_check(lv *L, lrun *R, uint32_t max_rounds, int exact_rounds, const char *label)
{
	CHECK_EQ(R->rc, 0);
	CHECK_EQ(R->rx_rc, 0);
	CHECK_EQ(L->bad, 0);
	CHECK_EQ(L->pause_calls, 1);
	CHECK_EQ(L->resume_calls, 0);
	CHECK_EQ(R->ss.status, LM_STATUS_COMPLETED);
	if (exact_rounds)
		CHECK_EQ(R->ss.rounds, max_rounds + 1);
	CHECK(R->ss.rounds >= 2 && R->ss.rounds <= max_rounds + 1);
	CHECK_EQ(R->rs.rounds, R->ss.rounds);
	CHECK_EQ(R->ss.ref_pages, R->rs.ref_pages);
	CHECK_EQ(R->ss.normal_pages, R->rs.normal_pages);
	CHECK_EQ(R->ss.duplicate_pages, R->rs.duplicate_pages);
	CHECK_EQ(R->ss.delta_pages, R->rs.delta_pages);
	for (int i = 0; i < NRG; i++) {
		void *base = NULL;
		uint64_t len = 0, diff = 0, first = UINT64_MAX;
		if (lm_receiver_region(R->r, rg_names[i], &base, &len) || len != L->len[i]) {
			CHECK(0);
			continue;
		}
		for (uint64_t pg = 0; pg < L->pages[i]; pg++)
			if (memcmp((uint8_t *)base + pg * PS, pg_ptr(L, (uint32_t)i, pg), PS)) {
				diff++;
				if (first == UINT64_MAX)
					first = pg;
			}
		CHECK_EQ(diff, 0);
		if (diff)
			fprintf(stderr, "%s: region %s: %llu pages differ, first %llu\n", label,
				rg_names[i], (unsigned long long)diff, (unsigned long long)first);
	}
}

/* ---- 3. live: deterministic scenarios ---------------------------------------------- */

/* Pages of "ram" (64 pages) and "aux" (16), one channel, 4-page packets, the
 * first-byte hash: initial first bytes are below 0x80, each scenario's
 * contents carry its own first byte 0x80 + k, so its pages are each other's
 * candidates (and collide). s->round: 0 is the first round; between(k) runs
 * after round k's sync, so its writes fall in round k + 1 and are sent in
 * round k + 2. Rounds 0..4 are pre-copy, 5 the switchover. */
enum {
	A5 = 3, B5 = 40, C5_AUX = 5,     /* refs across rounds */
	XB = 12, YB = 44,                /* same-round source rewritten around its send */
	PC = 20, QC = 52,                /* earlier round's source rewritten to the ref's bytes */
	PD = 8, XD = 30, ZD = 60,        /* source := a not-yet-sent page's bytes, which changes */
	PE = 9, XE = 31, WE = 32,        /* ... and the ref page rewritten to the source's old bytes */
	PF = 16, YF = 56,                /* a ref to a page that landed as a delta */
	FILL0 = 8,                       /* aux 8..15: filler, dirty every round */
};

static struct {
	uint8_t cx[PS], dx[PS], cq[PS], cxd[PS], cxe[PS], cpe[PS];
	int fired_b1, fired_b2, fired_c, fired_d, fired_e1, fired_e2;
	uint32_t last_round, last_precopy;
} sc_;

static int is_page(const uint8_t *p, uint32_t rg, uint64_t pg)
{
	return cur && p == pg_ptr(cur, rg, pg);
}

static uint32_t cur_round(void)
{
	return H.s->round; /* the channel's packet round (ordered by its job post) */
}

static void sc_pre(const uint8_t *p)
{
	lv *L = cur;

	if (!L)
		return;
	/* Every pre-copy round dirties three filler pages as it starts (aux
	 * 8..15, none of them twice in a row): no round ends clean, so the
	 * 1 ms limit is never met before max_rounds. Never in the final
	 * round: the workload is paused then. */
	if (cur_round() != sc_.last_round && cur_round() <= sc_.last_precopy) {
		sc_.last_round = cur_round();
		for (uint32_t k = 0; k < 3; k++)
			wr_new(L, 1, FILL0 + (cur_round() * 3 + k) % 8, 0x20);
	}
	if (cur_round() == 2 && is_page(p, 0, YB) && !sc_.fired_b2++)
		wr_page(L, 0, XB, sc_.cx);  /* X back to the bytes its entry hashed */
	if (cur_round() == 2 && is_page(p, 0, QC) && !sc_.fired_c++)
		wr_page(L, 0, PC, sc_.cq);  /* P (round 0's entry) := Q's bytes */
	if (cur_round() == 2 && is_page(p, 0, XD) && !sc_.fired_d++) {
		wr_page(L, 0, PD, sc_.cxd); /* P, sent, := X's bytes (X unsent) */
		wr_new(L, 0, XD, 0x8a);     /* and X changes */
	}
	if (cur_round() == 2 && is_page(p, 0, XE) && !sc_.fired_e1++)
		wr_page(L, 0, PE, sc_.cxe); /* P, sent, := X's bytes: X refs P */
	if (cur_round() == 2 && is_page(p, 0, WE) && !sc_.fired_e2++)
		wr_page(L, 0, XE, sc_.cpe); /* X := P's old bytes (the destination's) */
}

static void sc_post(const uint8_t *p)
{
	lv *L = cur;

	if (L && cur_round() == 2 && is_page(p, 0, XB) && !sc_.fired_b1++)
		wr_page(L, 0, XB, sc_.dx);  /* hashed as cx, sent as dx */
}

static void sc_between(lv *L, uint32_t ended)
{
	uint8_t buf[PS];

	if (ended == 0) {
		wr_page(L, 0, XB, sc_.cx);
		wr_page(L, 0, YB, sc_.cx);
		wr_page(L, 0, QC, sc_.cq);
		fill_page(buf, 4001, 0x89);
		wr_page(L, 0, PD, buf);
		wr_page(L, 0, XD, sc_.cxd);
		wr_page(L, 0, ZD, sc_.cxd);
		wr_page(L, 0, PE, sc_.cpe);
		wr_page(L, 0, XE, sc_.cxe);
		wr_new(L, 0, WE, 0x30);
		/* PF: a few bytes change: a delta page in round 2. */
		memcpy(buf, pg_ptr(L, 0, PF), PS);
		buf[100] ^= 0x5a;
		buf[2000] ^= 0xa5;
		wr_page(L, 0, PF, buf);
	}
	if (ended == 1) {
		wr_page(L, 0, B5, pg_ptr(L, 0, A5));     /* a copy of a page untouched since round 0 */
		wr_page(L, 1, C5_AUX, pg_ptr(L, 0, A5)); /* ... in another region */
		wr_page(L, 0, YF, pg_ptr(L, 0, PF));     /* a copy of PF as sent in round 2 */
	}
}

static void test_scenarios(lm_codec_id codec, lm_dirty_source src)
{
	const uint32_t rounds = 5;
	char label[96];
	lv L;
	lrun R;
	int before = lm_test_failures;

	snprintf(label, sizeof(label), "live scenarios %s %s", lm_codec_name(codec),
		 src == LM_DIRTY_UFFD_WP ? "uffd-wp" : "callback");
	CHECK_EQ(lv_init(&L, 64, 16, src == LM_DIRTY_CALLBACK), 0);
	memset(&sc_, 0, sizeof(sc_));
	sc_.last_round = UINT32_MAX;
	sc_.last_precopy = rounds - 1;
	fill_page(sc_.cx, 3001, 0x86);
	fill_page(sc_.dx, 3002, 0x87);
	fill_page(sc_.cq, 3003, 0x88);
	fill_page(sc_.cxd, 3004, 0x89);
	fill_page(sc_.cpe, 3005, 0x8b);
	fill_page(sc_.cxe, 3006, 0x8b);
	/* PC starts in QC's group, A5 and PF in groups of their own. */
	fill_page(pg_ptr(&L, 0, PC), 3007, 0x88);
	fill_page(pg_ptr(&L, 0, A5), 3008, 0x85);
	fill_page(pg_ptr(&L, 0, PF), 3009, 0x8c);
	L.between = sc_between;
	H.mode = H_BYTE;
	H.pre = sc_pre;
	H.post = sc_post;
	lv_migrate(&L, &R, codec, src, 1, 4, rounds, 4 * MIB, 1, NULL);
	H.pre = NULL;
	H.post = NULL;
	H.mode = H_REAL;
	lv_check(&L, &R, rounds, 1, label);
	/* Every trigger fired once, in round 2. */
	CHECK_EQ(sc_.fired_b1, 1);
	CHECK_EQ(sc_.fired_b2, 1);
	CHECK_EQ(sc_.fired_c, 1);
	CHECK_EQ(sc_.fired_d, 1);
	CHECK_EQ(sc_.fired_e1, 1);
	CHECK_EQ(sc_.fired_e2, 1);
	/* Y (B), Q (C) and Z (D) were refs to sources written during round 2,
	 * untouched themselves: only the recheck sent them again. */
	CHECK(R.refs_resent >= 3);
	if (R.rc == 0 && R.rx_rc == 0) {
		const uint32_t *ram = R.r->by_id[0]->landed, *aux = R.r->by_id[1]->landed;
		/* Round 3's refs named round 0's landing of A5 (it never landed
		 * again), from ram and from aux. */
		CHECK_EQ(ram[A5], 1u << 2 | LM__LANDED_NORMAL);
		CHECK_EQ(ram[B5], 4u << 2 | LM__LANDED_REF);
		CHECK_EQ(aux[C5_AUX], 4u << 2 | LM__LANDED_REF);
		/* PF landed as a delta in round 2; YF, a ref to it, in round 3. */
		CHECK_EQ(ram[PF], 3u << 2 | LM__LANDED_DELTA);
		CHECK_EQ(ram[YF], 4u << 2 | LM__LANDED_REF);
		/* The recheck's pages went again in round 3 (as refs to their
		 * sources' new landing, or in full). */
		CHECK_EQ(ram[YB] >> 2, 4);
		CHECK_EQ(ram[QC] >> 2, 4);
		CHECK_EQ(ram[ZD] >> 2, 4);
		CHECK_EQ(ram[XE] >> 2, 4);
	}
	printf("%-52s ref %llu resent %llu delta %llu collisions %llu%s\n", label,
	       (unsigned long long)R.ss.ref_pages, (unsigned long long)R.refs_resent,
	       (unsigned long long)R.ss.delta_pages, (unsigned long long)R.ss.dedup_collisions,
	       lm_test_failures == before ? "" : "  FAILED");
	if (lm_test_failures != before)
		fprintf(stderr, "FAILED: %s: sender %d \"%s\" receiver %d \"%s\"\n", label, R.rc,
			lm_sender_errmsg(R.s), R.rx_rc, lm_receiver_errmsg(R.r));
	lm_sender_free(R.s);
	lm_receiver_free(R.r);
	H.s = NULL;
	lv_free(&L);
}

/* ---- 4. live: a workload that makes duplicates --------------------------------------- */

static void *wl_main(void *arg)
{
	lv *L = arg;
	uint64_t recent[8] = {0};
	uint8_t buf[PS];

	for (;;) {
		pthread_mutex_lock(&L->mu);
		while (L->paused && !L->stop)
			pthread_cond_wait(&L->cv, &L->mu);
		if (L->stop) {
			pthread_mutex_unlock(&L->mu);
			break;
		}
		L->inflight++;
		pthread_mutex_unlock(&L->mu);

		uint64_t op = xs(&L->seed) % 16, n0 = L->pages[0];
		uint32_t rg = (uint32_t)(xs(&L->seed) % 4 == 0);
		uint64_t dst = rg ? xs(&L->seed) % L->pages[1]
				  : L->stable + xs(&L->seed) % (n0 - L->stable);
		if (op < 5) { /* new content */
			wr_new(L, rg, dst, (uint8_t)(xs(&L->seed) & 0xff));
		} else if (op < 10) { /* a copy of another page, maybe a stable one */
			uint32_t srg = (uint32_t)(xs(&L->seed) % 4 == 0);
			uint64_t sp = xs(&L->seed) % L->pages[srg];
			if (srg != rg || sp != dst) {
				memcpy(buf, pg_ptr(L, srg, sp), PS);
				wr_page(L, rg, dst, buf);
				if (!srg && sp >= L->stable)
					recent[L->copies % 8] = sp;
				L->copies++;
			}
		} else if (op < 14) { /* rewrite a recent copy source */
			uint64_t sp = recent[xs(&L->seed) % 8];
			if (sp >= L->stable) {
				if (op & 1) {
					wr_new(L, 0, sp, 0x40);
				} else {
					memcpy(buf, pg_ptr(L, rg, dst), PS);
					wr_page(L, 0, sp, buf); /* the source := another page's bytes */
				}
				L->resrc++;
			}
		} else { /* zero */
			memset(buf, 0, PS);
			wr_page(L, rg, dst, buf);
		}

		pthread_mutex_lock(&L->mu);
		L->inflight--;
		L->writes++;
		if (!L->inflight)
			pthread_cond_broadcast(&L->cv);
		pthread_mutex_unlock(&L->mu);
		sleep_us(SLOW ? 300 : 100);
	}
	return NULL;
}

static void wl_start(lv *L)
{
	L->running = pthread_create(&L->th, NULL, wl_main, L) == 0;
	CHECK(L->running);
}

/* Between rounds, sure duplicates whatever the thread does: a stable page
 * copied into pages the thread never writes (refs to round 0's landing). */
static void wl_between(lv *L, uint32_t ended)
{
	if (ended < 4)
		wr_page(L, 0, L->stable - 1 - ended, pg_ptr(L, 0, ended));
}

static void test_workload(lm_codec_id codec, lm_dirty_source src, uint32_t nch)
{
	const uint32_t rounds = 6;
	char label[96];
	lv L;
	lrun R;
	int before = lm_test_failures;

	snprintf(label, sizeof(label), "live workload %s %s %u ch", lm_codec_name(codec),
		 src == LM_DIRTY_UFFD_WP ? "uffd-wp" : "callback", nch);
	CHECK_EQ(lv_init(&L, SLOW ? 128 : 256, 32, src == LM_DIRTY_CALLBACK), 0);
	L.seed = 0x5eed0000ull + codec * 31 + (uint64_t)src * 7 + nch;
	L.stable = 16;
	L.between = wl_between;
	/* Duplicates from the start, inside round 0's first packet (pages
	 * 0..7), which one channel plans alone: 4 sure refs. */
	for (uint64_t pg = 4; pg < 8; pg++)
		memcpy(pg_ptr(&L, 0, pg), pg_ptr(&L, 0, pg - 4), PS);
	lv_migrate(&L, &R, codec, src, nch, 8, rounds, SLOW ? 4 * MIB : 8 * MIB, 0, wl_start);
	pthread_mutex_lock(&L.mu);
	L.stop = 1;
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
	if (L.running)
		pthread_join(L.th, NULL);
	lv_check(&L, &R, rounds, 0, label);
	/* Round 0's copies, and one per pre-copy round's end (up to 4), sent
	 * two rounds later or in the final one (a round of the thread's
	 * writes may end without any, so the round count is not fixed). */
	CHECK(R.ss.ref_pages >= 4 + (R.ss.rounds - 1 < 4 ? R.ss.rounds - 1 : 4));
	printf("%-52s ref %llu resent %llu delta %llu writes %llu copies %llu%s\n", label,
	       (unsigned long long)R.ss.ref_pages, (unsigned long long)R.refs_resent,
	       (unsigned long long)R.ss.delta_pages, (unsigned long long)L.writes,
	       (unsigned long long)L.copies, lm_test_failures == before ? "" : "  FAILED");
	if (lm_test_failures != before)
		fprintf(stderr, "FAILED: %s: sender %d \"%s\" receiver %d \"%s\"\n", label, R.rc,
			lm_sender_errmsg(R.s), R.rx_rc, lm_receiver_errmsg(R.r));
	lm_sender_free(R.s);
	lm_receiver_free(R.r);
	H.s = NULL;
	lv_free(&L);
}

int main(void)
{
	static const lm_codec_id codecs[] = {LM_CODEC_NONE, LM_CODEC_DEFLATE, LM_CODEC_ZSTD,
					     LM_CODEC_LZ4, LM_CODEC_ZLIB};
	static const uint32_t chans[] = {1, 2, 4}, pps[] = {1, 3, 8, 128};
	char why[256];
	uint64_t t0 = now_us();
	int only = getenv("LM_TEST_ONLY") ? atoi(getenv("LM_TEST_ONLY")) : 0;
	int have_uffd = lm_dirty_probe(why, sizeof(why)) == 0;

	verbose = getenv("LM_TEST_VERBOSE") && atoi(getenv("LM_TEST_VERBOSE")) > 0;
	if (!only || only == 1)
		test_index();
	if (!only || only == 2) {
		for (unsigned c = 0; c < 3; c++)
			for (unsigned p = 0; p < 4; p++)
				test_onepass(chans[c], pps[p], H_REAL, 0);
		for (unsigned c = 0; c < 3; c++) {
			test_onepass(chans[c], 3, H_BYTE, 0);
			test_onepass(chans[c], 8, H_CONST, 0);
			test_onepass(chans[c], 8, H_REAL, 1);
		}
	}
	if (!have_uffd)
		printf("SKIP: uffd-wp live cases: %s\n", why);
	for (unsigned c = 0; (!only || only == 3) && c < 5; c++) {
		if (have_uffd)
			test_scenarios(codecs[c], LM_DIRTY_UFFD_WP);
		test_scenarios(codecs[c], LM_DIRTY_CALLBACK);
	}
	for (unsigned c = 0; (!only || only == 4) && c < 5; c++) {
		if (have_uffd)
			test_workload(codecs[c], LM_DIRTY_UFFD_WP, 2);
		test_workload(codecs[c], LM_DIRTY_CALLBACK, c % 2 ? 4 : 2);
	}
	printf("total %.1f s\n", (double)(now_us() - t0) / 1e6);
	TEST_DONE("test_dedup");
}
