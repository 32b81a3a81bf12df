// A three-node muxraft cluster in one process, in embedded mode: each node
// runs its own timer and TCP transport on loopback. One group (one
// replicated queue) on all three nodes; the leader proposes three messages
// (at whichever node leads when each is proposed) and every node applies
// them, in order.
//
//   usage: cluster [BASE_PORT]     (nodes listen on BASE_PORT+1..+3; default 7100)
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "muxraft.hpp"

int main(int argc, char **argv)
{
    const int base_port = argc > 1 ? std::atoi(argv[1]) : 7100;
    const std::uint64_t queue = 1; // the group id
    const std::vector<std::string> messages = {"enqueue a", "enqueue b", "enqueue c"};

    // What the callbacks report. They run on muxraft's threads, so the data
    // is guarded by a mutex; it is declared before the nodes to outlive them.
    std::mutex mu;
    std::condition_variable changed;
    std::map<std::uint64_t, std::vector<std::string>> applied; // node id -> entries
    std::uint64_t leader = 0;

    auto address = [&](std::uint64_t id) {
        return "127.0.0.1:" + std::to_string(base_port + static_cast<int>(id));
    };

    try {
        std::vector<muxraft::Node> nodes;
        for (std::uint64_t id = 1; id <= 3; ++id) {
            muxraft::Config config; // the defaults: 50 ms ticks, batched heartbeats
            config.node_id = id;
            // config.data_dir = "/var/lib/broker/raft-" + std::to_string(id);  // durable log

            muxraft::Callbacks callbacks;
            callbacks.apply = [&, id](std::uint64_t, std::uint64_t, std::string_view data) {
                std::lock_guard<std::mutex> lock(mu);
                applied[id].emplace_back(data); // copy: `data` is valid during the call only
                changed.notify_all();
            };
            callbacks.role_changed = [&, id](std::uint64_t, muxraft::Role role, std::uint64_t term,
                                             std::uint64_t) {
                std::lock_guard<std::mutex> lock(mu);
                if (role == MUXRAFT_LEADER) {
                    std::printf("node %llu leads the queue (term %llu)\n",
                                static_cast<unsigned long long>(id),
                                static_cast<unsigned long long>(term));
                    leader = id;
                }
                changed.notify_all();
            };
            // Once per accepted proposal: MUXRAFT_OK with its index, or
            // MUXRAFT_NOT_LEADER (failed for certain), MUXRAFT_UNKNOWN or
            // MUXRAFT_SHUTDOWN (it may have committed).
            callbacks.proposal_done = [](std::uint64_t, std::uint64_t proposal, muxraft::Status status,
                                         std::uint64_t index) {
                std::printf("proposal %llu: %s at index %llu\n",
                            static_cast<unsigned long long>(proposal),
                            muxraft::status_name(status), static_cast<unsigned long long>(index));
            };
            nodes.emplace_back(config, std::move(callbacks));
        }

        for (std::uint64_t id = 1; id <= 3; ++id) {
            muxraft::Node &node = nodes[id - 1];
            for (std::uint64_t peer = 1; peer <= 3; ++peer)
                if (peer != id)
                    node.add_peer(peer, address(peer));
            node.start(address(id));
            node.create_group(queue, 1, {1, 2, 3});
        }

        // Propose each message at the node that leads the queue. Leadership
        // can move at any time, so MUXRAFT_NOT_LEADER is routine: try_propose
        // returns it (propose() would throw it), and we propose again at the
        // leader that node names.
        std::unique_lock<std::mutex> lock(mu);
        for (const std::string &m : messages) {
            for (;;) {
                if (!changed.wait_for(lock, std::chrono::seconds(10), [&] { return leader != 0; })) {
                    std::fprintf(stderr, "no leader elected\n");
                    return EXIT_FAILURE;
                }
                const std::uint64_t at = leader;
                lock.unlock(); // callbacks need the mutex while we call muxraft
                const muxraft::ProposeResult r = nodes[at - 1].try_propose(queue, m);
                if (r.ok()) {
                    lock.lock();
                    break;
                }
                if (r.status != MUXRAFT_NOT_LEADER)
                    throw muxraft::Error(r.status, "muxraft_propose", muxraft_last_error());
                // The leader `at` knows of (0: none yet; role_changed will say).
                const std::uint64_t named = nodes[at - 1].group_status(queue).leader_id;
                lock.lock();
                if (leader == at)
                    leader = named;
            }
        }

        const bool all = changed.wait_for(lock, std::chrono::seconds(10), [&] {
            for (std::uint64_t id = 1; id <= 3; ++id)
                if (applied[id].size() < messages.size())
                    return false;
            return true;
        });
        lock.unlock();
        for (auto &node : nodes)
            node.stop(); // or let the destructors stop and free them

        for (std::uint64_t id = 1; id <= 3; ++id) {
            std::printf("node %llu applied:", static_cast<unsigned long long>(id));
            for (const std::string &e : applied[id])
                std::printf(" \"%s\"", e.c_str());
            std::printf("\n");
            if (applied[id] != messages)
                return EXIT_FAILURE;
        }
        return all ? EXIT_SUCCESS : EXIT_FAILURE;
    } catch (const muxraft::Error &e) {
        // e.status() is the muxraft_status, e.message() muxraft_last_error().
        std::fprintf(stderr, "muxraft error: %s\n", e.what());
        return EXIT_FAILURE;
    }
}
