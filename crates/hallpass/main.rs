//! `hallpass`: the binary. Parses arguments, finds and loads the configuration,
//! runs one command, prints errors with their causes, and exits 0 (success,
//! whatever the verdicts), 1 (a runtime failure) or 2 (usage or configuration).
//! The work is in the library crates; this file is wiring.

mod clock;
mod digest;
mod held;
mod metrics;
mod notify;
mod reload;
mod scan;
mod serve;
mod user;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hallpass_core::Config;
use hallpass_engine::Engine;

#[derive(Parser)]
#[command(
    name = "hallpass",
    version,
    about = "Email data-loss-prevention relay for schools"
)]
struct Cli {
    /// Configuration file (default: $HALLPASS_CONFIG, ./config/hallpass.toml, /etc/hallpass/hallpass.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log lines as text (default) or JSON objects, on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Give the verdict on saved messages, with the same engine and policy as the relay.
    Scan {
        /// One JSON object per message (JSON Lines).
        #[arg(long)]
        json: bool,
        /// Show each match's location, masked value and the context word that raised it.
        #[arg(long)]
        explain: bool,
        /// .eml files, folders (searched for *.eml), or - for standard input.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Check the configuration and every detector file; prints FILE:LINE:COL: message for each problem.
    Check,
    /// Run the SMTP relay until SIGTERM or SIGINT.
    Serve,
    /// The quarantine: list, show, release or reject held messages.
    #[command(subcommand)]
    Held(HeldCommand),
    /// Console and relay accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum HeldCommand {
    /// Held messages, newest first.
    List {
        /// One JSON object per message (JSON Lines).
        #[arg(long)]
        json: bool,
        /// Released and rejected ones too.
        #[arg(long)]
        all: bool,
    },
    /// One held message: envelope, headers, findings.
    Show {
        /// The held message's id.
        id: String,
        /// As one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Deliver a held message to the recipients it was held for.
    Release {
        /// The held message's id.
        id: String,
        /// `bcc`: move outside addresses from To/Cc to Bcc before delivering.
        #[arg(long, value_enum, value_name = "HOW")]
        rewrite: Option<Rewrite>,
        /// Record that the detectors were wrong about it (a false positive).
        #[arg(long)]
        false_positive: bool,
    },
    /// Refuse a held message; the reason is recorded and given to the sender.
    Reject {
        /// The held message's id.
        id: String,
        /// Why.
        #[arg(long, default_value = "refused by the Data Protection Officer")]
        reason: String,
    },
}

/// How a released message is rewritten.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Rewrite {
    /// Outside addresses leave To/Cc (they still get the message).
    Bcc,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account (password from the terminal, or stdin when it is not one).
    Add {
        /// Login name.
        name: String,
        /// dpo or admin (console), relay (SMTP AUTH for a mail server), metrics (a token that
        /// reads /metrics only, for a Prometheus scraper).
        #[arg(long, value_parser = parse_role)]
        role: hallpass_store::Role,
    },
    /// Set a new password.
    Passwd {
        /// Login name.
        name: String,
    },
    /// Remove an account.
    Remove {
        /// Login name.
        name: String,
    },
    /// Print a new API token for scripts (replaces the previous one).
    Token {
        /// Login name.
        name: String,
    },
    /// List the accounts.
    List,
}

fn parse_role(s: &str) -> Result<hallpass_store::Role, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a role: use dpo, admin, relay or metrics"))
}

/// Exit codes of the contract.
pub const EXIT_FAILURE: u8 = 1;
/// Usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = match find_config(cli.config.as_deref()) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("hallpass: {msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logs(cli.log_format);
    quiet_panics();
    match cli.command {
        Command::Check => check(&config_path),
        Command::Serve => match load_engine(&config_path) {
            Ok(engine) => block_on(async {
                serve::run(engine, config_path.clone())
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }),
            Err(code) => code,
        },
        Command::Held(h) => {
            let action = match h {
                HeldCommand::List { json, all } => held::Action::List { json, all },
                HeldCommand::Show { id, json } => held::Action::Show { id, json },
                HeldCommand::Release {
                    id,
                    rewrite,
                    false_positive,
                } => held::Action::Release {
                    id,
                    bcc: matches!(rewrite, Some(Rewrite::Bcc)),
                    false_positive,
                },
                HeldCommand::Reject { id, reason } => held::Action::Reject { id, reason },
            };
            match load_engine(&config_path) {
                Ok(engine) => block_on(held::run(engine, action)),
                Err(code) => code,
            }
        }
        Command::User(u) => {
            let action = match u {
                UserCommand::Add { name, role } => user::Action::Add { name, role },
                UserCommand::Passwd { name } => user::Action::Passwd { name },
                UserCommand::Remove { name } => user::Action::Remove { name },
                UserCommand::Token { name } => user::Action::Token { name },
                UserCommand::List => user::Action::List,
            };
            match Config::load(&config_path) {
                Ok(config) => block_on(async move { user::run(&config, action).await }),
                Err(problems) => {
                    eprintln!("{problems}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Scan {
            json,
            explain,
            paths,
        } => match load_engine(&config_path) {
            Ok(engine) => scan::run(&engine, &paths, scan::Format { json, explain }),
            Err(code) => code,
        },
    }
}

/// Sends logs to standard error, as text or JSON lines. `RUST_LOG` (or
/// `HALLPASS_LOG`) chooses the level; `info` by default.
fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HALLPASS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs a command's future on a runtime; a failure is printed with its
/// causes and exits 1.
fn block_on(f: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hallpass: cannot start: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match rt.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hallpass: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The configuration file to use: the option, then `$HALLPASS_CONFIG`, then
/// the usual places.
fn find_config(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("HALLPASS_CONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = [
        Path::new("config/hallpass.toml"),
        Path::new("/etc/hallpass/hallpass.toml"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| p.to_path_buf())
        .ok_or_else(|| "no configuration found: give --config FILE, set HALLPASS_CONFIG, or create ./config/hallpass.toml or /etc/hallpass/hallpass.toml".to_string())
}

fn load_engine(path: &Path) -> Result<Engine, ExitCode> {
    let config = Config::load(path).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("hallpass: the configuration has problems; fix them and run `hallpass check`");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Engine::load(config).map_err(|problems| {
        eprintln!("{problems}");
        eprintln!("hallpass: the detector files have problems; fix them and run `hallpass check`");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(problems) => {
            println!("{problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let dir = config.detectors.path.clone();
    match Engine::load(config) {
        Ok(engine) => {
            let n = engine.detectors().detectors().len();
            println!(
                "{}: ok; {n} detectors from {}",
                path.display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// A panic is logged with where it happened, never its message: a parser's panic message can
/// quote the text it was reading, which may be a pupil's record. (Parsers' panics are caught and
/// the part becomes unscannable; this only decides what reaches the log.)
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown".into());
        tracing::error!(location = %at, "internal error (a panic; its message is not logged, as it may quote mail)");
    }));
}
