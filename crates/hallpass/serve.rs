//! `hallpass serve`: the relay. SMTP in (hallpass-smtp), the verdict from the
//! engine before the reply, the message durably in the spool and the store
//! before a 250, and a delivery worker that passes copies on (hallpass-deliver),
//! retries, and bounces what the upstream refuses.
//!
//! Order of work for one message (DESIGN.md, "the flow of one message"):
//! count the sender's window, scan off the async threads within the time
//! budget, split the recipients by verdict, write the spool files (fsync'd),
//! record the message and its copies in one transaction, wake the worker,
//! answer. Any failure before the record answers 451: nothing is
//! half-accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hallpass_core::{Config, Envelope as ScanEnvelope, RecipientClass, RuleId, Verdict};
use hallpass_deliver::{Deliverer, RcptOutcome, Target};
use hallpass_engine::{Engine, Report, ScanOptions};
use hallpass_smtp::{Envelope, Handler, Reply};
use hallpass_store::{
    Batch, CopyKind, Counters, FindingRecord, NewCopy, NewMessage, Outcome, Spool, Store, new_id,
};
use tokio::sync::{Notify, Semaphore};

use crate::{clock, notify};

/// Everything a running relay shares between sessions and the worker.
pub struct Relay {
    /// The configuration, detectors and policy in force (reloaded live).
    live: Arc<crate::reload::Live>,
    store: Store,
    /// The per-sender window (`[counters]`): the store's, or Redis.
    counters: hallpass_store::WindowCounters,
    spool: Spool,
    hostname: String,
    /// Scans at once: one per core, so memory stays bounded under load.
    scans: Semaphore,
    /// Rings when there is something new to deliver.
    wake: Arc<Notify>,
}

/// Opens the store (SQLite under `[storage] path`, or the shared store at `[storage] url`) and
/// the spool under `[storage] path`.
pub async fn open_storage(config: &Config) -> anyhow::Result<(Store, Spool)> {
    use anyhow::Context as _;
    let dir = &config.storage.path;
    let store = match &config.storage.url {
        // The url may carry a password: it is never printed.
        Some(url) => {
            let node = storage_node(config)?;
            Store::open_shared(dir, url, &node).await.with_context(|| {
                format!("cannot open the shared store ([storage] url) as node {node}")
            })?
        }
        None => Store::open(dir)
            .await
            .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    };
    let spool = store.spool().clone();
    Ok((store, spool))
}

