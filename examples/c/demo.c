/*
 * demo.c: `make demo`. Three queue_node processes on loopback, each a
 * muxraft node in embedded mode (its own timer, TCP connections and
 * write-ahead log), hosting 300 replicated queues (Raft groups).
 *
 * The program starts the processes (fork/exec of queue_node, found next to
 * this program or given as the first argument), reads the STAT line each
 * prints every 100 ms, and shows:
 *   1. the cluster without heartbeat batching (--batch 0), for comparison;
 *   2. the same cluster with batching: groups and leaders per node,
 *      heartbeat messages per second per peer in both runs, commits per
 *      second and commit latency;
 *   3. proposals paused: the idle groups go quiet on every replica
 *      (muxraft's quiescence: no ticks, no heartbeat rows), CPU and
 *      heartbeat traffic under load and once quiet;
 *   4. a SIGKILL of the node leading the most groups while its groups are
 *      quiet, the time until each of them has a new leader (and how many
 *      elections that took, none in the other groups), proposals resumed,
 *      its restart from its data directory
 *      (each queue restored from its latest snapshot, only what followed
 *      applied) and its catching up, and muxraft's leader balancer handing
 *      it back its share of the leaderships (leaders per node over time);
 *   5. another node's muxraft data deleted (a replaced disk): it rejoins
 *      its queues, its leaders send it snapshots, and it ends with the same
 *      state as the others;
 *   6. the node that rejoined (its replicas never vote again: they may have
 *      forgotten votes they gave) dies for good, and a new node (4) replaces it in all
 *      300 groups while proposals continue (queue_node --join on node 4,
 *      then a "replace" line in the nodes' --control file: each leader
 *      adds node 4 as promotable, muxraft promotes it once caught up, then
 *      the leader removes the dead node), with the time of each phase; then
 *      every acknowledged proposal is checked against every replica's
 *      applied log as the crash test does (log_verify.c).
 * It finishes on its own in well under a minute, kills its processes on
 * every way out (including Ctrl-C), removes its temporary directory, and
 * exits non-zero if anything went wrong.
 *
 *   usage: demo [PATH_TO_QUEUE_NODE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log_verify.h"
#include "queue_cluster.h"

#define NODES 3
#define GROUPS 300
#define RATE 200        /* proposals per second per node, to the groups it leads */
#define REPORT_MS 100   /* each node prints a STAT line this often */
#define WARMUP_S 1.0    /* after elections, before measuring */
#define NAIVE_WINDOW_S 5.0
#define BATCH_WINDOW_S 8.0
#define LEADERS_TIMEOUT_S 20.0
#define FAILOVER_TIMEOUT_S 15.0
#define DOWN_S 1.0      /* how long the killed node stays down after failover */
#define CATCHUP_TIMEOUT_S 30.0
#define SETTLE_TIMEOUT_S 15.0
#define QUIET_TIMEOUT_S 10.0
#define QUIET_WINDOW_S 3.0
#define SNAPSHOT_EVERY 10 /* entries per queue; a broker would use thousands */
#define BALANCE_TIMEOUT_S 20.0
#define REPLACE_TIMEOUT_S 60.0

/* What the exit paths must clean up. */
static qc_cluster *live_cluster;
static char base_dir[512];
static char control_path[600]; /* queue_node --control: the replace line */

static void cleanup(void)
{
    qc_teardown(live_cluster, base_dir, false);
    live_cluster = NULL;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stdout, "\nFAILED: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    cleanup();
    exit(EXIT_FAILURE);
}

/* ---------------------------------------------------------------------- */
/* Commit latencies merged over a measurement window                       */

#define MAX_BUCKETS 512

struct window_hist {
    bool on;
    size_t n;
    uint64_t us[MAX_BUCKETS], count[MAX_BUCKETS];
};

/* Leaders per node after a restart, from the STAT lines as they come:
 * a sample every 0.5 s, and the first moment every node leads within 10%
 * of its share (GROUPS / NODES) and they lead all GROUPS between them. */
struct balance_watch {
    bool on;
    uint64_t t0;
    double next_sample, balanced_s; /* balanced_s < 0: not yet */
    uint64_t transfers, failed;     /* cluster sums when it was balanced */
    char trail[2048];
};
static struct balance_watch bw;

static bool leaders_balanced(const qc_cluster *c, char *counts, size_t size)
{
    uint64_t share = GROUPS / NODES, slack = share / 10, total = 0;
    bool ok = true;
    size_t at = 0;
    for (size_t i = 0; i < NODES; i++) {
        const qc_proc *p = &c->procs[i];
        bool fresh = qc_running(c, i) && p->reports > 0 && p->last.received_ns > bw.t0;
        uint64_t led = fresh ? p->last.leading : 0;
        total += led;
        ok = ok && fresh && led + slack >= share && led <= share + slack;
        at += (size_t)snprintf(counts + at, size - at, "%s%" PRIu64, i ? "/" : "", led);
    }
    return ok && total == GROUPS;
}

