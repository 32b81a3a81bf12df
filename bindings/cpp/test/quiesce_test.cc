// quiesce_test.cc: quiescence through the C++ wrapper. Config::quiesce goes
// to muxraft_config and back; on a host-driven cluster idle groups go quiet
// (groups_awake counts down to 0, groups_quiesced up to every group, no
// more heartbeat rows), a proposal wakes its group, a lost leader node wakes
// exactly its groups; with quiesce false (or without batched heartbeats)
// every group stays awake.
#include <cstdint>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::kMaxTicks;
using muxraft_test::config_for;

namespace {

constexpr std::uint64_t kGroups = 6;

void create_groups(HostCluster &c)
{
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        c.create_group(g);
}

// Every node of `c` has every group quiet.
bool all_quiet(HostCluster &c)
{
    for (auto &n : c.nodes) {
        const muxraft::Stats s = n.stats();
        if (s.groups_quiesced != kGroups || s.groups_awake != 0)
            return false;
    }
    return true;
}

muxraft::Config quiesce_config(bool quiesce)
{
    muxraft::Config config;
    config.quiesce = quiesce;
    return config;
}

} // namespace

TEST(Quiesce, ConfigCarriesTheFlag)
{
    muxraft_config defaults;
    muxraft_config_init(&defaults);
    const muxraft::Config d;
    EXPECT_EQ(d.quiesce, defaults.quiesce);
    EXPECT_TRUE(d.quiesce);

    for (const bool on : {false, true}) {
        muxraft::Config c = config_for(1);
        c.quiesce = on;
        const muxraft_config raw = c.to_c();
        EXPECT_EQ(raw.quiesce, on);
        EXPECT_EQ(muxraft::Config(raw).quiesce, on);
        // muxraft_node_new accepts both, with and without batched heartbeats.
        for (const bool batch : {false, true}) {
            c.batch_heartbeats = batch;
            EXPECT_NO_THROW({
                muxraft::Node n(c);
                n.create_group(1, 1, {1});
            }) << "quiesce " << on << " batch_heartbeats " << batch;
        }
    }
}

// With no proposals, every group goes quiet on every node: groups_awake
// counts down to 0 and never up, groups_quiesced reaches
// every group; then the per-pair batches still flow (the peers stay heard)
// but carry no rows, and no leader changes.
TEST(Quiesce, IdleGroupsGoQuietOnEveryNode)
{
    HostCluster c(3, quiesce_config(true));
    create_groups(c);
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));

    std::map<std::uint64_t, std::vector<std::uint64_t>> awake; // node -> groups_awake per tick
    const bool quiet = c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                awake[id].push_back(c.node(id).stats().groups_awake);
            return all_quiet(c);
        },
        kMaxTicks);
    ASSERT_TRUE(quiet);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const std::vector<std::uint64_t> &a = awake[id];
        ASSERT_GE(a.size(), 2u);
        // Groups elected early may be quiet before the last one has a
        // leader: the count starts at most at every group.
        EXPECT_GT(a.front(), 0u) << "node " << id;
        EXPECT_LE(a.front(), kGroups) << "node " << id;
        EXPECT_EQ(a.back(), 0u) << "node " << id;
        for (std::size_t i = 1; i < a.size(); ++i)
            EXPECT_LE(a[i], a[i - 1]) << "node " << id << " woke a group at sample " << i;
        const muxraft::Stats s = c.node(id).stats();
        EXPECT_EQ(s.groups, kGroups);
        EXPECT_EQ(s.groups_quiesced, kGroups);
        EXPECT_GE(s.quiesced_total, kGroups);
        EXPECT_EQ(s.wakeups_host, 0u);
        EXPECT_EQ(s.wakeups_peer_lost, 0u);
        EXPECT_EQ(s.peers, 2u);
        EXPECT_EQ(s.peers_heard, 2u);
        EXPECT_EQ(s.peers_lost, 0u);
        EXPECT_EQ(s.peers_returned, 0u);
        EXPECT_EQ(s.peers_restarted, 0u);
    }

    // Quiet: batches every interval, no rows in them, leaders kept.
    std::map<std::uint64_t, muxraft::Stats> before;
    std::map<std::uint64_t, std::uint64_t> leaders;
    for (std::uint64_t id = 1; id <= 3; ++id)
        before[id] = c.node(id).stats();
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        leaders[g] = c.leader(g);
    for (int t = 0; t < 40; ++t)
        c.tick();
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const muxraft::Stats s = c.node(id).stats();
        EXPECT_GT(s.heartbeat_batches_sent, before[id].heartbeat_batches_sent) << "node " << id;
        EXPECT_EQ(s.group_heartbeats_batched, before[id].group_heartbeats_batched) << "node " << id;
        EXPECT_EQ(s.elections_started, before[id].elections_started) << "node " << id;
        EXPECT_EQ(s.groups_quiesced, kGroups);
        EXPECT_EQ(s.peers_heard, 2u);
    }
    for (std::uint64_t g = 1; g <= kGroups; ++g)
        EXPECT_EQ(c.leader(g), leaders[g]) << "group " << g;
}

