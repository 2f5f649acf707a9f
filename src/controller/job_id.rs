//! Deterministic Flink job ids. The id of submission number `n` of a
//! resource is the first 8 bytes of SHA-256 of its uid followed by `n`, so a
//! controller that crashes mid-submission and retries asks Flink for the
//! very same id (Flink refuses a duplicate), and the counter itself is
//! persisted in `status.jobStatus.jobId`.

use sha2::{Digest, Sha256};

/// Job id (32 hex digits) of submission `counter` of the resource `uid`.
pub fn job_id(uid: &str, counter: u64) -> String {
    format!("{}{counter:016x}", uid_prefix(uid))
}

/// The submission counter inside `job_id`, when it belongs to `uid`.
pub fn counter_of(uid: &str, job_id: &str) -> Option<u64> {
    let rest = job_id.strip_prefix(&uid_prefix(uid))?;
    if rest.len() != 16 {
        return None;
    }
    u64::from_str_radix(rest, 16).ok()
}

/// The id of the next submission after `current` (the first when none).
pub fn next(uid: &str, current: Option<&str>) -> String {
    let n = current.and_then(|j| counter_of(uid, j)).unwrap_or(0);
    job_id(uid, n.saturating_add(1))
}

fn uid_prefix(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_count() {
        let uid = "6f1c2f7e-0000-4000-8000-000000000001";
        let first = job_id(uid, 1);
        assert_eq!(first.len(), 32);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(first, job_id(uid, 1), "same uid and counter, same id");
        assert_ne!(first, job_id("another-uid", 1));
        assert_eq!(counter_of(uid, &first), Some(1));
        assert_eq!(next(uid, Some(&first)), job_id(uid, 2));
        assert_eq!(next(uid, None), first);
        assert_eq!(counter_of("another-uid", &first), None, "foreign id");
        // A foreign id in status starts the count afresh instead of failing.
        assert_eq!(next(uid, Some("0123456789abcdef0123456789abcdef")), first);
    }
}
