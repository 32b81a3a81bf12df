// read_test.cc: linearizable reads (read_index, try_read_index and the
// read_done callback), the read limits of Config and the read counters of
// stats(); and node_peers().
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::Read;
using muxraft_test::config_for;
using muxraft_test::kMaxTicks;

namespace {

// The read_done reports of node `id` for read `read_id`.
std::vector<Read> reports(HostCluster &c, std::uint64_t id, std::uint64_t read_id)
{
    std::vector<Read> out;
    for (const Read &r : c.reads[id])
        if (r.read_id == read_id)
            out.push_back(r);
    return out;
}

// A three-node cluster with group 1 elected; its leader's id.
std::uint64_t elect(HostCluster &c, std::uint64_t group = 1)
{
    c.create_group(group);
    if (!c.wait_leaders(group, group, kMaxTicks))
        return 0;
    return c.leader(group);
}

} // namespace

TEST(Reads, ConfigCarriesTheLimits)
{
    muxraft_config defaults;
    muxraft_config_init(&defaults);
    const muxraft::Config d;
    EXPECT_EQ(d.max_pending_reads_per_group, defaults.max_pending_reads_per_group);
    EXPECT_EQ(d.max_pending_reads, defaults.max_pending_reads);
    EXPECT_EQ(d.max_pending_reads_per_group, 4096u);
    EXPECT_EQ(d.max_pending_reads, 65536u);

    muxraft::Config c;
    c.max_pending_reads_per_group = 1;
    c.max_pending_reads = 0;
    const muxraft_config raw = c.to_c();
    EXPECT_EQ(raw.max_pending_reads_per_group, 1u);
    EXPECT_EQ(raw.max_pending_reads, 0u);
    const muxraft::Config back(raw);
    EXPECT_EQ(back.max_pending_reads_per_group, 1u);
    EXPECT_EQ(back.max_pending_reads, 0u);
}

// A read taken after a proposal was acknowledged is reported once, after a
// quorum answered a heartbeat (so not inside the call on three nodes), with
// MUXRAFT_OK and an index at or past the proposal's, whose entry apply had
// delivered before; the read counters move and the gauge goes back to 0.
TEST(Reads, ServedOnceAfterTheAcknowledgedWriteIsApplied)
{
    HostCluster c(3);
    const std::uint64_t l = elect(c);
    ASSERT_NE(l, 0u);
    muxraft::Node &n = c.node(l);

    const std::uint64_t p = n.propose(1, "written");
    ASSERT_TRUE(c.tick_until([&] { return c.done[l].count(p) == 1; }, kMaxTicks));
    ASSERT_EQ(c.done[l][p].status, MUXRAFT_OK);
    const std::uint64_t written = c.done[l][p].index;

    const muxraft::ReadResult r = n.try_read_index(1);
    ASSERT_TRUE(r.ok()) << muxraft::status_name(r.status);
    EXPECT_NE(r.id, 0u);
    EXPECT_TRUE(c.reads[l].empty());
    muxraft::Stats s = n.stats();
    EXPECT_EQ(s.reads, 1u);
    EXPECT_EQ(s.pending_reads, 1u);

    ASSERT_TRUE(c.tick_until([&] { return !c.reads[l].empty(); }, kMaxTicks));
    std::vector<Read> got = reports(c, l, r.id);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].status, MUXRAFT_OK);
    EXPECT_EQ(got[0].group_id, 1u);
    EXPECT_GE(got[0].index, written);
    EXPECT_GE(got[0].last_applied, written); // apply came first
    bool delivered = false;
    const auto &log = c.log(l, 1);
    for (std::size_t k = 0; k < got[0].applied_count && k < log.size(); ++k)
        delivered = delivered || log[k].index == written;
    EXPECT_TRUE(delivered);
    const muxraft::GroupInfo info = n.group_status(1);
    EXPECT_LE(got[0].index, info.commit_index);

    s = n.stats();
    EXPECT_EQ(s.reads, 1u);
    EXPECT_EQ(s.reads_served, 1u);
    EXPECT_EQ(s.reads_failed, 0u);
    EXPECT_EQ(s.pending_reads, 0u);
    EXPECT_EQ(s.reads_refused_busy, 0u);
    EXPECT_GE(s.read_rounds_sent, 1u);
    EXPECT_GE(s.read_rounds_answered, 1u);

    // read_index() too; nothing is reported twice, nor on other nodes.
    const std::uint64_t again = n.read_index(1);
    EXPECT_NE(again, r.id);
    for (int t = 0; t < 40; ++t)
        c.tick();
    EXPECT_EQ(reports(c, l, r.id).size(), 1u);
    got = reports(c, l, again);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].status, MUXRAFT_OK);
    EXPECT_EQ(c.reads[l].size(), 2u);
    for (std::uint64_t id = 1; id <= 3; ++id) {
        if (id != l) {
            EXPECT_TRUE(c.reads[id].empty()) << "node " << id;
        }
    }
}