static void watch_balance(void)
{
    qc_cluster *c = live_cluster;
    if (!bw.on || c == NULL)
        return;
    char counts[64];
    bool balanced = leaders_balanced(c, counts, sizeof counts);
    double t = qc_seconds_since(bw.t0);
    size_t len = strlen(bw.trail);
    if ((t >= bw.next_sample || balanced) && len + 80 < sizeof bw.trail) {
        snprintf(bw.trail + len, sizeof bw.trail - len, "%s%s (%.1f s)",
                 len ? " -> " : "", counts, t);
        bw.next_sample = t + 0.5;
    }
    if (balanced) {
        bw.on = false;
        bw.balanced_s = t;
        bw.transfers = QC_SUM(c, balance_transfers);
        bw.failed = QC_SUM(c, failed);
    }
}

static void on_stat(void *userdata, qc_proc *p, const qc_stat *s)
{
    struct window_hist *w = userdata;
    (void)p;
    watch_balance();
    if (!w->on)
        return;
    for (size_t k = 0; k < s->n_hist; k++) {
        size_t i = 0;
        while (i < w->n && w->us[i] != s->hist_us[k])
            i++;
        if (i == w->n) {
            if (w->n == MAX_BUCKETS)
                continue;
            w->us[w->n] = s->hist_us[k];
            w->count[w->n++] = 0;
        }
        w->count[i] += s->hist_count[k];
    }
}

static double window_percentile_ms(const struct window_hist *w, double p)
{
    uint64_t total = 0;
    for (size_t i = 0; i < w->n; i++)
        total += w->count[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)total + 0.999999);
    /* Walk the buckets in increasing order of latency. */
    uint64_t seen = 0, prev = 0;
    for (;;) {
        uint64_t best = UINT64_MAX;
        size_t at = 0;
        for (size_t i = 0; i < w->n; i++)
            if (w->us[i] > prev && w->us[i] < best) {
                best = w->us[i];
                at = i;
            }
        if (best == UINT64_MAX)
            return (double)prev / 1000.0;
        seen += w->count[at];
        if (seen >= rank)
            return (double)best / 1000.0;
        prev = best;
    }
}

/* ---------------------------------------------------------------------- */
/* Waiting for the cluster                                                 */

typedef bool (*condition)(qc_cluster *c, void *arg);

/* Read reports until cond holds (true) or timeout_s passes (false). A node
 * that dies on its own, or Ctrl-C, ends the demo. */
static bool wait_for(qc_cluster *c, double timeout_s, condition cond, void *arg)
{
    uint64_t start = qc_now_ns();
    for (;;) {
        if (qc_interrupted) {
            printf("\ninterrupted: stopping the nodes\n");
            cleanup();
            exit(130);
        }
        for (size_t i = 0; i < c->n; i++)
            if (qc_died(c, i))
                fail("node %" PRIu64 " (pid %d) ended on its own, status 0x%x",
                     c->procs[i].id,
                     (int)c->procs[i].incarnations[c->procs[i].n_incarnations - 1],
                     (unsigned)c->procs[i].exit_status);
        if (cond && cond(c, arg))
            return true;
        if (qc_seconds_since(start) >= timeout_s)
            return false;
        qc_poll(c, 20);
    }
}

static void pause_for(qc_cluster *c, double seconds)
{
    wait_for(c, seconds, NULL, NULL);
}

/* Every group has a leader that the running nodes know of, seen in reports
 * that arrived after *since_ns, and every running node created its groups. */
static bool all_led(qc_cluster *c, void *arg)
{
    return qc_all_led(c, arg ? *(const uint64_t *)arg : 0);
}

/* ---------------------------------------------------------------------- */
/* One measured run                                                        */

struct measured {
    double elect_s;
    double hb_msgs, hb_bytes, carried; /* per node per peer per second */
    double commits;                    /* whole cluster, per second */
    double p50_ms, p99_ms;
    double cpu_pct;                    /* per node (mean), % of one core */
};

/* CPU of every node, in clock ticks, and when it was read. */
struct cpu_mark {
    uint64_t ticks[NODES], ns;
};

static void cpu_mark(const qc_cluster *c, struct cpu_mark *m)
{
    for (size_t i = 0; i < NODES; i++)
        m->ticks[i] = qc_cpu_ticks(c->procs[i].pid);
    m->ns = qc_now_ns();
}

/* Mean CPU per node between two marks, in % of one core. */
static double cpu_pct(const struct cpu_mark *a, const struct cpu_mark *b)
{
    double ticks = 0;
    for (size_t i = 0; i < NODES; i++)
        ticks += (double)(b->ticks[i] - a->ticks[i]);
    double s = (double)(b->ns - a->ns) / 1e9;
    return s > 0 ? qc_cpu_pct(ticks, s) / NODES : 0;
}

/* A fresh cluster in base_dir/sub whose STAT lines feed `hist`; returns
 * once every group has a leader, *elect_s later. */
static void start_cluster(qc_cluster *c, const char *exe, bool batch, const char *sub,
                          struct window_hist *hist, double *elect_s)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", base_dir, sub);
    if (!qc_init(c, exe, NODES, dir))
        fail("cannot set up the cluster");
    c->groups = GROUPS;
    c->rate = RATE;
    c->report_ms = REPORT_MS;
    c->batch = batch;
    c->snapshot_every = SNAPSHOT_EVERY;
    c->snapshot_pad = 256;
    c->snapshot_trailing = 5;
    c->on_stat = on_stat;
    c->userdata = hist;
    c->control_file = control_path; /* read from scene 6 on */
    live_cluster = c;
    uint64_t t0 = qc_now_ns();
    if (!qc_start_all(c))
        fail("cannot start %s", exe);
    if (!wait_for(c, LEADERS_TIMEOUT_S, all_led, NULL))
        fail("not every group had a leader %.0f s after start", LEADERS_TIMEOUT_S);
    *elect_s = qc_seconds_since(t0);
}

