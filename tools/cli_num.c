/* The command line's numbers (cli_num.h). */
#include "cli_num.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_u32(const char *s, uint32_t *out, uint32_t min, uint32_t max)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1; /* strtoul would take "-1" and " 1" */
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	uint64_t v, mult = 1;
	const char *u;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end && (u = strchr(units, toupper((unsigned char)*end))) != NULL) {
		mult = 1ull << (10 * (u - units + 1));
		end++;
	}
	if (mult > 1 && end[0] == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end || (v && mult > UINT64_MAX / v))
		return -1;
	*out = v * mult;
	return 0;
}
