/*
 * Engine "isal": ISA-L igzip, software, synchronous (execute()).
 *
 * Compression: isal_deflate_stateless, raw DEFLATE (gzip_flag IGZIP_DEFLATE:
 * no gzip or zlib wrapper), level 1 by default with its level_buf of
 * ISAL_DEF_LVL1_DEFAULT bytes; output capped at job->out_cap (page_size - 1):
 * a page that does not fit is LM_ECODEC and goes raw.
 * Decompression: isal_inflate_stateless, raw DEFLATE (crc_flag
 * ISAL_DEFLATE: no wrapper, no checksum). A job succeeds only when the input
 * is exactly one complete stream (final block ended, no byte left over) that
 * decodes to exactly page_size bytes; anything else is LM_EDECODE. ISA-L
 * never writes past avail_out, which is at most out_cap.
 *
 * The context owns the ~80 KB isal_zstream and inflate_state (and the level
 * buffer): allocated once, reused for every page. The level buffer is only
 * allocated at the first compression, so decode-only contexts (receivers)
 * do not carry it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>

#include "engine.h"

typedef struct isal_ctx {
	struct isal_zstream zs;
	struct inflate_state is;
	uint8_t *level_buf;
	uint32_t level_buf_size;
	uint32_t level;
	uint32_t page_size;
} isal_ctx;

static int isal_available(void) { return 1; }

/* livemig level 0 = default (1); ISA-L has levels 0..3, higher is clamped. */
static uint32_t isal_level(int level, uint32_t *buf_size)
{
	uint32_t l = level <= 0 ? 1u : level > ISAL_DEF_MAX_LEVEL ? ISAL_DEF_MAX_LEVEL : (uint32_t)level;
	static const uint32_t sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
					 ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

	*buf_size = sizes[l];
	return l;
}

static int isal_ctx_new(void **out, int level, uint32_t page_size, uint32_t max_jobs)
{
	isal_ctx *c;
	void *p = NULL;

	(void)max_jobs;
	*out = NULL;
	if (page_size == 0)
		return LM_EINVAL;
	if (posix_memalign(&p, 64, sizeof(*c)))
		return -ENOMEM;
	c = p;
	memset(c, 0, sizeof(*c));
	c->level = isal_level(level, &c->level_buf_size);
	c->page_size = page_size;
	isal_inflate_init(&c->is);
	*out = c;
	return 0;
}

static void isal_ctx_free(void *ctx)
{
	isal_ctx *c = ctx;

	if (!c)
		return;
	free(c->level_buf);
	free(c);
}

static int isal_compress(isal_ctx *c, lm__engine_job *job)
{
	struct isal_zstream *zs = &c->zs;
	int rc;

	if (!c->level_buf && c->level_buf_size) {
		/* Zeroed: ISA-L's level 1 reads parts of its level buffer it
		 * has not written, and a page's bytes then depend on what the
		 * allocator left there (seen under ASan: 4 pages in 14711
		 * compressed 1 byte shorter or longer than from a fresh zeroed
		 * buffer). Still valid DEFLATE; zeroed, the same page always
		 * makes the same bytes, which test_deflate checks. */
		c->level_buf = calloc(1, c->level_buf_size);
		if (!c->level_buf)
			return -ENOMEM;
	}
	isal_deflate_stateless_init(zs);
	zs->next_in = (uint8_t *)(uintptr_t)job->in; /* ISA-L's API has no const */
	zs->avail_in = job->in_len;
	zs->next_out = job->out;
	zs->avail_out = job->out_cap;
	zs->level = c->level;
	zs->level_buf = c->level_buf;
	zs->level_buf_size = c->level_buf_size;
	zs->end_of_stream = 1;
	zs->flush = NO_FLUSH;
	zs->gzip_flag = IGZIP_DEFLATE;
	zs->hist_bits = 0;
	rc = isal_deflate_stateless(zs);
	if (rc != COMP_OK || zs->avail_in != 0 || zs->total_out == 0 ||
	    zs->total_out > job->out_cap)
		return LM_ECODEC; /* STATELESS_OVERFLOW: did not fit, goes raw */
	job->out_len = zs->total_out;
	return 0;
}

static int isal_decompress(isal_ctx *c, lm__engine_job *job)
{
	struct inflate_state *st = &c->is;
	uint32_t cap = job->out_cap < c->page_size ? job->out_cap : c->page_size;
	int rc;

	if (job->in_len == 0 || cap < c->page_size)
		return LM_EDECODE;
	isal_inflate_init(st);
	st->next_in = (uint8_t *)(uintptr_t)job->in;
	st->avail_in = job->in_len;
	st->next_out = job->out;
	st->avail_out = cap;
	st->crc_flag = ISAL_DEFLATE;
	st->hist_bits = 0;
	rc = isal_inflate_stateless(st);
	/* One complete stream: the final block ended (ISAL_DECOMP_OK; a
	 * truncated one is ISAL_END_INPUT, a longer one ISAL_OUT_OVERFLOW),
	 * every input byte used, exactly one page out. */
	if (rc != ISAL_DECOMP_OK || st->block_state != ISAL_BLOCK_FINISH || st->avail_in != 0 ||
	    st->total_out != c->page_size)
		return LM_EDECODE;
	job->out_len = st->total_out;
	return 0;
}

static int isal_execute(void *ctx, lm__engine_job *job)
{
	isal_ctx *c = ctx;

	if (!c || !job)
		return LM_EINVAL;
	job->out_len = 0;
	if (!job->in || !job->out)
		return LM_EINVAL;
	if (job->op == LM_ENGINE_COMPRESS)
		return isal_compress(c, job);
	if (job->op == LM_ENGINE_DECOMPRESS)
		return isal_decompress(c, job);
	return LM_EINVAL;
}

const lm__engine_ops lm__engine_isal = {
	.name = "isal",
	.hw = 0,
	.available = isal_available,
	.ctx_new = isal_ctx_new,
	.ctx_free = isal_ctx_free,
	.execute = isal_execute,
};