static void measure(qc_cluster *c, double window_s, struct measured *m)
{
    struct window_hist *w = c->userdata;
    qc_stat before[NODES], after[NODES];
    struct cpu_mark cpu0, cpu1;
    pause_for(c, WARMUP_S);
    for (size_t i = 0; i < NODES; i++)
        before[i] = c->procs[i].last;
    cpu_mark(c, &cpu0);
    memset(w, 0, sizeof *w);
    w->on = true;
    pause_for(c, window_s);
    w->on = false;
    for (size_t i = 0; i < NODES; i++)
        after[i] = c->procs[i].last;
    cpu_mark(c, &cpu1);
    m->cpu_pct = cpu_pct(&cpu0, &cpu1);

    m->hb_msgs = m->hb_bytes = m->carried = m->commits = 0;
    for (size_t i = 0; i < NODES; i++) {
        double dt = (double)(after[i].t_ms - before[i].t_ms) / 1000.0;
        if (dt <= 0)
            fail("node %zu sent no report while measuring", i + 1);
        double per_peer = dt * (NODES - 1) * NODES; /* averaged over nodes */
        m->hb_msgs += (double)(after[i].hb_msgs - before[i].hb_msgs) / per_peer;
        m->hb_bytes += (double)(after[i].hb_bytes - before[i].hb_bytes) / per_peer;
        m->carried += (double)(after[i].group_hb_batched - before[i].group_hb_batched) / per_peer;
        m->commits += (double)(after[i].commits - before[i].commits) / dt;
    }
    m->p50_ms = window_percentile_ms(w, 0.50);
    m->p99_ms = window_percentile_ms(w, 0.99);
    if (m->commits <= 0)
        fail("nothing was committed while measuring");
}

/* One of the two measured runs: batching off (run 1), then on (run 2). */
static void measured_run(qc_cluster *c, const char *exe, bool batch, struct window_hist *hist,
                         double window_s, struct measured *m)
{
    fputs(batch ? "[run 2/2] batching on:  " : "[run 1/2] batching off: ", stdout);
    fflush(stdout);
    start_cluster(c, exe, batch, batch ? "batched" : "naive", hist, &m->elect_s);
    printf("all groups have leaders after %.1f s; measuring %.0f s\n%s", m->elect_s, window_s,
           batch ? "\n" : "");
    fflush(stdout);
    measure(c, window_s, m);
}

static const char *human_bytes(double b, char *buf, size_t size)
{
    if (b >= 1e6)
        snprintf(buf, size, "%.1f MB", b / 1e6);
    else if (b >= 1e3)
        snprintf(buf, size, "%.1f kB", b / 1e3);
    else
        snprintf(buf, size, "%.0f B", b);
    return buf;
}

/* ---------------------------------------------------------------------- */
/* Idle groups go quiet                                                    */

/* Every group quiet on every node, in reports after *since_ns. */
static bool all_quiet(qc_cluster *c, void *arg)
{
    uint64_t since = *(const uint64_t *)arg;
    for (size_t i = 0; i < c->n; i++) {
        const qc_proc *p = &c->procs[i];
        if (p->reports == 0 || p->last.received_ns <= since || p->last.quiesced != GROUPS)
            return false;
    }
    return true;
}

/* Heartbeat traffic (per node per peer per second) and CPU (per node) of
 * the quiet cluster over window_s. */
static void measure_quiet(qc_cluster *c, double window_s, struct measured *m)
{
    qc_stat before[NODES], after[NODES];
    struct cpu_mark cpu0, cpu1;
    for (size_t i = 0; i < NODES; i++)
        before[i] = c->procs[i].last;
    cpu_mark(c, &cpu0);
    pause_for(c, window_s);
    for (size_t i = 0; i < NODES; i++)
        after[i] = c->procs[i].last;
    cpu_mark(c, &cpu1);
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < NODES; i++) {
        double dt = (double)(after[i].t_ms - before[i].t_ms) / 1000.0;
        if (dt <= 0)
            fail("node %zu sent no report while measuring", i + 1);
        double per_peer = dt * (NODES - 1) * NODES;
        m->hb_msgs += (double)(after[i].hb_msgs - before[i].hb_msgs) / per_peer;
        m->hb_bytes += (double)(after[i].hb_bytes - before[i].hb_bytes) / per_peer;
        m->carried += (double)(after[i].group_hb_batched - before[i].group_hb_batched) / per_peer;
    }
    m->cpu_pct = cpu_pct(&cpu0, &cpu1);
}

/* ---------------------------------------------------------------------- */
/* Failure and recovery                                                    */

struct caught_up_arg {
    size_t victim;
    double lag_s;
};

/* The restarted node's queues are where every other node's were lag_s
 * earlier (index_sum: the sum over the queues of the last index applied or
 * restored). */
static bool caught_up(qc_cluster *c, void *arg)
{
    const struct caught_up_arg *a = arg;
    const qc_proc *v = &c->procs[a->victim];
    if (v->reports == 0)
        return false;
    uint64_t then = v->last.received_ns - (uint64_t)(a->lag_s * 1e9);
    for (size_t i = 0; i < c->n; i++)
        if (i != a->victim && v->last.index_sum < qc_index_sum_at(c, i, then))
            return false;
    return true;
}

