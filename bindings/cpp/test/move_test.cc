// move_test.cc: a Node moved (constructor and assignment, into an empty and
// into a live node, onto itself) and destroyed. The suite runs under
// AddressSanitizer with leak detection: a node or a Callbacks leaked, freed
// twice or used after free fails the run. The sentinels below check the same
// thing without a sanitizer: the callbacks are freed exactly when the node is.
#include <dirent.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "muxraft.hpp"

namespace {

// Callbacks that count applies and hold a sentinel: when the Callbacks are
// freed the sentinel's weak_ptr expires.
struct Probe {
    std::shared_ptr<int> sentinel = std::make_shared<int>(0);
    std::weak_ptr<int> watch = sentinel;
    std::shared_ptr<std::vector<std::string>> applied =
        std::make_shared<std::vector<std::string>>();

    muxraft::Callbacks callbacks()
    {
        muxraft::Callbacks cb;
        cb.apply = [keep = std::exchange(sentinel, nullptr), log = applied](
                       std::uint64_t, std::uint64_t, std::string_view data) {
            (void)keep;
            log->emplace_back(data);
        };
        return cb;
    }
    bool callbacks_freed() const { return watch.expired(); }
};

muxraft::Node make_node(std::uint64_t id, Probe &probe)
{
    muxraft::Config config;
    config.node_id = id;
    return muxraft::Node(config, probe.callbacks());
}

// Elect the node in a single-member group, propose `data`, tick until applied.
void round_trip(muxraft::Node &n, std::uint64_t group, const std::string &data, Probe &probe)
{
    if (n.group_status(group).role != MUXRAFT_LEADER)
        for (int t = 0; t < 200 && n.group_status(group).role != MUXRAFT_LEADER; ++t)
            n.tick();
    ASSERT_EQ(n.group_status(group).role, MUXRAFT_LEADER);
    const std::size_t before = probe.applied->size();
    n.propose(group, data);
    for (int t = 0; t < 200 && probe.applied->size() == before; ++t)
        n.tick();
    ASSERT_EQ(probe.applied->size(), before + 1);
    EXPECT_EQ(probe.applied->back(), data);
}

std::size_t thread_count()
{
    std::size_t n = 0;
    if (DIR *d = opendir("/proc/self/task")) {
        while (dirent *e = readdir(d))
            if (e->d_name[0] != '.')
                ++n;
        closedir(d);
    }
    return n;
}

} // namespace

TEST(Move, MoveConstructedNodeKeepsItsCallbacks)
{
    Probe probe;
    muxraft::Node a = make_node(1, probe);
    a.create_group(1, 1, {1});
    muxraft_node *handle = a.handle();

    muxraft::Node b(std::move(a));
    EXPECT_FALSE(a); // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(a.handle(), nullptr);
    EXPECT_EQ(b.handle(), handle);
    round_trip(b, 1, "after move", probe);
    EXPECT_THROW(a.tick(), muxraft::Error);
    EXPECT_FALSE(probe.callbacks_freed());

    b = muxraft::Node();
    EXPECT_TRUE(probe.callbacks_freed());
}

TEST(Move, MoveAssignIntoEmptyNode)
{
    Probe probe;
    muxraft::Node b;
    {
        muxraft::Node a = make_node(1, probe);
        a.create_group(1, 1, {1});
        b = std::move(a);
        EXPECT_FALSE(a);
    } // a (empty) destroyed: nothing freed
    EXPECT_FALSE(probe.callbacks_freed());
    round_trip(b, 1, "moved in", probe);
}

TEST(Move, MoveAssignIntoLiveNodeFreesTheOldOne)
{
    Probe old_probe, new_probe;
    muxraft::Node target = make_node(1, old_probe);
    target.create_group(1, 1, {1});
    round_trip(target, 1, "old", old_probe);

    muxraft::Node source = make_node(2, new_probe);
    source.create_group(2, 1, {2});
    target = std::move(source);

    EXPECT_TRUE(old_probe.callbacks_freed()); // the node held before is gone
    EXPECT_FALSE(new_probe.callbacks_freed());
    EXPECT_FALSE(source);
    EXPECT_THROW(target.group_status(1), muxraft::Error); // node 1's group: gone with it
    round_trip(target, 2, "new", new_probe);
    EXPECT_EQ(old_probe.applied->size(), 1u);
}

