/*
 * cluster_util.h: a host-driven muxraft cluster in one process, for tests.
 *
 * Nodes 1..n share one FIFO "wire": each node's `send` callback appends a
 * copy of the frame, and cu_drain() steps every queued frame into its
 * destination until the queue is empty. Time only moves with cu_tick().
 * The callbacks record what each node applied and every proposal outcome.
 *
 * Written in the common subset of C99 and C++ so that the tests can be
 * compiled as both.
 */
#ifndef MUXRAFT_TESTS_CLUSTER_UTIL_H
#define MUXRAFT_TESTS_CLUSTER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "muxraft.h"

#define CU_MAX_NODES 5
#define CU_MAX_GROUPS 64 /* group ids 0..CU_MAX_GROUPS are recorded */

typedef struct cu_frame {
    struct cu_frame *next;
    uint64_t from, to;
    size_t len;
    uint8_t *bytes;
    bool liveness; /* as the send callback said */
} cu_frame;

/* One entry as `apply` reported it. */
typedef struct cu_entry {
    uint64_t index;
    size_t len;
    uint8_t *data;
} cu_entry;

typedef struct cu_log {
    cu_entry *v;
    size_t n, cap;
} cu_log;

/* One `proposal_done` report. */
typedef struct cu_done {
    uint64_t group_id, proposal_id, index;
    muxraft_status status;
} cu_done;

typedef struct cu_node cu_node;
typedef struct cu_cluster cu_cluster;

/* Test hooks, called after the event was recorded. */
typedef void (*cu_apply_hook)(cu_node *n, uint64_t group_id, uint64_t index,
                              const uint8_t *data, size_t len);
typedef void (*cu_done_hook)(cu_node *n, const cu_done *done);

struct cu_node {
    cu_cluster *cluster;
    uint64_t id;
    muxraft_node *handle;
    cu_log applied[CU_MAX_GROUPS + 1]; /* by group id */
    cu_done *done;                     /* proposal outcomes, in order */
    size_t n_done, cap_done;
    size_t role_changes;
    /* Frames this node's send callback handed over, by its liveness flag. */
    uint64_t sent_liveness, sent_bulk;
};

struct cu_cluster {
    size_t n_nodes;
    cu_node nodes[CU_MAX_NODES];
    cu_frame *head, *tail;
    size_t queued;
    /* muxraft_step calls made by cu_drain that did not return MUXRAFT_OK. */
    size_t step_failures;
    cu_apply_hook on_apply;
    cu_done_hook on_done;
    void *hook_data;
};

/* Start nodes 1..n_nodes (ids), from `base` if not NULL (its node_id is
 * replaced) or from the defaults. Returns false, with the cause printed, if
 * a node cannot be created. */
bool cu_init(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
             const muxraft_config *base);
void cu_free(cu_cluster *c);

/* Create group `group_id` (any id, 0 included) on every node, with every
 * node as a member, incarnation 1. */
bool cu_create_group(cu_cluster *c, uint64_t group_id);
/* Remove group `group_id` from every node. */
bool cu_remove_group(cu_cluster *c, uint64_t group_id);

cu_node *cu_node_by_id(cu_cluster *c, uint64_t id);

/* The wire. */
void cu_push(cu_cluster *c, uint64_t from, uint64_t to, const uint8_t *bytes,
             size_t len, bool liveness);
cu_frame *cu_pop(cu_cluster *c); /* NULL when empty; free with cu_frame_free */
void cu_frame_free(cu_frame *f);
cu_frame *cu_frame_copy(const cu_frame *f);

/* Deliver frames until the wire is empty. False if a step failed. */
bool cu_drain(cu_cluster *c);
/* Tick every node once, then drain. */
bool cu_tick(cu_cluster *c);

/* The node id that leads `group_id` if exactly one node is leader and every
 * node names it as leader; 0 otherwise. */
uint64_t cu_leader(cu_cluster *c, uint64_t group_id);
/* Tick until cu_leader() is non-zero; 0 after max_ticks. */
uint64_t cu_wait_leader(cu_cluster *c, uint64_t group_id, int max_ticks);

/* Tick until every node applied at least `n` entries of `group_id`. */
bool cu_wait_applied(cu_cluster *c, uint64_t group_id, size_t n, int max_ticks);

/* Every node applied the same (index, data) sequence for `group_id`. */
bool cu_logs_agree(const cu_cluster *c, uint64_t group_id);

/* Node `id`'s applied entry `k` of `group_id` equals the string `s`. */
bool cu_entry_is(const cu_cluster *c, uint64_t id, uint64_t group_id, size_t k,
                 const char *s);

/* The proposal_done report for `proposal_id` on node `n`: NULL if none; the
 * number of reports for it in *count. */
const cu_done *cu_find_done(const cu_node *n, uint64_t proposal_id,
                            size_t *count);

#endif /* MUXRAFT_TESTS_CLUSTER_UTIL_H */
