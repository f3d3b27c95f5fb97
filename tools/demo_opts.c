/* livemig demo's options: see demo_opts.h. */
#include "demo_opts.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_num.h"
#include "workload.h"

static void usage(FILE *f, int full)
{
	fprintf(f,
		"usage: livemig demo [--size SIZE] [--working-set SIZE] [--dirty-rate RATE]\n"
		"                    [--threads N] [--seed N] [--channels N]\n"
		"                    [--from-image FILE] [--write-bytes N]\n"
		"                    [--codec auto|none|deflate|zstd|lz4|zlib] [--level N]\n"
		"                    [--downtime-limit MS] [--max-rounds N] [--max-time MS]\n"
		"                    [--max-bandwidth RATE] [--switchover-bandwidth RATE]\n"
		"                    [--on-limit fail|switchover]\n"
		"                    [--no-auto-converge] [--throttle-mode computed|step]\n"
		"                    [--dirty uffd|callback|auto]\n"
		"                    [--verify-source] [--netns] [--plaintext] [--json] [--quiet]\n"
		"                    [--no-dedup] [--no-delta] [--delta-cache SIZE]\n"
		"                    [--device-state-pad SIZE [--device-state-unsaid]]\n"
		"       livemig demo --probe\n");
	if (!full)
		return;
	fprintf(f,
		"Migrates a workload that keeps writing its memory, live, to a destination\n"
		"process, and verifies the copy against the source at the pause.\n"
		"SIZE and RATE (bytes, bytes/s) take a binary K, M or G suffix.\n"
		"Defaults: --size 1G --working-set 256M --dirty-rate 128M --threads 1\n"
		"--channels 2 --codec auto --downtime-limit 300 --max-rounds 30 --on-limit fail\n"
		"--dirty auto (uffd-wp when the kernel has it, else the workload's dirty log),\n"
		"on loopback. --netns runs the source in netns " NS_SRC " and the destination in\n"
		NS_DST " (" NS_DST_ADDR "). --json prints one JSON object on stdout (the rest\n"
		"goes to stderr). --probe tells whether uffd-wp is available (exit 0) or not (1).\n"
		"--verify-source makes the sender checksum all of the paused memory (a write\n"
		"the dirty tracking missed then fails the migration; costs downtime).\n"
		"--from-image FILE: the memory starts as FILE's content (e.g. an lm-mkimage\n"
		"image) instead of generated content; its size is FILE's size, or --size when\n"
		"given (FILE is then truncated to it, or zero-extended).\n"
		"--no-dedup: every copy of a page travels (default: a page whose bytes the\n"
		"destination holds goes as a 16-byte ref). --no-delta: a page sent again\n"
		"travels whole (default: as XOR runs against the destination's version when\n"
		"that is smaller, from a cache of the last-sent versions, --delta-cache SIZE,\n"
		"default 64M; 0 turns it off).\n"
		"--write-bytes N (1..4096): each page the workload dirties gets N bytes written\n"
		"at a random offset (8 is what QEMU's guestperf stress does) instead of a whole\n"
		"new page. --dirty-rate counts pages dirtied either way: each page written\n"
		"counts as 4096 bytes, however few bytes of it change.\n"
		"The channels use TLS 1.3 with a random pre-shared key both processes share;\n"
		"--plaintext turns that off.\n"
		"--throttle-mode: how auto-converge throttles the writers: computed (default)\n"
		"from the measured dirty and link rates, once the rounds would not converge\n"
		"on their own, re-computed every round; step: QEMU's cpu-throttle, 20%% then\n"
		"+10%% after every second round that dirtied over half of what it sent.\n"
		"--json adds round_log: per round its time since the migration began, what\n"
		"remained, the dirty rate, the bandwidth, the throttle and expected downtime.\n"
		"--device-state-pad SIZE: SIZE bytes more device state after the writers'\n"
		"(a VMM's device models), told to the expected downtime in advance\n"
		"(device_state_size) unless --device-state-unsaid.\n"
		"--switchover-bandwidth RATE: the wire rate the final copy, never paced, may\n"
		"count on (QEMU's avail-switchover-bandwidth), for the expected downtime and\n"
		"so the switchover and the throttle; paces nothing (default: the measured).\n");
}

static int bad(const char *what)
{
	fprintf(stderr, "%s: %s\n", PROG, what);
	return -1;
}

static int parse_dirty(const char *s, lm_dirty_source *out)
{
	if (!strcmp(s, "uffd"))
		*out = LM_DIRTY_UFFD_WP;
	else if (!strcmp(s, "callback"))
		*out = LM_DIRTY_CALLBACK;
	else if (!strcmp(s, "auto"))
		*out = LM_DIRTY_AUTO;
	else
		return -1;
	return 0;
}

