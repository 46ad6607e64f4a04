/*
 * metrics.c: the Prometheus registry. A family owns a list of series protected by its mutex,
 * which is taken only to create a series and to render; updates are atomic operations on a
 * series the caller already holds. Histogram counts are derived from the buckets when
 * rendering, so _count always equals the +Inf bucket.
 */
#include "cofre/metrics.h"

#include "cofre/common.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM, KIND_GAUGE_FN } metric_kind_t;

struct cofre_series {
    struct cofre_series *next;
    cofre_metric_t *metric;
    char *values[COFRE_METRIC_LABELS_MAX];
    _Atomic uint64_t value;    /* counter: count; gauge: bits of a double */
    _Atomic uint64_t sum_bits; /* histogram: bits of a double */
    _Atomic uint64_t buckets[COFRE_METRIC_BUCKETS_MAX + 1]; /* last is +Inf, not cumulative */
};

struct cofre_metric {
    struct cofre_metric *next;
    const char *name;
    const char *help;
    metric_kind_t kind;
    size_t nlabels;
    char *labels[COFRE_METRIC_LABELS_MAX];
    double buckets[COFRE_METRIC_BUCKETS_MAX];
    size_t nbuckets;
    double (*fn)(void *data);
    void *fn_data;
    pthread_mutex_t lock;
    cofre_series_t *series;
};

const double cofre_metric_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};
const size_t cofre_metric_latency_buckets_count = COFRE_ARRAY_SIZE(cofre_metric_latency_buckets);

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static cofre_metric_t *registry_head;
static cofre_metric_t **registry_tail = &registry_head;
static double process_start_s;
static cofre_metric_t *build_info;

static double bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

static void atomic_add_double(_Atomic uint64_t *target, double delta)
{
    uint64_t old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old,
                                                  double_to_bits(bits_to_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static cofre_metric_t *metric_new(const char *name, const char *help, const char *labels,
                                  metric_kind_t kind)
{
    cofre_metric_t *m = cofre_calloc(1, sizeof(*m));
    m->name = name;
    m->help = help;
    m->kind = kind;
    pthread_mutex_init(&m->lock, NULL);
    if (labels != NULL) {
        const char *p = labels;
        while (*p != '\0') {
            size_t len = strcspn(p, ",");
            COFRE_ASSERT(len > 0 && m->nlabels < COFRE_METRIC_LABELS_MAX);
            m->labels[m->nlabels++] = cofre_strndup(p, len);
            p += len;
            if (*p == ',')
                p++;
        }
    }
    pthread_mutex_lock(&registry_lock);
    for (cofre_metric_t *it = registry_head; it != NULL; it = it->next)
        COFRE_ASSERT(strcmp(it->name, name) != 0);
    *registry_tail = m;
    registry_tail = &m->next;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

cofre_metric_t *cofre_metric_counter(const char *name, const char *help, const char *labels)
{
    return metric_new(name, help, labels, KIND_COUNTER);
}

cofre_metric_t *cofre_metric_gauge(const char *name, const char *help, const char *labels)
{
    return metric_new(name, help, labels, KIND_GAUGE);
}

cofre_metric_t *cofre_metric_histogram(const char *name, const char *help, const char *labels,
                                       const double *buckets, size_t nbuckets)
{
    COFRE_ASSERT(nbuckets > 0 && nbuckets <= COFRE_METRIC_BUCKETS_MAX);
    cofre_metric_t *m = metric_new(name, help, labels, KIND_HISTOGRAM);
    for (size_t i = 0; i < nbuckets; i++) {
        COFRE_ASSERT(i == 0 || buckets[i] > buckets[i - 1]);
        m->buckets[i] = buckets[i];
    }
    m->nbuckets = nbuckets;
    return m;
}

void cofre_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *data), void *data)
{
    cofre_metric_t *m = metric_new(name, help, NULL, KIND_GAUGE_FN);
    m->fn = fn;
    m->fn_data = data;
}

static bool series_matches(const cofre_series_t *s, const char *const *values, size_t n)
{
    /* values holds as many entries as the family has labels (the caller's contract, which the
     * analyzer cannot see through the registry). */
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i]) != 0) // NOLINT(clang-analyzer-core.CallAndMessage)
            return false;
    return true;
}

