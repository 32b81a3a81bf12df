/*
 * cluster.c: a three-node muxraft cluster in one process, driven by the host.
 *
 * Three nodes (ids 1, 2, 3) each host a replica of every one of G Raft
 * groups (default 300). The program plays both the clock and the network:
 *
 *   - time: every loop iteration calls muxraft_tick() once on every node
 *     (simulated time: one iteration is one tick of config.tick_ms; there is
 *     no sleeping);
 *   - network: the `send` callback copies each outgoing frame into one of
 *     two FIFO queues, liveness frames (heartbeat batches and their answers,
 *     which muxraft flags) apart from the others, and the loop hands every
 *     queued frame to its destination with muxraft_step() until both are
 *     empty, liveness frames first, as a real transport should send them
 *     (frames sent while stepping are queued and delivered too).
 *
 * It waits until every group has elected a leader, makes every leader propose
 * K entries (default 10) per group, checks that all three nodes applied every
 * group's entries in the order they were proposed, then lets the cluster
 * idle and reads the heartbeat counters from muxraft_node_stats(). The
 * whole run is repeated with batch_heartbeats = false (one heartbeat message
 * per group per follower) to compare the two.
 *
 *   usage: cluster [GROUPS [ENTRIES_PER_GROUP]]
 *
 * Exit status 0 only if every check passed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muxraft.h"

#define NODES 3
#define CLUSTER_ID 42
#define IDLE_INTERVALS 50 /* heartbeat intervals measured while idle */
#define MAX_TICKS 5000    /* give up (and fail) after this many ticks */

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

/* Exit with the library's explanation if a muxraft call failed. */
static void check(muxraft_status status, const char *what)
{
    if (status != MUXRAFT_OK) {
        fprintf(stderr, "error: %s: %s: %s\n", what,
                muxraft_status_str((int)status), muxraft_last_error());
        exit(EXIT_FAILURE);
    }
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "error: out of memory\n");
        exit(EXIT_FAILURE);
    }
    return p;
}

/* ---------------------------------------------------------------------- */
/* The network: FIFOs of frames                                           */

struct frame {
    struct frame *next;
    uint64_t from, to;
    size_t len;
    uint8_t *bytes;
};

struct queue {
    struct frame *head, *tail;
};

static void queue_push(struct queue *q, uint64_t from, uint64_t to,
                       const uint8_t *bytes, size_t len)
{
    struct frame *f = xmalloc(sizeof *f);
    f->next = NULL;
    f->from = from;
    f->to = to;
    f->len = len;
    f->bytes = xmalloc(len);
    memcpy(f->bytes, bytes, len); /* `bytes` is only valid during send */
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
}

static struct frame *queue_pop(struct queue *q)
{
    struct frame *f = q->head;
    if (f) {
        q->head = f->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return f;
}

static void frame_free(struct frame *f)
{
    free(f->bytes);
    free(f);
}

/* ---------------------------------------------------------------------- */
/* The cluster                                                             */

/* One applied entry, as the apply callback reported it. */
struct entry {
    uint64_t index;
    size_t len;
    uint8_t *data;
};

/* The entries one node applied for one group, in the order applied. */
struct log {
    struct entry *v;
    size_t n, cap;
};

struct cluster;

/* One node, and what its callbacks recorded. It is the callbacks' userdata. */
struct node {
    struct cluster *cluster;
    uint64_t id;
    muxraft_node *handle;
    struct log *applied; /* indexed by group id, 1..groups */
    size_t proposals_ok, proposals_failed;
};

struct cluster {
    size_t groups, entries; /* G groups, K entries proposed per group */
    struct node nodes[NODES];
    struct queue liveness; /* heartbeat batches and their answers: first */
    struct queue wire;     /* every other frame */
    unsigned long ticks;
};

static void on_send(void *userdata, uint64_t to, const uint8_t *frame,
                    size_t len, bool liveness)
{
    struct node *n = userdata;
    queue_push(liveness ? &n->cluster->liveness : &n->cluster->wire, n->id, to,
               frame, len);
}

/* The next frame to deliver: liveness frames go ahead of the others. */
static struct frame *next_frame(struct cluster *c)
{
    struct frame *f = queue_pop(&c->liveness);
    return f ? f : queue_pop(&c->wire);
}

static void on_apply(void *userdata, uint64_t group_id, uint64_t index,
                     const uint8_t *data, size_t len)
{
    struct node *n = userdata;
    if (group_id == 0 || group_id > n->cluster->groups)
        return;
    struct log *log = &n->applied[group_id];
    if (log->n == log->cap) {
        size_t cap = log->cap ? 2 * log->cap : 16;
        struct entry *v = realloc(log->v, cap * sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "error: out of memory\n");
            exit(EXIT_FAILURE);
        }
        log->v = v;
        log->cap = cap;
    }
    struct entry *e = &log->v[log->n++];
    e->index = index;
    e->len = len;
    e->data = xmalloc(len);
    if (len)
        memcpy(e->data, data, len); /* `data` is only valid during apply */
}

