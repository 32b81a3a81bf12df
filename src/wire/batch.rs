//! The columnar codec for heartbeat batches and their responses.
//!
//! A batch carries one row per group: (group id, term, commit) for a
//! heartbeat, (group id, term) for a response. Rows are stored as columns,
//! each a packed run of varints, so that the per-row cost is just the varint
//! bytes of the values: no tag, length or sub-message header per group. A
//! row-per-message encoding would spend 2 bytes of header per group plus a
//! tag byte per field, roughly doubling the size of a batch of small values.
//!
//! Group ids are sorted and delta-encoded: the first id is absolute and each
//! following one is stored as the difference from its predecessor. A node's
//! group ids are often dense or regularly spaced, so the deltas are small
//! (one varint byte below 128) even when the ids themselves are large.
//! Terms and commits stay absolute: they are unrelated from one group to the
//! next, and for a long-lived cluster they are small anyway.
//!
//! ## Ordering and duplicates
//!
//! The encoder accepts rows in any order: when the input is not already
//! strictly ascending by group id it sorts a local list of references (the
//! caller's slice is untouched). Two rows for the same group in one batch
//! are a bug in the caller: it is caught by a `debug_assert!` in debug
//! builds, and in release builds the first row for a group is kept, the
//! others are dropped and a warning is logged, so that the encoder never
//! emits a batch the peer would reject as a whole.
//!
//! The decoder accepts only what the encoder emits: equal column lengths,
//! every delta after the first > 0 (strictly increasing ids, so no
//! duplicates), and no id past `u64::MAX`. Decoded rows are in ascending
//! group-id order. Any violation rejects the whole batch: it cannot come
//! from a correct peer, and a half-applied batch would be harder to reason
//! about than a dropped one (the next interval sends a fresh batch).

use super::proto;
use super::WireError;
use crate::multi::{
    GroupHeartbeat, GroupHeartbeatResponse, HeartbeatBatch, HeartbeatBatchResponse, Incarnations,
};

/// Encodes heartbeats as columns, sorted by group id.
pub(super) fn encode_heartbeats(batch: &HeartbeatBatch) -> proto::HeartbeatBatch {
    let rows = &batch.rows;
    let mut out = proto::HeartbeatBatch {
        group_deltas: Vec::with_capacity(rows.len()),
        terms: Vec::with_capacity(rows.len()),
        commits: Vec::with_capacity(rows.len()),
        incarnation_digest: 0,
        incarnations: Vec::new(),
        quiesce_deltas: encode_subset(&batch.quiesce),
        session: batch.session,
        read_group_deltas: Vec::new(),
        read_rounds: Vec::new(),
        seq: batch.seq,
        full_deltas: Vec::new(),
        leader_excess: batch.leader_excess,
    };
    (out.read_group_deltas, out.read_rounds) = encode_rounds(&batch.rounds);
    // A numbered batch lists its full rows; the others are compact.
    let compact = batch.seq != 0;
    let mut full = DeltaEncoder::default();
    let per_row = match &batch.incarnations {
        Incarnations::Digest(d) => {
            out.incarnation_digest = *d;
            None
        }
        Incarnations::PerRow(incs) => {
            debug_assert_eq!(incs.len(), rows.len(), "one incarnation per row");
            out.incarnations.reserve(rows.len());
            Some(incs)
        }
    };
    let mut ids = DeltaEncoder::default();
    let dropped = for_each_ascending(
        rows,
        |b| b.group_id,
        |i, b| {
            out.group_deltas.push(ids.delta(b.group_id));
            if !compact || b.term != 0 {
                if compact {
                    out.full_deltas.push(full.delta(b.group_id));
                }
                out.terms.push(b.term);
                out.commits.push(b.commit);
            }
            if let Some(incs) = per_row {
                out.incarnations.push(incs.get(i).copied().unwrap_or(0));
            }
        },
    );
    report_duplicates(dropped, "heartbeat batch");
    out
}

