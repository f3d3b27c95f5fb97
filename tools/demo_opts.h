/*
 * livemig demo's options: the command line into demo_opts (tools/demo.c
 * runs the demo with them). Not thread-safe (getopt): the command's thread,
 * before anything else runs.
 */
#ifndef LM_TOOLS_DEMO_OPTS_H
#define LM_TOOLS_DEMO_OPTS_H

#include <stdint.h>

#include "livemig.h"

#define PROG "livemig demo"
#define NS_SRC "lmA"
#define NS_DST "lmB"
#define NS_DST_ADDR "10.77.0.2"

typedef struct demo_opts {
	uint64_t size, working_set, dirty_rate, max_bandwidth, seed;
	uint64_t switchover_bandwidth; /* 0: the measured rate */
	uint32_t channels, threads, downtime_ms, max_rounds, max_time_ms, write_bytes;
	const char *image; /* --from-image */
	int size_set;      /* --size given: it wins over the image's size */
	lm_codec_id codec;
	int level;
	lm_limit_action on_limit;
	lm_dirty_source dirty;
	lm_throttle_mode throttle_mode;
	int no_auto_converge, verify_source, netns, json, quiet, probe, plaintext;
	int no_dedup, no_delta;
	uint64_t delta_cache; /* bytes, 0 = the library's default */
	/* --device-state-pad: bytes after the writers' state (a VMM's device
	 * models), announced to the downtime estimate unless state_unsaid. */
	uint64_t state_pad;
	int state_unsaid;
	/* Both sides' TLS: a random PSK made before the fork, so the demo's
	 * migration is mutually authenticated and encrypted, as a real one
	 * should be, with nothing to set up. */
	uint8_t psk[32];
} demo_opts;

/* argv ("demo" first) into *o, defaults for the rest: 0, 1 after --help
 * (printed), -1 on a usage error (said, with the usage). */
int demo_parse_opts(int argc, char **argv, demo_opts *o);
/* --from-image: FILE readable and regular, its size the memory's unless
 * --size was given; the working set at most the memory. 0, or -1 said. */
int demo_check_image(demo_opts *o);

#endif
