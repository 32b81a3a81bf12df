/*
 * log_verify.h: check the logs queue_node processes kept (used by
 * tests/c/crash_test.c and benches/c/throughput.c --verify).
 *
 * With a data directory and app logs on, queue_node (examples/c/queue_node.c)
 * writes each acknowledged proposal to DIR/acked.log and, per incarnation,
 * each applied entry and each restored snapshot, with the group's state (a
 * running hash) after it, to DIR/applied.<pid>.log. Once the processes
 * stopped (after proposals stopped and the cluster settled), lv_verify reads
 * every one of those files and checks:
 *
 *   order       in every incarnation of every replica, a group's indexes
 *               increase (nothing is applied twice, nothing at or below a
 *               restored snapshot is applied again) and no payload is
 *               applied twice;
 *   state       wherever a group's state at an index was seen (on any
 *               replica, in any incarnation, by applying entries or by
 *               restoring a snapshot), it is the same, and so is the entry
 *               applied at that index;
 *   unique      no payload sits at two indexes of a group;
 *   agreement   the last incarnations of the replicas of a group end at
 *               the same index with the same state (a node marked retired,
 *               qc_proc.retired: removed from its groups for good, is
 *               checked for everything but this and the final states);
 *   acked       every proposal acknowledged (proposal_done OK) by any
 *               incarnation was applied at the index it was acknowledged
 *               at, and every replica's final state is at or past it (so it
 *               is in every final state, exactly once: see order, state);
 *               one that is not is lost;
 *   and no proposal is acknowledged twice.
 *
 * Payloads must be unique (queue_node's messages are, unless
 * --payload-bytes cuts them short). Every node of the cluster must host
 * every group (3 nodes, 3 replicas; a node that replaced one, queue_node
 * --join, hosts every group too: its applied log starts from a restored
 * snapshot or from the group's first entry). Lines are parsed by hand (not with
 * sscanf) and payloads are interned: 6 million acknowledged proposals
 * applied on 3 replicas (24 million lines, 32-byte payloads) take about
 * 1 GiB and 15 to 30 s of one core.
 */
#ifndef MUXRAFT_LOG_VERIFY_H
#define MUXRAFT_LOG_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "queue_cluster.h"

/* The outcome of one check: ok, with the check's name ("order", "state",
 * "unique", "agreement", "acked", ... once per group), or not ok, with
 * what is wrong. `what` is NULL for a failure that is counted but not
 * described: every lost proposal is a failure, only the first 3 are
 * described. */
typedef void (*lv_check_fn)(void *arg, bool ok, const char *what);

typedef struct lv_summary {
    size_t acked;           /* acknowledged proposals (lines of every acked.log) */
    size_t lost;            /* of them, not applied at their index or past a final state */
    size_t acked_twice;     /* proposals acknowledged more than once */
    size_t applied;         /* entries applied, over every applied log */
    size_t restores;        /* snapshots restored, over every applied log */
    size_t files;           /* applied logs found */
    size_t final_lines;     /* lines in the last incarnations' applied logs */
    size_t states_compared; /* states at one index compared across logs */
    size_t bad_lines;       /* lines that could not be parsed */
    size_t passed, failed;  /* checks, as reported to the callback */
} lv_summary;

/* Check the logs of groups 1..groups in the data directories of the c->n
 * nodes of c, for every pid in their incarnations (the last one is each
 * node's final state). Every check's outcome goes to check(arg, ...).
 * Returns true if none failed. */
bool lv_verify(const qc_cluster *c, unsigned groups, lv_check_fn check, void *arg,
               lv_summary *out);

/* "verified: N acknowledged proposals; ..." (one line). */
void lv_print_summary(FILE *f, const lv_summary *s);

#endif
