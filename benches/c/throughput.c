/*
 * throughput.c: `make bench-throughput` (part of `make bench`). Commit
 * throughput, latency and CPU under an open-loop offered load, up to and
 * past saturation, naive vs batched heartbeats.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, each
 * with a data directory (muxraft's write-ahead log, synced before a commit
 * is acknowledged), host G groups of three replicas. The load is open
 * loop: each process offers its share of a fixed total rate to the groups
 * it leads, whatever happens to earlier proposals (queue_node --open-loop 1
 * --max-inflight 0): a proposal muxraft refuses with MUXRAFT_BUSY is
 * counted and dropped, not kept as a backlog. The offered rate changes
 * between steps without restarting the processes: they re-read a rate file
 * (queue_node --rate-file) every 100 ms, so the processes are started once
 * per mode and every step measures a cluster that has been running under
 * load (after the step's own warm-up, which is discarded). The first step
 * starts once every group has a leader and, with batched heartbeats, the
 * leader balancer is done (each node leads at most its share plus the
 * balancer's 5% tolerance, and none moved for a second): a transfer counts
 * as an election and a leader change, and those of the startup are not
 * the load's.
 *
 * Each step offers one total rate for --warmup-seconds (discarded), then
 * for --step-seconds (measured), and prints one line:
 *
 *   offered/s     the total rate offered (the rate file);
 *   accepted/s    proposals muxraft accepted (the nodes' proposed= counters);
 *   commits/s     proposals committed (the nodes' commits= counters);
 *   p50/p99/p999  commit latency (muxraft_propose until proposal_done), in
 *                 ms, from the nodes' latency histograms (hist=) merged;
 *   CPU us/commit user + system CPU of the three processes
 *                 (/proc/<pid>/stat) over the step, per commit;
 *   elections, leader changes  during the step (deltas of the totals);
 *   busy          proposals refused with MUXRAFT_BUSY (muxraft's limits on
 *                 proposals in flight and bytes not yet durable);
 *   shed          proposals a process could not make on schedule (it fell
 *                 more than 100 ms behind: its own CPU was saturated).
 *
 * Each node is measured between two of its own STAT lines (the first after
 * the warm-up and the first after the step's time), and its CPU is read
 * when each of those lines arrives.
 *
 * The rates are --rates R1,R2,... or, by default, a sweep from --start-rate
 * that doubles until the commits per second stop growing (by 5% or more),
 * then, if it is not there yet, offers twice the best commits per second
 * seen. The sweep runs once per mode (--modes, default naive,batched: a
 * fresh cluster with --batch 0, then one with --batch 1) and the plot of
 * p99 latency against commits per second, one line per mode, is written
 * to --svg (default target/throughput.svg).
 *
 *   usage: throughput [--queue-node PATH] [--groups 1000] [--payload-bytes 16]
 *                     [--rates R,R,...] [--start-rate 5000] [--max-steps 8]
 *                     [--step-seconds 10] [--warmup-seconds 3]
 *                     [--modes naive,batched] [--max-pending-per-group N]
 *                     [--json] [--svg PATH] [--smoke] [--verify]
 *
 * --max-pending-per-group sets muxraft's max_pending_proposals_per_group
 * (default: muxraft's). --json prints one JSON object per step on stdout
 * (the table goes to stderr). --smoke: 100 groups, rates 500,1000, steps
 * of 2 s after 1 s of warm-up, plot in target/throughput-smoke.svg; it
 * fails if a node dies or a step commits under a third of what it offered
 * (for CI).
 *
 * --verify proves that no acknowledged proposal was lost, the way
 * tests/c/crash_test.c does: the processes keep their app logs (acked.log
 * and applied.<pid>.log in their data directories: one write(2) per
 * acknowledged proposal and per applied entry, which costs CPU, so the
 * numbers are not those of a run without it), payloads are 32 bytes by
 * default (at least 32: shorter ones are cut and no longer unique), and
 * after the last step of each mode proposals stop (SIGUSR1), the cluster
 * settles (every node's groups at the same indexes, nothing in flight),
 * every process stops cleanly on SIGTERM, and examples/c/log_verify.c
 * checks every log: each acknowledged proposal was applied at its index
 * on every replica, exactly once, in the same order and with the same
 * state everywhere (see log_verify.h). It prints the "verified: ..."
 * line and "verify: N acknowledged proposals, L lost, ..."; on a failure
 * the data directory is kept. The verifier needs about 1 GiB and 15 to 30 s
 * for 6 million acknowledged proposals (a 60-second step at saturation).
 *
 * Exit status 0 unless a node died or did not stop, a smoke check failed
 * or the logs did not verify.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "latency_hist.h"
#include "log_verify.h"
#include "queue_cluster.h"

#define NODES 3
#define REPORT_MS 250
#define LEADERS_TIMEOUT_S 60.0
/* After the elections the leader balancer (batched mode) hands leaderships
 * over for a few seconds, or after a hold of 10 s if it missed a peer at
 * first (each transfer counts as an election and a leader change): the
 * first step starts once every node leads at most its share plus the
 * balancer's tolerance (5%, and at least one group) and none moved for
 * BALANCED_QUIET_S, or after BALANCED_TIMEOUT_S in any case (then said). */
