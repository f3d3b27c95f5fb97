/*
 * libFuzzer target: arbitrary bytes -> a DATA packet's packed tables
 * (LM_FEAT_PACKED: lm__dec_data_hdr's packed length, lm__dec_data_packed).
 *
 * Input layout:
 *   byte 0     bit 0 page size 65536 (else 4096); bits 1-2 the round
 *              {0, 1, 7, max}; bits 3-4 the packet's codec {none, deflate,
 *              zstd, lz4}
 *   bytes 1-2  pages - 1 (be16, modulo LM_MAX_PACKET_PAGES)
 *   bytes 3-5  how the pages split into normal, zero, ref (the rest delta)
 *   byte 6     the packet's region (modulo the six below)
 *   bytes 7-10 payload (be32)
 *   the rest   the tables, in a heap buffer of exactly their size
 *
 * Invariants (violations __builtin_trap()): on success every offset is a
 * page of the packet's region, every ref and delta entry is what the fixed
 * tables' checks allow, the delta area is the pages the encodings need, the
 * lengths fit the codec and sum to the payload where it has lengths; and
 * the tables are the canonical encoding of what they decoded to: encoding
 * it again gives the input's bytes.
 *
 * Seeds (tests/seeds/fuzz_packed/): built with -DLM_FUZZ_SEEDGEN, as for
 * fuzz_wire, from valid packets of every kind:
 *   cc -D_GNU_SOURCE -DLM_FUZZ_SEEDGEN -Iinclude -Isrc tests/fuzz_packed.c out/release/liblivemig.a \
 *      -lzstd -llz4 -lisal -lz -lssl -lcrypto -lxxhash -lpthread -o /tmp/seedgen_packed && \
 *      /tmp/seedgen_packed tests/seeds/fuzz_packed
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "wire.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_packed: invariant failed at %s:%d: %s\n", __FILE__, \
				__LINE__, #c);                                                    \
			__builtin_trap();                                                         \
		}                                                                                 \
	} while (0)

#define NREG  6
#define FIXED 11
static const uint64_t regions[NREG] = {1 << 20, 5000, 0, (1ull << 63) - 1, 40960, 65536 + 1};
static const uint16_t codecs[4] = {LM_CODEC_NONE, LM_CODEC_DEFLATE, LM_CODEC_ZSTD, LM_CODEC_LZ4};

static uint64_t off[LM_MAX_PACKET_PAGES];
static uint32_t plen[LM_MAX_PACKET_PAGES];
static lm__ref refs[LM_MAX_PACKET_PAGES];
static lm__delta dl[LM_MAX_PACKET_PAGES];
static uint8_t re[LM_MAX_PACKET_PAGES * LM_DATA_PAGE_TABLES];

static unsigned fz_decoded;

static int whole_page(const lm__limits *lim, uint32_t region, uint64_t o)
{
	return o + lim->page_size <= lim->region_len[region];
}

/* The header the input describes, in lim's session. */
static void header_from(const uint8_t *p, lm__data_hdr *d, lm__limits *lim)
{
	static const uint32_t rounds[4] = {0, 1, 7, UINT32_MAX};
	uint32_t left;

	memset(lim, 0, sizeof(*lim));
	lim->page_size = (p[0] & 1) ? LM_MAX_PAGE_SIZE : LM_MIN_PAGE_SIZE;
	lim->packet_pages = LM_MAX_PACKET_PAGES;
	lim->codec = LM_CODEC_AUTO;
	lim->round = rounds[(p[0] >> 1) & 3];
	lim->region_count = NREG;
	lim->region_len = regions;
	lim->features = LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_MIXED | LM_FEAT_PACKED;
	memset(d, 0, sizeof(*d));
	d->round = lim->round;
	d->codec_flags = codecs[(p[0] >> 3) & 3];
	d->pages = 1 + ((uint32_t)p[1] << 8 | p[2]) % LM_MAX_PACKET_PAGES;
	left = d->pages;
	d->normal = p[3] % (left + 1);
	left -= d->normal;
	d->zero = p[4] % (left + 1);
	left -= d->zero;
	d->ref = p[5] % (left + 1);
	d->delta = (uint16_t)(left - d->ref);
	d->region = p[6] % NREG;
	d->payload = (uint32_t)p[7] << 24 | (uint32_t)p[8] << 16 | (uint32_t)p[9] << 8 | p[10];
}

