//! The v5 host-metadata payload (`comp/metadata/host/hostimpl`), POSTed as
//! JSON to `/intake/`, and its schedule.
//!
//! [`HostMetadata::payload`] builds the Agent's exact shape: the common part
//! (`apiKey`, `agentVersion`, `uuid`, `internalHostname`), then `os`,
//! `agent-flavor`, `python`, `systemStats`, `meta`, `host-tags`, `network`,
//! `logs`, `install-method`, `proxy-info`, `otlp` and `gohai` (a JSON
//! document inside a string, as the Agent sends it). Values the Agent takes
//! from gopsutil keep gopsutil's quirks, on purpose:
//!
//! - `systemStats.machine` is Go's `GOARCH` (`arm` on an ARMv7 board, `amd64`
//!   on x86-64) and `systemStats.platform` is `GOOS` (`linux`); the kernel's
//!   `uname -m` (`armv7l`) is in `gohai.platform.machine`.
//! - `systemStats.cpuCores` is the `Cores` of gopsutil's *first* CPU entry,
//!   which is 1 on Linux (one entry per logical CPU); the real counts are in
//!   `gohai.cpu`.
//! - `uuid` is gopsutil's host ID: `/sys/class/dmi/id/product_uuid`
//!   (lowercased, root only), else `/etc/machine-id` formatted as a UUID, else
//!   the boot ID (which changes at each boot).
//! - `systemStats.nixV` is `[platform, version, ""]` from gopsutil's platform
//!   detection (`raspbian` when `/usr/bin/raspi-config` exists on a Debian
//!   system).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::hostname::{self, Provider, ResolvedHostname};

/// The host metadata interval the Agent uses once the early payloads are sent.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);
/// The first gap after the payload sent at start.
pub const DEFAULT_EARLY_INTERVAL: Duration = Duration::from_secs(300);
/// How much each early gap grows (the Agent's backoff multiplier).
pub const EARLY_MULTIPLIER: u32 = 3;
const MIN_ACCEPTED_INTERVAL: u64 = 60;
const MAX_ACCEPTED_INTERVAL: u64 = 14_400;

/// The gap after the `sent`-th payload (0 = the one sent at start): the early
/// interval, multiplied by 3 each time, capped at the main interval. With the
/// defaults: 300 s, 900 s, then 1800 s, so payloads leave at 0, 5, 20, 50,
/// 80 … minutes.
pub fn collection_interval(sent: u32, early: Duration, interval: Duration) -> Duration {
    let mut gap = early.min(interval);
    for _ in 0..sent {
        if gap >= interval {
            break;
        }
        gap = gap.saturating_mul(EARLY_MULTIPLIER).min(interval);
    }
    gap
}

/// The host payload's schedule: sent at start, then after each
/// [`next_interval`](Self::next_interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSchedule {
    early: Duration,
    interval: Duration,
    sent: u32,
}

impl Default for MetadataSchedule {
    fn default() -> Self {
        MetadataSchedule {
            early: DEFAULT_EARLY_INTERVAL,
            interval: DEFAULT_INTERVAL,
            sent: 0,
        }
    }
}

impl MetadataSchedule {
    /// The schedule from the `metadata_providers` entry named `host`
    /// (`interval`, `early_interval`, in seconds), validated as the Agent
    /// does: an interval outside 60–14400 s is ignored with an error (both
    /// defaults stay); an early interval outside that range or above the
    /// interval is ignored with an error (the early default stays).
    pub fn from_config(interval: Option<u64>, early_interval: Option<u64>) -> Self {
        let mut schedule = MetadataSchedule::default();
        let Some(interval) = interval else {
            return schedule;
        };
        if !(MIN_ACCEPTED_INTERVAL..=MAX_ACCEPTED_INTERVAL).contains(&interval) {
            error!(
                "Ignoring host metadata interval: {interval} is outside of accepted values (min: {MIN_ACCEPTED_INTERVAL}, max: {MAX_ACCEPTED_INTERVAL})"
            );
            return schedule;
        }
        schedule.interval = Duration::from_secs(interval);
        match early_interval {
            Some(early) if early > 0 => {
                if !(MIN_ACCEPTED_INTERVAL..=MAX_ACCEPTED_INTERVAL).contains(&early) {
                    error!(
                        "Ignoring host metadata early interval: {early} is outside of accepted values (min: {MIN_ACCEPTED_INTERVAL}, max: {MAX_ACCEPTED_INTERVAL})"
                    );
                } else if early > interval {
                    error!("Ignoring host metadata early interval: {early} is greater than main interval {interval}");
                } else {
                    schedule.early = Duration::from_secs(early);
                }
            }
            _ => {}
        }
        schedule
    }

