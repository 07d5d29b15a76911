//! HTML to text (bodies and attachments): tags, entities, tables as
//! `Header: value` lines, hidden text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    hallpass_fuzz::guard(|| {
        std::hint::black_box(hallpass_extract::html::to_text(&html));
    });
});
