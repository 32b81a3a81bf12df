/*
 * test_api.c: the C API tested from C, through include/muxraft.h only.
 *
 * Every misuse the header documents must return its exact status and leave
 * a message in muxraft_last_error() written by that very call; afterwards a
 * three-node cluster must still elect, replicate and apply correctly.
 * Callbacks that call back into muxraft (propose from apply, from
 * proposal_done, step another node from send) must neither deadlock nor
 * reorder.
 *
 * The last line printed is "N passed, M failed"; the exit status is 0 only
 * when M is 0. The file is C99 and also compiles as C++.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* kill, fork, pipe under -std=c99 */
#endif
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster_util.h"
#include "muxraft.h"

/* ---- a tiny test framework ---------------------------------------------- */

static int n_passed, n_failed;

static void failure(const char *file, int line, const char *what)
{
    n_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s\n    muxraft_last_error: \"%s\"\n", file,
            line, what, muxraft_last_error());
}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond)                                                              \
            n_passed++;                                                        \
        else                                                                   \
            failure(__FILE__, __LINE__, "CHECK(" #cond ")");                   \
    } while (0)

/*
 * The last error is only replaced by a failing call, so to prove that a
 * call set its own message we first make another call fail with a known
 * message (the "primer") and require the message to differ afterwards.
 */
enum primer { PRIME_ELECTION_TICKS, PRIME_ZERO_NODE_ID };
static char primed[512];

static void prime_last_error(enum primer which)
{
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    if (which == PRIME_ZERO_NODE_ID)
        config.node_id = 0;
    else
        config.election_ticks = config.heartbeat_ticks;
    muxraft_node *node = NULL;
    if (muxraft_node_new(&config, NULL, &node) == MUXRAFT_OK) {
        muxraft_node_free(node);
        primed[0] = '\0';
        return;
    }
    snprintf(primed, sizeof primed, "%s", muxraft_last_error());
}

/* One check: `got` must be `want`; a failure must come with a fresh,
 * non-empty message (fresh: different from `primer_msg` when given). */
static void check_status(const char *file, int line, const char *call, int got,
                         int want, const char *primer_msg)
{
    char what[1024];
    if (got != want) {
        snprintf(what, sizeof what, "%s returned %s, expected %s", call,
                 muxraft_status_str(got), muxraft_status_str(want));
        failure(file, line, what);
        return;
    }
    if (want != MUXRAFT_OK) {
        const char *msg = muxraft_last_error();
        if (msg == NULL || msg[0] == '\0') {
            snprintf(what, sizeof what, "%s: muxraft_last_error() is empty", call);
            failure(file, line, what);
            return;
        }
        if (primer_msg && primer_msg[0] && strcmp(msg, primer_msg) == 0) {
            snprintf(what, sizeof what,
                     "%s: muxraft_last_error() was not set by this call", call);
            failure(file, line, what);
            return;
        }
    }
    n_passed++;
}

#define CHECK_OK(call)                                                         \
    check_status(__FILE__, __LINE__, #call, (int)(call), MUXRAFT_OK, NULL)

/* `call` must return `want` (not MUXRAFT_OK) and set its own message. */
#define EXPECT_FAIL_PRIMED(call, want, primer)                                 \
    do {                                                                       \
        prime_last_error(primer);                                              \
        check_status(__FILE__, __LINE__, #call, (int)(call), (want), primed);  \
    } while (0)
#define EXPECT_FAIL(call, want)                                                \
    EXPECT_FAIL_PRIMED(call, want, PRIME_ELECTION_TICKS)

/* A deterministic PRNG (xorshift64*), so that failures replay. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return p;
}

static const uint8_t *bytes_of(const char *s) { return (const uint8_t *)s; }

static muxraft_stats stats_of(muxraft_node *node)
{
    muxraft_stats s;
    muxraft_stats_init(&s);
    CHECK_OK(muxraft_node_stats(node, &s));
    return s;
}

/* This node's view of a group; the call must succeed. */
static muxraft_group_info info_of(muxraft_node *node, uint64_t group_id)
{
    muxraft_group_info info;
    muxraft_group_info_init(&info);
    CHECK_OK(muxraft_group_status(node, group_id, &info));
    return info;
}

#define MAX_TICKS 500

/* ---- version ------------------------------------------------------------ */

static void test_version(void)
{
    CHECK(muxraft_abi_version() == MUXRAFT_ABI_VERSION);
    const char *v = muxraft_version();
    CHECK(v != NULL);
    if (v) {
        unsigned major, minor, patch;
        CHECK(sscanf(v, "%u.%u.%u", &major, &minor, &patch) == 3);
        CHECK(muxraft_version() == v); /* static: the same string each time */
    }
}

/* ---- status names -------------------------------------------------------- */

static void test_status_str(void)
{
    /* Every status by number, with its exact name. */
    static const char *const names[] = {
        "MUXRAFT_OK",         "MUXRAFT_INVALID_ARGUMENT", "MUXRAFT_NOT_FOUND",
        "MUXRAFT_ALREADY_EXISTS", "MUXRAFT_NOT_LEADER",   "MUXRAFT_TOO_LARGE",
        "MUXRAFT_MALFORMED",  "MUXRAFT_IO",               "MUXRAFT_SHUTDOWN",
        "MUXRAFT_BUSY",       "MUXRAFT_PANIC",            "MUXRAFT_UNKNOWN",
    };
    for (int s = 0; s < (int)(sizeof names / sizeof names[0]); s++) {
        const char *name = muxraft_status_str(s);
        CHECK(name != NULL && strcmp(name, names[s]) == 0);
        if (name == NULL || strcmp(name, names[s]) != 0)
            fprintf(stderr, "    muxraft_status_str(%d) is \"%s\", expected \"%s\"\n", s,
                    name ? name : "(null)", names[s]);
        CHECK(muxraft_status_str(s) == name); /* static: the same string each time */
    }
    /* ...and by the header's names (the enum's numbers match the names). */
#define NAMED(status) CHECK(strcmp(muxraft_status_str(status), #status) == 0)
    NAMED(MUXRAFT_OK);
    NAMED(MUXRAFT_INVALID_ARGUMENT);
    NAMED(MUXRAFT_NOT_FOUND);
    NAMED(MUXRAFT_ALREADY_EXISTS);
    NAMED(MUXRAFT_NOT_LEADER);
    NAMED(MUXRAFT_TOO_LARGE);
    NAMED(MUXRAFT_MALFORMED);
    NAMED(MUXRAFT_IO);
    NAMED(MUXRAFT_SHUTDOWN);
    NAMED(MUXRAFT_BUSY);
    NAMED(MUXRAFT_PANIC);
    NAMED(MUXRAFT_UNKNOWN);
#undef NAMED
    /* Any other number is safe to pass and has one name. */
    static const int others[] = {-1, 12, 1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *name = muxraft_status_str(others[i]);
        CHECK(name != NULL && strcmp(name, "MUXRAFT_UNKNOWN_STATUS") == 0);
    }
    /* Naming a status is not a failing call: the last error stays. */
    prime_last_error(PRIME_ZERO_NODE_ID);
    (void)muxraft_status_str(4);
    (void)muxraft_status_str(-1);
    CHECK(strcmp(muxraft_last_error(), primed) == 0);
}

/* ---- configuration and node creation ------------------------------------ */

static void test_config_init(void)
{
    muxraft_config_init_sized(NULL, sizeof(muxraft_config)); /* ignored */

    muxraft_config c;
    memset(&c, 0xAB, sizeof c);
    muxraft_config_init(&c);
    CHECK(c.struct_size == sizeof(muxraft_config));
    CHECK(c.node_id == 0);
    CHECK(c.cluster_id == 0);
    CHECK(c.tick_ms == 50);
    CHECK(c.heartbeat_ticks == 2);
    CHECK(c.election_ticks == 10);
    CHECK(c.batch_heartbeats == true);
    CHECK(c.max_proposal_bytes == 1024 * 1024);
    CHECK(c.data_dir == NULL);
    CHECK(c.snapshot_threshold_entries == 10000);
    CHECK(c.snapshot_threshold_bytes == 8u << 20);
    CHECK(c.snapshot_trailing_entries == 1024);
    CHECK(c.snapshot_chunk_bytes == 1u << 20);
    CHECK(c.snapshot_timeout_ms == 30000);
    CHECK(c.max_snapshot_bytes == (uint64_t)1 << 30);
    CHECK(c.wal_segment_bytes == 16u << 20);
    CHECK(c.max_pending_proposals_per_group == 4096);
    CHECK(c.max_pending_proposals == 4096);
    CHECK(c.max_unsynced_bytes_per_group == 16u << 20);
    CHECK(c.max_unsynced_bytes == 256u << 20);
    CHECK(c.quiesce == true);
    CHECK(c.max_pending_reads_per_group == 4096);
    CHECK(c.max_pending_reads == 65536);
    CHECK(c.metrics_per_group_max == 0);
    CHECK(c.cluster_secret == NULL && c.cluster_secret_len == 0);
    CHECK(c.tls_cert_pem == NULL && c.tls_key_pem == NULL && c.tls_ca_pem == NULL);
    CHECK(c.broadcast_commit == false);
}

static void test_node_new_misuse(void)
{
    muxraft_config c;
    muxraft_node *node = NULL;

    muxraft_config_init(&c);
    c.node_id = 1;
    EXPECT_FAIL(muxraft_node_new(NULL, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_new(&c, NULL, NULL), MUXRAFT_INVALID_ARGUMENT);

    /* zero node id */
    muxraft_config_init(&c);
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);

    /* a config not filled by muxraft_config_init */
    memset(&c, 0, sizeof c);
    c.node_id = 1;
    c.tick_ms = 50;
    c.heartbeat_ticks = 2;
    c.election_ticks = 10;
    c.batch_heartbeats = true;
    c.max_proposal_bytes = 1024;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    c.struct_size = 4; /* smaller than any published muxraft_config */
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);

    /* election_ticks must exceed heartbeat_ticks */
    muxraft_config_init(&c);
    c.node_id = 1;
    c.election_ticks = c.heartbeat_ticks;
    EXPECT_FAIL_PRIMED(muxraft_node_new(&c, NULL, &node),
                       MUXRAFT_INVALID_ARGUMENT, PRIME_ZERO_NODE_ID);
    c.election_ticks = 1;
    c.heartbeat_ticks = 5;
    EXPECT_FAIL_PRIMED(muxraft_node_new(&c, NULL, &node),
                       MUXRAFT_INVALID_ARGUMENT, PRIME_ZERO_NODE_ID);

    /* max_proposal_bytes: "at most 4 MiB" */
    muxraft_config_init(&c);
    c.node_id = 1;
    c.max_proposal_bytes = 4 * 1024 * 1024 + 1;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    c.max_proposal_bytes = 4 * 1024 * 1024;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    muxraft_node_free(node);
    node = NULL;

    /* snapshot_chunk_bytes: 1 to 4 MiB */
    muxraft_config_init(&c);
    c.node_id = 1;
    c.snapshot_chunk_bytes = 0;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    c.snapshot_chunk_bytes = 4 * 1024 * 1024 + 1;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    c.snapshot_chunk_bytes = 4 * 1024 * 1024;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    muxraft_node_free(node);
    node = NULL;
    /* a transfer timeout shorter than a tick */
    muxraft_config_init(&c);
    c.node_id = 1;
    c.snapshot_timeout_ms = c.tick_ms - 1;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    /* WAL segments under 64 KiB */
    muxraft_config_init(&c);
    c.node_id = 1;
    c.wal_segment_bytes = 64 * 1024 - 1;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    CHECK(node == NULL);

    /* No callbacks at all is allowed, and such a node works. */
    muxraft_config_init(&c);
    c.node_id = 9;
    CHECK_OK(muxraft_node_new(&c, NULL, &node));
    CHECK(node != NULL);
    if (node) {
        const uint64_t self[] = {9};
        CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
        muxraft_group_info info;
        muxraft_group_info_init(&info);
        for (int t = 0; t < MAX_TICKS && info.role != MUXRAFT_LEADER; t++) {
            CHECK_OK(muxraft_tick(node));
            CHECK_OK(muxraft_group_status(node, 1, &info));
        }
        CHECK(info.role == MUXRAFT_LEADER && info.leader_id == 9);
        uint64_t id = 0, next = 0, read = 0;
        CHECK_OK(muxraft_propose(node, 1, bytes_of("x"), 1, &id));
        CHECK(id != 0);
        /* Proposals and reads share one increasing sequence. */
        CHECK_OK(muxraft_read_index(node, 1, &read));
        CHECK_OK(muxraft_propose(node, 1, bytes_of("y"), 1, &next));
        CHECK(read == id + 1 && next == id + 2);
        muxraft_node_free(node);
    }
    muxraft_node_free(NULL); /* a no-op */
    CHECK(true);
}

static void test_null_node(void)
{
    const uint64_t members[] = {1};
    const uint8_t frame[8] = {0, 0, 0, 4, 1, 2, 3, 4};
    muxraft_group_info info;
    muxraft_stats stats;
    muxraft_group_info_init(&info);
    muxraft_stats_init(&stats);
    uint64_t id;
    EXPECT_FAIL(muxraft_group_create(NULL, 1, 1, members, 1), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_remove(NULL, 1), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_status(NULL, 1, &info), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_propose(NULL, 1, bytes_of("x"), 1, &id),
                MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_step(NULL, 2, frame, sizeof frame), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_tick(NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_stats(NULL, &stats), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_snapshot(NULL, 1, 1, bytes_of("s"), 1),
                MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_rejoin(NULL, 1, 1, members, 1), MUXRAFT_INVALID_ARGUMENT);
    size_t count;
    EXPECT_FAIL(muxraft_group_add_member(NULL, 1, 2, MUXRAFT_VOTER), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_remove_member(NULL, 1, 2), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_members(NULL, 1, NULL, 0, &count), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_join(NULL, 1, 1), MUXRAFT_INVALID_ARGUMENT);
}

/* ---- structs that grow: struct_size ---------------------------------------- */

/* The counters of muxraft_stats, in header order. */
#define STATS_FIELDS(X)                                                        \
    X(messages_sent) X(bytes_sent) X(messages_received)                        \
    X(heartbeat_batches_sent) X(group_heartbeats_batched)                      \
    X(elections_started) X(frames_rejected) X(heartbeats_sent)                 \
    X(heartbeat_batch_responses_sent) X(heartbeat_messages_sent)               \
    X(heartbeat_bytes_sent) X(bytes_received) X(messages_dropped)              \
    X(leader_changes) X(proposals) X(proposals_committed)                      \
    X(proposals_failed) X(entries_applied) X(groups) X(proposals_unknown)      \
    X(incarnation_mismatches) X(batches_dropped_incarnation)                   \
    X(connections_established) X(reconnects) X(handshakes_refused)             \
    X(dial_failures) X(transport_frames_dropped) X(bytes_queued)             \
    X(snapshots_taken) X(snapshots_installed) X(snapshot_transfers_started)  \
    X(snapshot_transfers_failed) X(snapshot_crc_failures) X(wal_segments)    \
    X(wal_bytes) X(wal_segments_deleted) X(wal_bytes_rewritten)              \
    X(snapshot_files) X(snapshot_file_bytes) X(reads) X(reads_served)        \
    X(reads_failed) X(reads_refused_busy) X(pending_reads)                   \
    X(read_rounds_sent) X(read_rounds_answered)

/* The u64 fields of muxraft_group_info, in header order (role is apart). */
#define GROUP_INFO_FIELDS(X)                                                   \
    X(term) X(leader_id) X(commit_index) X(applied_index) X(last_index)        \
    X(incarnation) X(snapshot_index) X(first_index) X(log_bytes_memory)       \
    X(snapshot_bytes_memory) X(log_bytes_disk) X(snapshot_bytes_disk)

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static bool says_struct_size(void)
{
    return strstr(muxraft_last_error(), "struct_size") != NULL;
}

/* The _init functions: struct_size is the struct's size, the rest cleared. */
static void test_init_functions(void)
{
    muxraft_callbacks_init_sized(NULL, sizeof(muxraft_callbacks)); /* ignored */
    muxraft_stats_init_sized(NULL, sizeof(muxraft_stats));
    muxraft_group_info_init_sized(NULL, sizeof(muxraft_group_info));

    muxraft_callbacks cb;
    memset(&cb, 0xAB, sizeof cb);
    muxraft_callbacks_init(&cb);
    CHECK(cb.struct_size == sizeof(muxraft_callbacks));
    CHECK(cb.userdata == NULL && cb.send == NULL && cb.apply == NULL &&
          cb.role_changed == NULL && cb.proposal_done == NULL &&
          cb.restore == NULL && cb.snapshot_needed == NULL && cb.read_done == NULL);

    muxraft_stats s;
    memset(&s, 0xAB, sizeof s);
    muxraft_stats_init(&s);
    CHECK(s.struct_size == sizeof(muxraft_stats));
#define ZERO(field) CHECK(s.field == 0);
    STATS_FIELDS(ZERO)
#undef ZERO

    muxraft_group_info info;
    memset(&info, 0xAB, sizeof info);
    muxraft_group_info_init(&info);
    CHECK(info.struct_size == sizeof(muxraft_group_info));
    CHECK(info.role == MUXRAFT_FOLLOWER);
#define ZERO(field) CHECK(info.field == 0);
    GROUP_INFO_FIELDS(ZERO)
#undef ZERO
}

/* A program built against an older, smaller header initializes its structs
 * through the same macros, which pass its own sizeof: the library writes
 * only that many bytes and sets struct_size to it. A size too small to hold
 * struct_size itself writes nothing. */
static void init_config(void *p, size_t n) { muxraft_config_init_sized((muxraft_config *)p, n); }
static void init_callbacks(void *p, size_t n) { muxraft_callbacks_init_sized((muxraft_callbacks *)p, n); }
static void init_stats(void *p, size_t n) { muxraft_stats_init_sized((muxraft_stats *)p, n); }
static void init_info(void *p, size_t n) { muxraft_group_info_init_sized((muxraft_group_info *)p, n); }

static void test_init_with_an_older_size(void)
{
    /* Each struct sits in a full-size buffer filled with a marker; init is
     * told an older, smaller size and must write only that many bytes. */
    union {
        muxraft_config config;
        muxraft_callbacks callbacks;
        muxraft_stats stats;
        muxraft_group_info info;
    } u;
    const unsigned char *bytes = (const unsigned char *)&u;
    struct {
        const char *name;
        size_t older;
        size_t full;
        void (*init)(void *, size_t);
    } cases[] = {
        {"config/data_dir", offsetof(muxraft_config, data_dir),
         sizeof(muxraft_config), init_config},
        {"config/max_proposal_bytes",
         offsetof(muxraft_config, max_proposal_bytes), sizeof(muxraft_config),
         init_config},
        {"config/max_pending_proposals_per_group",
         offsetof(muxraft_config, max_pending_proposals_per_group),
         sizeof(muxraft_config), init_config},
        {"stats/proposals_refused_busy",
         offsetof(muxraft_stats, proposals_refused_busy), sizeof(muxraft_stats),
         init_stats},
        {"group_info/pending_proposals",
         offsetof(muxraft_group_info, pending_proposals),
         sizeof(muxraft_group_info), init_info},
        {"callbacks", offsetof(muxraft_callbacks, proposal_done),
         sizeof(muxraft_callbacks), init_callbacks},
        {"stats", offsetof(muxraft_stats, groups), sizeof(muxraft_stats),
         init_stats},
        {"group_info", offsetof(muxraft_group_info, incarnation),
         sizeof(muxraft_group_info), init_info},
        /* The sizes before snapshots were added. */
        {"config/pre-snapshot", offsetof(muxraft_config, snapshot_threshold_entries),
         sizeof(muxraft_config), init_config},
        {"callbacks/pre-snapshot", offsetof(muxraft_callbacks, restore),
         sizeof(muxraft_callbacks), init_callbacks},
        {"stats/pre-snapshot", offsetof(muxraft_stats, snapshots_taken),
         sizeof(muxraft_stats), init_stats},
        {"group_info/pre-snapshot", offsetof(muxraft_group_info, snapshot_index),
         sizeof(muxraft_group_info), init_info},
        /* The sizes before reads were added. */
        {"config/pre-read", offsetof(muxraft_config, max_pending_reads_per_group),
         sizeof(muxraft_config), init_config},
        {"callbacks/pre-read", offsetof(muxraft_callbacks, read_done),
         sizeof(muxraft_callbacks), init_callbacks},
        {"stats/pre-read", offsetof(muxraft_stats, reads), sizeof(muxraft_stats),
         init_stats},
        /* The sizes before TLS was added. */
        {"config/pre-tls", offsetof(muxraft_config, tls_cert_pem),
         sizeof(muxraft_config), init_config},
        {"stats/pre-tls", offsetof(muxraft_stats, peers_refused_tls),
         sizeof(muxraft_stats), init_stats},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&u, 0xAB, sizeof u);
        cases[i].init(&u, cases[i].older);
        uint32_t written;
        memcpy(&written, bytes, sizeof written);
        if (written != cases[i].older)
            fprintf(stderr, "  %s: struct_size %u, want %zu\n", cases[i].name,
                    written, cases[i].older);
        CHECK(written == cases[i].older);
        size_t past = 0;
        for (size_t b = cases[i].older; b < cases[i].full; b++)
            past += bytes[b] != 0xAB;
        if (past)
            fprintf(stderr, "  %s: %zu bytes written past the older size\n",
                    cases[i].name, past);
        CHECK(past == 0);
    }
    /* Defaults still land in the fields the older size covers. */
    memset(&u, 0, sizeof u);
    muxraft_config_init_sized(&u.config, offsetof(muxraft_config, data_dir));
    CHECK(u.config.tick_ms == 50 && u.config.election_ticks == 10);
    memset(&u, 0, sizeof u);
    muxraft_config_init_sized(&u.config, offsetof(muxraft_config, snapshot_threshold_entries));
    CHECK(u.config.max_proposal_bytes == 1024 * 1024 && u.config.data_dir == NULL);
    CHECK(u.config.struct_size == offsetof(muxraft_config, snapshot_threshold_entries));
    memset(&u, 0, sizeof u);
    muxraft_config_init_sized(&u.config, offsetof(muxraft_config, max_pending_reads_per_group));
    CHECK(u.config.quiesce == true && u.config.max_unsynced_bytes == 256u << 20);
    /* Too small to hold struct_size: nothing is written. */
    uint8_t tiny[3] = {0xAB, 0xAB, 0xAB};
    muxraft_stats_init_sized((muxraft_stats *)(void *)tiny, sizeof tiny);
    CHECK(tiny[0] == 0xAB && tiny[1] == 0xAB && tiny[2] == 0xAB);
}

/* A struct whose struct_size was never set (`= {0}`, memset) is refused,
 * with a message naming struct_size; the struct is left as it was. */
static void test_struct_size_unset(void)
{
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    muxraft_node *node = NULL;

    muxraft_callbacks cb;
    memset(&cb, 0, sizeof cb);
    EXPECT_FAIL(muxraft_node_new(&config, &cb, &node), MUXRAFT_INVALID_ARGUMENT);
    CHECK(says_struct_size());
    CHECK(node == NULL);

    CHECK_OK(muxraft_node_new(&config, NULL, &node));
    if (node == NULL)
        return;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(node, 3, 1, self, 1));

    muxraft_stats s;
    memset(&s, 0, sizeof s);
    EXPECT_FAIL(muxraft_node_stats(node, &s), MUXRAFT_INVALID_ARGUMENT);
    CHECK(says_struct_size());
    CHECK(all_bytes((const uint8_t *)&s, sizeof s, 0));

    muxraft_group_info info;
    memset(&info, 0, sizeof info);
    EXPECT_FAIL(muxraft_group_status(node, 3, &info), MUXRAFT_INVALID_ARGUMENT);
    CHECK(says_struct_size());
    CHECK(all_bytes((const uint8_t *)&info, sizeof info, 0));

    /* Set by the _init functions, the same calls work. */
    muxraft_stats_init(&s);
    CHECK_OK(muxraft_node_stats(node, &s));
    CHECK(s.groups == 1);
    muxraft_group_info_init(&info);
    CHECK_OK(muxraft_group_status(node, 3, &info));
    CHECK(info.incarnation == 1);
    muxraft_node_free(node);
}

