//! `agent-data-plane`: receives DogStatsD over UDP and Unix sockets, aggregates
//! it, and forwards series, sketches, events and service checks to the Datadog
//! intake, configured like the Datadog Agent (`datadog.yaml` + `DD_*`).
//!
//! This crate is the CLI and the glue: configuration → modes → APIs → the
//! pipeline ([`pipeline`]) → lifecycle ([`run`]). The work itself lives in the
//! `adp-*` library crates.
#![deny(missing_docs)]

// No custom global allocator: the system (glibc) allocator everywhere. jemalloc
// is the usual choice for 64-bit agents, but on 32-bit ARM the seed's jemalloc
// configuration (`thp:never` with `abort_conf:true`) aborted at start-up, and
// glibc's malloc keeps the armv7 binary smaller and the cross build free of a C
// library build. See docs/architecture.md and ../shared/reference/toolchains.md.

mod api;
mod cli;
mod health;
mod logging;
mod memory;
mod pipeline;
mod run;
mod settings;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The crate version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short git hash of the build (`unknown` outside git; see build.rs).
pub const GIT_HASH: &str = env!("ADP_GIT_HASH");
/// The build time from `SOURCE_DATE_EPOCH`, or `unknown` (never the wall clock).
pub const BUILD_TIME: &str = env!("ADP_BUILD_TIME");

/// `v<version>-<git short hash>`.
pub fn version_string() -> String {
    format!("v{VERSION}-{GIT_HASH}")
}

/// The Agent Data Plane: DogStatsD in, Datadog intake out.
#[derive(Debug, Parser)]
#[command(name = "agent-data-plane", disable_version_flag = true)]
struct Cli {
    /// The Datadog Agent configuration file. A missing default file means
    /// "configure from DD_* environment variables only"; a missing file given
    /// here is an error.
    #[arg(short = 'c', long = "config", value_name = "PATH", global = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the data plane until SIGINT or SIGTERM.
    Run {
        /// Writes the process id here at start and removes it at exit.
        #[arg(short = 'p', long = "pidfile", value_name = "PATH")]
        pidfile: Option<PathBuf>,
    },
    /// Prints the version (v<version>-<git hash>) without reading any configuration.
    Version {
        /// Prints version, git hash, target architecture and build time as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints every configuration key the agent reads, its effective value
    /// (secrets redacted) and where the value came from (an environment
    /// variable, the file, or the default), then the keys set that it ignores.
    Config,
    /// Asks the running agent about its DogStatsD traffic and contexts,
    /// through the privileged API with the auth token.
    Dogstatsd {
        #[command(subcommand)]
        command: cli::DogstatsdCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version { json } => {
            if json {
                let info = serde_json::json!({
                    "version": VERSION,
                    "git_hash": GIT_HASH,
                    "target_arch": std::env::consts::ARCH,
                    "build_time": BUILD_TIME,
                });
                println!("{info}");
            } else {
                println!("{}", version_string());
            }
            ExitCode::SUCCESS
        }
        Command::Config => match run::load_settings(cli.config.as_deref()) {
            Ok(settings) => {
                print!("{}", settings.effective.to_annotated_yaml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("agent-data-plane: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Dogstatsd { command } => {
            let output = run::load_settings(cli.config.as_deref()).and_then(|s| cli::dogstatsd(&s.agent, &command));
            match output {
                Ok(text) => {
                    print!("{text}");
                    if !text.ends_with('\n') {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("agent-data-plane: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { pidfile } => {
            tune_malloc();
            run::run(cli.config.as_deref(), pidfile.as_deref())
        }
    }
}

/// Tunes glibc's malloc before any thread starts: two arenas, and a fixed
/// 256 KiB threshold above which blocks are mapped on their own.
///
/// glibc gives each thread that contends on malloc its own arena (up to 8 per
/// core), and each arena keeps freed memory for reuse: with tokio's worker and
/// blocking threads that is several MiB of RSS held for nothing on a 512 MiB
/// board. `make bench` measured low 14.5 → 10.1 MiB and medium 27.0 → 20.7 MiB
/// steady RSS with two arenas, CPU unchanged (docs/benchmarks.md).
///
/// glibc also raises its mmap threshold each time a mapped block is freed (up
/// to 32 MiB), after which the compressed payloads of every flush (~0.5 MiB
/// each) come from the heap, where freed ones fragment it and stay resident.
/// A fixed threshold keeps them mapped and returned at free: medium 33.9 →
/// 24.4 MiB steady RSS, CPU unchanged (`MALLOC_MMAP_THRESHOLD_=262144`, twice).
///
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` set by the operator win:
/// glibc has already applied them.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
        // SAFETY: mallopt only changes allocator tuning; called before any
        // other thread exists, so no allocation races with it.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}
