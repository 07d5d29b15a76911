//! PDF: being written.

use hallpass_core::Location;

use crate::{Extractor, Walk};

pub(crate) struct Pdf;

impl Extractor for Pdf {
    fn extract(
        &self,
        _data: &[u8],
        _location: &Location,
        _walk: &mut Walk<'_>,
    ) -> Result<(), String> {
        Err("hallpass has no reader for pdf files".into())
    }
}
