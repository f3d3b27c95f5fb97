/*
 * `livemig demo`'s state, shared by its two files: tools/demo.c (the
 * destination child and the source: the workload, the migration, the
 * verdict) and tools/demo_out.c (what it prints: the header, the progress
 * line per round, the statistics, --json's one object). Everything here is
 * the source process's; the progress callback runs on the thread that
 * called lm_sender_migrate(), the rest on the demo's main thread, which is
 * that same thread.
 */
#ifndef LM_TOOLS_DEMO_H
#define LM_TOOLS_DEMO_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "demo_opts.h"
#include "livemig.h"
#include "workload.h"

#define MIB (1024.0 * 1024.0)

typedef struct dest_result {
	int have, rc;
	uint64_t sum, state_bytes, state_pages;
	char *text, *err;
} dest_result;

typedef struct round_entry {
	uint32_t round, throttle_pct;
	uint64_t t_ms, remaining_bytes, expected_downtime_ms;
	double dirty_pages_rate, bandwidth_mbps;
} round_entry;

typedef struct demo {
	demo_opts o;
	FILE *txt;     /* human text: stdout, or stderr when stdout is JSON */
	int tty;       /* txt is a terminal: one progress line, redrawn */
	int line_open; /* that line is on screen without its newline */
	uint64_t max_dirty;
	int use_log; /* the workload keeps a dirty log (callback source) */
	const char *dirty_name, *dirty_id;
	char probe_why[256];
	int probe_rc;
	wl *w;
	pid_t child;
	int fd; /* the pipe from the destination */
	/* The sender's wire bytes and pages sent: after round 1, at the end
	 * (what the later rounds carried, in the JSON). */
	uint64_t r1_bytes, r1_pages, end_bytes, end_pages;
	int have_r1;
	/* --json's round_log: one entry per pre-copy round, from the
	 * progress callback (the thread running the migration). */
	round_entry *log;
	uint32_t nlog, log_cap;
	int64_t t_migrate;                    /* now_ms() when lm_sender_migrate() was called */
	lm_codec_mix mix_seen[LM_MAX_CODECS]; /* the sender's mix at the last progress line */
} demo;

int64_t demo_now_ms(void);                    /* CLOCK_MONOTONIC, ms */
uint64_t demo_pages_sent(const lm_stats *st); /* of every kind */

/* demo_out.c. Text goes to d->txt (nothing with --quiet), JSON to stdout. */
void demo_header(demo *d);
void demo_fill_line(demo *d);
void demo_show(demo *d, const char *line); /* on a terminal: redrawn in place */
void demo_end_line(demo *d);
void demo_on_progress(void *user, const lm_stats *st); /* lm_live_config.progress */
void demo_print_human(demo *d, const char *title, const char *text);
void demo_print_json(demo *d, const char *src, const dest_result *res, int verified,
		     uint64_t src_sum, const char *error);

#endif
