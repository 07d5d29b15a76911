//! `hallpass`: the binary. Parses arguments, finds and loads the configuration,
//! runs one command, prints errors with their causes, and exits 0 (success,
//! whatever the verdicts), 1 (a runtime failure) or 2 (usage or configuration).
//! The work is in the library crates; this file is wiring.

mod scan;

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
    #[command(subcommand)]
    command: Command,
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
    match cli.command {
        Command::Check => check(&config_path),
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