#define BALANCED_QUIET_S 1.0
#define BALANCED_TIMEOUT_S 20.0
#define MAX_STEPS 32
#define SETTLE_TIMEOUT_S 60.0
#define SETTLE_STABLE_S 1.0
#define MAX_PROBLEMS_SHOWN 10
#define VERIFY_PAYLOAD_BYTES 32 /* "n3-i1-g1000-s12345678" and room to spare */
#define PROG "throughput" /* what its messages begin with */

static qc_cluster cluster;
static char base_dir[512];
static char rate_file[600];
static bool keep_dir; /* the logs did not verify: keep them */

static void cleanup(void)
{
    qc_teardown(&cluster, base_dir, keep_dir);
    keep_dir = false;
}

/* ---------------------------------------------------------------------- */
/* Latency histogram: queue_node's buckets (latency_hist.h); a STAT line   */
/* gives each bucket's midpoint, which maps back to the bucket.             */

static double hist_percentile_ms(const uint64_t *h, double p)
{
    return (double)hist_percentile(h, p) / 1000.0;
}

/* ---------------------------------------------------------------------- */
/* Measurement windows, fed by every STAT line                              */

/* What a node's STAT line said, and the process's CPU when it arrived. */
struct sample {
    uint64_t t_ms, proposed, commits, elections, leader_changes, busy, shed;
    uint64_t cpu_ticks;
};

enum phase { IDLE, OPENING, MEASURING, CLOSING };

static struct {
    enum phase phase;
    bool has_base[NODES], has_end[NODES];
    struct sample base[NODES], end[NODES];
    uint64_t hist[HIST_BUCKETS];
} win;

static void on_stat(void *userdata, qc_proc *p, const qc_stat *s)
{
    (void)userdata;
    size_t i = (size_t)(p - cluster.procs);
    if (i >= NODES || win.phase == IDLE)
        return;
    struct sample now = {s->t_ms,      s->proposed, s->commits, s->elections,
                         s->leader_changes, s->busy, s->shed, qc_cpu_ticks(p->pid)};
    if (!win.has_base[i]) {
        if (win.phase == OPENING || win.phase == MEASURING) {
            win.base[i] = now; /* its latencies are from before the window */
            win.has_base[i] = true;
        }
        return;
    }
    if (win.has_end[i])
        return;
    for (size_t k = 0; k < s->n_hist; k++)
        win.hist[hist_bucket(s->hist_us[k])] += s->hist_count[k];
    if (win.phase == CLOSING) {
        win.end[i] = now;
        win.has_end[i] = true;
    }
}

/* ---------------------------------------------------------------------- */

struct step {
    double offered, accepted, commits, p50, p99, p999, cpu_us;
    uint64_t elections, leader_changes, busy, shed;
    double seconds;
};

struct options {
    const char *exe, *svg, *tls_dir;
    unsigned groups, payload_bytes, start_rate, max_steps;
    double step_s, warmup_s;
    long long max_pending_per_group;
    unsigned rates[MAX_STEPS];
    size_t n_rates;
    bool modes[2]; /* [0] naive, [1] batched */
    bool json, smoke, verify, payload_set;
};

