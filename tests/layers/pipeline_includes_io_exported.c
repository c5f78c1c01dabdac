/* A pipeline file including a header io exports: compiles. */
#include "io/textfmt.h"

typedef int pe__probe_t;
