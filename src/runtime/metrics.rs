//! The node's counters and gauges as Prometheus text (exposition format
//! 0.0.4), for a broker's `/metrics` handler.
//!
//! Two steps, so that a scrape never holds the node's lock while it formats:
//! [`Runtime::metrics`](super::Runtime::metrics) copies the numbers under
//! the lock into a [`Metrics`], and [`render`] writes the text from that
//! copy. Every sample carries a `node` label; counters end in `_total`.
//!
//! Cardinality: the node-level series are a fixed set (plus two per peer,
//! and a peer is a node of the cluster), so the text is a few KB whatever
//! the number of groups. Per-group series (a `group` label) come only when
//! the node hosts at most `metrics_per_group_max` groups; the default, 0,
//! never renders them, so that 100,000 groups never become 100,000 series
//! by accident. The per-group numbers are the groups' key metrics
//! (`multi/key_metrics.rs`), copied without the node's lock.

use std::fmt::Write;

use crate::multi::KeyMetrics;
use crate::multi::{FrameKind, QuietGauges, Stats, WakeCause};
use crate::raft::Role;
use crate::transport::TransportStats;

use super::DiskStats;

/// The numbers one scrape renders, copied out of the node.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub node_id: u64,
    pub stats: Stats,
    /// Groups hosted now.
    pub groups: u64,
    pub transport: TransportStats,
    pub disk: DiskStats,
    pub quiet: QuietGauges,
    /// Each peer: node id, heard within an election timeout, liveness epoch.
    pub peers: Vec<(u64, bool, u64)>,
    /// One row per hosted group, in id order, when the node hosts at most
    /// `metrics_per_group_max` groups; empty otherwise.
    pub group_rows: Vec<GroupRow>,
}

/// One group replica's gauges, for the per-group series: its key metrics
/// (read without the node's lock; `log_bytes` is the log's payload in
/// memory) and, with a data directory, the bytes of its log in the
/// write-ahead log (an estimate).
#[derive(Clone, Copy, Debug)]
pub struct GroupRow {
    pub group_id: u64,
    pub metrics: KeyMetrics,
    pub log_bytes_disk: u64,
}

