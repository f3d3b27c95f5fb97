/*
 * livemig: command-line front end.
 *
 *   livemig recv --listen HOST:PORT --image FILE [options]
 *   livemig send --image FILE --to HOST:PORT [options]
 *   livemig checksum FILE
 *
 * The receiver writes into a temporary file next to FILE and renames it
 * only after every region's checksum verified, so a failed or hostile
 * migration never leaves a partial image under the final name.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_num.h"
#include "dest.h"
#include "devfile.h"
#include "livemig.h"
#include "progress.h"
#include "signals.h"
#include "stream.h"

typedef struct opts {
	const char *image, *addr;
	lm_codec_id codec;
	lm_accel accel;
	lm_engine_id engine;
	int level;
	uint32_t channels, page_size, packet_pages;
	int timeout_ms, accept_timeout_ms, json, quiet, fsync_out;
	/* Trust (docs/security.md). */
	lm_tls_config tls;
	const char *allow[17];
	int nallow, plaintext, handshake_timeout_ms, session_timeout_ms;
	uint32_t max_handshakes, max_handshakes_per_host;
	uint64_t max_size; /* recv: bytes a session may announce, 0 = free space */
	int no_dedup;      /* send: every copy of a page travels in full */
	int huge_pages;    /* recv: ask for huge pages on a tmpfs image */
	int progress_ms;   /* a plain progress line every so often (not a terminal) */
	uint64_t read_ahead; /* send: bytes read ahead of the channels, 0 = default */
	const char *device_state; /* send: read from, recv: written to */
	uint64_t device_state_max; /* bytes either side takes, 0 = the library's 1 GiB */
} opts;

enum { OPT_MAX_SIZE = 256, OPT_HUGE_PAGES, OPT_PROGRESS_INTERVAL, OPT_READ_AHEAD,
       OPT_DEVICE_STATE, OPT_DEVICE_STATE_MAX }; /* long-only */

static const char *prog = "livemig";
static double cmd_t0; /* when the command started (prog_now): the total time's start */

static void usage(FILE *f)
{
	fprintf(f,
		"usage:\n"
		"  livemig recv --listen HOST:PORT --image FILE [--timeout S] [--accept-timeout S]\n"
		"               [--max-channels N] [--accel auto|qpl|off] [--engine isal|zlib|qpl-sw]\n"
		"               [--max-size SIZE] [--fsync] [--huge-pages] [--json] [--quiet] [TRUST]\n"
		"               [--tls-allow NAME]... [--handshake-timeout S] [--max-handshakes N]\n"
		"               [--max-handshakes-per-host N] [--session-timeout S]\n"
		"               [--progress-interval S] [--device-state FILE [--device-state-max SIZE]]\n"
		"  livemig send --image FILE --to HOST:PORT [--channels N]\n"
		"               [--codec auto|none|deflate|zstd|lz4|zlib] [--level N]\n"
		"               [--accel auto|qpl|off] [--engine isal|zlib|qpl-sw]\n"
		"               [--page-size N] [--packet-pages N] [--timeout S] [--json] [--quiet]\n"
		"               [TRUST] [--tls-peer-name NAME] [--psk-identity ID] [--no-dedup]\n"
		"               [--read-ahead SIZE] [--progress-interval S]\n"
		"               [--device-state FILE [--device-state-max SIZE]]\n"
		"  livemig checksum FILE\n"
#ifdef LM_HAVE_DEMO
		"  livemig demo [--size SIZE] [--dirty-rate RATE] [--channels N] ... (demo --help)\n"
#endif
		"  livemig version\n"
		"TRUST (both sides; mutual TLS 1.3):\n"
		"  --tls-cert FILE --tls-key FILE --tls-ca FILE [--tls-pin SHA256]  X.509\n"
		"  --psk-file FILE                 a pre-shared key (IDENTITY:HEX lines or 32 bytes)\n"
		"  --plaintext                     no TLS, allowed off this host (a warning)\n"
		"ADDR is HOST:PORT, tcp:HOST:PORT, unix:PATH or fd:N[,N...].\n"
		"Channels default to %d (max %d); timeout (a stalled peer) defaults to %d s.\n"
		"send: --codec auto (the default) compresses what it measures pays: per packet\n"
		"lz4, zstd, deflate or none, re-decided every 100 ms from the link, CPU and\n"
		"receiver rates; name a codec to pin it.\n"
		"send: a page whose bytes the destination already holds travels as a 16-byte\n"
		"ref (compared byte for byte first); --no-dedup sends every copy in full.\n"
		"--max-size (bytes, or with K, M, G, T: binary) defaults to the free space of\n"
		"the image's file system.\n"
		"Progress (stderr): a bar redrawn in place on a terminal, else a line every\n"
		"--progress-interval seconds (default 5, decimals allowed); none with --quiet.\n"
		"--device-state FILE: the application's state at the switchover (a VMM's\n"
		"devices), sent after the last pages from FILE and written to FILE by recv\n"
		"(into place with the image, once verified); give it to both sides or neither.\n"
		"--device-state-max SIZE: the most either side takes (default 1G); a larger\n"
		"state fails the migration on both sides (send: before it connects).\n"
		"send: the image is read from disk while it is sent, --read-ahead SIZE\n"
		"(default %lluM) ahead of the channels, and what was sent leaves memory, so\n"
		"an image larger than the RAM works; a read error (a truncated file, EIO)\n"
		"fails the migration with the offset named.\n",
		LM_DEFAULT_CHANNELS, LM_MAX_CHANNELS, LM_DEFAULT_TIMEOUT_MS / 1000,
		(unsigned long long)(STREAM_DEFAULT_WINDOW >> 20));
}

