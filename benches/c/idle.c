/*
 * idle.c: `make bench-idle` (part of `make bench`). What idle groups cost:
 * CPU and memory of three processes hosting many groups with nothing to do.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, in
 * embedded mode with data directories, host G groups of three replicas
 * (one replica of every group in each process) and propose nothing
 * (--rate 0). Leaders are whoever wins each group's first election. Once
 * every group has a leader and the cluster has settled, each process's CPU
 * (utime + stime from /proc/<pid>/stat) is measured over --seconds, as a
 * percentage of one core, and its resident memory (VmRSS of
 * /proc/<pid>/status) divided by the group replicas it hosts. Modes:
 *
 *   quiesced  --quiesce 1 (muxraft's default): settled once every group is
 *             quiet on every replica (quiesced == groups on each node);
 *             then no group is ticked and no heartbeat row is sent, only
 *             one heartbeat batch per pair of nodes per interval;
 *   awake     --quiesce 0: every group awake, its heartbeat rows batched
 *             (one batch per pair of nodes per interval carrying all rows);
 *   naive     --batch 0: one heartbeat message per group per follower, at
 *             --naive-groups (default 10,000: with 100,000 groups the naive
 *             cluster spends its cores on heartbeats and does not settle).
 * The awake and naive modes are settled once every group has a leader and
 * no election started for --stable-seconds.
 *
 * For each mode it prints how long the processes took to create their
 * groups (every group is durable in the write-ahead log when created: the
 * first STAT line of each process follows its last creation), until every
 * group had a leader, and until the cluster settled; then per process:
 * the groups it leads, CPU %, the part of it spent by muxraft's own
 * threads (those named muxraft-*: timer and node, transport, write-ahead
 * log; the rest is queue_node's main thread), RSS (MiB, and bytes per
 * group replica), heartbeat messages and all messages it sent per second,
 * and the elections and leader changes during the window (0 when idle
 * means idle); and the machine's load average, since the CPU time of an
 * idle process grows when other work shares its cores.
 *
 * Each process prints a STAT line every --report-ms (one muxraft_node_stats
 * call, and a pass over its queues' states); it re-reads the role of each
 * of its groups (one muxraft_group_status call per group, tens of
 * milliseconds at 100,000 groups) at most that often, and only after a
 * role change, an apply or a snapshot: not while the groups are idle. Its
 * main loop wakes every 5 ms. All of that is in the CPU measured.
 *
 *   usage: idle [--queue-node PATH] [--groups 100000] [--seconds 60]
 *               [--modes quiesced,awake,naive] [--naive-groups 10000]
 *               [--report-ms 1000] [--stable-seconds 10]
 *               [--settle-timeout 600] [--max-cpu 2] [--json]
 *
 * --json prints one JSON object per mode on stdout (the table goes to
 * stderr). Exit status 0 unless a node died, a mode did not settle within
 * --settle-timeout seconds, or a quiesced process used more than --max-cpu
 * percent of a core (the target: under 2% with 100,000 idle groups).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_cluster.h"

#define NODES 3
#define MAX_MODES 3
#define PROG "idle" /* what its messages begin with */

static qc_cluster cluster;
static char base_dir[512];

static void cleanup(void)
{
    qc_teardown(&cluster, base_dir, false);
}

struct options {
    const char *exe;
    unsigned groups, naive_groups, report_ms;
    double seconds, stable_s, settle_timeout_s, max_cpu;
    bool modes[MAX_MODES]; /* quiesced, awake, naive */
    bool json;
};

static const char *mode_names[MAX_MODES] = {"quiesced", "awake", "naive"};

struct node_result {
    uint64_t id, pid, groups, leading, awake, quiesced, peers_heard;
    double cpu_pct, rss_mib, rss_per_replica, hb_per_s, sent_per_s;
    double muxraft_pct; /* of cpu_pct: muxraft's own threads */
    uint64_t elections, leader_changes;
};

struct run {
    int mode;
    unsigned groups;
    double created_s, led_s, settled_s, seconds;
    double loadavg; /* the machine's 1-minute load average at the end */
    struct node_result nodes[NODES];
};

static FILE *human; /* the table: stdout, or stderr with --json */

/* Start a cluster for mode m and wait until it settled; false if a node
 * died, we were interrupted or it did not settle in time. */
