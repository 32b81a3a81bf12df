/*
 * log_verify.c: check the logs queue_node processes kept. See log_verify.h.
 */
#define _GNU_SOURCE /* open, read */
#include "log_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

/* ---- payloads, interned ------------------------------------------------- */

/* Every distinct payload once, numbered from 0; the text in large chunks
 * (millions of payloads: one malloc each would double their memory). */
struct interner {
    char **strings;
    size_t n_strings;
    uint64_t *slots; /* open addressing: hash << 32 | (string id + 1), 0 = empty */
    size_t n_slots;
    char *arena;     /* the free end of the last chunk */
    size_t arena_left;
    char **chunks;
    size_t n_chunks;
};

#define ARENA_CHUNK ((size_t)4 << 20)

static uint64_t hash_str(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* A slot keeps the low 32 bits of its string's hash: enough to place it
 * (there are fewer than 2^32 slots), and a string is compared only when
 * they match. */
static void intern_grow(struct interner *in)
{
    size_t old = in->n_slots;
    uint64_t *old_slots = in->slots;
    in->n_slots = old ? old * 2 : 1 << 16;
    in->slots = xcalloc(in->n_slots, sizeof *in->slots);
    for (size_t i = 0; i < old; i++) {
        if (old_slots[i] == 0)
            continue;
        size_t j = (size_t)(old_slots[i] >> 32) & (in->n_slots - 1);
        while (in->slots[j] != 0)
            j = (j + 1) & (in->n_slots - 1);
        in->slots[j] = old_slots[i];
    }
    free(old_slots);
}

static char *arena_copy(struct interner *in, const char *s, size_t len)
{
    if (len + 1 > in->arena_left) {
        size_t size = len + 1 > ARENA_CHUNK ? len + 1 : ARENA_CHUNK;
        if ((in->n_chunks & (in->n_chunks - 1)) == 0) /* grow at powers of two */
            in->chunks = xrealloc(in->chunks,
                                  (in->n_chunks ? 2 * in->n_chunks : 1) * sizeof *in->chunks);
        in->arena = xrealloc(NULL, size);
        in->chunks[in->n_chunks++] = in->arena;
        in->arena_left = size;
    }
    char *d = in->arena;
    memcpy(d, s, len);
    d[len] = '\0';
    in->arena += len + 1;
    in->arena_left -= len + 1;
    return d;
}

/* The id of the len bytes at s (no NUL among them). */
static uint32_t intern(struct interner *in, const char *s, size_t len)
{
    if (2 * (in->n_strings + 1) > in->n_slots)
        intern_grow(in);
    uint64_t tag = hash_str(s, len) << 32;
    size_t j = (size_t)(tag >> 32) & (in->n_slots - 1);
    while (in->slots[j] != 0) {
        if ((in->slots[j] & 0xffffffff00000000ull) == tag) {
            uint32_t id = (uint32_t)in->slots[j] - 1;
            const char *t = in->strings[id];
            if (strncmp(t, s, len) == 0 && t[len] == '\0')
                return id;
        }
        j = (j + 1) & (in->n_slots - 1);
    }
    size_t n = in->n_strings;
    if ((n & (n - 1)) == 0) /* grow at powers of two */
        in->strings = xrealloc(in->strings, (n ? 2 * n : 1) * sizeof *in->strings);
    in->strings[n] = arena_copy(in, s, len);
    in->slots[j] = tag | ((uint64_t)n + 1);
    in->n_strings++;
    return (uint32_t)n;
}

static void intern_free(struct interner *in)
{
    for (size_t i = 0; i < in->n_chunks; i++)
        free(in->chunks[i]);
    free(in->chunks);
    free(in->strings);
    free(in->slots);
    memset(in, 0, sizeof *in);
}

/* ---- the logs ------------------------------------------------------------ */

/* One group's entries, in the order a file lists them. */
struct seq {
    uint64_t *index;
    uint32_t *payload;
    uint64_t *hash;   /* the group's state after the line (0: not given) */
    bool *restore;    /* a restored snapshot, not an applied entry */
    size_t n, cap;
};

static void seq_push(struct seq *s, uint64_t index, uint32_t payload, uint64_t hash,
                     bool restore)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->index = xrealloc(s->index, s->cap * sizeof *s->index);
        s->payload = xrealloc(s->payload, s->cap * sizeof *s->payload);
        s->hash = xrealloc(s->hash, s->cap * sizeof *s->hash);
        s->restore = xrealloc(s->restore, s->cap * sizeof *s->restore);
    }
    s->index[s->n] = index;
    s->payload[s->n] = payload;
    s->hash[s->n] = hash;
    s->restore[s->n] = restore;
    s->n++;
}

