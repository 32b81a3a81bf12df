//! The C ABI: the only place with `extern "C"` and raw pointers.
//!
//! One module per C concept: `status.rs` (status codes and their names, the
//! thread-local last error, the one mapping from errors to statuses, the
//! panic boundary), `config.rs`, `callbacks.rs`, `log.rs` (the log callback: `tracing`
//! events to the host), `node.rs` (the node handle
//! and every call on it), `stats.rs`, `metrics.rs` (the counters and gauges
//! as Prometheus text), and `sized.rs` (how structs that start
//! with `struct_size` are read and written, so that they can grow). Each exported function
//! checks its pointers, catches panics, and maps errors to a status; the
//! logic lives in the Rust API (`multi`, `runtime`).
//!
//! `include/muxraft.h` is generated from this module by `build.rs` with
//! cbindgen; the doc comments here are the header's documentation.

#![allow(non_camel_case_types)]
// Every exported function's doc comment states its pointer contract in the
// words a C caller reads in the header; a Rust-style `# Safety` heading
// would only repeat it.
#![allow(clippy::missing_safety_doc)]

pub mod callbacks;
pub mod config;
pub mod log;
pub mod membership;
pub mod metrics;
pub mod node;
pub(crate) mod os;
mod sized;
pub mod stats;
pub mod status;

/// Version of the C ABI. Bumped on any incompatible change to a function or
/// struct in `muxraft.h`; it is also the shared library's soname version.
/// Adding a field at the end of a struct that starts with `struct_size`, or
/// a new function, is compatible and does not bump it.
pub const MUXRAFT_ABI_VERSION: u32 = 2;

/// The ABI version this library implements (`MUXRAFT_ABI_VERSION` of the
/// header it was built with). A program can compare it with the header's
/// `MUXRAFT_ABI_VERSION` at start-up to detect a mismatched library.
#[no_mangle]
pub extern "C" fn muxraft_abi_version() -> u32 {
    MUXRAFT_ABI_VERSION
}

/// The library version as a static NUL-terminated string ("0.1.0").
/// Never NULL; owned by the library; do not free.
#[no_mangle]
pub extern "C" fn muxraft_version() -> *const std::os::raw::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