static bool start_and_settle(const struct options *o, int m, struct run *r)
{
    if (!qc_init_temp(&cluster, o->exe, NODES, base_dir, sizeof base_dir, "muxraft-idle"))
        return false;
    cluster.groups = r->groups;
    cluster.rate = 0;
    cluster.report_ms = o->report_ms;
    cluster.roles_ms = o->report_ms;
    cluster.batch = m != 2;
    cluster.quiesce = m == 0;
    cluster.no_app_logs = true;
    uint64_t t0 = qc_now_ns();
    if (!qc_start_all(&cluster))
        return false;
    fprintf(human, "== %s: %u groups (--batch %d --quiesce %d); data in %s\n", mode_names[m],
            r->groups, cluster.batch, cluster.quiesce, base_dir);
    fflush(human);

    bool created = false, led = false;
    uint64_t stable_since = 0, last_elections = UINT64_MAX, led_ns = 0;
    double next_progress = 30;
    for (;;) {
        if (!qc_poll_alive(&cluster, 100, PROG))
            return false;
        double t = qc_seconds_since(t0);
        if (!created) {
            bool all = true;
            for (size_t i = 0; i < NODES; i++)
                all = all && cluster.procs[i].reports > 0;
            if (all) {
                created = true;
                r->created_s = t;
            }
        }
        if (created && !led && qc_all_led(&cluster, 0)) {
            led = true;
            led_ns = qc_now_ns();
            r->led_s = t;
        }
        if (led) {
            bool done;
            if (m == 0) {
                done = qc_all_quiet(&cluster) && qc_all_led(&cluster, led_ns);
            } else {
                uint64_t e = QC_SUM(&cluster, elections);
                if (e != last_elections || !qc_all_led(&cluster, 0)) {
                    last_elections = e;
                    stable_since = qc_now_ns();
                }
                done = qc_seconds_since(stable_since) >= o->stable_s;
            }
            if (done) {
                r->settled_s = t;
                break;
            }
        }
        if (t >= next_progress) {
            fprintf(human, "  %.0f s:", t);
            for (size_t i = 0; i < NODES; i++) {
                const qc_proc *p = &cluster.procs[i];
                if (p->reports == 0)
                    fprintf(human, " node %zu creating its groups;", i + 1);
                else
                    fprintf(human, " node %zu leads %" PRIu64 ", %" PRIu64 " leaderless, %" PRIu64
                                   " quiet, %" PRIu64 " elections;",
                            i + 1, p->last.leading, p->last.leaderless, p->last.quiesced,
                            p->last.elections);
            }
            fprintf(human, "\n");
            fflush(human);
            next_progress += 30;
        }
        if (t > o->settle_timeout_s) {
            fprintf(stderr, "idle: %s did not settle within %.0f s (%s)\n", mode_names[m],
                    o->settle_timeout_s,
                    !created ? "groups still being created"
                    : !led   ? "not every group has a leader"
                    : m == 0 ? "not every group is quiet"
                             : "elections go on");
            return false;
        }
    }
    fprintf(human, "  groups created after %.1f s, every group led after %.1f s, settled after "
                   "%.1f s; measuring %.0f s\n",
            r->created_s, r->led_s, r->settled_s, o->seconds);
    fflush(human);
    return true;
}

/* What the measured window keeps from the report that opens it. */
struct window {
    uint64_t ticks0[NODES], lib0[NODES], ns0[NODES];
    qc_stat s0[NODES];
    struct run *r;
};

/* Wait for the next report of each node (the first after the call) and
 * call at() for each as it arrives; false if a node died, we were
 * interrupted or a report is missing limit_s after start_ns. */
static bool each_next_report(uint64_t start_ns, double limit_s,
                             void (*at)(struct window *w, size_t i, const qc_proc *p),
                             struct window *w)
{
    bool have[NODES] = {false, false, false};
    uint64_t seen[NODES];
    for (size_t i = 0; i < NODES; i++)
        seen[i] = cluster.procs[i].reports;
    for (;;) {
        if (!qc_poll_alive(&cluster, 20, PROG))
            return false;
        bool all = true;
        for (size_t i = 0; i < NODES; i++) {
            const qc_proc *p = &cluster.procs[i];
            if (!have[i] && p->reports > seen[i]) {
                at(w, i, p);
                have[i] = true;
            }
            all = all && have[i];
        }
        if (all)
            return true;
        if (qc_seconds_since(start_ns) > limit_s) {
            fprintf(stderr, "idle: no report for a minute\n");
            return false;
        }
    }
}

static void open_window(struct window *w, size_t i, const qc_proc *p)
{
    w->ticks0[i] = qc_cpu_ticks(p->pid);
    w->lib0[i] = qc_threads_cpu_ticks(p->pid, "muxraft");
    w->ns0[i] = qc_now_ns();
    w->s0[i] = p->last;
}

