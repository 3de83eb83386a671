//! The `network` check (the Agent's Go `networkv2`, the default on Linux).
//!
//! - Per interface of `/proc/net/dev` not in `excluded_interfaces` /
//!   `excluded_interface_re`, rates `system.net.bytes_rcvd`, `bytes_sent`,
//!   `packets_in.{count,drop,error}`, `packets_out.{count,drop,error}`,
//!   tagged `device:`, `device_name:`, and `speed:`/`mtu:` when
//!   `/sys/class/net/<if>/{speed,mtu}` read as integers.
//! - Per interface of `/sys/class/net` (exclusions do not apply, as in the
//!   Agent), gauges `system.net.iface.{mtu,tx_queue_len,up}` (up = `carrier`;
//!   0 when unreadable) and `system.net.iface.num_{tx,rx}_queues`, tagged
//!   `iface:`.
//! - Protocol counters of `/proc/net/netstat` and `/proc/net/snmp` (Ip,
//!   IpExt, Tcp, TcpExt, Udp) as rates (`collect_rate_metrics`, default on)
//!   and as `<name>.count` monotonic counts (`collect_count_metrics`, default
//!   off): `system.net.tcp.retrans_segs`, `system.net.udp.in_datagrams`, …;
//!   gauge `system.net.tcp.current_established`.
//! - Gauges `system.net.conntrack.<name>` from
//!   `/proc/sys/net/netfilter/nf_conntrack_<name>`, for names containing `max`
//!   or `count` (`whitelist_conntrack_metrics`), or all but
//!   `blacklist_conntrack_metrics`.
//!
//! The shipped `conf.yaml.default` excludes `lo` and `lo0`, as the Agent's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use regex_lite::Regex;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{Counter, Reader, Roots};

fn yes() -> bool {
    true
}

fn default_whitelist() -> Vec<String> {
    vec!["max".to_owned(), "count".to_owned()]
}

/// `network` instance options.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkOptions {
    /// Interfaces to skip (exact names). Defaults to [] (the shipped default
    /// file sets `lo`, `lo0`).
    #[serde(default)]
    pub excluded_interfaces: Vec<String>,
    /// Interfaces to skip by regular expression. Defaults to none.
    #[serde(default)]
    pub excluded_interface_re: String,
    /// Send protocol counters as rates. Defaults to true.
    #[serde(default = "yes")]
    pub collect_rate_metrics: bool,
    /// Send protocol counters as `.count` monotonic counts. Defaults to false.
    #[serde(default)]
    pub collect_count_metrics: bool,
    /// Connection states (needs `ss`/`netstat`): not supported, warned about.
    #[serde(default)]
    pub collect_connection_state: bool,
    /// Conntrack files to report (substring match). Defaults to `max`, `count`.
    #[serde(default = "default_whitelist")]
    pub whitelist_conntrack_metrics: Vec<String>,
    /// Conntrack files not to report (substring match); when set, the
    /// whitelist is ignored.
    #[serde(default)]
    pub blacklist_conntrack_metrics: Vec<String>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

const IFACE_RATES: [(&str, usize); 8] = [
    ("system.net.bytes_rcvd", 0),
    ("system.net.bytes_sent", 8),
    ("system.net.packets_in.count", 1),
    ("system.net.packets_in.drop", 3),
    ("system.net.packets_in.error", 2),
    ("system.net.packets_out.count", 9),
    ("system.net.packets_out.drop", 11),
    ("system.net.packets_out.error", 10),
];

