/* fuzz_template.c: template compile and render. The input is the template;
 * it renders against labels, a value and a trace taken from a fixed set. */
#include <stdlib.h>

#include "fuzz.h"
#include "kcwatch/errors.h"
#include "kcwatch/labels.h"
#include "kcwatch/template.h"

static void one_input(const uint8_t *data, size_t size)
{
    char *src = kcw_fuzz_string(data, size);
    kcw_labels_t labels = {0}, ext = {0};
    kcw_labels_set(&labels, "connector", "orders");
    kcw_labels_set(&labels, "task", "3");
    kcw_labels_set(&labels, "value", "12.5");
    kcw_labels_set(&ext, "env", "prod");
    kcw_template_t *t = NULL;
    kcw_errors_t errs = {0};
    if (kcw_template_compile(src, "fuzz", 1, 1, &t, &errs) == 0) {
        kcw_template_ctx_t ctx = {.labels = &labels, .value = 1234.5678,
                                  .trace = "java.lang.Exception: x\n\tat y", .external_labels = &ext};
        char *out = NULL;
        kcw_template_render(t, &ctx, &out);
        free(out);
        ctx.value = -0.0 / 1.0;
        ctx.trace = NULL;
        out = NULL;
        kcw_template_render(t, &ctx, &out);
        free(out);
    }
    kcw_template_free(t);
    kcw_errors_clear(&errs);
    kcw_labels_clear(&labels);
    kcw_labels_clear(&ext);
    free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return kcw_fuzz_timed(one_input, data, size);
}
