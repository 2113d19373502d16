//! `cpim-bench`: the load generator and benchmark driver. See `cpim-bench run --help` and
//! `scripts/bench`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod ctx;
mod gateway;
mod kamailio;
mod presence;
mod run;
mod sut;

use run::run;

/// Load generator and benchmark driver for the CPIM gateway (RFC 7501/7502 method).
#[derive(Debug, Parser)]
#[command(name = "cpim-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the benchmark and write the report (what `scripts/bench` runs).
    Run(Box<RunArgs>),
}

/// Parameters of a run (all of them go into the report).
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RunArgs {
    /// The `cpim-gateway` binary (gateway workloads are skipped without it).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// A command put before the gateway (e.g. `valgrind --tool=callgrind`), split on spaces.
    #[arg(long)]
    gateway_wrapper: Option<String>,
    /// Scratch folder: configs, pid files, logs, the gateway's store.
    #[arg(long)]
    work_dir: PathBuf,
    /// Report path without extension: PREFIX.md and PREFIX.json are written.
    #[arg(long)]
    out: PathBuf,
    /// Workloads to run (comma-separated): generator, kamailio, p1, p2, p3, p4.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "generator,kamailio,p1,p2,p3,p4"
    )]
    only: Vec<String>,
    /// Length of each trial, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait after the last send for answers and deliveries.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Search precision (relative gap between highest clean and lowest failing rate).
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// Most trials per search.
    #[arg(long, default_value_t = 8)]
    max_steps: u32,
    /// Generator self-test: first rate.
    #[arg(long, default_value_t = 50_000)]
    gen_start: u64,
    /// Generator self-test: highest rate tried.
    #[arg(long, default_value_t = 400_000)]
    gen_max: u64,
    /// Gateway and Kamailio searches: first rate.
    #[arg(long, default_value_t = 10_000)]
    start_rate: u64,
    /// Gateway and Kamailio searches: highest rate tried.
    #[arg(long, default_value_t = 200_000)]
    max_rate: u64,
    /// Lowest rate worth trying.
    #[arg(long, default_value_t = 100)]
    min_rate: u64,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 100)]
    body_len: usize,
    /// The Kamailio binary.
    #[arg(long, default_value = "kamailio")]
    kamailio_bin: String,
    /// The Kamailio relay config template (`@PORT@` is replaced).
    #[arg(long)]
    kamailio_cfg: Option<PathBuf>,
    /// P3: watchers per presentity (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    p3_watchers: Vec<u64>,
    /// P3: notifications per trial (presentities = this / watchers, each published once).
    #[arg(long, default_value_t = 10_000)]
    p3_notifications: u64,
    /// P3: offered notifications per second (PUBLISH rate = this / watchers).
    #[arg(long, default_value_t = 10_000)]
    p3_rate: u64,
    /// P4: subscription counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    p4_counts: Vec<u64>,
    /// P4: subscription requests per second.
    #[arg(long, default_value_t = 20_000)]
    p4_rate: u64,
    /// P4: seconds allowed to create one set of subscriptions.
    #[arg(long, default_value_t = 180.0)]
    p4_time_limit: f64,
    /// P2: XMPP senders (bNNNN@xmpp.test), each one conversation with u1: the gateway keeps
    /// the messages of one (sender, addressee) pair in order, so one pair measures one
    /// conversation's round trip, not the gateway.
    #[arg(long, default_value_t = 1000)]
    p2_pairs: u64,
    /// Only P1 over UDP at this rate for one trial (for profiling), no search.
    #[arg(long)]
    fixed_rate: Option<u64>,
    /// Markdown to include as the profile section.
    #[arg(long)]
    profile_summary: Option<PathBuf>,
    /// The command line to record in the report.
    #[arg(long)]
    command_line: Option<String>,
    /// Seconds to wait for the gateway to connect to the component server.
    #[arg(long, default_value_t = 30.0)]
    start_timeout: f64,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => match run(&a) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cpim-bench: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn lo0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let u = UdpSocket::bind(lo0())?;
        let port = u.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port"))
}
