//! Publishing a committed version: staged files move to their final names, replaced files move
//! under `_highwater/replaced/<version>/` (or are deleted).
//!
//! Every step is idempotent, so a publish interrupted at any point is finished by the next
//! `Table::open` (or by a concurrent runner) with the same result: a file already at its final
//! name counts as published, a replaced file already gone counts as moved.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};

use crate::commit::{Commit, DataFile, PublishMode};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::table::Table;

/// At most this many moves run at once.
const CONCURRENCY: usize = 16;

/// Whether every step of publishing `commit` is done.
pub(crate) async fn is_published(
    table: &Table,
    commit: &Commit,
    added: &[DataFile],
    removed: &[DataFile],
) -> Result<bool> {
    if commit.publish == PublishMode::Direct {
        return Ok(true);
    }
    let io = &table.io;
    let pending: BTreeSet<String> = added.iter().filter_map(|f| f.publish_from.clone()).collect();
    if !pending.is_empty() {
        let staged = io.list(&io.layout.staging_dir(&commit.run_id)).await?;
        if staged.iter().any(|m| io.layout.relative(&m.location).is_some_and(|r| pending.contains(&r))) {
            return Ok(false);
        }
        // Files restored from `replaced/` are not under staging: look them up one by one.
        for from in pending.iter().filter(|p| !p.starts_with(&format!("{}/staging/", crate::layout::META_DIR))) {
            if io.head(&io.layout.join(from)).await?.is_some() {
                return Ok(false);
            }
        }
    }
    for file in removed {
        if io.head(&io.layout.join(&file.path)).await?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks, before a roll-forward moves anything, that every file the commit publishes is still
/// where it was staged or already at its final name. A commit whose staged data is gone can never
/// be published completely: it fails with [`Error::StagedFileMissing`] and nothing of it is
/// moved (publishing the other files would make part of a broken version visible).
///
/// Each file is looked for where it comes from first, then at its final name: a concurrent
/// publisher copies before it deletes, so a file is always in one of the two places.
pub(crate) async fn check_publishable(table: &Table, commit: &Commit, added: &[DataFile]) -> Result<()> {
    if commit.publish == PublishMode::Direct {
        return Ok(());
    }
    let io = &table.io;
    let pending: Vec<&DataFile> = added.iter().filter(|f| f.publish_from.is_some()).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let staged: BTreeSet<String> = io
        .list(&io.layout.staging_dir(&commit.run_id))
        .await?
        .iter()
        .filter_map(|m| io.layout.relative(&m.location))
        .collect();
    let staging = format!("{}/staging/", crate::layout::META_DIR);
    futures::stream::iter(pending.into_iter().map(|file| {
        let (staged, staging) = (&staged, &staging);
        async move {
            let from = file.publish_from.as_deref().unwrap_or_default();
            let at_source = if from.starts_with(staging.as_str()) {
                staged.contains(from)
            } else {
                io.head(&io.layout.join(from)).await?.is_some()
            };
            if at_source || io.head(&io.layout.join(&file.path)).await?.is_some() {
                Ok(())
            } else {
                Err(Error::StagedFileMissing {
                    version: commit.version,
                    path: file.path.clone(),
                    staged: from.to_owned(),
                })
            }
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Moves the commit's staged files into place, then its replaced files out of the way.
pub(crate) async fn publish(table: &Table, commit: &Commit, added: &[DataFile], removed: &[DataFile]) -> Result<()> {
    if commit.publish == PublishMode::Direct {
        return Ok(());
    }
    let io = &table.io;
    // The futures are collected first: a stream over a borrowing closure would keep a commit
    // (which runs as a spawned task) from being provably `Send`.
    let moves: Vec<_> = added
        .iter()
        .filter(|f| f.publish_from.is_some())
        .map(|file| async move {
            let from_relative = file.publish_from.as_deref().unwrap_or_default();
            let (from, to) = (io.layout.join(from_relative), io.layout.join(&file.path));
            match io.rename(&from, &to).await {
                Ok(()) => Ok(()),
                // Moved by an earlier, interrupted publish or by a concurrent runner.
                Err(error) if error.is_not_found() => match io.head(&to).await? {
                    Some(_) => Ok(()),
                    None => Err(Error::StagedFileMissing {
                        version: commit.version,
                        path: file.path.clone(),
                        staged: from_relative.to_owned(),
                    }),
                },
                Err(error) => Err(error),
            }
        })
        .collect();
    futures::stream::iter(moves).buffer_unordered(CONCURRENCY).try_collect::<Vec<()>>().await?;
    let set_aside: Vec<_> = removed
        .iter()
        .map(|file| async move {
            let at = io.layout.join(&file.path);
            if commit.retain_replaced {
                let kept = io.layout.join(&Layout::replaced_file(commit.version, &file.path));
                match io.rename(&at, &kept).await {
                    Err(error) if !error.is_not_found() => Err(error),
                    _ => Ok(()),
                }
            } else {
                io.delete(&at).await
            }
        })
        .collect();
    futures::stream::iter(set_aside).buffer_unordered(CONCURRENCY).try_collect::<Vec<()>>().await?;
    Ok(())
}