/// `(protocol, counter, metric)` of the Agent's `protocolsMetricsMapping`.
const PROTOCOL_METRICS: &[(&str, &str, &str)] = &[
    ("Ip", "InReceives", "system.net.ip.in_receives"),
    ("Ip", "InHdrErrors", "system.net.ip.in_header_errors"),
    ("Ip", "InAddrErrors", "system.net.ip.in_addr_errors"),
    ("Ip", "InUnknownProtos", "system.net.ip.in_unknown_protos"),
    ("Ip", "InDiscards", "system.net.ip.in_discards"),
    ("Ip", "InDelivers", "system.net.ip.in_delivers"),
    ("Ip", "OutRequests", "system.net.ip.out_requests"),
    ("Ip", "OutDiscards", "system.net.ip.out_discards"),
    ("Ip", "OutNoRoutes", "system.net.ip.out_no_routes"),
    ("Ip", "ForwDatagrams", "system.net.ip.forwarded_datagrams"),
    ("Ip", "ReasmTimeout", "system.net.ip.reassembly_timeouts"),
    ("Ip", "ReasmReqds", "system.net.ip.reassembly_requests"),
    ("Ip", "ReasmOKs", "system.net.ip.reassembly_oks"),
    ("Ip", "ReasmFails", "system.net.ip.reassembly_fails"),
    ("Ip", "FragOKs", "system.net.ip.fragmentation_oks"),
    ("Ip", "FragFails", "system.net.ip.fragmentation_fails"),
    ("Ip", "FragCreates", "system.net.ip.fragmentation_creates"),
    ("IpExt", "InNoRoutes", "system.net.ip.in_no_routes"),
    ("IpExt", "InTruncatedPkts", "system.net.ip.in_truncated_pkts"),
    ("IpExt", "InCsumErrors", "system.net.ip.in_csum_errors"),
    ("IpExt", "ReasmOverlaps", "system.net.ip.reassembly_overlaps"),
    ("Tcp", "RetransSegs", "system.net.tcp.retrans_segs"),
    ("Tcp", "InSegs", "system.net.tcp.in_segs"),
    ("Tcp", "OutSegs", "system.net.tcp.out_segs"),
    ("Tcp", "ActiveOpens", "system.net.tcp.active_opens"),
    ("Tcp", "PassiveOpens", "system.net.tcp.passive_opens"),
    ("Tcp", "AttemptFails", "system.net.tcp.attempt_fails"),
    ("Tcp", "EstabResets", "system.net.tcp.established_resets"),
    ("Tcp", "InErrs", "system.net.tcp.in_errors"),
    ("Tcp", "OutRsts", "system.net.tcp.out_resets"),
    ("Tcp", "InCsumErrors", "system.net.tcp.in_csum_errors"),
    ("TcpExt", "ListenOverflows", "system.net.tcp.listen_overflows"),
    ("TcpExt", "ListenDrops", "system.net.tcp.listen_drops"),
    ("TcpExt", "TCPBacklogDrop", "system.net.tcp.backlog_drops"),
    ("TcpExt", "TCPRetransFail", "system.net.tcp.failed_retransmits"),
    ("TcpExt", "IPReversePathFilter", "system.net.ip.reverse_path_filter"),
    ("TcpExt", "PruneCalled", "system.net.tcp.prune_called"),
    ("TcpExt", "RcvPruned", "system.net.tcp.prune_rcv_drops"),
    ("TcpExt", "OfoPruned", "system.net.tcp.prune_ofo_called"),
    ("TcpExt", "PAWSActive", "system.net.tcp.paws_connection_drops"),
    ("TcpExt", "PAWSEstab", "system.net.tcp.paws_established_drops"),
    ("TcpExt", "SyncookiesSent", "system.net.tcp.syn_cookies_sent"),
    ("TcpExt", "SyncookiesRecv", "system.net.tcp.syn_cookies_recv"),
    ("TcpExt", "SyncookiesFailed", "system.net.tcp.syn_cookies_failed"),
    ("TcpExt", "TCPAbortOnTimeout", "system.net.tcp.abort_on_timeout"),
    ("TcpExt", "TCPSynRetrans", "system.net.tcp.syn_retrans"),
    ("TcpExt", "TCPFromZeroWindowAdv", "system.net.tcp.from_zero_window"),
    ("TcpExt", "TCPToZeroWindowAdv", "system.net.tcp.to_zero_window"),
    ("TcpExt", "TWRecycled", "system.net.tcp.tw_reused"),
    ("Udp", "InDatagrams", "system.net.udp.in_datagrams"),
    ("Udp", "NoPorts", "system.net.udp.no_ports"),
    ("Udp", "InErrors", "system.net.udp.in_errors"),
    ("Udp", "OutDatagrams", "system.net.udp.out_datagrams"),
    ("Udp", "RcvbufErrors", "system.net.udp.rcv_buf_errors"),
    ("Udp", "SndbufErrors", "system.net.udp.snd_buf_errors"),
    ("Udp", "InCsumErrors", "system.net.udp.in_csum_errors"),
];

