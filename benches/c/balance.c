/*
 * balance.c: `make bench-balance` (part of `make bench`). How long after a
 * killed node restarts muxraft's leader balancer takes to give it back its
 * share of the leaderships, and whether the transfers fail proposals.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, in
 * embedded mode with data directories and app logs, host G groups of three
 * replicas (every node hosts every group), muxraft's default timeouts and
 * its leader balancer (on by default in embedded mode). The nodes propose
 * --rate proposals a second in all (a rate file: each offers its share,
 * by the groups it leads). Each run, on a fresh cluster:
 *
 *   1. waits until every group has a leader and every node leads within
 *      10% of G/3 (the balancer spreads the first elections' leaders);
 *   2. SIGKILLs the node leading the most groups, waits until every group
 *      has a leader again (the survivors lead them all);
 *   3. restarts it from its data directory at once, and follows the STAT
 *      lines (every 50 ms) until every node leads within 10% of G/3 and
 *      they lead all G between them: the time since the restart is the
 *      balance time; the counts are sampled every 0.5 s on the way;
 *   4. lingers --linger-seconds (proposals continue), then stops the
 *      proposals, waits until the nodes agree, stops them and checks every
 *      acknowledged proposal against every replica's applied log, as the
 *      crash test does (examples/c/log_verify.c).
 *
 * It reports per run the balance time, the leadership transfers the
 * balancer started, the elections, the proposals that failed (proposal_done
 * not OK) from the restart to the end of the linger, and the acknowledged
 * proposals lost; then min / median / max of the balance time. Exit status
 * 0 unless a node died, something timed out, a run took --target-seconds
 * (10) or more, a proposal failed after the restart, or a check of the logs
 * failed.
 *
 *   usage: balance [--queue-node PATH] [--groups 1000] [--runs 5]
 *                  [--rate 2000] [--target-seconds 10] [--linger-seconds 2]
 *                  [--timeout 60] [--smoke]
 *
 * --smoke (make test-crash): one run with 300 groups, 600 proposals/s and a
 * 1 s linger, the same checks.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_verify.h"
#include "queue_cluster.h"

#define NODES 3
#define MAX_RUNS 100
#define REPORT_MS 50
#define PROG "balance"

static qc_cluster cluster;
static char base_dir[512];

static void cleanup(void)
{
    qc_teardown(&cluster, base_dir, false);
}

struct options {
    const char *exe;
    unsigned groups, runs, rate;
    double target_s, linger_s, timeout_s;
    bool smoke;
};

struct run {
    uint64_t victim, led;    /* killed node, groups it led then */
    double failover_s;       /* kill to every group led again */
    double balance_s;        /* restart to balanced */
    uint64_t transfers;      /* by the balancer, since the restart */
    uint64_t elections;      /* since the restart */
    uint64_t failed;         /* proposals failed since the restart */
    uint64_t commits;        /* since the restart */
    size_t acked, lost;
    bool verified;
    char trail[1024];
};

/* Every node reported after since_ns and leads within 10% of G/3; all G
 * led. The counts go to `counts`. */
static bool balanced(const struct options *o, uint64_t since_ns, char *counts, size_t size)
{
    double share = (double)o->groups / NODES;
    uint64_t total = 0;
    bool ok = true;
    size_t at = 0;
    for (size_t i = 0; i < NODES; i++) {
        const qc_proc *p = &cluster.procs[i];
        bool fresh = qc_running(&cluster, i) && p->reports > 0 && p->last.received_ns > since_ns;
        uint64_t led = fresh ? p->last.leading : 0;
        total += led;
        ok = ok && fresh && (double)led >= share * 0.9 && (double)led <= share * 1.1;
        at += (size_t)snprintf(counts + at, size - at, "%s%" PRIu64, i ? "/" : "", led);
    }
    return ok && total == o->groups;
}

static bool wait_balanced(const struct options *o, uint64_t since_ns, struct run *r)
{
    double next = 0;
    char counts[64];
    for (;;) {
        double t = qc_seconds_since(since_ns);
        bool done = balanced(o, since_ns, counts, sizeof counts);
        if (r && next == 0)
            next = 0.5; /* the first sample: the counts at the restart */
        size_t len = r ? strlen(r->trail) : 0;
        if (r && (t >= next || done) && len + 40 < sizeof r->trail) {
            snprintf(r->trail + len, sizeof r->trail - len, "%s%s@%.1f", len ? " " : "", counts,
                     t);
            next = t + 0.5;
        }
        if (done)
            return true;
        if (t > o->timeout_s) {
            fprintf(stderr, PROG ": leaders not balanced after %.0f s: %s\n", o->timeout_s,
                    counts);
            return false;
        }
        if (!qc_poll_alive(&cluster, 20, PROG))
            return false;
    }
}

