/*
 * The checks of lm_sender_config and lm_receiver_config: each mistake gets
 * a message naming the field, its value and what is allowed, for the
 * handle's lm_*_errmsg() (lm_*_new() returns a handle in the failed state
 * on LM_EINVAL, so the message has somewhere to live).
 */
#ifndef LM_CONFIG_H
#define LM_CONFIG_H

#include "livemig.h"
#include "wire.h" /* lm__err */

/* c with the defaults applied (0 = default already replaced). */
int lm__sender_config_check(const lm_sender_config *c, lm__err *e);
int lm__receiver_config_check(const lm_receiver_config *c, lm__err *e);

#endif
