//! Built-in validators, referred to by name from detector files.
//!
//! Each takes the bytes a pattern matched (separators included) and says
//! whether they are a real identifier of that kind. They are pure and
//! allocation-free: the scanner calls them once per candidate.

/// What a validator may know besides the matched bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateCtx {
    /// Today's date as (year, month, day), for "a date in the past". Passed in
    /// so the engine reads no clock.
    pub today: (u16, u8, u8),
}

/// A validator's signature.
pub type ValidateFn = fn(&[u8], &ValidateCtx) -> bool;

/// The validators a detector file may name.
pub const VALIDATORS: &[(&str, ValidateFn)] = &[
    ("nhs_mod11", |b, _| nhs_number(b)),
    ("nino", |b, _| nino(b)),
    ("upn", |b, _| upn(b)),
    ("uln", |b, _| uln(b)),
    ("luhn_card", |b, _| payment_card(b)),
    ("iban", |b, _| iban(b)),
    ("sort_code_account", |b, _| sort_code_account(b)),
    ("driving_licence", |b, _| driving_licence(b)),
    ("date_of_birth", date_of_birth),
    ("credential_value", |b, _| credential_value(b)),
];

/// Looks a validator up by name.
pub fn by_name(name: &str) -> Option<ValidateFn> {
    VALIDATORS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The ASCII digits of `b` in order, as values, into a fixed buffer. Returns
/// `None` when there are more than `N` or a character other than a digit,
/// space, hyphen or dot.
fn digits<const N: usize>(b: &[u8]) -> Option<([u8; N], usize)> {
    let mut out = [0u8; N];
    let mut n = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                if n == N {
                    return None;
                }
                out[n] = c - b'0';
                n += 1;
            }
            b' ' | b'-' | b'.' | b'\t' => {}
            _ => return None,
        }
    }
    Some((out, n))
}

fn all_same(d: &[u8]) -> bool {
    d.iter().all(|&x| x == d[0])
}

/// NHS number: 10 digits; weights 10..2 over the first nine; `11 − (sum mod 11)`,
/// 11 → 0, 10 → invalid; must equal the tenth digit.
pub fn nhs_number(b: &[u8]) -> bool {
    let Some((d, 10)) = digits::<10>(b) else {
        return false;
    };
    if all_same(&d) {
        return false;
    }
    let sum: u32 = (0..9).map(|i| u32::from(d[i]) * (10 - i as u32)).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(d[9])
}

/// Unique Learner Number: 10 digits, first not 0; weights 10..2 over the first
/// nine, `r = sum mod 11`, check `10 − r`, `r = 0` invalid.
pub fn uln(b: &[u8]) -> bool {
    let Some((d, 10)) = digits::<10>(b) else {
        return false;
    };
    if d[0] == 0 || all_same(&d) {
        return false;
    }
    let sum: u32 = (0..9).map(|i| u32::from(d[i]) * (10 - i as u32)).sum();
    let r = sum % 11;
    r != 0 && 10 - r == u32::from(d[9])
}

/// Letters used by the UPN check character (no I, O, S).
pub const UPN_ALPHABET: &[u8; 23] = b"ABCDEFGHJKLMNPQRTUVWXYZ";

fn compact_upper<const N: usize>(b: &[u8]) -> Option<([u8; N], usize)> {
    let mut out = [0u8; N];
    let mut n = 0;
    for &c in b {
        if c.is_ascii_alphanumeric() {
            if n == N {
                return None;
            }
            out[n] = c.to_ascii_uppercase();
            n += 1;
        } else if !matches!(c, b' ' | b'-' | b'\t') {
            return None;
        }
    }
    Some((out, n))
}

