//! `adp-loadgen`: a deterministic DogStatsD (and plain StatsD) load generator.
//!
//! Profiles mirror the Agent Data Plane's memory quality gates
//! (`../shared/reference/benchmarks.md`): a pool of contexts whose names are
//! 1–200 chars and tags 3–150 chars (2–50 tags), type weights count 208 /
//! gauge 66 / distribution 72 / set 9 / histogram 1, multi-value messages
//! (2–32 values) with probability 0.08. The `plain` profile speaks the StatsD
//! subset every peer understands (no tags; `c`, `g`, `ms`). The `churn` profile
//! makes every message a new context (`churn.<n>:1|c`), to show the agent's
//! context limits holding memory (`make bench`'s churn part).
//!
//! It only sends to loopback (127.0.0.0/8, ::1) or a Unix socket, is bounded
//! by a message count and a duration, and prints one JSON summary line.
//!
//! ```text
//! adp-loadgen --target udp://127.0.0.1:8125 --profile low --duration 10
//! adp-loadgen --target unix:///tmp/dsd.sock --profile heavy --max-messages 1000000
//! ```

mod generator;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;

use generator::{Generator, Profile};

#[derive(Parser, Debug)]
#[command(
    name = "adp-loadgen",
    version,
    about = "Deterministic DogStatsD load generator (loopback only)"
)]
struct Args {
    /// Where to send: udp://127.0.0.1:PORT or unix:///path/to/socket (datagram).
    #[arg(long)]
    target: String,
    /// Load profile: idle, low, medium, heavy, ultraheavy, plain, churn (every message a new context).
    #[arg(long, default_value = "low")]
    profile: String,
    /// Bytes per second to send; defaults to the profile's rate (0 = as fast as possible).
    #[arg(long)]
    rate_bytes: Option<u64>,
    /// Number of distinct contexts; defaults to the profile's.
    #[arg(long)]
    contexts: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many messages (0 = no limit besides the duration).
    #[arg(long, default_value_t = 0)]
    max_messages: u64,
    /// Largest datagram to send, bytes (the agent's dogstatsd_buffer_size is 8192).
    #[arg(long, default_value_t = 8192)]
    max_datagram: usize,
    /// PRNG seed: the same seed, profile and limits send the same bytes.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Print the generated messages to stdout instead of sending (for inspection).
    #[arg(long)]
    dry_run: bool,
}

const DEFAULT_SEED: u64 = 0x5eed_0a0d;

enum Sink {
    Udp(UdpSocket, SocketAddr),
    Unix(UnixDatagram, PathBuf),
}

impl Sink {
    fn open(target: &str) -> anyhow::Result<Self> {
        if let Some(addr) = target.strip_prefix("udp://") {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("invalid --target address {addr:?}"))?;
            if !addr.ip().is_loopback() {
                bail!("refusing to send load to {addr}: only loopback targets are allowed");
            }
            let bind = if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
            let sock = UdpSocket::bind(bind).context("binding the UDP sender")?;
            Ok(Sink::Udp(sock, addr))
        } else if let Some(path) = target.strip_prefix("unix://") {
            let sock = UnixDatagram::unbound().context("creating the Unix datagram sender")?;
            // Non-blocking, so a full receive queue surfaces as `WouldBlock`: the sender
            // retries the same datagram (exact counts) and reports the retries, which tell
            // a benchmark that the receiver fell behind the offered rate.
            sock.set_nonblocking(true)
                .context("making the Unix datagram sender non-blocking")?;
            Ok(Sink::Unix(sock, PathBuf::from(path)))
        } else {
            bail!("invalid --target {target:?}: expected udp://127.0.0.1:PORT or unix:///path")
        }
    }

    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Udp(s, a) => s.send_to(buf, a),
            Sink::Unix(s, p) => s.send_to(buf, p),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let profile = Profile::named(&args.profile).with_context(|| {
        format!(
            "unknown --profile {:?}: expected idle, low, medium, heavy, ultraheavy, plain or churn",
            args.profile
        )
    })?;
    let rate = args.rate_bytes.unwrap_or(profile.rate_bytes);
    let contexts = args.contexts.unwrap_or(profile.contexts);
    let deadline = Duration::from_secs_f64(args.duration.max(0.0));
    let mut gen = Generator::new(profile, contexts, args.seed);

    if args.dry_run {
        let mut out = Vec::new();
        for _ in 0..args.max_messages.max(1) {
            out.clear();
            gen.message(&mut out);
            println!("{}", String::from_utf8_lossy(&out));
        }
        return Ok(());
    }

    let sink = Sink::open(&args.target)?;
    let start = Instant::now();
    let (mut messages, mut values, mut bytes, mut datagrams, mut errors, mut would_block) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut datagram = Vec::with_capacity(args.max_datagram);
    let mut msg = Vec::with_capacity(1024);

    if profile.sends() {
        'outer: while start.elapsed() < deadline {
            // Fill one datagram with whole messages.
            datagram.clear();
            let mut in_datagram = (0u64, 0u64);
            loop {
                if args.max_messages > 0 && messages + in_datagram.0 >= args.max_messages {
                    break;
                }
                msg.clear();
                let n = gen.message(&mut msg);
                let extra = usize::from(!datagram.is_empty());
                if datagram.len() + extra + msg.len() > args.max_datagram {
                    if datagram.is_empty() {
                        continue; // a single message longer than a datagram: skip it
                    }
                    gen.push_back(msg.clone(), n);
                    break;
                }
                if extra == 1 {
                    datagram.push(b'\n');
                }
                datagram.extend_from_slice(&msg);
                in_datagram.0 += 1;
                in_datagram.1 += n;
            }
            if datagram.is_empty() {
                break 'outer;
            }
            loop {
                match sink.send(&datagram) {
                    Ok(_) => break,
                    // A full Unix socket buffer: the receiver is behind; wait and retry
                    // so that the count of sent messages stays exact.
                    Err(e) if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(105) => {
                        would_block += 1;
                        std::thread::sleep(Duration::from_micros(50));
                        if start.elapsed() >= deadline {
                            break 'outer;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("adp-loadgen: send failed: {e}");
                        }
                        if errors > 1000 {
                            bail!("adp-loadgen: too many send errors, last: {e}");
                        }
                        break;
                    }
                }
            }
            messages += in_datagram.0;
            values += in_datagram.1;
            bytes += datagram.len() as u64;
            datagrams += 1;
            if args.max_messages > 0 && messages >= args.max_messages {
                break;
            }
            // Pace to the byte rate.
            if rate > 0 {
                let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
                let elapsed = start.elapsed();
                if due > elapsed {
                    std::thread::sleep(due - elapsed);
                }
            }
        }
    } else {
        std::thread::sleep(deadline);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "profile": args.profile,
        "target": args.target,
        "seed": args.seed,
        // Churn: every message was a new context.
        "contexts": if profile.churn { messages } else { u64::from(contexts) },
        "messages": messages,
        "values": values,
        "bytes": bytes,
        "datagrams": datagrams,
        "send_errors": errors,
        "would_block_retries": would_block,
        "elapsed_secs": elapsed,
        "bytes_per_sec": if elapsed > 0.0 { bytes as f64 / elapsed } else { 0.0 },
        "values_per_sec": if elapsed > 0.0 { values as f64 / elapsed } else { 0.0 },
    });
    println!("{summary}");
    Ok(())
}
