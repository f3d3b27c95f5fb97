/*
 * Codec "lz4", per packet: the packet's normal pages are one LZ4 frame
 * (the LZ4 frame format, lz4frame.h) with linked blocks of the smallest
 * size above the page (64 KiB, or 256 KiB for 64 KiB pages), the content
 * size in its header, no checksums (the region checksum covers the data)
 * and no dictionary. Any lz4 tool decodes a payload.
 *
 * Why the frame API and not LZ4_compress_fast_continue() per page: the
 * block API's history is "the previous contiguous run" of memory on each
 * side, so a stream whose sender pages happen to be adjacent needs the
 * receiver's pages adjacent too, and a guest writing a page already
 * compressed would corrupt the next page's matches. LZ4F keeps its own
 * history, so the format depends on neither side's memory layout. With
 * blocks larger than a page, LZ4F copies every page into its block buffer
 * (stableSrc = 0) and compresses the copy, so a page the guest changes
 * meanwhile only affects itself (a page of a whole block would be
 * compressed in place and its history saved afterwards, maybe different).
 * The decoder streams into each destination page in turn; LZ4F decodes a
 * block into its own buffer and copies the pages out (stableDst = 0: it
 * never reads history back from a page, and a packet may list the same
 * offset twice, protocol.md leaves offsets unchecked).
 *
 * Level: params->level is the acceleration, 0 = 1 (lz4's default, the best
 * ratio of its fast mode), clamped to 1..65537 (lz4.c's
 * LZ4_ACCELERATION_MAX). LZ4F spells acceleration a as level 1 - a.
 *
 * A frame may not declare blocks larger than both 256 KiB and the packet:
 * LZ4F allocates buffers of the block size, so memory stays bounded.
 *
 * Stats ("lz4"): jobs = packets encoded or decoded; raw = pages of packets
 * that did not shrink; bytes_in/bytes_out = what went in and came out of
 * the codec (for a raw packet both are its page bytes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>

#include "codec.h"
#include "../wire.h"

#define LZ4_ACCEL_MAX 65537 /* LZ4_ACCELERATION_MAX in lz4.c */

typedef struct lz4_ctx {
	LZ4F_cctx *cc;
	LZ4F_dctx *dc;
	LZ4F_preferences_t prefs;
	lm_engine_stats *st;
	lm_engine_stats sink; /* counts go here when the stats table is full */
} lz4_ctx;

/* Blocks above the page: see the top of the file. */
static LZ4F_blockSizeID_t block_id(uint32_t page_size)
{
	return page_size < (64u << 10) ? LZ4F_max64KB : LZ4F_max256KB;
}

/* The frame shape the encoder writes; level and content size per use. */
static LZ4F_preferences_t lz4_prefs(uint32_t page_size, int level, uint64_t content)
{
	LZ4F_preferences_t p;

	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = block_id(page_size);
	p.frameInfo.blockMode = LZ4F_blockLinked;
	p.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
	p.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
	p.frameInfo.frameType = LZ4F_frame;
	p.frameInfo.contentSize = content;
	p.compressionLevel = level;
	return p;
}

static uint64_t lz4_bound(uint32_t page_size, uint32_t pages)
{
	size_t raw = (size_t)page_size * pages;
	LZ4F_preferences_t p = lz4_prefs(page_size, 0, raw);

	return LZ4F_compressFrameBound(raw, &p);
}

static int lz4_level(int level)
{
	int accel = level <= 0 ? 1 : level > LZ4_ACCEL_MAX ? LZ4_ACCEL_MAX : level;

	return 1 - accel;
}

static void lz4_ctx_free(void *ctx)
{
	lz4_ctx *c = ctx;

	if (!c)
		return;
	LZ4F_freeCompressionContext(c->cc);
	LZ4F_freeDecompressionContext(c->dc);
	free(c);
}

/* LZ4F allocates its state and block buffers at the first frame: start
 * one now, so that encoding never allocates. */
static int lz4_warm_up(lz4_ctx *c)
{
	uint8_t hdr[LZ4F_HEADER_SIZE_MAX];

	return LZ4F_isError(LZ4F_compressBegin(c->cc, hdr, sizeof(hdr), &c->prefs)) ? -ENOMEM : 0;
}

