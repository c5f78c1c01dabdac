/* Error codes shared by every part of Pattern Engine.
 *
 * Every function that can fail returns int: PE_OK (0) on success, a negative
 * PE_E* code otherwise. The codes come from one list, PE_ERRNO_MAP, which also
 * gives pe_errname() ("EPARSE") and pe_strerror() ("parse error"). Detail text
 * (file, line, node) lives in the failing object's own message buffer, never
 * in the code. */
#ifndef PE_ERROR_H
#define PE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, text): the code is PE_E##name. */
#define PE_ERRNO_MAP(X)                                                        \
  X(INVAL, "invalid argument")                                                 \
  X(NOMEM, "out of memory")                                                    \
  X(FULL, "capacity reached")                                                  \
  X(IO, "input/output error")                                                  \
  X(NOENT, "no such file or entry")                                            \
  X(FIELDS, "wrong field count")                                               \
  X(NUMBER, "unparsable number")                                               \
  X(TIMESTAMP, "unparsable timestamp")                                         \
  X(PRICE, "price not finite and positive")                                    \
  X(VOLUME, "volume negative or not finite")                                   \
  X(SYMBOL, "empty symbol")                                                    \
  X(SYMLEN, "symbol too long")                                                 \
  X(ORDER, "timestamp earlier than the symbol's previous tick")                \
  X(LINELEN, "line too long")                                                  \
  X(HEADER, "bad header")                                                      \
  X(NODATA, "no valid rows")                                                   \
  X(PARSE, "parse error")                                                      \
  X(UNSUPPORTED, "not supported")                                              \
  X(SHAPE, "shape mismatch")                                                   \
  X(MODEL, "invalid model")                                                    \
  X(BACKEND, "backend error")                                                  \
  X(CORRUPT, "corrupt data")                                                   \
  X(VERSION, "version mismatch")                                               \
  X(AGAIN, "try again")                                                        \
  X(CONN, "connection error")                                                  \
  X(GAP, "entries missing from the stream")                                    \
  X(STATE, "operation not valid in this state")                                \
  X(SYMNUL, "NUL byte in symbol")                                              \
  X(QUOTE, "quoted field not closed, or text after its closing quote")

typedef enum pe_errno {
  PE_OK = 0,
  PE__ERRNO_BASE = -1000,
#define PE__ERRNO_ENUM(name, text) PE_E##name,
  PE_ERRNO_MAP(PE__ERRNO_ENUM)
#undef PE__ERRNO_ENUM
      PE__ERRNO_END
} pe_errno_t;

/* Short text for a code ("parse error"); "unknown error" for anything else.
 * The string is static. */
const char *pe_strerror(int err);

/* Name of a code ("EPARSE", "OK"); "EUNKNOWN" for anything else. Static. */
const char *pe_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