static int die(const char *what, int rc, const char *detail)
{
	fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, lm_strerror(rc), detail && *detail ? ": " : "",
		detail ? detail : "");
	return 1;
}

static int parse_opts(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{"image", required_argument, 0, 'i'},     {"to", required_argument, 0, 't'},
		{"listen", required_argument, 0, 'l'},    {"channels", required_argument, 0, 'c'},
		{"codec", required_argument, 0, 'C'},     {"page-size", required_argument, 0, 'p'},
		{"packet-pages", required_argument, 0, 'P'}, {"timeout", required_argument, 0, 'T'},
		{"accept-timeout", required_argument, 0, 'A'}, {"max-channels", required_argument, 0, 'm'},
		{"json", no_argument, 0, 'j'},            {"quiet", no_argument, 0, 'q'},
		{"fsync", no_argument, 0, 'F'},           {"help", no_argument, 0, 'h'},
		{"level", required_argument, 0, 'L'},     {"accel", required_argument, 0, 'a'},
		{"engine", required_argument, 0, 'e'},
		{"tls-cert", required_argument, 0, 1},   {"tls-key", required_argument, 0, 2},
		{"tls-ca", required_argument, 0, 3},     {"psk-file", required_argument, 0, 4},
		{"psk-identity", required_argument, 0, 5}, {"tls-peer-name", required_argument, 0, 6},
		{"tls-allow", required_argument, 0, 7},  {"tls-pin", required_argument, 0, 8},
		{"plaintext", no_argument, 0, 9},        {"handshake-timeout", required_argument, 0, 10},
		{"max-handshakes", required_argument, 0, 11},
		{"max-handshakes-per-host", required_argument, 0, 12},
		{"session-timeout", required_argument, 0, 13},
		{"no-dedup", no_argument, 0, 14},
		{"max-size", required_argument, 0, OPT_MAX_SIZE},
		{"huge-pages", no_argument, 0, OPT_HUGE_PAGES},
		{"progress-interval", required_argument, 0, OPT_PROGRESS_INTERVAL},
		{"read-ahead", required_argument, 0, OPT_READ_AHEAD},
		{"device-state", required_argument, 0, OPT_DEVICE_STATE},
		{"device-state-max", required_argument, 0, OPT_DEVICE_STATE_MAX},
		{0, 0, 0, 0}};
	uint32_t v;
	int c;

	while ((c = getopt_long(argc, argv, "i:t:l:c:C:p:P:T:A:m:jqFhL:a:e:", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o->image = optarg; break;
		case 't':
		case 'l': o->addr = optarg; break;
		case 'c':
		case 'm':
			if (cli_parse_u32(optarg, &o->channels, 1, LM_MAX_CHANNELS))
				return fprintf(stderr, "%s: --channels must be 1..%d\n", prog, LM_MAX_CHANNELS), -1;
			break;
		case 'C':
			if (lm_codec_from_name(optarg, &o->codec))
				return fprintf(stderr, "%s: unknown codec '%s'\n", prog, optarg), -1;
			break;
		case 'p':
			if (cli_parse_u32(optarg, &o->page_size, LM_MIN_PAGE_SIZE, LM_MAX_PAGE_SIZE) ||
			    (o->page_size & (o->page_size - 1)))
				return fprintf(stderr, "%s: --page-size must be a power of two 4096..65536\n", prog), -1;
			break;
		case 'P':
			if (cli_parse_u32(optarg, &o->packet_pages, 1, LM_MAX_PACKET_PAGES))
				return fprintf(stderr, "%s: --packet-pages must be 1..%d\n", prog, LM_MAX_PACKET_PAGES), -1;
			break;
		case 'T':
		case 'A':
			if (cli_parse_u32(optarg, &v, 1, 86400))
				return fprintf(stderr, "%s: timeouts are 1..86400 seconds\n", prog), -1;
			*(c == 'T' ? &o->timeout_ms : &o->accept_timeout_ms) = (int)v * 1000;
			break;
		case 'L': {
			char *end;
			long lv = strtol(optarg, &end, 10);
			if (*end || end == optarg || lv < -100 || lv > 22)
				return fprintf(stderr, "%s: --level must be -100..22\n", prog), -1;
			o->level = (int)lv;
			break;
		}
		case 'a':
			if (lm_accel_from_name(optarg, &o->accel))
				return fprintf(stderr, "%s: --accel is auto, qpl or off\n", prog), -1;
			break;
		case 'e':
			if (lm_engine_from_name(optarg, &o->engine))
				return fprintf(stderr, "%s: --engine is isal, zlib or qpl-sw\n", prog), -1;
			break;
		case 1: o->tls.cert_file = optarg; break;
		case 2: o->tls.key_file = optarg; break;
		case 3: o->tls.ca_file = optarg; break;
		case 4: o->tls.psk_file = optarg; break;
		case 5: o->tls.psk_identity = optarg; break;
		case 6: o->tls.peer_name = optarg; break;
		case 7:
			if (o->nallow >= 16)
				return fprintf(stderr, "%s: at most 16 --tls-allow names\n", prog), -1;
			o->allow[o->nallow++] = optarg;
			o->tls.allow = o->allow;
			break;
		case 8: o->tls.pin_sha256 = optarg; break;
		case 9: o->plaintext = 1; break;
		case 14: o->no_dedup = 1; break;
		case 10:
		case 13:
			if (cli_parse_u32(optarg, &v, 1, 86400))
				return fprintf(stderr, "%s: timeouts are 1..86400 seconds\n", prog), -1;
			*(c == 10 ? &o->handshake_timeout_ms : &o->session_timeout_ms) = (int)v * 1000;
			break;
		case 11:
		case 12:
			if (cli_parse_u32(optarg, &v, 1, 1024))
				return fprintf(stderr, "%s: handshake limits are 1..1024\n", prog), -1;
			*(c == 11 ? &o->max_handshakes : &o->max_handshakes_per_host) = v;
			break;
		case OPT_MAX_SIZE:
			if (cli_parse_size(optarg, &o->max_size) || !o->max_size)
				return fprintf(stderr, "%s: --max-size is bytes (at least 1), or a number "
					       "with K, M, G or T\n", prog), -1;
			break;
		case OPT_HUGE_PAGES: o->huge_pages = 1; break;
		case OPT_PROGRESS_INTERVAL: {
			char *end;
			double sec = strtod(optarg, &end);
			if (*end || end == optarg || !(sec >= 0.1 && sec <= 86400))
				return fprintf(stderr, "%s: --progress-interval is 0.1..86400 seconds\n",
					       prog), -1;
			o->progress_ms = (int)(sec * 1000 + 0.5);
			break;
		}
		case OPT_READ_AHEAD:
			if (cli_parse_size(optarg, &o->read_ahead) || o->read_ahead < (2u << 20) ||
			    o->read_ahead > (64ull << 30))
				return fprintf(stderr, "%s: --read-ahead is 2M..64G (bytes, or with K, M, "
					       "G or T)\n", prog), -1;
			break;
		case OPT_DEVICE_STATE: o->device_state = optarg; break;
		case OPT_DEVICE_STATE_MAX:
			/* 0 would be the library's default, not "none": at least a byte. */
			if (cli_parse_size(optarg, &o->device_state_max) || !o->device_state_max)
				return fprintf(stderr, "%s: --device-state-max is bytes (at least 1), or a "
					       "number with K, M, G or T\n", prog), -1;
			break;
		case 'j': o->json = 1; break;
		case 'q': o->quiet = 1; break;
		case 'F': o->fsync_out = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (o->device_state_max && !o->device_state)
		return fprintf(stderr, "%s: --device-state-max needs --device-state\n", prog), -1;
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		return -1;
	}
	return 0;
}

/* Secure by default: TLS when credentials are given; plaintext stays on
 * this host unless --plaintext asks for it, and is always said out loud. */
static const lm_tls_config *trust(const opts *o, int *bad)
{
	int local = lm_address_is_local(o->addr);
	int tls = o->tls.cert_file || o->tls.key_file || o->tls.ca_file || o->tls.psk_file;

	*bad = 0;
	if (local < 0) {
		fprintf(stderr, "%s: '%s' is not an address (HOST:PORT, tcp:HOST:PORT, unix:PATH, fd:N)\n",
			prog, o->addr);
		*bad = 1;
		return NULL;
	}
	if (tls && o->plaintext) {
		fprintf(stderr, "%s: --plaintext contradicts the TLS options\n", prog);
		*bad = 1;
		return NULL;
	}
	if (tls)
		return &o->tls;
	if (!local && !o->plaintext) {
		fprintf(stderr,
			"%s: refusing plaintext on %s, which is not this host: give --tls-cert/--tls-key/"
			"--tls-ca or --psk-file (docs/security.md), or --plaintext to accept that anyone "
			"on the path can read and change the memory\n",
			prog, o->addr);
		*bad = 1;
		return NULL;
	}
	if (!o->quiet)
		fprintf(stderr, "%s: %s: plaintext: nothing is encrypted or authenticated%s\n", prog,
			local ? "note" : "warning",
			local ? " (this host only)" : ", anyone on the path can read and change the memory");
	return NULL;
}

static void print_stats(const lm_stats *st, const opts *o)
{
	char buf[4096];

	if (o->quiet)
		return;
	lm_stats_format(st, o->json ? LM_STATS_JSON : LM_STATS_HUMAN, buf, sizeof(buf));
	printf("%s%s", buf, o->json ? "\n" : "");
	fflush(stdout);
}

/* ---- send ----------------------------------------------------------------- */

/* send's statistics count from the command's start, not from the connect:
 * the time before it (opening the image, starting up) goes to the total
 * and to the setup, so the throughput, which leaves the setup out, stays
 * the link's. The image's open time gets a line of its own ("load time",
 * "load_time_ms" in JSON) after setup, and so do its holes' bytes, mapped
 * as zeros instead of read (stream.h). */
static void print_send_stats(lm_stats *st, const opts *o, double t_connect, double load_s,
			     uint64_t holes)
{
	char buf[4096], line[160];
	const char *at;
	uint64_t before = (uint64_t)((t_connect - cmd_t0) * 1e6);
	size_t pos;

	if (o->quiet)
		return;
	st->total_time_us += before;
	st->setup_time_us += before;
	lm_stats_format(st, o->json ? LM_STATS_JSON : LM_STATS_HUMAN, buf, sizeof(buf));
	if (o->json) {
		snprintf(line, sizeof(line), "\"load_time_ms\":%.3f,\"image_hole_bytes\":%llu,",
			 load_s * 1e3, (unsigned long long)holes);
		at = strstr(buf, "\"transferred\":");
	} else {
		int n = snprintf(line, sizeof(line), "load time: %.0f ms\n", load_s * 1e3);
		if (holes && n > 0 && (size_t)n < sizeof(line))
			snprintf(line + n, sizeof(line) - (size_t)n, "image holes: %.1f MiB, not read\n",
				 (double)holes / (1 << 20));
		at = strstr(buf, "\nsetup: ");
		at = at ? strchr(at + 1, '\n') : NULL;
		at = at ? at + 1 : NULL;
	}
	pos = at ? (size_t)(at - buf) : strlen(buf);
	printf("%.*s%s%s%s", (int)pos, buf, line, buf + pos, o->json ? "\n" : "");
	fflush(stdout);
}

/* The progress line's view of a send: the cursor (any thread). */
typedef struct send_view {
	lm_sender *s;
	uint64_t total;
	uint32_t page_size;
} send_view;

static void send_poll(void *user, prog_sample *ps)
{
	const send_view *v = user;

	lm_sender_cursor(v->s, &ps->done, NULL);
	ps->total = v->total;
	ps->pages = (ps->done + v->page_size - 1) / v->page_size;
}

/* When the device state file's read or write failed the migration: says
 * so, naming the file, and returns 1; else 0. */
static int devfile_said(const devfile *dev)
{
	char msg[512];

	if (!devfile_failed(dev, msg, sizeof(msg)))
		return 0;
	fprintf(stderr, "%s: %s: %s\n", prog, dev->path, msg);
	return 1;
}

/* A read error of the image (the stream cancelled the migration) or of the
 * device state file is what failed it: say so rather than "canceled". */
static int send_failed(const stream *img, const devfile *dev, lm_sender *s, int rc)
{
	char msg[512];
	int bad = stream_failed(img, msg, sizeof(msg));

	if (bad)
		return die(img->path, bad, msg);
	if (devfile_said(dev))
		return 1;
	return die("migration failed", rc, lm_sender_errmsg(s));
}

static void send_config(const opts *o, lm_sender_config *cfg)
{
	cfg->channels = o->channels;
	cfg->page_size = o->page_size;
	cfg->packet_pages = o->packet_pages;
	cfg->codec = o->codec;
	cfg->level = o->level;
	cfg->accel = o->accel;
	cfg->engine = o->engine;
	cfg->timeout_ms = o->timeout_ms;
	cfg->no_dedup = o->no_dedup;
	cfg->device_state_max = o->device_state_max;
}

static int cmd_send(int argc, char **argv)
{
	opts o = {.codec = LM_CODEC_AUTO, .tls = LM_TLS_CONFIG_INIT};
	lm_sender_config cfg = LM_SENDER_CONFIG_INIT;
	lm_sender *s = NULL;
	lm_stats st = LM_STATS_INIT;
	stream img;
	devfile dev = {.fd = -1};
	prog_run pr = {0};
	send_view view;
	double load_s, t_connect;
	int rc, ret = 1;
	char namebuf[4096], msg[256];

	if (parse_opts(argc, argv, &o))
		return 2;
	if (!o.image || !o.addr) {
		fprintf(stderr, "%s: --image and --to are required\n", prog);
		return 2;
	}
	/* Opened and mapped, not read: the stream reads it while it is sent. */
	if ((rc = stream_open(&img, o.image, o.read_ahead, msg, sizeof(msg)))) {
		stream_close(&img);
		return die(o.image, rc, msg);
	}
	if (o.device_state && devfile_open_send(&dev, prog, o.device_state, o.device_state_max))
		goto out;
	load_s = prog_now() - cmd_t0;
	send_config(&o, &cfg);
	if (o.device_state) {
		cfg.device_state = devfile_send_cb;
		cfg.device_state_user = &dev;
	}
	cfg.tls = trust(&o, &rc);
	if (rc)
		goto out;
	snprintf(namebuf, sizeof(namebuf), "%s", o.image);
	if ((rc = lm_sender_new(&s, &cfg))) {
		die("sender", rc, s ? lm_sender_errmsg(s) : NULL);
		goto out;
	}
	sig_watch_sender(s);
	if ((rc = lm_sender_add_region(s, basename(namebuf), img.base, img.len))) {
		die("region", rc, lm_sender_errmsg(s));
		goto out;
	}
	if ((rc = stream_start(&img, s))) {
		die("read-ahead", rc, o.image);
		goto out;
	}
	view = (send_view){s, img.len, o.page_size ? o.page_size : LM_MIN_PAGE_SIZE};
	prog_start(&pr, prog_mode_for(STDERR_FILENO, o.quiet), stderr, prog, o.progress_ms, cmd_t0,
		   send_poll, &view); /* without it, just no progress */
	t_connect = prog_now();
	rc = lm_sender_connect(s, o.addr);
	if (!rc)
		rc = lm_sender_run(s);
	stream_stop(&img);
	prog_finish(&pr);
	lm_sender_stats(s, &st);
	print_send_stats(&st, &o, t_connect, load_s, img.hole_bytes);
	if (rc) {
		send_failed(&img, &dev, s, rc);
		goto out;
	}
	ret = 0;
out:
	sig_watch_sender(NULL);
	lm_sender_free(s);
	devfile_close(&dev);
	stream_close(&img);
	return sig_status(ret);
}

/* ---- recv ----------------------------------------------------------------- */

/* The receiver's log: one line per refused connection, already escaped. */
static void log_line(void *user, const char *line)
{
	(void)user;
	fprintf(stderr, "%s: %s\n", prog, line);
}


/* The progress line's view of a receive (the progress thread), from the
 * receiver's stats snapshot, which any thread may take while it runs; a
 * page sent twice counts twice, so a live migration's share is capped
 * (progress.c). */
static void recv_poll(void *user, prog_sample *ps)
{
	const dest *d = user;
	uint32_t page = __atomic_load_n(&d->shown_page, __ATOMIC_RELAXED);
	uint64_t len = __atomic_load_n(&d->shown_len, __ATOMIC_RELAXED);
	lm_stats st = LM_STATS_INIT;

	lm_receiver_stats(d->r, &st);
	ps->pages = st.normal_pages + st.duplicate_pages + st.ref_pages + st.delta_pages;
	ps->total = len;
	ps->done = ps->pages * page;
	if (ps->done > len && ps->pages * page - len < page)
		ps->done = len; /* the partial last page */
}

/* The receiver's one user pointer: the image first (dest's callbacks take
 * it as their dest) and the device state file. */
typedef struct recv_files {
	dest d;
	devfile dev;
} recv_files;

static int recv_devstate(void *user, uint64_t off, const void *buf, size_t len)
{
	return devfile_load_cb(&((recv_files *)user)->dev, off, buf, len);
}

/* A write of the device state file (a full disk) is what failed the
 * migration: say so before the library's account of it. */
static void recv_failed(const recv_files *f, lm_receiver *r, int rc)
{
	devfile_said(&f->dev);
	if (f->d.regions || rc != LM_EREGION)
		die("migration failed", rc, lm_receiver_errmsg(r));
}

static void recv_cleanup(recv_files *f, lm_receiver *r)
{
	sig_watch_receiver(NULL);
	dest_discard(&f->d);
	devfile_close(&f->dev);
	lm_receiver_free(r);
}

/* After a verified run: both files written out first (where a full disk
 * fails, leaving both old files as they were), then the two renames back
 * to back with SIGINT and SIGTERM held, so a second signal cannot leave a
 * new device state beside an old image. */
static int recv_commit(recv_files *f, const opts *o)
{
	sigset_t hold, was;
	int rc;

	if (o->device_state && (rc = devfile_prepare(&f->dev, o->fsync_out)))
		return die("writing the device state", rc, o->device_state), rc;
	if ((rc = dest_prepare(&f->d, o->fsync_out)))
		return die("writing the image", rc, f->d.final), rc;
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &hold, &was);
	if (o->device_state && (rc = devfile_commit(&f->dev)))
		die("renaming the device state into place", rc, o->device_state);
	else if ((rc = dest_commit(&f->d)))
		fprintf(stderr, "%s: renaming the image into place: %s: %s%s\n", prog,
			lm_strerror(rc), f->d.final,
			o->device_state ? " (the new device state is in place)" : "");
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	return rc;
}

