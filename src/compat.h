/*
 * compat.h - what livemig uses beyond ISO C and POSIX, in one place, each
 * with its fallback.
 *
 * Bit scans: GCC's and clang's builtins when the compiler has them (one
 * instruction on x86-64), else portable loops. The argument must not be 0
 * for lm__ctz64/lm__clz64 (as for the builtins).
 *
 * Linux-only by design (no fallback: livemig is a Linux program): the
 * userfaultfd and PAGEMAP_SCAN dirty tracking (src/uffd_compat.h),
 * madvise(MADV_POPULATE_WRITE, MADV_HUGEPAGE), fallocate, eventfd,
 * accept4 and SOCK_CLOEXEC/SOCK_NONBLOCK, MSG_NOSIGNAL, getrandom, prctl.
 * They are why CMakeLists.txt defines _GNU_SOURCE. Constants newer than the
 * kernel headers a build may use are defined below with the kernel's value
 * when missing; whether the running kernel has them is checked at run time
 * where it matters.
 *
 * glibc-only functions have a check in CMakeLists.txt (check_symbol_exists,
 * written to lm_config.h in the build directory) and a fallback where they
 * are used: strerrordesc_np (src/error.c).
 */
#ifndef LM_COMPAT_H
#define LM_COMPAT_H

#include <stdint.h>
#include <sys/mman.h>

#if defined(__GNUC__) || defined(__clang__)
#define LM__HAVE_BIT_BUILTINS 1
#else
#define LM__HAVE_BIT_BUILTINS 0
#endif

/* Trailing zero bits of x (x != 0). */
static inline unsigned lm__ctz64(uint64_t x)
{
#if LM__HAVE_BIT_BUILTINS
	return (unsigned)__builtin_ctzll(x);
#else
	unsigned n = 0;

	while (!(x & 1)) {
		x >>= 1;
		n++;
	}
	return n;
#endif
}

/* Leading zero bits of x (x != 0). */
static inline unsigned lm__clz64(uint64_t x)
{
#if LM__HAVE_BIT_BUILTINS
	return (unsigned)__builtin_clzll(x);
#else
	unsigned n = 0;

	while (!(x & (1ull << 63))) {
		x <<= 1;
		n++;
	}
	return n;
#endif
}

/* Set bits of x. */
static inline unsigned lm__popcount64(uint64_t x)
{
#if LM__HAVE_BIT_BUILTINS
	return (unsigned)__builtin_popcountll(x);
#else
	unsigned n = 0;

	for (; x; x &= x - 1)
		n++;
	return n;
#endif
}

/* madvise advice of Linux 5.14 (include/uapi/asm-generic/mman-common.h);
 * src/receiver/pages.c, tools/dest.c and tools/stream.c probe the kernel
 * for it. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Prefaulting a mapping is only an optimisation: without the flag the
 * pages fault in as they are read. */
#ifndef MAP_POPULATE
#define MAP_POPULATE 0
#endif

#endif
