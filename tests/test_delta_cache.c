/*
 * The sender's cache of last-sent page versions (src/delta_cache.h):
 * admission, a page's own slot reused, a new slot while the old version is
 * pinned, CLOCK eviction with second chances, pinned entries never evicted
 * or reused, drop, capacity 0, stats, a random model check of the hash map,
 * and channel threads hammering it on disjoint gpages (run it under TSan).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "delta_cache.h"

#define PS 4096u

/* The bytes a page's version holds: derived from gpage and round. */
static void pattern(uint8_t *p, uint64_t gpage, uint32_t round)
{
	uint64_t w = gpage * 0x9e3779b97f4a7c15ull ^ ((uint64_t)round << 32 | round);

	for (uint32_t i = 0; i < PS; i += 8) {
		w = w * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(p + i, &w, 8);
	}
}

static int is_pattern(const uint8_t *p, uint64_t gpage, uint32_t round)
{
	uint8_t want[PS];

	pattern(want, gpage, round);
	return memcmp(p, want, PS) == 0;
}

/* Stores gpage's version of round (pattern) and releases it; 0 if not admitted. */
static int put(lm__dcache *c, uint64_t gpage, uint32_t round)
{
	uint8_t *slot;
	lm__dcache_ref *w = lm__dcache_store(c, gpage, round, &slot);

	if (!w) {
		CHECK(slot == NULL);
		return 0;
	}
	pattern(slot, gpage, round);
	lm__dcache_release(c, w);
	return 1;
}

/* 1 if gpage is held with the version of round (checked), 0 if absent. */
static int has(lm__dcache *c, uint64_t gpage, uint32_t round)
{
	const uint8_t *old = (const uint8_t *)1;
	uint32_t r = 12345;
	lm__dcache_ref *o = lm__dcache_acquire(c, gpage, &old, &r);

	if (!o) {
		CHECK(old == NULL);
		return 0;
	}
	CHECK_EQ(r, round);
	CHECK(is_pattern(old, gpage, round));
	lm__dcache_release(c, o);
	return 1;
}

static struct lm__dcache_stats stats(lm__dcache *c)
{
	struct lm__dcache_stats s;

	lm__dcache_stats(c, &s);
	return s;
}

static void test_args(void)
{
	lm__dcache *c = (lm__dcache *)1;

	CHECK_EQ(lm__dcache_new(&c, 1 << 20, 1000), LM_EINVAL);
	CHECK(c == NULL);
	CHECK_EQ(lm__dcache_new(&c, 1 << 20, 2048), LM_EINVAL);
	CHECK_EQ(lm__dcache_new(&c, 1 << 20, 131072), LM_EINVAL);
	lm__dcache_free(NULL);
	lm__dcache_release(NULL, NULL);
}

static void test_disabled(void)
{
	lm__dcache *c;
	uint8_t *slot = (uint8_t *)1;

	for (uint64_t bytes = 0; bytes < PS; bytes += PS - 1) {
		CHECK_EQ(lm__dcache_new(&c, bytes, PS), 0);
		CHECK(lm__dcache_store(c, 7, 1, &slot) == NULL);
		CHECK(slot == NULL);
		CHECK_EQ(has(c, 7, 1), 0);
		lm__dcache_drop(c, 7);
		CHECK_EQ(stats(c).bytes, 0);
		CHECK_EQ(stats(c).entries, 0);
		CHECK_EQ(stats(c).misses, 1);
		lm__dcache_free(c);
	}
}

static void test_admit_reuse(void)
{
	lm__dcache *c;
	const uint8_t *old;
	uint8_t *s1, *s2, *s3;
	uint32_t r;
	lm__dcache_ref *w, *o;

	CHECK_EQ(lm__dcache_new(&c, 4 * PS + 100, PS), 0);
	CHECK_EQ(stats(c).bytes, 4 * PS);
	CHECK_EQ(has(c, 10, 1), 0);
	w = lm__dcache_store(c, 10, 1, &s1);
	CHECK(w != NULL);
	pattern(s1, 10, 1);
	lm__dcache_release(c, w);
	CHECK_EQ(has(c, 10, 1), 1);
	CHECK_EQ(stats(c).entries, 1);

	/* Nobody reads the old version: the page's own slot is reused. */
	w = lm__dcache_store(c, 10, 2, &s2);
	CHECK(s2 == s1);
	pattern(s2, 10, 2);
	lm__dcache_release(c, w);
	CHECK_EQ(has(c, 10, 2), 1);

	/* The old version pinned for a delta: the new one goes elsewhere, the
	 * old stays readable until released, then its slot is free again. */
	o = lm__dcache_acquire(c, 10, &old, &r);
	CHECK(o != NULL && old == s1 && r == 2);
	w = lm__dcache_store(c, 10, 3, &s3);
	CHECK(w != NULL && s3 != s1);
	pattern(s3, 10, 3);
	CHECK(is_pattern(old, 10, 2));
	CHECK_EQ(stats(c).entries, 1);
	lm__dcache_release(c, o);
	lm__dcache_release(c, w);
	CHECK_EQ(has(c, 10, 3), 1);
	/* Four slots, one taken: three more gpages fit without eviction. */
	for (uint64_t g = 20; g < 23; g++)
		CHECK_EQ(put(c, g, 1), 1);
	CHECK_EQ(stats(c).evictions, 0);
	CHECK_EQ(stats(c).entries, 4);
	lm__dcache_free(c);
}

