/*
 * crash_test.c: crash safety end to end, with real processes.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, each
 * with a data directory (its muxraft write-ahead log and snapshots), host G
 * groups of three replicas, propose continuously to the groups they lead
 * and take a snapshot of a group every --snapshot-every entries. Every few
 * seconds one of them, chosen at random, is killed with SIGKILL and
 * restarted from its data directory; with MUXRAFT_CRASH_WIPE, node 3's
 * muxraft data is deleted before some of its restarts, and it rejoins its
 * groups. Then proposals stop, the cluster settles, every process gets
 * SIGTERM, and the logs the processes kept are checked. queue_node writes
 * each acknowledged proposal to acked.log, and to applied.<pid>.log (one
 * file per incarnation) each applied entry and each restored snapshot, with
 * the group's state (a running hash) after it:
 *
 *   order       in every incarnation of every replica, a group's indexes
 *               increase (nothing is applied twice, nothing at or below a
 *               restored snapshot is applied again) and no payload is
 *               applied twice;
 *   state       wherever a group's state at an index was seen (on any
 *               replica, in any incarnation, by applying entries or by
 *               restoring a snapshot), it is the same, and so is the entry
 *               applied at that index;
 *   agreement   the last incarnations of the three replicas of a group end
 *               at the same index with the same state;
 *   acked       every proposal acknowledged (proposal_done OK) by any
 *               incarnation was applied at the index it was acknowledged
 *               at, and every replica's final state is at or past it (so it
 *               is in every final state, exactly once: see order, state);
 *   unique      no payload sits at two indexes of a group.
 *
 *   usage: crash_test [PATH_TO_QUEUE_NODE]
 *   environment: MUXRAFT_CRASH_SECONDS (30)    how long the kills go on
 *                MUXRAFT_CRASH_INTERVAL_MS (3000)  mean time between kills
 *                MUXRAFT_CRASH_GROUPS (60), MUXRAFT_CRASH_RATE (100 per node)
 *                MUXRAFT_CRASH_SNAPSHOT_EVERY (25 entries; 0: never)
 *                MUXRAFT_CRASH_WIPE (0)    percent of node 3's restarts that
 *                                          delete its muxraft data first
 *                                          (one node only: a replica that
 *                                          rejoined never votes, so two
 *                                          would leave groups without a
 *                                          quorum of voters)
 *                MUXRAFT_CRASH_SEED        the kill schedule (default: clock)
 *                MUXRAFT_CRASH_KEEP=1      keep the data directories
 *
 * The last line printed is "N passed, M failed"; the exit status is 0 only
 * when M is 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue_cluster.h"

#define NODES 3
#define REPORT_MS 200
#define LEADERS_TIMEOUT_S 30.0
#define SETTLE_TIMEOUT_S 60.0
#define SETTLE_STABLE_S 1.0
#define MAX_PROBLEMS_SHOWN 10

/* ---- checks ------------------------------------------------------------ */

static int n_passed, n_failed, n_shown;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
    if (ok) {
        n_passed++;
        return;
    }
    n_failed++;
    if (n_shown++ >= MAX_PROBLEMS_SHOWN)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "  FAILED: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end != '\0') {
        fprintf(stderr, "bad %s=%s\n", name, v);
        exit(2);
    }
    return (uint64_t)x;
}

/* xorshift64*: the kill schedule, reproducible from the seed. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* ---- payloads, interned ------------------------------------------------- */

static char **strings;
static size_t n_strings;
static uint32_t *slots; /* open addressing: string id + 1, 0 = empty */
static size_t n_slots;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static uint32_t intern(const char *s);

