//! Live configuration: the relay's current engine (configuration, detectors, policy), swapped
//! whole on SIGHUP or when the configuration file or a detector file changes. A change that does
//! not load keeps the last good engine running; its problems are logged as `FILE:LINE:COL`, the
//! same lines `hallpass check` prints.
//!
//! Each message is scanned with one engine from start to finish (a snapshot taken when it
//! arrives); sessions and connections are never dropped by a reload. Settings that shape the
//! listeners, the store or TLS are read once at start-up: a change to them is reported and takes
//! effect at the next restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hallpass_core::Config;
use hallpass_engine::Engine;

/// The engine in force, and where it was loaded from.
pub struct Live {
    path: PathBuf,
    engine: RwLock<Arc<Engine>>,
    /// The TLS certificates of the listeners, read again on every reload.
    certificates: Vec<Arc<hallpass_smtp::Certificate>>,
}

impl Live {
    pub fn new(path: PathBuf, engine: Engine) -> Live {
        Live {
            path,
            engine: RwLock::new(Arc::new(engine)),
            certificates: Vec::new(),
        }
    }

    /// The listeners' certificates, to read again on each reload (a renewed certificate, e.g.
    /// after `certbot renew`, is used from the next handshake on).
    pub fn with_certificates(mut self, certificates: Vec<Arc<hallpass_smtp::Certificate>>) -> Live {
        self.certificates = certificates;
        self
    }

    /// Reads the certificates again; a file that does not load keeps the one in use.
    fn reload_certificates(&self) {
        for c in &self.certificates {
            let before = c.end_entity_der();
            match c.reload() {
                Ok(()) if c.end_entity_der() != before => {
                    tracing::info!("TLS certificate renewed: new handshakes use the new one");
                }
                Ok(()) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "the TLS certificate cannot be read again; the one in use stays"
                ),
            }
        }
    }

    /// The engine in force now. Keep the snapshot for the whole of one message.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the configuration file and the detectors again. On success the new engine
    /// replaces the old one; on failure the old one stays and the problems are returned, one
    /// `FILE:LINE:COL: message` per line.
    /// Returns the settings that changed but need a restart.
    pub fn reload(&self) -> Result<Vec<&'static str>, String> {
        let config = Config::load(&self.path).map_err(|p| p.to_string())?;
        let engine = Engine::load(config).map_err(|p| p.to_string())?;
        let needs_restart = needs_restart(self.engine().config(), engine.config());
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(engine);
        Ok(needs_restart)
    }

    /// Reloads and logs the outcome (never a value: configuration only).
    pub fn reload_and_log(&self, why: &str) {
        self.reload_certificates();
        match self.reload() {
            Ok(needs_restart) => {
                metrics::counter!("hallpass_reloads_total", "result" => "ok").increment(1);
                tracing::info!(trigger = why, "configuration reloaded");
                for key in needs_restart {
                    tracing::warn!(
                        setting = key,
                        "this setting changed; it takes effect when hallpass restarts"
                    );
                }
            }
            Err(problems) => {
                metrics::counter!("hallpass_reloads_total", "result" => "refused").increment(1);
                for line in problems.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::error!(problem = line, "configuration change refused");
                }
                tracing::error!(
                    trigger = why,
                    "the new configuration has problems; the last good one keeps running (run `hallpass check`)"
                );
            }
        }
    }
}

/// Settings read once at start-up (listeners, storage, TLS, SMTP limits).
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    // Compared by their Debug form: the sections are plain data.
    fn differs(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    // What each message or sweep reads from the engine is live: the tenant check, the
    // retention periods. The rest of these sections shaped the listeners and the store.
    let start_up_smtp = |c: &Config| {
        let mut smtp = c.smtp.clone();
        smtp.tenant_header.clear();
        smtp.tenant_ids.clear();
        smtp
    };
    let start_up_storage = |c: &Config| {
        let mut storage = c.storage.clone();
        storage.held_retention_days = 0;
        storage.decided_retention_days = 0;
        storage
    };
    let (o, n) = (&old.delivery, &new.delivery);
    [
        (
            "[smtp] listener, TLS and limits",
            differs(&start_up_smtp(old), &start_up_smtp(new)),
        ),
        ("[console]", differs(&old.console, &new.console)),
        (
            "[storage] path, url and node",
            differs(&start_up_storage(old), &start_up_storage(new)),
        ),
        ("[counters]", differs(&old.counters, &new.counters)),
        ("[upstream]", differs(&old.upstream, &new.upstream)),
        (
            "[delivery] concurrency, require_tls, accept_invalid_certs",
            differs(
                &(o.concurrency, o.require_tls, o.accept_invalid_certs),
                &(n.concurrency, n.require_tls, n.accept_invalid_certs),
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// Reloads on SIGHUP and when the configuration file or anything in the detector folder
/// changes (after a short quiet period, so an editor's several writes count once). Runs until
/// `stop` says so.
pub async fn watch(live: Arc<Live>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload by file changes only");
            None
        }
    };
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = match file_watcher(&live, tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration files; reload with SIGHUP");
            None
        }
    };
    loop {
        tokio::select! {
            _ = async { hup.as_mut().expect("checked").recv().await }, if hup.is_some() => {
                live.reload_and_log("SIGHUP");
            }
            Some(()) = changed.recv() => {
                // Let a burst of writes settle, then reload once.
                tokio::time::sleep(QUIET).await;
                while changed.try_recv().is_ok() {}
                live.reload_and_log("file change");
            }
            _ = stop.changed() => return,
        }
    }
}

/// How long files must stay unchanged before a reload.
const QUIET: Duration = Duration::from_millis(300);

/// Watches the configuration file's folder (editors replace files by renaming) and the
/// detector folder; only events about the configuration file itself or a detector file count.
fn file_watcher(
    live: &Live,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> ::notify::Result<::notify::RecommendedWatcher> {
    use ::notify::{RecursiveMode, Watcher};
    let config_file = live
        .path
        .canonicalize()
        .unwrap_or_else(|_| live.path.clone());
    let config_dir = config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let detectors = live.engine().config().detectors.path.clone();
    let detectors = detectors.canonicalize().unwrap_or(detectors);
    let watched_file = config_file.clone();
    let watched_detectors = detectors.clone();
    let mut watcher =
        ::notify::recommended_watcher(move |event: ::notify::Result<::notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let relevant = event.paths.iter().any(|p| {
                p == &watched_file
                    || (p.starts_with(&watched_detectors)
                        && p.extension().is_some_and(|e| e == "toml"))
            });
            if relevant {
                let _ = tx.send(());
            }
        })?;
    watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
    if detectors.is_dir() {
        watcher.watch(&detectors, RecursiveMode::Recursive)?;
    }
    Ok(watcher)
}
