/*
 * muxraft_nif.c: the Erlang NIF over the muxraft C API (include/muxraft.h,
 * the only interface used here). The Erlang side is src/muxraft.erl.
 *
 * The node
 *   A node is a NIF resource (`nif_node`) holding the muxraft_node*, the
 *   owner (the process that called start_node, which receives the events),
 *   and a small state machine under `mtx`. The Erlang term returned by
 *   start_node (and carried by every event message) is that resource.
 *
 *   The muxraft_node* lives exactly as long as the resource: it is created
 *   in start_node and freed only by the resource destructor, never by
 *   stop_node, so no call can see a freed handle (a NIF call holds a
 *   reference to the resource through its argument) and nothing is freed
 *   twice. stop_node only stops: later calls answer {error, shutdown}
 *   (group_status/2, key_metrics/2 and stats/1 keep answering, as in the
 *   C API).
 *
 * Why a started node keeps itself alive
 *   In embedded mode the callbacks run on muxraft's node thread and build
 *   messages containing the resource term (enif_make_resource). Creating a
 *   new term for a resource whose reference count may already have dropped
 *   to zero is not allowed (it would resurrect an object being destroyed),
 *   and erl_nif has no "upgrade a weak reference" operation. So from a
 *   successful start until the node is stopped, the node holds one
 *   reference to its own resource (enif_keep_resource), and the resource
 *   monitors its owner: the node stops when stop_node/1 is called or when
 *   the owner process exits (like a port), and only then can the resource
 *   be garbage collected; its destructor then frees the (stopped) node.
 *   A host-driven node has no threads: its callbacks run inside NIF calls
 *   that hold the resource, so it is simply freed when garbage collected.
 *
 * Sending events
 *   Every event is built in its own process-independent environment
 *   (enif_alloc_env) and sent with enif_send. erl_nif requires caller_env
 *   to be the calling process's environment on a scheduler thread and NULL
 *   on a thread ERTS did not create. Embedded mode: callbacks run on
 *   muxraft's thread, caller_env NULL. Host-driven mode: callbacks run
 *   inside our NIF call (start_node, tick, step, propose, read_index,
 *   transfer_leader, create_group, rejoin_group, join_group, remove_group,
 *   add_member, remove_member, snapshot, stop_node), on a (dirty)
 *   scheduler thread: each such NIF stores its env in the thread-local
 *   `tls_caller_env` for the duration of the muxraft call.
 *
 * Order
 *   muxraft calls a node's callbacks one at a time, on one thread per call
 *   (its node thread in embedded mode), in the order of the events: a
 *   group's `restore` before any `apply` of a later index. Each callback
 *   sends its message before it returns, so the owner receives them in
 *   that order: `{restore, ...}` before the `{applied, ...}` that follow
 *   it.
 *   Data pointers given to callbacks are valid only during the callback, so
 *   binaries are copied (enif_make_new_binary).
 *
 * Log lines
 *   set_log_nif installs muxraft's process-wide log callback (every node of
 *   the VM). muxraft calls it on its own log thread, which ERTS did not
 *   create and on which no muxraft lock is held; it only sends
 *   {muxraft_log, Level, NodeId, GroupId | undefined, Target, Message} to
 *   the forwarder process (src/muxraft.erl), which calls logger: Erlang
 *   code never runs on muxraft's threads. muxraft_set_log_callback returns
 *   once the previous callback can no longer be called, so the previous
 *   target is freed then.
 *
 * Schedulers
 *   Every call that enters muxraft can wait: on the node's internal lock
 *   (held by the node thread while it ticks every group), on an fsync (with
 *   data_dir), on DNS and bind (start), on joining threads (stop), or run
 *   callbacks (host-driven). All of them run on dirty I/O schedulers.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <erl_nif.h>

#include "muxraft.h"

/* ---- atoms ---------------------------------------------------------------- */

static ERL_NIF_TERM am_ok, am_error, am_undefined, am_true, am_false;
static ERL_NIF_TERM am_muxraft, am_applied, am_role, am_proposal, am_send;
static ERL_NIF_TERM am_restore, am_snapshot_needed, am_read, am_members_changed;
/* node_peers keys (node_id), members keys and member roles */
static ERL_NIF_TERM am_node_id, am_heard, am_epoch;
static ERL_NIF_TERM am_match_index, am_voter, am_nonvoter, am_promotable;
static ERL_NIF_TERM am_leader, am_follower, am_candidate;
static ERL_NIF_TERM am_term, am_commit, am_last_index, am_incarnation;
static ERL_NIF_TERM am_snapshot_index, am_first_index, am_log_bytes_memory,
    am_snapshot_bytes_memory, am_log_bytes_disk, am_snapshot_bytes_disk;
/* group info and stats keys */
static ERL_NIF_TERM am_pending_proposals, am_unsynced_bytes;
/* key metrics keys */
static ERL_NIF_TERM am_log_bytes, am_voters, am_membership_index, am_quiesced;
static ERL_NIF_TERM am_invalid_argument, am_io, am_shutdown, am_unknown;
static ERL_NIF_TERM am_muxraft_log, am_warning, am_info, am_debug;
/* stats keys */
static ERL_NIF_TERM am_messages_sent, am_bytes_sent, am_messages_received,
    am_heartbeat_batches_sent, am_group_heartbeats_batched,
    am_elections_started, am_frames_rejected, am_heartbeats_sent,
    am_heartbeat_batch_responses_sent, am_heartbeat_messages_sent,
    am_heartbeat_bytes_sent, am_bytes_received, am_messages_dropped,
    am_leader_changes, am_proposals, am_proposals_committed,
    am_proposals_failed, am_entries_applied, am_groups,
    am_proposals_unknown, am_incarnation_mismatches,
    am_batches_dropped_incarnation, am_connections_established,
    am_reconnects, am_handshakes_refused, am_dial_failures,
    am_transport_frames_dropped, am_bytes_queued, am_snapshots_taken,
    am_snapshots_installed, am_snapshot_transfers_started,
    am_snapshot_transfers_failed, am_snapshot_crc_failures, am_wal_segments,
    am_wal_bytes, am_wal_segments_deleted, am_wal_bytes_rewritten,
    am_snapshot_files, am_snapshot_file_bytes, am_proposals_refused_busy,
    am_groups_awake, am_groups_quiesced, am_quiesced_total, am_wakeups_host,
    am_wakeups_leader_message, am_wakeups_follower_message,
    am_wakeups_peer_lost, am_wakeups_peer_returned, am_peers, am_peers_heard,
    am_peers_lost, am_peers_returned, am_peers_restarted, am_reads,
    am_reads_served, am_reads_failed, am_reads_refused_busy, am_pending_reads,
    am_read_rounds_sent, am_read_rounds_answered, am_compact_rows_sent,
    am_compact_rows_refused, am_groups_led, am_transfers_started,
    am_peers_refused_auth, am_peers_refused_tls, am_balance_transfers;

static ERL_NIF_TERM mk_atom(ErlNifEnv *env, const char *name)
{
    ERL_NIF_TERM a;
    if (enif_make_existing_atom(env, name, &a, ERL_NIF_LATIN1))
        return a;
    return enif_make_atom(env, name);
}

/* A status as the atom of its name, muxraft_status_str without the
 * "MUXRAFT_" prefix, in lower case: MUXRAFT_NOT_LEADER is 'not_leader',
 * MUXRAFT_UNKNOWN 'unknown', and a number that is no status
 * ("MUXRAFT_UNKNOWN_STATUS") 'unknown_status'. */
