//! `readbot store compact`: copies a stopped readbot's sled folder into a
//! fresh one and swaps them, so space sled still holds for removed entries
//! (its log keeps old segments until they are rewritten) is given back.
//!
//! Offline only: sled's lock refuses a folder readbot is using. The old
//! folder is kept next to the new one (`<dir>.before-compact-<millis>`) for
//! the operator to delete once readbot runs fine on the new one.

use super::sled_store::{folder_size, open_failed};
use super::StoreError;
use crate::domain::now_millis;
use std::path::{Path, PathBuf};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of the folder before.
    pub before_bytes: u64,
    /// Bytes of the compacted folder.
    pub after_bytes: u64,
    /// Entries copied (every tree).
    pub entries: u64,
    /// Where the old folder was kept.
    pub old_dir: PathBuf,
}

fn io_failed(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// `dir` with `suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Compacts the sled store in `dir` (blocking; readbot must be stopped).
pub fn compact(dir: &Path) -> Result<CompactReport, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::OpenFolder {
            dir: dir.to_path_buf(),
            source: "no such folder".into(),
        });
    }
    let before_bytes = folder_size(dir);
    let fresh = sibling(dir, ".compact-tmp");
    if fresh.exists() {
        // Left by an interrupted compaction: ours, by its name.
        std::fs::remove_dir_all(&fresh)
            .map_err(io_failed("cannot remove an old .compact-tmp folder"))?;
    }
    let entries = {
        let src = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| open_failed(dir, e))?;
        let dst = sled::Config::new()
            .path(&fresh)
            .open()
            .map_err(|e| open_failed(&fresh, e))?;
        let mut copied = 0u64;
        for name in src.tree_names() {
            let from = src
                .open_tree(&name)
                .map_err(|e| StoreError::backend("cannot open a tree to copy", e))?;
            let to = dst
                .open_tree(&name)
                .map_err(|e| StoreError::backend("cannot create a tree in the new folder", e))?;
            for entry in from.iter() {
                let (k, v) = entry.map_err(|e| StoreError::backend("cannot read an entry", e))?;
                to.insert(k, v)
                    .map_err(|e| StoreError::backend("cannot write the new folder", e))?;
                copied += 1;
            }
            if from.len() != to.len() {
                return Err(StoreError::message(
                    "the copy does not hold as many entries as the original; nothing was swapped",
                ));
            }
        }
        dst.flush()
            .map_err(|e| StoreError::backend("cannot flush the new folder", e))?;
        copied
    };
    // sled releases its file lock from background threads a moment after
    // the last handle is dropped; renaming does not need the lock.
    let old_dir = sibling(dir, &format!(".before-compact-{}", now_millis()));
    std::fs::rename(dir, &old_dir).map_err(io_failed("cannot move the old folder aside"))?;
    if let Err(e) = std::fs::rename(&fresh, dir) {
        // Put the original back: readbot must find its data where it was.
        let _ = std::fs::rename(&old_dir, dir);
        return Err(io_failed("cannot move the compacted folder into place")(e));
    }
    Ok(CompactReport {
        before_bytes,
        after_bytes: folder_size(dir),
        entries,
        old_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{gid, notice, uid};
    use crate::store::sled_store::SledStore;
    use crate::store::{Cutoffs, Store};

    #[tokio::test]
    async fn compaction_keeps_every_entry_and_gives_space_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        {
            let s = SledStore::open(&dir).unwrap();
            for i in 0..2_000 {
                let mut n = notice(&format!("k{i}"), "cid1", Some("alice"), i);
                n.title = "x".repeat(500);
                s.record_notice(&n).await.unwrap();
            }
            s.record_notice(&notice("keep", "cid1", Some("bob"), 1_000_000))
                .await
                .unwrap();
            s.remember_members(&gid("cid1"), &[uid("bob")], 1_000_000)
                .await
                .unwrap();
            let cut = Cutoffs {
                notices_before: 500_000,
                names_before: 0,
                roster_before: 0,
            };
            assert_eq!(s.prune_old(cut).await.unwrap().notices, 2_000);
            s.flush().await.unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let report = compact(&dir).unwrap();
        assert!(report.old_dir.is_dir());
        assert!(report.after_bytes < report.before_bytes, "{report:?}");
        let s = SledStore::open(&dir).unwrap();
        assert_eq!(s.notice_count().await.unwrap(), 1);
        assert_eq!(
            s.last_notice_by(&gid("cid1"), &uid("bob"))
                .await
                .unwrap()
                .map(|n| n.key.as_str().to_owned())
                .as_deref(),
            Some("keep")
        );
        assert_eq!(s.learned_members(&gid("cid1")).await.unwrap(), [uid("bob")]);
    }

    #[test]
    fn a_folder_in_use_is_not_compacted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let _running = SledStore::open(&dir).unwrap();
        let err = compact(&dir).unwrap_err();
        assert!(matches!(err, StoreError::OpenFolder { .. }), "{err:?}");
        assert!(dir.is_dir());
    }
}
