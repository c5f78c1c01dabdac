/* A core file including an io header: must not compile. */
#include "io/textfmt.h"

typedef int pe__probe_t;
