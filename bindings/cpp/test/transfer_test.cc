// transfer_test.cc: leadership transfer (transfer_leader and
// try_transfer_leader), reported by role_changed, and the leader-balance
// counters of stats() (groups_led, transfers_started).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::RoleChange;
using muxraft_test::kMaxTicks;

namespace {

// Whether node `id` was told by role_changed, after its report number
// `from`, that `leader` leads `group` (as leader itself, or as follower).
bool told_leader(HostCluster &c, std::uint64_t id, std::size_t from, std::uint64_t group,
                 std::uint64_t leader)
{
    const std::vector<RoleChange> &r = c.roles[id];
    for (std::size_t k = from; k < r.size(); ++k)
        if (r[k].group_id == group && r[k].leader_id == leader &&
            (r[k].role == MUXRAFT_LEADER) == (id == leader))
            return true;
    return false;
}

} // namespace

// The group moves to the node asked for within a few ticks: role_changed
// reports the new leader on every replica, the old leader refuses
// proposals meanwhile, the new one takes them; groups_led and
// transfers_started follow. Then it moves back.
TEST(TransferLeader, MovesTheGroupToTheNodeAskedFor)
{
    HostCluster c(3);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t from = c.leader(1);
    ASSERT_NE(from, 0u);
    const std::uint64_t to = from % 3 + 1;
    muxraft::Node &old_leader = c.node(from);
    muxraft::Node &target = c.node(to);

    EXPECT_EQ(old_leader.stats().groups_led, 1u);
    EXPECT_EQ(target.stats().groups_led, 0u);
    EXPECT_EQ(old_leader.stats().transfers_started, 0u);
    // To itself: nothing to do, nothing counted.
    EXPECT_EQ(old_leader.try_transfer_leader(1, from), MUXRAFT_OK);
    EXPECT_EQ(old_leader.stats().transfers_started, 0u);

    std::size_t seen[4];
    for (std::uint64_t id = 1; id <= 3; ++id)
        seen[id] = c.roles[id].size();
    old_leader.transfer_leader(1, to);
    EXPECT_EQ(old_leader.stats().transfers_started, 1u);
    // Under way: proposals go to the target.
    const muxraft::ProposeResult refused = old_leader.try_propose(1, "during");
    EXPECT_EQ(refused.status, MUXRAFT_NOT_LEADER);

    ASSERT_TRUE(c.tick_until([&] { return c.leader(1) == to; }, 50));
    for (std::uint64_t id = 1; id <= 3; ++id)
        EXPECT_TRUE(told_leader(c, id, seen[id], 1, to)) << "node " << id;
    EXPECT_EQ(old_leader.group_status(1).role, MUXRAFT_FOLLOWER);
    EXPECT_EQ(old_leader.stats().groups_led, 0u);
    EXPECT_EQ(target.stats().groups_led, 1u);
    EXPECT_EQ(target.stats().transfers_started, 0u);

    const std::uint64_t p = target.propose(1, "after");
    ASSERT_TRUE(c.tick_until([&] { return c.done[to].count(p) == 1; }, kMaxTicks));
    EXPECT_EQ(c.done[to][p].status, MUXRAFT_OK);
    EXPECT_EQ(old_leader.try_propose(1, "old").status, MUXRAFT_NOT_LEADER);

    // And back, as leaders piled up after a restart are moved back.
    EXPECT_EQ(target.try_transfer_leader(1, from), MUXRAFT_OK);
    ASSERT_TRUE(c.tick_until([&] { return c.leader(1) == from; }, 50));
    EXPECT_EQ(old_leader.stats().groups_led, 1u);
    EXPECT_EQ(target.stats().groups_led, 0u);
    EXPECT_EQ(target.stats().transfers_started, 1u);
}

