// errors_test.cc: misuse of the API throws muxraft::Error carrying the status
// the C function returned and the muxraft_last_error() message.
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "host_cluster.hpp"
#include "muxraft.hpp"

using muxraft_test::config_for;

namespace {

// Run `call`; it must throw muxraft::Error with `status`, from C function
// `function`, whose message is muxraft_last_error() and appears in what().
::testing::AssertionResult throws_status(const std::function<void()> &call, muxraft::Status status,
                                         const char *function)
{
    try {
        call();
    } catch (const muxraft::Error &e) {
        const std::string last = muxraft_last_error(); // nothing failed since
        const std::string what = e.what();
        if (e.status() != status)
            return ::testing::AssertionFailure()
                   << "status " << muxraft::status_name(e.status()) << ", expected "
                   << muxraft::status_name(status) << " (" << what << ")";
        if (e.function() != function)
            return ::testing::AssertionFailure() << "function " << e.function() << ", expected "
                                                 << function;
        if (e.message().empty() || e.message() != last)
            return ::testing::AssertionFailure()
                   << "message \"" << e.message() << "\", last error \"" << last << "\"";
        if (what.find(e.message()) == std::string::npos ||
            what.find(muxraft::status_name(status)) == std::string::npos ||
            what.find(function) == std::string::npos)
            return ::testing::AssertionFailure() << "what() is \"" << what << "\"";
        return ::testing::AssertionSuccess() << what;
    } catch (const std::exception &e) {
        return ::testing::AssertionFailure() << "threw another exception: " << e.what();
    }
    return ::testing::AssertionFailure() << "did not throw";
}

// A single-member group that node 1 leads.
muxraft::Node elected_node(std::uint64_t group)
{
    muxraft::Node n(config_for(1));
    n.create_group(group, 1, {1});
    for (int t = 0; t < 200 && n.group_status(group).role != MUXRAFT_LEADER; ++t)
        n.tick();
    return n;
}

} // namespace

static_assert(std::is_base_of<std::runtime_error, muxraft::Error>::value, "");
static_assert(!std::is_copy_constructible<muxraft::Node>::value, "Node is move-only");
static_assert(!std::is_copy_assignable<muxraft::Node>::value, "Node is move-only");
static_assert(std::is_nothrow_move_constructible<muxraft::Node>::value, "");
static_assert(std::is_nothrow_move_assignable<muxraft::Node>::value, "");
static_assert(std::is_trivially_copyable<muxraft::NodeRef>::value, "NodeRef is a pointer");

