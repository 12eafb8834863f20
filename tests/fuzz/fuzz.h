/* fuzz.h: what every libFuzzer target shares.
 *
 * Each target defines LLVMFuzzerTestOneInput and wraps its work in
 * kcw_fuzz_begin()/kcw_fuzz_end(size): an input that takes more than
 * KCW_FUZZ_SLOW_MS and more than KCW_FUZZ_NS_PER_BYTE per input byte aborts,
 * so superlinear (quadratic) inputs are findings like crashes. Linear parsing
 * costs well under a microsecond a byte even under ASan. */
#ifndef KCWATCH_FUZZ_H
#define KCWATCH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define KCW_FUZZ_SLOW_MS 250
#define KCW_FUZZ_NS_PER_BYTE 50000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void kcw_fuzz_begin(void);
void kcw_fuzz_end(size_t size);
/* data as a NUL-terminated string (malloc'd; embedded NULs cut it short). */
char *kcw_fuzz_string(const uint8_t *data, size_t size);

#endif
