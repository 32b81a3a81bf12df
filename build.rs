//! Generates the C header from `src/ffi/` with cbindgen.
//!
//! The header is always written to `$OUT_DIR/muxraft.h`; `tests/header.rs`
//! fails when the committed `include/muxraft.h` differs from it. With
//! `MUXRAFT_UPDATE_HEADER=1` (what `make header` sets) the committed copy is
//! rewritten too.

use std::path::PathBuf;

/// `MUXRAFT_ABI_VERSION` as src/ffi/mod.rs defines it: the one place it is
/// written. The header's define and the shared library's soname carry it,
/// so that programs linked against one ABI never load another.
fn abi_version(crate_dir: &std::path::Path) -> u32 {
    let src = std::fs::read_to_string(crate_dir.join("src/ffi/mod.rs")).expect("src/ffi/mod.rs");
    src.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("pub const MUXRAFT_ABI_VERSION: u32 = ")?
                .strip_suffix(';')?
                .parse()
                .ok()
        })
        .expect("src/ffi/mod.rs defines `pub const MUXRAFT_ABI_VERSION: u32 = N;`")
}

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let abi = abi_version(&crate_dir);
    // The soname is set only when the Makefile builds the library it
    // installs (MUXRAFT_SONAME=1): a plain `cargo build --release` leaves a
    // libmuxraft.so that programs link and load under that very name, rather
    // than one whose soname (libmuxraft.so.N) names a file that exists only
    // once `make` created it.
    println!("cargo:rerun-if-env-changed=MUXRAFT_SONAME");
    let soname = std::env::var_os("MUXRAFT_SONAME").is_some_and(|v| v == "1");
    if soname && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmuxraft.so.{abi}");
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MUXRAFT_UPDATE_HEADER");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("muxraft.h");
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    config.after_includes = Some(format!("\n#define MUXRAFT_ABI_VERSION {abi}\n"));
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
