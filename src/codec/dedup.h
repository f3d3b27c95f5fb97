/*
 * The sender's content index for ref pages (docs/protocol.md, "Ref and
 * delta pages"): which page of which round holds a given content on the
 * receiver. A hash finds candidates; a ref is only made after the bytes were
 * compared, so a collision costs a comparison, never a wrong page.
 *
 * Cost: 8 bytes per entry in a table kept between 60% and 90% full (at
 * most 13.4 bytes per distinct page sent), plus 1 byte per page of the
 * regions (the round each page was last sent in, modulo 256).
 *
 * Thread safety: lm__dedup_round() on the thread driving the sender while
 * every channel is idle; the rest from any channel thread at once (one
 * mutex guards the table; hashing and comparing run outside it).
 */
#ifndef LM_DEDUP_H
#define LM_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct lm__dedup lm__dedup;

typedef struct lm__dedup_stats {
	uint64_t entries, bytes;  /* live entries; table + round stamps */
	uint64_t lookups, hits;   /* pages looked up, refs made */
	uint64_t collisions;      /* hash matched, bytes differed */
	uint64_t stale;           /* candidates no longer on the receiver */
} lm__dedup_stats;

/* regions: base and length of each region (the sender's memory, read to
 * compare candidates). */
int lm__dedup_new(lm__dedup **out, const uint8_t *const *base, const uint64_t *len, uint32_t n,
		  uint32_t page_size);
void lm__dedup_free(lm__dedup *d);
/* Tests only: a weak hash, to force collisions. */
void lm__dedup_set_hash(lm__dedup *d, uint64_t (*hash)(const void *p, size_t len));

/* Thread driving the sender, channels idle: a round begins. set[r] is the
 * bitmap of region r's pages this round may send (NULL: every page); an
 * entry of an earlier round whose page is in the set is not used, since the
 * page may land again in this round. The bitmaps stay valid until the next
 * call. */
void lm__dedup_round(lm__dedup *d, uint32_t round, const uint64_t *const *set);

/* Channel thread: page pg of region rid, content p, is sent in this round.
 * Returns 1 and fills *ref when the receiver holds the same bytes in a page
 * a ref may name (the page is then sent as that ref); else records p as the
 * page's content and returns 0 (the page is sent with its content). */
int lm__dedup_page(lm__dedup *d, uint32_t rid, uint64_t pg, const uint8_t *p, lm__ref *ref);
/* The same, and when the index's hash of p is the checksum's hash of a
 * block (4 KiB pages, the default hash) stores it in *sum, so that p is
 * not read again for the checksum (checksum.h); else *sum is 0. */
int lm__dedup_page_sum(lm__dedup *d, uint32_t rid, uint64_t pg, const uint8_t *p, lm__ref *ref,
		       uint64_t *sum);
/* Channel thread: page pg of region rid is sent in this round as a zero or
 * delta page: its earlier entries no longer describe the receiver's page. */
void lm__dedup_forget(lm__dedup *d, uint32_t rid, uint64_t pg);

/* Any thread; exact once the channels are idle. */
void lm__dedup_get_stats(lm__dedup *d, lm__dedup_stats *st);

#endif
