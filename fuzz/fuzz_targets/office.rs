//! Office Open XML and OpenDocument files (DOCX, XLSX, PPTX, ODT, ODS): ZIP
//! containers sniffed as documents, then their XML and spreadsheets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hallpass_fuzz::read_attachment(&hallpass_fuzz::with_magic(data, b"PK"), "report.docx")
});