static void test_evict(void)
{
	lm__dcache *c;
	const uint8_t *old;
	uint8_t *slot;
	uint32_t r;
	lm__dcache_ref *o, *o2, *w;
	struct lm__dcache_stats st;

	CHECK_EQ(lm__dcache_new(&c, 4 * PS, PS), 0);
	for (uint64_t g = 0; g < 4; g++)
		CHECK_EQ(put(c, g, 1), 1);
	/* Deltas made from 0 and 1: second chances; 2 goes first. */
	CHECK_EQ(has(c, 0, 1), 1);
	CHECK_EQ(has(c, 1, 1), 1);
	CHECK_EQ(put(c, 4, 1), 1);
	CHECK_EQ(stats(c).evictions, 1);
	CHECK_EQ(has(c, 2, 1), 0);
	CHECK_EQ(has(c, 0, 1) + has(c, 1, 1) + has(c, 3, 1) + has(c, 4, 1), 4);

	/* Pinned entries are never evicted, however old: pin 0, 1, 3. */
	o = lm__dcache_acquire(c, 0, &old, &r);
	o2 = lm__dcache_acquire(c, 1, &old, &r);
	w = lm__dcache_acquire(c, 3, &old, &r);
	CHECK(o && o2 && w);
	CHECK_EQ(put(c, 5, 1), 1); /* evicts 4, the only unpinned one */
	CHECK_EQ(has(c, 4, 1), 0);
	/* Now hold 5 as well: every slot pinned, nothing admitted. */
	{
		lm__dcache_ref *o5 = lm__dcache_acquire(c, 5, &old, &r);
		CHECK(o5 != NULL);
		CHECK(lm__dcache_store(c, 6, 1, &slot) == NULL && slot == NULL);
		/* 5 itself needs a second slot while its old version is
		 * pinned: not admitted, so 5 is forgotten, its old version
		 * readable until released. */
		CHECK(lm__dcache_store(c, 5, 2, &slot) == NULL);
		CHECK(is_pattern(old, 5, 1));
		lm__dcache_release(c, o5);
	}
	CHECK_EQ(has(c, 5, 1), 0);
	st = stats(c);
	CHECK_EQ(st.entries, 3);
	/* 5's slot was freed at release: 6 is admitted without eviction. */
	CHECK_EQ(put(c, 6, 1), 1);
	CHECK_EQ(stats(c).evictions, st.evictions);
	CHECK_EQ(has(c, 0, 1) + has(c, 1, 1) + has(c, 3, 1) + has(c, 6, 1), 4);
	lm__dcache_release(c, o);
	lm__dcache_release(c, o2);
	lm__dcache_release(c, w);
	lm__dcache_free(c);
}

static void test_drop(void)
{
	lm__dcache *c;
	const uint8_t *old;
	uint32_t r;
	lm__dcache_ref *o;

	CHECK_EQ(lm__dcache_new(&c, 2 * PS, PS), 0);
	CHECK_EQ(put(c, 1, 1), 1);
	CHECK_EQ(put(c, 2, 1), 1);
	lm__dcache_drop(c, 1);
	lm__dcache_drop(c, 99); /* absent: nothing */
	CHECK_EQ(has(c, 1, 1), 0);
	CHECK_EQ(has(c, 2, 1), 1);
	CHECK_EQ(stats(c).entries, 1);
	/* Dropped while pinned: readable until released, then the slot is free. */
	o = lm__dcache_acquire(c, 2, &old, &r);
	lm__dcache_drop(c, 2);
	CHECK_EQ(stats(c).entries, 0);
	CHECK(is_pattern(old, 2, 1));
	CHECK_EQ(put(c, 3, 1), 1); /* the slot 1 had */
	lm__dcache_release(c, o);
	CHECK_EQ(put(c, 4, 1), 1); /* the slot 2 had */
	CHECK_EQ(stats(c).evictions, 0);
	CHECK_EQ(stats(c).entries, 2);
	lm__dcache_free(c);
}

/* Random operations against a model: a hit always shows the version last
 * stored (never dropped since), entries stay within the slots, and the
 * stats add up. gpages collide on purpose (multiples of 2^32, neighbours). */
