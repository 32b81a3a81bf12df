// muxraft.hpp — a header-only C++17 wrapper over the muxraft C API.
//
// It adds ownership, exceptions and std::function callbacks to
// include/muxraft.h and nothing else: every member function is one C call,
// and its documentation in muxraft.h (threads, modes, what each status means)
// is the documentation here too.
//
//   muxraft::Config     the node's settings, holding muxraft_config_init's defaults
//   muxraft::Callbacks  std::function callbacks; byte arguments as std::string_view
//   muxraft::Node       owns a muxraft_node (move-only; freed by its destructor)
//   muxraft::NodeRef    a non-owning handle to a node, for use inside callbacks
//   muxraft::Error      thrown for every status other than MUXRAFT_OK: carries the
//                       muxraft_status and the muxraft_last_error() message
//   muxraft::ProposeResult  what try_propose returns instead of throwing: the
//                       status and, with MUXRAFT_OK, the proposal id
//   muxraft::ReadResult what try_read_index returns instead of throwing: the
//                       status and, with MUXRAFT_OK, the read id
//   muxraft::Peer       a peer of the node as node_peers() lists it (muxraft_peer)
//   muxraft::Member     a member of a group as members() and members_changed give
//                       it (muxraft_member)
//   muxraft::LogFn      a log line (Callbacks::log per node, set_log_callback for
//                       the process): level, node, group, target, message
//
// Routine outcomes. A proposal to a node that does not lead the group
// (MUXRAFT_NOT_LEADER) is routine: leadership moves. So is MUXRAFT_BUSY from a
// proposal: backpressure, the limits of proposals in flight or of bytes not
// yet durable (Config's max_pending_* and max_unsynced_*) were reached and
// nothing was proposed. propose() throws them as an Error like any other
// status; try_propose() returns them (and every other status) without
// throwing, for the loops that retry at the new leader or once earlier
// proposals are decided. Reads are the same: read_index() throws
// MUXRAFT_NOT_LEADER and MUXRAFT_BUSY (Config's max_pending_reads*),
// try_read_index() returns them. So do leadership transfers:
// transfer_leader() throws MUXRAFT_NOT_LEADER and MUXRAFT_BUSY (the leader
// is not replicating to the target now), try_transfer_leader() returns them.
// And membership changes: add_member() and remove_member() throw
// MUXRAFT_NOT_LEADER and MUXRAFT_BUSY (a change of the group is in flight,
// or the leader is new), try_add_member() and try_remove_member() return
// them.
//
// Callbacks and exceptions. muxraft calls the Callbacks on the thread of the
// call that caused them (host-driven mode) or on a muxraft thread (embedded
// mode), one at a time per node, and a callback may call muxraft again on the
// same node through a NodeRef (propose from `apply`, for instance). A callback
// must not let an exception escape: it cannot cross the C library, and the
// event it was handling (a committed entry, a proposal outcome) cannot be
// delivered again. The wrapper catches whatever escapes a callback, writes
// the callback's name and the exception's what() to stderr and calls
// std::terminate(), exactly as if the callback were noexcept. Catch inside
// the callback what you can handle there (an Error from a NodeRef call, say).
// The log callbacks are the exception: what escapes one is reported on
// stderr and that line is dropped.
//
// Lifetimes. The Callbacks are kept on the heap, so a Node can be moved at any
// time, also while a muxraft thread is running its callbacks. Whatever the
// callbacks capture must outlive the Node. The Node's destructor frees the C
// node (stopping it first if started); once it returns no callback runs any
// more. It must not run inside one of that node's own callbacks, and no other
// call on the node may be running.
#ifndef MUXRAFT_HPP
#define MUXRAFT_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "muxraft.h"

namespace muxraft {

// The C types are used as they are: a status, a role, a member's role, and
// the plain structs filled by muxraft_group_status, muxraft_group_key_metrics,
// muxraft_node_stats, muxraft_node_peers and muxraft_group_members
// (group_status(), key_metrics() and stats() set their struct_size with
// muxraft_group_info_init, muxraft_key_metrics_init and
// muxraft_stats_init; muxraft_peer has none: node_id, heard (1 or 0) and
// epoch; nor has muxraft_member: node_id, match_index and role).
using Status = muxraft_status;
using Role = muxraft_role;
using GroupInfo = muxraft_group_info;
using KeyMetrics = muxraft_key_metrics;
using Stats = muxraft_stats;
using Peer = muxraft_peer;
// MUXRAFT_VOTER, MUXRAFT_NONVOTER or MUXRAFT_PROMOTABLE.
using MemberRole = muxraft_member_role;
using Member = muxraft_member;
using LogLevel = muxraft_log_level;

// A log line (muxraft_log_fn): its level, the node it is about, the group
// when it is about one, where in muxraft it comes from, and the message.
// The views are valid only during the call. Called on muxraft's log thread,
// never with a muxraft lock held (it may call muxraft, but must not block
// long). An exception escaping it is reported on stderr and the line is
// dropped: a log line is not worth the process.
using LogFn = std::function<void(LogLevel level, std::uint64_t node_id,
                                 std::optional<std::uint64_t> group_id,
                                 std::string_view target, std::string_view message)>;

// muxraft_status_str: "MUXRAFT_NOT_LEADER" for MUXRAFT_NOT_LEADER,
// "MUXRAFT_UNKNOWN_STATUS" for a number that is no status.
inline const char *status_name(Status status) noexcept
{
    return muxraft_status_str(static_cast<int>(status));
}

// "follower", "candidate", "leader"; "unknown" otherwise.
inline const char *role_name(Role role) noexcept
{
    switch (role) {
    case MUXRAFT_FOLLOWER: return "follower";
    case MUXRAFT_CANDIDATE: return "candidate";
    case MUXRAFT_LEADER: return "leader";
    }
    return "unknown";
}

// "voter", "nonvoter", "promotable"; "unknown" otherwise.
inline const char *member_role_name(MemberRole role) noexcept
{
    switch (role) {
    case MUXRAFT_VOTER: return "voter";
    case MUXRAFT_NONVOTER: return "nonvoter";
    case MUXRAFT_PROMOTABLE: return "promotable";
    }
    return "unknown";
}

// muxraft_version(): the library's version ("0.1.0").
inline const char *version() noexcept { return muxraft_version(); }

// muxraft_abi_version(): compare it with MUXRAFT_ABI_VERSION to detect a
// library that does not match the header.
inline std::uint32_t abi_version() noexcept { return muxraft_abi_version(); }

// A muxraft call that did not return MUXRAFT_OK. what() reads
// "<C function>: <status name>: <message>".
class Error : public std::runtime_error {
public:
    Error(Status status, std::string function, std::string message)
        : std::runtime_error(function + ": " + status_name(status) + ": " + message),
          status_(status), function_(std::move(function)), message_(std::move(message))
    {
    }

