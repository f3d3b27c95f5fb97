/*
 * Page kinds, the sender's side: the one place that decides how each page of
 * a packet travels (docs/protocol.md, "Page kinds"):
 *   zero   every byte is zero;
 *   ref    the destination holds the same bytes in another page (dedup.h);
 *   delta  the destination holds an earlier version, and the XOR runs
 *          against it are smaller than the page (delta.h, delta_cache.h);
 *   normal the content travels, through the packet's codec.
 * The channel thread plans a packet with lm__plan_packet(), sends what the
 * plan says, then calls lm__plan_done().
 *
 * Thread safety: the lm__kinds is shared by the channel threads (its parts
 * lock inside); a plan belongs to one channel thread.
 */
#ifndef LM_KINDS_H
#define LM_KINDS_H

#include <stdint.h>

#include "wire.h"

struct lm__dedup;
struct lm__dcache;

typedef struct lm__kinds {
	uint32_t page_size;
	uint64_t first[LM_MAX_REGIONS]; /* global number of each region's page 0 */
	struct lm__dedup *dedup;   /* NULL: no ref pages */
	struct lm__dcache *dcache; /* NULL: no delta pages */
	/* With dcache, per global page: 0x80 | round & 0x7f when it was last
	 * sent as a zero page, else 0. Written by the channel sending the
	 * page (one per round), the rounds' syncs order the others. */
	uint8_t *zsent;
	uint64_t npages;
	/* Written by the thread driving the sender while every channel is
	 * idle (lm__kinds_round), read by channel threads. */
	uint32_t round;
	int live;                  /* record refs for lm__plan_deps */
} lm__kinds;

/* A ref made in a live round: page (rid, pg) holds the content of page
 * (src_rid, src_pg) as compared at that moment. If the source was written
 * during the round, the ref may have named bytes the destination does not
 * have, so the page must go again (live.c). */
typedef struct lm__dep {
	uint32_t rid, src_rid;
	uint64_t pg, src_pg;
} lm__dep;

/* A packet's plan; the caller allocates every array for packet_pages
 * pages (area: packet_pages * page_size bytes). */
typedef struct lm__plan {
	uint32_t nn, nz, nr, nd;
	uint64_t *normal_off, *zero_off, *ref_off, *delta_off;
	const uint8_t **normal_src; /* where each normal page's bytes are read */
	/* The checksum's block hash of each normal and ref page as planned,
	 * 0 when not known (then it is read from memory once sent). */
	uint64_t *normal_sum, *ref_sum;
	lm__ref *refs;
	lm__delta *deltas;
	uint8_t *area;              /* the delta encodings, back to back */
	uint64_t area_len;
	uint8_t *tail;              /* a page: the zero-padded partial last page */
	/* Delta cache slots held until the packet is written (normal_src may
	 * point into them). */
	void **pins;
	uint32_t npins;
	/* Live: refs to check at the round's end. Owner: the channel thread
	 * while busy, the driving thread while it is idle. */
	lm__dep *deps;
	uint64_t ndeps, deps_cap;
	/* Counters, same owner. */
	uint64_t ref_pages, delta_pages, delta_bytes, dcache_hits, dcache_misses;
} lm__plan;

/* Thread driving the sender, channels idle: a round begins. */
void lm__kinds_round(lm__kinds *k, uint32_t round, int live);
/* Plans the n pages at off[] of region rid (base, len) for this round. */
int lm__plan_packet(lm__kinds *k, lm__plan *pl, uint32_t rid, const uint8_t *base, uint64_t len,
		    const uint64_t *off, uint32_t n);
/* The packet was written (or the send failed): releases what the plan held. */
void lm__plan_done(lm__kinds *k, lm__plan *pl);

#endif