// try_read_index returns every refusal (id 0), read_index throws it.
TEST(Reads, RefusalsAreReturnedOrThrown)
{
    muxraft::Config config;
    config.max_pending_reads_per_group = 1;
    HostCluster c(3, config);
    const std::uint64_t l = elect(c);
    ASSERT_NE(l, 0u);
    muxraft::Node &n = c.node(l);
    muxraft::Node &follower = c.node(l % 3 + 1);

    muxraft::ReadResult r = follower.try_read_index(1);
    EXPECT_EQ(r.status, MUXRAFT_NOT_LEADER);
    EXPECT_EQ(r.id, 0u);
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(muxraft_test::throws_from([&] { (void)follower.read_index(1); }, MUXRAFT_NOT_LEADER, "muxraft_read_index"));
    EXPECT_EQ(n.try_read_index(99).status, MUXRAFT_NOT_FOUND);
    EXPECT_TRUE(muxraft_test::throws_from([&] { (void)n.read_index(99); }, MUXRAFT_NOT_FOUND, "muxraft_read_index"));

    // At the group's limit: MUXRAFT_BUSY, nothing taken.
    const std::uint64_t first = n.read_index(1);
    r = n.try_read_index(1);
    EXPECT_EQ(r.status, MUXRAFT_BUSY);
    EXPECT_EQ(r.id, 0u);
    EXPECT_TRUE(muxraft_test::throws_from([&] { (void)n.read_index(1); }, MUXRAFT_BUSY, "muxraft_read_index"));
    muxraft::Stats s = n.stats();
    EXPECT_EQ(s.reads, 1u);
    EXPECT_EQ(s.pending_reads, 1u);
    EXPECT_EQ(s.reads_refused_busy, 2u);
    ASSERT_TRUE(c.tick_until([&] { return !c.reads[l].empty(); }, kMaxTicks));
    EXPECT_EQ(c.reads[l].size(), 1u);
    EXPECT_EQ(c.reads[l][0].read_id, first);
    EXPECT_TRUE(n.try_read_index(1).ok()); // reported: room again

    // An empty node and an empty NodeRef are NULL.
    muxraft::Node empty;
    EXPECT_EQ(empty.try_read_index(1).status, MUXRAFT_INVALID_ARGUMENT);
    EXPECT_TRUE(muxraft_test::throws_from([&] { (void)muxraft::NodeRef().read_index(1); },
                            MUXRAFT_INVALID_ARGUMENT, "muxraft_read_index"));
}

