/*
 * Receiver pages: where every page kind of a DATA packet lands (normal pages
 * are decoded into place by channel.c; zero, delta and ref pages here), and
 * the per-page records that make refs and deltas exact: which round and kind
 * each page last landed as (docs/protocol.md, "Ref and delta pages").
 *
 * A packet's pages land in a fixed order: normal, zero, delta, then ref. A
 * ref may name a page of the same round that another channel has not landed
 * yet; it waits for it. Since only ref pages ever wait, and a ref never names
 * a ref page, every wait ends: the page waited for is a normal, zero or delta
 * page, which lands without waiting for anything.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "codec/delta.h"
#include "compat.h" /* MADV_POPULATE_WRITE */
#include "receiver/receiver.h"
#include "zero.h"


static int test_bit(const uint64_t *bm, uint64_t page)
{
	return (__atomic_load_n(&bm[page / 64], __ATOMIC_SEQ_CST) >> (page % 64)) & 1;
}

/* Sets the bit; returns whether it was set before. */
static int set_bit(uint64_t *bm, uint64_t page)
{
	uint64_t bit = 1ull << (page % 64);

	return (__atomic_fetch_or(&bm[page / 64], bit, __ATOMIC_SEQ_CST) & bit) != 0;
}

static void mark_written(lm__rx_region *g, uint64_t page, int on)
{
	uint64_t bit = 1ull << (page % 64);

	if (!g->fresh)
		return;
	if (on)
		__atomic_fetch_or(&g->written[page / 64], bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&g->written[page / 64], ~bit, __ATOMIC_RELAXED);
}

static void set_landed(lm__rx_chan *ch, lm__rx_region *g, uint64_t off, uint32_t kind)
{
	if (g->landed)
		__atomic_store_n(&g->landed[off / ch->r->page_size], (ch->round + 1) << 2 | kind,
				 __ATOMIC_SEQ_CST);
}

/* ---- reserving the backing store ------------------------------------------ */

/* The application's store behind the page at off is reserved before the
 * page is written (cfg.reserve): the first channel to need a piece
 * reserves it, one that finds it being reserved waits (a fallocate of a
 * piece takes about a millisecond). */
static int reserve(lm__rx_chan *ch, lm__rx_region *g, uint64_t off, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint64_t c = off / LM__RESERVE_CHUNK, start = c * LM__RESERVE_CHUNK, end;
	uint8_t st = __atomic_load_n(&g->reserved[c], __ATOMIC_ACQUIRE), idle = 0;
	int rc;

	if (st == 2)
		return 0;
	if (st == 0 && __atomic_compare_exchange_n(&g->reserved[c], &idle, 1, 0, __ATOMIC_ACQ_REL,
						   __ATOMIC_ACQUIRE)) {
		end = (g->len + r->page_size - 1) / r->page_size * r->page_size;
		if (end > start + LM__RESERVE_CHUNK)
			end = start + LM__RESERVE_CHUNK;
		rc = r->cfg.reserve(r->cfg.user, g->id, start, end - start);
		__atomic_store_n(&g->reserved[c], rc ? 3 : 2, __ATOMIC_RELEASE);
	} else {
		while ((st = __atomic_load_n(&g->reserved[c], __ATOMIC_ACQUIRE)) == 1)
			sched_yield();
		rc = st == 2 ? 0 : LM_EREGION;
	}
	if (rc)
		lm__err_set(e, "region %u: the destination cannot reserve its store at 0x%llx: %s",
			    g->id, (unsigned long long)start, lm_strerror(rc));
	return rc;
}

/* ---- populating fresh memory ---------------------------------------------- */

/* Whether this kernel knows MADV_POPULATE_WRITE (5.14): a zero-length call
 * checks the advice and nothing else. Racing first calls store the same. */
static int can_populate(void)
{
	static int known; /* 0 not asked, 1 yes, 2 no */
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);

	if (!k) {
		static char probe[1];
		uintptr_t a = (uintptr_t)probe & ~(uintptr_t)4095;
		k = madvise((void *)a, 0, MADV_POPULATE_WRITE) == 0 ? 1 : 2;
		__atomic_store_n(&known, k, __ATOMIC_RELAXED);
	}
	return k == 1;
}