/// This relay's node id in a shared store: `[storage] node`, else the id kept in the file
/// `node` beside the spool, made once (host name and a unique suffix) the first time the relay
/// starts. It lives with the spool, so it stays as long as the spool does: across restarts, a
/// renamed host or a re-created container whose data volume is kept. Two relays on one host
/// have different folders, so different ids.
pub fn storage_node(config: &Config) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(node) = &config.storage.node {
        return Ok(node.clone());
    }
    let path = config.storage.path.join("node");
    let read = |p: &std::path::Path| -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(p) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
            Ok(_) => anyhow::bail!("{} is empty: remove it or set [storage] node", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    };
    if let Some(node) = read(&path)? {
        return Ok(node);
    }
    let made = format!("{}-{}", hostname_of_machine(), hallpass_store::new_id());
    std::fs::create_dir_all(&config.storage.path)
        .with_context(|| format!("cannot create {}", config.storage.path.display()))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(format!("{made}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(made)
        }
        // Another process made it first: theirs stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.with_context(|| format!("{} vanished", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

fn hostname_of_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The per-sender window's counters: in Redis when `[counters] url` is set (with the store as
/// the fallback while Redis is away), else in the store.
async fn open_counters(
    config: &Config,
    store: &Store,
) -> anyhow::Result<hallpass_store::WindowCounters> {
    use hallpass_store::{RedisCounters, WindowCounters};
    let Some(url) = &config.counters.url else {
        return Ok(WindowCounters::Store(store.clone()));
    };
    // The url may carry a password: it is never printed.
    let redis = RedisCounters::new(url, &config.counters.prefix, store.clone())
        .map_err(|e| anyhow::anyhow!("{}: [counters] url: {e}", config.source.display()))?;
    tracing::info!(prefix = %config.counters.prefix, "per-sender counters in Redis ([counters] url)");
    // A Redis that is down is a warning, not a reason not to start: the store counts meanwhile.
    let _ = redis.ping().await;
    Ok(WindowCounters::Redis(Box::new(redis)))
}

/// The host name in greetings and `Received:` headers.
pub fn hostname(config: &Config) -> String {
    if !config.smtp.hostname.is_empty() {
        return config.smtp.hostname.clone();
    }
    hostname_of_machine()
}

/// Runs the relay until SIGTERM or SIGINT.
pub async fn run(engine: Engine, config_path: std::path::PathBuf) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let config = engine.config().clone();
    let metrics = crate::metrics::install(&engine)?;
    let (store, spool) = open_storage(&config).await?;
    store
        .claim_node()
        .await
        .context("cannot take this relay's node in the shared store")?;
    let counters = open_counters(&config, &store).await?;
    let hostname = hostname(&config);
    // Certificates are read again on SIGHUP (a renewed one is used from the next handshake).
    let mut certificates = Vec::new();
    let settings = smtp_settings(&config, &hostname, &mut certificates)?;
    let console_tls = match &config.console.tls {
        Some(f) => {
            let (tls, cert) =
                hallpass_smtp::load_tls_reloadable(&f.cert, &f.key).context("[console] tls")?;
            certificates.push(cert);
            Some(tls)
        }
        None => None,
    };
    let deliverer = Arc::new(Deliverer::new(
        upstream_target(&config)?,
        hallpass_deliver::Settings {
            helo_name: hostname.clone(),
            concurrency: config.delivery.concurrency as usize,
            timeout: Duration::from_secs(60),
            require_tls: config.delivery.require_tls,
            accept_invalid_certs: config.delivery.accept_invalid_certs,
            idle_keep: Duration::from_secs(30),
        },
    ));
    let relay = Arc::new(Relay {
        live: Arc::new(
            crate::reload::Live::new(config_path, engine).with_certificates(certificates),
        ),
        store,
        counters,
        spool,
        hostname,
        scans: Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        ),
        wake: Arc::new(Notify::new()),
    });

    // Signal handlers first: a SIGTERM from here on is a graceful stop.
    let stop_signal = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.smtp.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.smtp.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    let console_listener = tokio::net::TcpListener::bind(config.console.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the console", config.console.listen))?;
    let console_local: SocketAddr = console_listener.local_addr()?;
    eprintln!("hallpass: smtp listening on {local}");
    let scheme = if console_tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!("hallpass: console listening on {scheme}://{console_local}/");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker(relay.clone(), deliverer.clone(), stop_rx.clone()));
    let reloads = tokio::spawn(crate::reload::watch(relay.live.clone(), stop_rx.clone()));
    let live = relay.live.clone();
    let console_state = hallpass_console::ConsoleState {
        store: relay.store.clone(),
        spool: relay.spool.clone(),
        rewrite: Arc::new(move |b: &[u8]| live.engine().hide_recipients(b)),
        wake: relay.wake.clone(),
        decided: {
            let relay = relay.clone();
            Arc::new(
                move |_held: hallpass_store::HeldRecord, _reason: Option<String>| {
                    let relay = relay.clone();
                    Box::pin(async move { relay.send_due_notices().await })
                },
            )
        },
        inspect: inspect_hook(relay.live.clone()),
        names: {
            let live = relay.live.clone();
            Arc::new(move |id: &str| {
                crate::notify::kind_name(live.engine().detectors(), id).to_string()
            })
        },
        // Always with tls; without, only when a proxy in front terminates TLS.
        secure_cookies: config.console.secure_cookies,
        organisation: config.organisation.name.clone(),
        trusted_proxies: config.console.trusted_proxies.clone(),
    };
    let gauges = tokio::spawn(crate::metrics::gauges(
        relay.store.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let metrics = hallpass_console::Metrics {
        render: Arc::new(move || metrics.render()),
        public: config.console.metrics_public,
    };
    let mut console_stop = stop_rx.clone();
    let console_stopped = async move {
        let _ = console_stop.changed().await;
    };
    let console = match console_tls {
        Some(tls) => tokio::spawn(hallpass_console::serve_tls(
            console_listener,
            tls,
            console_state,
            Some(metrics),
            console_stopped,
        )),
        None => tokio::spawn(hallpass_console::serve_with_metrics(
            console_listener,
            console_state,
            Some(metrics),
            console_stopped,
        )),
    };
    let shutdown = async move {
        stop_signal.await;
        tracing::info!("shutting down: no new connections; finishing sessions in flight");
    };
    hallpass_smtp::serve(listener, Arc::new(settings), relay.clone(), shutdown).await?;
    let _ = stop_tx.send(true);
    relay.wake.notify_one();
    match tokio::time::timeout(Duration::from_secs(30), console).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the console stopped with an error"),
        Err(_) => tracing::warn!("the console did not stop within 30 s"),
        _ => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    let _ = reloads.await;
    let _ = gauges.await;
    deliverer.close_idle().await;
    relay.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT; the handlers are installed now.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn smtp_settings(
    config: &Config,
    hostname: &str,
    certificates: &mut Vec<Arc<hallpass_smtp::Certificate>>,
) -> anyhow::Result<hallpass_smtp::Settings> {
    let c = &config.smtp;
    let mut s = hallpass_smtp::Settings::new(hostname.to_string());
    s.max_message_size = c.max_message_size;
    s.max_recipients = c.max_recipients as usize;
    s.max_connections = c.max_connections as usize;
    s.max_connections_per_client = c.max_connections_per_client as usize;
    s.command_timeout = Duration::from_secs(c.command_timeout_seconds);
    s.data_timeout = Duration::from_secs(c.data_timeout_seconds);
    s.allowed_networks = c.allowed_networks.clone();
    s.internal_domains = config.organisation.internal_domains.clone();
    s.restrict_senders = c.restrict_senders;
    if let (Some(cert), Some(key)) = (&c.tls_cert, &c.tls_key) {
        let (tls, certificate) = hallpass_smtp::load_tls_reloadable(cert, key)?;
        s.tls = Some(tls);
        certificates.push(certificate);
    }
    Ok(s)
}

/// Where copies go.
fn upstream_target(config: &Config) -> anyhow::Result<Target> {
    Ok(match &config.upstream {
        hallpass_core::config::Upstream::Dir(p) => Target::Dir(p.clone()),
        hallpass_core::config::Upstream::Smtp(a) => a.parse().map_err(|e| {
            anyhow::anyhow!("{}: [upstream] address `{a}`: {e}", config.source.display())
        })?,
    })
}

impl Handler for Relay {
    async fn authenticate(&self, user: &str, password: &str) -> bool {
        match self.store.user_verify(user, password).await {
            Ok(Some(u)) => u.role == hallpass_store::Role::Relay && !u.disabled,
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "cannot check a relay account");
                false
            }
        }
    }

    async fn message(&self, envelope: Envelope, data: Vec<u8>) -> Reply {
        match self.accept(envelope, data).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "message not accepted: answering 451");
                Reply::new(
                    451,
                    "4.3.0",
                    "hallpass cannot take this message just now; please try again later",
                )
            }
        }
    }
}

