// key_metrics_test.cc: key_metrics(), read from another thread while an
// embedded node's pass is blocked inside an apply callback: it answers at
// once, with the entry committed and not yet applied.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::config_for;
using namespace std::chrono_literals;

namespace {

// Polls `node`'s key metrics of `group` until `done` holds, for up to 20 s.
template <class Done>
bool wait_metrics(const muxraft::Node &node, std::uint64_t group, Done done)
{
    for (int i = 0; i < 4000; i++) {
        if (done(node.key_metrics(group)))
            return true;
        std::this_thread::sleep_for(5ms);
    }
    return false;
}

} // namespace

TEST(KeyMetrics, ReadFromAnotherThreadWhileACallbackBlocksThePass)
{
    constexpr std::uint64_t G = 4;
    std::mutex mu;
    std::condition_variable cv;
    std::uint64_t block_at = UINT64_MAX;
    bool inside = false, released = false;
    muxraft::Callbacks cb;
    cb.apply = [&](std::uint64_t, std::uint64_t index, std::string_view) {
        std::unique_lock<std::mutex> lock(mu);
        if (index != block_at)
            return;
        inside = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
    };
    muxraft::Config c = config_for(1);
    c.tick_ms = 5;
    muxraft::Node node(c, cb);
    node.create_group(G, 12, {1});
    EXPECT_EQ(node.key_metrics(G).incarnation, 12u);
    node.start("127.0.0.1:0");
    ASSERT_TRUE(wait_metrics(node, G, [](const muxraft::KeyMetrics &m) {
        return m.role == MUXRAFT_LEADER && m.applied_index == m.last_index && m.last_index > 0;
    }));
    const std::uint64_t target = node.key_metrics(G).last_index + 1;
    {
        std::lock_guard<std::mutex> lock(mu);
        block_at = target;
    }
    node.propose(G, "held");
    {
        std::unique_lock<std::mutex> lock(mu);
        ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return inside; }));
    }
    auto read = std::async(std::launch::async, [&] { return node.key_metrics(G); });
    const bool answered = read.wait_for(5s) == std::future_status::ready;
    {
        std::lock_guard<std::mutex> lock(mu);
        EXPECT_FALSE(released);
        released = true;
    }
    cv.notify_all();
    ASSERT_TRUE(answered) << "key_metrics waited for the blocked pass";
    const muxraft::KeyMetrics m = read.get();
    EXPECT_EQ(m.role, MUXRAFT_LEADER);
    EXPECT_EQ(m.leader_id, 1u);
    EXPECT_EQ(m.commit_index, target);
    EXPECT_EQ(m.applied_index, target - 1);
    EXPECT_EQ(m.voters, 1u);
    EXPECT_EQ(m.quiesced, 0u);
    EXPECT_TRUE(wait_metrics(node, G, [&](const muxraft::KeyMetrics &k) {
        return k.applied_index == target;
    }));
    try {
        (void)node.key_metrics(G + 1);
        ADD_FAILURE() << "an unknown group did not throw";
    } catch (const muxraft::Error &e) {
        EXPECT_EQ(e.status(), MUXRAFT_NOT_FOUND);
        EXPECT_EQ(e.function(), "muxraft_group_key_metrics");
    }
    node.stop();
    EXPECT_EQ(node.key_metrics(G).applied_index, target);
}