// A read pending when its group is removed is reported MUXRAFT_NOT_FOUND
// (by the removal); one pending when the node stops, MUXRAFT_SHUTDOWN
// (before stop() returns); after stop() reads are refused with
// MUXRAFT_SHUTDOWN.
TEST(Reads, PendingReadsFailWhenTheGroupIsRemovedOrTheNodeStops)
{
    HostCluster c(3);
    const std::uint64_t l = elect(c);
    ASSERT_NE(l, 0u);
    muxraft::Node &n = c.node(l);
    c.create_group(2);
    ASSERT_TRUE(c.wait_leaders(2, 2, kMaxTicks));

    const std::uint64_t removed = n.read_index(1);
    n.remove_group(1);
    std::vector<Read> got = reports(c, l, removed);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].status, MUXRAFT_NOT_FOUND);
    EXPECT_EQ(got[0].index, 0u);
    EXPECT_EQ(n.stats().reads_failed, 1u);
    EXPECT_EQ(n.stats().pending_reads, 0u);

    const std::uint64_t l2 = c.leader(2);
    ASSERT_NE(l2, 0u);
    muxraft::Node &m = c.node(l2);
    const std::uint64_t stopped = m.read_index(2);
    const std::size_t before = c.reads[l2].size();
    m.stop();
    got = reports(c, l2, stopped);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].status, MUXRAFT_SHUTDOWN);
    EXPECT_EQ(got[0].index, 0u);
    EXPECT_EQ(c.reads[l2].size(), before + 1);
    EXPECT_EQ(m.try_read_index(2).status, MUXRAFT_SHUTDOWN);
    EXPECT_TRUE(muxraft_test::throws_from([&] { (void)m.read_index(2); }, MUXRAFT_SHUTDOWN, "muxraft_read_index"));
    const muxraft::Stats s = m.stats();
    EXPECT_EQ(s.pending_reads, 0u);
    EXPECT_GE(s.reads_failed, 1u);
}

// A leader cut off before its read is confirmed, then deposed: the read is
// reported MUXRAFT_NOT_LEADER.
TEST(Reads, ALeaderDeposedBeforeConfirmationFailsTheRead)
{
    HostCluster c(3);
    const std::uint64_t l = elect(c);
    ASSERT_NE(l, 0u);
    const std::uint64_t id = c.node(l).read_index(1);
    c.isolated = l;
    ASSERT_TRUE(c.tick_until(
        [&] {
            for (std::uint64_t other = 1; other <= 3; ++other)
                if (other != l && c.node(other).group_status(1).role == MUXRAFT_LEADER)
                    return true;
            return false;
        },
        kMaxTicks));
    c.isolated = 0;
    ASSERT_TRUE(c.tick_until([&] { return !reports(c, l, id).empty(); }, kMaxTicks));
    const std::vector<Read> got = reports(c, l, id);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].status, MUXRAFT_NOT_LEADER);
    EXPECT_EQ(got[0].index, 0u);
    EXPECT_NE(c.node(l).group_status(1).role, MUXRAFT_LEADER);
    EXPECT_EQ(c.node(l).stats().reads_failed, 1u);
}

// read_done may take another read through a NodeRef (a group of one
// confirms at once: each read is reported after the callback that took it
// returns).
TEST(Reads, ReadDoneReadsAgainThroughNodeRef)
{
    muxraft::NodeRef ref;
    std::vector<std::uint64_t> served;
    std::vector<std::uint64_t> taken;
    muxraft::Callbacks cb;
    cb.read_done = [&](std::uint64_t group, std::uint64_t id, muxraft::Status status,
                       std::uint64_t index) {
        EXPECT_EQ(status, MUXRAFT_OK);
        EXPECT_GT(index, 0u);
        served.push_back(id);
        if (served.size() < 4)
            taken.push_back(ref.read_index(group));
    };
    muxraft::Node n(config_for(1), std::move(cb));
    ref = n.ref();
    n.create_group(1, 1, {1});
    ASSERT_TRUE(muxraft_test::lead(n, 1));
    taken.push_back(n.read_index(1));
    for (int t = 0; t < 5; ++t)
        n.tick();
    // Each id once (the first may be reported inside the call that took it).
    std::sort(served.begin(), served.end());
    std::sort(taken.begin(), taken.end());
    EXPECT_EQ(served, taken);
    EXPECT_EQ(served.size(), 4u);
    EXPECT_EQ(std::adjacent_find(served.begin(), served.end()), served.end());
    EXPECT_EQ(n.stats().reads_served, 4u);
}