static int populate_run(lm__rx_region *g, uint64_t off, uint64_t len, lm__err *e)
{
	/* A partial last page is written up to the region's end only (and
	 * the mapping may end there, rounded to the system's pages). */
	uint64_t end = (g->len + 4095) & ~(uint64_t)4095;
	int err;

	if (off + len > end)
		len = end - off;
	while (madvise(g->base + off, (size_t)len, MADV_POPULATE_WRITE)) {
		if ((err = errno) == EINTR)
			continue;
		if (err == EINVAL)
			return 0; /* a mapping it does not apply to (VM_IO, PFNMAP): written as is */
		/* EFAULT is the fault's SIGBUS: the store refused a page. */
		lm__err_set(e, "region %u: the destination cannot back bytes 0x%llx..0x%llx: %s", g->id,
			    (unsigned long long)off, (unsigned long long)(off + len),
			    err == EFAULT ? "its store refused a page (out of space, or past the end of a file)"
					  : strerror(err));
		return LM_EREGION;
	}
	return 0;
}

/* A fresh region's pages are populated before any is written, one call per
 * run of neighbouring pages instead of a fault per page inside readv, a
 * decoder or a ref's memcpy (about the same work in the kernel; see
 * docs/benchmarks.md, "Receiver on fast links"). Above all it makes a store
 * that cannot back a page (a full tmpfs, no huge page left, a read-only
 * mapping) an error naming the range rather than SIGBUS in a copy: the CLI
 * relies on that instead of fallocate on tmpfs. Zero pages of a fresh
 * region are never written (zero_page() only clears pages written, and so
 * populated, before). Without the advice (kernels before 5.14) pages fault
 * in as they are written. */
static int populate(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	uint32_t ps = ch->r->page_size;
	uint64_t start = 0, len = 0;
	int rc;

	if (!g->fresh || !g->len || !can_populate())
		return 0;
	for (uint32_t i = 0; i < d->pages; i++) {
		uint64_t off = ch->off[i];
		if (i >= d->normal && i < d->normal + d->zero)
			continue;
		if (len && off == start + len) {
			len += ps;
			continue;
		}
		if (len && (rc = populate_run(g, start, len, e)))
			return rc;
		start = off;
		len = ps;
	}
	return len ? populate_run(g, start, len, e) : 0;
}

/* ---- claims -------------------------------------------------------------- */

/* Claims the packet's pages for this channel before any is written: a page
 * already landed in this round, by any channel, fails the session, rather
 * than two channels writing its memory at once. A page a ref of this round
 * copied as an earlier round's content may not land either: the copy could
 * have seen either version. Both sides set their bit before they test the
 * other's (seq_cst), so one of them always sees the conflict. */
int lm__rx_claim(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	for (uint32_t i = 0; i < d->pages; i++) {
		uint64_t page = ch->off[i] / ch->r->page_size;
		if (set_bit(g->claimed, page)) {
			lm__err_set(e, "data.offsets: page at offset 0x%llx sent twice in round %u",
				    (unsigned long long)ch->off[i], ch->round);
			return LM_EFIELD;
		}
		if (g->pinned && test_bit(g->pinned, page)) {
			lm__err_set(e, "data.offsets: page at offset 0x%llx was the source of a ref to its earlier content in round %u; it cannot land again in that round",
				    (unsigned long long)ch->off[i], ch->round);
			return LM_EFIELD;
		}
	}
	/* Zero pages of a fresh region are not written unless they held
	 * data, whose piece is reserved then. */
	for (uint32_t i = 0; g->reserved && i < d->pages; i++) {
		int rc;
		if (i >= d->normal && i < d->normal + d->zero && g->fresh)
			continue;
		if ((rc = reserve(ch, g, ch->off[i], e)))
			return rc;
	}
	return populate(ch, g, d, e);
}

/* ---- zero and delta pages ------------------------------------------------- */

static void zero_page(lm__rx_chan *ch, lm__rx_region *g, uint64_t off)
{
	uint32_t ps = ch->r->page_size;
	size_t n = off + ps <= g->len ? ps : (size_t)(g->len - off);
	uint64_t page = off / ps;

	if (g->fresh) {
		/* Still zero unless an earlier round wrote it. */
		if (__atomic_load_n(&g->written[page / 64], __ATOMIC_RELAXED) & (1ull << (page % 64))) {
			memset(g->base + off, 0, n);
			mark_written(g, page, 0);
		}
	} else if (!lm__is_zero(g->base + off, n)) {
		memset(g->base + off, 0, n);
	}
}

/* What a page's landed record says, for messages. */
static const char *landed_as(uint32_t st)
{
	static const char *const kinds[] = {"a normal page", "a zero page", "a delta page",
					    "a ref page"};

	return kinds[st & 3];
}

