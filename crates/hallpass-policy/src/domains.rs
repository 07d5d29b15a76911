//! Recipient classes and look-alike domains.

use hallpass_core::RecipientClass;

/// The domain of an address, lower-case, without a trailing dot.
pub fn domain_of(address: &str) -> Option<&str> {
    let d = address
        .rsplit_once('@')?
        .1
        .trim()
        .trim_end_matches('>')
        .trim_end_matches('.');
    if d.is_empty() { None } else { Some(d) }
}

/// True when `domain` is `parent` or a subdomain of it.
pub fn is_within(domain: &str, parent: &str) -> bool {
    domain.eq_ignore_ascii_case(parent)
        || (domain.len() > parent.len()
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
            && domain[domain.len() - parent.len()..].eq_ignore_ascii_case(parent))
}

/// Classifies an address. One without a domain cannot be placed and is
/// treated as external: hallpass fails closed.
pub fn classify(address: &str, internal: &[String], partner: &[String]) -> RecipientClass {
    let Some(d) = domain_of(address) else {
        return RecipientClass::External;
    };
    if internal.iter().any(|p| is_within(d, p)) {
        RecipientClass::Internal
    } else if partner.iter().any(|p| is_within(d, p)) {
        RecipientClass::Partner
    } else {
        RecipientClass::External
    }
}

/// A domain split at its public suffix: `lumen` + `sch.uk`. Where the whole
/// domain is itself a public suffix (the list has `*.sch.uk`, so every school's
/// domain is one), the first label is the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The registrable name: the label before the suffix.
    pub name: String,
    /// The public suffix.
    pub suffix: String,
}

/// Splits a domain with the Public Suffix List.
pub fn split(domain: &str) -> Option<Split> {
    let domain = domain.to_ascii_lowercase();
    let suffix = psl::suffix_str(&domain)?.to_string();
    let suffix = if suffix == domain {
        domain.split_once('.')?.1.to_string()
    } else {
        suffix
    };
    let before = domain.strip_suffix(&suffix)?.strip_suffix('.')?;
    let name = before.rsplit('.').next()?.to_string();
    if name.is_empty() {
        None
    } else {
        Some(Split { name, suffix })
    }
}

/// True when `a` and `b` differ by at most one insertion, deletion,
/// substitution, or swap of two neighbouring characters.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        // Substitution, or transposition of positions prefix and prefix+1.
        let rest_same = |from: usize| short[from..] == long[from..];
        rest_same(prefix + 1)
            || (prefix + 1 < short.len()
                && short[prefix] == long[prefix + 1]
                && short[prefix + 1] == long[prefix]
                && rest_same(prefix + 2))
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

/// The shape of a name as a reader sees it at a glance: digits and letter
/// pairs that pass for letters are folded (`1umen`, `lurnen`, `c0uncil`).
pub fn skeleton(name: &str) -> String {
    let lower = name
        .to_ascii_lowercase()
        .replace("rn", "m")
        .replace("vv", "w")
        .replace("cl", "d")
        .replace('-', "");
    lower
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' | 'i' | '|' => 'l',
            '3' => 'e',
            '5' => 's',
            '4' => 'a',
            '8' => 'b',
            c => c,
        })
        .collect()
}

/// Precomputed protected domains (internal and partner) for look-alike checks.
#[derive(Debug, Clone)]
pub struct Protected {
    domains: Vec<(String, Option<Split>, String)>,
}

