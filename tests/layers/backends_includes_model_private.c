/* A backend including a model header that model does not export: must not
 * compile. */
#include "model/model_impl.h"

typedef int pe__probe_t;
