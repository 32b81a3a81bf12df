#!/usr/bin/env python3
"""make mutants: put each known bug back into a copy of the tree, one at a
time, and show that the tests catch it.

Every mutant is a literal replacement in one file (the script stops if the
text is not found exactly once, so a mutant cannot silently go stale) and
the tests expected to catch it: unit tests by name, and the seeded
simulation. The unmutated copy must pass the same tests first; a mutant is
CAUGHT when at least one of its tests fails. The copy lives in
target/mutants/ and builds in its own target directory, so the working tree
is never touched.

    make mutants                   # every mutant, simulation with 200 seeds
    MUTANTS=figure8 make mutants   # the mutants whose name contains this
    MUTANTS=a,b make mutants       # ... any of these
    SIM_SEEDS=50 make mutants      # fewer seeds per simulation run
"""

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "mutants")
TREE = os.path.join(WORK, "tree")
SIM_SEEDS = os.environ.get("SIM_SEEDS", "200")


def unit(name):
    return ("unit", name)


def itest(target, name):
    """An integration test: tests/<target>.rs, test function `name`."""
    return ("itest", f"{target}::{name}")


SIM = ("sim", None)

MUTANTS = [
    {
        "name": "vote-twice",
        "what": "a replica votes for a second candidate in the term it already voted in",
        "file": "src/raft/election.rs",
        "find": "|| (self.vote == NONE && self.leader == NONE)",
        "replace": "|| self.leader == NONE",
        "tests": [unit("raft::tests::replica_votes_at_most_once_per_term"), SIM],
    },
    {
        "name": "weak-up-to-date",
        "what": "the up-to-date check compares last terms only, not last indexes",
        "file": "src/raft/log.rs",
        "find": "last_term > our_term || (last_term == our_term && last_index >= self.last_index())",
        "replace": "last_term >= our_term",
        "tests": [unit("raft::tests::candidate_with_stale_log_loses_the_election"), SIM],
    },
    {
        "name": "no-heartbeat-clamp",
        "what": "a heartbeat carries the leader's commit, not min(match, commit)",
        "file": "src/raft/replication.rs",
        "find": "m.commit = pr.matched.min(committed);",
        "replace": "m.commit = committed;",
        "tests": [
            unit("raft::tests::heartbeat_commit_is_clamped_to_the_followers_match"),
            unit("multi::tests::reordered_heartbeat_never_commits_unverified_entries"),
            SIM,
        ],
    },
    {
        "name": "resolve-by-index",
        "what": "a proposal is resolved by its index only, not its index and term",
        "file": "src/multi/group.rs",
        "find": "let result = if p.index == e.index && p.term == e.term {",
        "replace": "let result = if p.index == e.index {",
        "tests": [
            unit("multi::group::tests::proposals_below_older_pending_ones_resolve_by_index_and_term"),
            SIM,
        ],
    },
    {
        "name": "figure8",
        "what": "a leader commits an entry of an earlier term by counting replicas (Raft paper, Figure 8)",
        "file": "src/raft/replication.rs",
        "find": "if index > self.log.committed && self.log.term_or_zero(index) == self.term {",
        "replace": "if index > self.log.committed {",
        "tests": [unit("raft::tests::leader_never_commits_an_earlier_term_entry_by_counting_replicas"), SIM],
    },
    {
        "name": "no-dirty-dedup",
        "what": "ready() visits a group id listed twice (removed and created again) twice",
        "file": "src/multi/node.rs",
        "find": "if !g.dirty {\n                // Listed twice",
        "replace": "if false {\n                // Listed twice",
        "tests": [unit("multi::tests::a_group_removed_and_created_again_before_ready_is_readied_once"), SIM],
    },
    {
        "name": "other-incarnation",
        "what": "a message or a batch of another incarnation of a group is stepped into it",
        "file": "src/multi/node.rs",
        "find": "if incarnation.is_some_and(|i| i != g.incarnation) {",
        "replace": "if incarnation.is_some_and(|i| i != g.incarnation) && false {",
        "also": [
            ("src/multi/heartbeat.rs", "        sum == digest\n", "        let _ = (sum, digest);\n        true\n"),
        ],
        "tests": [
            unit("multi::tests::a_removed_groups_frames_never_reach_a_new_group_with_its_id"),
            SIM,
        ],
    },
    {
        "name": "ack-of-replaced-entries",
        "what": "an acknowledgement made for an older leader leaves after its entries were replaced unpersisted",
        "file": "src/raft/replication.rs",
        "find": "                    self.drop_acks_from(at);",
        "replace": "                    let _ = at;",
        "tests": [unit("raft::tests::acknowledgement_of_entries_replaced_before_the_ready_never_leaves"), SIM],
    },
    {
        "name": "no-unknown-deadline",
        "what": "a proposal that leadership loss leaves undecided is never reported",
        "file": "src/multi/node.rs",
        "find": "        self.report_undecided();\n",
        "replace": "",
        "tests": [unit("multi::tests::a_proposal_whose_slot_was_cut_away_in_an_idle_group_is_reported_unknown"), SIM],
    },
    {
        "name": "rejoined-votes",
        "what": "a replica that rejoined after losing its disk votes (it may have voted in a term it forgot)",
        "file": "src/raft/election.rs",
        "find": "let grant = self.cfg.can_vote && can_vote",
        "replace": "let grant = can_vote",
        "also": [("src/raft/election.rs", "if self.role == Role::Leader || !self.cfg.can_vote {", "if self.role == Role::Leader {")],
        "tests": [unit("raft::tests::a_replica_that_cannot_vote_never_campaigns_nor_grants_a_vote"), SIM],
    },
    {
        "name": "lost-log-not-believed",
        "what": "a leader ignores a rejection below what the follower matched (a follower that lost its log is probed for ever)",
        "file": "src/raft/progress.rs",
        "find": "            self.matched = probe_to;\n            self.become_probe();\n            return true;",
        "replace": "            return false;",
        "tests": [unit("raft::tests::a_follower_that_lost_its_log_is_brought_back_by_its_leader"), SIM],
    },
    {
        "name": "chunk-after-stepdown",
        "what": "a node that no longer leads in the transfer's term sends the next snapshot chunk",
        "file": "src/multi/snapshot.rs",
        "find": "if g.raft.role() != Role::Leader || g.raft.term() != term {",
        "replace": "if false {",
        "tests": [unit("multi::snapshot_tests::a_leader_that_stepped_down_sends_no_more_chunks"), SIM],
    },
    {
        "name": "commit-lowered",
        "what": "a stale commit index in an entries or Commits record lowers the recovered commit",
        "file": "src/storage/wal/tracker.rs",
        "find": "g.hard_state.commit = g.hard_state.commit.max(commit);",
        "replace": "if commit > 0 { g.hard_state.commit = commit; }",
        "tests": [itest("wal", "the_commit_an_entries_record_carries_is_recovered_and_never_lowers_it")],
    },
    {
        "name": "trailing-window-on-disk",
        "what": "the durable log keeps the trailing window below a snapshot (restart reads it, its segments stay)",
        "file": "src/raft/replication.rs",
        "find": "let point = (meta.index, meta.term);",
        "replace": "let point = (compact_to.max(self.log.first_index() - 1), self.log.term_or_zero(compact_to.max(self.log.first_index() - 1)));",
        "tests": [itest("storage_upkeep", "once_every_busy_group_snapshotted_the_wal_is_one_small_segment")],
    },
    {
        "name": "no-fresh-segment",
        "what": "upkeep never moves the few live logs out of segments full of dead entries",
        "file": "src/runtime/disk.rs",
        "find": "if live <= total / 8 && live <= self.segment_bytes / 2",
        "replace": "if false && live <= total / 8 && live <= self.segment_bytes / 2",
        "tests": [itest("storage_upkeep", "once_every_busy_group_snapshotted_the_wal_is_one_small_segment")],
    },
    {
        "name": "leader-counts-undurable",
        "what": "a leader counts itself toward commit before its own entries are durable (its appends leave first)",
        "file": "src/raft/core.rs",
        "find": "    pub(super) fn append_entries(&mut self, entries: Vec<Entry>) {\n        self.log.append(&entries);\n    }",
        "replace": "    pub(super) fn append_entries(&mut self, entries: Vec<Entry>) {\n        let last = self.log.append(&entries);\n        if let Some(me) = self.progress_mut(self.id) {\n            me.maybe_update(last);\n        }\n        self.maybe_commit();\n    }",
        "tests": [unit("raft::tests::a_leader_counts_itself_toward_commit_only_once_its_entries_are_durable"), SIM],
    },
    {
        "name": "entries-pin-frames",
        "what": "small entries stay slices of the frame they came in (memory grows with the snapshot interval)",
        "file": "src/wire/frame.rs",
        "find": "    if data.len() < SHARE_ENTRIES_FROM {",
        "replace": "    if false {",
        "tests": [unit("wire::frame::tests::a_small_entry_decoded_from_a_shared_buffer_does_not_keep_the_buffer_alive")],
    },
    {
        "name": "quiet-without-answers",
        "what": "a leader goes quiet as soon as it sends the quiesce notice, without waiting for its followers' answers",
        "file": "src/multi/quiesce.rs",
        "find": "        if !waiting {",
        "replace": "        if true {",
        "tests": [unit("multi::tests::a_lost_quiesce_notice_is_repeated"), SIM],
    },
    {
        "name": "wake-every-follower-on-loss",
        "what": "a lost peer wakes every follower group here, not only those whose leader was on it",
        "file": "src/multi/quiesce.rs",
        "find": "_ => g.raft.role() != Role::Leader && g.raft.leader() == peer,",
        "replace": "_ => g.raft.role() != Role::Leader,",
        "tests": [unit("multi::tests::when_a_leaders_node_dies_only_its_groups_wake_and_are_led_again"), SIM],
    },
    {
        "name": "no-campaign-stagger",
        "what": "every survivor of a dead leader's node campaigns at once (split votes)",
        "file": "src/multi/quiesce.rs",
        "find": "    1 + settle + jitter + rank as u32 * ((election_ticks / 2).max(1) + settle)",
        "replace": "    let _ = (jitter, rank, election_ticks);\n    1 + settle",
        "tests": [unit("multi::quiesce::tests::exactly_one_survivor_campaigns_first_and_the_first_ones_spread")],
    },
    {
        "name": "read-without-quorum",
        "what": "a leader serves a read without a quorum confirming its leadership (a deposed leader reads stale state)",
        "file": "src/raft/read.rs",
        "find": "        let answered = self.voters.committed_index(|id| {",
        "replace": "        let answered = u64::MAX | self.voters.committed_index(|id| {",
        "tests": [unit("raft::tests::a_read_waits_for_a_quorum_to_answer_a_heartbeat_sent_after_it"), SIM],
    },
    {
        "name": "read-on-an-earlier-round",
        "what": "a read waits for the round already out when it came, whose answers prove nothing about leadership at read time",
        "file": "src/raft/read.rs",
        "find": "        let round = self.read_round + 1;",
        "replace": "        let round = self.read_round;",
        "tests": [unit("raft::tests::answers_to_a_round_sent_before_a_read_do_not_confirm_it")],
    },
    {
        "name": "read-before-first-commit",
        "what": "a new leader serves reads before committing an entry of its term (its commit index may be behind)",
        "file": "src/raft/read.rs",
        "find": "        if !self.reads_waiting() || self.role != Role::Leader || !self.committed_in_term() {",
        "replace": "        if !self.reads_waiting() || self.role != Role::Leader {",
        "tests": [unit("raft::tests::reads_on_a_new_leader_wait_for_its_first_commit"), SIM],
    },
    {
        "name": "batch-answers-drop-the-round",
        "what": "a batch's answer rows do not echo the read round of the rows they answer (batched reads never served)",
        "file": "src/multi/heartbeat.rs",
        "find": "                let round = round_of(&answers.rounds, h.group_id);",
        "replace": "                let round = 0;",
        "tests": [unit("multi::tests::reads_taken_during_an_interval_ride_on_its_batches_and_cost_no_frame")],
    },
    {
        "name": "compact-on-highest-ack",
        "what": "a row goes compact once any later batch was received, though the batch with its full row was lost",
        "file": "src/multi/heartbeat.rs",
        "find": "            && self.acked_bits & (1 << (self.acked - seq)) != 0",
        "replace": "            && self.acked_bits != u64::MAX",
        "tests": [unit("multi::heartbeat::compaction_tests::a_lost_full_row_is_not_covered_by_a_later_batch_received")],
    },
    {
        "name": "compact-row-read-by-a-non-follower",
        "what": "a replica that does not follow the sender reads a compact row as a heartbeat of its own term",
        "file": "src/raft/replication.rs",
        "find": "        if self.role != Role::Follower || self.leader != from {\n            return Ok(None);",
        "replace": "        if false {\n            return Ok(None);",
        "tests": [unit("multi::compact_tests::a_follower_that_does_not_follow_the_sender_asks_for_a_full_row")],
    },
    {
        "name": "removed-voter-never-campaigns",
        "what": "a replica holding its own uncommitted removal never campaigns (a group can be left with no electable replica)",
        "file": "src/raft/membership.rs",
        "find": "|| (self.removed_voter && self.conf_change_pending()))",
        "replace": "|| (false && self.removed_voter && self.conf_change_pending()))",
        "tests": [unit("raft::tests::a_replica_holding_its_own_uncommitted_removal_still_campaigns"), SIM],
    },
    {
        "name": "balancer-retries-abandoned-transfers",
        "what": "the leader balancer tries again at once a transfer its target could not complete",
        "file": "src/multi/balance.rs",
        "find": "wait.map_or(true, |&(at, _)| at <= self.ticks)",
        "replace": "wait.map_or(true, |_| true)",
        "tests": [unit("multi::balance_tests::a_target_that_cannot_take_over_is_not_tried_again_soon")],
    },
    {
        "name": "joiner-told-membership-without-itself",
        "what": "a joiner is told the membership of a snapshot taken before it was added (which reads as its removal)",
        "file": "src/multi/node.rs",
        "find": "    } else if !g.reported_self {",
        "replace": "    } else if false && !g.reported_self {",
        "tests": [unit("multi::node::members_event_tests::a_joiner_is_not_told_a_membership_from_before_its_addition")],
    },
    {
        "name": "removed-groups-events-kept",
        "what": "a removed group's queued events (a restore from recovery) reach a later replica with the same id",
        "file": "src/multi/node.rs",
        "find": "            | Event::MembersChanged { group_id: g, .. } => *g != group_id,",
        "replace": "            | Event::MembersChanged { group_id: g, .. } => *g != group_id || true,",
        "tests": [unit("multi::node::remove_group_tests::a_removed_groups_queued_events_never_reach_a_later_replica_of_its_id")],
    },
    {
        "name": "row-slots-outlive-the-registry",
        "what": "the demux reuses a peer's remembered slots and digest after a group was removed and created again",
        "file": "src/multi/heartbeat.rs",
        "find": "if seen.layout == Some(layout) && seen.ids",
        "replace": "if seen.layout.is_some() && seen.ids",
        "tests": [unit("multi::tests::a_batch_with_the_same_ids_after_a_group_was_created_again_is_checked_again")],
    },
    {
        "name": "fast-path-work-unlisted",
        "what": "a follower's work is not listed for the next pass (what the demux's fast paths may assume never happens)",
        "file": "src/multi/node.rs",
        "find": "    if g.raft.has_ready() && !g.dirty {",
        "replace": "    if g.raft.has_ready() && !g.dirty && g.raft.role() != crate::raft::Role::Follower {",
        "tests": [SIM],
    },
    {
        "name": "balancer-moves-leaders-during-failover",
        "what": "the leader balancer moves leaders among the survivors right after a peer is lost",
        "file": "src/multi/balance.rs",
        "find": "            || self.ticks < self.balancer.hold_until",
        "replace": "            || (false && self.ticks < self.balancer.hold_until)",
        "tests": [unit("multi::balance_tests::a_node_that_is_not_heard_has_no_share")],
    },
    {
        "name": "batch-reader-takes-a-full-row-of-term-0",
        "what": "the hand-written batch reader accepts a full row of term 0, which batch.rs refuses",
        "file": "src/wire/columns.rs",
        "find": "    let mut values = || match terms.varint()? {\n        0 => None,",
        "replace": "    let mut values = || match terms.varint()? {\n        0 if false => None,",
        "tests": [unit("wire::columns::tests::unpacked_columns_unknown_fields_other_bodies_and_invalid_rows_are_left_to_prost")],
    },
    {
        "name": "batch-reader-ignores-extra-values",
        "what": "the hand-written batch reader accepts a term or commit column longer than its rows",
        "file": "src/wire/columns.rs",
        "find": "    if !terms.done() || !commits.done() {",
        "replace": "    if false && (!terms.done() || !commits.done()) {",
        "tests": [unit("wire::columns::tests::what_the_reader_accepts_prost_decodes_the_same")],
    },
    {
        "name": "compact-answers-sent-without-their-ack",
        "what": "answers written without their term go out after the acknowledgement they rely on was withdrawn (a malformed response)",
        "file": "src/multi/heartbeat.rs",
        "find": "            rows.retain(|(h, _)| h.term != 0);",
        "replace": "            rows.retain(|(h, _)| h.term != 0 || true);",
        "tests": [unit("multi::tests::answers_left_compact_are_dropped_when_the_peer_restarted_before_they_left"), SIM],
    },
    {
        "name": "balancer-gives-above-share",
        "what": "the leader balancer hands groups to voters that already lead their share",
        "file": "src/multi/balance.rs",
        "find": ".filter(|&(x, _)| x <= -ONE)",
        "replace": ".filter(|&(x, _)| x <= 1000 * ONE)",
        "tests": [
            unit("multi::balance_tests::five_nodes_three_replicas_balance_without_oscillation"),
            unit("multi::balance_tests::leaders_piled_on_one_node_spread_to_their_share_and_stay"),
        ],
    },
    {
        "name": "balancer-counts-unheard-nodes",
        "what": "the leader balancer gives a node it does not hear a share of the leaderships",
        "file": "src/multi/balance.rs",
        "find": ".filter(|&v| v == me || self.peers.is_heard(v)),",
        "replace": ".filter(|&v| v == me || v != 0),",
        "tests": [unit("multi::balance_tests::a_node_that_is_not_heard_has_no_share")],
    },
    {
        "name": "balancer-moves-groups-with-reads",
        "what": "the leader balancer hands over a group whose read is waiting (the read fails)",
        "file": "src/multi/balance.rs",
        "find": "&& g.raft.pending_reads() == 0",
        "replace": "",
        "tests": [unit("multi::balance_tests::a_group_with_a_read_waiting_is_not_handed_over")],
    },
    {
        "name": "conf-change-before-first-commit",
        "what": "a new leader changes the membership before committing an entry of its term (the known bug of one-server changes)",
        "file": "src/raft/membership.rs",
        "find": "        if self.conf_change_pending() || self.log.term_or_zero(self.log.committed) != self.term {",
        "replace": "        if self.conf_change_pending() {",
        "tests": [unit("raft::tests::one_change_at_a_time_and_none_before_the_leaders_first_commit")],
    },
    {
        "name": "two-conf-changes-in-flight",
        "what": "a leader proposes a second membership change before the first committed",
        "file": "src/raft/membership.rs",
        "find": "        if self.conf_change_pending() || self.log.term_or_zero(self.log.committed) != self.term {",
        "replace": "        if self.log.term_or_zero(self.log.committed) != self.term {",
        "tests": [unit("raft::tests::one_change_at_a_time_and_none_before_the_leaders_first_commit")],
    },
    {
        "name": "overwritten-conf-not-undone",
        "what": "a follower whose append replaces a configuration entry keeps that configuration",
        "file": "src/raft/replication.rs",
        "find": "                let undone = replaced.is_some_and(|at| at <= self.conf_index);",
        "replace": "                let undone = replaced.is_some_and(|at| at <= self.conf_index) && false;",
        "tests": [unit("raft::tests::a_configuration_overwritten_in_the_log_is_undone")],
    },
    {
        "name": "removed-leader-keeps-leading",
        "what": "a leader whose removal committed goes on leading a group it is no member of",
        "file": "src/raft/membership.rs",
        "find": "        if !self.voters.contains(self.id) {\n            self.step_down_removed();",
        "replace": "        if false {\n            self.step_down_removed();",
        "tests": [unit("raft::tests::a_removed_leader_hands_over_once_its_removal_commits"), SIM],
    },
    {
        "name": "removed-follower-never-told",
        "what": "a leader stops sending to a member the moment it is removed, so the removed replica never learns it",
        "file": "src/raft/membership.rs",
        "find": "                if id != self.id && !conf.contains(id) && at < old_progress.len() {",
        "replace": "                if false && id != self.id && !conf.contains(id) && at < old_progress.len() {",
        "tests": [unit("raft::tests::a_removed_follower_learns_of_its_removal")],
    },
    {
        "name": "non-voter-timer-restarts",
        "what": "a replica that never campaigns restarts its election timer each timeout, renewing its lease on a dead leader",
        "file": "src/raft/core.rs",
        "find": "        if !self.cfg.can_vote || !self.voters.contains(self.id) {\n            // A replica that never campaigns",
        "replace": "        if false {\n            // A replica that never campaigns",
        "tests": [unit("raft::tests::a_replica_that_never_campaigns_lets_its_lease_run_out"), SIM],
    },
]


