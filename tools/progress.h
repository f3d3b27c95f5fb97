/*
 * Progress of `livemig send` and `recv` on stderr: one bar redrawn in place
 * (\r, at most 10 times a second) when stderr is a terminal, one plain line
 * every interval when it is not (a log, a pipe), nothing with --quiet.
 *
 * The formatting (units, ETA, a line that fits a terminal's width) is pure
 * and unit-tested (tests/test_progress.c); prog_start() runs the thread
 * that samples and prints.
 */
#ifndef LM_TOOLS_PROGRESS_H
#define LM_TOOLS_PROGRESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a line shows. */
typedef struct prog_sample {
	uint64_t done, total; /* image bytes moved, of total (0 = not known yet) */
	uint64_t pages;       /* pages moved */
	double rate;          /* bytes per second now (prog_rate) */
	double elapsed;       /* seconds since the command started */
	uint32_t round;       /* live migration's round, 0 = not live */
} prog_sample;

/* "0 B", "512 B", "1.0 KiB", "12.3 MiB", "1.50 GiB": binary units, three
 * significant digits. snprintf semantics (returns the length needed). */
int prog_bytes(char *buf, size_t cap, double bytes);
/* "12s", "3:05", "1:02:03"; "--:--" when unknown (negative, NaN, over 99 h). */
int prog_eta(char *buf, size_t cap, double seconds);
/* Seconds left at the rate, or -1 when it cannot be told (no rate, no total). */
double prog_eta_seconds(const prog_sample *s);
/* The terminal line: "[#####......]  42% 1.50 GiB/3.57 GiB 812 MiB/s
 * 393216 pages ETA 0:03" (", round 3" when live), cut to fit cols - 1
 * columns (the bar shrinks first, then the fields go from the right).
 * Never contains \r or \n; the caller redraws with them. */
int prog_line_tty(const prog_sample *s, int cols, char *buf, size_t cap);
/* A log line: "42% 1.50 GiB of 3.57 GiB, 812 MiB/s, 393216 pages, ETA 0:03,
 * 2.1s" (no bar). */
int prog_line_plain(const prog_sample *s, char *buf, size_t cap);

/* The rate over the last samples: an exponentially weighted mean of the
 * rate between consecutive samples, with a time constant of about 2 s, so
 * the ETA neither jumps with each sample nor lags minutes behind. */
typedef struct prog_rate {
	double last_t, rate;
	uint64_t last_done;
	int primed;
} prog_rate;
double prog_rate_update(prog_rate *r, uint64_t done, double t);

/* Fills *s (done, total, pages, round) from the migration: called on the
 * progress thread, so it must read only what is safe from another thread. */
typedef void (*prog_poll_fn)(void *user, prog_sample *s);

typedef enum { PROG_OFF, PROG_TTY, PROG_PLAIN } prog_mode;

/* The progress thread. Fields are set by prog_start() and read-only after,
 * but stop, which prog_finish() sets (atomic) and the thread polls. */
typedef struct prog_run {
	prog_mode mode;
	FILE *out;
	const char *prefix;  /* "livemig send" */
	int interval_ms;     /* plain lines; the bar redraws every 100 ms */
	prog_poll_fn poll;
	void *user;
	double t0;           /* the command's start (prog_now) */
	prog_rate rate;      /* the thread's */
	int stop, started;
	pthread_t tid;
} prog_run;

double prog_now(void); /* CLOCK_MONOTONIC seconds */
/* PROG_TTY when fd is a terminal, else PROG_PLAIN; PROG_OFF when quiet. */
prog_mode prog_mode_for(int fd, int quiet);
/* Starts the thread (nothing for PROG_OFF). 0 or -errno. */
int prog_start(prog_run *p, prog_mode mode, FILE *out, const char *prefix, int interval_ms,
	       double t0, prog_poll_fn poll, void *user);
/* Stops it; a terminal bar is drawn a last time and ended with a newline.
 * Safe on a run that never started. */
void prog_finish(prog_run *p);

#endif
