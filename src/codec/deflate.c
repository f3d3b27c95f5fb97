/*
 * Codec "deflate": every normal page is compressed on its own as raw DEFLATE
 * (RFC 1951, Intel IAA's format), its output capped at page_size - 1. A page
 * that does not fit travels raw: lens[i] == page_size and it is not copied
 * to out (the sender sends it from the region). Compressed pages are packed
 * in out in page order.
 *
 * The chain, per channel context (the policy of QEMU 9.1's multifd + QPL):
 *
 *   accelerator first, software second, raw last.
 *
 * encode: every page is submitted to the accelerator. A submission refused
 * as busy is tried again up to busy_retries times (each one counted in the
 * accelerator's busy_retries); a page still refused (or refused with another
 * error) is compressed at once by the software engine (a "fallback" on the
 * accelerator's entry). That software work is also the back-off: the next
 * page tries the accelerator first again. After the submit loop the
 * accelerator's jobs are waited for in page order; a failed job goes to
 * software (fallback), a job whose output did not fit (LM_ECODEC, the
 * engine contract) goes raw. Software that fails or does not fit: raw.
 * Without an accelerator every page goes straight to software.
 *
 * decode: raw pages (length == page_size) are copied; the others are
 * submitted to the accelerator the same way (busy retries, then software at
 * once for that page); failed accelerator jobs are decoded again in
 * software. A page that does not decode to exactly page_size bytes from
 * exactly its length is LM_EDECODE. Nothing is written outside the pages;
 * every accelerator job is waited for before decode returns, also on error.
 *
 * Statistics (lm__engine_stat entries, accelerator first):
 *   jobs          accelerator: submissions accepted; software: jobs run
 *   busy_retries  busy refusals that were tried again
 *   fallbacks     accelerator pages handed to software (refused, or failed)
 *   raw           encode: pages this engine could not shrink (or its job
 *                 failed with no engine left); decode: raw pages received,
 *                 on the entry of the first engine of the chain
 *   bytes_in/out  of the jobs that succeeded (encode: page_size -> length;
 *                 decode: length -> page_size)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "../engine/engine.h"
#include "../wire.h"

enum { HOW_HW = 1, HOW_DONE = 2 };

typedef struct deflate_ctx {
	uint32_t page_size, max_jobs, busy_retries;
	const lm__engine_ops *hw, *sw;
	void *hw_ctx, *sw_ctx;
	lm_engine_stats *hs, *ss;
	lm_engine_stats dummy[2]; /* when the params carry no stats array */
	lm__engine_job *jobs;     /* max_jobs accelerator jobs */
	uint8_t *how;             /* per page of a batch: HOW_* */
} deflate_ctx;

static uint64_t deflate_bound(uint32_t page_size, uint32_t pages)
{
	/* Each page is at most page_size bytes: compressed < page_size, or raw. */
	return (uint64_t)page_size * pages;
}

static void deflate_ctx_free(void *ctx)
{
	deflate_ctx *c = ctx;

	if (!c)
		return;
	if (c->hw_ctx)
		c->hw->ctx_free(c->hw_ctx);
	if (c->sw_ctx)
		c->sw->ctx_free(c->sw_ctx);
	free(c->jobs);
	free(c->how);
	free(c);
}

static const lm__engine_ops *software_engine(lm_engine_id id)
{
	switch (id) {
	case LM_ENGINE_DEFAULT:
	case LM_ENGINE_ISAL:
		return &lm__engine_isal;
	case LM_ENGINE_ZLIB:
		return &lm__engine_zlib;
#ifdef LM_HAVE_QPL
	case LM_ENGINE_QPL_SW:
		return &lm__engine_qpl_sw;
#endif
	default:
		return NULL;
	}
}

/* The accelerator: the test's if given, else QPL's hardware path when built
 * in, allowed and usable. NULL: none (software only). */
static const lm__engine_ops *accelerator(const lm__codec_params *p)
{
	if (p->accel_ops)
		return p->accel_ops->available() ? p->accel_ops : NULL;
#ifdef LM_HAVE_QPL
	if (p->accel != LM_ACCEL_OFF && lm__engine_qpl.available())
		return &lm__engine_qpl;
#endif
	return NULL;
}

