/* A backend including a header model exports: compiles. */
#include "model/kernel_level.h"

typedef int pe__probe_t;
