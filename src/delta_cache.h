/*
 * Sender side of delta pages: a bounded cache of the last version of each
 * page that went on the wire, so a page sent again can travel as its XOR
 * delta from what the receiver holds (src/codec/delta.h).
 *
 * Pages are named by a 64-bit global page number (gpage). The cache holds
 * bytes / page_size slots of page_size bytes, and a hash map gpage -> slot
 * sized from the slot count: memory is the slot array plus 28 to 36 bytes
 * per slot (delta_cache.c), whatever the guest's size. When every slot is taken, CLOCK evicts
 * an entry, giving a second chance to the entries a delta was made from
 * since the hand last passed.
 *
 * Thread safety: every call may come from any thread; one mutex inside
 * guards the metadata, held only for O(1) work (no page copies). In any
 * one round a given gpage is handled by one thread; a slot's bytes belong
 * to whoever pinned it (read-only through lm__dcache_acquire, written by
 * the caller of lm__dcache_store), and the mutex orders one round's
 * writes before the next round's reads.
 *
 * One page's turn, on the channel thread sending it in round r:
 *
 *   const uint8_t *old; uint32_t old_round; uint8_t *copy;
 *   lm__dcache_ref *o = lm__dcache_acquire(c, g, &old, &old_round);
 *   lm__dcache_ref *w = lm__dcache_store(c, g, r, &copy);
 *   if (w) {
 *           memcpy(copy, live_page, ps);   // what goes on the wire
 *           if (o) n = lm__delta_encode(old, copy, ps, out, limit);
 *           ... send the delta or the page, from out or copy ...
 *   } else {
 *           ... send the page as without a cache (g is forgotten) ...
 *   }
 *   lm__dcache_release(c, o);
 *   lm__dcache_release(c, w);
 *
 * While o pins the old version, store puts the new one in another slot (the
 * old slot is freed when o is released), so old stays readable until the
 * delta is made; a page with no pinned version reuses its own slot. If the
 * page's delta cannot be sent after all (the packet is lost to an error),
 * call lm__dcache_drop(): the receiver's version is not known any more.
 */
#ifndef LM_DELTA_CACHE_H
#define LM_DELTA_CACHE_H

#include <stdint.h>

typedef struct lm__dcache lm__dcache;
/* A pinned slot: never evicted or reused until released. */
typedef struct lm__dcache_ref lm__dcache_ref;

/* A struct tag, not a typedef: the name is also the function's. */
struct lm__dcache_stats {
	uint64_t bytes;     /* the slot array: slots x page_size (fixed) */
	uint64_t entries;   /* gpages whose last-sent version is held now */
	uint64_t hits;      /* lm__dcache_acquire found the gpage */
	uint64_t misses;    /* lm__dcache_acquire did not */
	uint64_t evictions; /* entries CLOCK pushed out to make room */
};

/* A cache of bytes / page_size slots (0 slots: every acquire misses and
 * every store returns NULL). page_size: a power of two, 4096..65536.
 * Returns 0, LM_EINVAL or -ENOMEM. The slot array is mapped lazily: memory
 * is used as slots fill. */
int lm__dcache_new(lm__dcache **c, uint64_t bytes, uint32_t page_size);
void lm__dcache_free(lm__dcache *c); /* no slot may be pinned; NULL ok */

/* If gpage's last-sent version is held: pins it, sets *old (page_size
 * bytes, read-only) and *old_round (the round it was sent in), and returns
 * the pin. Else returns NULL with *old = NULL. Counts a hit or a miss; a
 * hit gives the entry CLOCK's second chance. */
lm__dcache_ref *lm__dcache_acquire(lm__dcache *c, uint64_t gpage, const uint8_t **old,
				   uint32_t *old_round);

/* A pinned slot that holds gpage's version sent in `round` from now on:
 * *slot is where the caller copies the page, and what it sends from. It is
 * gpage's own slot when that is not pinned, else a free slot, else an
 * unpinned entry CLOCK evicts. Returns NULL (*slot = NULL) when every slot
 * is pinned: gpage is then forgotten (its old version, if pinned, stays
 * readable until released), since the receiver's version changes. */
lm__dcache_ref *lm__dcache_store(lm__dcache *c, uint64_t gpage, uint32_t round, uint8_t **slot);

/* Unpins (NULL ok). A slot left by its gpage (store moved the gpage, drop)
 * becomes free at its last release. */
void lm__dcache_release(lm__dcache *c, lm__dcache_ref *r);

/* Forgets gpage: the receiver's version of it is no longer known. */
void lm__dcache_drop(lm__dcache *c, uint64_t gpage);

void lm__dcache_stats(const lm__dcache *c, struct lm__dcache_stats *out);

#endif