    // The status the C function returned.
    Status status() const noexcept { return status_; }
    // The C function that failed, e.g. "muxraft_propose".
    const std::string &function() const noexcept { return function_; }
    // muxraft_last_error() right after the failed call.
    const std::string &message() const noexcept { return message_; }

private:
    Status status_;
    std::string function_;
    std::string message_;
};

namespace detail {

// Throw the Error for a failed call. `status` is the value the call returned,
// so muxraft_last_error() is read after the call, on the same thread.
inline void check(Status status, const char *function)
{
    if (status != MUXRAFT_OK)
        throw Error(status, function, muxraft_last_error());
}

inline std::string_view bytes(const std::uint8_t *data, std::size_t len) noexcept
{
    return len == 0 ? std::string_view()
                    : std::string_view(reinterpret_cast<const char *>(data), len);
}

} // namespace detail

// What try_propose returns: the status of muxraft_propose and, with
// MUXRAFT_OK, the proposal id that proposal_done reports (0 otherwise).
struct [[nodiscard]] ProposeResult {
    Status status;
    std::uint64_t id;

    bool ok() const noexcept { return status == MUXRAFT_OK; }
};

// What try_read_index returns: the status of muxraft_read_index and, with
// MUXRAFT_OK, the read id that read_done reports (0 otherwise).
struct [[nodiscard]] ReadResult {
    Status status;
    std::uint64_t id;

    bool ok() const noexcept { return status == MUXRAFT_OK; }
};

// The settings of a node: muxraft_config as C++ values. A default-constructed
// Config holds the defaults of muxraft_config_init (node_id 0, which has to be
// set: muxraft_node_new refuses it). See muxraft.h for each field.
struct Config {
    std::uint64_t node_id;
    std::uint64_t cluster_id;
    std::uint32_t tick_ms;
    std::uint32_t heartbeat_ticks;
    std::uint32_t election_ticks;
    bool batch_heartbeats;
    std::uint32_t max_proposal_bytes;
    // Directory of the node's write-ahead log; nullopt: in memory (NULL).
    std::optional<std::string> data_dir;
    // Snapshots: when snapshot_needed fires (0 turns a threshold off), how
    // much log a snapshot leaves behind, how they travel to followers and
    // how large they may be; and the size of a write-ahead log segment.
    std::uint64_t snapshot_threshold_entries;
    std::uint64_t snapshot_threshold_bytes;
    std::uint64_t snapshot_trailing_entries;
    std::uint32_t snapshot_chunk_bytes;
    std::uint32_t snapshot_timeout_ms;
    std::uint64_t max_snapshot_bytes;
    std::uint64_t wal_segment_bytes;
    // Backpressure: propose() throws, and try_propose() returns,
    // MUXRAFT_BUSY (nothing proposed) while the group or the node has this
    // many proposals made here and not yet decided, or this many payload
    // bytes not yet durable here (0: no limit). Retry once earlier
    // proposals are decided; group_status() and stats() show the gauges.
    std::uint64_t max_pending_proposals_per_group;
    std::uint64_t max_pending_proposals;
    std::uint64_t max_unsynced_bytes_per_group;
    std::uint64_t max_unsynced_bytes;
    // Quiescence (default true; only with batch_heartbeats, ignored
    // without): a group with nothing to do goes quiet on every replica (no
    // ticks, no heartbeat rows) until a proposal, a message or the loss of
    // its leader's node wakes it; the per-pair heartbeat batch, sent every
    // interval even when empty, tells each node its peers are alive.
    // stats() shows groups_awake and groups_quiesced (gauges),
    // quiesced_total and the wakeups_* counters by cause, and the peers_*
    // of node-level liveness. false keeps every group awake.
    bool quiesce;
    // Reads: read_index() throws, and try_read_index() returns,
    // MUXRAFT_BUSY (nothing taken) while the group or the node has this
    // many reads taken and not yet reported to read_done (0: no limit).
    std::uint64_t max_pending_reads_per_group;
    std::uint64_t max_pending_reads;
    // metrics_text() renders per-group series (a `group` label) only while
    // the node hosts at most this many groups (default 0: never).
    std::uint64_t metrics_per_group_max;
    // Embedded mode: the secret every node of the cluster shares (16 to
    // 1024 bytes; empty, the default: none). Each connection then proves,
    // both ways, that the peer has the same one (HMAC-SHA256 over fresh
    // nonces; the secret never travels); a peer with another secret, or
    // none, is refused and counted in stats().peers_refused_auth. Set it on
    // every node or none. Host-driven mode ignores it (the host's transport
    // owns the links). muxraft_node_new copies it.
    std::vector<std::uint8_t> cluster_secret;
    // Embedded mode: TLS between nodes. Paths of PEM files: this node's
    // certificate chain, its private key, and the cluster CA. All three or
    // none (the default: plain TCP); read and checked by the Node
    // constructor (a missing file, bad PEM or a key of another certificate
    // throw MUXRAFT_INVALID_ARGUMENT naming the field). Every connection is
    // then mutual TLS 1.3 against the CA (the dialer checks the IP it
    // dialed against the peer certificate's IP SANs); a peer that fails it
    // is refused and counted in stats().peers_refused_tls. Host-driven mode
    // ignores them (the host's transport owns the links).
    std::optional<std::string> tls_cert_pem;
    std::optional<std::string> tls_key_pem;
    std::optional<std::string> tls_ca_pem;
    // The least severe level Callbacks::log receives (default
    // MUXRAFT_LOG_INFO: what an operator needs; MUXRAFT_LOG_OFF: none).
    LogLevel log_level;
    // The leader balancer: each node hands leaderships beyond its share of
    // the groups to nodes below theirs, a few at a time, by leadership
    // transfers to up-to-date voters (see muxraft_config.balance_leaders).
    // MUXRAFT_BALANCE_AUTO (the default): on in embedded mode, off in
    // host-driven mode; MUXRAFT_BALANCE_ON; MUXRAFT_BALANCE_OFF. ON without
    // batch_heartbeats throws MUXRAFT_INVALID_ARGUMENT. stats() counts its
    // transfers in balance_transfers.
    muxraft_balance balance_leaders;
    // Transfers the balancer has in flight at most (0: the default, 8).
    std::uint32_t balance_max_transfers;
    // How followers learn that an entry is committed (see
    // muxraft_config.broadcast_commit). false (the default): from the
    // leader's next append or heartbeat, half the messages of a group
    // taking one proposal at a time; followers apply up to a heartbeat
    // interval after the leader. true: at once, by an empty append.
    bool broadcast_commit;