static void on_proposal_done(void *userdata, uint64_t group_id,
                             uint64_t proposal_id, muxraft_status status,
                             uint64_t index)
{
    struct node *n = userdata;
    (void)proposal_id;
    (void)index;
    if (status == MUXRAFT_OK) {
        n->proposals_ok++;
    } else {
        n->proposals_failed++;
        fprintf(stderr, "node %llu: proposal to group %llu failed: %s\n",
                (unsigned long long)n->id, (unsigned long long)group_id,
                muxraft_status_str((int)status));
    }
}

static void cluster_init(struct cluster *c, size_t groups, size_t entries,
                         bool batch_heartbeats)
{
    memset(c, 0, sizeof *c);
    c->groups = groups;
    c->entries = entries;
    const uint64_t members[NODES] = {1, 2, 3};

    for (size_t i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        n->cluster = c;
        n->id = i + 1;
        n->applied = calloc(groups + 1, sizeof *n->applied);
        if (n->applied == NULL) {
            fprintf(stderr, "error: out of memory\n");
            exit(EXIT_FAILURE);
        }

        muxraft_config config;
        muxraft_config_init(&config);
        config.node_id = n->id;
        config.cluster_id = CLUSTER_ID;
        config.batch_heartbeats = batch_heartbeats;

        muxraft_callbacks cb;
        muxraft_callbacks_init(&cb); /* struct_size, and every callback NULL */
        cb.userdata = n;
        cb.send = on_send;
        cb.apply = on_apply;
        cb.proposal_done = on_proposal_done;
        check(muxraft_node_new(&config, &cb, &n->handle), "muxraft_node_new");

        for (uint64_t g = 1; g <= groups; g++)
            check(muxraft_group_create(n->handle, g, 1, members, NODES),
                  "muxraft_group_create");
    }
}

static void cluster_free(struct cluster *c)
{
    for (size_t i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        muxraft_node_free(n->handle);
        for (size_t g = 0; g <= c->groups; g++) {
            for (size_t k = 0; k < n->applied[g].n; k++)
                free(n->applied[g].v[k].data);
            free(n->applied[g].v);
        }
        free(n->applied);
    }
    struct frame *f;
    while ((f = next_frame(c)) != NULL)
        frame_free(f);
}

/* Deliver queued frames until none is left, liveness frames first. */
static void cluster_drain(struct cluster *c)
{
    struct frame *f;
    while ((f = next_frame(c)) != NULL) {
        if (f->to >= 1 && f->to <= NODES)
            check(muxraft_step(c->nodes[f->to - 1].handle, f->from, f->bytes,
                               f->len),
                  "muxraft_step");
        frame_free(f);
    }
}

/* One tick of simulated time: every node ticks, then the network settles. */
static void cluster_tick(struct cluster *c)
{
    for (size_t i = 0; i < NODES; i++)
        check(muxraft_tick(c->nodes[i].handle), "muxraft_tick");
    cluster_drain(c);
    c->ticks++;
}

/* The leader of group g if one node leads it and every node knows it; else 0. */
static uint64_t group_leader(struct cluster *c, uint64_t g)
{
    uint64_t leader = 0;
    size_t leading = 0;
    muxraft_group_info info[NODES];
    for (size_t i = 0; i < NODES; i++) {
        muxraft_group_info_init(&info[i]); /* struct_size */
        check(muxraft_group_status(c->nodes[i].handle, g, &info[i]),
              "muxraft_group_status");
        if (info[i].role == MUXRAFT_LEADER) {
            leader = c->nodes[i].id;
            leading++;
        }
    }
    if (leading != 1)
        return 0;
    for (size_t i = 0; i < NODES; i++)
        if (info[i].leader_id != leader)
            return 0;
    return leader;
}

