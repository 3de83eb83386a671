//! The Agent's hostname resolution (`pkg/util/hostname`), without the cloud
//! and container providers.
//!
//! Providers are tried in the Agent's order; the first two stop the search
//! when they succeed, the later ones only fill in a name:
//!
//! | provider | name | when |
//! |---|---|---|
//! | `hostname` | `configuration` | the configured name passes [`validate`] |
//! | `hostname_file` | `hostnameFile` | the file's content, trimmed, passes [`validate`] |
//! | FQDN | `fqdn` | `hostname_fqdn` is set and the OS hostname is usable |
//! | OS | `os` | no name yet and the OS hostname is usable |
//!
//! The OS hostname is *usable* unless the agent runs in a non-host UTS
//! namespace (a container): then it names the container, not the board. The
//! Agent detects that by the inode of `/proc/self/ns/uts`, which is the fixed
//! `0xEFFFFFFE` in the host namespace; `hostname_trust_uts_namespace` skips the
//! test. As in the Agent, the FQDN and OS names are not validated.

use std::ffi::{CStr, CString};
use std::io;
use std::path::{Path, PathBuf};

use tracing::{debug, error, info, warn};

/// The longest hostname the Agent accepts.
pub const MAX_LENGTH: usize = 255;

/// Names the Agent refuses as local (compared case-insensitively).
pub const LOCALHOST_IDENTIFIERS: [&str; 4] = [
    "localhost",
    "localhost.localdomain",
    "localhost6.localdomain6",
    "ip6-localhost",
];

/// Hostnames that images and distributions give every board by default, so
/// that many hosts share them. Compared case-insensitively; `raspberrypi` also
/// matches as a prefix (Yocto/Buildroot name images `raspberrypi3`,
/// `raspberrypi4-64`, …).
///
/// Sources: Raspberry Pi OS (`raspberrypi`), Debian and Ubuntu cloud/board
/// images (`debian`, `ubuntu`), NixOS (`networking.hostName` defaults to
/// `nixos`), Arch Linux ARM (`alarm`, `alarmpi`), DietPi, OpenWrt and LEDE,
/// Buildroot (`BR2_TARGET_GENERIC_HOSTNAME`), BeagleBoard Debian
/// (`beaglebone`), OctoPi, Home Assistant OS, LibreELEC, OSMC, Volumio,
/// RetroPie, Kali ARM, Armbian and the vendor images of Orange Pi, Banana Pi,
/// ODROID, Rock Pi and Pine64, plus `localhost`, which the OS provider does not
/// refuse.
pub const SHARED_DEFAULT_HOSTNAMES: [&str; 28] = [
    "raspberrypi",
    "raspberry",
    "debian",
    "ubuntu",
    "nixos",
    "alarm",
    "alarmpi",
    "dietpi",
    "openwrt",
    "lede",
    "buildroot",
    "beaglebone",
    "octopi",
    "homeassistant",
    "libreelec",
    "osmc",
    "volumio",
    "retropie",
    "kali",
    "armbian",
    "orangepi",
    "bananapi",
    "odroid",
    "rockpi",
    "pine64",
    "localhost",
    "localhost.localdomain",
    "linux",
];

/// The inode of the host's UTS namespace (`PROC_UTS_INIT_INO` in the kernel).
const HOST_UTS_NAMESPACE_INODE: u64 = 0xEFFF_FFFE;

/// The hostname settings of `datadog.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostnameConfig {
    /// `hostname` (`DD_HOSTNAME`): the name to use, if valid. Defaults to "".
    pub hostname: String,
    /// `hostname_file` (`DD_HOSTNAME_FILE`): a file whose trimmed content is the
    /// name. Defaults to "" (not used).
    pub hostname_file: String,
    /// `hostname_fqdn` (`DD_HOSTNAME_FQDN`): use the fully qualified name of the
    /// OS hostname. Defaults to false.
    pub hostname_fqdn: bool,
    /// `hostname_trust_uts_namespace` (`DD_HOSTNAME_TRUST_UTS_NAMESPACE`): use
    /// the OS hostname even in a container's UTS namespace. Defaults to false.
    pub hostname_trust_uts_namespace: bool,
}

