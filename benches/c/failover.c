/*
 * failover.c: `make bench-failover` (part of `make bench`). How long the
 * groups of a dead node stay without a leader, and whether anything else
 * moves.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, in
 * embedded mode with data directories, host G groups of three replicas and
 * propose nothing (--rate 0), with muxraft's default timeouts (a tick of
 * 50 ms, elections after 10 to 20 ticks, heartbeats every 2). Leaders are
 * whoever won each group's first election. Once every group has a leader
 * and the cluster has settled (with --quiesce 1, muxraft's default: every
 * group quiet on every replica; with --quiesce 0: no election for
 * --stable-seconds), each run:
 *
 *   1. SIGKILLs the node whose share of the leaders is closest to a third;
 *   2. follows the survivors' STAT lines (every 20 ms, each re-reading its
 *      groups' roles at most every 10 ms) until both report no group
 *      without a leader and between them lead every group: the time since
 *      the kill is the failover time (within a report interval), and the
 *      time the first group got a new leader is shown too;
 *   3. counts, over the next --linger-seconds as well, the elections the
 *      survivors started (muxraft's elections_started) against the groups
 *      the dead node led, and the moves of the groups' terms the survivors
 *      saw, by the group's last known leader (queue_node's term_bumps):
 *      those under the dead node's id replaced it, those under another id
 *      are elections in groups the dead node did not lead (should be 0);
 *   4. restarts the killed node from its data directory and waits until
 *      the cluster has settled again (every group led, quiet again with
 *      --quiesce 1), counting the elections that caused.
 *
 * The leader balancer (on by default in embedded mode) gives a restarted
 * node its share back; the elections that costs are the "return el"
 * column. With it off (MUXRAFT_BALANCE_OFF), nothing does: the
 * survivors keep the groups they took, and after a run or two no node
 * leads about a third of the groups any more. When none leads between a
 * quarter and a half of them, the next run starts on a fresh cluster (new
 * data directories, whose first elections spread the leaders again; up to
 * three tries) and the table says so.
 *
 * It repeats --runs times per mode and prints min / median / max of the
 * failover time, and checks the target: every group led again within
 * --target-ms (1100) in every run of the quiesced mode. Modes: quiesced
 * (--quiesce 1) and awake (--quiesce 0: every group awake, its followers
 * time out on their own), each on a fresh cluster.
 *
 *   usage: failover [--queue-node PATH] [--groups 1000] [--runs 10]
 *                   [--modes quiesced,awake] [--target-ms 1100]
 *                   [--linger-seconds 2] [--stable-seconds 3]
 *                   [--settle-timeout 60] [--json]
 *
 * --json prints one JSON object per run and one per mode on stdout (the
 * table goes to stderr). Exit status 0 unless a node died, the cluster did
 * not settle or re-elect within --settle-timeout, a quiesced run missed the
 * target, or a quiesced run saw an election in a group the dead node did
 * not lead.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_cluster.h"

#define NODES 3
#define MAX_RUNS 1000
#define REPORT_MS 20
#define ROLES_MS 10
#define PROG "failover" /* what its messages begin with */

static qc_cluster cluster;
static char base_dir[512];

static void cleanup(void)
{
    qc_teardown(&cluster, base_dir, false);
}

struct options {
    const char *exe;
    unsigned groups, runs;
    double target_ms, linger_s, stable_s, settle_timeout_s;
    bool modes[2]; /* quiesced, awake */
    bool json;
};

static const char *mode_names[2] = {"quiesced", "awake"};

struct run {
    uint64_t victim; /* node id */
    uint64_t led;    /* groups it led when killed */
    double first_ms, all_ms; /* since the kill: a first group led again; every group */
    uint64_t elections;      /* started by the survivors */
    uint64_t moves_victim;   /* term moves in groups the dead node led (max over survivors) */
    uint64_t moves_other;    /* ...in groups it did not lead */
    uint64_t return_elections; /* while it restarted and the cluster settled */
    double resettle_s;
};

static FILE *human; /* the table: stdout, or stderr with --json */

/* The elections every node but `victim` started, as last reported. */
static uint64_t survivor_elections(size_t victim)
{
    return QC_SUM(&cluster, elections) - cluster.procs[victim].last.elections;
}

/* Wait until every group is led and the cluster settled: every group quiet
 * on every node and no election for a second (quiesced mode: the leader
 * balancer, on by default, moves leaders back to a restarted node in
 * bursts, and the groups can all be quiet between two), or no election for
 * --stable-seconds. */
