// host_driven_test.cc: three Nodes driven by the test, frames carried from
// each node's send callback to the destination's step() through a queue.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::Entry;
using muxraft_test::HostCluster;
using muxraft_test::kMaxTicks;

namespace {

constexpr std::uint64_t kGroups = 20;
constexpr int kEntries = 5;
std::string payload(std::uint64_t group, int k)
{
    return "group " + std::to_string(group) + " entry " + std::to_string(k);
}

} // namespace

TEST(HostDriven, ThreeNodesReplicateEveryGroupInProposalOrder)
{
    HostCluster c(3);
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        c.create_group(g);
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));

    std::vector<std::vector<std::uint64_t>> ids(kGroups + 1);
    for (std::uint64_t g = 1; g <= kGroups; ++g) {
        std::uint64_t leader = c.leader(g);
        for (int k = 0; k < kEntries; ++k)
            ids[g].push_back(c.node(leader).propose(g, payload(g, k)));
        c.drain();
    }

    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                for (std::uint64_t g = 1; g <= kGroups; ++g)
                    if (c.log(id, g).size() < kEntries)
                        return false;
            return true;
        },
        kMaxTicks));

    for (std::uint64_t g = 1; g <= kGroups; ++g) {
        const std::vector<Entry> &first = c.log(1, g);
        ASSERT_EQ(first.size(), static_cast<std::size_t>(kEntries)) << "group " << g;
        for (int k = 0; k < kEntries; ++k) {
            EXPECT_EQ(first[k].data, payload(g, k)) << "group " << g;
            if (k > 0) {
                EXPECT_LT(first[k - 1].index, first[k].index);
            }
        }
        for (std::uint64_t id = 2; id <= 3; ++id) {
            const std::vector<Entry> &log = c.log(id, g);
            ASSERT_EQ(log.size(), first.size());
            for (std::size_t k = 0; k < log.size(); ++k) {
                EXPECT_EQ(log[k].index, first[k].index);
                EXPECT_EQ(log[k].data, first[k].data);
            }
        }
        // Every proposal reported once, committed at the index it was applied at.
        std::uint64_t leader = c.leader(g);
        for (int k = 0; k < kEntries; ++k) {
            auto it = c.done[leader].find(ids[g][k]);
            ASSERT_NE(it, c.done[leader].end());
            EXPECT_EQ(it->second.status, MUXRAFT_OK);
            EXPECT_EQ(it->second.group_id, g);
            EXPECT_EQ(it->second.index, first[k].index);
        }
    }
    EXPECT_EQ(c.done_reports, kGroups * kEntries);

    muxraft::Stats stats = c.node(1).stats();
    EXPECT_EQ(stats.groups, kGroups);
    EXPECT_GT(stats.messages_sent, 0u);
    EXPECT_GT(stats.messages_received, 0u);
    EXPECT_GT(stats.heartbeat_batches_sent, 0u);
    EXPECT_GT(c.frames_carried, 0u);
    EXPECT_GT(c.role_changes, 0u);
}

TEST(HostDriven, IdleClusterSendsOneHeartbeatBatchPerPeerPerInterval)
{
    muxraft::Config config;
    config.heartbeat_ticks = 2;
    HostCluster c(3, config);
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        c.create_group(g);
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));
    for (int t = 0; t < 20; ++t) // settle: followers caught up
        c.tick();

    std::uint64_t before = 0;
    for (auto &n : c.nodes)
        before += n.stats().heartbeat_batches_sent;
    const int intervals = 10;
    for (int t = 0; t < intervals * 2; ++t)
        c.tick();
    std::uint64_t after = 0;
    for (auto &n : c.nodes)
        after += n.stats().heartbeat_batches_sent;
    // 3 nodes x 2 peers x 10 intervals, whatever the number of groups.
    EXPECT_LE(after - before, 3u * 2u * intervals);
}

// A callback calls back into its own node through a NodeRef: the apply of
// "ping" on the leader proposes "pong", which every node applies after it.
TEST(HostDriven, ApplyCallbackProposesThroughNodeRef)
{
    HostCluster c(3);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1);
    const muxraft::NodeRef leader_ref = c.node(leader).ref();

    std::uint64_t pong_id = 0;
    c.on_apply = [&](std::uint64_t id, std::uint64_t group, std::uint64_t, std::string_view data) {
        if (id == leader && data == "ping")
            pong_id = leader_ref.propose(group, "pong");
    };
    c.node(leader).propose(1, "ping");
    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (c.log(id, 1).size() < 2)
                    return false;
            return true;
        },
        kMaxTicks));
    EXPECT_NE(pong_id, 0u);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        ASSERT_EQ(c.log(id, 1).size(), 2u);
        EXPECT_EQ(c.log(id, 1)[0].data, "ping");
        EXPECT_EQ(c.log(id, 1)[1].data, "pong");
    }
    ASSERT_EQ(c.done[leader].count(pong_id), 1u);
    EXPECT_EQ(c.done[leader][pong_id].status, MUXRAFT_OK);
}

// Frames are plain bytes: they can be copied, kept and delivered later.
TEST(HostDriven, FramesAreBytesTheHostOwns)
{
    HostCluster c(3);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1);
    c.node(leader).propose(1, std::string("\0binary\xff", 8));
    ASSERT_FALSE(c.wire.empty());
    for (const auto &f : c.wire) {
        EXPECT_EQ(f.from, leader);
        EXPECT_NE(f.to, leader);
        EXPECT_FALSE(f.bytes.empty());
    }
    ASSERT_TRUE(c.tick_until([&] { return c.log(3, 1).size() == 1 && c.log(1, 1).size() == 1; },
                             kMaxTicks));
    EXPECT_EQ(c.log(3, 1)[0].data, std::string("\0binary\xff", 8));
}