    // The defaults of muxraft_config_init.
    Config() : Config(defaults()) {}

    // The values of a C config (data_dir, cluster_secret and the tls_*
    // paths copied).
    explicit Config(const muxraft_config &c)
        : node_id(c.node_id), cluster_id(c.cluster_id), tick_ms(c.tick_ms),
          heartbeat_ticks(c.heartbeat_ticks), election_ticks(c.election_ticks),
          batch_heartbeats(c.batch_heartbeats), max_proposal_bytes(c.max_proposal_bytes),
          data_dir(c.data_dir ? std::optional<std::string>(c.data_dir) : std::nullopt),
          snapshot_threshold_entries(c.snapshot_threshold_entries),
          snapshot_threshold_bytes(c.snapshot_threshold_bytes),
          snapshot_trailing_entries(c.snapshot_trailing_entries),
          snapshot_chunk_bytes(c.snapshot_chunk_bytes), snapshot_timeout_ms(c.snapshot_timeout_ms),
          max_snapshot_bytes(c.max_snapshot_bytes), wal_segment_bytes(c.wal_segment_bytes),
          max_pending_proposals_per_group(c.max_pending_proposals_per_group),
          max_pending_proposals(c.max_pending_proposals),
          max_unsynced_bytes_per_group(c.max_unsynced_bytes_per_group),
          max_unsynced_bytes(c.max_unsynced_bytes), quiesce(c.quiesce),
          max_pending_reads_per_group(c.max_pending_reads_per_group),
          max_pending_reads(c.max_pending_reads), metrics_per_group_max(c.metrics_per_group_max),
          cluster_secret(c.cluster_secret ? std::vector<std::uint8_t>(
                                                c.cluster_secret,
                                                c.cluster_secret + c.cluster_secret_len)
                                          : std::vector<std::uint8_t>()),
          tls_cert_pem(optional_string(c.tls_cert_pem)),
          tls_key_pem(optional_string(c.tls_key_pem)), tls_ca_pem(optional_string(c.tls_ca_pem)),
          log_level(static_cast<LogLevel>(c.log_level)), balance_leaders(c.balance_leaders),
          balance_max_transfers(c.balance_max_transfers), broadcast_commit(c.broadcast_commit)
    {
    }

    // The C struct, from muxraft_config_init with these values written over
    // it. Its data_dir, cluster_secret and tls_* point into *this: use it while
    // *this is unchanged.
    muxraft_config to_c() const noexcept
    {
        muxraft_config c;
        muxraft_config_init(&c);
        c.node_id = node_id;
        c.cluster_id = cluster_id;
        c.tick_ms = tick_ms;
        c.heartbeat_ticks = heartbeat_ticks;
        c.election_ticks = election_ticks;
        c.batch_heartbeats = batch_heartbeats;
        c.max_proposal_bytes = max_proposal_bytes;
        c.data_dir = data_dir ? data_dir->c_str() : nullptr;
        c.snapshot_threshold_entries = snapshot_threshold_entries;
        c.snapshot_threshold_bytes = snapshot_threshold_bytes;
        c.snapshot_trailing_entries = snapshot_trailing_entries;
        c.snapshot_chunk_bytes = snapshot_chunk_bytes;
        c.snapshot_timeout_ms = snapshot_timeout_ms;
        c.max_snapshot_bytes = max_snapshot_bytes;
        c.wal_segment_bytes = wal_segment_bytes;
        c.max_pending_proposals_per_group = max_pending_proposals_per_group;
        c.max_pending_proposals = max_pending_proposals;
        c.max_unsynced_bytes_per_group = max_unsynced_bytes_per_group;
        c.max_unsynced_bytes = max_unsynced_bytes;
        c.quiesce = quiesce;
        c.max_pending_reads_per_group = max_pending_reads_per_group;
        c.max_pending_reads = max_pending_reads;
        c.metrics_per_group_max = metrics_per_group_max;
        c.cluster_secret = cluster_secret.empty() ? nullptr : cluster_secret.data();
        c.cluster_secret_len = cluster_secret.size();
        c.tls_cert_pem = tls_cert_pem ? tls_cert_pem->c_str() : nullptr;
        c.tls_key_pem = tls_key_pem ? tls_key_pem->c_str() : nullptr;
        c.tls_ca_pem = tls_ca_pem ? tls_ca_pem->c_str() : nullptr;
        c.log_level = static_cast<std::uint32_t>(log_level);
        c.balance_leaders = balance_leaders;
        c.balance_max_transfers = balance_max_transfers;
        c.broadcast_commit = broadcast_commit;
        return c;
    }

private:
    static std::optional<std::string> optional_string(const char *s)
    {
        return s ? std::optional<std::string>(s) : std::nullopt;
    }