static ERL_NIF_TERM status_atom(ErlNifEnv *env, muxraft_status s)
{
    static const char prefix[] = "MUXRAFT_";
    const char *name = muxraft_status_str((int)s);
    char buf[64];
    size_t i;
    if (strncmp(name, prefix, sizeof prefix - 1) == 0)
        name += sizeof prefix - 1;
    for (i = 0; name[i] != '\0' && i < sizeof buf - 1; i++)
        buf[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    buf[i] = '\0';
    return mk_atom(env, buf);
}

static ERL_NIF_TERM role_atom(muxraft_role r)
{
    switch (r) {
    case MUXRAFT_LEADER: return am_leader;
    case MUXRAFT_CANDIDATE: return am_candidate;
    case MUXRAFT_FOLLOWER: return am_follower;
    }
    return am_unknown;
}

static ERL_NIF_TERM member_role_atom(muxraft_member_role r)
{
    switch (r) {
    case MUXRAFT_VOTER: return am_voter;
    case MUXRAFT_NONVOTER: return am_nonvoter;
    case MUXRAFT_PROMOTABLE: return am_promotable;
    }
    return am_unknown;
}

/* Members as a list of #{node_id, role, match_index}, in their order
 * (voters first). 0 if a map cannot be made. */
static int members_list(ErlNifEnv *env, const muxraft_member *m, size_t count,
                        ERL_NIF_TERM *out)
{
    ERL_NIF_TERM list = enif_make_list(env, 0), keys[3], values[3], map;
    size_t i;
    for (i = count; i > 0; i--) {
        const muxraft_member *x = &m[i - 1];
        keys[0] = am_node_id;     values[0] = enif_make_uint64(env, x->node_id);
        keys[1] = am_role;        values[1] = member_role_atom(x->role);
        keys[2] = am_match_index; values[2] = enif_make_uint64(env, x->match_index);
        if (!enif_make_map_from_arrays(env, keys, values, 3, &map))
            return 0;
        list = enif_make_list_cell(env, map, list);
    }
    *out = list;
    return 1;
}

/* ---- the node resource ------------------------------------------------------ */

typedef enum {
    ST_HOST_DRIVEN = 0, /* created, not started: tick/step drive it */
    ST_STARTED,         /* embedded: muxraft's threads run it */
    ST_STOPPING,        /* stop_node (or the owner's exit) in progress */
    ST_STOPPED          /* final: mutating calls answer {error, shutdown} */
} node_state;

typedef struct {
    muxraft_node *node; /* freed only by the destructor */
    ErlNifPid owner;    /* receives the events */
    ErlNifMutex *mtx;
    ErlNifCond *cond;   /* signalled when inflight drops to 0 or state moves */
    node_state state;
    int inflight;       /* gated calls inside muxraft right now */
    int self_ref;       /* enif_keep_resource held while started */
} nif_node;

static ErlNifResourceType *node_type;

/* The env of the process whose NIF call is inside muxraft on this thread,
 * for callbacks that muxraft runs on that thread (host-driven mode). NULL on
 * muxraft's own threads. */
static __thread ErlNifEnv *tls_caller_env;

/* A node is in use by a call that may run callbacks or change it; stop
 * waits for such calls to leave. Returns 0 (and the call must answer
 * {error, shutdown}) once the node is stopping or stopped. */
static int gate_enter(nif_node *n)
{
    int ok;
    enif_mutex_lock(n->mtx);
    ok = n->state == ST_HOST_DRIVEN || n->state == ST_STARTED;
    if (ok)
        n->inflight++;
    enif_mutex_unlock(n->mtx);
    return ok;
}

static void gate_leave(nif_node *n)
{
    enif_mutex_lock(n->mtx);
    if (--n->inflight == 0)
        enif_cond_broadcast(n->cond);
    enif_mutex_unlock(n->mtx);
}

/* Stop the node (either mode). Returns when it is stopped: no muxraft
 * thread of the node is left and no callback of it will run any more, and
 * the node's data directory is free for a new node (it is locked while the
 * node runs, and the resource may wait long for the garbage collector).
 * Safe to call concurrently and repeatedly. Must not run on a muxraft
 * thread (it never does: callbacks only send messages). A host-driven node
 * runs its last pass on this thread: its callbacks use `tls_caller_env`,
 * which the caller sets (or leaves NULL on a thread ERTS did not create). */
static void stop_node(nif_node *n)
{
    int release;

    enif_mutex_lock(n->mtx);
    if (n->state == ST_STOPPING) {
        while (n->state != ST_STOPPED)
            enif_cond_wait(n->cond, n->mtx);
        enif_mutex_unlock(n->mtx);
        return;
    }
    if (n->state == ST_STOPPED) {
        enif_mutex_unlock(n->mtx);
        return;
    }
    n->state = ST_STOPPING;
    /* No new gated call enters; wait for those inside muxraft. Once they
     * have left, no proposal can be accepted after muxraft's stop has
     * reported the pending ones. */
    while (n->inflight > 0)
        enif_cond_wait(n->cond, n->mtx);
    enif_mutex_unlock(n->mtx);

    /* Pending proposals are reported (MUXRAFT_SHUTDOWN): by the node
     * thread, which is then joined, when started; here, in the last
     * host-driven pass, otherwise. Its status (a failed final write) is
     * not the caller's concern: the node is stopped either way. */
    muxraft_node_stop(n->node);

    enif_mutex_lock(n->mtx);
    n->state = ST_STOPPED;
    release = n->self_ref;
    n->self_ref = 0;
    enif_cond_broadcast(n->cond);
    enif_mutex_unlock(n->mtx);

    /* May drop the last reference: the destructor then runs here. */
    if (release)
        enif_release_resource(n);
}

static void node_dtor(ErlNifEnv *env, void *obj)
{
    nif_node *n = (nif_node *)obj;
    (void)env;
    /* A started node holds a reference to itself until it is stopped, so
     * the node is never started here: freeing runs no callback. */
    if (n->node != NULL) {
        muxraft_node_free(n->node);
        n->node = NULL;
    }
    if (n->cond != NULL)
        enif_cond_destroy(n->cond);
    if (n->mtx != NULL)
        enif_mutex_destroy(n->mtx);
}

static void *stop_thread_main(void *arg)
{
    nif_node *n = (nif_node *)arg;
    stop_node(n);
    enif_release_resource(n); /* the reference node_down took */
    return NULL;
}

/* The owner exited. A started node stops (and then frees itself once the
 * last reference goes). Stopping joins threads, which must not block a
 * scheduler, so it happens on a short-lived detached thread. */
static void node_down(ErlNifEnv *env, void *obj, ErlNifPid *pid,
                      ErlNifMonitor *mon)
{
    nif_node *n = (nif_node *)obj;
    int started;
    pthread_t tid;
    pthread_attr_t attr;
    (void)env;
    (void)pid;
    (void)mon;

    enif_mutex_lock(n->mtx);
    started = n->state == ST_STARTED;
    /* While started the node holds a reference to itself, so taking one
     * more here is safe; it keeps `n` alive for the thread below even if a
     * concurrent stop_node/1 drops the self reference first. */
    if (started)
        enif_keep_resource(n);
    enif_mutex_unlock(n->mtx);
    if (!started)
        return;
    if (pthread_attr_init(&attr) == 0) {
        int ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                 pthread_create(&tid, &attr, stop_thread_main, n) == 0;
        pthread_attr_destroy(&attr);
        if (ok)
            return;
    }
    stop_thread_main(n); /* no thread available: stop here rather than leak */
}

/* ---- callbacks (muxraft's thread, or the calling thread in host-driven) ---- */

static void deliver(nif_node *n, ErlNifEnv *msg_env, ERL_NIF_TERM event)
{
    ErlNifEnv *caller = tls_caller_env;
    ERL_NIF_TERM msg = enif_make_tuple3(msg_env, am_muxraft,
                                        enif_make_resource(msg_env, n), event);
    /* On a scheduler thread enif_send needs the calling process's env; a
     * callback there always runs inside one of our NIF calls, which set
     * it. The check keeps a future path that forgets from crashing. */
    if (caller != NULL || enif_thread_type() == ERL_NIF_THR_UNDEFINED)
        enif_send(caller, &n->owner, msg_env, msg);
    enif_free_env(msg_env);
}

static ERL_NIF_TERM copy_binary(ErlNifEnv *env, const uint8_t *data, size_t len)
{
    ERL_NIF_TERM bin;
    unsigned char *p = enif_make_new_binary(env, len, &bin);
    if (len > 0)
        memcpy(p, data, len);
    return bin;
}

static void on_send(void *ud, uint64_t to, const uint8_t *frame, size_t len,
                    bool liveness)
{
    ErlNifEnv *e = enif_alloc_env();
    if (e == NULL)
        return;
    deliver((nif_node *)ud, e,
            enif_make_tuple4(e, am_send, enif_make_uint64(e, to),
                             copy_binary(e, frame, len),
                             liveness ? am_true : am_false));
}

static void on_apply(void *ud, uint64_t group_id, uint64_t index,
                     const uint8_t *data, size_t len)
{
    ErlNifEnv *e = enif_alloc_env();
    if (e == NULL)
        return;
    deliver((nif_node *)ud, e,
            enif_make_tuple4(e, am_applied, enif_make_uint64(e, group_id),
                             enif_make_uint64(e, index),
                             copy_binary(e, data, len)));
}

static void on_role_changed(void *ud, uint64_t group_id, muxraft_role role,
                            uint64_t term, uint64_t leader_id)
{
    ErlNifEnv *e = enif_alloc_env();
    if (e == NULL)
        return;
    deliver((nif_node *)ud, e,
            enif_make_tuple5(e, am_role, enif_make_uint64(e, group_id),
                             role_atom(role), enif_make_uint64(e, term),
                             enif_make_uint64(e, leader_id)));
}

static void on_proposal_done(void *ud, uint64_t group_id, uint64_t proposal_id,
                             muxraft_status status, uint64_t index)
{
    ErlNifEnv *e = enif_alloc_env();
    ERL_NIF_TERM ev;
    (void)group_id;
    if (e == NULL)
        return;
    if (status == MUXRAFT_OK)
        ev = enif_make_tuple4(e, am_proposal, enif_make_uint64(e, proposal_id),
                              am_ok, enif_make_uint64(e, index));
    else
        ev = enif_make_tuple3(e, am_proposal, enif_make_uint64(e, proposal_id),
                              enif_make_tuple2(e, am_error, status_atom(e, status)));
    deliver((nif_node *)ud, e, ev);
}

/* As a proposal's outcome: {read, ReadId, ok, Index} or
 * {read, ReadId, {error, Reason}}. */
static void on_read_done(void *ud, uint64_t group_id, uint64_t read_id,
                         muxraft_status status, uint64_t index)
{
    ErlNifEnv *e = enif_alloc_env();
    ERL_NIF_TERM ev;
    (void)group_id;
    if (e == NULL)
        return;
    if (status == MUXRAFT_OK)
        ev = enif_make_tuple4(e, am_read, enif_make_uint64(e, read_id), am_ok,
                              enif_make_uint64(e, index));
    else
        ev = enif_make_tuple3(e, am_read, enif_make_uint64(e, read_id),
                              enif_make_tuple2(e, am_error, status_atom(e, status)));
    deliver((nif_node *)ud, e, ev);
}

/* The term is not in the message: Raft's, of no use to the state machine. */
static void on_restore(void *ud, uint64_t group_id, uint64_t index, uint64_t term,
                       const uint8_t *data, size_t len)
{
    ErlNifEnv *e = enif_alloc_env();
    (void)term;
    if (e == NULL)
        return;
    deliver((nif_node *)ud, e,
            enif_make_tuple4(e, am_restore, enif_make_uint64(e, group_id),
                             enif_make_uint64(e, index), copy_binary(e, data, len)));
}

/* {members_changed, GroupId, Index, [#{node_id, role, match_index}]} */
static void on_members_changed(void *ud, uint64_t group_id, uint64_t index,
                               const muxraft_member *members, size_t count)
{
    ErlNifEnv *e = enif_alloc_env();
    ERL_NIF_TERM list;
    if (e == NULL)
        return;
    if (!members_list(e, members, count, &list)) {
        enif_free_env(e);
        return;
    }
    deliver((nif_node *)ud, e,
            enif_make_tuple4(e, am_members_changed, enif_make_uint64(e, group_id),
                             enif_make_uint64(e, index), list));
}

static void on_snapshot_needed(void *ud, uint64_t group_id, uint64_t applied,
                               uint64_t entries, uint64_t bytes)
{
    ErlNifEnv *e = enif_alloc_env();
    if (e == NULL)
        return;
    deliver((nif_node *)ud, e,
            enif_make_tuple5(e, am_snapshot_needed, enif_make_uint64(e, group_id),
                             enif_make_uint64(e, applied), enif_make_uint64(e, entries),
                             enif_make_uint64(e, bytes)));
}

/* ---- argument helpers --------------------------------------------------------- */

/* {error, Reason, Message}: the Erlang side keeps Message for last_error/0
 * and returns {error, Reason}. Call right after the failing muxraft call,
 * on the same thread (the message is thread-local). */
static ERL_NIF_TERM error3(ErlNifEnv *env, muxraft_status s)
{
    const char *msg = muxraft_last_error();
    size_t len = strlen(msg);
    ERL_NIF_TERM bin;
    unsigned char *p = enif_make_new_binary(env, len, &bin);
    memcpy(p, msg, len);
    return enif_make_tuple3(env, am_error, status_atom(env, s), bin);
}

static ERL_NIF_TERM error_msg(ErlNifEnv *env, ERL_NIF_TERM reason,
                              const char *msg)
{
    size_t len = strlen(msg);
    ERL_NIF_TERM bin;
    unsigned char *p = enif_make_new_binary(env, len, &bin);
    memcpy(p, msg, len);
    return enif_make_tuple3(env, am_error, reason, bin);
}

static ERL_NIF_TERM shutdown_error(ErlNifEnv *env)
{
    return error_msg(env, am_shutdown, "the node is stopped");
}

static int get_node(ErlNifEnv *env, ERL_NIF_TERM t, nif_node **out)
{
    return enif_get_resource(env, t, node_type, (void **)out) && (*out)->node != NULL;
}

static int get_u64(ErlNifEnv *env, ERL_NIF_TERM t, uint64_t *out)
{
    ErlNifUInt64 v;
    if (!enif_get_uint64(env, t, &v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* `undefined` leaves *out unchanged; otherwise an unsigned 32-bit integer. */
static int get_opt_u32(ErlNifEnv *env, ERL_NIF_TERM t, uint32_t *out)
{
    unsigned int v;
    if (enif_is_identical(t, am_undefined))
        return 1;
    if (!enif_get_uint(env, t, &v))
        return 0;
    *out = (uint32_t)v;
    return 1;
}

/* `undefined` leaves *out unchanged; otherwise `true` or `false`. */
static int get_opt_bool(ERL_NIF_TERM t, bool *out)
{
    if (enif_is_identical(t, am_true))
        *out = true;
    else if (enif_is_identical(t, am_false))
        *out = false;
    else if (!enif_is_identical(t, am_undefined))
        return 0;
    return 1;
}

/* `undefined` leaves *out unchanged; otherwise an unsigned 64-bit integer. */
static int get_opt_u64(ErlNifEnv *env, ERL_NIF_TERM t, uint64_t *out)
{
    if (enif_is_identical(t, am_undefined))
        return 1;
    return get_u64(env, t, out);
}

/* A binary without NUL bytes, as a malloc'ed C string (*out NULL for
 * `undefined` when allowed). */
static int get_cstr(ErlNifEnv *env, ERL_NIF_TERM t, int allow_undefined,
                    char **out)
{
    ErlNifBinary b;
    *out = NULL;
    if (allow_undefined && enif_is_identical(t, am_undefined))
        return 1;
    if (!enif_inspect_binary(env, t, &b) || b.size == 0 ||
        memchr(b.data, 0, b.size) != NULL)
        return 0;
    *out = (char *)malloc(b.size + 1);
    if (*out == NULL)
        return 0;
    memcpy(*out, b.data, b.size);
    (*out)[b.size] = '\0';
    return 1;
}

/* ---- NIFs ------------------------------------------------------------------------ */

#define MAX_PEERS 64

/* start_node_nif(NodeId, ClusterId, Listen | undefined, [{PeerId, Addr}],
 *                DataDir | undefined, TickMs, HeartbeatTicks, ElectionTicks,
 *                BatchHeartbeats, MaxProposalBytes,
 *                {SnapshotThresholdEntries, SnapshotThresholdBytes,
 *                 SnapshotTrailingEntries, SnapshotChunkBytes,
 *                 SnapshotTimeoutMs, MaxSnapshotBytes, WalSegmentBytes},
 *                {MaxPendingProposalsPerGroup, MaxPendingProposals,
 *                 MaxUnsyncedBytesPerGroup, MaxUnsyncedBytes},
 *                Quiesce, {MaxPendingReadsPerGroup, MaxPendingReads,
 *                 MetricsPerGroupMax}, {ClusterSecret | undefined,
 *                 TlsCertPem | undefined, TlsKeyPem | undefined,
 *                 TlsCaPem | undefined, BalanceLeaders,
 *                 BalanceMaxTransfers, BroadcastCommit})
 *   -> {ok, Node} | {error, Reason, Message}
 * ClusterSecret is a binary (its bytes are copied by muxraft_node_new); the
 * Tls* are binaries holding file paths (read by muxraft_node_new);
 * BalanceLeaders is a MUXRAFT_BALANCE_* value.
 * Numeric options, BatchHeartbeats, Quiesce and BroadcastCommit are
 * `undefined` for the library's default. With a data_dir, the `restore`
 * messages of the groups recovered from a snapshot are sent to the caller
 * before this returns. */
static ERL_NIF_TERM start_node_nif(ErlNifEnv *env, int argc,
                                   const ERL_NIF_TERM argv[])
{
    muxraft_config config;
    muxraft_callbacks cb;
    muxraft_status s;
    uint64_t node_id, cluster_id;
    char *listen = NULL, *data_dir = NULL;
    char *tls_paths[3] = {NULL, NULL, NULL};
    const ERL_NIF_TERM *link;
    uint64_t peer_ids[MAX_PEERS];
    char *peer_addrs[MAX_PEERS];
    unsigned n_peers = 0, len, i;
    ERL_NIF_TERM list, head, result;
    nif_node *n = NULL;
    int arity;
    const ERL_NIF_TERM *tuple;
    (void)argc;

    muxraft_config_init(&config);
    memset(peer_addrs, 0, sizeof peer_addrs);
    if (!get_u64(env, argv[0], &node_id) || !get_u64(env, argv[1], &cluster_id) ||
        !get_opt_u32(env, argv[5], &config.tick_ms) ||
        !get_opt_u32(env, argv[6], &config.heartbeat_ticks) ||
        !get_opt_u32(env, argv[7], &config.election_ticks) ||
        !get_opt_u32(env, argv[9], &config.max_proposal_bytes))
        return enif_make_badarg(env);
    if (!enif_get_tuple(env, argv[10], &arity, &tuple) || arity != 7 ||
        !get_opt_u64(env, tuple[0], &config.snapshot_threshold_entries) ||
        !get_opt_u64(env, tuple[1], &config.snapshot_threshold_bytes) ||
        !get_opt_u64(env, tuple[2], &config.snapshot_trailing_entries) ||
        !get_opt_u32(env, tuple[3], &config.snapshot_chunk_bytes) ||
        !get_opt_u32(env, tuple[4], &config.snapshot_timeout_ms) ||
        !get_opt_u64(env, tuple[5], &config.max_snapshot_bytes) ||
        !get_opt_u64(env, tuple[6], &config.wal_segment_bytes))
        return enif_make_badarg(env);
    if (!enif_get_tuple(env, argv[11], &arity, &tuple) || arity != 4 ||
        !get_opt_u64(env, tuple[0], &config.max_pending_proposals_per_group) ||
        !get_opt_u64(env, tuple[1], &config.max_pending_proposals) ||
        !get_opt_u64(env, tuple[2], &config.max_unsynced_bytes_per_group) ||
        !get_opt_u64(env, tuple[3], &config.max_unsynced_bytes))
        return enif_make_badarg(env);
    /* The read limits, then the metrics' per-group switch. */
    if (!enif_get_tuple(env, argv[13], &arity, &tuple) || arity != 3 ||
        !get_opt_u64(env, tuple[0], &config.max_pending_reads_per_group) ||
        !get_opt_u64(env, tuple[1], &config.max_pending_reads) ||
        !get_opt_u64(env, tuple[2], &config.metrics_per_group_max))
        return enif_make_badarg(env);
    /* The links between nodes: the cluster secret, then the TLS paths;
     * then the leader balancer (MUXRAFT_BALANCE_*, transfers in flight);
     * then broadcast_commit. */
    if (!enif_get_tuple(env, argv[14], &arity, &link) || arity != 7 ||
        !get_opt_u32(env, link[4], &config.balance_leaders) ||
        !get_opt_u32(env, link[5], &config.balance_max_transfers))
        return enif_make_badarg(env);
    if (!enif_is_identical(link[0], am_undefined)) {
        ErlNifBinary secret;
        /* Valid for this call; muxraft_node_new copies it. An empty binary
         * reaches the library as length 0 (none), so the Erlang side
         * refuses it first. */
        if (!enif_inspect_binary(env, link[0], &secret) || secret.size == 0)
            return enif_make_badarg(env);
        config.cluster_secret = secret.data;
        config.cluster_secret_len = secret.size;
    }
    if (!get_opt_bool(argv[8], &config.batch_heartbeats) ||
        !get_opt_bool(argv[12], &config.quiesce) ||
        !get_opt_bool(link[6], &config.broadcast_commit))
        return enif_make_badarg(env);
    if (!enif_get_list_length(env, argv[3], &len) || len > MAX_PEERS)
        return enif_make_badarg(env);
    if (!get_cstr(env, argv[2], 1, &listen) || !get_cstr(env, argv[4], 1, &data_dir) ||
        !get_cstr(env, link[1], 1, &tls_paths[0]) || !get_cstr(env, link[2], 1, &tls_paths[1]) ||
        !get_cstr(env, link[3], 1, &tls_paths[2]))
        goto badarg;
    list = argv[3];
    while (enif_get_list_cell(env, list, &head, &list)) {
        if (!enif_get_tuple(env, head, &arity, &tuple) || arity != 2 ||
            !get_u64(env, tuple[0], &peer_ids[n_peers]) ||
            !get_cstr(env, tuple[1], 0, &peer_addrs[n_peers]))
            goto badarg;
        n_peers++;
    }

    n = (nif_node *)enif_alloc_resource(node_type, sizeof *n);
    if (n == NULL)
        goto badarg;
    memset(n, 0, sizeof *n);
    n->mtx = enif_mutex_create("muxraft_node");
    n->cond = enif_cond_create("muxraft_node");
    if (n->mtx == NULL || n->cond == NULL) {
        result = error_msg(env, am_io, "cannot create a mutex");
        goto out;
    }
    enif_self(env, &n->owner);
    n->state = ST_HOST_DRIVEN;

    config.node_id = node_id;
    config.cluster_id = cluster_id;
    config.data_dir = data_dir;
    config.tls_cert_pem = tls_paths[0];
    config.tls_key_pem = tls_paths[1];
    config.tls_ca_pem = tls_paths[2];

    muxraft_callbacks_init(&cb); /* struct_size, every callback NULL */
    cb.userdata = n;
    cb.send = on_send;
    cb.apply = on_apply;
    cb.role_changed = on_role_changed;
    cb.proposal_done = on_proposal_done;
    cb.restore = on_restore;
    cb.snapshot_needed = on_snapshot_needed;
    cb.read_done = on_read_done;
    cb.members_changed = on_members_changed;

    tls_caller_env = env;
    s = muxraft_node_new(&config, &cb, &n->node);
    tls_caller_env = NULL;
    if (s != MUXRAFT_OK) {
        result = error3(env, s);
        goto out;
    }
    for (i = 0; i < n_peers; i++) {
        s = muxraft_node_add_peer(n->node, peer_ids[i], peer_addrs[i]);
        if (s != MUXRAFT_OK) {
            result = error3(env, s);
            goto out;
        }
    }
    if (listen != NULL) {
        if (enif_monitor_process(env, n, &n->owner, NULL) != 0) {
            result = error_msg(env, am_invalid_argument,
                               "cannot monitor the calling process");
            goto out;
        }
        /* The self reference must exist before the first callback. */
        enif_keep_resource(n);
        enif_mutex_lock(n->mtx);
        n->self_ref = 1;
        n->state = ST_STARTED;
        enif_mutex_unlock(n->mtx);
        s = muxraft_node_start(n->node, listen);
        if (s != MUXRAFT_OK) {
            result = error3(env, s);
            enif_mutex_lock(n->mtx);
            n->state = ST_STOPPED; /* a racing owner-down does nothing */
            n->self_ref = 0;
            enif_mutex_unlock(n->mtx);
            enif_release_resource(n);
            goto out;
        }
    }
    result = enif_make_tuple2(env, am_ok, enif_make_resource(env, n));

out:
    if (n != NULL)
        enif_release_resource(n); /* the term (if any) holds it now */
    free(listen);
    free(data_dir);
    for (i = 0; i < 3; i++)
        free(tls_paths[i]);
    for (i = 0; i < n_peers; i++)
        free(peer_addrs[i]);
    return result;

badarg:
    free(listen);
    free(data_dir);
    for (i = 0; i < 3; i++)
        free(tls_paths[i]);
    for (i = 0; i < MAX_PEERS; i++)
        free(peer_addrs[i]);
    return enif_make_badarg(env);
}

#define MAX_MEMBERS 64

typedef muxraft_status (*group_fn)(muxraft_node *, uint64_t, uint64_t,
                                   const uint64_t *, size_t);

/* create_group_nif and rejoin_group_nif: (Node, GroupId, Incarnation,
 * Members) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM group_members_call(ErlNifEnv *env, const ERL_NIF_TERM argv[],
                                       group_fn call)
{
    nif_node *n;
    uint64_t group_id, incarnation, members[MAX_MEMBERS];
    unsigned len, k = 0;
    ERL_NIF_TERM list, head;
    muxraft_status s;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &incarnation) ||
        !enif_get_list_length(env, argv[3], &len))
        return enif_make_badarg(env);
    if (len > MAX_MEMBERS)
        return error_msg(env, am_invalid_argument, "too many members");
    list = argv[3];
    while (enif_get_list_cell(env, list, &head, &list))
        if (!get_u64(env, head, &members[k++]))
            return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = call(n->node, group_id, incarnation, members, k);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

static ERL_NIF_TERM create_group_nif(ErlNifEnv *env, int argc,
                                     const ERL_NIF_TERM argv[])
{
    (void)argc;
    return group_members_call(env, argv, muxraft_group_create);
}

static ERL_NIF_TERM rejoin_group_nif(ErlNifEnv *env, int argc,
                                     const ERL_NIF_TERM argv[])
{
    (void)argc;
    return group_members_call(env, argv, muxraft_group_rejoin);
}

/* snapshot_nif(Node, GroupId, Index, Data :: iodata())
 *   -> ok | {error, Reason, Message}
 * Returns once the snapshot is durable (it writes a file with data_dir). */
static ERL_NIF_TERM snapshot_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, index;
    ErlNifBinary data;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &index) ||
        !enif_inspect_iolist_as_binary(env, argv[3], &data))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    /* An empty binary may have a NULL data pointer: allowed with length 0. */
    s = muxraft_group_snapshot(n->node, group_id, index, data.data, data.size);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* remove_group_nif(Node, GroupId) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM remove_group_nif(ErlNifEnv *env, int argc,
                                     const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_group_remove(n->node, group_id);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* propose_nif(Node, GroupId, Data :: iodata())
 *   -> {ok, ProposalId} | {error, Reason, Message} */
static ERL_NIF_TERM propose_nif(ErlNifEnv *env, int argc,
                                const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, id = 0;
    ErlNifBinary data;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !enif_inspect_iolist_as_binary(env, argv[2], &data))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_propose(n->node, group_id, data.data, data.size, &id);
    tls_caller_env = NULL;
    gate_leave(n);
    if (s != MUXRAFT_OK)
        return error3(env, s);
    return enif_make_tuple2(env, am_ok, enif_make_uint64(env, id));
}

/* read_index_nif(Node, GroupId) -> {ok, ReadId} | {error, Reason, Message} */
static ERL_NIF_TERM read_index_nif(ErlNifEnv *env, int argc,
                                   const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, id = 0;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_read_index(n->node, group_id, &id);
    tls_caller_env = NULL;
    gate_leave(n);
    if (s != MUXRAFT_OK)
        return error3(env, s);
    return enif_make_tuple2(env, am_ok, enif_make_uint64(env, id));
}

/* transfer_leader_nif(Node, GroupId, ToNodeId) -> ok | {error, Reason, Message}
 * Returns at once; the new leader arrives as {role, ...} messages. Gated
 * and with the caller's env like propose: in host-driven mode the call
 * sends frames (the `send` callback runs inside it). */
static ERL_NIF_TERM transfer_leader_nif(ErlNifEnv *env, int argc,
                                        const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, to;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &to))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_group_transfer_leader(n->node, group_id, to);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* join_group_nif(Node, GroupId, Incarnation) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM join_group_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, incarnation;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &incarnation))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_group_join(n->node, group_id, incarnation);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* add_member_nif(Node, GroupId, MemberNodeId, Role :: 0..2^32-1)
 *   -> ok | {error, Reason, Message}
 * Role is the C value (muxraft.erl maps the atoms); others are refused by
 * the library (invalid_argument). */