TEST(Errors, ConfigHoldsTheCDefaults)
{
    muxraft_config c;
    muxraft_config_init(&c);
    muxraft::Config config;
    EXPECT_EQ(config.node_id, c.node_id);
    EXPECT_EQ(config.cluster_id, c.cluster_id);
    EXPECT_EQ(config.tick_ms, c.tick_ms);
    EXPECT_EQ(config.heartbeat_ticks, c.heartbeat_ticks);
    EXPECT_EQ(config.election_ticks, c.election_ticks);
    EXPECT_EQ(config.batch_heartbeats, c.batch_heartbeats);
    EXPECT_EQ(config.max_proposal_bytes, c.max_proposal_bytes);
    EXPECT_FALSE(config.data_dir.has_value());
    EXPECT_EQ(config.tick_ms, 50u);
    EXPECT_TRUE(config.batch_heartbeats);
    // And back: to_c() starts from muxraft_config_init (struct_size set).
    config.node_id = 9;
    config.data_dir = "/tmp/x";
    const muxraft_config back = config.to_c();
    EXPECT_EQ(back.struct_size, c.struct_size);
    EXPECT_EQ(back.node_id, 9u);
    EXPECT_STREQ(back.data_dir, "/tmp/x");
    const muxraft::Config again(back);
    EXPECT_EQ(again.node_id, 9u);
    EXPECT_EQ(again.data_dir, std::optional<std::string>("/tmp/x"));
    // The cluster secret: none by default, copied both ways.
    EXPECT_TRUE(config.cluster_secret.empty());
    EXPECT_EQ(c.cluster_secret, nullptr);
    EXPECT_EQ(c.cluster_secret_len, 0u);
    config.cluster_secret.assign(32, 0x5A);
    const muxraft_config with_secret = config.to_c();
    ASSERT_EQ(with_secret.cluster_secret_len, 32u);
    EXPECT_EQ(with_secret.cluster_secret, config.cluster_secret.data());
    EXPECT_EQ(muxraft::Config(with_secret).cluster_secret, config.cluster_secret);
    // TLS: no paths by default, copied both ways.
    EXPECT_FALSE(config.tls_cert_pem || config.tls_key_pem || config.tls_ca_pem);
    EXPECT_EQ(c.tls_cert_pem, nullptr);
    config.tls_cert_pem = "a.crt";
    config.tls_key_pem = "a.key";
    config.tls_ca_pem = "ca.crt";
    const muxraft_config with_tls = config.to_c();
    EXPECT_STREQ(with_tls.tls_cert_pem, "a.crt");
    EXPECT_STREQ(with_tls.tls_key_pem, "a.key");
    EXPECT_STREQ(with_tls.tls_ca_pem, "ca.crt");
    const muxraft::Config tls_again(with_tls);
    EXPECT_EQ(tls_again.tls_ca_pem, std::optional<std::string>("ca.crt"));
    EXPECT_EQ(tls_again.tls_key_pem, std::optional<std::string>("a.key"));
    // The leader balancer: automatic by default, copied both ways.
    EXPECT_EQ(config.balance_leaders, static_cast<muxraft_balance>(MUXRAFT_BALANCE_AUTO));
    EXPECT_EQ(config.balance_max_transfers, 0u);
    config.balance_leaders = MUXRAFT_BALANCE_OFF;
    config.balance_max_transfers = 3;
    const muxraft_config balanced = config.to_c();
    EXPECT_EQ(balanced.balance_leaders, static_cast<muxraft_balance>(MUXRAFT_BALANCE_OFF));
    EXPECT_EQ(muxraft::Config(balanced).balance_max_transfers, 3u);
    // Commit broadcast: off by default, copied both ways.
    EXPECT_FALSE(config.broadcast_commit);
    config.broadcast_commit = true;
    const muxraft_config broadcasting = config.to_c();
    EXPECT_TRUE(broadcasting.broadcast_commit);
    EXPECT_TRUE(muxraft::Config(broadcasting).broadcast_commit);
    EXPECT_EQ(muxraft::abi_version(), static_cast<std::uint32_t>(MUXRAFT_ABI_VERSION));
    EXPECT_STREQ(muxraft::version(), muxraft_version());
}

