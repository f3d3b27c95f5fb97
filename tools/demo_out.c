/* `livemig demo`'s output (demo.h): the header, the progress line per
 * round, the statistics and --json's one object. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

#define BAR 20 /* the progress bar's width */

static void print_size(char *buf, size_t cap, uint64_t bytes)
{
	if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
		snprintf(buf, cap, "%" PRIu64 " GiB", bytes >> 30);
	else if (bytes >= (1ull << 30))
		snprintf(buf, cap, "%.2f GiB", (double)bytes / (1ull << 30));
	else if (bytes >= (1ull << 20))
		snprintf(buf, cap, "%.4g MiB", (double)bytes / MIB);
	else
		snprintf(buf, cap, "%.4g KiB", (double)bytes / 1024);
}

void demo_header(demo *d)
{
	const demo_opts *o = &d->o;
	char size[32], ws[32], rate[32], bw[32];

	if (o->quiet)
		return;
	print_size(size, sizeof(size), o->size);
	print_size(ws, sizeof(ws), o->working_set);
	print_size(rate, sizeof(rate), o->dirty_rate);
	print_size(bw, sizeof(bw), o->max_bandwidth);
	strcat(bw, "/s");
	if (o->dirty_rate)
		strcat(rate, "/s");
	fprintf(d->txt, "demo: %s of memory, working set %s, dirty rate %s (%u writer%s), %u channel%s, codec %s\n",
		size, ws, o->dirty_rate ? rate : "0 (idle)", o->threads, o->threads > 1 ? "s" : "",
		o->channels, o->channels > 1 ? "s" : "", lm_codec_name(o->codec));
	fprintf(d->txt, "demo: downtime limit %u ms, max rounds %u%s, max bandwidth %s, on limit %s, auto-converge %s\n",
		o->downtime_ms, o->max_rounds ? o->max_rounds : 30, o->max_time_ms ? "" : ", no time limit",
		o->max_bandwidth ? bw : "unlimited", o->on_limit == LM_LIMIT_FAIL ? "fail" : "switchover",
		o->no_auto_converge ? "off" : o->throttle_mode == LM_THROTTLE_STEP ? "on (step)" : "on (computed)");
	if (o->max_time_ms)
		fprintf(d->txt, "demo: pre-copy time limit %u ms\n", o->max_time_ms);
	if (o->switchover_bandwidth) {
		print_size(bw, sizeof(bw), o->switchover_bandwidth);
		fprintf(d->txt, "demo: the final copy's estimate at %s/s (--switchover-bandwidth)\n", bw);
	}
	if (o->image)
		fprintf(d->txt, "demo: memory from image %s\n", o->image);
	if (o->write_bytes)
		fprintf(d->txt, "demo: writes of %u byte%s at a random offset per dirtied page\n",
			o->write_bytes, o->write_bytes > 1 ? "s" : "");
	fprintf(d->txt, "demo: network: %s, %s\n",
		o->netns ? "source in netns " NS_SRC " -> destination in netns " NS_DST " (" NS_DST_ADDR ")"
			 : "loopback (127.0.0.1), destination in a child process",
		o->plaintext ? "plaintext (--plaintext)" : "TLS 1.3 with a random pre-shared key");
	if (d->probe_rc)
		fprintf(d->txt, "demo: dirty tracking: %s; uffd-wp is unavailable: %s\n", d->dirty_name, d->probe_why);
	else
		fprintf(d->txt, "demo: dirty tracking: %s\n", d->dirty_name);
	fflush(d->txt);
}

void demo_fill_line(demo *d)
{
	wl_fill_stats f;
	double p;
	char size[32];

	if (d->o.quiet)
		return;
	wl_fill_info(d->w, &f);
	p = f.pages ? 100.0 / (double)f.pages : 0;
	print_size(size, sizeof(size), wl_size(d->w));
	if (d->o.image) {
		char got[32];

		print_size(got, sizeof(got), f.image_bytes);
		fprintf(d->txt, "demo: workload loaded %s of memory in %.2f s: %s read from the image%s, zero %.0f%%\n",
			size, f.seconds, got, f.image_bytes < wl_size(d->w) ? ", the rest zero" : "",
			(double)f.zero * p);
		fflush(d->txt);
		return;
	}
	fprintf(d->txt, "demo: workload filled %s in %.2f s: zero %.0f%%, text %.0f%%, heap %.0f%%, duplicate %.0f%%, random %.0f%%\n",
		size, f.seconds, (double)f.zero * p, (double)f.text * p, (double)f.heap * p,
		(double)f.dup * p, (double)f.random * p);
	fflush(d->txt);
}

static void bar(char *out, double frac)
{
	int fill = (int)(frac * BAR + 0.5);

	fill = fill < 0 ? 0 : fill > BAR ? BAR : fill;
	out[0] = '[';
	for (int i = 0; i < BAR; i++)
		out[1 + i] = i < fill ? '#' : '.';
	out[BAR + 1] = ']';
	out[BAR + 2] = 0;
}

/* The progress line; on a terminal it replaces the previous one. */
void demo_show(demo *d, const char *line)
{
	if (d->tty) {
		fprintf(d->txt, "\r%s\033[K", line);
		d->line_open = 1;
	} else {
		fprintf(d->txt, "%s\n", line);
	}
	fflush(d->txt);
}

void demo_end_line(demo *d)
{
	if (d->line_open)
		fputc('\n', d->txt);
	d->line_open = 0;
}

