//! `adp-test-intake`: a Datadog intake stand-in for shell checks and
//! benchmarks.
//!
//! ```text
//! adp-test-intake --listen 127.0.0.1:0 [--print] [--blackhole]
//! ```
//!
//! The first stdout line is `listening on <addr>`, so scripts can bind port 0
//! and read the port back. With `--print`, every decoded payload follows as
//! one JSON line. `--blackhole` accepts and counts without decoding or
//! keeping anything. `GET /_intake/received`, `POST /_intake/behaviour` and
//! `POST /_intake/reset` inspect and steer it (see the library docs). It runs
//! until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use adp_test_intake::{Behaviour, IntakeOptions, TestIntake};
use clap::Parser;

/// A Datadog intake stand-in that decodes what the agent sends.
#[derive(Parser, Debug)]
#[command(name = "adp-test-intake", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Print each decoded payload as one JSON line on stdout.
    #[arg(long)]
    print: bool,
    /// Accept and count requests without decoding or keeping payloads.
    #[arg(long, conflicts_with = "print")]
    blackhole: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("adp-test-intake: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let options = IntakeOptions {
        blackhole: args.blackhole,
        print: args.print,
    };
    let intake = match TestIntake::start_with(args.listen, Behaviour::normal(), options).await {
        Ok(intake) => intake,
        Err(e) => {
            eprintln!(
                "adp-test-intake: cannot listen on {}: {e}; choose another --listen address",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", intake.addr());
        let _ = out.flush();
    }
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("adp-test-intake: cannot install the SIGTERM handler: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let received = intake.received();
    eprintln!(
        "adp-test-intake: stopping; requests {:?}, errors {}",
        received.requests,
        received.errors.len()
    );
    intake.shutdown().await;
    ExitCode::SUCCESS
}
