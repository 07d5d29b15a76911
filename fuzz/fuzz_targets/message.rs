//! A whole message, as the relay receives it: headers, MIME structure,
//! transfer encodings, charsets, forwarded messages, and every attachment.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hallpass_fuzz::read(data));
