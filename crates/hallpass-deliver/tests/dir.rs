//! The `dir:` target: real files in a temporary folder.

use std::path::{Path, PathBuf};

use hallpass_deliver::{Deliverer, RcptOutcome, Settings, Target};

/// A folder under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "hallpass-deliver-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MESSAGE: &[u8] =
    b"From: teacher@lumen.sch.uk\r\nTo: parent@example.com\r\nSubject: Trip\r\n\r\n.dot line\r\nSee you.\r\n";

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn writes_the_message_exactly_and_its_envelope_beside_it() {
    let temp = TempDir::new("write");
    let outbox = temp.path().join("data").join("outbox");
    let target: Target = format!("dir:{}", outbox.display()).parse().unwrap();
    let d = Deliverer::new(target, Settings::default());
    let outcomes = d
        .send(
            "teacher@lumen.sch.uk",
            &rcpts(&["parent@example.com", "head@lumen.sch.uk"]),
            MESSAGE,
            "01JQ7Z3K4M",
        )
        .await;
    assert_eq!(
        outcomes,
        vec![RcptOutcome::Delivered("250 2.0.0 written to dir".into()); 2]
    );
    assert_eq!(
        std::fs::read(outbox.join("01JQ7Z3K4M.eml")).unwrap(),
        MESSAGE
    );
    assert_eq!(
        std::fs::read_to_string(outbox.join("01JQ7Z3K4M.envelope")).unwrap(),
        "MAIL FROM:<teacher@lumen.sch.uk>\nRCPT TO:<parent@example.com>\nRCPT TO:<head@lumen.sch.uk>\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["01JQ7Z3K4M.eml", "01JQ7Z3K4M.envelope"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&outbox), 0o700);
        assert_eq!(mode(&outbox.join("01JQ7Z3K4M.eml")), 0o600);
        assert_eq!(mode(&outbox.join("01JQ7Z3K4M.envelope")), 0o600);
    }
}

#[tokio::test]
async fn null_sender_is_written_as_an_empty_path() {
    let temp = TempDir::new("null");
    let d = Deliverer::new(Target::Dir(temp.path().to_path_buf()), Settings::default());
    d.send("", &rcpts(&["teacher@lumen.sch.uk"]), MESSAGE, "bounce1")
        .await;
    assert_eq!(
        std::fs::read_to_string(temp.path().join("bounce1.envelope")).unwrap(),
        "MAIL FROM:<>\nRCPT TO:<teacher@lumen.sch.uk>\n"
    );
}

#[tokio::test]
async fn writing_the_same_name_again_replaces_the_files() {
    let temp = TempDir::new("again");
    let d = Deliverer::new(Target::Dir(temp.path().to_path_buf()), Settings::default());
    d.send(
        "a@lumen.sch.uk",
        &rcpts(&["b@example.org"]),
        b"Subject: one\r\n\r\n1\r\n",
        "m",
    )
    .await;
    let outcomes = d
        .send(
            "a@lumen.sch.uk",
            &rcpts(&["c@example.org"]),
            b"Subject: two\r\n\r\n2\r\n",
            "m",
        )
        .await;
    assert!(outcomes[0].is_delivered());
    assert_eq!(
        std::fs::read(temp.path().join("m.eml")).unwrap(),
        b"Subject: two\r\n\r\n2\r\n"
    );
    assert!(
        std::fs::read_to_string(temp.path().join("m.envelope"))
            .unwrap()
            .contains("<c@example.org>")
    );
}

#[tokio::test]
async fn a_write_failure_is_transient_and_names_no_path() {
    let temp = TempDir::new("fail");
    // The "folder" is a file, so nothing can be created in it.
    let blocked = temp.path().join("pupil-records");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let d = Deliverer::new(Target::Dir(blocked.join("outbox")), Settings::default());
    let outcomes = d
        .send(
            "a@lumen.sch.uk",
            &rcpts(&["b@example.org", "c@example.org"]),
            MESSAGE,
            "m1",
        )
        .await;
    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        assert!(outcome.is_transient(), "{outcome:?}");
        assert!(
            outcome
                .text()
                .starts_with("cannot write to the dir: target: ")
        );
        assert!(!outcome.text().contains("pupil-records"), "{outcome:?}");
    }
}

#[tokio::test]
async fn a_name_that_would_leave_the_folder_is_refused() {
    let temp = TempDir::new("name");
    let inner = temp.path().join("inner");
    let d = Deliverer::new(Target::Dir(inner.clone()), Settings::default());
    for name in ["../escape", ".hidden", ""] {
        let outcomes = d
            .send("a@lumen.sch.uk", &rcpts(&["b@example.org"]), MESSAGE, name)
            .await;
        assert!(outcomes[0].is_permanent(), "{name:?}: {outcomes:?}");
    }
    assert!(!temp.path().join("escape.eml").exists());
    assert!(!inner.exists());
}
