// abi2_test.cc: what ABI 2 changed, through the C++ wrapper: try_propose
// (routine outcomes returned, not thrown), group id 0, the send callback's
// liveness flag, and the structs that carry their struct_size.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::kMaxTicks;
using muxraft_test::config_for;
using muxraft_test::lead;

namespace {

} // namespace

static_assert(noexcept(std::declval<const muxraft::Node &>().try_propose(1, std::string_view())),
              "try_propose does not throw");
static_assert(noexcept(std::declval<const muxraft::NodeRef &>().try_propose(1, nullptr, 0)),
              "try_propose does not throw");
static_assert(std::is_same<decltype(std::declval<const muxraft::Node &>().try_propose(1, "x")),
                           muxraft::ProposeResult>::value,
              "");

TEST(TryPropose, NotLeaderIsReturnedNotThrown)
{
    HostCluster c(3);
    c.create_group(1);
    // Before any election nobody leads.
    muxraft::ProposeResult r{MUXRAFT_OK, 1};
    EXPECT_NO_THROW(r = c.node(1).try_propose(1, "x"));
    EXPECT_EQ(r.status, MUXRAFT_NOT_LEADER);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.id, 0u);
    EXPECT_STRNE(muxraft_last_error(), "");

    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1);
    const std::uint64_t follower = leader % 3 + 1;
    EXPECT_NO_THROW(r = c.node(follower).try_propose(1, "x"));
    EXPECT_EQ(r.status, MUXRAFT_NOT_LEADER);
    EXPECT_EQ(r.id, 0u);
    // The follower names the leader to retry at.
    EXPECT_EQ(c.node(follower).group_status(1).leader_id, leader);

    // At the leader: OK with an id, which proposal_done reports.
    r = c.node(leader).try_propose(1, "at the leader");
    ASSERT_TRUE(r.ok());
    EXPECT_NE(r.id, 0u);
    ASSERT_TRUE(c.tick_until([&] { return c.done[leader].count(r.id) == 1; }, kMaxTicks));
    EXPECT_EQ(c.done[leader][r.id].status, MUXRAFT_OK);
    EXPECT_EQ(c.done[leader][r.id].group_id, 1u);
    ASSERT_TRUE(c.tick_until([&] { return c.log(follower, 1).size() == 1; }, kMaxTicks));
    EXPECT_EQ(c.log(follower, 1)[0].data, "at the leader");
    EXPECT_EQ(c.log(follower, 1)[0].index, c.done[leader][r.id].index);
    EXPECT_EQ(c.done_reports, 1u); // the refused proposals got no report
}

// The pattern where leadership can move: propose at whoever leads now, and
// on MUXRAFT_NOT_LEADER ask the node for the leader and go there.
TEST(TryPropose, RetryAtTheLeaderTheFollowerNames)
{
    HostCluster c(3);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    std::uint64_t at = c.leader(1) % 3 + 1; // start at a follower
    muxraft::ProposeResult r = c.node(at).try_propose(1, "m");
    int hops = 0;
    while (r.status == MUXRAFT_NOT_LEADER && hops++ < 3) {
        at = c.node(at).group_status(1).leader_id;
        ASSERT_NE(at, 0u);
        r = c.node(at).try_propose(1, "m");
    }
    ASSERT_TRUE(r.ok()) << muxraft::status_name(r.status);
    EXPECT_EQ(hops, 1);
    EXPECT_EQ(at, c.leader(1));
    ASSERT_TRUE(c.tick_until([&] { return c.done[at].count(r.id) == 1; }, kMaxTicks));
    EXPECT_EQ(c.done[at][r.id].status, MUXRAFT_OK);
}