/// Decodes and validates a heartbeat batch; rows come out in ascending
/// group-id order.
pub(super) fn decode_heartbeats(batch: proto::HeartbeatBatch) -> Result<HeartbeatBatch, WireError> {
    let proto::HeartbeatBatch {
        group_deltas,
        terms,
        commits,
        incarnation_digest,
        incarnations,
        quiesce_deltas,
        session,
        read_group_deltas,
        read_rounds,
        seq,
        full_deltas,
        leader_excess,
    } = batch;
    if seq == 0 && !full_deltas.is_empty() {
        return Err(WireError::Malformed(
            "heartbeat batch: full rows listed in a batch without a number".into(),
        ));
    }
    // The rows, with their values filled in below once checked.
    let mut ids = DeltaDecoder::default();
    let mut rows = Vec::with_capacity(group_deltas.len());
    for &delta in &group_deltas {
        rows.push(GroupHeartbeat {
            group_id: ids.next(delta)?,
            term: 0,
            commit: 0,
        });
    }
    // Which rows carry a term and a commit: all, or those listed.
    let full = if seq == 0 {
        None
    } else {
        Some(decode_subset(
            "full rows",
            &full_deltas,
            rows.iter().map(|r| r.group_id),
        )?)
    };
    let with_values = full.as_ref().map_or(rows.len(), Vec::len);
    check_columns(
        "heartbeat batch",
        &[
            ("full rows", with_values),
            ("terms", terms.len()),
            ("commits", commits.len()),
        ],
    )?;
    if !incarnations.is_empty() {
        check_columns(
            "heartbeat batch",
            &[
                ("group_deltas", rows.len()),
                ("incarnations", incarnations.len()),
            ],
        )?;
    }
    if terms.contains(&0) {
        return Err(WireError::Malformed(
            "heartbeat batch: a full row of term 0".into(),
        ));
    }
    let values = terms.into_iter().zip(commits);
    match &full {
        // Every row full: one value each, checked.
        None => {
            for (row, (term, commit)) in rows.iter_mut().zip(values) {
                (row.term, row.commit) = (term, commit);
            }
        }
        Some(full) => {
            let mut values = values;
            let mut next_full = full.iter().copied().peekable();
            for row in rows.iter_mut() {
                if next_full.next_if_eq(&row.group_id).is_some() {
                    (row.term, row.commit) =
                        values.next().expect("one value per full row, checked");
                }
            }
        }
    }
    let incarnations = if incarnations.is_empty() {
        Incarnations::Digest(incarnation_digest)
    } else {
        Incarnations::PerRow(incarnations)
    };
    let quiesce = decode_subset("quiesce", &quiesce_deltas, rows.iter().map(|r| r.group_id))?;
    let rounds = decode_rounds(
        &read_group_deltas,
        read_rounds,
        rows.iter().map(|r| r.group_id),
    )?;
    Ok(HeartbeatBatch {
        rows,
        incarnations,
        quiesce,
        session,
        rounds,
        seq,
        leader_excess,
    })
}

/// Encodes heartbeat responses as columns, sorted by group id.
pub(super) fn encode_responses(response: &HeartbeatBatchResponse) -> proto::HeartbeatBatchResponse {
    let rows = &response.rows;
    let mut out = proto::HeartbeatBatchResponse {
        group_deltas: Vec::with_capacity(rows.len()),
        terms: Vec::with_capacity(rows.len()),
        incarnation_digest: response.incarnation_digest,
        incarnation_mismatch: response.incarnation_mismatch,
        quiesced_deltas: encode_subset(&response.quiesced),
        session: response.session,
        read_group_deltas: Vec::new(),
        read_rounds: Vec::new(),
        ack_seq: response.ack_seq,
        ack_bits: response.ack_bits,
        explicit_deltas: Vec::new(),
        need_full_deltas: encode_subset(&response.need_full),
        // Nearly always empty: an empty list allocates nothing, and an
        // empty column is not written.
        rejoined_deltas: encode_subset(&response.rejoined),
    };
    (out.read_group_deltas, out.read_rounds) = encode_rounds(&response.rounds);
    // With a batch number, only rows whose term differs from the row they
    // answer carry it.
    let compact = response.ack_seq != 0;
    let mut explicit = DeltaEncoder::default();
    let mut ids = DeltaEncoder::default();
    let dropped = for_each_ascending(
        rows,
        |r| r.group_id,
        |_, r| {
            out.group_deltas.push(ids.delta(r.group_id));
            if !compact || r.term != 0 {
                if compact {
                    out.explicit_deltas.push(explicit.delta(r.group_id));
                }
                out.terms.push(r.term);
            }
        },
    );
    report_duplicates(dropped, "heartbeat batch response");
    out
}

