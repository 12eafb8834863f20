/* fuzz_template.c: template compile and render. The input is the template;
 * it renders against labels, a value and a trace taken from a fixed set, and
 * an environment whose query answers two fixed samples (an expression
 * starting with "empty" none, one starting with "fail" an error). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kcwatch/errors.h"
#include "kcwatch/labels.h"
#include "kcwatch/template.h"

static kcw_template_sample_t samples[2];

static int fake_query(void *arg, const char *expr, const kcw_template_sample_t **out, size_t *n,
                      char *err, size_t errlen)
{
    (void)arg;
    if (strncmp(expr, "fail", 4) == 0) {
        snprintf(err, errlen, "bad_data: parse error");
        return -EIO;
    }
    *out = samples;
    *n = strncmp(expr, "empty", 5) == 0 ? 0 : 2;
    return 0;
}

static void one_input(const uint8_t *data, size_t size)
{
    if (samples[0].labels.n == 0) {
        kcw_labels_set(&samples[0].labels, "job", "b");
        kcw_labels_set(&samples[0].labels, "instance", "connect-1:5556");
        samples[0].value = 2;
        kcw_labels_set(&samples[1].labels, "job", "a");
        samples[1].value = 0.5;
    }
    static const kcw_template_env_t env = {.external_url = "http://kcw:9464/prefix",
                                           .query = fake_query};
    char *src = kcw_fuzz_string(data, size);
    kcw_labels_t labels = {0}, ext = {0};
    kcw_labels_set(&labels, "connector", "orders");
    kcw_labels_set(&labels, "task", "3");
    kcw_labels_set(&labels, "value", "12.5");
    kcw_labels_set(&ext, "env", "prod");
    kcw_template_t *t = NULL;
    kcw_errors_t errs = {0};
    if (kcw_template_compile(src, "fuzz", 1, 1, &t, &errs) == 0) {
        kcw_template_set_env(t, &env);
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
