// embedded_test.cc: three Nodes in embedded mode on loopback (muxraft's own
// timer, TCP transport and threads), many groups, proposals applied in the
// same order on every node, a read of every group at its leader reported
// after the proposals' entries were applied, then stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "muxraft.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kNodes = 3;
constexpr std::uint64_t kGroups = 30;
constexpr int kEntries = 10;
constexpr auto kDeadline = 60s;

// A port that was free a moment ago. muxraft_node_start accepts port 0, but
// the C API cannot tell which port it bound, and peers need to know it.
int free_port()
{
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
        port = ntohs(addr.sin_port);
    ::close(fd);
    return port;
}

std::string payload(std::uint64_t group, int k)
{
    return "g" + std::to_string(group) + "/" + std::to_string(k);
}

// What the callbacks of the three nodes saw, under one lock.
struct Observed {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::vector<std::string>> applied;
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> last_index;
    // (node, group) -> (role, leader) as last reported.
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::pair<muxraft::Role, std::uint64_t>> roles;
    // (node, proposal id) -> outcome
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::pair<muxraft::Status, std::uint64_t>> done;
    std::size_t out_of_order = 0;
    std::size_t reentrant_ok = 0, reentrant_failed = 0;
    // (node, read id) -> (status, index, entries of the group applied then)
    std::map<std::pair<std::uint64_t, std::uint64_t>,
             std::tuple<muxraft::Status, std::uint64_t, std::size_t>>
        reads;
    std::size_t read_reports = 0;
};

} // namespace

