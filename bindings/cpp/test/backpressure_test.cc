// backpressure_test.cc: the limits of proposals in flight and of bytes not
// yet durable (Config's max_pending_* and max_unsynced_*), MUXRAFT_BUSY from
// try_propose and propose, the gauges in group_status() and stats(), and a
// data directory that another node holds.
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::kMaxTicks;

namespace {

// Every node of `c` applied at least `n` entries of `group`.
bool all_applied(HostCluster &c, std::uint64_t group, std::size_t n)
{
    for (std::uint64_t id = 1; id <= c.nodes.size(); ++id)
        if (c.log(id, group).size() < n)
            return false;
    return true;
}

} // namespace

TEST(Backpressure, ConfigCarriesTheLimits)
{
    muxraft_config defaults;
    muxraft_config_init(&defaults);
    const muxraft::Config d;
    EXPECT_EQ(d.max_pending_proposals_per_group, defaults.max_pending_proposals_per_group);
    EXPECT_EQ(d.max_pending_proposals, defaults.max_pending_proposals);
    EXPECT_EQ(d.max_unsynced_bytes_per_group, defaults.max_unsynced_bytes_per_group);
    EXPECT_EQ(d.max_unsynced_bytes, defaults.max_unsynced_bytes);
    EXPECT_EQ(d.max_pending_proposals_per_group, 4096u);
    EXPECT_EQ(d.max_pending_proposals, 4096u);
    EXPECT_EQ(d.max_unsynced_bytes_per_group, 16u << 20);
    EXPECT_EQ(d.max_unsynced_bytes, 256u << 20);

    muxraft::Config c;
    c.max_pending_proposals_per_group = 1;
    c.max_pending_proposals = 2;
    c.max_unsynced_bytes_per_group = 3;
    c.max_unsynced_bytes = 0;
    const muxraft_config raw = c.to_c();
    EXPECT_EQ(raw.max_pending_proposals_per_group, 1u);
    EXPECT_EQ(raw.max_pending_proposals, 2u);
    EXPECT_EQ(raw.max_unsynced_bytes_per_group, 3u);
    EXPECT_EQ(raw.max_unsynced_bytes, 0u);
    const muxraft::Config back(raw);
    EXPECT_EQ(back.max_pending_proposals_per_group, 1u);
    EXPECT_EQ(back.max_pending_proposals, 2u);
    EXPECT_EQ(back.max_unsynced_bytes_per_group, 3u);
    EXPECT_EQ(back.max_unsynced_bytes, 0u);
}

// With frames held, the leader's proposals stay in flight; at
// max_pending_proposals_per_group the next one is MUXRAFT_BUSY at once
// (returned by try_propose, thrown by propose, nothing proposed), the gauges
// show it, and once the frames flow and the proposals commit, proposing
// works again.
TEST(Backpressure, AGroupAtItsLimitOfProposalsInFlightIsBusyUntilTheyCommit)
{
    muxraft::Config config;
    config.max_pending_proposals_per_group = 2;
    HostCluster c(3, config);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1);
    muxraft::Node &n = c.node(leader);
    EXPECT_EQ(n.group_status(1).pending_proposals, 0u);

    // Nothing delivered between these calls: nothing commits.
    const muxraft::ProposeResult one = n.try_propose(1, "one");
    const muxraft::ProposeResult two = n.try_propose(1, "two");
    ASSERT_TRUE(one.ok()) << muxraft::status_name(one.status);
    ASSERT_TRUE(two.ok()) << muxraft::status_name(two.status);
    const std::uint64_t last = n.group_status(1).last_index;

    const muxraft::ProposeResult three = n.try_propose(1, "refused");
    EXPECT_EQ(three.status, MUXRAFT_BUSY);
    EXPECT_FALSE(three.ok());
    EXPECT_EQ(three.id, 0u);
    EXPECT_NE(std::string(muxraft_last_error()).find("proposals in flight"), std::string::npos)
        << muxraft_last_error();

    const muxraft::GroupInfo info = n.group_status(1);
    EXPECT_EQ(info.pending_proposals, 2u);
    EXPECT_EQ(info.last_index, last); // nothing proposed
    muxraft::Stats s = n.stats();
    EXPECT_EQ(s.proposals_refused_busy, 1u);
    EXPECT_EQ(s.pending_proposals, 2u);

    // propose() throws the same status.
    try {
        n.propose(1, "refused too");
        ADD_FAILURE() << "propose did not throw";
    } catch (const muxraft::Error &e) {
        EXPECT_EQ(e.status(), MUXRAFT_BUSY);
        EXPECT_EQ(e.function(), "muxraft_propose");
    }
    EXPECT_EQ(n.stats().proposals_refused_busy, 2u);
    EXPECT_EQ(n.group_status(1).last_index, last);

    // A follower still answers MUXRAFT_NOT_LEADER.
    const std::uint64_t follower = leader % 3 + 1;
    EXPECT_EQ(c.node(follower).try_propose(1, "x").status, MUXRAFT_NOT_LEADER);

    // The frames flow: the two commit and the pressure is gone.
    ASSERT_TRUE(c.tick_until([&] { return all_applied(c, 1, 2); }, kMaxTicks));
    ASSERT_TRUE(c.tick_until([&] { return c.done[leader].size() == 2; }, kMaxTicks));
    EXPECT_EQ(c.done[leader][one.id].status, MUXRAFT_OK);
    EXPECT_EQ(c.done[leader][two.id].status, MUXRAFT_OK);
    EXPECT_EQ(n.group_status(1).pending_proposals, 0u);
    s = n.stats();
    EXPECT_EQ(s.pending_proposals, 0u);
    EXPECT_EQ(s.proposals_refused_busy, 2u);

    // Proposing works again; the refused payloads were never applied.
    const std::uint64_t after = n.propose(1, "after");
    ASSERT_TRUE(c.tick_until([&] { return all_applied(c, 1, 3); }, kMaxTicks));
    ASSERT_TRUE(c.tick_until([&] { return c.done[leader].count(after) == 1; }, kMaxTicks));
    EXPECT_EQ(c.done[leader][after].status, MUXRAFT_OK);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const auto &log = c.log(id, 1);
        ASSERT_EQ(log.size(), 3u) << "node " << id;
        EXPECT_EQ(log[0].data, "one");
        EXPECT_EQ(log[1].data, "two");
        EXPECT_EQ(log[2].data, "after");
    }
    EXPECT_EQ(c.done_reports, 3u); // the refused proposals got no report
}