static bool wait_led(const struct options *o, uint64_t since_ns)
{
    while (!qc_all_led(&cluster, since_ns)) {
        if (qc_seconds_since(since_ns) > o->timeout_s) {
            fprintf(stderr, PROG ": groups without a leader after %.0f s\n", o->timeout_s);
            return false;
        }
        if (!qc_poll_alive(&cluster, 20, PROG))
            return false;
    }
    return true;
}

/* Proposals stopped: nothing in flight, every node at the same indexes and
 * state, in reports after since_ns. */
static bool settled(uint64_t since_ns)
{
    if (!qc_all_led(&cluster, since_ns))
        return false;
    for (size_t i = 0; i < NODES; i++) {
        const qc_stat *s = &cluster.procs[i].last;
        if (s->proposing || s->inflight || s->index_sum != cluster.procs[0].last.index_sum ||
            s->state != cluster.procs[0].last.state)
            return false;
    }
    return true;
}

static size_t verify_failures;

static void verify_check(void *arg, bool ok, const char *what)
{
    (void)arg;
    if (!ok && what && verify_failures++ < 5)
        fprintf(stderr, PROG ": log check failed: %s\n", what);
}

static bool one_run(const struct options *o, unsigned k, struct run *r)
{
    memset(r, 0, sizeof *r);
    char dir[700], rate_file[800];
    snprintf(dir, sizeof dir, "%s/run%u", base_dir, k);
    snprintf(rate_file, sizeof rate_file, "%s/run%u.rate", base_dir, k);
    FILE *f = fopen(rate_file, "w");
    if (f == NULL || fprintf(f, "%u\n", o->rate) < 0 || fclose(f) != 0) {
        fprintf(stderr, PROG ": cannot write %s\n", rate_file);
        return false;
    }
    if (!qc_init(&cluster, o->exe, NODES, dir))
        return false;
    cluster.groups = o->groups;
    cluster.rate = 0;
    cluster.rate_file = rate_file;
    cluster.report_ms = REPORT_MS;
    uint64_t t0 = qc_now_ns();
    if (!qc_start_all(&cluster) || !wait_led(o, t0) || !wait_balanced(o, t0, NULL))
        return false;

    size_t victim = 0;
    for (size_t i = 1; i < NODES; i++)
        if (cluster.procs[i].last.leading > cluster.procs[victim].last.leading)
            victim = i;
    r->victim = cluster.procs[victim].id;
    r->led = cluster.procs[victim].last.leading;
    uint64_t t_kill = qc_now_ns();
    qc_kill(&cluster, victim);
    if (!wait_led(o, t_kill))
        return false;
    r->failover_s = qc_seconds_since(t_kill);

    uint64_t failed0 = QC_SUM(&cluster, failed) - cluster.procs[victim].last.failed;
    uint64_t commits0 = QC_SUM(&cluster, commits) - cluster.procs[victim].last.commits;
    uint64_t transfers0 =
        QC_SUM(&cluster, balance_transfers) - cluster.procs[victim].last.balance_transfers;
    uint64_t elections0 = QC_SUM(&cluster, elections) - cluster.procs[victim].last.elections;
    size_t at = 0; /* where it starts: the survivors lead every group */
    for (size_t i = 0; i < NODES; i++)
        at += (size_t)snprintf(r->trail + at, sizeof r->trail - at, "%s%" PRIu64, i ? "/" : "",
                               i == victim ? 0 : cluster.procs[i].last.leading);
    snprintf(r->trail + at, sizeof r->trail - at, "@0.0");
    uint64_t t_restart = qc_now_ns();
    if (!qc_start(&cluster, victim) || !wait_balanced(o, t_restart, r))
        return false;
    r->balance_s = qc_seconds_since(t_restart);
    r->transfers = QC_SUM(&cluster, balance_transfers) - transfers0;
    r->elections = QC_SUM(&cluster, elections) - elections0;
    if (!qc_run_for(&cluster, o->linger_s, 20, PROG))
        return false;
    r->failed = QC_SUM(&cluster, failed) - failed0;
    r->commits = QC_SUM(&cluster, commits) - commits0;

    for (size_t i = 0; i < NODES; i++)
        qc_signal(&cluster, i, SIGUSR1);
    uint64_t t_pause = qc_now_ns();
    while (!settled(t_pause)) {
        if (qc_seconds_since(t_pause) > o->timeout_s) {
            fprintf(stderr, PROG ": the nodes did not agree after proposals stopped\n");
            return false;
        }
        if (!qc_poll_alive(&cluster, 20, PROG))
            return false;
    }
    if (!qc_stop_all(&cluster, 10000)) {
        fprintf(stderr, PROG ": the nodes did not stop cleanly\n");
        return false;
    }
    lv_summary sum;
    verify_failures = 0;
    r->verified = lv_verify(&cluster, o->groups, verify_check, NULL, &sum);
    r->acked = sum.acked;
    r->lost = sum.lost;
    qc_cleanup(&cluster);
    qc_remove_tree(dir);
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: balance [--queue-node PATH] [--groups 1000] [--runs 5]\n"
                    "               [--rate 2000] [--target-seconds 10] [--linger-seconds 2]\n"
                    "               [--timeout 60] [--smoke]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct options o;
    memset(&o, 0, sizeof o);
    o.exe = "target/c/queue_node";
    o.groups = 1000;
    o.runs = 5;
    o.rate = 2000;
    o.target_s = 10;
    o.linger_s = 2;
    o.timeout_s = 60;
    const qc_arg args[] = {
        QC_STRING("--queue-node", &o.exe),
        QC_UNSIGNED("--groups", &o.groups),
        QC_UNSIGNED("--runs", &o.runs),
        QC_UNSIGNED("--rate", &o.rate),
        QC_DOUBLE("--target-seconds", &o.target_s),
        QC_DOUBLE("--linger-seconds", &o.linger_s),
        QC_DOUBLE("--timeout", &o.timeout_s),
        QC_SWITCH("--smoke", &o.smoke),
    };
    if (!qc_parse_args(argc, argv, args, sizeof args / sizeof args[0]))
        usage();
    if (o.smoke) {
        o.runs = 1;
        o.groups = 300;
        o.rate = 600;
        o.linger_s = 1;
    }
    if (o.groups < NODES || o.groups > 1000000 || o.runs == 0 || o.runs > MAX_RUNS ||
        access(o.exe, X_OK) != 0)
        usage();
    qc_install_signals();
    atexit(cleanup);
    if (!qc_make_temp_dir(base_dir, sizeof base_dir, "muxraft-balance"))
        return EXIT_FAILURE;

    printf("balance: %d queue_node processes on loopback (data directories, app logs), %u "
           "groups of 3 replicas,\n%u proposals/s in all, muxraft's default timeouts and "
           "leader balancer; %u runs: SIGKILL the node\nleading the most groups, wait until "
           "every group is led, restart it, time until every node leads\nwithin 10%% of "
           "%u/3; leaders per node (node 1/2/3@seconds since the restart) on the way\n",
           NODES, o.groups, o.rate, o.runs, o.groups);
    static struct run runs[MAX_RUNS];
    double times[MAX_RUNS];
    unsigned done = 0;
    bool bad = false;
    for (unsigned k = 0; k < o.runs && !qc_interrupted; k++) {
        struct run *r = &runs[k];
        if (!one_run(&o, k + 1, r)) {
            fprintf(stderr, PROG ": run %u failed\n", k + 1);
            bad = true;
            break;
        }
        times[done++] = r->balance_s;
        printf("run %u: node %" PRIu64 " killed leading %" PRIu64 ", failover %.2f s; balanced "
               "%.2f s after its restart, %" PRIu64 " balancer transfers, %" PRIu64
               " elections,\n       %" PRIu64 " commits and %" PRIu64
               " failed proposals since the restart; %zu acknowledged, %zu lost%s\n"
               "       leaders: %s\n",
               k + 1, r->victim, r->led, r->failover_s, r->balance_s, r->transfers,
               r->elections, r->commits, r->failed, r->acked, r->lost,
               r->verified ? "" : " (LOG CHECK FAILED)", r->trail);
        fflush(stdout);
        bad = bad || r->failed > 0 || r->lost > 0 || !r->verified || r->balance_s >= o.target_s;
    }
    if (done > 0) {
        qsort(times, done, sizeof times[0], cmp_double);
        printf("balance time after the restart (%u runs): min %.2f s, median %.2f s, max %.2f s "
               "(target: under %.0f s)\n",
               done, times[0], times[done / 2], times[done - 1], o.target_s);
    }
    printf("%s\n", bad ? "balance: FAILED" : "balance: OK");
    return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}
