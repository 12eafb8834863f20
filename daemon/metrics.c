/* metrics.c: self-metric registry and text exposition (see metrics.h).
 *
 * A family is a name, a type and its series; a series is a label set and a
 * value, or bucket counts, sum and count for a histogram. Lookups are linear
 * over a family's series: the families here hold a handful of series each
 * (clusters, receivers, groups, results), and the per-alert gauges are
 * rebuilt per scrape. The text follows the Prometheus exposition format
 * 0.0.4: HELP and TYPE lines, label values escaped, histograms as _bucket
 * (le, cumulative, +Inf), _sum and _count. */
#include "kcwatch/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kcwatch/labels.h"

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10};

typedef struct series {
    kcw_labels_t labels;
    double value;     /* counter, gauge */
    uint64_t *counts; /* histogram: per bucket, not cumulative */
    double sum;
    uint64_t count;
} series_t;

typedef struct family {
    char *name, *help;
    uint32_t hash; /* of name: families are looked up by name on every update */
    kcw_metric_type_t type;
    double *buckets;
    size_t n_buckets;
    series_t *series;
    size_t n_series, cap_series;
} family_t;

struct kcw_metrics {
    family_t *fams;
    size_t n_fams, cap_fams;
    uint64_t dropped;
};

static bool name_ok(const char *s)
{
    if (!s || !*s || !(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (s++; *s; s++)
        if (!(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

kcw_metrics_t *kcw_metrics_new(void)
{
    return calloc(1, sizeof(kcw_metrics_t));
}

static void series_clear(series_t *s)
{
    kcw_labels_clear(&s->labels);
    free(s->counts);
}

void kcw_metrics_free(kcw_metrics_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_fams; i++) {
        family_t *f = &m->fams[i];
        for (size_t j = 0; j < f->n_series; j++)
            series_clear(&f->series[j]);
        free(f->series);
        free(f->buckets);
        free(f->name);
        free(f->help);
    }
    free(m->fams);
    free(m);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static family_t *find_family(const kcw_metrics_t *m, const char *name)
{
    uint32_t h = name_hash(name);
    for (size_t i = 0; i < m->n_fams; i++)
        if (m->fams[i].hash == h && strcmp(m->fams[i].name, name) == 0)
            return &m->fams[i];
    return NULL;
}

int kcw_metrics_declare(kcw_metrics_t *m, kcw_metric_type_t type, const char *name,
                        const char *help, const double *buckets, size_t n_buckets)
{
    if (!name_ok(name))
        return -EINVAL;
    family_t *f = find_family(m, name);
    if (f)
        return f->type == type ? 0 : -EINVAL;
    if (m->n_fams == m->cap_fams) {
        size_t cap = m->cap_fams ? m->cap_fams * 2 : 32;
        family_t *nf = realloc(m->fams, cap * sizeof(*nf));
        if (!nf)
            return -ENOMEM;
        m->fams = nf;
        m->cap_fams = cap;
    }
    f = &m->fams[m->n_fams];
    memset(f, 0, sizeof(*f));
    f->hash = name_hash(name);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (type == KCW_METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            n_buckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
        }
        f->buckets = malloc((n_buckets ? n_buckets : 1) * sizeof(*f->buckets));
        if (f->buckets)
            memcpy(f->buckets, buckets, n_buckets * sizeof(*buckets));
        f->n_buckets = n_buckets;
    }
    if (!f->name || !f->help || (type == KCW_METRIC_HISTOGRAM && !f->buckets)) {
        free(f->name);
        free(f->help);
        free(f->buckets);
        return -ENOMEM;
    }
    m->n_fams++;
    return 0;
}

static int labels_from(kcw_labels_t *out, const char *const *kv)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        if (!name_ok(kv[i]) || strncmp(kv[i], "__", 2) == 0) {
            kcw_labels_clear(out);
            return -EINVAL;
        }
        if (kcw_labels_set(out, kv[i], kv[i + 1]) < 0) {
            kcw_labels_clear(out);
            return -ENOMEM;
        }
    }
    return 0;
}

/* Whether kv names each label once and with a value: then the labels it
 * builds are its pairs as given, and *n counts them. */
static bool kv_plain(const char *const *kv, size_t *n)
{
    *n = 0;
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        if (!*kv[i + 1])
            return false;
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(kv[j], kv[i]) == 0)
                return false;
        (*n)++;
    }
    return true;
}