/// What happens to one message, decided from its report.
#[derive(Debug)]
pub struct Plan {
    /// Rules that fired (any action).
    pub rules: Vec<RuleId>,
    /// Refused outright (a rule whose action is reject).
    pub reject: bool,
    /// Recipients whose copy goes on now.
    pub deliver: Vec<String>,
    /// The delivered copy has its To/Cc rewritten.
    pub rewrite: bool,
    /// Recipients whose copy is held, and the rules that hold it.
    pub hold: Vec<String>,
    /// Rules that concern the held copy.
    pub hold_rules: Vec<RuleId>,
}

/// Splits the recipients by their verdicts. The rewrite, when any recipient
/// needs it, applies to every delivered copy: the point is that no one sees
/// the exposed list.
pub fn plan(report: &Report, rcpts: &[String]) -> Plan {
    let d = &report.decision;
    let mut p = Plan {
        rules: report.rules(),
        reject: d.verdict == Verdict::Reject,
        deliver: Vec::new(),
        rewrite: false,
        hold: Vec::new(),
        hold_rules: Vec::new(),
    };
    let mut held_idx = Vec::new();
    for (i, r) in rcpts.iter().enumerate() {
        match d.per_recipient.get(i).copied().unwrap_or(Verdict::Hold) {
            Verdict::Hold | Verdict::Reject => {
                held_idx.push(i);
                p.hold.push(r.clone());
            }
            Verdict::Rewrite => {
                p.rewrite = true;
                p.deliver.push(r.clone());
            }
            Verdict::Deliver => p.deliver.push(r.clone()),
        }
    }
    for h in &d.hits {
        if matches!(h.action, hallpass_core::Action::Hold)
            && h.recipients.iter().any(|i| held_idx.contains(i))
            && !p.hold_rules.contains(&h.rule)
        {
            p.hold_rules.push(h.rule);
        }
    }
    p
}

fn finding_records(report: &Report) -> Vec<FindingRecord> {
    report
        .findings
        .iter()
        .map(|f| FindingRecord {
            detector: f.detector.as_str().to_string(),
            location: f.location.as_str().to_string(),
            count: f.count,
            confidence: f.confidence.as_str().to_string(),
        })
        .collect()
}

impl Relay {
    async fn accept(&self, envelope: Envelope, data: Vec<u8>) -> anyhow::Result<Reply> {
        use anyhow::Context as _;
        let received_ms = clock::now_ms();
        let id = new_id();
        let engine = self.live.engine();
        let config = engine.config();

        // Mail from a shared cloud service must be from this organisation's tenant.
        let smtp = &config.smtp;
        if envelope.authenticated.is_none()
            && !smtp.tenant_header.is_empty()
            && !carries_one_of(&data, &smtp.tenant_header, &smtp.tenant_ids)
        {
            tracing::warn!(
                id = %id,
                header = %smtp.tenant_header,
                "refused: not from this organisation's tenant"
            );
            return Ok(Reply::new(
                550,
                "5.7.1",
                "Relaying refused: this message did not come from the school's own mail service.",
            ));
        }

        // The sender's window counts this message's outside recipients.
        let outside = envelope
            .rcpt_to
            .iter()
            .filter(|r| engine.policy().classify(r) != RecipientClass::Internal)
            .count() as u64;
        let counted = outside > 0 && !envelope.mail_from.is_empty();
        let sender = envelope.mail_from.to_ascii_lowercase();
        // The window counts mail that was accepted. A message refused (550) or not kept (451,
        // the client sends it again and it counts then) is taken back out; so is one whose
        // count failed half-way (a commit whose answer was lost).
        let take_back = || async {
            if let Err(e) = self.counters.take_back(&sender, &id, outside).await {
                tracing::warn!(id = %id, error = %e, "cannot take a refused message out of the sender's window; it counts twice if sent again");
            }
        };
        let window = if counted {
            let w = &config.rules.bulk_send;
            let count = self
                .counters
                .add_event_and_count(
                    &sender,
                    &id,
                    outside,
                    received_ms,
                    (w.window_seconds * 1000) as i64,
                )
                .await;
            match count {
                Ok(n) => Some(n),
                Err(e) => {
                    take_back().await;
                    return Err(e).context("cannot count the sender's recent recipients");
                }
            }
        } else {
            None
        };
        let reply = self
            .scan_and_keep(&engine, &id, received_ms, &envelope, data, window)
            .await;
        if counted && !matches!(&reply, Ok(r) if r.code == 250) {
            take_back().await;
        }
        reply
    }

