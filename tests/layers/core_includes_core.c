/* A core file including its own folder's header: compiles (the probes'
 * control). */
#include "core/engine_impl.h"

typedef int pe__probe_t;
