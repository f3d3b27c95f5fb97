/* The scripted test accelerator: see accel_script.h. */
#include "accel_script.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#define AS_MAX_RULES 65536
#define AS_MAX_EVERY 4
#define AS_MAX_INPUTS 65536

typedef struct as_rule {
	uint8_t set, action;
	uint32_t arg;
} as_rule;

typedef struct as_every {
	uint32_t period, phase, arg;
	int action;
} as_every;

typedef struct as_slot {
	int in_use;
	int action;
	uint32_t late_left;
	double finish;          /* model: completion time */
	lm__engine_job *job;
} as_slot;

typedef struct as_ctx {
	uint32_t page_size, n;
	as_slot *slots;
	z_stream d, i;
	int d_ok, i_ok;
	double clock;
} as_ctx;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static as_rule rules[AS_MAX_RULES];
static as_every every[AS_MAX_EVERY];
static int n_every, avail = 1, model_on;
static uint64_t next_index;
static accel_script_counters cnt;
static const void *inputs[AS_MAX_INPUTS];
static size_t n_inputs;
static accel_model model;
static double *finishes; /* model: completion times, nondecreasing (FIFO) */
static size_t n_fin, cap_fin;

void accel_script_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(rules, 0, sizeof(rules));
	memset(every, 0, sizeof(every));
	n_every = 0;
	avail = 1;
	model_on = 0;
	next_index = 0;
	memset(&cnt, 0, sizeof(cnt));
	n_inputs = 0;
	free(finishes);
	finishes = NULL;
	n_fin = cap_fin = 0;
	pthread_mutex_unlock(&lock);
}

void accel_script_set(uint32_t submission, int action, uint32_t arg)
{
	if (submission >= AS_MAX_RULES)
		return;
	pthread_mutex_lock(&lock);
	rules[submission] = (as_rule){1, (uint8_t)action, arg};
	pthread_mutex_unlock(&lock);
}

void accel_script_every(uint32_t period, uint32_t phase, int action, uint32_t arg)
{
	pthread_mutex_lock(&lock);
	if (n_every < AS_MAX_EVERY && period)
		every[n_every++] = (as_every){period, phase % period, arg, action};
	pthread_mutex_unlock(&lock);
}

void accel_script_set_available(int yes)
{
	pthread_mutex_lock(&lock);
	avail = yes;
	pthread_mutex_unlock(&lock);
}

void accel_script_get(accel_script_counters *out)
{
	pthread_mutex_lock(&lock);
	*out = cnt;
	pthread_mutex_unlock(&lock);
}

size_t accel_script_accepted_inputs(const void **out, size_t cap)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = n_inputs < cap ? n_inputs : cap;
	memcpy(out, inputs, n * sizeof(*out));
	n = n_inputs;
	pthread_mutex_unlock(&lock);
	return n;
}

void accel_script_model(const accel_model *m)
{
	pthread_mutex_lock(&lock);
	model = *m;
	if (model.rate <= 0)
		model.rate = 1;
	if (!model.depth)
		model.depth = 1;
	model_on = 1;
	pthread_mutex_unlock(&lock);
}

double *accel_script_clock(void *ctx)
{
	return &((as_ctx *)ctx)->clock;
}

/* Jobs whose completion is after t (all were submitted at or before t when
 * the driver steps contexts in time order). Caller holds the lock. */
static size_t occupancy_locked(double t)
{
	size_t lo = 0, hi = n_fin;

	while (lo < hi) { /* first index with finish > t */
		size_t mid = lo + (hi - lo) / 2;
		if (finishes[mid] > t)
			hi = mid;
		else
			lo = mid + 1;
	}
	return n_fin - lo;
}

uint32_t accel_script_model_occupancy(double t)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = occupancy_locked(t);
	pthread_mutex_unlock(&lock);
	return (uint32_t)n;
}

double accel_script_model_next_completion(double t)
{
	double r = t;
	size_t occ;

	pthread_mutex_lock(&lock);
	occ = occupancy_locked(t);
	if (occ)
		r = finishes[n_fin - occ];
	pthread_mutex_unlock(&lock);
	return r;
}

double accel_script_model_busy_us(void)
{
	double r;

	pthread_mutex_lock(&lock);
	r = model_on ? (double)n_fin / model.rate : 0;
	pthread_mutex_unlock(&lock);
	return r;
}

