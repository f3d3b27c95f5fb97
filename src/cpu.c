/* Run-time choice of SIMD code: see cpu.h. */
#include "cpu.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static unsigned detected; /* written once under detect_once, then read-only */

static void detect(void)
{
#if LM_CPU_X86
	/* The compiler's cpuid wrapper (libgcc or compiler-rt); init first:
	 * this may run before the runtime's own constructor did. */
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		detected |= LM_CPU_AVX2;
#endif
}

int lm__cpu_has(unsigned mask)
{
	(void)pthread_once(&detect_once, detect);
	return mask && (detected & mask) == mask;
}

static int runs_here(const lm__cpu_impl *impl)
{
	return impl->needs == 0 || lm__cpu_has(impl->needs);
}

const lm__cpu_impl *lm__cpu_pick(lm__cpu_site *site)
{
	const lm__cpu_impl *want = &site->impls[site->n - 1], *none = NULL;

	for (int i = 0; i < site->n; i++) {
		if (runs_here(&site->impls[i])) {
			want = &site->impls[i];
			break;
		}
	}
	/* From NULL only: a force that came first keeps its choice. */
	if (!atomic_compare_exchange_strong_explicit(&site->cur, &none, want, memory_order_acq_rel,
						     memory_order_acquire))
		return none;
	return want;
}

int lm__cpu_force(lm__cpu_site *site, const char *name)
{
	if (!name)
		return -ENOTSUP;
	for (int i = 0; i < site->n; i++) {
		const lm__cpu_impl *impl = &site->impls[i];

		if (strcmp(impl->name, name) != 0)
			continue;
		if (!runs_here(impl))
			return -ENOTSUP;
		atomic_store_explicit(&site->cur, impl, memory_order_release);
		return 0;
	}
	return -ENOTSUP;
}