def sh(cmd, env=None, cwd=TREE):
    e = dict(os.environ)
    e["CARGO_TARGET_DIR"] = os.path.join(WORK, "target")
    if env:
        e.update(env)
    p = subprocess.run(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def copy_tree():
    if os.path.exists(TREE):
        shutil.rmtree(TREE)
    rc, out = sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT)
    if rc != 0:
        sys.exit("git ls-files failed:\n" + out)
    for rel in out.split("\n"):
        if not rel or not os.path.isfile(os.path.join(ROOT, rel)):
            continue
        dst = os.path.join(TREE, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dst)


def replace_once(rel, find, replace):
    path = os.path.join(TREE, rel)
    with open(path) as f:
        text = f.read()
    n = text.count(find)
    if n != 1:
        sys.exit(f"mutant text found {n} times in {rel} (expected once): {find!r}")
    with open(path, "w") as f:
        f.write(text.replace(find, replace))
    return text


def run_test(kind, name):
    """Returns (passed, summary line)."""
    if kind in ("unit", "itest"):
        if kind == "unit":
            where, test = ["--lib"], name
        else:
            target, test = name.split("::", 1)
            where = ["--test", target]
        rc, out = sh(["cargo", "test", "--profile", "ci", *where, test, "--", "--exact"])
        if "running 0 tests" in out or " 0 passed; 0 failed" in out:
            sys.exit(f"test {name} does not exist:\n{out[-2000:]}")
    else:
        rc, out = sh(
            ["cargo", "test", "--profile", "ci", "--test", "simulation",
             "simulation_is_safe_and_live", "--", "--nocapture"],
            env={"MUXRAFT_SIM_SEEDS": SIM_SEEDS},
        )
    if rc == 0:
        return True, "passed"
    for line in out.split("\n"):
        if "simulation seed" in line and "failed" in line:
            return False, line.strip()[:150]
    for line in out.split("\n"):
        if "panicked at" in line or "error[" in line:
            return False, line.strip()[:150]
    return False, "failed"


