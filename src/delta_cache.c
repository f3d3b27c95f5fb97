/*
 * Bounded cache of last-sent page versions (see delta_cache.h).
 *
 * Layout: one lazily mapped array of slots (page_size bytes each), one
 * 16-byte lm__dcache_ref per slot, a stack of free slot numbers (4 bytes
 * per slot), and an open-addressing hash table gpage -> slot with linear
 * probing, at most half full (2..4 entries of 4 bytes per slot, as its
 * size is a power of two): 28 bytes per slot when the slot count is a power
 * of two, at most 36. Deletion shifts the probe chain back instead of
 * leaving tombstones, so lookups stay short however long the migration.
 *
 * A slot is FREE (on the stack), MAPPED (gpage's current version, in the
 * table) or LOOSE (no longer its gpage's version, but pinned: freed at the
 * last release). Only MAPPED slots with no pin can be evicted or reused.
 */
#include "delta_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "livemig.h"

#define NONE UINT32_MAX
#define MAX_SLOTS (1u << 31)

enum { SLOT_FREE, SLOT_MAPPED, SLOT_LOOSE };

/* All fields guarded by the cache's lock. */
struct lm__dcache_ref {
	uint64_t gpage;     /* MAPPED, LOOSE: the page this slot holds a version of */
	uint32_t round;     /* MAPPED: the round that version was sent in */
	uint16_t pins;      /* acquire and store pins not yet released */
	uint8_t state;      /* SLOT_* */
	uint8_t referenced; /* CLOCK: a delta was made from it since the hand passed */
};

struct lm__dcache {
	/* Set by lm__dcache_new, read-only after. */
	uint32_t page_size;
	uint32_t nslots;
	uint32_t tmask;  /* table size - 1 */
	unsigned tshift; /* 64 - log2(table size): the hash's top bits index it */
	uint8_t *data;   /* nslots * page_size: each slot's bytes belong to its pinner */
	pthread_mutex_t lock;
	/* Guarded by lock: */
	lm__dcache_ref *slot; /* nslots */
	uint32_t *table;      /* tmask + 1 slot numbers, NONE = empty */
	uint32_t *free;       /* stack of FREE slot numbers */
	uint32_t nfree;
	uint32_t hand;        /* CLOCK's next slot */
	struct lm__dcache_stats st; /* bytes: fixed; the others counted under lock */
};

static inline uint32_t home(const lm__dcache *c, uint64_t gpage)
{
	return (uint32_t)((gpage * 0x9e3779b97f4a7c15ull) >> c->tshift);
}

/* Table index holding gpage, or NONE. */
static uint32_t find(const lm__dcache *c, uint64_t gpage)
{
	for (uint32_t i = home(c, gpage);; i = (i + 1) & c->tmask) {
		uint32_t s = c->table[i];
		if (s == NONE)
			return NONE;
		if (c->slot[s].gpage == gpage)
			return i;
	}
}

static void insert(lm__dcache *c, uint32_t s)
{
	uint32_t i = home(c, c->slot[s].gpage);

	while (c->table[i] != NONE)
		i = (i + 1) & c->tmask;
	c->table[i] = s;
}

/* Empties table index i, moving back the entries after it whose home is at
 * or before i, so every probe chain stays unbroken. */
static void unlink_at(lm__dcache *c, uint32_t i)
{
	for (uint32_t j = i;;) {
		uint32_t s, h;

		j = (j + 1) & c->tmask;
		s = c->table[j];
		if (s == NONE)
			break;
		h = home(c, c->slot[s].gpage);
		/* Entry j may fill the hole unless its home lies cyclically in (i, j]. */
		if (((j - h) & c->tmask) >= ((j - i) & c->tmask)) {
			c->table[i] = s;
			i = j;
		}
	}
	c->table[i] = NONE;
}

/* Takes slot s (MAPPED, at table index ti) away from its gpage: freed now
 * if unpinned, else when its last pin goes. */
static void unmap(lm__dcache *c, uint32_t ti, uint32_t s)
{
	unlink_at(c, ti);
	c->st.entries--;
	if (c->slot[s].pins) {
		c->slot[s].state = SLOT_LOOSE;
	} else {
		c->slot[s].state = SLOT_FREE;
		c->free[c->nfree++] = s;
	}
}

/* CLOCK: an unpinned MAPPED slot, unmapped, or NONE when two turns of the
 * hand found none (the first turn may only clear second chances). */
static uint32_t evict(lm__dcache *c)
{
	for (uint64_t step = 0; step < 2ull * c->nslots; step++) {
		uint32_t s = c->hand;
		lm__dcache_ref *m = &c->slot[s];

		c->hand = s + 1 == c->nslots ? 0 : s + 1;
		if (m->state != SLOT_MAPPED || m->pins)
			continue;
		if (m->referenced) {
			m->referenced = 0;
			continue;
		}
		unmap(c, find(c, m->gpage), s);
		c->st.evictions++;
		c->nfree--; /* unmap pushed s: hand it out directly */
		return s;
	}
	return NONE;
}