/// Decodes and validates a heartbeat batch response; rows come out in
/// ascending group-id order.
pub(super) fn decode_responses(
    response: proto::HeartbeatBatchResponse,
) -> Result<HeartbeatBatchResponse, WireError> {
    let proto::HeartbeatBatchResponse {
        group_deltas,
        terms,
        incarnation_digest,
        incarnation_mismatch,
        quiesced_deltas,
        session,
        read_group_deltas,
        read_rounds,
        ack_seq,
        ack_bits,
        explicit_deltas,
        need_full_deltas,
        rejoined_deltas,
    } = response;
    if ack_seq == 0 && !explicit_deltas.is_empty() {
        return Err(WireError::Malformed(
            "heartbeat batch response: explicit terms listed without a batch number".into(),
        ));
    }
    // The rows, with their terms filled in below once checked.
    let mut ids = DeltaDecoder::default();
    let mut rows = Vec::with_capacity(group_deltas.len());
    for &delta in &group_deltas {
        rows.push(GroupHeartbeatResponse {
            group_id: ids.next(delta)?,
            term: 0,
        });
    }
    let explicit = if ack_seq == 0 {
        None
    } else {
        Some(decode_subset(
            "explicit terms",
            &explicit_deltas,
            rows.iter().map(|r| r.group_id),
        )?)
    };
    let with_terms = explicit.as_ref().map_or(rows.len(), Vec::len);
    check_columns(
        "heartbeat batch response",
        &[("rows with a term", with_terms), ("terms", terms.len())],
    )?;
    if terms.contains(&0) {
        return Err(WireError::Malformed(
            "heartbeat batch response: an explicit term 0".into(),
        ));
    }
    match &explicit {
        // Every row has a term, checked.
        None => {
            for (row, term) in rows.iter_mut().zip(terms) {
                row.term = term;
            }
        }
        Some(explicit) => {
            let mut terms = terms.into_iter();
            let mut next_explicit = explicit.iter().copied().peekable();
            for row in rows.iter_mut() {
                if next_explicit.next_if_eq(&row.group_id).is_some() {
                    row.term = terms.next().expect("one term per listed row, checked");
                }
            }
        }
    }
    let need_full = decode_ids("need full", &need_full_deltas)?;
    let quiesced = decode_subset(
        "quiesced",
        &quiesced_deltas,
        rows.iter().map(|r| r.group_id),
    )?;
    let rounds = decode_rounds(
        &read_group_deltas,
        read_rounds,
        rows.iter().map(|r| r.group_id),
    )?;
    let rejoined = decode_subset(
        "rejoined",
        &rejoined_deltas,
        rows.iter().map(|r| r.group_id),
    )?;
    Ok(HeartbeatBatchResponse {
        rows,
        incarnation_digest,
        incarnation_mismatch,
        quiesced,
        session,
        rounds,
        ack_seq,
        ack_bits,
        need_full,
        rejoined,
    })
}

/// Delta-codes a set of group ids (a subset of a batch's rows), sorted and
/// without duplicates whatever the caller's order.
pub(super) fn encode_subset(ids: &[u64]) -> Vec<u64> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut enc = DeltaEncoder::default();
    sorted.into_iter().map(|id| enc.delta(id)).collect()
}

/// Decodes a delta-coded list of group ids (strictly ascending).
fn decode_ids(what: &str, deltas: &[u64]) -> Result<Vec<u64>, WireError> {
    let mut dec = DeltaDecoder::default();
    deltas
        .iter()
        .map(|&d| {
            dec.next(d)
                .map_err(|e| WireError::Malformed(format!("{what}: {e}")))
        })
        .collect()
}

/// Encodes (group, read round) pairs as a delta-coded subset of the rows'
/// groups and a column of rounds: sorted by group, one per group (its
/// highest round).
pub(super) fn encode_rounds(rounds: &[(u64, u64)]) -> (Vec<u64>, Vec<u64>) {
    if rounds.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut sorted = rounds.to_vec();
    sorted.sort_unstable();
    // Sorted by (group, round): the last of each group has its highest.
    sorted.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
    let mut enc = DeltaEncoder::default();
    sorted.iter().map(|&(g, r)| (enc.delta(g), r)).unzip()
}