static void close_window(struct window *w, size_t i, const qc_proc *p)
{
    uint64_t ticks = qc_cpu_ticks(p->pid), ns = qc_now_ns();
    uint64_t lib = qc_threads_cpu_ticks(p->pid, "muxraft");
    const qc_stat *a = &w->s0[i], *b = &p->last;
    struct node_result *n = &w->r->nodes[i];
    double wall = (double)(ns - w->ns0[i]) / 1e9;
    double dt = (double)(b->t_ms - a->t_ms) / 1000.0;
    if (dt <= 0)
        dt = 1e-3;
    n->id = p->id;
    n->pid = (uint64_t)p->pid;
    n->groups = b->groups;
    n->leading = b->leading;
    n->awake = b->awake;
    n->quiesced = b->quiesced;
    n->peers_heard = b->peers_heard;
    n->cpu_pct = qc_cpu_pct((double)(ticks - w->ticks0[i]), wall);
    n->muxraft_pct = qc_cpu_pct((double)(lib - w->lib0[i]), wall);
    uint64_t rss = qc_rss_kb(p->pid);
    n->rss_mib = (double)rss / 1024.0;
    n->rss_per_replica = b->groups ? (double)rss * 1024.0 / (double)b->groups : 0;
    n->hb_per_s = (double)(b->hb_msgs - a->hb_msgs) / dt;
    n->sent_per_s = (double)(b->sent - a->sent) / dt;
    n->elections = b->elections - a->elections;
    n->leader_changes = b->leader_changes - a->leader_changes;
    w->r->seconds = wall;
}

/* The measured window. */
static bool measure(const struct options *o, struct run *r)
{
    /* The window opens at the next report of each node, so that the
     * counters of STAT lines are read over the same span as the CPU. */
    struct window w;
    w.r = r;
    uint64_t opened = qc_now_ns();
    if (!each_next_report(opened, 60 + o->report_ms / 1000.0, open_window, &w))
        return false;
    uint64_t t0 = qc_now_ns();
    if (!qc_run_for(&cluster, o->seconds, 200, PROG))
        return false;
    /* ...and closes at the next report of each node after --seconds. */
    if (!each_next_report(t0, o->seconds + 60 + o->report_ms / 1000.0, close_window, &w))
        return false;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &r->loadavg) != 1)
            r->loadavg = 0;
        fclose(f);
    }
    return true;
}

