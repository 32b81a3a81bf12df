/*
 * minimal.c: the smallest complete muxraft program.
 *
 * One node hosting one single-member Raft group, driven by the host
 * ("host-driven mode"): the program calls muxraft_tick() as its clock, the
 * node elects itself, we propose "hello", and the entry comes back through
 * the apply callback once committed.
 *
 *   cc -std=c99 -Iinclude examples/c/minimal.c target/release/libmuxraft.a \
 *      $(cat target/native-libs.txt) -o minimal && ./minimal
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muxraft.h"

#define GROUP_ID 1
#define MAX_TICKS 1000

/* What the callbacks tell us; reached through `userdata`. */
struct app {
    uint64_t proposal_id;   /* the proposal we are waiting for */
    bool done;              /* proposal_done reported it */
    muxraft_status outcome; /* ...with this status */
};

/* Report a failed call with the library's explanation and give up. */
static void check(muxraft_status status, const char *what)
{
    if (status != MUXRAFT_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what,
                muxraft_status_str((int)status), muxraft_last_error());
        exit(EXIT_FAILURE);
    }
}

static void on_apply(void *userdata, uint64_t group_id, uint64_t index,
                     const uint8_t *data, size_t len)
{
    (void)userdata;
    printf("applied group %llu index %llu: \"%.*s\"\n",
           (unsigned long long)group_id, (unsigned long long)index, (int)len,
           (const char *)data);
}

static void on_proposal_done(void *userdata, uint64_t group_id,
                             uint64_t proposal_id, muxraft_status status,
                             uint64_t index)
{
    struct app *app = userdata;
    (void)group_id;
    (void)index;
    if (proposal_id == app->proposal_id) {
        app->done = true;
        app->outcome = status;
    }
}

int main(void)
{
    struct app app = {0, false, MUXRAFT_OK};

    muxraft_config config;
    muxraft_config_init(&config); /* defaults, and struct_size */
    config.node_id = 1;

    muxraft_callbacks callbacks;
    muxraft_callbacks_init(&callbacks); /* struct_size, every callback NULL */
    callbacks.userdata = &app;
    callbacks.apply = on_apply;
    callbacks.proposal_done = on_proposal_done;
    /* callbacks.send stays NULL: a single-member group sends nothing. */

    muxraft_node *node = NULL;
    check(muxraft_node_new(&config, &callbacks, &node), "muxraft_node_new");

    const uint64_t members[] = {1};
    check(muxraft_group_create(node, GROUP_ID, 1, members, 1),
          "muxraft_group_create");

    /* Tick until the node has elected itself (election_ticks..2x ticks). */
    muxraft_group_info info;
    muxraft_group_info_init(&info); /* struct_size */
    int ticks = 0;
    for (;;) {
        check(muxraft_group_status(node, GROUP_ID, &info),
              "muxraft_group_status");
        if (info.role == MUXRAFT_LEADER)
            break;
        if (++ticks > MAX_TICKS) {
            fprintf(stderr, "no leader after %d ticks\n", MAX_TICKS);
            muxraft_node_free(node);
            return EXIT_FAILURE;
        }
        check(muxraft_tick(node), "muxraft_tick");
    }
    printf("node 1 leads group %d (term %llu) after %d ticks\n", GROUP_ID,
           (unsigned long long)info.term, ticks);

    const char *hello = "hello";
    check(muxraft_propose(node, GROUP_ID, (const uint8_t *)hello,
                          strlen(hello), &app.proposal_id),
          "muxraft_propose");

    /* The outcome arrives through proposal_done, from inside a muxraft call. */
    for (ticks = 0; !app.done; ticks++) {
        if (ticks > MAX_TICKS) {
            fprintf(stderr, "proposal not done after %d ticks\n", MAX_TICKS);
            muxraft_node_free(node);
            return EXIT_FAILURE;
        }
        check(muxraft_tick(node), "muxraft_tick");
    }
    if (app.outcome != MUXRAFT_OK) {
        fprintf(stderr, "proposal failed: %s\n", muxraft_status_str((int)app.outcome));
        muxraft_node_free(node);
        return EXIT_FAILURE;
    }
    printf("proposal %llu committed\n", (unsigned long long)app.proposal_id);

    muxraft_node_free(node);
    return EXIT_SUCCESS;
}
