/*
 * ThreadSanitizer annotations for the races livemig has by contract, on
 * memory that is not its own; no-ops in every other build. They name
 * memory, never code, so a race on livemig's own state is still reported.
 */
#ifndef LM_TSAN_H
#define LM_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define LM__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LM__TSAN 1
#endif
#endif

#ifdef LM__TSAN
/* The TSan runtime's dynamic annotations (no header declares them). */
void AnnotateBenignRaceSized(const char *file, int line, const volatile void *mem,
			     unsigned long size, const char *desc);
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
/* Races on [p, p + n) are expected: not reported, for the process's life. */
#define lm__tsan_benign(p, n, why) \
	AnnotateBenignRaceSized(__FILE__, __LINE__, (p), (unsigned long)(n), (why))
/* This thread's reads between the two are not checked (tests peeking). */
#define lm__tsan_ignore_reads_begin() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define lm__tsan_ignore_reads_end() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define lm__tsan_benign(p, n, why) ((void)(p), (void)(n), (void)(why))
#define lm__tsan_ignore_reads_begin() ((void)0)
#define lm__tsan_ignore_reads_end() ((void)0)
#endif

#endif
