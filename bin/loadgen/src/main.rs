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
//! by a message count and a duration, and prints one JSON summary line. The
//! summary carries the *data floor* of the contexts it sent: the bytes of every
//! distinct name and tag once plus 4 bytes (a `u32` id) per tag of each context,
//! what any agent must hold to aggregate them.
//!
//! `--receive` turns it into the smallest possible receiver instead: it binds
//! a loopback UDP port with the agent's socket setup (`--so-rcvbuf`, a buffer
//! of `--max-datagram` + 1 bytes), reads and discards datagrams for
//! `--duration` seconds and prints how many it read. Benchmarks race it against
//! the agent to show what one core can receive at all.
//!
//! ```text
//! adp-loadgen --target udp://127.0.0.1:8125 --profile low --duration 10
//! adp-loadgen --target unix:///tmp/dsd.sock --profile heavy --max-messages 1000000
//! adp-loadgen --receive udp://127.0.0.1:8125 --duration 60
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
    #[arg(long, required_unless_present = "receive", conflicts_with = "receive")]
    target: Option<String>,
    /// Receive instead of sending: bind udp://127.0.0.1:PORT, read and discard
    /// datagrams for --duration seconds, print the counts.
    #[arg(long)]
    receive: Option<String>,
    /// With --receive: the socket's receive buffer (SO_RCVBUF) in bytes; 0 keeps
    /// the OS default (as the agent's `dogstatsd_so_rcvbuf`).
    #[arg(long, default_value_t = 0)]
    so_rcvbuf: usize,
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

/// `--receive`: reads and discards datagrams on a loopback UDP port until the
/// duration is over, then prints one JSON line.
fn receive(addr: &str, args: &Args) -> anyhow::Result<()> {
    let addr: SocketAddr = addr
        .strip_prefix("udp://")
        .with_context(|| format!("invalid --receive {addr:?}: expected udp://127.0.0.1:PORT"))?
        .parse()
        .with_context(|| format!("invalid --receive address {addr:?}"))?;
    if !addr.ip().is_loopback() {
        bail!("refusing to receive on {addr}: only loopback addresses are allowed");
    }
    let sock = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
    if args.so_rcvbuf > 0 {
        let size = libc::c_int::try_from(args.so_rcvbuf).context("--so-rcvbuf is too large")?;
        // SAFETY: a valid socket and a pointer to a c_int of the length given.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("setting SO_RCVBUF");
        }
    }
    let deadline = Duration::from_secs_f64(args.duration.max(0.0));
    // Wake up now and then to notice the deadline when nothing arrives.
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .context("setting the receive timeout")?;
    let mut buf = vec![0u8; args.max_datagram + 1];
    let start = Instant::now();
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    while start.elapsed() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                datagrams += 1;
                bytes += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("receiving"),
        }
    }
    println!(
        "{}",
        serde_json::json!({"receive": addr.to_string(), "datagrams": datagrams, "bytes": bytes, "elapsed_secs": start.elapsed().as_secs_f64()})
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = &args.receive {
        return receive(addr, &args);
    }
    let target = args.target.as_deref().unwrap_or_default();
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

    let sink = Sink::open(target)?;
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
    let floor = gen.floor();
    let summary = serde_json::json!({
        "profile": args.profile,
        "target": target,
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
        // What the contexts sent need at the least (none for churn, which never repeats).
        "floor": {
            "contexts": floor.contexts,
            "name_bytes": floor.name_bytes,
            "tag_bytes": floor.tag_bytes,
            "tag_refs": floor.tag_refs,
            "bytes_per_ref": generator::Floor::BYTES_PER_REF,
            "bytes": floor.bytes(),
        },
    });
    println!("{summary}");
    Ok(())
}
