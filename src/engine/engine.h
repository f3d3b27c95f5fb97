/*
 * Engine ops table for the per-page deflate codec: one file per engine
 * (src/engine/<name>.c). An engine compresses or decompresses one page as
 * raw DEFLATE (RFC 1951), the format Intel IAA produces and consumes, so a
 * page compressed by any engine decodes with any other.
 *
 * Accelerators (hw = 1) are asynchronous: submit() queues a job and may
 * answer LM_EBUSY when the device queue is full; wait()/poll() complete it.
 * Software engines (hw = 0) run execute() synchronously.
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
	/* Set by the engine when the job completes. */
	uint32_t out_len;
	int status;          /* 0, or an error: output did not fit, bad input */
	void *slot;          /* engine-private (an accelerator's job handle) */
} lm__engine_job;

typedef struct lm__engine_ops {
	const char *name;    /* for the stats: "qpl", "isal", "zlib", "qpl-sw" */
	int hw;              /* 1: submit/wait/poll; 0: execute */
	/* 1 when the engine can run here (an accelerator: a usable device). */
	int (*available)(void);
	/* max_jobs: jobs in flight at once (accelerators; a packet's pages). */
	int (*ctx_new)(void **ctx, int level, uint32_t page_size, uint32_t max_jobs);
	void (*ctx_free)(void *ctx);
	/* Accelerators. submit: 0 queued, LM_EBUSY, or an error. wait: blocks
	 * until job completes, 0 (see job->status) or an error. poll: 0 done,
	 * LM_EBUSY still running, or an error. */
	int (*submit)(void *ctx, lm__engine_job *job);
	int (*wait)(void *ctx, lm__engine_job *job);
	int (*poll)(void *ctx, lm__engine_job *job);
	/* Software: runs the job now; 0 (see job->status) or an error. */
	int (*execute)(void *ctx, lm__engine_job *job);
} lm__engine_ops;

extern const lm__engine_ops lm__engine_isal;
extern const lm__engine_ops lm__engine_zlib;
#ifdef LM_HAVE_QPL
extern const lm__engine_ops lm__engine_qpl;    /* hardware path (IAA) */
extern const lm__engine_ops lm__engine_qpl_sw; /* QPL's software path */
#endif

#endif