def label(kind, name):
    return f"simulation ({SIM_SEEDS} seeds x 3 modes)" if kind == "sim" else name.split("::")[-1]


def main():
    only = os.environ.get("MUTANTS", "").split(",")
    mutants = [m for m in MUTANTS if any(o in m["name"] for o in only)]
    os.makedirs(WORK, exist_ok=True)
    copy_tree()
    print(f"== the unmutated tree must pass every test used below (tree copy in {TREE})")
    tests = []
    for m in mutants:
        for t in m["tests"]:
            if t not in tests:
                tests.append(t)
    for kind, name in tests:
        ok, summary = run_test(kind, name)
        print(f"   {label(kind, name)}: {summary}")
        if not ok:
            sys.exit("the unmutated tree fails a test: fix that first")
    rows = []
    for m in mutants:
        start = time.time()
        originals = {}
        for rel, find, repl in [(m["file"], m["find"], m["replace"])] + m.get("also", []):
            text = replace_once(rel, find, repl)
            originals.setdefault(rel, text)
        results = []
        for kind, name in m["tests"]:
            ok, summary = run_test(kind, name)
            results.append((label(kind, name), ok, summary))
        for rel, text in originals.items():
            with open(os.path.join(TREE, rel), "w") as f:
                f.write(text)
        caught = any(not ok for _, ok, _ in results)
        rows.append((m, caught, results, time.time() - start))
        print(f"== {m['name']}: {'CAUGHT' if caught else 'MISSED'} ({time.time() - start:.0f} s)")
        for lab, ok, summary in results:
            print(f"   {lab}: {'not caught' if ok else 'caught: ' + summary}")
    print()
    print("| mutant | bug | unit test | simulation |")
    print("|---|---|---|---|")
    for m, caught, results, _ in rows:
        unit_cells = [("caught" if not ok else "passed") + f" ({lab})" for lab, ok, _ in results if not lab.startswith("simulation")]
        sim_cells = [("caught: " + s.split("failed: ")[-1][:90] if not ok else "not caught") for lab, ok, s in results if lab.startswith("simulation")]
        print(f"| {m['name']} | {m['what']} | {'; '.join(unit_cells) or '-'} | {'; '.join(sim_cells) or '-'} |")
    missed = [m["name"] for m, caught, _, _ in rows if not caught]
    if missed:
        sys.exit(f"MISSED: {', '.join(missed)}")
    print(f"\nall {len(rows)} mutants caught")


if __name__ == "__main__":
    main()
