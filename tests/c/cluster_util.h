/*
 * cluster_util.h: a host-driven muxraft cluster in one process, for tests.
 *
 * Nodes 1..n share one FIFO "wire": each node's `send` callback appends a
 * copy of the frame, and cu_drain() steps every queued frame into its
 * destination until the queue is empty. Time only moves with cu_tick().
 * The callbacks record what each node applied, every role change, every
 * proposal outcome, every read outcome, every snapshot restored, every
 * snapshot_needed hint and every membership reported. A cluster made
 * by cu_init_durable gives each node a data directory of its own, and
 * cu_restart frees a node and creates it again on the same directory (or
 * on a fresh one, as after a lost disk). cu_isolate cuts one node off.
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

/* One `restore` call. `applied_before` is how many entries of the group
 * the node had applied (in its cu_log) when it came: the entries recorded
 * after it are the ones applied after the restore. */
typedef struct cu_restore {
    uint64_t group_id, index, term;
    size_t len;
    uint8_t *data;
    size_t applied_before;
} cu_restore;

/* One `snapshot_needed` call. */
typedef struct cu_hint {
    uint64_t group_id, applied, entries, bytes;
} cu_hint;

/* One `proposal_done` report. */
typedef struct cu_done {
    uint64_t group_id, proposal_id, index;
    muxraft_status status;
} cu_done;

/* One `read_done` report. `applied_n` and `last_applied` are how many
 * entries of the group the node had applied (in its cu_log), and the index
 * of the last one (0: none), when it came. */
typedef struct cu_read {
    uint64_t group_id, read_id, index;
    muxraft_status status;
    size_t applied_n;
    uint64_t last_applied;
} cu_read;

/* One `role_changed` report. */
typedef struct cu_role {
    uint64_t group_id, term, leader_id;
    muxraft_role role;
} cu_role;

#define CU_MAX_MEMBERS 8

/* One `members_changed` report (the members copied; at most
 * CU_MAX_MEMBERS of them, `count` as reported). `restores_before` is how
 * many `restore` calls the node had had when it came. */
typedef struct cu_members {
    uint64_t group_id, index;
    size_t count, restores_before;
    muxraft_member members[CU_MAX_MEMBERS];
} cu_members;

typedef struct cu_node cu_node;
typedef struct cu_cluster cu_cluster;

/* Test hooks, called after the event was recorded. */
typedef void (*cu_apply_hook)(cu_node *n, uint64_t group_id, uint64_t index,
                              const uint8_t *data, size_t len);
typedef void (*cu_done_hook)(cu_node *n, const cu_done *done);
typedef void (*cu_restore_hook)(cu_node *n, const cu_restore *r);

struct cu_node {
    cu_cluster *cluster;
    uint64_t id;
    muxraft_node *handle;
    cu_log applied[CU_MAX_GROUPS + 1]; /* by group id */
    cu_done *done;                     /* proposal outcomes, in order */
    size_t n_done, cap_done;
    size_t role_changes;
    size_t campaigns; /* role_changed to MUXRAFT_CANDIDATE (pre-vote or vote) */
    cu_role *roles;   /* `role_changed` reports, in order */
    size_t cap_roles; /* (role_changes of them) */
    cu_members *memberships; /* `members_changed` reports, in order */
    size_t n_memberships, cap_memberships;
    /* Frames this node's send callback handed over, by its liveness flag. */
    uint64_t sent_liveness, sent_bulk;
    cu_restore *restores; /* `restore` calls, in order (data copied) */
    size_t n_restores, cap_restores;
    cu_hint *hints; /* `snapshot_needed` calls, in order */
    size_t n_hints, cap_hints;
    cu_read *reads; /* `read_done` reports, in order */
    size_t n_reads, cap_reads;
    muxraft_config config; /* as created; data_dir points to dir below */
    /* 0: the node is created from `config` as it is. Otherwise from the
     * first `config_size` bytes of it, in a buffer of exactly that size
     * with struct_size set to it: a program built against an older header
     * (set it, then cu_restart). */
    size_t config_size;
    char dir[256];         /* its data directory ("" for none) */
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
    cu_restore_hook on_restore;
    void *hook_data;
    /* A node id whose frames, sent or received, cu_drain drops (0: none). */
    uint64_t isolated;
    size_t frames_dropped;
};

/* Start nodes 1..n_nodes (ids), from `base` if not NULL (its node_id is
 * replaced) or from the defaults. Returns false, with the cause printed, if
 * a node cannot be created. */
bool cu_init(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
             const muxraft_config *base);
void cu_free(cu_cluster *c);

/* Like cu_init, each node with the data directory "<dir>/node-<id>". */
bool cu_init_durable(cu_cluster *c, size_t n_nodes, uint64_t cluster_id,
                     const muxraft_config *base, const char *dir);

/* Free node `id` and create it again with the same config and callbacks
 * (its records are kept; a restore during muxraft_node_new is recorded).
 * With `wipe`, its data directory is deleted first, as after a lost disk.
 * False, with the cause printed, if it cannot be created. */
bool cu_restart(cu_cluster *c, uint64_t id, bool wipe);

/* Drop every frame from or to node `id` (0: deliver everything again). */
void cu_isolate(cu_cluster *c, uint64_t id);

/* A fresh directory under $TMPDIR (or /tmp) into `out`; false on failure. */
bool cu_temp_dir(char *out, size_t size);
/* Delete a directory and everything under it (no-op if absent). */
void cu_remove_dir(const char *path);

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

/* The read_done report for `read_id` on node `n`: NULL if none; the number
 * of reports for it in *count. */
const cu_read *cu_find_read(const cu_node *n, uint64_t read_id, size_t *count);

/* The last `members_changed` report of `group_id` on node `n`: NULL if
 * none. */
const cu_members *cu_last_members(const cu_node *n, uint64_t group_id);
/* Whether `m` lists node `id` with `role`. */
bool cu_has_member(const cu_members *m, uint64_t id, muxraft_member_role role);

/* Every node applied the same (index, data) sequence for `group_id`. */
bool cu_logs_agree(const cu_cluster *c, uint64_t group_id);

/* Node `id`'s applied entry `k` of `group_id` equals the string `s`. */
bool cu_entry_is(const cu_cluster *c, uint64_t id, uint64_t group_id, size_t k,
                 const char *s);

/* Every entry node `n` applied of r->group_id after its restore `r` (from
 * r->applied_before on) has an index above r->index. */
bool cu_applied_after_restore(const cu_node *n, const cu_restore *r);

/* The proposal_done report for `proposal_id` on node `n`: NULL if none; the
 * number of reports for it in *count. */
const cu_done *cu_find_done(const cu_node *n, uint64_t proposal_id,
                            size_t *count);

#endif /* MUXRAFT_TESTS_CLUSTER_UTIL_H */
