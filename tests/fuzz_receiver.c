/*
 * libFuzzer target: the receiver's real per-channel loop, lm__rx_data_loop(),
 * reading the fuzz input as channel 0's byte stream after the handshake,
 * with every codec.
 *
 * Input layout:
 *   byte 0   session shape: bit 0 channels 2 (else 1); bit 1 packet_pages 3
 *            (else 128); bit 2 region 1 is the fresh one (else region 0);
 *            bit 3 the session agreed ROUND_ACK, REF and DELTA, as a 0.2
 *            sender and receiver do (acks go to /dev/null; the receiver
 *            keeps its landing records, so DATA may carry ref and delta
 *            pages; without the bit they are LM_EFEATURE);
 *            bits 4-6 the codec (table `shapes` below: 0 none, 1 deflate
 *            (isal), 2 zstd, 3 lz4, 4 zlib, 5 deflate (zlib engine), 6 and 7
 *            deflate through the scripted test accelerator, which refuses,
 *            fails or loses some jobs so software takes over);
 *            bit 7 page size 8192 (else 4096).
 *            Bit 3 with codec none (shape 0) is a MIXED session (codec
 *            auto): DATA may name any codec, a channel's decoding context
 *            is made on its codec's first packet, FEEDBACK goes to
 *            /dev/null; codec none alone stays covered without bit 3.
 *            Bit 3 with shape 2 (zstd) or 5 (deflate, zlib engine) also
 *            agrees PACKED: the tables are varints (docs/protocol.md,
 *            "Packed tables"), as a sender and receiver of this version
 *            agree; shapes 1, 3, 4 and 6 keep the fixed tables with refs
 *            and deltas.
 *            Bit 3 with shape 7 also agrees DEVSTATE: DEVSTATE pieces go
 *            to a callback that checks their order (and refuses a piece
 *            that starts with 0xee), the receiver's device_state_max is
 *            1 MiB, and COMPLETE needs a right DEVSTATE_END.
 *   rest     what the sender would send after the hello ack: DATA, SYNC,
 *            COMPLETE, ERROR frames. It is put in a memfd the conn reads;
 *            the conn writes (the completion ack) go to /dev/null.
 *            In a compressed session a DATA frame may name codec none (the
 *            sender's raw fallback); deflate pages of length == page size
 *            travel raw inside a deflate packet.
 *
 * The session, as if the handshake had happened: two regions of fixed byte
 * lengths, each in its own mapping between PROT_NONE guard pages, ending
 * exactly at the upper guard when page-aligned:
 *   region 0 "ram"  32768 bytes (8 pages of 4 KiB, 4 of 8 KiB)
 *   region 1 "heap" 12388 bytes (a partial last page either way)
 * The bytes between a region's end and its guard page are ASan-poisoned and
 * hold a canary, and the channel's bounce page for partial last pages is
 * replaced by one that ends at a guard page: the compression libraries are
 * not instrumented, so guards and canaries are what catch their writes out
 * of bounds. One region is fresh (zeroed, with a `written` bitmap), the
 * other holds stale bytes (0xa5) that zero pages must clear. With 2
 * channels, channel 1 counts as synced for every round so a COMPLETE does
 * not wait for it.
 *
 * Checked after each input (violations __builtin_trap()):
 *  - the loop returns; 0 only after a verified COMPLETE; any other result
 *    is one of the protocol's codes for bad input (never -EIO, -ENOMEM,
 *    ...), with a message; a message for a bad value (LM_EFIELD,
 *    LM_EDECODE, LM_ECODEC, LM_EBADMAGIC, LM_EFEATURE) names the field
 *    ("data.payload", "sync.round", ...), and a LM_EDECODE one the packet;
 *  - nothing was written past a region's end (canaries intact);
 *  - once a COMPLETE got as far as verification (so every packet before it
 *    landed whole): in the fresh region every page whose `written` bit is
 *    clear is all zero and no bit past the last page is set; and each
 *    region's incrementally built checksum tree (lm__sumtree_final) equals
 *    lm_region_checksum() of its bytes as they are.
 *
 * A same-round ref whose source has not landed fails at once (channel 0 is
 * the only one running and channel 1 counts as synced): no input waits.
 *
 * Seeds (tests/seeds/fuzz_receiver/): valid streams with correct checksums
 * made with the real encoders (the codec's ctx_new/encode, as the sender
 * uses them), plus a few made invalid on purpose. The generator is the
 * LM_FUZZ_SEEDGEN part of this file; the build makes it as
 * seedgen_fuzz_receiver (never run by ctest):
 *   out/asan/tests/seedgen_fuzz_receiver tests/seeds/fuzz_receiver
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>

#include "accel_script.h"
#include "codec/delta.h"
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

#define PS 4096u        /* the small page size, and the guard granularity */
#define PS_BIG 8192u
#define NREGIONS 2
static const uint64_t region_len[NREGIONS] = {8 * PS, 3 * PS + 100};
static const char *const region_name[NREGIONS] = {"ram", "heap"};