/* A log file: per group (1..groups), its entries. */
struct log {
    struct seq *groups;
    size_t lines;
    bool exists;
};

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* A decimal number after optional blanks; NULL if there is none. */
static const char *parse_dec(const char *p, const char *end, uint64_t *v)
{
    while (p < end && is_space(*p))
        p++;
    const char *start = p;
    uint64_t x = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        x = x * 10 + (uint64_t)(*p - '0');
    *v = x;
    return p > start ? p : NULL;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* One line, [p, end) without its newline: "<group> <index> <payload>
 * [<hash>]" (the hash in hex; 0 if missing). */
static void parse_line(struct interner *in, const char *p, const char *end, unsigned groups,
                       struct log *log, size_t *bad_lines)
{
    uint64_t g, idx, hash = 0;
    p = parse_dec(p, end, &g);
    if (p != NULL)
        p = parse_dec(p, end, &idx);
    if (p == NULL || g == 0 || g > groups) {
        (*bad_lines)++;
        return;
    }
    while (p < end && is_space(*p))
        p++;
    const char *payload = p;
    while (p < end && !is_space(*p) && *p != '\0')
        p++;
    size_t len = (size_t)(p - payload);
    if (len == 0) {
        (*bad_lines)++;
        return;
    }
    while (p < end && is_space(*p))
        p++;
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && hex_digit(p[2]) >= 0)
        p += 2;
    for (int d; p < end && (d = hex_digit(*p)) >= 0; p++)
        hash = hash << 4 | (uint64_t)d;
    bool restore = len >= 8 && memcmp(payload, "restore:", 8) == 0;
    seq_push(&log->groups[g], idx, intern(in, payload, len), hash, restore);
    log->lines++;
}

/* Read "<group> <index> <payload> [<hash>]" lines. A line cut short (no
 * newline at the end) is ignored: a SIGKILL during a write. */
static void read_log(struct interner *in, const char *path, unsigned groups, struct log *log,
                     size_t *bad_lines)
{
    log->groups = xcalloc(groups + 1, sizeof *log->groups);
    log->lines = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    log->exists = fd >= 0;
    if (fd < 0)
        return;
    size_t cap = (size_t)1 << 20, len = 0;
    char *buf = xrealloc(NULL, cap);
    for (;;) {
        if (len == cap) { /* a line longer than the buffer */
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fprintf(stderr, "log_verify: reading %s: %s\n", path, strerror(errno));
        if (r <= 0)
            break;
        len += (size_t)r;
        const char *p = buf, *end = buf + len, *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            parse_line(in, p, nl, groups, log, bad_lines);
            p = nl + 1;
        }
        len = (size_t)(end - p);
        memmove(buf, p, len);
    }
    free(buf);
    close(fd);
}

static void free_log(struct log *log, unsigned groups)
{
    if (log->groups == NULL)
        return;
    for (unsigned g = 0; g <= groups; g++) {
        free(log->groups[g].index);
        free(log->groups[g].payload);
        free(log->groups[g].hash);
        free(log->groups[g].restore);
    }
    free(log->groups);
    log->groups = NULL;
}

/* ---- the checks ------------------------------------------------------------ */

struct ctx {
    lv_check_fn fn;
    void *arg;
    lv_summary *sum;
};

static void check(struct ctx *x, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(struct ctx *x, bool ok, const char *fmt, ...)
{
    char what[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ok)
        x->sum->passed++;
    else
        x->sum->failed++;
    x->fn(x->arg, ok, what);
}

/* A failure counted, not described. */
static void check_quiet_failure(struct ctx *x)
{
    x->sum->failed++;
    x->fn(x->arg, false, NULL);
}

/* One line of any applied log of a group, for comparing across them. */
struct seen_line {
    uint64_t index, hash;
    uint32_t payload;
    bool restore;
};

static int by_index(const void *a, const void *b)
{
    const struct seen_line *x = a, *y = b;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return (int)x->restore - (int)y->restore; /* entries before restores */
}

/* The first line at `index` in v (sorted by index), or SIZE_MAX. */
static size_t lines_find(const struct seen_line *v, size_t n, uint64_t index)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].index == index ? lo : SIZE_MAX;
}

