/*
 * Engine "zlib": the reference DEFLATE implementation, software,
 * synchronous (execute()).
 *
 * Raw DEFLATE (windowBits -15: no zlib or gzip wrapper), level 1 by default
 * (livemig level 0), 1..9 otherwise (higher is clamped). Each page is its own
 * stream: deflateReset()/inflateReset() per page on z_streams allocated once
 * per context.
 *
 * Compression: deflate(Z_FINISH) into out_cap (page_size - 1) bytes; no
 * Z_STREAM_END means the page did not fit: LM_ECODEC, it goes raw.
 * Decompression: inflate(Z_FINISH) into at most one page; success only at
 * Z_STREAM_END with every input byte used and exactly page_size bytes out,
 * else LM_EDECODE. zlib never writes past avail_out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "engine.h"

typedef struct zlib_ctx {
	z_stream d, i;
	int d_ok, i_ok;
	uint32_t page_size;
} zlib_ctx;

static int zlib_available(void) { return 1; }

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

static int zlib_ctx_new(void **out, int level, uint32_t page_size, uint32_t max_jobs)
{
	zlib_ctx *c;
	int l = level <= 0 ? 1 : level > 9 ? 9 : level, rc;

	(void)max_jobs;
	*out = NULL;
	if (page_size == 0)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->page_size = page_size;
	rc = deflateInit2(&c->d, l, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	c->d_ok = rc == Z_OK;
	if (rc == Z_OK) {
		rc = inflateInit2(&c->i, -15);
		c->i_ok = rc == Z_OK;
	}
	if (rc != Z_OK) {
		zlib_ctx_free(c);
		return rc == Z_MEM_ERROR ? -ENOMEM : LM_ECODEC;
	}
	*out = c;
	return 0;
}

static int z_compress(zlib_ctx *c, lm__engine_job *job)
{
	z_stream *z = &c->d;
	int rc;

	if (deflateReset(z) != Z_OK)
		return LM_ECODEC;
	z->next_in = (Bytef *)(uintptr_t)job->in; /* zlib's API has no const */
	z->avail_in = job->in_len;
	z->next_out = job->out;
	z->avail_out = job->out_cap;
	rc = deflate(z, Z_FINISH);
	if (rc != Z_STREAM_END || z->total_out == 0 || z->total_out > job->out_cap)
		return LM_ECODEC; /* Z_OK / Z_BUF_ERROR: did not fit, goes raw */
	job->out_len = (uint32_t)z->total_out;
	return 0;
}

static int z_decompress(zlib_ctx *c, lm__engine_job *job)
{
	z_stream *z = &c->i;
	uint32_t cap = job->out_cap < c->page_size ? job->out_cap : c->page_size;
	int rc;

	if (job->in_len == 0 || cap < c->page_size || inflateReset(z) != Z_OK)
		return LM_EDECODE;
	z->next_in = (Bytef *)(uintptr_t)job->in;
	z->avail_in = job->in_len;
	z->next_out = job->out;
	z->avail_out = cap;
	rc = inflate(z, Z_FINISH);
	if (rc != Z_STREAM_END || z->avail_in != 0 || z->total_out != c->page_size)
		return LM_EDECODE;
	job->out_len = (uint32_t)z->total_out;
	return 0;
}

static int zlib_execute(void *ctx, lm__engine_job *job)
{
	zlib_ctx *c = ctx;

	if (!c || !job)
		return LM_EINVAL;
	job->out_len = 0;
	if (!job->in || !job->out)
		return LM_EINVAL;
	if (job->op == LM_ENGINE_COMPRESS)
		return z_compress(c, job);
	if (job->op == LM_ENGINE_DECOMPRESS)
		return z_decompress(c, job);
	return LM_EINVAL;
}

const lm__engine_ops lm__engine_zlib = {
	.name = "zlib",
	.hw = 0,
	.available = zlib_available,
	.ctx_new = zlib_ctx_new,
	.ctx_free = zlib_ctx_free,
	.execute = zlib_execute,
};
