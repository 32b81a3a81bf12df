// metrics_test.cc: metrics_text(), the node's counters and gauges in the
// Prometheus text format, and Config::metrics_per_group_max.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::HostCluster;
using muxraft_test::config_for;
using muxraft_test::kMaxTicks;

namespace {

bool contains(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

} // namespace

TEST(Metrics, ConfigCarriesThePerGroupSwitch)
{
    muxraft::Config c;
    EXPECT_EQ(c.metrics_per_group_max, 0u);
    c.metrics_per_group_max = 10;
    EXPECT_EQ(c.to_c().metrics_per_group_max, 10u);
    EXPECT_EQ(muxraft::Config(c.to_c()).metrics_per_group_max, 10u);
}

// The whole text, without its NUL, every sample labelled with the node id;
// per-group series only while the node hosts at most metrics_per_group_max
// groups.
TEST(Metrics, TextOfALiveClusterWithPerGroupSeriesUpToTheSwitch)
{
    muxraft::Config base;
    base.metrics_per_group_max = 2;
    HostCluster c(3, base);
    c.create_group(1);
    c.create_group(2);
    ASSERT_TRUE(c.wait_leaders(1, 2, kMaxTicks));
    const std::string text = c.node(2).metrics_text();
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(text.find('\0'), std::string::npos);
    EXPECT_TRUE(contains(text, "# TYPE muxraft_elections_started_total counter\n"));
    EXPECT_TRUE(contains(text, "muxraft_groups{node=\"2\"} 2\n"));
    EXPECT_TRUE(contains(text, "muxraft_peer_heard{node=\"2\",peer=\"1\"} 1\n"));
    EXPECT_TRUE(contains(text, "muxraft_group_term{node=\"2\",group=\"2\"} "));
    c.create_group(3);
    const std::string more = c.node(2).metrics_text();
    EXPECT_TRUE(contains(more, "muxraft_groups{node=\"2\"} 3\n"));
    EXPECT_FALSE(contains(more, "group=\""));
}

TEST(Metrics, AnEmptyHandleThrows)
{
    try {
        (void)muxraft::NodeRef().metrics_text();
        ADD_FAILURE() << "metrics_text on an empty NodeRef did not throw";
    } catch (const muxraft::Error &e) {
        EXPECT_EQ(e.status(), MUXRAFT_INVALID_ARGUMENT);
        EXPECT_EQ(e.function(), "muxraft_node_metrics_text");
    }
    muxraft::Node n(config_for(1));
    EXPECT_TRUE(contains(n.metrics_text(), "muxraft_groups{node=\"1\"} 0\n"));
}