static const char *const mode_names[2] = {"naive", "batched"};

static const char *mode_name(int batched)
{
    return mode_names[batched ? 1 : 0];
}

static FILE *human; /* the table: stdout, or stderr with --json */

static bool write_rate(unsigned rate)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", rate_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", rate) < 0 || fclose(f) != 0 ||
        rename(tmp, rate_file) != 0) {
        fprintf(stderr, "throughput: cannot write %s: %s\n", rate_file, strerror(errno));
        return false;
    }
    return true;
}

/* One step at `rate`: warm-up, then the measured window. */
static bool run_step(const struct options *o, unsigned rate, struct step *out)
{
    if (!write_rate(rate))
        return false;
    memset(&win, 0, sizeof win);
    if (!qc_run_for(&cluster, o->warmup_s, 50, PROG))
        return false;
    win.phase = OPENING; /* the next line of each node opens its window */
    uint64_t t0 = qc_now_ns();
    while (!(win.has_base[0] && win.has_base[1] && win.has_base[2])) {
        if (!qc_poll_alive(&cluster, 50, PROG) || qc_seconds_since(t0) > 30)
            return false;
    }
    win.phase = MEASURING;
    if (!qc_run_for(&cluster, o->step_s, 50, PROG))
        return false;
    win.phase = CLOSING; /* the next line of each node closes its window */
    t0 = qc_now_ns();
    while (!(win.has_end[0] && win.has_end[1] && win.has_end[2])) {
        if (!qc_poll_alive(&cluster, 50, PROG) || qc_seconds_since(t0) > 30)
            return false;
    }
    win.phase = IDLE;

    memset(out, 0, sizeof *out);
    out->offered = rate;
    uint64_t commits = 0, ticks = 0;
    double seconds = 0;
    for (size_t i = 0; i < NODES; i++) {
        const struct sample *a = &win.base[i], *b = &win.end[i];
        double s = (double)(b->t_ms - a->t_ms) / 1000.0;
        if (s <= 0)
            s = 1e-3;
        seconds += s / NODES;
        out->accepted += (double)(b->proposed - a->proposed) / s;
        out->commits += (double)(b->commits - a->commits) / s;
        commits += b->commits - a->commits;
        ticks += b->cpu_ticks - a->cpu_ticks;
        out->elections += b->elections - a->elections;
        out->leader_changes += b->leader_changes - a->leader_changes;
        out->busy += b->busy - a->busy;
        out->shed += b->shed - a->shed;
    }
    out->seconds = seconds;
    out->p50 = hist_percentile_ms(win.hist, 0.50);
    out->p99 = hist_percentile_ms(win.hist, 0.99);
    out->p999 = hist_percentile_ms(win.hist, 0.999);
    double us_per_tick = 1e6 / (double)sysconf(_SC_CLK_TCK);
    out->cpu_us = commits ? (double)ticks * us_per_tick / (double)commits : 0;
    return true;
}

static void print_header(void)
{
    fprintf(human, "%10s %10s %10s %9s %9s %9s %9s %9s %9s %9s %9s\n", "offered/s",
            "accepted/s", "commits/s", "p50 ms", "p99 ms", "p999 ms", "CPU us/c", "elections",
            "ldr chg", "busy", "shed");
}

static void print_step(const struct options *o, int batched, size_t n, const struct step *s)
{
    fprintf(human, "%10.0f %10.0f %10.0f %9.1f %9.1f %9.1f %9.1f %9" PRIu64 " %9" PRIu64
                   " %9" PRIu64 " %9" PRIu64 "\n",
            s->offered, s->accepted, s->commits, s->p50, s->p99, s->p999, s->cpu_us,
            s->elections, s->leader_changes, s->busy, s->shed);
    fflush(human);
    if (o->json) {
        printf("{\"mode\":\"%s\",\"groups\":%u,\"payload_bytes\":%u,\"step\":%zu,"
               "\"seconds\":%.2f,\"offered_per_s\":%.0f,\"accepted_per_s\":%.1f,"
               "\"commits_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
               "\"cpu_us_per_commit\":%.2f,\"elections\":%" PRIu64 ",\"leader_changes\":%" PRIu64
               ",\"busy_refusals\":%" PRIu64 ",\"shed\":%" PRIu64 "}\n",
               mode_name(batched), o->groups, o->payload_bytes, n + 1, s->seconds, s->offered,
               s->accepted, s->commits, s->p50, s->p99, s->p999, s->cpu_us, s->elections,
               s->leader_changes, s->busy, s->shed);
        fflush(stdout);
    }
}

