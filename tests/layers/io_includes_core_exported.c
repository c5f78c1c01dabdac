/* An io file including a header core exports: compiles. */
#include "core/hash.h"

typedef int pe__probe_t;