#define CFG_TWO_CHANNELS 1u
#define CFG_SMALL_PACKETS 2u
#define CFG_FRESH_1 4u
#define CFG_ROUND_ACK 8u /* ROUND_ACK (channel 0 acks rounds), REF and DELTA agreed */
#define CFG_CODEC(i) ((uint8_t)((i) << 4))
#define CFG_BIG_PAGES 0x80u
#define PACKED_SHAPE(i) ((i) == 2 || (i) == 5) /* with CFG_ROUND_ACK: LM_FEAT_PACKED */

/* Codec choices, by bits 4-6 of byte 0. accel: 0 none, 1 and 2 the
 * scripted accelerator with two patterns of trouble. */
static const struct shape {
	uint16_t codec;
	lm_engine_id engine;
	int accel;
} shapes[8] = {
	{LM_CODEC_NONE, LM_ENGINE_DEFAULT, 0}, {LM_CODEC_DEFLATE, LM_ENGINE_ISAL, 0},
	{LM_CODEC_ZSTD, LM_ENGINE_DEFAULT, 0}, {LM_CODEC_LZ4, LM_ENGINE_DEFAULT, 0},
	{LM_CODEC_ZLIB, LM_ENGINE_DEFAULT, 0}, {LM_CODEC_DEFLATE, LM_ENGINE_ZLIB, 0},
	{LM_CODEC_DEFLATE, LM_ENGINE_ISAL, 1}, {LM_CODEC_DEFLATE, LM_ENGINE_ZLIB, 2},
};

#define CANARY 0xcc

/* A region's memory: [guard][rw: len rounded up to PS][guard]. */
typedef struct fz_map {
	uint8_t *map, *base;
	size_t rw;
} fz_map;

static fz_map maps[NREGIONS];
static fz_map tail_map; /* rw PS_BIG: the bounce page ends at its guard */

static void map_guarded(fz_map *m, size_t len)
{
	m->rw = (len + PS - 1) / PS * PS;
	m->map = mmap(NULL, m->rw + 2 * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m->map != MAP_FAILED);
	m->base = m->map + PS;
	CHECK(mprotect(m->base, m->rw, PROT_READ | PROT_WRITE) == 0);
}

static void setup_maps(void)
{
	if (maps[0].map)
		return;
	for (int i = 0; i < NREGIONS; i++) {
		map_guarded(&maps[i], region_len[i]);
		memset(maps[i].base + region_len[i], CANARY, maps[i].rw - region_len[i]);
		ASAN_POISON_MEMORY_REGION(maps[i].base + region_len[i],
					  maps[i].rw - region_len[i]);
	}
	map_guarded(&tail_map, PS_BIG);
}

static void check_canary(int i)
{
	const uint8_t *p = maps[i].base + region_len[i];
	size_t n = maps[i].rw - region_len[i];

	ASAN_UNPOISON_MEMORY_REGION(p, n);
	for (size_t k = 0; k < n; k++)
		CHECK(p[k] == CANARY);
	ASAN_POISON_MEMORY_REGION(p, n);
}

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

static void check_fresh(const lm__rx_region *g, uint32_t ps)
{
	uint64_t pages = (g->len + ps - 1) / ps, words = pages / 64 + 1;

	for (uint64_t i = 0; i < pages; i++) {
		uint64_t off = i * ps, n = g->len - off < ps ? g->len - off : ps;
		if (!(g->written[i / 64] & (1ull << (i % 64))))
			CHECK(lm__is_zero(g->base + off, (size_t)n));
	}
	for (uint64_t i = pages; i < words * 64; i++)
		CHECK(!(g->written[i / 64] & (1ull << (i % 64))));
}

/* The codes bad input may produce in the data loop over a memfd (which
 * never stalls: no LM_ETIMEDOUT). */
static int expected_code(int rc)
{
	switch (rc) {
	case 0:
	case LM_EBADMAGIC:
	case LM_EFIELD:
	case LM_ECODEC:
	case LM_EFEATURE:
	case LM_EKIND:
	case LM_ECHECKSUM:
	case LM_EPEER:
	case LM_EEOF:
	case LM_EDECODE:
	case LM_ELIMIT:
		return 1;
	default:
		return 0;
	}
}

/* "kind.field" as the protocol's tables name them. */
static int names_field(const char *msg)
{
	static const char *const kinds[] = {"frame.", "hello.", "region.", "data.",
					    "sync.", "complete.", "error.", "ack.", "devstate.",
					    "devstate_end."};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strstr(msg, kinds[i]))
			return 1;
	return 0;
}

/* DEVSTATE sessions: the pieces must come in order, whole; a piece that
 * starts with 0xee is refused (the application's refusal). */
static uint64_t fz_ds_next;

static int fz_load_state(void *user, uint64_t off, const void *buf, size_t len)
{
	(void)user;
	if (!buf)
		return off == fz_ds_next ? 0 : (__builtin_trap(), 0);
	if (off != fz_ds_next || !len || len > LM_DEVSTATE_MAX_PIECE)
		__builtin_trap();
	fz_ds_next += len;
	return ((const uint8_t *)buf)[0] == 0xee ? LM_EPEER : 0;
}