static int parse_level(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -100 || v > 22)
		return -1;
	*out = (int)v;
	return 0;
}

enum {
	O_SIZE = 256, O_WS, O_RATE, O_THREADS, O_SEED, O_CHANNELS, O_CODEC, O_LEVEL, O_DOWNTIME,
	O_ROUNDS, O_TIME, O_BW, O_SWBW, O_ON_LIMIT, O_NO_AC, O_DIRTY, O_NETNS, O_JSON, O_QUIET, O_PROBE,
	O_VERIFY,
	O_PLAINTEXT, O_IMAGE, O_WRITE_BYTES, O_NO_DEDUP, O_NO_DELTA, O_DELTA_CACHE,
	O_THROTTLE_MODE, O_STATE_PAD, O_STATE_UNSAID,
};

/* One option's value; -1 after printing what is wrong. */
static int parse_one(int c, const char *a, demo_opts *o)
{
	switch (c) {
	case O_SIZE:
		o->size_set = 1;
		return cli_parse_size(a, &o->size) || !o->size ? bad("--size must be a size > 0, e.g. 1G") : 0;
	case O_IMAGE: return *a ? (o->image = a, 0) : bad("--from-image needs a file name");
	case O_WRITE_BYTES:
		return cli_parse_u32(a, &o->write_bytes, 1, WL_PAGE_SIZE) ? bad("--write-bytes must be 1..4096") : 0;
	case O_WS: return cli_parse_size(a, &o->working_set) || !o->working_set ? bad("--working-set must be a size > 0, e.g. 256M") : 0;
	case O_RATE: return cli_parse_size(a, &o->dirty_rate) ? bad("--dirty-rate must be bytes/s, e.g. 128M (0 = idle)") : 0;
	case O_BW: return cli_parse_size(a, &o->max_bandwidth) ? bad("--max-bandwidth must be bytes/s, e.g. 100M (0 = unlimited)") : 0;
	case O_SWBW: return cli_parse_size(a, &o->switchover_bandwidth) ? bad("--switchover-bandwidth must be bytes/s, e.g. 1G (0 = the measured rate)") : 0;
	case O_SEED: return cli_parse_size(a, &o->seed) ? bad("--seed must be a number") : 0;
	case O_THREADS: return cli_parse_u32(a, &o->threads, 1, WL_MAX_THREADS) ? bad("--threads must be 1..64") : 0;
	case O_CHANNELS: return cli_parse_u32(a, &o->channels, 1, LM_MAX_CHANNELS) ? bad("--channels must be 1..64") : 0;
	case O_CODEC: return lm_codec_from_name(a, &o->codec) ? bad("--codec is auto, none, deflate, zstd, lz4 or zlib") : 0;
	case O_LEVEL: return parse_level(a, &o->level) ? bad("--level must be -100..22") : 0;
	case O_DOWNTIME: return cli_parse_u32(a, &o->downtime_ms, 1, 3600000) ? bad("--downtime-limit must be 1..3600000 ms") : 0;
	case O_ROUNDS: return cli_parse_u32(a, &o->max_rounds, 1, 1000000) ? bad("--max-rounds must be 1..1000000") : 0;
	case O_TIME: return cli_parse_u32(a, &o->max_time_ms, 1, UINT32_MAX) ? bad("--max-time must be > 0 ms") : 0;
	case O_DIRTY: return parse_dirty(a, &o->dirty) ? bad("--dirty is uffd, callback or auto") : 0;
	case O_ON_LIMIT:
		if (!strcmp(a, "fail") || !strcmp(a, "switchover")) {
			o->on_limit = a[0] == 'f' ? LM_LIMIT_FAIL : LM_LIMIT_SWITCHOVER;
			return 0;
		}
		return bad("--on-limit is fail or switchover");
	case O_NO_AC: o->no_auto_converge = 1; return 0;
	case O_THROTTLE_MODE:
		if (!strcmp(a, "computed") || !strcmp(a, "step")) {
			o->throttle_mode = a[0] == 'c' ? LM_THROTTLE_COMPUTED : LM_THROTTLE_STEP;
			return 0;
		}
		return bad("--throttle-mode is computed or step");
	case O_VERIFY: o->verify_source = 1; return 0;
	case O_PLAINTEXT: o->plaintext = 1; return 0;
	case O_NO_DEDUP: o->no_dedup = 1; return 0;
	case O_NO_DELTA: o->no_delta = 1; return 0;
	case O_DELTA_CACHE:
		if (cli_parse_size(a, &o->delta_cache))
			return bad("--delta-cache must be a size, e.g. 64M (0 = no delta pages)");
		if (!o->delta_cache)
			o->no_delta = 1; /* in the library 0 means the default */
		return 0;
	case O_STATE_PAD:
		return cli_parse_size(a, &o->state_pad) || o->state_pad > (1ull << 30) - WL_PAGE_SIZE
			       ? bad("--device-state-pad must be a size under 1G, e.g. 16M")
			       : 0;
	case O_STATE_UNSAID: o->state_unsaid = 1; return 0;
	case O_NETNS: o->netns = 1; return 0;
	case O_JSON: o->json = 1; return 0;
	case O_QUIET: o->quiet = 1; return 0;
	case O_PROBE: o->probe = 1; return 0;
	default: return -1;
	}
}

