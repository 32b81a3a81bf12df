/*
 * queue_node.c: one broker-like process hosting many replicated queues.
 *
 * The process is one muxraft node in embedded mode: muxraft runs its own
 * timer, its own TCP connections to the other nodes and its own durable
 * write-ahead log in --data-dir. Each queue is a Raft group; group g
 * (1..G) has its replicas on R of the cluster's nodes, chosen from g (with
 * 3 nodes and R = 3: on all of them). The process creates its replicas
 * (after a restart they are recovered from the data directory and already
 * exist), then proposes small messages "n<id>-i<incarnation>-g<g>-s<seq>"
 * to the groups it leads, at --rate proposals per second in total, and
 * measures each one's commit latency (muxraft_propose until proposal_done
 * reports it committed on a majority).
 *
 *   usage: queue_node --id N --listen HOST:PORT [--peer ID=HOST:PORT]...
 *                     [--data-dir DIR] [--groups G] [--replicas R]
 *                     [--cluster-id C] [--batch 0|1] [--rate R]
 *                     [--duration SECONDS] [--report-ms MS]
 *                     [--snapshot-every N] [--snapshot-pad BYTES]
 *                     [--snapshot-trailing N] [--snapshot-bytes BYTES]
 *                     [--wal-segment-mib MIB]
 *                     [--rejoin 0|1] [--app-logs 0|1]
 *                     [--payload-bytes N] [--max-inflight N]
 *                     [--max-pending-per-group N] [--open-loop 0|1]
 *                     [--rate-file PATH] [--quiesce 0|1] [--roles-ms MS]
 *                     [--tls-cert PEM --tls-key PEM --tls-ca PEM]
 *                     [--join 0|1] [--control PATH]
 *
 * --tls-cert, --tls-key and --tls-ca (all three or none) turn on TLS
 * between the nodes: this node's certificate chain, its key and the
 * cluster CA, as PEM files (muxraft's tls_cert_pem, tls_key_pem and
 * tls_ca_pem; see README's "TLS between nodes").
 *
 * Each queue's state machine is a count of the messages applied and a
 * running hash of them (FNV-1a over index and payload). With
 * --snapshot-every N the node takes a snapshot of a group (its count and
 * hash, and --snapshot-pad bytes of filler, as a queue's contents would
 * be) whenever muxraft's snapshot_needed hint says N entries were applied
 * since the last one; muxraft then compacts the log, and a restart
 * restores each group from its snapshot (the restore callback) and applies
 * only what followed. --snapshot-trailing sets how many entries before a
 * snapshot the log keeps for followers a little behind (muxraft's
 * snapshot_trailing_entries). --snapshot-bytes also asks for a snapshot
 * once a group's log holds that many bytes of payload (muxraft's
 * snapshot_threshold_bytes; 0, the default here: by count only), and
 * --wal-segment-mib sets the size of muxraft's WAL segments.
 *
 * muxraft keeps its data in DIR/raft. If that directory is missing on a
 * restart (the disk was replaced, or someone deleted it), the node lost
 * what it held and rejoins its groups (muxraft_group_rejoin) instead of
 * creating them: the leaders bring it back with snapshots and appends.
 * --rejoin 1 forces that.
 *
 * Load (for benches/c/throughput.c): --payload-bytes N makes every message
 * exactly N bytes (its text padded with '.', or cut short: then messages
 * are no longer unique, which only the app logs would notice). At most
 * --max-inflight proposals (default 20000; 0: no cap) wait for their
 * outcome; at the cap this process sheds what its schedule calls for.
 * --max-pending-per-group sets muxraft's max_pending_proposals_per_group
 * (0: no limit; default: muxraft's). By default a proposal muxraft refuses
 * with MUXRAFT_BUSY is tried again on the next pass (up to 100 ms of
 * proposals are carried over); with --open-loop 1 it is counted and
 * dropped, and the process goes on to the next group at the same pace: the
 * offered load does not depend on how fast proposals complete.
 * --rate-file PATH: the file holds one number, the proposals per second of
 * the whole cluster; this process re-reads it every 100 ms and offers its
 * share, RATE x (groups it leads) / G, spread evenly over the groups it
 * leads. While the file is missing or unreadable, --rate applies.
 *
 * Every --report-ms it prints one line to stdout (and flushes it):
 *
 *   STAT t_ms=.. id=.. pid=.. groups=.. leading=.. leaderless=..
 *        hb_msgs=.. hb_batches=.. group_hb_batched=.. hb_bytes=.. sent=..
 *        bytes=.. proposing=0|1 proposed=.. commits=.. failed=.. inflight=..
 *        p50_us=.. p99_us=.. applied=.. elections=.. leader_changes=..
 *        hist=US:COUNT,... snapshots=.. restores=.. installed=..
 *        wal_segments=.. wal_bytes=.. snapshot_bytes=.. log_bytes=.. rss_kb=..
 *        index_sum=.. skipped=.. state=.. busy=.. shed=.. rate=..
 *        awake=.. quiesced=.. peers_heard=.. term_bumps=ID:N,...
 *        repl_added=.. repl_promoted=.. replaced=.. balance_transfers=..
 *        transfers=..
 *
 * Counters are totals since this process started. groups = replicas hosted
 * here, leading = groups this node leads, leaderless = groups for which
 * this node knows no leader. p50_us, p99_us and hist describe the commit
 * latencies of the proposals finished since the previous line (hist: the
 * midpoint of each latency bucket in microseconds and how many fell in it,
 * so that several lines and nodes can be merged). The last line, printed on
 * exit, also has final=1. snapshots = snapshots this process took,
 * restores = restore callbacks (at start and from leaders), installed =
 * snapshots installed from a leader; wal_segments, wal_bytes and
 * snapshot_bytes = muxraft's files in DIR/raft now; log_bytes = bytes of
 * log held in memory over all groups; rss_kb = the process's resident
 * memory; index_sum = the sum over the groups hosted here of the last
 * index applied or restored (equal on nodes that host the same groups
 * once they caught up, whatever each applied since it started); skipped =
 * entries this process did not apply because a restored snapshot covered
 * them; state = a hash of every hosted queue's state (equal on nodes
 * hosting the same groups once they caught up); busy = proposals muxraft
 * refused with MUXRAFT_BUSY (backpressure; this process proposes again
 * later, or, with --open-loop 1, drops them); shed = proposals this
 * process's schedule called for and it did not make (at --max-inflight, or
 * more than 100 ms behind schedule); rate = the proposals per second it
 * offers now. awake and quiesced = the groups hosted here that are awake
 * and that are quiet now (muxraft's groups_awake, groups_quiesced);
 * peers_heard = the peers this node hears now (a frame from each within an
 * election timeout); term_bumps = how far the terms of the groups hosted
 * here moved on (each step is an election somewhere in the group), by the
 * group's last leader known before the move ("0:N": groups that never had
 * one; e.g. "0:300,1:2,2:0,3:5"), as seen each time this process re-reads
 * its groups' roles: after a node dies, the survivors' steps counted under
 * the dead node's id are the elections that replaced it, and any under
 * the others' ids are elections in groups it did not lead. With a
 * "replace OLD NEW" control line (see --control): repl_added = hosted
 * groups whose members (as this replica sees them) include NEW, in any
 * role; repl_promoted = those where NEW is a voter; replaced = those where
 * NEW is a voter and OLD is gone (all 0 without one). balance_transfers =
 * leadership transfers muxraft's leader balancer started on this node,
 * transfers = all the leadership transfers it started (muxraft_stats's
 * balance_transfers and transfers_started).
 *
 * --quiesce 0|1 sets muxraft's `quiesce` (default 1, muxraft's default):
 * idle groups go quiet on every replica, and only the loss of a leader's
 * node wakes its groups. --roles-ms MS: how often at most this process
 * re-reads the role, leader, term and log size of each of its groups
 * (default 100; the leading, leaderless, log_bytes and term_bumps fields,
 * and the groups it proposes to, are as of the last time). It re-reads them
 * only when something happened since: a role_changed callback, an entry
 * applied, a snapshot restored or taken (a read of 100,000 groups costs
 * tens of milliseconds of CPU; an idle process does not pay it). Its main
 * loop runs every 5 ms while it proposes; while it has nothing to propose
 * (rate 0, or paused by SIGUSR1) it wakes only for its STAT lines and the
 * rate file, at least every 100 ms.
 *
 * Replacing a node (every node hosting every group, R = N):
 * --join 1 starts a NEW node that joins all G groups (muxraft_group_join,
 * incarnation 1 as the others created them) instead of creating its share:
 * its replicas are empty and wait for the groups' leaders to add them.
 * --control PATH: a file this process re-reads every 100 ms (like the rate
 * file); the line "replace OLD NEW HOST:PORT" in it makes every node
 * replace member OLD by NEW in every group it leads: it adds NEW as a peer
 * at HOST:PORT (muxraft_node_add_peer, once), then every 100 ms, for each
 * group not yet done, reads its members (muxraft_group_members) and, if it
 * leads the group, adds NEW as MUXRAFT_PROMOTABLE while NEW is no member,
 * and removes OLD once NEW is a voter (MUXRAFT_NOT_LEADER and MUXRAFT_BUSY:
 * another node leads the group, or a change is in flight; tried again on
 * the next pass, so leadership may move meanwhile). The NEW node reads the
 * same file (it removes OLD from the groups it has come to lead). A
 * group is done once its members, as this replica sees them, hold NEW as
 * a voter and no OLD. (Writing the file is enough: no signal, no reply;
 * the counts in the STAT line say how far it got.)
 *
 * Signals: SIGTERM or SIGINT stop the node cleanly (muxraft_node_stop, then
 * muxraft_node_free) and exit 0; SIGUSR1 stops proposing, SIGUSR2 resumes.
 *
 * With --data-dir the process also keeps two logs there, each line written
 * with a single write(2) on an O_APPEND file so that they survive SIGKILL of
 * the process (not a machine crash: there is no fsync):
 *   acked.log          "<group> <index> <payload>" for every proposal that
 *                      proposal_done reported committed;
 *   applied.<pid>.log  "<group> <index> <payload> <hash>" for every entry
 *                      applied, and "<group> <index> restore:<count> <hash>"
 *                      for every snapshot restored, with the group's hash
 *                      after it; one file per incarnation of the process.
 *   incarnation        how many times the process started on this directory.
 * --app-logs 0 leaves out acked.log and applied.<pid>.log (for long runs).
 */
