/* Statistics: derived figures and the human / JSON renderings, modelled on
 * QEMU's `info migrate` so users of either read the same numbers. */
#include "stats.h"

#include <stdio.h>

#include "livemig.h"

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

void lm__stats_derive(lm_stats *st)
{
	double run = (double)(st->total_time_us - (st->setup_time_us < st->total_time_us
							   ? st->setup_time_us : st->total_time_us)) / 1e6;
	double total = (double)st->total_time_us / 1e6;

	st->normal_bytes = st->normal_pages * st->page_size;
	st->throughput_mbps = run > 0 ? (double)st->transferred * 8 / run / 1e6 : 0;
	st->pages_per_second =
		total > 0 ? (double)(st->normal_pages + st->duplicate_pages) / total : 0;
	st->compression_ratio =
		st->payload_bytes ? (double)st->normal_bytes / (double)st->payload_bytes : 1.0;
}

int lm_stats_format(const lm_stats *st, int format, char *buf, size_t cap)
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