// try_transfer_leader returns every refusal, transfer_leader throws it:
// MUXRAFT_NOT_LEADER on a follower, MUXRAFT_NOT_FOUND for an unknown group,
// MUXRAFT_INVALID_ARGUMENT for a node that is no voter of the group (and for
// an empty node), MUXRAFT_SHUTDOWN once stopped. Nothing is counted.
TEST(TransferLeader, RefusalsAreReturnedOrThrown)
{
    HostCluster c(3);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t l = c.leader(1);
    ASSERT_NE(l, 0u);
    muxraft::Node &n = c.node(l);
    const std::uint64_t f = l % 3 + 1;
    muxraft::Node &follower = c.node(f);

    EXPECT_EQ(follower.try_transfer_leader(1, l), MUXRAFT_NOT_LEADER);
    EXPECT_TRUE(muxraft_test::throws_from([&] { follower.transfer_leader(1, l); }, MUXRAFT_NOT_LEADER, "muxraft_group_transfer_leader"));
    EXPECT_EQ(n.try_transfer_leader(99, f), MUXRAFT_NOT_FOUND);
    EXPECT_TRUE(muxraft_test::throws_from([&] { n.transfer_leader(99, f); }, MUXRAFT_NOT_FOUND, "muxraft_group_transfer_leader"));
    EXPECT_EQ(n.try_transfer_leader(1, 42), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_TRUE(muxraft_test::throws_from([&] { n.transfer_leader(1, 42); }, MUXRAFT_INVALID_ARGUMENT, "muxraft_group_transfer_leader"));
    EXPECT_FALSE(muxraft_last_error()[0] == '\0');

    muxraft::Node empty;
    EXPECT_EQ(empty.try_transfer_leader(1, 2), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_TRUE(muxraft_test::throws_from([&] { muxraft::NodeRef().transfer_leader(1, 2); },
                                MUXRAFT_INVALID_ARGUMENT, "muxraft_group_transfer_leader"));

    EXPECT_EQ(n.stats().transfers_started, 0u);
    EXPECT_EQ(follower.stats().transfers_started, 0u);
    for (int t = 0; t < 20; ++t)
        c.tick();
    EXPECT_EQ(c.leader(1), l); // nothing moved

    n.stop();
    EXPECT_EQ(n.try_transfer_leader(1, f), MUXRAFT_SHUTDOWN);
    EXPECT_TRUE(muxraft_test::throws_from([&] { n.transfer_leader(1, f); }, MUXRAFT_SHUTDOWN, "muxraft_group_transfer_leader"));
}

// A leader that has never heard from the target is not replicating to it:
// MUXRAFT_BUSY, nothing started. Once the target is reachable and caught
// up, the same call succeeds and the target leads.
TEST(TransferLeader, BusyUntilTheLeaderReplicatesToTheTarget)
{
    HostCluster c(3);
    c.isolated = 3;
    c.create_group(1);
    std::uint64_t l = 0;
    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 2; ++id)
                if (c.node(id).group_status(1).role == MUXRAFT_LEADER)
                    l = id;
            return l != 0;
        },
        kMaxTicks));
    muxraft::Node &n = c.node(l);
    // Proposals commit on the two nodes that hear each other.
    const std::uint64_t p = n.propose(1, "while 3 is away");
    ASSERT_TRUE(c.tick_until([&] { return c.done[l].count(p) == 1; }, kMaxTicks));

    EXPECT_EQ(n.try_transfer_leader(1, 3), MUXRAFT_BUSY);
    EXPECT_TRUE(muxraft_test::throws_from([&] { n.transfer_leader(1, 3); }, MUXRAFT_BUSY, "muxraft_group_transfer_leader"));
    EXPECT_EQ(n.stats().transfers_started, 0u);
    EXPECT_EQ(n.try_propose(1, "still leading").status, MUXRAFT_OK);

    c.isolated = 0;
    muxraft::Status s = MUXRAFT_BUSY;
    ASSERT_TRUE(c.tick_until(
        [&] {
            s = n.try_transfer_leader(1, 3);
            return s != MUXRAFT_BUSY;
        },
        kMaxTicks));
    ASSERT_EQ(s, MUXRAFT_OK) << muxraft::status_name(s);
    EXPECT_EQ(n.stats().transfers_started, 1u);
    ASSERT_TRUE(c.tick_until([&] { return c.leader(1) == 3; }, 50));
    EXPECT_EQ(c.node(3).stats().groups_led, 1u);
    EXPECT_EQ(n.stats().groups_led, 0u);
    // The new leader holds every committed entry.
    EXPECT_GE(c.node(3).group_status(1).commit_index, c.done[l][p].index);
}
