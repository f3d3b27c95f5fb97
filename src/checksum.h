/*
 * Region checksum (docs/protocol.md, "Checksum"): XXH3-64 of every 4 KiB
 * block, then XXH3-64 with seed = region length over the little-endian block
 * hashes. Blocks hash independently, so the work is spread over threads and
 * done incrementally: a channel thread hashes a page's blocks as soon as it
 * is sent (sender) or landed (receiver), while the data is still in its
 * cache, and only blocks never completed are hashed at the end. Blocks as
 * small as the smallest page mean a page sent again in a later round of a
 * live migration costs one page of hashing, not a whole larger block.
 */
#ifndef LM_CHECKSUM_H
#define LM_CHECKSUM_H

#include <errno.h>
#include <stdint.h>

#include "livemig.h"

#define LM_SUM_BLOCK 4096u /* = LM_MIN_PAGE_SIZE: a block never spans pages */

typedef struct lm__sumtree {
	const uint8_t *base;
	uint64_t len;
	uint32_t page_size;
	/* NULL: read every page. Else bit i set = page i holds written data;
	 * clear bits are known-zero pages hashed without reading them. */
	const uint64_t *written;
	uint64_t nblocks;
	uint64_t zero_hash; /* of LM_SUM_BLOCK zero bytes */
	uint64_t *hash;  /* per block; valid when left[b] == 0 and done[b] */
	uint32_t *left;  /* pages of the block not yet final (atomic) */
	uint8_t *done;   /* hash[b] stored (atomic, release) */
} lm__sumtree;

int lm__sumtree_init(lm__sumtree *t, const uint8_t *base, uint64_t len, uint32_t page_size,
		     const uint64_t *written);
void lm__sumtree_free(lm__sumtree *t);
/* Any thread: the pages at these offsets hold their final content for this
 * pass. Hashes every block this completes. */
void lm__sumtree_land(lm__sumtree *t, const uint64_t *off, uint32_t n);
/* Any thread: the same for pages known to be all zero (sent as zero
 * pages): their blocks hash as zeros without being read. */
void lm__sumtree_land_zero(lm__sumtree *t, const uint64_t *off, uint32_t n);
/* Any thread: the same for pages whose block hash the caller computed from
 * the bytes that land (sum[i], page_size = LM_SUM_BLOCK); a 0 is read from
 * memory instead. */
void lm__sumtree_land_sums(lm__sumtree *t, const uint64_t *off, const uint64_t *sum, uint32_t n);
/* Main thread, channels quiet: the page at off will be sent (landed) once
 * more, so its block is hashed again when that page lands. */
void lm__sumtree_reopen(lm__sumtree *t, uint64_t off);
/* Channels quiet: every block is hashed again from memory by the next
 * refresh or final. */
void lm__sumtree_invalidate(lm__sumtree *t);
/* Channels quiet: hashes every block not hashed since its last landing (a
 * later round's pages, or pages landed twice), on up to threads threads. */
int lm__sumtree_refresh(lm__sumtree *t, unsigned threads);
/* After all channels are quiet: hashes what is left on up to threads
 * threads (at most the online CPUs), combines. */
int lm__sumtree_final(lm__sumtree *t, unsigned threads, uint64_t *out);

/* The same checksum of bytes that arrive in order, their total not known
 * in advance (the device state: docs/protocol.md, DEVSTATE_END). Keeps the
 * block being filled and the hashes of the blocks before it (8 bytes per
 * 4 KiB: grows with what arrived, never with what is announced). */
typedef struct lm__sumstream {
	uint8_t part[LM_SUM_BLOCK];
	uint32_t fill;   /* bytes in part */
	uint8_t *le;     /* block hashes, little-endian, as the final pass wants */
	uint64_t blocks, cap; /* in le: used, allocated (blocks) */
	uint64_t len;    /* bytes so far */
} lm__sumstream;

void lm__sumstream_init(lm__sumstream *t);
int lm__sumstream_update(lm__sumstream *t, const void *p, size_t n); /* 0 or -ENOMEM */
int lm__sumstream_final(lm__sumstream *t, uint64_t *out);
void lm__sumstream_free(lm__sumstream *t);

#endif
