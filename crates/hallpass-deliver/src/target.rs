//! Where delivered mail goes: the `[upstream] address` of the configuration.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where delivered mail goes: an SMTP server, or a folder of `.eml` files (trials).
///
/// Parsed from the `[upstream] address` setting: `"127.0.0.1:2526"`, `"mail.example.org:25"`,
/// `"[::1]:2526"`, `"mail.example.org"` (port 25), or `"dir:PATH"`. [`fmt::Display`] writes
/// the same form back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An SMTP server (a host name or an IP address, without brackets) and its port.
    Smtp {
        /// Host name or IP address (an IPv6 address without its brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A folder: each message becomes `<name>.eml` with `<name>.envelope` beside it.
    Dir(PathBuf),
}

/// Why an `[upstream] address` could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Nothing was given.
    #[error(
        "the upstream address is empty; write host:port (for example 127.0.0.1:2526) or dir:PATH"
    )]
    Empty,
    /// `dir:` without a path.
    #[error("`dir:` needs a folder after it, for example dir:data/outbox")]
    EmptyDir,
    /// The host part is missing or has characters a host name cannot have.
    #[error(
        "`{0}` is not a host name or IP address; write host:port, for example mail.example.org:25"
    )]
    BadHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("`{0}` is not a port number (1 to 65535)")]
    BadPort(String),
    /// An IPv6 address written without brackets.
    #[error("write an IPv6 address in brackets with its port, for example [::1]:2526")]
    Ipv6NeedsBrackets,
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        if let Some(path) = s.strip_prefix("dir:") {
            if path.is_empty() {
                return Err(TargetError::EmptyDir);
            }
            return Ok(Target::Dir(PathBuf::from(path)));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::BadHost(s.to_string()))?;
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(TargetError::BadHost(inside.to_string()));
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| TargetError::BadPort(after.to_string()))?,
                ),
            };
            (inside, port)
        } else {
            let (host, port) = match s.split_once(':') {
                None => (s, None),
                Some((_, port)) if port.contains(':') => {
                    return Err(TargetError::Ipv6NeedsBrackets);
                }
                Some((host, port)) => (host, Some(port)),
            };
            if !host_is_valid(host) {
                return Err(TargetError::BadHost(host.to_string()));
            }
            (host, port)
        };
        let port = match port {
            None => 25,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(TargetError::BadPort(text.to_string())),
            },
        };
        Ok(Target::Smtp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Smtp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Smtp { host, port } => write!(f, "{host}:{port}"),
            Target::Dir(path) => write!(f, "dir:{}", path.display()),
        }
    }
}

/// A host name (letters, digits, `-`, `_`, dots between labels) or an IPv4 address.
fn host_is_valid(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(host: &str, port: u16) -> Target {
        Target::Smtp {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parses_the_forms_of_the_contract() {
        assert_eq!("127.0.0.1:2526".parse(), Ok(smtp("127.0.0.1", 2526)));
        assert_eq!(
            "mail.example.org:25".parse(),
            Ok(smtp("mail.example.org", 25))
        );
        assert_eq!("[::1]:2526".parse(), Ok(smtp("::1", 2526)));
        assert_eq!(
            "dir:data/outbox".parse(),
            Ok(Target::Dir(PathBuf::from("data/outbox")))
        );
    }

    #[test]
    fn a_bare_host_means_port_25() {
        assert_eq!("mail.example.org".parse(), Ok(smtp("mail.example.org", 25)));
        assert_eq!("[2001:db8::1]".parse(), Ok(smtp("2001:db8::1", 25)));
    }

    #[test]
    fn display_writes_what_parses_back() {
        for text in [
            "127.0.0.1:2526",
            "mail.example.org:25",
            "[::1]:2526",
            "dir:/var/spool/out",
        ] {
            let target: Target = text.parse().unwrap();
            assert_eq!(target.to_string(), text);
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert_eq!("".parse::<Target>(), Err(TargetError::Empty));
        assert_eq!("dir:".parse::<Target>(), Err(TargetError::EmptyDir));
        assert_eq!(
            "::1:25".parse::<Target>(),
            Err(TargetError::Ipv6NeedsBrackets)
        );
        assert_eq!(
            "mail.example.org:0".parse::<Target>(),
            Err(TargetError::BadPort("0".into()))
        );
        assert_eq!(
            "mail.example.org:smtp".parse::<Target>(),
            Err(TargetError::BadPort("smtp".into()))
        );
        assert_eq!(
            "mail.example.org:".parse::<Target>(),
            Err(TargetError::BadPort("".into()))
        );
        assert_eq!(
            ":25".parse::<Target>(),
            Err(TargetError::BadHost("".into()))
        );
        assert_eq!(
            "mail example.org:25".parse::<Target>(),
            Err(TargetError::BadHost("mail example.org".into()))
        );
        assert_eq!(
            "[not-ipv6]:25".parse::<Target>(),
            Err(TargetError::BadHost("not-ipv6".into()))
        );
        assert_eq!(
            "[::1]2526".parse::<Target>(),
            Err(TargetError::BadPort("2526".into()))
        );
    }
}