    /// Scans the message, then, unless a rule refuses it, keeps it: spooled, recorded, the
    /// sender told of a held copy. The reply for the client; an error is a `451`.
    async fn scan_and_keep(
        &self,
        engine: &Arc<Engine>,
        id: &str,
        received_ms: i64,
        envelope: &Envelope,
        data: Vec<u8>,
        window: Option<u64>,
    ) -> anyhow::Result<Reply> {
        use anyhow::Context as _;
        let id = id.to_string();
        let data = Arc::new(data);
        let scan_started = Instant::now();
        let report = self.scan(engine, envelope, data.clone(), window).await?;
        let scan_ms = scan_started.elapsed().as_millis() as u64;
        crate::metrics::scanned(scan_started.elapsed());
        let plan = plan(&report, &envelope.rcpt_to);
        let rule_names: Vec<&str> = plan.rules.iter().map(|r| r.as_str()).collect();
        // One line per message: ids, verdict, rules, sizes and timings; never
        // a subject, an address or a value.
        let log = |outcome: &str| {
            crate::metrics::answered(&report, &plan.rules);
            tracing::info!(
                id = %id,
                outcome,
                verdict = report.verdict.as_str(),
                rules = ?rule_names,
                findings = report.findings.len(),
                recipients = envelope.rcpt_to.len(),
                held = plan.hold.len(),
                size = data.len(),
                scan_ms,
                total_ms = (clock::now_ms() - received_ms).max(0),
                "message"
            );
        };
        if plan.reject {
            log("refused");
            return Ok(Reply::new(
                550,
                "5.7.1",
                format!(
                    "Message refused by the school's data protection policy ({}). Please contact your Data Protection Officer.",
                    rule_names.join(", ")
                ),
            ));
        }

        // Spool: the original with our Received: header, and the rewritten copy.
        let received = hallpass_smtp::received_header(
            envelope,
            &self.hostname,
            &id,
            received_ms.div_euclid(1000),
        );
        let mut original = Vec::with_capacity(received.len() + data.len());
        original.extend_from_slice(received.as_bytes());
        original.extend_from_slice(&data);
        self.spool
            .write(&id, &original)
            .await
            .context("cannot write the message to the spool")?;
        let mut spool_ids = vec![id.clone()];
        let mut deliver_spool = id.clone();
        if plan.rewrite
            && !plan.deliver.is_empty()
            && let Some(rewritten) = engine.hide_recipients(&data)
        {
            let rid = new_id();
            let mut bytes = Vec::with_capacity(received.len() + rewritten.len());
            bytes.extend_from_slice(received.as_bytes());
            bytes.extend_from_slice(&rewritten);
            if let Err(e) = self.spool.write(&rid, &bytes).await {
                let _ = self.spool.remove(&id).await;
                return Err(e).context("cannot write the rewritten copy to the spool");
            }
            spool_ids.push(rid.clone());
            deliver_spool = rid;
        }

        let findings = finding_records(&report);
        let mut copies = Vec::new();
        if !plan.deliver.is_empty() {
            copies.push(NewCopy {
                id: new_id(),
                kind: CopyKind::Deliver,
                spool_id: deliver_spool,
                recipients: plan.deliver.clone(),
                rules: rule_names.iter().map(|s| s.to_string()).collect(),
                findings: findings.clone(),
            });
        }
        let held_id = (!plan.hold.is_empty()).then(new_id);
        if let Some(hid) = &held_id {
            copies.push(NewCopy {
                id: hid.clone(),
                kind: CopyKind::Hold,
                spool_id: id.clone(),
                recipients: plan.hold.clone(),
                rules: plan
                    .hold_rules
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect(),
                findings,
            });
        }
        let record = NewMessage {
            id: id.clone(),
            received_ms,
            sender: envelope.mail_from.clone(),
            message_id: report.message_id.clone(),
            size: data.len() as u64,
            spool_ids: spool_ids.clone(),
            copies,
        };
        if let Err(e) = self.store.accept(&record).await {
            // The files stay: after an error the record may have been committed all the same
            // (a lost answer to COMMIT). The orphan sweep removes them later only if the store
            // has no record of them; if it has, they are delivered (the client, told 451, may
            // send again: a duplicate, never a loss).
            return Err(e).context("cannot record the message in the store");
        }
        if let Some(hid) = &held_id {
            let held = record.copies.last().expect("the held copy");
            let about = notify::About {
                id: hid,
                sender: &envelope.mail_from,
                recipients: &held.recipients,
                rules: &held.rules,
                findings: &held.findings,
                message: &data,
            };
            // The message is safe in the quarantine already; a notice that
            // cannot be queued is logged, not a reason to refuse it.
            if let Err(e) =
                notify::send(engine, &self.store, &self.spool, notify::Kind::Held, &about).await
            {
                tracing::error!(id = %id, error = %format!("{e:#}"), "cannot queue the sender's notice");
            }
        }
        self.wake.notify_one();
        log("accepted");
        let text = match &held_id {
            None => format!("Ok: queued as {id}"),
            Some(h) if plan.deliver.is_empty() => {
                format!("Ok: queued as {id}; held for review by the Data Protection Officer ({h})")
            }
            Some(h) => format!(
                "Ok: queued as {id}; the copy for {} recipient(s) is held for review by the Data Protection Officer ({h})",
                plan.hold.len()
            ),
        };
        Ok(Reply::new(250, "2.0.0", text))
    }

