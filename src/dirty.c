/*
 * dirty.c - dirty-page tracking (see dirty.h).
 *
 * uffd-wp source. One userfaultfd in asynchronous write-protect mode
 * (UFFD_FEATURE_WP_ASYNC): a write to a protected page is resolved by the
 * kernel itself, which only clears the page's uffd-wp bit, so there is no
 * fault message and no handler thread, and the workload never stops. A page
 * whose bit is clear is a written page. PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING reads those pages and protects them again in one pass,
 * under the page table lock, so a write racing a sync is reported either by
 * this sync or by the next one, never lost. UFFD_FEATURE_WP_UNPOPULATED
 * makes the kernel protect pages that were never touched too (with pte
 * markers), so a first write to fresh memory is caught like any other.
 *
 * The kernel works in system pages, with ranges aligned to them; regions
 * are any bytes. Each region's range is rounded out to system pages and
 * overlapping or touching ranges are merged into spans: a span is
 * registered and scanned as one, because two regions that share a system
 * page must not scan it separately (the first scan would re-protect it and
 * the second would miss the write). Every range a scan reports is then
 * handed to every region it overlaps, as bits of migration pages
 * (page_size, which may be larger or smaller than the system page).
 *
 * Callback source: the application's lm_dirty_log_cb, KVM_GET_DIRTY_LOG
 * style, called once per region per sync into a scratch bitmap.
 *
 * What uffd-wp sees is this process's page tables. Writes through them are
 * caught wherever they come from: the workload's threads, and the kernel
 * on its behalf (read(2) into a region). Writes that bypass them are not:
 * device DMA into pinned pages, another process writing shared memory
 * (shmem, memfd), write(2) to the file behind a MAP_SHARED file mapping.
 * WP async accepts any kind of memory (Linux 6.7 dropped the anonymous,
 * shmem and hugetlb restriction for it), so such regions register fine;
 * keeping their other writers away is the application's business.
 */
#include "dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "uffd_compat.h"

#define LM_DIRTY_FEATURES ((__u64)(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED))
#define LM_DIRTY_VEC 512 /* page_regions per PAGEMAP_SCAN call */

enum { DIRTY_READY, DIRTY_ARMED, DIRTY_STOPPED };

/* A merged, system-page aligned range: registered and scanned as one. Its
 * regions are order[first .. first + count), sorted by base. */
typedef struct dirty_span {
	uint64_t start, end;
	uint32_t first, count;
} dirty_span;

struct lm__dirty {
	lm_dirty_source kind; /* LM_DIRTY_UFFD_WP or LM_DIRTY_CALLBACK */
	int state;
	uint32_t n;
	uint32_t page_size;
	lm__dirty_region *regions;
	/* callback */
	lm_dirty_log_cb cb;
	void *user;
	uint64_t *scratch; /* words of the largest region */
	/* uffd-wp */
	int uffd;
	int pagemap;
	uint32_t nspans;
	dirty_span *spans;
	uint32_t *order;
	struct page_region *vec;
};

/* ---- small helpers ---------------------------------------------------------- */

/* "EPERM" rather than "Operation not permitted": the reasons name the
 * errno a reader would look up in the man page. */
static const char *errname(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return strerror(err);
	}
}

static void why_set(char *why, size_t cap, const char *msg)
{
	if (why && cap)
		snprintf(why, cap, "%s", msg);
}

static uint64_t sys_page_size(void)
{
	long v = sysconf(_SC_PAGESIZE);

	return v > 0 ? (uint64_t)v : 4096;
}

/* Sets bits first..last (inclusive) of map. */
static void bits_set(uint64_t *map, uint64_t first, uint64_t last)
{
	uint64_t w0 = first / 64, w1 = last / 64;
	uint64_t m0 = ~0ull << (first % 64);
	uint64_t m1 = ~0ull >> (63 - last % 64);

	if (w0 == w1) {
		map[w0] |= m0 & m1;
		return;
	}
	map[w0] |= m0;
	for (uint64_t w = w0 + 1; w < w1; w++)
		map[w] = ~0ull;
	map[w1] |= m1;
}