    /// The gap before the next payload; call it after each payload sent.
    pub fn next_interval(&mut self) -> Duration {
        let gap = collection_interval(self.sent, self.early, self.interval);
        self.sent = self.sent.saturating_add(1);
        gap
    }
}

/// What the payload says about the agent and its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMetadataConfig {
    /// `api_key`: the Agent sends it (trimmed) in the body as `apiKey`.
    pub api_key: String,
    /// `agentVersion`.
    pub agent_version: String,
    /// `agent-flavor`: the Agent sends `agent`, the IoT Agent `iot_agent`,
    /// standalone DogStatsD `dogstatsd`.
    pub agent_flavor: String,
    /// The resolved hostname (`internalHostname`, `meta.hostname`).
    pub hostname: ResolvedHostname,
    /// `host_aliases` (`DD_HOST_ALIASES`): sent as `meta.host_aliases`, invalid
    /// names skipped with a warning.
    pub host_aliases: Vec<String>,
    /// `hostname_force_config_as_canonical`: with a configured hostname, also
    /// sent as `meta.agent-hostname`. Defaults to false.
    pub hostname_force_config_as_canonical: bool,
    /// The `system` host tags ([`crate::host_tags`]).
    pub host_tags: Vec<String>,
    /// `install-method`, from the `install_info` file beside datadog.yaml.
    pub install_method: Option<InstallMethod>,
    /// `no_proxy_nonexact_match`, when set in the configuration.
    pub no_proxy_nonexact_match: Option<bool>,
}

/// The `install_method` section of the Agent's `install_info` file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct InstallMethod {
    /// How the agent was installed (`install_script`, `nix`, …).
    pub tool: String,
    /// The tool's version.
    pub tool_version: String,
    /// The installer's version.
    pub installer_version: String,
}

impl InstallMethod {
    /// Reads `install_method` from an `install_info` YAML file; `None` when the
    /// file is absent or has no such section (the payload then says
    /// `tool_version: "undefined"`).
    pub fn read(path: &Path) -> Option<InstallMethod> {
        #[derive(Deserialize)]
        struct File {
            install_method: InstallMethod,
        }
        let text = std::fs::read_to_string(path).ok()?;
        match serde_yaml::from_str::<File>(&text) {
            Ok(file) => Some(file.install_method),
            Err(e) => {
                warn!("Failed to read install info file {}: {e}", path.display());
                None
            }
        }
    }
}

/// Facts about the system that do not change while the agent runs, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// gopsutil's host ID (the payload's `uuid`).
    pub host_id: String,
    /// `uname` sysname, nodename, release, version, machine.
    pub uname: Uname,
    /// Logical CPUs (`processor` entries of /proc/cpuinfo).
    pub logical_cpus: u32,
    /// Physical cores (distinct `physical id`/`core id` pairs, else the
    /// logical count).
    pub physical_cores: u32,
    /// The first CPU's model name.
    pub cpu_model: String,
    /// The first CPU's vendor, when the kernel reports one.
    pub cpu_vendor: String,
    /// MemTotal in kB.
    pub mem_total_kb: u64,
    /// SwapTotal in kB.
    pub swap_total_kb: u64,
    /// gopsutil's platform (`debian`, `raspbian`, `ubuntu`, …) and its version.
    pub platform: (String, String),
}

/// The `uname(2)` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uname {
    /// `Linux`.
    pub sysname: String,
    /// The node name.
    pub nodename: String,
    /// The kernel release.
    pub release: String,
    /// The kernel build version.
    pub version: String,
    /// The machine (`armv7l`, `x86_64`).
    pub machine: String,
}