/* Proposals stopped: every node's queues are at the same indexes with the
 * same state, nothing is in flight, every group has a leader; in reports
 * after *since_ns. */
static bool settled(qc_cluster *c, void *arg)
{
    if (!all_led(c, arg))
        return false;
    const qc_stat *ref = NULL;
    for (size_t i = 0; i < c->n; i++) {
        if (!qc_running(c, i))
            continue; /* a node replaced for good */
        const qc_stat *s = &c->procs[i].last;
        if (ref == NULL)
            ref = s;
        if (s->proposing || s->inflight || s->index_sum != ref->index_sum ||
            s->state != ref->state)
            return false;
    }
    return true;
}

/* The balance watch (fed by on_stat) saw the leaders balanced. */
static bool leaders_back(qc_cluster *c, void *arg)
{
    (void)c, (void)arg;
    return bw.balanced_s >= 0;
}

/* Restart node `victim` (already down) and print its catching up until it
 * is within lag_s of the others. */
static void watch_catch_up(qc_cluster *c, size_t victim, uint64_t t_restart)
{
    struct caught_up_arg cu = {victim, 0.2};
    uint64_t seen = 0;
    double next_line = 0;
    for (;;) {
        double t = qc_seconds_since(t_restart);
        if (t >= CATCHUP_TIMEOUT_S)
            fail("node %zu did not catch up within %.0f s", victim + 1, CATCHUP_TIMEOUT_S);
        bool done = caught_up(c, &cu);
        /* A line for its first report, then one a second, and the last. */
        const qc_stat *v = &c->procs[victim].last;
        if (c->procs[victim].reports > seen && (t >= next_line || done)) {
            seen = c->procs[victim].reports;
            uint64_t others = 0;
            for (size_t i = 0; i < NODES; i++)
                if (i != victim && c->procs[i].last.index_sum > others)
                    others = c->procs[i].last.index_sum;
            printf("  +%.1f s  restored %3" PRIu64 " snapshots (%3" PRIu64
                   " received from leaders), skipped %5" PRIu64 " entries,\n"
                   "           applied %5" PRIu64 "; its queues at %5" PRIu64
                   " entries in all, the others' at %5" PRIu64 "\n",
                   t, v->restores, v->installed, v->skipped, v->applied, v->index_sum, others);
            fflush(stdout);
            next_line = t + 1.0;
        }
        if (done)
            break;
        wait_for(c, 0.02, NULL, NULL);
    }
    printf("  caught up %.1f s after the restart (under %.1f s behind the others)\n",
           qc_seconds_since(t_restart), cu.lag_s);
}

/* ---------------------------------------------------------------------- */
/* Scene 6: replacing a dead node                                          */

static size_t verify_failures;

static void verify_check(void *arg, bool ok, const char *what)
{
    (void)arg;
    if (!ok && what && verify_failures++ < 5)
        printf("  FAILED: %s\n", what);
}

/* The smallest of a field over the running nodes' latest reports (after
 * since_ns; 0 if one has none yet). */
static uint64_t min_running(const qc_cluster *c, size_t offset, uint64_t since_ns)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < c->n; i++) {
        if (!qc_running(c, i))
            continue;
        const qc_proc *p = &c->procs[i];
        uint64_t v = p->reports > 0 && p->last.received_ns > since_ns
                         ? *(const uint64_t *)((const char *)&p->last + offset)
                         : 0;
        m = v < m ? v : m;
    }
    return m == UINT64_MAX ? 0 : m;
}
#define MIN_RUNNING(c, field, since) min_running((c), offsetof(qc_stat, field), (since))

struct phase_arg {
    size_t offset;
    uint64_t since;
};

static bool phase_done(qc_cluster *c, void *arg)
{
    const struct phase_arg *a = arg;
    return min_running(c, a->offset, a->since) == GROUPS;
}

/* Node `dead` dies for good; node 4 joins every group, and the leaders add
 * it, muxraft promotes it, the leaders remove the dead node, while the
 * nodes propose; the time of each phase. */
