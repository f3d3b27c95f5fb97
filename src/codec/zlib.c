/*
 * Codec "zlib", per packet: the packet's normal pages are one zlib stream
 * (RFC 1950: header, DEFLATE, Adler-32), 32 KiB window, no preset
 * dictionary.
 *
 * The pages are not contiguous: deflate() takes them one after another as
 * next_in (Z_NO_FLUSH, Z_FINISH with the last), and inflate() fills each
 * destination page in turn through avail_out. Both copy history into
 * their own window, so a page the guest changes while it is compressed
 * only affects that page, and inflate never writes past avail_out.
 *
 * Level: params->level, 0 = 1 (fast, as QEMU's multifd zlib), clamped to
 * 0..9 (0, from a negative level, stores: such packets never shrink).
 * z_streams live in the context; deflateReset()/inflateReset() per packet.
 *
 * Stats ("zlib"): jobs = packets encoded or decoded; raw = pages of packets
 * that did not shrink; bytes_in/bytes_out = what went in and came out of
 * the codec (for a raw packet both are its page bytes). The deflate codec's
 * zlib engine counts under the same name; a session uses one codec.
 */
#include <errno.h>
#include <stdlib.h>

#include <zlib.h>

#include "codec.h"
#include "../wire.h"

typedef struct zlib_ctx {
	z_stream d, i;
	int d_ok, i_ok;
	lm_engine_stats *st;
	lm_engine_stats sink; /* counts go here when the stats table is full */
} zlib_ctx;

static uint64_t zlib_bound(uint32_t page_size, uint32_t pages)
{
	return compressBound((uLong)page_size * pages);
}

static int zlib_level(int level)
{
	if (level == 0)
		return 1;
	return level < 0 ? 0 : level > 9 ? 9 : level;
}

static void zlib_ctx_free(void *ctx)
{
	zlib_ctx *c = ctx;

	if (!c)
		return;
	if (c->d_ok)
		deflateEnd(&c->d);
	if (c->i_ok)
		inflateEnd(&c->i);
	free(c);
}

static int zlib_ctx_new(void **out, const lm__codec_params *p)
{
	zlib_ctx *c;
	int rc;

	*out = NULL;
	if (!p->page_size || !p->packet_pages)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = deflateInit2(&c->d, zlib_level(p->level), Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY);
	c->d_ok = rc == Z_OK;
	if (rc == Z_OK) {
		rc = inflateInit2(&c->i, 15);
		c->i_ok = rc == Z_OK;
	}
	if (rc != Z_OK) {
		zlib_ctx_free(c);
		return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
	}
	c->st = lm__engine_stat_or(p->stats, "zlib", &c->sink);
	*out = c;
	return 0;
}

/* Deflates the pages into avail_out bytes: LM_ECODEC when they do not fit. */
static int deflate_pages(z_stream *z, const void *const *pages, uint32_t n, uint32_t page_size)
{
	for (uint32_t i = 0; i < n; i++) {
		int last = i + 1 == n;
		int rc;
		z->next_in = (Bytef *)(uintptr_t)pages[i]; /* zlib's API has no const */
		z->avail_in = page_size;
		rc = deflate(z, last ? Z_FINISH : Z_NO_FLUSH);
		if (rc == Z_STREAM_ERROR)
			return -EIO;
		/* deflate() stops early only when the output is full. */
		if (last ? rc != Z_STREAM_END : z->avail_in != 0)
			return LM_ECODEC;
	}
	return 0;
}

static int zlib_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		       uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	zlib_ctx *c = ctx;
	z_stream *z = &c->d;
	size_t raw = (size_t)n * page_size;
	int rc = LM_ECODEC;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	if (!n)
		goto done;
	rc = -EIO;
	if (deflateReset(z) != Z_OK)
		goto done;
	/* One byte less than raw: a stream that does not fit did not shrink. */
	z->next_out = out;
	z->avail_out = (uInt)(cap >= raw ? raw - 1 : cap);
	rc = deflate_pages(z, pages, n, page_size);
	if (rc == 0)
		*out_len = (size_t)z->total_out;
done:
	if (rc == 0 || rc == LM_ECODEC)
		lm__count_packet(c->st, raw, rc ? raw : *out_len, rc ? n : 0);
	return rc;
}