static bool kv_equal(const kcw_labels_t *l, const char *const *kv, size_t n)
{
    if (l->n != n)
        return false;
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        const char *v = kcw_labels_get(l, kv[i]);
        if (!v || strcmp(v, kv[i + 1]) != 0)
            return false;
    }
    return true;
}

/* The series of f with these labels, created when absent; NULL when over the
 * bound (counted) or out of memory. An existing series is found without
 * building a label set (an update is on every query's path). */
static series_t *get_series(kcw_metrics_t *m, family_t *f, const char *const *kv, int *rc)
{
    size_t n;
    if (kv_plain(kv, &n))
        for (size_t i = 0; i < f->n_series; i++)
            if (kv_equal(&f->series[i].labels, kv, n)) {
                *rc = 0;
                return &f->series[i];
            }
    kcw_labels_t l;
    *rc = -ENOMEM;
    if ((*rc = labels_from(&l, kv)) < 0)
        return NULL;
    *rc = -ENOMEM;
    for (size_t i = 0; i < f->n_series; i++)
        if (kcw_labels_equal(&f->series[i].labels, &l)) {
            kcw_labels_clear(&l);
            return &f->series[i];
        }
    if (f->n_series >= KCW_METRICS_MAX_SERIES) {
        m->dropped++;
        kcw_labels_clear(&l);
        return NULL;
    }
    if (f->n_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : 8;
        series_t *ns = realloc(f->series, cap * sizeof(*ns));
        if (!ns) {
            kcw_labels_clear(&l);
            return NULL;
        }
        f->series = ns;
        f->cap_series = cap;
    }
    series_t *s = &f->series[f->n_series];
    memset(s, 0, sizeof(*s));
    s->labels = l;
    if (f->type == KCW_METRIC_HISTOGRAM &&
        !(s->counts = calloc(f->n_buckets + 1, sizeof(*s->counts)))) {
        kcw_labels_clear(&s->labels);
        return NULL;
    }
    f->n_series++;
    return s;
}

static series_t *typed_series(kcw_metrics_t *m, const char *name, kcw_metric_type_t type,
                              const char *const *labels, int *rc, family_t **fam)
{
    family_t *f = find_family(m, name);
    if (fam)
        *fam = f;
    if (!f || f->type != type) {
        *rc = -EINVAL;
        return NULL;
    }
    series_t *s = get_series(m, f, labels, rc);
    if (s)
        *rc = 0;
    return s;
}

int kcw_metrics_add(kcw_metrics_t *m, const char *name, const char *const *labels, double v)
{
    int rc;
    if (!(v >= 0))
        return -EINVAL; /* counters only go up */
    series_t *s = typed_series(m, name, KCW_METRIC_COUNTER, labels, &rc, NULL);
    if (s)
        s->value += v;
    return rc;
}

int kcw_metrics_set(kcw_metrics_t *m, const char *name, const char *const *labels, double v)
{
    int rc;
    family_t *f = find_family(m, name);
    /* A gauge, or a counter set from a figure that is itself cumulative (CPU). */
    if (!f || (f->type != KCW_METRIC_GAUGE && f->type != KCW_METRIC_COUNTER))
        return -EINVAL;
    series_t *s = get_series(m, f, labels, &rc);
    if (!s)
        return rc;
    s->value = v;
    return 0;
}

int kcw_metrics_observe(kcw_metrics_t *m, const char *name, const char *const *labels, double v)
{
    int rc;
    family_t *f;
    series_t *s = typed_series(m, name, KCW_METRIC_HISTOGRAM, labels, &rc, &f);
    if (!s)
        return rc;
    size_t b = 0;
    while (b < f->n_buckets && v > f->buckets[b])
        b++;
    s->counts[b]++;
    s->sum += v;
    s->count++;
    return 0;
}

void kcw_metrics_clear(kcw_metrics_t *m, const char *name)
{
    family_t *f = find_family(m, name);
    if (!f)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        series_clear(&f->series[i]);
    f->n_series = 0;
}

double kcw_metrics_value(const kcw_metrics_t *m, const char *name, const char *const *labels)
{
    const family_t *f = find_family(m, name);
    kcw_labels_t l;
    if (!f || labels_from(&l, labels) < 0)
        return NAN;
    double v = NAN;
    for (size_t i = 0; i < f->n_series; i++)
        if (kcw_labels_equal(&f->series[i].labels, &l))
            v = f->type == KCW_METRIC_HISTOGRAM ? (double)f->series[i].count : f->series[i].value;
    kcw_labels_clear(&l);
    return v;
}

/* --- exposition ------------------------------------------------------------ */