/// The provider that gave the hostname, named as the Agent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `hostname` in the configuration.
    Configuration,
    /// `hostname_file`.
    HostnameFile,
    /// The FQDN of the OS hostname (`hostname_fqdn`).
    Fqdn,
    /// The OS hostname.
    Os,
}

impl Provider {
    /// The Agent's name of the provider (shown by `agent status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Configuration => "configuration",
            Provider::HostnameFile => "hostnameFile",
            Provider::Fqdn => "fqdn",
            Provider::Os => "os",
        }
    }
}

/// A resolved hostname and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHostname {
    /// The hostname.
    pub hostname: String,
    /// The provider that gave it.
    pub provider: Provider,
}

/// Why a name is not a valid hostname (the Agent's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHostname {
    /// The name is empty.
    #[error("hostname is empty")]
    Empty,
    /// The name is one of [`LOCALHOST_IDENTIFIERS`].
    #[error("{0} is a local hostname")]
    Local(String),
    /// The name is longer than [`MAX_LENGTH`].
    #[error("name exceeded the maximum length of {MAX_LENGTH} characters")]
    TooLong,
    /// The name has characters or labels RFC 1123 does not allow.
    #[error("{0} is not RFC1123 compliant")]
    NotRfc1123(String),
}

/// Why no hostname could be resolved.
#[derive(Debug, thiserror::Error)]
pub enum HostnameError {
    /// Every provider failed (the Agent's message; set `hostname` in
    /// datadog.yaml or `DD_HOSTNAME`).
    #[error(
        "unable to reliably determine the host name. You can define one in the agent config file or in your hosts file"
    )]
    Unresolved,
}

/// Checks a hostname as the Agent's `validate.ValidHostname` does, logging its
/// error lines for the length and RFC 1123 failures.
pub fn validate(hostname: &str) -> Result<(), InvalidHostname> {
    if hostname.is_empty() {
        return Err(InvalidHostname::Empty);
    }
    if LOCALHOST_IDENTIFIERS.iter().any(|l| l.eq_ignore_ascii_case(hostname)) {
        return Err(InvalidHostname::Local(hostname.to_owned()));
    }
    if hostname.len() > MAX_LENGTH {
        error!("ValidHostname: name exceeded the maximum length of {MAX_LENGTH} characters");
        return Err(InvalidHostname::TooLong);
    }
    if !is_rfc1123(hostname) {
        error!("ValidHostname: {hostname} is not RFC1123 compliant");
        return Err(InvalidHostname::NotRfc1123(hostname.to_owned()));
    }
    Ok(())
}

/// `^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$`
fn is_rfc1123(name: &str) -> bool {
    name.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    })
}

/// Whether `hostname` is a default many boards share (see
/// [`SHARED_DEFAULT_HOSTNAMES`]).
pub fn is_shared_default(hostname: &str) -> bool {
    let lower = hostname.to_ascii_lowercase();
    let short = lower.split('.').next().unwrap_or("");
    short.starts_with("raspberrypi") || SHARED_DEFAULT_HOSTNAMES.iter().any(|d| *d == lower || *d == short)
}

/// The warning for a hostname found on the system (not configured) that many
/// boards share; `None` when the name is configured or distinctive.
pub fn shared_default_warning(resolved: &ResolvedHostname) -> Option<String> {
    let from_system = matches!(resolved.provider, Provider::Fqdn | Provider::Os);
    (from_system && is_shared_default(&resolved.hostname)).then(|| {
        format!(
            "Hostname '{}' is a distribution default that many boards share: their metrics would merge into one host \
             in Datadog. Set a unique `hostname` in datadog.yaml (or DD_HOSTNAME), or give this board a unique OS \
             hostname (hostnamectl set-hostname <name>) and restart the agent.",
            resolved.hostname
        )
    })
}

/// Where the resolution reads the system's names. [`SystemSources`] is the
/// real one; tests substitute their own.
pub trait HostnameSources {
    /// The kernel's hostname (`gethostname`).
    fn os_hostname(&self) -> io::Result<String>;
    /// The canonical name of the OS hostname (what `hostname -f` prints).
    fn fqdn(&self) -> io::Result<String>;
    /// Whether the agent runs in the host's UTS namespace.
    fn in_host_uts_namespace(&self) -> Option<bool>;
}

