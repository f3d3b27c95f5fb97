/*
 * workload: a synthetic guest that writes its memory, for live migration
 * demos and tests (in the spirit of QEMU's guestperf stress).
 *
 * wl_new() maps `size` bytes of private anonymous memory and fills it with
 * content that looks like guest RAM: runs of zero pages, text, heap-like
 * structures, duplicated pages and ~10% incompressible data; or with the
 * content of an image file (`image`, e.g. made by lm-mkimage). wl_start()
 * starts writer threads that rewrite whole pages of the first `working_set`
 * bytes at `dirty_rate` bytes per second, each write stamped so the page
 * really changes, or write `write_bytes` bytes at a random offset of each
 * page they dirty. The controls map onto lm_live_config:
 *
 *   pause    -> wl_pause     (returns at a safe point: no write in flight)
 *   resume   -> wl_resume
 *   throttle -> wl_throttle  (QEMU cpu-throttle: run 10 ms, sleep pct/(100-pct) * 10 ms)
 *   dirty_log-> wl_dirty_log (a per-page log the writers keep, as KVM does)
 *
 * Functions return 0 or a negative errno code.
 *
 * Thread safety: wl_pause, wl_resume, wl_throttle, wl_dirty_log,
 * wl_pages_written, wl_base and wl_size may be called from any thread, at
 * any time between wl_new and wl_free. wl_start and wl_stop must not run
 * concurrently with each other, and wl_free must be the last call.
 */
#ifndef LM_WORKLOAD_H
#define LM_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_PAGE_SIZE 4096u /* the workload writes 4 KiB pages */
#define WL_MAX_THREADS 64

typedef struct wl_config {
	uint64_t size;        /* bytes of memory, > 0; rounded up to WL_PAGE_SIZE */
	uint64_t working_set; /* bytes the writers touch, from the start;
				 0 = min(size, 256 MiB); capped at size */
	uint64_t dirty_rate;  /* bytes dirtied per second over all writers, 0 = idle:
				 a page written counts WL_PAGE_SIZE bytes,
				 whatever write_bytes is */
	uint32_t write_bytes; /* 0 = rewrite whole pages; 1..WL_PAGE_SIZE: write
				 that many bytes at a random offset in the page */
	const char *image;    /* NULL = generated content; else the memory starts
				 as this file's first `size` bytes, zero-extended
				 if it is shorter */
	uint32_t threads;     /* writer threads 1..WL_MAX_THREADS, 0 = 1 */
	uint64_t seed;        /* content and write pattern; same seed, same fill */
	int dirty_log;        /* 1: writers keep a dirty log for wl_dirty_log() */
} wl_config;

/* How the memory was filled, for a summary line. */
typedef struct wl_fill_stats {
	uint64_t pages;
	uint64_t zero, text, heap, dup, random;
	uint64_t image_bytes; /* read from cfg.image (then only zero is counted) */
	double seconds;
} wl_fill_stats;

typedef struct wl wl;

/* Maps and fills the memory (using several threads, all joined before it
 * returns). No writer runs yet. With cfg.image, a file that cannot be
 * opened or read fails with its -errno. */
int wl_new(wl **out, const wl_config *c);

/* Starts the writers. Idle workloads (dirty_rate 0) start no thread. */
int wl_start(wl *w);

/* Blocks new writes and returns once no writer is inside a write. Pausing
 * a paused workload is a no-op. */
int wl_pause(wl *w);
void wl_resume(wl *w);

/* Writers run (100 - pct)% of the time; pct is capped at 99, 0 = full speed. */
void wl_throttle(wl *w, uint32_t pct);

/* Stops and joins the writers (also when paused). The memory stays mapped
 * and unchanged from then on. */
void wl_stop(wl *w);
void wl_free(wl *w); /* stops first; NULL is fine */

void *wl_base(const wl *w);
uint64_t wl_size(const wl *w);       /* the mapped size, a page multiple */
uint64_t wl_pages_written(const wl *w); /* by the writers since wl_start */
void wl_fill_info(const wl *w, wl_fill_stats *out);

/* ORs into bitmap (pages bits at page_size, a power of two >= WL_PAGE_SIZE)
 * the pages written since the previous call, and clears the log, like
 * KVM_GET_DIRTY_LOG. A write is logged after its last byte landed, so a
 * write racing with this call is reported now or by the next call.
 * -ENODATA without cfg.dirty_log, -EINVAL if pages or page_size do not
 * match the memory. */
int wl_dirty_log(wl *w, uint64_t *bitmap, uint64_t pages, uint32_t page_size);

/* The writers' state, as a VMM's vCPU state: what the destination needs to
 * go on where the source stopped (the seed, each writer's generator, the
 * pages written so far). Save it while paused: wl_state_size() bytes into
 * buf, or -EINVAL if cap is smaller. wl_check_state() parses a saved state
 * (any bytes: it comes over the network) against the seed and writer count
 * the destination expects: 0 with *written set, or -EINVAL and why. */
size_t wl_state_size(const wl *w);
int wl_save_state(wl *w, uint8_t *buf, size_t cap);
int wl_check_state(const uint8_t *buf, size_t len, uint64_t seed, uint32_t threads,
		   uint64_t *written, char *why, size_t cap);

#endif
