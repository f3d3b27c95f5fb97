/* Statistics: derived figures and the human / JSON renderings, modelled on
 * QEMU's `info migrate` so users of either read the same numbers. */
#include "abi.h"
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "livemig.h"

/* What a ref costs on the wire beyond the offset every page has. */
#define LM__REF_WIRE 16u

const char *lm_status_name(lm_status s)
{
	switch (s) {
	case LM_STATUS_NONE: return "none";
	case LM_STATUS_SETUP: return "setup";
	case LM_STATUS_ACTIVE: return "active";
	case LM_STATUS_COMPLETED: return "completed";
	case LM_STATUS_FAILED: return "failed";
	}
	return "unknown";
}

void lm__stats_add_engines(lm_stats *st, const lm_engine_stats *eng)
{
	for (int i = 0; i < LM_MAX_ENGINES && eng[i].name[0]; i++) {
		uint32_t k = 0;
		while (k < st->n_engines && strcmp(st->engines[k].name, eng[i].name))
			k++;
		if (k == LM_MAX_ENGINES)
			continue;
		if (k == st->n_engines) {
			memcpy(st->engines[k].name, eng[i].name, sizeof(eng[i].name));
			st->n_engines++;
		}
		st->engines[k].jobs += eng[i].jobs;
		st->engines[k].busy_retries += eng[i].busy_retries;
		st->engines[k].fallbacks += eng[i].fallbacks;
		st->engines[k].raw += eng[i].raw;
		st->engines[k].bytes_in += eng[i].bytes_in;
		st->engines[k].bytes_out += eng[i].bytes_out;
	}
}

void lm__stats_derive(lm_stats *st)
{
	double run = (double)(st->total_time_us - (st->setup_time_us < st->total_time_us
							   ? st->setup_time_us : st->total_time_us)) / 1e6;
	double total = (double)st->total_time_us / 1e6;

	st->normal_bytes = st->normal_pages * st->page_size;
	st->ref_saved_bytes = st->ref_pages * (st->page_size - LM__REF_WIRE);
	st->delta_saved_bytes = st->delta_pages * st->page_size > st->delta_bytes
					? st->delta_pages * st->page_size - st->delta_bytes : 0;
	st->delta_cache_hit_rate = (st->delta_cache_hits + st->delta_cache_misses)
					   ? (double)st->delta_cache_hits /
						     (double)(st->delta_cache_hits + st->delta_cache_misses)
					   : 0;
	st->throughput_mbps = run > 0 ? (double)st->transferred * 8 / run / 1e6 : 0;
	st->pages_per_second =
		total > 0 ? (double)(st->normal_pages + st->duplicate_pages) / total : 0;
	st->compression_ratio =
		st->payload_bytes ? (double)st->normal_bytes / (double)st->payload_bytes : 1.0;
}

static int format_main(const lm_stats *st, int format, char *buf, size_t cap);

/* Appends with snprintf semantics: *len counts what the full text needs. */
static void put(char *buf, size_t cap, int *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, int *len, const char *fmt, ...)
{
	size_t at = (size_t)*len < cap ? (size_t)*len : cap;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cap ? buf + at : NULL, cap - at, fmt, ap); /* NULL, 0: measure only */
	va_end(ap);
	if (n > 0)
		*len += n;
}

