//! Generates the C header from `src/ffi/` with cbindgen.
//!
//! The header is always written to `$OUT_DIR/muxraft.h`; `tests/header.rs`
//! fails when the committed `include/muxraft.h` differs from it. With
//! `MUXRAFT_UPDATE_HEADER=1` (what `make header` sets) the committed copy is
//! rewritten too.

use std::path::PathBuf;

/// Must match `MUXRAFT_ABI_VERSION` in src/ffi/mod.rs: the soname carries it
/// so that programs linked against one ABI never load another.
const ABI_VERSION: u32 = 1;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmuxraft.so.{ABI_VERSION}");
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MUXRAFT_UPDATE_HEADER");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("muxraft.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        // cbindgen follows the `pub mod` lines from here to every file.
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("the C header can be generated from src/ffi");
    bindings.write_to_file(&out);
    if std::env::var_os("MUXRAFT_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(crate_dir.join("include/muxraft.h"));
    }
}