#define _GNU_SOURCE /* clock_gettime, sigaction, nanosleep, strdup */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "latency_hist.h"
#include "muxraft.h"

#define MAX_PEERS 15
#define MAX_INFLIGHT 20000     /* default --max-inflight */
#define LOOP_NS 5000000L       /* the main loop runs every 5 ms while proposing */
#define IDLE_LOOP_NS 100000000L /* ...and at least every 100 ms otherwise */
#define LEADERS_REFRESH_MS 100 /* default --roles-ms; the rate file's period */

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "queue_node: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(EXIT_FAILURE);
}

static void check(muxraft_status status, const char *what)
{
    if (status != MUXRAFT_OK) {
        fprintf(stderr, "queue_node: %s: %s: %s\n", what,
                muxraft_status_str((int)status), muxraft_last_error());
        exit(EXIT_FAILURE);
    }
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        die("%s", "out of memory");
    return p;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t parse_u64(const char *s, const char *flag)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0')
        die("bad number for %s", flag);
    return (uint64_t)v;
}

/* Write one whole line with one write(2): after SIGKILL a line is either in
 * the file or not. */
static void write_line(int fd, const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("write to a log in the data directory failed: %s", strerror(errno));
        line += n;
        len -= (size_t)n;
    }
}

/* "<group> <index> <payload>\n"; bytes that are not printable are shown as
 * '?', so that a line is always one line. */
static size_t format_entry(char *buf, size_t size, uint64_t group,
                           uint64_t index, const uint8_t *data, size_t len)
{
    int n = snprintf(buf, size, "%" PRIu64 " %" PRIu64 " ", group, index);
    size_t at = (size_t)n;
    for (size_t i = 0; i < len && at + 2 < size; i++) {
        uint8_t c = data[i];
        buf[at++] = (c > ' ' && c < 127) ? (char)c : '?';
    }
    buf[at++] = '\n';
    buf[at] = '\0';
    return at;
}

/* ---------------------------------------------------------------------- */
/* Commit latency histogram: latency_hist.h                                */

/* ---------------------------------------------------------------------- */
/* Proposals awaiting proposal_done, by proposal id                         */

/* muxraft numbers a node's proposals 1, 2, 3, ..., so the ids in flight are
 * a window of that sequence: each id has the slot `id` modulo the table's
 * size, proposing and completing touch neighbouring slots, and no probing
 * or shifting is ever needed. (A hash that spread the ids over the table,
 * as this one once did, cost a cache miss per proposal and per
 * completion.) An id whose slot is still held by one a whole table older
 * doubles the table: it always holds the span between the oldest and the
 * newest id in flight, which muxraft bounds by deciding every proposal. */
struct pending {
    uint64_t id; /* 0: free slot */
    uint64_t group, seq, start_ns;
};