// Without a read_done callback, reads are taken and served all the same.
TEST(Reads, WithoutReadDoneReadsAreStillServed)
{
    muxraft::Node n(config_for(1));
    n.create_group(1, 1, {1});
    ASSERT_TRUE(muxraft_test::lead(n, 1));
    EXPECT_NE(n.read_index(1), 0u);
    n.tick();
    const muxraft::Stats s = n.stats();
    EXPECT_EQ(s.reads, 1u);
    EXPECT_EQ(s.reads_served, 1u);
    EXPECT_EQ(s.pending_reads, 0u);
}

// node_peers(): the nodes hosting replicas of this node's groups, in id
// order, heard at first (epoch 1), lost after an election timeout without
// a frame (epoch 2).
TEST(Peers, ListedInIdOrderWithHeardAndEpoch)
{
    muxraft::Config config = config_for(1);
    muxraft::Node n(config);
    EXPECT_TRUE(n.node_peers().empty());
    n.create_group(9, 1, {3, 1, 2});
    std::vector<muxraft::Peer> peers = n.node_peers();
    ASSERT_EQ(peers.size(), 2u);
    EXPECT_EQ(peers[0].node_id, 2u);
    EXPECT_EQ(peers[0].heard, 1u);
    EXPECT_EQ(peers[0].epoch, 1u);
    EXPECT_EQ(peers[1].node_id, 3u);
    EXPECT_EQ(peers[1].heard, 1u);
    EXPECT_EQ(peers[1].epoch, 1u);
    for (std::uint32_t t = 0; t <= config.election_ticks; ++t)
        n.tick();
    peers = n.node_peers();
    ASSERT_EQ(peers.size(), 2u);
    for (const muxraft::Peer &p : peers) {
        EXPECT_EQ(p.heard, 0u) << "node " << p.node_id;
        EXPECT_EQ(p.epoch, 2u) << "node " << p.node_id;
    }
    EXPECT_EQ(n.stats().peers_lost, 2u);
    // More groups, more peers.
    n.create_group(10, 1, {1, 4});
    peers = n.node_peers();
    ASSERT_EQ(peers.size(), 3u);
    EXPECT_EQ(peers[2].node_id, 4u);

    EXPECT_THROW((void)muxraft::Node().node_peers(), muxraft::Error);
    try {
        (void)muxraft::NodeRef().node_peers();
        ADD_FAILURE() << "node_peers on an empty NodeRef did not throw";
    } catch (const muxraft::Error &e) {
        EXPECT_EQ(e.status(), MUXRAFT_INVALID_ARGUMENT);
        EXPECT_EQ(e.function(), "muxraft_node_peers");
    }
}

// In a host-driven cluster every node hears the two others.
TEST(Peers, ThreeNodesHearEachOther)
{
    HostCluster c(3);
    ASSERT_NE(elect(c), 0u);
    for (int t = 0; t < 20; ++t)
        c.tick();
    for (std::uint64_t id = 1; id <= 3; ++id) {
        const std::vector<muxraft::Peer> peers = c.node(id).node_peers();
        ASSERT_EQ(peers.size(), 2u) << "node " << id;
        std::uint64_t expect = id == 1 ? 2 : 1;
        for (const muxraft::Peer &p : peers) {
            EXPECT_EQ(p.node_id, expect) << "node " << id;
            EXPECT_EQ(p.heard, 1u) << "node " << id;
            EXPECT_EQ(p.epoch, 1u) << "node " << id;
            expect = expect + 1 == id ? expect + 2 : expect + 1;
        }
        EXPECT_EQ(c.node(id).node_peers().size(), c.node(id).stats().peers);
    }
}