static uint64_t popcount(const uint64_t *map, uint64_t words)
{
	uint64_t c = 0;

	for (uint64_t w = 0; w < words; w++)
		c += lm__popcount64(map[w]);
	return c;
}

/* ---- userfaultfd ------------------------------------------------------------- */

/* A userfaultfd. User-mode-only first: it is allowed whatever
 * vm.unprivileged_userfaultfd says, and it loses nothing here, because
 * async write faults are resolved before the mode matters (kernel-mode
 * writes such as read(2) into a region are tracked too). Kernels before
 * 5.11 reject the flag with EINVAL; they lack WP_ASYNC anyway, but asking
 * again without it gives the more telling error. */
static int uffd_open(void)
{
#ifdef SYS_userfaultfd
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0 && errno == EINVAL)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : (int)fd;
#else
	return -ENOSYS;
#endif
}

static int uffd_open_reason(int err, char *why, size_t cap)
{
	char buf[160];

	if (err == -ENOSYS) {
		why_set(why, cap, "userfaultfd: ENOSYS (kernel built without CONFIG_USERFAULTFD)");
		return LM_EFEATURE;
	}
	if (err == -EPERM) {
		/* Not the sysctl when user-mode-only was accepted as a flag:
		 * then a seccomp profile (containers' default one) or an LSM. */
		why_set(why, cap, "userfaultfd: EPERM (vm.unprivileged_userfaultfd=0? or a "
				  "seccomp/LSM policy, such as a container's)");
		return err;
	}
	snprintf(buf, sizeof(buf), "userfaultfd: %s", errname(-err));
	why_set(why, cap, buf);
	return err;
}

/* The features a fresh userfaultfd offers (UFFDIO_API with none asked
 * reports them all), or 0. Only used to explain a refusal. */
static __u64 uffd_offered(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = uffd_open();
	__u64 got = 0;

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api) == 0)
		got = api.features;
	close(fd);
	return got;
}

/* Opens the tracker's userfaultfd with WP_ASYNC | WP_UNPOPULATED. The
 * kernel refuses unknown features with EINVAL; it also drops the WP
 * features on architectures whose page tables have no uffd-wp bit, so the
 * returned features are checked as well. */
static int uffd_open_wp(int *out, char *why, size_t cap)
{
	struct uffdio_api api = {.api = UFFD_API, .features = LM_DIRTY_FEATURES};
	char buf[200];
	int fd = uffd_open();
	int err;

	if (fd < 0)
		return uffd_open_reason(fd, why, cap);
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = errno;
		close(fd);
		if (err != EINVAL) {
			snprintf(buf, sizeof(buf), "UFFDIO_API: %s", errname(err));
			why_set(why, cap, buf);
			return -err;
		}
		api.features = uffd_offered();
	} else if ((api.features & LM_DIRTY_FEATURES) == LM_DIRTY_FEATURES) {
		*out = fd;
		return 0;
	} else {
		close(fd);
	}
	if (!(api.features & UFFD_FEATURE_WP_ASYNC))
		why_set(why, cap, "kernel lacks UFFD_FEATURE_WP_ASYNC (needs Linux 6.7 and "
				  "uffd-wp support on this architecture)");
	else
		why_set(why, cap, "kernel lacks UFFD_FEATURE_WP_UNPOPULATED (needs Linux 6.4)");
	return LM_EFEATURE;
}

static int pagemap_open(char *why, size_t cap)
{
	char buf[160];
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int err = errno;

	if (fd >= 0)
		return fd;
	snprintf(buf, sizeof(buf), "open /proc/self/pagemap: %s (is /proc mounted?)",
		 errname(err));
	why_set(why, cap, buf);
	return -err;
}

/* One PAGEMAP_SCAN call over [a->start, a->end): pages written since they
 * were last protected, protected again. Returns the page_regions filled
 * (a->walk_end says how far it got) or -errno. */