cofre_series_t *cofre_metric_with(cofre_metric_t *m, const char *const *values)
{
    const size_t nlabels = m->nlabels; /* fixed at registration */
    COFRE_ASSERT(m->kind != KIND_GAUGE_FN);
    COFRE_ASSERT(nlabels == 0 || values != NULL);
    pthread_mutex_lock(&m->lock);
    cofre_series_t *s = m->series;
    while (s != NULL && !series_matches(s, values, nlabels))
        s = s->next;
    if (s == NULL) {
        s = cofre_calloc(1, sizeof(*s));
        s->metric = m;
        for (size_t i = 0; i < nlabels; i++)
            s->values[i] = cofre_strdup(values[i]); // NOLINT(clang-analyzer-core.CallAndMessage)
        if (m->kind == KIND_GAUGE)
            atomic_store(&s->value, double_to_bits(0.0));
        atomic_store(&s->sum_bits, double_to_bits(0.0));
        /* Append, so rendering order is creation order. */
        cofre_series_t **tail = &m->series;
        while (*tail != NULL)
            tail = &(*tail)->next;
        *tail = s;
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

void cofre_counter_inc(cofre_series_t *s)
{
    atomic_fetch_add_explicit(&s->value, 1, memory_order_relaxed);
}

void cofre_counter_add(cofre_series_t *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void cofre_gauge_set(cofre_series_t *s, double v)
{
    atomic_store_explicit(&s->value, double_to_bits(v), memory_order_relaxed);
}

void cofre_gauge_add(cofre_series_t *s, double delta)
{
    atomic_add_double(&s->value, delta);
}

void cofre_histogram_observe(cofre_series_t *s, double v)
{
    const cofre_metric_t *m = s->metric;
    size_t i = 0;
    while (i < m->nbuckets && v > m->buckets[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->sum_bits, v);
}

double cofre_series_value(const cofre_series_t *s)
{
    uint64_t raw = atomic_load_explicit(&s->value, memory_order_relaxed);
    return s->metric->kind == KIND_GAUGE ? bits_to_double(raw) : (double)raw;
}

void cofre_metrics_init(const char *service, const char *version, const char *revision)
{
    process_start_s = (double)cofre_now_wall_us() / 1e6;
    build_info =
        cofre_metric_gauge("cofre_build_info", "Build of this binary; the value is always 1.",
                           "service,version,revision");
    cofre_gauge_set(cofre_metric_with(build_info, (const char *[]){service, version, revision}), 1);
}

/* Text format escaping: label values escape \ " and newline; help text escapes \ and newline. */
static void append_escaped(cofre_jbuf_t *out, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            cofre_jbuf_append(out, "\\\\", 2);
        else if (*s == '\n')
            cofre_jbuf_append(out, "\\n", 2);
        else if (quote && *s == '"')
            cofre_jbuf_append(out, "\\\"", 2);
        else
            cofre_jbuf_append(out, s, 1);
    }
}

static void append_double(cofre_jbuf_t *out, double v)
{
    char tmp[32];
    int n;
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
        n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    else
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    cofre_jbuf_append(out, tmp, (size_t)n);
}

/* Writes name{labels[,le="x"]} for one sample. */
static void append_sample_name(cofre_jbuf_t *out, const cofre_metric_t *m, const cofre_series_t *s,
                               const char *suffix, const char *le)
{
    cofre_jbuf_appendz(out, m->name);
    cofre_jbuf_appendz(out, suffix);
    if (m->nlabels == 0 && le == NULL)
        return;
    cofre_jbuf_append(out, "{", 1);
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i > 0)
            cofre_jbuf_append(out, ",", 1);
        cofre_jbuf_appendz(out, m->labels[i]);
        cofre_jbuf_append(out, "=\"", 2);
        append_escaped(out, s->values[i], true);
        cofre_jbuf_append(out, "\"", 1);
    }
    if (le != NULL) {
        if (m->nlabels > 0)
            cofre_jbuf_append(out, ",", 1);
        cofre_jbuf_append(out, "le=\"", 4);
        cofre_jbuf_appendz(out, le);
        cofre_jbuf_append(out, "\"", 1);
    }
    cofre_jbuf_append(out, "}", 1);
}

static void render_histogram(cofre_jbuf_t *out, const cofre_metric_t *m, const cofre_series_t *s)
{
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i <= m->nbuckets; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < m->nbuckets)
            snprintf(le, sizeof(le), "%g", m->buckets[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        append_sample_name(out, m, s, "_bucket", le);
        cofre_jbuf_append(out, " ", 1);
        cofre_jbuf_append_uint(out, cumulative);
        cofre_jbuf_append(out, "\n", 1);
    }
    append_sample_name(out, m, s, "_sum", NULL);
    cofre_jbuf_append(out, " ", 1);
    append_double(out, bits_to_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)));
    cofre_jbuf_append(out, "\n", 1);
    append_sample_name(out, m, s, "_count", NULL);
    cofre_jbuf_append(out, " ", 1);
    cofre_jbuf_append_uint(out, cumulative);
    cofre_jbuf_append(out, "\n", 1);
}

