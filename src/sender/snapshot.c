/*
 * The sender's statistics: lm_sender_stats() from any thread, at any time.
 * Channel threads publish their counters under s->lock (lm__tx_publish) and
 * the driver publishes its own (lm__sender_publish); a snapshot reads only
 * what was published, under the same lock, so it never sees a counter half
 * updated nor time running past the session's end. A new stats field goes
 * in driver_part() (the driver's) or lm__tx_publish() (a channel's).
 */
#include <string.h>

#include "abi.h"
#include "codec/dedup.h"
#include "delta_cache.h"
#include "sender/sender.h"
#include "stats.h"

static void kinds_stats(const lm_sender *s, lm_stats *st)
{
	struct lm__dcache_stats c;
	lm__dedup_stats d;

	if (s->kinds.dcache) {
		lm__dcache_stats(s->kinds.dcache, &c);
		st->delta_cache_bytes = c.bytes;
	}
	if (!s->kinds.dedup)
		return;
	lm__dedup_get_stats(s->kinds.dedup, &d);
	st->dedup_index_bytes = d.bytes;
	st->dedup_entries = d.entries;
	st->dedup_collisions = d.collisions;
}

void lm__tx_publish(lm__tx_chan *ch)
{
	lm__tx_pub *p = &ch->pub;

	p->zero_pages = ch->zero_pages;
	p->normal_pages = ch->normal_pages;
	p->payload = ch->payload;
	p->packets = ch->packets;
	p->bytes_in = ch->conn.bytes_in;
	p->bytes_out = ch->conn.bytes_out;
	p->ref_pages = ch->plan.ref_pages;
	p->delta_pages = ch->plan.delta_pages;
	p->delta_bytes = ch->plan.delta_bytes;
	p->dcache_hits = ch->plan.dcache_hits;
	p->dcache_misses = ch->plan.dcache_misses;
	p->cpu = ch->cpu; /* 0 until the thread ended */
	memcpy(p->eng, ch->eng, sizeof(p->eng));
	memcpy(p->mix, ch->mix, sizeof(p->mix));
}

/* The driving thread's part of the stats: what no channel thread writes. */
static void driver_part(const lm_sender *s, lm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->status = s->status;
	st->channels = s->nch;
	st->page_size = s->page_size;
	st->codec = s->cfg.codec;
	st->rounds = s->round;
	for (uint32_t i = 0; i < s->nregions; i++)
		st->total_ram += s->regions[i].len;
	if (s->is_auto && s->ch) {
		st->auto_codec = (lm_codec_id)s->au.codec;
		st->auto_fraction = (double)s->au.frac / LM__AUTO_FRAC_ONE;
		st->auto_rest = (lm_codec_id)s->au.rest;
		st->auto_link_mbps = s->au.link * 8 / 1e6;
		st->auto_windows = s->au.windows;
	}
	st->cpu_seconds = s->main_cpu;
	kinds_stats(s, st);
	memcpy(st->tls, s->tls_suite, sizeof(st->tls));
	memcpy(st->peer, s->tls_peer, sizeof(st->peer));
	st->tls_resumed = s->tls_resumed;
	st->device_state_bytes = s->ds_bytes;
	st->device_state_us = s->ds_us;
	if (s->live) {
		const lm_stats *l = &s->live_st;
		st->live = 1;
		st->dirty_pages = l->dirty_pages;
		st->remaining_bytes = l->remaining_bytes;
		st->dirty_pages_rate = l->dirty_pages_rate;
		st->bandwidth_mbps = l->bandwidth_mbps;
		st->expected_downtime_ms = l->expected_downtime_ms;
		st->downtime_ms = l->downtime_ms;
		st->precopy_bytes = l->precopy_bytes;
		st->downtime_bytes = l->downtime_bytes;
		st->throttle_pct = l->throttle_pct;
		st->throttle_now_pct = l->throttle_now_pct;
		st->downtime_expected_ms = l->downtime_expected_ms;
		st->downtime_fixed_ms = l->downtime_fixed_ms;
		st->device_state_expected_bytes = l->device_state_expected_bytes;
		st->skipped_pages = s->skipped_pages;
		memcpy(st->dirty_source, l->dirty_source, sizeof(st->dirty_source));
		memcpy(st->dirty_note, l->dirty_note, sizeof(st->dirty_note));
	}
}

void lm__sender_publish(lm_sender *s, int channels_idle)
{
	lm_stats d;

	driver_part(s, &d); /* outside the lock: it reads only our own fields */
	pthread_mutex_lock(&s->lock);
	s->pub = d;
	s->pub_t_start = s->t_start;
	s->pub_t_setup = s->t_setup;
	s->pub_t_end = s->t_end;
	s->pub_ch = s->ch;
	s->pub_nch = s->ch ? s->nch : 0;
	for (uint32_t i = 0; channels_idle && i < s->pub_nch; i++)
		lm__tx_publish(&s->ch[i]);
	pthread_mutex_unlock(&s->lock);
}

/* Any thread: the last published parts, summed. The driving thread
 * publishes before each of its own reads (the progress callback, live.c's
 * byte counts) and as a run ends, so there it is exact; another thread sees
 * the channels as of their last packet and the rest as of the last packet
 * handed out or round ended. */
static void sender_stats(const lm_sender *s, lm_stats *st)
{
	pthread_mutex_t *lock;
	uint64_t end, t_start, t_setup;

	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	lock = (pthread_mutex_t *)&s->lock; /* the only mutable part of a const sender */
	pthread_mutex_lock(lock);
	*st = s->pub;
	t_start = s->pub_t_start;
	t_setup = s->pub_t_setup;
	end = s->pub_t_end ? s->pub_t_end : lm__now_us(); /* under the lock: see stamp() */
	for (uint32_t i = 0; i < s->pub_nch; i++) {
		const lm__tx_pub *p = &s->pub_ch[i].pub;
		st->transferred += p->bytes_in + p->bytes_out;
		st->duplicate_pages += p->zero_pages;
		st->normal_pages += p->normal_pages;
		st->payload_bytes += p->payload;
		st->packets += p->packets;
		st->cpu_seconds += p->cpu;
		st->ref_pages += p->ref_pages;
		st->delta_pages += p->delta_pages;
		st->delta_bytes += p->delta_bytes;
		st->delta_cache_hits += p->dcache_hits;
		st->delta_cache_misses += p->dcache_misses;
		lm__stats_add_engines(st, p->eng);
		for (int k = 0; k < LM_MAX_CODECS; k++) {
			st->codec_mix[k].packets += p->mix[k].packets;
			st->codec_mix[k].bytes_in += p->mix[k].bytes_in;
			st->codec_mix[k].bytes_out += p->mix[k].bytes_out;
		}
	}
	pthread_mutex_unlock(lock);
	if (t_start) {
		st->total_time_us = end - t_start;
		st->setup_time_us = (t_setup ? t_setup : end) - t_start;
	}
	lm__stats_derive(st);
}

int lm_sender_stats(const lm_sender *s, lm_stats *out)
{
	lm_stats full;

	if (!s || !out)
		return LM_EINVAL;
	sender_stats(s, &full);
	return lm__abi_out(out, &full, sizeof(full), LM__STATS_SIZE0);
}

