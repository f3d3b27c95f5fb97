/*
 * libFuzzer target: the receiver's real per-channel loop, lm__rx_data_loop(),
 * reading the fuzz input as channel 0's byte stream after the handshake.
 *
 * Input layout:
 *   byte 0   session shape: bit 0 channels 2 (else 1); bit 1 packet_pages 3
 *            (else 128); bit 2 region 1 is the fresh one (else region 0);
 *            bit 3 the session has ROUND_ACK (acks go to /dev/null).
 *   rest     what the sender would send after the hello ack: DATA, SYNC,
 *            COMPLETE, ERROR frames. It is put in a memfd the conn reads;
 *            the conn writes (the completion ack) go to /dev/null.
 *
 * The session, as if the handshake had happened: page size 4096, codec none,
 * two regions in exact-size heap buffers (ASan sees any byte written outside):
 *   region 0 "ram"  8 pages
 *   region 1 "heap" 3 pages + 100 bytes (a partial last page)
 * One of them is fresh (calloc'd, with a `written` bitmap), the other holds
 * stale bytes (0xa5) that zero pages must clear. With 2 channels, channel 1
 * counts as synced for every round so a COMPLETE does not wait for it.
 *
 * Checked after each input (violations __builtin_trap()):
 *  - the loop returns; 0 only after a verified COMPLETE;
 *  - once a COMPLETE got as far as verification (so every packet before it
 *    landed whole): in the fresh region every page whose `written` bit is
 *    clear is all zero and no bit past the last page is set; and each
 *    region's incrementally built checksum tree (lm__sumtree_final) equals
 *    lm_region_checksum() of its bytes as they are.
 *
 * Seed generator (writes valid streams with correct checksums):
 *   cc -D_GNU_SOURCE -DLM_FUZZ_SEEDGEN -Iinclude -Isrc tests/fuzz_receiver.c \
 *      out/release/liblivemig.a -lpthread -o /tmp/seedgen_rx && \
 *   /tmp/seedgen_rx tests/seeds/fuzz_receiver
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "receiver/receiver.h"
#include "wire.h"
#include "zero.h"

/* The loop's result for the current input, shown when an invariant fails
 * (and checked by the seed generator). */
static int fz_last_rc;
static char fz_last_msg[256];

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr,                                                  \
				"fuzz_receiver: invariant failed at %s:%d: %s "          \
				"(loop returned %d \"%s\")\n",                          \
				__FILE__, __LINE__, #c, fz_last_rc, fz_last_msg);        \
			__builtin_trap();                                                \
		}                                                                        \
	} while (0)

#define PS 4096u
#define NREGIONS 2
static const uint64_t region_len[NREGIONS] = {8 * PS, 3 * PS + 100};
static const char *const region_name[NREGIONS] = {"ram", "heap"};

#define CFG_TWO_CHANNELS 1u
#define CFG_SMALL_PACKETS 2u
#define CFG_FRESH_1 4u
#define CFG_ROUND_ACK 8u /* the session accepted ROUND_ACK: channel 0 acks rounds */