static int land_deltas(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	static const uint8_t no_area[1];
	uint32_t ps = ch->r->page_size, first = d->normal + d->zero + d->ref;
	/* Empty encodings only (a page sent again unchanged, delta.len 0):
	 * area 0, and a channel that never had an area has none allocated.
	 * Not NULL: `in + used` on NULL is undefined even for used == 0. */
	const uint8_t *in = ch->area ? ch->area : no_area;
	uint64_t used = 0;
	int rc;

	for (uint32_t i = 0; i < d->delta; i++) {
		uint64_t off = ch->off[first + i];
		uint32_t st = __atomic_load_n(&g->landed[off / ps], __ATOMIC_SEQ_CST);
		if (st >> 2 != ch->deltas[i].base_round + 1) {
			if (st)
				lm__err_set(e, "data.delta[%u].base_round %u: the page at offset 0x%llx last landed in round %u",
					    i, ch->deltas[i].base_round, (unsigned long long)off,
					    (st >> 2) - 1);
			else
				lm__err_set(e, "data.delta[%u]: the page at offset 0x%llx was never received",
					    i, (unsigned long long)off);
			return LM_EFIELD;
		}
		if ((rc = lm__delta_apply(g->base + off, ps, in + used, ch->deltas[i].len, e))) {
			char m[sizeof(e->msg)];
			memcpy(m, e->msg, sizeof(m));
			lm__err_set(e, "data.delta[%u] (page at offset 0x%llx): %s", i,
				    (unsigned long long)off, m);
			return rc;
		}
		used += ch->deltas[i].len;
		ch->delta_bytes += ch->deltas[i].len;
		mark_written(g, off / ps, 1);
		set_landed(ch, g, off, LM__LANDED_DELTA);
	}
	if (!lm__is_zero(in + used, (size_t)d->area * ps - used)) {
		lm__err_set(e, "data.delta: the area's padding after %llu bytes is not zero",
			    (unsigned long long)used);
		return LM_EFIELD;
	}
	return 0;
}

/* ---- ref pages ------------------------------------------------------------ */

/* Under r->lock: 0 when every other channel has ended ch's round; -1 when
 * every channel still in it (ch too) waits for a source that has not
 * landed: then none reads its connection, so none can land anything, a
 * certain deadlock (only a sender's crossed refs make it); else 1. */
static int others_open(lm_receiver *r, const lm__rx_chan *ch)
{
	int open = 0, running = 0;

	for (uint32_t c = 0; c < r->channels; c++) {
		const lm__rx_chan *o = r->chan[c];
		if (c == (uint32_t)ch->channel || r->synced[c] > ch->round)
			continue;
		open = 1;
		if (!o || !o->waiting ||
		    __atomic_load_n(&o->wait_src->landed[o->wait_page], __ATOMIC_SEQ_CST) >> 2 ==
			    ch->round + 1)
			running = 1;
	}
	return !open ? 0 : running ? 1 : -1;
}

/* A ref's source in this same round has not landed yet: wait until it has,
 * unless it never can (every other channel ended the round, or waits too,
 * the session failed, the stall timeout). */
static int wait_landed(lm__rx_chan *ch, lm__rx_region *src, uint64_t page, uint32_t i, lm__err *e)
{
	lm_receiver *r = ch->r;
	uint32_t want = ch->round + 1;
	uint64_t t0 = lm__now_us();
	int rc = 0;

	ch->ref_waits++;
	__atomic_add_fetch(&r->land_waiters, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&r->lock);
	ch->waiting = 1;
	ch->wait_src = src;
	ch->wait_page = page;
	while (__atomic_load_n(&src->landed[page], __ATOMIC_SEQ_CST) >> 2 != want && !r->err) {
		struct timespec ts = lm__rx_deadline(50);
		int open = others_open(r, ch);
		if (!open) {
			lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx did not land in round %u (every other channel ended it)",
				    i, (unsigned long long)(page * r->page_size), ch->round);
			rc = LM_EFIELD;
			break;
		}
		if (open < 0) {
			lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx cannot land in round %u: every channel still in it waits for a ref's source (crossed refs)",
				    i, (unsigned long long)(page * r->page_size), ch->round);
			rc = LM_EFIELD;
			break;
		}
		if (lm__now_us() - t0 > (uint64_t)r->cfg.timeout_ms * 1000u) {
			lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx did not land within %d ms",
				    i, (unsigned long long)(page * r->page_size), r->cfg.timeout_ms);
			rc = LM_ETIMEDOUT;
			break;
		}
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	if (!rc)
		rc = r->err;
	ch->waiting = 0;
	pthread_mutex_unlock(&r->lock);
	__atomic_sub_fetch(&r->land_waiters, 1, __ATOMIC_SEQ_CST);
	return rc;
}

