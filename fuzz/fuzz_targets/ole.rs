//! Legacy Office files (OLE compound files: .doc, .xls, encrypted Office).
#![no_main]

use libfuzzer_sys::fuzz_target;

const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

fuzz_target!(|data: &[u8]| {
    hallpass_fuzz::read_attachment(&hallpass_fuzz::with_magic(data, OLE), "letter.doc")
});
