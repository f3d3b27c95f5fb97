/*
 * Engines "qpl" (Intel IAA through QPL's hardware path) and "qpl-sw" (QPL's
 * software path). Both produce and consume raw DEFLATE: no zlib or gzip
 * header (QPL_FLAG_ZLIB_MODE and QPL_FLAG_GZIP_MODE stay off), one stream per
 * page (QPL_FLAG_FIRST | QPL_FLAG_LAST), so a page compressed here inflates
 * with zlib (windowBits -15) or ISA-L, and their raw deflate inflates here.
 *
 * Compression uses one dynamic Huffman block per page (QPL_FLAG_DYNAMIC_HUFFMAN;
 * fixed Huffman is faster but its ratio is worse on real pages) and skips
 * QPL's built-in verify pass (QPL_FLAG_OMIT_VERIFY): the receiver checks
 * every page's decoded size itself. Output that does not fit in out_cap
 * (page_size - 1) fails the job with LM_ECODEC, so the page goes raw; any
 * other failure is -EIO, and the codec compresses that page in software.
 * Decompression writes into exactly page_size bytes (available_out), never
 * more, and succeeds only when it yields exactly page_size bytes and QPL
 * reports all of the input consumed; anything else is LM_EDECODE. One
 * leniency of QPL's software inflate remains: it takes the end of the input
 * as the end of the stream, so a stream that lacks only its last byte (the
 * final end-of-block code) still decodes. A page damaged that way is caught
 * by the region checksum, like any other damaged page content.
 *
 * History: IAA keeps 4 KiB of history, and QPL's software inflate enforces
 * the same limit (a match distance over 4096 is QPL_STS_BAD_DIST_ERR), while
 * QPL's compressor never emits one. With 4 KiB pages every stream qualifies;
 * with larger pages, streams from zlib or ISA-L inflate here only when they
 * were made with a 4 KiB window (zlib windowBits -12, ISA-L hist_bits 12).
 * The other direction always works: zlib and ISA-L inflate any QPL stream.
 *
 * QPL jobs are large (the software path's job holds ISA-L-sized state), so a
 * context allocates them once: max_jobs hardware jobs, or one software job,
 * reused for every page.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <qpl/qpl.h>

#include "engine.h"

/* Allocates and initialises one QPL job for path; NULL and *st set on
 * failure (without IAA, the hardware path's init answers 503,
 * QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE). */
static qpl_job *job_new(qpl_path_t path, qpl_status *st)
{
	uint32_t size = 0;
	qpl_job *q;

	*st = qpl_get_job_size(path, &size);
	if (*st != QPL_STS_OK)
		return NULL;
	q = calloc(1, size);
	if (!q) {
		*st = QPL_STS_NO_MEM_ERR;
		return NULL;
	}
	*st = qpl_init_job(path, q);
	if (*st != QPL_STS_OK) {
		free(q);
		return NULL;
	}
	return q;
}

static void job_free(qpl_job *q)
{
	if (q) {
		qpl_fini_job(q);
		free(q);
	}
}

/* Probes a path once per process; the answer is cached. */
static pthread_once_t hw_once = PTHREAD_ONCE_INIT, sw_once = PTHREAD_ONCE_INIT;
static int hw_ok, sw_ok;

static int probe(qpl_path_t path)
{
	qpl_status st;
	qpl_job *q = job_new(path, &st);

	job_free(q);
	return q != NULL;
}

static void hw_probe(void) { hw_ok = probe(qpl_path_hardware); }
static void sw_probe(void) { sw_ok = probe(qpl_path_software); }

static int qpl_hw_available(void)
{
	pthread_once(&hw_once, hw_probe);
	return hw_ok;
}

static int qpl_sw_available(void)
{
	pthread_once(&sw_once, sw_probe);
	return sw_ok;
}

static qpl_compression_levels map_level(qpl_path_t path, int level)
{
	/* IAA compresses at level 1 only; QPL's software path also has its
	 * "high" level (3): livemig levels 2 and above select it. */
	if (path == qpl_path_software && level >= 2)
		return qpl_high_level;
	return qpl_level_1;
}

