//! `hallpass.toml` as typed values.
//!
//! The file is read once into a raw, span-carrying form (`Raw*`), checked, and
//! turned into [`Config`], whose values are ready to use: domains lower-cased
//! and validated, networks parsed, paths resolved against the directory of the
//! config file. Every key has a default that works on a fresh machine.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Problem, Problems, toml_problem};
use crate::model::{Action, Confidence};

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages; relative paths were resolved against its directory).
    pub source: PathBuf,
    /// Who the school is.
    pub organisation: Organisation,
    /// The SMTP listener.
    pub smtp: Smtp,
    /// The next hop.
    pub upstream: Upstream,
    /// Retries and connections to the next hop.
    pub delivery: Delivery,
    /// Spool and store.
    pub storage: Storage,
    /// Shared counters (Redis), if any.
    pub counters: Counters,
    /// The DPO console.
    pub console: Console,
    /// Where detector files are.
    pub detectors: Detectors,
    /// Emails to senders about their held messages.
    pub notifications: Notifications,
    /// Rule actions and thresholds.
    pub rules: Rules,
    /// Limits on what one message may cost to read.
    pub limits: Limits,
}

/// `[organisation]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// Display name, used in notifications.
    pub name: String,
    /// The school's own domains; their subdomains count as internal too.
    pub internal_domains: Vec<String>,
    /// Trusted external organisations.
    pub partner_domains: Vec<String>,
    /// The address hallpass's own mail (notifications, bounces) comes from.
    pub postmaster: String,
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Clients that may relay without AUTH.
    pub allowed_networks: Vec<Cidr>,
    /// STARTTLS certificate (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// STARTTLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted, advertised in SIZE.
    pub max_message_size: u64,
    /// Name in the greeting and `Received:` headers (empty: the machine's host name).
    pub hostname: String,
    /// Recipients accepted per message.
    pub max_recipients: u32,
    /// Connections at once, in total.
    pub max_connections: u32,
    /// Connections at once from one client address.
    pub max_connections_per_client: u32,
    /// Seconds a client may take between commands.
    pub command_timeout_seconds: u64,
    /// Seconds a client may pause while sending a message.
    pub data_timeout_seconds: u64,
    /// Only the school's own domains (and the null sender) may send through hallpass.
    pub restrict_senders: bool,
    /// A header every message from an `allowed_networks` client (not a relay account) must
    /// carry with one of `tenant_ids` — for cloud mail services whose servers are shared by
    /// every customer (Microsoft 365's `X-MS-Exchange-CrossTenant-Id`). Empty: not checked.
    pub tenant_header: String,
    /// The values of `tenant_header` that are this organisation's (compared case-insensitively).
    pub tenant_ids: Vec<String>,
}

/// `[delivery]`: how copies are passed on upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Refuse to send to the upstream without STARTTLS.
    pub require_tls: bool,
    /// Accept a self-signed upstream certificate (an upstream on the same network).
    pub accept_invalid_certs: bool,
    /// Connections to the upstream at once.
    pub concurrency: u32,
    /// First retry after a temporary failure, in seconds; doubled each time.
    pub min_backoff_seconds: u64,
    /// Longest wait between retries, in seconds.
    pub max_backoff_seconds: u64,
    /// After this many hours of temporary failures, give up and tell the sender.
    pub max_queue_lifetime_hours: u64,
}

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Relay over SMTP to `host:port`.
    Smtp(String),
    /// Write each delivered copy as an `.eml` file into a folder (trials).
    Dir(PathBuf),
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// Spool and embedded store.
    pub path: PathBuf,
    /// A shared store (`postgres://…`); the embedded SQLite store when absent.
    pub url: Option<String>,
    /// This relay's name in a shared store, naming its spool; the host name and the spool's
    /// folder when absent. Must differ between relays and stay the same across restarts.
    pub node: Option<String>,
    /// Days a held message waits for a decision before it is purged (rejected, file deleted).
    pub held_retention_days: u32,
    /// Days a released or rejected message's file is kept for the DPO to look back at.
    pub decided_retention_days: u32,
}