struct pending_table {
    struct pending *v;
    size_t cap, n; /* cap is a power of two */
};

static void pending_grow(struct pending_table *t)
{
    struct pending *old = t->v;
    size_t old_cap = t->cap;
    t->cap = old_cap ? old_cap * 2 : 1024;
    t->v = xcalloc(t->cap, sizeof *t->v);
    /* Two ids in distinct slots of the old table differ modulo its size,
     * so they do modulo the new one too. */
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id != 0)
            t->v[old[i].id & (t->cap - 1)] = old[i];
    free(old);
}

static void pending_put(struct pending_table *t, struct pending p)
{
    while (t->cap == 0 || t->v[p.id & (t->cap - 1)].id != 0)
        pending_grow(t);
    t->v[p.id & (t->cap - 1)] = p;
    t->n++;
}

/* Remove the entry with `id` into *out; false if there is none. */
static bool pending_take(struct pending_table *t, uint64_t id, struct pending *out)
{
    if (t->cap == 0 || id == 0)
        return false;
    struct pending *s = &t->v[id & (t->cap - 1)];
    if (s->id != id)
        return false;
    *out = *s;
    s->id = 0;
    t->n--;
    return true;
}

/* ---------------------------------------------------------------------- */
/* The node                                                                */

struct options {
    uint64_t id, cluster_id;
    const char *listen, *data_dir;
    uint64_t peer_ids[MAX_PEERS];
    const char *peer_addrs[MAX_PEERS];
    size_t n_peers;
    uint64_t groups, replicas;
    bool batch;
    double rate;
    uint64_t duration_s, report_ms;
    uint64_t snapshot_every, snapshot_pad, snapshot_trailing, snapshot_bytes;
    uint64_t wal_segment_mib;
    bool rejoin, app_logs;
    uint64_t payload_bytes; /* 0: the message text as it is */
    uint64_t max_inflight;  /* 0: no cap */
    int64_t max_pending_per_group; /* -1: muxraft's default */
    bool open_loop;
    const char *rate_file;
    const char *tls_cert, *tls_key, *tls_ca; /* NULL: plain TCP */
    bool quiesce;
    uint64_t roles_ms;
    bool join;               /* --join 1: join every group (a new node) */
    const char *control;     /* --control PATH (NULL: none) */
};

/* A queue's state machine: what it applied, as a count and a hash. */
struct queue_state {
    uint64_t index; /* the last index applied or restored */
    uint64_t count; /* messages applied */
    uint64_t hash;  /* FNV-1a over every (index, payload) */
    bool snapshot_wanted;
};

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t queue_hash(uint64_t h, uint64_t index, const uint8_t *data, size_t len)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(index >> (8 * i));
    return fnv_bytes(fnv_bytes(h, le, sizeof le), data, len);
}

/* Shared by the main thread and the callbacks (which run on a muxraft
 * thread). `mu` guards the proposal side, `apply_mu` the apply side. */
struct app {
    const struct options *opt;
    uint64_t incarnation;
    int acked_fd, applied_fd; /* -1 without a data directory */

    pthread_mutex_t mu;
    struct pending_table pending;
    uint64_t commits, failed;
    uint64_t hist[HIST_BUCKETS]; /* since the last STAT line */
    char *done_buf; /* on_proposal_done's message buffer */
    size_t buf_size;

    pthread_mutex_t apply_mu;
    uint64_t applied;
    struct queue_state *queues; /* 1..groups */
    uint64_t restores, snapshots_wanted;
    uint64_t skipped; /* entries covered by restored snapshots */

    uint64_t role_events; /* role_changed callbacks (atomic) */
};

static volatile sig_atomic_t stop_requested = 0;
static volatile sig_atomic_t proposing = 1;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        proposing = 0;
    else if (sig == SIGUSR2)
        proposing = 1;
    else
        stop_requested = 1;
}

/* The message for (group, seq) into buf (of size > --payload-bytes and
 * >= 128); returns its length. */
static size_t payload(char *buf, size_t size, const struct app *app,
                      uint64_t group, uint64_t seq)
{
    int n = snprintf(buf, size, "n%" PRIu64 "-i%" PRIu64 "-g%" PRIu64 "-s%" PRIu64,
                     app->opt->id, app->incarnation, group, seq);
    size_t len = (size_t)n, want = (size_t)app->opt->payload_bytes;
    if (want > 0 && want < size) {
        if (len < want)
            memset(buf + len, '.', want - len);
        len = want;
        buf[len] = '\0';
    }
    return len;
}

/* " <hash>\n" in place of the newline format_entry ended `line` with. */
static size_t add_hash(char *line, size_t n, size_t size, uint64_t hash)
{
    int k = snprintf(line + n - 1, size - (n - 1), " %016" PRIx64 "\n", hash);
    return n - 1 + (size_t)k;
}

static void on_apply(void *userdata, uint64_t group_id, uint64_t index,
                     const uint8_t *data, size_t len)
{
    struct app *app = userdata;
    /* The line is formatted only for the log (--app-logs 0 has none: the
     * throughput benchmark measures the library, not snprintf). */
    bool logging = app->applied_fd >= 0;
    char line[512];
    size_t n = logging ? format_entry(line, sizeof line - 24, group_id, index, data, len) : 0;
    pthread_mutex_lock(&app->apply_mu);
    if (group_id >= 1 && group_id <= app->opt->groups) {
        struct queue_state *q = &app->queues[group_id];
        q->index = index;
        q->count++;
        q->hash = queue_hash(q->hash, index, data, len);
        if (logging)
            n = add_hash(line, n, sizeof line, q->hash);
    }
    if (logging)
        write_line(app->applied_fd, line, n);
    app->applied++;
    pthread_mutex_unlock(&app->apply_mu);
}

/* A snapshot's bytes: "<count> <hash>", then filler up to the pad size. */
static void on_restore(void *userdata, uint64_t group_id, uint64_t index,
                       uint64_t term, const uint8_t *data, size_t len)
{
    (void)term;
    struct app *app = userdata;
    char text[64] = {0};
    memcpy(text, data, len < sizeof text - 1 ? len : sizeof text - 1);
    unsigned long long count = 0, hash = 0;
    if (sscanf(text, "%llu %llx", &count, &hash) != 2) {
        fprintf(stderr, "queue_node: group %" PRIu64 ": a snapshot at %" PRIu64
                        " that this program did not write\n", group_id, index);
        exit(EXIT_FAILURE);
    }
    char line[256];
    int n = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 " restore:%llu %016llx\n",
                     group_id, index, count, hash);
    pthread_mutex_lock(&app->apply_mu);
    if (group_id >= 1 && group_id <= app->opt->groups) {
        struct queue_state *q = &app->queues[group_id];
        app->skipped += index > q->index ? index - q->index : 0;
        q->index = index;
        q->count = count;
        q->hash = hash;
    }
    if (app->applied_fd >= 0)
        write_line(app->applied_fd, line, (size_t)n);
    app->restores++;
    pthread_mutex_unlock(&app->apply_mu);
}

