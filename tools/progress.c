/* Progress lines of the CLI (see progress.h). */
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PROG_BAR_MIN 10 /* a narrower bar says nothing: drop it */
#define PROG_BAR_MAX 40
#define PROG_TTY_MS 100 /* at most 10 redraws a second */

int prog_bytes(char *buf, size_t cap, double bytes)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0; /* KiB */

	if (!(bytes >= 0))
		bytes = 0;
	if (bytes < 1024)
		return snprintf(buf, cap, "%.0f B", bytes);
	bytes /= 1024;
	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	/* Three significant digits; 1023.9 would print as "1024": say so
	 * rather than round into the next unit's "1.00". */
	if (bytes >= 99.95)
		return snprintf(buf, cap, "%.0f %s", bytes, unit[u]);
	if (bytes >= 9.995)
		return snprintf(buf, cap, "%.1f %s", bytes, unit[u]);
	return snprintf(buf, cap, "%.2f %s", bytes, unit[u]);
}

int prog_eta(char *buf, size_t cap, double seconds)
{
	uint64_t s;

	if (!(seconds >= 0) || seconds >= 99.0 * 3600)
		return snprintf(buf, cap, "--:--");
	s = (uint64_t)(seconds + 0.5);
	if (s < 60)
		return snprintf(buf, cap, "%us", (unsigned)s);
	if (s < 3600)
		return snprintf(buf, cap, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
	return snprintf(buf, cap, "%u:%02u:%02u", (unsigned)(s / 3600), (unsigned)(s / 60 % 60),
			(unsigned)(s % 60));
}

double prog_eta_seconds(const prog_sample *s)
{
	if (!s->total || !(s->rate > 0))
		return -1;
	if (s->done >= s->total)
		return 0;
	return (double)(s->total - s->done) / s->rate;
}

/* 0..100, or -1 without a total. A live migration sends pages again: the
 * share of the image is then capped at 99 until it is over. */
static int percent(const prog_sample *s)
{
	double p;

	if (!s->total)
		return -1;
	p = 100.0 * (double)s->done / (double)s->total;
	if (p >= 100)
		return s->done == s->total && !s->round ? 100 : 99;
	return (int)p;
}

enum { F_PCT, F_BYTES, F_RATE, F_ETA, F_PAGES, F_ROUND, F_N };

/* The fields of a line, most important first (a narrow terminal loses the
 * last ones). plain: the log's wording ("of", commas). */
static int fields(const prog_sample *s, char f[F_N][48], int plain)
{
	char done[24], total[24], rate[24], eta[24];
	int pct = percent(s), n = 0;

	prog_bytes(done, sizeof(done), (double)s->done);
	prog_bytes(total, sizeof(total), (double)s->total);
	prog_bytes(rate, sizeof(rate), s->rate);
	prog_eta(eta, sizeof(eta), prog_eta_seconds(s));
	if (pct < 0)
		snprintf(f[n++], 48, "--%%");
	else
		snprintf(f[n++], 48, "%3d%%", pct);
	if (s->total)
		snprintf(f[n++], 48, plain ? "%s of %s" : "%s/%s", done, total);
	else
		snprintf(f[n++], 48, "%s", done);
	if (s->rate > 0)
		snprintf(f[n++], 48, "%s/s", rate);
	else
		snprintf(f[n++], 48, "--/s"); /* not measured yet */
	snprintf(f[n++], 48, "ETA %s", eta);
	snprintf(f[n++], 48, "%llu pages", (unsigned long long)s->pages);
	if (s->round)
		snprintf(f[n++], 48, "round %u", s->round);
	return n;
}

/* f[0..n) joined by sep into buf; the length. */
static size_t join(char *buf, size_t cap, char f[F_N][48], int n, const char *sep)
{
	size_t len = 0;

	buf[0] = 0;
	for (int i = 0; i < n; i++) {
		int w = snprintf(buf + len, cap - len, "%s%s", i ? sep : "", f[i]);
		if (w < 0 || (size_t)w >= cap - len)
			return strlen(buf);
		len += (size_t)w;
	}
	return len;
}

int prog_line_tty(const prog_sample *s, int cols, char *buf, size_t cap)
{
	char f[F_N][48], text[F_N * 50];
	size_t width = cols > 1 ? (size_t)cols - 1 : 0, len;
	int n = fields(s, f, 0), pct = percent(s);

	if (!cap)
		return 0;
	len = join(text, sizeof(text), f, n, " ");
	/* "[" bar "] " text: the bar takes what the fields leave. */
	if (pct >= 0 && width >= len + 3 + PROG_BAR_MIN) {
		size_t bar = width - len - 3, fill;
		char b[PROG_BAR_MAX + 1];
		if (bar > PROG_BAR_MAX)
			bar = PROG_BAR_MAX;
		fill = bar * (size_t)pct / 100;
		memset(b, '#', fill);
		memset(b + fill, '.', bar - fill);
		b[bar] = 0;
		return snprintf(buf, cap, "[%s] %s", b, text);
	}
	while (n > 1 && len > width)
		len = join(text, sizeof(text), f, --n, " ");
	if (len > width)
		text[width] = 0; /* not even the first field fits: cut it */
	return snprintf(buf, cap, "%s", text);
}

int prog_line_plain(const prog_sample *s, char *buf, size_t cap)
{
	char f[F_N][48], text[F_N * 50];
	int n = fields(s, f, 1);
	const char *lead = f[0];

	while (*lead == ' ')
		lead++; /* the bar's alignment means nothing in a log */
	memmove(f[0], lead, strlen(lead) + 1);
	join(text, sizeof(text), f, n, ", ");
	return snprintf(buf, cap, "%s, %.1fs", text, s->elapsed);
}

double prog_rate_update(prog_rate *r, uint64_t done, double t)
{
	double dt, inst, w;

	if (!r->primed) {
		r->primed = 1;
		r->last_t = t;
		r->last_done = done;
		r->rate = 0;
		return 0;
	}
	dt = t - r->last_t;
	if (dt <= 0)
		return r->rate;
	inst = done >= r->last_done ? (double)(done - r->last_done) / dt : 0;
	/* The first measured interval sets the rate outright: a mean
	 * starting from zero would show a slow start that never was. */
	w = r->primed == 1 ? 1 : 1 - exp(-dt / 2.0);
	r->primed = 2;
	r->rate += w * (inst - r->rate);
	r->last_t = t;
	r->last_done = done;
	return r->rate;
}

double prog_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

prog_mode prog_mode_for(int fd, int quiet)
{
	if (quiet)
		return PROG_OFF;
	return isatty(fd) ? PROG_TTY : PROG_PLAIN;
}

/* The terminal's width from $COLUMNS or the tty, else 80. */
static int term_cols(FILE *out)
{
	const char *env = getenv("COLUMNS");
	struct winsize ws;
	long c = env ? strtol(env, NULL, 10) : 0;

	if (c > 0 && c < 10000)
		return (int)c;
	if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

static void sample(prog_run *p, prog_sample *s)
{
	memset(s, 0, sizeof(*s));
	p->poll(p->user, s);
	s->elapsed = prog_now() - p->t0;
	/* The rate starts with the migration, not with a wait for it. */
	if (s->total || s->done)
		s->rate = prog_rate_update(&p->rate, s->done, s->elapsed);
}

static void draw(prog_run *p, const prog_sample *s)
{
	char line[512];

	if (p->mode == PROG_TTY) {
		size_t pre = strlen(p->prefix) + 2;
		int cols = term_cols(p->out) - (int)pre;
		prog_line_tty(s, cols, line, sizeof(line));
		/* \033[K clears what a longer earlier line left. */
		fprintf(p->out, "\r%s: %s\033[K", p->prefix, line);
	} else {
		prog_line_plain(s, line, sizeof(line));
		fprintf(p->out, "%s: %s\n", p->prefix, line);
	}
	fflush(p->out);
}

static void *prog_main(void *arg)
{
	prog_run *p = arg;
	int step = p->mode == PROG_TTY ? PROG_TTY_MS : p->interval_ms, waited = 0;
	prog_sample s;

	sample(p, &s); /* primes the rate at the start */
	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		usleep(10000); /* short sleeps: prog_finish returns at once */
		if ((waited += 10) < step)
			continue;
		waited = 0;
		sample(p, &s);
		if (s.total || s.done) /* nothing to show while recv listens */
			draw(p, &s);
	}
	return NULL;
}

int prog_start(prog_run *p, prog_mode mode, FILE *out, const char *prefix, int interval_ms,
	       double t0, prog_poll_fn poll, void *user)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->out = out;
	p->prefix = prefix;
	p->interval_ms = interval_ms > 0 ? interval_ms : 5000;
	p->poll = poll;
	p->user = user;
	p->t0 = t0;
	if (mode == PROG_OFF)
		return 0;
	if ((rc = pthread_create(&p->tid, NULL, prog_main, p)))
		return -rc;
	p->started = 1;
	return 0;
}

void prog_finish(prog_run *p)
{
	prog_sample s;

	if (!p->started)
		return;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	pthread_join(p->tid, NULL);
	p->started = 0;
	if (p->mode != PROG_TTY)
		return; /* a log has its lines; the stats follow */
	sample(p, &s);
	if (!s.total && !s.done)
		return;
	draw(p, &s);
	fputc('\n', p->out);
	fflush(p->out);
}
