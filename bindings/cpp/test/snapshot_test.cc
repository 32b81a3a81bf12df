// snapshot_test.cc: snapshots through the C++ wrapper: Node::snapshot and
// its errors, the restore and snapshot_needed callbacks, rejoin_group for a
// node that lost its data, and the snapshot fields of Config, GroupInfo and
// Stats.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
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

// `call` throws muxraft::Error with `status` from muxraft_group_snapshot or
// muxraft_group_rejoin (`function`).
::testing::AssertionResult throws_status(const std::function<void()> &call, muxraft::Status status,
                                         const char *function)
{
    try {
        call();
    } catch (const muxraft::Error &e) {
        if (e.status() != status)
            return ::testing::AssertionFailure() << "status " << muxraft::status_name(e.status())
                                                 << ", expected " << muxraft::status_name(status)
                                                 << " (" << e.what() << ")";
        if (e.function() != function)
            return ::testing::AssertionFailure() << "function " << e.function();
        if (e.message().empty())
            return ::testing::AssertionFailure() << "no message";
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "did not throw";
}

// A fresh directory, deleted with everything under it when it goes.
class TempDir {
public:
    TempDir()
    {
        const char *tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/muxraft-cpp-test-XXXXXX";
        if (mkdtemp(pattern.data()) != nullptr)
            path_ = pattern;
    }
    ~TempDir()
    {
        if (!path_.empty())
            std::filesystem::remove_all(path_);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    const std::string &path() const { return path_; }

private:
    std::string path_;
};

} // namespace

TEST(Snapshot, CompactsTheLogAndShowsInGroupStatusAndStats)
{
    muxraft::Config config = config_for(1);
    config.snapshot_trailing_entries = 1;
    muxraft::Node n(config);
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));
    const muxraft::GroupInfo fresh = n.group_status(1);
    EXPECT_EQ(fresh.snapshot_index, 0u);
    EXPECT_EQ(fresh.first_index, 1u);
    for (int k = 0; k < 5; ++k)
        n.propose(1, "entry");
    const muxraft::GroupInfo before = n.group_status(1);
    ASSERT_GE(before.applied_index, 5u);

    const std::string state(100, 's');
    n.snapshot(1, before.applied_index - 1, state);
    muxraft::GroupInfo info = n.group_status(1);
    EXPECT_EQ(info.snapshot_index, before.applied_index - 1);
    EXPECT_EQ(info.first_index, before.applied_index - 1); // one trailing entry kept
    EXPECT_EQ(info.last_index, before.last_index);
    EXPECT_EQ(info.snapshot_bytes_memory, state.size());
    EXPECT_LT(info.log_bytes_memory, before.log_bytes_memory);
    EXPECT_EQ(info.log_bytes_disk, 0u); // in memory
    EXPECT_EQ(info.snapshot_bytes_disk, 0u);

    // The pointer overload, through a NodeRef; an empty state.
    n.ref().snapshot(1, before.applied_index, nullptr, 0);
    info = n.group_status(1);
    EXPECT_EQ(info.snapshot_index, before.applied_index);
    EXPECT_EQ(info.snapshot_bytes_memory, 0u);
    const muxraft::Stats s = n.stats();
    EXPECT_EQ(s.snapshots_taken, 2u);
    EXPECT_EQ(s.snapshots_installed, 0u);
    EXPECT_EQ(s.snapshot_transfers_started, 0u);
    EXPECT_EQ(s.wal_segments, 0u);
    EXPECT_EQ(s.snapshot_files, 0u);

    // The group goes on after the compaction.
    const std::uint64_t id = n.propose(1, "after");
    EXPECT_NE(id, 0u);
    EXPECT_GT(n.group_status(1).applied_index, before.applied_index);
}

