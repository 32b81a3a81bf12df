// log_test.cc: Callbacks::log and set_log_callback: the library's log lines
// in a std::function, with the node and group; an exception escaping one
// drops the line and nothing else.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "muxraft.hpp"

namespace {

struct Line {
    muxraft::LogLevel level;
    std::uint64_t node_id;
    std::optional<std::uint64_t> group_id;
    std::string target;
    std::string message;
};

// What a host keeps of its log: lines arrive on muxraft's log thread.
class Lines {
public:
    muxraft::LogFn fn()
    {
        return [this](muxraft::LogLevel level, std::uint64_t node_id,
                      std::optional<std::uint64_t> group_id, std::string_view target,
                      std::string_view message) {
            std::lock_guard<std::mutex> lock(mu_);
            lines_.push_back({level, node_id, group_id, std::string(target), std::string(message)});
        };
    }

    std::optional<Line> find(muxraft::LogLevel level, const std::string &part)
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const Line &l : lines_)
            if (l.level == level && l.message.find(part) != std::string::npos)
                return l;
        return std::nullopt;
    }

    std::size_t size()
    {
        std::lock_guard<std::mutex> lock(mu_);
        return lines_.size();
    }

private:
    std::mutex mu_;
    std::vector<Line> lines_;
};

class TempDir {
public:
    TempDir()
    {
        const char *tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/muxraft-cpp-log-XXXXXX";
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

void lead(const muxraft::Node &node)
{
    for (int t = 0; t < 200 && node.group_status(4).role != MUXRAFT_LEADER; t++)
        node.tick();
}

// A node on `dir` with one group it leads and two entries, freed.
void write_some(const std::string &dir)
{
    muxraft::Config config;
    config.node_id = 1;
    config.data_dir = dir;
    muxraft::Node node(config);
    node.create_group(4, 1, {1});
    lead(node);
    node.propose(4, "a");
    node.propose(4, "b");
}

// Garbage after the last commit of the last segment, as a torn write.
void tear(const std::string &dir, std::size_t n)
{
    std::filesystem::path last;
    for (const auto &e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".wal" && e.path().filename() > last.filename())
            last = e.path();
    ASSERT_FALSE(last.empty());
    std::ofstream(last, std::ios::binary | std::ios::app) << std::string(n, '\xa5');
}

} // namespace

TEST(Log, ConfigCarriesTheLevel)
{
    muxraft::Config c;
    EXPECT_EQ(c.log_level, MUXRAFT_LOG_INFO);
    c.log_level = MUXRAFT_LOG_DEBUG;
    EXPECT_EQ(c.to_c().log_level, 4u);
    EXPECT_EQ(muxraft::Config(c.to_c()).log_level, MUXRAFT_LOG_DEBUG);
}

TEST(Log, ANodesOwnCallbackGetsTheTornTailItsRecoveryCut)
{
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    write_some(dir.path());
    tear(dir.path(), 9);
    Lines lines;
    muxraft::Config config;
    config.node_id = 1;
    config.data_dir = dir.path();
    muxraft::Callbacks cb;
    cb.log = lines.fn();
    {
        muxraft::Node node(config, std::move(cb));
        EXPECT_EQ(node.group_status(4).last_index, 3u);
    } // every line delivered once the node is freed
    std::optional<Line> torn = lines.find(MUXRAFT_LOG_WARN, "truncating a torn tail");
    ASSERT_TRUE(torn.has_value());
    EXPECT_NE(torn->message.find("bytes=9"), std::string::npos) << torn->message;
    EXPECT_EQ(torn->node_id, 1u);
    EXPECT_FALSE(torn->group_id.has_value());
    EXPECT_EQ(torn->target.rfind("muxraft::", 0), 0u) << torn->target;
}

TEST(Log, AnExceptionFromTheCallbackDropsTheLineOnly)
{
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    write_some(dir.path());
    int calls = 0;
    muxraft::Config config;
    config.node_id = 1;
    config.data_dir = dir.path();
    muxraft::Callbacks cb;
    cb.log = [&calls](muxraft::LogLevel, std::uint64_t, std::optional<std::uint64_t>,
                      std::string_view, std::string_view) {
        calls++;
        throw std::runtime_error("a host's log that throws");
    };
    {
        muxraft::Node node(config, std::move(cb));
        lead(node);
        node.propose(4, "still works");
    }
    EXPECT_GT(calls, 0);
}

TEST(Log, TheProcessWideCallbackGetsNodesWithoutTheirOwn)
{
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    write_some(dir.path());
    Lines lines;
    EXPECT_THROW(muxraft::set_log_callback(lines.fn(), static_cast<muxraft::LogLevel>(6)),
                 muxraft::Error);
    muxraft::set_log_callback(lines.fn(), MUXRAFT_LOG_INFO);
    muxraft::Config config;
    config.node_id = 1;
    config.data_dir = dir.path();
    muxraft::Node node(config);
    muxraft::set_log_callback({}); // returns once every line is delivered
    std::optional<Line> recovered = lines.find(MUXRAFT_LOG_INFO, "storage recovered");
    ASSERT_TRUE(recovered.has_value());
    EXPECT_EQ(recovered->node_id, 1u);
    const std::size_t before = lines.size();
    node.reset();
    EXPECT_EQ(lines.size(), before);
}
