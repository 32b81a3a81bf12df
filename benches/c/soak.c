/*
 * soak.c: `make soak` (part of `make bench`). Bounded disk and memory under
 * sustained load, with real processes.
 *
 * Three queue_node processes (examples/c/queue_node.c) on loopback, each
 * with a data directory, host G groups of three replicas and propose as
 * fast as --rate allows to the groups they lead, taking a snapshot of a
 * group every --snapshot-every entries (muxraft's snapshot_needed hint).
 * Every --report seconds it prints, per node: the commits per second of the
 * whole cluster, the bytes of muxraft's data directory (write-ahead log
 * segments and snapshot files, measured on disk), the log bytes the groups
 * hold in memory and the resident memory of the process. At the end it
 * checks that the data directories stayed below --max-wal-mib plus the
 * snapshots, that the cluster committed at least --min-rate per second,
 * and that resident memory stopped growing (its peak in the second half is
 * at most --max-rss-growth percent above its peak in the first, which
 * includes the warm-up to the first snapshots).
 *
 *   usage: soak [--queue-node PATH] [--seconds 120] [--groups 100]
 *               [--rate 3500 (per node)] [--snapshot-every 10000]
 *               [--report 10] [--min-rate 10000] [--max-wal-mib 64]
 *               [--max-rss-growth 10] [--snapshot-bytes 80000] [--segment-mib 8]
 *               [--smoke]
 *
 * --snapshot-bytes asks for a snapshot also once a group's log holds that
 * many bytes of payload (80000: about 5,000 of queue_node's 16-byte
 * messages; 0 turns it off: with 10,000 entries alone, each entry costing
 * about 44 bytes of WAL, the WAL peaks near 60 MiB before the first round
 * of snapshots);
 * --segment-mib sets the WAL segment size (a segment is deleted whole, so
 * the directory bound includes one).
 *
 * --smoke: 10 seconds, 30 groups, low rate, every check relaxed but the
 * data directory bound (for CI). Exit status 0 only if every check held.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue_cluster.h"

#define NODES 3
#define REPORT_MS 500
#define LEADERS_TIMEOUT_S 30.0

static qc_cluster cluster;
static char base_dir[512];

static void cleanup(void)
{
    qc_teardown(&cluster, base_dir, false);
}

/* Bytes of the regular files under `path`; *wal gets those named *.wal. */
static uint64_t tree_bytes(const char *path, uint64_t *wal)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            total += tree_bytes(p, wal);
        } else if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".wal") == 0)
                *wal += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    return total;
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

static void usage(void)
{
    fprintf(stderr, "usage: soak [--queue-node PATH] [--seconds S] [--groups G] [--rate R]\n"
                    "            [--snapshot-every N] [--report S] [--min-rate R]\n"
                    "            [--max-wal-mib M] [--max-rss-growth PCT] [--smoke]\n");
    exit(2);
}

struct options {
    const char *exe;
    unsigned seconds, groups, rate, snapshot_every, report_s;
    unsigned min_rate, max_wal_mib, max_rss_growth;
    unsigned snapshot_bytes, segment_mib;
};

/* --smoke: short, small, every check relaxed but the data directory bound. */
static void set_smoke(void *value, const char *arg)
{
    struct options *o = value;
    (void)arg;
    o->seconds = 10, o->groups = 30, o->rate = 300, o->snapshot_every = 100, o->report_s = 2;
    o->snapshot_bytes = 0;
    o->min_rate = 100, o->max_rss_growth = 1000;
}