static int lz4_ctx_new(void **out, const lm__codec_params *p)
{
	lz4_ctx *c;
	int rc = -ENOMEM;

	*out = NULL;
	if (!p->page_size || !p->packet_pages)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (LZ4F_isError(LZ4F_createCompressionContext(&c->cc, LZ4F_VERSION)) ||
	    LZ4F_isError(LZ4F_createDecompressionContext(&c->dc, LZ4F_VERSION)))
		goto fail;
	c->prefs = lz4_prefs(p->page_size, lz4_level(p->level), 0);
	if ((rc = lz4_warm_up(c)))
		goto fail;
	c->st = lm__engine_stat_or(p->stats, "lz4", &c->sink);
	*out = c;
	return 0;
fail:
	lz4_ctx_free(c);
	return rc;
}

/* Writes the frame; cap >= lz4_bound() always suffices (LZ4F stores a block
 * that does not shrink), so an error here is not the data's fault. */
static int write_frame(lz4_ctx *c, const void *const *pages, uint32_t n, uint32_t page_size,
		       uint8_t *out, size_t cap, size_t *pos)
{
	LZ4F_compressOptions_t opt = {.stableSrc = 0}; /* history is copied */
	size_t r;

	c->prefs.frameInfo.blockSizeID = block_id(page_size);
	c->prefs.frameInfo.contentSize = (unsigned long long)n * page_size;
	r = LZ4F_compressBegin(c->cc, out, cap, &c->prefs);
	if (LZ4F_isError(r))
		return -EIO;
	*pos = r;
	for (uint32_t i = 0; i < n; i++) {
		r = LZ4F_compressUpdate(c->cc, out + *pos, cap - *pos, pages[i], page_size, &opt);
		if (LZ4F_isError(r))
			return -EIO;
		*pos += r;
	}
	r = LZ4F_compressEnd(c->cc, out + *pos, cap - *pos, &opt);
	if (LZ4F_isError(r))
		return -EIO;
	*pos += r;
	return 0;
}

static int lz4_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	lz4_ctx *c = ctx;
	size_t raw = (size_t)n * page_size, pos = 0;
	int rc = LM_ECODEC;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	if (n && cap >= lz4_bound(page_size, n)) {
		rc = write_frame(c, pages, n, page_size, out, cap, &pos);
		/* Not smaller than the pages: the sender sends them raw. */
		if (rc == 0 && pos >= raw)
			rc = LM_ECODEC;
	}
	if (rc == 0)
		*out_len = pos;
	if (rc == 0 || rc == LM_ECODEC)
		lm__count_packet(c->st, raw, rc ? raw : pos, rc ? n : 0);
	return rc;
}

/* One plain frame of exactly the packet, with bounded block buffers. */
static int check_header(lz4_ctx *c, const uint8_t *in, size_t in_len, size_t raw,
			size_t *hdr_len, lm__err *e)
{
	LZ4F_frameInfo_t fi;
	size_t r, block;

	*hdr_len = in_len;
	r = LZ4F_getFrameInfo(c->dc, &fi, in, hdr_len);
	if (LZ4F_isError(r)) {
		lm__err_set(e, "data.payload: lz4 frame header: %s", LZ4F_getErrorName(r));
		return LM_EDECODE;
	}
	if (fi.frameType != LZ4F_frame) {
		lm__err_set(e, "data.payload: lz4 skippable frame, no data");
		return LM_EDECODE;
	}
	if (fi.dictID) {
		lm__err_set(e, "data.payload: lz4 frame needs dictionary %u", fi.dictID);
		return LM_EDECODE;
	}
	if (fi.contentSize && fi.contentSize != raw) {
		lm__err_set(e, "data.payload: lz4 frame content size %llu, the pages need %zu",
			    fi.contentSize, raw);
		return LM_EDECODE;
	}
	/* blockSizeID 4..7 (LZ4F checked it): 64 KiB, 256 KiB, 1 MiB, 4 MiB. */
	block = (size_t)1 << (8 + 2 * (unsigned)fi.blockSizeID);
	if (block > (256u << 10) && block > raw) {
		lm__err_set(e, "data.payload: lz4 frame blocks of %zu bytes above the packet's %zu",
			    block, raw);
		return LM_EDECODE;
	}
	return 0;
}