static int cmd_recv(int argc, char **argv)
{
	opts o = {.tls = LM_TLS_CONFIG_INIT};
	lm_receiver_config cfg = LM_RECEIVER_CONFIG_INIT;
	lm_receiver *r = NULL;
	recv_files files = {.d.fd = -1, .dev.fd = -1};
	dest *d = &files.d;
	lm_stats st = LM_STATS_INIT;
	prog_run pr = {0};
	int rc, ret = 1, unwritten = 0;

	if (parse_opts(argc, argv, &o))
		return 2;
	if (!o.image || !o.addr) {
		fprintf(stderr, "%s: --listen and --image are required\n", prog);
		return 2;
	}
	if (o.device_state && !strcmp(o.device_state, o.image)) {
		fprintf(stderr, "%s: --device-state and --image name the same file\n", prog);
		return 2;
	}
	d->prog = prog;
	d->final = o.image;
	d->quiet = o.quiet || o.json;
	d->huge = o.huge_pages;
	d->max_bytes = o.max_size;
	if (!d->max_bytes && (rc = dest_free_space(o.image, &d->max_bytes)))
		return die("the image's file system", rc, o.image);
	cfg.timeout_ms = o.timeout_ms;
	cfg.accept_timeout_ms = o.accept_timeout_ms;
	cfg.max_channels = o.channels;
	cfg.accel = o.accel;
	cfg.engine = o.engine;
	cfg.on_region = dest_on_region;
	cfg.reserve = dest_on_reserve;
	cfg.user = &files;
	cfg.max_bytes = d->max_bytes;
	cfg.log = log_line;
	cfg.handshake_timeout_ms = o.handshake_timeout_ms;
	cfg.max_handshakes = o.max_handshakes;
	cfg.max_handshakes_per_host = o.max_handshakes_per_host;
	cfg.session_timeout_ms = o.session_timeout_ms;
	cfg.tls = trust(&o, &rc);
	if (rc) {
		ret = 2;
		goto out;
	}
	if (o.device_state) {
		if (devfile_open_recv(&files.dev, prog, o.device_state))
			goto out;
		cfg.device_state = recv_devstate;
		cfg.device_state_max = o.device_state_max;
	}
	if ((rc = lm_receiver_new(&r, &cfg))) {
		die("listen", rc, r ? lm_receiver_errmsg(r) : o.addr);
		goto out;
	}
	sig_watch_receiver(r);
	if ((rc = lm_receiver_listen(r, o.addr))) {
		die("listen", rc, *lm_receiver_errmsg(r) ? lm_receiver_errmsg(r) : o.addr);
		goto out;
	}
	if (!o.quiet && !o.json) {
		fprintf(stderr, "%s: listening on %s (port %d)\n", prog, o.addr, lm_receiver_port(r));
	}
	d->r = r;
	prog_start(&pr, prog_mode_for(STDERR_FILENO, o.quiet), stderr, prog, o.progress_ms, cmd_t0,
		   recv_poll, d); /* without it, just no progress */
	rc = lm_receiver_run(r);
	prog_finish(&pr);
	/* Verified means done: the sender was told so; a signal from now on
	 * changes nothing. */
	sig_watch_receiver(NULL);
	if (!rc && !d->regions)
		rc = LM_EREGION;
	if (!rc)
		unwritten = (rc = recv_commit(&files, &o)) != 0; /* said: verified, not written */
	lm_receiver_stats(r, &st);
	print_stats(&st, &o);
	if (rc == LM_ELIMIT)
		fprintf(stderr,
			"%s: %s: the sender announced more than the limit of %llu bytes "
			"(--max-size; default the free space)\n",
			prog, d->final, (unsigned long long)d->max_bytes);
	if (rc) {
		if (!unwritten)
			recv_failed(&files, r, rc);
		goto out;
	}
	ret = 0;
out:
	recv_cleanup(&files, r);
	return sig_status(ret);
}