static void replace_scene(qc_cluster *c, size_t dead)
{
    for (size_t i = 0; i < NODES; i++)
        qc_signal(c, i, SIGUSR2); /* proposals resume */
    pid_t dead_pid = c->procs[dead].pid;
    uint64_t t_kill = qc_now_ns();
    qc_kill(c, dead);
    c->procs[dead].retired = true;
    printf("\nSIGKILL node %zu (pid %d), the one that rejoined: it is gone for good (say its\n"
           "machine died). (A replica that rejoined empty never votes nor counts toward a\n"
           "quorum again: until it is replaced, its groups could not lose another node.) The\n"
           "proposals resume; we replace it with a new node 4 in all %d groups: node 4\n"
           "joins every group (muxraft_group_join), then each group's leader adds it as\n"
           "promotable, muxraft makes it a voter once it caught up, and the leader removes\n"
           "node %zu (the nodes are told by a line in their --control file):\n",
           dead + 1, (int)dead_pid, GROUPS, dead + 1);
    fflush(stdout);
    if (!wait_for(c, FAILOVER_TIMEOUT_S, all_led, &t_kill)) {
        for (size_t i = 0; i < c->n; i++)
            if (qc_running(c, i))
                printf("  node %" PRIu64 ": leads %" PRIu64 ", knows no leader for %" PRIu64
                       ", %" PRIu64 " groups awake, %" PRIu64 " elections, peers heard %" PRIu64
                       "\n",
                       c->procs[i].id, c->procs[i].last.leading, c->procs[i].last.leaderless,
                       c->procs[i].last.awake, c->procs[i].last.elections,
                       c->procs[i].last.peers_heard);
        fail("the groups of node %zu had no new leader %.0f s later", dead + 1,
             FAILOVER_TIMEOUT_S);
    }
    printf("  +%.2f s  every group has a leader again (node %zu's were taken over)\n",
           qc_seconds_since(t_kill), dead + 1);

    int k = qc_add_node(c);
    if (k < 0)
        fail("cannot set up node 4");
    c->procs[k].join = true;
    uint64_t t0 = qc_now_ns();
    if (!qc_start(c, (size_t)k))
        fail("cannot start node 4");
    struct phase_arg joined = {offsetof(qc_stat, groups), t0};
    if (!wait_for(c, REPLACE_TIMEOUT_S, phase_done, &joined))
        fail("node 4 did not join the %d groups", GROUPS);
    double joined_s = qc_seconds_since(t0);
    printf("  +%.2f s  node 4 (pid %d) started and joined all %d groups\n", joined_s,
           (int)c->procs[k].pid, GROUPS);

    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", control_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "replace %" PRIu64 " %" PRIu64 " 127.0.0.1:%d\n",
                             c->procs[dead].id, c->procs[k].id, c->procs[k].port) < 0 ||
        fclose(f) != 0 || rename(tmp, control_path) != 0)
        fail("cannot write %s", control_path);
    uint64_t t_replace = qc_now_ns();
    uint64_t failed0 = QC_SUM(c, failed), commits0 = QC_SUM(c, commits);
    printf("  +%.2f s  \"replace %" PRIu64 " %" PRIu64 "\" written to the control file\n",
           qc_seconds_since(t0), c->procs[dead].id, c->procs[k].id);
    static const struct {
        size_t offset;
        const char *what;
    } phases[] = {
        {offsetof(qc_stat, repl_added), "node 4 is a member (promotable) of all"},
        {offsetof(qc_stat, repl_promoted), "node 4 caught up and is a voter in all"},
        {offsetof(qc_stat, replaced), "the dead node is removed from all"},
    };
    for (size_t ph = 0; ph < sizeof phases / sizeof phases[0]; ph++) {
        struct phase_arg a = {phases[ph].offset, t_replace};
        if (!wait_for(c, REPLACE_TIMEOUT_S, phase_done, &a))
            fail("replacement stuck: %s %d groups not reached in %.0f s (as the nodes see "
                 "it: %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 ")",
                 phases[ph].what, GROUPS, REPLACE_TIMEOUT_S,
                 *(const uint64_t *)((const char *)&c->procs[0].last + a.offset),
                 *(const uint64_t *)((const char *)&c->procs[1].last + a.offset),
                 *(const uint64_t *)((const char *)&c->procs[2].last + a.offset),
                 *(const uint64_t *)((const char *)&c->procs[3].last + a.offset));
        printf("  +%.2f s  %s %d groups (as every live replica sees them)\n",
               qc_seconds_since(t0), phases[ph].what, GROUPS);
        fflush(stdout);
    }
    double replace_s = qc_seconds_since(t_replace);
    char counts[64];
    size_t at = 0;
    for (size_t i = 0; i < c->n; i++)
        if (qc_running(c, i))
            at += (size_t)snprintf(counts + at, sizeof counts - at, "%snode %" PRIu64 " %" PRIu64,
                                   at ? ", " : "", c->procs[i].id, c->procs[i].last.leading);
    printf("  replaced in all %d groups %.2f s after the control line; meanwhile %" PRIu64
           " proposals\n  committed and %" PRIu64 " failed; leaders now: %s\n",
           GROUPS, replace_s, QC_SUM(c, commits) - commits0, QC_SUM(c, failed) - failed0,
           counts);

    /* Stop proposing; the live nodes must end with the same entries. */
    for (size_t i = 0; i < c->n; i++)
        qc_signal(c, i, SIGUSR1);
    uint64_t t_pause = qc_now_ns();
    if (!wait_for(c, SETTLE_TIMEOUT_S, settled, &t_pause))
        fail("after proposals stopped nodes 1, 2, 3, 4 did not agree within %.0f s "
             "(entries: %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
             SETTLE_TIMEOUT_S, c->procs[0].last.index_sum, c->procs[1].last.index_sum,
             c->procs[2].last.index_sum, c->procs[3].last.index_sum);
    printf("  proposals stopped: the live nodes' queues hold the same %" PRIu64
           " entries with the same state\n",
           c->procs[k].last.index_sum);
}

/* ---------------------------------------------------------------------- */

static void find_queue_node(const char *argv0, char *out, size_t size)
{
    const char *slash = strrchr(argv0, '/');
    if (slash)
        snprintf(out, size, "%.*s/queue_node", (int)(slash - argv0), argv0);
    else
        snprintf(out, size, "./queue_node");
}

