//! Change detection for mounted files by polling their content.
//!
//! Polling, not inotify: a Kubernetes Secret or ConfigMap volume rotates by
//! atomically swapping the `..data` symlink, which file watches miss, and a
//! content hash also ignores touches that change nothing.
//!
//! A file rewritten in place can be read half-written, and a prefix that
//! ends at a line is often valid YAML (a weaker policy). So a new content
//! counts only once two reads a poll apart agree.

use std::path::{Path, PathBuf};

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Remembers the content hash of a set of files.
pub struct FileFingerprint {
    paths: Vec<PathBuf>,
    last: Option<[u8; 32]>,
    /// A new content seen once, waiting for the next read to agree.
    pending: Option<[u8; 32]>,
}

impl FileFingerprint {
    pub fn new(paths: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        Self {
            paths: paths
                .into_iter()
                .map(|p| p.as_ref().to_path_buf())
                .collect(),
            last: None,
            pending: None,
        }
    }

    /// Reads the files; returns their contents once they differ from what
    /// was last returned and the previous call read the same (the first
    /// call returns at once). Unreadable files are an error.
    pub async fn changed(&mut self) -> std::io::Result<Option<Vec<Vec<u8>>>> {
        let mut contents = Vec::with_capacity(self.paths.len());
        let mut hasher = Sha256::new();
        for p in &self.paths {
            let bytes = tokio::fs::read(p).await?;
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            contents.push(bytes);
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if self.last == Some(digest) {
            self.pending = None;
            return Ok(None);
        }
        if self.last.is_some() && self.pending != Some(digest) {
            // New, or still changing: wait for a read that agrees.
            self.pending = Some(digest);
            return Ok(None);
        }
        self.last = Some(digest);
        self.pending = None;
        Ok(Some(contents))
    }

    /// Forgets the last content so the next call reports it again (used
    /// when a read succeeded but the content could not be used yet).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Polls `paths` every `interval` until `stop`, handing each new content (or
/// read error) to `on_change`. With `skip_current`, what is on disk now counts
/// as already seen (the caller loaded it). When `on_change` returns false the
/// content is reported again on the next tick (not usable yet, e.g. a cert
/// whose key has not been swapped in).
pub async fn poll_files(
    paths: impl IntoIterator<Item = impl AsRef<Path>>,
    interval: Duration,
    stop: CancellationToken,
    skip_current: bool,
    mut on_change: impl FnMut(std::io::Result<Vec<Vec<u8>>>) -> bool,
) {
    let mut fp = FileFingerprint::new(paths);
    if skip_current {
        let _ = fp.changed().await;
    }
    loop {
        match fp.changed().await {
            Ok(None) => {}
            Ok(Some(files)) => {
                if !on_change(Ok(files)) {
                    fp.reset();
                }
            }
            Err(e) => {
                on_change(Err(e));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_only_real_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, "one").unwrap();
        let mut fp = FileFingerprint::new([&f]);
        assert_eq!(fp.changed().await.unwrap(), Some(vec![b"one".to_vec()]));
        assert_eq!(fp.changed().await.unwrap(), None);
        std::fs::write(&f, "one").unwrap();
        assert_eq!(
            fp.changed().await.unwrap(),
            None,
            "same content is no change"
        );
        std::fs::write(&f, "two").unwrap();
        assert_eq!(fp.changed().await.unwrap(), None, "seen once: not yet");
        assert_eq!(fp.changed().await.unwrap(), Some(vec![b"two".to_vec()]));
        std::fs::remove_file(&f).unwrap();
        assert!(fp.changed().await.is_err());
    }

    #[tokio::test]
    async fn a_half_written_file_is_never_taken() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.yaml");
        std::fs::write(&f, "limits:\n  maxParallelism: 512\n").unwrap();
        let mut fp = FileFingerprint::new([&f]);
        assert!(fp.changed().await.unwrap().is_some());
        // A rewrite in place, read between its two writes: the prefix is
        // seen once and then replaced, so it is never reported.
        std::fs::write(&f, "limits:\n").unwrap();
        assert_eq!(fp.changed().await.unwrap(), None);
        std::fs::write(&f, "limits:\n  maxParallelism: 256\n").unwrap();
        assert_eq!(fp.changed().await.unwrap(), None);
        assert_eq!(
            fp.changed().await.unwrap(),
            Some(vec![b"limits:\n  maxParallelism: 256\n".to_vec()])
        );
        // Back to what is in force before settling: nothing to report.
        std::fs::write(&f, "limits:\n").unwrap();
        assert_eq!(fp.changed().await.unwrap(), None);
        std::fs::write(&f, "limits:\n  maxParallelism: 256\n").unwrap();
        assert_eq!(fp.changed().await.unwrap(), None);
        assert_eq!(fp.changed().await.unwrap(), None);
    }
}
