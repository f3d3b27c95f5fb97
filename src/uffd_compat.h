/*
 * The userfaultfd and PAGEMAP_SCAN UAPI of Linux >= 6.7 for builds against
 * older kernel headers (Debian 12's linux-libc-dev is 6.1, which has
 * neither). The values are the kernel's own (include/uapi/linux/fs.h and
 * include/uapi/linux/userfaultfd.h); each is defined only when the headers
 * lack it, so a newer linux-libc-dev wins. Whether the running kernel has
 * them is decided at run time (lm_dirty_probe()), never here.
 */
#ifndef LM_UFFD_COMPAT_H
#define LM_UFFD_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* userfaultfd(2) flag: handle only faults from user mode, which is all a
 * write tracker needs, and is allowed when vm.unprivileged_userfaultfd=0
 * (Linux >= 5.11). */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* Write-protect pte_none entries too, with markers (Linux 6.4). */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
/* Write faults on protected pages are resolved by the kernel, which just
 * clears the page's protection: no fault message, no handler thread
 * (Linux 6.7). */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* PAGEMAP_SCAN is the marker of the whole 6.7 block in linux/fs.h. */
#ifndef PAGEMAP_SCAN

/* Category bits, in pm_scan_arg's masks and page_region.categories. */
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

/* One run of pages with the same categories: [start, end). */
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

/* PAGEMAP_SCAN flags. */
#define PM_SCAN_WP_MATCHING (1 << 0)   /* write-protect the pages matched */
#define PM_SCAN_CHECK_WPASYNC (1 << 1) /* fail (EPERM) on a VMA without WP async */

struct pm_scan_arg {
	__u64 size;               /* sizeof(struct pm_scan_arg) */
	__u64 flags;              /* PM_SCAN_* */
	__u64 start;              /* page aligned */
	__u64 end;                /* exclusive */
	__u64 walk_end;           /* out: where the walk stopped (== end: done) */
	__u64 vec;                /* struct page_region array */
	__u64 vec_len;            /* its entries */
	__u64 max_pages;          /* 0 = no limit */
	__u64 category_inverted;  /* categories that match when clear */
	__u64 category_mask;      /* all of these must match */
	__u64 category_anyof_mask;/* one of these must match (0 = none asked) */
	__u64 return_mask;        /* categories reported in page_region */
};

/* ioctl on an fd of /proc/<pid>/pagemap; returns the page_regions filled. */
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#endif /* PAGEMAP_SCAN */

#endif /* LM_UFFD_COMPAT_H */