/// Unique Pupil Number: a check letter, then the 3-digit local-authority
/// number (201–938), 4-digit establishment, 2-digit year and 3-digit serial; a
/// temporary UPN ends in a letter. The check letter is
/// `ALPHABET[Σ value(cᵢ)·i for i in 2..=13 mod 23]`.
pub fn upn(b: &[u8]) -> bool {
    let Some((c, 13)) = compact_upper::<13>(b) else {
        return false;
    };
    if !c[1..12].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let la = u32::from(c[1] - b'0') * 100 + u32::from(c[2] - b'0') * 10 + u32::from(c[3] - b'0');
    if !(201..=938).contains(&la) {
        return false;
    }
    let value = |ch: u8| -> Option<u32> {
        if ch.is_ascii_digit() {
            Some(u32::from(ch - b'0'))
        } else {
            UPN_ALPHABET.iter().position(|&a| a == ch).map(|p| p as u32)
        }
    };
    let mut sum = 0;
    for (i, &ch) in c.iter().enumerate().skip(1) {
        let Some(v) = value(ch) else { return false };
        sum += v * (i as u32 + 1);
    }
    UPN_ALPHABET[(sum % 23) as usize] == c[0]
}

/// National Insurance number: two prefix letters (first not D F I Q U V,
/// second not D F I O Q U V, and not BG GB KN NK NT TN ZZ), six digits, a
/// suffix A–D.
pub fn nino(b: &[u8]) -> bool {
    let Some((c, 9)) = compact_upper::<9>(b) else {
        return false;
    };
    let (p1, p2) = (c[0], c[1]);
    if !p1.is_ascii_uppercase() || !p2.is_ascii_uppercase() {
        return false;
    }
    if b"DFIQUV".contains(&p1) || b"DFIOQUV".contains(&p2) {
        return false;
    }
    if [*b"BG", *b"GB", *b"KN", *b"NK", *b"NT", *b"TN", *b"ZZ"].contains(&[p1, p2]) {
        return false;
    }
    c[2..8].iter().all(u8::is_ascii_digit) && (b'A'..=b'D').contains(&c[8])
}