static void intern_grow(void)
{
    size_t old = n_slots;
    uint32_t *old_slots = slots;
    n_slots = old ? old * 2 : 1 << 16;
    slots = calloc(n_slots, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (size_t i = 0; i < old; i++) {
        if (old_slots[i] == 0)
            continue;
        size_t j = hash_str(strings[old_slots[i] - 1]) & (n_slots - 1);
        while (slots[j] != 0)
            j = (j + 1) & (n_slots - 1);
        slots[j] = old_slots[i];
    }
    free(old_slots);
}

static uint32_t intern(const char *s)
{
    if (2 * (n_strings + 1) > n_slots)
        intern_grow();
    size_t j = hash_str(s) & (n_slots - 1);
    while (slots[j] != 0) {
        if (strcmp(strings[slots[j] - 1], s) == 0)
            return slots[j] - 1;
        j = (j + 1) & (n_slots - 1);
    }
    if ((n_strings & (n_strings - 1)) == 0) /* grow at powers of two */
        strings = xrealloc(strings, (n_strings ? 2 * n_strings : 1) * sizeof *strings);
    strings[n_strings] = strdup(s);
    slots[j] = (uint32_t)n_strings + 1;
    return (uint32_t)n_strings++;
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

/* Read "<group> <index> <payload> [<hash>]" lines. A line cut short (no
 * newline at the end) is ignored: a SIGKILL during a write. */
static void read_log(const char *path, unsigned groups, struct log *log,
                     size_t *bad_lines)
{
    log->groups = calloc(groups + 1, sizeof *log->groups);
    log->lines = 0;
    FILE *f = fopen(path, "r");
    log->exists = f != NULL;
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n')
            continue;
        line[len - 1] = '\0';
        unsigned long long g, idx, hash = 0;
        char payload[512];
        int n = sscanf(line, "%llu %llu %511s %llx", &g, &idx, payload, &hash);
        if (n < 3 || g == 0 || g > groups) {
            (*bad_lines)++;
            continue;
        }
        bool restore = strncmp(payload, "restore:", 8) == 0;
        seq_push(&log->groups[g], idx, intern(payload), hash, restore);
        log->lines++;
    }
    fclose(f);
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

/* ---- running the cluster ------------------------------------------------- */

static qc_cluster cluster;
static char base_dir[512];
static bool keep_dir;

static void cleanup(void)
{
    qc_cleanup(&cluster);
    if (base_dir[0] && !keep_dir)
        qc_remove_tree(base_dir);
    base_dir[0] = '\0';
}

/* Read reports for `seconds`, or until cond (if any) holds. Returns false
 * if a node died on its own (its status is printed) or on timeout. */
typedef bool (*condition)(qc_cluster *c, void *arg);
static bool wait_for(double seconds, condition cond, void *arg, bool *died)
{
    uint64_t start = qc_now_ns();
    for (;;) {
        if (qc_interrupted) {
            printf("interrupted\n");
            cleanup();
            exit(130);
        }
        for (size_t i = 0; i < NODES; i++) {
            if (qc_died(&cluster, i)) {
                printf("  node %zu (pid %d) ended on its own, status 0x%x; restarting it\n",
                       i + 1,
                       (int)cluster.procs[i].incarnations[cluster.procs[i].n_incarnations - 1],
                       (unsigned)cluster.procs[i].exit_status);
                *died = true;
                cluster.procs[i].expected = false;
                qc_start(&cluster, i);
            }
        }
        if (cond && cond(&cluster, arg))
            return true;
        if (qc_seconds_since(start) >= seconds)
            return cond == NULL;
        qc_poll(&cluster, 20);
    }
}

/* Every group has a leader, seen in reports newer than *since_ns. */
static bool all_led(qc_cluster *c, void *arg)
{
    uint64_t since = *(const uint64_t *)arg;
    uint64_t leading = 0;
    for (size_t i = 0; i < c->n; i++) {
        const qc_proc *p = &c->procs[i];
        if (!qc_running(c, i) || p->reports == 0 || p->last.received_ns <= since ||
            p->last.groups != c->groups || p->last.leaderless != 0)
            return false;
        leading += p->last.leading;
    }
    return leading == c->groups;
}

/* Proposals stopped and finished, every node's groups are at the same
 * indexes as the others' (index_sum: each restarted process applied less
 * than the others since it started), and that has not changed for
 * SETTLE_STABLE_S. */
struct settle {
    uint64_t since_ns, applied, stable_since_ns;
};

static bool settled(qc_cluster *c, void *arg)
{
    struct settle *s = arg;
    bool ok = all_led(c, &s->since_ns);
    for (size_t i = 0; ok && i < c->n; i++) {
        const qc_stat *st = &c->procs[i].last;
        ok = !st->proposing && st->inflight == 0 && st->index_sum == c->procs[0].last.index_sum;
    }
    if (!ok || c->procs[0].last.index_sum != s->applied) {
        s->applied = ok ? c->procs[0].last.index_sum : UINT64_MAX;
        s->stable_since_ns = qc_now_ns();
        return false;
    }
    return qc_seconds_since(s->stable_since_ns) >= SETTLE_STABLE_S;
}

/* Proposals acknowledged by earlier incarnations (as last reported). */
static uint64_t acked_before[NODES];

static uint64_t total_acked(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < NODES; i++)
        n += acked_before[i] + (cluster.procs[i].reports ? cluster.procs[i].last.commits : 0);
    return n;
}

/* ---- verification ---------------------------------------------------------- */

struct acked {
    unsigned group;
    uint64_t index;
    uint32_t payload;
    size_t node;
};

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

static void verify(unsigned groups)
{
    /* Every incarnation's applied log; the last one of each node apart. */
    struct log *logs[NODES];
    size_t n_logs[NODES];
    size_t bad_lines = 0, files = 0, entries = 0, final_entries = 0, restores = 0;
    for (size_t i = 0; i < NODES; i++) {
        qc_proc *p = &cluster.procs[i];
        n_logs[i] = p->n_incarnations;
        logs[i] = calloc(n_logs[i], sizeof *logs[i]);
        for (size_t k = 0; k < n_logs[i]; k++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/applied.%d.log", p->dir, (int)p->incarnations[k]);
            read_log(path, groups, &logs[i][k], &bad_lines);
            files += logs[i][k].exists;
            entries += logs[i][k].lines;
        }
        check(logs[i][n_logs[i] - 1].exists, "node %zu: its last applied log is missing", i + 1);
        final_entries += logs[i][n_logs[i] - 1].lines;
    }

    /* Acknowledged proposals, from every node's acked.log. */
    struct acked *acked = NULL;
    size_t n_acked = 0, cap_acked = 0;
    for (size_t i = 0; i < NODES; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/acked.log", cluster.procs[i].dir);
        struct log a;
        read_log(path, groups, &a, &bad_lines);
        for (unsigned g = 1; g <= groups; g++)
            for (size_t k = 0; k < a.groups[g].n; k++) {
                if (n_acked == cap_acked) {
                    cap_acked = cap_acked ? 2 * cap_acked : 1024;
                    acked = xrealloc(acked, cap_acked * sizeof *acked);
                }
                struct acked x = {g, a.groups[g].index[k], a.groups[g].payload[k], i};
                acked[n_acked++] = x;
            }
        free_log(&a, groups);
    }
    check(bad_lines == 0, "%zu log lines could not be parsed", bad_lines);
    check(n_acked > 0, "no proposal was acknowledged");

    /* order: per incarnation, per group, indexes increase, payloads unique. */
    uint32_t *seen = calloc(n_strings + 1, sizeof *seen); /* stamp per (file, group) */
    uint32_t stamp = 0;
    for (unsigned g = 1; g <= groups; g++) {
        bool ok = true;
        for (size_t i = 0; i < NODES; i++)
            for (size_t k = 0; k < n_logs[i]; k++) {
                const struct seq *s = &logs[i][k].groups[g];
                stamp++;
                for (size_t e = 0; e < s->n; e++) {
                    restores += s->restore[e];
                    if (e > 0 && s->index[e] <= s->index[e - 1]) {
                        check(false, "group %u, node %zu pid %d: index %" PRIu64
                                     " %s after %" PRIu64,
                              g, i + 1, (int)cluster.procs[i].incarnations[k],
                              s->index[e], s->restore[e] ? "restored" : "applied",
                              s->index[e - 1]);
                        ok = false;
                        break;
                    }
                    if (s->restore[e])
                        continue;
                    if (seen[s->payload[e]] == stamp) {
                        check(false, "group %u, node %zu pid %d: \"%s\" applied twice", g,
                              i + 1, (int)cluster.procs[i].incarnations[k],
                              strings[s->payload[e]]);
                        ok = false;
                        break;
                    }
                    seen[s->payload[e]] = stamp;
                }
            }
        if (ok)
            check(true, "order");
    }
    free(seen);

    /* state, unique, agreement and acked, group by group, over every line
     * of every log. */
    uint64_t *at_index = calloc(n_strings + 1, sizeof *at_index); /* payload -> index */
    uint32_t *at_stamp = calloc(n_strings + 1, sizeof *at_stamp);
    size_t states_compared = 0, missing = 0;
    struct seen_line *v = NULL;
    size_t cap_v = 0;
    for (unsigned g = 1; g <= groups; g++) {
        size_t n = 0;
        for (size_t i = 0; i < NODES; i++)
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
                    check(false, "group %u: two states at index %" PRIu64 " (%016" PRIx64
                                 " and %016" PRIx64 "%s)",
                          g, v[e].index, v[e - 1].hash, v[e].hash,
                          v[e].restore ? ", the second restored" : "");
                    state_ok = false;
                }
                if (!v[e].restore && !v[e - 1].restore && v[e].payload != v[e - 1].payload &&
                    state_ok) {
                    check(false, "group %u: index %" PRIu64 " applied as \"%s\" and \"%s\"", g,
                          v[e].index, strings[v[e - 1].payload], strings[v[e].payload]);
                    state_ok = false;
                }
            }
            if (v[e].restore)
                continue;
            uint32_t pl = v[e].payload;
            if (at_stamp[pl] == stamp && at_index[pl] != v[e].index && unique_ok) {
                check(false, "group %u: \"%s\" applied at index %" PRIu64 " and %" PRIu64, g,
                      strings[pl], at_index[pl], v[e].index);
                unique_ok = false;
            }
            at_stamp[pl] = stamp;
            at_index[pl] = v[e].index;
        }
        if (state_ok)
            check(true, "state");
        if (unique_ok)
            check(true, "unique");

        /* agreement: the last incarnations end at the same index and state. */
        const struct seq *ref = &logs[0][n_logs[0] - 1].groups[g];
        bool same = ref->n > 0;
        if (!same)
            check(false, "group %u: node 1's last incarnation applied and restored nothing", g);
        for (size_t i = 1; same && i < NODES; i++) {
            const struct seq *s = &logs[i][n_logs[i] - 1].groups[g];
            if (s->n == 0 || s->index[s->n - 1] != ref->index[ref->n - 1] ||
                s->hash[s->n - 1] != ref->hash[ref->n - 1]) {
                check(false, "group %u: node %zu ends at index %" PRIu64 ", node 1 at %" PRIu64,
                      g, i + 1, s->n ? s->index[s->n - 1] : 0, ref->index[ref->n - 1]);
                same = false;
            }
        }
        if (same)
            check(true, "agreement");

        /* acked: applied at its index, and every final state past it. */
        bool acked_ok = true;
        for (size_t a = 0; a < n_acked; a++) {
            const struct acked *x = &acked[a];
            if (x->group != g)
                continue;
            size_t at = lines_find(v, n, x->index);
            bool applied = false;
            for (size_t e = at; e != SIZE_MAX && e < n && v[e].index == x->index; e++)
                applied |= !v[e].restore && v[e].payload == x->payload;
            size_t behind = 0;
            for (size_t i = 0; i < NODES; i++) {
                const struct seq *fin = &logs[i][n_logs[i] - 1].groups[g];
                if (fin->n == 0 || fin->index[fin->n - 1] < x->index)
                    behind = i + 1;
            }
            if (!applied || behind) {
                if (missing++ < 3)
                    check(false, "group %u: \"%s\", acknowledged to node %zu at index %" PRIu64
                                 ", %s",
                          g, strings[x->payload], x->node + 1, x->index,
                          !applied ? "was never applied there" : "is past a final state");
                else
                    n_failed++;
                acked_ok = false;
            }
        }
        if (acked_ok)
            check(true, "acked");
    }
    free(v);
    free(at_index);
    free(at_stamp);

    /* The same proposal is never acknowledged twice. */
    uint32_t *acks = calloc(n_strings + 1, sizeof *acks);
    size_t dup = 0;
    for (size_t a = 0; a < n_acked; a++)
        if (acks[acked[a].payload]++ == 1)
            dup++;
    check(dup == 0, "%zu proposals were acknowledged twice", dup);
    free(acks);

    printf("verified: %zu acknowledged proposals; %zu applied entries and %zu restored "
           "snapshots in %zu log files (%zu lines in the last incarnations); %zu states "
           "compared across replicas\n",
           n_acked, entries - restores, restores, files, final_entries, states_compared);

    free(acked);
    for (size_t i = 0; i < NODES; i++) {
        for (size_t k = 0; k < n_logs[i]; k++)
            free_log(&logs[i][k], groups);
        free(logs[i]);
    }
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *exe = argc > 1 ? argv[1] : "target/c/queue_node";
    uint64_t seconds = env_u64("MUXRAFT_CRASH_SECONDS", 30);
    uint64_t interval_ms = env_u64("MUXRAFT_CRASH_INTERVAL_MS", 3000);
    unsigned groups = (unsigned)env_u64("MUXRAFT_CRASH_GROUPS", 60);
    unsigned rate = (unsigned)env_u64("MUXRAFT_CRASH_RATE", 100);
    unsigned snapshot_every = (unsigned)env_u64("MUXRAFT_CRASH_SNAPSHOT_EVERY", 25);
    unsigned wipe_percent = (unsigned)env_u64("MUXRAFT_CRASH_WIPE", 0);
    uint64_t seed = env_u64("MUXRAFT_CRASH_SEED", qc_now_ns() ^ (uint64_t)getpid());
    keep_dir = env_u64("MUXRAFT_CRASH_KEEP", 0) != 0;
    if (seed == 0)
        seed = 1;
    rng_state = seed;
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "crash_test: cannot run %s\n", exe);
        return EXIT_FAILURE;
    }
    if (groups == 0 || interval_ms < 100) {
        fprintf(stderr, "crash_test: MUXRAFT_CRASH_GROUPS must be > 0 and "
                        "MUXRAFT_CRASH_INTERVAL_MS >= 100\n");
        return 2;
    }
    qc_install_signals();
    atexit(cleanup);
    if (!qc_make_temp_dir(base_dir, sizeof base_dir, "muxraft-crash"))
        return EXIT_FAILURE;
    if (!qc_init(&cluster, exe, NODES, base_dir))
        return EXIT_FAILURE;
    cluster.groups = groups;
    cluster.rate = rate;
    cluster.report_ms = REPORT_MS;
    cluster.batch = true;
    cluster.snapshot_every = snapshot_every;
    cluster.snapshot_pad = 2000; /* a queue state of some size, not a few bytes */
    cluster.snapshot_trailing = 10; /* compact the log: followers get snapshots */

    printf("crash test: %d queue_node processes, %u groups of 3 replicas, %u proposals/s "
           "per node, a snapshot every %u entries;\nSIGKILL + restart of a random node about "
           "every %.1f s for %" PRIu64 " s, node 3's data wiped at %u%% of its restarts "
           "(MUXRAFT_CRASH_SEED=%" PRIu64 ")\ndata: %s (kept on failure)\n",
           NODES, groups, rate, snapshot_every, (double)interval_ms / 1000, seconds,
           wipe_percent, seed, base_dir);
    fflush(stdout);
    uint64_t t0 = qc_now_ns();
    bool died = false;

    for (size_t i = 0; i < NODES; i++)
        if (!qc_start(&cluster, i))
            return EXIT_FAILURE;
    bool led = wait_for(LEADERS_TIMEOUT_S, all_led, &t0, &died);
    check(led, "not every group had a leader %.0f s after start", LEADERS_TIMEOUT_S);
    if (led)
        printf("every group has a leader after %.1f s\n", qc_seconds_since(t0));

    /* The kills. */
    uint64_t kills = 0, wipes = 0, kill_start = qc_now_ns();
    while (led && qc_seconds_since(kill_start) < (double)seconds) {
        double gap = (double)interval_ms / 1000 * (0.5 + (double)(rng_next() % 1000) / 1000);
        wait_for(gap, NULL, NULL, &died);
        size_t victim = (size_t)(rng_next() % NODES);
        /* A wipe run must wipe: the third kill goes to node 3 if none did. */
        bool force_wipe = wipe_percent > 0 && wipes == 0 && kills >= 2;
        if (force_wipe)
            victim = NODES - 1;
        double down = (double)(rng_next() % 1000) / 1000; /* 0-1 s down */
        uint64_t acked = total_acked();
        pid_t pid = cluster.procs[victim].pid;
        acked_before[victim] += cluster.procs[victim].reports ? cluster.procs[victim].last.commits : 0;
        qc_kill(&cluster, victim);
        kills++;
        bool wipe = victim == NODES - 1 && (force_wipe || rng_next() % 100 < wipe_percent);
        if (wipe) {
            /* A replaced disk: what muxraft kept is gone (queue_node's own
             * logs, which this test reads, stay). */
            char raft[1200];
            snprintf(raft, sizeof raft, "%.1000s/raft", cluster.procs[victim].dir);
            qc_remove_tree(raft);
            wipes++;
        }
        wait_for(down, NULL, NULL, &died);
        if (!qc_start(&cluster, victim)) {
            check(false, "cannot restart node %zu", victim + 1);
            break;
        }
        printf("  %5.1f s  kill %2" PRIu64 ": node %zu (pid %d), down %.1f s%s; about %" PRIu64
               " proposals acknowledged so far\n",
               qc_seconds_since(t0), kills, victim + 1, (int)pid, down,
               wipe ? ", its data wiped" : "", acked);
        fflush(stdout);
    }
    check(!died, "a node ended without being killed (see above)");
    check(kills > 0 || !led, "no kill happened");
    check(wipe_percent == 0 || wipes > 0 || !led, "no restart wiped the data");

    /* Stop proposing (once every node can take the signal) and settle. */
    uint64_t t_reports = qc_now_ns();
    struct settle st = {0, UINT64_MAX, 0};
    bool reporting = true;
    for (size_t i = 0; i < NODES; i++) {
        while (cluster.procs[i].reports == 0 || cluster.procs[i].last.received_ns <= t_reports) {
            if (!wait_for(0.05, NULL, NULL, &died) || qc_seconds_since(t_reports) > 30) {
                reporting = false;
                break;
            }
        }
    }
    check(reporting, "a node sent no report for 30 s");
    for (size_t i = 0; i < NODES; i++)
        qc_signal(&cluster, i, SIGUSR1);
    st.since_ns = qc_now_ns();
    st.stable_since_ns = st.since_ns;
    bool ok = wait_for(SETTLE_TIMEOUT_S, settled, &st, &died);
    check(ok, "the cluster did not settle within %.0f s after proposals stopped "
              "(applied %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
          SETTLE_TIMEOUT_S, cluster.procs[0].last.index_sum, cluster.procs[1].last.index_sum,
          cluster.procs[2].last.index_sum);
    printf("settled %.1f s after proposals stopped: every node's groups at the same indexes "
           "(sum %" PRIu64 ")\n",
           qc_seconds_since(st.since_ns), cluster.procs[0].last.index_sum);
    check(qc_stop_all(&cluster, 15000), "a node did not stop cleanly on SIGTERM");

    printf("kills: %" PRIu64 " in %.0f s, %" PRIu64 " of them with the data wiped\n", kills,
           (double)seconds, wipes);
    verify(groups);
    if (n_failed > 0)
        keep_dir = true; /* for a post-mortem */
    printf("crash test took %.0f s%s%s\n", qc_seconds_since(t0),
           keep_dir ? "; data kept in " : "", keep_dir ? base_dir : "");
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
