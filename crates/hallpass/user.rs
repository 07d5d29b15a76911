//! `hallpass user …`: console and relay accounts. Passwords are read from the
//! terminal without echo, or from standard input when it is not a terminal
//! (scripts), and stored hashed (argon2id) by the store.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use hallpass_core::Config;
use hallpass_store::{AuditEntry, Role, Store, StoreError};

use crate::{EXIT_CONFIG, EXIT_FAILURE, clock, held, serve};

/// What to do.
pub enum Action {
    /// A new account.
    Add { name: String, role: Role },
    /// A new password.
    Passwd { name: String },
    /// Remove an account.
    Remove { name: String },
    /// A new API token (printed once).
    Token { name: String },
    /// All accounts.
    List,
}

/// Shortest password accepted.
const MIN_PASSWORD: usize = 12;

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
        Ok(first)
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
}

async fn audit(store: &Store, action: &str, target: &str) -> anyhow::Result<()> {
    store
        .audit(&AuditEntry {
            at_ms: clock::now_ms(),
            actor: held::actor(),
            action: action.into(),
            target: Some(target.into()),
            detail: String::new(),
        })
        .await?;
    Ok(())
}

/// Runs one `user` command.
pub async fn run(config: &Config, action: Action) -> anyhow::Result<ExitCode> {
    let (store, _) = serve::open_storage(config).await?;
    match action {
        Action::Add { name, role } => {
            if !valid_name(&name) {
                eprintln!("hallpass: a user name is 1 to 64 letters, digits, '.', '-', '_' or '@'");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let password = read_password()?;
            if password.chars().count() < MIN_PASSWORD {
                eprintln!("hallpass: the password must be at least {MIN_PASSWORD} characters");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            match store.user_add(&name, role, &password).await {
                Ok(()) => {
                    audit(&store, &format!("user-add:{}", role.as_str()), &name).await?;
                    println!("added {name} ({})", role.as_str());
                    Ok(ExitCode::SUCCESS)
                }
                Err(StoreError::Exists) => {
                    eprintln!(
                        "hallpass: {name} exists already; `hallpass user passwd {name}` changes its password"
                    );
                    Ok(ExitCode::from(EXIT_FAILURE))
                }
                Err(e) => Err(e.into()),
            }
        }
        Action::Passwd { name } => {
            let password = read_password()?;
            if password.chars().count() < MIN_PASSWORD {
                eprintln!("hallpass: the password must be at least {MIN_PASSWORD} characters");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            match store.user_set_password(&name, &password).await {
                Ok(()) => {
                    audit(&store, "user-passwd", &name).await?;
                    println!("password changed for {name}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(StoreError::NoSuchUser) => no_such(&name),
                Err(e) => Err(e.into()),
            }
        }
        Action::Remove { name } => match store.user_remove(&name).await {
            Ok(()) => {
                audit(&store, "user-remove", &name).await?;
                println!("removed {name}");
                Ok(ExitCode::SUCCESS)
            }
            Err(StoreError::NoSuchUser) => no_such(&name),
            Err(e) => Err(e.into()),
        },
        Action::Token { name } => match store.user_new_token(&name).await {
            Ok(token) => {
                audit(&store, "user-token", &name).await?;
                println!("{token}");
                Ok(ExitCode::SUCCESS)
            }
            Err(StoreError::NoSuchUser) => no_such(&name),
            Err(e) => Err(e.into()),
        },
        Action::List => {
            for u in store.user_list().await? {
                println!(
                    "{:<24} {:<7} {}  created {}",
                    u.name,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active  " },
                    clock::rfc3339(u.created_ms)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn no_such(name: &str) -> anyhow::Result<ExitCode> {
    eprintln!("hallpass: there is no user {name}; `hallpass user list` shows them");
    Ok(ExitCode::from(EXIT_FAILURE))
}
