/*
 * lm-mkimage: build a realistic guest-RAM-like memory image for benchmarks.
 *
 * Random bytes make a migration benchmark meaningless: real guest memory is
 * dominated by zero pages (free memory), duplicated pages (a library mapped
 * by two processes, page-cache copies) and compressible content (code, text),
 * with a minority of already-compressed data. This tool reproduces that mix
 * from real files found on the machine, plus heap-like pages (malloc arenas,
 * kernel slab, page tables, mostly-zero pages) made from the PRNG, with
 * exact planned page counts so that two benchmark runs are comparable.
 *
 * The default mix ("guest") matches the RAM statistics of a real Linux 6.1
 * guest with 1 GiB (docs/benchmarks.md, "Corpus"; lm-imgstat measures
 * them); --mix classic is the mix of earlier versions.
 *
 * Pipeline: parse options -> plan exact page counts -> lay out page kinds
 * with a seeded PRNG -> load a bounded corpus of real files -> generate the
 * pages into a sparse temp file -> rename it into place.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE \
 *            bench/mkimage.c -o lm-mkimage
 */

/* DT_* file types, fstatat flags, strcasecmp. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PROG "lm-mkimage"
#define MIB ((size_t)1 << 20)

/* Pool pages are handed out in blocks of consecutive pages, as a file is
 * read ahead into the page cache, so neighbouring image pages come from the
 * same file. */
#define BLOCK_PAGES 16

/* Directory walks are bounded so a huge or looping tree cannot stall us. */
#define WALK_MAX_DEPTH 8
#define WALK_MAX_ENTRIES 200000 /* directory entries looked at, per root */
#define LIST_MAX_FILES 100000 /* candidate files kept, per pool */

/* Corpus caps: 128 + 64 + 64 = 256 MiB of source material at most. Larger
 * images cycle through the corpus at shifted offsets. */
#define BIN_POOL_MAX (128 * MIB)
#define TEXT_POOL_MAX (64 * MIB)
#define INCOMP_POOL_MAX (64 * MIB)
#define POOL_MIN (32 * MIB) /* small images still sample many files */
#define BIN_FILE_MAX (1 * MIB) /* about a library's resident part */
#define TEXT_FILE_MAX (1 * MIB)
#define INCOMP_FILE_MAX (4 * MIB)

#define LOCAL_DUP_SPAN 64 /* content pages back a nearby copy may start */
#define HEAP_CHUNK_MAX 8 /* heap pages of one arena in a row, at most */
#define PARTIAL_MIN_KEEP 64 /* bytes of content kept in such a page */
#define MAX_REJECTS 64 /* then make a page unique by stamping it */
#define WRITE_BATCH_BYTES (1 * MIB)

/* Maximum chunk length per page kind: content and compressed data come in
 * runs of consecutive file pages, duplicates in shorter runs. */
#define CONTENT_CHUNK_MAX 32
#define INCOMP_CHUNK_MAX 16
#define DUP_CHUNK_MAX 8
#define ZERO_RUN_BITS 10 /* zero runs of 1..512 pages */

enum page_kind { PK_ZERO = 0, PK_CONTENT, PK_INCOMP, PK_DUP, PK_COUNT };
#define PK_MASK 0x7f
#define PK_START 0x80 /* first page of a chunk: pick a new source */

enum pool_id { POOL_BIN = 0, POOL_TEXT, POOL_INCOMP, POOL_COUNT };
#define SRC_HEAP POOL_COUNT /* a recipe's source: made, not read from a file */

/* PRNG streams, so the layout does not depend on which files exist. */
enum { STREAM_LAYOUT = 1, STREAM_FILES, STREAM_GEN, STREAM_POOL };

/* A named mix: the page fractions --zero, --dup, --incompressible and
 * --heap default to, and how content pages are made. */
struct mix {
	const char *name;
	double zero, dup, incomp, heap;
	unsigned bin_percent; /* content chunks from binaries, the rest text */
	unsigned partial_permille; /* file pages with a zero tail (heap/stack) */
	unsigned local_dup_percent; /* duplicate runs of recent pages */
};

static const struct mix mixes[] = {
	/* A Linux 6.1 guest after boot and some work: half of it free, page
	 * cache holding libraries twice, anonymous memory and slab. */
	{ "guest", 0.47, 0.46, 0.01, 0.50, 45, 150, 50 },
	/* The mix before the guest statistics were measured. */
	{ "classic", 0.45, 0.35, 0.10, 0.0, 60, 60, 0 },
};

#define UNSET -1.0 /* a fraction not given: the mix's value */

struct options {
	uint64_t size;
	const char *out;
	uint64_t seed;
	const struct mix *mix;
	double zero;
	double dup;
	double incomp;
	double heap;
	size_t page_size;
	bool quiet;
};

