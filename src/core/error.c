/* Error names and texts, generated from PE_ERRNO_MAP. */
#include "pe/error.h"

#include <stddef.h>

typedef struct pe__errinfo {
  int code;
  const char *name;
  const char *text;
} pe__errinfo_t;

static const pe__errinfo_t pe__errors[] = {
#define PE__ERRNO_INFO(name, value, text) {value, "E" #name, text},
    PE_ERRNO_MAP(PE__ERRNO_INFO)
#undef PE__ERRNO_INFO
};

static const pe__errinfo_t *pe__errinfo(int err) {
  for (size_t i = 0; i < sizeof pe__errors / sizeof pe__errors[0]; i++) {
    if (pe__errors[i].code == err) {
      return &pe__errors[i];
    }
  }
  return NULL;
}

const char *pe_strerror(int err) {
  if (err == PE_OK) {
    return "success";
  }
  const pe__errinfo_t *info = pe__errinfo(err);
  return info ? info->text : "unknown error";
}

const char *pe_errname(int err) {
  if (err == PE_OK) {
    return "OK";
  }
  const pe__errinfo_t *info = pe__errinfo(err);
  return info ? info->name : "EUNKNOWN";
}