impl Uname {
    /// The running kernel's `uname`.
    pub fn current() -> Uname {
        // SAFETY: utsname is plain bytes; uname fills NUL-terminated fields.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uts is a valid utsname.
        if unsafe { libc::uname(&mut uts) } != 0 {
            return Uname::default();
        }
        let field = |f: &[libc::c_char]| {
            // SAFETY: the kernel NUL-terminates every field within its array.
            unsafe { CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
        };
        Uname {
            sysname: field(&uts.sysname),
            nodename: field(&uts.nodename),
            release: field(&uts.release),
            version: field(&uts.version),
            machine: field(&uts.machine),
        }
    }
}

/// Where [`SystemInfo::gather`] reads: the roots of /proc, /sys and /etc, and
/// the `/usr/bin/raspi-config` marker.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    /// `/proc`.
    pub proc_root: PathBuf,
    /// `/sys`.
    pub sys_root: PathBuf,
    /// `/etc`.
    pub etc_root: PathBuf,
    /// `/usr/bin/raspi-config`: its presence makes a Debian system `raspbian`.
    pub raspi_config: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            etc_root: "/etc".into(),
            raspi_config: "/usr/bin/raspi-config".into(),
        }
    }
}

impl SystemInfo {
    /// Reads the system's facts; what cannot be read stays empty or zero.
    pub fn gather(paths: &SystemPaths) -> SystemInfo {
        let cpuinfo = std::fs::read_to_string(paths.proc_root.join("cpuinfo")).unwrap_or_default();
        let cpu = parse_cpuinfo(&cpuinfo);
        let meminfo = std::fs::read_to_string(paths.proc_root.join("meminfo")).unwrap_or_default();
        let meminfo_kb = |key: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        SystemInfo {
            host_id: host_id(paths),
            uname: Uname::current(),
            logical_cpus: cpu.logical,
            physical_cores: cpu.physical,
            cpu_model: cpu.model,
            cpu_vendor: cpu.vendor,
            mem_total_kb: meminfo_kb("MemTotal"),
            swap_total_kb: meminfo_kb("SwapTotal"),
            platform: platform_information(paths),
        }
    }
}

struct CpuInfo {
    logical: u32,
    physical: u32,
    model: String,
    vendor: String,
}

fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut logical = 0u32;
    let mut cores = std::collections::BTreeSet::new();
    let (mut physical_id, mut model, mut processor_line, mut vendor) = ("", None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" if value.parse::<u32>().is_ok() => logical += 1,
            // Old ARM kernels name the CPU once, as `Processor : ARMv7 …`.
            "Processor" => processor_line = processor_line.or(Some(value)),
            "model name" | "cpu" => model = model.or(Some(value)),
            "vendor_id" => vendor = vendor.or(Some(value)),
            "physical id" => physical_id = value,
            "core id" => {
                cores.insert((physical_id.to_owned(), value.to_owned()));
            }
            _ => {}
        }
    }
    let physical = if cores.is_empty() { logical } else { cores.len() as u32 };
    CpuInfo {
        logical,
        physical,
        model: model.or(processor_line).unwrap_or_default().to_owned(),
        vendor: vendor.unwrap_or_default().to_owned(),
    }
}

/// gopsutil's `HostID` on Linux.
pub fn host_id(paths: &SystemPaths) -> String {
    let first_line = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
    };
    if let Some(uuid) = first_line(paths.sys_root.join("class/dmi/id/product_uuid")).filter(|s| !s.is_empty()) {
        return uuid.to_lowercase();
    }
    if let Some(id) = first_line(paths.etc_root.join("machine-id")).filter(|s| s.len() == 32 && s.is_ascii()) {
        return format!(
            "{}-{}-{}-{}-{}",
            &id[0..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..32]
        );
    }
    first_line(paths.proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.to_lowercase())
        .unwrap_or_default()
}