typedef struct buf {
    char *s;
    size_t len, cap;
    bool oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Escapes \ and newline (HELP), and " too (label values). */
static void put_escaped(buf_t *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(b, "\\\\");
        else if (*s == '\n')
            puts_(b, "\\n");
        else if (quote && *s == '"')
            puts_(b, "\\\"");
        else
            put(b, s, 1);
    }
}

/* The shortest %g text that reads back as v ("0.1", not 0.10000000000000001). */
static void shortest(char *num, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, n, "%.*g", prec, v);
        if (strtod(num, NULL) == v)
            return;
    }
}

static void put_number(buf_t *b, double v)
{
    char num[48];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        snprintf(num, sizeof(num), v > 0 ? "+Inf" : "-Inf");
    else
        shortest(num, sizeof(num), v);
    puts_(b, num);
}

static void put_labels(buf_t *b, const kcw_labels_t *l, const char *le)
{
    if (l->n == 0 && !le)
        return;
    puts_(b, "{");
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            puts_(b, ",");
        puts_(b, l->items[i].name);
        puts_(b, "=\"");
        put_escaped(b, l->items[i].value, true);
        puts_(b, "\"");
    }
    if (le) {
        puts_(b, l->n ? ",le=\"" : "le=\"");
        puts_(b, le);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

static void put_sample(buf_t *b, const char *name, const char *suffix, const kcw_labels_t *l,
                       const char *le, double v)
{
    puts_(b, name);
    puts_(b, suffix);
    put_labels(b, l, le);
    puts_(b, " ");
    put_number(b, v);
    puts_(b, "\n");
}

static const char *type_name(kcw_metric_type_t t)
{
    return t == KCW_METRIC_COUNTER ? "counter" : t == KCW_METRIC_GAUGE ? "gauge" : "histogram";
}

static void put_family(buf_t *b, const family_t *f)
{
    puts_(b, "# HELP ");
    puts_(b, f->name);
    puts_(b, " ");
    put_escaped(b, f->help, false);
    puts_(b, "\n# TYPE ");
    puts_(b, f->name);
    puts_(b, " ");
    puts_(b, type_name(f->type));
    puts_(b, "\n");
    for (size_t i = 0; i < f->n_series; i++) {
        const series_t *s = &f->series[i];
        if (f->type != KCW_METRIC_HISTOGRAM) {
            put_sample(b, f->name, "", &s->labels, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        char le[48];
        for (size_t k = 0; k < f->n_buckets; k++) {
            cum += s->counts[k];
            shortest(le, sizeof(le), f->buckets[k]);
            put_sample(b, f->name, "_bucket", &s->labels, le, (double)cum);
        }
        put_sample(b, f->name, "_bucket", &s->labels, "+Inf", (double)s->count);
        put_sample(b, f->name, "_sum", &s->labels, NULL, s->sum);
        put_sample(b, f->name, "_count", &s->labels, NULL, (double)s->count);
    }
}

char *kcw_metrics_render(const kcw_metrics_t *m, size_t *len)
{
    buf_t b = {0};
    for (size_t i = 0; i < m->n_fams; i++)
        put_family(&b, &m->fams[i]);
    family_t dropped = {.name = "kcwatch_metrics_series_dropped_total",
                        .help = "Label sets not recorded because a family held too many series.",
                        .type = KCW_METRIC_COUNTER};
    series_t one = {.value = (double)m->dropped};
    dropped.series = &one;
    dropped.n_series = 1;
    put_family(&b, &dropped);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    *len = b.len;
    return b.s;
}

/* --- kcwatch's own families -------------------------------------------------- */

int kcw_metrics_declare_self(kcw_metrics_t *m, const char *version)
{
    static const struct {
        kcw_metric_type_t type;
        const char *name, *help;
    } fams[] = {
        {KCW_METRIC_GAUGE, "kcwatch_build_info", "kcwatch's version, as a label; always 1."},
        {KCW_METRIC_COUNTER, "kcwatch_rule_evaluations_total", "Rule group evaluations."},
        {KCW_METRIC_COUNTER, "kcwatch_rule_evaluation_failures_total",
         "Rule evaluations that failed (query errors, limit, duplicate label sets)."},
        {KCW_METRIC_HISTOGRAM, "kcwatch_rule_evaluation_duration_seconds",
         "Time one rule group evaluation took, queries included."},
        {KCW_METRIC_GAUGE, "kcwatch_rule_group_last_evaluation_timestamp_seconds",
         "Evaluation time of the group's last evaluation."},
        {KCW_METRIC_GAUGE, "kcwatch_alerts", "Alerts by name and state (pending, firing)."},
        {KCW_METRIC_GAUGE, "kcwatch_connect_up",
         "1 when the last poll of the Connect cluster got an answer, else 0."},
        {KCW_METRIC_GAUGE, "kcwatch_connect_last_poll_timestamp_seconds",
         "When the last poll of the Connect cluster completed."},
        {KCW_METRIC_COUNTER, "kcwatch_connect_polls_total", "Polls of the Connect status."},
        {KCW_METRIC_HISTOGRAM, "kcwatch_connect_poll_duration_seconds",
         "Time one poll of a Connect cluster took."},
        {KCW_METRIC_GAUGE, "kcwatch_prometheus_up",
         "1 when the last PromQL query got an answer from Prometheus, else 0."},
        {KCW_METRIC_COUNTER, "kcwatch_prometheus_queries_total", "PromQL queries sent."},
        {KCW_METRIC_HISTOGRAM, "kcwatch_prometheus_query_duration_seconds",
         "Time one PromQL query took."},
        {KCW_METRIC_COUNTER, "kcwatch_restarts_total",
         "Restarts by outcome: sent, dry_run, recovered, failed."},
        {KCW_METRIC_COUNTER, "kcwatch_remediation_events_total",
         "Every remediation decision and outcome, by event."},
        {KCW_METRIC_COUNTER, "kcwatch_notifications_total",
         "Notification deliveries by receiver and result."},
        {KCW_METRIC_GAUGE, "kcwatch_notification_queue_length",
         "Notifications waiting for delivery."},
        {KCW_METRIC_COUNTER, "kcwatch_notifications_expired_total",
         "Notifications dropped undelivered after global.notification_max_age."},
        {KCW_METRIC_GAUGE, "kcwatch_state_store_durable",
         "1 while state is written to global.state_dir, 0 when it is kept in memory only."},
        {KCW_METRIC_GAUGE, "kcwatch_config_last_reload_successful",
         "1 when the last configuration (re)load succeeded."},
        {KCW_METRIC_GAUGE, "kcwatch_config_last_reload_success_timestamp_seconds",
         "When the configuration was last loaded successfully."},
        {KCW_METRIC_GAUGE, "kcwatch_ready", "1 once the first evaluation completed."},
        {KCW_METRIC_GAUGE, "kcwatch_ha_owner",
         "1 for each cluster this instance owns and acts for now (ha.etcd), else 0."},
        {KCW_METRIC_COUNTER, "kcwatch_ha_lease_renewals_total",
         "Successful keepalives of this instance's etcd lease."},
        {KCW_METRIC_COUNTER, "process_cpu_seconds_total",
         "Total user and system CPU time spent in seconds."},
        {KCW_METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes."},
        {KCW_METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes."},
        {KCW_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors."},
        {KCW_METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors."},
        {KCW_METRIC_GAUGE, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds."},
    };
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++)
        if (kcw_metrics_declare(m, fams[i].type, fams[i].name, fams[i].help, NULL, 0) < 0)
            return -ENOMEM;
    const char *l[] = {"version", version, NULL};
    return kcw_metrics_set(m, "kcwatch_build_info", l, 1);
}

/* --- process figures --------------------------------------------------------- */

int kcw_metrics_process_read(kcw_process_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -errno;
    char line[1024];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    /* comm may hold spaces and parentheses: fields start after the last ')'. */
    const char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return -EIO;
    unsigned long utime = 0, stime = 0, vsize = 0;
    unsigned long long starttime = 0;
    long rss = 0;
    /* fields 3..24: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice threads
     * itrealvalue starttime vsize rss */
    if (sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
               "%llu %lu %ld",
               &utime, &stime, &starttime, &vsize, &rss) != 5)
        return -EIO;
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (ticks <= 0)
        ticks = 100;
    out->cpu_seconds = (double)(utime + stime) / (double)ticks;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss * (double)(page > 0 ? page : 4096);
    /* Boot time plus the start in ticks since boot. */
    f = fopen("/proc/stat", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            unsigned long long btime;
            if (sscanf(line, "btime %llu", &btime) == 1) {
                out->start_time_seconds = (double)btime + (double)starttime / (double)ticks;
                break;
            }
        }
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        size_t n = 0;
        while (readdir(d))
            n++;
        closedir(d);
        /* ".", ".." and the directory's own descriptor are not open files of ours. */
        out->open_fds = n >= 3 ? (double)(n - 3) : 0;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        out->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    return 0;
}