    static muxraft_config defaults() noexcept
    {
        muxraft_config c;
        muxraft_config_init(&c);
        return c;
    }
};

// The host's callbacks (muxraft_callbacks without userdata: capture what you
// need). An empty std::function is passed to muxraft as NULL: that event is
// not reported. Byte views are valid only during the call; copy them to keep
// them. See the top of this file for threads and exceptions.
struct Callbacks {
    // Host-driven mode: carry `frame` to node `to` and hand it to that node's
    // step(). `liveness` is true for heartbeat batches and their answers:
    // send those ahead of other frames (see "Host-driven frames" in
    // muxraft.h). Never called in embedded mode.
    std::function<void(std::uint64_t to, std::string_view frame, bool liveness)> send;
    // A committed entry, once per replica, in log order per group (indexes
    // increase and may skip Raft's own entries).
    std::function<void(std::uint64_t group_id, std::uint64_t index, std::string_view data)> apply;
    // This replica changed role or learned of a new leader (0: none known).
    std::function<void(std::uint64_t group_id, Role role, std::uint64_t term,
                       std::uint64_t leader_id)>
        role_changed;
    // The outcome of a proposal made on this node, exactly once per proposal
    // id: MUXRAFT_OK with its index; MUXRAFT_NOT_LEADER: failed for certain
    // (propose it again); MUXRAFT_UNKNOWN or MUXRAFT_SHUTDOWN: it may or may
    // not have committed (index 0 but for MUXRAFT_OK).
    std::function<void(std::uint64_t group_id, std::uint64_t proposal_id, Status status,
                       std::uint64_t index)>
        proposal_done;
    // Set the group's state machine to `data`, the state after applying
    // `index` (whose entry had `term`): a snapshot the leader sent, or, in
    // the Node's constructor, the one a data_dir holds. Always before any
    // apply of a later index of the group; apply then resumes after `index`.
    std::function<void(std::uint64_t group_id, std::uint64_t index, std::uint64_t term,
                       std::string_view data)>
        restore;
    // The group's log since its last snapshot passed a threshold: take a
    // snapshot (snapshot()) at an index applied, `applied` the last one.
    // Told once until a snapshot is taken.
    std::function<void(std::uint64_t group_id, std::uint64_t applied, std::uint64_t entries,
                       std::uint64_t bytes)>
        snapshot_needed;
    // The outcome of a read taken on this node (read_index()), exactly once
    // per read id: MUXRAFT_OK with its index (a quorum confirmed this node
    // still led after the read was taken, and apply has delivered every
    // entry up to `index`: serve the read from the state machine now);
    // MUXRAFT_NOT_LEADER (leadership lost first: take it again at the new
    // leader), MUXRAFT_NOT_FOUND (the group was removed here) or
    // MUXRAFT_SHUTDOWN (the node stopped), with index 0.
    std::function<void(std::uint64_t group_id, std::uint64_t read_id, Status status,
                       std::uint64_t index)>
        read_done;
    // A membership of the group applied on this replica (a change made
    // with add_member() or remove_member(), or an automatic promotion,
    // committed at `index`; or a snapshot installed at `index` carried
    // it): `members`, voters first, match_index 0, is the whole membership
    // from then on. Without this node among them, its replica was removed:
    // it no longer takes part; remove_group() it once its state is no
    // longer needed. In log order with apply; a change lost before it
    // committed is never reported.
    std::function<void(std::uint64_t group_id, std::uint64_t index,
                       const std::vector<Member> &members)>
        members_changed;
    // This node's log lines at Config::log_level and more severe (see
    // LogFn): on muxraft's log thread, from the constructor until the Node
    // is freed. Empty: the process-wide one (set_log_callback), if any.
    LogFn log;
};

namespace detail {

// What escapes a callback is reported and ends the process (see the top of
// the file). Called only from inside a catch handler.
[[noreturn]] inline void callback_threw(const char *callback) noexcept
{
    try {
        throw;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "muxraft: exception escaped the %s callback: %s\n", callback,
                     e.what());
    } catch (...) {
        std::fprintf(stderr, "muxraft: exception escaped the %s callback\n", callback);
    }
    std::fflush(stderr);
    std::terminate();
}

// The C callbacks: `userdata` is the node's heap-allocated Callbacks.
struct Trampolines {
    static void send(void *userdata, std::uint64_t to, const std::uint8_t *frame,
                     std::size_t len, bool liveness) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->send(to, bytes(frame, len), liveness);
        } catch (...) {
            callback_threw("send");
        }
    }

    static void apply(void *userdata, std::uint64_t group_id, std::uint64_t index,
                      const std::uint8_t *data, std::size_t len) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->apply(group_id, index, bytes(data, len));
        } catch (...) {
            callback_threw("apply");
        }
    }

    static void role_changed(void *userdata, std::uint64_t group_id, muxraft_role role,
                             std::uint64_t term, std::uint64_t leader_id) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->role_changed(group_id, role, term,
                                                                   leader_id);
        } catch (...) {
            callback_threw("role_changed");
        }
    }

    static void proposal_done(void *userdata, std::uint64_t group_id,
                              std::uint64_t proposal_id, muxraft_status status,
                              std::uint64_t index) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->proposal_done(group_id, proposal_id,
                                                                    status, index);
        } catch (...) {
            callback_threw("proposal_done");
        }
    }

    static void restore(void *userdata, std::uint64_t group_id, std::uint64_t index,
                        std::uint64_t term, const std::uint8_t *data, std::size_t len) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->restore(group_id, index, term,
                                                              bytes(data, len));
        } catch (...) {
            callback_threw("restore");
        }
    }

    static void snapshot_needed(void *userdata, std::uint64_t group_id, std::uint64_t applied,
                                std::uint64_t entries, std::uint64_t log_bytes) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->snapshot_needed(group_id, applied, entries,
                                                                      log_bytes);
        } catch (...) {
            callback_threw("snapshot_needed");
        }
    }

    // `userdata` is a LogFn: the node's (in its Callbacks) or the process's.
    static void log(void *userdata, muxraft_log_level level, std::uint64_t node_id,
                    bool has_group, std::uint64_t group_id, const char *target,
                    const char *message) noexcept
    {
        try {
            (*static_cast<const LogFn *>(userdata))(
                level, node_id, has_group ? std::optional<std::uint64_t>(group_id) : std::nullopt,
                std::string_view(target), std::string_view(message));
        } catch (const std::exception &e) {
            std::fprintf(stderr, "muxraft: exception escaped the log callback: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "muxraft: exception escaped the log callback\n");
        }
    }

    static void read_done(void *userdata, std::uint64_t group_id, std::uint64_t read_id,
                          muxraft_status status, std::uint64_t index) noexcept
    {
        try {
            static_cast<const Callbacks *>(userdata)->read_done(group_id, read_id, status, index);
        } catch (...) {
            callback_threw("read_done");
        }
    }

    static void members_changed(void *userdata, std::uint64_t group_id, std::uint64_t index,
                                const muxraft_member *members, std::size_t count) noexcept
    {
        try {
            const std::vector<Member> copy(members, members + count);
            static_cast<const Callbacks *>(userdata)->members_changed(group_id, index, copy);
        } catch (...) {
            callback_threw("members_changed");
        }
    }
};

