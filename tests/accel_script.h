/*
 * A scripted test accelerator behind lm__engine_ops ("test-accel", hw = 1),
 * for the deflate codec's accelerator -> software -> raw chain.
 *
 * It really compresses and decompresses (zlib, raw DEFLATE, level 1), so its
 * output is valid and decodes with any engine. The work is done when the job
 * completes (in wait()), never at submit(): a caller that reads a job's
 * output before completion sees out_len 0 and an untouched output buffer.
 *
 * Two modes, chosen after accel_script_reset():
 *
 * Scripted (default): what happens to a submission depends on its index
 * (0, 1, 2, ... over all submit() calls of all contexts since the reset,
 * retries included): accel_script_set() for one index, accel_script_every()
 * for a periodic pattern (explicit rules win). Unscripted submissions are
 * accepted and complete at their first wait().
 *
 * Service model (accel_script_model()): one device shared by every context,
 * with a fixed service rate (pages per simulated microsecond, served first
 * come first served) and a queue depth (jobs queued or in service at once).
 * Each context has its own simulated clock (accel_script_clock()); submit()
 * advances it by submit_us and answers LM_EBUSY when the device holds depth
 * jobs at that time; wait() advances it to the job's completion plus
 * wait_us. The driver must call the contexts in simulated-time order (always
 * step the context whose clock is lowest) for the model to be causal.
 *
 * All state is global (the ops table carries no user pointer) and guarded by
 * a mutex: contexts may live on several threads (sender and receiver
 * channels in one test process).
 */
#ifndef LM_TEST_ACCEL_SCRIPT_H
#define LM_TEST_ACCEL_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

extern const lm__engine_ops accel_script_ops;

enum accel_action {
	AS_ACCEPT = 0,  /* queued; done at the first wait() */
	AS_BUSY,        /* submit() answers LM_EBUSY, nothing queued */
	AS_FAIL,        /* queued; wait() answers -EIO after the device wrote
			   garbage into the output buffer */
	AS_LATE,        /* queued; wait() finds it still running arg times
			   (late_polls) before it is done */
	AS_WAIT_ERR,    /* queued; wait() answers -EIO, output untouched
			   (job lost) */
	AS_SUBMIT_ERR,  /* submit() answers -EIO (not busy), nothing queued */
};

/* Forgets rules, counters and the model; available, scripted mode. */
void accel_script_reset(void);
/* The submission with this index gets action (arg: AS_LATE's poll count). */
void accel_script_set(uint32_t submission, int action, uint32_t arg);
/* Every submission with index % period == phase (up to 4 such rules; the
 * first matching one applies). */
void accel_script_every(uint32_t period, uint32_t phase, int action, uint32_t arg);
/* What available() answers (default 1). */
void accel_script_set_available(int yes);

typedef struct accel_script_counters {
	uint64_t ctx_new, ctx_free;
	/* [LM_ENGINE_COMPRESS] and [LM_ENGINE_DECOMPRESS] */
	uint64_t submits[2];     /* submit() calls */
	uint64_t busy[2];        /* answered LM_EBUSY */
	uint64_t submit_errs[2]; /* answered another error */
	uint64_t accepted[2];    /* queued */
	uint64_t ok[2];          /* completed with outcome 0 */
	uint64_t no_fit[2];      /* completed LM_ECODEC (compress: did not fit) or
				    LM_EDECODE (decompress: bad input) */
	uint64_t failed[2];      /* completed -EIO (AS_FAIL) */
	uint64_t lost[2];        /* wait() lost the job (AS_WAIT_ERR) */
	uint64_t polls;          /* completion checks, made inside wait() */
	uint64_t late_polls;     /* checks that found the job still running */
	uint64_t waits;
	uint64_t inflight, inflight_max;
	uint64_t overcommit;     /* submit() with all max_jobs slots in use */
	uint64_t bad_calls;      /* wait on a job not in flight, NULL args */
} accel_script_counters;

void accel_script_get(accel_script_counters *out);
/* Input pointers of the accepted jobs in acceptance order (the first
 * 65536); returns how many were accepted. */
size_t accel_script_accepted_inputs(const void **out, size_t cap);

/* ---- service model ------------------------------------------------------ */

typedef struct accel_model {
	double rate;       /* pages completed per simulated microsecond */
	uint32_t depth;    /* device queue depth, shared by all contexts */
	double submit_us;  /* one submit() call, accepted or refused */
	double wait_us;    /* collecting one completed job */
	int compress;      /* 1: really (de)compress at completion; 0: outcome 0,
			      out_len = in_len / 3 (timing only) */
} accel_model;

void accel_script_model(const accel_model *m);
/* The context's simulated clock in microseconds (the driver adds its own
 * costs, e.g. software compression, to it). */
double *accel_script_clock(void *ctx);
/* Jobs in the device at time t (queued or in service). */
uint32_t accel_script_model_occupancy(double t);
/* The first completion time after t of a job in the device (t if none). */
double accel_script_model_next_completion(double t);
/* Device busy time so far: jobs served / rate. */
double accel_script_model_busy_us(void);

#endif