static void format_engines(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	for (uint32_t i = 0; i < st->n_engines; i++) {
		const lm_engine_stats *g = &st->engines[i];
		if (json)
			put(buf, cap, len,
			    "%s{\"name\":\"%s\",\"jobs\":%llu,\"busy_retries\":%llu,"
			    "\"fallbacks\":%llu,\"raw\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
			    i ? "," : "", g->name, (unsigned long long)g->jobs,
			    (unsigned long long)g->busy_retries, (unsigned long long)g->fallbacks,
			    (unsigned long long)g->raw, (unsigned long long)g->bytes_in,
			    (unsigned long long)g->bytes_out);
		else
			put(buf, cap, len,
			    "engine %s: jobs %llu, busy retries %llu, fallbacks %llu, raw pages %llu, "
			    "in %llu kbytes, out %llu kbytes\n",
			    g->name, (unsigned long long)g->jobs, (unsigned long long)g->busy_retries,
			    (unsigned long long)g->fallbacks, (unsigned long long)g->raw,
			    (unsigned long long)(g->bytes_in >> 10), (unsigned long long)(g->bytes_out >> 10));
	}
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF), 0 if there is none. */
static int utf8_len(const unsigned char *s)
{
	int n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	unsigned lo = 0x80, hi = 0xbf;

	if (!n || s[0] > 0xf4)
		return 0;
	if (s[0] == 0xe0) lo = 0xa0;
	if (s[0] == 0xed) hi = 0x9f;
	if (s[0] == 0xf0) lo = 0x90;
	if (s[0] == 0xf4) hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* A JSON string: quotes, backslashes, control bytes and DEL escaped; a
 * byte that is not valid UTF-8 becomes U+FFFD, so the output stays valid
 * JSON whatever a peer-supplied string holds. */
static void put_json_str(char *buf, size_t cap, int *len, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	put(buf, cap, len, "\"");
	while (*s) {
		unsigned char c = *s;
		int n = c >= 0x80 ? utf8_len(s) : 1;
		if (c == '"' || c == '\\')
			put(buf, cap, len, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			put(buf, cap, len, "\\u%04x", c);
		else if (c < 0x80 || n)
			put(buf, cap, len, "%.*s", n, (const char *)s);
		else
			put(buf, cap, len, "\\ufffd");
		s += n ? n : 1;
	}
	put(buf, cap, len, "\"");
}

/* Live migration's lines, named as in QEMU's `info migrate`. */
static void format_live(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	if (json) {
		put(buf, cap, len,
		    ",\"live\":true,\"dirty_pages\":%llu,\"remaining\":%llu,"
		    "\"dirty_pages_rate\":%.0f,\"bandwidth_mbps\":%.2f,"
		    "\"expected_downtime_ms\":%llu,\"downtime_ms\":%llu,\"precopy_bytes\":%llu,"
		    "\"downtime_bytes\":%llu,\"throttle_pct\":%u,\"skipped_pages\":%llu,"
		    "\"dirty_source\":\"%s\"",
		    (unsigned long long)st->dirty_pages, (unsigned long long)st->remaining_bytes,
		    st->dirty_pages_rate, st->bandwidth_mbps,
		    (unsigned long long)st->expected_downtime_ms, (unsigned long long)st->downtime_ms,
		    (unsigned long long)st->precopy_bytes, (unsigned long long)st->downtime_bytes,
		    st->throttle_pct, (unsigned long long)st->skipped_pages, st->dirty_source);
		put(buf, cap, len,
		    ",\"downtime_expected_ms\":%llu,\"downtime_fixed_ms\":%llu,\"throttle_now_pct\":%u,"
		    "\"device_state_expected_bytes\":%llu",
		    (unsigned long long)st->downtime_expected_ms,
		    (unsigned long long)st->downtime_fixed_ms, st->throttle_now_pct,
		    (unsigned long long)st->device_state_expected_bytes);
		put(buf, cap, len, ",\"dirty_note\":");
		put_json_str(buf, cap, len, st->dirty_note);
		return;
	}
	put(buf, cap, len,
	    "downtime: %llu ms\n"
	    "expected downtime: %llu ms\n"
	    "remaining: %llu kbytes\n"
	    "dirty pages rate: %.0f pages\n"
	    "bandwidth: %.2f mbps\n"
	    "transferred before downtime: %llu kbytes\n"
	    "transferred in downtime: %llu kbytes\n"
	    "cpu throttle percentage: %u\n"
	    "skipped pages: %llu\n"
	    "dirty tracking: %s%s%s%s\n",
	    (unsigned long long)st->downtime_ms, (unsigned long long)st->expected_downtime_ms,
	    (unsigned long long)(st->remaining_bytes >> 10), st->dirty_pages_rate,
	    st->bandwidth_mbps, (unsigned long long)(st->precopy_bytes >> 10),
	    (unsigned long long)(st->downtime_bytes >> 10), st->throttle_pct,
	    (unsigned long long)st->skipped_pages, st->dirty_source,
	    st->dirty_note[0] ? " (" : "", st->dirty_note, st->dirty_note[0] ? ")" : "");
	put(buf, cap, len,
	    "downtime expected at switchover: %llu ms (fixed costs %llu ms)\n"
	    "cpu throttle now: %u\n",
	    (unsigned long long)st->downtime_expected_ms, (unsigned long long)st->downtime_fixed_ms,
	    st->throttle_now_pct);
	if (st->device_state_expected_bytes)
		put(buf, cap, len, "device state expected: %llu bytes\n",
		    (unsigned long long)st->device_state_expected_bytes);
}

/* Ref and delta pages: what they saved, what they cost. */
static void format_kinds(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	if (json) {
		put(buf, cap, len,
		    ",\"ref_pages\":%llu,\"ref_saved_bytes\":%llu,\"delta_pages\":%llu,"
		    "\"delta_bytes\":%llu,\"delta_saved_bytes\":%llu,\"dedup_index_bytes\":%llu,"
		    "\"dedup_entries\":%llu,\"dedup_collisions\":%llu,\"delta_cache_bytes\":%llu,"
		    "\"delta_cache_hits\":%llu,\"delta_cache_misses\":%llu,"
		    "\"delta_cache_hit_rate\":%.3f",
		    (unsigned long long)st->ref_pages, (unsigned long long)st->ref_saved_bytes,
		    (unsigned long long)st->delta_pages, (unsigned long long)st->delta_bytes,
		    (unsigned long long)st->delta_saved_bytes,
		    (unsigned long long)st->dedup_index_bytes, (unsigned long long)st->dedup_entries,
		    (unsigned long long)st->dedup_collisions,
		    (unsigned long long)st->delta_cache_bytes,
		    (unsigned long long)st->delta_cache_hits,
		    (unsigned long long)st->delta_cache_misses, st->delta_cache_hit_rate);
		return;
	}
	put(buf, cap, len, "ref: %llu pages (saved %llu kbytes)\n", (unsigned long long)st->ref_pages,
	    (unsigned long long)(st->ref_saved_bytes >> 10));
	if (st->dedup_index_bytes)
		put(buf, cap, len, "dedup index: %llu entries, %llu kbytes, %llu collisions\n",
		    (unsigned long long)st->dedup_entries,
		    (unsigned long long)(st->dedup_index_bytes >> 10),
		    (unsigned long long)st->dedup_collisions);
	put(buf, cap, len, "delta: %llu pages, %llu kbytes (saved %llu kbytes)\n",
	    (unsigned long long)st->delta_pages, (unsigned long long)(st->delta_bytes >> 10),
	    (unsigned long long)(st->delta_saved_bytes >> 10));
	if (st->delta_cache_bytes)
		put(buf, cap, len, "delta cache: %llu kbytes, %llu hits, %llu misses (%.1f%%)\n",
		    (unsigned long long)(st->delta_cache_bytes >> 10),
		    (unsigned long long)st->delta_cache_hits,
		    (unsigned long long)st->delta_cache_misses, st->delta_cache_hit_rate * 100);
}

/* Human sizes for the mix line: 1.2 GiB, 340.0 MiB, 12.0 KiB. */
static void put_size(char *buf, size_t cap, int *len, uint64_t b)
{
	static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u)
		put(buf, cap, len, "%.1f %s", v, unit[u]);
	else
		put(buf, cap, len, "%llu bytes", (unsigned long long)b);
}

/* Codec ids by decreasing share of the page bytes (packets if none had
 * any); returns how many have packets. */
static int mix_order(const lm_stats *st, int *ord, uint64_t *total)
{
	int n = 0;

	*total = 0;
	for (int c = 0; c < LM_MAX_CODECS; c++)
		*total += st->codec_mix[c].bytes_in;
	for (int c = 0; c < LM_MAX_CODECS; c++) {
		int k = n;
		if (!st->codec_mix[c].packets)
			continue;
		n++;
		while (k && (*total ? st->codec_mix[ord[k - 1]].bytes_in < st->codec_mix[c].bytes_in
				    : st->codec_mix[ord[k - 1]].packets < st->codec_mix[c].packets)) {
			ord[k] = ord[k - 1];
			k--;
		}
		ord[k] = c;
	}
	return n;
}

static const char *codec_label(int id)
{
	const char *n = lm_codec_name((lm_codec_id)id);

	return n ? n : "?";
}

/* Which codecs the packets went with (per codec: packets, page bytes in,
 * payload bytes out), and codec auto's last decision. */
static void format_mix(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	int ord[LM_MAX_CODECS], n;
	uint64_t total;

	n = mix_order(st, ord, &total);
	if (json) {
		put(buf, cap, len, ",\"codec_mix\":{");
		for (int i = 0; i < n; i++) {
			const lm_codec_mix *m = &st->codec_mix[ord[i]];
			put(buf, cap, len, "%s\"%s\":{\"packets\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
			    i ? "," : "", codec_label(ord[i]), (unsigned long long)m->packets,
			    (unsigned long long)m->bytes_in, (unsigned long long)m->bytes_out);
		}
		put(buf, cap, len, "}");
		if (st->codec == LM_CODEC_AUTO && !st->is_receiver)
			put(buf, cap, len,
			    ",\"auto\":{\"codec\":\"%s\",\"fraction\":%.3f,\"rest\":\"%s\","
			    "\"link_mbps\":%.1f,\"windows\":%llu}",
			    codec_label(st->auto_codec), st->auto_fraction,
			    codec_label(st->auto_rest), st->auto_link_mbps,
			    (unsigned long long)st->auto_windows);
		return;
	}
	if (n) {
		put(buf, cap, len, "codec mix: ");
		for (int i = 0; i < n; i++) {
			const lm_codec_mix *m = &st->codec_mix[ord[i]];
			double share = total ? 100.0 * (double)m->bytes_in / (double)total : 0;
			put(buf, cap, len, "%s%s %.0f%% (%llu packets, ", i ? ", " : "",
			    codec_label(ord[i]), share, (unsigned long long)m->packets);
			put_size(buf, cap, len, m->bytes_in);
			put(buf, cap, len, " -> ");
			put_size(buf, cap, len, m->bytes_out);
			put(buf, cap, len, ")");
		}
		put(buf, cap, len, "\n");
	}
	if (st->codec == LM_CODEC_AUTO && !st->is_receiver)
		put(buf, cap, len,
		    "codec auto: last %s on %.0f%% of the packets, the rest %s, link estimate "
		    "%.0f Mbit/s, %llu decisions\n",
		    codec_label(st->auto_codec), st->auto_fraction * 100,
		    st->auto_rest ? codec_label(st->auto_rest) : "raw", st->auto_link_mbps,
		    (unsigned long long)st->auto_windows);
}

int lm_stats_mix_line(const lm_stats *st, char *buf, size_t cap)
{
	int ord[LM_MAX_CODECS], n, len = 0;
	uint64_t total;
	lm_stats own; /* the caller's, at this library's size */

	if (cap)
		buf[0] = 0;
	if (lm__abi_in(&own, sizeof(own), st, LM__STATS_SIZE0, NULL, 0))
		return LM_EABI;
	st = &own;
	n = mix_order(st, ord, &total);
	for (int i = 0; i < n; i++) {
		const lm_codec_mix *m = &st->codec_mix[ord[i]];
		put(buf, cap, &len, "%s%s %.0f%%", i ? " " : "", codec_label(ord[i]),
		    total ? 100.0 * (double)m->bytes_in / (double)total : 100.0 / n);
	}
	return len;
}

/* The application's device state: its bytes, and on the sender the time it
 * took (in a live migration, part of the downtime). */
static void format_devstate(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	if (json) {
		put(buf, cap, len, ",\"device_state_bytes\":%llu,\"device_state_ms\":%.3f",
		    (unsigned long long)st->device_state_bytes, st->device_state_us / 1e3);
		return;
	}
	if (!st->device_state_bytes && !st->device_state_us)
		return;
	if (st->is_receiver)
		put(buf, cap, len, "device state: %llu bytes\n",
		    (unsigned long long)st->device_state_bytes);
	else
		put(buf, cap, len, "device state: %llu bytes in %.1f ms\n",
		    (unsigned long long)st->device_state_bytes, st->device_state_us / 1e3);
}

/* The channel's protection, and who the peer proved to be. */
static void format_security(const lm_stats *st, int json, char *buf, size_t cap, int *len)
{
	if (json) {
		put(buf, cap, len, ",\"tls\":");
		put_json_str(buf, cap, len, st->tls);
		put(buf, cap, len, ",\"peer\":");
		put_json_str(buf, cap, len, st->peer);
		put(buf, cap, len, ",\"tls_resumed\":%u,\"refused\":%llu", st->tls_resumed,
		    (unsigned long long)st->refused);
		return;
	}
	if (st->tls[0])
		put(buf, cap, len, "security: %s, peer %s, %u of %u channels resumed\n", st->tls,
		    st->peer, st->tls_resumed, st->channels ? st->channels - 1 : 0);
	else
		put(buf, cap, len, "security: plaintext (not encrypted, not authenticated)\n");
	if (st->refused)
		put(buf, cap, len, "refused connections: %llu\n", (unsigned long long)st->refused);
}

int lm_stats_format(const lm_stats *st, int format, char *buf, size_t cap)
{
	int len;
	lm_stats own; /* the caller's, at this library's size */

	if (cap)
		buf[0] = 0;
	if (lm__abi_in(&own, sizeof(own), st, LM__STATS_SIZE0, NULL, 0))
		return LM_EABI;
	st = &own;
	len = format_main(st, format, buf, cap);
	if (format == LM_STATS_JSON) {
		len--; /* reopen the object: drop its closing brace */
		if (st->live)
			format_live(st, 1, buf, cap, &len);
		format_kinds(st, 1, buf, cap, &len);
		format_mix(st, 1, buf, cap, &len);
		format_devstate(st, 1, buf, cap, &len);
		format_security(st, 1, buf, cap, &len);
		put(buf, cap, &len, ",\"engines\":[");
		format_engines(st, 1, buf, cap, &len);
		put(buf, cap, &len, "]}");
	} else {
		if (st->live)
			format_live(st, 0, buf, cap, &len);
		format_kinds(st, 0, buf, cap, &len);
		format_mix(st, 0, buf, cap, &len);
		format_devstate(st, 0, buf, cap, &len);
		format_security(st, 0, buf, cap, &len);
		format_engines(st, 0, buf, cap, &len);
	}
	return len;
}

static int format_main(const lm_stats *st, int format, char *buf, size_t cap)
{
	const char *codec = lm_codec_name(st->codec);

	if (!codec)
		codec = "?";
	if (format == LM_STATS_JSON)
		return snprintf(buf, cap,
				"{\"side\":\"%s\",\"status\":\"%s\",\"channels\":%u,\"page_size\":%u,"
				"\"codec\":\"%s\",\"total_time_ms\":%.3f,\"setup_time_ms\":%.3f,"
				"\"transferred\":%llu,\"total_ram\":%llu,\"duplicate\":%llu,"
				"\"normal\":%llu,\"normal_bytes\":%llu,\"payload_bytes\":%llu,"
				"\"packets\":%llu,\"throughput_mbps\":%.2f,\"pages_per_second\":%.0f,"
				"\"compression_ratio\":%.3f,\"cpu_seconds\":%.3f,\"rounds\":%u}",
				st->is_receiver ? "receiver" : "sender", lm_status_name(st->status),
				st->channels, st->page_size, codec, st->total_time_us / 1e3,
				st->setup_time_us / 1e3, (unsigned long long)st->transferred,
				(unsigned long long)st->total_ram, (unsigned long long)st->duplicate_pages,
				(unsigned long long)st->normal_pages, (unsigned long long)st->normal_bytes,
				(unsigned long long)st->payload_bytes, (unsigned long long)st->packets,
				st->throughput_mbps, st->pages_per_second, st->compression_ratio,
				st->cpu_seconds, st->rounds);
	return snprintf(buf, cap,
			"%s status: %s\n"
			"channels: %u   page size: %u   codec: %s\n"
			"total time: %.0f ms\n"
			"setup: %.0f ms\n"
			"transferred: %llu kbytes\n"
			"throughput: %.2f mbps\n"
			"total ram: %llu kbytes\n"
			"duplicate: %llu pages\n"
			"normal: %llu pages\n"
			"normal bytes: %llu kbytes\n"
			"pages-per-second: %.0f\n"
			"compression ratio: %.2f\n"
			"dirty sync count: %u\n"
			"cpu: %.2f s\n",
			st->is_receiver ? "receiver" : "sender", lm_status_name(st->status), st->channels,
			st->page_size, codec, st->total_time_us / 1e3, st->setup_time_us / 1e3,
			(unsigned long long)(st->transferred >> 10), st->throughput_mbps,
			(unsigned long long)(st->total_ram >> 10), (unsigned long long)st->duplicate_pages,
			(unsigned long long)st->normal_pages, (unsigned long long)(st->normal_bytes >> 10),
			st->pages_per_second, st->compression_ratio, st->rounds, st->cpu_seconds);
}