/* muxraft's hint: the group's log grew past the threshold since its last
 * snapshot. The main loop takes the snapshot (not this callback: writing
 * the file would hold up the node's thread). */
static void on_snapshot_needed(void *userdata, uint64_t group_id, uint64_t applied,
                               uint64_t entries, uint64_t bytes)
{
    (void)applied, (void)entries, (void)bytes;
    struct app *app = userdata;
    pthread_mutex_lock(&app->apply_mu);
    if (app->opt->snapshot_every > 0 && group_id >= 1 && group_id <= app->opt->groups &&
        !app->queues[group_id].snapshot_wanted) {
        app->queues[group_id].snapshot_wanted = true;
        app->snapshots_wanted++;
    }
    pthread_mutex_unlock(&app->apply_mu);
}

/* A replica changed role or learned of a leader: the main loop re-reads
 * the roles (see read_roles) only after such an event, an apply or a
 * snapshot, so that an idle process does not read 100,000 groups' states
 * over and over. */
static void on_role_changed(void *userdata, uint64_t group_id, muxraft_role role,
                            uint64_t term, uint64_t leader_id)
{
    (void)group_id, (void)role, (void)term, (void)leader_id;
    struct app *app = userdata;
    __atomic_fetch_add(&app->role_events, 1, __ATOMIC_SEQ_CST);
}

/* Take the snapshots muxraft asked for; returns how many were taken. */
static uint64_t take_snapshots(struct app *app, muxraft_node *node, uint8_t *buf)
{
    uint64_t taken = 0;
    for (uint64_t g = 1; g <= app->opt->groups; g++) {
        pthread_mutex_lock(&app->apply_mu);
        struct queue_state q = app->queues[g];
        app->queues[g].snapshot_wanted = false;
        if (q.snapshot_wanted)
            app->snapshots_wanted--;
        bool none_left = app->snapshots_wanted == 0;
        pthread_mutex_unlock(&app->apply_mu);
        if (q.snapshot_wanted) {
            /* The state as of q.index, which is applied. */
            int n = snprintf((char *)buf, 64, "%" PRIu64 " %016" PRIx64, q.count, q.hash);
            size_t len = (size_t)n + 1;
            if (app->opt->snapshot_pad > len)
                len = app->opt->snapshot_pad;
            muxraft_status st = muxraft_group_snapshot(node, g, q.index, buf, len);
            if (st == MUXRAFT_OK)
                taken++;
            else if (st != MUXRAFT_INVALID_ARGUMENT && st != MUXRAFT_NOT_FOUND)
                check(st, "muxraft_group_snapshot");
            /* INVALID_ARGUMENT: a snapshot restored meanwhile covers it. */
        }
        if (none_left)
            break;
    }
    return taken;
}

/* The number in `path` (a rate file); false if there is none. */
static bool read_rate(const char *path, double *rate)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    double v;
    bool ok = fscanf(f, "%lf", &v) == 1 && v >= 0;
    fclose(f);
    if (ok)
        *rate = v;
    return ok;
}

static uint64_t rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

static void on_proposal_done(void *userdata, uint64_t group_id,
                             uint64_t proposal_id, muxraft_status status,
                             uint64_t index)
{
    struct app *app = userdata;
    uint64_t end = now_ns();
    /* The proposer holds `mu` from muxraft_propose until it has recorded
     * the proposal, so the entry is always found here. */
    pthread_mutex_lock(&app->mu);
    struct pending p;
    if (pending_take(&app->pending, proposal_id, &p)) {
        if (status == MUXRAFT_OK) {
            app->commits++;
            app->hist[hist_bucket((end - p.start_ns) / 1000)]++;
            if (app->acked_fd >= 0) {
                char line[512];
                size_t len = payload(app->done_buf, app->buf_size, app, p.group, p.seq);
                size_t n = format_entry(line, sizeof line, group_id, index,
                                        (const uint8_t *)app->done_buf, len);
                write_line(app->acked_fd, line, n);
            }
        } else {
            app->failed++;
        }
    }
    pthread_mutex_unlock(&app->mu);
}

/* The members of group g: R consecutive nodes of the sorted node list,
 * starting at a position taken from g (all nodes when there are only R). */
static size_t group_members(const uint64_t *nodes, size_t n_nodes,
                            uint64_t replicas, uint64_t g, uint64_t *out)
{
    size_t r = replicas < n_nodes ? (size_t)replicas : n_nodes;
    size_t start = (size_t)((g - 1) % n_nodes);
    for (size_t i = 0; i < r; i++)
        out[i] = nodes[(start + i) % n_nodes];
    return r;
}

/* mkdir -p */
static void make_dirs(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            die("cannot create %s", path);
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("cannot create %s", path);
}

static uint64_t read_incarnation(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/incarnation", dir);
    uint64_t n = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1)
            n = v;
        fclose(f);
    }
    n++;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%" PRIu64 "\n", n) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0)
        die("cannot write %s", path);
    return n;
}

static int open_log(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        die("cannot open %s", path);
    return fd;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: queue_node --id N --listen HOST:PORT [--peer ID=HOST:PORT]...\n"
            "                  [--data-dir DIR] [--groups G (300)] [--replicas R (3)]\n"
            "                  [--cluster-id C (0)] [--batch 0|1 (1)] [--rate PER_SEC (100)]\n"
            "                  [--duration SECONDS (0: until SIGTERM)] [--report-ms MS (1000)]\n"
            "                  [--snapshot-every N (0: never)] [--snapshot-pad BYTES (0)]\n"
            "                  [--snapshot-trailing N (muxraft's default)]\n"
            "                  [--snapshot-bytes BYTES (0)] [--wal-segment-mib MIB (default)]\n"
            "                  [--rejoin 0|1 (0)] [--app-logs 0|1 (1)]\n"
            "                  [--payload-bytes N (0: as it is)] [--max-inflight N (20000; 0: none)]\n"
            "                  [--max-pending-per-group N (muxraft's default; 0: none)]\n"
            "                  [--open-loop 0|1 (0)] [--rate-file PATH]\n"
            "                  [--quiesce 0|1 (1)] [--roles-ms MS (100)]\n"
            "                  [--tls-cert PEM --tls-key PEM --tls-ca PEM (none: plain TCP)]\n"
            "                  [--join 0|1 (0)] [--control PATH]\n");
    exit(2);
}