/* A same-round source among this packet's own ref pages would wait for
 * itself: that is a chain. */
static int in_own_refs(lm__rx_chan *ch, const lm__data_hdr *d, const lm__ref *ref)
{
	uint32_t first = d->normal + d->zero;

	if (ref->src_region != d->region)
		return 0;
	for (uint32_t k = 0; k < d->ref; k++)
		if (ch->off[first + k] == ref->src_offset)
			return 1;
	return 0;
}

/* The source holds what the ref names: for this round, a page that landed
 * in it with its content; for an earlier one, a page that has not landed
 * since, pinned so that it does not before the round ends. */
static int check_source(lm__rx_chan *ch, const lm__data_hdr *d, const lm__ref *ref, uint32_t i,
			lm__rx_region *src, lm__err *e)
{
	uint64_t page = ref->src_offset / ch->r->page_size;
	uint32_t st;
	int rc;

	if (ref->src_round == ch->round) {
		if (in_own_refs(ch, d, ref)) {
			lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx is a ref page of the same packet (refs do not chain)",
				    i, (unsigned long long)ref->src_offset);
			return LM_EFIELD;
		}
		st = __atomic_load_n(&src->landed[page], __ATOMIC_SEQ_CST);
		if (st >> 2 != ch->round + 1) {
			if ((rc = wait_landed(ch, src, page, i, e)))
				return rc;
			st = __atomic_load_n(&src->landed[page], __ATOMIC_SEQ_CST);
		}
	} else {
		set_bit(src->pinned, page);
		if (test_bit(src->claimed, page)) {
			lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx of round %u lands again in round %u",
				    i, (unsigned long long)ref->src_offset, ref->src_round, ch->round);
			return LM_EFIELD;
		}
		st = __atomic_load_n(&src->landed[page], __ATOMIC_SEQ_CST);
		if (st >> 2 != ref->src_round + 1) {
			if (st)
				lm__err_set(e, "data.ref[%u].src_round %u: source page at offset 0x%llx last landed in round %u",
					    i, ref->src_round, (unsigned long long)ref->src_offset,
					    (st >> 2) - 1);
			else
				lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx was never received",
					    i, (unsigned long long)ref->src_offset);
			return LM_EFIELD;
		}
	}
	if ((st & 3) == LM__LANDED_REF) {
		lm__err_set(e, "data.ref[%u]: source page at offset 0x%llx is %s (refs do not chain)", i,
			    (unsigned long long)ref->src_offset, landed_as(st));
		return LM_EFIELD;
	}
	return 0;
}

static int land_refs(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	uint32_t ps = ch->r->page_size, first = d->normal + d->zero;
	int rc;

	for (uint32_t i = 0; i < d->ref; i++) {
		const lm__ref *ref = &ch->refs[i];
		lm__rx_region *src = ch->r->by_id[ref->src_region];
		uint64_t off = ch->off[first + i];
		if ((rc = check_source(ch, d, ref, i, src, e)))
			return rc;
		memcpy(g->base + off, src->base + ref->src_offset, ps);
		mark_written(g, off / ps, 1);
		set_landed(ch, g, off, LM__LANDED_REF);
	}
	return 0;
}

/* ---- a packet ------------------------------------------------------------- */

/* Wakes the channels waiting for a ref's source, if any: the seq_cst store
 * of landed[] before the seq_cst load of land_waiters pairs with a waiter's
 * increment before it reads landed[] under r->lock. */
static void wake_waiters(lm_receiver *r)
{
	if (!__atomic_load_n(&r->land_waiters, __ATOMIC_SEQ_CST))
		return;
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

int lm__rx_land(lm__rx_chan *ch, lm__rx_region *g, const lm__data_hdr *d, lm__err *e)
{
	uint32_t ps = ch->r->page_size;
	int rc;

	for (uint32_t i = 0; i < d->normal; i++) {
		mark_written(g, ch->off[i] / ps, 1);
		set_landed(ch, g, ch->off[i], LM__LANDED_NORMAL);
	}
	for (uint32_t i = d->normal; i < d->normal + d->zero; i++) {
		zero_page(ch, g, ch->off[i]);
		set_landed(ch, g, ch->off[i], LM__LANDED_ZERO);
	}
	if (d->delta && (rc = land_deltas(ch, g, d, e)))
		return rc;
	if (d->normal + d->zero + d->delta) /* a ref may wait for any of them */
		wake_waiters(ch->r);
	if (d->ref && (rc = land_refs(ch, g, d, e)))
		return rc;
	lm__sumtree_land(&g->sum, ch->off, d->pages);
	return 0;
}