/// gopsutil's `PlatformInformation` (platform and version) for the
/// distributions a board runs; others fall back to `/etc/os-release`'s `ID`
/// and `VERSION_ID`.
pub fn platform_information(paths: &SystemPaths) -> (String, String) {
    let read = |name: &str| std::fs::read_to_string(paths.etc_root.join(name)).ok();
    let key_values = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect()
    };
    let lsb = read("lsb-release").map(|t| key_values(&t)).unwrap_or_default();
    if let Some(debian_version) = read("debian_version") {
        return match lsb.get("DISTRIB_ID").map(String::as_str) {
            Some("Ubuntu") => ("ubuntu".into(), lsb.get("DISTRIB_RELEASE").cloned().unwrap_or_default()),
            Some("LinuxMint") => (
                "linuxmint".into(),
                lsb.get("DISTRIB_RELEASE").cloned().unwrap_or_default(),
            ),
            _ => {
                let platform = if paths.raspi_config.exists() {
                    "raspbian"
                } else {
                    "debian"
                };
                (
                    platform.into(),
                    debian_version.lines().next().unwrap_or("").trim().to_owned(),
                )
            }
        };
    }
    if let Some(alpine) = read("alpine-release") {
        return ("alpine".into(), alpine.lines().next().unwrap_or("").trim().to_owned());
    }
    let os_release = read("os-release").map(|t| key_values(&t)).unwrap_or_default();
    (
        os_release.get("ID").cloned().unwrap_or_default(),
        os_release.get("VERSION_ID").cloned().unwrap_or_default(),
    )
}

/// Go's `GOARCH` for the target this agent was built for (the Agent's
/// `systemStats.machine`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The local time zone's abbreviation (`UTC`, `CET`), as Go's `time.Now().Zone()`.
pub fn timezone_name() -> String {
    extern "C" {
        // POSIX; not bound by the libc crate.
        fn tzset();
    }
    // SAFETY: time(NULL) and localtime_r with valid pointers; tm_zone points to
    // a static NUL-terminated string or is NULL.
    unsafe {
        tzset();
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() || tm.tm_zone.is_null() {
            return "UTC".to_owned();
        }
        CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
    }
}

/// Builds host-metadata payloads for one agent.
#[derive(Debug, Clone)]
pub struct HostMetadata {
    config: HostMetadataConfig,
    system: SystemInfo,
    host_aliases: Vec<String>,
}

impl HostMetadata {
    /// A payload builder; invalid `host_aliases` are dropped here with the
    /// Agent's warning.
    pub fn new(config: HostMetadataConfig, system: SystemInfo) -> Self {
        let host_aliases = config
            .host_aliases
            .iter()
            .filter(|alias| match hostname::validate(alias) {
                Ok(()) => true,
                Err(e) => {
                    warn!("skipping invalid host alias '{alias}': {e}");
                    false
                }
            })
            .cloned()
            .collect();
        HostMetadata {
            config,
            system,
            host_aliases,
        }
    }

    /// The payload as of now (time zone, socket names and FQDN are read
    /// at each call, as the Agent does).
    pub fn payload(&self) -> Payload {
        let socket_hostname = hostname::os_hostname().unwrap_or_default();
        let socket_fqdn = hostname::fqdn(&socket_hostname).unwrap_or_else(|_| socket_hostname.clone());
        self.payload_with(socket_hostname, socket_fqdn, timezone_name())
    }