TEST(Snapshot, MisuseThrowsTheStatus)
{
    muxraft::Config config = config_for(1);
    config.max_snapshot_bytes = 32;
    muxraft::Node n(config);
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));
    n.propose(1, "a");
    n.propose(1, "b");
    const std::uint64_t applied = n.group_status(1).applied_index;
    const char *fn = "muxraft_group_snapshot";

    EXPECT_TRUE(throws_status([&] { n.snapshot(9, applied, "s"); }, MUXRAFT_NOT_FOUND, fn));
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied + 1, "s"); },
                              MUXRAFT_INVALID_ARGUMENT, fn)); // not applied
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied, nullptr, 4); },
                              MUXRAFT_INVALID_ARGUMENT, fn));
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied, std::string(33, 'x')); },
                              MUXRAFT_TOO_LARGE, fn));
    EXPECT_TRUE(throws_status([&] { muxraft::NodeRef().snapshot(1, applied, "s"); },
                              MUXRAFT_INVALID_ARGUMENT, fn));
    EXPECT_EQ(n.group_status(1).snapshot_index, 0u);
    EXPECT_EQ(n.stats().snapshots_taken, 0u);

    n.snapshot(1, applied, std::string(32, 'x')); // at the limit
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied, "s"); }, MUXRAFT_INVALID_ARGUMENT,
                              fn)); // not after the current snapshot
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied - 1, "s"); },
                              MUXRAFT_INVALID_ARGUMENT, fn));

    const char *rejoin = "muxraft_group_rejoin";
    EXPECT_TRUE(throws_status([&] { n.rejoin_group(1, 1, {1}); }, MUXRAFT_ALREADY_EXISTS,
                              rejoin));
    EXPECT_TRUE(throws_status([&] { n.rejoin_group(2, 1, {2, 3}); },
                              MUXRAFT_INVALID_ARGUMENT, rejoin)); // not a member
    EXPECT_TRUE(throws_status([&] { n.rejoin_group(2, 1, std::vector<std::uint64_t>()); },
                              MUXRAFT_INVALID_ARGUMENT, rejoin));

    n.stop();
    EXPECT_TRUE(throws_status([&] { n.snapshot(1, applied, "s"); }, MUXRAFT_SHUTDOWN, fn));
    EXPECT_TRUE(throws_status([&] { n.rejoin_group(2, 1, {1}); }, MUXRAFT_SHUTDOWN, rejoin));
    EXPECT_EQ(n.group_status(1).snapshot_index, applied);
}

// From inside apply, at the index being applied, through the NodeRef the
// callback captured.
TEST(Snapshot, TakenFromInsideApply)
{
    muxraft::NodeRef ref;
    std::vector<std::uint64_t> taken;
    std::vector<std::string> errors;
    muxraft::Callbacks cb;
    cb.apply = [&](std::uint64_t group, std::uint64_t index, std::string_view data) {
        if (data != "snap")
            return;
        try {
            ref.snapshot(group, index, "state at " + std::to_string(index));
            taken.push_back(index);
        } catch (const muxraft::Error &e) {
            errors.push_back(e.what());
        }
    };
    muxraft::Config config = config_for(1);
    config.snapshot_trailing_entries = 0;
    muxraft::Node n(config, std::move(cb));
    ref = n.ref();
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));
    n.propose(1, "a");
    n.propose(1, "snap");
    n.propose(1, "b");
    EXPECT_TRUE(errors.empty()) << errors.front();
    ASSERT_EQ(taken.size(), 1u);
    const muxraft::GroupInfo info = n.group_status(1);
    EXPECT_EQ(info.snapshot_index, taken[0]);
    EXPECT_GT(info.applied_index, taken[0]);
}

TEST(Snapshot, NeededIsToldOnceUntilOneIsTaken)
{
    muxraft::Config config = config_for(1);
    config.snapshot_threshold_entries = 4;
    config.snapshot_threshold_bytes = 0; // off
    std::vector<muxraft_test::Hint> hints;
    std::uint64_t last_applied = 0;
    muxraft::Callbacks cb;
    cb.apply = [&](std::uint64_t, std::uint64_t index, std::string_view) { last_applied = index; };
    cb.snapshot_needed = [&](std::uint64_t group, std::uint64_t applied, std::uint64_t entries,
                             std::uint64_t bytes) {
        EXPECT_EQ(group, 1u);
        hints.push_back(muxraft_test::Hint{applied, entries, bytes});
    };
    muxraft::Node n(config, std::move(cb));
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));
    while (n.group_status(1).applied_index < 4) {
        EXPECT_TRUE(hints.empty());
        n.propose(1, "e");
    }
    ASSERT_EQ(hints.size(), 1u);
    EXPECT_EQ(hints[0].applied, last_applied);
    EXPECT_EQ(hints[0].entries, last_applied); // no snapshot yet
    for (int k = 0; k < 6; ++k)
        n.propose(1, "e");
    EXPECT_EQ(hints.size(), 1u);
    n.snapshot(1, last_applied, "s");
    const std::uint64_t snap = last_applied;
    for (int k = 0; k < 4; ++k)
        n.propose(1, "e");
    ASSERT_EQ(hints.size(), 2u);
    EXPECT_EQ(hints[1].applied, last_applied);
    EXPECT_EQ(hints[1].entries, last_applied - snap);
}

