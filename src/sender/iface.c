/*
 * The internal interface live.c drives the sender through (sender.h): the
 * sender's shape, its regions, the skip set, the recheck of refs, the live
 * stats. live.c never touches struct lm_sender's fields, so what they mean
 * and who guards them stays in session.c, dispatch.c and channel.c.
 */
#include "sender/sender.h"

void lm__sender_get_shape(const lm_sender *s, lm__sender_shape *out)
{
	out->page_size = s->page_size;
	out->packet_pages = s->packet_pages;
	out->channels = s->nch;
	out->nregions = s->nregions;
	out->features = s->features;
}

int lm__sender_bad_config(const lm_sender *s)
{
	return s->bad_config;
}

void lm__sender_region(const lm_sender *s, uint32_t i, const uint8_t **base, uint64_t *len)
{
	*base = s->regions[i].base;
	*len = s->regions[i].len;
}

uint32_t lm__sender_round(const lm_sender *s)
{
	return s->round;
}

uint64_t lm__sender_wire_bytes(const lm_sender *s)
{
	return __atomic_load_n(&s->wire_bytes, __ATOMIC_RELAXED);
}

uint64_t lm__sender_chan_cpu_ns(const lm_sender *s)
{
	uint64_t ns = 0;

	for (uint32_t i = 0; s->ch && i < s->nch; i++)
		ns += __atomic_load_n(&s->ch[i].ctr.cpu_ns, __ATOMIC_RELAXED);
	return ns;
}

uint64_t lm__sender_sync_us(const lm_sender *s)
{
	return s->sync_us;
}

void lm__sender_set_skip(lm_sender *s, const uint64_t *const *skip, void (*refresh)(void *),
			 void *user)
{
	s->skip = skip;
	s->skip_refresh = refresh;
	s->skip_user = user;
	s->skip_t = lm__now_us();
}

uint64_t lm__sender_recheck_refs(lm_sender *s, int (*again)(void *, const lm__dep *), void *user)
{
	uint64_t n = 0;

	for (uint32_t c = 0; c < s->nch; c++) {
		lm__plan *pl = &s->ch[c].plan;
		for (uint64_t i = 0; i < pl->ndeps; i++)
			n += (uint64_t)again(user, &pl->deps[i]);
		pl->ndeps = 0;
	}
	s->refs_resent += n;
	return n;
}

void lm__sender_set_live_stats(lm_sender *s, const lm_stats *live)
{
	s->live_st = *live;
}

void lm__sender_set_rate(lm_sender *s, uint64_t bytes_per_s)
{
	s->rate_limit = bytes_per_s;
}

uint64_t lm__sender_rate(const lm_sender *s)
{
	return s->rate_limit;
}

void lm__sender_add_cpu(lm_sender *s, double secs)
{
	s->main_cpu += secs;
}

void lm__sender_rehash_all(lm_sender *s)
{
	for (uint32_t i = 0; i < s->nregions; i++)
		lm__sumtree_invalidate(&s->regions[i].sum);
}