static bool settle(const struct options *o, int mode, uint64_t since_ns, double *took_s)
{
    uint64_t t0 = qc_now_ns(), stable_since = t0, last = UINT64_MAX;
    for (;;) {
        if (!qc_poll_alive(&cluster, 20, PROG))
            return false;
        bool done = false;
        if (qc_all_led(&cluster, since_ns)) {
            uint64_t e = QC_SUM(&cluster, elections);
            if (e != last) {
                last = e;
                stable_since = qc_now_ns();
            }
            if (mode == 0)
                done = qc_all_quiet(&cluster) && qc_seconds_since(stable_since) >= 1.0;
            else
                done = qc_seconds_since(stable_since) >= o->stable_s;
        } else {
            last = UINT64_MAX;
        }
        if (done) {
            *took_s = qc_seconds_since(t0);
            return true;
        }
        if (qc_seconds_since(t0) > o->settle_timeout_s) {
            fprintf(stderr, "failover: the cluster did not settle within %.0f s\n",
                    o->settle_timeout_s);
            for (size_t i = 0; i < NODES; i++) {
                const qc_stat *s = &cluster.procs[i].last;
                fprintf(stderr, "  node %zu: leads %" PRIu64 ", %" PRIu64 " leaderless, %" PRIu64
                                " awake, %" PRIu64 " quiet\n",
                        i + 1, s->leading, s->leaderless, s->awake, s->quiesced);
            }
            return false;
        }
    }
}

/* Sum over ids other than `victim` of a survivor's term moves. */
static uint64_t moves_other_than(const qc_stat *s, uint64_t victim)
{
    uint64_t n = 0;
    for (size_t k = 0; k <= QC_MAX_ID; k++)
        if (k != victim)
            n += s->term_bumps[k];
    return n;
}

/* The node leading closest to a third of the groups. */
static size_t pick_victim(const struct options *o)
{
    size_t victim = 0;
    double best = 1e300;
    for (size_t i = 0; i < NODES; i++) {
        double d = (double)cluster.procs[i].last.leading - o->groups / 3.0;
        if (d < 0)
            d = -d;
        if (d < best) {
            best = d;
            victim = i;
        }
    }
    return victim;
}

/* Does it lead between a quarter and a half of the groups? */
static bool fair_share(const struct options *o, size_t victim)
{
    uint64_t led = cluster.procs[victim].last.leading;
    return 4 * led >= o->groups && 2 * led <= o->groups;
}

/* Stop the cluster if one runs, and start a fresh one (new data
 * directories) that has settled. */
static bool new_cluster(const struct options *o, int mode, double *took_s)
{
    bool clean = true;
    if (base_dir[0]) {
        clean = qc_stop_all(&cluster, 30000);
        if (!clean)
            fprintf(stderr, "failover: a node did not stop cleanly\n");
        cleanup();
    }
    if (!qc_init_temp(&cluster, o->exe, NODES, base_dir, sizeof base_dir, "muxraft-failover"))
        return false;
    cluster.groups = o->groups;
    cluster.rate = 0;
    cluster.report_ms = REPORT_MS;
    cluster.roles_ms = ROLES_MS;
    cluster.quiesce = mode == 0;
    cluster.no_app_logs = true;
    uint64_t t0 = qc_now_ns();
    if (!qc_start_all(&cluster))
        return false;
    double settled;
    if (!settle(o, mode, 0, &settled))
        return false;
    *took_s = qc_seconds_since(t0);
    return clean;
}