    /// [`payload`](Self::payload) with the per-call facts given.
    pub fn payload_with(&self, socket_hostname: String, socket_fqdn: String, timezone: String) -> Payload {
        let c = &self.config;
        let s = &self.system;
        let agent_hostname = (c.hostname_force_config_as_canonical && c.hostname.provider == Provider::Configuration)
            .then(|| c.hostname.hostname.clone());
        let (platform, platform_version) = s.platform.clone();
        Payload {
            api_key: c.api_key.trim().to_owned(),
            agent_version: c.agent_version.clone(),
            uuid: s.host_id.clone(),
            internal_hostname: c.hostname.hostname.clone(),
            os: "linux",
            agent_flavor: c.agent_flavor.clone(),
            python: "n/a",
            system_stats: SystemStats {
                cpu_cores: u32::from(s.logical_cpus > 0),
                machine: go_arch(),
                platform: "linux",
                python_v: "n/a",
                processor: s.cpu_model.clone(),
                mac_v: EMPTY_OS_VERSION,
                nix_v: [platform, platform_version, String::new()],
                fbsd_v: EMPTY_OS_VERSION,
                win_v: EMPTY_OS_VERSION,
            },
            meta: Meta {
                socket_hostname,
                timezones: vec![timezone],
                socket_fqdn,
                ec2_hostname: String::new(),
                hostname: c.hostname.hostname.clone(),
                host_aliases: self.host_aliases.clone(),
                instance_id: String::new(),
                agent_hostname,
                hostname_resolution_version: "1.0",
            },
            host_tags: HostTags {
                system: c.host_tags.clone(),
            },
            network: None,
            logs: LogsMeta {
                transport: "",
                auto_multi_line_detection_enabled: false,
            },
            install_method: match &c.install_method {
                Some(m) => InstallMethodMeta {
                    tool: Some(m.tool.clone()),
                    tool_version: m.tool_version.clone(),
                    installer_version: Some(m.installer_version.clone()),
                },
                None => InstallMethodMeta {
                    tool: None,
                    tool_version: "undefined".to_owned(),
                    installer_version: None,
                },
            },
            proxy_info: ProxyMeta {
                no_proxy_nonexact_match: c.no_proxy_nonexact_match.unwrap_or(false),
                proxy_behavior_changed: false,
                no_proxy_nonexact_match_explicitly_set: c.no_proxy_nonexact_match.is_some(),
            },
            otlp: OtlpMeta { enabled: false },
            gohai: self.gohai(&c.hostname.hostname),
        }
    }

    fn gohai(&self, hostname: &str) -> String {
        let s = &self.system;
        let mut cpu = serde_json::Map::new();
        cpu.insert("cpu_cores".into(), s.physical_cores.to_string().into());
        cpu.insert("cpu_logical_processors".into(), s.logical_cpus.to_string().into());
        cpu.insert("model_name".into(), s.cpu_model.clone().into());
        if !s.cpu_vendor.is_empty() {
            cpu.insert("vendor_id".into(), s.cpu_vendor.clone().into());
        }
        let gohai = serde_json::json!({
            "cpu": cpu,
            "filesystem": null,
            "memory": {
                "total": format!("{}kB", s.mem_total_kb),
                "swap_total": format!("{}kB", s.swap_total_kb),
            },
            "network": null,
            "platform": {
                "GOOARCH": go_arch(),
                "GOOS": "linux",
                "hardware_platform": "unknown",
                "hostname": if s.uname.nodename.is_empty() { hostname } else { &s.uname.nodename },
                "kernel_name": s.uname.sysname,
                "kernel_release": s.uname.release,
                "kernel_version": s.uname.version,
                "machine": s.uname.machine,
                "os": "GNU/Linux",
                "processor": "unknown",
            },
        });
        gohai.to_string()
    }
}

const EMPTY_OS_VERSION: [&str; 3] = ["", "", ""];

/// The v5 host-metadata payload, field for field as the Agent marshals it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// The API key (a legacy field the Agent still fills).
    #[serde(rename = "apiKey")]
    pub api_key: String,
    /// The agent's version.
    #[serde(rename = "agentVersion")]
    pub agent_version: String,
    /// The host ID.
    pub uuid: String,
    /// The resolved hostname.
    #[serde(rename = "internalHostname")]
    pub internal_hostname: String,
    /// `linux`.
    pub os: &'static str,
    /// The agent flavor.
    #[serde(rename = "agent-flavor")]
    pub agent_flavor: String,
    /// `n/a`: no embedded Python.
    pub python: &'static str,
    /// Legacy system facts.
    #[serde(rename = "systemStats")]
    pub system_stats: SystemStats,
    /// Host identity.
    pub meta: Meta,
    /// Host tags.
    #[serde(rename = "host-tags")]
    pub host_tags: HostTags,
    /// Cloud network (none off the cloud).
    pub network: Option<NetworkMeta>,
    /// Logs agent facts.
    pub logs: LogsMeta,
    /// How the agent was installed.
    #[serde(rename = "install-method")]
    pub install_method: InstallMethodMeta,
    /// Proxy behaviour.
    #[serde(rename = "proxy-info")]
    pub proxy_info: ProxyMeta,
    /// OTLP ingestion.
    pub otlp: OtlpMeta,
    /// The gohai document, as a JSON string.
    pub gohai: String,
}