/* Does every node lead at most its share of the groups (1/NODES) plus the
 * balancer's tolerance? */
static bool balanced(void)
{
    for (size_t i = 0; i < cluster.n; i++)
        if (cluster.procs[i].last.leading * NODES * 100 > cluster.groups * 105 + NODES * 100)
            return false;
    return true;
}

/* Start a fresh cluster for one mode; wait until every group has a leader
 * and the leader balancer is done. */
static bool start_cluster(const struct options *o, int batched)
{
    if (!qc_init_temp(&cluster, o->exe, NODES, base_dir, sizeof base_dir, "muxraft-throughput"))
        return false;
    snprintf(rate_file, sizeof rate_file, "%s/rate", base_dir);
    if (!write_rate(0))
        return false;
    cluster.groups = o->groups;
    cluster.rate = 0; /* until the rate file says otherwise */
    cluster.report_ms = REPORT_MS;
    cluster.batch = batched;
    cluster.no_app_logs = !o->verify;
    cluster.payload_bytes = o->payload_bytes;
    cluster.open_loop = true;
    cluster.rate_file = rate_file;
    cluster.max_inflight = 0; /* no cap of its own: muxraft's BUSY is the only limit */
    cluster.max_pending_per_group = o->max_pending_per_group;
    cluster.tls_dir = o->tls_dir;
    cluster.on_stat = on_stat;
    memset(&win, 0, sizeof win);
    if (!qc_start_all(&cluster))
        return false;
    uint64_t t0 = qc_now_ns();
    for (;;) {
        if (qc_any_died(&cluster, PROG) || qc_interrupted)
            return false;
        if (qc_all_led(&cluster, 0))
            break;
        if (qc_seconds_since(t0) > LEADERS_TIMEOUT_S) {
            fprintf(stderr, "throughput: no leader for every group after %.0f s\n",
                    LEADERS_TIMEOUT_S);
            return false;
        }
        qc_poll(&cluster, 50);
    }
    double led_s = qc_seconds_since(t0);
    size_t at = offsetof(qc_stat, balance_transfers);
    uint64_t moved = qc_sum_field(&cluster, at), t1 = qc_now_ns(), last_move = t1;
    while (batched && (!balanced() || qc_seconds_since(last_move) < BALANCED_QUIET_S)) {
        if (qc_any_died(&cluster, PROG) || qc_interrupted)
            return false;
        if (qc_seconds_since(t1) > BALANCED_TIMEOUT_S) {
            fprintf(human, "(the leader balancer was still moving leaders after %.0f s)\n",
                    BALANCED_TIMEOUT_S);
            break;
        }
        qc_poll(&cluster, 50);
        uint64_t n = qc_sum_field(&cluster, at);
        if (n != moved) {
            moved = n;
            last_move = qc_now_ns();
        }
    }
    fprintf(human, "== %s (--batch %d): every group has a leader after %.1f s", mode_name(batched),
            batched, led_s);
    if (batched)
        fprintf(human, ", balanced after %.1f s (%" PRIu64 " transfers)", qc_seconds_since(t0),
                moved);
    fprintf(human, "; data in %s\n", base_dir);
    return true;
}

static bool stop_cluster(void)
{
    bool clean = qc_stop_all(&cluster, 20000);
    cleanup();
    return clean;
}

/* ---------------------------------------------------------------------- */
/* --verify                                                                 */

/* In reports newer than since_ns: proposals stopped and finished, every
 * group has a leader, and every node's groups are at the same indexes. */