static bool all_groups_have_leaders(struct cluster *c)
{
    for (uint64_t g = 1; g <= c->groups; g++)
        if (group_leader(c, g) == 0)
            return false;
    return true;
}

static size_t proposals_finished(const struct cluster *c)
{
    size_t done = 0;
    for (size_t i = 0; i < NODES; i++)
        done += c->nodes[i].proposals_ok + c->nodes[i].proposals_failed;
    return done;
}

static bool all_entries_applied(const struct cluster *c)
{
    for (size_t i = 0; i < NODES; i++)
        for (size_t g = 1; g <= c->groups; g++)
            if (c->nodes[i].applied[g].n < c->entries)
                return false;
    return true;
}

static void payload(char *buf, size_t size, size_t group, size_t n)
{
    snprintf(buf, size, "g%zu-e%zu", group, n);
}

/*
 * Every node must have applied, for every group, exactly the K proposed
 * payloads in proposal order, at strictly increasing indices that are the
 * same on every node. Returns the number of replicas (node, group) that
 * passed; prints the first few problems.
 */
static size_t verify(const struct cluster *c)
{
    size_t good = 0, reported = 0;
    char want[64];
    for (size_t g = 1; g <= c->groups; g++) {
        const struct log *ref = &c->nodes[0].applied[g];
        for (size_t i = 0; i < NODES; i++) {
            const struct log *log = &c->nodes[i].applied[g];
            const char *problem = NULL;
            size_t at = 0;
            if (log->n != c->entries)
                problem = "wrong number of entries";
            for (size_t k = 0; problem == NULL && k < log->n; k++) {
                const struct entry *e = &log->v[k];
                payload(want, sizeof want, g, k + 1);
                at = k;
                if (e->len != strlen(want) || memcmp(e->data, want, e->len) != 0)
                    problem = "entry differs from what was proposed";
                else if (k > 0 && e->index <= log->v[k - 1].index)
                    problem = "indices not increasing";
                else if (e->index != ref->v[k].index)
                    problem = "index differs from node 1's";
            }
            if (problem == NULL) {
                good++;
            } else if (reported++ < 5) {
                fprintf(stderr, "  node %zu group %zu: %s (%zu applied, at #%zu)\n",
                        i + 1, g, problem, log->n, at);
            }
        }
    }
    return good;
}

/* ---------------------------------------------------------------------- */
/* One run                                                                 */

struct result {
    bool ok;
    unsigned long election_ticks; /* ticks until every group had a leader */
    unsigned long commit_ticks;   /* ticks until every entry was applied */
    size_t leaders[NODES];        /* groups led by each node */
    size_t proposals_ok;
    size_t replicas_verified;
    uint32_t heartbeat_ticks, tick_ms;
    /* Idle traffic of the whole cluster, summed over IDLE_INTERVALS
     * heartbeat intervals. */
    muxraft_stats idle;
};

static void stats_sum(const struct cluster *c, muxraft_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (size_t i = 0; i < NODES; i++) {
        muxraft_stats s;
        muxraft_stats_init(&s); /* struct_size */
        check(muxraft_node_stats(c->nodes[i].handle, &s), "muxraft_node_stats");
        sum->messages_sent += s.messages_sent;
        sum->heartbeat_batches_sent += s.heartbeat_batches_sent;
        sum->group_heartbeats_batched += s.group_heartbeats_batched;
        sum->heartbeats_sent += s.heartbeats_sent;
        sum->heartbeat_batch_responses_sent += s.heartbeat_batch_responses_sent;
        sum->heartbeat_messages_sent += s.heartbeat_messages_sent;
        sum->heartbeat_bytes_sent += s.heartbeat_bytes_sent;
    }
}

static void stats_diff(const muxraft_stats *after, const muxraft_stats *before,
                       muxraft_stats *out)
{
    memset(out, 0, sizeof *out);
    out->messages_sent = after->messages_sent - before->messages_sent;
#define DIFF(field) out->field = after->field - before->field
    DIFF(heartbeat_batches_sent);
    DIFF(group_heartbeats_batched);
    DIFF(heartbeats_sent);
    DIFF(heartbeat_batch_responses_sent);
    DIFF(heartbeat_messages_sent);
    DIFF(heartbeat_bytes_sent);
#undef DIFF
}

