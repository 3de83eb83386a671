//! The `ntp` check (`pkg/collector/corechecks/net/ntp`): an SNTP client.
//!
//! Each run asks every configured server once (default
//! `0.datadog.pool.ntp.org` … `3.datadog.pool.ntp.org`, port 123, NTP version
//! 3, a 5 s timeout each) and sends the median clock offset in seconds as the
//! gauge `ntp.offset` (positive: the local clock is behind), with the service
//! check `ntp.in_sync` — OK, CRITICAL when the offset exceeds
//! `offset_threshold` (60 s), UNKNOWN when no server answered. It runs every
//! 900 s by default, the pool's guideline.
//!
//! A reply is used as beevik/ntp (the Agent's client) validates it: server
//! mode, our transmit time echoed, stratum 1–15, leap indicator not "alarm",
//! root distance (delay / 2 + dispersion) ≤ 16 s, transmit time not before
//! the reference time and that reference at most 2¹⁷ s old.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::check::{Check, CheckError};
use crate::output::{Emitter, ServiceCheckStatus};

/// The Agent's default servers when no cloud provider is detected.
pub const DEFAULT_HOSTS: [&str; 4] = [
    "0.datadog.pool.ntp.org",
    "1.datadog.pool.ntp.org",
    "2.datadog.pool.ntp.org",
    "3.datadog.pool.ntp.org",
];

/// The ntp check's default collection interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(900);

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: i64 = 2_208_988_800;
const MAX_STRATUM: u8 = 16;
const MAX_DISPERSION: f64 = 16.0;
const MAX_POLL_INTERVAL: f64 = (1u64 << 17) as f64;

/// `ntp` instance options (the Agent's names; 0 means the default).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NtpOptions {
    /// Offset in seconds above which `ntp.in_sync` is CRITICAL. Defaults to 60.
    #[serde(default)]
    pub offset_threshold: u64,
    /// A server tried first.
    #[serde(default)]
    pub host: String,
    /// The servers. Defaults to [`DEFAULT_HOSTS`].
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// The UDP port. Defaults to 123.
    #[serde(default)]
    pub port: u16,
    /// The NTP version of the request. Defaults to 3.
    #[serde(default)]
    pub version: u8,
    /// Seconds to wait for each server. Defaults to 5.
    #[serde(default)]
    pub timeout: u64,
    /// Use the servers of /etc/ntp.conf and the like: not supported, warned about.
    #[serde(default)]
    pub use_local_defined_servers: bool,
}

/// Why one server gave no usable offset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NtpError {
    /// Resolution, socket or timeout failure.
    #[error("{0}")]
    Io(String),
    /// The reply failed validation.
    #[error("{0}")]
    Invalid(&'static str),
}

/// A decoded server reply.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reply {
    leap: u8,
    mode: u8,
    stratum: u8,
    root_delay: f64,
    root_dispersion: f64,
    reference: u64,
    origin: u64,
    receive: u64,
    transmit: u64,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn decode(packet: &[u8; 48]) -> Reply {
    Reply {
        leap: packet[0] >> 6,
        mode: packet[0] & 7,
        stratum: packet[1],
        root_delay: f64::from(be32(&packet[4..8])) / 65536.0,
        root_dispersion: f64::from(be32(&packet[8..12])) / 65536.0,
        reference: be64(&packet[16..24]),
        origin: be64(&packet[24..32]),
        receive: be64(&packet[32..40]),
        transmit: be64(&packet[40..48]),
    }
}

/// An NTP timestamp (32.32 fixed point since 1900) from Unix seconds.
pub fn ntp_timestamp(unix: f64) -> u64 {
    let secs = (unix.floor() as i64 + NTP_UNIX_OFFSET) as u64 & 0xFFFF_FFFF;
    let frac = ((unix - unix.floor()) * 4_294_967_296.0) as u64 & 0xFFFF_FFFF;
    (secs << 32) | frac
}