impl Payload {
    /// The JSON body to POST to `/intake/`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the host payload holds only strings, numbers and lists")
    }
}

/// `systemStats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemStats {
    /// gopsutil's first CPU's `Cores` (1 on Linux).
    #[serde(rename = "cpuCores")]
    pub cpu_cores: u32,
    /// `GOARCH`.
    pub machine: &'static str,
    /// `GOOS`.
    pub platform: &'static str,
    /// `n/a`.
    #[serde(rename = "pythonV")]
    pub python_v: &'static str,
    /// The CPU model.
    pub processor: String,
    /// Unused on Linux.
    #[serde(rename = "macV")]
    pub mac_v: [&'static str; 3],
    /// `[platform, version, ""]`.
    #[serde(rename = "nixV")]
    pub nix_v: [String; 3],
    /// Unused.
    #[serde(rename = "fbsdV")]
    pub fbsd_v: [&'static str; 3],
    /// Unused on Linux.
    #[serde(rename = "winV")]
    pub win_v: [&'static str; 3],
}

/// `meta`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    /// The OS hostname.
    #[serde(rename = "socket-hostname")]
    pub socket_hostname: String,
    /// The local time zone abbreviation.
    pub timezones: Vec<String>,
    /// The OS hostname's FQDN.
    #[serde(rename = "socket-fqdn")]
    pub socket_fqdn: String,
    /// EC2 only.
    #[serde(rename = "ec2-hostname")]
    pub ec2_hostname: String,
    /// The resolved hostname.
    pub hostname: String,
    /// Valid `host_aliases`.
    pub host_aliases: Vec<String>,
    /// EC2 only.
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    /// The configured hostname when `hostname_force_config_as_canonical`.
    #[serde(rename = "agent-hostname", skip_serializing_if = "Option::is_none")]
    pub agent_hostname: Option<String>,
    /// `1.0`.
    #[serde(rename = "hostname-resolution-version")]
    pub hostname_resolution_version: &'static str,
}

/// `host-tags`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostTags {
    /// The `system` tags.
    pub system: Vec<String>,
}

/// `network` (cloud network ID; never filled here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkMeta {
    /// The cloud network ID.
    #[serde(rename = "network-id")]
    pub id: String,
}

/// `logs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogsMeta {
    /// The logs transport (empty: no logs agent).
    pub transport: &'static str,
    /// `logs_config.auto_multi_line_detection`.
    pub auto_multi_line_detection_enabled: bool,
}

/// `install-method`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstallMethodMeta {
    /// The install tool, or null.
    pub tool: Option<String>,
    /// Its version, or `undefined`.
    pub tool_version: String,
    /// The installer version, or null.
    pub installer_version: Option<String>,
}

/// `proxy-info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyMeta {
    /// `no_proxy_nonexact_match`.
    #[serde(rename = "no-proxy-nonexact-match")]
    pub no_proxy_nonexact_match: bool,
    /// Whether proxy warnings were raised (never, here).
    #[serde(rename = "proxy-behavior-changed")]
    pub proxy_behavior_changed: bool,
    /// Whether `no_proxy_nonexact_match` is set.
    #[serde(rename = "no-proxy-nonexact-match-explicitly-set")]
    pub no_proxy_nonexact_match_explicitly_set: bool,
}