/*
 * A program compiled against an older header holds smaller structs: the
 * same fields up to some point and none after. These tests build such
 * structs as that program's memory holds them: exactly `size` bytes on the
 * heap (ASan and valgrind report any access past them), the fields it knows
 * filled, struct_size = size. They are filled by copying the first `size`
 * bytes of a full struct, not with the _init functions (which run in the
 * library and fill the library's own sizeof).
 */
static void set_struct_size(void *p, size_t size)
{
    const uint32_t struct_size = (uint32_t)size;
    memcpy(p, &struct_size, sizeof struct_size);
}

static void *older(const void *full, size_t size)
{
    uint8_t *p = (uint8_t *)xmalloc(size);
    memcpy(p, full, size);
    set_struct_size(p, size);
    return p;
}

/* A directory muxraft cannot create: a node that reads it fails. */
#define UNUSABLE_DIR "/proc/muxraft-test-not-a-directory"

/* Tick a node with a single-member group `g` until it leads it. */
static bool lead_alone(muxraft_node *node, uint64_t g)
{
    for (int t = 0; t < MAX_TICKS; t++) {
        muxraft_group_info info;
        muxraft_group_info_init(&info);
        if (muxraft_group_status(node, g, &info) != MUXRAFT_OK)
            return false;
        if (info.role == MUXRAFT_LEADER)
            return true;
        if (muxraft_tick(node) != MUXRAFT_OK)
            return false;
    }
    return false;
}

/* Proposals of `ok` bytes commit on `node` (leader of group g), `ok + 1`
 * bytes are refused with MUXRAFT_TOO_LARGE. */
static void check_proposal_limit(muxraft_node *node, uint64_t g, size_t ok)
{
    uint8_t *buf = (uint8_t *)xmalloc(ok + 1);
    memset(buf, 'p', ok + 1);
    uint64_t id = 0;
    CHECK_OK(muxraft_propose(node, g, buf, ok, &id));
    CHECK(id != 0);
    EXPECT_FAIL(muxraft_propose(node, g, buf, ok + 1, &id), MUXRAFT_TOO_LARGE);
    free(buf);
}

static void test_older_config(void)
{
    const uint64_t self[] = {1};
    muxraft_node *node = NULL;
    muxraft_config full;

    /* What the full struct would do: its data_dir cannot be used. */
    muxraft_config_init(&full);
    full.node_id = 1;
    full.max_proposal_bytes = 1000;
    full.data_dir = UNUSABLE_DIR;
    EXPECT_FAIL(muxraft_node_new(&full, NULL, &node), MUXRAFT_IO);

    /* Before data_dir: the node is in memory (data_dir takes its default,
     * NULL), and the fields the struct holds are used. */
    {
        muxraft_config *c = (muxraft_config *)older(&full, offsetof(muxraft_config, data_dir));
        node = NULL;
        CHECK_OK(muxraft_node_new(c, NULL, &node));
        free(c); /* read during the call only */
        if (node) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            check_proposal_limit(node, 1, 1000);
            muxraft_node_free(node);
        }
    }

    /* Before max_proposal_bytes: it takes its default, 1 MiB. */
    full.max_proposal_bytes = 16;
    {
        muxraft_config *c =
            (muxraft_config *)older(&full, offsetof(muxraft_config, max_proposal_bytes));
        node = NULL;
        CHECK_OK(muxraft_node_new(c, NULL, &node));
        free(c);
        if (node) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            check_proposal_limit(node, 1, 1024 * 1024);
            muxraft_node_free(node);
        }
    }
    /* ...and the fields it holds are read: a bad one is refused. */
    full.election_ticks = full.heartbeat_ticks;
    {
        muxraft_config *c =
            (muxraft_config *)older(&full, offsetof(muxraft_config, max_proposal_bytes));
        node = NULL;
        EXPECT_FAIL_PRIMED(muxraft_node_new(c, NULL, &node), MUXRAFT_INVALID_ARGUMENT,
                           PRIME_ZERO_NODE_ID);
        CHECK(node == NULL);
        free(c);
    }

    /* The smallest config: through node_id. Every other field is a default
     * (the bad values after node_id are not read). */
    const size_t min = offsetof(muxraft_config, node_id) + sizeof(uint64_t);
    full.tick_ms = 0;
    full.election_ticks = 1;
    {
        muxraft_config *c = (muxraft_config *)older(&full, min);
        node = NULL;
        CHECK_OK(muxraft_node_new(c, NULL, &node));
        free(c);
        if (node) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            check_proposal_limit(node, 1, 1024 * 1024);
            muxraft_node_free(node);
        }
    }
    /* Smaller than that, it cannot be a config. */
    const size_t too_small[] = {min - 1, 4, 0};
    for (size_t i = 0; i < sizeof too_small / sizeof too_small[0]; i++) {
        muxraft_config *c = (muxraft_config *)older(&full, too_small[i] < 4 ? 4 : too_small[i]);
        set_struct_size(c, too_small[i]);
        node = NULL;
        EXPECT_FAIL(muxraft_node_new(c, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
        CHECK(says_struct_size());
        CHECK(node == NULL);
        free(c);
    }

    /* Before the snapshot fields (ABI 2 as first published): they take
     * their defaults. The values past the older size would be refused
     * (chunk size 0), or would show: a 16-byte snapshot limit, no trailing
     * entries kept after a snapshot. */
    muxraft_config_init(&full);
    full.node_id = 1;
    full.snapshot_trailing_entries = 0;
    full.snapshot_chunk_bytes = 0;
    full.max_snapshot_bytes = 16;
    EXPECT_FAIL(muxraft_node_new(&full, NULL, &node), MUXRAFT_INVALID_ARGUMENT);
    {
        muxraft_config *c = (muxraft_config *)older(
            &full, offsetof(muxraft_config, snapshot_threshold_entries));
        node = NULL;
        CHECK_OK(muxraft_node_new(c, NULL, &node));
        free(c);
        if (node) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            for (int k = 0; k < 3; k++)
                CHECK_OK(muxraft_propose(node, 1, bytes_of("e"), 1, NULL));
            const muxraft_group_info before = info_of(node, 1);
            CHECK(before.applied_index >= 3);
            uint8_t state[100];
            memset(state, 's', sizeof state);
            CHECK_OK(muxraft_group_snapshot(node, 1, before.applied_index, state,
                                            sizeof state));
            const muxraft_group_info after = info_of(node, 1);
            CHECK(after.snapshot_index == before.applied_index);
            CHECK(after.first_index == 1); /* 1024 trailing entries kept */
            muxraft_node_free(node);
        }
    }

    /* Before the read limits: they take their defaults (4096 and 65536),
     * not the 1 and 1 past the older size, which would refuse a second
     * read pending in the group (the full struct: test_read_index). Three
     * nodes, so that reads wait for a heartbeat round. */
    {
        muxraft_config base;
        muxraft_config_init(&base);
        base.max_pending_reads_per_group = 1;
        base.max_pending_reads = 1;
        cu_cluster c;
        if (cu_init(&c, 3, 0, &base)) {
            for (uint64_t id = 1; id <= 3; id++) {
                cu_node_by_id(&c, id)->config_size =
                    offsetof(muxraft_config, max_pending_reads_per_group);
                CHECK(cu_restart(&c, id, false));
            }
            CHECK(cu_create_group(&c, 1));
            const uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
            CHECK(l != 0);
            if (l != 0) {
                muxraft_node *leader = cu_node_by_id(&c, l)->handle;
                for (int k = 0; k < 3; k++)
                    CHECK_OK(muxraft_read_index(leader, 1, NULL));
                CHECK(stats_of(leader).pending_reads == 3);
                for (int t = 0; t < 20 && stats_of(leader).pending_reads > 0; t++)
                    CHECK(cu_tick(&c));
                CHECK(cu_node_by_id(&c, l)->n_reads == 3);
                CHECK(stats_of(leader).reads_served == 3);
            }
            cu_free(&c);
        } else {
            CHECK(!"cu_init");
        }
    }

    /* A newer program's larger struct: the fields this library knows are
     * read, the rest ignored. */
    {
        const size_t size = sizeof(muxraft_config) + 32;
        muxraft_config_init(&full);
        full.node_id = 1;
        full.max_proposal_bytes = 100;
        uint8_t *buf = (uint8_t *)xmalloc(size);
        memset(buf, 0xFF, size);
        memcpy(buf, &full, sizeof full);
        set_struct_size(buf, size);
        node = NULL;
        CHECK_OK(muxraft_node_new((const muxraft_config *)buf, NULL, &node));
        free(buf);
        if (node) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            check_proposal_limit(node, 1, 100);
            muxraft_node_free(node);
        }
    }
}