/* One round_log entry; a full log just stops growing. */
static void log_round(demo *d, const lm_stats *st)
{
	round_entry *e;

	if (d->nlog == d->log_cap) {
		uint32_t cap = d->log_cap ? d->log_cap * 2 : 64;
		round_entry *n = realloc(d->log, cap * sizeof(*n));
		if (!n)
			return;
		d->log = n;
		d->log_cap = cap;
	}
	e = &d->log[d->nlog++];
	*e = (round_entry){.round = st->rounds, .throttle_pct = st->throttle_now_pct,
			   .t_ms = (uint64_t)(demo_now_ms() - d->t_migrate),
			   .remaining_bytes = st->remaining_bytes,
			   .expected_downtime_ms = st->expected_downtime_ms,
			   .dirty_pages_rate = st->dirty_pages_rate,
			   .bandwidth_mbps = st->bandwidth_mbps};
}

/* The codec mix of the round just synced ("lz4 71% none 29%"): the
 * stats' cumulative mix less the one at the previous round. */
static void round_mix(demo *d, const lm_stats *st, char *buf, size_t cap)
{
	lm_stats r;

	memset(&r, 0, sizeof(r));
	r.size = sizeof(r);
	for (int c = 0; c < LM_MAX_CODECS; c++) {
		r.codec_mix[c].packets = st->codec_mix[c].packets - d->mix_seen[c].packets;
		r.codec_mix[c].bytes_in = st->codec_mix[c].bytes_in - d->mix_seen[c].bytes_in;
		r.codec_mix[c].bytes_out = st->codec_mix[c].bytes_out - d->mix_seen[c].bytes_out;
		d->mix_seen[c] = st->codec_mix[c];
	}
	lm_stats_mix_line(&r, buf, cap);
}

/* Round one: how much of the memory went; later: the dirty set, against
 * the largest it was, so a converging migration shows a shrinking bar. */
void demo_on_progress(void *user, const lm_stats *st)
{
	demo *d = user;
	uint64_t total = st->page_size ? st->total_ram / st->page_size : 0;
	char b[BAR + 3], line[384], thr[32] = "", mix[96];
	double frac;

	if (!d->have_r1) {
		d->have_r1 = 1;
		d->r1_bytes = st->transferred;
		d->r1_pages = demo_pages_sent(st);
	}
	log_round(d, st);
	if (d->o.quiet)
		return;
	if (st->dirty_pages > d->max_dirty)
		d->max_dirty = st->dirty_pages;
	if (st->rounds <= 1)
		frac = total ? (double)demo_pages_sent(st) / (double)total : 1;
	else
		frac = d->max_dirty ? (double)st->dirty_pages / (double)d->max_dirty : 0;
	bar(b, frac);
	if (st->throttle_pct)
		snprintf(thr, sizeof(thr), ", throttle %u%%", st->throttle_now_pct);
	round_mix(d, st, mix, sizeof(mix));
	snprintf(line, sizeof(line),
		 "round %u %s %s: dirty %" PRIu64 " pages, %.0f Mbit/s, remaining %.1f MiB, expected downtime %" PRIu64 " ms (fixed %" PRIu64 ")%s%s%s",
		 st->rounds, st->rounds <= 1 ? "sent" : "dirty", b, st->dirty_pages, st->bandwidth_mbps,
		 (double)st->remaining_bytes / MIB, st->expected_downtime_ms, st->downtime_fixed_ms, thr,
		 mix[0] ? ", " : "", mix);
	demo_show(d, line);
}

void demo_print_human(demo *d, const char *title, const char *text)
{
	if (d->o.quiet || !text)
		return;
	fprintf(d->txt, "\n== %s\n%s", title, text); /* a blank line before each */
	fflush(d->txt);
}

/* JSON string body with the escapes JSON requires. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* --json: one object on stdout, the only thing there. */
void demo_print_json(demo *d, const char *src, const dest_result *res, int verified,
		       uint64_t src_sum, const char *error)
{
	printf("{\"source\":%s,\"destination\":%s,\"verified\":%s,\"dirty\":",
	       src && *src ? src : "null", res->have && res->text && *res->text ? res->text : "null",
	       verified ? "true" : "false");
	json_str(stdout, d->dirty_id);
	printf(",\"pages_written\":%" PRIu64, wl_pages_written(d->w));
	if (d->have_r1 && d->end_pages >= d->r1_pages) /* rounds 2..: wire bytes, pages */
		printf(",\"later_rounds\":{\"bytes\":%" PRIu64 ",\"pages\":%" PRIu64 "}",
		       d->end_bytes - d->r1_bytes, d->end_pages - d->r1_pages);
	printf(",\"round_log\":[");
	for (uint32_t i = 0; i < d->nlog; i++) {
		const round_entry *e = &d->log[i];
		printf("%s{\"round\":%u,\"t_ms\":%" PRIu64 ",\"remaining_bytes\":%" PRIu64
		       ",\"dirty_pages_rate\":%.0f,\"bandwidth_mbps\":%.2f,\"throttle_pct\":%u"
		       ",\"expected_downtime_ms\":%" PRIu64 "}",
		       i ? "," : "", e->round, e->t_ms, e->remaining_bytes, e->dirty_pages_rate,
		       e->bandwidth_mbps, e->throttle_pct, e->expected_downtime_ms);
	}
	printf("]");
	if (verified)
		printf(",\"checksum\":\"0x%016" PRIx64 "\"", src_sum);
	if (error) {
		printf(",\"error\":");
		json_str(stdout, error);
	}
	printf("}\n");
	fflush(stdout);
}