/// Unix seconds of an NTP timestamp, taking the era (2036 rollover) nearest
/// to `near` (Unix seconds).
pub fn unix_seconds(ts: u64, near: f64) -> f64 {
    let secs = (ts >> 32) as i64;
    let frac = (ts & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    let era = 1i64 << 32;
    let base = secs - NTP_UNIX_OFFSET;
    let k = ((near - base as f64) / era as f64).round() as i64;
    (base + k * era) as f64 + frac
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Queries one server and returns the clock offset in seconds.
pub fn query(addr: SocketAddr, version: u8, timeout: Duration) -> Result<f64, NtpError> {
    let io = |what: &str, e: std::io::Error| NtpError::Io(format!("{what} {addr}: {e}"));
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(|e| io("bind for", e))?;
    socket.connect(addr).map_err(|e| io("connect to", e))?;
    socket
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|e| io("set timeout for", e))?;

    let mut request = [0u8; 48];
    request[0] = (version & 7) << 3 | 3; // LI 0, client mode
    let t1 = now_unix();
    let xmt = ntp_timestamp(t1);
    request[40..48].copy_from_slice(&xmt.to_be_bytes());
    socket.send(&request).map_err(|e| io("send to", e))?;

    let mut packet = [0u8; 48];
    let n = loop {
        match socket.recv(&mut packet) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("no reply from", e)),
        }
    };
    let t4 = now_unix();
    if n < 48 {
        return Err(NtpError::Invalid("invalid response: short packet"));
    }
    let reply = decode(&packet);
    validate(&reply, xmt)?;
    let t2 = unix_seconds(reply.receive, t1);
    let t3 = unix_seconds(reply.transmit, t1);
    Ok(((t2 - t1) + (t3 - t4)) / 2.0)
}

fn validate(r: &Reply, sent: u64) -> Result<(), NtpError> {
    if r.mode != 4 {
        return Err(NtpError::Invalid("invalid mode in response"));
    }
    if r.transmit == 0 {
        return Err(NtpError::Invalid("invalid transmit time in response"));
    }
    if r.origin != sent {
        return Err(NtpError::Invalid("server response mismatch"));
    }
    if r.stratum == 0 {
        return Err(NtpError::Invalid("kiss of death received"));
    }
    if r.stratum >= MAX_STRATUM {
        return Err(NtpError::Invalid("invalid stratum in response"));
    }
    if r.leap == 3 {
        return Err(NtpError::Invalid("invalid leap second"));
    }
    let transmit = unix_seconds(r.transmit, now_unix());
    let reference = unix_seconds(r.reference, transmit);
    if transmit - reference > MAX_POLL_INTERVAL {
        return Err(NtpError::Invalid("server clock not fresh"));
    }
    if r.root_delay / 2.0 + r.root_dispersion > MAX_DISPERSION {
        return Err(NtpError::Invalid("invalid dispersion"));
    }
    if transmit < reference {
        return Err(NtpError::Invalid("invalid time reported"));
    }
    Ok(())
}

/// The ntp check.
#[derive(Debug)]
pub struct NtpCheck {
    hosts: Vec<String>,
    port: u16,
    version: u8,
    timeout: Duration,
    threshold: u64,
    error_count: u32,
    tags: Arc<[String]>,
}

impl NtpCheck {
    /// An ntp check with the Agent's defaults for unset (zero) options.
    pub fn new(options: NtpOptions, tags: Arc<[String]>) -> Self {
        if options.use_local_defined_servers {
            warn!(
                "ntp check: `use_local_defined_servers` is not supported by this agent; using `hosts` (or the default pool). \
                 List your servers under `hosts` instead."
            );
        }
        let mut hosts = options
            .hosts
            .unwrap_or_else(|| DEFAULT_HOSTS.map(str::to_owned).to_vec());
        if !options.host.is_empty() {
            hosts.retain(|h| *h != options.host);
            hosts.insert(0, options.host);
        }
        NtpCheck {
            hosts,
            port: if options.port == 0 { 123 } else { options.port },
            version: if options.version == 0 { 3 } else { options.version },
            timeout: Duration::from_secs(if options.timeout == 0 { 5 } else { options.timeout }),
            threshold: if options.offset_threshold == 0 {
                60
            } else {
                options.offset_threshold
            },
            error_count: 0,
            tags,
        }
    }

    fn query_host(&self, host: &str) -> Result<f64, NtpError> {
        let addr = (host, self.port)
            .to_socket_addrs()
            .map_err(|e| NtpError::Io(format!("lookup {host}: {e}")))?
            .next()
            .ok_or_else(|| NtpError::Io(format!("lookup {host}: no address")))?;
        query(addr, self.version, self.timeout)
    }

