/* lm_version, lm_version_number: the library's version, from the header it
 * was built with (so a program can tell it from the header it was built with). */
#include "livemig.h"

#define LM__STR2(x) #x
#define LM__STR(x) LM__STR2(x)

const char *lm_version(void)
{
	return LM__STR(LM_VERSION_MAJOR) "." LM__STR(LM_VERSION_MINOR) "." LM__STR(LM_VERSION_PATCH);
}

uint32_t lm_version_number(void)
{
	return LM_VERSION_NUMBER;
}