/// The text a Prometheus server scrapes: `# HELP` and `# TYPE` once per
/// metric, then its samples, each labelled with the node id.
pub fn render(m: &Metrics) -> String {
    let mut w = Writer {
        out: String::with_capacity(8192 + m.peers.len() * 256 + m.group_rows.len() * 900),
        node: m.node_id,
    };
    let s = &m.stats;

    // Traffic, by kind of frame.
    w.by_kind(
        "messages_sent_total",
        "Frames handed out to be sent, by kind.",
        |k| s.sent_of(k).messages,
    );
    w.by_kind(
        "bytes_sent_total",
        "Bytes of the frames handed out to be sent, by kind.",
        |k| s.sent_of(k).bytes,
    );
    w.by_kind(
        "messages_received_total",
        "Frames stepped into the node (accepted ones), by kind.",
        |k| s.received_of(k).messages,
    );
    w.by_kind(
        "bytes_received_total",
        "Bytes of the frames stepped into the node, by kind.",
        |k| s.received_of(k).bytes,
    );
    w.counter(
        "group_heartbeats_batched_total",
        "Per-group heartbeats carried inside heartbeat batches sent.",
        s.group_heartbeats_batched,
    );
    w.counter(
        "group_heartbeat_responses_batched_total",
        "Per-group heartbeat answers carried inside batch responses sent.",
        s.group_heartbeat_responses_batched,
    );
    w.counter(
        "compact_rows_sent_total",
        "Heartbeat rows sent compact (unchanged since a full row).",
        s.compact_rows_sent,
    );
    w.counter(
        "compact_rows_refused_total",
        "Compact heartbeat rows received that this node could not use.",
        s.compact_rows_refused,
    );
    w.counter(
        "frames_rejected_total",
        "Frames refused: malformed, too large, another cluster or node.",
        s.frames_rejected,
    );
    w.counter(
        "messages_dropped_total",
        "Messages for a group not hosted here, or from a non-member.",
        s.messages_dropped,
    );
    w.counter(
        "incarnation_mismatches_total",
        "Messages and heartbeat rows dropped for another incarnation of a group.",
        s.incarnation_mismatches,
    );
    w.counter(
        "batches_dropped_incarnation_total",
        "Heartbeat batches and responses dropped whole: incarnation digest mismatch.",
        s.batches_dropped_incarnation,
    );
    w.counter(
        "batches_with_incarnations_total",
        "Heartbeat batches sent naming each row's incarnation.",
        s.batches_with_incarnations,
    );

    // Elections and leadership.
    w.counter(
        "elections_started_total",
        "Elections started by this node's replicas.",
        s.elections_started,
    );
    w.counter(
        "leader_changes_total",
        "Times a replica here saw its group's leader change.",
        s.leader_changes,
    );

    // Proposals, reads and backpressure.
    w.counter("proposals_total", "Proposals accepted.", s.proposals);
    w.counter(
        "proposals_committed_total",
        "Proposals committed.",
        s.proposals_committed,
    );
    w.counter(
        "proposals_failed_total",
        "Proposals failed for certain (another entry committed in their place).",
        s.proposals_failed,
    );
    w.counter(
        "proposals_unknown_total",
        "Proposals whose outcome is unknown (leadership lost, group removed, node stopped).",
        s.proposals_unknown,
    );
    w.counter(
        "proposals_refused_busy_total",
        "Proposals refused with MUXRAFT_BUSY (backpressure).",
        s.proposals_refused_busy,
    );
    w.gauge(
        "pending_proposals",
        "Proposals accepted here and not yet decided, over all groups.",
        s.pending_proposals,
    );
    w.gauge(
        "unsynced_bytes",
        "Payload bytes of entries not yet durable here, over all groups.",
        s.unsynced_bytes,
    );
    w.counter(
        "entries_applied_total",
        "Entries applied.",
        s.entries_applied,
    );
    w.counter("reads_total", "Reads (read index) taken.", s.reads);
    w.counter(
        "reads_served_total",
        "Reads confirmed and applied (read_done with MUXRAFT_OK).",
        s.reads_served,
    );
    w.counter(
        "reads_failed_total",
        "Reads reported with another status.",
        s.reads_failed,
    );
    w.counter(
        "reads_refused_busy_total",
        "Reads refused with MUXRAFT_BUSY.",
        s.reads_refused_busy,
    );
    w.gauge(
        "pending_reads",
        "Reads taken and not yet reported.",
        s.pending_reads,
    );
    w.counter(
        "read_rounds_sent_total",
        "Heartbeat rows sent carrying a read round.",
        s.read_rounds_sent,
    );
    w.counter(
        "read_rounds_answered_total",
        "Answer rows received echoing a read round.",
        s.read_rounds_answered,
    );

    // Groups and quiescence.
    w.gauge("groups", "Groups hosted.", m.groups);
    w.gauge(
        "groups_led",
        "Groups this node leads now (leader balance across nodes).",
        s.groups_led,
    );
    w.counter(
        "transfers_started_total",
        "Leadership transfers this node started.",
        s.transfers_started,
    );
    w.counter(
        "balance_transfers_total",
        "Leadership transfers the leader balancer started (of transfers_started_total).",
        s.balance_transfers,
    );
    w.gauge(
        "groups_awake",
        "Groups hosted here that are awake (ticked, with heartbeat rows).",
        m.quiet.groups_awake,
    );
    w.gauge(
        "groups_quiesced",
        "Groups hosted here that are quiet (no ticks, no rows).",
        m.quiet.groups_quiesced,
    );
    w.counter(
        "quiesced_total",
        "Times a group here went quiet.",
        s.quiesced,
    );
    w.counter(
        "quiesce_notices_sent_total",
        "Quiesce notices sent in heartbeat rows.",
        s.quiesce_notices_sent,
    );
    w.family(
        "wakeups_total",
        Kind::Counter,
        "Times a quiet group here woke up, by cause.",
    );
    for c in WakeCause::ALL {
        w.sample(
            "wakeups_total",
            &[("cause", c.name())],
            s.wakeups[c as usize],
        );
    }

    // Node-level liveness.
    w.gauge(
        "peers",
        "Nodes hosting replicas of groups hosted here.",
        m.quiet.peers,
    );
    w.gauge(
        "peers_heard",
        "Peers heard within the last election timeout.",
        m.quiet.peers_heard,
    );
    w.counter(
        "peers_lost_total",
        "Times a peer was not heard for an election timeout.",
        s.peers_lost,
    );
    w.counter(
        "peers_returned_total",
        "Times a lost peer was heard again.",
        s.peers_returned,
    );
    w.counter(
        "peers_restarted_total",
        "Times a peer was seen to restart (a new session).",
        s.peers_restarted,
    );
    w.family(
        "peer_heard",
        Kind::Gauge,
        "1 if a frame from the peer arrived within the last election timeout, else 0.",
    );
    for &(peer, heard, _) in &m.peers {
        w.sample_id("peer_heard", "peer", peer, u64::from(heard));
    }
    w.family(
        "peer_epoch",
        Kind::Gauge,
        "The peer's liveness epoch: one more each time it is lost or restarts.",
    );
    for &(peer, _, epoch) in &m.peers {
        w.sample_id("peer_epoch", "peer", peer, epoch);
    }

    // Snapshots.
    w.counter(
        "snapshots_taken_total",
        "Snapshots the host took.",
        s.snapshots_taken,
    );
    w.counter(
        "snapshots_installed_total",
        "Snapshots installed from a leader.",
        s.snapshots_installed,
    );
    w.counter(
        "snapshot_transfers_started_total",
        "Snapshot transfers started as a leader.",
        s.snapshot_transfers_started,
    );
    w.counter(
        "snapshot_transfers_failed_total",
        "Snapshot transfers abandoned for lack of progress.",
        s.snapshot_transfers_failed,
    );
    w.counter(
        "snapshot_crc_failures_total",
        "Snapshots received whole whose CRC did not match.",
        s.snapshot_crc_failures,
    );

    // Storage (with a data directory; 0 otherwise).
    let d = &m.disk;
    w.gauge(
        "wal_segments",
        "Write-ahead log segment files.",
        d.wal_segments,
    );
    w.gauge(
        "wal_bytes",
        "Bytes of the write-ahead log segments.",
        d.wal_bytes,
    );
    w.counter(
        "wal_segments_deleted_total",
        "Write-ahead log segment files deleted.",
        d.wal_segments_deleted,
    );
    w.counter(
        "wal_logs_rewritten_total",
        "Small logs rewritten forward to free an old segment.",
        d.logs_rewritten,
    );
    w.counter(
        "wal_bytes_rewritten_total",
        "Bytes of the logs rewritten forward.",
        d.bytes_rewritten,
    );
    w.gauge("snapshot_files", "Snapshot files.", d.snapshot_files);
    w.gauge(
        "snapshot_file_bytes",
        "Bytes of the snapshot files.",
        d.snapshot_bytes,
    );

    // The TCP transport (embedded mode; 0 otherwise).
    let t = &m.transport;
    w.counter(
        "transport_connections_established_total",
        "Connections established with peers (handshakes completed, either side).",
        t.connections_established,
    );
    w.counter(
        "transport_reconnects_total",
        "Connections established to a peer connected to before.",
        t.reconnects,
    );
    w.counter(
        "transport_handshakes_refused_total",
        "Handshakes this node refused.",
        t.handshakes_refused,
    );
    w.counter(
        "transport_handshakes_rejected_by_peer_total",
        "Handshakes the peer refused.",
        t.handshakes_rejected_by_peer,
    );
    w.counter(
        "transport_handshakes_refused_auth_total",
        "Handshakes this node refused for the cluster secret (another secret, or none on one side).",
        t.auth_refused,
    );
    w.counter(
        "transport_handshakes_rejected_by_peer_auth_total",
        "Handshakes the peer refused for the cluster secret.",
        t.auth_rejected_by_peer,
    );
    w.counter(
        "transport_handshakes_refused_tls_total",
        "Handshakes this node refused for TLS (a certificate not from the cluster CA or not for the address dialed, or TLS on one side only).",
        t.tls_refused,
    );
    w.counter(
        "transport_handshakes_rejected_by_peer_tls_total",
        "Handshakes the peer refused for TLS.",
        t.tls_rejected_by_peer,
    );
    w.counter(
        "transport_dial_failures_total",
        "Dials that failed before a handshake.",
        t.dial_failures,
    );
    w.counter(
        "transport_frames_sent_total",
        "Frames written whole to a socket.",
        t.frames_sent,
    );
    w.counter(
        "transport_bytes_sent_total",
        "Bytes written to sockets (length prefixes included).",
        t.bytes_sent,
    );
    w.counter(
        "transport_frames_received_total",
        "Frames read from sockets and delivered.",
        t.frames_received,
    );
    w.counter(
        "transport_bytes_received_total",
        "Bytes of the frames read from sockets.",
        t.bytes_received,
    );
    w.counter(
        "transport_frames_dropped_total",
        "Frames dropped before being written (queue full, too large, bad address).",
        t.frames_dropped,
    );
    w.counter(
        "transport_oversized_refused_total",
        "Connections closed because a peer announced a frame over the limit.",
        t.oversized_refused,
    );
    w.counter(
        "transport_malformed_refused_total",
        "Connections closed because a peer announced a zero-length frame.",
        t.malformed_refused,
    );
    w.gauge(
        "transport_queued_bytes",
        "Bytes waiting in the transport's queues.",
        t.queued_bytes,
    );

    if !m.group_rows.is_empty() {
        render_groups(&mut w, &m.group_rows);
    }
    w.out
}