const PROTOCOL_COUNT_NAMES: &[&str] = &[
    "system.net.ip.in_receives.count",
    "system.net.ip.in_header_errors.count",
    "system.net.ip.in_addr_errors.count",
    "system.net.ip.in_unknown_protos.count",
    "system.net.ip.in_discards.count",
    "system.net.ip.in_delivers.count",
    "system.net.ip.out_requests.count",
    "system.net.ip.out_discards.count",
    "system.net.ip.out_no_routes.count",
    "system.net.ip.forwarded_datagrams.count",
    "system.net.ip.reassembly_timeouts.count",
    "system.net.ip.reassembly_requests.count",
    "system.net.ip.reassembly_oks.count",
    "system.net.ip.reassembly_fails.count",
    "system.net.ip.fragmentation_oks.count",
    "system.net.ip.fragmentation_fails.count",
    "system.net.ip.fragmentation_creates.count",
    "system.net.ip.in_no_routes.count",
    "system.net.ip.in_truncated_pkts.count",
    "system.net.ip.in_csum_errors.count",
    "system.net.ip.reassembly_overlaps.count",
    "system.net.tcp.retrans_segs.count",
    "system.net.tcp.in_segs.count",
    "system.net.tcp.out_segs.count",
    "system.net.tcp.active_opens.count",
    "system.net.tcp.passive_opens.count",
    "system.net.tcp.attempt_fails.count",
    "system.net.tcp.established_resets.count",
    "system.net.tcp.in_errors.count",
    "system.net.tcp.out_resets.count",
    "system.net.tcp.in_csum_errors.count",
    "system.net.tcp.listen_overflows.count",
    "system.net.tcp.listen_drops.count",
    "system.net.tcp.backlog_drops.count",
    "system.net.tcp.failed_retransmits.count",
    "system.net.ip.reverse_path_filter.count",
    "system.net.tcp.prune_called.count",
    "system.net.tcp.prune_rcv_drops.count",
    "system.net.tcp.prune_ofo_called.count",
    "system.net.tcp.paws_connection_drops.count",
    "system.net.tcp.paws_established_drops.count",
    "system.net.tcp.syn_cookies_sent.count",
    "system.net.tcp.syn_cookies_recv.count",
    "system.net.tcp.syn_cookies_failed.count",
    "system.net.tcp.abort_on_timeout.count",
    "system.net.tcp.syn_retrans.count",
    "system.net.tcp.from_zero_window.count",
    "system.net.tcp.to_zero_window.count",
    "system.net.tcp.tw_reused.count",
    "system.net.udp.in_datagrams.count",
    "system.net.udp.no_ports.count",
    "system.net.udp.in_errors.count",
    "system.net.udp.out_datagrams.count",
    "system.net.udp.rcv_buf_errors.count",
    "system.net.udp.snd_buf_errors.count",
    "system.net.udp.in_csum_errors.count",
];

#[derive(Debug)]
struct Interface {
    name: String,
    speed_path: PathBuf,
    mtu_path: PathBuf,
    speed: Option<i64>,
    mtu: Option<i64>,
    tags: Arc<[String]>,
    rates: [Counter; 8],
    seen: bool,
}

#[derive(Debug)]
struct SysIface {
    name: String,
    tags: Arc<[String]>,
    mtu: PathBuf,
    tx_queue_len: PathBuf,
    carrier: PathBuf,
    queues: PathBuf,
    seen: bool,
}

/// The network check.
#[derive(Debug)]
pub struct NetworkCheck {
    options: NetworkOptions,
    exclude_re: Option<Regex>,
    net_dev: PathBuf,
    netstat: PathBuf,
    snmp: PathBuf,
    sys_net: PathBuf,
    conntrack_dir: PathBuf,
    reader: Reader,
    small: Reader,
    interfaces: Vec<Interface>,
    sys_ifaces: Vec<SysIface>,
    protocol_rates: Vec<Counter>,
    protocol_counts: Vec<Counter>,
    protocol_values: Vec<Option<u64>>,
    tags: Arc<[String]>,
}

