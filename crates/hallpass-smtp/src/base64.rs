//! Base64 decoding for SASL responses (RFC 4648 standard alphabet), small
//! enough not to be worth a dependency.

/// Decodes standard base64; padding is optional, whitespace is not allowed.
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = match input {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        all => all,
    };
    if input.len() != trimmed.len() && !input.len().is_multiple_of(4) {
        return None;
    }
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in trimmed {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (canonical encoding).
    if acc != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_rfc_4648_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg", "foob"),
            ("VXNlcm5hbWU6", "Username:"),
        ] {
            assert_eq!(
                decode(enc.as_bytes()).as_deref(),
                Some(dec.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(
            decode(b"AHRlYWNoZXIAc2VjcmV0").unwrap(),
            b"\0teacher\0secret"
        );
    }

    #[test]
    fn rejects_what_is_not_base64() {
        for bad in [
            "Z", "Zm9v!", "Zm 9v", "Zg=", "Zm9vY===", "Zh==", "=", "Zm=v",
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
