//! The node's counters and gauges as Prometheus text, into the caller's
//! buffer (the rendering is `runtime/metrics.rs`).

use std::os::raw::c_char;

use super::node::{muxraft_node, with_node};
use super::status::*;

/// Render the node's counters and gauges in the Prometheus text exposition
/// format (version 0.0.4), for a `/metrics` endpoint: `# HELP` and `# TYPE`
/// once per metric, names prefixed `muxraft_`, counters ending in `_total`,
/// and a `node` label with this node's id on every sample. It holds every
/// counter and gauge of `muxraft_stats` (messages and bytes by `kind` of
/// frame, elections, leader changes, proposals and their outcomes, reads,
/// backpressure, quiescence and wakeups by `cause`, snapshots, write-ahead
/// log, transport), each peer's liveness (`muxraft_peer_heard` and
/// `muxraft_peer_epoch` with a `peer` label) and, only while the node hosts
/// at most `config.metrics_per_group_max` groups (default 0: never),
/// per-group gauges with a `group` label.
///
/// Size: without per-group series the text does not grow with the number
/// of groups: about 15 KB for a node of a 3-node cluster (measured: 15,044
/// bytes with 1,000 groups, 15,048 with 100,000), and at most 20 KiB plus
/// 200 bytes per peer whatever the counters hold. Each group with per-group
/// series adds about 420 bytes (at most 1 KiB): 430 KB for 1,000 groups.
///
/// Writes the text and a terminating NUL to `buf` when the `len` bytes
/// there hold them, and sets `*needed` (if not NULL) to the bytes they take,
/// NUL included. Call it with NULL and 0 to ask for the size; the counters
/// move between two calls, so allocate a little more (say `*needed + 1024`)
/// and call again if it is still too small. Numbers are copied under the
/// node's lock and formatted after it is released. Answers after
/// `muxraft_node_stop` too (the node as it was when it stopped).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_TOO_LARGE` when `len` is smaller than
/// `*needed` (then only an empty string is written, at `buf[0]`, when `len`
/// is not 0); `MUXRAFT_INVALID_ARGUMENT` (NULL node, NULL `buf` with a
/// non-zero `len`); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_metrics_text(
    node: *mut muxraft_node,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> muxraft_status {
    with_node(node, |r| {
        if buf.is_null() && len > 0 {
            return fail(MUXRAFT_INVALID_ARGUMENT, "buf is NULL but len is not 0");
        }
        let text = r.metrics_text();
        let need = text.len() + 1;
        if !needed.is_null() {
            // SAFETY: non-NULL pointer to the caller's size_t (contract).
            unsafe { needed.write(need) };
        }
        if len < need {
            if len > 0 {
                // SAFETY: non-NULL (checked above) with `len` > 0 writable
                // bytes (contract).
                unsafe { buf.write(0) };
            }
            return fail(
                MUXRAFT_TOO_LARGE,
                format!("the metrics text needs {need} bytes, buf holds {len}"),
            );
        }
        // SAFETY: `buf` holds `len` >= text.len() + 1 writable bytes
        // (contract), and does not overlap the String.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
        }
        MUXRAFT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::{muxraft_config, muxraft_config_init_sized};
    use super::super::node::{muxraft_group_create, muxraft_node_free, muxraft_node_new};
    use super::*;
    use std::mem::size_of;

    fn node_with(groups: u64, per_group_max: u64) -> *mut muxraft_node {
        let mut config = muxraft_config::default();
        // SAFETY: a live struct of that size.
        unsafe { muxraft_config_init_sized(&mut config, size_of::<muxraft_config>()) };
        config.node_id = 1;
        config.metrics_per_group_max = per_group_max;
        let mut node = std::ptr::null_mut();
        // SAFETY: valid config and out pointer; NULL callbacks are allowed.
        let s = unsafe { muxraft_node_new(&config, std::ptr::null(), &mut node) };
        assert_eq!(s, MUXRAFT_OK);
        let members = [1u64, 2, 3];
        for g in 0..groups {
            // SAFETY: a live node and 3 readable ids.
            let s = unsafe { muxraft_group_create(node, g, 1, members.as_ptr(), 3) };
            assert_eq!(s, MUXRAFT_OK);
        }
        node
    }

    /// The text of a node, through the two calls a C caller makes.
    fn text_of(node: *mut muxraft_node) -> String {
        let mut needed = 0usize;
        // SAFETY: a live node; NULL and 0 ask for the size.
        let s = unsafe { muxraft_node_metrics_text(node, std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!(s, MUXRAFT_TOO_LARGE);
        let mut buf = vec![0x55u8; needed];
        let mut again = 0usize;
        // SAFETY: `buf` holds `needed` writable bytes.
        let s = unsafe {
            muxraft_node_metrics_text(node, buf.as_mut_ptr().cast(), buf.len(), &mut again)
        };
        assert_eq!(s, MUXRAFT_OK);
        assert_eq!(again, needed);
        assert_eq!(buf.pop(), Some(0), "NUL-terminated");
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_buffer_too_small_gets_an_empty_string_and_the_size_needed() {
        let node = node_with(1, 0);
        let text = text_of(node);
        assert!(text.contains("muxraft_groups{node=\"1\"} 1\n"), "{text}");
        assert!(text.contains("muxraft_peer_heard{node=\"1\",peer=\"3\"} 1\n"));
        let mut buf = vec![0x55u8; text.len()]; // one byte short: no room for the NUL
        let mut needed = 0usize;
        // SAFETY: `buf` holds `buf.len()` writable bytes.
        let s = unsafe {
            muxraft_node_metrics_text(node, buf.as_mut_ptr().cast(), buf.len(), &mut needed)
        };
        assert_eq!(s, MUXRAFT_TOO_LARGE);
        assert_eq!(needed, text.len() + 1);
        assert_eq!(buf[0], 0);
        assert!(buf[1..].iter().all(|&b| b == 0x55), "nothing else written");
        // SAFETY: a live node; NULL buf with a non-zero len is refused.
        let s = unsafe { muxraft_node_metrics_text(node, std::ptr::null_mut(), 8, &mut needed) };
        assert_eq!(s, MUXRAFT_INVALID_ARGUMENT);
        // SAFETY: NULL node is refused.
        let s = unsafe {
            muxraft_node_metrics_text(std::ptr::null_mut(), std::ptr::null_mut(), 0, &mut needed)
        };
        assert_eq!(s, MUXRAFT_INVALID_ARGUMENT);
        // SAFETY: a node from muxraft_node_new, freed once.
        unsafe { muxraft_node_free(node) };
    }

    #[test]
    fn per_group_series_only_up_to_the_switch() {
        let few = node_with(3, 3);
        let text = text_of(few);
        assert!(
            text.contains("muxraft_group_term{node=\"1\",group=\"2\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("muxraft_group_log_bytes{node=\"1\",group=\"0\",where=\"disk\"}"));
        let many = node_with(4, 3);
        assert!(!text_of(many).contains("group=\""));
        // SAFETY: nodes from muxraft_node_new, freed once.
        unsafe {
            muxraft_node_free(few);
            muxraft_node_free(many);
        }
    }

    /// With the default switch, the text of a node with 1,000 groups is the
    /// size of one with a single group (a few digits apart).
    #[test]
    fn the_default_text_does_not_grow_with_the_groups() {
        let one = node_with(1, 0);
        let thousand = node_with(1000, 0);
        let (a, b) = (text_of(one).len(), text_of(thousand).len());
        assert!(b - a < 8, "{a} vs {b} bytes");
        assert!(b < 20 * 1024, "{b} bytes");
        let with_rows = node_with(1000, 1000);
        let c = text_of(with_rows).len();
        println!("metrics text at 1,000 groups: {b} bytes; with per-group series {c} bytes");
        // SAFETY: nodes from muxraft_node_new, freed once.
        unsafe {
            muxraft_node_free(one);
            muxraft_node_free(thousand);
            muxraft_node_free(with_rows);
        }
    }

    /// The figure the header states for 100,000 groups (a fraction of a
    /// second: groups without ticks cost little).
    #[test]
    fn metrics_text_at_100k_groups() {
        let node = node_with(100_000, 0);
        let n = text_of(node).len();
        println!("metrics text at 100,000 groups: {n} bytes");
        assert!(n < 20 * 1024, "{n} bytes");
        // SAFETY: a node from muxraft_node_new, freed once.
        unsafe { muxraft_node_free(node) };
    }
}