    /// Queues the notices senders are owed about decided held copies (released, rejected by
    /// the DPO or for age), whoever decided and on whichever relay: after a decision in this
    /// console at once, and on every housekeeping pass for the rest (the terminal's decisions,
    /// and any a crash or a full disk left owed).
    async fn send_due_notices(&self) {
        const CLAIM_MS: i64 = 60_000;
        const RETRY_MS: i64 = 5_000;
        let now = clock::now_ms();
        let due = match self.store.notices_due(now, 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the notices owed to senders");
                return;
            }
        };
        let mut queued = false;
        for held in due {
            match self.store.notice_claim(&held.id, now, now + CLAIM_MS).await {
                Ok(true) => {}
                Ok(false) => continue, // another relay, or this one, has it
                Err(e) => {
                    tracing::error!(id = %held.id, error = %e, "cannot claim a sender's notice");
                    continue;
                }
            }
            let kind = match held.status {
                hallpass_store::HeldStatus::Rejected => {
                    notify::Kind::Rejected(held.reason.clone().unwrap_or_default())
                }
                _ => notify::Kind::Released,
            };
            let message = self.spool.read(&held.spool_id).await.unwrap_or_default();
            let about = notify::About {
                id: &held.id,
                sender: &held.from,
                recipients: &held.rcpt,
                rules: &held.rules,
                findings: &held.findings,
                message: &message,
            };
            let sent =
                notify::send(&self.live.engine(), &self.store, &self.spool, kind, &about).await;
            let recorded = match sent {
                Ok(q) => {
                    queued |= q;
                    self.store.notice_done(&held.id).await
                }
                Err(e) => {
                    tracing::error!(id = %held.id, error = %format!("{e:#}"), "cannot queue the sender's notice; trying again shortly");
                    self.store.notice_later(&held.id, now + RETRY_MS).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(id = %held.id, error = %e, "cannot record a sender's notice; it is tried again when its claim runs out");
            }
        }
        if queued {
            self.wake.notify_one();
        }
    }

    /// Runs the engine on a blocking thread, within the time budget. A scan
    /// that panics or overruns the budget badly is an error (451): the
    /// client keeps the message.
    async fn scan(
        &self,
        engine: &Arc<Engine>,
        envelope: &Envelope,
        data: Arc<Vec<u8>>,
        window: Option<u64>,
    ) -> anyhow::Result<Report> {
        let _permit = self.scans.acquire().await?;
        let engine = engine.clone();
        let budget = Duration::from_millis(engine.config().limits.time_budget_ms);
        let scan_env = ScanEnvelope {
            sender: envelope.mail_from.clone(),
            recipients: envelope.rcpt_to.clone(),
        };
        let today = clock::today();
        let task = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + budget;
            let mut ws = engine.workspace();
            let opts = ScanOptions {
                today,
                explain: false,
                sender_window_count: window,
            };
            engine.scan_within(&mut ws, &data, Some(&scan_env), &opts, &|| {
                Instant::now() > deadline
            })
        });
        // The budget is checked between parts; one parser call that never
        // returns would otherwise hold the client for ever.
        match tokio::time::timeout(budget + budget / 2 + Duration::from_secs(5), task).await {
            Ok(Ok(report)) => Ok(report),
            // Never the panic's own message: it may quote the mail.
            Ok(Err(e)) if e.is_panic() => anyhow::bail!("the scan failed: a panic while reading"),
            Ok(Err(_)) => anyhow::bail!("the scan failed: cancelled"),
            Err(_) => anyhow::bail!("the scan did not finish within its time budget"),
        }
    }
}

/// Lease on claimed recipients: a crash mid-send frees them after this long.
const LEASE_MS: i64 = 10 * 60 * 1000;
/// How often delivered copies' spool files are removed and expired leases
/// freed.
const HOUSEKEEPING: Duration = Duration::from_secs(2);
/// Longest sleep between looks at the queue (another process, such as
/// `hallpass held release`, may have queued something).
const POLL: Duration = Duration::from_secs(1);