static void run(size_t groups, size_t entries, bool batch, struct result *r)
{
    struct cluster c;
    memset(r, 0, sizeof *r);
    cluster_init(&c, groups, entries, batch);

    muxraft_config defaults;
    muxraft_config_init(&defaults);
    r->heartbeat_ticks = defaults.heartbeat_ticks;
    r->tick_ms = defaults.tick_ms;

    printf("\n%s heartbeats:\n",
           batch ? "Batched" : "Naive (one message per group per follower)");

    /* 1. Elections. */
    while (!all_groups_have_leaders(&c)) {
        if (c.ticks >= MAX_TICKS) {
            printf("  FAILED: not every group had a leader after %lu ticks\n",
                   c.ticks);
            cluster_free(&c);
            return;
        }
        cluster_tick(&c);
    }
    r->election_ticks = c.ticks;
    for (uint64_t g = 1; g <= groups; g++)
        r->leaders[group_leader(&c, g) - 1]++;
    printf("  after %lu ticks every group has a leader: ", c.ticks);
    for (size_t i = 0; i < NODES; i++)
        printf("node %zu leads %zu%s", i + 1, r->leaders[i],
               i + 1 < NODES ? ", " : "\n");

    /* 2. Every leader proposes K entries to each group it leads. */
    char buf[64];
    for (uint64_t g = 1; g <= groups; g++) {
        muxraft_node *leader = c.nodes[group_leader(&c, g) - 1].handle;
        for (size_t k = 1; k <= entries; k++) {
            payload(buf, sizeof buf, (size_t)g, k);
            check(muxraft_propose(leader, g, (const uint8_t *)buf, strlen(buf),
                                  NULL),
                  "muxraft_propose");
        }
    }
    cluster_drain(&c);
    unsigned long start = c.ticks;
    while (proposals_finished(&c) < groups * entries || !all_entries_applied(&c)) {
        if (c.ticks - start >= MAX_TICKS)
            break;
        cluster_tick(&c);
    }
    r->commit_ticks = c.ticks - start;
    for (size_t i = 0; i < NODES; i++)
        r->proposals_ok += c.nodes[i].proposals_ok;
    printf("  %zu proposals (%zu per group) committed and applied on every replica",
           r->proposals_ok, entries);
    if (r->commit_ticks == 0)
        printf(" (no tick needed)\n");
    else
        printf(" within %lu ticks\n", r->commit_ticks);

    /* 3. Same entries, same order, on every replica. */
    r->replicas_verified = verify(&c);
    bool applied_ok = r->replicas_verified == groups * NODES;
    printf("  %s: %zu of %zu replicas applied all %zu entries of their group "
           "in the order proposed\n",
           applied_ok ? "verified" : "FAILED", r->replicas_verified,
           groups * NODES, entries);

    /* 4. Idle: only heartbeats flow. Measure IDLE_INTERVALS intervals. */
    muxraft_stats before, after;
    stats_sum(&c, &before);
    for (unsigned long t = 0; t < (unsigned long)IDLE_INTERVALS * r->heartbeat_ticks; t++)
        cluster_tick(&c);
    stats_sum(&c, &after);
    stats_diff(&after, &before, &r->idle);

    /* Nothing must have changed while idle: still one leader per group. */
    bool stable = all_groups_have_leaders(&c);
    if (!stable)
        printf("  FAILED: a group lost its leader while idle\n");

    r->ok = r->proposals_ok == groups * entries && applied_ok && stable;
    cluster_free(&c);
}

/* ---------------------------------------------------------------------- */

static double per_interval(uint64_t total)
{
    return (double)total / IDLE_INTERVALS;
}

/* Liveness frames not broken down by a counter of their own: in naive mode,
 * the followers' answers to per-group heartbeats. */
static uint64_t other_liveness(const muxraft_stats *s)
{
    return s->heartbeat_messages_sent - s->heartbeat_batches_sent -
           s->heartbeat_batch_responses_sent - s->heartbeats_sent;
}

