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

/* X(name, value, text): the code is PE_E##name = value. Each code keeps its
 * value for good: a new code takes a value no code has had (the next free
 * one is -970), and no code is renumbered or its value reused. pe_strerror
 * and pe_errname find a code by its value, not its place in the list.
 * tests/test_error.c checks that the values are distinct and unchanged. */
#define PE_ERRNO_MAP(X)                                                        \
  X(INVAL, -999, "invalid argument")                                           \
  X(NOMEM, -998, "out of memory")                                              \
  X(FULL, -997, "capacity reached")                                            \
  X(IO, -996, "input/output error")                                            \
  X(NOENT, -995, "no such file or entry")                                      \
  X(FIELDS, -994, "wrong field count")                                         \
  X(NUMBER, -993, "unparsable number")                                         \
  X(TIMESTAMP, -992, "unparsable timestamp")                                   \
  X(PRICE, -991, "price not finite and positive")                              \
  X(VOLUME, -990, "volume negative or not finite")                             \
  X(SYMBOL, -989, "empty symbol")                                              \
  X(SYMLEN, -988, "symbol too long")                                           \
  X(ORDER, -987, "timestamp earlier than the symbol's previous tick")          \
  X(LINELEN, -986, "line too long")                                            \
  X(HEADER, -985, "bad header")                                                \
  X(NODATA, -984, "no valid rows")                                             \
  X(PARSE, -983, "parse error")                                                \
  X(UNSUPPORTED, -982, "not supported")                                        \
  X(SHAPE, -981, "shape mismatch")                                             \
  X(MODEL, -980, "invalid model")                                              \
  X(BACKEND, -979, "backend error")                                            \
  X(CORRUPT, -978, "corrupt data")                                             \
  X(VERSION, -977, "version mismatch")                                         \
  X(AGAIN, -976, "try again")                                                  \
  X(CONN, -975, "connection error")                                            \
  X(GAP, -974, "entries missing from the stream")                              \
  X(STATE, -973, "operation not valid in this state")                          \
  X(SYMNUL, -972, "NUL byte in symbol")                                        \
  X(QUOTE, -971, "quoted field not closed, or text after its closing quote")

typedef enum pe_errno {
  PE_OK = 0,
#define PE__ERRNO_ENUM(name, value, text) PE_E##name = value,
  PE_ERRNO_MAP(PE__ERRNO_ENUM)
#undef PE__ERRNO_ENUM
} pe_errno_t;

/* What a callback (a parser's on_tick or on_reject, the engine's `each`)
 * returns to the loop that called it. PE_CONTINUE goes on; a positive value
 * stops the loop, which returns that value unchanged, so the caller tells
 * its own stop (PE_STOP, or any positive value of its own) from the loop's
 * errors, which are negative PE_E* codes. A callback returns no PE_E* code:
 * a reason it stops is kept in its own context. */
#define PE_CONTINUE 0
#define PE_STOP 1

/* Short text for a code ("parse error"); "unknown error" for anything else.
 * The string is static. */
const char *pe_strerror(int err);

/* Name of a code ("EPARSE", "OK"); "EUNKNOWN" for anything else. Static. */
const char *pe_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