static int scan_once(int pagemap, struct pm_scan_arg *a)
{
	int rc;

	do
		rc = ioctl(pagemap, PAGEMAP_SCAN, a);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

static void scan_arg_init(struct pm_scan_arg *a, uint64_t start, uint64_t end,
			  struct page_region *vec, uint64_t vec_len)
{
	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	/* CHECK_WPASYNC: a part of the range that lost its registration (the
	 * workload remapped it) fails the scan instead of being skipped,
	 * which would silently lose its writes. */
	a->flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	a->start = start;
	a->end = end;
	a->vec = (uintptr_t)vec;
	a->vec_len = vec_len;
	a->category_mask = PAGE_IS_WRITTEN;
	a->return_mask = PAGE_IS_WRITTEN;
}

static int scan_reason(int err, char *why, size_t cap)
{
	char buf[160];

	if (err == -ENOTTY || err == -EOPNOTSUPP) {
		snprintf(buf, sizeof(buf), "PAGEMAP_SCAN not supported (%s, needs Linux 6.7)",
			 errname(-err));
		why_set(why, cap, buf);
		return LM_EFEATURE;
	}
	snprintf(buf, sizeof(buf), "PAGEMAP_SCAN: %s", errname(-err));
	why_set(why, cap, buf);
	return err;
}

/* ---- probe ---------------------------------------------------------------- */

/* Arms a small private mapping, writes one page and checks that exactly
 * that page comes back: the whole path the tracker uses, end to end. */
static int probe_area(int uffd, int pagemap, char *why, size_t cap)
{
	uint64_t ps = sys_page_size(), len = 4 * ps;
	struct uffdio_register reg;
	struct page_region vec[4];
	struct pm_scan_arg a;
	char buf[160];
	uint8_t *p;
	int rc;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		why_set(why, cap, "mmap of the probe area failed");
		return rc;
	}
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		int err = errno;

		rc = err == EINVAL ? LM_EFEATURE : -err;
		snprintf(buf, sizeof(buf), "UFFDIO_REGISTER(MODE_WP) of anonymous memory: %s",
			 errname(err));
		why_set(why, cap, buf);
		goto cleanup;
	}
	scan_arg_init(&a, (uintptr_t)p, (uintptr_t)p + len, vec, 4);
	rc = scan_once(pagemap, &a); /* arms */
	if (rc < 0) {
		rc = scan_reason(rc, why, cap);
		goto cleanup;
	}
	p[2 * ps] = 1;
	scan_arg_init(&a, (uintptr_t)p, (uintptr_t)p + len, vec, 4);
	rc = scan_once(pagemap, &a);
	if (rc < 0) {
		rc = scan_reason(rc, why, cap);
		goto cleanup;
	}
	if (rc != 1 || vec[0].start != (uintptr_t)p + 2 * ps ||
	    vec[0].end != (uintptr_t)p + 3 * ps) {
		why_set(why, cap, "PAGEMAP_SCAN did not report exactly the page written "
				  "(uffd-wp async does not work on this kernel)");
		rc = LM_EFEATURE;
		goto cleanup;
	}
	rc = 0;
cleanup:
	munmap(p, len); /* drops the registration with the mapping */
	return rc;
}

int lm_dirty_probe(char *why, size_t cap)
{
	int uffd = -1, pagemap = -1;
	int rc;

	/* Nothing is cached: the answer depends on sysctls and the LSM policy,
	 * which may change, and a probe costs a few system calls. */
	rc = uffd_open_wp(&uffd, why, cap);
	if (rc < 0)
		return rc;
	pagemap = pagemap_open(why, cap);
	if (pagemap < 0) {
		rc = pagemap;
		goto cleanup;
	}
	rc = probe_area(uffd, pagemap, why, cap);
	if (rc == 0)
		why_set(why, cap, "");
cleanup:
	if (pagemap >= 0)
		close(pagemap);
	close(uffd);
	return rc;
}

/* ---- uffd-wp tracker ---------------------------------------------------------- */

typedef struct span_key {
	uint64_t start, end;
	uint32_t idx;
} span_key;

