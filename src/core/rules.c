/* Rule patterns: names. Each rule looks at one tick's features, may fire,
 * and adds a signed contribution to the tick's score; the evaluation is
 * pe__rules_eval, inline in core/symstate.h, and docs/patterns.md describes
 * the rules, the score, the label and the confidence. */
#include <math.h>
#include <string.h>

#include "core/symstate.h"

static const char *const pe__rule_names[] = {
#define PE__RULE_NAME(id, name) name,
    PE_RULE_MAP(PE__RULE_NAME)
#undef PE__RULE_NAME
};

const char *pe_rule_name(int rule) {
  return (rule >= 0 && rule < PE_RULE_COUNT) ? pe__rule_names[rule] : NULL;
}