async fn worker(
    relay: Arc<Relay>,
    deliverer: Arc<Deliverer>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let owner = relay
        .store
        .lease_owner(&format!("{}:{}", relay.hostname, std::process::id()));
    match relay.store.resume_interrupted(clock::now_ms()).await {
        Ok(n) if n > 0 => tracing::warn!(
            recipients = n,
            "resuming deliveries interrupted by a stop; they may be sent again"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "cannot resume interrupted deliveries"),
    }
    let mut last_sweep: Option<Instant> = None;
    let mut last_housekeeping: Option<Instant> = None;
    let mut digest = crate::digest::Progress::default();
    let in_flight = Arc::new(Semaphore::new(
        relay.live.engine().config().delivery.concurrency as usize * 2,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = clock::now_ms();
        match relay
            .store
            .claim_due(&owner, now, LEASE_MS, in_flight.available_permits() as u32)
            .await
        {
            Ok(batches) => {
                for batch in batches {
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let relay = relay.clone();
                    let deliverer = deliverer.clone();
                    tasks.spawn(async move {
                        deliver_batch(&relay, &deliverer, batch).await;
                        drop(permit);
                        // A free slot: look at the queue again at once.
                        relay.wake.notify_one();
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the delivery queue"),
        }
        while tasks.try_join_next().is_some() {}
        // Housekeeping waits behind the sessions' writes: not on every pass.
        if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING) {
            if let Err(e) = relay.store.requeue_expired(now).await {
                tracing::error!(error = %e, "cannot requeue expired deliveries");
            }
            clean_spool(&relay).await;
            relay.send_due_notices().await;
            let engine = relay.live.engine();
            if crate::digest::maybe_send(
                &engine,
                &relay.store,
                &relay.spool,
                &relay.hostname,
                &mut digest,
            )
            .await
            {
                relay.wake.notify_one();
            }
            last_housekeeping = Some(Instant::now());
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= ORPHAN_AGE) {
            remove_orphans(&relay).await;
            purge(&relay).await;
            last_sweep = Some(Instant::now());
        }
        let sleep = match relay.store.next_due().await {
            Ok(Some(t)) => Duration::from_millis((t - clock::now_ms()).clamp(0, 1000) as u64),
            _ => POLL,
        };
        tokio::select! {
            _ = relay.wake.notified() => {}
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(20))) => {}
            _ = stop.changed() => {}
        }
    }
    // Let attempts in flight record their results.
    while tasks.join_next().await.is_some() {}
}

async fn deliver_batch(relay: &Relay, deliverer: &Deliverer, batch: Batch) {
    let engine = relay.live.engine();
    let config = engine.config();
    let bytes = match relay.spool.read(&batch.spool_id).await {
        Ok(b) => b,
        Err(e) => {
            // Without its file the copy cannot go anywhere; keep retrying
            // (an operator may restore the file) rather than drop it.
            tracing::error!(copy = %batch.copy_id, error = %e, "cannot read a spool file");
            let next = clock::now_ms() + (config.delivery.min_backoff_seconds * 1000) as i64;
            let results: Vec<_> = batch
                .recipients
                .iter()
                .map(|(row, _)| {
                    (
                        *row,
                        Outcome::Deferred {
                            reply: "spool file unreadable".into(),
                            next_attempt_ms: next,
                        },
                    )
                })
                .collect();
            if let Err(e) = relay.store.record(&results, clock::now_ms()).await {
                tracing::error!(error = %e, "cannot record delivery results");
            }
            return;
        }
    };
    let rcpts: Vec<String> = batch.recipients.iter().map(|(_, r)| r.clone()).collect();
    let name = if batch.attempts == 0 {
        batch.copy_id.clone()
    } else {
        format!("{}-{}", batch.copy_id, batch.attempts)
    };
    let outcomes = deliverer.send(&batch.sender, &rcpts, &bytes, &name).await;
    crate::metrics::delivered(&outcomes);
    let now = clock::now_ms();
    let lifetime_ms = (config.delivery.max_queue_lifetime_hours * 3600 * 1000) as i64;
    let delay = hallpass_deliver::retry_delay(
        batch.attempts + 1,
        Duration::from_secs(config.delivery.min_backoff_seconds),
        Duration::from_secs(config.delivery.max_backoff_seconds),
    );
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let mut expired = false;
    let (mut ok, mut later, mut bad) = (0, 0, 0);
    for ((row, rcpt), outcome) in batch.recipients.iter().zip(outcomes) {
        let o = match outcome {
            RcptOutcome::Delivered(reply) => {
                ok += 1;
                Outcome::Delivered { reply }
            }
            RcptOutcome::Transient(reply) if now - batch.first_queued_ms >= lifetime_ms => {
                bad += 1;
                expired = true;
                failed.push((rcpt.clone(), reply.clone()));
                Outcome::Expired { reply }
            }
            RcptOutcome::Transient(reply) => {
                later += 1;
                Outcome::Deferred {
                    reply,
                    next_attempt_ms: now + delay.as_millis() as i64,
                }
            }
            RcptOutcome::Permanent(reply) => {
                bad += 1;
                failed.push((rcpt.clone(), reply.clone()));
                Outcome::Failed { reply }
            }
        };
        results.push((*row, o));
    }
    crate::metrics::gave_up(&failed);
    tracing::info!(
        copy = %batch.copy_id,
        attempt = batch.attempts + 1,
        delivered = ok,
        deferred = later,
        failed = bad,
        "delivery attempt"
    );
    if let Err(e) = relay.store.record(&results, now).await {
        tracing::error!(error = %e, "cannot record delivery results");
        return;
    }
    // Bounces go to the sender, never about a bounce (no loops) and never to <>.
    if !failed.is_empty()
        && !batch.sender.is_empty()
        && batch.kind != CopyKind::Bounce
        && let Err(e) = bounce(relay, &batch, &bytes, &failed, expired).await
    {
        tracing::error!(copy = %batch.copy_id, error = %format!("{e:#}"), "cannot queue a bounce");
    }
}

async fn bounce(
    relay: &Relay,
    batch: &Batch,
    original: &[u8],
    failed: &[(String, String)],
    expired: bool,
) -> anyhow::Result<()> {
    let engine = relay.live.engine();
    let config = engine.config();
    let now_ms = clock::now_ms();
    let dsn = hallpass_deliver::dsn(&hallpass_deliver::Dsn {
        reporting_mta: &relay.hostname,
        postmaster: &config.organisation.postmaster,
        original_sender: &batch.sender,
        queue_id: &batch.copy_id,
        arrival_unix: batch.first_queued_ms.div_euclid(1000),
        now_unix: now_ms.div_euclid(1000),
        failed,
        original,
        expired,
    });
    let id = new_id();
    relay.spool.write(&id, &dsn).await?;
    relay
        .store
        .accept(&NewMessage {
            id: id.clone(),
            received_ms: now_ms,
            sender: String::new(),
            message_id: None,
            size: dsn.len() as u64,
            spool_ids: vec![id.clone()],
            copies: vec![NewCopy {
                id: new_id(),
                kind: CopyKind::Bounce,
                spool_id: id,
                recipients: vec![batch.sender.clone()],
                rules: Vec::new(),
                findings: Vec::new(),
            }],
        })
        .await?;
    relay.wake.notify_one();
    Ok(())
}

/// Spool files older than this with no record in the store are leftovers of
/// a crash between the spool write and the record (the client was never
/// told 250, so it still has the message): they are removed.
const ORPHAN_AGE: Duration = Duration::from_secs(300);

async fn remove_orphans(relay: &Relay) {
    let found = match relay.spool.ids_older_than(ORPHAN_AGE).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the spool");
            return;
        }
    };
    match relay.store.unknown_spool_ids(&found).await {
        Ok(orphans) => {
            for id in orphans {
                tracing::warn!(spool = %id, "removing a spool file no message owns (left by a crash before its 250)");
                if let Err(e) = relay.spool.remove(&id).await {
                    tracing::error!(error = %e, "cannot remove an orphan spool file");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot check the spool against the store"),
    }
}

/// Retention: held copies past `held_retention_days` are rejected and
/// purged, decided ones past `decided_retention_days` purged; their files go.
async fn purge(relay: &Relay) {
    const DAY_MS: i64 = 86_400_000;
    let engine = relay.live.engine();
    let s = &engine.config().storage;
    let actor = hallpass_store::Actor {
        name: "retention".into(),
        address: None,
    };
    let now = clock::now_ms();
    let ids = match relay
        .store
        .purge(
            now,
            i64::from(s.held_retention_days) * DAY_MS,
            i64::from(s.decided_retention_days) * DAY_MS,
            &actor,
        )
        .await
    {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "cannot apply the retention periods");
            return;
        }
    };
    if !ids.is_empty() {
        tracing::info!(
            files = ids.len(),
            "retention: purged messages past their period"
        );
    }
    // Held copies this sweep rejected for age: their senders are told, as for a DPO's
    // rejection, before the files go (the notice is written from the message's headers).
    relay.send_due_notices().await;
    remove_finished(relay, ids).await;
    // Records of delivered mail go after the shorter period, a bounded number per sweep.
    let cut = clock::now_ms() - i64::from(s.decided_retention_days) * DAY_MS;
    match relay.store.forget_delivered(cut, 5_000).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            messages = n,
            "retention: forgot delivered messages' records"
        ),
        Err(e) => tracing::error!(error = %e, "cannot forget delivered messages' records"),
    }
}

