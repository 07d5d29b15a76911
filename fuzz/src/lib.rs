//! What the fuzz targets share: the shipped default limits, and a way to
//! reach every extractor the way mail does, as an attachment of a MIME
//! message whose kind is sniffed from its bytes.
//!
//! Every target checks the extraction crate's invariant: it never panics
//! (a panic inside a parser library is caught and costs one attachment; one
//! that escapes is a bug), never hangs, and never holds more memory than its
//! limits allow.
//!
//! libFuzzer's Rust glue aborts on every panic, even one that is caught, so
//! [`guard`] replaces its panic hook with one that only remembers the
//! message, and aborts itself when a panic escapes.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Once, OnceLock};

use hallpass_core::config::Limits;

/// The limits `hallpass serve` starts with.
pub fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| hallpass_core::Config::defaults_for(&["lumen.sch.uk"], &[]).limits)
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic that escapes it is a crash (printed, then abort), one
/// caught inside it is how hallpass contains a parser library's failure.
pub fn guard(f: impl FnOnce()) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = format!("{info}");
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        }))
    });
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        let message = LAST_PANIC.with(|p| p.borrow_mut().take());
        eprintln!(
            "a panic escaped: {}",
            message.as_deref().unwrap_or("(no message)")
        );
        std::process::abort();
    }
}

/// Reads `raw` as a whole message, touching every piece of text handed out.
pub fn read(raw: &[u8]) {
    guard(|| read_unguarded(raw));
}

fn read_unguarded(raw: &[u8]) {
    let mut bytes = 0usize;
    let info = hallpass_extract::read_message(raw, limits(), &mut |s| {
        bytes += s.text.len();
        // Locations are built from attachment names: make sure they format.
        bytes += s.location.as_str().len();
    });
    assert!(info.text_bytes <= limits().max_text_bytes);
    for a in &info.attachments {
        // An attachment is read, encrypted, a picture, or said unscannable.
        let _ = (a.scanned, a.encrypted, a.unscannable.as_deref());
    }
    std::hint::black_box(bytes);
}

/// Reads `data` as an attachment called `name` of an otherwise fixed
/// message: the path a file in mail takes to its extractor.
pub fn read_attachment(data: &[u8], name: &str) {
    let raw = hallpass_fixtures::message_with(
        "Files",
        "Parent <parent@example.com>",
        "Attached. The password is Tulip-Garden-42",
        name,
        data,
    );
    read(&raw);
}

/// `data` with `magic` in front unless it starts with it, so the sniffer
/// sends it to the extractor under test.
pub fn with_magic<'d>(data: &'d [u8], magic: &[u8]) -> std::borrow::Cow<'d, [u8]> {
    if data.starts_with(magic) {
        std::borrow::Cow::Borrowed(data)
    } else {
        let mut v = magic.to_vec();
        v.extend_from_slice(data);
        std::borrow::Cow::Owned(v)
    }
}