static void setup_accel(int pattern)
{
	accel_script_reset();
	if (pattern == 1) {
		accel_script_every(5, 1, AS_FAIL, 0);
		accel_script_every(7, 3, AS_BUSY, 0);
		accel_script_every(11, 2, AS_SUBMIT_ERR, 0);
	} else {
		accel_script_every(3, 0, AS_WAIT_ERR, 0);
		accel_script_every(4, 1, AS_LATE, 2);
		accel_script_every(2, 1, AS_BUSY, 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lm_receiver *r;
	lm__rx_chan *ch;
	lm__err e = {0};
	const struct shape *sh;
	uint8_t cfg;
	uint32_t ps;
	int fd, rc;

	if (size < 1)
		return 0;
	cfg = data[0];
	sh = &shapes[(cfg >> 4) & 7];
	ps = (cfg & CFG_BIG_PAGES) ? PS_BIG : PS;
	lm__zero_init();
	setup_maps();
	if (sh->accel)
		setup_accel(sh->accel);
	r = calloc(1, sizeof(*r));
	if (!r)
		return 0;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->listen_fd = -1;
	r->wake_fd = -1;
	r->cfg.timeout_ms = 1000;
	r->cfg.max_channels = LM_MAX_CHANNELS;
	r->cfg.accel = LM_ACCEL_OFF;
	r->cfg.engine = sh->engine;
	r->accel_ops = sh->accel ? &accel_script_ops : NULL;
	r->have_session = 1;
	memset(r->session, 0x5a, sizeof(r->session));
	r->channels = (cfg & CFG_TWO_CHANNELS) ? 2 : 1;
	r->page_size = ps;
	r->packet_pages = (cfg & CFG_SMALL_PACKETS) ? 3 : 128;
	r->features = (cfg & CFG_ROUND_ACK) ? LM_FEAT_ROUND_ACK | LM_FEAT_REF | LM_FEAT_DELTA : 0;
	r->codec = sh->codec;
	if ((cfg & CFG_ROUND_ACK) && sh->codec == LM_CODEC_NONE) {
		r->features |= LM_FEAT_MIXED; /* codec auto: see the layout above */
		r->codec = LM_CODEC_AUTO;
	}
	if ((cfg & CFG_ROUND_ACK) && PACKED_SHAPE((cfg >> 4) & 7))
		r->features |= LM_FEAT_PACKED;
	fz_ds_next = 0;
	if ((cfg & CFG_ROUND_ACK) && ((cfg >> 4) & 7) == 7) {
		r->features |= LM_FEAT_DEVSTATE; /* see the layout above */
		r->cfg.device_state = fz_load_state;
		r->cfg.device_state_max = 1u << 20;
	}
	r->region_count = NREGIONS;
	for (int i = 0; i < NREGIONS; i++) {
		lm__rx_region *g = &r->regions[i];
		int fresh = (i == 1) == !!(cfg & CFG_FRESH_1);

		snprintf(g->name, sizeof(g->name), "%s", region_name[i]);
		g->len = region_len[i];
		g->user_added = 1;
		g->announced = 1;
		g->fresh = fresh;
		g->base = maps[i].base;
		memset(g->base, fresh ? 0 : 0xa5, g->len);
		g->claimed = calloc((g->len + ps - 1) / ps / 64 + 1, sizeof(uint64_t));
		CHECK(g->claimed);
		if (r->features & (LM_FEAT_REF | LM_FEAT_DELTA)) {
			/* as src/receiver/session.c keeps them */
			g->landed = calloc((g->len + ps - 1) / ps, sizeof(uint32_t));
			g->pinned = calloc((g->len + ps - 1) / ps / 64 + 1, sizeof(uint64_t));
			CHECK(g->landed && g->pinned);
		}
		if (fresh) {
			g->written = calloc((g->len + ps - 1) / ps / 64 + 1, sizeof(uint64_t));
			CHECK(g->written);
		}
		CHECK(lm__sumtree_init(&g->sum, g->base, g->len, ps, g->written) == 0);
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
	/* The bounce page, as the library allocated it, but ending at a guard. */
	free(ch->tail);
	ch->tail = tail_map.base + tail_map.rw - ps;
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
	CHECK(expected_code(rc));
	if (rc)
		CHECK(e.msg[0]);
	if (rc == LM_EFIELD || rc == LM_EDECODE || rc == LM_ECODEC || rc == LM_EBADMAGIC ||
	    rc == LM_EFEATURE)
		CHECK(names_field(e.msg));
	if (rc == LM_EDECODE)
		CHECK(strncmp(e.msg, "packet ", 7) == 0);
	if (rc == 0)
		CHECK(r->finishing && r->verifying);
	for (int i = 0; i < NREGIONS; i++) {
		lm__rx_region *g = &r->regions[i];
		uint64_t tree = 0, whole = 0;
		check_canary(i);
		/* Verification ran: every packet before it landed whole (a packet
		 * that fails half-way leaves pages written but not marked; the
		 * session is over then). The fresh bitmap must describe the memory
		 * and the incrementally hashed tree must match it as it is. */
		if (r->verifying) {
			if (g->fresh)
				check_fresh(g, ps);
			CHECK(lm__sumtree_final(&g->sum, 1, &tree) == 0);
			CHECK(lm_region_checksum(g->base, g->len, &whole) == 0);
			CHECK(tree == whole);
		}
	}

	lm__conn_close(&ch->conn);
	ch->tail = NULL; /* ours */
	lm__rx_chan_free(ch);
	lm__sumstream_free(&r->ds_sum);
	for (int i = 0; i < NREGIONS; i++) {
		free(r->regions[i].written);
		free(r->regions[i].claimed);
		free(r->regions[i].landed);
		free(r->regions[i].pinned);
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
	uint32_t ps;       /* page size */
	const lm__codec_ops *ops; /* the session's codec */
	void *ctx;
	int damage;        /* flip a byte of the next coded payload */
	int packed;        /* packed tables (a PACKED_SHAPE session's seeds) */
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
/* A DATA frame's header and tables, fixed or packed as the session has
 * them: off[] the normal, zero, ref and delta pages' offsets (d's counts),
 * lens[] the normal and area pages' lengths. */
static void gen_tables(gen *g, const lm__data_hdr *d, const uint64_t *const off[4],
		       const lm__ref *refs, const lm__delta *deltas, const uint32_t *lens)
{
	static uint8_t t[128 * LM_DATA_PAGE_TABLES];
	const uint32_t n[4] = {d->normal, d->zero, d->ref, d->delta};
	uint8_t hdr[LM_FRAME_HDR + LM_DATA_HDR], b8[16];

	if (g->packed) {
		const lm__codec_ops *ops = lm__codec_get(d->codec_flags);
		size_t tn = lm__enc_data_packed(t, d, g->ps, off, refs, deltas, lens,
						ops->per_page && !ops->raw_only);
		gen_put(g, hdr, lm__enc_data_hdr(hdr, d, (uint32_t)(LM_DATA_HDR + tn + d->payload)));
		gen_put(g, t, tn);
		return;
	}
	gen_put(g, hdr, lm__enc_data_hdr(hdr, d, (uint32_t)lm__data_body_len(d)));
	for (int k = 0; k < 4; k++)
		for (uint32_t i = 0; i < n[k]; i++)
			lm__put64(b8, off[k][i]), gen_put(g, b8, 8);
	for (uint32_t i = 0; i < d->ref; i++) {
		lm__put32(b8, refs[i].src_region);
		lm__put32(b8 + 4, refs[i].src_round);
		lm__put64(b8 + 8, refs[i].src_offset);
		gen_put(g, b8, LM_REF_ENTRY);
	}
	for (uint32_t i = 0; i < d->delta; i++) {
		lm__put32(b8, deltas[i].base_round);
		lm__put32(b8 + 4, deltas[i].len);
		gen_put(g, b8, LM_DELTA_ENTRY);
	}
	for (uint32_t i = 0; i < d->normal + d->area; i++)
		lm__put32(b8, lens[i]), gen_put(g, b8, 4);
}

static void page_of(const gen *g, const uint8_t *base, uint64_t len, uint64_t off, uint8_t *out)
{
	memset(out, 0, g->ps);
	memcpy(out, base + off, len - off < g->ps ? (size_t)(len - off) : g->ps);
}

/* Data packets for the listed pages of region id, pp pages each, encoded
 * as the sender does (src/sender/channel.c): per-page codecs list each
 * page's encoded length (page size = raw, sent as is, in page order);
 * per-packet codecs send one block, or the packet with codec none when it
 * does not shrink. */
static void gen_pages(gen *g, uint32_t id, const uint8_t *base, uint64_t len, const uint32_t *pg,
		      uint32_t n)
{
	static uint8_t pages[128][PS_BIG], enc[2 * 128 * PS_BIG];
	uint32_t ps = g->ps;

	for (uint32_t at = 0; at < n; at += g->pp) {
		uint32_t k = n - at < g->pp ? n - at : g->pp, nn = 0, nz = 0, lens[128];
		uint64_t noff[128], zoff[128], payload = 0;
		const void *pp[128];
		size_t enc_len = 0;
		uint16_t codec = LM_CODEC_NONE;
		lm__data_hdr d = {0};

		if (k > 128)
			abort();
		for (uint32_t i = 0; i < k; i++) {
			uint64_t off = (uint64_t)pg[at + i] * ps;
			page_of(g, base, len, off, pages[nn]);
			if (lm__is_zero(pages[nn], ps)) {
				zoff[nz++] = off;
			} else {
				pp[nn] = pages[nn];
				noff[nn++] = off;
			}
		}
		for (uint32_t i = 0; i < nn; i++)
			lens[i] = ps;
		if (nn && g->ops->id != LM_CODEC_NONE) {
			int rc = g->ops->encode(g->ctx, pp, nn, ps, enc, sizeof(enc), lens, &enc_len);
			if (rc == 0)
				codec = g->ops->id;
			else if (rc != LM_ECODEC)
				abort();
			else
				for (uint32_t i = 0; i < nn; i++)
					lens[i] = ps;
		}
		if (codec != LM_CODEC_NONE && g->damage && enc_len) {
			enc[enc_len / 2] ^= 0x55;
			g->damage = 0;
		}
		if (codec != LM_CODEC_NONE && !g->ops->per_page)
			payload = enc_len;
		else
			for (uint32_t i = 0; i < nn; i++)
				payload += lens[i];
		d.packet_num = g->num++;
		d.region = id;
		d.round = g->round;
		d.pages = k;
		d.normal = nn;
		d.zero = nz;
		d.payload = (uint32_t)payload;
		d.codec_flags = codec;
		gen_tables(g, &d, (const uint64_t *const[4]){noff, zoff, NULL, NULL}, NULL, NULL,
			   lens);
		if (codec != LM_CODEC_NONE && !g->ops->per_page) {
			gen_put(g, enc, enc_len);
		} else {
			const uint8_t *e = enc;
			for (uint32_t i = 0; i < nn; i++) {
				if (lens[i] == ps) {
					gen_put(g, pages[i], ps);
				} else {
					gen_put(g, e, lens[i]);
					e += lens[i];
				}
			}
		}
		g->round_packets++;
	}
}

static void gen_all_pages(gen *g, uint32_t id, const uint8_t *base, uint64_t len)
{
	uint32_t pg[64], n = (uint32_t)((len + g->ps - 1) / g->ps);

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

/* Compressible bytes (words from a small vocabulary) in page p. */
static void fill_text(uint8_t *base, uint64_t len, uint32_t p, uint32_t seed)
{
	static const char *const words[] = {"page ", "region ", "round ", "sync ", "zero ",
					    "packet ", "codec ", "channel "};
	uint64_t off = (uint64_t)p * PS, i = off;
	uint32_t x = seed * 2654435761u + p + 7;

	while (i < len && i < off + PS) {
		const char *w;
		x = x * 1103515245u + 12345u;
		for (w = words[(x >> 16) % 8]; *w && i < len && i < off + PS; w++)
			base[i++] = (uint8_t)*w;
	}
}

/* Incompressible bytes in page p: no codec shrinks them. */
static void fill_noise(uint8_t *base, uint64_t len, uint32_t p, uint32_t seed)
{
	uint64_t off = (uint64_t)p * PS, x = 0x9e3779b97f4a7c15ull * (seed * 64 + p + 1);

	for (uint64_t i = off; i < len && i < off + PS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		base[i] = (uint8_t)(x >> 24);
	}
}

/* One packet with every page kind, as the sender plans it (src/codec/kinds.c):
 * normal pages from the content, zero pages, refs (the caller made their
 * content equal to the source's), and deltas of the content against old
 * (the version the receiver holds, which landed in base_round), encoded with
 * the library's XOR-run encoder into the delta area; the codec encodes the
 * normal pages and then the area's pages. */
typedef struct gk {
	uint32_t nn, nz, nr, nd;
	uint64_t noff[8], zoff[8], roff[8], doff[8];
	lm__ref ref[8];
	uint32_t base[8];
	const uint8_t *old[8]; /* the page as the receiver holds it */
} gk;

static void gen_kinds(gen *g, uint32_t id, const uint8_t *base, uint64_t len, const gk *k)
{
	static uint8_t pages[16][PS_BIG], area[8 * PS_BIG], enc[2 * 16 * PS_BIG];
	uint32_t ps = g->ps, alen = 0, na, nc, lens[16], dlen[8];
	lm__delta dl[8];
	const void *pp[16];
	uint64_t payload = 0;
	size_t enc_len = 0;
	uint16_t codec = LM_CODEC_NONE;
	lm__data_hdr d = {0};

	memset(area, 0, sizeof(area));
	for (uint32_t i = 0; i < k->nd; i++) {
		size_t n = lm__delta_encode(k->old[i], base + k->doff[i], ps, area + alen, ps / 2);
		if (n == LM_DELTA_TOO_BIG)
			abort();
		dlen[i] = (uint32_t)n;
		alen += (uint32_t)n;
	}
	na = (alen + ps - 1) / ps;
	nc = k->nn + na;
	for (uint32_t i = 0; i < k->nn; i++)
		page_of(g, base, len, k->noff[i], pages[i]);
	for (uint32_t i = 0; i < na; i++)
		memcpy(pages[k->nn + i], area + (size_t)i * ps, ps);
	for (uint32_t i = 0; i < nc; i++) {
		pp[i] = pages[i];
		lens[i] = ps;
	}
	if (nc && g->ops->id != LM_CODEC_NONE) {
		int rc = g->ops->encode(g->ctx, pp, nc, ps, enc, sizeof(enc), lens, &enc_len);
		if (rc == 0)
			codec = g->ops->id;
		else if (rc != LM_ECODEC)
			abort();
		else
			for (uint32_t i = 0; i < nc; i++)
				lens[i] = ps;
	}
	if (codec != LM_CODEC_NONE && !g->ops->per_page)
		payload = enc_len;
	else
		for (uint32_t i = 0; i < nc; i++)
			payload += lens[i];
	d.packet_num = g->num++;
	d.region = id;
	d.round = g->round;
	d.normal = k->nn;
	d.zero = k->nz;
	d.ref = k->nr;
	d.delta = (uint16_t)k->nd;
	d.pages = k->nn + k->nz + k->nr + k->nd;
	d.area = na;
	d.payload = (uint32_t)payload;
	d.codec_flags = codec;
	for (uint32_t i = 0; i < k->nd; i++)
		dl[i] = (lm__delta){k->base[i], dlen[i]};
	gen_tables(g, &d, (const uint64_t *const[4]){k->noff, k->zoff, k->roff, k->doff}, k->ref, dl,
		   lens);
	if (codec != LM_CODEC_NONE && !g->ops->per_page) {
		gen_put(g, enc, enc_len);
	} else {
		const uint8_t *e = enc;
		for (uint32_t i = 0; i < nc; i++) {
			if (lens[i] == ps) {
				gen_put(g, pages[i], ps);
			} else {
				gen_put(g, e, lens[i]);
				e += lens[i];
			}
		}
	}
	g->round_packets++;
}

static void init_content(uint8_t *const *content, int variant);

/* Page p of region i becomes a copy of page q of region j. */
static void copy_page(uint8_t *const *content, uint32_t i, uint32_t p, uint32_t j, uint32_t q)
{
	memcpy(content[i] + (uint64_t)p * PS, content[j] + (uint64_t)q * PS, PS);
}

/* A few bytes of page p of region i change (a delta's worth). */
static void touch_page(uint8_t *const *content, uint32_t i, uint32_t p, uint32_t seed)
{
	uint8_t *b = content[i] + (uint64_t)p * PS;

	for (uint32_t k = 0; k < 6; k++)
		b[(seed * 977 + k * 613) % PS] ^= (uint8_t)(0x11 * (k + 1));
	memset(b + 2000 + seed * 8, (int)(0x40 + seed), 24);
}

/* Ref and delta seeds (REF and DELTA agreed: CFG_ROUND_ACK). codec: the
 * session's; pp pages a packet. Round 0: region 0 as init_content(0), page
 * 3 a copy of page 0 (a same-round ref in the same packet as its source),
 * region 1 page 1 a copy of region 0 page 2 (same round, another packet);
 * round 1: deltas on pages 0 and 7, page 5 a copy of round 0's page 4
 * (earlier round), region 1 page 0 a ref to region 0 page 2 of round 0;
 * round 2: a delta on page 0 again (base round 1), page 6 a ref to page 7
 * as it landed in round 1 (a delta page), page 5 a zero page. bad: make it
 * a chain (page 6's source is the ref page 5 of round 1). */
static void gen_kinds_session(gen *g, uint8_t *const *content, int bad)
{
	static uint8_t old[8][PS];
	gk k;

	init_content(content, 0);
	copy_page(content, 0, 3, 0, 0);
	copy_page(content, 1, 1, 0, 2);
	memset(&k, 0, sizeof(k));
	k.nn = 3;
	k.noff[0] = 0, k.noff[1] = PS, k.noff[2] = 2 * PS;
	k.nr = 1;
	k.roff[0] = 3 * PS;
	k.ref[0] = (lm__ref){0, 0, 0};
	gen_kinds(g, 0, content[0], region_len[0], &k);
	gen_pages(g, 0, content[0], region_len[0], (const uint32_t[]){4, 5, 6, 7}, 4);
	memset(&k, 0, sizeof(k));
	k.nn = 3;
	k.noff[0] = 0, k.noff[1] = 2 * PS, k.noff[2] = 3 * PS;
	k.nr = 1;
	k.roff[0] = PS;
	k.ref[0] = (lm__ref){0, 0, 2 * PS};
	gen_kinds(g, 1, content[1], region_len[1], &k);
	gen_sync(g);

	memcpy(old[0], content[0], PS);
	memcpy(old[1], content[0] + 7 * PS, PS);
	touch_page(content, 0, 0, 1);
	touch_page(content, 0, 7, 2);
	copy_page(content, 0, 5, 0, 4);
	copy_page(content, 1, 0, 0, 2);
	memset(&k, 0, sizeof(k));
	k.nr = 1;
	k.roff[0] = 5 * PS;
	k.ref[0] = (lm__ref){0, 0, 4 * PS};
	k.nd = 2;
	k.doff[0] = 0, k.doff[1] = 7 * PS;
	k.old[0] = old[0], k.old[1] = old[1];
	gen_kinds(g, 0, content[0], region_len[0], &k);
	memset(&k, 0, sizeof(k));
	k.nr = 1;
	k.roff[0] = 0;
	k.ref[0] = (lm__ref){0, 0, 2 * PS};
	gen_kinds(g, 1, content[1], region_len[1], &k);
	gen_sync(g);

	memcpy(old[0], content[0], PS);
	touch_page(content, 0, 0, 3);
	copy_page(content, 0, 6, 0, bad ? 5 : 7);
	memset(content[0] + 5 * PS, 0, PS);
	memset(&k, 0, sizeof(k));
	k.nz = 1;
	k.zoff[0] = 5 * PS;
	k.nd = 1;
	k.doff[0] = 0;
	k.base[0] = 1;
	k.old[0] = old[0];
	gen_kinds(g, 0, content[0], region_len[0], &k);
	memset(&k, 0, sizeof(k));
	k.nr = 1;
	k.roff[0] = 6 * PS;
	k.ref[0] = (lm__ref){0, 1, bad ? 5 * PS : 7 * PS};
	gen_kinds(g, 0, content[0], region_len[0], &k);
	gen_sync(g);
	gen_complete(g, content, 0);
}

/* A DEVSTATE session: every page, the state in two pieces, sync, the
 * state's end (its checksum xor wrong), complete. */
static void gen_devstate_session(gen *g, uint8_t *const *content, uint64_t wrong)
{
	static const char st[] = "vcpu0 rip=0x1000 rsp=0x8000; vcpu1 halted; uart lcr=3";
	uint8_t b[LM_FRAME_HDR + LM_DEVSTATE_FIXED];
	lm__devstate d = {0, 20};
	lm__devstate_end de = {sizeof(st) - 1, 0};

	for (uint32_t id = 0; id < NREGIONS; id++)
		gen_all_pages(g, id, content[id], region_len[id]);
	gen_put(g, b, lm__enc_devstate(b, &d));
	gen_put(g, st, d.len);
	d.off = 20;
	d.len = (uint32_t)(sizeof(st) - 1 - 20);
	gen_put(g, b, lm__enc_devstate(b, &d));
	gen_put(g, st + 20, d.len);
	gen_sync(g);
	if (lm_region_checksum(st, de.total, &de.checksum))
		abort();
	de.checksum ^= wrong;
	gen_put(g, b, lm__enc_devstate_end(b, &de));
	gen_complete(g, content, 0);
}

static const char *outdir;

#define ANY_FAILURE 1

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
	if (want_rc == ANY_FAILURE ? fz_last_rc == 0 : fz_last_rc != want_rc) {
		fprintf(stderr, "%s: expected %d\n", name, want_rc);
		exit(1);
	}
	free(all);
}

/* A new stream with codec (a fresh encoder context) and page size ps. */
static void gen_reset_codec(gen *g, uint32_t pp, uint16_t codec, uint32_t ps)
{
	lm__codec_params p = {.page_size = ps, .packet_pages = 128, .accel = LM_ACCEL_OFF};

	g->len = 0;
	g->num = 0;
	g->round = 0;
	g->round_packets = 0;
	g->pp = pp;
	g->ps = ps;
	if (g->ctx)
		g->ops->ctx_free(g->ctx);
	g->ctx = NULL;
	g->packed = 0;
	g->ops = lm__codec_get(codec);
	if (!g->ops || g->ops->ctx_new(&g->ctx, &p))
		abort();
}

static void gen_reset(gen *g, uint32_t pp)
{
	gen_reset_codec(g, pp, LM_CODEC_NONE, PS);
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
	} else if (variant == 3) {
		/* For the codecs, in 4 KiB units: region 0 text text noise
		 * zero text zero zero noise; region 1 text zero noise and a
		 * partial text page. With 3-page packets the first packet
		 * mixes compressed and raw pages (deflate) and the one of
		 * pages 6-7 does not shrink (per-packet codecs: codec none). */
		fill_text(content[0], region_len[0], 0, 3);
		fill_text(content[0], region_len[0], 1, 3);
		fill_noise(content[0], region_len[0], 2, 3);
		fill_text(content[0], region_len[0], 4, 3);
		fill_noise(content[0], region_len[0], 7, 3);
		fill_text(content[1], region_len[1], 0, 3);
		fill_noise(content[1], region_len[1], 2, 3);
		fill_text(content[1], region_len[1], 3, 3);
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

	/* Every codec shape (byte 0 bits 4-6), from the codec content. */
	for (uint8_t s = 0; s < 8; s++) {
		static const char *const tag[8] = {"none", "deflate", "zstd", "lz4", "zlib",
						   "deflate-zlib", "deflate-accel1",
						   "deflate-accel2"};
		uint16_t codec = shapes[s].codec;
		char name[64];

		init_content(content, 3);
		gen_reset_codec(&g, 3, codec, PS);
		gen_round0(&g, content, 0);
		gen_complete(&g, content, 0);
		snprintf(name, sizeof(name), "codec-%s-small", tag[s]);
		write_seed(name, CFG_CODEC(s) | CFG_SMALL_PACKETS | CFG_FRESH_1, &g, 0);

		if (s >= 5)
			continue; /* the engine shapes: one seed each is enough */
		gen_reset_codec(&g, 128, codec, PS);
		gen_round0(&g, content, 1);
		gen_complete(&g, content, 0);
		snprintf(name, sizeof(name), "codec-%s-128", tag[s]);
		write_seed(name, CFG_CODEC(s), &g, 0);

		gen_reset_codec(&g, 3, codec, PS_BIG);
		gen_round0(&g, content, 0);
		gen_complete(&g, content, 0);
		snprintf(name, sizeof(name), "codec-%s-8k", tag[s]);
		write_seed(name, CFG_CODEC(s) | CFG_SMALL_PACKETS | CFG_BIG_PAGES, &g, 0);

		/* Round 1 resends pages that changed, became zero or became
		 * incompressible; with ROUND_ACK (and so PACKED for zstd and
		 * zlib's deflate). */
		gen_reset_codec(&g, 3, codec, PS);
		g.packed = PACKED_SHAPE(s);
		gen_round0(&g, content, 0);
		{
			static const uint32_t dirty0[] = {1, 2, 3, 7};
			static const uint32_t dirty1[] = {0, 3};
			fill_noise(content[0], region_len[0], 1, 4);
			fill_text(content[0], region_len[0], 2, 4);
			fill_text(content[0], region_len[0], 3, 4);
			memset(content[0] + 7 * PS, 0, PS);
			memset(content[1], 0, PS);
			fill_noise(content[1], region_len[1], 3, 4);
			gen_pages(&g, 0, content[0], region_len[0], dirty0, 4);
			gen_pages(&g, 1, content[1], region_len[1], dirty1, 2);
		}
		gen_sync(&g);
		gen_complete(&g, content, 0);
		snprintf(name, sizeof(name), "codec-%s-two-rounds", tag[s]);
		write_seed(name, CFG_CODEC(s) | CFG_SMALL_PACKETS | CFG_ROUND_ACK, &g, 0);
	}

	/* A damaged payload byte in the first coded packet: refused (how
	 * depends on the codec and the byte: a decode error or, where the
	 * damage still decodes to the right size, the checksum). */
	for (uint8_t s = 1; s < 5; s++) {
		static const char *const tag[5] = {"", "deflate", "zstd", "lz4", "zlib"};
		char name[64];

		init_content(content, 3);
		gen_reset_codec(&g, 3, shapes[s].codec, PS);
		g.damage = 1;
		gen_round0(&g, content, 0);
		gen_complete(&g, content, 0);
		snprintf(name, sizeof(name), "codec-%s-damaged", tag[s]);
		write_seed(name, CFG_CODEC(s) | CFG_SMALL_PACKETS, &g, ANY_FAILURE);
	}

	/* Ref and delta pages: with no codec, with deflate (the area's pages
	 * coded per page) and zstd (in the packet's block); the same stream
	 * without the features; a chained ref. */
	gen_reset(&g, 4);
	gen_kinds_session(&g, content, 0);
	write_seed("kinds-refs-deltas", CFG_ROUND_ACK, &g, 0);
	write_seed("kinds-refs-deltas-fresh1", CFG_ROUND_ACK | CFG_FRESH_1, &g, 0);
	write_seed("kinds-not-agreed", 0, &g, LM_EFEATURE);
	for (uint8_t s = 1; s < 6; s++) {
		static const char *const tag[6] = {"", "deflate", "zstd-packed", "", "",
						   "deflate-zlib-packed"};
		char name[64];
		if (!tag[s][0])
			continue;
		gen_reset_codec(&g, 4, shapes[s].codec, PS);
		g.packed = PACKED_SHAPE(s);
		gen_kinds_session(&g, content, 0);
		snprintf(name, sizeof(name), "kinds-refs-deltas-%s", tag[s]);
		write_seed(name, CFG_ROUND_ACK | CFG_CODEC(s), &g, 0);
	}
	gen_reset(&g, 4);
	gen_kinds_session(&g, content, 1);
	write_seed("kinds-ref-chain", CFG_ROUND_ACK, &g, LM_EFIELD);

	/* Device state (raw pages: a deflate session takes them). */
	init_content(content, 0);
	gen_reset(&g, 128);
	gen_devstate_session(&g, content, 0);
	write_seed("devstate", CFG_ROUND_ACK | CFG_CODEC(7), &g, 0);
	write_seed("devstate-not-agreed", CFG_ROUND_ACK, &g, LM_EKIND);
	gen_reset(&g, 128);
	gen_devstate_session(&g, content, 1);
	write_seed("devstate-bad-checksum", CFG_ROUND_ACK | CFG_CODEC(7), &g, LM_ECHECKSUM);

	for (int i = 0; i < NREGIONS; i++)
		free(content[i]);
	if (g.ctx)
		g.ops->ctx_free(g.ctx);
	free(g.buf);
	return 0;
}
#endif