/* What the callbacks of test_older_callbacks saw. */
struct older_log {
    int applied, role_changes, done, reads, memberships, forbidden;
    uint64_t first_index; /* of the first entry applied (0: none yet) */
};
static void older_apply(void *ud, uint64_t g, uint64_t index, const uint8_t *data,
                        size_t len)
{
    (void)g; (void)data; (void)len;
    struct older_log *log = (struct older_log *)ud;
    log->applied++;
    if (log->first_index == 0)
        log->first_index = index;
}
static void older_role(void *ud, uint64_t g, muxraft_role role, uint64_t term,
                       uint64_t leader)
{
    (void)g; (void)role; (void)term; (void)leader;
    ((struct older_log *)ud)->role_changes++;
}
static void older_done(void *ud, uint64_t g, uint64_t id, muxraft_status status,
                       uint64_t index)
{
    (void)g; (void)id; (void)index;
    if (status == MUXRAFT_OK)
        ((struct older_log *)ud)->done++;
}
static void older_read(void *ud, uint64_t g, uint64_t id, muxraft_status status,
                       uint64_t index)
{
    (void)g; (void)id; (void)index;
    if (status == MUXRAFT_OK)
        ((struct older_log *)ud)->reads++;
}
static void older_members(void *ud, uint64_t g, uint64_t index, const muxraft_member *m,
                          size_t count)
{
    (void)g; (void)index; (void)m; (void)count;
    ((struct older_log *)ud)->memberships++;
}
/* Set in the full struct past the older struct's end: must never run. */
static void forbidden_role(void *ud, uint64_t g, muxraft_role role, uint64_t term,
                           uint64_t leader)
{
    (void)g; (void)role; (void)term; (void)leader;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_done(void *ud, uint64_t g, uint64_t id, muxraft_status status,
                           uint64_t index)
{
    (void)g; (void)id; (void)status; (void)index;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_apply(void *ud, uint64_t g, uint64_t index, const uint8_t *data,
                            size_t len)
{
    (void)g; (void)index; (void)data; (void)len;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_restore(void *ud, uint64_t g, uint64_t index, uint64_t term,
                              const uint8_t *data, size_t len)
{
    (void)g; (void)index; (void)term; (void)data; (void)len;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_hint(void *ud, uint64_t g, uint64_t applied, uint64_t entries,
                           uint64_t bytes)
{
    (void)g; (void)applied; (void)entries; (void)bytes;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_read(void *ud, uint64_t g, uint64_t id, muxraft_status status,
                           uint64_t index)
{
    (void)g; (void)id; (void)status; (void)index;
    ((struct older_log *)ud)->forbidden++;
}
static void forbidden_members(void *ud, uint64_t g, uint64_t index, const muxraft_member *m,
                              size_t count)
{
    (void)g; (void)index; (void)m; (void)count;
    ((struct older_log *)ud)->forbidden++;
}

/* A non-voter on node 2 added to group 1, which `node` leads alone: the
 * change commits (node 2 does not count) and muxraft_group_members lists
 * it, whether or not members_changed is there to report it. */
static void nonvoter_added(muxraft_node *node)
{
    CHECK_OK(muxraft_group_add_member(node, 1, 2, MUXRAFT_NONVOTER));
    for (int t = 0; t < 5; t++)
        CHECK_OK(muxraft_tick(node));
    muxraft_member m[2];
    size_t count = 0;
    CHECK_OK(muxraft_group_members(node, 1, m, 2, &count));
    CHECK(count == 2 && m[1].node_id == 2 && m[1].role == MUXRAFT_NONVOTER);
    /* Committed: another change is accepted. */
    CHECK_OK(muxraft_group_remove_member(node, 1, 2));
}

/* A read of group 1 on `node` (which leads it alone): it is served, as the
 * counters say, whether or not read_done is there to report it. */
static void read_served(muxraft_node *node)
{
    const muxraft_stats before = stats_of(node);
    uint64_t id = 0;
    CHECK_OK(muxraft_read_index(node, 1, &id));
    CHECK(id != 0);
    for (int t = 0; t < 5; t++)
        CHECK_OK(muxraft_tick(node));
    const muxraft_stats after = stats_of(node);
    CHECK(after.reads == before.reads + 1);
    CHECK(after.reads_served == before.reads_served + 1);
    CHECK(after.pending_reads == 0 && after.reads_failed == before.reads_failed);
}

/* A node with callbacks `cb` (freed once the node exists), one
 * single-member group, elected, three proposals committed. */
static muxraft_node *run_with_callbacks(muxraft_callbacks *cb)
{
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    muxraft_node *node = NULL;
    CHECK_OK(muxraft_node_new(&config, cb, &node));
    free(cb); /* copied by muxraft_node_new */
    if (node == NULL)
        return NULL;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
    CHECK(lead_alone(node, 1));
    for (int k = 0; k < 3; k++)
        CHECK_OK(muxraft_propose(node, 1, bytes_of("e"), 1, NULL));
    for (int t = 0; t < 20; t++)
        CHECK_OK(muxraft_tick(node));
    muxraft_stats s = stats_of(node);
    CHECK(s.proposals_committed == 3 && s.entries_applied == 3);
    return node;
}

static void test_older_callbacks(void)
{
    struct older_log log;
    muxraft_callbacks full;
    muxraft_node *node;

    /* Before members_changed (the callbacks before membership changes):
     * every other callback is called, members_changed never, and the
     * membership still changes. */
    memset(&log, 0, sizeof log);
    muxraft_callbacks_init(&full);
    full.userdata = &log;
    full.apply = older_apply;
    full.role_changed = older_role;
    full.proposal_done = older_done;
    full.read_done = older_read;
    full.members_changed = forbidden_members;
    node = run_with_callbacks(
        (muxraft_callbacks *)older(&full, offsetof(muxraft_callbacks, members_changed)));
    if (node) {
        read_served(node);
        nonvoter_added(node);
    }
    CHECK(log.applied == 3 && log.done == 3 && log.reads == 1);
    CHECK(log.memberships == 0 && log.forbidden == 0);
    muxraft_node_free(node);

    /* Before read_done (the callbacks before reads were added): every
     * other callback is called, read_done never, and a read is still
     * served. */
    memset(&log, 0, sizeof log);
    full.read_done = forbidden_read;
    node = run_with_callbacks(
        (muxraft_callbacks *)older(&full, offsetof(muxraft_callbacks, read_done)));
    if (node)
        read_served(node);
    CHECK(log.applied == 3 && log.role_changes > 0 && log.done == 3);
    CHECK(log.reads == 0 && log.forbidden == 0);
    muxraft_node_free(node);

    /* Before proposal_done: apply and role_changed are called,
     * proposal_done (which the program does not know of) never. */
    memset(&log, 0, sizeof log);
    full.proposal_done = forbidden_done;
    node = run_with_callbacks(
        (muxraft_callbacks *)older(&full, offsetof(muxraft_callbacks, proposal_done)));
    CHECK(log.applied == 3 && log.role_changes > 0 && log.forbidden == 0);
    muxraft_node_free(node);

    /* Before role_changed: only apply. */
    memset(&log, 0, sizeof log);
    full.role_changed = forbidden_role;
    node = run_with_callbacks(
        (muxraft_callbacks *)older(&full, offsetof(muxraft_callbacks, role_changed)));
    CHECK(log.applied == 3 && log.role_changes == 0 && log.forbidden == 0);
    muxraft_node_free(node);

    /* The smallest: through userdata, no callback at all. */
    memset(&log, 0, sizeof log);
    full.apply = forbidden_apply;
    const size_t min = offsetof(muxraft_callbacks, userdata) + sizeof(void *);
    node = run_with_callbacks((muxraft_callbacks *)older(&full, min));
    CHECK(log.forbidden == 0);
    muxraft_node_free(node);

    /* Smaller than that: refused. */
    const size_t too_small[] = {min - 1, 8, 4, 0};
    for (size_t i = 0; i < sizeof too_small / sizeof too_small[0]; i++) {
        muxraft_callbacks *cb =
            (muxraft_callbacks *)older(&full, too_small[i] < 4 ? 4 : too_small[i]);
        set_struct_size(cb, too_small[i]);
        muxraft_config config;
        muxraft_config_init(&config);
        config.node_id = 1;
        node = NULL;
        EXPECT_FAIL(muxraft_node_new(&config, cb, &node), MUXRAFT_INVALID_ARGUMENT);
        CHECK(says_struct_size());
        CHECK(node == NULL);
        free(cb);
    }

    /* A newer program's larger struct: every callback this library knows
     * is called, the bytes after them are not read as callbacks. */
    memset(&log, 0, sizeof log);
    full.apply = older_apply;
    full.role_changed = older_role;
    full.proposal_done = older_done;
    full.read_done = older_read;
    full.members_changed = older_members;
    {
        const size_t size = sizeof(muxraft_callbacks) + 32;
        uint8_t *buf = (uint8_t *)xmalloc(size);
        memset(buf, 0xFF, size); /* not a callback anyone could call */
        memcpy(buf, &full, sizeof full);
        set_struct_size(buf, size);
        node = run_with_callbacks((muxraft_callbacks *)buf);
        if (node) {
            read_served(node);
            nonvoter_added(node);
        }
        CHECK(log.applied == 3 && log.role_changes > 0 && log.done == 3 && log.reads == 1);
        CHECK(log.memberships >= 1);
        muxraft_node_free(node);
    }

    /* Before restore (the callbacks of ABI 2 as first published), on a node
     * that takes a snapshot, with snapshot_needed due at every entry, and
     * is created again on its data directory: neither restore nor
     * snapshot_needed is ever called, and apply resumes after the
     * snapshot. */
    char dir[256];
    CHECK(cu_temp_dir(dir, sizeof dir));
    memset(&log, 0, sizeof log);
    full.apply = older_apply;
    full.role_changed = older_role;
    full.proposal_done = older_done;
    full.restore = forbidden_restore;
    full.snapshot_needed = forbidden_hint;
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    config.data_dir = dir;
    config.snapshot_threshold_entries = 1;
    config.snapshot_trailing_entries = 0;
    const uint64_t self[] = {1};
    uint64_t snap = 0;
    for (int life = 0; life < 2; life++) {
        muxraft_callbacks *cb =
            (muxraft_callbacks *)older(&full, offsetof(muxraft_callbacks, restore));
        node = NULL;
        log.applied = 0;
        log.first_index = 0;
        CHECK_OK(muxraft_node_new(&config, cb, &node));
        free(cb);
        if (node == NULL)
            break;
        if (life == 0) {
            CHECK_OK(muxraft_group_create(node, 1, 1, self, 1));
            CHECK(lead_alone(node, 1));
            for (int k = 0; k < 3; k++)
                CHECK_OK(muxraft_propose(node, 1, bytes_of("e"), 1, NULL));
            snap = info_of(node, 1).applied_index;
            CHECK(log.applied == 3 && snap >= 3);
            CHECK_OK(muxraft_group_snapshot(node, 1, snap, bytes_of("state"), 5));
            CHECK_OK(muxraft_propose(node, 1, bytes_of("after"), 5, NULL));
            CHECK(log.applied == 4);
        } else {
            CHECK(lead_alone(node, 1));
            for (int t = 0; t < 20; t++)
                CHECK_OK(muxraft_tick(node));
            CHECK(info_of(node, 1).snapshot_index == snap);
            /* "after" again, and nothing the snapshot holds */
            CHECK(log.applied == 1 && log.first_index > snap);
        }
        muxraft_node_free(node);
    }
    CHECK(log.forbidden == 0);
    cu_remove_dir(dir);
}

/*
 * muxraft_node_stats and muxraft_group_status into older and newer structs.
 * Each is called twice: into exactly `size` bytes (for ASan and valgrind),
 * and into `size` bytes followed by a guard that must stay untouched (for
 * the plain run).
 */
enum { GUARD = 64 };

/* The library filled a `size`-byte stats struct at `p`: struct_size is as
 * the caller set it, the counters it holds equal `want`'s. */
static void check_stats_prefix(const uint8_t *p, size_t size, const muxraft_stats *want)
{
    muxraft_stats got;
    memset(&got, 0, sizeof got);
    memcpy(&got, p, size < sizeof got ? size : sizeof got);
    CHECK(got.struct_size == size);
#define SAME(field)                                                             \
    if (offsetof(muxraft_stats, field) + sizeof(uint64_t) <= size)              \
        CHECK(got.field == want->field);
    STATS_FIELDS(SAME)
#undef SAME
}

static void stats_into(muxraft_node *node, size_t size, const muxraft_stats *want)
{
    /* Exactly `size` bytes. */
    uint8_t *p = (uint8_t *)xmalloc(size);
    memset(p, 0xAB, size);
    set_struct_size(p, size);
    CHECK_OK(muxraft_node_stats(node, (muxraft_stats *)p));
    check_stats_prefix(p, size, want);
    free(p);
    /* With a guard after them. */
    p = (uint8_t *)xmalloc(size + GUARD);
    memset(p, 0xAB, size + GUARD);
    set_struct_size(p, size);
    CHECK_OK(muxraft_node_stats(node, (muxraft_stats *)p));
    check_stats_prefix(p, size, want);
    CHECK(all_bytes(p + size, GUARD, 0xAB));
    free(p);
}

static void check_info_prefix(const uint8_t *p, size_t size, const muxraft_group_info *want)
{
    muxraft_group_info got;
    memset(&got, 0, sizeof got);
    memcpy(&got, p, size < sizeof got ? size : sizeof got);
    CHECK(got.struct_size == size);
    CHECK(got.role == want->role);
#define SAME(field)                                                             \
    if (offsetof(muxraft_group_info, field) + sizeof(uint64_t) <= size)         \
        CHECK(got.field == want->field);
    GROUP_INFO_FIELDS(SAME)
#undef SAME
}

static void info_into(muxraft_node *node, uint64_t g, size_t size,
                      const muxraft_group_info *want)
{
    uint8_t *p = (uint8_t *)xmalloc(size);
    memset(p, 0xAB, size);
    set_struct_size(p, size);
    CHECK_OK(muxraft_group_status(node, g, (muxraft_group_info *)p));
    check_info_prefix(p, size, want);
    free(p);
    p = (uint8_t *)xmalloc(size + GUARD);
    memset(p, 0xAB, size + GUARD);
    set_struct_size(p, size);
    CHECK_OK(muxraft_group_status(node, g, (muxraft_group_info *)p));
    check_info_prefix(p, size, want);
    CHECK(all_bytes(p + size, GUARD, 0xAB));
    free(p);
}

/* struct_size below the minimum: refused, and nothing written. */
static void refused_sizes(muxraft_node *node, uint64_t g, const size_t *sizes, size_t n,
                          bool stats)
{
    for (size_t i = 0; i < n; i++) {
        const size_t alloc = (sizes[i] < 4 ? 4 : sizes[i]) + GUARD;
        uint8_t *p = (uint8_t *)xmalloc(alloc);
        memset(p, 0xAB, alloc);
        set_struct_size(p, sizes[i]);
        if (stats)
            EXPECT_FAIL(muxraft_node_stats(node, (muxraft_stats *)p),
                        MUXRAFT_INVALID_ARGUMENT);
        else
            EXPECT_FAIL(muxraft_group_status(node, g, (muxraft_group_info *)p),
                        MUXRAFT_INVALID_ARGUMENT);
        CHECK(says_struct_size());
        CHECK(all_bytes(p + 4, alloc - 4, 0xAB));
        free(p);
    }
}

static void test_older_stats_and_info(void)
{
    cu_cluster c;
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    if (!cu_init(&c, 1, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    muxraft_node *n = c.nodes[0].handle;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(n, 4, 77, self, 1));
    CHECK(cu_wait_leader(&c, 4, MAX_TICKS) == 1);
    for (int k = 0; k < 5; k++)
        CHECK_OK(muxraft_propose(n, 4, bytes_of("s"), 1, NULL));
    CHECK(cu_wait_applied(&c, 4, 5, MAX_TICKS));
    /* A snapshot, so that the fields added with snapshots are not 0. */
    CHECK_OK(muxraft_group_snapshot(n, 4, info_of(n, 4).applied_index - 1,
                                    bytes_of("snap"), 4));
    /* A read (a group of one serves it at once), so that the read
     * counters are not 0. */
    CHECK_OK(muxraft_read_index(n, 4, NULL));
    /* No tick or call between here and the end changes a counter. */
    const muxraft_stats want = stats_of(n);
    CHECK(want.entries_applied == 5 && want.proposals_committed == 5 && want.groups == 1);
    CHECK(want.snapshots_taken == 1);
    CHECK(want.reads == 1 && want.reads_served == 1 && want.pending_reads == 0);
    const muxraft_group_info want_info = info_of(n, 4);
    CHECK(want_info.role == MUXRAFT_LEADER && want_info.incarnation == 77 &&
          want_info.applied_index == want_info.last_index);
    CHECK(want_info.snapshot_index == want_info.applied_index - 1 &&
          want_info.first_index == want_info.applied_index &&
          want_info.log_bytes_memory > 0 && want_info.snapshot_bytes_memory == 4);

    /* Older: through entries_applied; the smallest (through messages_sent);
     * one counter short of this header's. */
    stats_into(n, offsetof(muxraft_stats, entries_applied) + sizeof(uint64_t), &want);
    stats_into(n, offsetof(muxraft_stats, messages_sent) + sizeof(uint64_t), &want);
    stats_into(n, offsetof(muxraft_stats, bytes_queued), &want);
    /* Before snapshots were added; one counter short of this header's. */
    stats_into(n, offsetof(muxraft_stats, snapshots_taken), &want);
    stats_into(n, offsetof(muxraft_stats, snapshot_file_bytes), &want);
    /* Before reads were added; one counter short of this header's. */
    stats_into(n, offsetof(muxraft_stats, reads), &want);
    stats_into(n, offsetof(muxraft_stats, read_rounds_answered), &want);
    /* This header's, and a newer, larger one (only the library's size is
     * written: the guard check covers the bytes past it). */
    stats_into(n, sizeof(muxraft_stats), &want);
    stats_into(n, sizeof(muxraft_stats) + 40, &want);
    {
        const size_t too_small[] = {offsetof(muxraft_stats, messages_sent) + 7, 8, 4, 0};
        refused_sizes(n, 4, too_small, sizeof too_small / sizeof too_small[0], true);
    }

    /* Group info: through last_index (no incarnation); through role only. */
    info_into(n, 4, offsetof(muxraft_group_info, last_index) + sizeof(uint64_t), &want_info);
    info_into(n, 4, offsetof(muxraft_group_info, role) + sizeof(muxraft_role), &want_info);
    /* Before snapshots were added (through incarnation); one field short. */
    info_into(n, 4, offsetof(muxraft_group_info, snapshot_index), &want_info);
    info_into(n, 4, offsetof(muxraft_group_info, snapshot_bytes_disk), &want_info);
    info_into(n, 4, sizeof(muxraft_group_info), &want_info);
    info_into(n, 4, sizeof(muxraft_group_info) + 40, &want_info);
    {
        const size_t too_small[] = {offsetof(muxraft_group_info, role) + 3, 4, 0};
        refused_sizes(n, 4, too_small, sizeof too_small / sizeof too_small[0], false);
    }

    /* Nothing moved meanwhile (the comparisons above were fair). */
    const muxraft_stats again = stats_of(n);
    CHECK(again.entries_applied == want.entries_applied &&
          again.messages_sent == want.messages_sent);
    cu_free(&c);
}

/* ---- groups and proposals on one node ------------------------------------ */

static void test_single_node(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.max_proposal_bytes = 16;
    cu_cluster c;
    if (!cu_init(&c, 1, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    muxraft_node *n = c.nodes[0].handle;
    const uint64_t self[] = {1}, others[] = {2, 3}, dup[] = {1, 1, 2},
                   zero[] = {1, 0}, eight[] = {1, 2, 3, 4, 5, 6, 7, 8};
    muxraft_group_info info;
    muxraft_stats stats;
    muxraft_group_info_init(&info);
    uint64_t id = 0;

    /* group_create misuse (group id 0 is a valid id: test_group_zero) */
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, NULL, 1), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, NULL, 0), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, self, 0), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, others, 2), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, dup, 3), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, zero, 2), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, eight, 8), MUXRAFT_INVALID_ARGUMENT);
    stats = stats_of(n);
    CHECK(stats.groups == 0);

    CHECK_OK(muxraft_group_create(n, 1, 1, self, 1));
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, self, 1), MUXRAFT_ALREADY_EXISTS);
    EXPECT_FAIL(muxraft_group_create(n, 1, 1, eight, 3), MUXRAFT_ALREADY_EXISTS);

    /* NULL out pointers */
    EXPECT_FAIL(muxraft_group_status(n, 1, NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_stats(n, NULL), MUXRAFT_INVALID_ARGUMENT);

    /* unknown group */
    EXPECT_FAIL(muxraft_group_status(n, 99, &info), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_propose(n, 99, bytes_of("x"), 1, &id), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_group_remove(n, 99), MUXRAFT_NOT_FOUND);

    /* Not elected yet: a fresh replica is a follower. */
    CHECK_OK(muxraft_group_status(n, 1, &info));
    CHECK(info.role == MUXRAFT_FOLLOWER);
    EXPECT_FAIL(muxraft_propose(n, 1, bytes_of("x"), 1, &id), MUXRAFT_NOT_LEADER);

    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    CHECK(c.nodes[0].role_changes > 0);

    /* propose misuse */
    EXPECT_FAIL(muxraft_propose(n, 1, NULL, 5, &id), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_propose(n, 1, bytes_of("0123456789abcdefX"), 17, &id),
                MUXRAFT_TOO_LARGE);
    {
        /* far over the limit, and over any frame too */
        size_t big_len = 5u << 20;
        uint8_t *big = (uint8_t *)xmalloc(big_len);
        memset(big, 'b', big_len);
        EXPECT_FAIL(muxraft_propose(n, 1, big, big_len, &id), MUXRAFT_TOO_LARGE);
        free(big);
    }

    /* A success leaves the last error as it was. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", muxraft_last_error());

    /* At the limit; empty with NULL data; without an id. */
    uint64_t id16 = 0, id0 = 0;
    CHECK_OK(muxraft_propose(n, 1, bytes_of("0123456789abcdef"), 16, &id16));
    CHECK(strcmp(saved, muxraft_last_error()) == 0);
    CHECK_OK(muxraft_propose(n, 1, NULL, 0, &id0));
    CHECK_OK(muxraft_propose(n, 1, bytes_of("no id"), 5, NULL));
    CHECK(id16 != 0 && id0 != 0 && id16 != id0);
    CHECK(cu_wait_applied(&c, 1, 3, MAX_TICKS));
    CHECK(cu_entry_is(&c, 1, 1, 0, "0123456789abcdef"));
    CHECK(cu_entry_is(&c, 1, 1, 1, ""));
    CHECK(cu_entry_is(&c, 1, 1, 2, "no id"));
    if (c.nodes[0].applied[1].n >= 3) {
        /* proposal_done names the index the entry was applied at */
        size_t count = 0;
        const cu_done *d = cu_find_done(&c.nodes[0], id16, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_OK && d->group_id == 1);
        CHECK(d && d->index == c.nodes[0].applied[1].v[0].index);
        d = cu_find_done(&c.nodes[0], id0, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_OK);
        CHECK(d && d->index == c.nodes[0].applied[1].v[1].index);
    }
    CHECK(c.nodes[0].n_done == 3);
    CHECK_OK(muxraft_group_status(n, 1, &info));
    CHECK(info.role == MUXRAFT_LEADER && info.leader_id == 1 && info.term >= 1);
    CHECK(info.commit_index >= 3 && info.applied_index == info.commit_index);
    CHECK(info.last_index >= info.commit_index);

    stats = stats_of(n);
    CHECK(stats.groups == 1);
    CHECK(stats.proposals == 3 && stats.proposals_committed == 3);
    CHECK(stats.entries_applied == 3);
    CHECK(stats.elections_started >= 1);

    /* remove, then the group is unknown; then it can be created again */
    CHECK_OK(muxraft_group_remove(n, 1));
    EXPECT_FAIL(muxraft_group_remove(n, 1), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_group_status(n, 1, &info), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_propose(n, 1, bytes_of("x"), 1, &id), MUXRAFT_NOT_FOUND);
    CHECK_OK(muxraft_group_create(n, 1, 2, self, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    stats = stats_of(n);
    CHECK(stats.groups == 1);

    cu_free(&c);
}

/* ---- group id 0 (every uint64_t is a group id) ----------------------------- */

static void test_group_zero(void)
{
    cu_cluster c;
    if (!cu_init(&c, 1, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    muxraft_node *n = c.nodes[0].handle;
    const uint64_t self[] = {1};
    muxraft_group_info info;
    muxraft_group_info_init(&info);
    size_t count = 0;
    uint64_t id0 = 0, id1 = 0, idmax = 0;

    CHECK_OK(muxraft_group_create(n, 0, 5, self, 1));
    EXPECT_FAIL(muxraft_group_create(n, 0, 5, self, 1), MUXRAFT_ALREADY_EXISTS);
    /* Neighbours: nothing of group 0 may reach them, nor theirs group 0. */
    CHECK_OK(muxraft_group_create(n, 1, 1, self, 1));
    CHECK_OK(muxraft_group_create(n, UINT64_MAX, 1, self, 1));
    CHECK(stats_of(n).groups == 3);
    info = info_of(n, 0);
    CHECK(info.role == MUXRAFT_FOLLOWER && info.incarnation == 5);
    EXPECT_FAIL(muxraft_propose(n, 0, bytes_of("early"), 5, &id0), MUXRAFT_NOT_LEADER);

    CHECK(cu_wait_leader(&c, 0, MAX_TICKS) == 1);
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    CHECK(cu_wait_leader(&c, UINT64_MAX, MAX_TICKS) == 1);
    info = info_of(n, 0);
    CHECK(info.role == MUXRAFT_LEADER && info.leader_id == 1 && info.incarnation == 5);

    CHECK_OK(muxraft_propose(n, 0, bytes_of("zero"), 4, &id0));
    CHECK_OK(muxraft_propose(n, 1, bytes_of("one"), 3, &id1));
    CHECK_OK(muxraft_propose(n, UINT64_MAX, bytes_of("max"), 3, &idmax));
    CHECK(id0 != 0 && id1 != 0 && idmax != 0 && id0 != id1 && id0 != idmax);
    CHECK(cu_wait_applied(&c, 0, 1, MAX_TICKS));
    CHECK(cu_wait_applied(&c, 1, 1, MAX_TICKS));
    for (int t = 0; t < 5; t++)
        CHECK(cu_tick(&c));
    CHECK(c.nodes[0].applied[0].n == 1 && cu_entry_is(&c, 1, 0, 0, "zero"));
    CHECK(c.nodes[0].applied[1].n == 1 && cu_entry_is(&c, 1, 1, 0, "one"));
    const cu_done *d = cu_find_done(&c.nodes[0], id0, &count);
    CHECK(count == 1 && d && d->status == MUXRAFT_OK && d->group_id == 0);
    CHECK(d && c.nodes[0].applied[0].n == 1 && d->index == c.nodes[0].applied[0].v[0].index);
    d = cu_find_done(&c.nodes[0], idmax, &count);
    CHECK(count == 1 && d && d->status == MUXRAFT_OK && d->group_id == UINT64_MAX);
    info = info_of(n, 0);
    CHECK(info.commit_index >= 1 && info.applied_index == info.commit_index);

    /* Remove group 0: gone, its neighbours untouched. */
    CHECK_OK(muxraft_group_remove(n, 0));
    EXPECT_FAIL(muxraft_group_status(n, 0, &info), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_propose(n, 0, bytes_of("x"), 1, &id0), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_group_remove(n, 0), MUXRAFT_NOT_FOUND);
    CHECK_OK(muxraft_group_remove(n, UINT64_MAX));
    CHECK(stats_of(n).groups == 1);
    CHECK(info_of(n, 1).role == MUXRAFT_LEADER);

    /* ...and create it again, as a new incarnation. */
    CHECK_OK(muxraft_group_create(n, 0, 6, self, 1));
    CHECK(cu_wait_leader(&c, 0, MAX_TICKS) == 1);
    CHECK(info_of(n, 0).incarnation == 6);
    CHECK_OK(muxraft_propose(n, 0, bytes_of("again"), 5, NULL));
    CHECK(cu_wait_applied(&c, 0, 2, MAX_TICKS));
    CHECK(cu_entry_is(&c, 1, 0, 1, "again"));
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* Group 0 in the three-node host-driven cluster: elected, replicated,
 * removed with a proposal and frames in flight. */
static void test_group_zero_cluster(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 0));
    CHECK(cu_create_group(&c, 1));
    const uint64_t l = cu_wait_leader(&c, 0, MAX_TICKS);
    CHECK(l != 0);
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) != 0);
    if (l) {
        muxraft_node *ln = cu_node_by_id(&c, l)->handle;
        const uint64_t follower = l % 3 + 1;
        uint64_t id = 0;
        EXPECT_FAIL(muxraft_propose(cu_node_by_id(&c, follower)->handle, 0,
                                    bytes_of("nope"), 4, &id),
                    MUXRAFT_NOT_LEADER);
        CHECK(info_of(cu_node_by_id(&c, follower)->handle, 0).leader_id == l);

        enum { ENTRIES = 5 };
        uint64_t ids[ENTRIES];
        char buf[32];
        for (int k = 0; k < ENTRIES; k++) {
            snprintf(buf, sizeof buf, "z-e%d", k);
            CHECK_OK(muxraft_propose(ln, 0, bytes_of(buf), strlen(buf), &ids[k]));
        }
        CHECK(cu_wait_applied(&c, 0, ENTRIES, MAX_TICKS));
        CHECK(cu_logs_agree(&c, 0));
        for (uint64_t node = 1; node <= 3; node++) {
            CHECK(c.nodes[node - 1].applied[0].n == ENTRIES);
            CHECK(c.nodes[node - 1].applied[1].n == 0); /* nothing leaked */
            for (int k = 0; k < ENTRIES; k++) {
                snprintf(buf, sizeof buf, "z-e%d", k);
                CHECK(cu_entry_is(&c, node, 0, (size_t)k, buf));
            }
        }
        for (int k = 0; k < ENTRIES; k++) {
            size_t count = 0;
            const cu_done *d = cu_find_done(cu_node_by_id(&c, l), ids[k], &count);
            CHECK(count == 1 && d && d->status == MUXRAFT_OK && d->group_id == 0);
            CHECK(d && c.nodes[l - 1].applied[0].n == ENTRIES &&
                  d->index == c.nodes[l - 1].applied[0].v[k].index);
        }

        /* A proposal whose frames are still on the wire when every node
         * removes the group: its outcome is unknown; the frames are
         * dropped without an error. */
        CHECK(c.queued == 0);
        CHECK_OK(muxraft_propose(ln, 0, bytes_of("last"), 4, &id));
        CHECK(c.queued > 0);
        const muxraft_stats before = stats_of(ln);
        CHECK(cu_remove_group(&c, 0));
        size_t count = 0;
        const cu_done *d = cu_find_done(cu_node_by_id(&c, l), id, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_UNKNOWN && d->index == 0 &&
              d->group_id == 0);
        CHECK(stats_of(ln).proposals_unknown == before.proposals_unknown + 1);
        for (int t = 0; t < 10; t++)
            CHECK(cu_tick(&c));
        for (uint64_t node = 1; node <= 3; node++) {
            muxraft_group_info info;
            muxraft_group_info_init(&info);
            EXPECT_FAIL(muxraft_group_status(cu_node_by_id(&c, node)->handle, 0, &info),
                        MUXRAFT_NOT_FOUND);
            CHECK(stats_of(cu_node_by_id(&c, node)->handle).groups == 1);
        }
        CHECK(cu_wait_leader(&c, 1, MAX_TICKS) != 0);
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* ---- frames -------------------------------------------------------------- */

/* Tick until some frame is queued; return a copy of the first frame that
 * matches (from, to) (0: any); everything else is delivered. */
static cu_frame *capture_frame(cu_cluster *c, uint64_t from, uint64_t to)
{
    for (int t = 0; t < MAX_TICKS; t++) {
        for (size_t i = 0; i < c->n_nodes; i++)
            CHECK_OK(muxraft_tick(c->nodes[i].handle));
        cu_frame *f;
        cu_frame *found = NULL;
        /* Deliver until we see a match, keep it, deliver the rest. */
        while ((f = cu_pop(c)) != NULL) {
            if (found == NULL && (from == 0 || f->from == from) &&
                (to == 0 || f->to == to)) {
                found = f;
                continue;
            }
            cu_node *dst = cu_node_by_id(c, f->to);
            if (dst)
                CHECK_OK(muxraft_step(dst->handle, f->from, f->bytes, f->len));
            cu_frame_free(f);
        }
        if (found)
            return found;
    }
    return NULL;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Feed `node` garbage of many lengths; returns how many frames it refused. */
static uint64_t feed_garbage(muxraft_node *node, uint64_t from)
{
    static const size_t large[] = {100, 255, 256, 1000, 4096, 65535, 65536, 1u << 20};
    uint64_t refused = 0;
    uint8_t *buf = (uint8_t *)xmalloc(1u << 20);
    size_t lengths[65 + sizeof large / sizeof large[0]];
    size_t n_lengths = 0;
    for (size_t len = 0; len <= 64; len++)
        lengths[n_lengths++] = len;
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
        lengths[n_lengths++] = large[i];

    for (size_t i = 0; i < n_lengths; i++) {
        size_t len = lengths[i];
        for (int round = 0; round < 4; round++) {
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)rng_next();
            /* Pure noise is not a frame. When its first 4 bytes announce
             * more bytes than follow, it is truncated, or over the frame
             * limit if they announce that much: either status is right. */
            prime_last_error(PRIME_ELECTION_TICKS);
            muxraft_status s = muxraft_step(node, from, buf, len);
            refused++;
            int want = MUXRAFT_MALFORMED;
            if (s == MUXRAFT_TOO_LARGE && len >= 4 && be32(buf) > len - 4)
                want = MUXRAFT_TOO_LARGE;
            check_status(__FILE__, __LINE__, "muxraft_step(noise)", (int)s, want,
                         primed);
            /* Noise behind a length prefix that matches the buffer. */
            if (len >= 4) {
                put_be32(buf, (uint32_t)(len - 4));
                EXPECT_FAIL(muxraft_step(node, from, buf, len), MUXRAFT_MALFORMED);
                refused++;
            }
        }
    }
    free(buf);
    return refused;
}

/*
 * Misuse of a running three-node cluster (groups 1..4 campaigning), then
 * proof that it still works: elections, replication, application in order,
 * also for groups created after the misuse.
 */
static void test_cluster_misuse(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 7, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    for (uint64_t g = 1; g <= 4; g++)
        CHECK(cu_create_group(&c, g));

    /* A real frame, from the first campaign. */
    cu_frame *f = capture_frame(&c, 0, 0);
    CHECK(f != NULL);
    if (f == NULL) {
        cu_free(&c);
        return;
    }
    const uint64_t x = f->from, y = f->to, z = 6 - x - y; /* ids 1+2+3 */
    muxraft_node *ny = cu_node_by_id(&c, y)->handle;
    muxraft_node *nz = cu_node_by_id(&c, z)->handle;
    /* What the garbage tests below assume of the byte format: a 4-byte
     * big-endian length, then that many bytes. */
    CHECK(f->len > 4 && be32(f->bytes) == f->len - 4);

    muxraft_stats y0 = stats_of(ny), z0 = stats_of(nz);
    uint64_t refused_y = 0, refused_z = 0;

    /* Every proper prefix of a real frame is truncated. */
    for (size_t k = 0; k < f->len; k++) {
        EXPECT_FAIL(muxraft_step(ny, x, f->bytes, k), MUXRAFT_MALFORMED);
        refused_y++;
    }
    /* ...and a frame with a byte after it is not one frame either. */
    {
        uint8_t *longer = (uint8_t *)xmalloc(f->len + 1);
        memcpy(longer, f->bytes, f->len);
        longer[f->len] = 0;
        EXPECT_FAIL(muxraft_step(ny, x, longer, f->len + 1), MUXRAFT_MALFORMED);
        refused_y++;
        free(longer);
    }
    /* A frame claiming another sender than the host says. */
    EXPECT_FAIL(muxraft_step(ny, z, f->bytes, f->len), MUXRAFT_INVALID_ARGUMENT);
    refused_y++;
    EXPECT_FAIL(muxraft_step(ny, y, f->bytes, f->len), MUXRAFT_INVALID_ARGUMENT);
    refused_y++;
    /* A frame addressed to another node. */
    EXPECT_FAIL(muxraft_step(nz, x, f->bytes, f->len), MUXRAFT_INVALID_ARGUMENT);
    refused_z++;

    /* Garbage. */
    refused_y += feed_garbage(ny, x);
    {
        uint8_t zero_len[4] = {0, 0, 0, 0};
        EXPECT_FAIL(muxraft_step(ny, x, zero_len, 4), MUXRAFT_MALFORMED);
        refused_y++;
        uint8_t huge[16];
        memset(huge, 0x5A, sizeof huge);
        put_be32(huge, 0xFFFFFFFFu); /* announces 4 GiB, holds 12 bytes */
        EXPECT_FAIL(muxraft_step(ny, x, huge, sizeof huge), MUXRAFT_MALFORMED);
        refused_y++;
        /* A whole 16 MiB frame: over the frame limit. */
        size_t big = (16u << 20) + 4;
        uint8_t *buf = (uint8_t *)calloc(1, big);
        CHECK(buf != NULL);
        if (buf) {
            put_be32(buf, (uint32_t)(big - 4));
            EXPECT_FAIL(muxraft_step(ny, x, buf, big), MUXRAFT_TOO_LARGE);
            refused_y++;
            free(buf);
        }
    }

    /* A well-formed frame from x to y, but of another cluster (id 8). */
    {
        cu_cluster foreign;
        CHECK(cu_init(&foreign, 3, 8, NULL));
        if (foreign.n_nodes == 3 && cu_create_group(&foreign, 1)) {
            cu_frame *ff = capture_frame(&foreign, x, y);
            CHECK(ff != NULL);
            if (ff) {
                EXPECT_FAIL(muxraft_step(ny, x, ff->bytes, ff->len),
                            MUXRAFT_INVALID_ARGUMENT);
                refused_y++;
                cu_frame_free(ff);
            }
        }
        cu_free(&foreign);
    }

    /* NULL frame and zero sender: refused before any frame is read. */
    EXPECT_FAIL(muxraft_step(ny, x, NULL, 0), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_step(ny, x, NULL, 10), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_step(ny, 0, f->bytes, f->len), MUXRAFT_INVALID_ARGUMENT);

    /* Refused frames are counted, and none was taken for a message. */
    muxraft_stats y1 = stats_of(ny), z1 = stats_of(nz);
    CHECK(y1.frames_rejected - y0.frames_rejected >= refused_y);
    CHECK(y1.frames_rejected - y0.frames_rejected == refused_y);
    if (y1.frames_rejected - y0.frames_rejected != refused_y)
        fprintf(stderr, "    frames_rejected grew by %" PRIu64 ", %" PRIu64
                        " frames were refused\n",
                y1.frames_rejected - y0.frames_rejected, refused_y);
    CHECK(z1.frames_rejected - z0.frames_rejected == refused_z);
    CHECK(y1.messages_received == y0.messages_received);
    CHECK(z1.messages_received == z0.messages_received);

    /* The real frame, delivered late, is still fine. */
    CHECK_OK(muxraft_step(ny, x, f->bytes, f->len));
    CHECK(y1.messages_received + 1 == stats_of(ny).messages_received);
    cu_frame_free(f);
    CHECK(cu_drain(&c));

    /* The cluster still works: every group elects a leader... */
    for (uint64_t g = 5; g <= 8; g++) /* groups created after the misuse */
        CHECK(cu_create_group(&c, g));
    uint64_t leader[9] = {0};
    for (uint64_t g = 1; g <= 8; g++) {
        leader[g] = cu_wait_leader(&c, g, MAX_TICKS);
        CHECK(leader[g] != 0);
    }
    /* ...followers refuse proposals... */
    for (uint64_t g = 1; g <= 8; g++) {
        if (!leader[g])
            continue;
        uint64_t follower = leader[g] % 3 + 1, id = 0;
        EXPECT_FAIL(muxraft_propose(cu_node_by_id(&c, follower)->handle, g,
                                    bytes_of("nope"), 4, &id),
                    MUXRAFT_NOT_LEADER);
        muxraft_group_info info = info_of(cu_node_by_id(&c, follower)->handle, g);
        CHECK(info.role == MUXRAFT_FOLLOWER && info.leader_id == leader[g]);
    }
    /* ...and leaders replicate, with garbage arriving in between. */
    enum { ENTRIES = 5 };
    uint64_t ids[9][ENTRIES];
    char buf[32];
    for (uint64_t g = 1; g <= 8; g++) {
        if (!leader[g])
            continue;
        for (int k = 0; k < ENTRIES; k++) {
            snprintf(buf, sizeof buf, "g%" PRIu64 "-e%d", g, k);
            CHECK_OK(muxraft_propose(cu_node_by_id(&c, leader[g])->handle, g,
                                     bytes_of(buf), strlen(buf), &ids[g][k]));
        }
    }
    for (int t = 0; t < 20; t++) {
        uint8_t noise[40];
        for (size_t k = 0; k < sizeof noise; k++)
            noise[k] = (uint8_t)rng_next();
        put_be32(noise, sizeof noise - 4);
        for (uint64_t id = 1; id <= 3; id++)
            EXPECT_FAIL(muxraft_step(cu_node_by_id(&c, id)->handle, id % 3 + 1,
                                     noise, sizeof noise),
                        MUXRAFT_MALFORMED);
        CHECK(cu_tick(&c));
    }
    for (uint64_t g = 1; g <= 8; g++) {
        if (!leader[g])
            continue;
        CHECK(cu_wait_applied(&c, g, ENTRIES, MAX_TICKS));
        CHECK(cu_logs_agree(&c, g));
        for (uint64_t node = 1; node <= 3; node++) {
            CHECK(c.nodes[node - 1].applied[g].n == ENTRIES);
            for (int k = 0; k < ENTRIES; k++) {
                snprintf(buf, sizeof buf, "g%" PRIu64 "-e%d", g, k);
                CHECK(cu_entry_is(&c, node, g, (size_t)k, buf));
            }
        }
        for (int k = 0; k < ENTRIES; k++) {
            size_t count = 0;
            const cu_done *d = cu_find_done(cu_node_by_id(&c, leader[g]), ids[g][k],
                                            &count);
            CHECK(count == 1 && d && d->status == MUXRAFT_OK && d->group_id == g);
            CHECK(d && d->index == c.nodes[0].applied[g].v[k].index);
        }
    }

    /* Every prefix of a large real frame: an append carrying 2000 bytes. */
    CHECK(cu_create_group(&c, 9));
    uint64_t l9 = cu_wait_leader(&c, 9, MAX_TICKS);
    CHECK(l9 != 0);
    if (l9) {
        uint8_t payload[2000];
        for (size_t k = 0; k < sizeof payload; k++)
            payload[k] = (uint8_t)('a' + k % 26);
        CHECK(c.queued == 0);
        CHECK_OK(muxraft_propose(cu_node_by_id(&c, l9)->handle, 9, payload,
                                 sizeof payload, NULL));
        /* Take what the propose sent off the wire; find the largest. */
        cu_frame *sent[8];
        size_t n_sent = 0, largest = 0;
        while (n_sent < 8 && (sent[n_sent] = cu_pop(&c)) != NULL) {
            if (sent[n_sent]->len > sent[largest]->len)
                largest = n_sent;
            n_sent++;
        }
        CHECK(n_sent > 0 && sent[largest]->len > sizeof payload);
        if (n_sent > 0) {
            cu_frame *big = sent[largest];
            muxraft_node *dst = cu_node_by_id(&c, big->to)->handle;
            muxraft_stats before = stats_of(dst);
            for (size_t k = 0; k < big->len; k++)
                EXPECT_FAIL(muxraft_step(dst, big->from, big->bytes, k),
                            MUXRAFT_MALFORMED);
            muxraft_stats after = stats_of(dst);
            CHECK(after.frames_rejected - before.frames_rejected == big->len);
        }
        /* Then deliver them, in order, and the rest of the exchange. */
        for (size_t i = 0; i < n_sent; i++) {
            cu_node *dst = cu_node_by_id(&c, sent[i]->to);
            CHECK_OK(muxraft_step(dst->handle, sent[i]->from, sent[i]->bytes,
                                  sent[i]->len));
            cu_frame_free(sent[i]);
        }
        CHECK(cu_wait_applied(&c, 9, 1, MAX_TICKS));
        CHECK(cu_logs_agree(&c, 9));
        for (size_t i = 0; i < 3; i++) {
            const cu_log *log = &c.nodes[i].applied[9];
            CHECK(log->n == 1 && log->v[0].len == sizeof payload &&
                  memcmp(log->v[0].data, payload, sizeof payload) == 0);
        }
    }

    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* ---- removing a group with a proposal in flight --------------------------- */

static void test_remove_pending(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1));
    uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    if (l) {
        cu_node *ln = cu_node_by_id(&c, l);
        uint64_t id = 0;
        CHECK_OK(muxraft_propose(ln->handle, 1, bytes_of("doomed"), 6, &id));
        size_t count = 0;
        CHECK(cu_find_done(ln, id, &count) == NULL); /* not committed yet */
        CHECK_OK(muxraft_group_remove(ln->handle, 1));
        const cu_done *d = cu_find_done(ln, id, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_UNKNOWN && d->index == 0);
        /* Frames in flight from and to the removed replica are harmless. */
        muxraft_stats before = stats_of(ln->handle);
        for (int t = 0; t < 10; t++)
            CHECK(cu_tick(&c));
        muxraft_stats after = stats_of(ln->handle);
        CHECK(after.messages_dropped > before.messages_dropped);
        CHECK(after.groups == 0);
        cu_find_done(ln, id, &count);
        CHECK(count == 1);
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* ---- the send callback's liveness flag -------------------------------------- */

/* Every frame flagged liveness is a liveness frame by the counters (a
 * heartbeat, a batch, or an answer to either), every other frame is not;
 * an idle cluster sends nothing else; host-driven nodes count no
 * transport traffic. */
static void liveness_run(bool batch)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.batch_heartbeats = batch;
    cu_cluster c;
    if (!cu_init(&c, 3, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    enum { GROUPS = 6 };
    for (uint64_t g = 1; g <= GROUPS; g++)
        CHECK(cu_create_group(&c, g));
    for (uint64_t g = 1; g <= GROUPS; g++) {
        uint64_t l = cu_wait_leader(&c, g, MAX_TICKS);
        CHECK(l != 0);
        if (l)
            CHECK_OK(muxraft_propose(cu_node_by_id(&c, l)->handle, g, bytes_of("bulk"), 4,
                                     NULL));
    }
    for (uint64_t g = 1; g <= GROUPS; g++)
        CHECK(cu_wait_applied(&c, g, 1, MAX_TICKS));
    for (int t = 0; t < 40; t++) /* settle */
        CHECK(cu_tick(&c));

    uint64_t bulk_before[CU_MAX_NODES], liveness_before[CU_MAX_NODES];
    for (size_t i = 0; i < 3; i++) {
        const cu_node *n = &c.nodes[i];
        const muxraft_stats s = stats_of(n->handle);
        CHECK(n->sent_liveness == s.heartbeat_messages_sent);
        CHECK(n->sent_bulk == s.messages_sent - s.heartbeat_messages_sent);
        CHECK(n->sent_bulk > 0); /* votes, appends */
        if (batch)
            CHECK(s.heartbeat_messages_sent ==
                  s.heartbeat_batches_sent + s.heartbeat_batch_responses_sent);
        else
            CHECK(s.heartbeat_batches_sent == 0 && s.heartbeat_batch_responses_sent == 0);
        CHECK(s.connections_established == 0 && s.reconnects == 0 &&
              s.handshakes_refused == 0 && s.dial_failures == 0 &&
              s.transport_frames_dropped == 0 && s.bytes_queued == 0);
        bulk_before[i] = n->sent_bulk;
        liveness_before[i] = n->sent_liveness;
    }
    /* Idle: liveness frames only. */
    for (int t = 0; t < 40; t++)
        CHECK(cu_tick(&c));
    uint64_t liveness_sent = 0;
    for (size_t i = 0; i < 3; i++) {
        const cu_node *n = &c.nodes[i];
        CHECK(n->sent_bulk == bulk_before[i]);
        liveness_sent += n->sent_liveness - liveness_before[i];
        const muxraft_stats s = stats_of(n->handle);
        CHECK(n->sent_liveness == s.heartbeat_messages_sent);
    }
    CHECK(liveness_sent > 0);
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

static void test_liveness_flag(void)
{
    liveness_run(true);
    liveness_run(false);
}

/* ---- incarnations -------------------------------------------------------------- */

/* A node that deleted a group and created it again (a new incarnation)
 * while the others still run the old one drops their messages and counts
 * them; the old group's entries never reach the new replica. */
static void test_incarnation_mismatch(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1)); /* incarnation 1 */
    CHECK(cu_create_group(&c, 2));
    const uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    CHECK(cu_wait_leader(&c, 2, MAX_TICKS) != 0);
    if (l) {
        muxraft_node *ln = cu_node_by_id(&c, l)->handle;
        CHECK_OK(muxraft_propose(ln, 1, bytes_of("old"), 3, NULL));
        CHECK(cu_wait_applied(&c, 1, 1, MAX_TICKS));

        const uint64_t y = l % 3 + 1;
        muxraft_node *ny = cu_node_by_id(&c, y)->handle;
        const uint64_t members[] = {1, 2, 3};
        CHECK_OK(muxraft_group_remove(ny, 1));
        CHECK_OK(muxraft_group_create(ny, 1, 2, members, 3));
        CHECK(info_of(ny, 1).incarnation == 2);
        CHECK(info_of(ln, 1).incarnation == 1);

        uint64_t before = 0, after = 0;
        for (uint64_t id = 1; id <= 3; id++) {
            const muxraft_stats s = stats_of(cu_node_by_id(&c, id)->handle);
            before += s.incarnation_mismatches + s.batches_dropped_incarnation;
        }
        CHECK_OK(muxraft_propose(ln, 1, bytes_of("still old"), 9, NULL));
        for (int t = 0; t < 60; t++)
            CHECK(cu_tick(&c));
        for (uint64_t id = 1; id <= 3; id++) {
            const muxraft_stats s = stats_of(cu_node_by_id(&c, id)->handle);
            after += s.incarnation_mismatches + s.batches_dropped_incarnation;
        }
        CHECK(after > before);
        /* y's new replica applied nothing of the old group after its
         * re-creation; the other two applied both entries. */
        CHECK(c.nodes[y - 1].applied[1].n == 1);
        CHECK(c.nodes[l - 1].applied[1].n == 2);
        /* Group 2 is untouched. */
        CHECK(cu_wait_leader(&c, 2, MAX_TICKS) != 0);
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* ---- callbacks that call muxraft ------------------------------------------ */

struct reentry {
    uint64_t leader;
    int propose_in_apply; /* status of propose("pong") from apply */
    int propose_in_done;  /* status of propose("followup") from proposal_done */
    int follower_propose; /* status of a propose from a follower's apply */
    int status_in_apply;
    uint64_t ping_id, pong_id, followup_id;
    int pongs, followups;
};
static struct reentry reentry;

static bool data_is(const uint8_t *data, size_t len, const char *s)
{
    return len == strlen(s) && (len == 0 || memcmp(data, s, len) == 0);
}

static void reentry_apply(cu_node *n, uint64_t group_id, uint64_t index,
                          const uint8_t *data, size_t len)
{
    (void)index;
    if (!data_is(data, len, "ping"))
        return;
    muxraft_group_info info;
    muxraft_group_info_init(&info);
    reentry.status_in_apply = (int)muxraft_group_status(n->handle, group_id, &info);
    if (n->id == reentry.leader) {
        reentry.pongs++;
        reentry.propose_in_apply = (int)muxraft_propose(
            n->handle, group_id, bytes_of("pong"), 4, &reentry.pong_id);
    } else {
        uint64_t id;
        reentry.follower_propose = (int)muxraft_propose(
            n->handle, group_id, bytes_of("nope"), 4, &id);
    }
}

static void reentry_done(cu_node *n, const cu_done *d)
{
    if (d->proposal_id == reentry.ping_id && n->id == reentry.leader) {
        reentry.followups++;
        reentry.propose_in_done = (int)muxraft_propose(
            n->handle, d->group_id, bytes_of("followup"), 8, &reentry.followup_id);
    }
}

static void test_reentrancy(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1));
    memset(&reentry, 0, sizeof reentry);
    reentry.leader = cu_wait_leader(&c, 1, MAX_TICKS);
    reentry.propose_in_apply = reentry.propose_in_done = -1;
    reentry.follower_propose = reentry.status_in_apply = -1;
    CHECK(reentry.leader != 0);
    c.on_apply = reentry_apply;
    c.on_done = reentry_done;
    if (reentry.leader) {
        cu_node *ln = cu_node_by_id(&c, reentry.leader);
        CHECK_OK(muxraft_propose(ln->handle, 1, bytes_of("ping"), 4, &reentry.ping_id));
        CHECK(cu_wait_applied(&c, 1, 3, MAX_TICKS));
        for (int t = 0; t < 5; t++) /* nothing else may arrive */
            CHECK(cu_tick(&c));
        CHECK(reentry.propose_in_apply == MUXRAFT_OK);
        CHECK(reentry.propose_in_done == MUXRAFT_OK);
        CHECK(reentry.follower_propose == MUXRAFT_NOT_LEADER);
        CHECK(reentry.status_in_apply == MUXRAFT_OK);
        CHECK(reentry.pongs == 1 && reentry.followups == 1);
        CHECK(cu_logs_agree(&c, 1));
        for (uint64_t id = 1; id <= 3; id++) {
            const cu_log *log = &c.nodes[id - 1].applied[1];
            CHECK(log->n == 3);
            /* ping first; then pong and followup, both once */
            CHECK(cu_entry_is(&c, id, 1, 0, "ping"));
            CHECK((cu_entry_is(&c, id, 1, 1, "pong") &&
                   cu_entry_is(&c, id, 1, 2, "followup")) ||
                  (cu_entry_is(&c, id, 1, 1, "followup") &&
                   cu_entry_is(&c, id, 1, 2, "pong")));
        }
        size_t count;
        const cu_done *d = cu_find_done(ln, reentry.pong_id, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_OK);
        d = cu_find_done(ln, reentry.followup_id, &count);
        CHECK(count == 1 && d && d->status == MUXRAFT_OK);
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* A chain on one node: applying entry k proposes entry k+1, 200 deep. */
enum { CHAIN = 200 };
static int chain_failures;
static void chain_apply(cu_node *n, uint64_t group_id, uint64_t index,
                        const uint8_t *data, size_t len)
{
    (void)index;
    char buf[16];
    int k = 0;
    if (len == 0 || len >= sizeof buf)
        return;
    memcpy(buf, data, len);
    buf[len] = '\0';
    k = atoi(buf);
    if (k < CHAIN) {
        snprintf(buf, sizeof buf, "%d", k + 1);
        if (muxraft_propose(n->handle, group_id, bytes_of(buf), strlen(buf), NULL) !=
            MUXRAFT_OK)
            chain_failures++;
    }
}

static void test_reentrancy_chain(void)
{
    cu_cluster c;
    if (!cu_init(&c, 1, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    chain_failures = 0;
    c.on_apply = chain_apply;
    CHECK_OK(muxraft_propose(c.nodes[0].handle, 1, bytes_of("1"), 1, NULL));
    CHECK(cu_wait_applied(&c, 1, CHAIN, MAX_TICKS));
    CHECK(chain_failures == 0);
    const cu_log *log = &c.nodes[0].applied[1];
    CHECK(log->n == CHAIN);
    bool in_order = log->n == CHAIN;
    char buf[32];
    for (size_t k = 0; in_order && k < log->n; k++) {
        snprintf(buf, sizeof buf, "%zu", k + 1);
        in_order = cu_entry_is(&c, 1, 1, k, buf) &&
                   (k == 0 || log->v[k].index > log->v[k - 1].index);
    }
    CHECK(in_order);
    CHECK(c.nodes[0].n_done == CHAIN);
    cu_free(&c);
}

/* The network is a callback: send steps the destination node directly,
 * from inside another node's callback. */
static cu_cluster *direct;
static void direct_send(void *userdata, uint64_t to, const uint8_t *frame,
                        size_t len, bool liveness)
{
    (void)liveness;
    cu_node *n = (cu_node *)userdata;
    cu_node *dst = cu_node_by_id(direct, to);
    if (dst == NULL || muxraft_step(dst->handle, n->id, frame, len) != MUXRAFT_OK)
        direct->step_failures++;
}

static void test_direct_delivery(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    /* Replace the nodes with ones whose send delivers at once. */
    direct = &c;
    for (size_t i = 0; i < 3; i++) {
        muxraft_node_free(c.nodes[i].handle);
        c.nodes[i].handle = NULL;
    }
    for (size_t i = 0; i < 3; i++) {
        muxraft_config config;
        muxraft_config_init(&config);
        config.node_id = i + 1;
        muxraft_callbacks cb;
        muxraft_callbacks_init(&cb);
        cb.userdata = &c.nodes[i];
        cb.send = direct_send;
        CHECK_OK(muxraft_node_new(&config, &cb, &c.nodes[i].handle));
    }
    const uint64_t members[] = {1, 2, 3};
    for (size_t i = 0; i < 3; i++)
        CHECK_OK(muxraft_group_create(c.nodes[i].handle, 1, 1, members, 3));
    uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    if (l) {
        for (int k = 0; k < 10; k++)
            CHECK_OK(muxraft_propose(c.nodes[l - 1].handle, 1, bytes_of("d"), 1, NULL));
        for (int t = 0; t < 10; t++)
            CHECK(cu_tick(&c));
        for (size_t i = 0; i < 3; i++) {
            muxraft_group_info info = info_of(c.nodes[i].handle, 1);
            CHECK(info.applied_index >= 10 && info.applied_index == info.commit_index);
        }
    }
    CHECK(c.step_failures == 0);
    direct = NULL;
    cu_free(&c);
}

/* Freeing nodes with proposals pending and frames in flight. */
static void test_free_busy(void)
{
    cu_cluster c;
    if (!cu_init(&c, 3, 0, NULL)) {
        CHECK(!"cu_init");
        return;
    }
    for (uint64_t g = 1; g <= 3; g++)
        CHECK(cu_create_group(&c, g));
    for (uint64_t g = 1; g <= 3; g++) {
        uint64_t l = cu_wait_leader(&c, g, MAX_TICKS);
        CHECK(l != 0);
        if (l)
            CHECK_OK(muxraft_propose(c.nodes[l - 1].handle, g, bytes_of("x"), 1, NULL));
    }
    CHECK(c.queued > 0);
    cu_free(&c); /* valgrind and ASan check that nothing leaks */
    CHECK(true);
}

/* Embedded mode lifecycle: start on port 0, learn the port, refuse
 * host-driven calls while started, stop, refuse everything after. */
static void test_embedded_lifecycle(void)
{
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 41;
    muxraft_node *n = NULL;
    CHECK_OK(muxraft_node_new(&c, NULL, &n));
    uint16_t port = 0;
    EXPECT_FAIL(muxraft_node_listen_port(n, &port), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_start(n, NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_start(n, "not an address"), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_add_peer(n, 0, "127.0.0.1:1"), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_add_peer(n, 41, "127.0.0.1:1"), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_add_peer(n, 42, NULL), MUXRAFT_INVALID_ARGUMENT);
    CHECK_OK(muxraft_node_add_peer(n, 42, "127.0.0.1:9"));
    CHECK_OK(muxraft_node_start(n, "127.0.0.1:0"));
    CHECK_OK(muxraft_node_listen_port(n, &port));
    CHECK(port != 0);
    EXPECT_FAIL(muxraft_node_listen_port(n, NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_start(n, "127.0.0.1:0"), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_tick(n), MUXRAFT_INVALID_ARGUMENT);
    const uint64_t members[] = {41};
    CHECK_OK(muxraft_group_create(n, 7, 1, members, 1));
    CHECK_OK(muxraft_node_stop(n));
    EXPECT_FAIL(muxraft_node_stop(n), MUXRAFT_SHUTDOWN);
    EXPECT_FAIL(muxraft_propose(n, 7, (const uint8_t *)"x", 1, NULL), MUXRAFT_SHUTDOWN);
    muxraft_group_info info = info_of(n, 7);
    CHECK(info.incarnation == 1);
    muxraft_node_free(n);
}

/* ---- the cluster secret --------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls `node`'s group `g` until `cond` holds of it, for up to 20 s. */
static bool wait_group(muxraft_node *node, uint64_t g,
                       bool (*cond)(const muxraft_group_info *, uint64_t), uint64_t arg)
{
    for (int i = 0; i < 2000; i++) {
        muxraft_group_info info = info_of(node, g);
        if (cond(&info, arg))
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool applied_at_least(const muxraft_group_info *info, uint64_t index)
{
    return info->applied_index >= index;
}

/*
 * Embedded mode with cluster_secret: a secret under 16 bytes, or NULL with a
 * length, is refused at creation. Three nodes on loopback, 1 and 2 sharing a
 * secret and 3 with another: 1 and 2 elect and commit without 3, 3 never
 * connects nor applies anything, and peers_refused_auth counts the
 * refusals on every node.
 */
/* What keeps node 3 out: the cluster secret, or (tls) TLS. */
static uint64_t refused(const muxraft_stats *s, bool tls)
{
    return tls ? s->peers_refused_tls : s->peers_refused_auth;
}

/* Three started nodes, 1 and 2 sharing a secret (or the cluster CA: tls),
 * 3 with another, each told where the others listen: 1 and 2 elect and
 * commit without 3. */
static void check_third_kept_out(muxraft_node *nodes[3], bool tls)
{
    const uint64_t members[] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        CHECK_OK(muxraft_group_create(nodes[i], 5, 1, members, 3));
    int leader = -1;
    for (int t = 0; t < 2000 && leader < 0; t++) {
        for (int i = 0; i < 2; i++)
            if (info_of(nodes[i], 5).role == MUXRAFT_LEADER)
                leader = i;
        if (leader < 0)
            sleep_ms(10);
    }
    CHECK(leader >= 0);
    if (leader < 0)
        return;
    CHECK_OK(muxraft_propose(nodes[leader], 5, bytes_of("kept"), 4, NULL));
    const uint64_t index = info_of(nodes[leader], 5).last_index;
    CHECK(wait_group(nodes[0], 5, applied_at_least, index));
    CHECK(wait_group(nodes[1], 5, applied_at_least, index));
    /* 1 and 2 each refuse 3 (they dial it, and check its proof first). */
    for (int t = 0; t < 2000; t++) {
        muxraft_stats third = stats_of(nodes[2]);
        if (refused(&third, tls) >= 2)
            break;
        sleep_ms(10);
    }
    CHECK(info_of(nodes[2], 5).applied_index == 0);
    CHECK(info_of(nodes[2], 5).role != MUXRAFT_LEADER);

    muxraft_stats s[3];
    for (int i = 0; i < 3; i++)
        s[i] = stats_of(nodes[i]);
    CHECK(s[2].connections_established == 0);
    CHECK(refused(&s[2], tls) >= 2); /* by 1 and by 2, at least once each */
    CHECK(refused(&s[2], !tls) == 0);
    if (!tls)
        CHECK(s[2].handshakes_refused >= s[2].peers_refused_auth);
    for (int i = 0; i < 2; i++) {
        CHECK(s[i].connections_established >= 1); /* 1 with 2 */
        CHECK(refused(&s[i], tls) >= 1);          /* 3 */
        CHECK(refused(&s[i], !tls) == 0);
    }
}

/*
 * Embedded mode with cluster_secret: a secret under 16 bytes, or NULL with a
 * length, is refused at creation. Three nodes on loopback, 1 and 2 sharing a
 * secret and 3 with another: 1 and 2 elect and commit without 3, 3 never
 * connects nor applies anything, and peers_refused_auth counts the
 * refusals on every node.
 */
static void test_cluster_secret(void)
{
    static const uint8_t good[32] = "the secret of nodes one and two";
    static const uint8_t other[32] = "the secret that node three has";
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 1;
    c.cluster_id = 77;
    c.tick_ms = 10;
    muxraft_node *nodes[3] = {NULL, NULL, NULL};

    c.cluster_secret = good;
    c.cluster_secret_len = 15;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "cluster_secret") != NULL);
    c.cluster_secret = NULL;
    c.cluster_secret_len = 32;
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(nodes[0] == NULL);

    uint16_t ports[3] = {0, 0, 0};
    bool started = true;
    for (int i = 0; i < 3 && started; i++) {
        c.node_id = (uint64_t)i + 1;
        c.cluster_secret = i == 2 ? other : good;
        c.cluster_secret_len = sizeof good;
        CHECK_OK(muxraft_node_new(&c, NULL, &nodes[i]));
        started = nodes[i] != NULL && muxraft_node_start(nodes[i], "127.0.0.1:0") == MUXRAFT_OK &&
                  muxraft_node_listen_port(nodes[i], &ports[i]) == MUXRAFT_OK;
        CHECK(started);
    }
    for (int i = 0; i < 3 && started; i++) {
        for (int j = 0; j < 3; j++) {
            char addr[32];
            snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ports[j]);
            if (i != j)
                CHECK_OK(muxraft_node_add_peer(nodes[i], (uint64_t)j + 1, addr));
        }
    }
    if (started)
        check_third_kept_out(nodes, false);
    for (int i = 0; i < 3; i++)
        muxraft_node_free(nodes[i]);
}

/*
 * Embedded mode with TLS (the certificates of tests/certs; the tests run
 * from the repository's root): one or two of the three paths, a missing
 * file, a file without PEM or a key of another certificate are refused at
 * creation with a message naming the field. Three nodes on loopback, 1 and
 * 2 with certificates of the cluster CA and 3 with another CA's: 1 and 2
 * elect and commit without 3, which never connects, and peers_refused_tls
 * counts the refusals on every node.
 */
static void test_tls(void)
{
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 1;
    c.cluster_id = 78;
    c.tick_ms = 10;
    muxraft_node *nodes[3] = {NULL, NULL, NULL};

    c.tls_cert_pem = "tests/certs/node1.crt";
    c.tls_key_pem = "tests/certs/node1.key";
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "tls_ca_pem") != NULL);
    c.tls_ca_pem = "tests/certs/no-such-ca.crt";
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "tls_ca_pem") != NULL);
    CHECK(strstr(muxraft_last_error(), "no-such-ca.crt") != NULL);
    c.tls_ca_pem = "tests/certs/node1.key"; /* a key where the CA goes */
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "tls_ca_pem") != NULL);
    c.tls_ca_pem = "tests/certs/ca.crt";
    c.tls_key_pem = "tests/certs/node2.key"; /* not node1.crt's key */
    EXPECT_FAIL(muxraft_node_new(&c, NULL, &nodes[0]), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "tls_key_pem") != NULL);
    CHECK(nodes[0] == NULL);

    static const char *const certs[3][2] = {
        {"tests/certs/node1.crt", "tests/certs/node1.key"},
        {"tests/certs/node2.crt", "tests/certs/node2.key"},
        {"tests/certs/other.crt", "tests/certs/other.key"},
    };
    uint16_t ports[3] = {0, 0, 0};
    bool started = true;
    for (int i = 0; i < 3 && started; i++) {
        c.node_id = (uint64_t)i + 1;
        c.tls_cert_pem = certs[i][0];
        c.tls_key_pem = certs[i][1];
        CHECK_OK(muxraft_node_new(&c, NULL, &nodes[i]));
        started = nodes[i] != NULL && muxraft_node_start(nodes[i], "127.0.0.1:0") == MUXRAFT_OK &&
                  muxraft_node_listen_port(nodes[i], &ports[i]) == MUXRAFT_OK;
        CHECK(started);
    }
    for (int i = 0; i < 3 && started; i++) {
        for (int j = 0; j < 3; j++) {
            char addr[32];
            snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ports[j]);
            if (i != j)
                CHECK_OK(muxraft_node_add_peer(nodes[i], (uint64_t)j + 1, addr));
        }
    }
    if (started)
        check_third_kept_out(nodes, true);
    for (int i = 0; i < 3; i++)
        muxraft_node_free(nodes[i]);
}

/* ---- snapshots ------------------------------------------------------------ */

static bool bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The last index node `n` applied of `g` (0: none). */
static uint64_t last_applied(const cu_node *n, uint64_t g)
{
    const cu_log *log = &n->applied[g];
    return log->n ? log->v[log->n - 1].index : 0;
}

/* Propose `s` at node `l` (which leads g). */
static void propose_str(cu_cluster *c, uint64_t l, uint64_t g, const char *s)
{
    CHECK_OK(muxraft_propose(cu_node_by_id(c, l)->handle, g, bytes_of(s), strlen(s), NULL));
}

/* Tick until node `id` applied at least `n` entries of `g`. */
static bool wait_node_applied(cu_cluster *c, uint64_t id, uint64_t g, size_t n)
{
    for (int t = 0; t <= MAX_TICKS; t++) {
        if (cu_node_by_id(c, id)->applied[g].n >= n)
            return true;
        if (!cu_tick(c))
            return false;
    }
    return false;
}

/* Take a snapshot on one node; check what group_status and the counters
 * say; every misuse refused with its status, changing nothing. */
static void test_snapshot_single_node(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 2;
    base.max_snapshot_bytes = 64;
    cu_cluster c;
    if (!cu_init(&c, 1, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    muxraft_node *n = c.nodes[0].handle;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(n, 1, 1, self, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    muxraft_group_info info = info_of(n, 1);
    CHECK(info.snapshot_index == 0 && info.first_index == 1);
    CHECK(info.snapshot_bytes_memory == 0 && info.log_bytes_disk == 0 &&
          info.snapshot_bytes_disk == 0);

    const char *entries[] = {"e0", "e1", "e2", "e3", "e4", "e5"};
    for (int k = 0; k < 6; k++)
        propose_str(&c, 1, 1, entries[k]);
    CHECK(cu_wait_applied(&c, 1, 6, MAX_TICKS));
    const muxraft_group_info before = info_of(n, 1);
    const uint64_t applied = before.applied_index;
    CHECK(applied == last_applied(&c.nodes[0], 1));
    CHECK(before.log_bytes_memory >= 12); /* six 2-byte entries */

    uint8_t state[65];
    memset(state, 'S', sizeof state);
    /* Misuse. */
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied, NULL, 5), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_snapshot(n, 99, applied, state, 8), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied + 1, state, 8),
                MUXRAFT_INVALID_ARGUMENT); /* not applied */
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, UINT64_MAX, state, 8),
                MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, 0, state, 8),
                MUXRAFT_INVALID_ARGUMENT); /* not after "no snapshot" (0) */
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied, state, 65), MUXRAFT_TOO_LARGE);
    CHECK(strstr(muxraft_last_error(), "max_snapshot_bytes") != NULL);
    {
        size_t big_len = 5u << 20;
        uint8_t *big = (uint8_t *)xmalloc(big_len);
        memset(big, 'b', big_len);
        EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied, big, big_len), MUXRAFT_TOO_LARGE);
        free(big);
    }
    /* ...changed nothing. */
    info = info_of(n, 1);
    CHECK(info.snapshot_index == 0 && info.first_index == 1);
    CHECK(stats_of(n).snapshots_taken == 0);

    /* At the size limit, one entry before the last applied. */
    CHECK_OK(muxraft_group_snapshot(n, 1, applied - 1, state, 64));
    info = info_of(n, 1);
    CHECK(info.snapshot_index == applied - 1);
    /* The log keeps the entries after snapshot_index - trailing (2). */
    CHECK(info.first_index == applied - 2);
    CHECK(info.last_index == before.last_index && info.applied_index == applied);
    CHECK(info.snapshot_bytes_memory == 64);
    CHECK(info.log_bytes_memory < before.log_bytes_memory);
    CHECK(info.log_bytes_disk == 0 && info.snapshot_bytes_disk == 0); /* no data_dir */
    muxraft_stats s = stats_of(n);
    CHECK(s.snapshots_taken == 1 && s.snapshots_installed == 0);
    CHECK(s.wal_segments == 0 && s.snapshot_files == 0 && s.snapshot_file_bytes == 0);

    /* Not after the current snapshot. */
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied - 1, state, 8),
                MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied - 2, state, 8),
                MUXRAFT_INVALID_ARGUMENT);
    CHECK(info_of(n, 1).snapshot_index == applied - 1);

    /* An empty state, NULL data. */
    CHECK_OK(muxraft_group_snapshot(n, 1, applied, NULL, 0));
    info = info_of(n, 1);
    CHECK(info.snapshot_index == applied && info.first_index == applied - 1);
    CHECK(info.snapshot_bytes_memory == 0);
    CHECK(stats_of(n).snapshots_taken == 2);

    /* The group goes on. */
    propose_str(&c, 1, 1, "after");
    CHECK(cu_wait_applied(&c, 1, 7, MAX_TICKS));
    CHECK(cu_entry_is(&c, 1, 1, 6, "after") && last_applied(&c.nodes[0], 1) > applied);
    CHECK(c.nodes[0].n_restores == 0); /* the host's own snapshots restore nothing */

    /* Rejoining a group that exists. */
    EXPECT_FAIL(muxraft_group_rejoin(n, 1, 1, self, 1), MUXRAFT_ALREADY_EXISTS);
    EXPECT_FAIL(muxraft_group_rejoin(n, 2, 1, NULL, 1), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_rejoin(n, 2, 1, self, 0), MUXRAFT_INVALID_ARGUMENT);
    {
        const uint64_t others[] = {2, 3};
        EXPECT_FAIL(muxraft_group_rejoin(n, 2, 1, others, 2), MUXRAFT_INVALID_ARGUMENT);
    }
    CHECK(stats_of(n).groups == 1);

    /* A removed group is not found. */
    CHECK_OK(muxraft_group_remove(n, 1));
    EXPECT_FAIL(muxraft_group_snapshot(n, 1, applied, state, 8), MUXRAFT_NOT_FOUND);

    /* After stop. */
    CHECK_OK(muxraft_group_create(n, 3, 1, self, 1));
    CHECK(cu_wait_leader(&c, 3, MAX_TICKS) == 1);
    propose_str(&c, 1, 3, "x");
    const uint64_t at = info_of(n, 3).applied_index;
    CHECK(at > 0);
    CHECK_OK(muxraft_node_stop(n));
    EXPECT_FAIL(muxraft_group_snapshot(n, 3, at, state, 8), MUXRAFT_SHUTDOWN);
    EXPECT_FAIL(muxraft_group_rejoin(n, 4, 1, self, 1), MUXRAFT_SHUTDOWN);
    CHECK(info_of(n, 3).snapshot_index == 0);
    cu_free(&c);
}