TEST(TryPropose, EveryOtherStatusIsReturnedToo)
{
    muxraft::Config config = config_for(1);
    config.max_proposal_bytes = 16;
    muxraft::Node n(config);
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));

    muxraft::ProposeResult r = n.try_propose(99, "x");
    EXPECT_EQ(r.status, MUXRAFT_NOT_FOUND);
    EXPECT_EQ(r.id, 0u);
    r = n.try_propose(1, std::string(17, 'a'));
    EXPECT_EQ(r.status, MUXRAFT_TOO_LARGE);
    EXPECT_NE(std::strstr(muxraft_last_error(), "max_proposal_bytes"), nullptr)
        << muxraft_last_error();
    r = n.try_propose(1, nullptr, 3);
    EXPECT_EQ(r.status, MUXRAFT_INVALID_ARGUMENT);
    r = muxraft::NodeRef().try_propose(1, "x");
    EXPECT_EQ(r.status, MUXRAFT_INVALID_ARGUMENT);

    // OK ids are distinct; the throwing propose agrees with try_propose.
    const muxraft::ProposeResult a = n.try_propose(1, std::string(16, 'a'));
    const muxraft::ProposeResult b = n.ref().try_propose(1, std::string_view());
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(b.ok());
    EXPECT_NE(a.id, b.id);
    const std::uint64_t id = n.propose(1, "throwing");
    EXPECT_NE(id, a.id);
    EXPECT_NE(id, b.id);

    n.stop();
    r = n.try_propose(1, "x");
    EXPECT_EQ(r.status, MUXRAFT_SHUTDOWN);
}

// Every uint64_t is a group id, 0 included.
TEST(GroupZero, CreateProposeRemoveOnOneNode)
{
    std::vector<std::pair<std::uint64_t, std::string>> applied;
    std::vector<std::pair<std::uint64_t, muxraft::Status>> done; // (group, status)
    muxraft::Callbacks cb;
    cb.apply = [&](std::uint64_t group, std::uint64_t, std::string_view data) {
        applied.emplace_back(group, std::string(data));
    };
    cb.proposal_done = [&](std::uint64_t group, std::uint64_t, muxraft::Status status,
                           std::uint64_t) { done.emplace_back(group, status); };
    muxraft::Node n(config_for(1), std::move(cb));

    n.create_group(0, 3, {1});
    n.create_group(1, 1, {1});
    EXPECT_EQ(n.group_status(0).incarnation, 3u);
    EXPECT_EQ(n.stats().groups, 2u);
    ASSERT_TRUE(lead(n, 0));
    ASSERT_TRUE(lead(n, 1));

    const std::uint64_t id = n.propose(0, "zero");
    EXPECT_NE(id, 0u);
    const muxraft::ProposeResult r = n.try_propose(0, "zero again");
    ASSERT_TRUE(r.ok());
    for (int t = 0; t < 10; ++t)
        n.tick();
    const std::vector<std::pair<std::uint64_t, std::string>> want_applied = {
        {0, "zero"}, {0, "zero again"}};
    EXPECT_EQ(applied, want_applied);
    const std::vector<std::pair<std::uint64_t, muxraft::Status>> want_done = {
        {0, MUXRAFT_OK}, {0, MUXRAFT_OK}};
    EXPECT_EQ(done, want_done);
    const muxraft::GroupInfo info = n.group_status(0);
    EXPECT_EQ(info.role, MUXRAFT_LEADER);
    EXPECT_EQ(info.applied_index, info.commit_index);

    n.remove_group(0);
    EXPECT_THROW(n.group_status(0), muxraft::Error);
    EXPECT_EQ(n.try_propose(0, "gone").status, MUXRAFT_NOT_FOUND);
    EXPECT_EQ(n.stats().groups, 1u);
    n.create_group(0, 4, {1}); // a new incarnation
    EXPECT_EQ(n.group_status(0).incarnation, 4u);
    ASSERT_TRUE(lead(n, 0));
}