impl Protected {
    /// Protects the given domains.
    pub fn new<'a>(domains: impl IntoIterator<Item = &'a String>) -> Protected {
        Protected {
            domains: domains
                .into_iter()
                .map(|d| {
                    let s = split(d);
                    let sk = s.as_ref().map(|s| skeleton(&s.name)).unwrap_or_default();
                    (d.to_ascii_lowercase(), s, sk)
                })
                .collect(),
        }
    }

    /// The protected domain `domain` looks like, if any. `domain` must already
    /// be known not to be internal or partner.
    pub fn lookalike_of(&self, domain: &str) -> Option<&str> {
        let domain = domain.to_ascii_lowercase();
        let r = split(&domain)?;
        let r_reg = format!("{}.{}", r.name, r.suffix);
        for (p, ps, p_skel) in &self.domains {
            let Some(ps) = ps else { continue };
            let p_reg = format!("{}.{}", ps.name, ps.suffix);
            if r_reg == p_reg {
                continue;
            }
            let same_suffix = r.suffix == ps.suffix;
            let close_name = ps.name.len() >= 3 && within_one_edit(&r.name, &ps.name);
            let looks_same = ps.name.len() >= 3 && skeleton(&r.name) == *p_skel;
            // The same name under another suffix: lumen.co.uk, council.gov.com.
            let other_suffix = r.name == ps.name;
            // The protected domain with a suffix stuck on: lumen.sch.co.uk.
            let p_without_tld = p.rsplit_once('.').map_or(p.as_str(), |(head, _)| head);
            let extended =
                domain.starts_with(&format!("{p_without_tld}.")) && !is_within(&domain, p);
            // One slip anywhere in the whole domain: lumen.sch.ukk, lumensch.uk.
            let whole_close = within_one_edit(&domain, p) && p.len() >= 6;
            if (same_suffix && (close_name || looks_same))
                || other_suffix
                || extended
                || whole_close
            {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_belong_to_their_parent() {
        let internal = vec!["lumen.sch.uk".to_string()];
        let partner = vec!["council.gov.uk".to_string()];
        assert_eq!(
            classify("a@Staff.Lumen.SCH.uk", &internal, &partner),
            RecipientClass::Internal
        );
        assert_eq!(
            classify("a@council.gov.uk", &internal, &partner),
            RecipientClass::Partner
        );
        assert_eq!(
            classify("a@notlumen.sch.uk", &internal, &partner),
            RecipientClass::External
        );
        assert_eq!(
            classify("postmaster", &internal, &partner),
            RecipientClass::External
        );
    }

    #[test]
    fn schools_split_under_the_sch_uk_wildcard() {
        assert_eq!(
            split("lumen.sch.uk"),
            Some(Split {
                name: "lumen".into(),
                suffix: "sch.uk".into()
            })
        );
        assert_eq!(
            split("mail.council.gov.uk"),
            Some(Split {
                name: "council".into(),
                suffix: "gov.uk".into()
            })
        );
        assert_eq!(
            split("example.com"),
            Some(Split {
                name: "example".into(),
                suffix: "com".into()
            })
        );
    }

    #[test]
    fn one_edit_means_one() {
        assert!(within_one_edit("lumen", "lumne"));
        assert!(within_one_edit("lumen", "lumn"));
        assert!(within_one_edit("lumen", "lumens"));
        assert!(within_one_edit("lumen", "lumex"));
        assert!(!within_one_edit("lumen", "lmuen2"));
        assert!(!within_one_edit("lumen", "nemul"));
    }

    #[test]
    fn lookalikes_of_a_school_and_its_council() {
        let p = Protected::new(&["lumen.sch.uk".to_string(), "council.gov.uk".to_string()]);
        for bad in [
            "lumne.sch.uk",
            "1umen.sch.uk",
            "lurnen.sch.uk",
            "lumen.co.uk",
            "lumen.sch.co.uk",
            "lumen.com",
            "counci1.gov.uk",
            "council.gov.com",
            "councii.gov.uk",
            "lumen.sch.ukk",
        ] {
            assert!(
                p.lookalike_of(bad).is_some(),
                "{bad} should look like a protected domain"
            );
        }
        for fine in [
            "example.com",
            "gmail.com",
            "hotmail.co.uk",
            "othercouncil.gov.uk",
            "brightwater.sch.uk",
            "example.org",
        ] {
            assert_eq!(p.lookalike_of(fine), None, "{fine} is not a look-alike");
        }
    }
}
