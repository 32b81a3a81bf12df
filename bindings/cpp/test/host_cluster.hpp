// host_cluster.hpp: a host-driven muxraft cluster in one process, for the
// C++ tests, written against muxraft.hpp only.
//
// Nodes 1..n share one FIFO wire: each node's send callback appends a copy
// of the frame (with its liveness flag), and drain() steps every queued
// frame into its destination until the wire is empty. Time moves only with tick(). The callbacks record
// what each node applied and every proposal outcome.
#ifndef MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP
#define MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "muxraft.hpp"

namespace muxraft_test {

struct Entry {
    std::uint64_t index;
    std::string data;
};

struct Done {
    std::uint64_t group_id;
    muxraft::Status status;
    std::uint64_t index;
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

    explicit HostCluster(std::size_t n, muxraft::Config base = muxraft::Config())
    {
        for (std::uint64_t id = 1; id <= n; ++id) {
            base.node_id = id;
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
            cb.role_changed = [this](std::uint64_t, muxraft::Role, std::uint64_t, std::uint64_t) {
                ++role_changes;
            };
            cb.proposal_done = [this, id](std::uint64_t group, std::uint64_t proposal,
                                          muxraft::Status status, std::uint64_t index) {
                done[id].emplace(proposal, Done{group, status, index});
                ++done_reports;
            };
            // Growing the vector moves the Nodes already in it: their
            // callbacks must keep working.
            nodes.emplace_back(base, std::move(cb));
        }
    }

    // The callbacks capture `this`.
    HostCluster(const HostCluster &) = delete;
    HostCluster &operator=(const HostCluster &) = delete;

    muxraft::Node &node(std::uint64_t id) { return nodes.at(id - 1); }

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
    std::size_t role_changes = 0;
    std::size_t frames_carried = 0;
    // Frames each node's send callback handed over, by liveness flag.
    std::map<std::uint64_t, std::uint64_t> sent_liveness, sent_bulk;
    // Last, so destroyed first: nothing the callbacks use is gone before the
    // nodes are.
    std::vector<muxraft::Node> nodes;
};

} // namespace muxraft_test

#endif // MUXRAFT_CPP_TEST_HOST_CLUSTER_HPP