/// The per-group series: one family at a time, a sample per group.
fn render_groups(w: &mut Writer, rows: &[GroupRow]) {
    type Field = fn(&GroupRow) -> u64;
    let families: [(&str, &str, Field); 6] = [
        (
            "group_role",
            "This replica's role: 0 follower, 1 candidate, 2 leader (as muxraft_role).",
            |r| match r.metrics.role {
                Role::Follower => 0,
                Role::PreCandidate | Role::Candidate => 1,
                Role::Leader => 2,
            },
        ),
        ("group_term", "The replica's current term.", |r| {
            r.metrics.term
        }),
        (
            "group_commit_index",
            "Highest index known committed.",
            |r| r.metrics.commit,
        ),
        ("group_applied_index", "Highest index applied.", |r| {
            r.metrics.applied
        }),
        (
            "group_last_index",
            "Highest index in the replica's log.",
            |r| r.metrics.last_index,
        ),
        (
            "group_snapshot_index",
            "Index of the latest snapshot (0: none).",
            |r| r.metrics.snapshot_index,
        ),
    ];
    for (name, help, field) in families {
        w.family(name, Kind::Gauge, help);
        for r in rows {
            w.sample_id(name, "group", r.group_id, field(r));
        }
    }
    let name = "group_log_bytes";
    w.family(
        name,
        Kind::Gauge,
        "Payload bytes of the group's log in memory, and in the write-ahead log (an estimate).",
    );
    for r in rows {
        w.sample_group_where(name, r.group_id, "memory", r.metrics.log_bytes);
        w.sample_group_where(name, r.group_id, "disk", r.log_bytes_disk);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Appends families and samples; every name gets the `muxraft_` prefix and
/// every sample the `node` label.
struct Writer {
    out: String,
    node: u64,
}

impl Writer {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP muxraft_{name} {help}");
        let _ = writeln!(self.out, "# TYPE muxraft_{name} {kind}");
    }

    /// A sample with labels whose values need no escaping (static names).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.out, "muxraft_{name}{{node=\"{}\"", self.node);
        for (k, v) in labels {
            let _ = write!(self.out, ",{k}=\"{v}\"");
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    /// A sample with one numeric label (`peer`, `group`).
    fn sample_id(&mut self, name: &str, label: &str, id: u64, value: u64) {
        let _ = writeln!(
            self.out,
            "muxraft_{name}{{node=\"{}\",{label}=\"{id}\"}} {value}",
            self.node
        );
    }

    fn sample_group_where(&mut self, name: &str, group: u64, place: &str, value: u64) {
        let _ = writeln!(
            self.out,
            "muxraft_{name}{{node=\"{}\",group=\"{group}\",where=\"{place}\"}} {value}",
            self.node
        );
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    fn by_kind(&mut self, name: &str, help: &str, value: impl Fn(FrameKind) -> u64) {
        self.family(name, Kind::Counter, help);
        for k in FrameKind::ALL {
            self.sample(name, &[("kind", k.name())], value(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A scrape whose every number is as long as a u64 can be: the largest
    /// text a node with these peers and groups renders.
    fn widest(peers: u64, groups: u64) -> Metrics {
        let max = u64::MAX;
        let mut stats = Stats::default();
        for c in stats.sent.iter_mut().chain(stats.received.iter_mut()) {
            c.messages = max;
            c.bytes = max;
        }
        stats.wakeups = [max; WakeCause::COUNT];
        let metrics = KeyMetrics {
            incarnation: max,
            role: Role::Leader,
            term: max,
            leader: max,
            commit: max,
            applied: max,
            last_index: max,
            snapshot_index: max,
            log_bytes: max,
            voters: max,
            membership_index: max,
            quiesced: true,
        };
        Metrics {
            node_id: max,
            stats,
            groups: max,
            peers: (0..peers).map(|i| (max - i, true, max)).collect(),
            group_rows: (0..groups)
                .map(|i| GroupRow {
                    group_id: max - i,
                    metrics,
                    log_bytes_disk: max,
                })
                .collect(),
            ..Metrics::default()
        }
    }

    /// Each sample's value by name and labels (sorted by label name).
    type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// One sample line: its name, labels and value, or why it does not parse.
    fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
        let open = line.find('{').ok_or("no labels")?;
        let close = line.rfind('}').ok_or("labels not closed")?;
        let name = &line[..open];
        let mut labels = BTreeMap::new();
        for pair in line[open + 1..close].split(',') {
            let (k, v) = pair.split_once('=').ok_or("label without =")?;
            if !valid_name(k) || k.contains(':') {
                return Err(format!("bad label name {k:?}"));
            }
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or("label value not quoted")?;
            if v.contains(['"', '\\', '\n']) {
                return Err("label value needs escaping".into());
            }
            if labels.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("label {k} twice"));
            }
        }
        let value = line[close + 1..]
            .strip_prefix(' ')
            .ok_or("no space before the value")?;
        let value: f64 = value.parse().map_err(|_| format!("bad value {value:?}"))?;
        Ok((name.to_string(), labels, value))
    }

    /// Check the text as a Prometheus server would read it, and return each
    /// sample's value by name and labels.
    fn check_exposition(text: &str) -> Samples {
        assert!(text.ends_with('\n'), "the text ends with a newline");
        let mut helped = BTreeSet::new();
        let mut typed = BTreeMap::new();
        let mut samples = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has text");
                assert!(valid_name(name), "{line}");
                assert!(!help.is_empty() && !help.contains('\\'), "{line}");
                assert!(helped.insert(name.to_string()), "HELP twice: {line}");
                current = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert_eq!(current.as_deref(), Some(name), "TYPE after its HELP");
                assert!(kind == "counter" || kind == "gauge", "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name} ends in _total");
                }
                assert!(
                    typed.insert(name.to_string(), kind).is_none(),
                    "TYPE twice: {line}"
                );
            } else {
                let (name, labels, value) =
                    parse_sample(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                assert!(valid_name(&name), "{line}");
                assert!(name.starts_with("muxraft_"), "{line}");
                assert_eq!(current.as_deref(), Some(name.as_str()), "grouped: {line}");
                assert!(typed.contains_key(&name), "typed: {line}");
                assert!(labels.contains_key("node"), "node label: {line}");
                let key = (name, labels.into_iter().collect::<Vec<_>>());
                assert!(samples.insert(key, value).is_none(), "series twice: {line}");
            }
        }
        assert_eq!(helped.len(), typed.len());
        samples
    }

    fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        samples.get(&(name.to_string(), labels)).copied()
    }

    #[test]
    fn every_line_parses_and_every_metric_has_help_and_type_once() {
        let mut m = widest(2, 3);
        m.node_id = 7;
        m.stats.proposals = 5;
        m.stats.sent[FrameKind::HeartbeatBatch as usize].messages = 11;
        m.stats.wakeups[WakeCause::PeerLost as usize] = 3;
        m.peers = vec![(2, true, 1), (3, false, 4)];
        m.group_rows[0].group_id = 42;
        m.group_rows[0].metrics.role = Role::Follower;
        let samples = check_exposition(&render(&m));
        let node = ("node", "7");
        assert_eq!(
            value(&samples, "muxraft_proposals_total", &[node]),
            Some(5.0)
        );
        let batch = [node, ("kind", "heartbeat_batch")];
        assert_eq!(
            value(&samples, "muxraft_messages_sent_total", &batch),
            Some(11.0)
        );
        let lost = [node, ("cause", "peer_lost")];
        assert_eq!(value(&samples, "muxraft_wakeups_total", &lost), Some(3.0));
        assert_eq!(
            value(&samples, "muxraft_peer_heard", &[node, ("peer", "3")]),
            Some(0.0)
        );
        assert_eq!(
            value(&samples, "muxraft_peer_epoch", &[node, ("peer", "3")]),
            Some(4.0)
        );
        let g42 = [node, ("group", "42")];
        assert_eq!(value(&samples, "muxraft_group_role", &g42), Some(0.0));
        let disk = [node, ("group", "42"), ("where", "disk")];
        assert!(value(&samples, "muxraft_group_log_bytes", &disk).is_some());
    }

    #[test]
    fn without_group_rows_there_is_no_group_series() {
        let text = render(&widest(2, 0));
        check_exposition(&text);
        assert!(!text.contains("group=\""));
        assert!(!text.contains("muxraft_group_role"));
    }

    /// The bound the header states for the default switch (no per-group
    /// series): with every number at its widest, the text stays under
    /// 20 KiB plus 200 bytes per peer, however many groups the node hosts.
    #[test]
    fn node_level_text_is_bounded_whatever_the_group_count() {
        let base = render(&widest(0, 0)).len();
        let with_peers = render(&widest(10, 0)).len();
        let per_peer = (with_peers - base) / 10;
        assert!(base < 20 * 1024, "{base} bytes");
        assert!(per_peer <= 200, "{per_peer} bytes per peer");
        // Per-group series: at most about 1 KiB per group at widest.
        let per_group = (render(&widest(0, 10)).len() - base) / 10;
        assert!(per_group <= 1024, "{per_group} bytes per group");
        println!(
            "metrics text at widest: {base} bytes + {per_peer} per peer + {per_group} per group"
        );
    }

    #[test]
    fn counters_of_a_fresh_node_are_zero_and_gauges_render() {
        let m = Metrics {
            node_id: 1,
            groups: 100_000,
            ..Metrics::default()
        };
        let samples = check_exposition(&render(&m));
        assert_eq!(
            value(&samples, "muxraft_groups", &[("node", "1")]),
            Some(100_000.0)
        );
        assert_eq!(
            value(
                &samples,
                "muxraft_elections_started_total",
                &[("node", "1")]
            ),
            Some(0.0)
        );
    }
}