static void parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->groups = 300;
    o->replicas = 3;
    o->batch = true;
    o->rate = 100;
    o->report_ms = 1000;
    o->app_logs = true;
    o->max_inflight = MAX_INFLIGHT;
    o->max_pending_per_group = -1;
    o->quiesce = true;
    o->roles_ms = LEADERS_REFRESH_MS;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(flag, "--id") == 0) {
            o->id = parse_u64(v, flag);
        } else if (strcmp(flag, "--listen") == 0) {
            o->listen = v;
        } else if (strcmp(flag, "--peer") == 0) {
            const char *eq = strchr(v, '=');
            if (eq == NULL || o->n_peers == MAX_PEERS)
                usage();
            char idbuf[32];
            size_t len = (size_t)(eq - v);
            if (len == 0 || len >= sizeof idbuf)
                usage();
            memcpy(idbuf, v, len);
            idbuf[len] = '\0';
            o->peer_ids[o->n_peers] = parse_u64(idbuf, flag);
            o->peer_addrs[o->n_peers] = eq + 1;
            o->n_peers++;
        } else if (strcmp(flag, "--data-dir") == 0) {
            o->data_dir = v;
        } else if (strcmp(flag, "--groups") == 0) {
            o->groups = parse_u64(v, flag);
        } else if (strcmp(flag, "--replicas") == 0) {
            o->replicas = parse_u64(v, flag);
        } else if (strcmp(flag, "--cluster-id") == 0) {
            o->cluster_id = parse_u64(v, flag);
        } else if (strcmp(flag, "--batch") == 0) {
            o->batch = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--rate") == 0) {
            o->rate = (double)parse_u64(v, flag);
        } else if (strcmp(flag, "--duration") == 0) {
            o->duration_s = parse_u64(v, flag);
        } else if (strcmp(flag, "--report-ms") == 0) {
            o->report_ms = parse_u64(v, flag);
        } else if (strcmp(flag, "--snapshot-every") == 0) {
            o->snapshot_every = parse_u64(v, flag);
        } else if (strcmp(flag, "--snapshot-bytes") == 0) {
            o->snapshot_bytes = parse_u64(v, flag);
        } else if (strcmp(flag, "--wal-segment-mib") == 0) {
            o->wal_segment_mib = parse_u64(v, flag);
        } else if (strcmp(flag, "--snapshot-trailing") == 0) {
            o->snapshot_trailing = parse_u64(v, flag);
        } else if (strcmp(flag, "--snapshot-pad") == 0) {
            o->snapshot_pad = parse_u64(v, flag);
        } else if (strcmp(flag, "--rejoin") == 0) {
            o->rejoin = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--app-logs") == 0) {
            o->app_logs = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--payload-bytes") == 0) {
            o->payload_bytes = parse_u64(v, flag);
        } else if (strcmp(flag, "--max-inflight") == 0) {
            o->max_inflight = parse_u64(v, flag);
        } else if (strcmp(flag, "--max-pending-per-group") == 0) {
            o->max_pending_per_group = (int64_t)parse_u64(v, flag);
        } else if (strcmp(flag, "--open-loop") == 0) {
            o->open_loop = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--rate-file") == 0) {
            o->rate_file = v;
        } else if (strcmp(flag, "--quiesce") == 0) {
            o->quiesce = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--roles-ms") == 0) {
            o->roles_ms = parse_u64(v, flag);
        } else if (strcmp(flag, "--join") == 0) {
            o->join = parse_u64(v, flag) != 0;
        } else if (strcmp(flag, "--control") == 0) {
            o->control = v;
        } else if (strcmp(flag, "--tls-cert") == 0) {
            o->tls_cert = v;
        } else if (strcmp(flag, "--tls-key") == 0) {
            o->tls_key = v;
        } else if (strcmp(flag, "--tls-ca") == 0) {
            o->tls_ca = v;
        } else {
            usage();
        }
    }
    if (o->id == 0 || o->listen == NULL || o->groups == 0 || o->groups > 1000000 ||
        o->replicas == 0 || o->replicas > 7 || o->report_ms == 0 || o->roles_ms == 0 ||
        o->snapshot_pad > (64u << 20) || o->payload_bytes > (1u << 20))
        usage();
}

/* ---------------------------------------------------------------------- */

struct view {
    uint64_t leading, leaderless;
    uint64_t log_bytes; /* held in memory, over every group */
};

/* Per group, for term_bumps: its term and its last known leader when the
 * roles were last read; and the moves of the terms counted so far, by that
 * leader (index 0: none known; node ids above MAX_TERM_ID share the last
 * slot). */
#define MAX_TERM_ID 15
struct terms {
    uint64_t *term, *leader; /* 1..groups */
    uint64_t bumps[MAX_TERM_ID + 1];
};

/* Re-read which groups this node leads into `led` (ids) and count. */
static struct view read_roles(muxraft_node *node, const bool *hosted,
                              uint64_t groups, uint64_t *led, size_t *n_led,
                              struct terms *t)
{
    struct view v = {0, 0, 0};
    *n_led = 0;
    for (uint64_t g = 1; g <= groups; g++) {
        muxraft_group_info info;
        muxraft_group_info_init(&info); /* struct_size */
        if (!hosted[g] || muxraft_group_status(node, g, &info) != MUXRAFT_OK)
            continue;
        if (info.role == MUXRAFT_LEADER) {
            v.leading++;
            led[(*n_led)++] = g;
        }
        if (info.leader_id == 0)
            v.leaderless++;
        v.log_bytes += info.log_bytes_memory;
        if (info.term > t->term[g]) {
            uint64_t by = t->leader[g] < MAX_TERM_ID ? t->leader[g] : MAX_TERM_ID;
            t->bumps[by] += info.term - t->term[g];
            t->term[g] = info.term;
        }
        if (info.leader_id != 0)
            t->leader[g] = info.leader_id;
    }
    return v;
}

struct load {
    uint64_t proposed, shed;
    double rate; /* offered now, per second */
};

/* ---------------------------------------------------------------------- */
/* Replacing a member (--control): see the header comment                   */

struct replace {
    bool active;
    uint64_t old_id, new_id;
    bool *done;          /* 1..groups: NEW a voter and OLD gone, as seen here */
    uint64_t added, promoted, replaced; /* the STAT fields, as of the last pass */
    uint64_t errors;     /* unexpected statuses (printed to stderr, first few) */
};