/// `otlp`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtlpMeta {
    /// Always false.
    pub enabled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_start_then_300_900_and_1800_seconds() {
        let mut schedule = MetadataSchedule::default();
        let gaps: Vec<u64> = (0..6).map(|_| schedule.next_interval().as_secs()).collect();
        assert_eq!(gaps, [300, 900, 1800, 1800, 1800, 1800]);
        let minutes: Vec<u64> = gaps
            .iter()
            .scan(0, |t, g| Some(std::mem::replace(t, *t + g) / 60))
            .take(5)
            .collect();
        assert_eq!(minutes, [0, 5, 20, 50, 80]);
        assert_eq!(
            collection_interval(u32::MAX, DEFAULT_EARLY_INTERVAL, DEFAULT_INTERVAL),
            DEFAULT_INTERVAL
        );
    }

    #[test]
    fn configured_intervals_are_validated_as_in_the_agent() {
        let mut s = MetadataSchedule::from_config(Some(600), Some(100));
        assert_eq!(
            [s.next_interval(), s.next_interval(), s.next_interval()].map(|d| d.as_secs()),
            [100, 300, 600]
        );
        // Interval out of range: both defaults.
        assert_eq!(
            MetadataSchedule::from_config(Some(30), Some(60)),
            MetadataSchedule::default()
        );
        assert_eq!(
            MetadataSchedule::from_config(Some(20_000), None),
            MetadataSchedule::default()
        );
        // Early interval too large or out of range: the early default stays.
        let mut s = MetadataSchedule::from_config(Some(3600), Some(7200));
        assert_eq!(s.next_interval().as_secs(), 300);
        let mut s = MetadataSchedule::from_config(Some(3600), Some(10));
        assert_eq!(s.next_interval().as_secs(), 300);
        let mut s = MetadataSchedule::from_config(Some(3600), None);
        assert_eq!(
            [s.next_interval(), s.next_interval(), s.next_interval()].map(|d| d.as_secs()),
            [300, 900, 2700]
        );
    }

    fn fixture_system(dir: &Path) -> SystemPaths {
        let paths = SystemPaths {
            proc_root: dir.join("proc"),
            sys_root: dir.join("sys"),
            etc_root: dir.join("etc"),
            raspi_config: dir.join("usr/bin/raspi-config"),
        };
        for d in [&paths.proc_root, &paths.sys_root, &paths.etc_root] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(
            paths.proc_root.join("cpuinfo"),
            "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n\n\
             processor\t: 1\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n\n\
             processor\t: 2\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n\n\
             processor\t: 3\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n\nHardware\t: BCM2835\n",
        )
        .unwrap();
        std::fs::write(
            paths.proc_root.join("meminfo"),
            "MemTotal:         948280 kB\nSwapTotal:        102396 kB\n",
        )
        .unwrap();
        std::fs::write(paths.etc_root.join("machine-id"), "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::write(paths.etc_root.join("debian_version"), "12.5\n").unwrap();
        paths
    }

    #[test]
    fn system_facts_follow_gopsutil() {
        let dir = tempfile::tempdir().unwrap();
        let paths = fixture_system(dir.path());
        let info = SystemInfo::gather(&paths);
        assert_eq!(info.host_id, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!((info.logical_cpus, info.physical_cores), (4, 4));
        assert_eq!(info.cpu_model, "ARMv7 Processor rev 4 (v7l)");
        assert_eq!((info.mem_total_kb, info.swap_total_kb), (948_280, 102_396));
        assert_eq!(info.platform, ("debian".to_owned(), "12.5".to_owned()));

        std::fs::create_dir_all(paths.raspi_config.parent().unwrap()).unwrap();
        std::fs::write(&paths.raspi_config, "").unwrap();
        assert_eq!(platform_information(&paths).0, "raspbian");

        std::fs::create_dir_all(paths.sys_root.join("class/dmi/id")).unwrap();
        std::fs::write(paths.sys_root.join("class/dmi/id/product_uuid"), "4C4C4544-0042\n").unwrap();
        assert_eq!(host_id(&paths), "4c4c4544-0042");

        std::fs::remove_file(paths.sys_root.join("class/dmi/id/product_uuid")).unwrap();
        std::fs::write(paths.etc_root.join("machine-id"), "short\n").unwrap();
        std::fs::create_dir_all(paths.proc_root.join("sys/kernel/random")).unwrap();
        std::fs::write(paths.proc_root.join("sys/kernel/random/boot_id"), "B00T-ID\n").unwrap();
        assert_eq!(host_id(&paths), "b00t-id");
    }

    #[test]
    fn the_payload_has_the_agent_shape() {
        let dir = tempfile::tempdir().unwrap();
        let system = SystemInfo::gather(&fixture_system(dir.path()));
        let metadata = HostMetadata::new(
            HostMetadataConfig {
                api_key: " abcdef \n".into(),
                agent_version: "7.60.0".into(),
                agent_flavor: "agent".into(),
                hostname: ResolvedHostname {
                    hostname: "edge-12".into(),
                    provider: Provider::Configuration,
                },
                host_aliases: vec!["alias-1".into(), "bad_alias".into()],
                hostname_force_config_as_canonical: true,
                host_tags: vec!["env:prod".into(), "team:iot".into()],
                install_method: None,
                no_proxy_nonexact_match: None,
            },
            system,
        );
        let body = metadata
            .payload_with("board7".into(), "board7.lan".into(), "CET".into())
            .to_json();
        assert!(
            body.starts_with(br#"{"apiKey":"abcdef","agentVersion":"7.60.0","uuid":"#),
            "the Agent's field order"
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = vec![
            "apiKey",
            "agentVersion",
            "uuid",
            "internalHostname",
            "os",
            "agent-flavor",
            "python",
            "systemStats",
            "meta",
            "host-tags",
            "network",
            "logs",
            "install-method",
            "proxy-info",
            "otlp",
            "gohai",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["apiKey"], "abcdef");
        assert_eq!(json["internalHostname"], "edge-12");
        assert_eq!(json["uuid"], "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(json["os"], "linux");
        assert_eq!(json["python"], "n/a");
        assert_eq!(
            json["host-tags"],
            serde_json::json!({"system": ["env:prod", "team:iot"]})
        );
        assert_eq!(json["network"], serde_json::Value::Null);
        assert_eq!(
            json["systemStats"],
            serde_json::json!({
                "cpuCores": 1, "machine": go_arch(), "platform": "linux", "pythonV": "n/a",
                "processor": "ARMv7 Processor rev 4 (v7l)",
                "macV": ["", "", ""], "nixV": ["debian", "12.5", ""], "fbsdV": ["", "", ""], "winV": ["", "", ""],
            })
        );
        assert_eq!(
            json["meta"],
            serde_json::json!({
                "socket-hostname": "board7", "timezones": ["CET"], "socket-fqdn": "board7.lan",
                "ec2-hostname": "", "hostname": "edge-12", "host_aliases": ["alias-1"], "instance-id": "",
                "agent-hostname": "edge-12", "hostname-resolution-version": "1.0",
            })
        );
        assert_eq!(
            json["install-method"],
            serde_json::json!({"tool": null, "tool_version": "undefined", "installer_version": null})
        );
        assert_eq!(
            json["proxy-info"],
            serde_json::json!({"no-proxy-nonexact-match": false, "proxy-behavior-changed": false, "no-proxy-nonexact-match-explicitly-set": false})
        );
        assert_eq!(
            json["logs"],
            serde_json::json!({"transport": "", "auto_multi_line_detection_enabled": false})
        );
        assert_eq!(json["otlp"], serde_json::json!({"enabled": false}));
        let gohai: serde_json::Value = serde_json::from_str(json["gohai"].as_str().unwrap()).unwrap();
        assert_eq!(gohai["cpu"]["cpu_logical_processors"], "4");
        assert_eq!(gohai["memory"]["total"], "948280kB");
        assert_eq!(gohai["platform"]["machine"], Uname::current().machine);
    }

    #[test]
    fn install_info_is_read_from_its_yaml_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install_info");
        std::fs::write(
            &path,
            "---\ninstall_method:\n  tool: nix\n  tool_version: nixos-24.05\n  installer_version: adp-0.1.0\n",
        )
        .unwrap();
        let m = InstallMethod::read(&path).unwrap();
        assert_eq!(m.tool, "nix");
        assert_eq!(m.installer_version, "adp-0.1.0");
        assert_eq!(InstallMethod::read(&dir.path().join("none")), None);
    }

    #[test]
    fn the_live_system_has_a_machine_and_a_timezone() {
        let info = SystemInfo::gather(&SystemPaths::default());
        assert!(!info.uname.machine.is_empty());
        assert!(info.logical_cpus >= 1);
        assert!(info.mem_total_kb > 0);
        assert!(!timezone_name().is_empty());
    }
}