impl NetworkCheck {
    /// A network check reading `roots.proc` and `roots.sys`.
    pub fn new(roots: &Roots, options: NetworkOptions, tags: Arc<[String]>) -> Self {
        if options.collect_connection_state {
            warn!(
                "network check: `collect_connection_state` needs the `ss` or `netstat` command, which this agent does not run; \
                 the system.net.tcp4.*/udp4.* connection gauges are not sent. Remove the option to silence this warning."
            );
        }
        let exclude_re = if options.excluded_interface_re.is_empty() {
            None
        } else {
            match Regex::new(&options.excluded_interface_re) {
                Ok(re) => Some(re),
                Err(e) => {
                    tracing::error!("Failed to parse network check option excluded_interface_re: {e}");
                    None
                }
            }
        };
        NetworkCheck {
            options,
            exclude_re,
            net_dev: roots.proc.join("net/dev"),
            netstat: roots.proc.join("net/netstat"),
            snmp: roots.proc.join("net/snmp"),
            sys_net: roots.sys.join("class/net"),
            conntrack_dir: roots.proc.join("sys/net/netfilter"),
            reader: Reader::with_capacity(8192),
            small: Reader::with_capacity(32),
            interfaces: Vec::new(),
            sys_ifaces: Vec::new(),
            protocol_rates: vec![Counter::default(); PROTOCOL_METRICS.len()],
            protocol_counts: vec![Counter::default(); PROTOCOL_METRICS.len()],
            protocol_values: vec![None; PROTOCOL_METRICS.len()],
            tags,
        }
    }

    fn excluded(&self, name: &str) -> bool {
        self.options.excluded_interfaces.iter().any(|e| e == name)
            || self.exclude_re.as_ref().is_some_and(|re| re.is_match(name))
    }

    fn read_int(small: &mut Reader, path: &std::path::Path) -> Option<i64> {
        small.read(path).ok()?.trim().parse().ok()
    }

