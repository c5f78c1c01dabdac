/* Per-tick feature rows for --features-out (see pe/sink.h). */
#include "io/textfmt.h"
#include "pe/sink.h"

const char *pe_features_csv_header(void) {
  return "ts,symbol,price,volume,ema_fast,ema_slow,vwap,mean,var"
#define PE__FEATURE_COLUMN(id, name, warmup) "," name
      PE_FEATURE_MAP(PE__FEATURE_COLUMN)
#undef PE__FEATURE_COLUMN
          "\n";
}

size_t pe_features_format(const pe_tick_t *tick, const pe_tick_out_t *out,
                          char *buf, size_t cap) {
  size_t pos = 0;
  pe__put_i64(buf, cap, &pos, tick->ts_ns);
  pe__put_char(buf, cap, &pos, ',');
  pe__put_csv_str(buf, cap, &pos, tick->symbol);
  const double head[] = {tick->price,   tick->volume, out->ema_fast,
                         out->ema_slow, out->vwap,    out->mean,
                         out->var};
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
    pe__put_char(buf, cap, &pos, ',');
    pe__put_double(buf, cap, &pos, head[i]);
  }
  for (int f = 0; f < PE_FEATURE_COUNT; f++) {
    pe__put_char(buf, cap, &pos, ',');
    pe__put_double(buf, cap, &pos, out->feature[f]);
  }
  pe__put_char(buf, cap, &pos, '\n');
  if (pos < cap) {
    buf[pos] = '\0';
  }
  return pos;
}