/* Fills page i completely; *hint is LZ4F's (0: the frame has ended). */
static int fill_page(lz4_ctx *c, const uint8_t *in, size_t in_len, size_t *pos, uint8_t *page,
		     uint32_t page_size, uint32_t i, uint32_t n, size_t *hint, lm__err *e)
{
	LZ4F_decompressOptions_t opt = {.stableDst = 0};
	size_t done = 0;

	while (done < page_size) {
		size_t dst = page_size - done, src = in_len - *pos;
		*hint = LZ4F_decompress(c->dc, page + done, &dst, in + *pos, &src, &opt);
		if (LZ4F_isError(*hint)) {
			lm__err_set(e, "data.payload: lz4 in page %u: %s", i, LZ4F_getErrorName(*hint));
			return LM_EDECODE;
		}
		*pos += src;
		done += dst;
		if (*hint == 0 && done < page_size) {
			lm__err_set(e, "data.payload: lz4 frame ends in page %u of %u after %zu bytes",
				    i, n, done);
			return LM_EDECODE;
		}
		if (!src && !dst) {
			lm__err_set(e, "data.payload: lz4 frame truncated in page %u of %u", i, n);
			return LM_EDECODE;
		}
	}
	if (*hint == 0 && i + 1 < n) {
		lm__err_set(e, "data.payload: lz4 frame ends after page %u of %u", i, n);
		return LM_EDECODE;
	}
	return 0;
}

/* After the last page the frame may only end: any byte more is too much. */
static int finish_frame(lz4_ctx *c, const uint8_t *in, size_t in_len, size_t pos, size_t hint,
			uint32_t n, lm__err *e)
{
	LZ4F_decompressOptions_t opt = {.stableDst = 0};

	while (hint) {
		uint8_t extra;
		size_t dst = 1, src = in_len - pos;
		hint = LZ4F_decompress(c->dc, &extra, &dst, in + pos, &src, &opt);
		if (LZ4F_isError(hint)) {
			lm__err_set(e, "data.payload: lz4 after page %u: %s", n, LZ4F_getErrorName(hint));
			return LM_EDECODE;
		}
		pos += src;
		if (dst) {
			lm__err_set(e, "data.payload: lz4 frame decodes to more than %u pages", n);
			return LM_EDECODE;
		}
		if (hint && !src) {
			lm__err_set(e, "data.payload: lz4 frame truncated after its %u pages", n);
			return LM_EDECODE;
		}
	}
	if (pos != in_len) {
		lm__err_set(e, "data.payload: %zu bytes after the lz4 frame", in_len - pos);
		return LM_EDECODE;
	}
	return 0;
}

static int lz4_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		      void *const *pages, uint32_t n, uint32_t page_size, lm__err *e)
{
	lz4_ctx *c = ctx;
	size_t raw = (size_t)n * page_size, pos = 0, hint = 1;
	int rc;

	/* Also forgets whatever a failed packet left half decoded. */
	LZ4F_resetDecompressionContext(c->dc);
	if ((rc = lm__block_lens_check("lz4", lens, n, page_size, in_len, e)) || !n)
		goto done;
	if ((rc = check_header(c, in, in_len, raw, &pos, e)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = fill_page(c, in, in_len, &pos, pages[i], page_size, i, n, &hint, e)))
			goto done;
	rc = finish_frame(c, in, in_len, pos, hint, n, e);
done:
	lm__count_packet(c->st, rc ? 0 : in_len, rc ? 0 : raw, 0);
	return rc;
}

const lm__codec_ops lm__codec_lz4 = {
	.name = "lz4",
	.id = LM_CODEC_LZ4,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = lz4_bound,
	.ctx_new = lz4_ctx_new,
	.ctx_free = lz4_ctx_free,
	.encode = lz4_encode,
	.decode = lz4_decode,
};
