//! The committed C header must be exactly what the build generates, and its
//! ABI version must match the library's.

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/muxraft.h"));
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/muxraft.h"))
            .expect("include/muxraft.h is committed");
    assert!(
        generated == committed,
        "include/muxraft.h is stale: run `make header` and commit it"
    );
}

#[test]
fn header_abi_version_matches_library() {
    let committed = include_str!("../include/muxraft.h");
    let line = format!(
        "#define MUXRAFT_ABI_VERSION {}",
        muxraft::ffi::MUXRAFT_ABI_VERSION
    );
    assert!(committed.contains(&line), "header lacks `{line}`");
    assert_eq!(
        muxraft::ffi::muxraft_abi_version(),
        muxraft::ffi::MUXRAFT_ABI_VERSION
    );
}