TEST(Errors, ZeroNodeIdIsRefused)
{
    EXPECT_TRUE(throws_status([] { muxraft::Node n{muxraft::Config()}; }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
}

TEST(Errors, BadConfigIsRefused)
{
    muxraft::Config c = config_for(1);
    c.election_ticks = c.heartbeat_ticks;
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    c = config_for(1);
    c.max_proposal_bytes = 0;
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    c = config_for(1);
    c.data_dir = ""; // passed as "", not NULL: the C API refuses it
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    c = config_for(1);
    c.cluster_secret.assign(15, 1); // under the 16 bytes required
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    EXPECT_NE(std::string(muxraft_last_error()).find("cluster_secret"), std::string::npos);
    c = config_for(1);
    c.tls_cert_pem = "tests/certs/node1.crt"; // the tests run from the repository's root
    c.tls_key_pem = "tests/certs/node1.key";
    c.tls_ca_pem = "tests/certs/no-such-ca.crt";
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    EXPECT_NE(std::string(muxraft_last_error()).find("tls_ca_pem"), std::string::npos);
    c.tls_ca_pem = "tests/certs/ca.crt";
    muxraft::Node with_tls(c); // the same paths, all good: a node
    c = config_for(1);
    c.balance_leaders = 7;
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
    EXPECT_NE(std::string(muxraft_last_error()).find("balance_leaders"), std::string::npos);
    c.balance_leaders = MUXRAFT_BALANCE_ON;
    c.batch_heartbeats = false;
    EXPECT_TRUE(throws_status([&] { muxraft::Node n(c); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_new"));
}

TEST(Errors, BadMemberListsAreRefused)
{
    muxraft::Node n(config_for(1));
    EXPECT_TRUE(throws_status([&] { n.create_group(1, 1, nullptr, 1); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_group_create"));
    EXPECT_TRUE(throws_status([&] { n.create_group(1, 1, {}); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_group_create"));
    EXPECT_TRUE(throws_status([&] { n.create_group(1, 1, {2, 3}); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_group_create"));
    EXPECT_TRUE(throws_status([&] { n.create_group(1, 1, {1, 1, 2}); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_group_create"));
}

TEST(Errors, UnknownGroupIsNotFound)
{
    muxraft::Node n(config_for(1));
    EXPECT_TRUE(throws_status([&] { n.group_status(99); }, MUXRAFT_NOT_FOUND,
                              "muxraft_group_status"));
    EXPECT_TRUE(throws_status([&] { n.propose(99, "x"); }, MUXRAFT_NOT_FOUND, "muxraft_propose"));
    EXPECT_TRUE(throws_status([&] { n.remove_group(99); }, MUXRAFT_NOT_FOUND,
                              "muxraft_group_remove"));
}

TEST(Errors, DuplicateGroupAlreadyExists)
{
    muxraft::Node n(config_for(1));
    n.create_group(5, 1, {1});
    EXPECT_TRUE(throws_status([&] { n.create_group(5, 1, {1}); }, MUXRAFT_ALREADY_EXISTS,
                              "muxraft_group_create"));
    n.remove_group(5);
    n.create_group(5, 2, {1}); // gone, so it can be created again
}

TEST(Errors, ProposalToAFollowerIsNotLeader)
{
    muxraft_test::HostCluster c(3);
    c.create_group(1);
    // Before any election nobody leads.
    EXPECT_TRUE(throws_status([&] { c.node(1).propose(1, "x"); }, MUXRAFT_NOT_LEADER,
                              "muxraft_propose"));
    ASSERT_TRUE(c.wait_leaders(1, 1, 2000));
    const std::uint64_t follower = c.leader(1) % 3 + 1;
    EXPECT_TRUE(throws_status([&] { c.node(follower).propose(1, "x"); }, MUXRAFT_NOT_LEADER,
                              "muxraft_propose"));
    EXPECT_EQ(c.node(follower).group_status(1).leader_id, c.leader(1));
}

TEST(Errors, ProposalOverTheLimitIsTooLarge)
{
    muxraft::Config config = config_for(1);
    config.max_proposal_bytes = 16;
    muxraft::Node n(config);
    n.create_group(1, 1, {1});
    for (int t = 0; t < 200 && n.group_status(1).role != MUXRAFT_LEADER; ++t)
        n.tick();
    ASSERT_EQ(n.group_status(1).role, MUXRAFT_LEADER);
    n.propose(1, std::string(16, 'a'));
    EXPECT_TRUE(throws_status([&] { n.propose(1, std::string(17, 'a')); }, MUXRAFT_TOO_LARGE,
                              "muxraft_propose"));
    EXPECT_TRUE(throws_status([&] { n.propose(1, nullptr, 3); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_propose"));
    n.propose(1, std::string_view()); // empty: allowed
}

TEST(Errors, GarbageFramesAreMalformed)
{
    muxraft::Node n = elected_node(1);
    const muxraft::Stats before = n.stats();
    EXPECT_TRUE(throws_status([&] { n.step(2, "this is not a frame"); }, MUXRAFT_MALFORMED,
                              "muxraft_step"));
    EXPECT_TRUE(throws_status([&] { n.step(2, std::string(64, '\xff')); }, MUXRAFT_MALFORMED,
                              "muxraft_step"));
    EXPECT_TRUE(throws_status([&] { n.step(0, "x"); }, MUXRAFT_INVALID_ARGUMENT, "muxraft_step"));
    EXPECT_GT(n.stats().frames_rejected, before.frames_rejected);
    EXPECT_EQ(n.group_status(1).role, MUXRAFT_LEADER); // the group is untouched
    n.propose(1, "still works");
}

TEST(Errors, AFrameForAnotherNodeIsRefused)
{
    muxraft_test::HostCluster c(3);
    c.create_group(1);
    // Only node 1's clock runs: it campaigns, and its frames stay on the wire.
    auto to_node_2 = [&] {
        for (const auto &f : c.wire)
            if (f.to == 2)
                return true;
        return false;
    };
    for (int t = 0; t < 200 && !to_node_2(); ++t)
        c.node(1).tick();
    ASSERT_TRUE(to_node_2());
    muxraft_test::Frame f{};
    for (const auto &g : c.wire)
        if (g.to == 2)
            f = g;
    ASSERT_EQ(f.from, 1u);
    // Addressed to node 2, handed to node 3: refused.
    EXPECT_TRUE(throws_status([&] { c.node(3).step(1, f.bytes); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_step"));
    // Node 1's frame handed to node 2 as if node 3 sent it: refused.
    EXPECT_TRUE(throws_status([&] { c.node(2).step(3, f.bytes); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_step"));
    c.node(2).step(1, f.bytes); // as sent: accepted
}

TEST(Errors, ModeMisuseIsRefused)
{
    muxraft::Node n(config_for(1));
    EXPECT_TRUE(throws_status([&] { n.add_peer(1, "127.0.0.1:1"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_add_peer"));
    EXPECT_TRUE(throws_status([&] { n.add_peer(0, "127.0.0.1:1"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_add_peer"));
    EXPECT_TRUE(throws_status([&] { n.add_peer(2, "not an address"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_add_peer"));
    EXPECT_TRUE(throws_status([&] { n.start("not an address"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_start"));
    n.start("127.0.0.1:0"); // a single node needs no known port
    EXPECT_TRUE(throws_status([&] { n.start("127.0.0.1:0"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_start"));
    EXPECT_TRUE(throws_status([&] { n.tick(); }, MUXRAFT_INVALID_ARGUMENT, "muxraft_tick"));
    EXPECT_TRUE(throws_status([&] { n.step(2, "x"); }, MUXRAFT_INVALID_ARGUMENT, "muxraft_step"));
    n.stop();
    EXPECT_TRUE(throws_status([&] { n.stop(); }, MUXRAFT_SHUTDOWN, "muxraft_node_stop"));
    EXPECT_TRUE(throws_status([&] { n.start("127.0.0.1:0"); }, MUXRAFT_SHUTDOWN,
                              "muxraft_node_start"));
    EXPECT_TRUE(throws_status([&] { n.create_group(1, 1, {1}); }, MUXRAFT_SHUTDOWN,
                              "muxraft_group_create"));
    n.stats(); // still allowed
}

TEST(Errors, AddressInUseIsIoAndTheNodeCanStartElsewhere)
{
    muxraft::Node first(config_for(1));
    muxraft::Node second(config_for(2));
    // Find a port `first` can take (another process may hold one).
    std::string taken;
    for (int port = 27400; port < 27500 && taken.empty(); ++port) {
        try {
            first.start("127.0.0.1:" + std::to_string(port));
            taken = "127.0.0.1:" + std::to_string(port);
        } catch (const muxraft::Error &e) {
            ASSERT_EQ(e.status(), MUXRAFT_IO) << e.what();
        }
    }
    ASSERT_FALSE(taken.empty());
    EXPECT_TRUE(throws_status([&] { second.start(taken); }, MUXRAFT_IO, "muxraft_node_start"));
    second.start("127.0.0.1:0"); // the failed start left it startable
    second.stop();
    first.stop();
}

TEST(Errors, EmptyNodeAndEmptyRefAreNull)
{
    muxraft::Node empty;
    EXPECT_FALSE(empty);
    EXPECT_TRUE(throws_status([&] { empty.tick(); }, MUXRAFT_INVALID_ARGUMENT, "muxraft_tick"));
    EXPECT_TRUE(throws_status([&] { empty.stats(); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_node_stats"));
    muxraft::NodeRef ref;
    EXPECT_FALSE(ref);
    EXPECT_TRUE(throws_status([&] { ref.propose(1, "x"); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_propose"));
    EXPECT_TRUE(throws_status([&] { ref.group_status(1); }, MUXRAFT_INVALID_ARGUMENT,
                              "muxraft_group_status"));
}

TEST(Errors, ErrorIsCatchableAsStdException)
{
    muxraft::Node n(config_for(1));
    try {
        n.group_status(42);
        FAIL() << "no exception";
    } catch (const std::exception &e) {
        EXPECT_NE(std::strstr(e.what(), "MUXRAFT_NOT_FOUND"), nullptr) << e.what();
    }
    EXPECT_STREQ(muxraft::status_name(MUXRAFT_PANIC), "MUXRAFT_PANIC");
    EXPECT_STREQ(muxraft::status_name(MUXRAFT_UNKNOWN), "MUXRAFT_UNKNOWN");
    EXPECT_STREQ(muxraft::status_name(static_cast<muxraft::Status>(99)),
                 "MUXRAFT_UNKNOWN_STATUS");
    EXPECT_EQ(muxraft::status_name(MUXRAFT_NOT_LEADER), muxraft_status_str(MUXRAFT_NOT_LEADER));
    EXPECT_STREQ(muxraft::role_name(MUXRAFT_LEADER), "leader");
}

// An exception escaping a callback cannot cross the C library: the wrapper
// reports it and terminates the process.
TEST(ErrorsDeathTest, ExceptionEscapingACallbackTerminates)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            muxraft::Callbacks cb;
            cb.apply = [](std::uint64_t, std::uint64_t, std::string_view) {
                throw std::runtime_error("state machine full");
            };
            muxraft::Node n(config_for(1), std::move(cb));
            n.create_group(1, 1, {1});
            for (int t = 0; t < 200 && n.group_status(1).role != MUXRAFT_LEADER; ++t)
                n.tick();
            n.propose(1, "boom");
            for (int t = 0; t < 200; ++t)
                n.tick();
        },
        "exception escaped the apply callback: state machine full");
}
