/* Error codes (src/core/error.c, pe/error.h) and the rejection counters of
 * pe/tick.h: every code keeps the value it was published with, names and
 * texts are found by value, and counting by error code never writes outside
 * the counters. */
#include <stdint.h>

#include "pe/error.h"
#include "pe/tick.h"
#include "pe_test.h"

/* The values as released: a program built against an older pe/error.h
 * must read the same code the same way. */
static const struct {
  int code;
  int value;
  const char *name;
} pe__released[] = {
    {PE_EINVAL, -999, "EINVAL"},     {PE_ENOMEM, -998, "ENOMEM"},
    {PE_EFULL, -997, "EFULL"},       {PE_EIO, -996, "EIO"},
    {PE_ENOENT, -995, "ENOENT"},     {PE_EFIELDS, -994, "EFIELDS"},
    {PE_ENUMBER, -993, "ENUMBER"},   {PE_ETIMESTAMP, -992, "ETIMESTAMP"},
    {PE_EPRICE, -991, "EPRICE"},     {PE_EVOLUME, -990, "EVOLUME"},
    {PE_ESYMBOL, -989, "ESYMBOL"},   {PE_ESYMLEN, -988, "ESYMLEN"},
    {PE_EORDER, -987, "EORDER"},     {PE_ELINELEN, -986, "ELINELEN"},
    {PE_EHEADER, -985, "EHEADER"},   {PE_ENODATA, -984, "ENODATA"},
    {PE_EPARSE, -983, "EPARSE"},     {PE_EUNSUPPORTED, -982, "EUNSUPPORTED"},
    {PE_ESHAPE, -981, "ESHAPE"},     {PE_EMODEL, -980, "EMODEL"},
    {PE_EBACKEND, -979, "EBACKEND"}, {PE_ECORRUPT, -978, "ECORRUPT"},
    {PE_EVERSION, -977, "EVERSION"}, {PE_EAGAIN, -976, "EAGAIN"},
    {PE_ECONN, -975, "ECONN"},       {PE_EGAP, -974, "EGAP"},
    {PE_ESTATE, -973, "ESTATE"},     {PE_ESYMNUL, -972, "ESYMNUL"},
    {PE_EQUOTE, -971, "EQUOTE"},
};

#define PE__N_RELEASED (sizeof pe__released / sizeof pe__released[0])

static void test_values_fixed(void) {
  for (size_t i = 0; i < PE__N_RELEASED; i++) {
    PE_CHECK_INT(pe__released[i].code, pe__released[i].value);
    PE_CHECK_STR(pe_errname(pe__released[i].value), pe__released[i].name);
  }
  PE_CHECK_STR(pe_strerror(PE_EPARSE), "parse error");
  PE_CHECK_STR(pe_strerror(PE_ESTATE), "operation not valid in this state");
  PE_CHECK_STR(pe_errname(PE_OK), "OK");
  PE_CHECK_STR(pe_strerror(PE_OK), "success");
}

/* Every code of the list is distinct, negative, and named by its own value;
 * values next to the list are no code. */
static void test_list_consistent(void) {
  static const int codes[] = {
#define PE__CODE(name, value, text) value,
      PE_ERRNO_MAP(PE__CODE)
#undef PE__CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  PE_CHECK_INT(n, PE__N_RELEASED);
  for (size_t i = 0; i < n; i++) {
    PE_CHECK(codes[i] < 0);
    PE_CHECK(pe_errname(codes[i])[0] == 'E');
    PE_CHECK(strcmp(pe_errname(codes[i]), "EUNKNOWN") != 0);
    for (size_t j = i + 1; j < n; j++) {
      PE_CHECK(codes[i] != codes[j]);
    }
  }
  PE_CHECK_STR(pe_errname(-1000), "EUNKNOWN");
  PE_CHECK_STR(pe_errname(-970), "EUNKNOWN");
  PE_CHECK_STR(pe_errname(PE_STOP), "EUNKNOWN");
  PE_CHECK_STR(pe_strerror(-1000), "unknown error");
}

/* Stop values are positive, so never read as a code. */
static void test_stop_apart_from_codes(void) {
  PE_CHECK_INT(PE_CONTINUE, PE_OK);
  PE_CHECK(PE_STOP > 0);
}

/* Counting by error code: a rejection lands on its reason; any other code
 * is refused with -1 and writes nothing, not even just outside the array. */
static void test_reject_count(void) {
  uint64_t guard[PE_REJECT_COUNT + 2];
  memset(guard, 0, sizeof guard);
  uint64_t *counts = guard + 1;
  PE_CHECK_INT(pe_reject_count(counts, PE_EPRICE), PE_REJECT_BAD_PRICE);
  PE_CHECK_INT(pe_reject_count(counts, PE_EPRICE), PE_REJECT_BAD_PRICE);
  PE_CHECK_INT(pe_reject_count(counts, PE_ELINELEN), PE_REJECT_LINE_TOO_LONG);
  PE_CHECK_INT(counts[PE_REJECT_BAD_PRICE], 2);
  PE_CHECK_INT(counts[PE_REJECT_LINE_TOO_LONG], 1);
  static const int not_rejections[] = {PE_OK,      PE_ENOMEM, PE_EFULL, PE_EIO,
                                       PE_EHEADER, -1,        PE_STOP};
  for (size_t i = 0; i < sizeof not_rejections / sizeof not_rejections[0];
       i++) {
    PE_CHECK_INT(pe_reject_count(counts, not_rejections[i]), -1);
  }
  uint64_t sum = 0;
  for (size_t i = 0; i < PE_REJECT_COUNT + 2; i++) {
    sum += guard[i];
  }
  PE_CHECK_INT(sum, 3);
  PE_CHECK_INT(guard[0], 0);
  PE_CHECK_INT(guard[PE_REJECT_COUNT + 1], 0);
}

PE_TEST_MAIN(PE_TEST(test_values_fixed), PE_TEST(test_list_consistent),
             PE_TEST(test_stop_apart_from_codes), PE_TEST(test_reject_count))