/* "replace OLD NEW HOST:PORT" in the control file: start replacing (once). */
static void read_control(const char *path, struct replace *r, muxraft_node *node,
                         uint64_t self)
{
    if (r->active)
        return;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    unsigned long long old_id = 0, new_id = 0;
    char addr[256];
    bool ok = fscanf(f, "replace %llu %llu %255s", &old_id, &new_id, addr) == 3;
    fclose(f);
    if (!ok || old_id == 0 || new_id == 0 || old_id == new_id)
        return;
    if (new_id != self)
        check(muxraft_node_add_peer(node, new_id, addr), "muxraft_node_add_peer (control)");
    r->old_id = old_id;
    r->new_id = new_id;
    r->active = true;
}

/* One pass over the groups not yet done: count, and on their leader take
 * the next step (add NEW as promotable, or remove OLD once NEW votes). */
static void replace_pass(struct replace *r, muxraft_node *node, const bool *hosted,
                         uint64_t groups)
{
    uint64_t added = 0, promoted = 0, replaced = 0;
    for (uint64_t g = 1; g <= groups; g++) {
        if (!hosted[g])
            continue;
        if (r->done[g]) {
            added++, promoted++, replaced++;
            continue;
        }
        muxraft_member m[16];
        size_t n = 0;
        if (muxraft_group_members(node, g, m, 16, &n) != MUXRAFT_OK)
            continue;
        bool has_old = false, has_new = false, new_votes = false;
        for (size_t i = 0; i < n; i++) {
            has_old = has_old || m[i].node_id == r->old_id;
            if (m[i].node_id == r->new_id) {
                has_new = true;
                new_votes = m[i].role == MUXRAFT_VOTER;
            }
        }
        added += has_new;
        promoted += new_votes;
        if (new_votes && !has_old) {
            r->done[g] = true;
            replaced++;
            continue;
        }
        if (n == 0 || (has_new && !new_votes))
            continue; /* a joined replica that knows nothing yet; NEW catching up */
        muxraft_status st = !has_new ? muxraft_group_add_member(node, g, r->new_id,
                                                                MUXRAFT_PROMOTABLE)
                                     : muxraft_group_remove_member(node, g, r->old_id);
        if (st != MUXRAFT_OK && st != MUXRAFT_NOT_LEADER && st != MUXRAFT_BUSY &&
            r->errors++ < 5)
            fprintf(stderr, "queue_node: group %" PRIu64 ": %s member %" PRIu64 ": %s: %s\n",
                    g, !has_new ? "adding" : "removing", !has_new ? r->new_id : r->old_id,
                    muxraft_status_str((int)st), muxraft_last_error());
    }
    r->added = added;
    r->promoted = promoted;
    r->replaced = replaced;
}