/* ---- checksum ------------------------------------------------------------- */

static int cmd_checksum(int argc, char **argv)
{
	struct stat sb;
	void *base = NULL;
	int fd;

	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0)
		return die(argv[1], -errno, NULL);
	if (sb.st_size > 0) {
		base = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (base == MAP_FAILED)
			return die("mmap", -errno, argv[1]);
	}
	uint64_t sum;
	int rc = lm_region_checksum(base, (uint64_t)sb.st_size, &sum);
	if (rc)
		return die("checksum", rc, argv[1]);
	printf("%016llx  %s\n", (unsigned long long)sum, argv[1]);
	if (base)
		munmap(base, (size_t)sb.st_size);
	close(fd);
	return 0;
}

#ifdef LM_HAVE_DEMO
int livemig_demo(int argc, char **argv); /* tools/demo.c */
#endif

int main(int argc, char **argv)
{
	cmd_t0 = prog_now();
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "send")) {
		prog = "livemig send";
		sig_install();
		return cmd_send(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "recv")) {
		prog = "livemig recv";
		sig_install();
		return cmd_recv(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "checksum"))
		return cmd_checksum(argc - 1, argv + 1);
#ifdef LM_HAVE_DEMO
	if (!strcmp(argv[1], "demo")) {
		sig_install();
		return livemig_demo(argc - 1, argv + 1);
	}
#endif
	if (!strcmp(argv[1], "version")) {
		printf("livemig %d.%d.%d (protocol %d)\n", LM_VERSION_MAJOR, LM_VERSION_MINOR,
		       LM_VERSION_PATCH, LM_PROTOCOL_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "livemig: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