static int key_cmp(const void *a, const void *b)
{
	const span_key *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Builds d->order and d->spans from the regions (zero-length ones take no
 * part). Region bounds were checked against overflow by the caller. */
static int spans_build(lm__dirty *d, lm__err *e)
{
	uint64_t ps = sys_page_size();
	span_key *keys;
	uint32_t nk = 0;

	keys = calloc(d->n ? d->n : 1, sizeof(*keys));
	d->order = calloc(d->n ? d->n : 1, sizeof(*d->order));
	d->spans = calloc(d->n ? d->n : 1, sizeof(*d->spans));
	if (!keys || !d->order || !d->spans) {
		free(keys);
		lm__err_set(e, "dirty tracker: out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < d->n; i++) {
		uint64_t b = (uintptr_t)d->regions[i].base;

		if (!d->regions[i].len)
			continue;
		keys[nk].start = b & ~(ps - 1);
		keys[nk].end = (b + d->regions[i].len + ps - 1) & ~(ps - 1);
		keys[nk].idx = i;
		nk++;
	}
	qsort(keys, nk, sizeof(*keys), key_cmp);
	for (uint32_t k = 0; k < nk; k++) {
		dirty_span *s = d->nspans ? &d->spans[d->nspans - 1] : NULL;

		d->order[k] = keys[k].idx;
		/* Touching spans merge too: fewer ioctls, same pages. */
		if (s && keys[k].start <= s->end) {
			if (keys[k].end > s->end)
				s->end = keys[k].end;
			s->count++;
			continue;
		}
		s = &d->spans[d->nspans++];
		s->start = keys[k].start;
		s->end = keys[k].end;
		s->first = k;
		s->count = 1;
	}
	free(keys);
	return 0;
}

static void spans_unregister(lm__dirty *d, uint32_t upto)
{
	for (uint32_t k = 0; k < upto; k++) {
		struct uffdio_range r = {.start = d->spans[k].start,
					 .len = d->spans[k].end - d->spans[k].start};

		/* Fails only if the workload unmapped the memory meanwhile,
		 * which took the registration with it. */
		(void)ioctl(d->uffd, UFFDIO_UNREGISTER, &r);
	}
}

/* Registers every span for write-protect. On failure nothing stays
 * registered and the reason names the first region of the span. */
static int spans_register(lm__dirty *d, lm__err *e)
{
	for (uint32_t k = 0; k < d->nspans; k++) {
		const dirty_span *s = &d->spans[k];
		struct uffdio_register reg;
		int err;

		memset(&reg, 0, sizeof(reg));
		reg.range.start = s->start;
		reg.range.len = s->end - s->start;
		reg.mode = UFFDIO_REGISTER_MODE_WP;
		if (ioctl(d->uffd, UFFDIO_REGISTER, &reg) == 0)
			continue;
		err = errno;
		spans_unregister(d, k);
		/* EINVAL: memory userfaultfd refuses (MAP_DROPPABLE, VM_IO
		 * mappings); EBUSY: another userfaultfd has it (a postcopy,
		 * another tracker); ENOMEM: part of it is not mapped. */
		lm__err_set(e, "region %u: UFFDIO_REGISTER(MODE_WP): %s%s", d->order[s->first],
			    errname(err),
			    err == EINVAL   ? " (memory userfaultfd cannot write-protect)"
			    : err == EBUSY  ? " (another userfaultfd owns it)"
			    : err == ENOMEM ? " (not mapped?)"
					    : "");
		return LM_EFEATURE;
	}
	return 0;
}

static void uffd_close(lm__dirty *d)
{
	if (d->uffd >= 0) {
		spans_unregister(d, d->nspans);
		close(d->uffd);
		d->uffd = -1;
	}
	if (d->pagemap >= 0) {
		close(d->pagemap);
		d->pagemap = -1;
	}
}

/* Opens the userfaultfd and pagemap and registers the regions. */
static int uffd_setup(lm__dirty *d, lm__err *e)
{
	char why[sizeof(e->msg)];
	int rc;

	d->vec = calloc(LM_DIRTY_VEC, sizeof(*d->vec));
	if (!d->vec) {
		lm__err_set(e, "dirty tracker: out of memory");
		return -ENOMEM;
	}
	rc = spans_build(d, e);
	if (rc < 0)
		return rc;
	rc = uffd_open_wp(&d->uffd, why, sizeof(why));
	if (rc == 0) {
		d->pagemap = pagemap_open(why, sizeof(why));
		rc = d->pagemap < 0 ? d->pagemap : 0;
	}
	if (rc < 0) {
		lm__err_set(e, "%s", why);
		goto fail;
	}
	rc = spans_register(d, e);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	/* spans_register() left nothing registered. */
	if (d->uffd >= 0)
		close(d->uffd);
	if (d->pagemap >= 0)
		close(d->pagemap);
	d->uffd = d->pagemap = -1;
	return rc;
}

/* The region at the scan position pos in span s, for error messages. */
static uint32_t span_region_at(const lm__dirty *d, const dirty_span *s, uint64_t pos)
{
	uint32_t best = d->order[s->first];

	for (uint32_t k = s->first; k < s->first + s->count; k++) {
		const lm__dirty_region *r = &d->regions[d->order[k]];

		if ((uintptr_t)r->base > pos)
			break;
		best = d->order[k];
	}
	return best;
}

/* Marks [start, end) in the bitmap of every region of span s it overlaps,
 * as the migration pages (relative to each region's base) that it touches:
 * an unaligned region gets both pages a system page straddles. */
static void span_mark(const lm__dirty *d, const dirty_span *s, uint64_t start, uint64_t end,
		      uint64_t *const *bitmap)
{
	for (uint32_t k = s->first; k < s->first + s->count; k++) {
		uint32_t i = d->order[k];
		uint64_t rb = (uintptr_t)d->regions[i].base;
		uint64_t re = rb + d->regions[i].len;
		uint64_t a, b;

		if (rb >= end)
			break; /* sorted by base: the rest start later still */
		a = start > rb ? start : rb;
		b = end < re ? end : re;
		if (a >= b)
			continue;
		bits_set(bitmap[i], (a - rb) / d->page_size, (b - 1 - rb) / d->page_size);
	}
}

/* Scans every span, re-protecting what was written; with bitmap, marks it.
 * The page_region vector is finite: the kernel stops when it is full and
 * says where in walk_end, and the scan goes on from there. */
static int uffd_scan(lm__dirty *d, uint64_t *const *bitmap, lm__err *e)
{
	struct pm_scan_arg a;

	for (uint32_t k = 0; k < d->nspans; k++) {
		const dirty_span *s = &d->spans[k];
		uint64_t pos = s->start;

		while (pos < s->end) {
			int rc;

			scan_arg_init(&a, pos, s->end, d->vec, LM_DIRTY_VEC);
			rc = scan_once(d->pagemap, &a);
			if (rc < 0) {
				lm__err_set(e, "region %u: PAGEMAP_SCAN: %s%s",
					    span_region_at(d, s, pos), errname(-rc),
					    rc == -EPERM ? " (part of the range is no longer "
							   "registered: remapped since the "
							   "tracker started?)"
							 : "");
				return rc;
			}
			for (int j = 0; bitmap && j < rc; j++)
				span_mark(d, s, d->vec[j].start, d->vec[j].end, bitmap);
			if (a.walk_end <= pos || a.walk_end > s->end) {
				lm__err_set(e, "region %u: PAGEMAP_SCAN walk_end 0x%llx out of "
					    "[0x%llx, 0x%llx]",
					    span_region_at(d, s, pos), (unsigned long long)a.walk_end,
					    (unsigned long long)pos, (unsigned long long)s->end);
				return -EIO;
			}
			pos = a.walk_end;
		}
	}
	return 0;
}

/* ---- callback tracker --------------------------------------------------------- */

static int cb_call(lm__dirty *d, uint32_t i, lm__err *e)
{
	uint64_t pages = lm__dirty_pages(d->regions[i].len, d->page_size);
	uint64_t words = lm__dirty_words(d->regions[i].len, d->page_size);
	int rc;

	memset(d->scratch, 0, (words ? words : 1) * sizeof(uint64_t));
	rc = d->cb(d->user, i, d->scratch, pages);
	if (rc < 0) {
		lm__err_set(e, "region %u: dirty_log callback failed: %s", i, lm_strerror(rc));
		return rc;
	}
	/* Bits past the last page are the callback's mistake: dropped. */
	if (pages % 64)
		d->scratch[words - 1] &= ~0ull >> (64 - pages % 64);
	return 0;
}

static int cb_start(lm__dirty *d, lm__err *e)
{
	for (uint32_t i = 0; i < d->n; i++) {
		int rc = cb_call(d, i, e);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int cb_sync(lm__dirty *d, uint64_t *const *bitmap, lm__err *e)
{
	for (uint32_t i = 0; i < d->n; i++) {
		uint64_t words = lm__dirty_words(d->regions[i].len, d->page_size);
		int rc = cb_call(d, i, e);

		if (rc < 0)
			return rc;
		for (uint64_t w = 0; w < words; w++)
			bitmap[i][w] |= d->scratch[w];
	}
	return 0;
}

static int cb_setup(lm__dirty *d, lm__err *e)
{
	uint64_t words = 1;

	for (uint32_t i = 0; i < d->n; i++) {
		uint64_t w = lm__dirty_words(d->regions[i].len, d->page_size);

		if (w > words)
			words = w;
	}
	if (words > SIZE_MAX / sizeof(uint64_t)) {
		lm__err_set(e, "dirty tracker: bitmap too large");
		return -ENOMEM;
	}
	d->scratch = calloc((size_t)words, sizeof(uint64_t));
	if (!d->scratch) {
		lm__err_set(e, "dirty tracker: out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* ---- interface ------------------------------------------------------------------ */

static int args_check(lm_dirty_source src, lm_dirty_log_cb cb, const lm__dirty_region *regions,
		      uint32_t n, uint32_t page_size, lm__err *e)
{
	if (src != LM_DIRTY_AUTO && src != LM_DIRTY_UFFD_WP && src != LM_DIRTY_CALLBACK) {
		lm__err_set(e, "dirty source %d unknown", (int)src);
		return LM_EINVAL;
	}
	if (src == LM_DIRTY_CALLBACK && !cb) {
		lm__err_set(e, "LM_DIRTY_CALLBACK needs a dirty_log callback");
		return LM_EINVAL;
	}
	if (page_size < LM_MIN_PAGE_SIZE || (page_size & (page_size - 1))) {
		lm__err_set(e, "page size %u is not a power of two >= %u", page_size,
			    LM_MIN_PAGE_SIZE);
		return LM_EINVAL;
	}
	if (n && !regions) {
		lm__err_set(e, "%u regions but no region array", n);
		return LM_EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t b = (uintptr_t)regions[i].base;

		/* Room for the end and for rounding it up to any page size. */
		if (b > UINT64_MAX - (1ull << 32) || regions[i].len > UINT64_MAX - (1ull << 32) - b) {
			lm__err_set(e, "region %u: base + len overflows", i);
			return LM_EINVAL;
		}
	}
	return 0;
}

void lm__dirty_free(lm__dirty *d)
{
	if (!d)
		return;
	lm__dirty_stop(d);
	free(d->regions);
	free(d->scratch);
	free(d->spans);
	free(d->order);
	free(d->vec);
	free(d);
}

/* LM_DIRTY_AUTO and LM_DIRTY_UFFD_WP. AUTO falls back to the callback when
 * uffd-wp is unusable or cannot take these regions; the reason is then left
 * in e->msg although the call succeeds, for the caller to log. */
static int choose(lm__dirty *d, lm_dirty_source src, lm__err *e)
{
	char why[sizeof(e->msg)];
	int rc = lm_dirty_probe(why, sizeof(why));

	if (rc == 0) {
		rc = uffd_setup(d, e);
		if (rc == 0) {
			d->kind = LM_DIRTY_UFFD_WP;
			return 0;
		}
		if (rc == -ENOMEM)
			return rc;
		snprintf(why, sizeof(why), "%s", e ? e->msg : "uffd-wp unusable");
	} else if (rc == -ENOMEM) {
		lm__err_set(e, "%s", why);
		return rc;
	}
	if (src == LM_DIRTY_AUTO && d->cb) {
		d->kind = LM_DIRTY_CALLBACK;
		rc = cb_setup(d, e);
		if (rc == 0)
			lm__err_set(e, "uffd-wp not used, dirty_log callback instead: %s", why);
		return rc;
	}
	lm__err_set(e, "%s", why);
	return LM_EFEATURE;
}

int lm__dirty_new(lm__dirty **out, lm_dirty_source src, lm_dirty_log_cb cb, void *user,
		  const lm__dirty_region *regions, uint32_t n, uint32_t page_size, lm__err *e)
{
	lm__dirty *d;
	int rc;

	if (!out) {
		lm__err_set(e, "no output pointer");
		return LM_EINVAL;
	}
	*out = NULL;
	rc = args_check(src, cb, regions, n, page_size, e);
	if (rc < 0)
		return rc;
	d = calloc(1, sizeof(*d));
	if (!d)
		goto nomem;
	d->uffd = d->pagemap = -1;
	d->state = DIRTY_READY;
	d->n = n;
	d->page_size = page_size;
	d->cb = cb;
	d->user = user;
	d->regions = calloc(n ? n : 1, sizeof(*d->regions));
	if (!d->regions)
		goto nomem;
	if (n)
		memcpy(d->regions, regions, n * sizeof(*regions));
	if (src == LM_DIRTY_CALLBACK) {
		d->kind = LM_DIRTY_CALLBACK;
		rc = cb_setup(d, e);
	} else {
		rc = choose(d, src, e);
	}
	if (rc < 0) {
		lm__dirty_free(d);
		return rc;
	}
	*out = d;
	return 0;
nomem:
	lm__dirty_free(d);
	lm__err_set(e, "dirty tracker: out of memory");
	return -ENOMEM;
}

lm_dirty_source lm__dirty_kind(const lm__dirty *d)
{
	return d->kind;
}

/* The arming scan reports every page (nothing was protected yet) and
 * protects them; its report is the "writes before start" and is dropped.
 * Calling it again re-arms: everything written so far is forgotten. */
int lm__dirty_start(lm__dirty *d, lm__err *e)
{
	int rc;

	if (!d || d->state == DIRTY_STOPPED) {
		lm__err_set(e, "dirty tracker %s", d ? "already stopped" : "missing");
		return LM_ESTATE;
	}
	if (d->kind == LM_DIRTY_UFFD_WP)
		rc = uffd_scan(d, NULL, e);
	else
		rc = cb_start(d, e);
	if (rc == 0)
		d->state = DIRTY_ARMED;
	return rc;
}

int lm__dirty_sync(lm__dirty *d, uint64_t *const *bitmap, uint64_t *count, lm__err *e)
{
	uint64_t c = 0;
	int rc;

	if (!d || d->state != DIRTY_ARMED) {
		lm__err_set(e, "dirty tracker not armed (lm__dirty_start first)");
		return LM_ESTATE;
	}
	if (d->n && !bitmap) {
		lm__err_set(e, "no bitmaps");
		return LM_EINVAL;
	}
	if (d->kind == LM_DIRTY_UFFD_WP)
		rc = uffd_scan(d, bitmap, e);
	else
		rc = cb_sync(d, bitmap, e);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < d->n; i++)
		c += popcount(bitmap[i], lm__dirty_words(d->regions[i].len, d->page_size));
	if (count)
		*count = c;
	return 0;
}

void lm__dirty_stop(lm__dirty *d)
{
	if (!d)
		return;
	uffd_close(d);
	d->state = DIRTY_STOPPED;
}