/* 0, 1 for --help, or -1 on a usage error (already reported). */
int demo_parse_opts(int argc, char **argv, demo_opts *o)
{
	static const struct option lo[] = {
		{"size", required_argument, 0, O_SIZE}, {"working-set", required_argument, 0, O_WS},
		{"dirty-rate", required_argument, 0, O_RATE}, {"threads", required_argument, 0, O_THREADS},
		{"seed", required_argument, 0, O_SEED}, {"channels", required_argument, 0, O_CHANNELS},
		{"codec", required_argument, 0, O_CODEC}, {"level", required_argument, 0, O_LEVEL},
		{"downtime-limit", required_argument, 0, O_DOWNTIME},
		{"max-rounds", required_argument, 0, O_ROUNDS}, {"max-time", required_argument, 0, O_TIME},
		{"max-bandwidth", required_argument, 0, O_BW}, {"on-limit", required_argument, 0, O_ON_LIMIT},
		{"switchover-bandwidth", required_argument, 0, O_SWBW},
		{"no-auto-converge", no_argument, 0, O_NO_AC}, {"dirty", required_argument, 0, O_DIRTY},
		{"netns", no_argument, 0, O_NETNS}, {"json", no_argument, 0, O_JSON},
		{"quiet", no_argument, 0, O_QUIET}, {"probe", no_argument, 0, O_PROBE},
		{"verify-source", no_argument, 0, O_VERIFY}, {"plaintext", no_argument, 0, O_PLAINTEXT},
		{"from-image", required_argument, 0, O_IMAGE}, {"write-bytes", required_argument, 0, O_WRITE_BYTES},
		{"no-dedup", no_argument, 0, O_NO_DEDUP}, {"no-delta", no_argument, 0, O_NO_DELTA},
		{"delta-cache", required_argument, 0, O_DELTA_CACHE},
		{"throttle-mode", required_argument, 0, O_THROTTLE_MODE},
		{"device-state-pad", required_argument, 0, O_STATE_PAD},
		{"device-state-unsaid", no_argument, 0, O_STATE_UNSAID},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	int c;

	*o = (demo_opts){.size = 1ull << 30, .working_set = 256ull << 20, .dirty_rate = 128ull << 20,
			 .channels = 2, .threads = 1, .downtime_ms = 300, .seed = 1,
			 .codec = LM_CODEC_AUTO};
	optind = 1; /* argv[0] is "demo" */
	opterr = 0; /* our messages name the command, getopt's would say "demo" */
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout, 1);
			return 1;
		}
		if (c == '?')
			fprintf(stderr, "%s: unknown option '%s'\n", PROG, argv[optind - 1]);
		else if (c == ':')
			fprintf(stderr, "%s: option '%s' needs a value\n", PROG, argv[optind - 1]);
		if (c == '?' || c == ':' || parse_one(c, optarg, o)) {
			usage(stderr, 0);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
		usage(stderr, 0);
		return -1;
	}
	if (o->state_unsaid && !o->state_pad) {
		bad("--device-state-unsaid needs --device-state-pad");
		usage(stderr, 0);
		return -1;
	}
	return 0;
}

/* --from-image: the file must be readable now, before the destination is
 * forked; without --size it gives the size. -1 after saying why. */
int demo_check_image(demo_opts *o)
{
	struct stat st;
	int fd;

	if (!o->image)
		goto out;
	fd = open(o->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: --from-image %s: cannot read it: %s\n", PROG, o->image, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode) || (!o->size_set && st.st_size == 0)) {
		fprintf(stderr, "%s: --from-image %s: not a regular file with content%s\n", PROG,
			o->image, o->size_set ? "" : " (an empty file needs --size)");
		return -1;
	}
	if (!o->size_set)
		o->size = (uint64_t)st.st_size;
out:
	if (o->working_set > o->size)
		o->working_set = o->size;
	return 0;
}