/// The running system: `gethostname`, `getaddrinfo(AI_CANONNAME)` and
/// `<proc_root>/self/ns/uts`.
#[derive(Debug, Clone)]
pub struct SystemSources {
    proc_root: PathBuf,
}

impl SystemSources {
    /// Sources reading namespaces under `proc_root` (normally `/proc`).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        SystemSources {
            proc_root: proc_root.into(),
        }
    }
}

impl Default for SystemSources {
    fn default() -> Self {
        SystemSources::new("/proc")
    }
}

impl HostnameSources for SystemSources {
    fn os_hostname(&self) -> io::Result<String> {
        os_hostname()
    }

    fn fqdn(&self) -> io::Result<String> {
        fqdn(&os_hostname()?)
    }

    fn in_host_uts_namespace(&self) -> Option<bool> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(self.proc_root.join("self/ns/uts")).ok()?.ino();
        Some(inode == HOST_UTS_NAMESPACE_INODE)
    }
}

/// The kernel's hostname.
pub fn os_hostname() -> io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it when the name fits, and the last byte stays 0 otherwise.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let name = CStr::from_bytes_until_nul(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(name.to_string_lossy().into_owned())
}

/// The canonical name of `hostname` from the resolver (`/etc/hosts`, DNS), as
/// `hostname -f` finds it: `getaddrinfo` with `AI_CANONNAME`.
pub fn fqdn(hostname: &str) -> io::Result<String> {
    let node = CString::new(hostname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_DGRAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: node is NUL-terminated, hints and res are valid pointers.
    let rc = unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 {
        // SAFETY: gai_strerror returns a static NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }
            .to_string_lossy()
            .into_owned();
        return Err(io::Error::other(format!("getaddrinfo({hostname}): {msg}")));
    }
    // SAFETY: on success res points to a list whose first entry carries the
    // canonical name (or NULL); it is freed exactly once below.
    let canon = unsafe {
        let name = if (*res).ai_canonname.is_null() {
            None
        } else {
            Some(CStr::from_ptr((*res).ai_canonname).to_string_lossy().into_owned())
        };
        libc::freeaddrinfo(res);
        name
    };
    canon
        .filter(|n| !n.is_empty())
        .ok_or_else(|| io::Error::other(format!("getaddrinfo({hostname}) returned no canonical name")))
}

fn os_hostname_usable(config: &HostnameConfig, sources: &dyn HostnameSources) -> bool {
    if config.hostname_trust_uts_namespace {
        return true;
    }
    match sources.in_host_uts_namespace() {
        Some(host) => host,
        None => {
            debug!("Unable to get self UTS inode");
            true
        }
    }
}

/// Resolves the hostname from the system, logging as the Agent does
/// (including `Hostname is: <name>`).
pub fn resolve(config: &HostnameConfig) -> Result<ResolvedHostname, HostnameError> {
    resolve_with(config, &SystemSources::default())
}

/// [`resolve`] with the system's names read from `sources`.
pub fn resolve_with(config: &HostnameConfig, sources: &dyn HostnameSources) -> Result<ResolvedHostname, HostnameError> {
    let usable = os_hostname_usable(config, sources);
    let mut found: Option<ResolvedHostname> = None;

    for provider in [
        Provider::Configuration,
        Provider::HostnameFile,
        Provider::Fqdn,
        Provider::Os,
    ] {
        debug!("trying to get hostname from '{}' provider", provider.as_str());
        let attempt: Result<String, String> = match provider {
            Provider::Configuration => validate(&config.hostname)
                .map(|()| config.hostname.clone())
                .map_err(|e| e.to_string()),
            Provider::HostnameFile => from_hostname_file(&config.hostname_file),
            Provider::Fqdn if !usable => Err("FQDN hostname is not usable".to_owned()),
            Provider::Fqdn if !config.hostname_fqdn => Err("'hostname_fqdn' configuration is not enabled".to_owned()),
            Provider::Fqdn => sources
                .fqdn()
                .map_err(|e| format!("Unable to get FQDN from system: {e}")),
            Provider::Os if !usable => Err("OS hostname is not usable".to_owned()),
            Provider::Os if found.is_some() => {
                Err("Skipping OS hostname as a previous provider found a valid hostname".to_owned())
            }
            Provider::Os => sources.os_hostname().map_err(|e| e.to_string()),
        };
        match attempt {
            Ok(hostname) => {
                debug!(
                    "hostname provider '{}' successfully found hostname '{hostname}'",
                    provider.as_str()
                );
                let resolved = ResolvedHostname { hostname, provider };
                if matches!(provider, Provider::Configuration | Provider::HostnameFile) {
                    return Ok(finish(resolved));
                }
                found = Some(resolved);
            }
            Err(e) => debug!("unable to get the hostname from '{}' provider: {e}", provider.as_str()),
        }
    }

    match found {
        Some(resolved) => {
            warn_about_fqdn(config, sources, &resolved.hostname);
            Ok(finish(resolved))
        }
        None => Err(HostnameError::Unresolved),
    }
}

fn from_hostname_file(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("'hostname_file' configuration is not enabled".to_owned());
    }
    let content =
        std::fs::read_to_string(Path::new(path)).map_err(|e| format!("Could not read hostname from {path}: {e}"))?;
    let hostname = content.trim().to_owned();
    validate(&hostname).map_err(|e| e.to_string())?;
    Ok(hostname)
}