/* A snapshot taken from inside `apply`, at the index being applied, by
 * every replica. */
static int in_apply_ok, in_apply_failed;
static void snapshot_in_apply(cu_node *n, uint64_t group_id, uint64_t index,
                              const uint8_t *data, size_t len)
{
    if (data_is(data, len, "snap")) {
        if (muxraft_group_snapshot(n->handle, group_id, index, bytes_of("state"), 5) ==
            MUXRAFT_OK)
            in_apply_ok++;
        else
            in_apply_failed++;
    }
}

static void test_snapshot_from_apply(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    cu_cluster c;
    if (!cu_init(&c, 3, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1));
    const uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    if (l) {
        c.on_apply = snapshot_in_apply;
        propose_str(&c, l, 1, "a");
        propose_str(&c, l, 1, "snap");
        propose_str(&c, l, 1, "b");
        CHECK(cu_wait_applied(&c, 1, 3, MAX_TICKS));
        CHECK(cu_logs_agree(&c, 1));
        CHECK(in_apply_ok == 3 && in_apply_failed == 0);
        /* Each at the index of "snap", the second entry. */
        for (uint64_t id = 1; id <= 3; id++) {
            muxraft_group_info info = info_of(cu_node_by_id(&c, id)->handle, 1);
            CHECK(c.nodes[id - 1].applied[1].n == 3 &&
                  info.snapshot_index == c.nodes[id - 1].applied[1].v[1].index);
            CHECK(stats_of(cu_node_by_id(&c, id)->handle).snapshots_taken == 1);
        }
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* snapshot_needed: once past the entry threshold, then not again until a
 * snapshot is taken; `applied` is what the host last applied. */
static void test_snapshot_needed(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_threshold_entries = 5;
    base.snapshot_threshold_bytes = 0; /* off */
    cu_cluster c;
    if (!cu_init(&c, 1, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    muxraft_node *n = c.nodes[0].handle;
    cu_node *cn = &c.nodes[0];
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(n, 1, 1, self, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);

    uint64_t snap = 0;
    for (int round = 0; round < 2; round++) {
        const size_t hints0 = cn->n_hints;
        /* Below the threshold: no hint; at it, exactly one. */
        while (info_of(n, 1).applied_index - snap < 5) {
            CHECK(cn->n_hints == hints0);
            propose_str(&c, 1, 1, "e");
            CHECK(cu_tick(&c));
        }
        CHECK(cn->n_hints == hints0 + 1);
        if (cn->n_hints != hints0 + 1)
            break;
        const cu_hint h = cn->hints[hints0];
        CHECK(h.group_id == 1);
        CHECK(h.applied == last_applied(cn, 1) && h.applied == info_of(n, 1).applied_index);
        CHECK(h.entries == h.applied - snap && h.entries >= 5);
        CHECK(h.bytes > 0);
        /* Not again while no snapshot is taken. */
        for (int k = 0; k < 8; k++)
            propose_str(&c, 1, 1, "e");
        for (int t = 0; t < 5; t++)
            CHECK(cu_tick(&c));
        CHECK(cn->n_hints == hints0 + 1);
        snap = info_of(n, 1).applied_index;
        CHECK_OK(muxraft_group_snapshot(n, 1, snap, bytes_of("s"), 1));
        for (int t = 0; t < 5; t++)
            CHECK(cu_tick(&c));
        CHECK(cn->n_hints == hints0 + 1);
    }
    CHECK(cn->n_hints == 2);

    /* By size: 100 bytes of payload. */
    muxraft_config_init(&base);
    base.snapshot_threshold_entries = 0; /* off */
    base.snapshot_threshold_bytes = 100;
    cu_free(&c);
    if (!cu_init(&c, 1, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    n = c.nodes[0].handle;
    cn = &c.nodes[0];
    CHECK_OK(muxraft_group_create(n, 1, 1, self, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    uint8_t chunk[40];
    memset(chunk, 'p', sizeof chunk);
    for (int k = 0; k < 2; k++)
        CHECK_OK(muxraft_propose(n, 1, chunk, sizeof chunk, NULL));
    CHECK(cu_tick(&c));
    CHECK(cn->n_hints == 0); /* 80 bytes */
    CHECK_OK(muxraft_propose(n, 1, chunk, sizeof chunk, NULL));
    CHECK(cu_tick(&c));
    CHECK(cn->n_hints == 1);
    /* `applied` is the last index applied when the hint fired: the log's
     * bytes count the third message as soon as it is in the leader's log,
     * which is written (and then committed and applied) in the same tick. */
    if (cn->n_hints == 1)
        CHECK(cn->hints[0].bytes >= 120 && cn->hints[0].applied <= last_applied(cn, 1) &&
              cn->hints[0].applied + 1 >= last_applied(cn, 1));
    cu_free(&c);
}

/* A node with a data directory, freed and created again: muxraft_node_new
 * restores each group that has a snapshot, with the bytes given to
 * muxraft_group_snapshot, before it applies anything later; apply resumes
 * after the snapshot. A group without a snapshot replays from 1. */
static void test_snapshot_restart(void)
{
    char dir[256];
    if (!cu_temp_dir(dir, sizeof dir)) {
        CHECK(!"cu_temp_dir");
        return;
    }
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 1;
    base.snapshot_threshold_entries = 0;
    base.snapshot_threshold_bytes = 0;
    cu_cluster c;
    if (!cu_init_durable(&c, 1, 0, &base, dir)) {
        CHECK(!"cu_init_durable");
        cu_remove_dir(dir);
        return;
    }
    cu_node *cn = &c.nodes[0];
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(cn->handle, 1, 1, self, 1));
    CHECK_OK(muxraft_group_create(cn->handle, 2, 1, self, 1));
    CHECK(cu_wait_leader(&c, 1, MAX_TICKS) == 1);
    CHECK(cu_wait_leader(&c, 2, MAX_TICKS) == 1);
    propose_str(&c, 1, 1, "a");
    propose_str(&c, 1, 1, "b");
    propose_str(&c, 1, 1, "c");
    propose_str(&c, 1, 2, "x");
    CHECK(cu_wait_applied(&c, 1, 3, MAX_TICKS) && cu_wait_applied(&c, 2, 1, MAX_TICKS));
    if (cn->applied[1].n < 3 || cn->applied[2].n < 1) {
        cu_free(&c);
        cu_remove_dir(dir);
        return;
    }
    const uint64_t snap = cn->applied[1].v[2].index; /* "c" */
    const uint64_t term = info_of(cn->handle, 1).term;
    static const char state[] = "state after a, b, c";
    CHECK_OK(muxraft_group_snapshot(cn->handle, 1, snap, bytes_of(state), strlen(state)));
    const muxraft_group_info at_snap = info_of(cn->handle, 1);
    CHECK(at_snap.snapshot_index == snap && at_snap.first_index == snap);
    CHECK(at_snap.snapshot_bytes_disk > strlen(state)); /* the file: header + bytes */
    /* The trailing window ("c") stays in memory only: the write-ahead log
     * keeps nothing the snapshot covers. */
    CHECK(at_snap.log_bytes_disk == 0);
    const muxraft_stats s = stats_of(cn->handle);
    CHECK(s.snapshot_files == 1 && s.snapshot_file_bytes == at_snap.snapshot_bytes_disk);
    CHECK(s.wal_segments >= 1 && s.wal_bytes > 0);
    propose_str(&c, 1, 1, "d");
    propose_str(&c, 1, 1, "e");
    CHECK(cu_wait_applied(&c, 1, 5, MAX_TICKS));

    for (int life = 1; life <= 2; life++) {
        const size_t applied_before = cn->applied[1].n;
        const size_t restores_before = cn->n_restores;
        CHECK(cu_restart(&c, 1, false));
        if (cn->handle == NULL)
            break;
        /* Restored inside muxraft_node_new, group 1 only, before any apply
         * of a later index. */
        CHECK(cn->n_restores == restores_before + 1);
        if (cn->n_restores != restores_before + 1)
            break;
        const cu_restore *r = &cn->restores[restores_before];
        CHECK(r->group_id == 1 && r->index == snap && r->term == term);
        CHECK(bytes_equal(r->data, r->len, bytes_of(state), strlen(state)));
        CHECK(r->applied_before == applied_before);
        const muxraft_group_info info = info_of(cn->handle, 1);
        /* The log starts after the snapshot: the trailing window was
         * never on disk. */
        CHECK(info.snapshot_index == snap && info.first_index == snap + 1);
        CHECK(info.log_bytes_disk > 0); /* "d" and "e" */
        CHECK(info.snapshot_bytes_disk == at_snap.snapshot_bytes_disk);
        CHECK(stats_of(cn->handle).snapshots_installed == 0); /* recovered, not installed */
        /* Then "d" and "e" again, at their indexes, and nothing before. */
        CHECK(cu_wait_applied(&c, 1, applied_before + 2, MAX_TICKS));
        CHECK(cu_applied_after_restore(cn, r));
        const cu_log *log = &cn->applied[1];
        CHECK(log->n == applied_before + 2);
        if (log->n == applied_before + 2) {
            CHECK(cu_entry_is(&c, 1, 1, applied_before, "d") &&
                  cu_entry_is(&c, 1, 1, applied_before + 1, "e"));
            CHECK(log->v[applied_before].index == log->v[3].index &&
                  log->v[applied_before + 1].index == log->v[4].index);
        }
        /* Group 2 never had a snapshot: "x" again, from the start. */
        CHECK(cu_wait_applied(&c, 2, (size_t)life + 1, MAX_TICKS));
        CHECK(cu_entry_is(&c, 1, 2, (size_t)life, "x"));
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
    cu_remove_dir(dir);
}

/* Tick until node `id` has had `restores` restore calls; false after
 * MAX_TICKS. */
static bool tick_until_restored(cu_cluster *c, uint64_t id, size_t restores)
{
    for (int t = 0; t <= MAX_TICKS; t++) {
        if (cu_node_by_id(c, id)->n_restores >= restores)
            return true;
        if (!cu_tick(c))
            return false;
    }
    return false;
}

/* A follower cut off while the leader compacted past what it holds gets
 * the leader's snapshot through `restore` (in several chunks), then the
 * entries after it; it never applies what the snapshot holds. */
static void test_snapshot_install(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    base.snapshot_chunk_bytes = 256;
    cu_cluster c;
    if (!cu_init(&c, 3, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 1));
    const uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    if (l == 0) {
        cu_free(&c);
        return;
    }
    const uint64_t f = l % 3 + 1, o = 6 - l - f;
    muxraft_node *ln = cu_node_by_id(&c, l)->handle;
    cu_node *fn = cu_node_by_id(&c, f);
    for (int k = 0; k < 3; k++)
        propose_str(&c, l, 1, "before");
    CHECK(cu_wait_applied(&c, 1, 3, MAX_TICKS));

    cu_isolate(&c, f);
    for (int k = 0; k < 5; k++)
        propose_str(&c, l, 1, "missed");
    CHECK(wait_node_applied(&c, l, 1, 8) && wait_node_applied(&c, o, 1, 8));
    CHECK(fn->applied[1].n == 3);
    const uint64_t snap = info_of(ln, 1).applied_index;
    const uint64_t term = info_of(ln, 1).term;
    uint8_t state[1000];
    for (size_t i = 0; i < sizeof state; i++)
        state[i] = (uint8_t)(i * 7 + 1);
    CHECK_OK(muxraft_group_snapshot(ln, 1, snap, state, sizeof state));
    CHECK(info_of(ln, 1).first_index == snap + 1);
    propose_str(&c, l, 1, "after");
    CHECK(wait_node_applied(&c, l, 1, 9));

    cu_isolate(&c, 0);
    CHECK(tick_until_restored(&c, f, 1));
    CHECK(wait_node_applied(&c, f, 1, 4));
    CHECK(cu_leader(&c, 1) == l); /* no election on the way */
    CHECK(fn->n_restores == 1);
    if (fn->n_restores == 1) {
        const cu_restore *r = &fn->restores[0];
        CHECK(r->group_id == 1 && r->index == snap && r->term == term);
        CHECK(bytes_equal(r->data, r->len, state, sizeof state));
        CHECK(r->applied_before == 3);
        CHECK(cu_applied_after_restore(fn, r));
    }
    /* "before" x3, then "after": the "missed" entries came as the snapshot. */
    CHECK(fn->applied[1].n == 4 && cu_entry_is(&c, f, 1, 3, "after"));
    if (fn->applied[1].n == 4)
        CHECK(fn->applied[1].v[3].index == last_applied(cu_node_by_id(&c, l), 1));
    const muxraft_group_info fi = info_of(fn->handle, 1);
    CHECK(fi.snapshot_index == snap && fi.applied_index > snap);
    CHECK(fi.snapshot_bytes_memory == sizeof state);
    const muxraft_stats fs = stats_of(fn->handle), ls = stats_of(ln);
    CHECK(fs.snapshots_installed == 1 && fs.snapshots_taken == 0);
    CHECK(ls.snapshots_taken == 1 && ls.snapshot_transfers_started >= 1);
    CHECK(ls.snapshot_crc_failures == 0 && fs.snapshot_crc_failures == 0);
    CHECK(cu_node_by_id(&c, o)->n_restores == 0 && cu_node_by_id(&c, l)->n_restores == 0);
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* A node whose data directory was deleted: created again, it has no group;
 * muxraft_group_rejoin brings its replica back, which gets the leader's
 * snapshot through `restore`, then applies what the others apply, and
 * never campaigns, not even after a restart. */
static void test_rejoin(void)
{
    char dir[256];
    if (!cu_temp_dir(dir, sizeof dir)) {
        CHECK(!"cu_temp_dir");
        return;
    }
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    cu_cluster c;
    if (!cu_init_durable(&c, 3, 0, &base, dir)) {
        CHECK(!"cu_init_durable");
        cu_remove_dir(dir);
        return;
    }
    CHECK(cu_create_group(&c, 1));
    const uint64_t l = cu_wait_leader(&c, 1, MAX_TICKS);
    CHECK(l != 0);
    if (l == 0) {
        cu_free(&c);
        cu_remove_dir(dir);
        return;
    }
    const uint64_t f = l % 3 + 1, o = 6 - l - f;
    const uint64_t members[] = {1, 2, 3};
    muxraft_node *ln = cu_node_by_id(&c, l)->handle;
    cu_node *fn = cu_node_by_id(&c, f);
    for (int k = 0; k < 5; k++)
        propose_str(&c, l, 1, "r");
    CHECK(cu_wait_applied(&c, 1, 5, MAX_TICKS));
    const uint64_t snap = info_of(ln, 1).applied_index;
    static const char state[] = "five entries of r";
    CHECK_OK(muxraft_group_snapshot(ln, 1, snap, bytes_of(state), strlen(state)));

    /* The group is there: nothing to rejoin. */
    EXPECT_FAIL(muxraft_group_rejoin(fn->handle, 1, 1, members, 3), MUXRAFT_ALREADY_EXISTS);

    /* The disk is lost. */
    CHECK(cu_restart(&c, f, true));
    if (fn->handle == NULL) {
        cu_free(&c);
        cu_remove_dir(dir);
        return;
    }
    muxraft_group_info info;
    muxraft_group_info_init(&info);
    EXPECT_FAIL(muxraft_group_status(fn->handle, 1, &info), MUXRAFT_NOT_FOUND);
    CHECK(stats_of(fn->handle).groups == 0 && fn->n_restores == 0);
    CHECK_OK(muxraft_group_rejoin(fn->handle, 1, 1, members, 3));
    EXPECT_FAIL(muxraft_group_rejoin(fn->handle, 1, 1, members, 3), MUXRAFT_ALREADY_EXISTS);
    EXPECT_FAIL(muxraft_group_create(fn->handle, 1, 1, members, 3), MUXRAFT_ALREADY_EXISTS);
    info = info_of(fn->handle, 1);
    CHECK(info.role == MUXRAFT_FOLLOWER && info.incarnation == 1 && info.last_index == 0);

    CHECK(tick_until_restored(&c, f, 1));
    CHECK(fn->n_restores == 1);
    if (fn->n_restores == 1) {
        const cu_restore *r = &fn->restores[0];
        CHECK(r->group_id == 1 && r->index == snap);
        CHECK(bytes_equal(r->data, r->len, bytes_of(state), strlen(state)));
        CHECK(r->applied_before == 5); /* its records from before the loss */
    }
    propose_str(&c, l, 1, "new");
    CHECK(wait_node_applied(&c, f, 1, 6));
    CHECK(cu_entry_is(&c, f, 1, 5, "new"));
    if (fn->n_restores == 1)
        CHECK(cu_applied_after_restore(fn, &fn->restores[0]));
    CHECK(stats_of(fn->handle).snapshots_installed == 1);
    CHECK(info_of(fn->handle, 1).snapshot_index == snap);

    /* It never campaigns: cut off for 10 election timeouts, it does not
     * even pre-vote, while the other follower, cut off as long, does. */
    for (int round = 0; round < 2; round++) {
        const uint64_t id = round == 0 ? f : o;
        cu_node *cn = cu_node_by_id(&c, id);
        const size_t campaigns = cn->campaigns;
        const uint64_t elections = stats_of(cn->handle).elections_started;
        cu_isolate(&c, id);
        for (int t = 0; t < 10 * 2 * 10; t++)
            CHECK(cu_tick(&c));
        cu_isolate(&c, 0);
        if (id == f)
            CHECK(cn->campaigns == campaigns &&
                  stats_of(cn->handle).elections_started == elections);
        else
            CHECK(cn->campaigns > campaigns);
        CHECK(cu_wait_leader(&c, 1, MAX_TICKS) != 0);
    }

    /* The mark is durable: restarted (disk intact) it restores the
     * snapshot it installed, and still never campaigns. */
    CHECK(cu_restart(&c, f, false));
    if (fn->handle != NULL) {
        CHECK(fn->n_restores == 2);
        if (fn->n_restores == 2)
            CHECK(fn->restores[1].index == snap &&
                  bytes_equal(fn->restores[1].data, fn->restores[1].len, bytes_of(state),
                              strlen(state)));
        const size_t campaigns = fn->campaigns;
        cu_isolate(&c, f);
        for (int t = 0; t < 10 * 2 * 10; t++)
            CHECK(cu_tick(&c));
        cu_isolate(&c, 0);
        CHECK(fn->campaigns == campaigns && stats_of(fn->handle).elections_started == 0);
        CHECK(info_of(fn->handle, 1).role == MUXRAFT_FOLLOWER);
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
    cu_remove_dir(dir);
}

/* Run one test function and say how it went. */
#define RUN(test)                                                              \
    do {                                                                       \
        int passed0 = n_passed, failed0 = n_failed;                            \
        test();                                                                \
        printf("%-4s %-26s %5d checks\n", n_failed == failed0 ? "ok" : "FAIL", \
               #test, n_passed - passed0 + n_failed - failed0);                 \
    } while (0)

/* One node per data directory: a second node on a directory in use, in
 * this process or another, gets MUXRAFT_BUSY and a message naming the
 * holder; the directory is free again once the holder is freed or killed
 * (SIGKILL leaves no stale lock). Without the lock both would append to the
 * same write-ahead log. */
static void test_data_dir_in_use(void)
{
    char dir[256];
    if (!cu_temp_dir(dir, sizeof dir)) {
        CHECK(!"cu_temp_dir");
        return;
    }
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    config.data_dir = dir;
    muxraft_node *a = NULL, *b = NULL;
    CHECK_OK(muxraft_node_new(&config, NULL, &a));
    EXPECT_FAIL(muxraft_node_new(&config, NULL, &b), MUXRAFT_BUSY);
    CHECK(b == NULL);
    CHECK(strstr(muxraft_last_error(), "in use") != NULL);
    CHECK(strstr(muxraft_last_error(), "this process") != NULL);
    CHECK(strstr(muxraft_last_error(), dir) != NULL);
    /* Stopped (not yet freed): the directory is free. */
    CHECK_OK(muxraft_node_stop(a));
    CHECK_OK(muxraft_node_new(&config, NULL, &b));
    muxraft_node_free(a);
    a = NULL;
    EXPECT_FAIL(muxraft_node_new(&config, NULL, &a), MUXRAFT_BUSY);
    muxraft_node_free(b);
    b = NULL;

    /* Another process holds it. */
    int ready[2];
    if (pipe(ready) != 0) {
        CHECK(!"pipe");
        cu_remove_dir(dir);
        return;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        muxraft_node *held = NULL;
        char ok = muxraft_node_new(&config, NULL, &held) == MUXRAFT_OK ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1)
            _exit(2);
        pause(); /* until SIGKILL */
        _exit(0);
    }
    char got = 0;
    CHECK(child > 0 && read(ready[0], &got, 1) == 1 && got == 'y');
    close(ready[0]);
    close(ready[1]);
    EXPECT_FAIL(muxraft_node_new(&config, NULL, &b), MUXRAFT_BUSY);
    char pid[32];
    snprintf(pid, sizeof pid, "process %d", (int)child);
    CHECK(strstr(muxraft_last_error(), pid) != NULL);
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    CHECK_OK(muxraft_node_new(&config, NULL, &b));
    muxraft_node_free(b);
    cu_remove_dir(dir);
}

/* Backpressure: with frames held, proposals stay in flight on the leader;
 * at max_pending_proposals_per_group the next one gets MUXRAFT_BUSY at once
 * (nothing proposed, the message says which limit), the stats and the group
 * info show the pressure, and once the frames flow and the proposals
 * commit, proposing works again. 0 lifts a limit. */
static void test_backpressure(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.max_pending_proposals_per_group = 2;
    cu_cluster c;
    if (!cu_init(&c, 3, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 5));
    const uint64_t l = cu_wait_leader(&c, 5, MAX_TICKS);
    CHECK(l != 0);
    if (l == 0) {
        cu_free(&c);
        return;
    }
    muxraft_node *leader = cu_node_by_id(&c, l)->handle;
    /* Nothing delivered between these calls: nothing commits. */
    propose_str(&c, l, 5, "one");
    propose_str(&c, l, 5, "two");
    const uint64_t last = info_of(leader, 5).last_index;
    uint64_t id = 77;
    EXPECT_FAIL(muxraft_propose(leader, 5, bytes_of("three"), 5, &id), MUXRAFT_BUSY);
    CHECK(id == 77); /* untouched */
    CHECK(strstr(muxraft_last_error(), "proposals in flight") != NULL);
    const muxraft_group_info info = info_of(leader, 5);
    CHECK(info.last_index == last && info.pending_proposals == 2);
    muxraft_stats s = stats_of(leader);
    CHECK(s.proposals_refused_busy == 1 && s.pending_proposals == 2);
    CHECK(cu_wait_applied(&c, 5, 2, MAX_TICKS));
    CHECK(stats_of(leader).pending_proposals == 0);
    propose_str(&c, l, 5, "three");
    CHECK(cu_wait_applied(&c, 5, 3, MAX_TICKS));
    CHECK(cu_entry_is(&c, l, 5, 2, "three"));
    cu_free(&c);

    /* 0: no limit (the group's and the node's). */
    base.max_pending_proposals_per_group = 0;
    base.max_pending_proposals = 0;
    if (!cu_init(&c, 3, 0, &base)) {
        CHECK(!"cu_init");
        return;
    }
    CHECK(cu_create_group(&c, 5));
    const uint64_t l2 = cu_wait_leader(&c, 5, MAX_TICKS);
    CHECK(l2 != 0);
    if (l2 != 0) {
        int accepted = 0;
        for (int i = 0; i < 5000; i++)
            accepted += muxraft_propose(cu_node_by_id(&c, l2)->handle, 5, bytes_of("x"), 1,
                                        NULL) == MUXRAFT_OK;
        CHECK(accepted == 5000); /* past the defaults' 4096 */
    }
    cu_free(&c);
}

/* ---- linearizable reads (read index) ---------------------------------------- */

/* Tick until node `n` has had `k` read_done reports; false after MAX_TICKS. */
static bool tick_until_reads(cu_cluster *c, const cu_node *n, size_t k)
{
    for (int t = 0; t < MAX_TICKS; t++) {
        if (n->n_reads >= k)
            return true;
        if (!cu_tick(c))
            return false;
    }
    return n->n_reads >= k;
}

/* Tick until node `n` has had a proposal_done report for `id`. */
static const cu_done *tick_until_done(cu_cluster *c, const cu_node *n, uint64_t id)
{
    for (int t = 0; t < MAX_TICKS; t++) {
        const cu_done *d = cu_find_done(n, id, NULL);
        if (d)
            return d;
        if (!cu_tick(c))
            return NULL;
    }
    return cu_find_done(n, id, NULL);
}

/* Node `n` applied an entry of group `g` at `index`, among its first
 * `within` entries. */
static bool applied_within(const cu_node *n, uint64_t g, uint64_t index, size_t within)
{
    const cu_log *log = &n->applied[g];
    for (size_t k = 0; k < within && k < log->n; k++)
        if (log->v[k].index == index)
            return true;
    return false;
}

/* A three-node cluster with group `g` elected: the leader's cu_node, NULL
 * (with the failure counted) if there is none. */
static cu_node *read_cluster(cu_cluster *c, const muxraft_config *base, uint64_t g)
{
    if (!cu_init(c, 3, 0, base)) {
        CHECK(!"cu_init");
        return NULL;
    }
    CHECK(cu_create_group(c, g));
    const uint64_t l = cu_wait_leader(c, g, MAX_TICKS);
    CHECK(l != 0);
    if (l == 0) {
        cu_free(c);
        return NULL;
    }
    return cu_node_by_id(c, l);
}

/*
 * muxraft_group_transfer_leader: the group moves to the node asked for in
 * a few ticks, reported by role_changed on every node, with no other
 * election; proposals on the old leader are refused meanwhile and accepted
 * at the new one; groups_led and transfers_started follow. Misuse is
 * refused at once.
 */
static void test_transfer_leader(void)
{
    cu_cluster c;
    cu_node *ln = read_cluster(&c, NULL, 1);
    if (ln == NULL)
        return;
    const uint64_t from = ln->id, to = ln->id % 3 + 1;
    cu_node *tn = cu_node_by_id(&c, to);
    EXPECT_FAIL(muxraft_group_transfer_leader(NULL, 1, to), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_transfer_leader(ln->handle, 99, to), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_group_transfer_leader(tn->handle, 1, from), MUXRAFT_NOT_LEADER);
    EXPECT_FAIL(muxraft_group_transfer_leader(ln->handle, 1, 42), MUXRAFT_INVALID_ARGUMENT);
    CHECK_OK(muxraft_group_transfer_leader(ln->handle, 1, from)); /* itself */
    CHECK(stats_of(ln->handle).groups_led == 1);
    const size_t campaigns = tn->campaigns;
    CHECK_OK(muxraft_group_transfer_leader(ln->handle, 1, to));
    CHECK(stats_of(ln->handle).transfers_started == 1);
    uint64_t pid = 0;
    EXPECT_FAIL(muxraft_propose(ln->handle, 1, bytes_of("x"), 1, &pid), MUXRAFT_NOT_LEADER);
    uint64_t leader = 0;
    for (int t = 0; t < 20 && leader != to; t++) {
        CHECK(cu_tick(&c));
        leader = cu_leader(&c, 1);
    }
    CHECK(leader == to);
    CHECK(tn->campaigns == campaigns + 1); /* one election, no pre-vote round */
    CHECK(stats_of(ln->handle).groups_led == 0);
    CHECK(stats_of(tn->handle).groups_led == 1);
    CHECK_OK(muxraft_propose(tn->handle, 1, bytes_of("after"), 5, &pid));
    const cu_done *d = tick_until_done(&c, tn, pid);
    CHECK(d && d->status == MUXRAFT_OK);
    cu_free(&c);
}

/*
 * The leader balancer (muxraft_config.balance_leaders): a bad setting is
 * refused; with MUXRAFT_BALANCE_ON in host-driven mode, 30 groups end
 * led 8 to 11 by each node (one over its share at most) (wherever their elections put them;
 * transfers counted in balance_transfers) and nothing moves afterwards; with the
 * default (AUTO: off in host-driven mode) nothing is transferred.
 */
static void test_balance_leaders(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    CHECK(base.balance_leaders == MUXRAFT_BALANCE_AUTO && base.balance_max_transfers == 0);
    base.node_id = 1;
    base.balance_leaders = 3;
    muxraft_node *bad = NULL;
    EXPECT_FAIL(muxraft_node_new(&base, NULL, &bad), MUXRAFT_INVALID_ARGUMENT);
    CHECK(strstr(muxraft_last_error(), "balance_leaders") != NULL);
    base.balance_leaders = MUXRAFT_BALANCE_ON;
    base.batch_heartbeats = false;
    EXPECT_FAIL(muxraft_node_new(&base, NULL, &bad), MUXRAFT_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    base.batch_heartbeats = true;
    for (int on = 0; on < 2; on++) {
        base.balance_leaders = on ? MUXRAFT_BALANCE_ON : MUXRAFT_BALANCE_AUTO;
        cu_cluster c;
        if (!cu_init(&c, 3, 0, &base)) {
            CHECK(!"cu_init");
            return;
        }
        for (uint64_t g = 1; g <= 30; g++)
            CHECK(cu_create_group(&c, g));
        for (int t = 0; t < 300; t++)
            CHECK(cu_tick(&c));
        uint64_t led[3], moved = 0;
        for (size_t i = 0; i < 3; i++) {
            const muxraft_stats s = stats_of(c.nodes[i].handle);
            led[i] = s.groups_led;
            moved += s.balance_transfers;
        }
        CHECK(led[0] + led[1] + led[2] == 30);
        /* A node more than a group over its share gives; so each ends at
         * most one over, and (two others one over) at most two under. */
        if (on) {
            for (size_t i = 0; i < 3; i++)
                CHECK(led[i] >= 8 && led[i] <= 11);
            CHECK(moved > 0); /* the elections alone left it further apart */
        }
        else
            CHECK(moved == 0);
        for (int t = 0; t < 100; t++)
            CHECK(cu_tick(&c));
        uint64_t later = 0;
        for (size_t i = 0; i < 3; i++)
            later += stats_of(c.nodes[i].handle).balance_transfers;
        CHECK(later == moved); /* nothing moves once balanced */
        cu_free(&c);
    }
}

/*
 * muxraft_read_index and read_done: misuse refused at once; on the leader a
 * read is reported exactly once, after a heartbeat round a quorum answered,
 * with MUXRAFT_OK and an index at or past every proposal acknowledged
 * before it, and after `apply` delivered that proposal's entry; the stats
 * count it. A read pending when the leader loses its leadership, when the
 * group is removed, or when the node stops, is reported NOT_LEADER,
 * NOT_FOUND or SHUTDOWN.
 */
static void test_read_index(void)
{
    cu_cluster c;
    cu_node *ln = read_cluster(&c, NULL, 1);
    if (ln == NULL)
        return;
    muxraft_node *leader = ln->handle;
    cu_node *fn = cu_node_by_id(&c, ln->id % 3 + 1);
    uint64_t rid = 77;

    /* Misuse and routine refusals: nothing taken, the id untouched. */
    EXPECT_FAIL(muxraft_read_index(NULL, 1, &rid), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_read_index(NULL, 1, NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_read_index(leader, 99, &rid), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_read_index(fn->handle, 99, &rid), MUXRAFT_NOT_FOUND);
    EXPECT_FAIL(muxraft_read_index(fn->handle, 1, &rid), MUXRAFT_NOT_LEADER);
    CHECK(rid == 77);
    muxraft_stats s = stats_of(leader);
    CHECK(s.reads == 0 && s.pending_reads == 0 && s.reads_refused_busy == 0);
    CHECK(stats_of(fn->handle).reads == 0);

    /* A proposal acknowledged before the read is taken. */
    uint64_t pid = 0;
    CHECK_OK(muxraft_propose(leader, 1, bytes_of("written"), 7, &pid));
    const cu_done *d = tick_until_done(&c, ln, pid);
    CHECK(d && d->status == MUXRAFT_OK);
    const uint64_t written = d ? d->index : UINT64_MAX;

    /* The read: reported only once a quorum answered a heartbeat sent after
     * it, so not before frames travel. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", muxraft_last_error());
    CHECK_OK(muxraft_read_index(leader, 1, &rid));
    CHECK(rid != 77 && rid != 0);
    CHECK(strcmp(saved, muxraft_last_error()) == 0); /* a success sets nothing */
    CHECK(ln->n_reads == 0);
    s = stats_of(leader);
    CHECK(s.reads == 1 && s.pending_reads == 1 && s.reads_served == 0);
    CHECK(tick_until_reads(&c, ln, 1));
    size_t count = 0;
    const cu_read *r = cu_find_read(ln, rid, &count);
    CHECK(count == 1 && r != NULL);
    if (r) {
        CHECK(r->status == MUXRAFT_OK && r->group_id == 1);
        CHECK(r->index >= written);
        /* `apply` delivered the acknowledged entry before read_done came. */
        CHECK(r->last_applied >= written);
        CHECK(applied_within(ln, 1, written, r->applied_n));
        const muxraft_group_info info = info_of(leader, 1);
        CHECK(r->index <= info.commit_index && r->index <= info.applied_index);
    }
    s = stats_of(leader);
    CHECK(s.reads == 1 && s.reads_served == 1 && s.reads_failed == 0);
    CHECK(s.pending_reads == 0 && s.reads_refused_busy == 0);
    CHECK(s.read_rounds_sent >= 1 && s.read_rounds_answered >= 1);
    /* Exactly once, and only on the node that took it. */
    for (int t = 0; t < 20; t++)
        CHECK(cu_tick(&c));
    cu_find_read(ln, rid, &count);
    CHECK(count == 1 && ln->n_reads == 1);
    for (uint64_t id = 1; id <= 3; id++)
        if (id != ln->id)
            CHECK(cu_node_by_id(&c, id)->n_reads == 0);

    /* Without an out pointer: taken and reported all the same. Three more
     * in the same interval, with an id each. */
    CHECK_OK(muxraft_read_index(leader, 1, NULL));
    uint64_t ids[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        CHECK_OK(muxraft_read_index(leader, 1, &ids[k]));
    CHECK(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2] && ids[0] != rid);
    CHECK(stats_of(leader).pending_reads == 4);
    CHECK(tick_until_reads(&c, ln, 5));
    CHECK(ln->n_reads == 5);
    for (size_t k = 1; k < ln->n_reads; k++)
        CHECK(ln->reads[k].status == MUXRAFT_OK && ln->reads[k].index >= written);
    for (int k = 0; k < 3; k++) {
        cu_find_read(ln, ids[k], &count);
        CHECK(count == 1);
    }
    s = stats_of(leader);
    CHECK(s.reads == 5 && s.reads_served == 5 && s.pending_reads == 0);

    /* Pending when the group is removed here: NOT_FOUND, reported by the
     * removal itself. */
    CHECK_OK(muxraft_read_index(leader, 1, &rid));
    CHECK_OK(muxraft_group_remove(leader, 1));
    r = cu_find_read(ln, rid, &count);
    CHECK(count == 1 && r && r->status == MUXRAFT_NOT_FOUND && r->index == 0 &&
          r->group_id == 1);
    s = stats_of(leader);
    CHECK(s.reads == 6 && s.reads_failed == 1 && s.pending_reads == 0);
    EXPECT_FAIL(muxraft_read_index(leader, 1, &rid), MUXRAFT_NOT_FOUND);
    for (int t = 0; t < 10; t++)
        CHECK(cu_tick(&c));
    CHECK(ln->n_reads == 6);

    /* Pending when the leader loses its leadership: NOT_LEADER. Cut off,
     * it cannot confirm the read; the others elect a new leader, and once
     * it hears of it the read fails. */
    CHECK(cu_create_group(&c, 2));
    const uint64_t l2 = cu_wait_leader(&c, 2, MAX_TICKS);
    CHECK(l2 != 0);
    if (l2 != 0) {
        cu_node *old = cu_node_by_id(&c, l2);
        const size_t before = old->n_reads;
        CHECK_OK(muxraft_read_index(old->handle, 2, &rid));
        cu_isolate(&c, l2);
        uint64_t other = 0;
        for (int t = 0; t < MAX_TICKS && other == 0; t++) {
            CHECK(cu_tick(&c));
            for (uint64_t id = 1; id <= 3; id++)
                if (id != l2 && info_of(cu_node_by_id(&c, id)->handle, 2).role ==
                                    MUXRAFT_LEADER)
                    other = id;
        }
        CHECK(other != 0);
        cu_isolate(&c, 0);
        CHECK(tick_until_reads(&c, old, before + 1));
        r = cu_find_read(old, rid, &count);
        CHECK(count == 1 && r && r->status == MUXRAFT_NOT_LEADER && r->index == 0);
        CHECK(info_of(old->handle, 2).role != MUXRAFT_LEADER);
        CHECK(stats_of(old->handle).pending_reads == 0);
    }

    /* Pending when the node stops: SHUTDOWN, reported before the stop
     * returns; then every read is refused with SHUTDOWN. */
    const uint64_t l3 = cu_wait_leader(&c, 2, MAX_TICKS);
    CHECK(l3 != 0);
    if (l3 != 0) {
        cu_node *sn = cu_node_by_id(&c, l3);
        const size_t before = sn->n_reads;
        const muxraft_stats b = stats_of(sn->handle);
        CHECK_OK(muxraft_read_index(sn->handle, 2, &rid));
        CHECK(sn->n_reads == before);
        CHECK_OK(muxraft_node_stop(sn->handle));
        r = cu_find_read(sn, rid, &count);
        CHECK(count == 1 && r && r->status == MUXRAFT_SHUTDOWN && r->index == 0 &&
              r->group_id == 2);
        CHECK(sn->n_reads == before + 1);
        EXPECT_FAIL(muxraft_read_index(sn->handle, 2, &rid), MUXRAFT_SHUTDOWN);
        s = stats_of(sn->handle);
        CHECK(s.reads == b.reads + 1 && s.reads_failed == b.reads_failed + 1);
        CHECK(s.pending_reads == 0);
    }
    cu_free(&c);
}

/* The limits of reads pending: at max_pending_reads_per_group (and at
 * max_pending_reads, over the node) a read is refused with MUXRAFT_BUSY at
 * once and counted; once the reads pending are reported, reading works
 * again. 0 lifts a limit. */
static void test_read_index_busy(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    base.max_pending_reads_per_group = 1;
    cu_cluster c;
    cu_node *ln = read_cluster(&c, &base, 1);
    if (ln == NULL)
        return;
    uint64_t first = 0, rid = 77;
    CHECK_OK(muxraft_read_index(ln->handle, 1, &first));
    EXPECT_FAIL(muxraft_read_index(ln->handle, 1, &rid), MUXRAFT_BUSY);
    CHECK(rid == 77);
    CHECK(strstr(muxraft_last_error(), "reads pending in the group") != NULL);
    EXPECT_FAIL(muxraft_read_index(ln->handle, 1, NULL), MUXRAFT_BUSY);
    muxraft_stats s = stats_of(ln->handle);
    CHECK(s.reads == 1 && s.pending_reads == 1 && s.reads_refused_busy == 2);
    CHECK(tick_until_reads(&c, ln, 1));
    CHECK(ln->n_reads == 1 && ln->reads[0].read_id == first &&
          ln->reads[0].status == MUXRAFT_OK);
    CHECK_OK(muxraft_read_index(ln->handle, 1, &rid));
    CHECK(tick_until_reads(&c, ln, 2));
    CHECK(ln->n_reads == 2 && ln->reads[1].read_id == rid);
    s = stats_of(ln->handle);
    CHECK(s.reads == 2 && s.reads_served == 2 && s.pending_reads == 0 &&
          s.reads_refused_busy == 2);
    cu_free(&c);

    /* The node's limit. */
    muxraft_config_init(&base);
    base.max_pending_reads = 2;
    ln = read_cluster(&c, &base, 1);
    if (ln == NULL)
        return;
    CHECK_OK(muxraft_read_index(ln->handle, 1, NULL));
    CHECK_OK(muxraft_read_index(ln->handle, 1, NULL));
    EXPECT_FAIL(muxraft_read_index(ln->handle, 1, NULL), MUXRAFT_BUSY);
    CHECK(strstr(muxraft_last_error(), "reads pending on the node") != NULL);
    s = stats_of(ln->handle);
    CHECK(s.reads == 2 && s.pending_reads == 2 && s.reads_refused_busy == 1);
    CHECK(tick_until_reads(&c, ln, 2));
    CHECK_OK(muxraft_read_index(ln->handle, 1, NULL));
    CHECK(tick_until_reads(&c, ln, 3));
    CHECK(stats_of(ln->handle).reads_served == 3);
    cu_free(&c);

    /* 0: no limit (the group's and the node's). */
    muxraft_config_init(&base);
    base.max_pending_reads_per_group = 0;
    base.max_pending_reads = 0;
    ln = read_cluster(&c, &base, 1);
    if (ln == NULL)
        return;
    int accepted = 0;
    for (int i = 0; i < 5000; i++)
        accepted += muxraft_read_index(ln->handle, 1, NULL) == MUXRAFT_OK;
    CHECK(accepted == 5000); /* past the default 4096 per group */
    CHECK(tick_until_reads(&c, ln, 5000));
    s = stats_of(ln->handle);
    CHECK(s.reads_served == 5000 && s.pending_reads == 0 && s.reads_refused_busy == 0);
    cu_free(&c);
}

/* Node-level liveness as the host sees it: the peers of a node, whether it
 * hears each and their epochs; misuse refused. */
static void test_peers(void)
{
    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;
    CHECK(config.quiesce); /* on by default */
    muxraft_node *node = NULL;
    CHECK_OK(muxraft_node_new(&config, NULL, &node));
    if (node == NULL)
        return;
    size_t count = 99;
    CHECK_OK(muxraft_node_peers(node, NULL, 0, &count));
    CHECK(count == 0); /* no group: no peer */
    const uint64_t members[] = {1, 2, 3};
    CHECK_OK(muxraft_group_create(node, 9, 1, members, 3));
    muxraft_peer peers[4];
    memset(peers, 0xAB, sizeof peers);
    CHECK_OK(muxraft_node_peers(node, peers, 4, &count));
    CHECK(count == 2);
    CHECK(peers[0].node_id == 2 && peers[0].heard == 1 && peers[0].epoch == 1);
    CHECK(peers[1].node_id == 3 && peers[1].heard == 1 && peers[1].epoch == 1);
    /* Nothing heard from either for an election timeout: both lost. */
    for (uint32_t i = 0; i <= config.election_ticks; i++)
        CHECK_OK(muxraft_tick(node));
    memset(peers, 0, sizeof peers);
    CHECK_OK(muxraft_node_peers(node, peers, 1, &count));
    CHECK(count == 2); /* all of them counted, one written */
    CHECK(peers[0].node_id == 2 && peers[0].heard == 0 && peers[0].epoch == 2);
    CHECK(peers[1].node_id == 0); /* untouched */
    muxraft_stats s = stats_of(node);
    CHECK(s.peers == 2 && s.peers_heard == 0 && s.peers_lost == 2);
    CHECK(s.groups_awake == 1 && s.groups_quiesced == 0);
    EXPECT_FAIL(muxraft_node_peers(node, NULL, 1, &count), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_peers(node, peers, 4, NULL), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_peers(NULL, peers, 4, &count), MUXRAFT_INVALID_ARGUMENT);
    muxraft_node_free(node);
}

/* The node's metrics text (muxraft_node_metrics_text), NUL-terminated in a
 * buffer from malloc; NULL (with the failure counted) if it cannot be had. */
static char *metrics_of(muxraft_node *node)
{
    size_t needed = 0;
    EXPECT_FAIL(muxraft_node_metrics_text(node, NULL, 0, &needed), MUXRAFT_TOO_LARGE);
    CHECK(needed > 1);
    /* The counters may move between the two calls: some headroom. */
    size_t len = needed + 1024;
    char *buf = (char *)xmalloc(len);
    size_t again = 0;
    CHECK_OK(muxraft_node_metrics_text(node, buf, len, &again));
    CHECK(again >= needed && again <= len && strlen(buf) + 1 == again);
    return buf;
}

/*
 * muxraft_node_metrics_text: the size asked with NULL and 0; a buffer one
 * byte short refused with MUXRAFT_TOO_LARGE and only an empty string written;
 * node-level samples with the node label, per-peer liveness; per-group series
 * only while the node hosts at most metrics_per_group_max groups. With
 * MUXRAFT_METRICS_OUT set, node 1's text of a live three-node cluster is
 * written there for tests/c/check_metrics.py (a real Prometheus parser).
 */
static void test_metrics_text(void)
{
    muxraft_config base;
    muxraft_config_init(&base);
    CHECK(base.metrics_per_group_max == 0); /* per-group series off */
    base.metrics_per_group_max = 4;
    cu_cluster c;
    cu_node *ln = read_cluster(&c, &base, 1);
    if (ln == NULL)
        return;
    CHECK(cu_create_group(&c, 2) && cu_create_group(&c, 3));
    uint64_t pid = 0;
    CHECK_OK(muxraft_propose(ln->handle, 1, bytes_of("metered"), 7, &pid));
    const cu_done *d = tick_until_done(&c, ln, pid);
    CHECK(d && d->status == MUXRAFT_OK);
    muxraft_node *n1 = cu_node_by_id(&c, 1)->handle;

    char *text = metrics_of(n1);
    CHECK(strstr(text, "# TYPE muxraft_groups gauge\nmuxraft_groups{node=\"1\"} 3\n") != NULL);
    CHECK(strstr(text, "# TYPE muxraft_proposals_total counter\n") != NULL);
    CHECK(strstr(text, "muxraft_peer_heard{node=\"1\",peer=\"2\"} 1\n") != NULL);
    CHECK(strstr(text, "muxraft_group_term{node=\"1\",group=\"3\"} ") != NULL);

    /* One byte short: refused, the size said again, only "" written. */
    size_t n = strlen(text);
    char *small = (char *)xmalloc(n);
    memset(small, 'x', n);
    size_t needed = 0;
    EXPECT_FAIL(muxraft_node_metrics_text(n1, small, n, &needed), MUXRAFT_TOO_LARGE);
    CHECK(needed >= n + 1);
    CHECK(small[0] == '\0' && (n < 2 || small[1] == 'x'));
    free(small);
    EXPECT_FAIL(muxraft_node_metrics_text(n1, NULL, 16, &needed), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_node_metrics_text(NULL, NULL, 0, &needed), MUXRAFT_INVALID_ARGUMENT);

    const char *out = getenv("MUXRAFT_METRICS_OUT");
    if (out != NULL && out[0] != '\0') {
        FILE *f = fopen(out, "w");
        CHECK(f != NULL);
        if (f) {
            CHECK(fputs(text, f) >= 0);
            CHECK(fclose(f) == 0);
        }
    }
    free(text);

    /* Past the switch: node-level series only. */
    CHECK(cu_create_group(&c, 4) && cu_create_group(&c, 5));
    text = metrics_of(n1);
    CHECK(strstr(text, "muxraft_groups{node=\"1\"} 5\n") != NULL);
    CHECK(strstr(text, "group=\"") == NULL);
    free(text);

    /* A stopped node still answers (as it was when it stopped). */
    CHECK_OK(muxraft_node_stop(n1));
    text = metrics_of(n1);
    CHECK(strstr(text, "muxraft_groups{node=\"1\"} 5\n") != NULL);
    free(text);
    cu_free(&c);
}

/* ---- membership changes ------------------------------------------------------ */

/* The node among `ids` (n of them) that leads group `g`, if exactly one of
 * them does and every one of them names it; 0 otherwise. Unlike cu_leader,
 * nodes outside `ids` (not members, or not yet) are not asked. */
static uint64_t leader_among(cu_cluster *c, uint64_t g, const uint64_t *ids, size_t n)
{
    uint64_t leader = 0;
    size_t leading = 0;
    for (size_t i = 0; i < n; i++) {
        muxraft_group_info info;
        muxraft_group_info_init(&info);
        if (muxraft_group_status(cu_node_by_id(c, ids[i])->handle, g, &info) != MUXRAFT_OK)
            return 0;
        if (info.role == MUXRAFT_LEADER) {
            leader = ids[i];
            leading++;
        }
    }
    if (leading != 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        muxraft_group_info info;
        muxraft_group_info_init(&info);
        if (muxraft_group_status(cu_node_by_id(c, ids[i])->handle, g, &info) != MUXRAFT_OK ||
            info.leader_id != leader)
            return 0;
    }
    return leader;
}

static uint64_t wait_leader_among(cu_cluster *c, uint64_t g, const uint64_t *ids, size_t n)
{
    for (int t = 0; t <= MAX_TICKS; t++) {
        const uint64_t l = leader_among(c, g, ids, n);
        if (l != 0)
            return l;
        if (!cu_tick(c))
            return 0;
    }
    return 0;
}

/* Four host-driven nodes (with `base` settings, NULL: defaults), group `g`
 * created on nodes 1-3 (node 4 is free to join): its leader, or 0 (checks
 * failed and the cluster is freed). */
static uint64_t start_trio_of_four(cu_cluster *c, uint64_t g, const muxraft_config *base)
{
    if (!cu_init(c, 4, 0, base)) {
        CHECK(!"cu_init");
        return 0;
    }
    const uint64_t trio[] = {1, 2, 3};
    for (uint64_t id = 1; id <= 3; id++)
        CHECK_OK(muxraft_group_create(cu_node_by_id(c, id)->handle, g, 1, trio, 3));
    const uint64_t l = wait_leader_among(c, g, trio, 3);
    CHECK(l != 0);
    if (l == 0)
        cu_free(c);
    return l;
}

/* The last membership node `id` reported for `g` has exactly `count`
 * members, every one a voter, `absent` (0: none) not among them. */
static bool reported_voters(cu_cluster *c, uint64_t id, uint64_t g, size_t count,
                            uint64_t absent)
{
    const cu_members *m = cu_last_members(cu_node_by_id(c, id), g);
    if (m == NULL || m->count != count)
        return false;
    for (size_t i = 0; i < m->count; i++)
        if (m->members[i].role != MUXRAFT_VOTER || m->members[i].node_id == absent)
            return false;
    return true;
}

/* `members_changed` on node `n` reported memberships of `g` at increasing
 * indexes, each listing its voters first, and every one with
 * match_index 0. */
static bool memberships_in_order(const cu_node *n, uint64_t g)
{
    uint64_t last = 0;
    for (size_t k = 0; k < n->n_memberships; k++) {
        const cu_members *m = &n->memberships[k];
        if (m->group_id != g)
            continue;
        if (m->index <= last)
            return false;
        last = m->index;
        bool voters = true;
        for (size_t i = 0; i < m->count && i < CU_MAX_MEMBERS; i++) {
            if (m->members[i].match_index != 0)
                return false;
            if (m->members[i].role != MUXRAFT_VOTER)
                voters = false;
            else if (!voters)
                return false;
        }
    }
    return true;
}

/*
 * A group of nodes 1..3 grows to node 4 and loses its leader:
 * - node 4 joins (muxraft_group_join: empty, no members, no campaign) and
 *   the leader adds it as MUXRAFT_PROMOTABLE; the leader lists it at once;
 *   a second change meanwhile is MUXRAFT_BUSY;
 * - every node, node 4 included, reports through members_changed the
 *   membership with 4 voters (node 4 promoted once caught up), and node 4
 *   applied the entries proposed before it joined, at their indexes;
 * - muxraft_group_members on the leader shows each member's match_index
 *   (0 on a follower);
 * - the leader removes itself: another of nodes 1..4 is elected (its
 *   role_changed says so), every remaining node reports 3 voters without
 *   it, and so does the old leader, which no longer takes part.
 * Refused at once: MUXRAFT_NOT_LEADER on a follower, MUXRAFT_INVALID_ARGUMENT
 * for removing a node that is no member, adding member 0 or an unknown
 * role.
 */
static void test_membership(void)
{
    enum { G = 1 };
    cu_cluster c;
    const uint64_t l = start_trio_of_four(&c, G, NULL);
    if (l == 0)
        return;
    cu_node *ln = cu_node_by_id(&c, l), *n4 = cu_node_by_id(&c, 4);
    cu_node *fn = cu_node_by_id(&c, l % 3 + 1);
    propose_str(&c, l, G, "a");
    propose_str(&c, l, G, "b");
    propose_str(&c, l, G, "c");
    for (uint64_t id = 1; id <= 3; id++)
        CHECK(wait_node_applied(&c, id, G, 3));
    /* Creation reports no membership: it was given, not applied. */
    CHECK(ln->n_memberships == 0);

    /* Node 4's empty replica: no member, no leader, never a candidate. */
    CHECK_OK(muxraft_group_join(n4->handle, G, 1));
    EXPECT_FAIL(muxraft_group_join(n4->handle, G, 1), MUXRAFT_ALREADY_EXISTS);
    size_t count = 99;
    CHECK_OK(muxraft_group_members(n4->handle, G, NULL, 0, &count));
    CHECK(count == 0);
    /* Sizing a group with members: MUXRAFT_TOO_LARGE and the count. */
    EXPECT_FAIL(muxraft_group_members(ln->handle, G, NULL, 0, &count), MUXRAFT_TOO_LARGE);
    CHECK(count == 3);
    for (int t = 0; t < 30; t++)
        CHECK(cu_tick(&c));
    CHECK(n4->campaigns == 0 && info_of(n4->handle, G).role == MUXRAFT_FOLLOWER);
    CHECK(n4->applied[G].n == 0); /* nobody sends it anything yet */

    EXPECT_FAIL(muxraft_group_add_member(fn->handle, G, 4, MUXRAFT_PROMOTABLE),
                MUXRAFT_NOT_LEADER);
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, G, 0, MUXRAFT_PROMOTABLE),
                MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, G, 4, 7), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, G, fn->id, MUXRAFT_VOTER),
                MUXRAFT_INVALID_ARGUMENT); /* already a voter */
    EXPECT_FAIL(muxraft_group_remove_member(ln->handle, G, 9), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_FAIL(muxraft_group_remove_member(fn->handle, G, 3), MUXRAFT_NOT_LEADER);
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, 99, 4, MUXRAFT_PROMOTABLE),
                MUXRAFT_NOT_FOUND);

    CHECK_OK(muxraft_group_add_member(ln->handle, G, 4, MUXRAFT_PROMOTABLE));
    /* In the leader's log, so listed at once, committed or not. */
    muxraft_member m[CU_MAX_MEMBERS];
    CHECK_OK(muxraft_group_members(ln->handle, G, m, CU_MAX_MEMBERS, &count));
    CHECK(count == 4 && m[3].node_id == 4 && m[3].role == MUXRAFT_PROMOTABLE);
    /* One change at a time. */
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, G, 4, MUXRAFT_VOTER), MUXRAFT_BUSY);
    EXPECT_FAIL(muxraft_group_remove_member(ln->handle, G, fn->id), MUXRAFT_BUSY);

    bool done = false;
    for (int t = 0; t <= MAX_TICKS && !done; t++) {
        done = n4->applied[G].n >= 3;
        for (uint64_t id = 1; id <= 4; id++)
            done = done && reported_voters(&c, id, G, 4, 0);
        if (!done)
            CHECK(cu_tick(&c));
    }
    CHECK(done);
    if (!done) {
        cu_free(&c);
        return;
    }
    /* The entries proposed before it joined, at the same indexes. */
    CHECK(cu_entry_is(&c, 4, G, 0, "a") && cu_entry_is(&c, 4, G, 1, "b") &&
          cu_entry_is(&c, 4, G, 2, "c"));
    CHECK(n4->applied[G].v[2].index == ln->applied[G].v[2].index);
    /* The same memberships reported everywhere, in log order; node 4 first
     * learned the one that added it (as promotable), then its promotion. */
    const cu_members *last = cu_last_members(ln, G);
    for (uint64_t id = 1; id <= 4; id++) {
        const cu_node *n = cu_node_by_id(&c, id);
        CHECK(memberships_in_order(n, G));
        CHECK(cu_last_members(n, G)->index == last->index);
    }
    CHECK(n4->n_memberships >= 1 && n4->memberships[0].count == 4 &&
          cu_has_member(&n4->memberships[0], 4, MUXRAFT_PROMOTABLE));
    CHECK(ln->n_memberships == 2 && cu_has_member(&ln->memberships[0], 4, MUXRAFT_PROMOTABLE));
    CHECK(n4->campaigns == 0);

    /* A proposal now needs 3 of 4; node 4 applies it too. */
    propose_str(&c, l, G, "d");
    CHECK(cu_wait_applied(&c, G, 4, MAX_TICKS));
    CHECK(cu_logs_agree(&c, G));
    for (int t = 0; t < 5; t++)
        CHECK(cu_tick(&c));

    /* match_index on the leader: every member holds the leader's log. */
    const muxraft_group_info li = info_of(ln->handle, G);
    CHECK_OK(muxraft_group_members(ln->handle, G, m, CU_MAX_MEMBERS, &count));
    CHECK(count == 4);
    for (size_t i = 0; i < count && i < CU_MAX_MEMBERS; i++) {
        CHECK(m[i].node_id == i + 1 && m[i].role == MUXRAFT_VOTER);
        CHECK(m[i].match_index == li.last_index);
    }
    /* On a follower: the members, with no match_index. */
    CHECK_OK(muxraft_group_members(n4->handle, G, m, CU_MAX_MEMBERS, &count));
    CHECK(count == 4 && m[3].node_id == 4 && m[3].match_index == 0 && m[0].match_index == 0);
    /* Too small an array: the count, and as many as fit. */
    EXPECT_FAIL(muxraft_group_members(ln->handle, G, m, 2, &count), MUXRAFT_TOO_LARGE);
    CHECK(count == 4 && m[0].node_id == 1 && m[1].node_id == 2);

    /* The leader removes itself. */
    size_t roles_seen[5];
    for (uint64_t id = 1; id <= 4; id++)
        roles_seen[id] = cu_node_by_id(&c, id)->role_changes;
    CHECK_OK(muxraft_group_remove_member(ln->handle, G, l));
    EXPECT_FAIL(muxraft_group_add_member(ln->handle, G, 5, MUXRAFT_NONVOTER), MUXRAFT_BUSY);
    uint64_t rest[3];
    size_t n_rest = 0;
    for (uint64_t id = 1; id <= 4; id++)
        if (id != l)
            rest[n_rest++] = id;
    uint64_t nl = 0;
    done = false;
    for (int t = 0; t <= MAX_TICKS && !done; t++) {
        nl = leader_among(&c, G, rest, 3);
        done = nl != 0 && reported_voters(&c, l, G, 3, l);
        for (size_t i = 0; i < 3; i++)
            done = done && reported_voters(&c, rest[i], G, 3, l);
        if (!done)
            CHECK(cu_tick(&c));
    }
    CHECK(done);
    if (!done) {
        cu_free(&c);
        return;
    }
    CHECK(nl != l);
    /* role_changed told the new leader it leads, and the others who. */
    for (size_t i = 0; i < 3; i++) {
        const cu_node *n = cu_node_by_id(&c, rest[i]);
        bool told = false;
        for (size_t k = roles_seen[rest[i]]; k < n->role_changes; k++) {
            const cu_role *r = &n->roles[k];
            if (r->group_id == G && r->leader_id == nl &&
                (r->role == MUXRAFT_LEADER) == (rest[i] == nl))
                told = true;
        }
        CHECK(told);
    }
    /* The old leader stepped down and no longer takes part. */
    CHECK(ln->role_changes > roles_seen[l]);
    CHECK(info_of(ln->handle, G).role != MUXRAFT_LEADER);
    uint64_t pid = 0;
    EXPECT_FAIL(muxraft_propose(ln->handle, G, bytes_of("x"), 1, &pid), MUXRAFT_NOT_LEADER);
    CHECK_OK(muxraft_group_members(ln->handle, G, m, CU_MAX_MEMBERS, &count));
    CHECK(count == 3);
    CHECK_OK(muxraft_group_remove(ln->handle, G));

    /* The three go on without it. */
    cu_node *nn = cu_node_by_id(&c, nl);
    const size_t before = nn->applied[G].n;
    propose_str(&c, nl, G, "e");
    bool applied = false;
    for (int t = 0; t <= MAX_TICKS && !applied; t++) {
        applied = true;
        for (size_t i = 0; i < 3; i++)
            applied = applied && cu_node_by_id(&c, rest[i])->applied[G].n > before;
        if (!applied)
            CHECK(cu_tick(&c));
    }
    CHECK(applied);
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/*
 * The membership survives restarts: node 2 joins the group node 1 created
 * alone and is promoted; node 1 then takes a snapshot that covers the
 * change (so that its log no longer holds it). Both are created again on
 * their data directories: each lists the two voters before any tick, they
 * elect a leader between them and commit together.
 */
static void test_membership_restart(void)
{
    enum { G = 3 };
    char dir[256];
    if (!cu_temp_dir(dir, sizeof dir)) {
        CHECK(!"cu_temp_dir");
        return;
    }
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    cu_cluster c;
    if (!cu_init_durable(&c, 2, 0, &base, dir)) {
        CHECK(!"cu_init_durable");
        cu_remove_dir(dir);
        return;
    }
    cu_node *n1 = cu_node_by_id(&c, 1), *n2 = cu_node_by_id(&c, 2);
    const uint64_t one[] = {1}, both[] = {1, 2};
    CHECK_OK(muxraft_group_create(n1->handle, G, 7, one, 1));
    CHECK_OK(muxraft_group_join(n2->handle, G, 7));
    CHECK(wait_leader_among(&c, G, one, 1) == 1);
    propose_str(&c, 1, G, "a");
    CHECK(wait_node_applied(&c, 1, G, 1));
    CHECK_OK(muxraft_group_add_member(n1->handle, G, 2, MUXRAFT_PROMOTABLE));
    bool done = false;
    for (int t = 0; t <= MAX_TICKS && !done; t++) {
        done = n2->applied[G].n >= 1 && reported_voters(&c, 1, G, 2, 0) &&
               reported_voters(&c, 2, G, 2, 0);
        if (!done)
            CHECK(cu_tick(&c));
    }
    CHECK(done);
    propose_str(&c, 1, G, "b");
    CHECK(cu_wait_applied(&c, G, 2, MAX_TICKS));
    const uint64_t snap = info_of(n1->handle, G).applied_index;
    CHECK(snap > cu_last_members(n1, G)->index);
    CHECK_OK(muxraft_group_snapshot(n1->handle, G, snap, bytes_of("ab"), 2));
    CHECK(info_of(n1->handle, G).first_index == snap + 1);

    CHECK(cu_restart(&c, 1, false) && cu_restart(&c, 2, false));
    if (n1->handle == NULL || n2->handle == NULL) {
        cu_free(&c);
        cu_remove_dir(dir);
        return;
    }
    CHECK(n1->n_restores == 1);
    for (uint64_t id = 1; id <= 2; id++) {
        muxraft_member m[CU_MAX_MEMBERS];
        size_t count = 0;
        CHECK_OK(muxraft_group_members(cu_node_by_id(&c, id)->handle, G, m, CU_MAX_MEMBERS,
                                       &count));
        CHECK(count == 2 && m[0].node_id == 1 && m[1].node_id == 2 &&
              m[0].role == MUXRAFT_VOTER && m[1].role == MUXRAFT_VOTER);
    }
    const uint64_t l = wait_leader_among(&c, G, both, 2);
    CHECK(l != 0);
    if (l != 0) {
        const size_t n1_before = n1->applied[G].n, n2_before = n2->applied[G].n;
        propose_str(&c, l, G, "c");
        CHECK(wait_node_applied(&c, 1, G, n1_before + 1) &&
              wait_node_applied(&c, 2, G, n2_before + 1));
        CHECK(cu_entry_is(&c, 1, G, n1->applied[G].n - 1, "c") &&
              cu_entry_is(&c, 2, G, n2->applied[G].n - 1, "c"));
    }
    CHECK(c.step_failures == 0);
    cu_free(&c);
    cu_remove_dir(dir);
}

/*
 * A replica that joins after its leader compacted the log past the
 * membership gets it through the snapshot: `restore` comes first, then
 * members_changed with the membership the snapshot carried (node 4
 * promotable), then its promotion; it applies only what follows the
 * snapshot.
 */
static void test_membership_by_snapshot(void)
{
    enum { G = 2 };
    muxraft_config base;
    muxraft_config_init(&base);
    base.snapshot_trailing_entries = 0;
    cu_cluster c;
    const uint64_t l = start_trio_of_four(&c, G, &base);
    if (l == 0)
        return;
    cu_node *ln = cu_node_by_id(&c, l), *n4 = cu_node_by_id(&c, 4);
    propose_str(&c, l, G, "a");
    propose_str(&c, l, G, "b");
    CHECK(wait_node_applied(&c, l, G, 2));
    const uint64_t snap = info_of(ln->handle, G).applied_index;
    CHECK_OK(muxraft_group_snapshot(ln->handle, G, snap, bytes_of("ab"), 2));
    CHECK(info_of(ln->handle, G).first_index == snap + 1);

    CHECK_OK(muxraft_group_join(n4->handle, G, 1));
    CHECK_OK(muxraft_group_add_member(ln->handle, G, 4, MUXRAFT_PROMOTABLE));
    propose_str(&c, l, G, "c");
    bool done = false;
    for (int t = 0; t <= MAX_TICKS && !done; t++) {
        done = n4->applied[G].n >= 1 && reported_voters(&c, 4, G, 4, 0);
        if (!done)
            CHECK(cu_tick(&c));
    }
    CHECK(done);
    CHECK(n4->n_restores == 1);
    if (n4->n_restores == 1) {
        const cu_restore *r = &n4->restores[0];
        CHECK(r->group_id == G && r->index == snap && bytes_equal(r->data, r->len, bytes_of("ab"), 2));
        CHECK(cu_applied_after_restore(n4, r));
    }
    /* Every membership came after the restore, in log order, node 4 as
     * promotable (the change proposed after the snapshot), then as a
     * voter; never the snapshot's own membership (nodes 1..3), which
     * members_changed's comment would read as "this replica was removed"
     * (multi::node::members_event_tests). */
    bool promotable = false;
    for (size_t k = 0; k < n4->n_memberships; k++) {
        CHECK(n4->memberships[k].restores_before == 1);
        CHECK(cu_has_member(&n4->memberships[k], 4, MUXRAFT_PROMOTABLE) ||
              cu_has_member(&n4->memberships[k], 4, MUXRAFT_VOTER));
        if (cu_has_member(&n4->memberships[k], 4, MUXRAFT_PROMOTABLE))
            promotable = n4->memberships[k].index > snap;
    }
    CHECK(promotable);
    CHECK(memberships_in_order(n4, G));
    /* What follows the snapshot, and nothing before it. */
    CHECK(n4->applied[G].n == 1 && cu_entry_is(&c, 4, G, 0, "c"));
    CHECK(stats_of(n4->handle).snapshots_installed == 1);
    CHECK(c.step_failures == 0);
    cu_free(&c);
}

/* ---- key metrics: read while the node is blocked ------------------------- */

/* An embedded node whose apply callback, at index `block_at`, reads the key
 * metrics itself, then blocks until the main thread releases it. */
typedef struct km_blocker {
    muxraft_node *node;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t block_at;
    bool inside, released;
    muxraft_status from_callback;
    muxraft_key_metrics in_callback;
} km_blocker;

static void km_apply(void *userdata, uint64_t group_id, uint64_t index,
                     const uint8_t *data, size_t len)
{
    km_blocker *b = (km_blocker *)userdata;
    (void)data;
    (void)len;
    if (index != b->block_at)
        return;
    muxraft_key_metrics_init(&b->in_callback);
    b->from_callback = muxraft_group_key_metrics(b->node, group_id, &b->in_callback);
    pthread_mutex_lock(&b->mu);
    b->inside = true;
    pthread_cond_broadcast(&b->cv);
    while (!b->released)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

typedef struct km_read {
    muxraft_node *node;
    uint64_t group_id;
    muxraft_status status;
    muxraft_key_metrics m;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} km_read;

static void *km_reader(void *arg)
{
    km_read *r = (km_read *)arg;
    muxraft_key_metrics m;
    muxraft_key_metrics_init(&m);
    const muxraft_status s = muxraft_group_key_metrics(r->node, r->group_id, &m);
    pthread_mutex_lock(&r->mu);
    r->status = s;
    r->m = m;
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Wait on `cv` until `*flag`, for at most `ms`; true if it was set. */
static bool wait_flag(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *flag, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(mu);
    while (!*flag && pthread_cond_timedwait(cv, mu, &until) == 0)
        ;
    const bool set = *flag;
    pthread_mutex_unlock(mu);
    return set;
}

static muxraft_key_metrics key_metrics_of(muxraft_node *node, uint64_t g)
{
    muxraft_key_metrics m;
    muxraft_key_metrics_init(&m);
    CHECK_OK(muxraft_group_key_metrics(node, g, &m));
    return m;
}

/*
 * muxraft_group_key_metrics never waits for the node: on an embedded node
 * whose pass is blocked inside an apply callback, a read from another
 * thread completes (within 5 s; the callback stays blocked until after it)
 * and shows the pass in flight: the entry committed, not yet applied. A
 * read from inside the callback answers too. Once released, the pass ends
 * and publishes the entry applied. Unknown groups answer NOT_FOUND.
 */
static void test_key_metrics_while_a_callback_blocks(void)
{
    enum { G = 9 };
    km_blocker b;
    memset(&b, 0, sizeof b);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.block_at = UINT64_MAX;
    muxraft_config c;
    muxraft_config_init(&c);
    c.node_id = 1;
    c.tick_ms = 5;
    muxraft_callbacks cb;
    muxraft_callbacks_init(&cb);
    cb.userdata = &b;
    cb.apply = km_apply;
    CHECK_OK(muxraft_node_new(&c, &cb, &b.node));
    if (b.node == NULL)
        return;
    const uint64_t self[] = {1};
    CHECK_OK(muxraft_group_create(b.node, G, 77, self, 1));
    muxraft_key_metrics m = key_metrics_of(b.node, G);
    CHECK(m.incarnation == 77 && m.voters == 1 && m.role == MUXRAFT_FOLLOWER);
    CHECK_OK(muxraft_node_start(b.node, "127.0.0.1:0"));
    for (int i = 0; i < 2000 && key_metrics_of(b.node, G).role != MUXRAFT_LEADER; i++)
        sleep_ms(5);
    m = key_metrics_of(b.node, G);
    CHECK(m.role == MUXRAFT_LEADER && m.leader_id == 1 && m.term >= 1);
    /* Its no-op applied: the next entry is the one proposed below. */
    for (int i = 0; i < 2000 && key_metrics_of(b.node, G).applied_index < m.last_index; i++)
        sleep_ms(5);
    const uint64_t target = key_metrics_of(b.node, G).last_index + 1;
    pthread_mutex_lock(&b.mu);
    b.block_at = target;
    pthread_mutex_unlock(&b.mu);
    CHECK_OK(muxraft_propose(b.node, G, bytes_of("held"), 4, NULL));
    const bool inside = wait_flag(&b.mu, &b.cv, &b.inside, 20000);
    CHECK(inside);

    km_read r;
    memset(&r, 0, sizeof r);
    r.node = b.node;
    r.group_id = G;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, km_reader, &r) == 0);
    const bool read_while_blocked = wait_flag(&r.mu, &r.cv, &r.done, 5000);
    /* Only now is the callback released. */
    pthread_mutex_lock(&b.mu);
    const bool still_inside = b.inside && !b.released;
    b.released = true;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    pthread_join(t, NULL);
    CHECK(read_while_blocked && still_inside);
    CHECK(r.status == MUXRAFT_OK);
    CHECK(r.m.role == MUXRAFT_LEADER && r.m.incarnation == 77);
    CHECK(r.m.last_index == target && r.m.commit_index == target);
    CHECK(r.m.applied_index == target - 1); /* the pass applying it is blocked */
    CHECK(r.m.log_bytes >= 4 && r.m.quiesced == 0);
    CHECK(b.from_callback == MUXRAFT_OK);
    CHECK(b.in_callback.commit_index == target && b.in_callback.applied_index == target - 1);

    for (int i = 0; i < 2000 && key_metrics_of(b.node, G).applied_index < target; i++)
        sleep_ms(5);
    CHECK(key_metrics_of(b.node, G).applied_index == target);
    muxraft_key_metrics none;
    muxraft_key_metrics_init(&none);
    EXPECT_FAIL(muxraft_group_key_metrics(b.node, G + 1, &none), MUXRAFT_NOT_FOUND);
    CHECK_OK(muxraft_node_stop(b.node));
    CHECK(key_metrics_of(b.node, G).applied_index == target);
    muxraft_node_free(b.node);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

int main(void)
{
    /* Before anything failed on this thread, the message is empty. */
    CHECK(muxraft_last_error() != NULL && muxraft_last_error()[0] == '\0');
    /* The primers work (else the freshness checks would prove nothing). */
    prime_last_error(PRIME_ZERO_NODE_ID);
    char other[sizeof primed];
    snprintf(other, sizeof other, "%s", primed);
    prime_last_error(PRIME_ELECTION_TICKS);
    CHECK(other[0] != '\0' && primed[0] != '\0' && strcmp(other, primed) != 0);

    RUN(test_version);
    RUN(test_status_str);
    RUN(test_config_init);
    RUN(test_node_new_misuse);
    RUN(test_null_node);
    RUN(test_init_functions);
    RUN(test_struct_size_unset);
    RUN(test_init_with_an_older_size);
    RUN(test_older_config);
    RUN(test_older_callbacks);
    RUN(test_older_stats_and_info);
    RUN(test_single_node);
    RUN(test_group_zero);
    RUN(test_group_zero_cluster);
    RUN(test_cluster_misuse);
    RUN(test_remove_pending);
    RUN(test_liveness_flag);
    RUN(test_incarnation_mismatch);
    RUN(test_reentrancy);
    RUN(test_reentrancy_chain);
    RUN(test_direct_delivery);
    RUN(test_free_busy);
    RUN(test_embedded_lifecycle);
    RUN(test_cluster_secret);
    RUN(test_tls);
    RUN(test_snapshot_single_node);
    RUN(test_snapshot_from_apply);
    RUN(test_snapshot_needed);
    RUN(test_snapshot_restart);
    RUN(test_snapshot_install);
    RUN(test_rejoin);
    RUN(test_data_dir_in_use);
    RUN(test_backpressure);
    RUN(test_peers);
    RUN(test_read_index);
    RUN(test_transfer_leader);
    RUN(test_balance_leaders);
    RUN(test_read_index_busy);
    RUN(test_metrics_text);
    RUN(test_membership);
    RUN(test_membership_restart);
    RUN(test_membership_by_snapshot);
    RUN(test_key_metrics_while_a_callback_blocks);

    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
