//! Structs that grow: every struct crossing the C ABI starts with
//! `uint32_t struct_size`, the size of the struct as the *program* was
//! compiled. A program built against an older header passes a smaller
//! struct; the library reads only the bytes it holds (later fields take
//! their defaults) and writes only the bytes it holds (later fields are
//! not written). So fields can be added at the end without a new soname.

use std::mem::size_of;

/// The `struct_size` a caller declared, checked against the smallest size
/// the library accepts for this struct (`min`: through its first field
/// after `struct_size`), and capped at the size this library knows.
///
/// # Safety
/// `ptr` must be non-NULL and point to at least 4 readable bytes (the
/// `struct_size` field every such struct starts with).
unsafe fn declared_size<T>(ptr: *const T, min: usize, what: &str) -> Result<usize, String> {
    // SAFETY: the caller guarantees the first field, a u32, is readable;
    // read_unaligned needs no alignment of the caller's struct.
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if size < min {
        return Err(format!(
            "{what}.struct_size is {size}: set it to sizeof({what}) (the _init function does)"
        ));
    }
    Ok(size.min(size_of::<T>()))
}

/// Check a caller's `struct_size` (see [`declared_size`]).
///
/// # Safety
/// `ptr` must be non-NULL and point to at least 4 readable bytes.
pub(crate) unsafe fn check_size<T>(ptr: *const T, min: usize, what: &str) -> Result<(), String> {
    // SAFETY: forwarded contract.
    unsafe { declared_size(ptr, min, what) }.map(|_| ())
}

/// Read a struct the caller passed: the bytes its `struct_size` covers, over
/// `defaults` for the rest. `fix` runs on the raw bytes before they become a
/// `T` (to normalize fields such as `bool` that not every bit pattern of).
///
/// # Safety
/// `ptr` must be non-NULL and point to `struct_size` readable bytes.
/// Every bit pattern of every field of `T` must be valid once `fix` ran.
pub(crate) unsafe fn read_sized<T: Copy>(
    ptr: *const T,
    defaults: T,
    min: usize,
    what: &str,
    fix: impl FnOnce(&mut [u8]),
) -> Result<T, String> {
    // SAFETY: non-NULL, struct_size readable (caller's contract).
    let n = unsafe { declared_size(ptr, min, what) }?;
    let mut value = defaults;
    {
        // SAFETY: `value` is a live T; viewing its bytes is fine for the
        // Copy, repr(C) structs this is used with.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut((&mut value as *mut T).cast::<u8>(), size_of::<T>())
        };
        // SAFETY: the caller's struct holds at least `n` bytes (its
        // struct_size, capped at ours); the regions do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), bytes.as_mut_ptr(), n) };
        fix(bytes);
    }
    Ok(value)
}

/// Initialize the caller's struct of `size` bytes (the size its program was
/// compiled with) from `value`: the first min(`size`, ours) bytes, with
/// `struct_size` set to that. A NULL pointer or a size too small to hold
/// `struct_size` is ignored.
///
/// # Safety
/// `out` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn init_sized<T: Copy>(out: *mut T, size: usize, value: T) {
    let n = size.min(size_of::<T>());
    if out.is_null() || n < size_of::<u32>() {
        return;
    }
    let mut value = value;
    // SAFETY: `value` is a live T whose first field is the u32 struct_size.
    unsafe {
        (&mut value as *mut T)
            .cast::<u32>()
            .write_unaligned(n as u32)
    };
    // SAFETY: the caller's struct holds at least `n` writable bytes (its
    // declared size, capped at ours); `value` is a T of at least `n` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping((&value as *const T).cast::<u8>(), out.cast::<u8>(), n)
    };
}

/// Write `value` into the caller's struct, only the bytes its `struct_size`
/// covers; its `struct_size` is left as it was.
///
/// # Safety
/// `out` must be non-NULL and point to `struct_size` writable bytes.
pub(crate) unsafe fn write_sized<T: Copy>(
    out: *mut T,
    value: &T,
    min: usize,
    what: &str,
) -> Result<(), String> {
    // SAFETY: non-NULL with a readable struct_size (caller's contract).
    let n = unsafe { declared_size(out, min, what) }?;
    // Skip the struct_size field itself (the first 4 bytes): the caller's
    // value stays.
    let skip = size_of::<u32>();
    // SAFETY: the caller's struct holds at least `n` writable bytes; `value`
    // is a live T of at least `n` bytes; they do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (value as *const T).cast::<u8>().add(skip),
            out.cast::<u8>().add(skip),
            n.saturating_sub(skip),
        )
    };
    Ok(())
}
