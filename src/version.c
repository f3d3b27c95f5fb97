/* lm_version, lm_version_number: the version of the library, from the
 * header it was built with (a program compares them with its own header's). */
#include "livemig.h"

#define LM__STR2(x) #x
#define LM__STR(x)  LM__STR2(x)

#define LM__MAJOR LM__STR(LM_VERSION_MAJOR)
#define LM__MINOR LM__STR(LM_VERSION_MINOR)
#define LM__PATCH LM__STR(LM_VERSION_PATCH)

const char *lm_version(void)
{
	return LM__MAJOR "." LM__MINOR "." LM__PATCH;
}

uint32_t lm_version_number(void)
{
	return LM_VERSION_NUMBER;
}