int main(int argc, char **argv)
{
    struct options o = {.exe = "target/c/queue_node",
                        .seconds = 120,
                        .groups = 100,
                        .rate = 3500,
                        .snapshot_every = 10000,
                        .report_s = 10,
                        .min_rate = 10000,
                        .max_wal_mib = 64,
                        .max_rss_growth = 10,
                        .snapshot_bytes = 80000,
                        .segment_mib = 8};
    const qc_arg args[] = {
        QC_ACTION("--smoke", &o, set_smoke),
        QC_STRING("--queue-node", &o.exe),
        QC_UNSIGNED("--seconds", &o.seconds),
        QC_UNSIGNED("--groups", &o.groups),
        QC_UNSIGNED("--rate", &o.rate),
        QC_UNSIGNED("--snapshot-every", &o.snapshot_every),
        QC_UNSIGNED("--report", &o.report_s),
        QC_UNSIGNED("--min-rate", &o.min_rate),
        QC_UNSIGNED("--max-wal-mib", &o.max_wal_mib),
        QC_UNSIGNED("--max-rss-growth", &o.max_rss_growth),
        QC_UNSIGNED("--snapshot-bytes", &o.snapshot_bytes),
        QC_UNSIGNED("--segment-mib", &o.segment_mib),
    };
    if (!qc_parse_args(argc, argv, args, sizeof args / sizeof args[0]))
        usage();
    if (o.seconds < 2 || o.groups == 0 || o.report_s == 0 || access(o.exe, X_OK) != 0)
        usage();
    qc_install_signals();
    atexit(cleanup);
    if (!qc_init_temp(&cluster, o.exe, NODES, base_dir, sizeof base_dir, "muxraft-soak"))
        return EXIT_FAILURE;
    cluster.groups = o.groups;
    cluster.rate = o.rate;
    cluster.report_ms = REPORT_MS;
    cluster.batch = true;
    cluster.snapshot_every = o.snapshot_every;
    cluster.snapshot_bytes = o.snapshot_bytes;
    cluster.wal_segment_mib = o.segment_mib;
    cluster.no_app_logs = true; /* its own logs would be most of the disk */

    printf("soak: %d queue_node processes, %u groups of 3 replicas, up to %u proposals/s per "
           "node,\na snapshot every %u entries per group",
           NODES, o.groups, o.rate, o.snapshot_every);
    if (o.snapshot_bytes)
        printf(" or %u bytes of log", o.snapshot_bytes);
    printf(", WAL segments of %u MiB, %u s; data in %s\n\n", o.segment_mib, o.seconds, base_dir);
    if (!qc_start_all(&cluster))
        return EXIT_FAILURE;
    uint64_t t0 = qc_now_ns();
    for (;;) {
        for (size_t i = 0; i < NODES; i++)
            if (qc_died(&cluster, i)) {
                fprintf(stderr, "soak: node %zu died\n", i + 1);
                return EXIT_FAILURE;
            }
        if (qc_all_led(&cluster, 0))
            break;
        if (qc_seconds_since(t0) > LEADERS_TIMEOUT_S) {
            fprintf(stderr, "soak: no leader for every group after %.0f s\n", LEADERS_TIMEOUT_S);
            return EXIT_FAILURE;
        }
        qc_poll(&cluster, 50);
    }

    printf("%6s %10s", "t (s)", "commits/s");
    for (size_t i = 0; i < NODES; i++)
        printf(" | n%zu: dir MiB (wal+snap)  log MiB  RSS MiB", i + 1);
    printf("\n");
    uint64_t start = qc_now_ns(), last = start, last_commits = QC_SUM(&cluster, commits);
    uint64_t max_wal[NODES] = {0}, max_snap[NODES] = {0}, max_dir[NODES] = {0};
    double rss_first[NODES] = {0}, rss_second[NODES] = {0}, rss_end[NODES] = {0};
    unsigned reports = 0;
    bool died = false;
    while (qc_seconds_since(start) < o.seconds && !qc_interrupted) {
        qc_poll(&cluster, 50);
        for (size_t i = 0; i < NODES; i++)
            if (qc_died(&cluster, i))
                died = true;
        if (died)
            break;
        /* Sample the directories often: the peaks matter. */
        for (size_t i = 0; i < NODES; i++) {
            char raft[1200];
            snprintf(raft, sizeof raft, "%.1000s/raft", cluster.procs[i].dir);
            uint64_t wal = 0, all = tree_bytes(raft, &wal);
            if (wal > max_wal[i])
                max_wal[i] = wal;
            if (all - wal > max_snap[i])
                max_snap[i] = all - wal;
            if (all > max_dir[i])
                max_dir[i] = all;
        }
        if (qc_seconds_since(last) < o.report_s)
            continue;
        uint64_t now = qc_now_ns(), c = QC_SUM(&cluster, commits);
        printf("%6.0f %10.0f", (double)(now - start) / 1e9,
               (double)(c - last_commits) / ((double)(now - last) / 1e9));
        reports++;
        for (size_t i = 0; i < NODES; i++) {
            const qc_stat *s = &cluster.procs[i].last;
            char raft[1200];
            snprintf(raft, sizeof raft, "%.1000s/raft", cluster.procs[i].dir);
            uint64_t wal = 0, all = tree_bytes(raft, &wal);
            double rss = (double)s->rss_kb / 1024.0;
            printf(" | %8.1f (%5.1f+%4.1f) %8.1f %8.1f", mib(all), mib(wal), mib(all - wal),
                   mib(s->log_bytes), rss);
            bool first_half = qc_seconds_since(start) <= o.seconds / 2.0 + o.report_s / 2.0;
            double *peak = first_half ? rss_first : rss_second;
            if (rss > peak[i])
                peak[i] = rss;
            rss_end[i] = rss;
        }
        printf("\n");
        fflush(stdout);
        last = now;
        last_commits = c;
    }
    double elapsed = qc_seconds_since(start);
    uint64_t total = QC_SUM(&cluster, commits);
    uint64_t snaps = QC_SUM(&cluster, snapshots);
    bool stopped = qc_stop_all(&cluster, 15000);

    int failed = 0;
    printf("\n%" PRIu64 " commits in %.0f s: %.0f per second (the cluster); %" PRIu64
           " snapshots taken\n",
           total, elapsed, (double)total / elapsed, snaps);
    for (size_t i = 0; i < NODES; i++) {
        printf("node %zu: data directory at most %.1f MiB (WAL at most %.1f MiB, snapshots at "
               "most %.1f MiB); RSS peak %.1f MiB in the first half, %.1f MiB in the second, "
               "%.1f MiB at the end\n",
               i + 1, mib(max_dir[i]), mib(max_wal[i]), mib(max_snap[i]), rss_first[i],
               rss_second[i], rss_end[i]);
        if (mib(max_wal[i]) >= o.max_wal_mib) {
            printf("  FAILED: the WAL of node %zu reached %.1f MiB (limit %u MiB)\n", i + 1,
                   mib(max_wal[i]), o.max_wal_mib);
            failed++;
        }
        if (reports >= 2 && rss_first[i] > 0 &&
            rss_second[i] > rss_first[i] * (1.0 + o.max_rss_growth / 100.0)) {
            printf("  FAILED: node %zu peaked at %.1f MiB in the second half, %.1f in the first\n",
                   i + 1, rss_second[i], rss_first[i]);
            failed++;
        }
    }
    if ((double)total / elapsed < o.min_rate) {
        printf("FAILED: %.0f commits per second, under %u\n", (double)total / elapsed, o.min_rate);
        failed++;
    }
    if (died || !stopped) {
        printf("FAILED: a node %s\n", died ? "died" : "did not stop cleanly");
        failed++;
    }
    printf("%s\n", failed ? "soak: FAILED" : "soak: OK");
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
