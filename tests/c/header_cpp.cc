// header_cpp.cc: include/muxraft.h used from C++17, the way a C++ broker
// would: RAII ownership of the node, a lambda as callback, enums and
// structs as plain C++ types. Built with -Wall -Wextra -Wpedantic -Werror.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "muxraft.h"

namespace {

struct NodeDeleter {
    void operator()(muxraft_node *n) const noexcept { muxraft_node_free(n); }
};
using Node = std::unique_ptr<muxraft_node, NodeDeleter>;

static_assert(std::is_standard_layout<muxraft_config>::value, "C struct");
static_assert(std::is_trivially_copyable<muxraft_stats>::value, "C struct");
static_assert(MUXRAFT_OK == 0, "MUXRAFT_OK is 0");
static_assert(MUXRAFT_PANIC == 10, "status numbers are stable");
static_assert(MUXRAFT_LEADER == 2, "role numbers are stable");
static_assert(MUXRAFT_UNKNOWN == 11, "status numbers are stable");
// Every struct starts with its struct_size (ABI 2).
static_assert(offsetof(muxraft_config, struct_size) == 0, "struct_size first");
static_assert(offsetof(muxraft_callbacks, struct_size) == 0, "struct_size first");
static_assert(offsetof(muxraft_stats, struct_size) == 0, "struct_size first");
static_assert(offsetof(muxraft_group_info, struct_size) == 0, "struct_size first");

int failures = 0;

void expect(bool ok, const char *what)
{
    if (!ok) {
        ++failures;
        std::fprintf(stderr, "header_cpp: FAILED: %s (%s)\n", what,
                     muxraft_last_error());
    }
}

} // namespace

int main()
{
    expect(muxraft_abi_version() == MUXRAFT_ABI_VERSION, "abi version");
    expect(std::string(muxraft_version()).find('.') != std::string::npos,
           "version string");

    muxraft_config config;
    muxraft_config_init(&config);
    config.node_id = 1;

    std::vector<std::string> applied;
    muxraft_callbacks cb;
    muxraft_callbacks_init(&cb); // struct_size, every callback NULL
    cb.userdata = &applied;
    cb.apply = [](void *ud, uint64_t, uint64_t, const uint8_t *data, size_t len) {
        static_cast<std::vector<std::string> *>(ud)->emplace_back(
            reinterpret_cast<const char *>(data), len);
    };

    muxraft_node *raw = nullptr;
    muxraft_status s = muxraft_node_new(&config, &cb, &raw);
    expect(s == MUXRAFT_OK, "muxraft_node_new");
    Node node(raw);

    const uint64_t members[] = {1};
    expect(muxraft_group_create(node.get(), 7, 1, members, 1) == MUXRAFT_OK,
           "muxraft_group_create");
    expect(muxraft_group_create(node.get(), 7, 1, members, 1) == MUXRAFT_ALREADY_EXISTS,
           "duplicate group");

    muxraft_group_info info;
    muxraft_group_info_init(&info);
    for (int t = 0; t < 100 && info.role != MUXRAFT_LEADER; ++t) {
        expect(muxraft_tick(node.get()) == MUXRAFT_OK, "muxraft_tick");
        expect(muxraft_group_status(node.get(), 7, &info) == MUXRAFT_OK,
               "muxraft_group_status");
    }
    expect(info.role == MUXRAFT_LEADER, "elected");

    const std::string hello = "hello from C++";
    uint64_t id = 0;
    expect(muxraft_propose(node.get(), 7,
                           reinterpret_cast<const uint8_t *>(hello.data()),
                           hello.size(), &id) == MUXRAFT_OK,
           "muxraft_propose");
    for (int t = 0; t < 100 && applied.empty(); ++t)
        expect(muxraft_tick(node.get()) == MUXRAFT_OK, "muxraft_tick");
    expect(applied.size() == 1 && applied[0] == hello, "applied");

    muxraft_stats stats;
    muxraft_stats_init(&stats);
    expect(muxraft_node_stats(node.get(), &stats) == MUXRAFT_OK && stats.groups == 1,
           "muxraft_node_stats");
    expect(muxraft_node_stats(nullptr, &stats) == MUXRAFT_INVALID_ARGUMENT &&
               std::strlen(muxraft_last_error()) > 0,
           "NULL node");
    expect(std::string(muxraft_status_str(MUXRAFT_NOT_LEADER)) == "MUXRAFT_NOT_LEADER",
           "muxraft_status_str");
    muxraft_stats zeroed{}; // struct_size 0: not set by muxraft_stats_init
    expect(muxraft_node_stats(node.get(), &zeroed) == MUXRAFT_INVALID_ARGUMENT,
           "struct_size 0 refused");

    node.reset();
    std::printf("header_cpp: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
