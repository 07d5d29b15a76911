//! CSV to text: quoting, ragged rows, header rows as context for each cell.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    hallpass_fuzz::guard(|| {
        std::hint::black_box(hallpass_extract::table::csv_to_text(&text));
    });
    // And as an attachment, the way mail brings it.
    hallpass_fuzz::read_attachment(data, "class.csv");
});
