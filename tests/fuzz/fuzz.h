/* fuzz.h: what every libFuzzer target shares.
 *
 * Each target's LLVMFuzzerTestOneInput hands its work to kcw_fuzz_timed(),
 * which times it: an input that takes more than KCW_FUZZ_SLOW_MS and more
 * than KCW_FUZZ_NS_PER_BYTE per input byte, in the fastest of three runs
 * (one slow run is usually the machine, not the input), aborts, so
 * superlinear (quadratic) inputs are findings like crashes. Linear parsing
 * costs well under a microsecond a byte even under ASan. The work must be
 * repeatable: no state kept between runs. */
#ifndef KCWATCH_FUZZ_H
#define KCWATCH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define KCW_FUZZ_SLOW_MS 250
#define KCW_FUZZ_NS_PER_BYTE 50000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs fn(data, size), timed as above. Returns 0 (libFuzzer's "keep"). */
int kcw_fuzz_timed(void (*fn)(const uint8_t *data, size_t size), const uint8_t *data,
                   size_t size);
/* data as a NUL-terminated string (malloc'd; embedded NULs cut it short). */
char *kcw_fuzz_string(const uint8_t *data, size_t size);
/* Splits text in place at each '\n' into NUL-terminated lines and returns
 * them (malloc'd array of pointers into text; *n_out set), at most
 * KCW_FUZZ_MAX_LINES of them: the rest is left out. */
#define KCW_FUZZ_MAX_LINES 65536
const char **kcw_fuzz_lines(char *text, size_t *n_out);

#endif