static void test_model(void)
{
	enum { NG = 300, SLOTS = 37 };
	static uint32_t model[NG]; /* round last stored + 1, 0 = unknown */
	uint64_t rng = 88172645463325252ull, hits = 0, misses = 0;
	lm__dcache *c;

	CHECK_EQ(lm__dcache_new(&c, SLOTS * PS, PS), 0);
	for (uint32_t it = 0; it < 200000; it++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		uint32_t k = (uint32_t)(rng % NG), op = (uint32_t)(rng >> 32) % 8;
		uint64_t g = (k % 3 == 0) ? (uint64_t)k << 32 : k;

		if (op == 0) {
			lm__dcache_drop(c, g);
			model[k] = 0;
		} else if (op < 4) {
			model[k] = put(c, g, it) ? it + 1 : 0;
		} else if (model[k]) {
			int h = has(c, g, model[k] - 1);
			hits += (uint64_t)h;
			misses += (uint64_t)!h;
		} else {
			CHECK_EQ(has(c, g, 0), 0);
			misses++;
		}
	}
	struct lm__dcache_stats st = stats(c);
	CHECK(st.entries <= SLOTS);
	CHECK_EQ(st.hits, hits);
	CHECK_EQ(st.misses, misses);
	CHECK(st.evictions > 0);
	{
		uint64_t held = 0;
		for (uint32_t k = 0; k < NG; k++)
			if (model[k])
				held += (uint64_t)has(c, (k % 3 == 0) ? (uint64_t)k << 32 : k,
						      model[k] - 1);
		CHECK_EQ(held, st.entries);
	}
	lm__dcache_free(c);
}

/* Channel threads: thread t owns gpages t, t + T, ...; each turn acquires
 * one (the version must be the one it stored last), stores the next round
 * while the old one is pinned, checks the old one did not change under it,
 * sometimes drops. The cache is smaller than the pages, so entries are
 * evicted and slots reused all the time. */
enum { T = 4, PER_THREAD = 48, TURNS = 6000, MT_SLOTS = 40 };

typedef struct worker {
	lm__dcache *c;
	uint32_t t;
	uint32_t last[PER_THREAD]; /* round + 1 of what this thread stored, 0 = unknown */
	int bad;
} worker;

static void *hammer(void *arg)
{
	worker *wk = arg;
	uint64_t rng = 0x1234567ull * (wk->t + 1);

	for (uint32_t turn = 1; turn <= TURNS; turn++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		uint32_t k = (uint32_t)(rng % PER_THREAD), r = 12345;
		uint64_t g = (uint64_t)k * T + wk->t;
		const uint8_t *old;
		uint8_t *slot;
		lm__dcache_ref *o = lm__dcache_acquire(wk->c, g, &old, &r), *w;

		if (o && (!wk->last[k] || r != wk->last[k] - 1 || !is_pattern(old, g, r)))
			wk->bad++;
		if (rng % 16 == 0) {
			lm__dcache_drop(wk->c, g);
			wk->last[k] = 0;
		} else {
			w = lm__dcache_store(wk->c, g, turn, &slot);
			if (w)
				pattern(slot, g, turn);
			if (o && !is_pattern(old, g, r))
				wk->bad++; /* the old version moved under the pin */
			lm__dcache_release(wk->c, w);
			wk->last[k] = w ? turn + 1 : 0;
		}
		lm__dcache_release(wk->c, o);
	}
	return NULL;
}

static void test_threads(void)
{
	static worker wk[T];
	pthread_t tid[T];
	lm__dcache *c;
	struct lm__dcache_stats st;
	uint64_t held = 0;

	CHECK_EQ(lm__dcache_new(&c, MT_SLOTS * PS, PS), 0);
	for (uint32_t t = 0; t < T; t++) {
		wk[t] = (worker){.c = c, .t = t};
		CHECK_EQ(pthread_create(&tid[t], NULL, hammer, &wk[t]), 0);
	}
	for (uint32_t t = 0; t < T; t++)
		pthread_join(tid[t], NULL);
	st = stats(c);
	for (uint32_t t = 0; t < T; t++) {
		CHECK_EQ(wk[t].bad, 0);
		for (uint32_t k = 0; k < PER_THREAD; k++)
			if (wk[t].last[k])
				held += (uint64_t)has(c, (uint64_t)k * T + t, wk[t].last[k] - 1);
	}
	/* Each slot's bytes are what its owner stored last, and every entry
	 * is one of those. */
	CHECK_EQ(held, st.entries);
	CHECK(st.entries <= MT_SLOTS);
	CHECK_EQ(st.hits + st.misses, (uint64_t)T * TURNS);
	CHECK(st.evictions > 0);
	printf("threads: %llu hits, %llu misses, %llu evictions, %llu entries\n",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.evictions, (unsigned long long)st.entries);
	lm__dcache_free(c);
}

int main(void)
{
	test_args();
	test_disabled();
	test_admit_reuse();
	test_evict();
	test_drop();
	test_model();
	test_threads();
	TEST_DONE("test_delta_cache");
}