TEST(GroupZero, ThreeHostDrivenNodes)
{
    HostCluster c(3);
    c.create_group(0);
    c.create_group(7);
    ASSERT_TRUE(c.wait_leaders(0, 0, kMaxTicks));
    const std::uint64_t leader = c.leader(0);
    std::vector<std::uint64_t> ids;
    for (int k = 0; k < 3; ++k) {
        const muxraft::ProposeResult r = c.node(leader).try_propose(0, "e" + std::to_string(k));
        ASSERT_TRUE(r.ok()) << muxraft::status_name(r.status);
        ids.push_back(r.id);
    }
    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (c.log(id, 0).size() < 3)
                    return false;
            return true;
        },
        kMaxTicks));
    for (std::uint64_t id = 1; id <= 3; ++id) {
        ASSERT_EQ(c.log(id, 0).size(), 3u);
        for (int k = 0; k < 3; ++k) {
            EXPECT_EQ(c.log(id, 0)[k].data, "e" + std::to_string(k));
            EXPECT_EQ(c.log(id, 0)[k].index, c.log(1, 0)[k].index);
        }
        EXPECT_TRUE(c.log(id, 7).empty());
    }
    for (std::uint64_t id : ids) {
        ASSERT_EQ(c.done[leader].count(id), 1u);
        EXPECT_EQ(c.done[leader][id].status, MUXRAFT_OK);
        EXPECT_EQ(c.done[leader][id].group_id, 0u);
    }

    // Removed everywhere, with its frames still on the wire: they are
    // dropped, and a proposal still in flight is reported MUXRAFT_UNKNOWN.
    const muxraft::ProposeResult last = c.node(leader).try_propose(0, "last");
    ASSERT_TRUE(last.ok());
    ASSERT_FALSE(c.wire.empty());
    c.remove_group(0);
    ASSERT_EQ(c.done[leader].count(last.id), 1u);
    EXPECT_EQ(c.done[leader][last.id].status, MUXRAFT_UNKNOWN);
    EXPECT_EQ(c.node(leader).stats().proposals_unknown, 1u);
    for (int t = 0; t < 10; ++t)
        c.tick(); // step() throws if a frame is refused
    for (std::uint64_t id = 1; id <= 3; ++id) {
        EXPECT_THROW(c.node(id).group_status(0), muxraft::Error);
        EXPECT_EQ(c.node(id).stats().groups, 1u);
    }
    EXPECT_TRUE(c.wait_leaders(7, 7, kMaxTicks));
}

// The flag the send callback gets: true exactly for liveness frames
// (heartbeats, batches and their answers, as the counters count them).
TEST(Liveness, SendFlagsTheFramesTheHeartbeatCountersCount)
{
    HostCluster c(3);
    for (std::uint64_t g = 1; g <= 5; ++g)
        c.create_group(g);
    ASSERT_TRUE(c.wait_leaders(1, 5, kMaxTicks));
    for (std::uint64_t g = 1; g <= 5; ++g)
        c.node(c.leader(g)).propose(g, "bulk");
    for (int t = 0; t < 20; ++t)
        c.tick();
    std::map<std::uint64_t, std::uint64_t> bulk_before;
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const muxraft::Stats s = c.node(id).stats();
        EXPECT_EQ(c.sent_liveness[id], s.heartbeat_messages_sent) << "node " << id;
        EXPECT_EQ(c.sent_bulk[id], s.messages_sent - s.heartbeat_messages_sent) << "node " << id;
        EXPECT_GT(c.sent_bulk[id], 0u);
        bulk_before[id] = c.sent_bulk[id];
    }
    // Idle: nothing but liveness frames.
    for (int t = 0; t < 20; ++t)
        c.tick();
    for (std::uint64_t id = 1; id <= 3; ++id) {
        EXPECT_EQ(c.sent_bulk[id], bulk_before[id]) << "node " << id;
        EXPECT_EQ(c.sent_liveness[id], c.node(id).stats().heartbeat_messages_sent);
    }
}

// group_status() and stats() fill structs whose struct_size is this
// header's; the counters added in ABI 2 are there.
TEST(Structs, CarryTheirSizeAndTheNewFields)
{
    muxraft::Node n(config_for(1));
    n.create_group(5, 42, {1});
    const muxraft::GroupInfo info = n.group_status(5);
    EXPECT_EQ(info.struct_size, sizeof(muxraft::GroupInfo));
    EXPECT_EQ(info.incarnation, 42u);
    const muxraft::Stats s = n.stats();
    EXPECT_EQ(s.struct_size, sizeof(muxraft::Stats));
    EXPECT_EQ(s.groups, 1u);
    EXPECT_EQ(s.proposals_unknown, 0u);
    EXPECT_EQ(s.incarnation_mismatches, 0u);
    EXPECT_EQ(s.batches_dropped_incarnation, 0u);
    // Host-driven: no transport.
    EXPECT_EQ(s.connections_established, 0u);
    EXPECT_EQ(s.reconnects, 0u);
    EXPECT_EQ(s.handshakes_refused, 0u);
    EXPECT_EQ(s.dial_failures, 0u);
    EXPECT_EQ(s.transport_frames_dropped, 0u);
    EXPECT_EQ(s.bytes_queued, 0u);
}
