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
 * SIGTERM, and the logs the processes kept are checked by
 * examples/c/log_verify.c: queue_node writes each acknowledged proposal to
 * acked.log, and to applied.<pid>.log (one file per incarnation) each
 * applied entry and each restored snapshot, with the group's state after
 * it; order, state, unique, agreement and acked (every acknowledged
 * proposal is in every replica's final state, exactly once) are checked
 * per group, over every incarnation (see log_verify.h).
 *
 *   usage: crash_test [PATH_TO_QUEUE_NODE]
 *   environment: MUXRAFT_CRASH_SECONDS (30)    how long the kills go on
 *                MUXRAFT_CRASH_INTERVAL_MS (3000)  mean time between kills
 *                MUXRAFT_CRASH_GROUPS (60), MUXRAFT_CRASH_RATE (100 per node)
 *                MUXRAFT_CRASH_SNAPSHOT_EVERY (25 entries; 0: never)
 *                MUXRAFT_CRASH_WIPE (0)    percent of node 3's restarts that
 *                                          delete its muxraft data first
 *                                          (one node only: a replica that
 *                                          rejoined never votes nor counts
 *                                          toward a quorum, so two would
 *                                          leave groups without one)
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

#include "log_verify.h"
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

/* log_verify's checks count here like the others. */
static void verify_check(void *arg, bool ok, const char *what)
{
    (void)arg;
    if (what != NULL)
        check(ok, "%s", what);
    else
        n_failed++; /* one more lost proposal, not shown */
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
    lv_summary summary;
    lv_verify(&cluster, groups, verify_check, NULL, &summary);
    lv_print_summary(stdout, &summary);
    if (n_failed > 0)
        keep_dir = true; /* for a post-mortem */
    printf("crash test took %.0f s%s%s\n", qc_seconds_since(t0),
           keep_dir ? "; data kept in " : "", keep_dir ? base_dir : "");
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