// A node created again on its data_dir restores the snapshot in its
// constructor, before it applies anything later, then applies what
// follows the snapshot.
TEST(Restore, ARestartedNodeRestoresBeforeItAppliesAgain)
{
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    std::vector<std::string> events; // "restore <index> <data>", "apply <index> <data>"
    auto callbacks = [&] {
        muxraft::Callbacks cb;
        cb.apply = [&](std::uint64_t, std::uint64_t index, std::string_view data) {
            events.push_back("apply " + std::to_string(index) + " " + std::string(data));
        };
        cb.restore = [&](std::uint64_t group, std::uint64_t index, std::uint64_t term,
                         std::string_view data) {
            EXPECT_EQ(group, 1u);
            EXPECT_GE(term, 1u);
            events.push_back("restore " + std::to_string(index) + " " + std::string(data));
        };
        return cb;
    };
    muxraft::Config config = config_for(1);
    config.data_dir = dir.path();
    config.snapshot_trailing_entries = 0;
    std::uint64_t snap = 0;
    std::vector<std::string> after_snapshot;
    {
        muxraft::Node n(config, callbacks());
        n.create_group(1, 1, {1});
        ASSERT_TRUE(lead(n, 1));
        n.propose(1, "a");
        n.propose(1, "b");
        snap = n.group_status(1).applied_index;
        n.snapshot(1, snap, "a,b");
        const muxraft::GroupInfo info = n.group_status(1);
        EXPECT_GT(info.snapshot_bytes_disk, 0u);
        EXPECT_EQ(n.stats().snapshot_files, 1u);
        n.propose(1, "c");
        ASSERT_EQ(events.size(), 3u);
        after_snapshot.push_back(events.back()); // "apply <i> c"
    }
    events.clear();
    muxraft::Node n(config, callbacks());
    // Restored in the constructor, before anything else.
    ASSERT_GE(events.size(), 1u);
    EXPECT_EQ(events[0], "restore " + std::to_string(snap) + " a,b");
    for (int t = 0; t < 100 && events.size() < 2; ++t)
        n.tick();
    const std::vector<std::string> want = {events[0], after_snapshot[0]};
    EXPECT_EQ(events, want);
    EXPECT_EQ(n.group_status(1).snapshot_index, snap);
}

// A follower cut off while its leader compacted gets the leader's snapshot
// through restore, then the entries after it.
TEST(Restore, AFollowerHeldBackGetsTheLeadersSnapshot)
{
    muxraft::Config base;
    base.snapshot_trailing_entries = 0;
    base.snapshot_chunk_bytes = 100;
    HostCluster c(3, base);
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1), follower = leader % 3 + 1;
    c.node(leader).propose(1, "seen");
    ASSERT_TRUE(c.tick_until([&] { return c.log(follower, 1).size() == 1; }, kMaxTicks));

    c.isolated = follower;
    for (int k = 0; k < 4; ++k)
        c.node(leader).propose(1, "missed");
    ASSERT_TRUE(c.tick_until([&] { return c.log(leader, 1).size() == 5; }, kMaxTicks));
    const std::uint64_t snap = c.node(leader).group_status(1).applied_index;
    std::string state;
    for (int i = 0; i < 450; ++i)
        state.push_back(static_cast<char>('a' + i % 26));
    c.node(leader).snapshot(1, snap, state);
    c.node(leader).propose(1, "after");

    c.isolated = 0;
    ASSERT_TRUE(c.tick_until([&] { return c.log(follower, 1).size() == 2; }, kMaxTicks));
    const auto &restores = c.restores[{follower, 1}];
    ASSERT_EQ(restores.size(), 1u);
    EXPECT_EQ(restores[0].index, snap);
    EXPECT_EQ(restores[0].data, state);
    EXPECT_EQ(restores[0].applied_before, 1u);
    EXPECT_EQ(c.log(follower, 1)[1].data, "after");
    EXPECT_GT(c.log(follower, 1)[1].index, snap);
    EXPECT_EQ(c.node(follower).group_status(1).snapshot_index, snap);
    EXPECT_EQ(c.node(follower).stats().snapshots_installed, 1u);
    EXPECT_GE(c.node(leader).stats().snapshot_transfers_started, 1u);
    EXPECT_TRUE((c.restores[{leader, 1}].empty()));
}