static ERL_NIF_TERM add_member_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, member;
    unsigned int role;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &member) || !enif_get_uint(env, argv[3], &role))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_group_add_member(n->node, group_id, member, (muxraft_member_role)role);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* remove_member_nif(Node, GroupId, MemberNodeId) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM remove_member_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id, member;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id) ||
        !get_u64(env, argv[2], &member))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_group_remove_member(n->node, group_id, member);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* members_nif(Node, GroupId) -> [#{node_id, role, match_index}] | {error, Reason, Message}
 * Voters first. Sized with a first call (MUXRAFT_TOO_LARGE, or MUXRAFT_OK
 * for a replica with no member yet), filled with a second (again if a
 * change came meanwhile, in embedded mode). */
static ERL_NIF_TERM members_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id;
    muxraft_member *m = NULL;
    size_t cap = 0, count = 0;
    muxraft_status s;
    ERL_NIF_TERM list;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id))
        return enif_make_badarg(env);
    /* Like group_status: allowed after stop, runs no callback. */
    for (;;) {
        s = muxraft_group_members(n->node, group_id, m, cap, &count);
        if (s == MUXRAFT_OK)
            break;
        if (s != MUXRAFT_TOO_LARGE || count <= cap) {
            enif_free(m);
            return error3(env, s);
        }
        enif_free(m);
        cap = count;
        m = (muxraft_member *)enif_alloc(cap * sizeof *m);
        if (m == NULL)
            return error_msg(env, am_io, "out of memory");
    }
    if (!members_list(env, m, count, &list)) {
        enif_free(m);
        return enif_make_badarg(env);
    }
    enif_free(m);
    return list;
}

