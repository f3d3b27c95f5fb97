/*
 * Dirty-page tracking for live migration: which pages of the sender's
 * regions the workload wrote since the previous sync.
 *
 * Two sources behind one interface:
 *  - userfaultfd write-protect in async mode (UFFD_FEATURE_WP_ASYNC +
 *    UFFD_FEATURE_WP_UNPOPULATED) read and re-armed in one PAGEMAP_SCAN call
 *    per region (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, category and
 *    return mask PAGE_IS_WRITTEN). Linux >= 6.7.
 *  - the application's lm_dirty_log_cb (what a KVM VMM gets from
 *    KVM_GET_DIRTY_LOG).
 *
 * Thread safety: one thread (the one running the migration) uses a tracker.
 */
#ifndef LM_DIRTY_H
#define LM_DIRTY_H

#include <stdint.h>

#include "livemig.h"
#include "wire.h" /* lm__err */

typedef struct lm__dirty_region {
	const uint8_t *base; /* any alignment */
	uint64_t len;        /* any length */
} lm__dirty_region;

typedef struct lm__dirty lm__dirty;

/* Chooses the source (LM_DIRTY_AUTO: uffd-wp if lm_dirty_probe() succeeds,
 * else the callback if cb is set, else LM_EFEATURE with the reason in e).
 * page_size is the migration's page size (a power of two >= 4096). Nothing
 * is armed yet. */
int lm__dirty_new(lm__dirty **out, lm_dirty_source src, lm_dirty_log_cb cb, void *user,
		  const lm__dirty_region *regions, uint32_t n, uint32_t page_size, lm__err *e);
void lm__dirty_free(lm__dirty *d); /* disarms (unregisters) if armed; NULL ok */

/* The source in use: LM_DIRTY_UFFD_WP or LM_DIRTY_CALLBACK. */
lm_dirty_source lm__dirty_kind(const lm__dirty *d);

/* Arms tracking: every write made after this returns is reported by the
 * next lm__dirty_sync(). Writes before it are not reported. */
int lm__dirty_start(lm__dirty *d, lm__err *e);

/* For each region i, sets in bitmap[i] (region pages bits, at page_size,
 * page k = bytes [k*page_size, (k+1)*page_size) from the region's base) the
 * pages written since the previous sync or start, and re-arms them. Bits
 * already set are kept (the caller may OR several syncs). *count is the
 * number of bits set in all bitmaps after the call. Bits past each region's
 * last page stay clear. */
int lm__dirty_sync(lm__dirty *d, uint64_t *const *bitmap, uint64_t *count, lm__err *e);

/* Disarms: unregisters the ranges; the workload's memory is left as it is. */
void lm__dirty_stop(lm__dirty *d);

/* Pages of a region at page_size, and the 64-bit words its bitmap needs. */
static inline uint64_t lm__dirty_pages(uint64_t len, uint32_t page_size)
{
	return (len + page_size - 1) / page_size;
}
static inline uint64_t lm__dirty_words(uint64_t len, uint32_t page_size)
{
	return (lm__dirty_pages(len, page_size) + 63) / 64;
}

#endif