static int deflate_ctx_new(void **out, const lm__codec_params *p)
{
	const lm__engine_ops *hw;
	deflate_ctx *c;
	int rc;

	*out = NULL;
	if (!p || p->page_size < 2 || p->page_size > LM_MAX_PAGE_SIZE)
		return LM_EINVAL;
	if (p->accel_ops && !p->accel_ops->hw)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->page_size = p->page_size;
	c->max_jobs = p->packet_pages ? p->packet_pages : LM_DEFAULT_PACKET_PAGES;
	if (c->max_jobs > LM_MAX_PACKET_PAGES)
		c->max_jobs = LM_MAX_PACKET_PAGES;
	c->busy_retries = p->busy_retries;
	c->sw = software_engine(p->engine);
	if (!c->sw || !c->sw->available()) {
		free(c);
		return LM_ECODEC;
	}
	/* hw and hw_ctx are set together, only once the context exists. */
	hw = accelerator(p);
	if (hw) {
		void *hw_ctx = NULL;

		rc = hw->ctx_new(&hw_ctx, p->level, c->page_size, c->max_jobs);
		if (rc == -ENOMEM) {
			deflate_ctx_free(c);
			return rc;
		}
		if (rc == 0) {
			c->hw = hw;
			c->hw_ctx = hw_ctx;
		}
	}
	if (!c->hw && p->accel == LM_ACCEL_QPL) {
		deflate_ctx_free(c); /* the accelerator is required */
		return LM_ECODEC;
	}
	rc = c->sw->ctx_new(&c->sw_ctx, p->level, c->page_size, 1);
	if (rc) {
		c->sw_ctx = NULL;
		deflate_ctx_free(c);
		return rc == -ENOMEM ? rc : LM_ECODEC;
	}
	if (c->hw) {
		c->jobs = calloc(c->max_jobs, sizeof(*c->jobs));
		c->how = calloc(c->max_jobs, 1);
		if (!c->jobs || !c->how) {
			deflate_ctx_free(c);
			return -ENOMEM;
		}
		c->hs = lm__engine_stat(p->stats, c->hw->name);
	}
	c->ss = lm__engine_stat(p->stats, c->sw->name);
	if (!c->hs)
		c->hs = &c->dummy[0];
	if (!c->ss)
		c->ss = &c->dummy[1];
	*out = c;
	return 0;
}

/* Submits job, trying a busy accelerator again up to busy_retries times.
 * 1: queued; 0: refused (busy after the retries, or another error). */
static int hw_submit(deflate_ctx *c, lm__engine_job *job)
{
	for (uint32_t t = 0;; t++) {
		int rc = c->hw->submit(c->hw_ctx, job);
		if (rc == 0) {
			c->hs->jobs++;
			return 1;
		}
		if (rc != LM_EBUSY || t >= c->busy_retries)
			return 0;
		c->hs->busy_retries++;
	}
}

/* ---- encode -------------------------------------------------------------- */

/* Compresses one page in software into dst (page_size - 1 bytes). Returns
 * its length, or page_size: raw. */
static uint32_t sw_compress(deflate_ctx *c, const void *page, uint8_t *dst)
{
	lm__engine_job job = {
		.op = LM_ENGINE_COMPRESS,
		.in = page,
		.in_len = c->page_size,
		.out = dst,
		.out_cap = c->page_size - 1,
	};
	int rc = c->sw->execute(c->sw_ctx, &job);

	c->ss->jobs++;
	if (rc == 0 && job.out_len > 0 && job.out_len < c->page_size) {
		c->ss->bytes_in += c->page_size;
		c->ss->bytes_out += job.out_len;
		return job.out_len;
	}
	c->ss->raw++;
	return c->page_size;
}

/* Pages [first, first + n) with the accelerator; page i's output goes to
 * out + i * page_size (page_size - 1 bytes), packed afterwards. */
static void encode_batch_hw(deflate_ctx *c, const void *const *pages, uint32_t first, uint32_t n,
			    uint8_t *out, uint32_t *lens)
{
	uint32_t ps = c->page_size;

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = first + k;
		lm__engine_job *job = &c->jobs[k];

		*job = (lm__engine_job){
			.op = LM_ENGINE_COMPRESS,
			.in = pages[i],
			.in_len = ps,
			.out = out + (size_t)i * ps,
			.out_cap = ps - 1,
		};
		if (hw_submit(c, job)) {
			c->how[k] = HOW_HW;
			continue;
		}
		/* Refused: software now, which also gives the queue time. */
		c->how[k] = HOW_DONE;
		c->hs->fallbacks++;
		lens[i] = sw_compress(c, pages[i], out + (size_t)i * ps);
	}
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = first + k;
		lm__engine_job *job = &c->jobs[k];
		int rc;

		if (c->how[k] != HOW_HW)
			continue;
		rc = c->hw->wait(c->hw_ctx, job);
		if (rc == 0 && job->out_len > 0 && job->out_len < ps) {
			c->hs->bytes_in += ps;
			c->hs->bytes_out += job->out_len;
			lens[i] = job->out_len;
		} else if (rc == LM_ECODEC) {
			c->hs->raw++; /* did not fit: incompressible, send raw */
			lens[i] = ps;
		} else {
			c->hs->fallbacks++;
			lens[i] = sw_compress(c, pages[i], out + (size_t)i * ps);
		}
	}
}

static int deflate_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
			  uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	deflate_ctx *c = ctx;
	size_t pos = 0;

	*out_len = 0;
	if (!c || page_size != c->page_size || cap / page_size < n)
		return LM_EINVAL;
	if (!c->hw) {
		for (uint32_t i = 0; i < n; i++) {
			lens[i] = sw_compress(c, pages[i], out + pos);
			if (lens[i] < page_size)
				pos += lens[i];
		}
		*out_len = pos;
		return 0;
	}
	for (uint32_t first = 0; first < n; first += c->max_jobs)
		encode_batch_hw(c, pages, first, n - first < c->max_jobs ? n - first : c->max_jobs,
				out, lens);
	/* Pack in page order: page i's output sits at i * page_size >= pos. */
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] >= page_size)
			continue;
		if (pos != (size_t)i * page_size)
			memmove(out + pos, out + (size_t)i * page_size, lens[i]);
		pos += lens[i];
	}
	*out_len = pos;
	return 0;
}