/* ---- engine ops ------------------------------------------------------------ */

static int as_available(void)
{
	int r;

	pthread_mutex_lock(&lock);
	r = avail;
	pthread_mutex_unlock(&lock);
	return r;
}

static void as_ctx_free(void *ctx)
{
	as_ctx *c = ctx;

	if (!c)
		return;
	if (c->d_ok)
		deflateEnd(&c->d);
	if (c->i_ok)
		inflateEnd(&c->i);
	free(c->slots);
	free(c);
	pthread_mutex_lock(&lock);
	cnt.ctx_free++;
	pthread_mutex_unlock(&lock);
}

static int as_ctx_new(void **out, int level, uint32_t page_size, uint32_t max_jobs)
{
	as_ctx *c = calloc(1, sizeof(*c));

	(void)level;
	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->page_size = page_size;
	c->n = max_jobs ? max_jobs : 1;
	c->slots = calloc(c->n, sizeof(*c->slots));
	c->d_ok = deflateInit2(&c->d, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
	c->i_ok = inflateInit2(&c->i, -15) == Z_OK;
	pthread_mutex_lock(&lock);
	cnt.ctx_new++;
	pthread_mutex_unlock(&lock);
	if (!c->slots || !c->d_ok || !c->i_ok) {
		as_ctx_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

/* What happens to submission idx. Caller holds the lock. */
static int action_for(uint64_t idx, uint32_t *arg)
{
	*arg = 0;
	if (idx < AS_MAX_RULES && rules[idx].set) {
		*arg = rules[idx].arg;
		return rules[idx].action;
	}
	for (int k = 0; k < n_every; k++) {
		if (idx % every[k].period == every[k].phase) {
			*arg = every[k].arg;
			return every[k].action;
		}
	}
	return AS_ACCEPT;
}

static int as_submit(void *ctx, lm__engine_job *job)
{
	as_ctx *c = ctx;
	as_slot *s = NULL;
	uint32_t arg;
	int op, action;

	if (!c || !job || (job->op != LM_ENGINE_COMPRESS && job->op != LM_ENGINE_DECOMPRESS)) {
		pthread_mutex_lock(&lock);
		cnt.bad_calls++;
		pthread_mutex_unlock(&lock);
		return LM_EINVAL;
	}
	op = job->op;
	job->slot = NULL;
	job->out_len = 0;
	pthread_mutex_lock(&lock);
	cnt.submits[op]++;
	for (uint32_t k = 0; k < c->n && !s; k++)
		if (!c->slots[k].in_use)
			s = &c->slots[k];
	if (!s) {
		cnt.overcommit++;
		cnt.busy[op]++;
		pthread_mutex_unlock(&lock);
		return LM_EBUSY;
	}
	if (model_on) {
		c->clock += model.submit_us;
		if (occupancy_locked(c->clock) >= model.depth) {
			cnt.busy[op]++;
			pthread_mutex_unlock(&lock);
			return LM_EBUSY;
		}
		action = AS_ACCEPT;
		arg = 0;
	} else {
		action = action_for(next_index++, &arg);
	}
	if (action == AS_BUSY) {
		cnt.busy[op]++;
		pthread_mutex_unlock(&lock);
		return LM_EBUSY;
	}
	if (action == AS_SUBMIT_ERR) {
		cnt.submit_errs[op]++;
		pthread_mutex_unlock(&lock);
		return -EIO;
	}
	*s = (as_slot){1, action, action == AS_LATE ? arg : 0, 0, job};
	if (model_on) {
		double start = n_fin && finishes[n_fin - 1] > c->clock ? finishes[n_fin - 1] : c->clock;
		if (n_fin == cap_fin) {
			size_t nc = cap_fin ? 2 * cap_fin : 4096;
			double *nf = realloc(finishes, nc * sizeof(*nf));
			if (!nf) {
				s->in_use = 0;
				pthread_mutex_unlock(&lock);
				return -ENOMEM;
			}
			finishes = nf;
			cap_fin = nc;
		}
		s->finish = start + 1.0 / model.rate;
		finishes[n_fin++] = s->finish;
	}
	cnt.accepted[op]++;
	if (n_inputs < AS_MAX_INPUTS)
		inputs[n_inputs] = job->in;
	n_inputs++;
	if (++cnt.inflight > cnt.inflight_max)
		cnt.inflight_max = cnt.inflight;
	job->slot = s;
	pthread_mutex_unlock(&lock);
	return 0;
}

/* Does the job's work (outside the lock: the context is one thread's);
 * returns its outcome (engine.h). */
static int run_job(as_ctx *c, lm__engine_job *job, int action)
{
	job->out_len = 0;
	if (action == AS_FAIL) {
		/* A failing device may leave anything in the output. */
		uint32_t n = job->out_cap < 97 ? job->out_cap : 97;
		memset(job->out, 0xEE, n);
		return -EIO;
	}
	if (model_on && !model.compress) {
		job->out_len = job->op == LM_ENGINE_COMPRESS ? job->in_len / 3 + 1 : c->page_size;
		return 0;
	}
	if (job->op == LM_ENGINE_COMPRESS) {
		z_stream *z = &c->d;
		if (deflateReset(z) != Z_OK)
			return LM_ECODEC;
		z->next_in = (Bytef *)(uintptr_t)job->in;
		z->avail_in = job->in_len;
		z->next_out = job->out;
		z->avail_out = job->out_cap;
		if (deflate(z, Z_FINISH) != Z_STREAM_END || z->total_out == 0)
			return LM_ECODEC;
		job->out_len = (uint32_t)z->total_out;
		return 0;
	} else {
		z_stream *z = &c->i;
		uint32_t cap = job->out_cap < c->page_size ? job->out_cap : c->page_size;
		if (job->in_len == 0 || cap < c->page_size || inflateReset(z) != Z_OK)
			return LM_EDECODE;
		z->next_in = (Bytef *)(uintptr_t)job->in;
		z->avail_in = job->in_len;
		z->next_out = job->out;
		z->avail_out = cap;
		if (inflate(z, Z_FINISH) != Z_STREAM_END || z->avail_in || z->total_out != c->page_size)
			return LM_EDECODE;
		job->out_len = c->page_size;
		return 0;
	}
}

/* One completion check of job, a step of wait(): LM_EBUSY still running,
 * else the job's outcome (engine.h). */
static int poll_once(as_ctx *c, lm__engine_job *job)
{
	as_slot *s;
	int action, op, rc;

	pthread_mutex_lock(&lock);
	s = job ? job->slot : NULL;
	if (!c || !s || s < c->slots || s >= c->slots + c->n || !s->in_use || s->job != job) {
		cnt.bad_calls++;
		pthread_mutex_unlock(&lock);
		return LM_EINVAL;
	}
	cnt.polls++;
	if (model_on) {
		/* wait() blocks until the job's completion time. */
		if (c->clock < s->finish)
			c->clock = s->finish;
		c->clock += model.wait_us;
	} else if (s->late_left) {
		s->late_left--;
		cnt.late_polls++;
		pthread_mutex_unlock(&lock);
		return LM_EBUSY;
	}
	action = s->action;
	op = job->op;
	s->in_use = 0;
	job->slot = NULL;
	cnt.inflight--;
	pthread_mutex_unlock(&lock);

	if (action == AS_WAIT_ERR) {
		pthread_mutex_lock(&lock);
		cnt.lost[op]++;
		pthread_mutex_unlock(&lock);
		return -EIO;
	}
	rc = run_job(c, job, action);
	pthread_mutex_lock(&lock);
	if (rc == 0)
		cnt.ok[op]++;
	else if (rc == -EIO)
		cnt.failed[op]++;
	else
		cnt.no_fit[op]++;
	pthread_mutex_unlock(&lock);
	return rc;
}

static int as_wait(void *ctx, lm__engine_job *job)
{
	int rc;

	pthread_mutex_lock(&lock);
	cnt.waits++;
	pthread_mutex_unlock(&lock);
	while ((rc = poll_once(ctx, job)) == LM_EBUSY)
		;
	return rc;
}

const lm__engine_ops accel_script_ops = {
	.name = "test-accel",
	.hw = 1,
	.available = as_available,
	.ctx_new = as_ctx_new,
	.ctx_free = as_ctx_free,
	.submit = as_submit,
	.wait = as_wait,
};