/* inflate()'s verdict as an error for the packet, or 0 to go on. */
static int inflate_error(z_stream *z, int zr, uint32_t page, uint32_t n, lm__err *e)
{
	switch (zr) {
	case Z_OK:
	case Z_STREAM_END:
		return 0;
	case Z_NEED_DICT:
		lm__err_set(e, "data.payload: zlib stream needs a preset dictionary");
		return LM_EDECODE;
	case Z_BUF_ERROR: /* no progress with room left: the input ran out */
		if (page < n)
			lm__err_set(e, "data.payload: zlib stream truncated in page %u of %u", page, n);
		else
			lm__err_set(e, "data.payload: zlib stream truncated after its %u pages", n);
		return LM_EDECODE;
	case Z_MEM_ERROR:
		lm__err_set(e, "data.payload: zlib: out of memory");
		return -ENOMEM;
	default:
		lm__err_set(e, "data.payload: zlib in page %u: %s", page,
			    z->msg ? z->msg : "invalid stream");
		return LM_EDECODE;
	}
}

/* Fills page i completely; *ended when the stream's end was reached. */
static int fill_page(z_stream *z, uint8_t *page, uint32_t page_size, uint32_t i, uint32_t n,
		     int *ended, lm__err *e)
{
	int rc;

	z->next_out = page;
	z->avail_out = page_size;
	while (z->avail_out) {
		int zr = inflate(z, Z_NO_FLUSH);
		if ((rc = inflate_error(z, zr, i, n, e)))
			return rc;
		if (zr == Z_STREAM_END && z->avail_out) {
			lm__err_set(e, "data.payload: zlib stream ends in page %u of %u after %u bytes",
				    i, n, page_size - z->avail_out);
			return LM_EDECODE;
		}
		*ended = zr == Z_STREAM_END;
	}
	if (*ended && i + 1 < n) {
		lm__err_set(e, "data.payload: zlib stream ends after page %u of %u", i, n);
		return LM_EDECODE;
	}
	return 0;
}

/* After the last page the stream may only end: any byte more is too much. */
static int finish_stream(z_stream *z, int ended, uint32_t n, lm__err *e)
{
	int rc;

	while (!ended) {
		uint8_t extra;
		int zr;
		z->next_out = &extra;
		z->avail_out = 1;
		zr = inflate(z, Z_NO_FLUSH);
		if ((rc = inflate_error(z, zr, n, n, e)))
			return rc;
		if (!z->avail_out) {
			lm__err_set(e, "data.payload: zlib stream decodes to more than %u pages", n);
			return LM_EDECODE;
		}
		ended = zr == Z_STREAM_END;
	}
	if (z->avail_in) {
		lm__err_set(e, "data.payload: %u bytes after the zlib stream", z->avail_in);
		return LM_EDECODE;
	}
	return 0;
}

static int check_lens(const uint32_t *lens, uint32_t n, uint32_t page_size, size_t in_len,
		      lm__err *e)
{
	int rc = lm__block_lens_check("zlib", lens, n, page_size, in_len, e);

	if (!rc && in_len > UINT32_MAX) { /* avail_in is 32 bits; no payload is this big */
		lm__err_set(e, "data.payload: zlib payload of %zu bytes too large", in_len);
		return LM_EDECODE;
	}
	return rc;
}

static int zlib_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		       void *const *pages, uint32_t n, uint32_t page_size, lm__err *e)
{
	zlib_ctx *c = ctx;
	z_stream *z = &c->i;
	int rc, ended = 0;

	if ((rc = check_lens(lens, n, page_size, in_len, e)) || !n)
		goto done;
	rc = -EIO;
	if (inflateReset(z) != Z_OK)
		goto done;
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)in_len;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = fill_page(z, pages[i], page_size, i, n, &ended, e)))
			goto done;
	rc = finish_stream(z, ended, n, e);
done:
	lm__count_packet(c->st, rc ? 0 : in_len, rc ? 0 : (uint64_t)n * page_size, 0);
	return rc;
}

const lm__codec_ops lm__codec_zlib = {
	.name = "zlib",
	.id = LM_CODEC_ZLIB,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = zlib_bound,
	.ctx_new = zlib_ctx_new,
	.ctx_free = zlib_ctx_free,
	.encode = zlib_encode,
	.decode = zlib_decode,
};
