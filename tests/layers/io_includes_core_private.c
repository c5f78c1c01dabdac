/* An io file including a core header that core does not export: must not
 * compile. */
#include "core/engine_impl.h"

typedef int pe__probe_t;
