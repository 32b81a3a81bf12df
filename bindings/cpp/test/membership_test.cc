// membership_test.cc: membership changes through the C++ wrapper:
// join_group, add_member / try_add_member, remove_member /
// try_remove_member, members(), and the members_changed callback.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::Membership;
using muxraft_test::RoleChange;
using muxraft_test::config_for;
using muxraft_test::kMaxTicks;
using muxraft_test::throws_from;

namespace {

// The node among `ids` that leads `group`, if exactly one of them does and
// all of them name it; 0 otherwise. Nodes outside `ids` are not asked (they
// may not host the group).
std::uint64_t leader_among(HostCluster &c, std::uint64_t group,
                           std::initializer_list<std::uint64_t> ids)
{
    std::uint64_t leader = 0;
    int leading = 0;
    for (std::uint64_t id : ids)
        if (c.node(id).group_status(group).role == MUXRAFT_LEADER) {
            leader = id;
            ++leading;
        }
    if (leading != 1)
        return 0;
    for (std::uint64_t id : ids)
        if (c.node(id).group_status(group).leader_id != leader)
            return 0;
    return leader;
}

// Node `id`'s last members_changed report of `group` lists exactly
// `count` members, all voters, `absent` (0: none) not among them.
bool reported_voters(HostCluster &c, std::uint64_t id, std::uint64_t group, std::size_t count,
                     std::uint64_t absent = 0)
{
    const Membership *last = nullptr;
    for (const Membership &m : c.memberships[id])
        if (m.group_id == group)
            last = &m;
    if (last == nullptr || last->members.size() != count)
        return false;
    for (const muxraft::Member &m : last->members)
        if (m.role != MUXRAFT_VOTER || m.node_id == absent || m.match_index != 0)
            return false;
    return true;
}

} // namespace

static_assert(noexcept(std::declval<const muxraft::Node &>().try_add_member(1, 2, MUXRAFT_VOTER)),
              "try_add_member does not throw");
static_assert(noexcept(std::declval<const muxraft::NodeRef &>().try_remove_member(1, 2)),
              "try_remove_member does not throw");