/// Decodes the read rounds of a batch: groups as a subset of the rows'
/// (`rows`, ascending), one round per group.
fn decode_rounds(
    group_deltas: &[u64],
    rounds: Vec<u64>,
    rows: impl Iterator<Item = u64>,
) -> Result<Vec<(u64, u64)>, WireError> {
    if group_deltas.len() != rounds.len() {
        return Err(WireError::Malformed(format!(
            "read rounds: {} groups but {} rounds",
            group_deltas.len(),
            rounds.len()
        )));
    }
    let groups = decode_subset("read rounds", group_deltas, rows)?;
    Ok(groups.into_iter().zip(rounds).collect())
}

/// Decodes a delta-coded subset of a batch's group ids (`rows`, ascending):
/// strictly ascending, and every id one of the rows'.
fn decode_subset(
    what: &str,
    deltas: &[u64],
    mut rows: impl Iterator<Item = u64>,
) -> Result<Vec<u64>, WireError> {
    let mut dec = DeltaDecoder::default();
    let mut out = Vec::with_capacity(deltas.len());
    for &delta in deltas {
        let id = dec.next(delta)?;
        if !rows.any(|r| r == id) {
            return Err(WireError::Malformed(format!(
                "{what}: group {id} has no row in the batch"
            )));
        }
        out.push(id);
    }
    Ok(out)
}

/// Calls `emit` once per distinct id, in strictly ascending id order, with
/// the row's position in `items`, and returns how many rows were dropped as
/// duplicates (the first row of each id in input order is kept).
///
/// Already-sorted input, the common case since the multi layer sorts, is
/// walked in place without allocating.
fn for_each_ascending<T>(
    items: &[T],
    id: impl Fn(&T) -> u64,
    mut emit: impl FnMut(usize, &T),
) -> usize {
    if items.windows(2).all(|w| id(&w[0]) < id(&w[1])) {
        items.iter().enumerate().for_each(|(i, t)| emit(i, t));
        return 0;
    }
    let mut sorted: Vec<(usize, &T)> = items.iter().enumerate().collect();
    // Stable, so the first row of a duplicated id stays first and is kept.
    sorted.sort_by_key(|(_, item)| id(item));
    sorted.dedup_by_key(|(_, item)| id(item));
    sorted.iter().for_each(|&(i, item)| emit(i, item));
    items.len() - sorted.len()
}

fn report_duplicates(dropped: usize, what: &str) {
    debug_assert_eq!(dropped, 0, "{what}: duplicate group ids are a caller bug");
    if dropped > 0 {
        tracing::warn!(dropped, "{what}: dropped rows with duplicate group ids");
    }
}

/// Turns strictly ascending group ids into deltas.
#[derive(Default)]
struct DeltaEncoder {
    prev: Option<u64>,
}

impl DeltaEncoder {
    /// Callers feed ids in strictly ascending order, so the subtraction
    /// cannot underflow and the delta is never 0 after the first id.
    fn delta(&mut self, id: u64) -> u64 {
        let delta = match self.prev {
            None => id,
            Some(prev) => id - prev,
        };
        self.prev = Some(id);
        delta
    }
}

/// Turns deltas back into group ids, rejecting anything the encoder cannot
/// have produced.
#[derive(Default)]
struct DeltaDecoder {
    prev: Option<u64>,
    row: usize,
}

impl DeltaDecoder {
    fn next(&mut self, delta: u64) -> Result<u64, WireError> {
        let row = self.row;
        self.row += 1;
        let id = match self.prev {
            // The first id is absolute; any value is a valid group id.
            None => delta,
            Some(_) if delta == 0 => {
                return Err(WireError::Malformed(format!(
                    "group ids not strictly increasing: zero delta at row {row}"
                )))
            }
            Some(prev) => prev.checked_add(delta).ok_or_else(|| {
                WireError::Malformed(format!("group id overflows u64 at row {row}"))
            })?,
        };
        self.prev = Some(id);
        Ok(id)
    }
}