int main(int argc, char **argv)
{
    uint64_t demo_start = qc_now_ns();
    char exe[PATH_MAX];
    if (argc > 1)
        snprintf(exe, sizeof exe, "%s", argv[1]);
    else
        find_queue_node(argv[0], exe, sizeof exe);
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "demo: cannot run %s (build it with `make demo`)\n", exe);
        return EXIT_FAILURE;
    }
    qc_install_signals();
    atexit(cleanup);
    if (!qc_make_temp_dir(base_dir, sizeof base_dir, "muxraft-demo"))
        return EXIT_FAILURE;
    snprintf(control_path, sizeof control_path, "%s/control", base_dir);

    printf("muxraft demo: 3 broker processes on this machine, %d replicated queues\n\n", GROUPS);
    printf(
        "Each queue is a Raft group with a replica in each of 3 processes (queue_node,\n"
        "talking TCP on 127.0.0.1, each with its own write-ahead log on disk); each\n"
        "process proposes %d small messages a second to the queues it leads. In plain\n"
        "Raft every group leader heartbeats each follower every 100 ms, so %d queues\n"
        "cost thousands of messages a second even when idle; muxraft sends one batch\n"
        "per pair of nodes per interval, whatever the number of groups. We run the\n"
        "cluster without batching (for comparison), then with it; then we kill the\n"
        "busiest process with SIGKILL, time the failover, restart it from its data\n"
        "directory, watch it catch up and get its share of the leaders back; then we\n"
        "delete another node's data (a replaced disk) and watch it rejoin; last that\n"
        "node dies for good and a new node replaces it in every queue. Before the\n"
        "kill we pause the proposals:\n"
        "idle queues go quiet (no ticks, no per-queue heartbeats), and only the loss\n"
        "of a leader's node wakes its queues. Each queue's state (a count and a hash\n"
        "of its messages) is snapshotted every %d entries, and muxraft then drops\n"
        "the log before the snapshot.\n\n",
        RATE, GROUPS, SNAPSHOT_EVERY);

    static struct window_hist hist;
    static qc_cluster naive_c, c;
    struct measured naive, batched;

    /* Run 1: batching off, for comparison. */
    measured_run(&naive_c, exe, false, &hist, NAIVE_WINDOW_S, &naive);
    if (!qc_stop_all(&naive_c, 10000))
        fail("the nodes of run 1 did not stop cleanly");
    live_cluster = NULL;

    /* Run 2: batching on (the default). */
    measured_run(&c, exe, true, &hist, BATCH_WINDOW_S, &batched);

    printf("%-34s", "Nodes (run 2)");
    for (size_t i = 0; i < NODES; i++)
        printf("   node %zu", i + 1);
    printf("\n%-34s", "  process id (pid)");
    for (size_t i = 0; i < NODES; i++)
        printf(" %8d", (int)c.procs[i].pid);
    printf("\n%-34s", "  listens on 127.0.0.1 port");
    for (size_t i = 0; i < NODES; i++)
        printf(" %8d", c.procs[i].port);
    printf("\n%-34s", "  queues (group replicas) hosted");
    for (size_t i = 0; i < NODES; i++)
        printf(" %8" PRIu64, c.procs[i].last.groups);
    printf("\n%-34s", "  groups it leads");
    for (size_t i = 0; i < NODES; i++)
        printf(" %8" PRIu64, c.procs[i].last.leading);
    printf("\n\n");

    char b1[32], b2[32];
    printf("%-44s %10s %10s\n", "Measured, per second", "batching", "no batch");
    printf("%-44s %10.1f %10.1f\n", "  heartbeat messages, per node per peer (*)",
           batched.hb_msgs, naive.hb_msgs);
    printf("%-44s %10s %10s\n", "  heartbeat bytes, per node per peer",
           human_bytes(batched.hb_bytes, b1, sizeof b1), human_bytes(naive.hb_bytes, b2, sizeof b2));
    printf("%-44s %10.0f %10s\n", "  group heartbeats carried in those batches", batched.carried,
           "-");
    printf("%-44s %10.0f %10.0f\n", "  commits, whole cluster", batched.commits, naive.commits);
    printf("%-44s %7.2f ms %7.2f ms\n", "  commit latency p50", batched.p50_ms, naive.p50_ms);
    printf("%-44s %7.2f ms %7.2f ms\n", "  commit latency p99", batched.p99_ms, naive.p99_ms);
    printf("(*) heartbeats (or batches) and their answers. Both columns are measured\n"
           "    (%.0f s and %.0f s). Batching sends %.0fx fewer: each batch carries the\n"
           "    heartbeats of ~%.0f groups, which without batching travel one per message.\n\n",
           BATCH_WINDOW_S, NAIVE_WINDOW_S,
           batched.hb_msgs > 0 ? naive.hb_msgs / batched.hb_msgs : 0.0,
           batched.hb_msgs > 0 ? batched.carried / (batched.hb_msgs / 2) : 0.0);
    if (batched.hb_msgs <= 0 || naive.hb_msgs <= batched.hb_msgs)
        fail("batching did not reduce the heartbeat messages");

    /* Pause the proposals: the idle groups go quiet. */
    for (size_t i = 0; i < NODES; i++)
        qc_signal(&c, i, SIGUSR1);
    uint64_t t_idle = qc_now_ns();
    if (!wait_for(&c, QUIET_TIMEOUT_S, all_quiet, &t_idle))
        fail("the idle groups did not all go quiet within %.0f s (quiet: %" PRIu64 ", %" PRIu64
             ", %" PRIu64 " of %d)",
             QUIET_TIMEOUT_S, c.procs[0].last.quiesced, c.procs[1].last.quiesced,
             c.procs[2].last.quiesced, GROUPS);
    double quiet_after_s = qc_seconds_since(t_idle);
    struct measured quiet;
    measure_quiet(&c, QUIET_WINDOW_S, &quiet);
    printf("Proposals paused (SIGUSR1): all %d groups are quiet on every node %.1f s later\n"
           "(quiesced: %" PRIu64 ", %" PRIu64 ", %" PRIu64 "; awake: %" PRIu64 ", %" PRIu64
           ", %" PRIu64 ").\n",
           GROUPS, quiet_after_s, c.procs[0].last.quiesced, c.procs[1].last.quiesced,
           c.procs[2].last.quiesced, c.procs[0].last.awake, c.procs[1].last.awake,
           c.procs[2].last.awake);
    printf("%-44s %10s %10s\n", "Measured, per second", "load", "quiet");
    printf("%-44s %9.1f%% %9.1f%%\n", "  CPU per node (% of one core)", batched.cpu_pct,
           quiet.cpu_pct);
    printf("%-44s %10.1f %10.1f\n", "  heartbeat messages, per node per peer", batched.hb_msgs,
           quiet.hb_msgs);
    printf("%-44s %10.0f %10.0f\n", "  group heartbeats carried in those batches",
           batched.carried, quiet.carried);
    printf("(an empty batch still goes to each peer every interval: it tells a node that\n"
           " its peers, and so the leaders of its quiet groups, are alive)\n\n");
    if (quiet.carried > 0)
        fail("quiet groups still sent heartbeat rows");

    /* Kill the node that leads the most groups. */
    size_t victim = 0;
    for (size_t i = 1; i < NODES; i++)
        if (c.procs[i].last.leading > c.procs[victim].last.leading)
            victim = i;
    uint64_t led = c.procs[victim].last.leading;
    pid_t old_pid = c.procs[victim].pid;
    qc_stat at_kill[NODES];
    for (size_t i = 0; i < NODES; i++)
        at_kill[i] = c.procs[i].last;
    uint64_t t_kill = qc_now_ns();
    qc_kill(&c, victim);
    printf("SIGKILL node %zu (pid %d), the leader of %" PRIu64 " groups, all quiet.\n",
           victim + 1, (int)old_pid, led);
    fflush(stdout);
    if (!wait_for(&c, FAILOVER_TIMEOUT_S, all_led, &t_kill))
        fail("the groups of node %zu had no new leader %.0f s later", victim + 1,
             FAILOVER_TIMEOUT_S);
    double failover_s = qc_seconds_since(t_kill);
    printf("  all %d groups have a leader again after %.2f s:", GROUPS, failover_s);
    const char *sep = " ";
    for (size_t i = 0; i < NODES; i++)
        if (i != victim) {
            printf("%snode %zu leads %" PRIu64, sep, i + 1, c.procs[i].last.leading);
            sep = ", ";
        }
    printf("\n");
    /* Let a late second campaign show up in the counts. */
    pause_for(&c, 0.5);
    uint64_t survivor_elections = 0, moves_other = 0; /* see queue_node's term_bumps */
    uint64_t vid = c.procs[victim].id;
    for (size_t i = 0; i < NODES; i++) {
        if (i == victim)
            continue;
        const qc_stat *a = &at_kill[i], *b = &c.procs[i].last;
        survivor_elections += b->elections - a->elections;
        uint64_t other = 0;
        for (size_t k = 0; k <= QC_MAX_ID; k++)
            if (k != vid)
                other += b->term_bumps[k] - a->term_bumps[k];
        moves_other = other > moves_other ? other : moves_other;
    }
    printf("  (its groups were quiet: the survivors noticed its node was gone after an\n"
           "  election timeout without its heartbeat batch, 0.5 s, and one survivor per\n"
           "  group campaigned at once); %" PRIu64 " elections for its %" PRIu64
           " groups, %" PRIu64 " in the %" PRIu64 "\n  groups the others lead (those stayed quiet)\n",
           survivor_elections, led, moves_other, (uint64_t)GROUPS - led);
    fflush(stdout);
    for (size_t i = 0; i < NODES; i++)
        qc_signal(&c, i, SIGUSR2); /* proposals resume */

    uint64_t t_down0 = qc_now_ns();
    uint64_t commits_down0 = QC_SUM(&c, commits) - c.procs[victim].last.commits;
    pause_for(&c, DOWN_S);
    uint64_t commits_down1 = QC_SUM(&c, commits) - c.procs[victim].last.commits;
    printf("  with one node down the other two commit %.0f proposals/s\n",
           (double)(commits_down1 - commits_down0) / qc_seconds_since(t_down0));

    /* Restart it from its data directory. */
    uint64_t snapshots = QC_SUM(&c, snapshots);
    uint64_t elections0 = QC_SUM(&c, elections) - c.procs[victim].last.elections;
    uint64_t t_restart = qc_now_ns();
    uint64_t failed_restart = QC_SUM(&c, failed) - c.procs[victim].last.failed;
    uint64_t transfers_restart = QC_SUM(&c, balance_transfers) - c.procs[victim].last.balance_transfers;
    memset(&bw, 0, sizeof bw);
    bw.t0 = t_restart;
    bw.balanced_s = -1;
    /* Where it starts: the survivors lead every group, the dead node none. */
    snprintf(bw.trail, sizeof bw.trail, "%" PRIu64 "/%" PRIu64 "/%" PRIu64 " (0.0 s)",
             victim == 0 ? 0 : c.procs[0].last.leading, victim == 1 ? 0 : c.procs[1].last.leading,
             victim == 2 ? 0 : c.procs[2].last.leading);
    bw.next_sample = 0.5;
    bw.on = true;
    if (!qc_start(&c, victim))
        fail("cannot restart node %zu", victim + 1);
    printf("Restart node %zu from its data directory (pid %d). The nodes took %" PRIu64
           " snapshots so far;\n"
           "each queue is restored from its latest one (the restore callback) and applies\n"
           "only the entries that followed it:\n",
           victim + 1, (int)c.procs[victim].pid, snapshots);
    fflush(stdout);
    watch_catch_up(&c, victim, t_restart);
    const qc_stat *vs = &c.procs[victim].last;
    printf("  its queues hold %" PRIu64 " entries: it skipped the %" PRIu64
           " its snapshots covered and applied %" PRIu64 "\n"
           "  (those after its snapshots, and the new ones);\n"
           "  elections caused by its return: %" PRIu64 " (PreVote: no disruption)\n",
           vs->index_sum, vs->skipped, vs->applied, QC_SUM(&c, elections) - elections0);
    if (vs->restores == 0 || vs->skipped == 0)
        fail("the restarted node restored no snapshot");
    if (!wait_for(&c, BALANCE_TIMEOUT_S, leaders_back, NULL))
        fail("the leaders were not balanced %.0f s after the restart: %s", BALANCE_TIMEOUT_S,
             bw.trail);
    printf("Leader balance (muxraft's balancer hands leaderships to the node that came\n"
           "back, by leadership transfers, while proposals continue); leaders per node:\n"
           "  %s\n"
           "  every node within 10%% of %d %.1f s after the restart: %" PRIu64
           " transfers by the balancer,\n"
           "  %" PRIu64 " failed proposals since the restart\n",
           bw.trail, GROUPS / NODES, bw.balanced_s, bw.transfers - transfers_restart,
           bw.failed - failed_restart);
    if (bw.failed != failed_restart)
        fail("proposals failed while the leaders were balanced");

    /* Delete another node's data: it must rejoin. */
    size_t wiped = (victim + 1) % NODES;
    pid_t wiped_pid = c.procs[wiped].pid;
    qc_kill(&c, wiped);
    char raft_dir[1200];
    snprintf(raft_dir, sizeof raft_dir, "%.1000s/raft", c.procs[wiped].dir);
    qc_remove_tree(raft_dir);
    printf("\nSIGKILL node %zu (pid %d) and delete its muxraft data (%s), as if its\n"
           "disk had been replaced. Restarted, it finds the directory gone and rejoins\n"
           "its queues (muxraft_group_rejoin); their leaders send it snapshots:\n",
           wiped + 1, (int)wiped_pid, raft_dir);
    fflush(stdout);
    uint64_t t_rejoin = qc_now_ns();
    if (!qc_start(&c, wiped))
        fail("cannot restart node %zu", wiped + 1);
    watch_catch_up(&c, wiped, t_rejoin);
    if (c.procs[wiped].last.installed == 0)
        fail("the wiped node installed no snapshot from a leader");

    /* Stop proposing; every node must end with exactly the same entries. */
    for (size_t i = 0; i < NODES; i++)
        qc_signal(&c, i, SIGUSR1);
    uint64_t t_pause = qc_now_ns();
    if (!wait_for(&c, SETTLE_TIMEOUT_S, settled, &t_pause))
        fail("after proposals stopped the nodes did not agree within %.0f s "
             "(entries: %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
             SETTLE_TIMEOUT_S, c.procs[0].last.index_sum, c.procs[1].last.index_sum,
             c.procs[2].last.index_sum);
    printf("\nProposals stopped: the 3 nodes' %d queues hold the same %" PRIu64
           " entries, with the\nsame state (hash %016" PRIx64 ") on every node, the wiped one "
           "included.\n",
           GROUPS, c.procs[0].last.index_sum, c.procs[0].last.state);

    /* The node that rejoined dies for good. It had to be that one: a
     * replica that rejoined with an empty disk never votes, campaigns nor
     * counts toward a quorum again (it may have forgotten a vote it gave
     * and entries it acknowledged), so its groups survive the loss of no
     * other node until it is replaced by a full member. */
    replace_scene(&c, wiped);

    if (!qc_stop_all(&c, 10000))
        fail("the nodes did not stop cleanly on SIGTERM");
    live_cluster = NULL;

    /* Every acknowledged proposal, on every replica, as the crash test
     * checks it (the dead node's logs too, but not its final state). */
    lv_summary sum;
    verify_failures = 0;
    bool ok = lv_verify(&c, GROUPS, verify_check, NULL, &sum);
    printf("\nEvery node's logs checked as the crash test does: %zu acknowledged proposals,\n"
           "%zu lost (not applied at their index on every replica, or past a final state);\n",
           sum.acked, sum.lost);
    lv_print_summary(stdout, &sum);
    if (!ok)
        fail("%zu checks of the logs failed", sum.failed);

    printf("\nOK: demo finished in %.0f s.\n", qc_seconds_since(demo_start));
    cleanup();
    return EXIT_SUCCESS;
}