struct plan {
	uint64_t pages;
	uint64_t zero;
	uint64_t dup;
	uint64_t incomp;
	uint64_t content;
};

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---------------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> ((64 - k) & 63)); /* k = 0 safe */
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform-enough in [0, n); the modulo bias is irrelevant at our n. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static void shuffle_sizes(struct rng *r, size_t *v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		size_t t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static void shuffle_strings(struct rng *r, char **v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		char *t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* ---- page helpers ------------------------------------------------------- */

static bool is_zero(const uint8_t *p, size_t n)
{
	/* Overlapping memcmp: glibc's vectorised compare beats a byte loop. */
	return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

/* Fast 64-bit page hash for de-duplication (4 independent lanes so the
 * multiplies pipeline). A collision only makes us skip a unique page. */
static uint64_t page_hash(const uint8_t *p, size_t n)
{
	uint64_t h[4] = { 0x243F6A8885A308D3ull, 0x13198A2E03707344ull,
			  0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull };
	uint64_t x = n;

	for (size_t i = 0; i + 32 <= n; i += 32) {
		for (int l = 0; l < 4; l++) {
			uint64_t w;

			memcpy(&w, p + i + 8 * (size_t)l, sizeof(w));
			h[l] = (h[l] ^ w) * 0x9FB21C651E98DF25ull;
			h[l] ^= h[l] >> 29;
		}
	}
	for (int l = 0; l < 4; l++) {
		x ^= rotl64(h[l], 16 * l);
		x = splitmix64(&x);
	}
	return x;
}

/* Open-addressing set of page hashes; sized up front, never grows. */
struct pageset {
	uint64_t *slot;
	size_t mask;
};

static int pageset_init(struct pageset *s, uint64_t entries)
{
	size_t cap = 64;

	while (cap / 2 < entries) {
		if (cap > SIZE_MAX / 2 / sizeof(*s->slot))
			return -1;
		cap <<= 1;
	}
	s->slot = calloc(cap, sizeof(*s->slot));
	s->mask = cap - 1;
	return s->slot ? 0 : -1;
}

/* Returns false if the hash was already present. */
static bool pageset_insert(struct pageset *s, uint64_t h)
{
	size_t i;

	if (h == 0) /* 0 marks an empty slot */
		h = 1;
	for (i = h & s->mask; s->slot[i]; i = (i + 1) & s->mask) {
		if (s->slot[i] == h)
			return false;
	}
	s->slot[i] = h;
	return true;
}

/* ---- argument parsing --------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --size SIZE --out FILE [--seed N] [--mix NAME]\n"
		"       [--zero FRAC] [--dup FRAC] [--incompressible FRAC] [--heap FRAC]\n"
		"       [--page-size N] [--quiet]\n"
		"  --size SIZE            image size, suffix K, M or G (binary)\n"
		"  --out FILE             output file (written via FILE.tmp.<pid>)\n"
		"  --seed N               PRNG seed (default 1)\n"
		"  --mix NAME             guest (default): the statistics of a Linux 6.1\n"
		"                         guest's RAM; classic: the mix of earlier\n"
		"                         versions (0.45, 0.35, 0.10, no heap pages)\n"
		"  --zero FRAC            fraction of all pages that are zero (guest 0.47)\n"
		"  --dup FRAC             fraction of non-zero pages that duplicate\n"
		"                         another page of the image (guest 0.46)\n"
		"  --incompressible FRAC  fraction of all pages from compressed\n"
		"                         files (guest 0.01)\n"
		"  --heap FRAC            fraction of the other unique pages that are\n"
		"                         heap-like, made rather than read: malloc\n"
		"                         arenas, slab, page tables (guest 0.50)\n"
		"  --page-size N          power of two, 4096..65536 (4096)\n"
		"  --quiet                no summary line\n"
		"Statistics of the result: lm-imgstat FILE.\n");
}

static int parse_u64(const char *s, uint64_t *out, char **end)
{
	/* strtoull silently accepts "-1"; a size or seed never has a sign. */
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, end, 0);
	return errno ? -1 : 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mult = 1;

	if (parse_u64(s, &v, &end))
		return -1;
	switch (*end) {
	case 'K': case 'k': mult = (uint64_t)1 << 10; end++; break;
	case 'M': case 'm': mult = (uint64_t)1 << 20; end++; break;
	case 'G': case 'g': mult = (uint64_t)1 << 30; end++; break;
	default: break;
	}
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int parse_fraction(const char *name, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v) || v < 0.0 ||
	    v > 1.0) {
		fprintf(stderr, PROG ": --%s must be a number in [0, 1], got '%s'\n",
			name, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_option(struct options *o, int c, const char *arg)
{
	uint64_t v;
	char *end;

	switch (c) {
	case 's':
		if (parse_size(arg, &o->size) == 0)
			return 0;
		fprintf(stderr, PROG ": bad --size '%s' (want N, NK, NM or NG)\n", arg);
		return -1;
	case 'o':
		o->out = arg;
		return 0;
	case 'S':
		if (parse_u64(arg, &o->seed, &end) == 0 && *end == '\0')
			return 0;
		fprintf(stderr, PROG ": bad --seed '%s'\n", arg);
		return -1;
	case 'z':
		return parse_fraction("zero", arg, &o->zero);
	case 'd':
		return parse_fraction("dup", arg, &o->dup);
	case 'i':
		return parse_fraction("incompressible", arg, &o->incomp);
	case 'H':
		return parse_fraction("heap", arg, &o->heap);
	case 'm':
		for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
			if (strcmp(arg, mixes[i].name) == 0) {
				o->mix = &mixes[i];
				return 0;
			}
		}
		fprintf(stderr, PROG ": --mix is guest or classic, got '%s'\n", arg);
		return -1;
	case 'p':
		if (parse_u64(arg, &v, &end) == 0 && *end == '\0' && v >= 4096 &&
		    v <= 65536 && (v & (v - 1)) == 0) {
			o->page_size = (size_t)v;
			return 0;
		}
		fprintf(stderr, PROG ": --page-size must be a power of two in "
				"4096..65536, got '%s'\n", arg);
		return -1;
	case 'q':
		o->quiet = true;
		return 0;
	default:
		return -1;
	}
}

static int validate_options(const struct options *o)
{
	if (o->out == NULL || o->out[0] == '\0') {
		fprintf(stderr, PROG ": --out FILE is required\n");
		return -1;
	}
	if (o->size == 0) {
		fprintf(stderr, PROG ": --size is required and must be > 0\n");
		return -1;
	}
	if (o->size % o->page_size != 0) {
		fprintf(stderr, PROG ": --size %" PRIu64 " is not a multiple of "
				"the page size %zu\n", o->size, o->page_size);
		return -1;
	}
	if (o->size > (uint64_t)INT64_MAX) {
		fprintf(stderr, PROG ": --size %" PRIu64 " is too large\n", o->size);
		return -1;
	}
	/* A tiny epsilon so that e.g. 0.45 + 0.55 is not rejected by rounding. */
	if (o->zero + o->incomp > 1.0 + 1e-9) {
		fprintf(stderr, PROG ": --zero %g + --incompressible %g exceeds 1\n",
			o->zero, o->incomp);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 'S' },
		{ "zero", required_argument, NULL, 'z' },
		{ "dup", required_argument, NULL, 'd' },
		{ "incompressible", required_argument, NULL, 'i' },
		{ "heap", required_argument, NULL, 'H' },
		{ "mix", required_argument, NULL, 'm' },
		{ "page-size", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){ .seed = 1, .mix = &mixes[0], .zero = UNSET,
			       .dup = UNSET, .incomp = UNSET, .heap = UNSET,
			       .page_size = 4096 };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || parse_option(o, c, optarg)) {
			fprintf(stderr, "try '" PROG " --help'\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	/* Whatever the order of --mix and the fractions, a fraction given
	 * wins over the mix's. */
	o->zero = o->zero == UNSET ? o->mix->zero : o->zero;
	o->dup = o->dup == UNSET ? o->mix->dup : o->dup;
	o->incomp = o->incomp == UNSET ? o->mix->incomp : o->incomp;
	o->heap = o->heap == UNSET ? o->mix->heap : o->heap;
	return validate_options(o);
}

/* ---- planning: exact page counts ---------------------------------------- */

static uint64_t frac_count(double f, uint64_t n)
{
	uint64_t c = (uint64_t)(f * (double)n + 0.5);

	return c > n ? n : c;
}

static int make_plan(const struct options *o, struct plan *pl)
{
	uint64_t nonzero;

	pl->pages = o->size / o->page_size;
	pl->zero = frac_count(o->zero, pl->pages);
	nonzero = pl->pages - pl->zero;
	pl->incomp = frac_count(o->incomp, pl->pages);
	if (pl->incomp > nonzero) /* rounding only: zero + incomp <= 1 */
		pl->incomp = nonzero;
	pl->dup = frac_count(o->dup, nonzero);
	if (pl->dup > 0 && pl->dup >= nonzero) /* a copy needs an original */
		pl->dup = nonzero - 1;
	if (pl->dup + pl->incomp > nonzero) {
		fprintf(stderr, PROG ": --dup %g and --incompressible %g do not fit: "
				"%" PRIu64 " duplicate + %" PRIu64 " incompressible "
				"pages exceed the %" PRIu64 " non-zero pages\n",
			o->dup, o->incomp, pl->dup, pl->incomp, nonzero);
		return -1;
	}
	pl->content = nonzero - pl->dup - pl->incomp;
	return 0;
}

/* ---- layout: which kind of page goes where ------------------------------ */

/* Run lengths spread over 1..512 on a log scale, like fragmented free memory:
 * many short holes, a few large ones. */
static uint64_t zero_run_length(struct rng *r)
{
	unsigned bits = (unsigned)rng_below(r, ZERO_RUN_BITS);

	return 1 + rng_below(r, (uint64_t)1 << bits);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Marks zero runs totalling exactly pl->zero pages, at random positions. */
static int place_zero_runs(struct rng *r, uint8_t *kinds, const struct plan *pl)
{
	uint64_t *runs = NULL, *cuts = NULL;
	size_t nruns = 0, cap = 0;
	uint64_t left = pl->zero, nonzero = pl->pages - pl->zero;
	uint64_t pos = 0, prev = 0;
	int rc = -1;

	while (left > 0) {
		uint64_t len = zero_run_length(r);

		if (nruns == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			uint64_t *n = realloc(runs, ncap * sizeof(*runs));

			if (n == NULL)
				goto cleanup;
			runs = n;
			cap = ncap;
		}
		runs[nruns++] = len < left ? len : left;
		left -= runs[nruns - 1];
	}
	/* Gaps of non-zero pages between runs: sorted random cut points split
	 * the non-zero pages exactly. */
	cuts = malloc((nruns ? nruns : 1) * sizeof(*cuts));
	if (cuts == NULL)
		goto cleanup;
	for (size_t i = 0; i < nruns; i++)
		cuts[i] = rng_below(r, nonzero + 1);
	qsort(cuts, nruns, sizeof(*cuts), cmp_u64);
	memset(kinds, PK_CONTENT, pl->pages);
	for (size_t i = 0; i < nruns; i++) {
		pos += cuts[i] - prev;
		prev = cuts[i];
		memset(kinds + pos, PK_ZERO, runs[i]);
		pos += runs[i];
	}
	rc = 0;
cleanup:
	free(runs);
	free(cuts);
	return rc;
}

/* Picks the next chunk's kind, weighted by what is left so every kind is
 * spread across the whole image. A duplicate needs an earlier original. */
static int pick_kind(struct rng *r, const uint64_t *left, bool have_unique)
{
	uint64_t x = rng_below(r, left[PK_CONTENT] + left[PK_INCOMP] + left[PK_DUP]);

	if (x >= left[PK_CONTENT] + left[PK_INCOMP] && have_unique)
		return PK_DUP;
	if (x < left[PK_CONTENT] || left[PK_INCOMP] == 0)
		return left[PK_CONTENT] ? PK_CONTENT : PK_INCOMP;
	return PK_INCOMP;
}

static void assign_kinds(struct rng *r, uint8_t *kinds, const struct plan *pl)
{
	static const uint64_t chunk_max[PK_COUNT] = {
		0, CONTENT_CHUNK_MAX, INCOMP_CHUNK_MAX, DUP_CHUNK_MAX
	};
	uint64_t left[PK_COUNT] = { 0, pl->content, pl->incomp, pl->dup };
	uint64_t chunk_left = 0;
	bool have_unique = false;
	int cur = PK_CONTENT;

	for (uint64_t i = 0; i < pl->pages; i++) {
		if (kinds[i] == PK_ZERO)
			continue;
		kinds[i] = (uint8_t)cur;
		if (chunk_left == 0) {
			cur = pick_kind(r, left, have_unique);
			chunk_left = 1 + rng_below(r, chunk_max[cur]);
			if (chunk_left > left[cur])
				chunk_left = left[cur];
			kinds[i] = (uint8_t)(cur | PK_START);
		}
		left[cur]--;
		chunk_left--;
		have_unique |= cur != PK_DUP;
	}
}

static uint8_t *make_layout(const struct options *o, const struct plan *pl)
{
	struct rng r;
	uint8_t *kinds;

	if (pl->pages > SIZE_MAX)
		return NULL;
	kinds = malloc((size_t)pl->pages);
	if (kinds == NULL)
		return NULL;
	rng_seed(&r, o->seed, STREAM_LAYOUT);
	if (place_zero_runs(&r, kinds, pl)) {
		free(kinds);
		return NULL;
	}
	assign_kinds(&r, kinds, pl);
	return kinds;
}

/* ---- finding source files ----------------------------------------------- */

struct strvec {
	char **v;
	size_t n, cap;
};

static int strvec_push(struct strvec *sv, const char *s)
{
	if (sv->n == sv->cap) {
		size_t ncap = sv->cap ? sv->cap * 2 : 256;
		char **n = realloc(sv->v, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		sv->v = n;
		sv->cap = ncap;
	}
	sv->v[sv->n] = strdup(s);
	return sv->v[sv->n] ? (sv->n++, 0) : -1;
}

static void strvec_free(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	*sv = (struct strvec){ 0 };
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n >= s && strcasecmp(name + n - s, suffix) == 0;
}

static bool is_compressed(const char *name)
{
	static const char *const ext[] = { ".gz", ".xz", ".bz2", ".zst",
					   ".jpg", ".jpeg", ".png" };

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		if (has_suffix(name, ext[i]))
			return true;
	}
	return false;
}

static bool is_plain(const char *name) { return !is_compressed(name); }
static bool is_header(const char *name) { return has_suffix(name, ".h"); }
static bool is_shared_object(const char *name) { return strstr(name, ".so") != NULL; }
static bool accept_any(const char *name) { (void)name; return true; }

struct source {
	const char *root;
	int max_depth; /* 0: only files directly in root */
	bool (*accept)(const char *name);
};

static const struct source bin_sources[] = {
	{ "/usr/lib/x86_64-linux-gnu", 0, is_shared_object },
	{ "/usr/bin", 0, accept_any },
};
static const struct source text_sources[] = {
	{ "/usr/share/doc", WALK_MAX_DEPTH, is_plain },
	{ "/usr/include", WALK_MAX_DEPTH, is_header },
	{ "/etc", WALK_MAX_DEPTH, is_plain },
};
static const struct source incomp_sources[] = {
	{ "/usr/share", WALK_MAX_DEPTH, is_compressed },
	{ "/usr/lib", WALK_MAX_DEPTH, is_compressed },
};

struct walk {
	const struct source *src;
	struct strvec *out;
	size_t entries;
	char path[PATH_MAX];
};

/* Only world-readable files and directories are used: even when run as root
 * the image must never embed secrets (/etc/shadow, private keys). */
static bool world_readable(const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return (st->st_mode & (S_IROTH | S_IXOTH)) == (S_IROTH | S_IXOTH);
	return (st->st_mode & S_IROTH) != 0;
}

/* Recursive walk appending accepted regular files to w->out. Symlinks are
 * never followed (no loops); unreadable entries are skipped. Returns -1 only
 * on allocation failure. */
static int walk_dir(struct walk *w, size_t plen, int depth)
{
	DIR *d = opendir(w->path);
	struct dirent *de;
	int rc = 0;

	if (d == NULL)
		return 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		size_t nlen = strlen(de->d_name);

		if (++w->entries > WALK_MAX_ENTRIES || w->out->n >= LIST_MAX_FILES)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Cheap filter before stat: most entries of a big tree are files
		 * we do not want. */
		if (de->d_type == DT_LNK ||
		    (de->d_type == DT_REG && !w->src->accept(de->d_name)))
			continue;
		if (plen + 1 + nlen >= sizeof(w->path))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !world_readable(&st))
			continue;
		w->path[plen] = '/';
		memcpy(w->path + plen + 1, de->d_name, nlen + 1);
		if (S_ISDIR(st.st_mode) && depth < w->src->max_depth)
			rc = walk_dir(w, plen + 1 + nlen, depth + 1);
		else if (S_ISREG(st.st_mode) && st.st_size > 0 &&
			 w->src->accept(de->d_name))
			rc = strvec_push(w->out, w->path);
		w->path[plen] = '\0';
	}
	closedir(d);
	return rc;
}

static int find_files(const struct source *srcs, size_t nsrcs,
		      struct strvec *out)
{
	struct walk *w = malloc(sizeof(*w));
	int rc = 0;

	if (w == NULL)
		return -1;
	for (size_t i = 0; i < nsrcs && rc == 0; i++) {
		*w = (struct walk){ .src = &srcs[i], .out = out };
		snprintf(w->path, sizeof(w->path), "%s", srcs[i].root);
		rc = walk_dir(w, strlen(w->path), 0);
	}
	free(w);
	return rc;
}

/* ---- corpus pools ------------------------------------------------------- */

struct pool {
	uint8_t *data; /* concatenated file contents */
	size_t len, cap; /* both multiples of page_size once loaded */
	size_t page_size;
	size_t file_max;
	bool pad_files; /* page-cache layout: each file starts on a page */
	bool text_only; /* drop files with NUL bytes (binary data in /etc) */
	/* Cursor: blocks of pages in a shuffled order; each new pass over
	 * the pool reshuffles and shifts the offsets so pages stay new. */
	struct rng rng;
	size_t *order;
	size_t nblocks;
	size_t cursor;
	uint64_t pass;
	size_t shift;
};

static ssize_t read_full(int fd, uint8_t *buf, size_t want)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Appends one file (or its head) to the pool; any problem skips the file. */
static void pool_add_file(struct pool *p, const char *path)
{
	struct stat st;
	size_t want;
	ssize_t got;
	int fd;

	/* O_NONBLOCK: a FIFO swapped in since the walk must not hang us. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
		goto cleanup;
	want = p->cap - p->len;
	if (want > p->file_max)
		want = p->file_max;
	if ((uint64_t)st.st_size < want)
		want = (size_t)st.st_size;
	got = read_full(fd, p->data + p->len, want);
	if (got <= 0)
		goto cleanup;
	if (p->text_only && memchr(p->data + p->len, 0,
				   (size_t)got < 4096 ? (size_t)got : 4096))
		goto cleanup;
	p->len += (size_t)got;
	if (p->pad_files) {
		size_t padded = (p->len + p->page_size - 1) / p->page_size *
				p->page_size;

		memset(p->data + p->len, 0, padded - p->len);
		p->len = padded;
	}
cleanup:
	close(fd);
}

/* Shift for a pass over the pool: pass 0 is page aligned, later passes use
 * word-aligned shifts so the pages differ from the earlier ones. */
static size_t pass_shift(uint64_t pass, size_t page_size, size_t npages)
{
	size_t words = page_size / 8;

	if (pass == 0 || npages < 2) /* one page: no room to shift */
		return 0;
	return 8 * (1 + (size_t)((pass * 0x9E3779B1ull) % (words - 1)));
}

static void pool_new_pass(struct pool *p)
{
	size_t npages = p->len / p->page_size;

	for (size_t i = 0; i < p->nblocks; i++)
		p->order[i] = i;
	shuffle_sizes(&p->rng, p->order, p->nblocks);
	p->shift = pass_shift(p->pass, p->page_size, npages);
	p->cursor = 0;
}

/* Byte offset in the pool of the next source page. */
static size_t pool_next_offset(struct pool *p)
{
	for (;;) {
		size_t blk, off;

		if (p->cursor == p->nblocks * BLOCK_PAGES) {
			p->pass++;
			pool_new_pass(p);
		}
		blk = p->order[p->cursor / BLOCK_PAGES];
		off = (blk * BLOCK_PAGES + p->cursor % BLOCK_PAGES) * p->page_size +
		      p->shift;
		p->cursor++;
		if (off + p->page_size <= p->len)
			return off;
	}
}

/* Bytes of corpus for a pool expected to supply need_pages unique pages:
 * twice that (zero and repeated source pages get skipped), within caps. */
static size_t pool_budget(uint64_t need_pages, size_t page_size, size_t max)
{
	uint64_t want;

	if (need_pages > max / page_size)
		return max;
	want = need_pages * page_size * 2;
	if (want < POOL_MIN)
		want = POOL_MIN;
	return want > max ? max : (size_t)want;
}

/* Loads up to p->cap bytes from a seeded shuffle of the sorted file list.
 * Returns -1 on allocation failure; an empty pool is not an error here. */
static int pool_load(struct pool *p, const struct source *srcs, size_t nsrcs,
		     uint64_t seed, int id)
{
	struct strvec files = { 0 };
	struct rng r;
	int rc = -1;

	rng_seed(&r, seed, STREAM_FILES + 16 * (uint64_t)id);
	rng_seed(&p->rng, seed, STREAM_POOL + 16 * (uint64_t)id);
	p->data = malloc(p->cap);
	if (p->data == NULL || find_files(srcs, nsrcs, &files))
		goto cleanup;
	/* Sorting first makes the shuffle independent of readdir order. */
	qsort(files.v, files.n, sizeof(*files.v), cmp_str);
	shuffle_strings(&r, files.v, files.n);
	for (size_t i = 0; i < files.n && p->len < p->cap; i++)
		pool_add_file(p, files.v[i]);
	/* Text is packed; pad its end so the pool is whole pages. */
	while (p->len % p->page_size)
		p->data[p->len++] = 0;
	if (p->len == 0 || is_zero(p->data, p->len)) {
		p->len = 0;
		rc = 0;
		goto cleanup;
	}
	p->nblocks = (p->len / p->page_size + BLOCK_PAGES - 1) / BLOCK_PAGES;
	p->order = malloc(p->nblocks * sizeof(*p->order));
	if (p->order == NULL)
		goto cleanup;
	pool_new_pass(p);
	rc = 0;
cleanup:
	strvec_free(&files);
	return rc;
}

static void pool_free(struct pool *p)
{
	free(p->data);
	free(p->order);
}

/* ---- page generation ---------------------------------------------------- */

/* How to rebuild a unique page: duplicates are regenerated from this. */
struct recipe {
	uint64_t off; /* in the pool, or the page's seed for SRC_HEAP */
	uint64_t arena; /* SRC_HEAP: the seed of its arena */
	uint32_t keep; /* bytes of content; the rest of the page is zero */
	uint8_t pool; /* a pool_id or SRC_HEAP */
	uint8_t stamped; /* made unique by writing its index into it */
};

struct gen {
	size_t page_size;
	const struct mix *mix;
	double heap;
	struct rng rng;
	struct pool pools[POOL_COUNT];
	uint64_t arena; /* of the current heap chunk */
	unsigned arena_left; /* its pages left before the next arena */
	uint64_t heap_pages;
	struct pageset seen;
	struct recipe *uniq; /* every unique page, in image order */
	size_t nuniq;
	size_t *content_ids; /* indexes into uniq of the content pages */
	size_t ncontent;
	int content_pool;
	size_t dup_next;
	uint64_t count[PK_COUNT];
};

/* ---- heap-like pages ---------------------------------------------------- */

/* Anonymous memory, slab and page tables are not in any file: they are made
 * from the PRNG. The arena seed (one per chunk of such pages) fixes the kind
 * and the address ranges its pointers fall in, so neighbouring pages share
 * their layout and high address bytes as a real heap does; the page seed
 * fixes the rest. Values are what a dump shows: user pointers
 * 0x000055.. / 0x00007f.., kernel direct-map pointers 0xffff88..,
 * kernel text 0xffffffff81.., small integers, sizes, flags, zeros. */

enum heap_kind { HK_MALLOC, HK_SLAB, HK_PTABLE, HK_SPARSE, HK_COUNT };

/* Shares of the kinds, in percent, of heap-like chunks. */
static const unsigned heap_kind_pct[HK_COUNT] = { 35, 35, 10, 20 };

struct arena {
	enum heap_kind kind;
	uint64_t user; /* a 16 MiB range of the process heap or of mmaps */
	uint64_t kern; /* a 64 MiB range of the direct map */
	uint64_t text; /* kernel or program text, for function pointers */
	uint64_t frame; /* first page frame a page table maps */
	unsigned obj; /* slab object size, bytes */
	uint8_t field[64]; /* slab: the type of each word of an object */
};

enum { F_ZERO, F_KPTR, F_UPTR, F_TEXT, F_SMALL, F_FLAGS, F_COUNT };

static void arena_init(struct arena *a, uint64_t seed)
{
	struct rng r;
	unsigned x;

	rng_seed(&r, seed, 0);
	x = (unsigned)rng_below(&r, 100);
	a->kind = HK_MALLOC;
	for (unsigned acc = 0; a->kind < HK_COUNT - 1; a->kind++) {
		acc += heap_kind_pct[a->kind];
		if (x < acc)
			break;
	}
	a->user = (rng_below(&r, 2) ? 0x00007f0000000000ull : 0x0000550000000000ull) +
		  (rng_below(&r, 1ull << 16) << 24);
	a->kern = 0xffff888000000000ull + (rng_below(&r, 1ull << 10) << 26);
	a->text = 0xffffffff81000000ull + (rng_below(&r, 1ull << 12) << 12);
	a->frame = 0x100000 + rng_below(&r, 1ull << 18);
	a->obj = 32u << rng_below(&r, 4); /* 32..256 bytes */
	for (unsigned i = 0; i < a->obj / 8; i++) {
		/* Mostly pointers and small values, as in struct page,
		 * dentries, inodes, sk_buffs. */
		static const uint8_t pick[16] = { F_ZERO, F_ZERO, F_ZERO, F_ZERO,
			F_KPTR, F_KPTR, F_KPTR, F_KPTR, F_TEXT, F_SMALL, F_SMALL,
			F_SMALL, F_FLAGS, F_FLAGS, F_UPTR, F_ZERO };

		a->field[i] = pick[rng_below(&r, 16)];
	}
}

static uint64_t heap_value(const struct arena *a, struct rng *r, int type)
{
	switch (type) {
	case F_KPTR: return a->kern + (rng_below(r, 1ull << 20) << 6);
	case F_UPTR: return a->user + (rng_below(r, 1ull << 20) << 4);
	case F_TEXT: return a->text + rng_below(r, 1ull << 16);
	case F_SMALL: return rng_below(r, rng_below(r, 2) ? 16 : 4096);
	case F_FLAGS: return (uint64_t)1 << rng_below(r, 32);
	default: return 0;
	}
}

/* A slab page: objects of one type; free ones keep only a free-list link
 * (or nothing), live ones their fields. */
static void heap_slab(const struct arena *a, struct rng *r, uint64_t *w, size_t words)
{
	size_t ow = a->obj / 8;

	for (size_t o = 0; o + ow <= words; o += ow) {
		unsigned state = (unsigned)rng_below(r, 8);

		if (state == 0) /* never used */
			continue;
		if (state == 1) { /* free: the link to the next free object */
			w[o] = heap_value(a, r, F_KPTR);
			continue;
		}
		for (size_t f = 0; f < ow; f++)
			w[o + f] = heap_value(a, r, a->field[f]);
	}
}

/* A malloc arena page: chunks with a size word, user data of pointers,
 * small integers and strings copied from text, free chunks with their
 * fd/bk links. */
static void heap_malloc(const struct arena *a, struct rng *r, const struct pool *text,
			uint64_t *w, size_t words)
{
	size_t i = 0;

	while (i + 2 < words) {
		size_t cw = 2 + 2 * (size_t)rng_below(r, rng_below(r, 4) ? 8 : 40);
		unsigned what = (unsigned)rng_below(r, 10);

		if (cw > words - i)
			cw = words - i;
		w[i + 1] = (uint64_t)cw * 8 | 1; /* size | PREV_INUSE */
		if (what == 0) { /* free chunk */
			w[i + 2] = heap_value(a, r, F_UPTR);
			if (i + 3 < words)
				w[i + 3] = heap_value(a, r, F_UPTR);
		} else if (what < 4 && text->len >= 4096) { /* a string */
			size_t n = 8 * (cw - 2), at = 8 * (size_t)rng_below(r, text->len / 8 - 64);

			memcpy(&w[i + 2], text->data + at, n < 256 ? n : 256);
		} else {
			for (size_t k = i + 2; k < i + cw; k++)
				w[k] = heap_value(a, r, (int)rng_below(r, 4) ? F_UPTR + (int)rng_below(r, 3) : F_ZERO);
		}
		i += cw;
	}
}

/* A page table: a few runs of present entries mapping mostly consecutive
 * frames (flags 0x067, some NX), the rest not present. */
static void heap_ptable(const struct arena *a, struct rng *r, uint64_t *w, size_t words)
{
	unsigned runs = 1 + (unsigned)rng_below(r, 4);

	for (unsigned k = 0; k < runs; k++) {
		size_t at = (size_t)rng_below(r, words), len = 1 + (size_t)rng_below(r, words / 4);
		uint64_t frame = a->frame + rng_below(r, 1ull << 16);
		uint64_t nx = rng_below(r, 2) ? 0x8000000000000000ull : 0;

		for (size_t i = at; i < at + len && i < words; i++) {
			if (rng_below(r, 8) == 0)
				frame = a->frame + rng_below(r, 1ull << 16);
			w[i] = nx | (frame++ << 12) | 0x067;
		}
	}
}

/* A mostly-zero page: a few words, as a stack's or a barely used
 * buffer's. */
static void heap_sparse(const struct arena *a, struct rng *r, uint64_t *w, size_t words)
{
	unsigned n = 1 + (unsigned)rng_below(r, 24);

	for (unsigned k = 0; k < n; k++) {
		size_t at = (size_t)rng_below(r, words);

		w[at] = heap_value(a, r, F_KPTR + (int)rng_below(r, F_COUNT - 1));
	}
}

static void heap_page(const struct gen *g, const struct recipe *rc, uint8_t *dst)
{
	size_t words = g->page_size / 8;
	uint64_t *w = (uint64_t *)(void *)dst;
	struct arena a;
	struct rng r;

	arena_init(&a, rc->arena);
	rng_seed(&r, rc->off, 1);
	memset(dst, 0, g->page_size);
	switch (a.kind) {
	case HK_MALLOC: heap_malloc(&a, &r, &g->pools[POOL_TEXT], w, words); break;
	case HK_SLAB: heap_slab(&a, &r, w, words); break;
	case HK_PTABLE: heap_ptable(&a, &r, w, words); break;
	default: heap_sparse(&a, &r, w, words); break;
	}
}

static void materialize(const struct gen *g, const struct recipe *rc,
			size_t index, uint8_t *dst)
{
	if (rc->pool == SRC_HEAP) {
		heap_page(g, rc, dst);
	} else {
		memcpy(dst, g->pools[rc->pool].data + rc->off, rc->keep);
		memset(dst + rc->keep, 0, g->page_size - rc->keep);
	}
	if (rc->stamped) {
		uint64_t stamp = 0x4C4D2D50414745ull ^ ((uint64_t)index << 8);

		memcpy(dst, &stamp, sizeof(stamp));
	}
}

/* Content length of a heap/stack-like page: word aligned, at least
 * PARTIAL_MIN_KEEP bytes, less than a full page. */
static uint32_t partial_keep(struct rng *r, size_t page_size)
{
	size_t words = (page_size - PARTIAL_MIN_KEEP) / 8;

	return (uint32_t)(PARTIAL_MIN_KEEP + 8 * rng_below(r, words));
}

/* Produces a page that is neither zero nor equal to any earlier unique page
 * of the image, so the planned duplicate count is exact. */
static void emit_unique(struct gen *g, int pool_id, uint8_t *dst)
{
	struct pool *p = pool_id == SRC_HEAP ? NULL : &g->pools[pool_id];
	struct recipe rc = { .pool = (uint8_t)pool_id, .arena = g->arena };
	unsigned rejects = 0;

	for (;;) {
		rc.keep = (uint32_t)g->page_size;
		if (pool_id == SRC_HEAP) {
			rc.off = rng_next(&g->rng);
		} else {
			rc.off = pool_next_offset(p);
			if (pool_id != POOL_INCOMP &&
			    rng_below(&g->rng, 1000) < g->mix->partial_permille)
				rc.keep = partial_keep(&g->rng, g->page_size);
		}
		/* A corpus exhausted by a huge image still yields new pages. */
		rc.stamped = rejects >= MAX_REJECTS;
		materialize(g, &rc, g->nuniq, dst);
		if (rc.keep < g->page_size && is_zero(dst, g->page_size)) {
			rc.keep = (uint32_t)g->page_size;
			materialize(g, &rc, g->nuniq, dst);
		}
		if (!is_zero(dst, g->page_size) &&
		    pageset_insert(&g->seen, page_hash(dst, g->page_size)))
			break;
		rejects++;
	}
	if (pool_id != POOL_INCOMP)
		g->content_ids[g->ncontent++] = g->nuniq;
	g->heap_pages += pool_id == SRC_HEAP;
	g->uniq[g->nuniq++] = rc;
}

/* Where a duplicate run starts: anywhere before, or (the mix's share) among
 * the last LOCAL_DUP_SPAN content pages: a copy made while the original was
 * read (cp, a second mmap at load) gets pages the allocator hands out next
 * to the original's. */
static size_t dup_start(struct gen *g, size_t n)
{
	if (g->mix->local_dup_percent &&
	    rng_below(&g->rng, 100) < g->mix->local_dup_percent) {
		size_t span = n < LOCAL_DUP_SPAN ? n : LOCAL_DUP_SPAN;

		return n - 1 - (size_t)rng_below(&g->rng, span);
	}
	return (size_t)rng_below(&g->rng, n);
}

/* A duplicate copies a run of earlier content pages, like a library mapped
 * twice or a file cached twice. Compressed pages are copied only while no
 * content page exists yet (the layout guarantees some unique page does). */
static void emit_dup(struct gen *g, bool chunk_start, uint8_t *dst)
{
	size_t n = g->ncontent ? g->ncontent : g->nuniq;
	size_t idx;

	if (chunk_start || g->dup_next >= n)
		g->dup_next = dup_start(g, n);
	idx = g->ncontent ? g->content_ids[g->dup_next] : g->dup_next;
	g->dup_next++;
	materialize(g, &g->uniq[idx], idx, dst);
}

static void pick_content_source(struct gen *g)
{
	bool bin = rng_below(&g->rng, 100) < g->mix->bin_percent;

	g->arena_left = 0;
	/* No draw without heap pages: --mix classic stays as it was. */
	if (g->heap > 0 &&
	    (double)rng_below(&g->rng, 1u << 20) < g->heap * (double)(1u << 20)) {
		g->content_pool = SRC_HEAP;
		return;
	}
	g->content_pool = bin ? POOL_BIN : POOL_TEXT;
	/* A machine without one kind of source uses the other. */
	if (g->pools[g->content_pool].len == 0)
		g->content_pool = bin ? POOL_TEXT : POOL_BIN;
}

static void emit_page(struct gen *g, uint8_t kind, uint8_t *dst)
{
	bool start = (kind & PK_START) != 0;

	switch (kind & PK_MASK) {
	case PK_CONTENT:
		if (start)
			pick_content_source(g);
		/* A heap chunk is a few arenas' pages: a new one now and then. */
		if (g->content_pool == SRC_HEAP && g->arena_left-- == 0) {
			g->arena = rng_next(&g->rng);
			g->arena_left = (unsigned)rng_below(&g->rng, HEAP_CHUNK_MAX);
		}
		emit_unique(g, g->content_pool, dst);
		break;
	case PK_INCOMP:
		emit_unique(g, POOL_INCOMP, dst);
		break;
	default:
		emit_dup(g, start, dst);
		break;
	}
}

static int load_pools(struct gen *g, const struct plan *pl, uint64_t seed)
{
	uint64_t files = (uint64_t)((double)pl->content * (1.0 - g->heap));
	uint64_t bin_need = files * g->mix->bin_percent / 100 + 1;
	uint64_t text_need = files - files * g->mix->bin_percent / 100 + 1;
	struct pool *p = g->pools;
	size_t ps = g->page_size;

	p[POOL_BIN] = (struct pool){ .page_size = ps,
		.file_max = BIN_FILE_MAX, .pad_files = true,
		.cap = pool_budget(bin_need, ps, BIN_POOL_MAX) };
	p[POOL_TEXT] = (struct pool){ .page_size = ps,
		.file_max = TEXT_FILE_MAX, .text_only = true,
		.cap = pool_budget(text_need, ps, TEXT_POOL_MAX) };
	p[POOL_INCOMP] = (struct pool){ .page_size = ps,
		.file_max = INCOMP_FILE_MAX,
		.cap = pool_budget(pl->incomp, ps, INCOMP_POOL_MAX) };
	/* Skip the (slow) directory walks for kinds the plan does not use. */
	if (pl->content > 0 &&
	    (pool_load(&p[POOL_BIN], bin_sources, 2, seed, POOL_BIN) ||
	     pool_load(&p[POOL_TEXT], text_sources, 3, seed, POOL_TEXT)))
		goto nomem;
	if (pl->incomp > 0 &&
	    pool_load(&p[POOL_INCOMP], incomp_sources, 2, seed, POOL_INCOMP))
		goto nomem;
	if (pl->content > 0 && p[POOL_BIN].len == 0 && p[POOL_TEXT].len == 0) {
		fprintf(stderr, PROG ": no readable binaries or text found under "
				"/usr/lib/x86_64-linux-gnu, /usr/bin, /usr/share/doc, "
				"/usr/include, /etc\n");
		return -1;
	}
	if (pl->incomp > 0 && p[POOL_INCOMP].len == 0) {
		fprintf(stderr, PROG ": no readable compressed files (*.gz, *.xz, "
				"*.bz2, *.zst, *.jpg, *.png) found under /usr/share, "
				"/usr/lib\n");
		return -1;
	}
	return 0;
nomem:
	fprintf(stderr, PROG ": out of memory loading source files\n");
	return -1;
}

static int gen_init(struct gen *g, const struct options *o,
		    const struct plan *pl)
{
	uint64_t nuniq = pl->content + pl->incomp;

	*g = (struct gen){ .page_size = o->page_size, .mix = o->mix, .heap = o->heap };
	rng_seed(&g->rng, o->seed, STREAM_GEN);
	if (nuniq > SIZE_MAX / sizeof(*g->uniq) ||
	    pageset_init(&g->seen, nuniq) ||
	    (g->uniq = malloc((size_t)(nuniq ? nuniq : 1) * sizeof(*g->uniq))) == NULL ||
	    (g->content_ids = malloc((size_t)(pl->content ? pl->content : 1) *
				     sizeof(*g->content_ids))) == NULL) {
		fprintf(stderr, PROG ": out of memory for %" PRIu64 " pages\n",
			pl->pages);
		return -1;
	}
	return load_pools(g, pl, o->seed);
}

static void gen_free(struct gen *g)
{
	for (int i = 0; i < POOL_COUNT; i++)
		pool_free(&g->pools[i]);
	free(g->seen.slot);
	free(g->uniq);
	free(g->content_ids);
}

/* ---- output ------------------------------------------------------------- */

/* Consecutive non-zero pages are batched into one pwrite; zero pages are
 * never written, so they stay holes of the pre-sized file. */
struct writer {
	int fd;
	const char *path;
	uint8_t *buf;
	size_t page_size;
	size_t batch; /* pages per buffer */
	size_t n; /* pages buffered */
	uint64_t start; /* image page of buf[0] */
};

static int writer_flush(struct writer *w)
{
	size_t len = w->n * w->page_size, done = 0;
	off_t off = (off_t)(w->start * w->page_size);

	while (done < len) {
		ssize_t n = pwrite(w->fd, w->buf + done, len - done,
				   off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, PROG ": write %s: %s\n", w->path,
				n < 0 ? strerror(errno) : "short write");
			return -1;
		}
		done += (size_t)n;
	}
	w->n = 0;
	return 0;
}

static int generate(struct gen *g, const uint8_t *kinds, uint64_t pages,
		    struct writer *w)
{
	for (uint64_t i = 0; i < pages; i++) {
		int kind = kinds[i] & PK_MASK;

		g->count[kind]++;
		if (kind == PK_ZERO) {
			if (w->n > 0 && writer_flush(w))
				return -1;
			continue;
		}
		if (w->n == 0)
			w->start = i;
		emit_page(g, kinds[i], w->buf + w->n * w->page_size);
		if (++w->n == w->batch && writer_flush(w))
			return -1;
	}
	return w->n > 0 ? writer_flush(w) : 0;
}

static char *temp_name(const char *out)
{
	size_t len = strlen(out) + 32;
	char *tmp = malloc(len);

	if (tmp != NULL)
		snprintf(tmp, len, "%s.tmp.%ld", out, (long)getpid());
	return tmp;
}

/* Creates the temp file at its final size: what is never written is a hole. */
static int open_output(const struct options *o, const char *tmp)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, PROG ": create %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)o->size) != 0) {
		fprintf(stderr, PROG ": resize %s to %" PRIu64 " bytes: %s\n", tmp,
			o->size, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	return fd;
}

static void print_summary(const struct options *o, const struct plan *pl,
			  const struct gen *g)
{
	const uint64_t *count = g->count;
	uint64_t nonzero = pl->pages - count[PK_ZERO];

	printf("mkimage: %s %" PRIu64 " bytes, %" PRIu64 " pages, mix %s: zero %" PRIu64
	       " (%.2f%%), duplicate %" PRIu64 " (%.2f%% of non-zero), "
	       "incompressible %" PRIu64 " (%.2f%%), content %" PRIu64
	       " (%" PRIu64 " of them heap-like)\n",
	       o->out, o->size, pl->pages, o->mix->name, count[PK_ZERO],
	       100.0 * (double)count[PK_ZERO] / (double)pl->pages, count[PK_DUP],
	       nonzero ? 100.0 * (double)count[PK_DUP] / (double)nonzero : 0.0,
	       count[PK_INCOMP], 100.0 * (double)count[PK_INCOMP] / (double)pl->pages,
	       count[PK_CONTENT], g->heap_pages);
}

int main(int argc, char **argv)
{
	struct options o;
	struct plan pl;
	struct gen g = { 0 };
	struct writer w = { .fd = -1 };
	uint8_t *kinds = NULL;
	char *tmp = NULL;
	int rc = 1;

	if (parse_args(argc, argv, &o) || make_plan(&o, &pl))
		return 1;
	kinds = make_layout(&o, &pl);
	tmp = temp_name(o.out);
	w = (struct writer){ .fd = -1, .path = tmp, .page_size = o.page_size,
			     .batch = WRITE_BATCH_BYTES / o.page_size };
	if (w.batch == 0)
		w.batch = 1;
	w.buf = malloc(w.batch * o.page_size);
	if (kinds == NULL || tmp == NULL || w.buf == NULL) {
		fprintf(stderr, PROG ": out of memory for a %" PRIu64 "-page image\n",
			pl.pages);
		goto cleanup;
	}
	/* Create the output first: a bad path fails before the slow corpus
	 * load. */
	w.fd = open_output(&o, tmp);
	if (w.fd < 0)
		goto cleanup;
	if (gen_init(&g, &o, &pl) || generate(&g, kinds, pl.pages, &w))
		goto cleanup_tmp;
	if (close(w.fd) != 0) {
		w.fd = -1;
		fprintf(stderr, PROG ": close %s: %s\n", tmp, strerror(errno));
		goto cleanup_tmp;
	}
	w.fd = -1;
	if (rename(tmp, o.out) != 0) {
		fprintf(stderr, PROG ": rename %s to %s: %s\n", tmp, o.out,
			strerror(errno));
		goto cleanup_tmp;
	}
	if (!o.quiet)
		print_summary(&o, &pl, &g);
	rc = 0;
	goto cleanup;
cleanup_tmp:
	if (w.fd >= 0)
		close(w.fd);
	w.fd = -1;
	unlink(tmp);
cleanup:
	gen_free(&g);
	free(w.buf);
	free(tmp);
	free(kinds);
	return rc;
}