    fn offset(&mut self) -> Option<f64> {
        let mut offsets = Vec::with_capacity(self.hosts.len());
        for host in &self.hosts {
            match self.query_host(host) {
                Ok(offset) => {
                    self.error_count = 0;
                    offsets.push(offset);
                }
                Err(NtpError::Invalid(why)) => {
                    self.error_count = 0;
                    info!("The ntp response is not valid for host {host}: {why}");
                }
                Err(e) => {
                    if self.error_count >= 10 {
                        self.error_count = 0;
                        warn!("Couldn't query the ntp host {host} for 10 times in a row: {e}");
                    } else {
                        self.error_count += 1;
                        debug!("There was an error querying the ntp host {host}: {e}");
                    }
                }
            }
        }
        if offsets.is_empty() {
            return None;
        }
        offsets.sort_by(f64::total_cmp);
        let n = offsets.len();
        Some(if n % 2 == 0 {
            (offsets[n / 2 - 1] + offsets[n / 2]) / 2.0
        } else {
            offsets[n / 2]
        })
    }
}

impl Check for NtpCheck {
    fn name(&self) -> &'static str {
        "ntp"
    }

    fn waits_on_network(&self) -> bool {
        true
    }

    fn run(&mut self, out: &mut Emitter, _now: Instant) -> Result<(), CheckError> {
        let Some(offset) = self.offset() else {
            out.service_check("ntp.in_sync", ServiceCheckStatus::Unknown, &self.tags, String::new());
            return Err(CheckError::Failed(format!(
                "Failed to get clock offset from any ntp host (tried {}); check the network, or set `hosts` in conf.d/ntp.d/conf.yaml",
                self.hosts.join(", ")
            )));
        };
        let (status, message) = if offset.abs().trunc() as u64 > self.threshold {
            (
                ServiceCheckStatus::Critical,
                format!(
                    "Offset {offset} is higher than offset threshold ({} secs)",
                    self.threshold
                ),
            )
        } else {
            (ServiceCheckStatus::Ok, String::new())
        };
        out.gauge("ntp.offset", offset, &self.tags);
        out.service_check("ntp.in_sync", status, &self.tags, message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SNTP responder on loopback whose clock is `skew` seconds ahead;
    /// `tweak` edits each reply. Answers `count` requests then stops.
    fn responder(skew: f64, count: usize, tweak: fn(&mut [u8; 48])) -> (SocketAddr, std::thread::JoinHandle<()>) {
        responder_on("127.0.0.1:0", skew, count, tweak)
    }

    fn responder_on(
        bind: &str,
        skew: f64,
        count: usize,
        tweak: fn(&mut [u8; 48]),
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let socket = UdpSocket::bind(bind).unwrap();
        let addr = socket.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            for _ in 0..count {
                let mut req = [0u8; 48];
                let Ok((_, from)) = socket.recv_from(&mut req) else {
                    return;
                };
                let now = now_unix() + skew;
                let mut reply = [0u8; 48];
                reply[0] = 4 | (3 << 3); // LI 0, version 3, server
                reply[1] = 2; // stratum
                reply[4..8].copy_from_slice(&(65536u32 / 100).to_be_bytes()); // 10 ms root delay
                reply[16..24].copy_from_slice(&ntp_timestamp(now - 64.0).to_be_bytes());
                reply[24..32].copy_from_slice(&req[40..48]);
                reply[32..40].copy_from_slice(&ntp_timestamp(now).to_be_bytes());
                reply[40..48].copy_from_slice(&ntp_timestamp(now + 0.0001).to_be_bytes());
                tweak(&mut reply);
                socket.send_to(&reply, from).unwrap();
            }
        });
        (addr, handle)
    }

    fn check_for(addr: SocketAddr, extra: &str) -> NtpCheck {
        let timeout = if extra.contains("timeout:") { "" } else { "timeout: 2\n" };
        let yaml = format!("hosts: [\"{}\"]\nport: {}\n{timeout}{extra}", addr.ip(), addr.port());
        NtpCheck::new(
            crate::config::options(&serde_yaml::from_str(&yaml).unwrap()).unwrap(),
            Arc::from(Vec::new()),
        )
    }

    #[test]
    fn the_offset_of_a_loopback_server_ahead_by_2_5_seconds() {
        let (addr, server) = responder(2.5, 1, |_| {});
        let mut check = check_for(addr, "");
        let mut out = Emitter::new(0, 4);
        check.run(&mut out, Instant::now()).unwrap();
        server.join().unwrap();
        let (series, checks) = out.into_parts();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].name, "ntp.offset");
        assert!((series[0].value - 2.5).abs() < 0.05, "offset {}", series[0].value);
        assert_eq!(checks[0].status, ServiceCheckStatus::Ok);
    }

    #[test]
    fn an_offset_above_the_threshold_is_critical() {
        let (addr, server) = responder(-90.0, 1, |_| {});
        let mut check = check_for(addr, "offset_threshold: 60");
        let mut out = Emitter::new(0, 4);
        check.run(&mut out, Instant::now()).unwrap();
        server.join().unwrap();
        let (series, checks) = out.into_parts();
        assert!((series[0].value + 90.0).abs() < 0.05);
        assert_eq!(checks[0].status, ServiceCheckStatus::Critical);
        assert!(
            checks[0].message.starts_with("Offset -8") || checks[0].message.starts_with("Offset -9"),
            "{}",
            checks[0].message
        );
        assert!(
            checks[0].message.ends_with("is higher than offset threshold (60 secs)"),
            "{}",
            checks[0].message
        );
    }

    #[test]
    fn invalid_replies_and_silent_servers_give_unknown() {
        fn kiss_of_death(r: &mut [u8; 48]) {
            r[1] = 0;
        }
        fn wrong_origin(r: &mut [u8; 48]) {
            r[31] ^= 1;
        }
        fn unsynchronised(r: &mut [u8; 48]) {
            r[0] |= 3 << 6;
        }
        for (tweak, why) in [
            (kiss_of_death as fn(&mut [u8; 48]), "kiss of death received"),
            (wrong_origin, "server response mismatch"),
            (unsynchronised, "invalid leap second"),
        ] {
            let (addr, server) = responder(0.0, 1, tweak);
            assert_eq!(query(addr, 3, Duration::from_secs(2)), Err(NtpError::Invalid(why)));
            server.join().unwrap();
        }

        // Nobody listens on this port once the socket is dropped.
        let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let mut check = check_for(addr, "timeout: 1");
        let mut out = Emitter::new(0, 4);
        let err = check.run(&mut out, Instant::now()).unwrap_err();
        assert!(
            err.to_string().contains("Failed to get clock offset from any ntp host"),
            "{err}"
        );
        let (series, checks) = out.into_parts();
        assert!(series.is_empty());
        assert_eq!(checks[0].status, ServiceCheckStatus::Unknown);
    }

    #[test]
    fn the_median_of_several_servers_is_sent() {
        // Three servers on one port of three loopback addresses.
        let (first, h1) = responder(1.0, 1, |_| {});
        let port = first.port();
        let (_, h2) = responder_on(&format!("127.0.0.2:{port}"), 3.0, 1, |_| {});
        let (_, h3) = responder_on(&format!("127.0.0.3:{port}"), 2.5, 1, |_| {});
        let yaml = format!("hosts: [127.0.0.1, 127.0.0.2, 127.0.0.3]\nport: {port}\ntimeout: 2\n");
        let mut check = NtpCheck::new(
            crate::config::options(&serde_yaml::from_str(&yaml).unwrap()).unwrap(),
            Arc::from(Vec::new()),
        );
        let mut out = Emitter::new(0, 4);
        check.run(&mut out, Instant::now()).unwrap();
        for h in [h1, h2, h3] {
            h.join().unwrap();
        }
        let offset = out.series()[0].value;
        assert!((offset - 2.5).abs() < 0.05, "median offset {offset}");
    }

    #[test]
    fn defaults_and_host_ordering_follow_the_agent() {
        let check = NtpCheck::new(NtpOptions::default(), Arc::from(Vec::new()));
        assert_eq!(check.hosts, DEFAULT_HOSTS);
        assert_eq!(
            (check.port, check.version, check.timeout, check.threshold),
            (123, 3, Duration::from_secs(5), 60)
        );
        let check = NtpCheck::new(
            NtpOptions {
                host: "b".into(),
                hosts: Some(vec!["a".into(), "b".into()]),
                ..Default::default()
            },
            Arc::from(Vec::new()),
        );
        assert_eq!(check.hosts, ["b", "a"]);
    }

    #[test]
    fn timestamps_survive_the_2036_era_rollover() {
        let t = 1_700_000_000.25;
        assert!((unix_seconds(ntp_timestamp(t), t) - t).abs() < 1e-6);
        let after_2036 = 2_200_000_000.5;
        assert!((unix_seconds(ntp_timestamp(after_2036), after_2036) - after_2036).abs() < 1e-6);
    }
}