static int fill_memfd(const uint8_t *p, size_t n)
{
	int fd = memfd_create("fuzz_receiver", MFD_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void check_fresh(const lm__rx_region *g)
{
	uint64_t pages = (g->len + PS - 1) / PS, words = pages / 64 + 1;

	for (uint64_t i = 0; i < pages; i++) {
		uint64_t off = i * PS, n = g->len - off < PS ? g->len - off : PS;
		if (!(g->written[i / 64] & (1ull << (i % 64))))
			CHECK(lm__is_zero(g->base + off, (size_t)n));
	}
	for (uint64_t i = pages; i < words * 64; i++)
		CHECK(!(g->written[i / 64] & (1ull << (i % 64))));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lm_receiver *r;
	lm__rx_chan *ch;
	lm__err e = {0};
	uint8_t cfg;
	int fd, rc;

	if (size < 1)
		return 0;
	cfg = data[0];
	lm__zero_init();
	r = calloc(1, sizeof(*r));
	if (!r)
		return 0;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->listen_fd = -1;
	r->wake_fd = -1;
	r->cfg.timeout_ms = 1000;
	r->cfg.max_channels = LM_MAX_CHANNELS;
	r->have_session = 1;
	memset(r->session, 0x5a, sizeof(r->session));
	r->channels = (cfg & CFG_TWO_CHANNELS) ? 2 : 1;
	r->page_size = PS;
	r->packet_pages = (cfg & CFG_SMALL_PACKETS) ? 3 : 128;
	r->features = (cfg & CFG_ROUND_ACK) ? LM_FEAT_ROUND_ACK : 0;
	r->codec = LM_CODEC_NONE;
	r->region_count = NREGIONS;
	for (int i = 0; i < NREGIONS; i++) {
		lm__rx_region *g = &r->regions[i];
		int fresh = (i == 1) == !!(cfg & CFG_FRESH_1);

		snprintf(g->name, sizeof(g->name), "%s", region_name[i]);
		g->len = region_len[i];
		g->user_added = 1;
		g->announced = 1;
		g->fresh = fresh;
		g->claimed = calloc((g->len + PS - 1) / PS / 64 + 1, sizeof(uint64_t));
		if (fresh) {
			g->base = calloc(1, g->len);
			g->written = calloc((g->len + PS - 1) / PS / 64 + 1, sizeof(uint64_t));
		} else {
			g->base = malloc(g->len);
			if (g->base)
				memset(g->base, 0xa5, g->len);
		}
		CHECK(g->base && g->claimed && (!fresh || g->written));
		CHECK(lm__sumtree_init(&g->sum, g->base, g->len, PS, g->written) == 0);
		r->by_id[i] = g;
		r->region_len[i] = g->len;
	}
	r->nuser = NREGIONS;
	r->regions_ready = 1;
	r->connected = r->channels;
	if (r->channels > 1)
		/* Channel 1 never runs here: it is "ahead", so a COMPLETE on
		 * channel 0 fails its round check (LM_EKIND) instead of waiting. */
		r->synced[1] = UINT32_MAX;

	ch = &r->slots[0];
	ch->r = r;
	ch->slot_used = 1;
	ch->channel = 0;
	r->chan[0] = ch;
	CHECK(lm__rx_chan_alloc(ch) == 0);
	fd = fill_memfd(data + 1, size - 1);
	CHECK(fd >= 0);
	lm__conn_init(&ch->conn, fd, 1000);
	ch->conn.wfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(ch->conn.wfd >= 0);

	rc = lm__rx_data_loop(ch, &e);
	fz_last_rc = rc;
	memcpy(fz_last_msg, e.msg, sizeof(fz_last_msg));
	fz_last_msg[sizeof(fz_last_msg) - 1] = 0;

	CHECK(memchr(e.msg, 0, sizeof(e.msg)) != NULL);
	CHECK(ch->conn.bytes_in <= size - 1);
	if (rc == 0)
		CHECK(r->finishing && r->verifying);
	for (int i = 0; i < NREGIONS; i++) {
		lm__rx_region *g = &r->regions[i];
		uint64_t tree = 0, whole = 0;
		/* Verification ran: every packet before it landed whole (a packet
		 * that fails half-way leaves pages written but not marked; the
		 * session is over then). The fresh bitmap must describe the memory
		 * and the incrementally hashed tree must match it as it is. */
		if (r->verifying) {
			if (g->fresh)
				check_fresh(g);
			CHECK(lm__sumtree_final(&g->sum, 1, &tree) == 0);
			CHECK(lm_region_checksum(g->base, g->len, &whole) == 0);
			CHECK(tree == whole);
		}
	}

	lm__conn_close(&ch->conn);
	lm__rx_chan_free(ch);
	for (int i = 0; i < NREGIONS; i++) {
		free(r->regions[i].base);
		free(r->regions[i].written);
		free(r->regions[i].claimed);
		lm__sumtree_free(&r->regions[i].sum);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* ---- seed generator: what a correct sender sends ---------------------------- */

typedef struct gen {
	uint8_t *buf;
	size_t len, cap;
	uint64_t num;      /* next packet number */
	uint32_t round;
	uint64_t round_packets;
	uint32_t pp;       /* pages per packet */
} gen;

static void gen_put(gen *g, const void *p, size_t n)
{
	if (g->len + n > g->cap) {
		g->cap = (g->len + n) * 2;
		g->buf = realloc(g->buf, g->cap);
		if (!g->buf)
			abort();
	}
	memcpy(g->buf + g->len, p, n);
	g->len += n;
}

/* Page at off of a region, zero-padded past its end (as the sender does). */
static void page_of(const uint8_t *base, uint64_t len, uint64_t off, uint8_t *out)
{
	memset(out, 0, PS);
	memcpy(out, base + off, len - off < PS ? (size_t)(len - off) : PS);
}

/* Data packets for the listed pages of region id, pp pages each. */
static void gen_pages(gen *g, uint32_t id, const uint8_t *base, uint64_t len, const uint32_t *pg,
		      uint32_t n)
{
	for (uint32_t at = 0; at < n; at += g->pp) {
		uint32_t k = n - at < g->pp ? n - at : g->pp, nn = 0, nz = 0;
		uint64_t noff[1024], zoff[1024];
		uint8_t hdr[LM_FRAME_HDR + LM_DATA_HDR], b8[8], page[PS];
		lm__data_hdr d = {0};

		for (uint32_t i = 0; i < k; i++) {
			uint64_t off = (uint64_t)pg[at + i] * PS;
			page_of(base, len, off, page);
			if (lm__is_zero(page, PS))
				zoff[nz++] = off;
			else
				noff[nn++] = off;
		}
		d.packet_num = g->num++;
		d.region = id;
		d.round = g->round;
		d.pages = k;
		d.normal = nn;
		d.zero = nz;
		d.payload = nn * PS;
		gen_put(g, hdr, lm__enc_data_hdr(hdr, &d, (uint32_t)lm__data_body_len(&d)));
		for (uint32_t i = 0; i < nn; i++)
			lm__put64(b8, noff[i]), gen_put(g, b8, 8);
		for (uint32_t i = 0; i < nz; i++)
			lm__put64(b8, zoff[i]), gen_put(g, b8, 8);
		for (uint32_t i = 0; i < nn; i++)
			lm__put32(b8, PS), gen_put(g, b8, 4);
		for (uint32_t i = 0; i < nn; i++) {
			page_of(base, len, noff[i], page);
			gen_put(g, page, PS);
		}
		g->round_packets++;
	}
}

static void gen_all_pages(gen *g, uint32_t id, const uint8_t *base, uint64_t len)
{
	uint32_t pg[64], n = (uint32_t)((len + PS - 1) / PS);

	for (uint32_t i = 0; i < n; i++)
		pg[i] = i;
	gen_pages(g, id, base, len, pg, n);
}

static void gen_sync(gen *g)
{
	uint8_t b[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync s = {g->round, g->round_packets};

	gen_put(g, b, lm__enc_sync(b, &s));
	g->round++;
	g->round_packets = 0;
}

/* COMPLETE with the checksums of content (xor wrong) for the first n regions. */
static void gen_complete_n(gen *g, uint8_t *const *content, uint64_t wrong, uint32_t n)
{
	lm__region_sum sums[NREGIONS];
	uint8_t b[LM_FRAME_HDR + LM_COMPLETE_FIXED + NREGIONS * LM_COMPLETE_ENTRY];

	for (uint32_t i = 0; i < n; i++) {
		uint64_t sum = 0;
		if (lm_region_checksum(content[i], region_len[i], &sum))
			abort();
		sums[i] = (lm__region_sum){i, region_len[i], sum ^ wrong};
	}
	gen_put(g, b, lm__enc_complete(b, sums, n));
}

static void gen_complete(gen *g, uint8_t *const *content, uint64_t wrong)
{
	gen_complete_n(g, content, wrong, NREGIONS);
}

/* Nonzero bytes in page p of a region (a different pattern per seed). */
static void fill_page(uint8_t *base, uint64_t len, uint32_t p, uint32_t seed)
{
	uint64_t off = (uint64_t)p * PS;
	uint32_t x = seed * 2654435761u + p + 1;

	for (uint64_t i = off; i < len && i < off + PS; i++) {
		x = x * 1103515245u + 12345u;
		base[i] = (uint8_t)((x >> 16) | 1);
	}
}

static const char *outdir;

static void write_seed(const char *name, uint8_t cfg, const gen *g, int want_rc)
{
	char path[4096];
	uint8_t *all = malloc(g->len + 1);
	FILE *f;

	all[0] = cfg;
	memcpy(all + 1, g->buf, g->len);
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(all, 1, g->len + 1, f) != g->len + 1 || fclose(f)) {
		perror(path);
		exit(1);
	}
	LLVMFuzzerTestOneInput(all, g->len + 1);
	printf("%s: %zu bytes, loop returned %d (%s)\n", path, g->len + 1, fz_last_rc,
	       lm_strerror(fz_last_rc));
	if (fz_last_rc != want_rc) {
		fprintf(stderr, "%s: expected %d\n", name, want_rc);
		exit(1);
	}
	free(all);
}

static void gen_reset(gen *g, uint32_t pp)
{
	g->len = 0;
	g->num = 0;
	g->round = 0;
	g->round_packets = 0;
	g->pp = pp;
}

/* The content a seed migrates. Variant 0, region 0: pages 0 1 2 4 7 hold
 * data (0-2 contiguous), 3 5 6 are zero; region 1: pages 0 2 and the partial
 * last page 3 (100 bytes) hold data, 1 is zero. Variant 1: all zero but the
 * partial last page. Variant 2: all zero. */
static void init_content(uint8_t *const *content, int variant)
{
	static const uint32_t data0[] = {0, 1, 2, 4, 7}, data1[] = {0, 2, 3};

	for (int i = 0; i < NREGIONS; i++)
		memset(content[i], 0, region_len[i]);
	if (variant == 0) {
		for (unsigned i = 0; i < sizeof(data0) / sizeof(data0[0]); i++)
			fill_page(content[0], region_len[0], data0[i], 1);
		for (unsigned i = 0; i < sizeof(data1) / sizeof(data1[0]); i++)
			fill_page(content[1], region_len[1], data1[i], 1);
	} else if (variant == 1) {
		fill_page(content[1], region_len[1], 3, 1);
	}
}

/* Round 0: every page of both regions, region order as given; sync. */
static void gen_round0(gen *g, uint8_t *const *content, int region1_first)
{
	for (int k = 0; k < NREGIONS; k++) {
		uint32_t id = (uint32_t)(region1_first ? NREGIONS - 1 - k : k);
		gen_all_pages(g, id, content[id], region_len[id]);
	}
	gen_sync(g);
}

int main(int argc, char **argv)
{
	uint8_t *content[NREGIONS];
	gen g = {0};

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	for (int i = 0; i < NREGIONS; i++)
		content[i] = calloc(1, region_len[i]);

	/* 1 channel, 128-page packets: one packet per region, sync, complete. */
	init_content(content, 0);
	gen_reset(&g, 128);
	gen_round0(&g, content, 0);
	gen_complete(&g, content, 0);
	write_seed("one-round", 0, &g, 0);

	/* 2 channels, 3-page packets, region 1 first and fresh. */
	gen_reset(&g, 3);
	gen_round0(&g, content, 1);
	gen_complete(&g, content, 0);
	write_seed("small-packets-fresh1", CFG_SMALL_PACKETS | CFG_FRESH_1, &g, 0);
	/* With 2 channels, channel 1 is "ahead" (it never runs here), so the
	 * receiver refuses the COMPLETE: exercises that check. */
	write_seed("two-channels-complete-refused",
		   CFG_TWO_CHANNELS | CFG_SMALL_PACKETS | CFG_FRESH_1, &g, LM_EKIND);

	/* Small: only zero pages and the partial last page's data. */
	init_content(content, 1);
	gen_reset(&g, 128);
	gen_round0(&g, content, 0);
	gen_complete(&g, content, 0);
	write_seed("tail-page-only", CFG_FRESH_1, &g, 0);

	/* Smallest: every page zero, 3-page packets. */
	init_content(content, 2);
	gen_reset(&g, 3);
	gen_round0(&g, content, 0);
	gen_complete(&g, content, 0);
	write_seed("all-zero-pages", CFG_SMALL_PACKETS, &g, 0);

	/* Well-formed, but the COMPLETE lists one region of the session's two. */
	gen_reset(&g, 3);
	gen_round0(&g, content, 0);
	gen_complete_n(&g, content, 0, 1);
	write_seed("complete-one-region-short", CFG_SMALL_PACKETS, &g, LM_EFIELD);

	/* Same as tail-page-only, but the sender's checksum of region 1 is off. */
	init_content(content, 1);
	gen_reset(&g, 128);
	gen_round0(&g, content, 0);
	gen_complete(&g, content, 1);
	write_seed("checksum-mismatch", 0, &g, LM_ECHECKSUM);

	/* Round 0 as one-round, then round 1 resends dirty pages: pages that
	 * became zero (written pages of the fresh region must be cleared),
	 * changed pages next to each other, a page that became data, and a
	 * changed partial last page. */
	init_content(content, 0);
	gen_reset(&g, 128);
	gen_round0(&g, content, 0);
	{
		static const uint32_t dirty0[] = {1, 2, 3, 7};
		static const uint32_t dirty1[] = {0, 3};
		fill_page(content[0], region_len[0], 1, 2);
		memset(content[0] + 2 * PS, 0, PS);
		fill_page(content[0], region_len[0], 3, 2);
		memset(content[0] + 7 * PS, 0, PS);
		memset(content[1], 0, PS);
		fill_page(content[1], region_len[1], 3, 2);
		gen_pages(&g, 0, content[0], region_len[0], dirty0, 4);
		gen_pages(&g, 1, content[1], region_len[1], dirty1, 2);
	}
	gen_sync(&g);
	gen_complete(&g, content, 0);
	write_seed("two-rounds", 0, &g, 0);
	/* The same stream with the other region fresh. */
	write_seed("two-rounds-fresh1", CFG_FRESH_1, &g, 0);
	write_seed("two-rounds-round-ack", CFG_FRESH_1 | CFG_ROUND_ACK, &g, 0);

	/* Zero pages, sync, then the sender reports an error. */
	init_content(content, 2);
	gen_reset(&g, 3);
	gen_all_pages(&g, 0, content[0], region_len[0]);
	gen_sync(&g);
	{
		uint8_t b[LM_ERROR_FRAME_BOUND];
		gen_put(&g, b, lm__enc_error(b, -104, 0, "send: Connection reset by peer"));
	}
	write_seed("zero-pages-then-peer-error", CFG_SMALL_PACKETS, &g, LM_EPEER);

	for (int i = 0; i < NREGIONS; i++)
		free(content[i]);
	free(g.buf);
	return 0;
}
#endif
