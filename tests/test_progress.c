/*
 * The CLI's progress lines (tools/progress.c): binary units, the ETA, a
 * terminal line that fits its width (bar first to shrink, then fields from
 * the right), the log line, and the rate's smoothing.
 */
#include <string.h>

#include "check.h"
#include "progress.h"

static int streq(const char *a, const char *b)
{
	if (strcmp(a, b))
		fprintf(stderr, "  got \"%s\", want \"%s\"\n", a, b);
	return !strcmp(a, b);
}

static void test_units(void)
{
	char b[32];

	prog_bytes(b, sizeof(b), 0);
	CHECK(streq(b, "0 B"));
	prog_bytes(b, sizeof(b), 1023);
	CHECK(streq(b, "1023 B"));
	prog_bytes(b, sizeof(b), 1024);
	CHECK(streq(b, "1.00 KiB"));
	prog_bytes(b, sizeof(b), 1536.0 * 1024 * 1024);
	CHECK(streq(b, "1.50 GiB"));
	prog_bytes(b, sizeof(b), 12.34 * 1024 * 1024);
	CHECK(streq(b, "12.3 MiB"));
	prog_bytes(b, sizeof(b), 812.0 * 1024 * 1024);
	CHECK(streq(b, "812 MiB"));
	prog_bytes(b, sizeof(b), 64.0 * 1024 * 1024 * 1024);
	CHECK(streq(b, "64.0 GiB"));
	prog_bytes(b, sizeof(b), 3.0 * 1024 * 1024 * 1024 * 1024);
	CHECK(streq(b, "3.00 TiB"));
	prog_bytes(b, sizeof(b), -5);
	CHECK(streq(b, "0 B"));
	/* snprintf semantics: the length needed, the text cut. */
	CHECK_EQ(prog_bytes(b, 4, 1536.0 * 1024 * 1024), 8);
	CHECK(streq(b, "1.5"));
}

static void test_eta(void)
{
	char b[32];
	prog_sample s = {.done = 1 << 20, .total = 11 << 20, .rate = 1 << 20};

	prog_eta(b, sizeof(b), 0);
	CHECK(streq(b, "0s"));
	prog_eta(b, sizeof(b), 59.4);
	CHECK(streq(b, "59s"));
	prog_eta(b, sizeof(b), 185);
	CHECK(streq(b, "3:05"));
	prog_eta(b, sizeof(b), 3723);
	CHECK(streq(b, "1:02:03"));
	prog_eta(b, sizeof(b), -1);
	CHECK(streq(b, "--:--"));
	prog_eta(b, sizeof(b), 1e9);
	CHECK(streq(b, "--:--"));
	CHECK(prog_eta_seconds(&s) > 9.99 && prog_eta_seconds(&s) < 10.01);
	s.rate = 0;
	CHECK(prog_eta_seconds(&s) < 0); /* no rate yet: unknown, not infinite */
	s.rate = 1;
	s.total = 0;
	CHECK(prog_eta_seconds(&s) < 0);
	s.total = s.done;
	CHECK(prog_eta_seconds(&s) == 0);
}

static const prog_sample half = {
	.done = 2048ull << 20, .total = 4096ull << 20, .pages = 524288,
	.rate = 512.0 * 1024 * 1024, .elapsed = 4.25,
};

static void test_tty(void)
{
	char b[512];
	int n;

	/* Wide: a bar of the largest width, half full, every field. */
	n = prog_line_tty(&half, 200, b, sizeof(b));
	CHECK(streq(b, "[####################....................]  50% 2.00 GiB/4.00 GiB "
		       "512 MiB/s ETA 4s 524288 pages"));
	CHECK_EQ(n, (int)strlen(b));
	/* 80 columns: the line takes 79 at most, the bar what is left. */
	prog_line_tty(&half, 80, b, sizeof(b));
	CHECK(strlen(b) <= 79);
	CHECK(b[0] == '[' && strstr(b, "524288 pages"));
	for (int cols = 1; cols <= 120; cols++) {
		prog_line_tty(&half, cols, b, sizeof(b));
		CHECK(strlen(b) <= (size_t)(cols > 1 ? cols - 1 : 0));
		CHECK(!strchr(b, '\r') && !strchr(b, '\n'));
	}
	/* Narrow: no bar, then the fields from the right. */
	prog_line_tty(&half, 50, b, sizeof(b));
	CHECK(streq(b, " 50% 2.00 GiB/4.00 GiB 512 MiB/s ETA 4s"));
	prog_line_tty(&half, 20, b, sizeof(b));
	CHECK(streq(b, " 50%"));
	/* Live: the round; a total passed again is 99%, not 100%+. */
	prog_sample live = half;
	live.round = 3;
	live.done = live.total * 2;
	prog_line_tty(&live, 200, b, sizeof(b));
	CHECK(strstr(b, " 99% ") && strstr(b, "round 3"));
	/* Before the size is known: no bar, no percentage. */
	prog_sample none = {.done = 0};
	prog_line_tty(&none, 200, b, sizeof(b));
	CHECK(streq(b, "--% 0 B --/s ETA --:-- 0 pages"));
	/* Done. */
	prog_sample done = half;
	done.done = done.total;
	prog_line_tty(&done, 200, b, sizeof(b));
	CHECK(!strncmp(b, "[########################################] 100% ", 48));
	CHECK(strstr(b, "ETA 0s"));
}

static void test_plain(void)
{
	char b[512];

	prog_line_plain(&half, b, sizeof(b));
	CHECK(streq(b, "50%, 2.00 GiB of 4.00 GiB, 512 MiB/s, ETA 4s, 524288 pages, 4.2s"));
}

static void test_rate(void)
{
	prog_rate r = {0};
	double v;

	CHECK(prog_rate_update(&r, 0, 0) == 0);
	/* The first interval sets it: 100 MB in 1 s. */
	v = prog_rate_update(&r, 100000000, 1);
	CHECK(v > 99e6 && v < 101e6);
	/* A sudden stop pulls it down, smoothly: after 1 s, not to zero. */
	v = prog_rate_update(&r, 100000000, 2);
	CHECK(v > 30e6 && v < 70e6);
	/* Held at zero, it goes to zero. */
	for (int t = 3; t < 40; t++)
		v = prog_rate_update(&r, 100000000, t);
	CHECK(v < 1e3);
	/* No time passed: no division by zero, the rate is kept. */
	CHECK(prog_rate_update(&r, 200000000, 39) == v);
}

int main(void)
{
	test_units();
	test_eta();
	test_tty();
	test_plain();
	test_rate();
	TEST_DONE("test_progress");
}