static bool quiet_and_equal(const struct options *o, uint64_t since_ns)
{
    uint64_t leading = 0;
    for (size_t i = 0; i < NODES; i++) {
        const qc_proc *p = &cluster.procs[i];
        const qc_stat *s = &p->last;
        if (!qc_running(&cluster, i) || p->reports == 0 || s->received_ns <= since_ns ||
            s->leaderless != 0 || s->proposing || s->inflight != 0 ||
            s->index_sum != cluster.procs[0].last.index_sum)
            return false;
        leading += s->leading;
    }
    return leading == o->groups;
}

/* Stop proposing (SIGUSR1) and wait until quiet_and_equal has held, with
 * the same indexes, for SETTLE_STABLE_S (as tests/c/crash_test.c does). */
static bool settle(const struct options *o)
{
    for (size_t i = 0; i < NODES; i++)
        qc_signal(&cluster, i, SIGUSR1);
    uint64_t t0 = qc_now_ns(), stable_since = t0, sum = UINT64_MAX;
    for (;;) {
        if (!qc_poll_alive(&cluster, 50, PROG))
            return false;
        if (!quiet_and_equal(o, t0)) {
            sum = UINT64_MAX;
        } else if (cluster.procs[0].last.index_sum != sum) {
            sum = cluster.procs[0].last.index_sum;
            stable_since = qc_now_ns();
        } else if (qc_seconds_since(stable_since) >= SETTLE_STABLE_S) {
            fprintf(human, "settled %.1f s after proposals stopped: every node's groups at "
                           "the same indexes (sum %" PRIu64 ")\n",
                    qc_seconds_since(t0), sum);
            return true;
        }
        if (qc_seconds_since(t0) > SETTLE_TIMEOUT_S) {
            fprintf(stderr, "throughput: the cluster did not settle within %.0f s after "
                            "proposals stopped (index sums %" PRIu64 ", %" PRIu64 ", %" PRIu64
                            ")\n",
                    SETTLE_TIMEOUT_S, cluster.procs[0].last.index_sum,
                    cluster.procs[1].last.index_sum, cluster.procs[2].last.index_sum);
            return false;
        }
    }
}

/* The first MAX_PROBLEMS_SHOWN failures, as crash_test shows them. */
static void verify_check(void *arg, bool ok, const char *what)
{
    size_t *shown = arg;
    if (!ok && what != NULL && (*shown)++ < MAX_PROBLEMS_SHOWN)
        fprintf(human, "  FAILED: %s\n", what);
}

/* Check the app logs of the stopped cluster. */
static bool verify_logs(const struct options *o, int batched)
{
    uint64_t t0 = qc_now_ns();
    size_t shown = 0;
    lv_summary s;
    bool ok = lv_verify(&cluster, o->groups, verify_check, &shown, &s);
    lv_print_summary(human, &s);
    fprintf(human, "verify: %zu acknowledged proposals, %zu lost, %zu acknowledged twice; "
                   "%zu checks passed, %zu failed (%.1f s)\n",
            s.acked, s.lost, s.acked_twice, s.passed, s.failed, qc_seconds_since(t0));
    fflush(human);
    if (o->json) {
        printf("{\"mode\":\"%s\",\"verify\":{\"acked\":%zu,\"lost\":%zu,"
               "\"acked_twice\":%zu,\"applied\":%zu,\"checks_passed\":%zu,"
               "\"checks_failed\":%zu}}\n",
               mode_name(batched), s.acked, s.lost, s.acked_twice, s.applied, s.passed,
               s.failed);
        fflush(stdout);
    }
    return ok;
}

/* The sweep for one mode; false if it could not finish. With --verify,
 * *verified says whether the logs verified. */