static void print_run(const struct options *o, const struct run *r)
{
    fprintf(human, "  %4s %8s %8s %7s %9s %9s %9s %11s %9s %9s %9s\n", "node", "groups", "leads",
            "CPU %", "muxraft %", "RSS MiB", "B/replica", "hb msgs/s", "msgs/s", "elections",
            "ldr chg");
    for (size_t i = 0; i < NODES; i++) {
        const struct node_result *n = &r->nodes[i];
        fprintf(human, "  %4" PRIu64 " %8" PRIu64 " %8" PRIu64 " %7.2f %9.2f %9.1f %9.0f %11.1f %9.1f"
                       " %9" PRIu64 " %9" PRIu64 "\n",
                n->id, n->groups, n->leading, n->cpu_pct, n->muxraft_pct, n->rss_mib,
                n->rss_per_replica, n->hb_per_s, n->sent_per_s, n->elections, n->leader_changes);
    }
    fprintf(human, "  (muxraft %%: its own threads' share of CPU %%, the rest is queue_node's "
                   "main loop;\n  the machine's 1-minute load average: %.2f on %ld cores)\n",
            r->loadavg, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(human);
    if (o->json) {
        printf("{\"mode\":\"%s\",\"groups\":%u,\"batch\":%d,\"quiesce\":%d,"
               "\"created_s\":%.2f,\"led_s\":%.2f,\"settled_s\":%.2f,\"seconds\":%.2f,"
               "\"loadavg\":%.2f,\"nodes\":[",
               mode_names[r->mode], r->groups, r->mode != 2, r->mode == 0, r->created_s,
               r->led_s, r->settled_s, r->seconds, r->loadavg);
        for (size_t i = 0; i < NODES; i++) {
            const struct node_result *n = &r->nodes[i];
            printf("%s{\"id\":%" PRIu64 ",\"groups\":%" PRIu64 ",\"leading\":%" PRIu64
                   ",\"awake\":%" PRIu64 ",\"quiesced\":%" PRIu64 ",\"peers_heard\":%" PRIu64
                   ",\"cpu_pct\":%.3f,\"muxraft_threads_cpu_pct\":%.3f,\"rss_mib\":%.1f,"
                   "\"rss_bytes_per_replica\":%.0f,"
                   "\"hb_msgs_per_s\":%.1f,\"msgs_per_s\":%.1f,\"elections\":%" PRIu64
                   ",\"leader_changes\":%" PRIu64 "}",
                   i ? "," : "", n->id, n->groups, n->leading, n->awake, n->quiesced,
                   n->peers_heard, n->cpu_pct, n->muxraft_pct, n->rss_mib, n->rss_per_replica,
                   n->hb_per_s,
                   n->sent_per_s, n->elections, n->leader_changes);
        }
        printf("]}\n");
        fflush(stdout);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: idle [--queue-node PATH] [--groups 100000] [--seconds 60]\n"
                    "            [--modes quiesced,awake,naive] [--naive-groups 10000]\n"
                    "            [--report-ms 1000] [--stable-seconds 10]\n"
                    "            [--settle-timeout 600] [--max-cpu 2] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct options o;
    memset(&o, 0, sizeof o);
    o.exe = "target/c/queue_node";
    o.groups = 100000;
    o.naive_groups = 10000;
    o.report_ms = 1000;
    o.seconds = 60;
    o.stable_s = 10;
    o.settle_timeout_s = 600;
    o.max_cpu = 2;
    o.modes[0] = o.modes[1] = o.modes[2] = true;
    const qc_arg args[] = {
        QC_SWITCH("--json", &o.json),
        QC_STRING("--queue-node", &o.exe),
        QC_UNSIGNED("--groups", &o.groups),
        QC_UNSIGNED("--naive-groups", &o.naive_groups),
        QC_DOUBLE("--seconds", &o.seconds),
        QC_UNSIGNED("--report-ms", &o.report_ms),
        QC_DOUBLE("--stable-seconds", &o.stable_s),
        QC_DOUBLE("--settle-timeout", &o.settle_timeout_s),
        QC_DOUBLE("--max-cpu", &o.max_cpu),
        QC_MODES("--modes", o.modes, mode_names, MAX_MODES),
    };
    if (!qc_parse_args(argc, argv, args, sizeof args / sizeof args[0]))
        usage();
    if (o.groups == 0 || o.groups > 1000000 || o.naive_groups == 0 ||
        o.naive_groups > 1000000 || o.seconds <= 0 || o.report_ms == 0 ||
        !(o.modes[0] || o.modes[1] || o.modes[2]) || access(o.exe, X_OK) != 0)
        usage();
    human = o.json ? stderr : stdout;
    qc_install_signals();
    atexit(cleanup);

    fprintf(human, "idle: %d queue_node processes on loopback (data directories, no "
                   "proposals),\ngroups of 3 replicas; CPU (%% of one core) and RSS of each "
                   "process over %.0f s once settled\n",
            NODES, o.seconds);
    static struct run runs[MAX_MODES];
    int failed = 0;
    size_t n_runs = 0;
    for (int m = 0; m < MAX_MODES && !qc_interrupted; m++) {
        if (!o.modes[m])
            continue;
        struct run *r = &runs[n_runs];
        memset(r, 0, sizeof *r);
        r->mode = m;
        r->groups = m == 2 ? o.naive_groups : o.groups;
        bool ok = start_and_settle(&o, m, r) && measure(&o, r);
        if (ok) {
            print_run(&o, r);
            n_runs++;
        } else {
            fprintf(stderr, "idle: the %s run did not finish\n", mode_names[m]);
            failed++;
        }
        if (!qc_stop_all(&cluster, 120000)) {
            fprintf(stderr, "idle: a node did not stop cleanly\n");
            failed++;
        }
        cleanup();
    }

    fprintf(human, "\n%-9s %8s %9s %9s %9s | %-20s %-20s %s\n", "mode", "groups", "create s",
            "led s", "settle s", "CPU % per process", "of which muxraft's", "RSS B/replica");
    for (size_t k = 0; k < n_runs; k++) {
        const struct run *r = &runs[k];
        char cpu[64], rss[64], hb[64];
        snprintf(cpu, sizeof cpu, "%.2f %.2f %.2f", r->nodes[0].cpu_pct, r->nodes[1].cpu_pct,
                 r->nodes[2].cpu_pct);
        snprintf(rss, sizeof rss, "%.0f %.0f %.0f", r->nodes[0].rss_per_replica,
                 r->nodes[1].rss_per_replica, r->nodes[2].rss_per_replica);
        snprintf(hb, sizeof hb, "%.2f %.2f %.2f", r->nodes[0].muxraft_pct,
                 r->nodes[1].muxraft_pct, r->nodes[2].muxraft_pct);
        fprintf(human, "%-9s %8u %9.1f %9.1f %9.1f | %-20s %-20s %s\n", mode_names[r->mode],
                r->groups, r->created_s, r->led_s, r->settled_s, cpu, hb, rss);
        if (r->mode == 0) {
            double worst = 0;
            for (size_t i = 0; i < NODES; i++)
                if (r->nodes[i].cpu_pct > worst)
                    worst = r->nodes[i].cpu_pct;
            bool met = worst < o.max_cpu;
            fprintf(human, "          target: under %.1f%% of one core per process with %u "
                           "quiesced groups: %.2f%% at most, %s\n",
                    o.max_cpu, r->groups, worst, met ? "met" : "MISSED");
            if (!met)
                failed++;
        }
    }
    fprintf(human, "%s\n", failed ? "idle: FAILED" : "idle: OK");
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