/// `[counters]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// `redis://…`; the store keeps the counters when absent.
    pub url: Option<String>,
    /// Prefix of every Redis key hallpass writes (`hallpass:` by default), so several
    /// installations (or tests) can share one Redis.
    pub prefix: String,
}

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Address and port of the web console.
    pub listen: SocketAddr,
    /// The console's address as the DPO's browser reaches it (`https://hallpass.school.sch.uk`),
    /// without a trailing `/`, for links in emails; `None`: made from `listen`.
    pub public_url: Option<String>,
    /// `GET /metrics` without a login or token (false by default: it needs a dpo or admin's
    /// session or Bearer token, like `/api`).
    pub metrics_public: bool,
    /// Serve HTTPS (only) with this certificate (`tls = true`): `[console] tls_cert`/`tls_key`,
    /// else `[smtp]`'s. `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Mark the session cookie `Secure`: always over HTTPS, and when asked because a reverse
    /// proxy terminates TLS in front of a plain-HTTP console.
    pub secure_cookies: bool,
    /// Reverse proxies in front of the console: from these, the client's address (for the audit
    /// trail and the login throttle) is read from `X-Forwarded-For`. Empty: the header is ignored.
    pub trusted_proxies: Vec<Cidr>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

/// `[notifications]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    /// Tell senders when a message of theirs is held, released or rejected.
    pub enabled: bool,
    /// Folder of the wording (`held.txt`, `released.txt`, `rejected.txt`); a file that is
    /// missing there falls back to the shipped wording.
    pub templates: PathBuf,
    /// Who gets the daily digest of held messages (the DPO); empty: no digest.
    pub digest_to: Vec<String>,
    /// The hour (UTC, 0-23) from which the day's digest is sent.
    pub digest_hour: u8,
}

/// `[detectors]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detectors {
    /// Folder of `*.toml` detector files.
    pub path: PathBuf,
}

/// `[rules.*]`: what each rule does and its thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `[rules.personal_data_external]`.
    pub personal_data_external: PersonalDataRule,
    /// `[rules.password_in_same_message]`.
    pub password_in_same_message: Action,
    /// `[rules.misdirected_domain]`.
    pub misdirected_domain: Action,
    /// `[rules.bulk_send]`.
    pub bulk_send: BulkSendRule,
    /// `[rules.cc_exposure]`.
    pub cc_exposure: CcExposureRule,
    /// `[rules.unscannable]`.
    pub unscannable: Action,
}

/// `[rules.personal_data_external]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalDataRule {
    /// What to do.
    pub action: Action,
    /// Findings below this confidence are reported but not acted on.
    pub min_confidence: Confidence,
    /// Partners may receive personal data without a hold.
    pub partners_allowed: bool,
}

/// `[rules.bulk_send]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSendRule {
    /// What to do.
    pub action: Action,
    /// More than this many non-internal recipients in one message fires.
    pub max_recipients: u32,
    /// More than this many external recipients from one sender within the window fires.
    pub window_recipients: u32,
    /// The sliding window, in seconds.
    pub window_seconds: u64,
}

/// `[rules.cc_exposure]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcExposureRule {
    /// What to do.
    pub action: Action,
    /// This many external addresses visible in To/Cc fires.
    pub threshold: u32,
}

/// `[limits]`: what reading one message may cost before the part that went
/// over is marked unscannable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// MIME parts read per message.
    pub max_parts: u32,
    /// Nesting of attached messages and archives.
    pub max_depth: u32,
    /// Text extracted per message, in bytes.
    pub max_text_bytes: u64,
    /// Bytes decompressed from archives and documents per message.
    pub max_decompressed_bytes: u64,
    /// Largest decompressed/compressed ratio of one archive member (zip bombs).
    pub max_ratio: u32,
    /// Members read from one archive.
    pub max_members: u32,
    /// Objects in one PDF.
    pub max_pdf_objects: u32,
    /// Time to read one message, in milliseconds; what is left unread then is
    /// unscannable.
    pub time_budget_ms: u64,
}