// A group of nodes 1..3 grows to node 4, which joins and is added as
// promotable: members() lists it at once on the leader, a second change
// is BUSY meanwhile; members_changed then reports 4 voters on every node,
// node 4 holds the entries proposed before, and members() on the leader
// gives each member's match_index. Then the leader removes itself: another
// node leads, and every node, the old leader included, reports the three
// others.
TEST(Membership, AGroupGrowsToAFourthNodeThenItsLeaderLeaves)
{
    HostCluster c(4);
    for (std::uint64_t id = 1; id <= 3; ++id)
        c.node(id).create_group(1, 1, {1, 2, 3});
    std::uint64_t l = 0;
    ASSERT_TRUE(c.tick_until([&] { return (l = leader_among(c, 1, {1, 2, 3})) != 0; },
                             kMaxTicks));
    muxraft::Node &leader = c.node(l);
    muxraft::Node &follower = c.node(l % 3 + 1);
    muxraft::Node &fourth = c.node(4);
    leader.propose(1, "a");
    leader.propose(1, "b");
    ASSERT_TRUE(c.tick_until([&] { return c.log(l % 3 + 1, 1).size() == 2; }, kMaxTicks));
    EXPECT_TRUE(c.memberships[l].empty()); // creation is not a change

    fourth.join_group(1, 1);
    EXPECT_TRUE(fourth.members(1).empty());
    EXPECT_TRUE(throws_from([&] { fourth.join_group(1, 1); }, MUXRAFT_ALREADY_EXISTS,
                            "muxraft_group_join"));
    EXPECT_EQ(follower.try_add_member(1, 4, MUXRAFT_PROMOTABLE), MUXRAFT_NOT_LEADER);
    EXPECT_TRUE(throws_from([&] { follower.add_member(1, 4, MUXRAFT_PROMOTABLE); },
                            MUXRAFT_NOT_LEADER, "muxraft_group_add_member"));

    leader.add_member(1, 4, MUXRAFT_PROMOTABLE);
    std::vector<muxraft::Member> m = leader.members(1);
    ASSERT_EQ(m.size(), 4u);
    EXPECT_EQ(m[3].node_id, 4u);
    EXPECT_EQ(m[3].role, static_cast<muxraft::MemberRole>(MUXRAFT_PROMOTABLE));
    EXPECT_STREQ(muxraft::member_role_name(m[3].role), "promotable");
    // One change at a time.
    EXPECT_EQ(leader.try_add_member(1, 4, MUXRAFT_VOTER), MUXRAFT_BUSY);
    EXPECT_TRUE(throws_from([&] { leader.remove_member(1, 4); }, MUXRAFT_BUSY,
                            "muxraft_group_remove_member"));

    ASSERT_TRUE(c.tick_until(
        [&] {
            bool all = c.log(4, 1).size() >= 2;
            for (std::uint64_t id = 1; id <= 4; ++id)
                all = all && reported_voters(c, id, 1, 4);
            return all;
        },
        kMaxTicks));
    EXPECT_EQ(c.log(4, 1)[0].data, "a");
    EXPECT_EQ(c.log(4, 1)[1].data, "b");
    EXPECT_EQ(c.log(4, 1)[1].index, c.log(l, 1)[1].index);
    // Node 4 first learned the change that added it, as promotable.
    ASSERT_FALSE(c.memberships[4].empty());
    EXPECT_EQ(c.memberships[4][0].members.size(), 4u);
    EXPECT_EQ(c.memberships[4][0].members[3].role,
              static_cast<muxraft::MemberRole>(MUXRAFT_PROMOTABLE));
    EXPECT_EQ(c.memberships[4].back().index, c.memberships[l].back().index);

    for (int t = 0; t < 5; ++t)
        c.tick();
    const std::uint64_t last = leader.group_status(1).last_index;
    m = leader.members(1);
    ASSERT_EQ(m.size(), 4u);
    for (std::size_t i = 0; i < m.size(); ++i) {
        EXPECT_EQ(m[i].node_id, i + 1);
        EXPECT_EQ(m[i].role, static_cast<muxraft::MemberRole>(MUXRAFT_VOTER));
        EXPECT_EQ(m[i].match_index, last) << "node " << m[i].node_id;
    }
    for (const muxraft::Member &x : fourth.members(1))
        EXPECT_EQ(x.match_index, 0u); // not on a follower

    EXPECT_EQ(leader.try_remove_member(1, 9), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_TRUE(throws_from([&] { leader.remove_member(1, 9); }, MUXRAFT_INVALID_ARGUMENT,
                            "muxraft_group_remove_member"));

    // The leader leaves.
    std::map<std::uint64_t, std::size_t> seen;
    for (std::uint64_t id = 1; id <= 4; ++id)
        seen[id] = c.roles[id].size();
    leader.remove_member(1, l);
    std::vector<std::uint64_t> rest;
    for (std::uint64_t id = 1; id <= 4; ++id)
        if (id != l)
            rest.push_back(id);
    std::uint64_t nl = 0;
    ASSERT_TRUE(c.tick_until(
        [&] {
            nl = leader_among(c, 1, {rest[0], rest[1], rest[2]});
            bool all = nl != 0 && reported_voters(c, l, 1, 3, l);
            for (std::uint64_t id : rest)
                all = all && reported_voters(c, id, 1, 3, l);
            return all;
        },
        kMaxTicks));
    EXPECT_NE(nl, l);
    for (std::uint64_t id : rest) {
        bool told = false;
        const std::vector<RoleChange> &r = c.roles[id];
        for (std::size_t k = seen[id]; k < r.size(); ++k)
            told = told || (r[k].group_id == 1 && r[k].leader_id == nl &&
                            (r[k].role == MUXRAFT_LEADER) == (id == nl));
        EXPECT_TRUE(told) << "node " << id;
    }
    EXPECT_NE(leader.group_status(1).role, MUXRAFT_LEADER);
    EXPECT_EQ(leader.try_propose(1, "gone").status, MUXRAFT_NOT_LEADER);
    EXPECT_EQ(leader.members(1).size(), 3u);
    leader.remove_group(1);

    const std::uint64_t p = c.node(nl).propose(1, "without it");
    ASSERT_TRUE(c.tick_until([&] { return c.done[nl].count(p) == 1; }, kMaxTicks));
    EXPECT_EQ(c.done[nl][p].status, MUXRAFT_OK);
}

// Every refusal is returned by the try_ calls and thrown by the others,
// with the C function's name and muxraft_last_error(); members() answers
// after stop, the other calls throw MUXRAFT_SHUTDOWN.
TEST(Membership, RefusalsAreReturnedOrThrown)
{
    muxraft::Node n(config_for(1));
    n.create_group(1, 1, {1});
    n.create_group(2, 1, {1, 2, 3}); // nobody leads it
    ASSERT_TRUE(muxraft_test::lead(n, 1));
    for (int t = 0; t < 5; ++t)
        n.tick(); // the leader's first entry committed

    EXPECT_EQ(n.try_add_member(99, 2, MUXRAFT_VOTER), MUXRAFT_NOT_FOUND);
    EXPECT_TRUE(throws_from([&] { n.add_member(99, 2, MUXRAFT_VOTER); }, MUXRAFT_NOT_FOUND,
                            "muxraft_group_add_member"));
    EXPECT_EQ(n.try_add_member(1, 2, 7), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_EQ(n.try_add_member(1, 0, MUXRAFT_VOTER), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_EQ(n.try_add_member(1, 1, MUXRAFT_VOTER), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_EQ(n.try_add_member(2, 4, MUXRAFT_NONVOTER), MUXRAFT_NOT_LEADER);
    EXPECT_EQ(n.try_remove_member(1, 1), MUXRAFT_INVALID_ARGUMENT); // the last voter
    EXPECT_TRUE(throws_from([&] { n.remove_member(2, 3); }, MUXRAFT_NOT_LEADER,
                            "muxraft_group_remove_member"));
    EXPECT_TRUE(throws_from([&] { n.members(99); }, MUXRAFT_NOT_FOUND,
                            "muxraft_group_members"));
    EXPECT_TRUE(throws_from([&] { n.join_group(1, 1); }, MUXRAFT_ALREADY_EXISTS,
                            "muxraft_group_join"));
    EXPECT_EQ(n.members(2).size(), 3u);
    EXPECT_STREQ(muxraft::member_role_name(MUXRAFT_VOTER), "voter");
    EXPECT_STREQ(muxraft::member_role_name(MUXRAFT_NONVOTER), "nonvoter");
    EXPECT_STREQ(muxraft::member_role_name(7), "unknown");

    muxraft::Node empty;
    EXPECT_EQ(empty.try_add_member(1, 2, MUXRAFT_VOTER), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_EQ(empty.try_remove_member(1, 2), MUXRAFT_INVALID_ARGUMENT);
    EXPECT_TRUE(throws_from([&] { muxraft::NodeRef().members(1); }, MUXRAFT_INVALID_ARGUMENT,
                            "muxraft_group_members"));
    EXPECT_TRUE(throws_from([&] { muxraft::NodeRef().join_group(1, 1); },
                            MUXRAFT_INVALID_ARGUMENT, "muxraft_group_join"));

    n.stop();
    EXPECT_EQ(n.try_add_member(1, 2, MUXRAFT_NONVOTER), MUXRAFT_SHUTDOWN);
    EXPECT_TRUE(throws_from([&] { n.remove_member(1, 2); }, MUXRAFT_SHUTDOWN,
                            "muxraft_group_remove_member"));
    EXPECT_TRUE(throws_from([&] { n.join_group(3, 1); }, MUXRAFT_SHUTDOWN,
                            "muxraft_group_join"));
    EXPECT_EQ(n.members(1).size(), 1u); // read-only: answers
}

// members_changed may make the next change through a NodeRef: the change
// it reports has committed, so the leader takes another. A node leading a
// group alone adds a non-voter (which never counts) and, from the
// callback, removes it again; both memberships are reported, in order.
TEST(Membership, MembersChangedMayChangeTheGroupAgain)
{
    muxraft::NodeRef ref;
    std::vector<Membership> seen;
    std::vector<muxraft::Status> chained;
    muxraft::Callbacks cb;
    cb.members_changed = [&](std::uint64_t group, std::uint64_t index,
                             const std::vector<muxraft::Member> &members) {
        seen.push_back(Membership{group, index, members});
        if (seen.size() == 1)
            chained.push_back(ref.try_remove_member(group, 2));
    };
    muxraft::Node n(config_for(1), std::move(cb));
    ref = n.ref();
    n.create_group(1, 1, {1});
    ASSERT_TRUE(muxraft_test::lead(n, 1));
    for (int t = 0; t < 5; ++t)
        n.tick();
    n.add_member(1, 2, MUXRAFT_NONVOTER);
    for (int t = 0; t < 10 && seen.size() < 2; ++t)
        n.tick();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(chained, std::vector<muxraft::Status>{MUXRAFT_OK});
    ASSERT_EQ(seen[0].members.size(), 2u);
    EXPECT_EQ(seen[0].members[0].node_id, 1u);
    EXPECT_EQ(seen[0].members[0].role, static_cast<muxraft::MemberRole>(MUXRAFT_VOTER));
    EXPECT_EQ(seen[0].members[1].node_id, 2u);
    EXPECT_EQ(seen[0].members[1].role, static_cast<muxraft::MemberRole>(MUXRAFT_NONVOTER));
    ASSERT_EQ(seen[1].members.size(), 1u);
    EXPECT_EQ(seen[1].members[0].node_id, 1u);
    EXPECT_GT(seen[1].index, seen[0].index);
    EXPECT_EQ(n.members(1).size(), 1u);
}

// An exception escaping members_changed cannot cross the C library either.
TEST(MembershipDeathTest, ExceptionEscapingMembersChangedTerminates)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            muxraft::Callbacks cb;
            cb.members_changed = [](std::uint64_t, std::uint64_t,
                                    const std::vector<muxraft::Member> &) {
                throw std::runtime_error("no room for members");
            };
            muxraft::Node n(config_for(1), std::move(cb));
            n.create_group(1, 1, {1});
            for (int t = 0; t < 200 && n.group_status(1).role != MUXRAFT_LEADER; ++t)
                n.tick();
            for (int t = 0; t < 5; ++t)
                n.tick();
            n.add_member(1, 2, MUXRAFT_NONVOTER);
            for (int t = 0; t < 200; ++t)
                n.tick();
        },
        "exception escaped the members_changed callback: no room for members");
}