static bool sweep(const struct options *o, int batched, struct step *steps, size_t *n,
                  bool *verified)
{
    *n = 0;
    *verified = !o->verify;
    if (!start_cluster(o, batched)) {
        cleanup();
        return false;
    }
    print_header();
    bool ok = true;
    if (o->n_rates > 0) {
        for (size_t k = 0; k < o->n_rates && ok; k++) {
            ok = run_step(o, o->rates[k], &steps[*n]);
            if (ok) {
                print_step(o, batched, *n, &steps[*n]);
                (*n)++;
            }
        }
    } else {
        double best = 0;
        unsigned rate = o->start_rate;
        bool grew = true;
        while (ok && grew && *n < o->max_steps) {
            ok = run_step(o, rate, &steps[*n]);
            if (!ok)
                break;
            const struct step *s = &steps[*n];
            print_step(o, batched, *n, s);
            (*n)++;
            grew = s->commits >= 1.05 * best;
            if (s->commits > best)
                best = s->commits;
            if (rate > UINT_MAX / 2)
                break;
            rate *= 2;
        }
        /* Past saturation: at least twice the best throughput. */
        double last = steps[*n ? *n - 1 : 0].offered;
        if (ok && *n > 0 && *n < MAX_STEPS && last < 2 * best) {
            ok = run_step(o, (unsigned)(2 * best), &steps[*n]);
            if (ok) {
                print_step(o, batched, *n, &steps[*n]);
                (*n)++;
            }
        }
    }
    bool clean;
    if (o->verify && ok) {
        bool settled = settle(o);
        clean = qc_stop_all(&cluster, 20000);
        if (!clean)
            fprintf(stderr, "throughput: a node did not stop cleanly\n");
        *verified = settled && verify_logs(o, batched);
        if (!*verified) {
            keep_dir = true;
            fprintf(stderr, "throughput: the %s logs did not verify; data kept in %s\n",
                    mode_name(batched), base_dir);
        }
        cleanup();
    } else {
        clean = stop_cluster();
        if (!clean)
            fprintf(stderr, "throughput: a node did not stop cleanly\n");
    }
    return ok && clean;
}

/* ---------------------------------------------------------------------- */
/* The plot: p99 (log scale) against commits per second, one line per mode  */

static double nice_step(double range)
{
    double e = pow(10, floor(log10(range / 5)));
    double m = range / 5 / e;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * e;
}

static bool write_svg(const struct options *o, struct step steps[2][MAX_STEPS], size_t n[2])
{
    const double W = 760, H = 480, L = 80, R = 170, T = 56, B = 60;
    double xmax = 0, ymin = 1e300, ymax = 0;
    for (int m = 0; m < 2; m++)
        for (size_t k = 0; k < n[m]; k++) {
            const struct step *s = &steps[m][k];
            if (s->commits > xmax)
                xmax = s->commits;
            if (s->p99 > 0 && s->p99 < ymin)
                ymin = s->p99;
            if (s->p99 > ymax)
                ymax = s->p99;
        }
    if (xmax <= 0 || ymax <= 0)
        return false;
    double xstep = nice_step(xmax * 1.05);
    xmax = ceil(xmax * 1.05 / xstep) * xstep;
    double ylo = pow(10, floor(log10(ymin))), yhi = pow(10, ceil(log10(ymax)));
    if (yhi <= ylo)
        yhi = ylo * 10;
    double pw = W - L - R, ph = H - T - B;
#define X(v) (L + (v) / xmax * pw)
#define Y(v) (T + ph - (log10(v) - log10(ylo)) / (log10(yhi) - log10(ylo)) * ph)

    FILE *f = fopen(o->svg, "w");
    if (f == NULL) {
        fprintf(stderr, "throughput: cannot write %s: %s\n", o->svg, strerror(errno));
        return false;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">"
               "p99 commit latency vs throughput, open-loop load</text>\n"
               "<text x=\"%.0f\" y=\"38\" text-anchor=\"middle\">3 processes on loopback, "
               "%u groups x 3 replicas, %u-byte payloads, WAL synced, %.0f s per step</text>\n",
            L + pw / 2, L + pw / 2, o->groups, o->payload_bytes, o->step_s);
    /* Grid and ticks. */
    for (double x = 0; x <= xmax + xstep / 2; x += xstep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                X(x), T, X(x), T + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", X(x),
                T + ph + 18, x);
    }
    for (double y = ylo; y <= yhi * 1.001; y *= 10) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                L, Y(y), L + pw, Y(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6,
                Y(y) + 4, y);
        for (int k = 2; k < 10 && y * 10 <= yhi * 1.001; k++)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n",
                    L - 4, Y(y * k), L, Y(y * k));
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"black\"/>\n",
            L, T, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">achieved throughput "
               "(commits/s, all groups)</text>\n",
            L + pw / 2, H - 16);
    fprintf(f, "<text transform=\"translate(20 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "p99 commit latency (ms, log scale)</text>\n",
            T + ph / 2);
    /* One line per mode; each point labelled with the offered rate. */
    const char *color[2] = {"#d62728", "#1f77b4"};
    for (int m = 0; m < 2; m++) {
        if (n[m] == 0)
            continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                color[m]);
        for (size_t k = 0; k < n[m]; k++)
            if (steps[m][k].p99 > 0)
                fprintf(f, "%.1f,%.1f ", X(steps[m][k].commits), Y(steps[m][k].p99));
        fprintf(f, "\"/>\n");
        for (size_t k = 0; k < n[m]; k++) {
            const struct step *s = &steps[m][k];
            if (s->p99 <= 0)
                continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s: "
                       "offered %.0f/s, %.0f commits/s, p99 %.1f ms</title></circle>\n",
                    X(s->commits), Y(s->p99), color[m], mode_name(m), s->offered, s->commits,
                    s->p99);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">%.0fk</text>\n",
                    X(s->commits) + 5, Y(s->p99) + (m ? 13 : -6), color[m], s->offered / 1000);
        }
        double ly = T + 20 + m * 22;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n",
                L + pw + 15, ly, L + pw + 45, ly, color[m]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s (--batch %d)</text>\n", L + pw + 50, ly + 4,
                mode_name(m), m);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">labels: offered/s</text>\n",
            L + pw + 15, T + 70);
    fprintf(f, "</svg>\n");
