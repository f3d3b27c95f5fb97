/*
 * Engine ops table for the per-page deflate codec: one file per engine
 * (src/engine/<name>.c). An engine compresses or decompresses one page as
 * raw DEFLATE (RFC 1951), the format Intel IAA produces and consumes, so a
 * page compressed by any engine decodes with any other.
 *
 * Accelerators (hw = 1) are asynchronous: submit() queues a job and may
 * answer LM_EBUSY when the device queue is full; wait() completes it.
 * Software engines (hw = 0) run execute() synchronously.
 *
 * A job's outcome has one channel: the return value of wait() or execute().
 *   0            done: out_len bytes in out
 *   LM_ECODEC    compress: the output did not fit in out_cap (the page goes raw)
 *   LM_EDECODE   decompress: the input is not one stream of exactly one page
 *   LM_EINVAL    a job or call that cannot be right (NULL, bad op, short out)
 *   other < 0    the engine failed (-EIO, -ENOMEM): software may redo the page
 * out_len is 0 unless the outcome is 0.
 *
 * A context is owned by one channel thread; engines keep their large state
 * (ISA-L's ~80 KB stream and inflate state, zlib's z_stream, QPL jobs) in
 * it and reuse it for every page: never per page.
 */
#ifndef LM_ENGINE_H
#define LM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

#define LM_EBUSY (-16) /* == -EBUSY: the accelerator's queue is full */

enum { LM_ENGINE_COMPRESS = 0, LM_ENGINE_DECOMPRESS = 1 };

typedef struct lm__engine_job {
	int op;              /* LM_ENGINE_COMPRESS or _DECOMPRESS */
	const uint8_t *in;
	uint32_t in_len;
	uint8_t *out;
	uint32_t out_cap;    /* compress: page_size - 1, so "fits" means "shrank" */
	uint32_t out_len;    /* set by the engine: the output's length when done */
	void *slot;          /* engine-private (an accelerator's job handle) */
} lm__engine_job;

typedef struct lm__engine_ops {
	const char *name;    /* for the stats: "qpl", "isal", "zlib", "qpl-sw" */
	int hw;              /* 1: submit/wait; 0: execute */
	/* 1 when the engine can run here (an accelerator: a usable device). */
	int (*available)(void);
	/* max_jobs: jobs in flight at once (accelerators; a packet's pages). */
	int (*ctx_new)(void **ctx, int level, uint32_t page_size, uint32_t max_jobs);
	void (*ctx_free)(void *ctx);
	/* Accelerators. submit: 0 queued, LM_EBUSY (queue full: nothing
	 * queued, try again), or another error (not queued). wait: blocks
	 * until a queued job completes and returns its outcome (above); the
	 * job is no longer in flight afterwards, whatever the outcome. */
	int (*submit)(void *ctx, lm__engine_job *job);
	int (*wait)(void *ctx, lm__engine_job *job);
	/* Software: runs the job now and returns its outcome (above). */
	int (*execute)(void *ctx, lm__engine_job *job);
} lm__engine_ops;

extern const lm__engine_ops lm__engine_isal;
extern const lm__engine_ops lm__engine_zlib;
#ifdef LM_HAVE_QPL
extern const lm__engine_ops lm__engine_qpl;    /* hardware path (IAA) */
extern const lm__engine_ops lm__engine_qpl_sw; /* QPL's software path */
#endif

#endif
