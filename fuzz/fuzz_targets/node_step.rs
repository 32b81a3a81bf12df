//! A live node in host-driven mode (the runtime behind `muxraft_step` and
//! `muxraft_tick`) fed arbitrary frames as if from its peers, interleaved
//! with ticks and proposals. Node 1 of cluster 7 hosts groups 1 to 3 with
//! members 1, 2 and 3, in memory.
//!
//! Input: a sequence of operations, each starting with a byte `op`:
//! - `op % 4 == 0`: a tick;
//! - `op % 4 == 1`: a proposal of `op` as one byte to group `1 + (op >> 2) % 3`;
//! - otherwise: a frame stepped as sent by node `[2, 3, 1, 9][(op >> 2) % 4]`,
//!   its length in the next two bytes (big-endian), then its bytes (cut
//!   short by the end of the input).
//!
//! `fuzz/seeds/node_step` holds the traffic a real three-node cluster sent
//! node 1 (written by `cargo run --example fuzz_seeds`).
//!
//! The node must never panic nor poison itself, and every call returns.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use muxraft::multi::{Event, NodeConfig};
use muxraft::runtime::{Error, Host, Runtime, RuntimeConfig};

struct Quiet;

impl Host for Quiet {
    fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {}
    fn event(&self, _ev: &Event) {}
}

fn node() -> Runtime {
    let mut cfg = NodeConfig::new(1);
    cfg.cluster_id = 7;
    let rt = Runtime::new(RuntimeConfig::new(cfg), Arc::new(Quiet)).expect("a node");
    for group in 1..=3 {
        rt.create_group(group, 1, &[1, 2, 3]).expect("a group");
    }
    rt
}

fn check(r: Result<(), Error>) {
    if let Err(e @ (Error::Panicked | Error::Failed)) = r {
        panic!("the node failed: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = node();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 4 {
            0 => check(rt.tick()),
            1 => {
                let group = 1 + u64::from(op >> 2) % 3;
                if let Err(e @ (Error::Panicked | Error::Failed)) =
                    rt.propose(group, bytes::Bytes::copy_from_slice(&[op]))
                {
                    panic!("the node failed: {e}");
                }
            }
            _ => {
                let from = [2, 3, 1, 9][usize::from(op >> 2) % 4];
                let len = match rest {
                    [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                    _ => rest.len(),
                };
                rest = rest.get(2..).unwrap_or(&[]);
                let (frame, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                check(rt.step(from, frame));
            }
        }
    }
});