/* node_peers_nif(Node) -> [#{node_id, heard, epoch}] | {error, Reason, Message}
 * In node id order. Sized with a first call, filled with a second (again
 * if peers were added meanwhile, in embedded mode). */
static ERL_NIF_TERM node_peers_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    muxraft_peer *peers = NULL;
    size_t cap = 0, count = 0, i;
    muxraft_status s;
    ERL_NIF_TERM list, keys[3], values[3], map;
    (void)argc;

    if (!get_node(env, argv[0], &n))
        return enif_make_badarg(env);
    /* Like group_status and stats: the handle lives until the destructor,
     * and the call runs no callback. */
    for (;;) {
        s = muxraft_node_peers(n->node, peers, cap, &count);
        if (s != MUXRAFT_OK) {
            enif_free(peers);
            return error3(env, s);
        }
        if (count <= cap)
            break;
        enif_free(peers);
        cap = count;
        peers = (muxraft_peer *)enif_alloc(cap * sizeof *peers);
        if (peers == NULL)
            return error_msg(env, am_io, "out of memory");
    }
    list = enif_make_list(env, 0);
    for (i = count; i > 0; i--) {
        const muxraft_peer *p = &peers[i - 1];
        keys[0] = am_node_id; values[0] = enif_make_uint64(env, p->node_id);
        keys[1] = am_heard;   values[1] = p->heard ? am_true : am_false;
        keys[2] = am_epoch;   values[2] = enif_make_uint64(env, p->epoch);
        if (!enif_make_map_from_arrays(env, keys, values, 3, &map)) {
            enif_free(peers);
            return enif_make_badarg(env);
        }
        list = enif_make_list_cell(env, map, list);
    }
    enif_free(peers);
    return list;
}

