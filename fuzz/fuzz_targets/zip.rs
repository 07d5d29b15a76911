//! ZIP archives (plain, ZipCrypto, AES, nested, damaged), as an attachment.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallpass_fuzz::read_attachment(&hallpass_fuzz::with_magic(data, b"PK"), "files.zip")
});