static void render_family(cofre_jbuf_t *out, cofre_metric_t *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram", "gauge"};
    cofre_jbuf_appendz(out, "# HELP ");
    cofre_jbuf_appendz(out, m->name);
    cofre_jbuf_append(out, " ", 1);
    append_escaped(out, m->help, false);
    cofre_jbuf_appendz(out, "\n# TYPE ");
    cofre_jbuf_appendz(out, m->name);
    cofre_jbuf_append(out, " ", 1);
    cofre_jbuf_appendz(out, type_names[m->kind]);
    cofre_jbuf_append(out, "\n", 1);
    if (m->kind == KIND_GAUGE_FN) {
        cofre_jbuf_appendz(out, m->name);
        cofre_jbuf_append(out, " ", 1);
        append_double(out, m->fn(m->fn_data));
        cofre_jbuf_append(out, "\n", 1);
        return;
    }
    pthread_mutex_lock(&m->lock);
    for (const cofre_series_t *s = m->series; s != NULL; s = s->next) {
        if (m->kind == KIND_HISTOGRAM) {
            render_histogram(out, m, s);
            continue;
        }
        append_sample_name(out, m, s, "", NULL);
        cofre_jbuf_append(out, " ", 1);
        append_double(out, cofre_series_value(s));
        cofre_jbuf_append(out, "\n", 1);
    }
    pthread_mutex_unlock(&m->lock);
}

static void render_process_metric(cofre_jbuf_t *out, const char *name, const char *type,
                                  const char *help, double value)
{
    cofre_jbuf_appendz(out, "# HELP ");
    cofre_jbuf_appendz(out, name);
    cofre_jbuf_append(out, " ", 1);
    cofre_jbuf_appendz(out, help);
    cofre_jbuf_appendz(out, "\n# TYPE ");
    cofre_jbuf_appendz(out, name);
    cofre_jbuf_append(out, " ", 1);
    cofre_jbuf_appendz(out, type);
    cofre_jbuf_append(out, "\n", 1);
    cofre_jbuf_appendz(out, name);
    cofre_jbuf_append(out, " ", 1);
    append_double(out, value);
    cofre_jbuf_append(out, "\n", 1);
}

static double count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static void render_process(cofre_jbuf_t *out)
{
    /* /proc/self/stat fields 14-15 (utime, stime in ticks), 23 (vsize bytes), 24 (rss pages). */
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        int n =
            fscanf(f,
                   "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                   "%*d %*d %*u %lu %ld",
                   &utime, &stime, &vsize, &rss);
        fclose(f);
        if (n != 4)
            utime = stime = vsize = 0, rss = 0;
    }
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    render_process_metric(out, "process_cpu_seconds_total", "counter",
                          "Total user and system CPU time spent in seconds.",
                          (double)(utime + stime) / ticks);
    render_process_metric(out, "process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.", (double)rss * page);
    render_process_metric(out, "process_virtual_memory_bytes", "gauge",
                          "Virtual memory size in bytes.", (double)vsize);
    render_process_metric(out, "process_start_time_seconds", "gauge",
                          "Start time of the process since unix epoch in seconds.",
                          process_start_s);
    render_process_metric(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                          count_open_fds());
    render_process_metric(out, "process_max_fds", "gauge",
                          "Maximum number of open file descriptors.", (double)rl.rlim_cur);
}

void cofre_metrics_render(cofre_jbuf_t *out)
{
    pthread_mutex_lock(&registry_lock);
    for (cofre_metric_t *m = registry_head; m != NULL; m = m->next)
        render_family(out, m);
    pthread_mutex_unlock(&registry_lock);
    render_process(out);
}