/* metrics_text_nif(Node) -> Binary | {error, Reason, Message}
 * muxraft_node_metrics_text without its NUL. Sized with a first call,
 * filled with a second (again, with more room, if the counters grew). */
static ERL_NIF_TERM metrics_text_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    ErlNifBinary bin;
    size_t needed = 0;
    muxraft_status s;
    (void)argc;

    if (!get_node(env, argv[0], &n))
        return enif_make_badarg(env);
    /* Like stats: allowed after stop, runs no callback. */
    s = muxraft_node_metrics_text(n->node, NULL, 0, &needed);
    if (s != MUXRAFT_TOO_LARGE)
        return error3(env, s);
    for (;;) {
        /* Headroom: the counters move between the two calls. */
        if (!enif_alloc_binary(needed + 1024, &bin))
            return error_msg(env, am_io, "out of memory");
        s = muxraft_node_metrics_text(n->node, (char *)bin.data, bin.size, &needed);
        if (s == MUXRAFT_OK)
            break;
        enif_release_binary(&bin);
        if (s != MUXRAFT_TOO_LARGE)
            return error3(env, s);
    }
    if (!enif_realloc_binary(&bin, needed - 1)) {
        enif_release_binary(&bin);
        return error_msg(env, am_io, "out of memory");
    }
    return enif_make_binary(env, &bin);
}

