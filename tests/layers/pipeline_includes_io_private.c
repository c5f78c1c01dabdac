/* A pipeline file including an io header that io does not export: must not
 * compile. */
#include "io/numparse.h"

typedef int pe__probe_t;
