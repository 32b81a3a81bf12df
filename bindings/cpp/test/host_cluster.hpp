// host_cluster.hpp: a host-driven muxraft cluster in one process, for the
// C++ tests, written against muxraft.hpp only.
//
// Nodes 1..n share one FIFO wire: each node's send callback appends a copy
// of the frame (with its liveness flag), and drain() steps every queued
// frame into its destination until the wire is empty. Time moves only with tick(). The callbacks record
// what each node applied, every role change, every proposal outcome, every
// read outcome, every restore, every snapshot_needed hint and every
// membership reported. With a data root, node id keeps its write-ahead log
// in "<root>/node-<id>", and restart() creates it again there (or on an
// empty directory, as after a lost disk). `isolated` cuts one node off.
#ifndef MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP
#define MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "muxraft.hpp"

namespace muxraft_test {

// Ticks the tests allow for anything to happen.
constexpr int kMaxTicks = 2000;

// A default configuration for node `id`.
inline muxraft::Config config_for(std::uint64_t id)
{
    muxraft::Config c;
    c.node_id = id;
    return c;
}

// Tick `n` until it leads `group` (a single-member group).
inline bool lead(muxraft::Node &n, std::uint64_t group)
{
    for (int t = 0; t < kMaxTicks; ++t) {
        if (n.group_status(group).role == MUXRAFT_LEADER)
            return true;
        n.tick();
    }
    return false;
}

struct Entry {
    std::uint64_t index;
    std::string data;
};

struct Done {
    std::uint64_t group_id;
    muxraft::Status status;
    std::uint64_t index;
};

struct Restore {
    std::uint64_t index, term;
    std::string data;
    // How many entries of the group the node had applied when it came: the
    // ones recorded after it were applied after the restore.
    std::size_t applied_before;
};

struct Hint {
    std::uint64_t applied, entries, bytes;
};

// One read_done report, with how many entries of the group the node had
// applied when it came and the index of the last one (0: none).
struct Read {
    std::uint64_t group_id, read_id;
    muxraft::Status status;
    std::uint64_t index;
    std::size_t applied_count;
    std::uint64_t last_applied;
};

// One role_changed report.
struct RoleChange {
    std::uint64_t group_id;
    muxraft::Role role;
    std::uint64_t term, leader_id;
};

// One members_changed report.
struct Membership {
    std::uint64_t group_id, index;
    std::vector<muxraft::Member> members;
};

struct Frame {
    std::uint64_t from, to;
    std::string bytes;
    bool liveness;
};

class HostCluster {
public:
    // Called after an apply was recorded: (node id, group, index, data).
    std::function<void(std::uint64_t, std::uint64_t, std::uint64_t, std::string_view)> on_apply;

    explicit HostCluster(std::size_t n, muxraft::Config base = muxraft::Config(),
                         std::string data_root = std::string())
        : base_(std::move(base)), data_root_(std::move(data_root))
    {
        for (std::uint64_t id = 1; id <= n; ++id) {
            // Growing the vector moves the Nodes already in it: their
            // callbacks must keep working.
            nodes.emplace_back(config_of(id), callbacks_for(id));
        }
    }

    // The callbacks capture `this`.
    HostCluster(const HostCluster &) = delete;
    HostCluster &operator=(const HostCluster &) = delete;

    muxraft::Node &node(std::uint64_t id) { return nodes.at(id - 1); }

    // Node id's config: the base one with its id and data directory.
    muxraft::Config config_of(std::uint64_t id) const
    {
        muxraft::Config c = base_;
        c.node_id = id;
        if (!data_root_.empty())
            c.data_dir = data_root_ + "/node-" + std::to_string(id);
        return c;
    }

    // Free node `id` and create it again with the same config and callbacks
    // (the records are kept); with `wipe`, its data directory is deleted
    // first. The old node is freed before the new one opens the directory.
    void restart(std::uint64_t id, bool wipe)
    {
        node(id).reset();
        const muxraft::Config c = config_of(id);
        if (wipe && c.data_dir)
            std::filesystem::remove_all(*c.data_dir);
        node(id) = muxraft::Node(c, callbacks_for(id));
    }

    std::vector<std::uint64_t> members() const
    {
        std::vector<std::uint64_t> m;
        for (std::uint64_t id = 1; id <= nodes.size(); ++id)
            m.push_back(id);
        return m;
    }

    void create_group(std::uint64_t group, std::uint64_t incarnation = 1)
    {
        for (auto &n : nodes)
            n.create_group(group, incarnation, members());
    }

    void remove_group(std::uint64_t group)
    {
        for (auto &n : nodes)
            n.remove_group(group);
    }

    // Deliver frames until the wire is empty.
    void drain()
    {
        while (!wire.empty()) {
            Frame f = std::move(wire.front());
            wire.pop_front();
            if (isolated != 0 && (f.from == isolated || f.to == isolated)) {
                ++frames_dropped;
                continue;
            }
            ++frames_carried;
            node(f.to).step(f.from, f.bytes);
        }
    }

    void tick()
    {
        for (auto &n : nodes)
            n.tick();
        drain();
    }

    // The leader of `group` if exactly one node leads it and every node names
    // it; 0 otherwise.
    std::uint64_t leader(std::uint64_t group)
    {
        std::uint64_t leader = 0;
        int leading = 0;
        std::vector<muxraft::GroupInfo> infos;
        for (std::uint64_t id = 1; id <= nodes.size(); ++id) {
            infos.push_back(node(id).group_status(group));
            if (infos.back().role == MUXRAFT_LEADER) {
                leader = id;
                ++leading;
            }
        }
        if (leading != 1)
            return 0;
        for (const auto &info : infos)
            if (info.leader_id != leader)
                return 0;
        return leader;
    }