async fn clean_spool(relay: &Relay) {
    // A bounded number of rounds, so a large backlog cannot stall the worker.
    for _ in 0..10 {
        let Ok(ids) = relay.store.finished_spool_ids(100).await else {
            return;
        };
        let full = ids.len() == 100;
        remove_finished(relay, ids).await;
        if !full {
            return;
        }
    }
}

/// Removes spool files nothing needs any more, then forgets them in one transaction.
async fn remove_finished(relay: &Relay, ids: Vec<String>) {
    let mut removed = Vec::with_capacity(ids.len());
    for id in ids {
        match relay.spool.remove(&id).await {
            Ok(()) => removed.push(id),
            Err(e) => tracing::error!(error = %e, "cannot remove a finished spool file"),
        }
    }
    if let Err(e) = relay.store.forget_spools(&removed).await {
        tracing::error!(error = %e, "cannot forget removed spool files");
    }
}

/// The console's look at a held message (`hallpass_console::Inspect`): the engine in force scans
/// it again with `explain`, within the time budget, and masks every match in the texts the page
/// will show. Values leave only masked.
fn inspect_hook(live: Arc<crate::reload::Live>) -> hallpass_console::Inspect {
    Arc::new(
        move |raw: &[u8], envelope: &ScanEnvelope, texts: &[String]| {
            let engine = live.engine();
            let budget = Duration::from_millis(engine.config().limits.time_budget_ms);
            let deadline = Instant::now() + budget;
            let partial = std::cell::Cell::new(false);
            let today = clock::today();
            let mut ws = engine.workspace();
            let opts = ScanOptions {
                today,
                explain: true,
                sender_window_count: None,
            };
            let report = engine.scan_within(&mut ws, raw, Some(envelope), &opts, &|| {
                let over = Instant::now() > deadline;
                partial.set(partial.get() || over);
                over
            });
            let masked = texts
                .iter()
                .map(|t| engine.mask_text(&mut ws, t, today))
                .collect();
            hallpass_console::Inspection {
                matches: report
                    .explained
                    .into_iter()
                    .map(|e| hallpass_console::Match {
                        detector: e.detector.to_string(),
                        location: e.location.to_string(),
                        masked: e.masked,
                        before: e.before,
                        after: e.after,
                        confidence: e.confidence.as_str().to_string(),
                        context: e.context,
                    })
                    .collect(),
                attachments: report
                    .attachments
                    .into_iter()
                    .map(|a| hallpass_console::Attachment {
                        location: a.location.to_string(),
                        kind: a.kind.to_string(),
                        size: a.size,
                        encrypted: a.encrypted,
                        scanned: a.scanned,
                        unscannable: a.unscannable,
                    })
                    .collect(),
                masked,
                partial: partial.get(),
            }
        },
    )
}