/// An IP network such as `127.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Config {
    /// Reads and checks a config file from disk.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        match std::fs::read_to_string(path) {
            Ok(src) => Config::from_toml(path, &src),
            Err(e) => Err(Problems(vec![Problem {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the configuration file: {e}"),
            }])),
        }
    }

    /// Parses and checks `src`, the text of the file at `path`. Relative paths
    /// in it are resolved against the directory of `path`.
    pub fn from_toml(path: &Path, src: &str) -> Result<Config, Problems> {
        let raw: RawConfig =
            toml::from_str(src).map_err(|e| Problems(vec![toml_problem(path, src, &e)]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut problems = Problems::default();
        let mut at = |span: std::ops::Range<usize>, msg: String| {
            problems.push(Problem::at(path, src, Some(span), msg))
        };

        let internal_domains = domains(&raw.organisation.internal_domains, &mut at);
        let partner_domains = domains(&raw.organisation.partner_domains, &mut at);
        if internal_domains.is_empty() {
            at(0..0, "[organisation] internal_domains is empty: name the school's own mail domains, e.g. [\"lumen.sch.uk\"]".into());
        }

        let mut allowed_networks = Vec::new();
        for n in &raw.smtp.allowed_networks {
            match n.get_ref().parse::<Cidr>() {
                Ok(c) => allowed_networks.push(c),
                Err(e) => at(n.span(), e),
            }
        }
        let mut trusted_proxies = Vec::new();
        for n in &raw.console.trusted_proxies {
            match n.get_ref().parse::<Cidr>() {
                Ok(c) => trusted_proxies.push(c),
                Err(e) => at(n.span(), format!("[console] trusted_proxies: {e}")),
            }
        }
        let smtp_listen = socket_addr(&raw.smtp.listen, &mut at);
        let console_listen = socket_addr(&raw.console.listen, &mut at);
        if raw.smtp.tls_cert.is_some() != raw.smtp.tls_key.is_some() {
            let span = raw
                .smtp
                .tls_cert
                .as_ref()
                .or(raw.smtp.tls_key.as_ref())
                .map_or(0..0, Spanned::span);
            at(span, "set both tls_cert and tls_key, or neither".into());
        }
        let console_tls = console_tls(&raw.console, &raw.smtp, &base, &mut at);
        if raw.smtp.max_message_size == 0 {
            at(0..0, "[smtp] max_message_size must be more than 0".into());
        }
        for (v, name) in [
            (u64::from(raw.smtp.max_recipients), "max_recipients"),
            (u64::from(raw.smtp.max_connections), "max_connections"),
            (
                u64::from(raw.smtp.max_connections_per_client),
                "max_connections_per_client",
            ),
            (raw.smtp.command_timeout_seconds, "command_timeout_seconds"),
            (raw.smtp.data_timeout_seconds, "data_timeout_seconds"),
            (
                u64::from(raw.delivery.concurrency),
                "[delivery] concurrency",
            ),
            (
                u64::from(raw.storage.held_retention_days),
                "[storage] held_retention_days",
            ),
            (
                u64::from(raw.storage.decided_retention_days),
                "[storage] decided_retention_days",
            ),
            (
                raw.delivery.min_backoff_seconds,
                "[delivery] min_backoff_seconds",
            ),
            (
                raw.delivery.max_queue_lifetime_hours,
                "[delivery] max_queue_lifetime_hours",
            ),
        ] {
            if v == 0 {
                at(0..0, format!("{name} must be at least 1"));
            }
        }
        if raw.delivery.max_backoff_seconds < raw.delivery.min_backoff_seconds {
            at(
                0..0,
                "[delivery] max_backoff_seconds must not be less than min_backoff_seconds".into(),
            );
        }
        let mut digest_to = Vec::new();
        for a in &raw.notifications.digest_to {
            let v = a.get_ref().trim().to_ascii_lowercase();
            match mail_address(&v) {
                Ok(()) => digest_to.push(v),
                Err(why) => at(
                    a.span(),
                    format!("digest_to `{}` is not a mail address: {why}", a.get_ref()),
                ),
            }
        }
        if *raw.notifications.digest_hour.get_ref() > 23 {
            at(
                raw.notifications.digest_hour.span(),
                "digest_hour is an hour of the day (UTC), 0 to 23".into(),
            );
        }
        if let Some(u) = &raw.counters.url {
            let v = u.get_ref();
            if !(v.starts_with("redis://")
                || v.starts_with("redis+unix://")
                || v.starts_with("unix://"))
            {
                at(
                    u.span(),
                    format!(
                        "counters url `{v}` must be a Redis address like redis://127.0.0.1:6379 (rediss:// is not supported: keep Redis on a private network or a local socket)"
                    ),
                );
            }
        }
        let public_url = raw.console.public_url.as_ref().map(|u| {
            let v = u.get_ref().trim().trim_end_matches('/').to_string();
            let rest = v
                .strip_prefix("https://")
                .or_else(|| v.strip_prefix("http://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(|c: char| c.is_whitespace() || c.is_control())) {
                at(
                    u.span(),
                    format!(
                        "public_url `{}` must be the console's address as a browser reaches it, like https://hallpass.school.sch.uk",
                        u.get_ref()
                    ),
                );
            }
            v
        });
        let postmaster = match &raw.organisation.postmaster {
            Some(p) => {
                let v = p.get_ref().trim().to_ascii_lowercase();
                match v.rsplit_once('@') {
                    Some((local, domain)) if !local.is_empty() && check_domain(domain).is_ok() => v,
                    _ => {
                        at(
                            p.span(),
                            format!(
                                "postmaster `{}` is not a mail address like postmaster@school.sch.uk",
                                p.get_ref()
                            ),
                        );
                        v
                    }
                }
            }
            None => format!(
                "postmaster@{}",
                internal_domains.first().map_or("localhost", String::as_str)
            ),
        };

        let upstream = {
            let a = raw.upstream.address.get_ref().trim();
            if let Some(dir) = a.strip_prefix("dir:") {
                Upstream::Dir(base.join(dir))
            } else if a
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                Upstream::Smtp(a.to_string())
            } else {
                at(
                    raw.upstream.address.span(),
                    format!("upstream address `{a}` must be host:port or dir:PATH"),
                );
                Upstream::Smtp(a.to_string())
            }
        };

        let r = &raw.rules;
        let bulk = &r.bulk_send;
        for (v, name) in [
            (&bulk.max_recipients, "max_recipients"),
            (&bulk.window_recipients, "window_recipients"),
            (&r.cc_exposure.threshold, "threshold"),
        ] {
            if *v.get_ref() == 0 {
                at(v.span(), format!("{name} must be at least 1"));
            }
        }
        if *bulk.window_seconds.get_ref() == 0 {
            at(
                bulk.window_seconds.span(),
                "window_seconds must be at least 1".into(),
            );
        }
        let tenant = raw.smtp.tenant_header.get_ref().trim();
        if !tenant.is_empty() {
            if !tenant.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                at(
                    raw.smtp.tenant_header.span(),
                    "[smtp] tenant_header must be a header name (letters, digits and '-', no ':')"
                        .into(),
                );
            } else if raw.smtp.tenant_ids.is_empty()
                || raw.smtp.tenant_ids.iter().any(|v| v.trim().is_empty())
            {
                at(
                    raw.smtp.tenant_header.span(),
                    "[smtp] tenant_header needs tenant_ids: the values that are this organisation's, none empty"
                        .into(),
                );
            }
        }
        if raw.limits.max_depth == 0 || raw.limits.max_parts == 0 || raw.limits.max_text_bytes == 0
        {
            at(0..0, "[limits] values must be more than 0".into());
        }

        let config = Config {
            source: path.to_path_buf(),
            organisation: Organisation {
                name: raw.organisation.name,
                internal_domains,
                partner_domains,
                postmaster,
            },
            smtp: Smtp {
                listen: smtp_listen,
                allowed_networks,
                tls_cert: raw.smtp.tls_cert.map(|p| base.join(p.into_inner())),
                tls_key: raw.smtp.tls_key.map(|p| base.join(p.into_inner())),
                max_message_size: raw.smtp.max_message_size,
                hostname: raw.smtp.hostname.trim().to_string(),
                max_recipients: raw.smtp.max_recipients,
                max_connections: raw.smtp.max_connections,
                max_connections_per_client: raw.smtp.max_connections_per_client,
                command_timeout_seconds: raw.smtp.command_timeout_seconds,
                data_timeout_seconds: raw.smtp.data_timeout_seconds,
                restrict_senders: raw.smtp.restrict_senders,
                tenant_header: raw.smtp.tenant_header.get_ref().trim().to_string(),
                tenant_ids: raw
                    .smtp
                    .tenant_ids
                    .iter()
                    .map(|v| v.trim().to_string())
                    .collect(),
            },
            upstream,
            delivery: Delivery {
                require_tls: raw.delivery.require_tls,
                accept_invalid_certs: raw.delivery.accept_invalid_certs,
                concurrency: raw.delivery.concurrency,
                min_backoff_seconds: raw.delivery.min_backoff_seconds,
                max_backoff_seconds: raw.delivery.max_backoff_seconds,
                max_queue_lifetime_hours: raw.delivery.max_queue_lifetime_hours,
            },
            storage: Storage {
                path: base.join(raw.storage.path),
                url: raw.storage.url,
                node: raw.storage.node,
                held_retention_days: raw.storage.held_retention_days,
                decided_retention_days: raw.storage.decided_retention_days,
            },
            counters: Counters {
                url: raw.counters.url.map(Spanned::into_inner),
                prefix: raw.counters.prefix,
            },
            console: Console {
                listen: console_listen,
                public_url,
                metrics_public: raw.console.metrics_public,
                secure_cookies: raw
                    .console
                    .secure_cookies
                    .map_or(console_tls.is_some(), Spanned::into_inner),
                tls: console_tls,
                trusted_proxies,
            },
            detectors: Detectors {
                path: base.join(raw.detectors.path),
            },
            notifications: Notifications {
                enabled: raw.notifications.enabled,
                templates: base.join(raw.notifications.templates),
                digest_to,
                digest_hour: (*raw.notifications.digest_hour.get_ref()).min(23),
            },
            rules: Rules {
                personal_data_external: PersonalDataRule {
                    action: r.personal_data_external.action,
                    min_confidence: r.personal_data_external.min_confidence,
                    partners_allowed: r.personal_data_external.partners_allowed,
                },
                password_in_same_message: r.password_in_same_message.action,
                misdirected_domain: r.misdirected_domain.action,
                bulk_send: BulkSendRule {
                    action: bulk.action,
                    max_recipients: *bulk.max_recipients.get_ref(),
                    window_recipients: *bulk.window_recipients.get_ref(),
                    window_seconds: *bulk.window_seconds.get_ref(),
                },
                cc_exposure: CcExposureRule {
                    action: r.cc_exposure.action,
                    threshold: *r.cc_exposure.threshold.get_ref(),
                },
                unscannable: r.unscannable.action,
            },
            limits: Limits {
                max_parts: raw.limits.max_parts,
                max_depth: raw.limits.max_depth,
                max_text_bytes: raw.limits.max_text_bytes,
                max_decompressed_bytes: raw.limits.max_decompressed_bytes,
                max_ratio: raw.limits.max_ratio,
                max_members: raw.limits.max_members,
                max_pdf_objects: raw.limits.max_pdf_objects,
                time_budget_ms: raw.limits.time_budget_ms,
            },
        };
        problems.into_result(config)
    }

    /// The configuration used when no file is given at all (tests, `scan` of a
    /// single message in a tool): the shipped defaults with no domains.
    pub fn defaults_for(internal: &[&str], partner: &[&str]) -> Config {
        let src = format!(
            "[organisation]\ninternal_domains = {:?}\npartner_domains = {:?}\n",
            internal, partner
        );
        Config::from_toml(Path::new("defaults.toml"), &src).expect("the defaults are valid")
    }
}