// The calls on a node that are allowed from inside its own callbacks, shared
// by Node and NodeRef. Each is the C function of the same name; each throws
// Error for a status other than MUXRAFT_OK.
template <class Self> class NodeCalls {
public:
    // muxraft_group_create: this node's replica of `group_id`, whose replicas
    // live on `members` (this node among them). `incarnation` names this
    // creation of the id: the same on every member, different from every
    // earlier creation of the same id (see the C header).
    void create_group(std::uint64_t group_id, std::uint64_t incarnation,
                      const std::uint64_t *members, std::size_t n_members) const
    {
        check(muxraft_group_create(h(), group_id, incarnation, members, n_members),
              "muxraft_group_create");
    }
    void create_group(std::uint64_t group_id, std::uint64_t incarnation,
                      const std::vector<std::uint64_t> &members) const
    {
        create_group(group_id, incarnation, members.data(), members.size());
    }
    void create_group(std::uint64_t group_id, std::uint64_t incarnation,
                      std::initializer_list<std::uint64_t> members) const
    {
        create_group(group_id, incarnation, members.begin(), members.size());
    }

    // muxraft_group_rejoin: this node's replica of a group that exists on
    // the other members, after this node lost what it held of it (its
    // data_dir was deleted): it starts empty, its leader restores it, and it
    // never votes nor counts toward a quorum (replace it through a membership
    // change). MUXRAFT_ALREADY_EXISTS if the group was recovered.
    void rejoin_group(std::uint64_t group_id, std::uint64_t incarnation,
                      const std::uint64_t *members, std::size_t n_members) const
    {
        check(muxraft_group_rejoin(h(), group_id, incarnation, members, n_members),
              "muxraft_group_rejoin");
    }
    void rejoin_group(std::uint64_t group_id, std::uint64_t incarnation,
                      const std::vector<std::uint64_t> &members) const
    {
        rejoin_group(group_id, incarnation, members.data(), members.size());
    }
    void rejoin_group(std::uint64_t group_id, std::uint64_t incarnation,
                      std::initializer_list<std::uint64_t> members) const
    {
        rejoin_group(group_id, incarnation, members.begin(), members.size());
    }

    // muxraft_group_join: this node's replica of an existing group it is
    // being added to (with add_member() on the group's leader, just before
    // or after): empty, without members of its own, it never campaigns and
    // waits for the leader's log or snapshot; members_changed then reports
    // the membership it learned. `incarnation` is the group's. Durable when
    // it returns; MUXRAFT_ALREADY_EXISTS if the node hosts the group.
    void join_group(std::uint64_t group_id, std::uint64_t incarnation) const
    {
        check(muxraft_group_join(h(), group_id, incarnation), "muxraft_group_join");
    }

    // muxraft_group_snapshot: the group's state after applying `index` (an
    // index applied, from inside apply too, after the current snapshot) is
    // `data` (copied). Returns once the snapshot is durable and the log
    // compacted; blocks while the file is written.
    void snapshot(std::uint64_t group_id, std::uint64_t index, const void *data,
                  std::size_t len) const
    {
        check(muxraft_group_snapshot(h(), group_id, index,
                                     static_cast<const std::uint8_t *>(data), len),
              "muxraft_group_snapshot");
    }
    void snapshot(std::uint64_t group_id, std::uint64_t index, std::string_view data) const
    {
        snapshot(group_id, index, data.data(), data.size());
    }

    // muxraft_group_remove.
    void remove_group(std::uint64_t group_id) const
    {
        check(muxraft_group_remove(h(), group_id), "muxraft_group_remove");
    }

    // muxraft_group_status: this node's view of the group.
    GroupInfo group_status(std::uint64_t group_id) const
    {
        GroupInfo info;
        muxraft_group_info_init(&info);
        check(muxraft_group_status(h(), group_id, &info), "muxraft_group_status");
        return info;
    }

    // muxraft_group_key_metrics: role, term, leader, commit, applied, last
    // index, snapshot index, log bytes, membership and quiesced as of the
    // group's last pass. Never waits for the node (no lock it holds, no
    // pass, no callback): call it from any thread, from inside callbacks,
    // after stop(). Fields may be from adjacent moments.
    KeyMetrics key_metrics(std::uint64_t group_id) const
    {
        KeyMetrics m;
        muxraft_key_metrics_init(&m);
        check(muxraft_group_key_metrics(h(), group_id, &m), "muxraft_group_key_metrics");
        return m;
    }

    // muxraft_propose: the bytes are copied; returns the proposal id that
    // proposal_done reports (it may already have been reported, on a muxraft
    // thread, when this returns). Throws Error for every other status,
    // MUXRAFT_NOT_LEADER and MUXRAFT_BUSY (backpressure) included: where
    // leadership can move or the limits of Config can be reached, use
    // try_propose.
    std::uint64_t propose(std::uint64_t group_id, const void *data, std::size_t len) const
    {
        const ProposeResult r = try_propose(group_id, data, len);
        check(r.status, "muxraft_propose");
        return r.id;
    }
    std::uint64_t propose(std::uint64_t group_id, std::string_view data) const
    {
        return propose(group_id, data.data(), data.size());
    }

    // muxraft_propose without exceptions: every status is returned, with the
    // proposal id when it is MUXRAFT_OK. MUXRAFT_NOT_LEADER is routine (see
    // group_status() for the leader), and so is MUXRAFT_BUSY (backpressure:
    // nothing proposed; retry once earlier proposals are decided); for any
    // status but MUXRAFT_OK,
    // muxraft_last_error() on this thread says why, until the next failing
    // call.
    [[nodiscard]] ProposeResult try_propose(std::uint64_t group_id, const void *data,
                                            std::size_t len) const noexcept
    {
        std::uint64_t id = 0;
        const Status status =
            muxraft_propose(h(), group_id, static_cast<const std::uint8_t *>(data), len, &id);
        return ProposeResult{status, status == MUXRAFT_OK ? id : 0};
    }
    [[nodiscard]] ProposeResult try_propose(std::uint64_t group_id,
                                            std::string_view data) const noexcept
    {
        return try_propose(group_id, data.data(), data.size());
    }

    // muxraft_read_index: a linearizable read of a group this node leads,
    // without writing to the log; returns the read id that read_done
    // reports exactly once (it may already have been reported when this
    // returns: at once in a group of one, or on a muxraft thread). Serve
    // the read when read_done says MUXRAFT_OK. Throws Error for every
    // other status, MUXRAFT_NOT_LEADER and MUXRAFT_BUSY (Config's
    // max_pending_reads*) included: where leadership can move or the
    // limits can be reached, use try_read_index.
    std::uint64_t read_index(std::uint64_t group_id) const
    {
        const ReadResult r = try_read_index(group_id);
        check(r.status, "muxraft_read_index");
        return r.id;
    }

    // muxraft_read_index without exceptions: every status is returned, with
    // the read id when it is MUXRAFT_OK. MUXRAFT_NOT_LEADER (read at the
    // leader group_status() names) and MUXRAFT_BUSY (nothing taken; retry
    // once earlier reads are reported) are routine; for any status but
    // MUXRAFT_OK, muxraft_last_error() on this thread says why.
    [[nodiscard]] ReadResult try_read_index(std::uint64_t group_id) const noexcept
    {
        std::uint64_t id = 0;
        const Status status = muxraft_read_index(h(), group_id, &id);
        return ReadResult{status, status == MUXRAFT_OK ? id : 0};
    }

    // muxraft_group_transfer_leader: hand leadership of a group this node
    // leads to its replica on node `to_node_id`. Returns at once; the new
    // leader is reported by role_changed on every replica (a transfer not
    // completed within an election timeout is abandoned and this node leads
    // on). Meanwhile propose() here throws MUXRAFT_NOT_LEADER: propose at
    // the target. A transfer to this node itself does nothing. Throws Error
    // for every other status: MUXRAFT_NOT_LEADER (this node does not lead
    // the group), MUXRAFT_NOT_FOUND, MUXRAFT_INVALID_ARGUMENT (`to_node_id`
    // is not a voter of the group), MUXRAFT_BUSY (the leader is not
    // replicating to the target now: retry later), MUXRAFT_SHUTDOWN; where
    // leadership can move or the target can lag, use try_transfer_leader.
    void transfer_leader(std::uint64_t group_id, std::uint64_t to_node_id) const
    {
        check(try_transfer_leader(group_id, to_node_id), "muxraft_group_transfer_leader");
    }

    // muxraft_group_transfer_leader without exceptions: every status is
    // returned. MUXRAFT_NOT_LEADER and MUXRAFT_BUSY are routine for a
    // rebalancing loop (skip the group, or retry later); for any status but
    // MUXRAFT_OK, muxraft_last_error() on this thread says why.
    [[nodiscard]] Status try_transfer_leader(std::uint64_t group_id,
                                             std::uint64_t to_node_id) const noexcept
    {
        return muxraft_group_transfer_leader(h(), group_id, to_node_id);
    }

    // muxraft_group_add_member: propose, on the group's leader, adding the
    // replica on node `member_node_id` (created there with join_group())
    // with `role`, or giving a member that role (MUXRAFT_VOTER promotes a
    // non-voter). Returns at once; done when members_changed reports a
    // membership with it. Add a replica that has to catch up as
    // MUXRAFT_PROMOTABLE: a voter counts toward commit as soon as the
    // change is in the leader's log, a promotable member is made a voter
    // by the leader once it has caught up. One change at a time per group.
    // Throws Error for every other status: MUXRAFT_NOT_LEADER (this node
    // does not lead the group, or is handing it over), MUXRAFT_BUSY (a
    // change of the group is in flight, or this leader has not committed
    // an entry of its term yet: retry once members_changed reported it, or
    // shortly), MUXRAFT_NOT_FOUND, MUXRAFT_INVALID_ARGUMENT (member 0, an
    // unknown role, the member already has that role, the group is full),
    // MUXRAFT_SHUTDOWN; where leadership moves or changes queue up, use
    // try_add_member.
    void add_member(std::uint64_t group_id, std::uint64_t member_node_id, MemberRole role) const
    {
        check(try_add_member(group_id, member_node_id, role), "muxraft_group_add_member");
    }

    // muxraft_group_add_member without exceptions: every status is
    // returned. MUXRAFT_NOT_LEADER and MUXRAFT_BUSY are routine for a loop
    // that moves replicas (retry at the leader, or once members_changed
    // reported the change in flight); for any status but MUXRAFT_OK,
    // muxraft_last_error() on this thread says why.
    [[nodiscard]] Status try_add_member(std::uint64_t group_id, std::uint64_t member_node_id,
                                        MemberRole role) const noexcept
    {
        return muxraft_group_add_member(h(), group_id, member_node_id, role);
    }

    // muxraft_group_remove_member: propose, on the group's leader,
    // removing the replica on node `member_node_id`, which may be the
    // leader itself (it leads until the removal commits, then hands the
    // group to the most caught-up voter and steps down). Returns at once;
    // done when members_changed reports a membership without it. Throws as
    // add_member(); MUXRAFT_INVALID_ARGUMENT also for a node that is no
    // member and for the last voter. Use try_remove_member where leadership
    // moves or changes queue up.
    void remove_member(std::uint64_t group_id, std::uint64_t member_node_id) const
    {
        check(try_remove_member(group_id, member_node_id), "muxraft_group_remove_member");
    }

    // muxraft_group_remove_member without exceptions: every status is
    // returned (see try_add_member).
    [[nodiscard]] Status try_remove_member(std::uint64_t group_id,
                                           std::uint64_t member_node_id) const noexcept
    {
        return muxraft_group_remove_member(h(), group_id, member_node_id);
    }

    // muxraft_group_members: the group's members as this replica sees them
    // (the latest membership in its log, committed or not), voters first;
    // match_index set on the leader only. Empty for a replica that joined
    // and has not heard from its leader yet. Sized with a first call,
    // filled with a second (again if a change came meanwhile). Answers
    // after stop() too.
    std::vector<Member> members(std::uint64_t group_id) const
    {
        std::vector<Member> out;
        for (;;) {
            std::size_t count = 0;
            const Status s = muxraft_group_members(h(), group_id, out.empty() ? nullptr : out.data(),
                                                   out.size(), &count);
            if (s == MUXRAFT_OK) {
                out.resize(count);
                return out;
            }
            // MUXRAFT_TOO_LARGE (the sizing call's answer too, for a group
            // with members): count says how many to make room for.
            if (s != MUXRAFT_TOO_LARGE || count <= out.size())
                check(s, "muxraft_group_members");
            out.resize(count);
        }
    }

    // muxraft_tick (host-driven mode): one tick of the node's clock.
    void tick() const { check(muxraft_tick(h()), "muxraft_tick"); }

    // muxraft_step (host-driven mode): a frame that node `from` sent.
    void step(std::uint64_t from, std::string_view frame) const
    {
        check(muxraft_step(h(), from, reinterpret_cast<const std::uint8_t *>(frame.data()),
                           frame.size()),
              "muxraft_step");
    }

    // muxraft_node_stats: the node's counters and gauges (see muxraft_stats
    // in muxraft.h), quiescence (groups_awake, groups_quiesced,
    // quiesced_total, wakeups_*), node-level liveness (peers_*) and reads
    // (reads, reads_served, reads_failed, reads_refused_busy,
    // pending_reads, read_rounds_sent, read_rounds_answered), compact
    // heartbeat rows (compact_rows_sent, compact_rows_refused) and leader
    // balance (groups_led, a gauge; transfers_started) included.
    Stats stats() const
    {
        Stats s;
        muxraft_stats_init(&s);
        check(muxraft_node_stats(h(), &s), "muxraft_node_stats");
        return s;
    }

    // muxraft_node_metrics_text: the node's counters and gauges in the
    // Prometheus text format (0.0.4), for a /metrics endpoint; about 15 KB
    // whatever the number of groups unless Config::metrics_per_group_max
    // turns per-group series on. Sized with a first call, filled with a
    // second (again if the counters grew meanwhile).
    std::string metrics_text() const
    {
        std::string text;
        std::size_t needed = 0;
        for (;;) {
            muxraft_status s =
                muxraft_node_metrics_text(h(), text.empty() ? nullptr : text.data(), text.size(),
                                          &needed);
            if (s == MUXRAFT_OK) {
                text.resize(needed - 1); // drop the NUL
                return text;
            }
            if (s != MUXRAFT_TOO_LARGE || needed <= text.size())
                check(s, "muxraft_node_metrics_text");
            text.resize(needed + 1024); // headroom: the counters move
        }
    }

    // muxraft_node_peers: the nodes hosting replicas of this node's groups,
    // in node id order, each with `heard` (1: a frame from it arrived
    // within the last election timeout) and its liveness `epoch`. Sized
    // with a first call, filled with a second (again if peers were added
    // meanwhile).
    std::vector<Peer> node_peers() const
    {
        std::vector<Peer> peers;
        for (;;) {
            std::size_t count = 0;
            check(muxraft_node_peers(h(), peers.empty() ? nullptr : peers.data(), peers.size(),
                                     &count),
                  "muxraft_node_peers");
            if (count <= peers.size()) {
                peers.resize(count);
                return peers;
            }
            peers.resize(count);
        }
    }

protected:
    NodeCalls() = default;

private:
    muxraft_node *h() const noexcept { return static_cast<const Self *>(this)->handle(); }
};

} // namespace detail

