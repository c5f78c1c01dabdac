/* A core file including a model header: must not compile. */
#include "model/kernel_level.h"

typedef int pe__probe_t;