/// Luhn over the digits (rightmost is the check digit).
pub fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A payment card: 12–19 digits with the length and prefix of a real scheme
/// (Visa 4; Mastercard 51–55 and 2221–2720; Amex 34/37; Maestro 50, 56–69),
/// passing Luhn.
pub fn payment_card(b: &[u8]) -> bool {
    let Some((d, n)) = digits::<19>(b) else {
        return false;
    };
    let d = &d[..n];
    if n < 12 || all_same(d) {
        return false;
    }
    let p2 = u32::from(d[0]) * 10 + u32::from(d[1]);
    let p4 = p2 * 100 + u32::from(d[2]) * 10 + u32::from(d[3]);
    let scheme_ok = match d[0] {
        4 => matches!(n, 13 | 16 | 19),
        5 if (51..=55).contains(&p2) => n == 16,
        2 if (2221..=2720).contains(&p4) => n == 16,
        3 if p2 == 34 || p2 == 37 => n == 15,
        5 if p2 == 50 || (56..=59).contains(&p2) => n >= 12,
        6 => n >= 12,
        _ => false,
    };
    scheme_ok && luhn(d)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// IBAN: a known country's length, and mod 97 = 1 over the rearranged number.
/// A pattern may run on into the next group; only the country's length counts.
pub fn iban(b: &[u8]) -> bool {
    let Some((c, n)) = compact_upper::<40>(b) else {
        return false;
    };
    if n < 4 {
        return false;
    }
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(cc, _)| cc[..] == c[..2]) else {
        return false;
    };
    if n < len || !c[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let c = &c[..len];
    let mut rem = 0u32;
    for &ch in c[4..].iter().chain(&c[..4]) {
        let v = match ch {
            b'0'..=b'9' => u32::from(ch - b'0'),
            b'A'..=b'Z' => u32::from(ch - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A sort code (`NN-NN-NN`, `NN NN NN` or `NNNNNN`) and an account number (8
/// digits) in one match, either order. Rejects the pair when both are the same
/// digit over and over.
pub fn sort_code_account(b: &[u8]) -> bool {
    // Split the match into runs of digits joined by at most one separator.
    let mut groups: [(usize, usize); 8] = [(0, 0); 8];
    let mut ng = 0;
    let mut i = 0;
    while i < b.len() && ng < groups.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            let mut n = 0;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || (matches!(b[i], b'-' | b' ')
                        && i + 1 < b.len()
                        && b[i + 1].is_ascii_digit()
                        && n % 2 == 0
                        && n > 0
                        && n < 6))
            {
                if b[i].is_ascii_digit() {
                    n += 1;
                }
                i += 1;
            }
            groups[ng] = (start, n);
            ng += 1;
        } else {
            i += 1;
        }
    }
    let groups = &groups[..ng];
    let has_sort = groups.iter().any(|&(_, n)| n == 6);
    let account = groups.iter().find(|&&(_, n)| n == 8);
    match account {
        Some(&(start, _)) => {
            // The account's first eight digits (its group may hold a
            // separator), into a fixed buffer: validators allocate nothing.
            let mut acc = [0u8; 8];
            let account_digits = b[start..].iter().filter(|c| c.is_ascii_digit());
            for (slot, &c) in acc.iter_mut().zip(account_digits) {
                *slot = c;
            }
            has_sort && !all_same(&acc)
        }
        None => false,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// UK driving licence (DVLA): 5 surname characters padded with 9, decade
/// digit, month (01–12, +50 for women), day, year digit, 2 initials (padded
/// with 9), a digit, 2 check characters. The month and day must make sense.
pub fn driving_licence(b: &[u8]) -> bool {
    let Some((c, 16)) = compact_upper::<16>(b) else {
        return false;
    };
    let surname = &c[..5];
    // Letters first, then only 9s as padding; the first is a letter.
    let letters = surname
        .iter()
        .take_while(|ch| ch.is_ascii_uppercase())
        .count();
    if letters == 0 || !surname[letters..].iter().all(|&ch| ch == b'9') {
        return false;
    }
    if !c[5..11].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |i: usize| u32::from(c[i] - b'0') * 10 + u32::from(c[i + 1] - b'0');
    let mut month = num(6);
    if month > 50 {
        month -= 50;
    }
    let day = num(8);
    // Decade and year digit give the year within a century; any century will do
    // for the day check except that 29 February is allowed.
    let year = 1900 + u32::from(c[5] - b'0') * 10 + u32::from(c[10] - b'0');
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month).max(if month == 2 { 29 } else { 0 })
    {
        return false;
    }
    let initials_ok = c[11].is_ascii_uppercase() && (c[12].is_ascii_uppercase() || c[12] == b'9');
    initials_ok
        && c[13].is_ascii_digit()
        && c[14].is_ascii_alphanumeric()
        && c[15].is_ascii_alphanumeric()
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses the common ways of writing a date (`04/05/2014`, `4.5.14`,
/// `2014-05-04`, `4 May 2014`, `4th May 2014`, `4th of May 2014`,
/// `04-May-2014`, `04-May-14`, `May 4, 2014`), UK day-first.
pub fn parse_date(b: &[u8], today: (u16, u8, u8)) -> Option<(u32, u32, u32)> {
    // Tokenise into up to three numbers and one month name.
    let mut nums: [(u32, usize); 3] = [(0, 0); 3];
    let mut nn = 0;
    let mut month_name = None;
    let mut month_pos = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() {
            let (mut v, mut len) = (0u32, 0);
            while i < b.len() && b[i].is_ascii_digit() {
                v = v.saturating_mul(10).saturating_add(u32::from(b[i] - b'0'));
                len += 1;
                i += 1;
            }
            if nn == 3 {
                return None;
            }
            nums[nn] = (v, len);
            nn += 1;
            // Ordinal suffix: 4th, 1st, 22nd, 3rd.
            if i + 1 < b.len()
                && matches!(
                    &b[i..i + 2],
                    b"st" | b"nd" | b"rd" | b"th" | b"ST" | b"ND" | b"RD" | b"TH"
                )
            {
                i += 2;
            }
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &b[start..i];
            // "4th of May 2014".
            if word.eq_ignore_ascii_case(b"of") && nn > 0 && month_name.is_none() {
                continue;
            }
            if word.len() < 3 {
                return None;
            }
            let lower = [
                word[0].to_ascii_lowercase(),
                word[1].to_ascii_lowercase(),
                word[2].to_ascii_lowercase(),
            ];
            month_name = Some(MONTHS.iter().position(|m| **m == lower)? as u32 + 1);
            month_pos = nn;
        } else {
            i += 1;
        }
    }
    let (y, m, d, ylen) = match (month_name, nn) {
        (Some(m), 2) if month_pos == 1 => (nums[1].0, m, nums[0].0, nums[1].1),
        (Some(m), 2) if month_pos == 0 => (nums[1].0, m, nums[0].0, nums[1].1),
        (None, 3) if nums[0].1 == 4 => (nums[0].0, nums[1].0, nums[2].0, 4),
        (None, 3) => (nums[2].0, nums[1].0, nums[0].0, nums[2].1),
        _ => return None,
    };
    let y = match ylen {
        4 => y,
        2 => {
            let yy = u32::from(today.0 % 100);
            if y <= yy { 2000 + y } else { 1900 + y }
        }
        _ => return None,
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

/// A real calendar date, after 1900 and before today: what a date of birth
/// must be. Dates of events to come are not birthdays.
pub fn date_of_birth(b: &[u8], ctx: &ValidateCtx) -> bool {
    let Some((y, m, d)) = parse_date(b, ctx.today) else {
        return false;
    };
    let (ty, tm, td) = (
        u32::from(ctx.today.0),
        u32::from(ctx.today.1),
        u32::from(ctx.today.2),
    );
    y >= 1900 && (y, m, d) < (ty, tm, td)
}

/// The value after `password is`, `password:`, `pwd=`, `PIN:`…: present, at
/// least four characters, and not an ordinary word of a sentence about
/// passwords. A PIN must be 4–8 digits.
pub fn credential_value(b: &[u8]) -> bool {
    // The keyword is the first word; the value the last whitespace-separated token.
    let keyword_end = b
        .iter()
        .position(|c| !c.is_ascii_alphabetic())
        .unwrap_or(b.len());
    let keyword = &b[..keyword_end];
    let value = b
        .rsplit(|c| c.is_ascii_whitespace() || *c == b':' || *c == b'=')
        .find(|t| !t.is_empty())
        .unwrap_or(b"");
    let value = value
        .strip_suffix(b".")
        .or_else(|| value.strip_suffix(b","))
        .unwrap_or(value);
    if value.len() < 4 || value.len() > 128 {
        return false;
    }
    if keyword.eq_ignore_ascii_case(b"pin") {
        return value.len() <= 8 && value.iter().all(u8::is_ascii_digit);
    }
    std::str::from_utf8(value).is_ok_and(|v| !hallpass_core::words::is_not_a_secret(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CTX: ValidateCtx = ValidateCtx {
        today: (2026, 11, 23),
    };

    /// Computes the check digit the way the NHS publishes it, independently of
    /// the validator, to make valid numbers from any nine digits.
    fn nhs_check(d: &[u8; 9]) -> Option<u8> {
        let s: u32 = d
            .iter()
            .enumerate()
            .map(|(i, &x)| u32::from(x) * (10 - i as u32))
            .sum();
        match 11 - s % 11 {
            11 => Some(0),
            10 => None,
            c => Some(c as u8),
        }
    }

    fn render(d: &[u8]) -> String {
        d.iter().map(|x| char::from(b'0' + x)).collect()
    }

    #[test]
    fn nhs_published_example_and_spacing() {
        assert!(nhs_number(b"9434765919"));
        assert!(nhs_number(b"943 476 5919"));
        assert!(nhs_number(b"943-476-5919"));
        assert!(!nhs_number(b"9434765918"));
        assert!(
            !nhs_number(b"1111111111"),
            "repeated digits are not numbers anyone was given"
        );
        assert!(!nhs_number(b"943476591"));
    }

    #[test]
    fn uln_published_examples() {
        assert!(uln(b"9276308686"));
        assert!(uln(b"1000102504"));
        assert!(!uln(b"9276308687"));
        assert!(!uln(b"0276308686"));
    }

    #[test]
    fn nino_prefix_rules() {
        assert!(nino(b"AB 12 34 56 C"));
        assert!(nino(b"ab123456c"));
        assert!(!nino(b"GB 12 34 56 A"), "GB is never issued");
        assert!(!nino(b"QQ123456C"), "Q is not a valid first letter");
        assert!(!nino(b"AO123456C"), "O is not a valid second letter");
        assert!(!nino(b"AB123456E"), "suffix is A to D");
        assert!(!nino(b"AB12345C"));
    }

    #[test]
    fn cards_need_a_scheme_prefix_and_luhn() {
        assert!(payment_card(b"4111 1111 1111 1111"));
        assert!(payment_card(b"5555-5555-5555-4444"));
        assert!(payment_card(b"378282246310005"));
        assert!(payment_card(b"2223003122003222"));
        assert!(!payment_card(b"4111 1111 1111 1112"));
        // Luhn-valid but no card scheme starts with 1 or 9.
        assert!(luhn(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 2]));
        assert!(!payment_card(b"1234567890123452"));
    }

    #[test]
    fn iban_checks_length_and_mod97() {
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89 3704 0044 0532 0130 00"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654 33"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654"), "too short for GB");
        assert!(!iban(b"QQ82 WEST 1234 5698 7654 32"), "no such country");
    }

    #[test]
    fn upn_check_letter() {
        // Build one by hand: LA 820, establishment 2001, year 14, serial 001.
        let body = b"820200114001";
        let sum: u32 = body
            .iter()
            .enumerate()
            .map(|(i, c)| u32::from(c - b'0') * (i as u32 + 2))
            .sum();
        let letter = UPN_ALPHABET[(sum % 23) as usize] as char;
        let good = format!("{letter}820200114001");
        assert!(upn(good.as_bytes()), "{good}");
        let wrong = UPN_ALPHABET[((sum + 1) % 23) as usize] as char;
        assert!(!upn(format!("{wrong}820200114001").as_bytes()));
        assert!(
            !upn(format!("{letter}120200114001").as_bytes()),
            "LA 120 does not exist"
        );
    }

    #[test]
    fn driving_licence_dates_must_be_real() {
        assert!(driving_licence(b"MORGA753116SM9IJ"));
        assert!(driving_licence(b"LEE99712310AB9XY"));
        assert!(!driving_licence(b"MORGA713116SM9IJ"), "month 13");
        assert!(!driving_licence(b"MORGA702306SM9IJ"), "30 February");
        assert!(
            !driving_licence(b"9ORGA753116SM9IJ"),
            "surname starts with a letter"
        );
        assert!(
            !driving_licence(b"MO9GA753116SM9IJ"),
            "9 pads only at the end"
        );
    }

    #[test]
    fn sort_code_and_account() {
        assert!(sort_code_account(b"40-12-34, account number 31926819"));
        assert!(sort_code_account(b"31926819 sort code 401234"));
        assert!(!sort_code_account(b"40-12-34 and nothing else"));
        assert!(!sort_code_account(b"40-12-34 a/c 11111111"));
    }

    #[test]
    fn dates_of_birth_are_real_and_past() {
        assert!(date_of_birth(b"04/05/2014", &CTX));
        assert!(date_of_birth(b"4 May 2014", &CTX));
        assert!(date_of_birth(b"4th May 2014", &CTX));
        assert!(date_of_birth(b"May 4, 2014", &CTX));
        assert!(date_of_birth(b"2014-05-04", &CTX));
        assert!(date_of_birth(b"29/02/2016", &CTX));
        assert!(date_of_birth(b"04.05.14", &CTX));
        assert!(!date_of_birth(b"29/02/2015", &CTX));
        assert!(!date_of_birth(b"31/04/2014", &CTX));
        assert!(
            !date_of_birth(b"12/07/2027", &CTX),
            "the future is nobody's birthday"
        );
        assert!(!date_of_birth(b"13/13/2014", &CTX));
    }

    #[test]
    fn credentials_need_a_value_not_a_sentence() {
        assert!(credential_value(b"password is Tulip42"));
        assert!(credential_value(b"Password: Tulip42"));
        assert!(credential_value(b"pwd=hunter22"));
        assert!(credential_value(b"PIN: 4821"));
        assert!(!credential_value(b"PIN: abcd"));
        assert!(!credential_value(b"password is reset"));
        assert!(!credential_value(b"password is below."));
        assert!(!credential_value(b"password: the"));
    }

    proptest! {
        #[test]
        fn every_generated_nhs_number_validates(nine in proptest::array::uniform9(0u8..10), sep in prop_oneof![Just(""), Just(" "), Just("-")]) {
            prop_assume!(!nine.iter().all(|&x| x == nine[0]));
            if let Some(c) = nhs_check(&nine) {
                let s = render(&nine);
                let text = format!("{}{sep}{}{sep}{}{}", &s[..3], &s[3..6], &s[6..], c);
                prop_assert!(nhs_number(text.as_bytes()), "{}", text);
                // Every other check digit is wrong.
                for other in (0..10).filter(|&o| o != c) {
                    let bad = format!("{s}{other}");
                    prop_assert!(!nhs_number(bad.as_bytes()), "{}", bad);
                }
            } else {
                for c in 0..10 {
                    let s = format!("{}{c}", render(&nine));
                    prop_assert!(!nhs_number(s.as_bytes()), "{}", s);
                }
            }
        }

        #[test]
        fn exactly_one_uln_check_digit_per_nine_digits(first in 1u8..10, rest in proptest::array::uniform8(0u8..10)) {
            let mut nine = [0u8; 9];
            nine[0] = first;
            nine[1..].copy_from_slice(&rest);
            let valid = (0..10).filter(|c| uln(format!("{}{c}", render(&nine)).as_bytes())).count();
            let s: u32 = nine.iter().enumerate().map(|(i, &x)| u32::from(x) * (10 - i as u32)).sum();
            prop_assert_eq!(valid, if s.is_multiple_of(11) || nine.iter().all(|&x| x == first) { 0 } else { 1 });
        }

        #[test]
        fn exactly_one_upn_check_letter(la in 201u32..=938, rest in proptest::array::uniform9(0u8..10)) {
            let body = format!("{la:03}{}", render(&rest));
            let valid = UPN_ALPHABET.iter().filter(|&&l| upn(format!("{}{body}", l as char).as_bytes())).count();
            prop_assert_eq!(valid, 1);
            // Letters outside the UPN alphabet are never check letters.
            for l in [b'I', b'O', b'S'] {
                let t = format!("{}{body}", l as char);
                prop_assert!(!upn(t.as_bytes()), "{}", t);
            }
        }

        #[test]
        fn luhn_catches_every_single_digit_error(digits in proptest::collection::vec(0u8..10, 14), pos in 0usize..14, delta in 1u8..10) {
            let mut d = vec![4u8];
            d.extend(&digits);
            // Fix the check digit so the number passes.
            let check = (0..10).find(|&c| { let mut t = d.clone(); t.push(c); luhn(&t) }).unwrap();
            d.push(check);
            prop_assume!(!d.iter().all(|&x| x == d[0]));
            prop_assert!(payment_card(render(&d).as_bytes()));
            let mut bad = d.clone();
            bad[pos + 1] = (bad[pos + 1] + delta) % 10;
            prop_assert!(!payment_card(render(&bad).as_bytes()));
        }

        #[test]
        fn gb_ibans_built_from_sort_code_and_account_validate(bank in "[A-Z]{4}", sort in "[0-9]{6}", acc in "[0-9]{8}") {
            // Check digits computed the ISO 7064 way, independently of the validator.
            let bban = format!("{bank}{sort}{acc}");
            let numeric: String = format!("{bban}GB00").chars().map(|c| if c.is_ascii_digit() { c.to_string() } else { (c as u32 - 'A' as u32 + 10).to_string() }).collect();
            let rem = numeric.bytes().fold(0u32, |r, c| (r * 10 + u32::from(c - b'0')) % 97);
            let check = 98 - rem;
            let good = format!("GB{check:02}{bban}");
            prop_assert!(iban(good.as_bytes()), "{}", good);
            let bad = format!("GB{:02}{bban}", (check + 1) % 100);
            prop_assert!(!iban(bad.as_bytes()), "{}", bad);
        }

        #[test]
        fn nino_accepts_exactly_the_issued_prefixes(a in "[A-Z]", b in "[A-Z]", n in "[0-9]{6}", s in "[A-F]") {
            let text = format!("{a}{b}{n}{s}");
            let p = format!("{a}{b}");
            let expect = !"DFIQUV".contains(&a) && !"DFIOQUV".contains(&b)
                && !["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&p.as_str())
                && "ABCD".contains(&s);
            prop_assert_eq!(nino(text.as_bytes()), expect, "{}", text);
        }

        #[test]
        fn validators_never_panic_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            for (_, f) in VALIDATORS {
                let _ = f(&b, &CTX);
            }
        }
    }
}
