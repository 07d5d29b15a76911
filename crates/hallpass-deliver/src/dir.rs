//! The `dir:` target: each message becomes `<name>.eml` (the message bytes exactly) with
//! `<name>.envelope` beside it (`MAIL FROM:<..>` and one `RCPT TO:<..>` per line).
//!
//! Each file is written under a temporary name, fsync'd and renamed, then the folder is
//! fsync'd, so a reader never sees half a message and a written message survives a crash.
//! The envelope is renamed into place first: whoever sees `<name>.eml` can read who it was for.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::RcptOutcome;

/// The reply given for every recipient of a message written to the folder.
pub(crate) const WRITTEN: &str = "250 2.0.0 written to dir";

/// Writes the message and its envelope into `dir`; one outcome per recipient. The addresses
/// have been checked by the caller.
pub(crate) async fn deliver(
    dir: &Path,
    mail_from: &str,
    rcpts: &[String],
    bytes: &[u8],
    name: &str,
) -> Vec<RcptOutcome> {
    if !name_is_safe(name) {
        let refused = RcptOutcome::Permanent("invalid file name for the dir: target".into());
        return vec![refused; rcpts.len()];
    }
    let mut envelope = format!("MAIL FROM:<{mail_from}>\n");
    for rcpt in rcpts {
        envelope.push_str(&format!("RCPT TO:<{rcpt}>\n"));
    }
    let dir = dir.to_path_buf();
    let name = name.to_string();
    let bytes = bytes.to_vec();
    let written =
        tokio::task::spawn_blocking(move || write_files(&dir, &name, &bytes, envelope.as_bytes()))
            .await;
    let outcome = match written {
        Ok(Ok(())) => RcptOutcome::Delivered(WRITTEN.to_string()),
        // The kind only: the error's text could carry the path, and the name may be personal.
        Ok(Err(e)) => {
            RcptOutcome::Transient(format!("cannot write to the dir: target: {}", e.kind()))
        }
        Err(_) => {
            RcptOutcome::Transient("cannot write to the dir: target: the writer stopped".into())
        }
    };
    vec![outcome; rcpts.len()]
}

/// A plain file name: no separators, not hidden (temporary files start with a dot), no
/// control characters.
fn name_is_safe(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

fn write_files(dir: &Path, name: &str, message: &[u8], envelope: &[u8]) -> io::Result<()> {
    create_dir(dir)?;
    write_atomically(dir, &format!("{name}.envelope"), envelope)?;
    write_atomically(dir, &format!("{name}.eml"), message)?;
    sync_dir(dir)
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_atomically(dir: &Path, file_name: &str, contents: &[u8]) -> io::Result<()> {
    let temporary: PathBuf = dir.join(format!(".{file_name}.tmp"));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, dir.join(file_name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_folder_are_refused() {
        assert!(name_is_safe("01JQ7Z3K4M"));
        assert!(name_is_safe("msg-1.copy"));
        for bad in ["", ".hidden", "..", "../etc/passwd", "a/b", "a\\b", "a\nb"] {
            assert!(!name_is_safe(bad), "{bad:?}");
        }
    }
}