// The node's limit counts the proposals in flight over all its groups.
TEST(Backpressure, TheNodesLimitCountsEveryGroup)
{
    muxraft::Config config;
    config.max_pending_proposals = 3;
    HostCluster c(3, config);
    // Of four groups on three nodes, two have the same leader.
    for (std::uint64_t g = 1; g <= 4; ++g)
        c.create_group(g);
    ASSERT_TRUE(c.wait_leaders(1, 4, kMaxTicks));
    std::uint64_t a = 0, b = 0;
    for (std::uint64_t g = 1; g <= 4 && b == 0; ++g)
        for (std::uint64_t h = g + 1; h <= 4 && b == 0; ++h)
            if (c.leader(g) == c.leader(h)) {
                a = g;
                b = h;
            }
    ASSERT_NE(b, 0u);
    muxraft::Node &n = c.node(c.leader(a));

    // Nothing delivered between these calls: nothing commits.
    ASSERT_TRUE(n.try_propose(a, "a0").ok());
    ASSERT_TRUE(n.try_propose(a, "a1").ok());
    ASSERT_TRUE(n.try_propose(b, "b0").ok());
    EXPECT_EQ(n.try_propose(b, "refused").status, MUXRAFT_BUSY);
    EXPECT_EQ(n.try_propose(a, "refused").status, MUXRAFT_BUSY);
    const muxraft::Stats s = n.stats();
    EXPECT_EQ(s.pending_proposals, 3u);
    EXPECT_EQ(s.proposals_refused_busy, 2u);
    EXPECT_EQ(n.group_status(a).pending_proposals, 2u);
    EXPECT_EQ(n.group_status(b).pending_proposals, 1u);

    ASSERT_TRUE(c.tick_until([&] { return n.stats().pending_proposals == 0; }, kMaxTicks));
    EXPECT_TRUE(n.try_propose(b, "again").ok());
    ASSERT_TRUE(c.tick_until([&] { return all_applied(c, b, 2); }, kMaxTicks));
    for (std::uint64_t id = 1; id <= 3; ++id) {
        ASSERT_EQ(c.log(id, a).size(), 2u);
        ASSERT_EQ(c.log(id, b).size(), 2u);
        EXPECT_EQ(c.log(id, b)[1].data, "again");
    }
}

// A data directory is locked by the node that has it open: a second node on
// it is refused with MUXRAFT_BUSY, and once the first is freed it opens.
TEST(Backpressure, ADataDirectoryInUseIsBusy)
{
    const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                      ("muxraft-cpp-busy-" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    muxraft::Config config;
    config.node_id = 1;
    config.data_dir = dir.string();
    {
        muxraft::Node first(config);
        try {
            muxraft::Node second(config);
            ADD_FAILURE() << "a second node opened the same data directory";
        } catch (const muxraft::Error &e) {
            EXPECT_EQ(e.status(), MUXRAFT_BUSY);
            EXPECT_EQ(e.function(), "muxraft_node_new");
        }
    }
    EXPECT_NO_THROW(muxraft::Node again(config));
    std::filesystem::remove_all(dir, ec);
}