TEST(Move, SelfMoveAssignChangesNothing)
{
    Probe probe;
    muxraft::Node a = make_node(1, probe);
    a.create_group(1, 1, {1});
    muxraft_node *handle = a.handle();
    muxraft::Node &alias = a; // through a reference, as generic code would
    a = std::move(alias);
    EXPECT_EQ(a.handle(), handle);
    EXPECT_FALSE(probe.callbacks_freed());
    round_trip(a, 1, "still here", probe);
}

TEST(Move, DestructorFreesNodeAndCallbacks)
{
    Probe probe;
    {
        muxraft::Node a = make_node(1, probe);
        a.create_group(1, 1, {1});
        round_trip(a, 1, "x", probe);
        EXPECT_FALSE(probe.callbacks_freed());
    }
    EXPECT_TRUE(probe.callbacks_freed());
    Probe probe2;
    muxraft::Node b = make_node(1, probe2);
    b.reset();
    EXPECT_FALSE(b);
    EXPECT_TRUE(probe2.callbacks_freed());
    b.reset(); // twice: harmless
}

// A vector of nodes reallocates as it grows, moving every node; a NodeRef
// taken before the moves still reaches its node.
TEST(Move, NodesInAGrowingVector)
{
    std::vector<Probe> probes(50);
    std::vector<muxraft::Node> nodes;
    std::vector<muxraft::NodeRef> refs;
    for (std::uint64_t i = 0; i < probes.size(); ++i) {
        nodes.push_back(make_node(i + 1, probes[i]));
        nodes.back().create_group(7, 1, {i + 1});
        refs.push_back(nodes.back().ref());
    }
    for (std::uint64_t i = 0; i < nodes.size(); ++i) {
        EXPECT_EQ(refs[i].handle(), nodes[i].handle());
        round_trip(nodes[i], 7, "node " + std::to_string(i + 1), probes[i]);
        EXPECT_EQ(refs[i].group_status(7).role, MUXRAFT_LEADER);
    }
    nodes.erase(nodes.begin(), nodes.begin() + 25); // move-assigns the rest down
    for (std::size_t i = 0; i < 25; ++i)
        EXPECT_TRUE(probes[i].callbacks_freed()) << i;
    for (std::size_t i = 25; i < 50; ++i)
        EXPECT_FALSE(probes[i].callbacks_freed()) << i;
    nodes.clear();
    for (const auto &p : probes)
        EXPECT_TRUE(p.callbacks_freed());
}

// A started node, moved and then destroyed without stop(): the destructor
// stops it, and no muxraft thread is left behind.
TEST(Move, StartedNodeMovedAndDestroyedLeavesNoThread)
{
    const std::size_t threads_before = thread_count();
    Probe probe;
    {
        muxraft::Node a = make_node(1, probe);
        a.start("127.0.0.1:0");
        a.create_group(1, 1, {1});
        EXPECT_GT(thread_count(), threads_before);
        muxraft::Node b(std::move(a));
        muxraft::Node c;
        c = std::move(b);
        EXPECT_NO_THROW(c.group_status(1)); // the moved node is the same node
    } // c's destructor: muxraft_node_free stops the node first
    EXPECT_TRUE(probe.callbacks_freed());
    EXPECT_EQ(thread_count(), threads_before);
}

// Many nodes created and destroyed: a leak per node would show under LSan.
TEST(Move, ChurnOfNodes)
{
    for (int round = 0; round < 100; ++round) {
        Probe probe;
        muxraft::Node n = make_node(1, probe);
        n.create_group(1, 1, {1});
        n.create_group(2, 1, {1, 2, 3});
        muxraft::Node m(std::move(n));
        n = std::move(m);
        round_trip(n, 1, "r" + std::to_string(round), probe);
        n.reset();
        ASSERT_TRUE(probe.callbacks_freed());
    }
}