/* Fills q for one page. Every field a previous page may have changed is set
 * again: the job is reused. 0, or LM_EINVAL for a job that cannot be right. */
static int prepare(qpl_job *q, const lm__engine_job *job, uint32_t page_size,
		   qpl_compression_levels level)
{
	uint32_t out;

	if (!job->in || !job->out || job->in_len == 0)
		return LM_EINVAL;
	if (job->op == LM_ENGINE_COMPRESS) {
		if (job->out_cap == 0)
			return LM_EINVAL;
		q->op = qpl_op_compress;
		q->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_DYNAMIC_HUFFMAN |
			   QPL_FLAG_OMIT_VERIFY;
		q->level = level;
		q->statistics_mode = qpl_compression_mode;
		out = job->out_cap;
	} else if (job->op == LM_ENGINE_DECOMPRESS) {
		/* The output is exactly one page: a stream that decodes to
		 * more stops at the page's end with an error. */
		if (job->out_cap < page_size)
			return LM_EINVAL;
		q->op = qpl_op_decompress;
		q->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST;
		q->decomp_end_processing = qpl_stop_and_check_for_bfinal_eob;
		q->ignore_start_bits = 0;
		q->ignore_end_bits = 0;
		out = page_size;
	} else {
		return LM_EINVAL;
	}
	/* QPL reads from next_in_ptr only; its API has no const. */
	q->next_in_ptr = (uint8_t *)(uintptr_t)job->in;
	q->available_in = job->in_len;
	q->total_in = 0;
	q->next_out_ptr = job->out;
	q->available_out = out;
	q->total_out = 0;
	q->huffman_table = NULL;
	q->dictionary = NULL;
	q->crc = 0;
	return 0;
}

/* The outcome of a finished QPL job (engine.h); sets out_len. */
static int finish(lm__engine_job *job, const qpl_job *q, qpl_status st, uint32_t page_size)
{
	job->out_len = 0;
	if (job->op == LM_ENGINE_COMPRESS) {
		/* Did not fit: the page goes raw. Any other failure is an
		 * engine error: the codec retries that page in software. */
		if (st == QPL_STS_MORE_OUTPUT_NEEDED || st == QPL_STS_DST_IS_SHORT_ERR ||
		    (st == QPL_STS_OK && (q->total_out == 0 || q->total_out > job->out_cap)))
			return LM_ECODEC;
		if (st != QPL_STS_OK)
			return -EIO;
	} else if (st != QPL_STS_OK || q->total_out != page_size ||
		   q->total_in != job->in_len) {
		return LM_EDECODE;
	}
	job->out_len = q->total_out;
	return 0;
}

/* ---- qpl-sw: QPL's software path, one job per context ------------------ */

typedef struct qpl_sw_ctx {
	qpl_job *q;
	uint32_t page_size;
	qpl_compression_levels level;
} qpl_sw_ctx;

static int qpl_sw_ctx_new(void **out, int level, uint32_t page_size, uint32_t max_jobs)
{
	qpl_sw_ctx *c;
	qpl_status st;

	(void)max_jobs;
	*out = NULL;
	if (page_size == 0)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->q = job_new(qpl_path_software, &st);
	if (!c->q) {
		free(c);
		return st == QPL_STS_NO_MEM_ERR ? -ENOMEM : LM_ECODEC;
	}
	c->page_size = page_size;
	c->level = map_level(qpl_path_software, level);
	*out = c;
	return 0;
}

static void qpl_sw_ctx_free(void *ctx)
{
	qpl_sw_ctx *c = ctx;

	if (!c)
		return;
	job_free(c->q);
	free(c);
}

static int qpl_sw_execute(void *ctx, lm__engine_job *job)
{
	qpl_sw_ctx *c = ctx;
	int rc;

	if (!c || !job)
		return LM_EINVAL;
	job->out_len = 0;
	rc = prepare(c->q, job, c->page_size, c->level);
	if (rc)
		return rc;
	return finish(job, c->q, qpl_execute_job(c->q), c->page_size);
}