static void table_row(const char *what, uint64_t batched, uint64_t naive)
{
    printf("  %-42s %10.1f %10.1f\n", what, per_interval(batched),
           per_interval(naive));
}

static size_t parse_count(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || v == 0 || v > 100000) {
        fprintf(stderr, "usage: cluster [GROUPS [ENTRIES_PER_GROUP]]\n"
                        "bad %s: \"%s\" (1..100000)\n", what, s);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    size_t groups = argc > 1 ? parse_count(argv[1], "GROUPS") : 300;
    size_t entries = argc > 2 ? parse_count(argv[2], "ENTRIES_PER_GROUP") : 10;

    if (muxraft_abi_version() != MUXRAFT_ABI_VERSION) {
        fprintf(stderr, "error: libmuxraft ABI %u, this program was built for %d\n",
                muxraft_abi_version(), MUXRAFT_ABI_VERSION);
        return EXIT_FAILURE;
    }
    printf("muxraft %s C demo: %d nodes, %zu Raft groups of %d replicas, in one process.\n",
           muxraft_version(), NODES, groups, NODES);
    printf("The program is the clock (muxraft_tick) and the network (frame queues\n"
           "fed by the send callback, emptied with muxraft_step, liveness frames\n"
           "first). Each group's leader proposes %zu entries; every replica must\n"
           "apply them in order.\n",
           entries);

    struct result batched, naive;
    run(groups, entries, true, &batched);
    run(groups, entries, false, &naive);

    printf("\nIdle heartbeat traffic of the whole cluster, per heartbeat interval\n"
           "(%u ticks = %u ms), averaged over %d intervals:\n\n",
           batched.heartbeat_ticks, batched.heartbeat_ticks * batched.tick_ms,
           IDLE_INTERVALS);
    printf("  %-42s %10s %10s\n", "", "batched", "naive");
    table_row("liveness frames sent", batched.idle.heartbeat_messages_sent,
              naive.idle.heartbeat_messages_sent);
    table_row("  heartbeat batches", batched.idle.heartbeat_batches_sent,
              naive.idle.heartbeat_batches_sent);
    table_row("  answers to batches", batched.idle.heartbeat_batch_responses_sent,
              naive.idle.heartbeat_batch_responses_sent);
    table_row("  per-group heartbeats", batched.idle.heartbeats_sent,
              naive.idle.heartbeats_sent);
    table_row("  answers to per-group heartbeats", other_liveness(&batched.idle),
              other_liveness(&naive.idle));
    table_row("group heartbeats carried inside batches",
              batched.idle.group_heartbeats_batched, naive.idle.group_heartbeats_batched);
    table_row("liveness bytes sent", batched.idle.heartbeat_bytes_sent,
              naive.idle.heartbeat_bytes_sent);
    table_row("all frames sent (any kind)", batched.idle.messages_sent,
              naive.idle.messages_sent);
    printf("\n  Batched: one batch per ordered pair of nodes (%d), whatever the number\n"
           "  of groups. Naive: one heartbeat per group per follower (%zu x %d).\n",
           NODES * (NODES - 1), groups, NODES - 1);
    if (batched.idle.heartbeat_messages_sent > 0)
        printf("\n  batching sends %.1fx fewer liveness frames (%.1f instead of %.1f per interval)\n",
               (double)naive.idle.heartbeat_messages_sent /
                   (double)batched.idle.heartbeat_messages_sent,
               per_interval(batched.idle.heartbeat_messages_sent),
               per_interval(naive.idle.heartbeat_messages_sent));

    /* The point of batching: at most one batch per peer per interval, and
     * no per-group heartbeat at all; the naive run sends no batch. */
    bool figures_ok =
        batched.idle.heartbeat_batches_sent <=
            (uint64_t)NODES * (NODES - 1) * IDLE_INTERVALS &&
        batched.idle.heartbeats_sent == 0 && naive.idle.heartbeat_batches_sent == 0 &&
        naive.idle.heartbeats_sent > 0;
    if (!figures_ok)
        printf("\n  FAILED: the heartbeat figures are not what batching promises\n");

    bool ok = batched.ok && naive.ok && figures_ok;
    printf("\n%s\n", ok ? "OK: every check passed." : "FAILED: see above.");
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
