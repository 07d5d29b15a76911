//! The spool: one file per message copy's bytes, `<id>.eml`, written durably before the SMTP
//! reply ("a 250 is a promise").
//!
//! A write goes to `<id>.tmp`, is fsync'd, renamed to `<id>.eml`, and then the folder is fsync'd
//! so the rename itself survives a crash. Folder fsyncs are shared: writers whose renames are done
//! while one fsync runs wait for the next one, which covers them all (group commit). No writer
//! returns before an fsync that started after its own rename has finished.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::error::StoreError;

/// Files the store writes: owner read/write only.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Folders the store makes: owner only.
pub(crate) const DIR_MODE: u32 = 0o700;

/// The folder of message files. Cheap to clone; clones share the folder fsyncs.
///
/// With a shared store (PostgreSQL), [`Spool::read`] also finds a held message whose file is in
/// another relay's spool: the store keeps held messages' bytes for that.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    syncer: Arc<DirSyncer>,
    shared: Option<sqlx::AnyPool>,
}

impl Spool {
    /// Opens (creating, mode 0700) `<dir>`; the store puts it at `<storage path>/spool`.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        make_private_dir(dir)?;
        let handle = File::open(dir)
            .map_err(|e| StoreError::io(format!("opening spool folder {}", dir.display()), e))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            syncer: Arc::new(DirSyncer {
                dir: Arc::new(handle),
                path: dir.to_path_buf(),
                state: Mutex::new(SyncState::default()),
                done: Notify::new(),
            }),
            shared: None,
        })
    }

    /// The same spool, reading from the shared store's copies of held messages what is not here.
    pub(crate) fn with_shared(mut self, pool: sqlx::AnyPool) -> Spool {
        self.shared = Some(pool);
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<id>.eml` durably: write to a temp name, fsync the file, rename, fsync the
    /// directory. Only returns Ok once the bytes are on disk. Concurrent writers share directory
    /// fsyncs. ENOSPC / EROFS / EACCES come back as Err (the relay answers 451).
    pub async fn write(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_id(id)?;
        let tmp = self.dir.join(format!("{id}.tmp"));
        let path = self.path(id);
        let bytes = bytes.to_vec();
        blocking(move || write_file(&tmp, &path, &bytes)).await?;
        self.syncer.sync().await
    }

    /// Reads `<id>.eml`; `Err(NotFound)` when there is no such file. With a shared store, a file
    /// that is not in this spool is read from the store's copy of a held message, if it has one.
    pub async fn read(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        match self.read_local(id).await {
            Err(StoreError::NotFound) if self.shared.is_some() => {}
            other => return other,
        }
        let Some(pool) = &self.shared else {
            return Err(StoreError::NotFound);
        };
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM spool_bytes WHERE spool_id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
        bytes.ok_or(StoreError::NotFound)
    }

    /// Reads `<id>.eml` from this spool only.
    pub(crate) async fn read_local(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        check_id(id)?;
        let path = self.path(id);
        blocking(move || match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(StoreError::io(
                format!("reading spool file {}", path.display()),
                e,
            )),
        })
        .await
    }

    /// Deletes `<id>.eml` (and a temp file left by a crash), durably. Removing a file that is
    /// already gone is not an error, so a clean-up interrupted by a crash can simply run again.
    pub async fn remove(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let path = self.path(id);
        let tmp = self.dir.join(format!("{id}.tmp"));
        blocking(move || {
            for p in [&path, &tmp] {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(StoreError::io(
                            format!("removing spool file {}", p.display()),
                            e,
                        ));
                    }
                }
            }
            Ok(())
        })
        .await?;
        self.syncer.sync().await
    }

    /// Ids of the files in the folder (`<id>.eml`, and `<id>.tmp` left by a
    /// crash mid-write) last modified at least `min_age` ago.
    pub async fn ids_older_than(
        &self,
        min_age: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.clone();
        blocking(move || {
            let entries = fs::read_dir(&dir).map_err(|e| {
                StoreError::io(format!("listing spool folder {}", dir.display()), e)
            })?;
            let mut ids = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some(id) = name
                    .strip_suffix(".eml")
                    .or_else(|| name.strip_suffix(".tmp"))
                else {
                    continue;
                };
                let old_enough = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age);
                if old_enough && check_id(id).is_ok() && !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
            ids.sort();
            Ok(ids)
        })
        .await
    }

    /// Where `<id>.eml` lives (whether or not it exists).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }
}

/// Spool ids become file names: only plain ids are accepted, so none can name another path.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

/// Creates `dir` and missing parents with mode 0700, and narrows an existing `dir` to 0700.
pub(crate) fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| StoreError::io(format!("creating folder {}", dir.display()), e))?;
    let meta = fs::metadata(dir)
        .map_err(|e| StoreError::io(format!("reading folder {}", dir.display()), e))?;
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(|e| {
            StoreError::io(
                format!("making folder {} private (mode 0700)", dir.display()),
                e,
            )
        })?;
    }
    Ok(())
}

fn write_file(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let ctx = |what: &str| format!("{what} spool file {}", tmp.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(tmp)
        .map_err(|e| StoreError::io(ctx("creating"), e))?;
    let written = f
        .write_all(bytes)
        .map_err(|e| StoreError::io(ctx("writing"), e))
        .and_then(|()| f.sync_all().map_err(|e| StoreError::io(ctx("syncing"), e)));
    drop(f);
    if let Err(e) = written {
        // Do not leave a partial file behind (a full disk is the usual cause).
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    fs::rename(tmp, path).map_err(|e| {
        let _ = fs::remove_file(tmp);
        StoreError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// Runs file work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::io("spool worker thread", io::Error::other(e.to_string())))?
}

/// Shares folder fsyncs between concurrent writers (group commit).
#[derive(Debug)]
struct DirSyncer {
    dir: Arc<File>,
    path: PathBuf,
    state: Mutex<SyncState>,
    done: Notify,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Changes (renames, removals) finished so far, numbered from 1.
    registered: u64,
    /// Every change numbered up to this one is durable.
    synced: u64,
    /// An fsync is running.
    running: bool,
}

impl DirSyncer {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a folder fsync that started after this call has finished.
    async fn sync(&self) -> Result<(), StoreError> {
        let mine = {
            let mut s = self.lock();
            s.registered += 1;
            s.registered
        };
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // Registered before looking at the state, so a wake-up between the two is not lost.
            notified.as_mut().enable();
            let target = {
                let mut s = self.lock();
                if s.synced >= mine {
                    return Ok(());
                }
                if s.running {
                    None
                } else {
                    s.running = true;
                    Some(s.registered)
                }
            };
            let Some(target) = target else {
                notified.await;
                continue;
            };
            // This writer leads: one fsync covers every change registered up to `target`.
            let mut leader = Leader {
                syncer: self,
                synced: None,
            };
            let dir = Arc::clone(&self.dir);
            let result = tokio::task::spawn_blocking(move || dir.sync_all())
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
            return match result {
                Ok(()) => {
                    leader.synced = Some(target);
                    Ok(())
                }
                Err(e) => Err(StoreError::io(
                    format!("syncing spool folder {}", self.path.display()),
                    e,
                )),
            };
        }
    }
}

/// Ends a leader's turn even when its task is cancelled mid-fsync, so waiters never hang.
struct Leader<'a> {
    syncer: &'a DirSyncer,
    synced: Option<u64>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.syncer.lock();
            s.running = false;
            if let Some(t) = self.synced {
                s.synced = s.synced.max(t);
            }
        }
        self.syncer.done.notify_waiters();
    }
}