#undef X
#undef Y
    if (fclose(f) != 0)
        return false;
    return true;
}

/* ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: throughput [--queue-node PATH] [--groups 1000] [--payload-bytes 16]\n"
            "                  [--rates R,R,...] [--start-rate 5000] [--max-steps 8]\n"
            "                  [--step-seconds 10] [--warmup-seconds 3]\n"
            "                  [--modes naive,batched] [--max-pending-per-group N]\n"
            "                  [--json] [--svg PATH (target/throughput.svg)] [--smoke]\n"
            "                  [--verify] [--tls-dir DIR (none: plain TCP)]\n");
    exit(2);
}

static size_t parse_rates(const char *v, unsigned *out)
{
    size_t n = 0;
    while (*v) {
        char *end;
        unsigned long r = strtoul(v, &end, 10);
        if (end == v || r == 0 || n == MAX_STEPS)
            usage();
        out[n++] = (unsigned)r;
        if (*end == ',')
            end++;
        else if (*end != '\0')
            usage();
        v = end;
    }
    return n;
}

/* --smoke: 100 groups, rates 500,1000, steps of 2 s after 1 s of warm-up. */
static void set_smoke(void *value, const char *arg)
{
    struct options *o = value;
    (void)arg;
    o->smoke = true;
    o->groups = 100;
    o->n_rates = parse_rates("500,1000", o->rates);
    o->step_s = 2;
    o->warmup_s = 1;
}

static void set_rates(void *value, const char *arg)
{
    struct options *o = value;
    o->n_rates = parse_rates(arg, o->rates);
}

static void set_payload_bytes(void *value, const char *arg)
{
    struct options *o = value;
    o->payload_bytes = (unsigned)strtoul(arg, NULL, 10);
    o->payload_set = true;
}

/* --max-pending-per-group: strtoul's value, as a long long. */
static void set_long_long(void *value, const char *arg)
{
    *(long long *)value = (long long)strtoul(arg, NULL, 10);
}