fn domains(
    list: &[Spanned<String>],
    at: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Vec<String> {
    let mut out = Vec::new();
    for d in list {
        let v = d
            .get_ref()
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        match check_domain(&v) {
            Ok(()) => out.push(v),
            Err(why) => at(
                d.span(),
                format!("`{}` is not a mail domain: {why}", d.get_ref()),
            ),
        }
    }
    out
}

/// Checks that `a` (lower-case) is a plausible mail address: `local@domain`.
fn mail_address(a: &str) -> Result<(), &'static str> {
    match a.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !local.contains(|c: char| {
                    c.is_whitespace() || c.is_control() || "<>,;\"".contains(c)
                }) =>
        {
            check_domain(domain)
        }
        _ => Err("write it like dpo@school.sch.uk"),
    }
}

/// Checks that `d` (lower-case) is a plausible mail domain: at least two
/// labels of letters, digits and hyphens.
pub fn check_domain(d: &str) -> Result<(), &'static str> {
    if d.is_empty() || d.len() > 253 {
        return Err("it must be 1 to 253 characters");
    }
    if d.contains('@') {
        return Err("give the domain only, without a user and @");
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err("it needs at least two labels, like school.sch.uk");
    }
    for l in labels {
        if l.is_empty() || l.len() > 63 {
            return Err("each label must be 1 to 63 characters");
        }
        if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("labels may hold letters, digits and hyphens only (write IDNs as xn--)");
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err("a label cannot start or end with a hyphen");
        }
    }
    Ok(())
}

