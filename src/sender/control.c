/*
 * Sender control from any thread while lm_sender_migrate() runs: "switch
 * over now", a new downtime limit, a new max bandwidth. Each call is one
 * atomic store of a request; the thread driving the sender takes the
 * requests at its next decision (live.c, after a round's sync) or its next
 * packet (dispatch.c, before pacing it), so no lock is shared with the
 * caller and the driving thread stays the only writer of what it owns.
 */
#include <stdint.h>

#include "sender/sender.h"

int lm_sender_switchover(lm_sender *s)
{
	if (!s)
		return LM_EINVAL;
	__atomic_store_n(&s->ctl_switchover, 1, __ATOMIC_SEQ_CST);
	return 0;
}

int lm_sender_set_downtime_limit(lm_sender *s, uint32_t ms)
{
	if (!s || !ms)
		return LM_EINVAL;
	__atomic_store_n(&s->ctl_downtime_ms, ms, __ATOMIC_SEQ_CST);
	return 0;
}

int lm_sender_set_max_bandwidth(lm_sender *s, uint64_t bytes_per_s)
{
	if (!s || bytes_per_s == LM__CTL_NONE)
		return LM_EINVAL;
	__atomic_store_n(&s->ctl_bandwidth, bytes_per_s, __ATOMIC_SEQ_CST);
	return 0;
}

void lm__sender_ctl_reset(lm_sender *s)
{
	__atomic_store_n(&s->ctl_switchover, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->ctl_downtime_ms, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->ctl_bandwidth, LM__CTL_NONE, __ATOMIC_SEQ_CST);
	s->rate_lifted = 0;
}

int lm__sender_ctl_switchover(lm_sender *s)
{
	return __atomic_load_n(&s->ctl_switchover, __ATOMIC_SEQ_CST);
}

uint32_t lm__sender_ctl_downtime(lm_sender *s)
{
	return __atomic_exchange_n(&s->ctl_downtime_ms, 0, __ATOMIC_SEQ_CST);
}

void lm__sender_ctl_rate(lm_sender *s)
{
	uint64_t want = __atomic_exchange_n(&s->ctl_bandwidth, LM__CTL_NONE, __ATOMIC_SEQ_CST);

	/* Paused: the rest goes unlimited whatever is asked (as QEMU). */
	if (want != LM__CTL_NONE && s->live && !s->rate_lifted)
		s->rate_limit = want;
}

void lm__sender_lift_rate(lm_sender *s)
{
	s->rate_limit = 0;
	s->rate_lifted = 1;
}