/* group_status_nif(Node, GroupId) -> {ok, Map} | {error, Reason, Message} */
static ERL_NIF_TERM group_status_nif(ErlNifEnv *env, int argc,
                                     const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id;
    muxraft_group_info info;
    muxraft_status s;
    ERL_NIF_TERM keys[15], values[15], map;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id))
        return enif_make_badarg(env);
    /* Allowed after stop (C API): the handle lives until the destructor. */
    muxraft_group_info_init(&info);
    s = muxraft_group_status(n->node, group_id, &info);
    if (s != MUXRAFT_OK)
        return error3(env, s);
    keys[0] = am_role;       values[0] = role_atom(info.role);
    keys[1] = am_term;       values[1] = enif_make_uint64(env, info.term);
    keys[2] = am_leader;     values[2] = enif_make_uint64(env, info.leader_id);
    keys[3] = am_commit;     values[3] = enif_make_uint64(env, info.commit_index);
    keys[4] = am_applied;    values[4] = enif_make_uint64(env, info.applied_index);
    keys[5] = am_last_index; values[5] = enif_make_uint64(env, info.last_index);
    keys[6] = am_incarnation; values[6] = enif_make_uint64(env, info.incarnation);
    keys[7] = am_snapshot_index; values[7] = enif_make_uint64(env, info.snapshot_index);
    keys[8] = am_first_index; values[8] = enif_make_uint64(env, info.first_index);
    keys[9] = am_log_bytes_memory; values[9] = enif_make_uint64(env, info.log_bytes_memory);
    keys[10] = am_snapshot_bytes_memory;
    values[10] = enif_make_uint64(env, info.snapshot_bytes_memory);
    keys[11] = am_log_bytes_disk; values[11] = enif_make_uint64(env, info.log_bytes_disk);
    keys[12] = am_snapshot_bytes_disk;
    values[12] = enif_make_uint64(env, info.snapshot_bytes_disk);
    keys[13] = am_pending_proposals;
    values[13] = enif_make_uint64(env, info.pending_proposals);
    keys[14] = am_unsynced_bytes; values[14] = enif_make_uint64(env, info.unsynced_bytes);
    if (!enif_make_map_from_arrays(env, keys, values, 15, &map))
        return enif_make_badarg(env);
    return enif_make_tuple2(env, am_ok, map);
}

/* key_metrics_nif(Node, GroupId) -> {ok, Map} | {error, Reason, Message}
 * muxraft_group_key_metrics never waits for the node (it reads atomics the
 * node publishes), so this runs on a normal scheduler, not a dirty one. */
static ERL_NIF_TERM key_metrics_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t group_id;
    muxraft_key_metrics m;
    muxraft_status s;
    ERL_NIF_TERM keys[12], values[12], map;
    (void)argc;

    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &group_id))
        return enif_make_badarg(env);
    /* Allowed after stop (C API): the handle lives until the destructor. */
    muxraft_key_metrics_init(&m);
    s = muxraft_group_key_metrics(n->node, group_id, &m);
    if (s != MUXRAFT_OK)
        return error3(env, s);
    keys[0] = am_role;        values[0] = role_atom(m.role);
    keys[1] = am_term;        values[1] = enif_make_uint64(env, m.term);
    keys[2] = am_leader;      values[2] = enif_make_uint64(env, m.leader_id);
    keys[3] = am_commit;      values[3] = enif_make_uint64(env, m.commit_index);
    keys[4] = am_applied;     values[4] = enif_make_uint64(env, m.applied_index);
    keys[5] = am_last_index;  values[5] = enif_make_uint64(env, m.last_index);
    keys[6] = am_snapshot_index; values[6] = enif_make_uint64(env, m.snapshot_index);
    keys[7] = am_log_bytes;   values[7] = enif_make_uint64(env, m.log_bytes);
    keys[8] = am_voters;      values[8] = enif_make_uint64(env, m.voters);
    keys[9] = am_membership_index; values[9] = enif_make_uint64(env, m.membership_index);
    keys[10] = am_quiesced;   values[10] = m.quiesced ? am_true : am_false;
    keys[11] = am_incarnation; values[11] = enif_make_uint64(env, m.incarnation);
    if (!enif_make_map_from_arrays(env, keys, values, 12, &map))
        return enif_make_badarg(env);
    return enif_make_tuple2(env, am_ok, map);
}