static bool one_run(const struct options *o, int mode, struct run *r)
{
    memset(r, 0, sizeof *r);
    size_t victim = pick_victim(o);
    if (cluster.procs[victim].last.leading == 0) {
        fprintf(stderr, "failover: no node leads a share of the groups\n");
        return false;
    }
    r->victim = cluster.procs[victim].id;
    r->led = cluster.procs[victim].last.leading;
    qc_stat before[NODES];
    for (size_t i = 0; i < NODES; i++)
        before[i] = cluster.procs[i].last;
    uint64_t led_by_survivors = 0;
    for (size_t i = 0; i < NODES; i++)
        if (i != victim)
            led_by_survivors += before[i].leading;

    uint64_t t_kill = qc_now_ns();
    qc_kill(&cluster, victim);
    bool first = false;
    for (;;) {
        if (!qc_poll_alive(&cluster, 5, PROG))
            return false;
        uint64_t leading = 0;
        uint64_t latest = 0;
        for (size_t i = 0; i < NODES; i++)
            if (i != victim && cluster.procs[i].last.received_ns > t_kill) {
                leading += cluster.procs[i].last.leading;
                if (cluster.procs[i].last.received_ns > latest)
                    latest = cluster.procs[i].last.received_ns;
            }
        if (!first && leading > led_by_survivors) {
            first = true;
            r->first_ms = (double)(latest - t_kill) / 1e6;
        }
        if (qc_all_led(&cluster, t_kill)) {
            r->all_ms = (double)(qc_now_ns() - t_kill) / 1e6;
            if (!first)
                r->first_ms = r->all_ms;
            break;
        }
        if (qc_seconds_since(t_kill) > o->settle_timeout_s) {
            fprintf(stderr, "failover: not every group had a leader %.0f s after the kill\n",
                    o->settle_timeout_s);
            return false;
        }
    }
    /* Late elections (a second survivor campaigning) count too. */
    if (!qc_run_for(&cluster, o->linger_s, 20, PROG))
        return false;
    for (size_t i = 0; i < NODES; i++) {
        if (i == victim)
            continue;
        const qc_stat *a = &before[i], *b = &cluster.procs[i].last;
        r->elections += b->elections - a->elections;
        uint64_t mv = b->term_bumps[r->victim] - a->term_bumps[r->victim];
        uint64_t mo = moves_other_than(b, r->victim) - moves_other_than(a, r->victim);
        if (mv > r->moves_victim)
            r->moves_victim = mv;
        if (mo > r->moves_other)
            r->moves_other = mo;
    }

    /* Bring it back and let everything settle (and go quiet) again. */
    uint64_t e0 = survivor_elections(victim);
    uint64_t t_restart = qc_now_ns();
    if (!qc_start(&cluster, victim))
        return false;
    if (!settle(o, mode, t_restart, &r->resettle_s))
        return false;
    /* Its own counters start again at 0 with the new process. */
    r->return_elections = survivor_elections(victim) - e0 + cluster.procs[victim].last.elections;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One mode on a fresh cluster; returns the number of failures. */
static int run_mode(const struct options *o, int mode)
{
    double took;
    if (!new_cluster(o, mode, &took))
        return 1;
    fprintf(human, "== %s (--quiesce %d): %u groups led and %s %.1f s after start\n",
            mode_names[mode], mode == 0, o->groups, mode == 0 ? "quiet" : "stable", took);
    fprintf(human, "%4s %6s %6s %9s %9s %10s %12s %12s %10s %10s\n", "run", "killed", "led",
            "first ms", "all ms", "elections", "moves (its)", "moves (other)", "return el",
            "settle s");
    fflush(human);

    static struct run runs[MAX_RUNS];
    static double all[MAX_RUNS];
    int failed = 0;
    unsigned n = 0;
    uint64_t other_total = 0, elections_total = 0, led_total = 0, return_total = 0;
    unsigned met = 0;
    for (unsigned k = 0; k < o->runs && !qc_interrupted; k++) {
        struct run *r = &runs[n];
        /* Nothing moves leadership back to a restarted node: after a few
         * runs the survivors lead everything. Then a fresh cluster, whose
         * first elections spread the leaders again (a few tries). */
        for (int tries = 0; tries < 3 && !fair_share(o, pick_victim(o)); tries++) {
            fprintf(human, "     (leaders now %" PRIu64 "/%" PRIu64 "/%" PRIu64
                           ": none leads a quarter to a half of the groups; a fresh cluster)\n",
                    cluster.procs[0].last.leading, cluster.procs[1].last.leading,
                    cluster.procs[2].last.leading);
            if (!new_cluster(o, mode, &took)) {
                failed++;
                break;
            }
        }
        if (failed || !one_run(o, mode, r)) {
            failed++;
            break;
        }
        all[n++] = r->all_ms;
        other_total += r->moves_other;
        elections_total += r->elections;
        led_total += r->led;
        return_total += r->return_elections;
        met += r->all_ms <= o->target_ms;
        fprintf(human, "%4u %6" PRIu64 " %6" PRIu64 " %9.0f %9.0f %10" PRIu64 " %12" PRIu64
                       " %12" PRIu64 " %10" PRIu64 " %10.1f\n",
                k + 1, r->victim, r->led, r->first_ms, r->all_ms, r->elections, r->moves_victim,
                r->moves_other, r->return_elections, r->resettle_s);
        fflush(human);
        if (o->json) {
            printf("{\"mode\":\"%s\",\"groups\":%u,\"run\":%u,\"killed\":%" PRIu64
                   ",\"led\":%" PRIu64 ",\"first_ms\":%.1f,\"all_ms\":%.1f,\"elections\":%" PRIu64
                   ",\"term_moves_its_groups\":%" PRIu64 ",\"term_moves_other_groups\":%" PRIu64
                   ",\"return_elections\":%" PRIu64 ",\"resettle_s\":%.2f}\n",
                   mode_names[mode], o->groups, k + 1, r->victim, r->led, r->first_ms, r->all_ms,
                   r->elections, r->moves_victim, r->moves_other, r->return_elections,
                   r->resettle_s);
            fflush(stdout);
        }
    }
    if (!qc_stop_all(&cluster, 30000)) {
        fprintf(stderr, "failover: a node did not stop cleanly\n");
        failed++;
    }
    cleanup();
    if (n == 0)
        return failed + 1;

    qsort(all, n, sizeof all[0], cmp_double);
    double median = n % 2 ? all[n / 2] : (all[n / 2 - 1] + all[n / 2]) / 2;
    fprintf(human, "%s: every group led again after min %.0f / median %.0f / max %.0f ms over "
                   "%u runs (target %.0f ms: met in %u of %u);\n"
                   "  the dead node led %" PRIu64 " groups in all, the survivors started %" PRIu64
                   " elections; elections in groups it did not lead: %" PRIu64
                   "; elections on its return: %" PRIu64 "\n\n",
            mode_names[mode], all[0], median, all[n - 1], n, o->target_ms, met, n, led_total,
            elections_total, other_total, return_total);
    fflush(human);
    if (o->json) {
        printf("{\"mode\":\"%s\",\"groups\":%u,\"runs\":%u,\"min_ms\":%.1f,\"median_ms\":%.1f,"
               "\"max_ms\":%.1f,\"target_ms\":%.0f,\"runs_within_target\":%u,\"groups_led_by_"
               "killed\":%" PRIu64 ",\"elections\":%" PRIu64 ",\"elections_other_groups\":%" PRIu64
               ",\"return_elections\":%" PRIu64 "}\n",
               mode_names[mode], o->groups, n, all[0], median, all[n - 1], o->target_ms, met,
               led_total, elections_total, other_total, return_total);
        fflush(stdout);
    }
    if (mode == 0 && (met < n || other_total > 0)) {
        fprintf(human, "FAILED (%s): %u of %u runs over %.0f ms; %" PRIu64
                       " elections in groups the dead node did not lead\n",
                mode_names[mode], n - met, n, o->target_ms, other_total);
        failed++;
    }
    return failed;
}

static void usage(void)
{
    fprintf(stderr, "usage: failover [--queue-node PATH] [--groups 1000] [--runs 10]\n"
                    "                [--modes quiesced,awake] [--target-ms 1100]\n"
                    "                [--linger-seconds 2] [--stable-seconds 3]\n"
                    "                [--settle-timeout 60] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct options o;
    memset(&o, 0, sizeof o);
    o.exe = "target/c/queue_node";
    o.groups = 1000;
    o.runs = 10;
    o.target_ms = 1100;
    o.linger_s = 2;
    o.stable_s = 3;
    o.settle_timeout_s = 60;
    o.modes[0] = o.modes[1] = true;
    const qc_arg args[] = {
        QC_SWITCH("--json", &o.json),
        QC_STRING("--queue-node", &o.exe),
        QC_UNSIGNED("--groups", &o.groups),
        QC_UNSIGNED("--runs", &o.runs),
        QC_DOUBLE("--target-ms", &o.target_ms),
        QC_DOUBLE("--linger-seconds", &o.linger_s),
        QC_DOUBLE("--stable-seconds", &o.stable_s),
        QC_DOUBLE("--settle-timeout", &o.settle_timeout_s),
        QC_MODES("--modes", o.modes, mode_names, 2),
    };
    if (!qc_parse_args(argc, argv, args, sizeof args / sizeof args[0]))
        usage();
    if (o.groups < NODES || o.groups > 1000000 || o.runs == 0 || o.runs > MAX_RUNS ||
        !(o.modes[0] || o.modes[1]) || access(o.exe, X_OK) != 0)
        usage();
    human = o.json ? stderr : stdout;
    qc_install_signals();
    atexit(cleanup);

    fprintf(human, "failover: %d queue_node processes on loopback (data directories, no "
                   "proposals), %u groups of 3 replicas,\nmuxraft's default timeouts; %u runs "
                   "per mode: SIGKILL the node leading closest to a third of the groups,\n"
                   "time until every group is led again, restart it, settle again\n",
            NODES, o.groups, o.runs);
    int failed = 0;
    for (int m = 0; m < 2 && !qc_interrupted; m++)
        if (o.modes[m])
            failed += run_mode(&o, m);
    fprintf(human, "%s\n", failed ? "failover: FAILED" : "failover: OK");
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
