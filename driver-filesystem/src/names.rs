//! The reserved names of staged content, beside its target in the same directory.
//!
//! Every name here has a `#`, which the path grammar forbids, so no driver path can address
//! one and listings skip them.
//!
//! - `<name>#upload`: the upload of a [`storagedriver::FileWriter`] for `<name>`. The name is
//!   fixed, so a new driver instance (or process) finds and resumes it.
//! - `<name>#tmp-<k>`: staging slot `k` of `<name>`, where a `put_content` writes before it
//!   renames the file into place and where a writer prepares a new upload. A slot is claimed
//!   by locking it (see [`crate::staging::claim_slot`]), so the slots of a name are reused
//!   once their writer is gone, also after a crash: a killed `put_content` leaves at most a
//!   slot that the next write or delete of the same path takes back.
//! - `<name>#del-<k>`: the directory `<name>` while a `delete` removes it (see
//!   [`crate::staging::delete_dir`]).
//! - A name too long to take a suffix within 255 bytes is shortened first, with a hash of the
//!   full name (see [`with_suffix`]).

/// The suffix of a writer's upload file.
pub(crate) const UPLOAD_SUFFIX: &str = "#upload";

/// The infix of a staging slot, followed by the slot number.
pub(crate) const SLOT_INFIX: &str = "#tmp-";

/// The infix of a directory being deleted, followed by a number.
const DELETED_INFIX: &str = "#del-";

/// The longest file name the filesystems we run on accept, in bytes.
const MAX_NAME_LEN: usize = 255;

/// `name` with `suffix` appended.
///
/// A component may be 255 bytes long, the limit of the file name itself, so a long name has no
/// room for the suffix. Such a name is shortened to its first bytes plus `#` and a 64-bit
/// FNV-1a hash of the whole name: still unaddressable (it has a `#`), still the same for the
/// same target, so a new driver instance finds the upload again.
fn with_suffix(name: &str, suffix: &str) -> String {
    if name.len() + suffix.len() <= MAX_NAME_LEN {
        return format!("{name}{suffix}");
    }
    let hash = format!("#{:016x}", fnv1a(name.as_bytes()));
    let keep = (MAX_NAME_LEN - suffix.len() - hash.len()).min(name.len());
    // Valid components are ASCII; for anything else, back off to a character boundary.
    let keep = (0..=keep)
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}{hash}{suffix}", &name[..keep])
}

/// The 64-bit FNV-1a hash: tiny, stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The upload file of a writer for the entry `name`.
pub(crate) fn upload(name: &str) -> String {
    with_suffix(name, UPLOAD_SUFFIX)
}

/// Staging slot `k` of the entry `name`.
pub(crate) fn slot(name: &str, k: usize) -> String {
    with_suffix(name, &format!("{SLOT_INFIX}{k}"))
}

/// The name the directory `name` is moved to while it is deleted, the `k`th such name.
pub(crate) fn deleted(name: &str, k: usize) -> String {
    with_suffix(name, &format!("{DELETED_INFIX}{k}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_not_valid_components() {
        assert_eq!(upload("b"), "b#upload");
        assert_eq!(slot("b", 3), "b#tmp-3");
        for staged in [upload("b"), slot("b", 0)] {
            assert!(staged.starts_with("b#"), "{staged}");
            assert!(storagedriver::path::validate_component(&staged).is_err());
        }
    }

    #[test]
    fn long_names_are_shortened_within_the_limit_and_stay_distinct() {
        let long = "x".repeat(255);
        let other = format!("{}y", "x".repeat(254));
        for name in [upload(&long), slot(&long, 12), upload(&other)] {
            assert!(name.len() <= MAX_NAME_LEN, "{}", name.len());
            assert!(name.contains('#'));
        }
        assert_ne!(upload(&long), upload(&other));
        assert_eq!(upload(&long), upload(&long));
    }
}