fn warn_about_fqdn(config: &HostnameConfig, sources: &dyn HostnameSources, hostname: &str) {
    let (Ok(fqdn), Ok(os)) = (sources.fqdn(), sources.os_hostname()) else {
        return;
    };
    if !config.hostname_fqdn && hostname == os && os != fqdn {
        warn!(
            "DEPRECATION NOTICE: The agent resolved your hostname as '{os}'. However in a future version, it will be \
             resolved as '{fqdn}' by default. To enable the future behavior, please enable the `hostname_fqdn` flag \
             in the configuration. For more information: https://dtdg.co/flag-hostname-fqdn"
        );
    }
}

fn finish(resolved: ResolvedHostname) -> ResolvedHostname {
    info!("Hostname is: {}", resolved.hostname);
    if let Some(warning) = shared_default_warning(&resolved) {
        warn!("{warning}");
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        os: Option<&'static str>,
        fqdn: Option<&'static str>,
        host_ns: Option<bool>,
    }

    impl HostnameSources for Fake {
        fn os_hostname(&self) -> io::Result<String> {
            self.os
                .map(str::to_owned)
                .ok_or_else(|| io::Error::other("no os hostname"))
        }
        fn fqdn(&self) -> io::Result<String> {
            self.fqdn.map(str::to_owned).ok_or_else(|| io::Error::other("no fqdn"))
        }
        fn in_host_uts_namespace(&self) -> Option<bool> {
            self.host_ns
        }
    }

    fn resolved(hostname: &str, provider: Provider) -> ResolvedHostname {
        ResolvedHostname {
            hostname: hostname.into(),
            provider,
        }
    }

    const BOARD: Fake = Fake {
        os: Some("board7"),
        fqdn: Some("board7.lab.example"),
        host_ns: Some(true),
    };

    #[test]
    fn validation_follows_the_agent_rules() {
        assert_eq!(validate(""), Err(InvalidHostname::Empty));
        for local in [
            "localhost",
            "LocalHost.LocalDomain",
            "localhost6.localdomain6",
            "ip6-localhost",
        ] {
            assert!(matches!(validate(local), Err(InvalidHostname::Local(_))), "{local}");
        }
        assert_eq!(validate(&"a".repeat(256)), Err(InvalidHostname::TooLong));
        // The Agent's regexp bounds the whole name, not each label.
        assert_eq!(validate(&"a".repeat(255)), Ok(()));
        for bad in [
            "under_score",
            "-lead",
            "trail-",
            "dot..dot",
            ".lead",
            "trail.",
            "spa ce",
            "é",
        ] {
            assert!(matches!(validate(bad), Err(InvalidHostname::NotRfc1123(_))), "{bad}");
        }
        for good in ["a", "pi-4", "board7.lab.example", "0x1", "A-B.C"] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn a_valid_configured_hostname_wins() {
        let config = HostnameConfig {
            hostname: "edge-12".into(),
            hostname_fqdn: true,
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&config, &BOARD).unwrap(),
            resolved("edge-12", Provider::Configuration)
        );
    }

    #[test]
    fn an_invalid_configured_hostname_falls_through_to_the_file_then_the_os() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hostname");
        std::fs::write(&file, "  from-file-3\n").unwrap();
        let config = HostnameConfig {
            hostname: "bad_name".into(),
            hostname_file: file.to_str().unwrap().into(),
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&config, &BOARD).unwrap(),
            resolved("from-file-3", Provider::HostnameFile)
        );

        std::fs::write(&file, "localhost\n").unwrap();
        assert_eq!(resolve_with(&config, &BOARD).unwrap(), resolved("board7", Provider::Os));

        let missing = HostnameConfig {
            hostname_file: dir.path().join("nope").to_str().unwrap().into(),
            ..config
        };
        assert_eq!(resolve_with(&missing, &BOARD).unwrap().provider, Provider::Os);
    }

    #[test]
    fn hostname_fqdn_uses_the_canonical_name() {
        let config = HostnameConfig {
            hostname_fqdn: true,
            ..Default::default()
        };
        assert_eq!(
            resolve_with(&config, &BOARD).unwrap(),
            resolved("board7.lab.example", Provider::Fqdn)
        );

        // An unresolvable FQDN falls back to the OS hostname.
        let no_fqdn = Fake { fqdn: None, ..BOARD };
        assert_eq!(resolve_with(&config, &no_fqdn).unwrap().hostname, "board7");
    }

    #[test]
    fn a_container_uts_namespace_hides_the_os_hostname_unless_trusted() {
        let container = Fake {
            host_ns: Some(false),
            ..BOARD
        };
        let config = HostnameConfig::default();
        assert!(matches!(
            resolve_with(&config, &container),
            Err(HostnameError::Unresolved)
        ));
        assert_eq!(
            HostnameError::Unresolved.to_string(),
            "unable to reliably determine the host name. You can define one in the agent config file or in your hosts file"
        );
        let trusted = HostnameConfig {
            hostname_trust_uts_namespace: true,
            ..config
        };
        assert_eq!(resolve_with(&trusted, &container).unwrap().hostname, "board7");
        // Unknown namespace: the Agent assumes usable.
        let unknown = Fake { host_ns: None, ..BOARD };
        assert_eq!(
            resolve_with(&HostnameConfig::default(), &unknown).unwrap().hostname,
            "board7"
        );
    }

    #[test]
    fn the_os_hostname_is_not_validated_as_in_the_agent() {
        let pi = Fake {
            os: Some("localhost"),
            fqdn: None,
            host_ns: Some(true),
        };
        assert_eq!(
            resolve_with(&HostnameConfig::default(), &pi).unwrap().hostname,
            "localhost"
        );
    }

    #[test]
    fn shared_defaults_warn_only_when_found_on_the_system() {
        for name in [
            "raspberrypi",
            "RaspberryPi",
            "raspberrypi4-64",
            "debian",
            "ubuntu.lan",
            "nixos",
            "localhost",
        ] {
            assert!(is_shared_default(name), "{name}");
        }
        for name in ["board7", "pi-kitchen", "debianbox"] {
            assert!(!is_shared_default(name), "{name}");
        }
        let os = resolved("raspberrypi", Provider::Os);
        let warning = shared_default_warning(&os).unwrap();
        assert!(warning.contains("'raspberrypi'") && warning.contains("`hostname`") && warning.contains("DD_HOSTNAME"));
        let fqdn = resolved("debian.lan", Provider::Fqdn);
        assert!(shared_default_warning(&fqdn).is_some());
        let configured = resolved("raspberrypi", Provider::Configuration);
        assert_eq!(shared_default_warning(&configured), None);
    }

    #[test]
    fn the_live_system_resolves_to_its_os_hostname() {
        let r = resolve(&HostnameConfig {
            hostname_trust_uts_namespace: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.provider, Provider::Os);
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(r.hostname, expected.trim());
    }
}