/// `[console] tls`: the certificate and key to serve HTTPS with, checked.
fn console_tls(
    c: &RawConsole,
    smtp: &RawSmtp,
    base: &Path,
    at: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Option<TlsFiles> {
    let tls = *c.tls.get_ref();
    let own = match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            at(
                one.span(),
                "[console] set both tls_cert and tls_key, or neither (then [smtp]'s are used)"
                    .into(),
            );
            None
        }
    };
    if !tls {
        if let Some(one) = c.tls_cert.as_ref().or(c.tls_key.as_ref()) {
            at(
                one.span(),
                "[console] tls_cert and tls_key are used only with tls = true: set tls = true, \
                 or remove them"
                    .into(),
            );
        }
        return None;
    }
    if let Some(s) = &c.secure_cookies
        && !*s.get_ref()
    {
        at(
            s.span(),
            "[console] secure_cookies = false cannot go with tls = true: over HTTPS the session \
             cookie is always Secure (remove the line)"
                .into(),
        );
    }
    let (cert, key) = match (own, &smtp.tls_cert, &smtp.tls_key) {
        (Some((cert, key)), _, _) | (None, Some(cert), Some(key)) => (cert, key),
        _ => {
            if c.tls_cert.is_none() && c.tls_key.is_none() {
                at(
                    c.tls.span(),
                    "[console] tls = true needs a certificate: set [console] tls_cert and \
                     tls_key, or [smtp] tls_cert and tls_key"
                        .into(),
                );
            }
            return None;
        }
    };
    Some(TlsFiles {
        cert: base.join(cert.get_ref()),
        key: base.join(key.get_ref()),
    })
}

