#ifndef LM_STATS_H
#define LM_STATS_H

#include "livemig.h"

/* Fills the derived fields (normal_bytes, throughput, pages/s, ratio). */
void lm__stats_derive(lm_stats *st);

#endif