/* stats_nif(Node) -> Map | {error, Reason, Message} */
static ERL_NIF_TERM stats_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    muxraft_stats st;
    muxraft_status s;
    ERL_NIF_TERM keys[72], values[72], map;
    unsigned k = 0;
    (void)argc;

    if (!get_node(env, argv[0], &n))
        return enif_make_badarg(env);
    muxraft_stats_init(&st);
    s = muxraft_node_stats(n->node, &st);
    if (s != MUXRAFT_OK)
        return error3(env, s);
#define STAT(field)                                          \
    do {                                                     \
        keys[k] = am_##field;                                \
        values[k] = enif_make_uint64(env, st.field);         \
        k++;                                                 \
    } while (0)
    STAT(messages_sent);
    STAT(bytes_sent);
    STAT(messages_received);
    STAT(heartbeat_batches_sent);
    STAT(group_heartbeats_batched);
    STAT(elections_started);
    STAT(frames_rejected);
    STAT(heartbeats_sent);
    STAT(heartbeat_batch_responses_sent);
    STAT(heartbeat_messages_sent);
    STAT(heartbeat_bytes_sent);
    STAT(bytes_received);
    STAT(messages_dropped);
    STAT(leader_changes);
    STAT(proposals);
    STAT(proposals_committed);
    STAT(proposals_failed);
    STAT(entries_applied);
    STAT(groups);
    STAT(proposals_unknown);
    STAT(incarnation_mismatches);
    STAT(batches_dropped_incarnation);
    STAT(connections_established);
    STAT(reconnects);
    STAT(handshakes_refused);
    STAT(dial_failures);
    STAT(transport_frames_dropped);
    STAT(bytes_queued);
    STAT(snapshots_taken);
    STAT(snapshots_installed);
    STAT(snapshot_transfers_started);
    STAT(snapshot_transfers_failed);
    STAT(snapshot_crc_failures);
    STAT(wal_segments);
    STAT(wal_bytes);
    STAT(wal_segments_deleted);
    STAT(wal_bytes_rewritten);
    STAT(snapshot_files);
    STAT(snapshot_file_bytes);
    STAT(proposals_refused_busy);
    STAT(pending_proposals);
    STAT(unsynced_bytes);
    STAT(groups_awake);
    STAT(groups_quiesced);
    STAT(quiesced_total);
    STAT(wakeups_host);
    STAT(wakeups_leader_message);
    STAT(wakeups_follower_message);
    STAT(wakeups_peer_lost);
    STAT(wakeups_peer_returned);
    STAT(peers);
    STAT(peers_heard);
    STAT(peers_lost);
    STAT(peers_returned);
    STAT(peers_restarted);
    STAT(reads);
    STAT(reads_served);
    STAT(reads_failed);
    STAT(reads_refused_busy);
    STAT(pending_reads);
    STAT(read_rounds_sent);
    STAT(read_rounds_answered);
    STAT(compact_rows_sent);
    STAT(compact_rows_refused);
    STAT(groups_led);
    STAT(transfers_started);
    STAT(peers_refused_auth);
    STAT(peers_refused_tls);
    STAT(balance_transfers);
#undef STAT
    if (!enif_make_map_from_arrays(env, keys, values, k, &map))
        return enif_make_badarg(env);
    return map;
}

/* stop_node_nif(Node) -> ok */
static ERL_NIF_TERM stop_node_nif(ErlNifEnv *env, int argc,
                                  const ERL_NIF_TERM argv[])
{
    nif_node *n;
    (void)argc;
    if (!get_node(env, argv[0], &n))
        return enif_make_badarg(env);
    tls_caller_env = env;
    stop_node(n);
    tls_caller_env = NULL;
    return am_ok;
}

/* tick_nif(Node) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM tick_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    muxraft_status s;
    (void)argc;
    if (!get_node(env, argv[0], &n))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    s = muxraft_tick(n->node);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* step_nif(Node, FromNodeId, Frame :: binary()) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM step_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    nif_node *n;
    uint64_t from;
    ErlNifBinary frame;
    muxraft_status s;
    static const uint8_t empty[1] = {0};
    (void)argc;
    if (!get_node(env, argv[0], &n) || !get_u64(env, argv[1], &from) ||
        !enif_inspect_binary(env, argv[2], &frame))
        return enif_make_badarg(env);
    if (!gate_enter(n))
        return shutdown_error(env);
    tls_caller_env = env;
    /* An empty binary may have a NULL data pointer; the C API wants a
     * non-NULL frame (it then answers MALFORMED for length 0). */
    s = muxraft_step(n->node, from, frame.size ? frame.data : empty, frame.size);
    tls_caller_env = NULL;
    gate_leave(n);
    return s == MUXRAFT_OK ? am_ok : error3(env, s);
}

/* version_nif() -> {AbiVersion, VersionBinary} */
/* ---- log lines -------------------------------------------------------------- */

typedef struct {
    ErlNifPid pid; /* the forwarder */
} log_target;

static ErlNifMutex *log_mtx;      /* serializes set_log_nif */
static log_target *log_current;   /* under log_mtx */

static ERL_NIF_TERM copy_string(ErlNifEnv *env, const char *s)
{
    return copy_binary(env, (const uint8_t *)s, strlen(s));
}

/* muxraft's log thread: one message to the forwarder, nothing else. */
static void on_log(void *userdata, muxraft_log_level level, uint64_t node_id, bool has_group,
                   uint64_t group_id, const char *target, const char *message)
{
    log_target *t = (log_target *)userdata;
    ErlNifEnv *env = enif_alloc_env();
    ERL_NIF_TERM lvl;
    if (env == NULL)
        return;
    switch (level) {
    case MUXRAFT_LOG_ERROR: lvl = am_error; break;
    case MUXRAFT_LOG_WARN: lvl = am_warning; break;
    case MUXRAFT_LOG_INFO: lvl = am_info; break;
    default: lvl = am_debug; break; /* logger has no trace */
    }
    ERL_NIF_TERM msg = enif_make_tuple6(
        env, am_muxraft_log, lvl, enif_make_uint64(env, node_id),
        has_group ? enif_make_uint64(env, group_id) : am_undefined,
        copy_string(env, target), copy_string(env, message));
    /* Not a thread ERTS created: caller_env is NULL. */
    enif_send(NULL, &t->pid, env, msg);
    enif_free_env(env);
}