/// Every column must have one value per row.
fn check_columns(what: &str, columns: &[(&str, usize)]) -> Result<(), WireError> {
    let Some(&(first_name, rows)) = columns.first() else {
        return Ok(());
    };
    match columns.iter().find(|&&(_, len)| len != rows) {
        None => Ok(()),
        Some(&(name, len)) => Err(WireError::Malformed(format!(
            "{what}: column {name} has {len} values but {first_name} has {rows}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode_frame;
    use super::*;
    use crate::multi::{incarnation_digest, incarnation_row_hash, Body, Envelope};
    use prost::Message as _;

    fn beat(group_id: u64, term: u64, commit: u64) -> GroupHeartbeat {
        GroupHeartbeat {
            group_id,
            term,
            commit,
        }
    }

    fn batch(rows: Vec<GroupHeartbeat>) -> HeartbeatBatch {
        HeartbeatBatch {
            rows,
            incarnations: Incarnations::Digest(0),
            ..Default::default()
        }
    }

    fn answers(rows: Vec<GroupHeartbeatResponse>) -> HeartbeatBatchResponse {
        HeartbeatBatchResponse {
            rows,
            ..Default::default()
        }
    }

    fn assert_malformed<T: std::fmt::Debug>(result: Result<T, WireError>, needle: &str) {
        match result {
            Err(WireError::Malformed(msg)) => {
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
            }
            other => panic!("expected Malformed({needle:?}), got {other:?}"),
        }
    }

    #[test]
    fn sorted_batch_round_trips_with_delta_encoded_ids() {
        let beats = vec![beat(5, 1, 10), beat(7, 2, 20), beat(1000, 3, 30)];
        let encoded = encode_heartbeats(&batch(beats.clone()));
        assert_eq!(encoded.group_deltas, [5, 2, 993]);
        assert_eq!(decode_heartbeats(encoded), Ok(batch(beats)));
    }

    #[test]
    fn unsorted_batch_round_trips_sorted_without_touching_the_input() {
        let beats = vec![beat(30, 3, 300), beat(10, 1, 100), beat(20, 2, 200)];
        let before = beats.clone();
        let decoded = decode_heartbeats(encode_heartbeats(&batch(beats.clone())));
        assert_eq!(
            decoded,
            Ok(batch(vec![
                beat(10, 1, 100),
                beat(20, 2, 200),
                beat(30, 3, 300)
            ]))
        );
        assert_eq!(beats, before);
    }

    #[test]
    fn per_row_incarnations_follow_their_rows_when_sorted() {
        let unsorted = HeartbeatBatch {
            rows: vec![beat(30, 3, 300), beat(10, 1, 100), beat(20, 2, 200)],
            incarnations: Incarnations::PerRow(vec![333, 111, 222]),
            ..Default::default()
        };
        let decoded = decode_heartbeats(encode_heartbeats(&unsorted)).unwrap();
        assert_eq!(
            decoded.rows,
            vec![beat(10, 1, 100), beat(20, 2, 200), beat(30, 3, 300)]
        );
        assert_eq!(
            decoded.incarnations,
            Incarnations::PerRow(vec![111, 222, 333])
        );
    }

    #[test]
    fn digest_and_mismatch_flag_round_trip() {
        let b = HeartbeatBatch {
            rows: vec![beat(1, 1, 1)],
            incarnations: Incarnations::Digest(u64::MAX - 3),
            ..Default::default()
        };
        assert_eq!(decode_heartbeats(encode_heartbeats(&b)), Ok(b));
        let r = HeartbeatBatchResponse {
            rows: vec![GroupHeartbeatResponse {
                group_id: 4,
                term: 2,
            }],
            incarnation_digest: 0xDEAD_BEEF,
            incarnation_mismatch: true,
            ..Default::default()
        };
        assert_eq!(decode_responses(encode_responses(&r)), Ok(r));
    }

    /// The rejoined marks are a subset of the rows: sent in any order,
    /// with duplicates, they arrive once each, ascending.
    #[test]
    fn rejoined_marks_round_trip_ascending_and_once_each() {
        let answer = |group_id, term| GroupHeartbeatResponse { group_id, term };
        let r = HeartbeatBatchResponse {
            rows: vec![answer(9, 1), answer(3, 1), answer(700, 2)],
            rejoined: vec![700, 3, 700],
            ..Default::default()
        };
        let encoded = encode_responses(&r);
        assert_eq!(encoded.rejoined_deltas, [3, 697]);
        let decoded = decode_responses(encoded).unwrap();
        assert_eq!(decoded.rejoined, [3, 700]);
        // None: no column.
        let encoded = encode_responses(&answers(r.rows));
        assert!(encoded.rejoined_deltas.is_empty());
        assert_eq!(decode_responses(encoded).unwrap().rejoined, [0u64; 0]);
    }

    // Mutation: the rejoined column decoded with `decode_ids` (any ids):
    // a mark for a group without a row is accepted.
    #[test]
    fn decode_rejects_rejoined_marks_that_are_not_rows_or_not_ascending() {
        let response = |rejoined_deltas| proto::HeartbeatBatchResponse {
            group_deltas: vec![10, 2],
            terms: vec![1, 1],
            rejoined_deltas,
            ..Default::default()
        };
        assert_eq!(
            decode_responses(response(vec![10, 2])).map(|r| r.rejoined),
            Ok(vec![10, 12])
        );
        assert_malformed(
            decode_responses(response(vec![11])),
            "rejoined: group 11 has no row",
        );
        assert_malformed(
            decode_responses(response(vec![10, 2, 1])),
            "rejoined: group 13 has no row",
        );
        assert_malformed(decode_responses(response(vec![10, 0])), "zero delta");
        // An id past `u64::MAX`.
        assert_malformed(
            decode_responses(response(vec![12, u64::MAX - 1])),
            "overflows",
        );
    }

    /// One stale row always changes the digest, whatever the other rows:
    /// the row hash is a bijection of the incarnation for a given group.
    #[test]
    fn one_row_of_another_incarnation_always_changes_the_digest() {
        let pairs: Vec<(u64, u64)> = (0..200).map(|g| (g, g * 31 + 7)).collect();
        let d = incarnation_digest(pairs.iter().copied());
        let mut reversed = pairs.clone();
        reversed.reverse();
        assert_eq!(d, incarnation_digest(reversed), "order does not matter");
        for stale in [0usize, 57, 199] {
            for other in [0u64, 1, u64::MAX, pairs[stale].1 + 1] {
                if other == pairs[stale].1 {
                    continue;
                }
                let mut p = pairs.clone();
                p[stale].1 = other;
                assert_ne!(incarnation_digest(p), d, "row {stale} as {other}");
            }
        }
        assert_ne!(
            incarnation_row_hash(1, 2),
            incarnation_row_hash(2, 1),
            "group and incarnation are not interchangeable"
        );
    }

    #[test]
    fn unsorted_response_round_trips_sorted() {
        let responses = [
            GroupHeartbeatResponse {
                group_id: u64::MAX,
                term: 9,
            },
            GroupHeartbeatResponse {
                group_id: 0,
                term: 1,
            },
        ];
        let decoded = decode_responses(encode_responses(&answers(responses.to_vec())));
        assert_eq!(decoded, Ok(answers(vec![responses[1], responses[0]])));
    }

    #[test]
    fn empty_batches_round_trip() {
        assert_eq!(
            decode_heartbeats(encode_heartbeats(&batch(vec![]))),
            Ok(batch(vec![]))
        );
        assert_eq!(
            decode_responses(encode_responses(&answers(vec![]))),
            Ok(answers(vec![]))
        );
    }

    #[test]
    fn extreme_ids_and_values_round_trip() {
        let beats = vec![
            beat(0, u64::MAX, u64::MAX),
            beat(1, 1, 0),
            beat(u64::MAX - 1, 1, 1),
            beat(u64::MAX, 2, 2),
        ];
        assert_eq!(
            decode_heartbeats(encode_heartbeats(&batch(beats.clone()))),
            Ok(batch(beats))
        );
    }

    #[test]
    fn duplicate_ids_keep_the_first_row_in_input_order() {
        let rows = [(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        let mut kept = Vec::new();
        let dropped = for_each_ascending(&rows, |r| r.0, |_, r| kept.push(*r));
        assert_eq!(kept, [(1, 'b'), (2, 'd'), (3, 'a')]);
        assert_eq!(dropped, 2);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "duplicate group ids are a caller bug")]
    fn duplicate_ids_are_a_caller_bug_caught_in_debug_builds() {
        encode_heartbeats(&batch(vec![beat(1, 1, 1), beat(1, 2, 2)]));
    }

    #[test]
    fn decode_rejects_zero_delta_after_the_first_id() {
        let batch = proto::HeartbeatBatch {
            group_deltas: vec![4, 0],
            terms: vec![1, 1],
            commits: vec![1, 1],
            ..Default::default()
        };
        assert_malformed(decode_heartbeats(batch), "not strictly increasing");
        let response = proto::HeartbeatBatchResponse {
            group_deltas: vec![4, 1, 0],
            terms: vec![1, 1, 1],
            ..Default::default()
        };
        assert_malformed(decode_responses(response), "zero delta at row 2");
    }

    #[test]
    fn decode_accepts_zero_as_the_first_group_id() {
        let batch = proto::HeartbeatBatch {
            group_deltas: vec![0, 1],
            terms: vec![1, 1],
            commits: vec![1, 1],
            ..Default::default()
        };
        assert_eq!(
            decode_heartbeats(batch).map(|b| b.rows),
            Ok(vec![beat(0, 1, 1), beat(1, 1, 1)])
        );
    }

    #[test]
    fn decode_rejects_group_id_delta_overflow() {
        let batch = proto::HeartbeatBatch {
            group_deltas: vec![u64::MAX - 1, 1, 1],
            terms: vec![1, 1, 1],
            commits: vec![1, 1, 1],
            ..Default::default()
        };
        assert_malformed(decode_heartbeats(batch), "overflows u64 at row 2");
        let response = proto::HeartbeatBatchResponse {
            group_deltas: vec![2, u64::MAX],
            terms: vec![1, 1],
            ..Default::default()
        };
        assert_malformed(decode_responses(response), "overflows");
    }

    #[test]
    fn decode_rejects_mismatched_column_lengths() {
        let short_commits = proto::HeartbeatBatch {
            group_deltas: vec![1, 1],
            terms: vec![1, 1],
            commits: vec![1],
            ..Default::default()
        };
        assert_malformed(decode_heartbeats(short_commits), "column commits");
        let long_terms = proto::HeartbeatBatch {
            group_deltas: vec![1],
            terms: vec![1, 1],
            commits: vec![1],
            ..Default::default()
        };
        assert_malformed(decode_heartbeats(long_terms), "column terms");
        let response = proto::HeartbeatBatchResponse {
            group_deltas: vec![1, 1],
            terms: vec![],
            ..Default::default()
        };
        assert_malformed(decode_responses(response), "column terms");
        let short_incarnations = proto::HeartbeatBatch {
            group_deltas: vec![1, 1],
            terms: vec![1, 1],
            commits: vec![1, 1],
            incarnations: vec![7],
            ..Default::default()
        };
        assert_malformed(decode_heartbeats(short_incarnations), "column incarnations");
    }

    /// Whole-frame bytes (length prefix and envelope included) divided by
    /// the number of groups, for 1000 groups with terms < 128 and commits
    /// < 16384: 1 byte of delta + 1 of term + 2 of commit per heartbeat, 1 +
    /// 1 per response, plus a fixed envelope overhead spread over the batch.
    #[test]
    fn thousand_group_batch_costs_at_most_6_bytes_per_group_and_3_per_response() {
        const GROUPS: u64 = 1000;
        for (spacing, label) in [(1, "ids 1..=1000"), (5, "every 5th id")] {
            let beats: Vec<GroupHeartbeat> = (1..=GROUPS)
                .map(|i| beat(i * spacing, 1 + i % 127, 16_383 - i * 7))
                .collect();
            let responses: Vec<GroupHeartbeatResponse> = beats
                .iter()
                .map(|b| GroupHeartbeatResponse {
                    group_id: b.group_id,
                    term: b.term,
                })
                .collect();
            let frame = |body| Envelope {
                from: 3,
                to: 7,
                body,
            };
            // A real digest: 8 bytes for the whole batch, not per group.
            let digest = incarnation_digest(beats.iter().map(|b| (b.group_id, 1)));
            let request = encode_frame(
                0x5eed_c0ffee,
                &frame(Body::HeartbeatBatch(HeartbeatBatch {
                    rows: beats.clone(),
                    incarnations: Incarnations::Digest(digest),
                    ..Default::default()
                })),
            )
            .len();
            let response = encode_frame(
                0x5eed_c0ffee,
                &frame(Body::HeartbeatBatchResponse(HeartbeatBatchResponse {
                    rows: responses.clone(),
                    incarnation_digest: digest,
                    incarnation_mismatch: false,
                    ..Default::default()
                })),
            )
            .len();
            let request_per_group = request as f64 / GROUPS as f64;
            let response_per_group = response as f64 / GROUPS as f64;
            println!(
                "{label}: request {request} B = {request_per_group:.3} B/group \
                 (columns alone {} B), response {response} B = {response_per_group:.3} B/group \
                 (columns alone {} B)",
                encode_heartbeats(&batch(beats.clone())).encoded_len(),
                encode_responses(&answers(responses.clone())).encoded_len(),
            );
            assert!(request_per_group <= 6.0, "{label}: {request_per_group}");
            assert!(response_per_group <= 3.0, "{label}: {response_per_group}");
        }
    }
}