TEST(Embedded, ThreeNodesOnLoopbackApplyManyGroupsInOrder)
{
    Observed seen;
    std::vector<muxraft::NodeRef> refs(kNodes + 1);
    std::vector<muxraft::Node> nodes;
    for (std::uint64_t id = 1; id <= kNodes; ++id) {
        muxraft::Config config;
        config.node_id = id;
        config.cluster_id = 7;
        muxraft::Callbacks cb;
        cb.apply = [&seen, &refs, id](std::uint64_t group, std::uint64_t index,
                                      std::string_view data) {
            // On a muxraft thread: call back into the same node. No exception
            // may leave a callback, so an Error is caught and counted here.
            bool reentrant = false;
            try {
                reentrant = refs[id].group_status(group).commit_index >= index;
            } catch (const muxraft::Error &) {
            }
            std::lock_guard<std::mutex> lock(seen.mu);
            auto key = std::make_pair(id, group);
            if (index <= seen.last_index[key])
                ++seen.out_of_order;
            seen.last_index[key] = index;
            seen.applied[key].emplace_back(data);
            ++(reentrant ? seen.reentrant_ok : seen.reentrant_failed);
            seen.cv.notify_all();
        };
        cb.role_changed = [&seen, id](std::uint64_t group, muxraft::Role role, std::uint64_t,
                                      std::uint64_t leader) {
            std::lock_guard<std::mutex> lock(seen.mu);
            seen.roles[{id, group}] = {role, leader};
            seen.cv.notify_all();
        };
        cb.proposal_done = [&seen, id](std::uint64_t, std::uint64_t proposal,
                                       muxraft::Status status, std::uint64_t index) {
            std::lock_guard<std::mutex> lock(seen.mu);
            seen.done[{id, proposal}] = {status, index};
            seen.cv.notify_all();
        };
        cb.read_done = [&seen, id](std::uint64_t group, std::uint64_t read,
                                   muxraft::Status status, std::uint64_t index) {
            std::lock_guard<std::mutex> lock(seen.mu);
            seen.reads[{id, read}] = {status, index, seen.applied[{id, group}].size()};
            ++seen.read_reports;
            seen.cv.notify_all();
        };
        cb.send = [](std::uint64_t, std::string_view, bool) {
            ADD_FAILURE() << "send in embedded mode";
        };
        nodes.emplace_back(config, std::move(cb));
    }
    // Before any node starts, so no callback reads them while they are written.
    for (std::uint64_t id = 1; id <= kNodes; ++id)
        refs[id] = nodes[id - 1].ref();

    // Listen; a port taken meanwhile by someone else is MUXRAFT_IO: try another.
    std::vector<std::string> address(kNodes + 1);
    for (std::uint64_t id = 1; id <= kNodes; ++id) {
        for (int attempt = 0;; ++attempt) {
            address[id] = "127.0.0.1:" + std::to_string(free_port());
            try {
                nodes[id - 1].start(address[id]);
                break;
            } catch (const muxraft::Error &e) {
                ASSERT_EQ(e.status(), MUXRAFT_IO) << e.what();
                ASSERT_LT(attempt, 20) << e.what();
            }
        }
    }
    for (std::uint64_t id = 1; id <= kNodes; ++id)
        for (std::uint64_t peer = 1; peer <= kNodes; ++peer)
            if (peer != id)
                nodes[id - 1].add_peer(peer, address[peer]);
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        for (auto &n : nodes)
            n.create_group(g, 1, {1, 2, 3});

    // Every group elects a leader that all three nodes know.
    auto leader_of = [&](std::uint64_t g) -> std::uint64_t {
        auto it = seen.roles.find({1, g});
        if (it == seen.roles.end() || it->second.second == 0)
            return 0;
        std::uint64_t leader = it->second.second;
        for (std::uint64_t id = 1; id <= kNodes; ++id) {
            auto r = seen.roles.find({id, g});
            if (r == seen.roles.end() || r->second.second != leader)
                return 0;
        }
        auto l = seen.roles.find({leader, g});
        return l->second.first == MUXRAFT_LEADER ? leader : 0;
    };
    std::vector<std::uint64_t> leaders(kGroups + 1);
    {
        std::unique_lock<std::mutex> lock(seen.mu);
        ASSERT_TRUE(seen.cv.wait_for(lock, kDeadline, [&] {
            for (std::uint64_t g = 1; g <= kGroups; ++g)
                if ((leaders[g] = leader_of(g)) == 0)
                    return false;
            return true;
        })) << "not every group elected a leader";
    }

    // Propose on each group's leader, from this thread, while muxraft's
    // threads run the callbacks.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ids; // (node, proposal id)
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        for (int k = 0; k < kEntries; ++k)
            ids.emplace_back(leaders[g], nodes[leaders[g] - 1].propose(g, payload(g, k)));

    {
        std::unique_lock<std::mutex> lock(seen.mu);
        ASSERT_TRUE(seen.cv.wait_for(lock, kDeadline, [&] {
            if (seen.done.size() < ids.size())
                return false;
            for (std::uint64_t id = 1; id <= kNodes; ++id)
                for (std::uint64_t g = 1; g <= kGroups; ++g)
                    if (seen.applied[{id, g}].size() < static_cast<std::size_t>(kEntries))
                        return false;
            return true;
        })) << "proposals not applied everywhere";
    }

    // A read of every group at its leader, reported on a muxraft thread once
    // a quorum confirmed it and the entries acknowledged above are applied.
    // Leadership may have moved meanwhile: then the read is NOT_LEADER.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> read_ids; // (node, read id)
    for (std::uint64_t g = 1; g <= kGroups; ++g) {
        const muxraft::ReadResult r = nodes[leaders[g] - 1].try_read_index(g);
        if (r.ok()) {
            read_ids.emplace_back(leaders[g], r.id);
        } else {
            EXPECT_EQ(r.status, MUXRAFT_NOT_LEADER) << muxraft::status_name(r.status);
        }
    }
    EXPECT_GE(read_ids.size(), kGroups - 2);
    {
        std::unique_lock<std::mutex> lock(seen.mu);
        ASSERT_TRUE(seen.cv.wait_for(lock, kDeadline,
                                     [&] { return seen.read_reports >= read_ids.size(); }))
            << "reads not reported";
        std::size_t served = 0;
        for (const auto &read : read_ids) {
            ASSERT_EQ(seen.reads.count(read), 1u);
            const auto &[status, index, applied] = seen.reads[read];
            if (status == MUXRAFT_NOT_LEADER)
                continue;
            EXPECT_EQ(status, MUXRAFT_OK) << muxraft::status_name(status);
            EXPECT_GT(index, static_cast<std::uint64_t>(kEntries));
            EXPECT_GE(applied, static_cast<std::size_t>(kEntries));
            ++served;
        }
        EXPECT_GE(served + 2, read_ids.size());
    }

    // The transport's counters (embedded mode only): every node connected
    // to its two peers; nothing is queued once everything was applied.
    for (std::uint64_t id = 1; id <= kNodes; ++id) {
        const muxraft::Stats stats = nodes[id - 1].stats();
        EXPECT_EQ(stats.struct_size, sizeof(muxraft::Stats));
        EXPECT_GE(stats.connections_established, kNodes - 1) << "node " << id;
        EXPECT_EQ(stats.proposals_unknown, 0u) << "node " << id;
    }

    for (auto &n : nodes)
        n.stop();

    // After stop no callback runs: the records can be read without the lock.
    for (const auto &proposal : ids) {
        ASSERT_EQ(seen.done.count(proposal), 1u);
        EXPECT_EQ(seen.done[proposal].first, MUXRAFT_OK)
            << "node " << proposal.first << " proposal " << proposal.second;
    }
    for (std::uint64_t g = 1; g <= kGroups; ++g) {
        std::vector<std::string> expected;
        for (int k = 0; k < kEntries; ++k)
            expected.push_back(payload(g, k));
        for (std::uint64_t id = 1; id <= kNodes; ++id)
            EXPECT_EQ(seen.applied[std::make_pair(id, g)], expected) << "node " << id << " group " << g;
    }
    EXPECT_EQ(seen.out_of_order, 0u);
    EXPECT_EQ(seen.reentrant_failed, 0u);
    EXPECT_EQ(seen.reentrant_ok, kNodes * kGroups * kEntries);
    EXPECT_EQ(seen.read_reports, read_ids.size()); // once each

    for (std::uint64_t id = 1; id <= kNodes; ++id) {
        muxraft::Stats stats = nodes[id - 1].stats(); // allowed after stop
        EXPECT_EQ(stats.groups, kGroups);
        EXPECT_GT(stats.messages_sent, 0u);
        EXPECT_GT(stats.heartbeat_batches_sent, 0u);
        EXPECT_EQ(nodes[id - 1].group_status(1).commit_index >= kEntries, true);
        try {
            nodes[id - 1].propose(1, "late");
            ADD_FAILURE() << "propose after stop did not throw";
        } catch (const muxraft::Error &e) {
            EXPECT_EQ(e.status(), MUXRAFT_SHUTDOWN);
        }
    }
}