fn socket_addr(
    s: &Spanned<String>,
    at: &mut impl FnMut(std::ops::Range<usize>, String),
) -> SocketAddr {
    s.get_ref().parse().unwrap_or_else(|_| {
        at(
            s.span(),
            format!(
                "`{}` is not an address and port like 127.0.0.1:2525",
                s.get_ref()
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 0))
    })
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    organisation: RawOrganisation,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    counters: RawCounters,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    detectors: RawDetectors,
    #[serde(default)]
    notifications: RawNotifications,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOrganisation {
    #[serde(default)]
    name: String,
    #[serde(default)]
    internal_domains: Vec<Spanned<String>>,
    #[serde(default)]
    partner_domains: Vec<Spanned<String>>,
    #[serde(default)]
    postmaster: Option<Spanned<String>>,
}

fn spanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSmtp {
    listen: Spanned<String>,
    allowed_networks: Vec<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    max_message_size: u64,
    hostname: String,
    max_recipients: u32,
    max_connections: u32,
    max_connections_per_client: u32,
    command_timeout_seconds: u64,
    data_timeout_seconds: u64,
    restrict_senders: bool,
    tenant_header: Spanned<String>,
    tenant_ids: Vec<String>,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            listen: spanned("127.0.0.1:2525".into()),
            allowed_networks: vec![spanned("127.0.0.0/8".into()), spanned("::1/128".into())],
            tls_cert: None,
            tls_key: None,
            max_message_size: 35 * 1024 * 1024,
            hostname: String::new(),
            max_recipients: 1000,
            max_connections: 200,
            max_connections_per_client: 20,
            command_timeout_seconds: 300,
            data_timeout_seconds: 180,
            restrict_senders: true,
            tenant_header: spanned(String::new()),
            tenant_ids: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDelivery {
    require_tls: bool,
    accept_invalid_certs: bool,
    concurrency: u32,
    min_backoff_seconds: u64,
    max_backoff_seconds: u64,
    max_queue_lifetime_hours: u64,
}

impl Default for RawDelivery {
    fn default() -> Self {
        // Postfix's defaults: 20 connections per destination, retry from 5 minutes up to about
        // an hour, give up after 5 days.
        RawDelivery {
            require_tls: false,
            accept_invalid_certs: false,
            concurrency: 20,
            min_backoff_seconds: 300,
            max_backoff_seconds: 4000,
            max_queue_lifetime_hours: 120,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    address: Spanned<String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            address: spanned("127.0.0.1:2526".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    path: String,
    url: Option<String>,
    node: Option<String>,
    held_retention_days: u32,
    decided_retention_days: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            path: "data".into(),
            url: None,
            node: None,
            held_retention_days: 30,
            decided_retention_days: 7,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCounters {
    url: Option<Spanned<String>>,
    prefix: String,
}

impl Default for RawCounters {
    fn default() -> Self {
        RawCounters {
            url: None,
            prefix: "hallpass:".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConsole {
    listen: Spanned<String>,
    public_url: Option<Spanned<String>>,
    metrics_public: bool,
    tls: Spanned<bool>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    secure_cookies: Option<Spanned<bool>>,
    trusted_proxies: Vec<Spanned<String>>,
}

impl Default for RawConsole {
    fn default() -> Self {
        RawConsole {
            listen: spanned("127.0.0.1:8025".into()),
            public_url: None,
            metrics_public: false,
            tls: spanned(false),
            tls_cert: None,
            tls_key: None,
            secure_cookies: None,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDetectors {
    path: String,
}

impl Default for RawDetectors {
    fn default() -> Self {
        RawDetectors {
            path: "detectors".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNotifications {
    enabled: bool,
    templates: String,
    digest_to: Vec<Spanned<String>>,
    digest_hour: Spanned<u8>,
}

impl Default for RawNotifications {
    fn default() -> Self {
        RawNotifications {
            enabled: true,
            templates: "templates".into(),
            digest_to: Vec::new(),
            digest_hour: spanned(7),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRules {
    personal_data_external: RawPersonalData,
    password_in_same_message: RawAction<HoldDefault>,
    misdirected_domain: RawAction<HoldDefault>,
    bulk_send: RawBulk,
    cc_exposure: RawCc,
    unscannable: RawAction<HoldDefault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPersonalData {
    action: Action,
    min_confidence: Confidence,
    partners_allowed: bool,
}

impl Default for RawPersonalData {
    fn default() -> Self {
        RawPersonalData {
            action: Action::Hold,
            min_confidence: Confidence::Medium,
            partners_allowed: true,
        }
    }
}

struct HoldDefault;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAction<D> {
    action: Action,
    #[serde(skip)]
    _default: std::marker::PhantomData<D>,
}

impl Default for RawAction<HoldDefault> {
    fn default() -> Self {
        RawAction {
            action: Action::Hold,
            _default: std::marker::PhantomData,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBulk {
    action: Action,
    max_recipients: Spanned<u32>,
    window_recipients: Spanned<u32>,
    window_seconds: Spanned<u64>,
}

impl Default for RawBulk {
    fn default() -> Self {
        RawBulk {
            action: Action::Hold,
            max_recipients: spanned(50),
            window_recipients: spanned(100),
            window_seconds: spanned(3600),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCc {
    action: Action,
    threshold: Spanned<u32>,
}

impl Default for RawCc {
    fn default() -> Self {
        RawCc {
            action: Action::Rewrite,
            threshold: spanned(5),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_parts: u32,
    max_depth: u32,
    max_text_bytes: u64,
    max_decompressed_bytes: u64,
    max_ratio: u32,
    max_members: u32,
    max_pdf_objects: u32,
    time_budget_ms: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_parts: 1000,
            max_depth: 5,
            max_text_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 200 * 1024 * 1024,
            max_ratio: 200,
            max_members: 10_000,
            max_pdf_objects: 200_000,
            time_budget_ms: 20_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> Result<Config, Problems> {
        Config::from_toml(Path::new("etc/hallpass.toml"), src)
    }

    fn first_problem(src: &str) -> String {
        load(src).unwrap_err().0[0].to_string()
    }

    #[test]
    fn an_almost_empty_file_gets_working_defaults() {
        let c = load("[organisation]\ninternal_domains = [\"Lumen.SCH.uk\"]\n").unwrap();
        assert_eq!(c.organisation.internal_domains, vec!["lumen.sch.uk"]);
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.smtp.max_message_size, 36_700_160);
        assert_eq!(c.rules.cc_exposure.action, Action::Rewrite);
        assert_eq!(c.rules.bulk_send.max_recipients, 50);
        assert_eq!(c.detectors.path, Path::new("etc/detectors"));
        assert_eq!(c.upstream, Upstream::Smtp("127.0.0.1:2526".into()));
    }

    #[test]
    fn unknown_keys_are_pointed_at() {
        let p = first_problem(
            "[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[smtp]\nlisten_on = \"x\"\n",
        );
        assert!(p.starts_with("etc/hallpass.toml:4:1: "), "{p}");
        assert!(p.contains("listen_on"), "{p}");
    }

    #[test]
    fn a_bad_action_names_its_line() {
        let p = first_problem(
            "[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[rules.bulk_send]\naction = \"quarantine\"\n",
        );
        assert!(p.starts_with("etc/hallpass.toml:4:10: "), "{p}");
        assert!(p.contains("quarantine"), "{p}");
    }

    #[test]
    fn every_bad_value_is_reported_not_only_the_first() {
        let errs = load("[organisation]\ninternal_domains = [\"not a domain\", \"ok.sch.uk\", \"x@y.uk\"]\n[smtp]\nallowed_networks = [\"10.0.0.0/33\"]\nlisten = \"nowhere\"\n").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 4, "{text}");
        assert!(
            text.contains("etc/hallpass.toml:2:21: `not a domain` is not a mail domain"),
            "{text}"
        );
        assert!(text.contains("etc/hallpass.toml:4:21:"), "{text}");
    }

    #[test]
    fn digest_and_public_url_are_checked_with_their_places() {
        let c = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n").unwrap();
        assert!(
            c.notifications.digest_to.is_empty(),
            "the digest is off by default"
        );
        assert_eq!(c.notifications.digest_hour, 7);
        assert_eq!(c.console.public_url, None);
        let c = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[console]\npublic_url = \"https://hallpass.a.sch.uk/\"\n[notifications]\ndigest_to = [\"DPO@a.sch.uk\", \"dpo@dposervice.example.com\"]\ndigest_hour = 0\n").unwrap();
        assert_eq!(
            c.notifications.digest_to,
            vec!["dpo@a.sch.uk", "dpo@dposervice.example.com"]
        );
        assert_eq!(c.notifications.digest_hour, 0);
        assert_eq!(
            c.console.public_url.as_deref(),
            Some("https://hallpass.a.sch.uk")
        );
        let errs = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[console]\npublic_url = \"hallpass.a.sch.uk\"\n[notifications]\ndigest_to = [\"dpo\", \"ok@a.sch.uk\"]\ndigest_hour = 24\n").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 3, "{text}");
        assert!(
            text.contains("etc/hallpass.toml:4:14: public_url"),
            "{text}"
        );
        assert!(
            text.contains("etc/hallpass.toml:6:14: digest_to `dpo`"),
            "{text}"
        );
        assert!(
            text.contains("etc/hallpass.toml:7:15: digest_hour"),
            "{text}"
        );
    }

    #[test]
    fn counters_and_metrics_keys_have_safe_defaults_and_a_checked_url() {
        let c = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n").unwrap();
        assert_eq!(c.counters.url, None);
        assert_eq!(c.counters.prefix, "hallpass:");
        assert!(
            !c.console.metrics_public,
            "/metrics needs a token by default"
        );
        let c = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[counters]\nurl = \"redis://10.0.0.5:6379/2\"\nprefix = \"trust-a:\"\n[console]\nmetrics_public = true\n").unwrap();
        assert_eq!(c.counters.url.as_deref(), Some("redis://10.0.0.5:6379/2"));
        assert_eq!(c.counters.prefix, "trust-a:");
        assert!(c.console.metrics_public);
        let p = first_problem(
            "[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[counters]\nurl = \"rediss://10.0.0.5\"\n",
        );
        assert!(p.starts_with("etc/hallpass.toml:4:7: counters url"), "{p}");
    }

    #[test]
    fn console_tls_uses_its_own_certificate_or_the_smtp_one() {
        const ORG: &str = "[organisation]\ninternal_domains = [\"a.sch.uk\"]\n";
        let c = load(ORG).unwrap();
        assert_eq!(c.console.tls, None);
        assert!(!c.console.secure_cookies);

        // Behind a proxy that terminates TLS: plain HTTP here, Secure cookies.
        let c = load(&format!("{ORG}[console]\nsecure_cookies = true\n")).unwrap();
        assert_eq!(c.console.tls, None);
        assert!(c.console.secure_cookies);

        let smtp = "[smtp]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n";
        let c = load(&format!("{ORG}{smtp}[console]\ntls = true\n")).unwrap();
        assert_eq!(
            c.console.tls,
            Some(TlsFiles {
                cert: PathBuf::from("etc/tls/cert.pem"),
                key: PathBuf::from("etc/tls/key.pem"),
            })
        );
        assert!(c.console.secure_cookies, "Secure follows tls");

        let c = load(&format!(
            "{ORG}{smtp}[console]\ntls = true\ntls_cert = \"/etc/ssl/console.pem\"\ntls_key = \"/etc/ssl/console.key\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.console.tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/ssl/console.pem"),
                key: PathBuf::from("/etc/ssl/console.key"),
            })
        );
    }

    #[test]
    fn console_tls_mistakes_name_their_line() {
        const ORG: &str = "[organisation]\ninternal_domains = [\"a.sch.uk\"]\n";
        let p = first_problem(&format!("{ORG}[console]\ntls = true\n"));
        assert!(
            p.starts_with("etc/hallpass.toml:4:7: [console] tls = true needs a certificate"),
            "{p}"
        );
        let p = first_problem(&format!(
            "{ORG}[console]\ntls = true\ntls_cert = \"c.pem\"\n"
        ));
        assert!(
            p.starts_with("etc/hallpass.toml:5:12: [console] set both tls_cert and tls_key"),
            "{p}"
        );
        let p = first_problem(&format!(
            "{ORG}[console]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"
        ));
        assert!(
            p.starts_with("etc/hallpass.toml:4:12: [console] tls_cert and tls_key are used only with tls = true"),
            "{p}"
        );
        let p = first_problem(&format!(
            "{ORG}[smtp]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[console]\ntls = true\nsecure_cookies = false\n"
        ));
        assert!(
            p.starts_with(
                "etc/hallpass.toml:8:18: [console] secure_cookies = false cannot go with tls = true"
            ),
            "{p}"
        );
        let p = first_problem(&format!("{ORG}[console]\ntls = \"yes\"\n"));
        assert!(p.starts_with("etc/hallpass.toml:4:7: "), "{p}");
    }

    #[test]
    fn dir_upstream_resolves_against_the_config_folder() {
        let c = load("[organisation]\ninternal_domains = [\"a.sch.uk\"]\n[upstream]\naddress = \"dir:../outbox\"\n").unwrap();
        assert_eq!(c.upstream, Upstream::Dir(PathBuf::from("etc/../outbox")));
    }

    #[test]
    fn networks_match_their_members_only() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(
            "::1"
                .parse::<Cidr>()
                .unwrap()
                .contains("::1".parse().unwrap())
        );
    }
}
