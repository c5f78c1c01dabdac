/* Error names and texts, generated from PE_ERRNO_MAP. */
#include "pe/error.h"

#include <stddef.h>

typedef struct pe__errinfo {
  const char *name;
  const char *text;
} pe__errinfo_t;

static const pe__errinfo_t pe__errors[] = {
#define PE__ERRNO_INFO(name, text) {"E" #name, text},
    PE_ERRNO_MAP(PE__ERRNO_INFO)
#undef PE__ERRNO_INFO
};

static const pe__errinfo_t *pe__errinfo(int err) {
  if (err <= PE__ERRNO_BASE || err >= PE__ERRNO_END) {
    return NULL;
  }
  return &pe__errors[err - PE__ERRNO_BASE - 1];
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
