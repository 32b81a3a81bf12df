#!/usr/bin/env python3
"""Parse a node's metrics text with a real Prometheus parser.

test_api's test_metrics_text writes node 1's muxraft_node_metrics_text of a
live three-node cluster (3 groups, one proposal committed, per-group series
on) to the file named by MUXRAFT_METRICS_OUT; this script reads it with
prometheus_client's text_string_to_metric_families, the parser of the
official Python client, and checks what a scrape relies on: every sample
carries node="1", the groups gauge, a counter's type and value, the peers'
liveness and the per-group series.

Usage: check_metrics.py FILE
"""

import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("check_metrics: needs prometheus_client "
             "(python3 -m pip install prometheus_client; .ci/run does it)")


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families = {}
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} twice"
        families[family.name] = family
        assert family.documentation, f"{family.name} has no HELP"
        for s in family.samples:
            assert s.labels.get("node") == "1", f"{s.name}{s.labels}: node label"
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"series twice: {key}"
            samples[key] = s.value

    def value(name, **labels):
        labels["node"] = "1"
        return samples[(name, tuple(sorted(labels.items())))]

    # The parser names a counter's family without its _total suffix.
    for name, family in families.items():
        assert name.startswith("muxraft_"), name
        assert family.type in ("counter", "gauge"), (name, family.type)
        if family.type == "counter":
            assert all(s.name == name + "_total" for s in family.samples), name

    assert families["muxraft_groups"].type == "gauge"
    assert value("muxraft_groups") == 3
    assert families["muxraft_proposals"].type == "counter"
    assert families["muxraft_elections_started"].type == "counter"
    assert value("muxraft_elections_started_total") >= 0
    committed = value("muxraft_proposals_committed_total")
    assert committed <= value("muxraft_proposals_total") <= 1
    assert value("muxraft_messages_sent_total", kind="heartbeat_batch") > 0
    assert value("muxraft_wakeups_total", cause="host") >= 0
    assert value("muxraft_peers") == 2
    for peer in ("2", "3"):
        assert value("muxraft_peer_heard", peer=peer) == 1
        assert value("muxraft_peer_epoch", peer=peer) >= 1
    # Per-group series (the test turns them on): one per group.
    roles = [v for (n, l), v in samples.items() if n == "muxraft_group_role"]
    assert len(roles) == 3 and all(r in (0, 1, 2) for r in roles), roles
    assert value("muxraft_group_commit_index", group="1") >= 1
    print(
        f"check_metrics: ok ({len(families)} metrics, {len(samples)} samples, "
        f"{len(text)} bytes, parsed by prometheus_client)"
    )


if __name__ == "__main__":
    main(sys.argv[1])