    fn interfaces(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        let mut reader = std::mem::take(&mut self.reader);
        let text = reader.read_required(&self.net_dev)?;
        for iface in &mut self.interfaces {
            iface.seen = false;
        }
        for line in text.lines().skip(2) {
            let Some((name, counters)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if self.excluded(name) {
                continue;
            }
            let mut values = [0u64; 16];
            for (slot, v) in values.iter_mut().zip(counters.split_ascii_whitespace()) {
                *slot = v.parse().unwrap_or(0);
            }
            let index = match self.interfaces.iter().position(|i| i.name == name) {
                Some(i) => i,
                None => {
                    let dir = self.sys_net.join(name);
                    self.interfaces.push(Interface {
                        name: name.to_owned(),
                        speed_path: dir.join("speed"),
                        mtu_path: dir.join("mtu"),
                        speed: None,
                        mtu: None,
                        tags: Arc::from(Vec::new()),
                        rates: [Counter::default(); 8],
                        seen: false,
                    });
                    self.interfaces.len() - 1
                }
            };
            let speed = Self::read_int(&mut self.small, &self.interfaces[index].speed_path);
            let mtu = Self::read_int(&mut self.small, &self.interfaces[index].mtu_path);
            let tags = &self.tags;
            let iface = &mut self.interfaces[index];
            iface.seen = true;
            if iface.tags.is_empty() || iface.speed != speed || iface.mtu != mtu {
                // New tags are a new context: its rates start over, as in the Agent's sampler.
                let mut t = vec![format!("device:{name}"), format!("device_name:{name}")];
                t.extend(speed.map(|s| format!("speed:{s}")));
                t.extend(mtu.map(|m| format!("mtu:{m}")));
                t.extend(tags.iter().cloned());
                iface.tags = t.into();
                iface.speed = speed;
                iface.mtu = mtu;
                iface.rates = [Counter::default(); 8];
            }
            for ((metric, field), counter) in IFACE_RATES.iter().zip(&mut iface.rates) {
                out.rate(*metric, counter.rate(values[*field], now), &iface.tags);
            }
        }
        self.interfaces.retain(|i| i.seen);
        self.reader = reader;
        Ok(())
    }

    fn protocols(&mut self, out: &mut Emitter, now: Instant) {
        for v in &mut self.protocol_values {
            *v = None;
        }
        let mut current_established = None;
        let mut reader = std::mem::take(&mut self.reader);
        for path in [&self.netstat, &self.snmp] {
            let text = match reader.read(path) {
                Ok(t) => t,
                Err(e) if path == &self.snmp => {
                    debug!("{}: {e}", path.display());
                    continue;
                }
                Err(e) => {
                    debug!("{}: {e}", path.display());
                    self.reader = reader;
                    return;
                }
            };
            let mut lines = text.lines();
            while let Some(header) = lines.next() {
                let Some((protocol, names)) = header.split_once(':') else {
                    continue;
                };
                if !matches!(protocol, "Ip" | "IpExt" | "Tcp" | "TcpExt" | "Udp") {
                    continue;
                }
                let Some(values) = lines.next().and_then(|l| l.split_once(':')).map(|(_, v)| v) else {
                    break;
                };
                for (name, value) in names.split_ascii_whitespace().zip(values.split_ascii_whitespace()) {
                    if protocol == "Tcp" && name == "CurrEstab" {
                        current_established = value.parse::<i64>().ok();
                    }
                    if let Some(i) = PROTOCOL_METRICS
                        .iter()
                        .position(|(p, n, _)| *p == protocol && *n == name)
                    {
                        // Negative values (Tcp MaxConn) are not among the mapped counters.
                        self.protocol_values[i] = value.parse::<u64>().ok();
                    }
                }
            }
        }
        self.reader = reader;
        for (i, (_, _, metric)) in PROTOCOL_METRICS.iter().enumerate() {
            let Some(v) = self.protocol_values[i] else { continue };
            if self.options.collect_rate_metrics {
                out.rate(*metric, self.protocol_rates[i].rate(v, now), &self.tags);
            }
            if self.options.collect_count_metrics {
                out.monotonic(
                    PROTOCOL_COUNT_NAMES[i],
                    self.protocol_counts[i].delta(v, now),
                    &self.tags,
                );
            }
        }
        if let Some(established) = current_established {
            out.gauge("system.net.tcp.current_established", established as f64, &self.tags);
        }
    }

    fn iface_sys_metrics(&mut self, out: &mut Emitter) {
        let entries = match std::fs::read_dir(&self.sys_net) {
            Ok(rd) => rd,
            Err(e) => {
                debug!(
                    "Unable to list {}, skipping system iface metrics: {e}.",
                    self.sys_net.display()
                );
                return;
            }
        };
        for i in &mut self.sys_ifaces {
            i.seen = false;
        }
        let mut names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy();
            let index = match self.sys_ifaces.iter().position(|i| i.name == *name) {
                Some(i) => i,
                None => {
                    let dir = self.sys_net.join(&*name);
                    let mut tags = vec![format!("iface:{name}")];
                    tags.extend(self.tags.iter().cloned());
                    self.sys_ifaces.push(SysIface {
                        name: name.to_string(),
                        tags: tags.into(),
                        mtu: dir.join("mtu"),
                        tx_queue_len: dir.join("tx_queue_len"),
                        carrier: dir.join("carrier"),
                        queues: dir.join("queues"),
                        seen: false,
                    });
                    self.sys_ifaces.len() - 1
                }
            };
            let iface = &mut self.sys_ifaces[index];
            iface.seen = true;
            for (metric, path) in [
                ("system.net.iface.mtu", &iface.mtu),
                ("system.net.iface.tx_queue_len", &iface.tx_queue_len),
                ("system.net.iface.up", &iface.carrier),
            ] {
                let value = Self::read_int(&mut self.small, path).unwrap_or(0);
                out.gauge(metric, value as f64, &iface.tags);
            }
            if let Ok(queues) = std::fs::read_dir(&iface.queues) {
                let (mut tx, mut rx) = (0u32, 0u32);
                for q in queues.flatten() {
                    let n = q.file_name();
                    let n = n.to_string_lossy();
                    if n.starts_with("tx-") {
                        tx += 1;
                    } else if n.starts_with("rx-") {
                        rx += 1;
                    }
                }
                out.gauge("system.net.iface.num_tx_queues", f64::from(tx), &iface.tags);
                out.gauge("system.net.iface.num_rx_queues", f64::from(rx), &iface.tags);
            }
        }
        self.sys_ifaces.retain(|i| i.seen);
    }