// A node whose data_dir was deleted rejoins: its leader restores it, it
// applies what follows, and it never campaigns.
TEST(Rejoin, ANodeThatLostItsDataIsRestoredByItsLeader)
{
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    muxraft::Config base;
    base.snapshot_trailing_entries = 0;
    HostCluster c(3, base, dir.path());
    c.create_group(1);
    ASSERT_TRUE(c.wait_leaders(1, 1, kMaxTicks));
    const std::uint64_t leader = c.leader(1), follower = leader % 3 + 1;
    for (int k = 0; k < 3; ++k)
        c.node(leader).propose(1, "old");
    ASSERT_TRUE(c.tick_until([&] { return c.log(follower, 1).size() == 3; }, kMaxTicks));
    const std::uint64_t snap = c.node(leader).group_status(1).applied_index;
    c.node(leader).snapshot(1, snap, "three olds");

    c.restart(follower, /*wipe=*/true);
    EXPECT_THROW(c.node(follower).group_status(1), muxraft::Error);
    c.node(follower).rejoin_group(1, 1, c.members());
    EXPECT_THROW(c.node(follower).rejoin_group(1, 1, c.members()), muxraft::Error);
    const std::pair<std::uint64_t, std::uint64_t> key(follower, 1);
    ASSERT_TRUE(c.tick_until([&] { return !c.restores[key].empty(); }, kMaxTicks));
    const muxraft_test::Restore r = c.restores[key].at(0);
    EXPECT_EQ(r.index, snap);
    EXPECT_EQ(r.data, "three olds");
    EXPECT_EQ(r.applied_before, 3u); // its records from before the loss

    c.node(leader).propose(1, "new");
    ASSERT_TRUE(c.tick_until([&] { return c.log(follower, 1).size() == 4; }, kMaxTicks));
    EXPECT_EQ(c.log(follower, 1)[3].data, "new");
    EXPECT_GT(c.log(follower, 1)[3].index, snap);
    EXPECT_EQ(c.node(follower).stats().snapshots_installed, 1u);

    // Cut off for many election timeouts, it does not even pre-vote.
    const std::size_t campaigns = c.campaigns[follower];
    c.isolated = follower;
    for (int t = 0; t < 200; ++t)
        c.tick();
    c.isolated = 0;
    EXPECT_EQ(c.campaigns[follower], campaigns);
    EXPECT_EQ(c.node(follower).stats().elections_started, 0u);
    EXPECT_EQ(c.node(follower).group_status(1).role, MUXRAFT_FOLLOWER);
}

TEST(Config, CarriesTheSnapshotFields)
{
    muxraft_config defaults;
    muxraft_config_init(&defaults);
    const muxraft::Config d;
    EXPECT_EQ(d.snapshot_threshold_entries, defaults.snapshot_threshold_entries);
    EXPECT_EQ(d.snapshot_threshold_bytes, defaults.snapshot_threshold_bytes);
    EXPECT_EQ(d.snapshot_trailing_entries, defaults.snapshot_trailing_entries);
    EXPECT_EQ(d.snapshot_chunk_bytes, defaults.snapshot_chunk_bytes);
    EXPECT_EQ(d.snapshot_timeout_ms, defaults.snapshot_timeout_ms);
    EXPECT_EQ(d.max_snapshot_bytes, defaults.max_snapshot_bytes);
    EXPECT_EQ(d.wal_segment_bytes, defaults.wal_segment_bytes);
    EXPECT_EQ(d.snapshot_trailing_entries, 1024u);

    muxraft::Config c;
    c.snapshot_threshold_entries = 1;
    c.snapshot_threshold_bytes = 2;
    c.snapshot_trailing_entries = 3;
    c.snapshot_chunk_bytes = 4;
    c.snapshot_timeout_ms = 5000;
    c.max_snapshot_bytes = 6;
    c.wal_segment_bytes = 1 << 20;
    const muxraft_config raw = c.to_c();
    EXPECT_EQ(raw.snapshot_threshold_entries, 1u);
    EXPECT_EQ(raw.snapshot_threshold_bytes, 2u);
    EXPECT_EQ(raw.snapshot_trailing_entries, 3u);
    EXPECT_EQ(raw.snapshot_chunk_bytes, 4u);
    EXPECT_EQ(raw.snapshot_timeout_ms, 5000u);
    EXPECT_EQ(raw.max_snapshot_bytes, 6u);
    EXPECT_EQ(raw.wal_segment_bytes, 1u << 20);
    const muxraft::Config back(raw);
    EXPECT_EQ(back.snapshot_trailing_entries, 3u);
    EXPECT_EQ(back.max_snapshot_bytes, 6u);
    EXPECT_EQ(back.wal_segment_bytes, 1u << 20);

    // A bad value is refused by muxraft_node_new.
    c.node_id = 1;
    c.snapshot_chunk_bytes = 0;
    EXPECT_THROW(muxraft::Node n(c), muxraft::Error);
    // ...and a good one is used: a snapshot over max_snapshot_bytes.
    c.snapshot_chunk_bytes = 4;
    muxraft::Node n(c);
    n.create_group(1, 1, {1});
    ASSERT_TRUE(lead(n, 1));
    n.propose(1, "x");
    EXPECT_TRUE(throws_status(
        [&] { n.snapshot(1, n.group_status(1).applied_index, "seven b"); }, MUXRAFT_TOO_LARGE,
        "muxraft_group_snapshot"));
}