// A non-owning handle to a node, as cheap to copy as a pointer; what a
// callback captures to call muxraft again. It stays valid while the Node it
// came from lives (wherever that Node is moved) and dangles once the Node is
// destroyed. An empty NodeRef holds NULL: its calls throw Error with
// MUXRAFT_INVALID_ARGUMENT, as the C functions answer for NULL.
class NodeRef : public detail::NodeCalls<NodeRef> {
public:
    NodeRef() noexcept = default;
    explicit NodeRef(muxraft_node *handle) noexcept : handle_(handle) {}

    muxraft_node *handle() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != nullptr; }

private:
    muxraft_node *handle_ = nullptr;
};

// A node, owned: muxraft_node_new in the constructor, muxraft_node_free in
// the destructor. Move-only; a moved-from (or default-constructed) Node is
// empty and its calls throw Error with MUXRAFT_INVALID_ARGUMENT.
class Node : public detail::NodeCalls<Node> {
public:
    // An empty node.
    Node() noexcept = default;

    // muxraft_node_new with `config` and `callbacks`. Throws Error
    // (MUXRAFT_INVALID_ARGUMENT for a bad config, e.g. node_id 0; MUXRAFT_IO
    // for an unusable data_dir).
    explicit Node(const Config &config, Callbacks callbacks = Callbacks())
        : callbacks_(std::make_unique<Callbacks>(std::move(callbacks)))
    {
        muxraft_callbacks cb;
        muxraft_callbacks_init(&cb);
        cb.userdata = callbacks_.get();
        if (callbacks_->send)
            cb.send = &detail::Trampolines::send;
        if (callbacks_->apply)
            cb.apply = &detail::Trampolines::apply;
        if (callbacks_->role_changed)
            cb.role_changed = &detail::Trampolines::role_changed;
        if (callbacks_->proposal_done)
            cb.proposal_done = &detail::Trampolines::proposal_done;
        if (callbacks_->restore)
            cb.restore = &detail::Trampolines::restore;
        if (callbacks_->snapshot_needed)
            cb.snapshot_needed = &detail::Trampolines::snapshot_needed;
        if (callbacks_->read_done)
            cb.read_done = &detail::Trampolines::read_done;
        if (callbacks_->members_changed)
            cb.members_changed = &detail::Trampolines::members_changed;
        muxraft_config c = config.to_c();
        if (callbacks_->log) {
            c.log = &detail::Trampolines::log;
            c.log_userdata = &callbacks_->log;
        }
        muxraft_node *handle = nullptr;
        detail::check(muxraft_node_new(&c, &cb, &handle), "muxraft_node_new");
        handle_ = handle;
    }

