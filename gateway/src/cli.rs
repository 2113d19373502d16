//! The command line: `cpim-gateway [--log-format text|json] [run [--config FILE] | check-config FILE]`.
//! With no subcommand it runs on the built-in defaults (or `--config` if given).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::gateway::{shutdown_signal, Gateway};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The CPIM gateway: SIP/SIMPLE <-> XMPP instant messaging and presence.
#[derive(Debug, Parser)]
#[command(name = "cpim-gateway", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file (TOML); the built-in defaults without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file (and the environment overrides) and exit.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Some(Command::Run { config }) => run(cli.log_format, config),
        None => run(cli.log_format, None),
    }
}

fn run(format: LogFormat, config: Option<PathBuf>) -> i32 {
    init_logs(format);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Config::defaults_with_env(),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let gw = match Gateway::start(cfg).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "gateway failed to start");
                eprintln!("{e}");
                return 1;
            }
        };
        shutdown_signal().await;
        gw.shutdown().await;
        0
    })
}