static void check_decoded(const uint8_t *t, const lm__data_hdr *d, const lm__limits *lim)
{
	const lm__codec_ops *ops = lm__codec_get(d->codec_flags & LM_PKT_CODEC_MASK);
	uint32_t ps = lim->page_size, first_ref = d->normal + d->zero,
		 first_dl = first_ref + d->ref;
	const uint64_t *const o4[4] = {off, off + d->normal, off + first_ref, off + first_dl};
	int lens = ops->per_page && !ops->raw_only;
	uint64_t sum = 0, psum = 0;

	for (uint32_t i = 0; i < d->pages; i++)
		CHECK(off[i] % ps == 0 && off[i] < lim->region_len[d->region]);
	for (uint32_t i = 0; i < d->ref; i++) {
		const lm__ref *r = &refs[i];
		CHECK(r->src_region < lim->region_count && r->src_round <= d->round);
		CHECK(r->src_offset % ps == 0 && whole_page(lim, r->src_region, r->src_offset));
		CHECK(whole_page(lim, d->region, off[first_ref + i]));
		CHECK(r->src_region != d->region || r->src_offset != off[first_ref + i]);
	}
	for (uint32_t i = 0; i < d->delta; i++) {
		CHECK(dl[i].base_round < d->round && dl[i].len < ps);
		CHECK(whole_page(lim, d->region, off[first_dl + i]));
		sum += dl[i].len;
	}
	CHECK(d->area == (sum + ps - 1) / ps && d->area <= d->delta);
	for (uint32_t i = 0; i < d->normal + d->area; i++) {
		CHECK(plen[i] >= 1 && plen[i] <= ps);
		CHECK(lens || plen[i] == ps);
		psum += plen[i];
	}
	CHECK(!ops->per_page || psum == d->payload);
	CHECK(d->payload <= ops->payload_bound(ps, d->normal + d->area));
	CHECK(lm__enc_data_packed(re, d, ps, o4, refs, dl, plen, lens) == d->tables);
	CHECK(memcmp(re, t, d->tables) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hb[LM_FRAME_HDR + LM_DATA_HDR];
	lm__data_hdr in, d;
	lm__limits lim;
	lm__err e = {0};
	uint64_t body;
	uint8_t *t;

	if (size < FIXED)
		return 0;
	header_from(data, &in, &lim);
	body = (uint64_t)LM_DATA_HDR + (size - FIXED) + in.payload;
	if (body > UINT32_MAX)
		return 0;
	lm__enc_data_hdr(hb, &in, (uint32_t)body);
	if (lm__dec_data_hdr(hb + LM_FRAME_HDR, (uint32_t)body, &lim, &d, &e))
		return 0;
	CHECK(d.tables == size - FIXED);
	CHECK(d.tables >= d.pages && d.tables <= (uint64_t)LM_DATA_PAGE_TABLES * d.pages);
	t = malloc(d.tables);
	if (!t)
		abort();
	memcpy(t, data + FIXED, d.tables);
	if (lm__dec_data_packed(t, &d, &lim, off, plen, refs, dl, &e) == 0) {
		fz_decoded++;
		check_decoded(t, &d, &lim);
	} else {
		CHECK(e.msg[0] != 0);
	}
	free(t);
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* ---- seed generator: valid packets of every kind ---------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* One seed: a packet of the header bytes h and random valid tables. */
static int seed(const char *dir, const char *name, const uint8_t h[FIXED])
{
	static uint8_t all[FIXED + sizeof(re)];
	lm__data_hdr d;
	lm__limits lim;
	uint32_t ps, first_ref, first_dl;
	uint64_t npg, sum = 0;
	char path[4096];
	FILE *f;
	size_t n;

	header_from(h, &d, &lim);
	ps = lim.page_size;
	npg = (lim.region_len[d.region] + ps - 1) / ps;
	first_ref = d.normal + d.zero;
	first_dl = first_ref + d.ref;
	for (uint32_t i = 0; i < d.pages; i++)
		off[i] = ((i < first_ref ? i : rnd()) % npg) * ps;
	for (uint32_t i = 0; i < d.ref; i++) {
		off[first_ref + i] = (i % npg) * ps;
		refs[i] = (lm__ref){0, d.round, ((i + 1) % (lim.region_len[0] / ps)) * ps};
	}
	for (uint32_t i = 0; i < d.delta; i++) {
		off[first_dl + i] = (i % npg) * ps;
		dl[i] = (lm__delta){0, (uint32_t)(rnd() % ps)};
		sum += dl[i].len;
	}
	d.area = (uint32_t)((sum + ps - 1) / ps);
	for (uint32_t i = 0; i < d.normal + d.area; i++)
		plen[i] = d.codec_flags == LM_CODEC_DEFLATE ? 1 + (uint32_t)(rnd() % ps) : ps;
	{
		const lm__codec_ops *ops = lm__codec_get(d.codec_flags);
		const uint64_t *const o4[4] = {off, off + d.normal, off + first_ref,
					       off + first_dl};
		int lens = ops->per_page && !ops->raw_only;
		uint64_t payload = 0;
		for (uint32_t i = 0; ops->per_page && i < d.normal + d.area; i++)
			payload += plen[i];
		n = lm__enc_data_packed(all + FIXED, &d, ps, o4, refs, dl, plen, lens);
		memcpy(all, h, FIXED);
		all[7] = (uint8_t)(payload >> 24);
		all[8] = (uint8_t)(payload >> 16);
		all[9] = (uint8_t)(payload >> 8);
		all[10] = (uint8_t)payload;
	}
	fz_decoded = 0;
	LLVMFuzzerTestOneInput(all, FIXED + n);
	if (!fz_decoded) {
		fprintf(stderr, "seed %s does not decode\n", name);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(all, 1, FIXED + n, f) != FIXED + n || fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* byte 0, pages - 1, normal, zero, ref splits, region, payload */
	static const struct {
		const char *name;
		uint8_t h[FIXED];
	} s[] = {
		{"none-128-normal-zero", {0x00, 0x00, 127, 60, 68, 0, 0, 0, 0, 0, 0}},
		{"deflate-128-every-kind", {0x0a, 0x00, 127, 40, 40, 30, 0, 0, 0, 0, 0}},
		{"zstd-64-refs", {0x12, 0x00, 63, 20, 10, 34, 0, 0, 0, 0, 0}},
		{"lz4-1024-deltas", {0x1a, 0x03, 0xff, 0, 0, 0, 3, 0, 0, 0, 0}},
		{"deflate-64k-pages", {0x0b, 0x00, 15, 8, 4, 2, 0, 0, 0, 0, 0}},
		{"none-partial-region", {0x00, 0x00, 1, 1, 1, 0, 1, 0, 0, 0, 0}},
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (seed(argv[1], s[i].name, s[i].h))
			return 1;
	return 0;
}
#endif