const lm__engine_ops lm__engine_qpl_sw = {
	.name = "qpl-sw",
	.hw = 0,
	.available = qpl_sw_available,
	.ctx_new = qpl_sw_ctx_new,
	.ctx_free = qpl_sw_ctx_free,
	.execute = qpl_sw_execute,
};

/* ---- qpl: the hardware path (IAA), max_jobs jobs in flight ------------- */

typedef struct qpl_slot {
	qpl_job *q;
	int in_flight; /* submitted and not yet waited for */
} qpl_slot;

typedef struct qpl_hw_ctx {
	uint32_t page_size, n, n_free;
	qpl_slot *slots;
	uint32_t *free_idx; /* stack of slot indices not in use */
} qpl_hw_ctx;

static void qpl_hw_ctx_free(void *ctx)
{
	qpl_hw_ctx *c = ctx;

	if (!c)
		return;
	for (uint32_t i = 0; i < c->n; i++) {
		/* The device must not write into memory about to be freed. */
		if (c->slots[i].in_flight)
			qpl_wait_job(c->slots[i].q);
		job_free(c->slots[i].q);
	}
	free(c->slots);
	free(c->free_idx);
	free(c);
}

static int qpl_hw_ctx_new(void **out, int level, uint32_t page_size, uint32_t max_jobs)
{
	qpl_hw_ctx *c;
	qpl_status st;

	(void)level; /* IAA: level 1 */
	*out = NULL;
	if (page_size == 0 || max_jobs == 0)
		return LM_EINVAL;
	if (!qpl_hw_available())
		return LM_ECODEC;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->page_size = page_size;
	c->slots = calloc(max_jobs, sizeof(*c->slots));
	c->free_idx = calloc(max_jobs, sizeof(*c->free_idx));
	if (!c->slots || !c->free_idx) {
		qpl_hw_ctx_free(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < max_jobs; i++) {
		c->slots[i].q = job_new(qpl_path_hardware, &st);
		if (!c->slots[i].q) {
			qpl_hw_ctx_free(c);
			return st == QPL_STS_NO_MEM_ERR ? -ENOMEM : LM_ECODEC;
		}
		c->n++;
		c->free_idx[c->n_free++] = i;
	}
	*out = c;
	return 0;
}

static void slot_release(qpl_hw_ctx *c, lm__engine_job *job)
{
	qpl_slot *s = job->slot;

	s->in_flight = 0;
	c->free_idx[c->n_free++] = (uint32_t)(s - c->slots);
	job->slot = NULL;
}

static int qpl_hw_submit(void *ctx, lm__engine_job *job)
{
	qpl_hw_ctx *c = ctx;
	qpl_slot *s;
	qpl_status st;
	int rc;

	if (!c || !job)
		return LM_EINVAL;
	job->slot = NULL;
	job->out_len = 0;
	if (c->n_free == 0)
		return LM_EBUSY; /* more than max_jobs in flight */
	s = &c->slots[c->free_idx[c->n_free - 1]];
	rc = prepare(s->q, job, c->page_size, qpl_level_1);
	if (rc)
		return rc;
	st = qpl_submit_job(s->q);
	if (st == QPL_STS_QUEUES_ARE_BUSY_ERR)
		return LM_EBUSY;
	if (st != QPL_STS_OK)
		return job->op == LM_ENGINE_COMPRESS ? -EIO : LM_EDECODE;
	c->n_free--;
	s->in_flight = 1;
	job->slot = s;
	return 0;
}

static int qpl_hw_wait(void *ctx, lm__engine_job *job)
{
	qpl_hw_ctx *c = ctx;
	qpl_slot *s;
	int rc;

	if (!c || !job || !job->slot)
		return LM_EINVAL;
	s = job->slot;
	rc = finish(job, s->q, qpl_wait_job(s->q), c->page_size);
	slot_release(c, job);
	return rc;
}

const lm__engine_ops lm__engine_qpl = {
	.name = "qpl",
	.hw = 1,
	.available = qpl_hw_available,
	.ctx_new = qpl_hw_ctx_new,
	.ctx_free = qpl_hw_ctx_free,
	.submit = qpl_hw_submit,
	.wait = qpl_hw_wait,
};
