//! PDF files: lopdf's parser, decryption with the password in the message,
//! hallpass's checks and pdf-extract's text layout.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallpass_fuzz::read_attachment(&hallpass_fuzz::with_magic(data, b"%PDF-"), "referral.pdf")
});