    // Tick until every group in [first, last] has a leader; false after
    // max_ticks.
    bool wait_leaders(std::uint64_t first, std::uint64_t last, int max_ticks)
    {
        for (int t = 0; t <= max_ticks; ++t) {
            bool all = true;
            for (std::uint64_t g = first; g <= last && all; ++g)
                all = leader(g) != 0;
            if (all)
                return true;
            tick();
        }
        return false;
    }

    // Tick until `pred()` holds; false after max_ticks.
    bool tick_until(const std::function<bool()> &pred, int max_ticks)
    {
        for (int t = 0; t <= max_ticks; ++t) {
            if (pred())
                return true;
            tick();
        }
        return false;
    }

    const std::vector<Entry> &log(std::uint64_t id, std::uint64_t group)
    {
        return applied[{id, group}];
    }

    std::deque<Frame> wire;
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<Entry>> applied;
    std::map<std::uint64_t, std::map<std::uint64_t, Done>> done; // node -> proposal id -> outcome
    std::size_t done_reports = 0;
    std::map<std::uint64_t, std::vector<Read>> reads; // node -> read outcomes, in order
    std::size_t role_changes = 0;
    std::map<std::uint64_t, std::vector<RoleChange>> roles; // node -> reports, in order
    std::map<std::uint64_t, std::vector<Membership>> memberships; // node -> reports, in order
    std::size_t frames_carried = 0;
    // A node whose frames, sent or received, drain() drops (0: none).
    std::uint64_t isolated = 0;
    std::size_t frames_dropped = 0;
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<Restore>> restores; // (node, group)
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<Hint>> hints;       // (node, group)
    // Times each node's replicas turned candidate (pre-vote or vote).
    std::map<std::uint64_t, std::size_t> campaigns;
    // Frames each node's send callback handed over, by liveness flag.
    std::map<std::uint64_t, std::uint64_t> sent_liveness, sent_bulk;
private:
    muxraft::Config base_;
    std::string data_root_;

public:
    // Last, so destroyed first: nothing the callbacks use is gone before the
    // nodes are.
    std::vector<muxraft::Node> nodes;

private:
    muxraft::Callbacks callbacks_for(std::uint64_t id)
    {
        muxraft::Callbacks cb;
        cb.send = [this, id](std::uint64_t to, std::string_view frame, bool liveness) {
            wire.push_back(Frame{id, to, std::string(frame), liveness});
            ++(liveness ? sent_liveness : sent_bulk)[id];
        };
        cb.apply = [this, id](std::uint64_t group, std::uint64_t index, std::string_view data) {
            applied[{id, group}].push_back(Entry{index, std::string(data)});
            if (on_apply)
                on_apply(id, group, index, data);
        };
        cb.role_changed = [this, id](std::uint64_t group, muxraft::Role role, std::uint64_t term,
                                     std::uint64_t leader_id) {
            ++role_changes;
            roles[id].push_back(RoleChange{group, role, term, leader_id});
            if (role == MUXRAFT_CANDIDATE)
                ++campaigns[id];
        };
        cb.proposal_done = [this, id](std::uint64_t group, std::uint64_t proposal,
                                      muxraft::Status status, std::uint64_t index) {
            done[id].emplace(proposal, Done{group, status, index});
            ++done_reports;
        };
        cb.restore = [this, id](std::uint64_t group, std::uint64_t index, std::uint64_t term,
                                std::string_view data) {
            restores[{id, group}].push_back(
                Restore{index, term, std::string(data), applied[{id, group}].size()});
        };
        cb.snapshot_needed = [this, id](std::uint64_t group, std::uint64_t applied_index,
                                        std::uint64_t entries, std::uint64_t bytes) {
            hints[{id, group}].push_back(Hint{applied_index, entries, bytes});
        };
        cb.read_done = [this, id](std::uint64_t group, std::uint64_t read,
                                  muxraft::Status status, std::uint64_t index) {
            const auto &log = applied[{id, group}];
            reads[id].push_back(Read{group, read, status, index, log.size(),
                                     log.empty() ? 0 : log.back().index});
        };
        cb.members_changed = [this, id](std::uint64_t group, std::uint64_t index,
                                        const std::vector<muxraft::Member> &members) {
            memberships[id].push_back(Membership{group, index, members});
        };
        return cb;
    }
};

// `call` must throw muxraft::Error with `status` from C function
// `function`, carrying muxraft_last_error() as its message.
inline ::testing::AssertionResult throws_from(const std::function<void()> &call,
                                              muxraft::Status status, const char *function)
{
    try {
        call();
    } catch (const muxraft::Error &e) {
        if (e.status() != status)
            return ::testing::AssertionFailure()
                   << "status " << muxraft::status_name(e.status()) << ", expected "
                   << muxraft::status_name(status) << " (" << e.what() << ")";
        if (e.function() != function)
            return ::testing::AssertionFailure() << "function " << e.function();
        if (e.message().empty() || e.message() != muxraft_last_error())
            return ::testing::AssertionFailure() << "message \"" << e.message() << "\"";
        return ::testing::AssertionSuccess();
    } catch (const std::exception &e) {
        return ::testing::AssertionFailure() << "threw another exception: " << e.what();
    }
    return ::testing::AssertionFailure() << "did not throw";
}

} // namespace muxraft_test

#endif // MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP
