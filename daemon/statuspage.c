/* statuspage.c: the status page's HTML (see statuspage.h).
 *
 * A kcw_statuspage_t goes in, one HTML document comes out; nothing else is
 * read, so the same state always gives the same bytes. Sections follow the
 * on-call engineer's questions in order: what is broken, what kcwatch did,
 * what it holds back, whether kcwatch is healthy. Every string that came
 * from outside (names, traces, labels, annotations, errors) passes through
 * esc(); the markup itself has no script and no inline style, so
 * `default-src 'self'` allows everything the page uses. */
#include "kcwatch/statuspage.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcwatch/text.h"

/* --- output buffer --------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf_t;

static bool reserve(buf_t *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void putn(buf_t *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(buf_t *b, const char *s)
{
    putn(b, s, strlen(s));
}

/* Markup and numbers only: never a string from outside (those go to esc). */
static void putf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* HTML text of s[0..n): the five markup characters as entities, control
 * bytes and invalid UTF-8 as U+FFFD. */
static void escn(buf_t *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: bytes since i that need no change */
    while (i + run < n) {
        unsigned char c = u[i + run];
        const char *rep = NULL;
        size_t adv = 1;
        if (c == '&')
            rep = "&amp;";
        else if (c == '<')
            rep = "&lt;";
        else if (c == '>')
            rep = "&gt;";
        else if (c == '"')
            rep = "&quot;";
        else if (c == '\'')
            rep = "&#39;";
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            rep = "\xEF\xBF\xBD";
        else if (c == 0x7f)
            rep = "\xEF\xBF\xBD";
        else if (c >= 0x80) {
            size_t l = kcw_text_utf8_len(u + i + run, n - i - run);
            if (l == 0)
                rep = "\xEF\xBF\xBD";
            else {
                run += l;
                continue;
            }
        }
        if (!rep) {
            run++;
            continue;
        }
        putn(b, s + i, run);
        put(b, rep);
        i += run + adv;
        run = 0;
    }
    putn(b, s + i, run);
}

static void esc(buf_t *b, const char *s)
{
    if (s)
        escn(b, s, strlen(s));
}

/* s, or "—" when NULL or empty. */
static void esc_or_dash(buf_t *b, const char *s)
{
    if (s && *s)
        esc(b, s);
    else
        put(b, "\xE2\x80\x94");
}

char *kcw_statuspage_escape(const char *s, size_t n)
{
    buf_t b = {0};
    putn(&b, "", 0); /* "" for NULL too */
    if (s)
        escn(&b, s, n);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* --- pieces ---------------------------------------------------------------- */

static void put_time(buf_t *b, int64_t ms)
{
    if (ms <= 0) {
        put(b, "never");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char text[40];
    if (!gmtime_r(&t, &tm) || strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
        put(b, "?");
        return;
    }
    put(b, text);
}

/* "12 s", "4 min", "3 h", "2 d" */
static void put_span(buf_t *b, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (s < 120)
        putf(b, "%lld s", (long long)s);
    else if (s < 7200)
        putf(b, "%lld min", (long long)(s / 60));
    else if (s < 2 * 86400)
        putf(b, "%lld h", (long long)(s / 3600));
    else
        putf(b, "%lld d", (long long)(s / 86400));
}

/* <time>absolute</time> (age ago | in span) */
static void put_when(buf_t *b, int64_t ms, int64_t now_ms)
{
    if (ms <= 0) {
        put(b, "never");
        return;
    }
    put(b, "<span class=\"when\">");
    put_time(b, ms);
    put(b, "</span> <span class=\"age\">(");
    if (ms <= now_ms) {
        put_span(b, now_ms - ms);
        put(b, " ago)</span>");
    } else {
        put(b, "in ");
        put_span(b, ms - now_ms);
        put(b, ")</span>");
    }
}

/* A state badge; the class is derived from a fixed set, never from input. */
static void put_badge(buf_t *b, const char *state)
{
    static const char *const known[] = {
        "RUNNING", "FAILED", "PAUSED",  "UNASSIGNED", "RESTARTING", "STOPPED", "UNREACHABLE",
        "UNREADABLE", "UNKNOWN", "firing", "pending", "healing",   "healed",  "failed",
        "unfixable", "held",   "budget spent", "skipped", "dry run", "active",   "expired",
        "ok",       "err",     "sent",    "recovered", "unrecoverable", "budget_exhausted",
        "retry",    "stable",  "dropped", "dry_run"};
    const char *cls = "other";
    for (size_t i = 0; state && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(state, known[i]) == 0) {
            cls = known[i];
            break;
        }
    put(b, "<span class=\"badge b-");
    for (const char *c = cls; *c; c++)
        putn(b, *c == ' ' ? "-" : c, 1);
    put(b, "\">");
    esc_or_dash(b, state);
    put(b, "</span>");
}

static void put_target(buf_t *b, const char *connector, int task)
{
    put(b, "<span class=\"name\">");
    esc_or_dash(b, connector);
    put(b, "</span>");
    if (task >= 0)
        putf(b, " task %d", task);
}

/* First line of a trace as the summary, the whole (cut) trace inside. */
static void put_trace(buf_t *b, const char *trace)
{
    if (!trace || !*trace) {
        put(b, "\xE2\x80\x94");
        return;
    }
    size_t len = strlen(trace);
    const char *nl = strchr(trace, '\n');
    size_t first = nl ? (size_t)(nl - trace) : len;
    if (first > 300)
        first = 300;
    put(b, "<details class=\"trace\"><summary>");
    if (first == 0)
        put(b, "(trace)");
    escn(b, trace, first);
    put(b, "</summary><pre>");
    size_t shown = len > KCW_STATUSPAGE_TRACE_MAX ? KCW_STATUSPAGE_TRACE_MAX : len;
    /* do not cut inside a UTF-8 sequence: back up to a lead byte */
    while (shown < len && shown > 0 && ((unsigned char)trace[shown] & 0xC0) == 0x80)
        shown--;
    escn(b, trace, shown);
    if (shown < len)
        putf(b, "\n\xE2\x80\xA6 (%zu more bytes not shown)", len - shown);
    put(b, "</pre></details>");
}

static void put_labels(buf_t *b, const kcw_labels_t *l, const char *skip)
{
    if (!l || l->n == 0) {
        put(b, "\xE2\x80\x94");
        return;
    }
    put(b, "<span class=\"labels\">");
    for (size_t i = 0; i < l->n; i++) {
        if (skip && strcmp(l->items[i].name, skip) == 0)
            continue;
        put(b, "<span class=\"label\">");
        esc(b, l->items[i].name);
        put(b, "=&quot;");
        esc(b, l->items[i].value);
        put(b, "&quot;</span> ");
    }
    put(b, "</span>");
}

typedef struct links {
    size_t page, alerts_page;
    unsigned refresh_s;
} links_t;

static void put_href(buf_t *b, links_t l, const char *anchor)
{
    putf(b, "/?page=%zu&amp;alerts=%zu", l.page ? l.page : 1, l.alerts_page ? l.alerts_page : 1);
    if (l.refresh_s)
        putf(b, "&amp;refresh=%u", l.refresh_s);
    if (anchor)
        putf(b, "#%s", anchor);
}

/* "Showing 201–400 of 20,000" with previous/next links. which: 0 = the
 * not-RUNNING list, 1 = alerts. */
static void put_pager(buf_t *b, const kcw_statuspage_t *st, size_t offset, size_t n, size_t total,
                      int which, const char *anchor)
{
    if (total <= n && offset == 0)
        return;
    put(b, "<p class=\"pager\">");
    if (n == 0)
        putf(b, "No rows on this page (%zu in all). ", total);
    else
        putf(b, "Showing %zu\xE2\x80\x93%zu of %zu. ", offset + 1, offset + n, total);
    links_t l = {st->page, st->alerts_page, st->refresh_s};
    size_t *cur = which == 0 ? &l.page : &l.alerts_page;
    size_t here = *cur ? *cur : 1;
    if (here > 1) {
        *cur = here - 1;
        put(b, "<a href=\"");
        put_href(b, l, anchor);
        put(b, "\">previous page</a> ");
    }
    if (offset + n < total) {
        *cur = here + 1;
        put(b, "<a href=\"");
        put_href(b, l, anchor);
        putf(b, "\">next page</a> (%zu more)", total - offset - n);
    }
    put(b, "</p>");
}

/* "N more not shown" under a short list. */
static void put_more(buf_t *b, size_t n, size_t total, const char *where)
{
    if (total > n)
        putf(b, "<p class=\"more\">%zu more not shown (%s).</p>", total - n, where);
}

static void section_open(buf_t *b, const char *id, const char *title)
{
    putf(b, "<section id=\"%s\"><h2>%s", id, title);
}

/* --- sections -------------------------------------------------------------- */

static void put_summary(buf_t *b, const kcw_statuspage_t *st)
{
    size_t down = 0;
    for (size_t i = 0; i < st->clusters.n; i++)
        down += strcmp(st->clusters.rows[i].state ? st->clusters.rows[i].state : "", "RUNNING") != 0;
    bool self_ok = st->reload_ok && st->ready;
    for (size_t i = 0; i < st->groups.n; i++)
        self_ok &= st->groups.rows[i].n_err == 0;
    if (st->ha_enabled)
        self_ok &= st->ha_lease_ok;
    bool all_clear = down == 0 && st->problems.total == 0 && st->n_firing == 0;
    putf(b, "<ul class=\"summary %s\">", all_clear ? "clear" : "trouble");
    putf(b, "<li><a href=\"#clusters\">%zu of %zu cluster(s) not healthy</a></li>", down,
         st->clusters.total);
    putf(b, "<li><a href=\"#broken\">%zu connector(s) and task(s) not RUNNING</a></li>",
         st->problems.total);
    putf(b, "<li><a href=\"#alerts\">%zu alert(s) firing, %zu pending</a></li>", st->n_firing,
         st->n_pending);
    putf(b, "<li><a href=\"#held\">%zu restart(s) held</a>, <a href=\"#budgets\">%zu budget(s) "
            "spent</a></li>",
         st->holds.total, st->budgets.total);
    putf(b, "<li><a href=\"#self\">kcwatch %s</a></li>",
         self_ok ? "is healthy" : "needs attention");
    put(b, "</ul>");
}

static void put_clusters(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "clusters", "Clusters");
    put(b, "</h2>");
    if (st->clusters.n == 0) {
        put(b, "<p class=\"none\">No Connect cluster configured.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>cluster</th><th>state</th><th>version</th><th>last poll</th>"
           "<th>connectors</th><th>tasks</th><th>not RUNNING</th><th>worker</th>");
    if (st->ha_enabled)
        put(b, "<th>owner (HA)</th>");
    put(b, "</tr></thead><tbody>");
    for (size_t i = 0; i < st->clusters.n; i++) {
        const kcw_statuspage_cluster_t *c = &st->clusters.rows[i];
        put(b, "<tr><td class=\"name\">");
        esc(b, c->name);
        put(b, "</td><td>");
        put_badge(b, c->state);
        if (c->last_error) {
            put(b, "<div class=\"error\">");
            esc(b, c->last_error);
            put(b, "</div>");
        }
        put(b, "</td><td>");
        esc_or_dash(b, c->version);
        put(b, "</td><td>");
        put_when(b, c->last_poll_ms, st->now_ms);
        putf(b, "</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td>"
                "<td>",
             c->n_connectors, c->n_tasks, c->n_not_running);
        esc_or_dash(b, c->worker_url);
        put(b, "</td>");
        if (st->ha_enabled) {
            put(b, "<td>");
            esc_or_dash(b, c->ha_owner);
            if (c->ha_acting)
                put(b, " (this instance)");
            put(b, "</td>");
        }
        put(b, "</tr>");
    }
    put(b, "</tbody></table></section>");
}

static void put_problems(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "broken", "Connectors and tasks not RUNNING");
    putf(b, " <span class=\"count\">(%zu)</span></h2>", st->problems.total);
    if (st->problems.total == 0) {
        put(b, "<p class=\"none\">none: every connector and task is RUNNING.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>cluster</th><th>connector / task</th><th>state</th>"
           "<th>type</th><th>worker</th><th>trace (first line; open for all)</th></tr></thead>"
           "<tbody>");
    for (size_t i = 0; i < st->problems.n; i++) {
        const kcw_statuspage_problem_t *p = &st->problems.rows[i];
        put(b, "<tr><td>");
        esc(b, p->cluster);
        put(b, "</td><td>");
        put_target(b, p->connector, p->task);
        put(b, "</td><td>");
        put_badge(b, p->state);
        put(b, "</td><td>");
        esc_or_dash(b, p->type);
        put(b, "</td><td>");
        esc_or_dash(b, p->worker_id);
        put(b, "</td><td>");
        put_trace(b, p->trace);
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_pager(b, st, st->problems.offset, st->problems.n, st->problems.total, 0, "broken");
    put(b, "</section>");
}

static void put_alerts(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "alerts", "Alerts");
    putf(b, " <span class=\"count\">(%zu firing, %zu pending)</span></h2>", st->n_firing,
         st->n_pending);
    if (st->alerts.total == 0) {
        put(b, "<p class=\"none\">none firing or pending.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>alert</th><th>state</th><th>active since</th><th>labels</th>"
           "<th>remediation</th><th>summary</th></tr></thead><tbody>");
    for (size_t i = 0; i < st->alerts.n; i++) {
        const kcw_statuspage_alert_t *a = &st->alerts.rows[i];
        put(b, "<tr><td class=\"name\">");
        esc(b, a->alertname);
        put(b, "</td><td>");
        put_badge(b, a->state);
        put(b, "</td><td>");
        put_when(b, a->active_at_ms, st->now_ms);
        put(b, "</td><td>");
        put_labels(b, a->labels, "alertname");
        put(b, "</td><td>");
        if (a->remediation)
            put_badge(b, a->remediation);
        if (a->note) {
            put(b, "<div class=\"note\">");
            esc(b, a->note);
            put(b, "</div>");
        }
        if (!a->remediation && !a->note)
            put(b, "\xE2\x80\x94");
        put(b, "</td><td>");
        const char *summary = a->annotations ? kcw_labels_get(a->annotations, "summary") : NULL;
        if (!summary && a->annotations)
            summary = kcw_labels_get(a->annotations, "description");
        if (a->annotations && a->annotations->n > 0) {
            put(b, "<details><summary>");
            esc_or_dash(b, summary);
            put(b, "</summary><dl>");
            for (size_t k = 0; k < a->annotations->n; k++) {
                put(b, "<dt>");
                esc(b, a->annotations->items[k].name);
                put(b, "</dt><dd>");
                esc(b, a->annotations->items[k].value);
                put(b, "</dd>");
            }
            put(b, "</dl></details>");
        } else {
            put(b, "\xE2\x80\x94");
        }
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_pager(b, st, st->alerts.offset, st->alerts.n, st->alerts.total, 1, "alerts");
    put(b, "</section>");
}

static void put_events(buf_t *b, const kcw_statuspage_t *st, bool restarts)
{
    const kcw_statuspage_event_t *rows = restarts ? st->restarts.rows : st->notifications.rows;
    size_t n = restarts ? st->restarts.n : st->notifications.n;
    size_t total = restarts ? st->restarts.total : st->notifications.total;
    section_open(b, restarts ? "restarts" : "notifications",
                 restarts ? "Last restarts" : "Last notifications");
    put(b, " <span class=\"count\">(audit log)</span></h2>");
    if (!st->audit_available) {
        put(b, "<p class=\"none\">");
        if (st->audit_error) {
            put(b, "The audit log cannot be read: ");
            esc(b, st->audit_error);
        } else {
            put(b, "No state store: there is no audit log.");
        }
        put(b, "</p></section>");
        return;
    }
    if (n == 0) {
        put(b, "<p class=\"none\">none recorded.</p></section>");
        return;
    }
    if (restarts)
        put(b, "<table><thead><tr><th>time</th><th>cluster</th><th>connector / task</th>"
               "<th>event</th><th>outcome</th><th>request</th></tr></thead><tbody>");
    else
        put(b, "<table><thead><tr><th>time</th><th>receiver</th><th>status</th><th>HTTP</th>"
               "<th>group</th></tr></thead><tbody>");
    for (size_t i = 0; i < n; i++) {
        const kcw_statuspage_event_t *e = &rows[i];
        put(b, "<tr><td>");
        put_when(b, e->time_ms, st->now_ms);
        put(b, "</td><td>");
        if (restarts) {
            esc_or_dash(b, e->cluster);
            put(b, "</td><td>");
            put_target(b, e->connector, e->task);
            put(b, "</td><td>");
            put_badge(b, e->what);
            put(b, "</td><td>");
            esc_or_dash(b, e->detail);
            put(b, "</td><td><code>");
            esc_or_dash(b, e->request);
            put(b, "</code>");
            if (e->http_status)
                putf(b, " \xE2\x86\x92 %ld", e->http_status);
        } else {
            esc_or_dash(b, e->request);
            put(b, "</td><td>");
            put_badge(b, e->what);
            put(b, "</td><td>");
            if (e->http_status)
                putf(b, "%ld", e->http_status);
            else
                put(b, "\xE2\x80\x94");
            put(b, "</td><td><code>");
            esc_or_dash(b, e->detail);
            put(b, "</code>");
        }
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    if (total > n)
        put(b, "<p class=\"more\">Older entries: <code>kcwatch history</code>.</p>");
    put(b, "</section>");
}

static void put_holds(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "held", "Held restarts");
    putf(b, " <span class=\"count\">(%zu)</span></h2>", st->holds.total);
    if (st->holds.n == 0) {
        put(b, "<p class=\"none\">none: kcwatch holds back no restart.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>cluster</th><th>connector / task</th><th>held because</th>"
           "<th>reason</th></tr></thead><tbody>");
    for (size_t i = 0; i < st->holds.n; i++) {
        const kcw_statuspage_hold_t *h = &st->holds.rows[i];
        put(b, "<tr><td>");
        esc_or_dash(b, h->cluster);
        put(b, "</td><td>");
        put_target(b, h->connector, h->task);
        put(b, "</td><td>");
        put_badge(b, h->kind);
        put(b, "</td><td>");
        esc_or_dash(b, h->reason);
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_more(b, st->holds.n, st->holds.total, "the first ones are shown");
    put(b, "</section>");
}

static void put_budgets(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "budgets", "Spent restart budgets");
    putf(b, " <span class=\"count\">(%zu)</span></h2>", st->budgets.total);
    if (st->budgets.n == 0) {
        put(b, "<p class=\"none\">none.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>cluster</th><th>connector / task</th><th>restarts</th>"
           "<th>window</th><th>room again</th></tr></thead><tbody>");
    for (size_t i = 0; i < st->budgets.n; i++) {
        const kcw_statuspage_budget_t *g = &st->budgets.rows[i];
        put(b, "<tr><td>");
        esc_or_dash(b, g->cluster);
        put(b, "</td><td>");
        put_target(b, g->connector, g->task);
        putf(b, "</td><td class=\"num\">%d of %d</td><td>", g->used, g->max);
        put_span(b, g->window_ms);
        put(b, "</td><td>");
        if (g->room_at_ms > 0)
            put_when(b, g->room_at_ms, st->now_ms);
        else
            put(b, "\xE2\x80\x94");
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_more(b, st->budgets.n, st->budgets.total, "the first ones are shown");
    put(b, "</section>");
}

static void put_storms(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "storms", "Storms in progress");
    putf(b, " <span class=\"count\">(%zu)</span></h2>", st->storms.total);
    if (!st->storms_available || st->storms.n == 0) {
        put(b, "<p class=\"none\">none.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>cluster</th><th>key</th><th>failing</th><th>since</th>"
           "<th>what kcwatch does</th></tr></thead><tbody>");
    for (size_t i = 0; i < st->storms.n; i++) {
        const kcw_statuspage_storm_t *s = &st->storms.rows[i];
        put(b, "<tr><td>");
        esc_or_dash(b, s->cluster);
        put(b, "</td><td>");
        esc_or_dash(b, s->key);
        putf(b, "</td><td class=\"num\">%zu</td><td>", s->n_failed);
        put_when(b, s->since_ms, st->now_ms);
        put(b, "</td><td>");
        esc_or_dash(b, s->action);
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_more(b, st->storms.n, st->storms.total, "the first ones are shown");
    put(b, "</section>");
}

static void put_silences(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "silences", "Silences");
    putf(b, " <span class=\"count\">(%zu)</span></h2>", st->silences.total);
    if (st->silences.n == 0) {
        put(b, "<p class=\"none\">none.</p></section>");
        return;
    }
    put(b, "<table><thead><tr><th>matchers</th><th>state</th><th>from</th><th>until</th>"
           "<th>by</th><th>comment</th></tr></thead><tbody>");
    for (size_t i = 0; i < st->silences.n; i++) {
        const kcw_statuspage_silence_t *s = &st->silences.rows[i];
        put(b, "<tr><td><code>");
        esc_or_dash(b, s->matchers);
        put(b, "</code><div class=\"id\">");
        if (s->from_config)
            put(b, "config");
        else
            esc(b, s->id);
        put(b, "</div></td><td>");
        put_badge(b, s->state);
        put(b, "</td><td>");
        if (s->starts_at_ms > 0)
            put_when(b, s->starts_at_ms, st->now_ms);
        else
            put(b, "always");
        put(b, "</td><td>");
        if (s->ends_at_ms > 0)
            put_when(b, s->ends_at_ms, st->now_ms);
        else
            put(b, "open-ended");
        put(b, "</td><td>");
        esc_or_dash(b, s->created_by);
        put(b, "</td><td>");
        esc_or_dash(b, s->comment);
        put(b, "</td></tr>");
    }
    put(b, "</tbody></table>");
    put_more(b, st->silences.n, st->silences.total, "GET /api/v2/silences lists them all");
    put(b, "</section>");
}

static void put_self(buf_t *b, const kcw_statuspage_t *st)
{
    section_open(b, "self", "kcwatch itself");
    put(b, "</h2><table class=\"kv\"><tbody>");
    put(b, "<tr><th>version</th><td>");
    esc_or_dash(b, st->version);
    put(b, "</td></tr><tr><th>configuration</th><td>");
    if (st->config_path)
        esc(b, st->config_path);
    else
        put(b, "built-in defaults");
    put(b, "</td></tr><tr><th>last reload</th><td>");
    put_badge(b, st->reload_ok ? "ok" : "failed");
    if (!st->reload_ok) {
        put(b, " the reload of ");
        put_when(b, st->reload_at_ms, st->now_ms);
        put(b, " was rejected (the log names every error); running on the configuration "
               "loaded ");
    } else {
        put(b, st->reload_at_ms ? " reloaded " : " loaded at start ");
    }
    put_when(b, st->reload_ok_ms, st->now_ms);
    put(b, "</td></tr><tr><th>ready</th><td>");
    put(b, st->ready ? "yes" : "no: no evaluation has completed yet");
    put(b, "</td></tr><tr><th>remediation</th><td>");
    put(b, !st->remediation_enabled ? "disabled" : st->dry_run ? "dry run (logs, restarts nothing)"
                                                               : "enabled");
    putf(b, "</td></tr><tr><th>notification outbox</th><td>%zu queued</td></tr>",
         st->outbox_length);
    put(b, "<tr><th>state store</th><td>");
    put(b, !st->store_open      ? "none"
           : st->store_durable ? "durable"
                               : "in memory only: state will not survive a restart (see the log)");
    put(b, "</td></tr><tr><th>high availability</th><td>");
    if (!st->ha_enabled) {
        put(b, "off (this instance acts for every cluster)");
    } else {
        put(b, "instance <span class=\"name\">");
        esc_or_dash(b, st->ha_instance);
        put(b, "</span>: ");
        put_badge(b, st->ha_lease_ok ? "ok" : "err");
        put(b, st->ha_lease_ok ? " etcd lease held" : " no etcd lease: acting for nothing");
        if (st->ha_error && *st->ha_error) {
            put(b, "<div class=\"error\">");
            esc(b, st->ha_error);
            put(b, "</div>");
        }
        if (st->ha_keys.n > 0) {
            put(b, "<ul class=\"owners\">");
            for (size_t i = 0; i < st->ha_keys.n; i++) {
                const kcw_statuspage_ha_key_t *k = &st->ha_keys.rows[i];
                put(b, "<li>");
                esc(b, k->key);
                put(b, ": ");
                esc_or_dash(b, k->owner);
                if (k->acting)
                    put(b, " (this instance)");
                put(b, "</li>");
            }
            put(b, "</ul>");
        }
    }
    put(b, "</td></tr></tbody></table>");
    put(b, "<h3>Rule groups</h3>");
    if (st->groups.n == 0) {
        put(b, "<p class=\"none\">No rule group loaded.</p>");
    } else {
        put(b, "<table><thead><tr><th>group</th><th>file</th><th>rules</th><th>health</th>"
               "<th>last evaluation</th><th>took</th></tr></thead><tbody>");
        for (size_t i = 0; i < st->groups.n; i++) {
            const kcw_statuspage_group_t *g = &st->groups.rows[i];
            put(b, "<tr><td class=\"name\">");
            esc(b, g->name);
            put(b, "</td><td>");
            esc_or_dash(b, g->file);
            putf(b, "</td><td class=\"num\">%zu</td><td>", g->n_rules);
            put_badge(b, g->n_err ? "err" : g->n_unknown == g->n_rules && g->n_rules ? "UNKNOWN"
                                                                                    : "ok");
            if (g->n_err)
                putf(b, " %zu failing", g->n_err);
            if (g->first_error) {
                put(b, "<div class=\"error\">");
                esc(b, g->first_error);
                put(b, "</div>");
            }
            put(b, "</td><td>");
            put_when(b, g->last_eval_ms, st->now_ms);
            putf(b, "</td><td class=\"num\">%.3f s</td></tr>", g->eval_seconds);
        }
        put(b, "</tbody></table>");
        put_more(b, st->groups.n, st->groups.total, "GET /api/v1/rules lists them all");
    }
    put(b, "</section>");
}

char *kcw_statuspage_render(const kcw_statuspage_t *st, size_t *len)
{
    buf_t b = {0};
    put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if (st->refresh_s > 0)
        putf(&b, "<meta http-equiv=\"refresh\" content=\"%u\">", st->refresh_s);
    putf(&b, "<title>kcwatch: %zu firing, %zu not running</title>", st->n_firing,
         st->problems.total);
    put(&b, "<link rel=\"stylesheet\" href=\"" KCW_STATUSPAGE_CSS_PATH "\"></head><body>\n");
    put(&b, "<header><h1>kcwatch</h1><p class=\"generated\">as of ");
    put_time(&b, st->now_ms);
    put(&b, " \xC2\xB7 ");
    links_t l = {st->page, st->alerts_page, st->refresh_s ? 0 : 30};
    put(&b, "<a href=\"");
    put_href(&b, l, NULL);
    put(&b, st->refresh_s ? "\">stop refreshing</a>" : "\">refresh every 30 s</a>");
    put(&b, " \xC2\xB7 <a href=\"/api/v1/alerts\">alerts JSON</a> \xC2\xB7 "
            "<a href=\"/metrics\">metrics</a></p>");
    put_summary(&b, st);
    put(&b, "</header><main>\n");
    /* What is broken */
    put_clusters(&b, st);
    put(&b, "\n");
    put_problems(&b, st);
    put(&b, "\n");
    put_alerts(&b, st);
    put(&b, "\n");
    /* What kcwatch did */
    put_events(&b, st, true);
    put(&b, "\n");
    put_events(&b, st, false);
    put(&b, "\n");
    /* What it holds back */
    put_holds(&b, st);
    put(&b, "\n");
    put_budgets(&b, st);
    put(&b, "\n");
    put_storms(&b, st);
    put(&b, "\n");
    put_silences(&b, st);
    put(&b, "\n");
    /* Is kcwatch healthy */
    put_self(&b, st);
    put(&b, "\n</main></body></html>\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

const char *kcw_statuspage_css(void)
{
    return "body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#1d1d1f;"
           "background:#fff}\n"
           "h1{font-size:1.5em;margin:.6em 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em;"
           "border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1em}\n"
           ".generated{color:#666;margin:0}.count{color:#666;font-weight:normal}\n"
           "ul.summary{list-style:none;padding:.5em .8em;margin:.6em 0;display:flex;"
           "flex-wrap:wrap;gap:.4em 1.6em;border-radius:4px}\n"
           "ul.summary.clear{background:#e8f5e9}ul.summary.trouble{background:#fdecea}\n"
           "ul.summary a{color:inherit}\n"
           "table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;"
           "padding:.25em .6em .25em 0;border-bottom:1px solid #eee}\n"
           "th{font-weight:600;color:#444}td.num{text-align:right}table.kv th{width:12em}\n"
           ".name{font-weight:600;overflow-wrap:anywhere}.none{color:#555}\n"
           "#alerts td.name{min-width:12em}\n"
           ".error{color:#b00020;font-size:.9em}.note{font-size:.9em;color:#333}\n"
           ".when{white-space:nowrap}.age{color:#666;white-space:nowrap}\n"
           ".label{display:inline-block;background:#f1f3f4;border-radius:3px;padding:0 .3em;"
           "margin:0 .2em .1em 0;font-size:.85em;word-break:break-all}\n"
           "details summary{cursor:pointer}details.trace summary{font-family:monospace;"
           "font-size:.85em;word-break:break-all}\n"
           "pre{white-space:pre-wrap;word-break:break-all;font-size:.8em;background:#f7f7f7;"
           "padding:.5em;max-height:30em;overflow:auto}\n"
           "code{font-size:.85em;word-break:break-all}.id{color:#777;font-size:.8em}\n"
           ".badge{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;"
           "background:#eee;white-space:nowrap}\n"
           ".b-RUNNING,.b-ok,.b-healed,.b-recovered,.b-sent,.b-stable{background:#e0f2e9;"
           "color:#145a32}\n"
           ".b-FAILED,.b-UNREACHABLE,.b-UNREADABLE,.b-firing,.b-failed,.b-err,.b-unfixable,"
           ".b-unrecoverable,.b-budget_exhausted,.b-budget-spent,.b-dropped{background:#fdecea;"
           "color:#8a1c1c}\n"
           ".b-pending,.b-healing,.b-RESTARTING,.b-UNASSIGNED,.b-held,.b-skipped,.b-retry,"
           ".b-dry-run,.b-dry_run{background:#fff4e0;color:#7a4a00}\n"
           ".b-PAUSED,.b-STOPPED,.b-active,.b-expired{background:#e8eaf6;color:#283593}\n"
           ".pager,.more{color:#555}\n";
}