bool lv_verify(const qc_cluster *c, unsigned groups, lv_check_fn fn, void *arg,
               lv_summary *out)
{
    memset(out, 0, sizeof *out);
    struct ctx x = {fn, arg, out};
    struct interner in;
    memset(&in, 0, sizeof in);
    const size_t nodes = c->n;

    /* Every incarnation's applied log; the last one of each node apart. */
    struct log **logs = xcalloc(nodes, sizeof *logs);
    size_t *n_logs = xcalloc(nodes, sizeof *n_logs);
    size_t bad_lines = 0, files = 0, entries = 0, final_entries = 0, restores = 0;
    for (size_t i = 0; i < nodes; i++) {
        const qc_proc *p = &c->procs[i];
        n_logs[i] = p->n_incarnations ? p->n_incarnations : 1; /* never started: missing */
        logs[i] = xcalloc(n_logs[i], sizeof *logs[i]);
        for (size_t k = 0; k < n_logs[i]; k++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/applied.%d.log", p->dir,
                     p->n_incarnations ? (int)p->incarnations[k] : 0);
            read_log(&in, path, groups, &logs[i][k], &bad_lines);
            files += logs[i][k].exists;
            entries += logs[i][k].lines;
        }
        check(&x, logs[i][n_logs[i] - 1].exists, "node %zu: its last applied log is missing",
              i + 1);
        final_entries += logs[i][n_logs[i] - 1].lines;
    }

    /* Acknowledged proposals, from every node's acked.log. */
    struct log *acked = xcalloc(nodes, sizeof *acked);
    size_t n_acked = 0;
    for (size_t i = 0; i < nodes; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/acked.log", c->procs[i].dir);
        read_log(&in, path, groups, &acked[i], &bad_lines);
        n_acked += acked[i].lines;
    }
    check(&x, bad_lines == 0, "%zu log lines could not be parsed", bad_lines);
    check(&x, n_acked > 0, "no proposal was acknowledged");

    /* order: per incarnation, per group, indexes increase, payloads unique. */
    uint32_t *seen = xcalloc(in.n_strings + 1, sizeof *seen); /* stamp per (file, group) */
    uint32_t stamp = 0;
    for (unsigned g = 1; g <= groups; g++) {
        bool ok = true;
        for (size_t i = 0; i < nodes; i++)
            for (size_t k = 0; k < n_logs[i]; k++) {
                const struct seq *s = &logs[i][k].groups[g];
                stamp++;
                for (size_t e = 0; e < s->n; e++) {
                    restores += s->restore[e];
                    if (e > 0 && s->index[e] <= s->index[e - 1]) {
                        check(&x, false,
                              "group %u, node %zu pid %d: index %" PRIu64 " %s after %" PRIu64,
                              g, i + 1, (int)c->procs[i].incarnations[k], s->index[e],
                              s->restore[e] ? "restored" : "applied", s->index[e - 1]);
                        ok = false;
                        break;
                    }
                    if (s->restore[e])
                        continue;
                    if (seen[s->payload[e]] == stamp) {
                        check(&x, false, "group %u, node %zu pid %d: \"%s\" applied twice", g,
                              i + 1, (int)c->procs[i].incarnations[k],
                              in.strings[s->payload[e]]);
                        ok = false;
                        break;
                    }
                    seen[s->payload[e]] = stamp;
                }
            }
        if (ok)
            check(&x, true, "order");
    }
    free(seen);

    /* state, unique, agreement and acked, group by group, over every line
     * of every log. */
    uint64_t *at_index = xcalloc(in.n_strings + 1, sizeof *at_index); /* payload -> index */
    uint32_t *at_stamp = xcalloc(in.n_strings + 1, sizeof *at_stamp);
    size_t states_compared = 0, missing = 0;
    struct seen_line *v = NULL;
    size_t cap_v = 0;
    for (unsigned g = 1; g <= groups; g++) {
        size_t n = 0;
        for (size_t i = 0; i < nodes; i++)
            for (size_t k = 0; k < n_logs[i]; k++) {
                const struct seq *s = &logs[i][k].groups[g];
                if (n + s->n > cap_v) {
                    cap_v = 2 * (n + s->n);
                    v = xrealloc(v, cap_v * sizeof *v);
                }
                for (size_t e = 0; e < s->n; e++) {
                    struct seen_line l = {s->index[e], s->hash[e], s->payload[e], s->restore[e]};
                    v[n++] = l;
                }
            }
        qsort(v, n, sizeof *v, by_index);

        bool state_ok = true, unique_ok = true;
        stamp++;
        for (size_t e = 0; e < n; e++) {
            if (e > 0 && v[e].index == v[e - 1].index) {
                states_compared++;
                if (v[e].hash != v[e - 1].hash && state_ok) {
                    check(&x, false,
                          "group %u: two states at index %" PRIu64 " (%016" PRIx64
                          " and %016" PRIx64 "%s)",
                          g, v[e].index, v[e - 1].hash, v[e].hash,
                          v[e].restore ? ", the second restored" : "");
                    state_ok = false;
                }
                if (!v[e].restore && !v[e - 1].restore && v[e].payload != v[e - 1].payload &&
                    state_ok) {
                    check(&x, false, "group %u: index %" PRIu64 " applied as \"%s\" and \"%s\"",
                          g, v[e].index, in.strings[v[e - 1].payload],
                          in.strings[v[e].payload]);
                    state_ok = false;
                }
            }
            if (v[e].restore)
                continue;
            uint32_t pl = v[e].payload;
            if (at_stamp[pl] == stamp && at_index[pl] != v[e].index && unique_ok) {
                check(&x, false, "group %u: \"%s\" applied at index %" PRIu64 " and %" PRIu64,
                      g, in.strings[pl], at_index[pl], v[e].index);
                unique_ok = false;
            }
            at_stamp[pl] = stamp;
            at_index[pl] = v[e].index;
        }
        if (state_ok)
            check(&x, true, "state");
        if (unique_ok)
            check(&x, true, "unique");

        /* agreement: the last incarnations end at the same index and state
         * (those of retired nodes, removed from the groups, excepted). */
        size_t r0 = 0;
        while (r0 + 1 < nodes && c->procs[r0].retired)
            r0++;
        const struct seq *ref = &logs[r0][n_logs[r0] - 1].groups[g];
        bool same = ref->n > 0;
        if (!same)
            check(&x, false,
                  "group %u: node %zu's last incarnation applied and restored nothing", g,
                  r0 + 1);
        for (size_t i = r0 + 1; same && i < nodes; i++) {
            if (c->procs[i].retired)
                continue;
            const struct seq *s = &logs[i][n_logs[i] - 1].groups[g];
            if (s->n == 0 || s->index[s->n - 1] != ref->index[ref->n - 1] ||
                s->hash[s->n - 1] != ref->hash[ref->n - 1]) {
                check(&x, false,
                      "group %u: node %zu ends at index %" PRIu64 ", node %zu at %" PRIu64, g,
                      i + 1, s->n ? s->index[s->n - 1] : 0, r0 + 1, ref->index[ref->n - 1]);
                same = false;
            }
        }
        if (same)
            check(&x, true, "agreement");

        /* acked: applied at its index, and every final state past it (in
         * the order of the nodes, then of their acked.log). */
        bool acked_ok = true;
        for (size_t node = 0; node < nodes; node++) {
            const struct seq *a = &acked[node].groups[g];
            for (size_t k = 0; k < a->n; k++) {
                uint64_t index = a->index[k];
                uint32_t payload = a->payload[k];
                size_t at = lines_find(v, n, index);
                bool applied = false;
                for (size_t e = at; e != SIZE_MAX && e < n && v[e].index == index; e++)
                    applied |= !v[e].restore && v[e].payload == payload;
                size_t behind = 0;
                for (size_t i = 0; i < nodes; i++) {
                    if (c->procs[i].retired)
                        continue;
                    const struct seq *fin = &logs[i][n_logs[i] - 1].groups[g];
                    if (fin->n == 0 || fin->index[fin->n - 1] < index)
                        behind = i + 1;
                }
                if (!applied || behind) {
                    if (missing++ < 3)
                        check(&x, false,
                              "group %u: \"%s\", acknowledged to node %zu at index %" PRIu64
                              ", %s",
                              g, in.strings[payload], node + 1, index,
                              !applied ? "was never applied there" : "is past a final state");
                    else
                        check_quiet_failure(&x);
                    acked_ok = false;
                }
            }
        }
        if (acked_ok)
            check(&x, true, "acked");
    }
    free(v);
    free(at_index);
    free(at_stamp);

    /* The same proposal is never acknowledged twice. */
    uint32_t *acks = xcalloc(in.n_strings + 1, sizeof *acks);
    size_t dup = 0;
    for (size_t i = 0; i < nodes; i++)
        for (unsigned g = 1; g <= groups; g++) {
            const struct seq *a = &acked[i].groups[g];
            for (size_t k = 0; k < a->n; k++)
                if (acks[a->payload[k]]++ == 1)
                    dup++;
        }
    check(&x, dup == 0, "%zu proposals were acknowledged twice", dup);
    free(acks);

    out->acked = n_acked;
    out->lost = missing;
    out->acked_twice = dup;
    out->applied = entries - restores;
    out->restores = restores;
    out->files = files;
    out->final_lines = final_entries;
    out->states_compared = states_compared;
    out->bad_lines = bad_lines;

    for (size_t i = 0; i < nodes; i++) {
        free_log(&acked[i], groups);
        for (size_t k = 0; k < n_logs[i]; k++)
            free_log(&logs[i][k], groups);
        free(logs[i]);
    }
    free(acked);
    free(logs);
    free(n_logs);
    intern_free(&in);
    return out->failed == 0;
}

void lv_print_summary(FILE *f, const lv_summary *s)
{
    fprintf(f,
            "verified: %zu acknowledged proposals; %zu applied entries and %zu restored "
            "snapshots in %zu log files (%zu lines in the last incarnations); %zu states "
            "compared across replicas\n",
            s->acked, s->applied, s->restores, s->files, s->final_lines, s->states_compared);
}