static void print_stat(struct app *app, muxraft_node *node, uint64_t t_ms,
                       uint64_t hosted, struct view v, struct load load,
                       uint64_t snapshots, uint64_t log_bytes, const struct terms *t,
                       const struct replace *r, bool final)
{
    muxraft_stats s;
    muxraft_stats_init(&s); /* struct_size, and every counter 0 */
    muxraft_node_stats(node, &s);

    uint64_t hist[HIST_BUCKETS];
    pthread_mutex_lock(&app->mu);
    memcpy(hist, app->hist, sizeof hist);
    memset(app->hist, 0, sizeof app->hist);
    uint64_t commits = app->commits, failed = app->failed;
    uint64_t inflight = app->pending.n;
    pthread_mutex_unlock(&app->mu);
    pthread_mutex_lock(&app->apply_mu);
    uint64_t applied = app->applied, restores = app->restores;
    uint64_t skipped = app->skipped;
    /* The queues change only by an apply or a restore: an idle process
     * does not walk 100,000 of them every line. */
    static uint64_t seen_applied = UINT64_MAX, seen_restores, index_sum, state;
    if (applied != seen_applied || restores != seen_restores) {
        seen_applied = applied;
        seen_restores = restores;
        index_sum = 0;
        state = FNV_OFFSET;
        for (uint64_t g = 1; g <= app->opt->groups; g++) {
            const struct queue_state *q = &app->queues[g];
            index_sum += q->index;
            if (q->index > 0)
                state = queue_hash(state, q->index, (const uint8_t *)&q->hash, sizeof q->hash);
        }
    }
    pthread_mutex_unlock(&app->apply_mu);

    printf("STAT t_ms=%" PRIu64 " id=%" PRIu64 " pid=%ld groups=%" PRIu64
           " leading=%" PRIu64 " leaderless=%" PRIu64 " hb_msgs=%" PRIu64
           " hb_batches=%" PRIu64 " group_hb_batched=%" PRIu64 " hb_bytes=%" PRIu64
           " sent=%" PRIu64 " bytes=%" PRIu64 " proposing=%d proposed=%" PRIu64
           " commits=%" PRIu64 " failed=%" PRIu64 " inflight=%" PRIu64
           " p50_us=%" PRIu64 " p99_us=%" PRIu64 " applied=%" PRIu64
           " elections=%" PRIu64 " leader_changes=%" PRIu64 " hist=",
           t_ms, app->opt->id, (long)getpid(), hosted, v.leading, v.leaderless,
           s.heartbeat_messages_sent, s.heartbeat_batches_sent,
           s.group_heartbeats_batched, s.heartbeat_bytes_sent, s.messages_sent,
           s.bytes_sent, (int)proposing, load.proposed, commits, failed, inflight,
           hist_percentile(hist, 0.50), hist_percentile(hist, 0.99), applied,
           s.elections_started, s.leader_changes);
    bool first = true;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        if (hist[b] == 0)
            continue;
        printf("%s%" PRIu64 ":%" PRIu64, first ? "" : ",", hist_value(b), hist[b]);
        first = false;
    }
    printf("%s snapshots=%" PRIu64 " restores=%" PRIu64 " installed=%" PRIu64
           " wal_segments=%" PRIu64 " wal_bytes=%" PRIu64 " snapshot_bytes=%" PRIu64
           " log_bytes=%" PRIu64 " rss_kb=%" PRIu64 " index_sum=%" PRIu64 " skipped=%" PRIu64
           " state=%016" PRIx64 " busy=%" PRIu64 " shed=%" PRIu64 " rate=%.0f",
           first ? "-" : "", snapshots, restores, s.snapshots_installed, s.wal_segments,
           s.wal_bytes, s.snapshot_file_bytes, log_bytes, rss_kb(), index_sum, skipped,
           state, s.proposals_refused_busy, load.shed, load.rate);
    printf(" awake=%" PRIu64 " quiesced=%" PRIu64 " peers_heard=%" PRIu64 " term_bumps=",
           s.groups_awake, s.groups_quiesced, s.peers_heard);
    first = true;
    for (size_t k = 0; k <= MAX_TERM_ID; k++) {
        if (t->bumps[k] == 0 && k != 0 && k != app->opt->id) {
            bool member = false; /* list every node of the cluster, bumps or not */
            for (size_t i = 0; i < app->opt->n_peers; i++)
                member = member || app->opt->peer_ids[i] == k;
            if (!member)
                continue;
        }
        printf("%s%zu:%" PRIu64, first ? "" : ",", k, t->bumps[k]);
        first = false;
    }
    printf(" repl_added=%" PRIu64 " repl_promoted=%" PRIu64 " replaced=%" PRIu64
           " balance_transfers=%" PRIu64 " transfers=%" PRIu64,
           r->added, r->promoted, r->replaced, s.balance_transfers, s.transfers_started);
    printf("%s\n", final ? " final=1" : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct options opt;
    parse_options(argc, argv, &opt);

    /* Signal handlers first: a parent may signal us as soon as we run. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (muxraft_abi_version() != MUXRAFT_ABI_VERSION) {
        fprintf(stderr, "queue_node: libmuxraft ABI %u, built for %d\n",
                muxraft_abi_version(), MUXRAFT_ABI_VERSION);
        return EXIT_FAILURE;
    }

    static struct app app; /* static: large, and outlives every callback */
    app.opt = &opt;
    app.acked_fd = app.applied_fd = -1;
    pthread_mutex_init(&app.mu, NULL);
    pthread_mutex_init(&app.apply_mu, NULL);
    app.queues = xcalloc(opt.groups + 1, sizeof *app.queues);
    app.buf_size = opt.payload_bytes >= 128 ? (size_t)opt.payload_bytes + 1 : 128;
    app.done_buf = xcalloc(app.buf_size, 1);
    for (uint64_t g = 0; g <= opt.groups; g++)
        app.queues[g].hash = FNV_OFFSET;
    char raft_dir[4096];
    bool rejoin = opt.rejoin;
    if (opt.data_dir) {
        make_dirs(opt.data_dir);
        app.incarnation = read_incarnation(opt.data_dir);
        snprintf(raft_dir, sizeof raft_dir, "%s/raft", opt.data_dir);
        struct stat st;
        if (stat(raft_dir, &st) != 0 && app.incarnation > 1) {
            /* We ran here before, and what muxraft kept is gone. */
            fprintf(stderr, "queue_node: %s is missing: rejoining every group\n", raft_dir);
            rejoin = true;
        }
        make_dirs(raft_dir);
        if (opt.app_logs) {
            char name[64];
            snprintf(name, sizeof name, "applied.%ld.log", (long)getpid());
            app.acked_fd = open_log(opt.data_dir, "acked.log");
            app.applied_fd = open_log(opt.data_dir, name);
        }
    } else {
        app.incarnation = 1;
    }

    /* Every node of the cluster, sorted: the basis of group placement. */
    uint64_t nodes[MAX_PEERS + 1];
    size_t n_nodes = 0;
    nodes[n_nodes++] = opt.id;
    for (size_t i = 0; i < opt.n_peers; i++)
        nodes[n_nodes++] = opt.peer_ids[i];
    for (size_t i = 1; i < n_nodes; i++)
        for (size_t j = i; j > 0 && nodes[j - 1] > nodes[j]; j--) {
            uint64_t t = nodes[j];
            nodes[j] = nodes[j - 1];
            nodes[j - 1] = t;
        }

    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = opt.id;
    config.cluster_id = opt.cluster_id;
    config.batch_heartbeats = opt.batch;
    config.quiesce = opt.quiesce;
    config.data_dir = opt.data_dir ? raft_dir : NULL; /* NULL: in memory */
    if (opt.snapshot_every > 0) {
        config.snapshot_threshold_entries = opt.snapshot_every;
        config.snapshot_threshold_bytes = opt.snapshot_bytes; /* 0: by count only */
    }
    if (opt.wal_segment_mib > 0)
        config.wal_segment_bytes = opt.wal_segment_mib << 20;
    if (opt.snapshot_trailing > 0)
        config.snapshot_trailing_entries = opt.snapshot_trailing;
    if (opt.max_pending_per_group >= 0)
        config.max_pending_proposals_per_group = (uint64_t)opt.max_pending_per_group;
    /* muxraft checks that all three are given, and the files. */
    config.tls_cert_pem = opt.tls_cert;
    config.tls_key_pem = opt.tls_key;
    config.tls_ca_pem = opt.tls_ca;

    muxraft_callbacks cb;
    muxraft_callbacks_init(&cb); /* struct_size, and every callback NULL */
    cb.userdata = &app;
    cb.apply = on_apply;
    cb.proposal_done = on_proposal_done;
    cb.restore = on_restore;
    cb.snapshot_needed = on_snapshot_needed;
    cb.role_changed = on_role_changed;

    uint64_t start = now_ns();
    muxraft_node *node = NULL;
    check(muxraft_node_new(&config, &cb, &node), "muxraft_node_new");
    for (size_t i = 0; i < opt.n_peers; i++)
        check(muxraft_node_add_peer(node, opt.peer_ids[i], opt.peer_addrs[i]),
              "muxraft_node_add_peer");
    check(muxraft_node_start(node, opt.listen), "muxraft_node_start");

    bool *hosted = xcalloc(opt.groups + 1, sizeof *hosted);
    uint64_t n_hosted = 0;
    for (uint64_t g = 1; g <= opt.groups && !stop_requested; g++) {
        uint64_t members[8];
        size_t n = group_members(nodes, n_nodes, opt.replicas, g, members);
        for (size_t i = 0; i < n; i++)
            hosted[g] = hosted[g] || members[i] == opt.id;
        if (opt.join) {
            /* A new node: an empty replica of every group, which its leader
             * adds (incarnation 1, as the others created them). */
            hosted[g] = true;
            muxraft_status st = muxraft_group_join(node, g, 1);
            if (st != MUXRAFT_ALREADY_EXISTS) /* recovered from the data dir */
                check(st, "muxraft_group_join");
            n_hosted++;
            continue;
        }
        if (!hosted[g])
            continue;
        muxraft_status st = rejoin ? muxraft_group_rejoin(node, g, 1, members, n)
                                   : muxraft_group_create(node, g, 1, members, n);
        if (st != MUXRAFT_ALREADY_EXISTS) /* recovered from the data dir */
            check(st, rejoin ? "muxraft_group_rejoin" : "muxraft_group_create");
        n_hosted++;
    }

    uint64_t *led = xcalloc(opt.groups, sizeof *led);
    size_t n_led = 0, next = 0;
    static struct terms terms; /* static: zeroed */
    terms.term = xcalloc(opt.groups + 1, sizeof *terms.term);
    terms.leader = xcalloc(opt.groups + 1, sizeof *terms.leader);
    struct view view = read_roles(node, hosted, opt.groups, led, &n_led, &terms);
    uint64_t seq = 0, snapshots = 0;
    struct load load = {0, 0, opt.rate};
    uint8_t *snap_buf = xcalloc(opt.snapshot_pad > 64 ? opt.snapshot_pad : 64, 1);
    char *data = xcalloc(app.buf_size, 1);
    double credit = 0, shed = 0;
    uint64_t last_loop = now_ns(), last_roles = last_loop, last_report = 0;
    uint64_t last_rate = last_loop; /* the rate file is re-read every 100 ms */
    /* What had happened when the roles were last read: role events, and
     * entries applied, snapshots restored and taken. */
    uint64_t roles_seen[4] = {UINT64_MAX, 0, 0, 0};
    uint64_t deadline = opt.duration_s ? start + opt.duration_s * 1000000000ull : 0;
    struct replace replace = {0};
    replace.done = xcalloc(opt.groups + 1, sizeof *replace.done);
    uint64_t last_replace = last_loop;

    while (!stop_requested && (deadline == 0 || now_ns() < deadline)) {
        uint64_t now = now_ns();
        uint64_t happened[4];
        happened[0] = __atomic_load_n(&app.role_events, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&app.apply_mu);
        happened[1] = app.applied;
        happened[2] = app.restores;
        pthread_mutex_unlock(&app.apply_mu);
        happened[3] = snapshots;
        if (now - last_roles >= opt.roles_ms * 1000000ull &&
            memcmp(happened, roles_seen, sizeof happened) != 0) {
            /* Read after `happened`: an event during the read is seen next
             * time. */
            memcpy(roles_seen, happened, sizeof happened);
            view = read_roles(node, hosted, opt.groups, led, &n_led, &terms);
            last_roles = now;
        }
        if (now - last_rate >= LEADERS_REFRESH_MS * 1000000ull) {
            last_rate = now;
            double cluster_rate;
            if (opt.rate_file && read_rate(opt.rate_file, &cluster_rate))
                load.rate = cluster_rate * (double)n_led / (double)opt.groups;
            else
                load.rate = opt.rate;
        }
        if (opt.control && now - last_replace >= LEADERS_REFRESH_MS * 1000000ull) {
            last_replace = now;
            read_control(opt.control, &replace, node, opt.id);
            if (replace.active && replace.replaced < n_hosted)
                replace_pass(&replace, node, hosted, opt.groups);
        }
        if (now - last_report >= opt.report_ms * 1000000ull) {
            load.shed = (uint64_t)shed;
            print_stat(&app, node, (now - start) / 1000000, n_hosted, view, load,
                       snapshots, view.log_bytes, &terms, &replace, false);
            last_report = now;
        }

        /* Proposals due since the last pass (at most 100 ms' worth: the
         * rest is shed). */
        credit += load.rate * (double)(now - last_loop) / 1e9;
        last_loop = now;
        if (!proposing || n_led == 0)
            credit = 0;
        if (credit > load.rate / 10 + 1) {
            shed += credit - (load.rate / 10 + 1);
            credit = load.rate / 10 + 1;
        }
        while (credit >= 1 && n_led > 0) {
            if (next >= n_led)
                next = 0;
            uint64_t g = led[next];
            size_t len = payload(data, app.buf_size, &app, g, seq + 1);
            pthread_mutex_lock(&app.mu);
            if (opt.max_inflight > 0 && app.pending.n >= opt.max_inflight) {
                pthread_mutex_unlock(&app.mu);
                shed += (double)(uint64_t)credit;
                credit -= (double)(uint64_t)credit; /* commits are stuck; do not pile up more */
                break;
            }
            credit -= 1;
            uint64_t id = 0, t = now_ns();
            muxraft_status st = muxraft_propose(node, g, (const uint8_t *)data, len, &id);
            if (st == MUXRAFT_OK) {
                struct pending p = {id, g, seq + 1, t};
                pending_put(&app.pending, p);
            }
            pthread_mutex_unlock(&app.mu);
            if (st == MUXRAFT_OK) {
                seq++;
                load.proposed++;
                next++;
            } else if (st == MUXRAFT_NOT_LEADER || st == MUXRAFT_NOT_FOUND) {
                led[next] = led[--n_led]; /* no longer ours */
            } else if (st == MUXRAFT_BUSY) {
                if (!opt.open_loop)
                    break; /* the rest of the credit: on the next pass */
                next++; /* counted (busy=) and dropped; on to the next group */
            } else {
                check(st, "muxraft_propose");
            }
        }

        snapshots += take_snapshots(&app, node, snap_buf);

        /* With nothing to propose, sleep until the next STAT line (or the
         * next look at the rate file), at most 100 ms: an idle process
         * does not wake 200 times a second. */
        long sleep_ns = LOOP_NS;
        if (!proposing || load.rate <= 0) {
            uint64_t t = now_ns(), due = last_report + opt.report_ms * 1000000ull;
            if (opt.rate_file && last_rate + LEADERS_REFRESH_MS * 1000000ull < due)
                due = last_rate + LEADERS_REFRESH_MS * 1000000ull;
            uint64_t wait = due > t ? due - t : 0;
            if (wait > (uint64_t)IDLE_LOOP_NS)
                wait = IDLE_LOOP_NS;
            if (wait > (uint64_t)LOOP_NS)
                sleep_ns = (long)wait;
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL); /* a signal cuts it short: fine */
    }

    /* Stop: what was acknowledged is durable; waiting proposals fail. */
    muxraft_status st = muxraft_node_stop(node);
    if (st != MUXRAFT_OK)
        fprintf(stderr, "queue_node: muxraft_node_stop: %s: %s\n",
                muxraft_status_str((int)st), muxraft_last_error());
    view = read_roles(node, hosted, opt.groups, led, &n_led, &terms);
    load.shed = (uint64_t)shed;
    print_stat(&app, node, (now_ns() - start) / 1000000, n_hosted, view, load,
               snapshots, view.log_bytes, &terms, &replace, true);
    muxraft_node_free(node);

    if (app.acked_fd >= 0)
        close(app.acked_fd);
    if (app.applied_fd >= 0)
        close(app.applied_fd);
    free(app.pending.v);
    free(app.queues);
    free(snap_buf);
    free(data);
    free(app.done_buf);
    free(hosted);
    free(replace.done);
    free(led);
    free(terms.term);
    free(terms.leader);
    return st == MUXRAFT_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