int main(int argc, char **argv)
{
    struct options o;
    memset(&o, 0, sizeof o);
    o.exe = "target/c/queue_node";
    o.svg = NULL;
    o.groups = 1000;
    o.payload_bytes = 16;
    o.start_rate = 5000;
    o.max_steps = 8;
    o.step_s = 10;
    o.warmup_s = 3;
    o.max_pending_per_group = -1;
    o.modes[0] = o.modes[1] = true;
    const qc_arg args[] = {
        QC_ACTION("--smoke", &o, set_smoke),
        QC_SWITCH("--json", &o.json),
        QC_SWITCH("--verify", &o.verify),
        QC_STRING("--queue-node", &o.exe),
        QC_UNSIGNED("--groups", &o.groups),
        QC_CALL("--payload-bytes", &o, set_payload_bytes),
        QC_CALL("--rates", &o, set_rates),
        QC_UNSIGNED("--start-rate", &o.start_rate),
        QC_UNSIGNED("--max-steps", &o.max_steps),
        QC_DOUBLE("--step-seconds", &o.step_s),
        QC_DOUBLE("--warmup-seconds", &o.warmup_s),
        QC_CALL("--max-pending-per-group", &o.max_pending_per_group, set_long_long),
        QC_STRING("--svg", &o.svg),
        QC_STRING("--tls-dir", &o.tls_dir),
        QC_MODES("--modes", o.modes, mode_names, 2),
    };
    if (!qc_parse_args(argc, argv, args, sizeof args / sizeof args[0]))
        usage();
    if (o.verify && !o.payload_set)
        o.payload_bytes = VERIFY_PAYLOAD_BYTES;
    if (o.verify && o.payload_bytes < VERIFY_PAYLOAD_BYTES) {
        fprintf(stderr, "throughput: --verify needs --payload-bytes %d or more (queue_node "
                        "cuts longer messages short: they would no longer be unique)\n",
                VERIFY_PAYLOAD_BYTES);
        return 2;
    }
    if (o.svg == NULL)
        o.svg = o.smoke ? "target/throughput-smoke.svg" : "target/throughput.svg";
    if (o.groups == 0 || o.payload_bytes == 0 || o.start_rate == 0 || o.step_s <= 0 ||
        o.warmup_s < 0 || o.max_steps == 0 || o.max_steps >= MAX_STEPS ||
        !(o.modes[0] || o.modes[1]) || access(o.exe, X_OK) != 0)
        usage();
    human = o.json ? stderr : stdout;
    qc_install_signals();
    atexit(cleanup);

    fprintf(human, "throughput: %d queue_node processes on loopback, %u groups x 3 replicas, "
                   "%u-byte payloads, WAL synced;\nopen-loop offered load, %.0f s warm-up + %.0f s "
                   "measured per step; rates %s%s\n",
            NODES, o.groups, o.payload_bytes, o.warmup_s, o.step_s,
            o.n_rates ? "as given" : "doubling until commits/s stop growing",
            o.verify ? ";\n--verify: app logs on, checked after the last step of each mode"
                     : "");
    if (o.tls_dir)
        fprintf(human, "TLS between the nodes (certificates of %s)\n", o.tls_dir);
    static struct step steps[2][MAX_STEPS];
    size_t n[2] = {0, 0};
    int failed = 0;
    for (int m = 0; m < 2; m++) {
        if (!o.modes[m])
            continue;
        bool verified;
        if (!sweep(&o, m, steps[m], &n[m], &verified)) {
            fprintf(stderr, "throughput: the %s sweep did not finish\n", mode_name(m));
            failed++;
        } else if (!verified) {
            failed++;
        }
        if (qc_interrupted)
            break;
        size_t best = 0;
        for (size_t k = 0; k < n[m]; k++)
            if (steps[m][k].commits > steps[m][best].commits)
                best = k;
        if (n[m] > 0)
            fprintf(human, "%s: at most %.0f commits/s (offered %.0f/s; p99 %.1f ms, %.1f us "
                           "CPU per commit)\n\n",
                    mode_name(m), steps[m][best].commits, steps[m][best].offered,
                    steps[m][best].p99, steps[m][best].cpu_us);
        if (o.smoke)
            for (size_t k = 0; k < n[m]; k++)
                if (steps[m][k].commits < steps[m][k].offered / 3) {
                    fprintf(stderr, "throughput: FAILED: %s, offered %.0f/s, %.0f commits/s\n",
                            mode_name(m), steps[m][k].offered, steps[m][k].commits);
                    failed++;
                }
    }
    if (n[0] + n[1] > 0) {
        if (write_svg(&o, steps, n))
            fprintf(human, "plot: %s\n", o.svg);
        else
            failed++;
    }
    fprintf(human, "%s\n", failed ? "throughput: FAILED" : "throughput: OK");
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
