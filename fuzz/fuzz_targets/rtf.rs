//! Rich Text Format documents.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallpass_fuzz::read_attachment(&hallpass_fuzz::with_magic(data, b"{\\rtf"), "letter.rtf")
});