/// True when the header section of `data` has a field `name`, and every field of that name has
/// a value (unfolded, trimmed) that is one of `values`, compared case-insensitively: a sender
/// cannot add this organisation's id beside the one its own service stamped.
fn carries_one_of(data: &[u8], name: &str, values: &[String]) -> bool {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |p| p + 2);
    let head = String::from_utf8_lossy(&data[..end]);
    // Unfold: a line that starts with white space continues the field before it.
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match (line.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some(last)) => last.push_str(line),
            _ => fields.push(line.to_string()),
        }
    }
    let mut found = fields
        .iter()
        .filter_map(|f| f.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .peekable();
    found.peek().is_some()
        && found.all(|v| !v.is_empty() && values.iter().any(|w| w.eq_ignore_ascii_case(v)))
}

#[cfg(test)]
mod tenant_tests {
    use super::carries_one_of;

    #[test]
    fn the_tenant_header_is_found_unfolded_and_only_in_the_header_section() {
        let ids = vec!["7d3c2b1a-0000-4000-8000-00000000abcd".to_string()];
        let name = "X-MS-Exchange-CrossTenant-Id";
        let ok = b"From: a@lumen.sch.uk\r\nx-ms-exchange-crosstenant-id:\r\n 7D3C2B1A-0000-4000-8000-00000000ABCD\r\n\r\nbody\r\n";
        assert!(carries_one_of(ok, name, &ids));
        let other = b"X-MS-Exchange-CrossTenant-Id: 11111111-0000-4000-8000-000000000000\r\n\r\n";
        assert!(!carries_one_of(other, name, &ids));
        let in_body = b"Subject: hi\r\n\r\nX-MS-Exchange-CrossTenant-Id: 7d3c2b1a-0000-4000-8000-00000000abcd\r\n";
        assert!(!carries_one_of(in_body, name, &ids));
        let prefix = b"X-MS-Exchange-CrossTenant-Idx: 7d3c2b1a-0000-4000-8000-00000000abcd\r\n\r\n";
        assert!(!carries_one_of(prefix, name, &ids));
        let added = b"X-MS-Exchange-CrossTenant-Id: 11111111-0000-4000-8000-000000000000\r\nX-MS-Exchange-CrossTenant-Id: 7d3c2b1a-0000-4000-8000-00000000abcd\r\n\r\n";
        assert!(
            !carries_one_of(added, name, &ids),
            "every copy of the header must match"
        );
        let empty = b"X-MS-Exchange-CrossTenant-Id:\r\n\r\n";
        assert!(!carries_one_of(empty, name, &[String::new()]));
    }
}