    Node(const Node &) = delete;
    Node &operator=(const Node &) = delete;

    Node(Node &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), callbacks_(std::move(other.callbacks_))
    {
    }

    // Frees the node held before (as the destructor does), then takes
    // `other`'s. Assigning a node to itself changes nothing.
    Node &operator=(Node &&other) noexcept
    {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, nullptr);
            callbacks_ = std::move(other.callbacks_);
        }
        return *this;
    }

    ~Node() { reset(); }

    // muxraft_node_free now (stopping the node if started), then the
    // callbacks; the Node is empty afterwards. Not from inside the node's own
    // callbacks.
    void reset() noexcept
    {
        muxraft_node_free(std::exchange(handle_, nullptr));
        callbacks_.reset();
    }

    muxraft_node *handle() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != nullptr; }
    NodeRef ref() const noexcept { return NodeRef(handle_); }

    // muxraft_node_add_peer (embedded mode): peer `node_id` listens at
    // `address` ("host:port"). Before or after start().
    void add_peer(std::uint64_t node_id, const std::string &address)
    {
        detail::check(muxraft_node_add_peer(handle_, node_id, address.c_str()),
                      "muxraft_node_add_peer");
    }

    // muxraft_node_start (embedded mode): listen on `listen_address`, connect
    // to the peers, run on muxraft's own threads. A failed start (e.g.
    // MUXRAFT_IO: cannot listen there) leaves the node as it was.
    void start(const std::string &listen_address)
    {
        detail::check(muxraft_node_start(handle_, listen_address.c_str()), "muxraft_node_start");
    }

    // muxraft_node_stop (embedded mode): when it returns no muxraft thread
    // of the node is left; waiting proposals are reported MUXRAFT_SHUTDOWN.
    // Not from inside a callback. Final: later calls other than
    // group_status() and stats() throw MUXRAFT_SHUTDOWN.
    void stop() { detail::check(muxraft_node_stop(handle_), "muxraft_node_stop"); }

private:
    muxraft_node *handle_ = nullptr;
    // On the heap, so that the userdata muxraft holds survives moves.
    std::unique_ptr<Callbacks> callbacks_;
};

// muxraft_set_log_callback: the log lines of every node without a
// Callbacks::log of its own go to `fn`, at `level` and more severe; an empty
// `fn` (or MUXRAFT_LOG_OFF) stops them. When it returns the previous
// function is no longer called (and has been destroyed). Throws Error
// (MUXRAFT_INVALID_ARGUMENT for a level over MUXRAFT_LOG_TRACE). Not from
// inside a log callback.
inline void set_log_callback(LogFn fn, LogLevel level = MUXRAFT_LOG_INFO)
{
    static std::mutex mu;
    static std::unique_ptr<LogFn> current;
    std::lock_guard<std::mutex> lock(mu);
    std::unique_ptr<LogFn> next = fn ? std::make_unique<LogFn>(std::move(fn)) : nullptr;
    detail::check(muxraft_set_log_callback(next ? &detail::Trampolines::log : nullptr,
                                           next.get(), static_cast<std::uint32_t>(level)),
                  "muxraft_set_log_callback");
    current = std::move(next);
}

} // namespace muxraft

#endif // MUXRAFT_HPP
