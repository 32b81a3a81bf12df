//! WAL recovery on arbitrary or mutated segment files.
//!
//! Input: one control byte, then the files. The files are the rest of the
//! input cut before every segment magic ("MUXRWAL\0"), so that a valid
//! segment from the seeds (`fuzz/seeds/wal_recovery`, written by
//! `cargo run --example fuzz_seeds`) stays one file however the fuzzer
//! mutates it; bytes before the first magic are a file of their own.
//! Control bits: 1, before writing, make every record's CRC right (as far
//! as the lengths chain), so that mutations reach past the CRC checks into
//! the record decoders and the replay; 2, name each file by the sequence
//! number in its header (else 1, 2, 3, ... from `control >> 4`).
//!
//! The files go into an in-memory file system ([`MemFs`], the one the
//! crash tests use) and the WAL is opened: recovery must return `Ok` or an
//! error, never panic or allocate unboundedly (run with `-rss_limit_mb`
//! and `-malloc_limit_mb`: a 4 GiB length field must not be allocated).
//! After a successful open, opening again must recover the same groups.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use muxraft::crc32c::crc32c;
use muxraft::storage::{MemFs, Recovered, Wal, WalError, WalFs, WalOptions};

const MAGIC: &[u8] = b"MUXRWAL\0";
const HEADER: usize = 32;
/// len:u32 | crc:u32 | type:u8
const RECORD_HEADER: usize = 9;

fn split_files(data: &[u8]) -> Vec<&[u8]> {
    // A byte compare first: a slice compare at every offset costs a
    // memcmp each, which libFuzzer intercepts (a fifth of the run).
    let mut starts = vec![0];
    for i in 1..data.len().saturating_sub(MAGIC.len() - 1) {
        if data[i] == MAGIC[0] && data[i..].starts_with(MAGIC) {
            starts.push(i);
        }
    }
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| &data[w[0]..w[1]])
        .filter(|f| !f.is_empty())
        .collect()
}

fn fix_crcs(file: &mut [u8]) {
    let mut at = HEADER;
    while at + RECORD_HEADER <= file.len() {
        let len = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + RECORD_HEADER).checked_add(len) else {
            return;
        };
        if end > file.len() {
            return;
        }
        let crc = crc32c(&file[at + 8..end]);
        file[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

fn summary(r: &Recovered) -> String {
    format!("{:?} {:?}", r.groups, r.tombstones)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let fs = MemFs::new(1);
    let dir = Path::new("/wal");
    fs.create_dir_all(dir).unwrap();
    for (i, file) in split_files(rest).into_iter().enumerate() {
        let mut file = file.to_vec();
        if control & 1 != 0 {
            fix_crcs(&mut file);
        }
        let seq = if control & 2 != 0 && file.len() >= 24 && file.starts_with(MAGIC) {
            u64::from_le_bytes(file[16..24].try_into().unwrap())
        } else {
            u64::from(control >> 4) + i as u64 + 1
        };
        let path = dir.join(format!("{seq:020}.wal"));
        // Two files named alike: the later one is dropped.
        if let Ok(mut f) = fs.create_new(&path) {
            f.append(&file).unwrap();
            f.sync_data().unwrap();
        }
    }
    fs.sync_dir(dir).unwrap();
    let first = match Wal::open_with(WalOptions::new(dir), Arc::new(fs.clone())) {
        Ok((wal, recovered)) => {
            drop(wal);
            summary(&recovered)
        }
        Err(_) => return,
    };
    // What recovery kept (it may have cut a torn tail, and it started a
    // segment with a checkpoint) reads back as the same groups. Unless the
    // first open used the last sequence number a WAL writes (segment names
    // and headers are the fuzzer's): then the next open refuses, as
    // documented, before writing anything.
    match Wal::open_with(WalOptions::new(dir), Arc::new(fs)) {
        Ok((_wal, again)) => assert_eq!(first, summary(&again), "the second recovery differs"),
        Err(WalError::Exhausted {
            segment,
            commit,
            max,
            ..
        }) => {
            assert!(segment == max || commit == max, "exhausted below the limit");
        }
        Err(e) => panic!("a recovered WAL fails to open again: {e}"),
    }
});