/* ---- decode -------------------------------------------------------------- */

/* Decodes one page in software. 1: exactly one page; 0: not. */
static int sw_decompress(deflate_ctx *c, const uint8_t *in, uint32_t len, void *page)
{
	lm__engine_job job = {
		.op = LM_ENGINE_DECOMPRESS,
		.in = in,
		.in_len = len,
		.out = page,
		.out_cap = c->page_size,
	};
	int rc = c->sw->execute(c->sw_ctx, &job);

	c->ss->jobs++;
	if (rc == 0 && job.out_len == c->page_size) {
		c->ss->bytes_in += len;
		c->ss->bytes_out += c->page_size;
		return 1;
	}
	return 0;
}

/* Pages [first, first + n): in points at page first's bytes. Returns the
 * index of the lowest page that did not decode, or UINT32_MAX. */
static uint32_t decode_batch_hw(deflate_ctx *c, const uint8_t *in, const uint32_t *lens,
				void *const *pages, uint32_t first, uint32_t n)
{
	uint32_t ps = c->page_size, bad = UINT32_MAX, k;
	const uint8_t *p = in;

	for (k = 0; k < n; k++) {
		uint32_t i = first + k;
		lm__engine_job *job = &c->jobs[k];

		c->how[k] = HOW_DONE;
		if (lens[i] == ps) {
			memcpy(pages[i], p, ps);
			c->hs->raw++;
			p += ps;
			continue;
		}
		*job = (lm__engine_job){
			.op = LM_ENGINE_DECOMPRESS,
			.in = p,
			.in_len = lens[i],
			.out = pages[i],
			.out_cap = ps,
		};
		p += lens[i];
		if (hw_submit(c, job)) {
			c->how[k] = HOW_HW;
			continue;
		}
		c->hs->fallbacks++;
		if (!sw_decompress(c, job->in, job->in_len, pages[i])) {
			bad = i;
			break; /* submit no more; drain what is queued */
		}
	}
	for (uint32_t j = 0; j < k && j < n; j++) {
		uint32_t i = first + j;
		lm__engine_job *job = &c->jobs[j];
		int rc;

		if (c->how[j] != HOW_HW)
			continue;
		rc = c->hw->wait(c->hw_ctx, job);
		if (rc == 0 && job->out_len == ps) {
			c->hs->bytes_in += job->in_len;
			c->hs->bytes_out += ps;
			continue;
		}
		if (i > bad)
			continue; /* a page before it failed already */
		c->hs->fallbacks++;
		if (!sw_decompress(c, job->in, job->in_len, pages[i]))
			bad = i;
	}
	return bad;
}

static int deflate_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
			  void *const *pages, uint32_t n, uint32_t page_size, struct lm__err *e)
{
	deflate_ctx *c = ctx;
	uint32_t bad = UINT32_MAX;
	size_t sum = 0;

	if (!c || page_size != c->page_size) {
		lm__err_set(e, "deflate: page size %u, context made for %u", page_size,
			    c ? c->page_size : 0);
		return LM_EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] == 0 || lens[i] > page_size) {
			lm__err_set(e, "data.length[%u] %u outside 1..%u", i, lens[i], page_size);
			return LM_EDECODE;
		}
		sum += lens[i];
	}
	if (sum != in_len) {
		lm__err_set(e, "data.payload %zu != sum of page lengths %zu", in_len, sum);
		return LM_EDECODE;
	}
	if (!c->hw) {
		const uint8_t *p = in;
		for (uint32_t i = 0; i < n && bad == UINT32_MAX; p += lens[i], i++) {
			if (lens[i] == page_size) {
				memcpy(pages[i], p, page_size);
				c->ss->raw++;
			} else if (!sw_decompress(c, p, lens[i], pages[i])) {
				bad = i;
			}
		}
	} else {
		const uint8_t *p = in;
		for (uint32_t first = 0; first < n && bad == UINT32_MAX; first += c->max_jobs) {
			uint32_t m = n - first < c->max_jobs ? n - first : c->max_jobs;
			bad = decode_batch_hw(c, p, lens, pages, first, m);
			for (uint32_t i = first; i < first + m; i++)
				p += lens[i];
		}
	}
	if (bad != UINT32_MAX) {
		lm__err_set(e, "data.payload: page %u (length %u) did not decode to %u bytes", bad,
			    lens[bad], page_size);
		if (e)
			e->page = bad + 1;
		return LM_EDECODE;
	}
	return 0;
}

const lm__codec_ops lm__codec_deflate = {
	.name = "deflate",
	.id = LM_CODEC_DEFLATE,
	.per_page = 1,
	.raw_only = 0,
	.payload_bound = deflate_bound,
	.ctx_new = deflate_ctx_new,
	.ctx_free = deflate_ctx_free,
	.encode = deflate_encode,
	.decode = deflate_decode,
};