// A proposal wakes its group (wakeups_host on the leader, a leader's message
// on the followers); it commits, and the group goes quiet again.
TEST(Quiesce, AProposalWakesItsGroup)
{
    HostCluster c(3, quiesce_config(true));
    create_groups(c);
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));
    ASSERT_TRUE(c.tick_until([&] { return all_quiet(c); }, kMaxTicks));

    const std::uint64_t leader = c.leader(3);
    ASSERT_NE(leader, 0u);
    std::map<std::uint64_t, muxraft::Stats> before;
    for (std::uint64_t id = 1; id <= 3; ++id)
        before[id] = c.node(id).stats();

    const std::uint64_t id3 = c.node(leader).propose(3, "wake up");
    muxraft::Stats s = c.node(leader).stats();
    EXPECT_EQ(s.groups_awake, 1u);
    EXPECT_EQ(s.groups_quiesced, kGroups - 1);
    EXPECT_EQ(s.wakeups_host, before[leader].wakeups_host + 1);

    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (c.log(id, 3).empty())
                    return false;
            return c.done[leader].count(id3) == 1;
        },
        kMaxTicks));
    EXPECT_EQ(c.done[leader][id3].status, MUXRAFT_OK);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        EXPECT_EQ(c.log(id, 3).back().data, "wake up");
        if (id != leader) {
            EXPECT_GT(c.node(id).stats().wakeups_leader_message,
                      before[id].wakeups_leader_message)
                << "node " << id;
        }
    }

    ASSERT_TRUE(c.tick_until([&] { return all_quiet(c); }, kMaxTicks));
    for (std::uint64_t id = 1; id <= 3; ++id)
        EXPECT_GT(c.node(id).stats().quiesced_total, before[id].quiesced_total) << "node " << id;
}

// Once a quiet leader's node is cut off, the survivors lose it (peers_lost),
// and exactly the groups it led wake (wakeups_peer_lost) and elect a leader
// among them; the groups led elsewhere keep their leader and stay quiet.
// When it returns, it is heard again (peers_returned).
TEST(Quiesce, ALostLeaderNodeWakesExactlyItsGroups)
{
    HostCluster c(3, quiesce_config(true));
    create_groups(c);
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));
    ASSERT_TRUE(c.tick_until([&] { return all_quiet(c); }, kMaxTicks));

    std::map<std::uint64_t, std::uint64_t> leaders;
    std::map<std::uint64_t, std::uint64_t> led; // node -> groups it leads
    for (std::uint64_t g = 1; g <= kGroups; ++g) {
        leaders[g] = c.leader(g);
        ASSERT_NE(leaders[g], 0u);
        ++led[leaders[g]];
    }
    const std::uint64_t lost = leaders[1];
    ASSERT_LT(led[lost], kGroups) << "one node leads every group";
    c.isolated = lost;

    const auto survivors_lead = [&] {
        for (std::uint64_t g = 1; g <= kGroups; ++g) {
            if (leaders[g] != lost)
                continue;
            int leading = 0;
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (id != lost && c.node(id).group_status(g).role == MUXRAFT_LEADER)
                    ++leading;
            if (leading != 1)
                return false;
        }
        return true;
    };
    ASSERT_TRUE(c.tick_until(survivors_lead, kMaxTicks));
    for (std::uint64_t id = 1; id <= 3; ++id) {
        if (id == lost)
            continue;
        const muxraft::Stats s = c.node(id).stats();
        EXPECT_EQ(s.peers_lost, 1u) << "node " << id;
        EXPECT_EQ(s.peers_heard, 1u) << "node " << id;
        EXPECT_EQ(s.wakeups_peer_lost, led[lost]) << "node " << id;
        for (std::uint64_t g = 1; g <= kGroups; ++g) {
            if (leaders[g] != lost) {
                const muxraft::GroupInfo info = c.node(id).group_status(g);
                EXPECT_EQ(info.leader_id, leaders[g]) << "group " << g << " on node " << id;
            }
        }
    }

    c.isolated = 0;
    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (c.node(id).stats().peers_heard != 2)
                    return false;
            return true;
        },
        kMaxTicks));
    for (std::uint64_t id = 1; id <= 3; ++id) {
        if (id != lost) {
            EXPECT_EQ(c.node(id).stats().peers_returned, 1u) << "node " << id;
        }
    }
    ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));
    ASSERT_TRUE(c.tick_until([&] { return all_quiet(c); }, kMaxTicks));
}

// With quiesce false, or without batched heartbeats (quiesce needs them),
// every group stays awake however long it idles.
TEST(Quiesce, OffEveryGroupStaysAwake)
{
    muxraft::Config naive = quiesce_config(true);
    naive.batch_heartbeats = false;
    for (const muxraft::Config &config : {quiesce_config(false), naive}) {
        HostCluster c(3, config);
        create_groups(c);
        ASSERT_TRUE(c.wait_leaders(1, kGroups, kMaxTicks));
        for (int t = 0; t < 100; ++t) {
            c.tick();
            for (std::uint64_t id = 1; id <= 3; ++id) {
                const muxraft::Stats s = c.node(id).stats();
                ASSERT_EQ(s.groups_quiesced, 0u) << "node " << id << " tick " << t;
                ASSERT_EQ(s.groups_awake, kGroups) << "node " << id << " tick " << t;
                ASSERT_EQ(s.quiesced_total, 0u);
            }
        }
        for (std::uint64_t id = 1; id <= 3; ++id) {
            const muxraft::Stats s = c.node(id).stats();
            EXPECT_EQ(s.wakeups_host + s.wakeups_leader_message + s.wakeups_follower_message +
                          s.wakeups_peer_lost + s.wakeups_peer_returned,
                      0u);
            if (config.batch_heartbeats) {
                EXPECT_GT(s.group_heartbeats_batched, 0u);
            }
        }
    }
}