int lm__dcache_new(lm__dcache **out, uint64_t bytes, uint32_t page_size)
{
	lm__dcache *c;
	uint64_t n, tsize = 2;
	int rc = -ENOMEM;

	*out = NULL;
	if (page_size < 4096 || page_size > 65536 || (page_size & (page_size - 1)))
		return LM_EINVAL;
	n = bytes / page_size;
	if (n > MAX_SLOTS)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->page_size = page_size;
	c->nslots = (uint32_t)n;
	c->tshift = 63;
	while (tsize < 2 * n) {
		tsize *= 2;
		c->tshift--;
	}
	c->tmask = (uint32_t)(tsize - 1);
	c->st.bytes = n * page_size;
	if (pthread_mutex_init(&c->lock, NULL)) {
		free(c);
		return -ENOMEM;
	}
	if (n == 0)
		goto done; /* disabled: no slot, no table */
	/* NORESERVE and lazy: a generous capacity costs only what fills. */
	c->data = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->data == MAP_FAILED) {
		c->data = NULL;
		goto fail;
	}
	c->slot = calloc(n, sizeof(*c->slot));
	c->free = malloc(n * sizeof(*c->free));
	c->table = malloc(tsize * sizeof(*c->table));
	if (!c->slot || !c->free || !c->table)
		goto fail;
	for (uint64_t i = 0; i < tsize; i++)
		c->table[i] = NONE;
	/* Popped from the top: slot 0 first, so a small load stays compact. */
	for (uint32_t i = 0; i < n; i++)
		c->free[i] = (uint32_t)(n - 1 - i);
	c->nfree = (uint32_t)n;
done:
	*out = c;
	return 0;
fail:
	lm__dcache_free(c);
	return rc;
}

void lm__dcache_free(lm__dcache *c)
{
	if (!c)
		return;
	if (c->data)
		munmap(c->data, (size_t)c->nslots * c->page_size);
	free(c->slot);
	free(c->free);
	free(c->table);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static inline uint8_t *bytes_of(const lm__dcache *c, uint32_t s)
{
	return c->data + (size_t)s * c->page_size;
}

lm__dcache_ref *lm__dcache_acquire(lm__dcache *c, uint64_t gpage, const uint8_t **old,
				   uint32_t *old_round)
{
	lm__dcache_ref *m = NULL;
	uint32_t ti;

	*old = NULL;
	pthread_mutex_lock(&c->lock);
	ti = c->nslots ? find(c, gpage) : NONE;
	if (ti == NONE) {
		c->st.misses++;
	} else {
		uint32_t s = c->table[ti];
		m = &c->slot[s];
		m->pins++;
		m->referenced = 1;
		*old = bytes_of(c, s);
		*old_round = m->round;
		c->st.hits++;
	}
	pthread_mutex_unlock(&c->lock);
	return m;
}

lm__dcache_ref *lm__dcache_store(lm__dcache *c, uint64_t gpage, uint32_t round, uint8_t **slot)
{
	lm__dcache_ref *m = NULL;
	uint32_t ti, s = NONE;
	uint8_t chance = 0;

	*slot = NULL;
	if (!c->nslots)
		return NULL;
	pthread_mutex_lock(&c->lock);
	ti = find(c, gpage);
	if (ti != NONE) {
		s = c->table[ti];
		m = &c->slot[s];
		if (!m->pins)
			goto pin; /* its own slot: nobody reads the old version */
		/* The old version is being read (a delta from it): the new one
		 * goes elsewhere and the old slot is freed at its release. */
		chance = m->referenced;
		unmap(c, ti, s);
	}
	s = c->nfree ? c->free[--c->nfree] : evict(c);
	if (s == NONE) {
		m = NULL;
		goto out;
	}
	m = &c->slot[s];
	m->gpage = gpage;
	m->state = SLOT_MAPPED;
	m->referenced = chance;
	insert(c, s);
	c->st.entries++;
pin:
	m->round = round;
	m->pins++;
	*slot = bytes_of(c, s);
out:
	pthread_mutex_unlock(&c->lock);
	return m;
}

void lm__dcache_release(lm__dcache *c, lm__dcache_ref *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&c->lock);
	if (--r->pins == 0 && r->state == SLOT_LOOSE) {
		r->state = SLOT_FREE;
		c->free[c->nfree++] = (uint32_t)(r - c->slot);
	}
	pthread_mutex_unlock(&c->lock);
}

void lm__dcache_drop(lm__dcache *c, uint64_t gpage)
{
	uint32_t ti;

	if (!c->nslots)
		return;
	pthread_mutex_lock(&c->lock);
	ti = find(c, gpage);
	if (ti != NONE)
		unmap(c, ti, c->table[ti]);
	pthread_mutex_unlock(&c->lock);
}

void lm__dcache_stats(const lm__dcache *c, struct lm__dcache_stats *out)
{
	/* The lock is the only mutable part of a const cache. */
	pthread_mutex_t *lock = (pthread_mutex_t *)&c->lock;

	pthread_mutex_lock(lock);
	*out = c->st;
	pthread_mutex_unlock(lock);
}