/* set_log_nif(Pid | undefined, Level 0..5) -> ok | {error, Reason, Message} */
static ERL_NIF_TERM set_log_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    unsigned level;
    log_target *t = NULL, *old;
    muxraft_status s;
    (void)argc;
    if (!enif_get_uint(env, argv[1], &level))
        return enif_make_badarg(env);
    if (!enif_is_identical(argv[0], am_undefined)) {
        ErlNifPid pid;
        if (!enif_get_local_pid(env, argv[0], &pid))
            return enif_make_badarg(env);
        t = (log_target *)enif_alloc(sizeof *t);
        if (t == NULL)
            return error_msg(env, am_io, "out of memory");
        t->pid = pid;
    }
    enif_mutex_lock(log_mtx);
    s = muxraft_set_log_callback(t ? on_log : NULL, t, level);
    if (s != MUXRAFT_OK) {
        enif_mutex_unlock(log_mtx);
        if (t)
            enif_free(t);
        return error3(env, s);
    }
    old = log_current;
    log_current = t;
    enif_mutex_unlock(log_mtx);
    /* muxraft no longer calls the previous callback with it. */
    if (old)
        enif_free(old);
    return am_ok;
}

static ERL_NIF_TERM version_nif(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    const char *v = muxraft_version();
    size_t len = strlen(v);
    ERL_NIF_TERM bin;
    unsigned char *p = enif_make_new_binary(env, len, &bin);
    (void)argc;
    (void)argv;
    memcpy(p, v, len);
    return enif_make_tuple2(env, enif_make_uint(env, muxraft_abi_version()), bin);
}

/* ---- loading ---------------------------------------------------------------------- */

static int open_type(ErlNifEnv *env, ErlNifResourceFlags flags)
{
    ErlNifResourceTypeInit init;
    memset(&init, 0, sizeof init);
    init.dtor = node_dtor;
    init.down = node_down;
    init.members = 3; /* dtor, stop, down */
    node_type = enif_open_resource_type_x(env, "muxraft_node", &init, flags, NULL);
    return node_type != NULL;
}

static void make_atoms(ErlNifEnv *env)
{
#define ATOM(name) am_##name = mk_atom(env, #name)
    ATOM(ok); ATOM(error); ATOM(undefined); ATOM(true); ATOM(false);
    ATOM(muxraft); ATOM(applied); ATOM(role); ATOM(proposal); ATOM(send);
    ATOM(restore); ATOM(snapshot_needed); ATOM(read); ATOM(members_changed);
    ATOM(node_id); ATOM(heard); ATOM(epoch);
    ATOM(match_index); ATOM(voter); ATOM(nonvoter); ATOM(promotable);
    ATOM(leader); ATOM(follower); ATOM(candidate);
    ATOM(term); ATOM(commit); ATOM(last_index); ATOM(incarnation);
    ATOM(snapshot_index); ATOM(first_index); ATOM(log_bytes_memory);
    ATOM(snapshot_bytes_memory); ATOM(log_bytes_disk); ATOM(snapshot_bytes_disk);
    ATOM(log_bytes); ATOM(voters); ATOM(membership_index); ATOM(quiesced);
    ATOM(invalid_argument); ATOM(io); ATOM(shutdown); ATOM(unknown);
    ATOM(messages_sent); ATOM(bytes_sent); ATOM(messages_received);
    ATOM(heartbeat_batches_sent); ATOM(group_heartbeats_batched);
    ATOM(elections_started); ATOM(frames_rejected); ATOM(heartbeats_sent);
    ATOM(heartbeat_batch_responses_sent); ATOM(heartbeat_messages_sent);
    ATOM(heartbeat_bytes_sent); ATOM(bytes_received); ATOM(messages_dropped);
    ATOM(leader_changes); ATOM(proposals); ATOM(proposals_committed);
    ATOM(proposals_failed); ATOM(entries_applied); ATOM(groups);
    ATOM(proposals_unknown); ATOM(incarnation_mismatches);
    ATOM(batches_dropped_incarnation); ATOM(connections_established);
    ATOM(reconnects); ATOM(handshakes_refused); ATOM(dial_failures);
    ATOM(transport_frames_dropped); ATOM(bytes_queued);
    ATOM(snapshots_taken); ATOM(snapshots_installed);
    ATOM(snapshot_transfers_started); ATOM(snapshot_transfers_failed);
    ATOM(snapshot_crc_failures); ATOM(wal_segments); ATOM(wal_bytes);
    ATOM(wal_segments_deleted); ATOM(wal_bytes_rewritten); ATOM(snapshot_files);
    ATOM(snapshot_file_bytes); ATOM(proposals_refused_busy);
    ATOM(pending_proposals); ATOM(unsynced_bytes);
    ATOM(groups_awake); ATOM(groups_quiesced); ATOM(quiesced_total);
    ATOM(wakeups_host); ATOM(wakeups_leader_message);
    ATOM(wakeups_follower_message); ATOM(wakeups_peer_lost);
    ATOM(wakeups_peer_returned); ATOM(peers); ATOM(peers_heard);
    ATOM(peers_lost); ATOM(peers_returned); ATOM(peers_restarted);
    ATOM(reads); ATOM(reads_served); ATOM(reads_failed);
    ATOM(reads_refused_busy); ATOM(pending_reads); ATOM(read_rounds_sent);
    ATOM(read_rounds_answered); ATOM(compact_rows_sent);
    ATOM(compact_rows_refused); ATOM(groups_led); ATOM(transfers_started);
    ATOM(peers_refused_auth);
    ATOM(peers_refused_tls);
    ATOM(balance_transfers);
    ATOM(muxraft_log); ATOM(warning); ATOM(info); ATOM(debug);
#undef ATOM
}

static int load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
    (void)priv;
    (void)info;
    if (muxraft_abi_version() != MUXRAFT_ABI_VERSION)
        return 1;
    make_atoms(env);
    if (log_mtx == NULL && (log_mtx = enif_mutex_create("muxraft_log")) == NULL)
        return 1;
    return open_type(env, ERL_NIF_RT_CREATE) ? 0 : 1;
}

static int upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info)
{
    (void)priv;
    (void)old_priv;
    (void)info;
    make_atoms(env);
    if (log_mtx == NULL && (log_mtx = enif_mutex_create("muxraft_log")) == NULL)
        return 1;
    return open_type(env, ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER) ? 0 : 1;
}

#define DIRTY ERL_NIF_DIRTY_JOB_IO_BOUND

static ErlNifFunc nif_funcs[] = {
    {"start_node_nif", 15, start_node_nif, DIRTY},
    {"create_group_nif", 4, create_group_nif, DIRTY},
    {"rejoin_group_nif", 4, rejoin_group_nif, DIRTY},
    {"snapshot_nif", 4, snapshot_nif, DIRTY},
    {"remove_group_nif", 2, remove_group_nif, DIRTY},
    {"propose_nif", 3, propose_nif, DIRTY},
    {"read_index_nif", 2, read_index_nif, DIRTY},
    {"transfer_leader_nif", 3, transfer_leader_nif, DIRTY},
    {"join_group_nif", 3, join_group_nif, DIRTY},
    {"add_member_nif", 4, add_member_nif, DIRTY},
    {"remove_member_nif", 3, remove_member_nif, DIRTY},
    {"members_nif", 2, members_nif, DIRTY},
    {"node_peers_nif", 1, node_peers_nif, DIRTY},
    {"metrics_text_nif", 1, metrics_text_nif, DIRTY},
    {"group_status_nif", 2, group_status_nif, DIRTY},
    {"key_metrics_nif", 2, key_metrics_nif, 0},
    {"stats_nif", 1, stats_nif, DIRTY},
    {"stop_node_nif", 1, stop_node_nif, DIRTY},
    {"tick_nif", 1, tick_nif, DIRTY},
    {"step_nif", 3, step_nif, DIRTY},
    {"version_nif", 0, version_nif, 0},
    {"set_log_nif", 2, set_log_nif, DIRTY},
};

ERL_NIF_INIT(muxraft, nif_funcs, load, NULL, upgrade, NULL)
