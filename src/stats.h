#ifndef LM_STATS_H
#define LM_STATS_H

#include "livemig.h"

/* Fills the derived fields (normal_bytes, throughput, pages/s, ratio). */
void lm__stats_derive(lm_stats *st);
/* Sums a channel's per-engine counters into st, matching by name. */
void lm__stats_add_engines(lm_stats *st, const lm_engine_stats *eng);

#endif
