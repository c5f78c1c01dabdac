/* A publish file including a header core exports, reached through the
 * layers publish links (pipeline, redis): compiles. */
#include "core/hash.h"

typedef int pe__probe_t;