    fn conntrack(&mut self, out: &mut Emitter) {
        let Ok(entries) = std::fs::read_dir(&self.conntrack_dir) else {
            debug!("Unable to list files in {}", self.conntrack_dir.display());
            return;
        };
        let o = &self.options;
        let mut found: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .strip_prefix("nf_conntrack_")?
                    .to_owned();
                let keep = if !o.blacklist_conntrack_metrics.is_empty() {
                    !o.blacklist_conntrack_metrics.iter().any(|b| name.contains(b.as_str()))
                } else if !o.whitelist_conntrack_metrics.is_empty() {
                    o.whitelist_conntrack_metrics.iter().any(|w| name.contains(w.as_str()))
                } else {
                    ["max", "count"].iter().any(|w| name.contains(w))
                };
                keep.then(|| (name, e.path()))
            })
            .collect();
        found.sort();
        for (name, path) in found {
            let value = Self::read_int(&mut self.small, &path).unwrap_or(0);
            out.gauge(format!("system.net.conntrack.{name}"), value as f64, &self.tags);
        }
    }
}

impl Check for NetworkCheck {
    fn name(&self) -> &'static str {
        "network"
    }

    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        self.protocols(out, now);
        self.iface_sys_metrics(out);
        self.interfaces(out, now)?;
        self.conntrack(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, kind, run, tagged, value, values};
    use crate::MetricType;
    use std::time::Duration;

    const DEV_HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    fn dev(eth0_rx: u64, lo_rx: u64) -> String {
        format!(
            "{DEV_HEADER}    lo: {lo_rx} 10 0 0 0 0 0 0 {lo_rx} 10 0 0 0 0 0 0\n  eth0: {eth0_rx} 1000 1 2 0 0 0 5 900000 800 3 4 0 0 0 0\n"
        )
    }

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives InHdrErrors\nIp: 1 64 1000 0\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
        Tcp: 1 200 120000 -1 10 20 1 2 7 5000 4000 30 0 3 0\n\
        Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
        Udp: 300 1 0 280 0 0 0 0 0\n";
    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 4 4\n\
        IpExt: InNoRoutes InTruncatedPkts\nIpExt: 0 0\n";

    fn board() -> tempfile::TempDir {
        fixture(&[
            ("proc/net/dev", &dev(1_000_000, 500)),
            ("proc/net/snmp", SNMP),
            ("proc/net/netstat", NETSTAT),
            ("sys/class/net/eth0/speed", "1000\n"),
            ("sys/class/net/eth0/mtu", "1500\n"),
            ("sys/class/net/eth0/tx_queue_len", "1000\n"),
            ("sys/class/net/eth0/carrier", "1\n"),
            ("sys/class/net/eth0/queues/rx-0/x", ""),
            ("sys/class/net/eth0/queues/tx-0/x", ""),
            ("sys/class/net/eth0/queues/tx-1/x", ""),
            ("sys/class/net/lo/mtu", "65536\n"),
            ("sys/class/net/lo/speed", "bogus\n"),
            ("proc/sys/net/netfilter/nf_conntrack_count", "42\n"),
            ("proc/sys/net/netfilter/nf_conntrack_max", "65536\n"),
            ("proc/sys/net/netfilter/nf_conntrack_buckets", "16384\n"),
        ])
    }

    fn options(yaml: &str) -> NetworkOptions {
        crate::config::options(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn interface_rates_are_per_second_with_speed_and_mtu_tags() {
        let dir = board();
        let roots = Roots::under(dir.path());
        let mut check = NetworkCheck::new(&roots, options("excluded_interfaces: [lo, lo0]"), Arc::from(Vec::new()));
        let t0 = Instant::now();
        let out = run(&mut check, t0);
        assert!(values(&out, "system.net.bytes_rcvd").is_empty(), "rates need two runs");
        assert_eq!(value(&out, "system.net.tcp.current_established"), Some(7.0));
        assert_eq!(values(&out, "system.net.conntrack.count"), [(vec![], 42.0)]);
        assert_eq!(value(&out, "system.net.conntrack.max"), Some(65536.0));
        assert_eq!(value(&out, "system.net.conntrack.buckets"), None);
        assert_eq!(tagged(&out, "system.net.iface.mtu", "iface:lo"), Some(65536.0));
        assert_eq!(
            tagged(&out, "system.net.iface.up", "iface:lo"),
            Some(0.0),
            "unreadable carrier reads as 0"
        );
        assert_eq!(tagged(&out, "system.net.iface.num_tx_queues", "iface:eth0"), Some(2.0));
        assert_eq!(tagged(&out, "system.net.iface.num_rx_queues", "iface:eth0"), Some(1.0));

        std::fs::write(roots.proc.join("net/dev"), dev(1_150_000, 900)).unwrap();
        std::fs::write(
            roots.proc.join("net/snmp"),
            SNMP.replace(
                "1 200 120000 -1 10 20 1 2 7 5000 4000 30",
                "1 200 120000 -1 10 20 1 2 7 5000 4000 60",
            ),
        )
        .unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(15));
        let rx = values(&out, "system.net.bytes_rcvd");
        assert_eq!(
            rx,
            [(
                vec![
                    "device:eth0".into(),
                    "device_name:eth0".into(),
                    "speed:1000".into(),
                    "mtu:1500".into()
                ],
                10_000.0
            )]
        );
        assert_eq!(tagged(&out, "system.net.packets_in.count", "device:eth0"), Some(0.0));
        assert_eq!(value(&out, "system.net.tcp.retrans_segs"), Some(2.0));
        assert_eq!(kind(&out, "system.net.tcp.retrans_segs"), Some(MetricType::Gauge));
        assert_eq!(
            value(&out, "system.net.tcp.retrans_segs.count"),
            None,
            "counts are off by default"
        );
        assert_eq!(value(&out, "system.net.udp.in_datagrams"), Some(0.0));
        assert_eq!(value(&out, "system.net.tcp.listen_overflows"), Some(0.0));
    }

    #[test]
    fn loopback_is_reported_when_not_excluded_and_counts_can_be_enabled() {
        let dir = board();
        let roots = Roots::under(dir.path());
        let mut check = NetworkCheck::new(
            &roots,
            options("collect_count_metrics: true\ncollect_rate_metrics: false\nexcluded_interface_re: ^eth"),
            Arc::from(vec!["site:lab".to_owned()]),
        );
        let t0 = Instant::now();
        run(&mut check, t0);
        std::fs::write(roots.proc.join("net/dev"), dev(1_150_000, 2_000)).unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(10));
        assert_eq!(
            values(&out, "system.net.bytes_rcvd"),
            [(
                vec![
                    "device:lo".into(),
                    "device_name:lo".into(),
                    "mtu:65536".into(),
                    "site:lab".into()
                ],
                150.0
            )]
        );
        assert_eq!(value(&out, "system.net.tcp.in_segs.count"), Some(0.0));
        assert_eq!(kind(&out, "system.net.tcp.in_segs.count"), Some(MetricType::Count));
        assert_eq!(value(&out, "system.net.tcp.in_segs"), None);
    }

    #[test]
    fn a_counter_that_went_down_drops_the_rate_and_a_new_speed_starts_a_new_context() {
        let dir = board();
        let roots = Roots::under(dir.path());
        let mut check = NetworkCheck::new(&roots, NetworkOptions::default(), Arc::from(Vec::new()));
        let t0 = Instant::now();
        run(&mut check, t0);
        // A 32-bit driver counter wrapped.
        std::fs::write(roots.proc.join("net/dev"), dev(100, 600)).unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(15));
        assert_eq!(tagged(&out, "system.net.bytes_rcvd", "device:eth0"), None);
        assert_eq!(tagged(&out, "system.net.bytes_rcvd", "device:lo"), Some(100.0 / 15.0));
        std::fs::write(roots.sys.join("class/net/eth0/speed"), "100\n").unwrap();
        std::fs::write(roots.proc.join("net/dev"), dev(1100, 600)).unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(30));
        assert_eq!(tagged(&out, "system.net.bytes_rcvd", "speed:100"), None);
        let out = run(&mut check, t0 + Duration::from_secs(45));
        assert_eq!(tagged(&out, "system.net.bytes_rcvd", "speed:100"), Some(0.0));
    }

    #[test]
    fn the_live_loopback_bytes_rise_with_traffic() {
        let mut check = NetworkCheck::new(
            &Roots::default(),
            options("excluded_interfaces: []"),
            Arc::from(Vec::new()),
        );
        let t0 = Instant::now();
        run(&mut check, t0);
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let payload = [7u8; 1000];
        for _ in 0..200 {
            tx.send_to(&payload, rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        let out = run(&mut check, Instant::now());
        let lo = tagged(&out, "system.net.bytes_rcvd", "device:lo").expect("lo is reported");
        let elapsed = t0.elapsed().as_secs_f64();
        assert!(lo * elapsed >= 200_000.0, "lo received {} bytes/s over {elapsed} s", lo);
    }
}
