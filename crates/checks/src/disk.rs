//! The `disk` check (the Agent's Go `diskv2`), in KiB (bytes / 1024) as the
//! Agent sends them.
//!
//! For every mount of `/proc/self/mounts` (`proc_mountinfo_path`) that passes
//! the filters and whose `statvfs` reports a size, gauges
//! `system.disk.{total,used,free}` (KiB), `system.disk.utilized` (0–100),
//! `system.disk.in_use` (0–1), and when it has inodes
//! `system.fs.inodes.{total,used,free,utilized,in_use}`, tagged
//! `device:<device>` (the mount point with `use_mount`),
//! `device_name:<basename of the device>`, `label:`/`device_label:` from
//! `/dev/disk/by-label` (`tag_by_label`, default on), and `filesystem:` with
//! `tag_by_filesystem`. used = (blocks − bfree) × fragment size, free = bavail
//! × fragment size, utilized = used / (used + free) × 100.
//!
//! For every block device of `/proc/diskstats` with activity: monotonic
//! counts `system.disk.{read,write}_time` (ms) and rates
//! `system.disk.{read,write}_time_pct` (the Agent's historical ms × 100 / 1000
//! per second), tagged `device:<name>`, `device_name:<name>`.
//!
//! The Agent's default exclusions apply: file systems matching `iso9660$` or
//! `tracefs$` (unless `file_system_global_exclude` is set), mount points
//! matching `(/host)?/proc/sys/fs/binfmt_misc$` (unless
//! `mount_point_global_exclude` is set), mounts without a device or with
//! device `none` (unless `all_partitions`), and file systems of size 0 — which
//! removes proc, sysfs, cgroup and the other pseudo file systems. Mounts that
//! give the same tags (several `tmpfs` without `use_mount`) make one series,
//! the last one's value, as the Agent's sampler keeps the last gauge of a
//! context.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use regex_lite::Regex;
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::check::{Check, CheckError};
use crate::output::{Emitter, ServiceCheckStatus};
use crate::procfs::{diskstats_line, Counter, Reader, Roots};

/// `disk` `init_config` options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiskInitOptions {
    /// Device regexps excluded in every instance.
    #[serde(default)]
    pub device_global_exclude: Vec<String>,
    /// Deprecated name of `device_global_exclude`.
    #[serde(default)]
    pub device_global_blacklist: Vec<String>,
    /// File system regexps excluded in every instance (default `iso9660$`,
    /// `tracefs$` when neither this nor the deprecated name is set).
    #[serde(default)]
    pub file_system_global_exclude: Vec<String>,
    /// Deprecated name of `file_system_global_exclude`.
    #[serde(default)]
    pub file_system_global_blacklist: Vec<String>,
    /// Mount point regexps excluded in every instance (default
    /// `(/host)?/proc/sys/fs/binfmt_misc$`).
    #[serde(default)]
    pub mount_point_global_exclude: Vec<String>,
    /// Deprecated name of `mount_point_global_exclude`.
    #[serde(default)]
    pub mount_point_global_blacklist: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `disk` instance options (the Agent's names and defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct DiskOptions {
    /// Tag with the mount point instead of the device. Defaults to false.
    #[serde(default)]
    pub use_mount: bool,
    /// List every mount, not only those of file systems backed by a device
    /// (`nodev` in /proc/filesystems). Defaults to true.
    #[serde(default = "yes")]
    pub include_all_devices: bool,
    /// Keep mounts without a device. Defaults to false.
    #[serde(default)]
    pub all_partitions: bool,
    /// Skip file systems smaller than this many MiB. Defaults to 0.
    #[serde(default)]
    pub min_disk_size: u64,
    /// Add `filesystem:<type>` (and the bare type). Defaults to false.
    #[serde(default)]
    pub tag_by_filesystem: bool,
    /// Add `label:`/`device_label:` from `/dev/disk/by-label`. Defaults to true.
    #[serde(default = "yes")]
    pub tag_by_label: bool,
    /// Send the `disk.read_write` service check. Defaults to false.
    #[serde(default)]
    pub service_check_rw: bool,
    /// Device regexps to keep.
    #[serde(default)]
    pub device_include: Vec<String>,
    /// Deprecated name of `device_include`.
    #[serde(default)]
    pub device_whitelist: Vec<String>,
    /// Device regexps to skip.
    #[serde(default)]
    pub device_exclude: Vec<String>,
    /// Deprecated name of `device_exclude`.
    #[serde(default)]
    pub device_blacklist: Vec<String>,
    /// Devices to skip, matched whole and case-insensitively (deprecated).
    #[serde(default)]
    pub excluded_disks: Vec<String>,
    /// A device regexp to skip (deprecated).
    #[serde(default)]
    pub excluded_disk_re: String,
    /// File system regexps to keep (case-insensitive).
    #[serde(default)]
    pub file_system_include: Vec<String>,
    /// Deprecated name of `file_system_include`.
    #[serde(default)]
    pub file_system_whitelist: Vec<String>,
    /// File system regexps to skip (case-insensitive).
    #[serde(default)]
    pub file_system_exclude: Vec<String>,
    /// Deprecated name of `file_system_exclude`.
    #[serde(default)]
    pub file_system_blacklist: Vec<String>,
    /// File systems to skip, matched whole (deprecated).
    #[serde(default)]
    pub excluded_filesystems: Vec<String>,
    /// Mount point regexps to keep (case-insensitive).
    #[serde(default)]
    pub mount_point_include: Vec<String>,
    /// Deprecated name of `mount_point_include`.
    #[serde(default)]
    pub mount_point_whitelist: Vec<String>,
    /// Mount point regexps to skip (case-insensitive).
    #[serde(default)]
    pub mount_point_exclude: Vec<String>,
    /// Deprecated name of `mount_point_exclude`.
    #[serde(default)]
    pub mount_point_blacklist: Vec<String>,
    /// A mount point regexp to skip (deprecated).
    #[serde(default)]
    pub excluded_mountpoint_re: String,
    /// Extra tags (comma-separated) for devices (mount points with
    /// `use_mount`) matching a regexp.
    #[serde(default)]
    pub device_tag_re: BTreeMap<String, String>,
    /// Lowercase the `device` tag. Defaults to false.
    #[serde(default)]
    pub lowercase_device_tag: bool,
    /// The mounts file, `mounts` or `mountinfo` format. Defaults to
    /// `<proc>/self/mounts`.
    #[serde(default)]
    pub proc_mountinfo_path: Option<PathBuf>,
}

impl Default for DiskOptions {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

#[derive(Debug, Default)]
struct Filters {
    include_devices: Vec<Regex>,
    exclude_devices: Vec<Regex>,
    include_fs: Vec<Regex>,
    exclude_fs: Vec<Regex>,
    include_mounts: Vec<Regex>,
    exclude_mounts: Vec<Regex>,
    device_tags: Vec<(Regex, Vec<String>)>,
}

fn compile(exprs: &[&[String]], ignore_case: bool, whole: bool) -> Result<Vec<Regex>, String> {
    let mut out = Vec::new();
    for expr in exprs.iter().flat_map(|e| e.iter()) {
        let mut pattern = if whole { format!("^{expr}$") } else { expr.clone() };
        if ignore_case {
            pattern = format!("(?i){pattern}");
        }
        out.push(Regex::new(&pattern).map_err(|e| format!("`{expr}` is not a valid regular expression: {e}"))?);
    }
    Ok(out)
}

fn deprecated(options: &serde_yaml::Value, init: &serde_yaml::Value) {
    let pairs_init = [
        ("file_system_global_blacklist", "file_system_global_exclude"),
        ("device_global_blacklist", "device_global_exclude"),
        ("mount_point_global_blacklist", "mount_point_global_exclude"),
    ];
    let pairs_instance = [
        ("file_system_whitelist", "file_system_include"),
        ("file_system_blacklist", "file_system_exclude"),
        ("device_whitelist", "device_include"),
        ("device_blacklist", "device_exclude"),
        ("mount_point_whitelist", "mount_point_include"),
        ("mount_point_blacklist", "mount_point_exclude"),
        ("excluded_filesystems", "file_system_exclude"),
        ("excluded_disks", "device_exclude"),
        ("excluded_disk_re", "device_exclude"),
        ("excluded_mountpoint_re", "mount_point_exclude"),
    ];
    for (value, pairs) in [(init, &pairs_init[..]), (options, &pairs_instance[..])] {
        for (old, new) in pairs {
            if value.get(old).is_some() {
                warn!("`{old}` is deprecated and will be removed in a future release. Please use `{new}` instead.");
            }
        }
    }
}

impl Filters {
    fn new(init: &DiskInitOptions, o: &DiskOptions) -> Result<Filters, String> {
        let mut f = Filters {
            exclude_devices: compile(
                &[
                    &init.device_global_exclude,
                    &init.device_global_blacklist,
                    &o.device_exclude,
                    &o.device_blacklist,
                ],
                false,
                false,
            )?,
            include_devices: compile(&[&o.device_include, &o.device_whitelist], false, false)?,
            exclude_fs: compile(
                &[&init.file_system_global_exclude, &init.file_system_global_blacklist],
                true,
                false,
            )?,
            include_fs: compile(&[&o.file_system_include, &o.file_system_whitelist], true, false)?,
            exclude_mounts: compile(
                &[&init.mount_point_global_exclude, &init.mount_point_global_blacklist],
                true,
                false,
            )?,
            include_mounts: compile(&[&o.mount_point_include, &o.mount_point_whitelist], true, false)?,
            device_tags: Vec::new(),
        };
        f.exclude_devices.extend(compile(&[&o.excluded_disks], true, true)?);
        if !o.excluded_disk_re.is_empty() {
            f.exclude_devices
                .extend(compile(&[std::slice::from_ref(&o.excluded_disk_re)], false, false)?);
        }
        if f.exclude_fs.is_empty() {
            f.exclude_fs = compile(&[&["iso9660$".to_owned(), "tracefs$".to_owned()]], true, false)?;
        }
        f.exclude_fs.extend(compile(
            &[&o.file_system_exclude, &o.file_system_blacklist],
            true,
            false,
        )?);
        f.exclude_fs.extend(compile(&[&o.excluded_filesystems], true, true)?);
        if f.exclude_mounts.is_empty() {
            f.exclude_mounts = compile(&[&["(/host)?/proc/sys/fs/binfmt_misc$".to_owned()]], false, false)?;
        }
        f.exclude_mounts.extend(compile(
            &[&o.mount_point_exclude, &o.mount_point_blacklist],
            true,
            false,
        )?);
        if !o.excluded_mountpoint_re.is_empty() {
            f.exclude_mounts.extend(compile(
                &[std::slice::from_ref(&o.excluded_mountpoint_re)],
                false,
                false,
            )?);
        }
        for (expr, tags) in &o.device_tag_re {
            let re = Regex::new(expr).map_err(|e| format!("`{expr}` is not a valid regular expression: {e}"))?;
            f.device_tags
                .push((re, tags.split(',').map(|t| t.trim().to_owned()).collect()));
        }
        Ok(f)
    }

    /// The Agent's `excludePartition` for one mount.
    fn excluded(&self, device: &str, fstype: &str, mount_point: &str, all_partitions: bool) -> bool {
        let device = if device == "none" { "" } else { device };
        if device.is_empty() && !all_partitions {
            return true;
        }
        // NFS secure mounts may read `/path (deleted)`: match what precedes the last space.
        let mount_point = mount_point.rfind(' ').map_or(mount_point, |i| &mount_point[..i]);
        let any = |res: &[Regex], s: &str| res.iter().any(|r| r.is_match(s));
        let excluded = (!device.is_empty() && any(&self.exclude_devices, device))
            || any(&self.exclude_fs, fstype)
            || any(&self.exclude_mounts, mount_point);
        if excluded {
            return true;
        }
        let included = (device.is_empty() || self.include_devices.is_empty() || any(&self.include_devices, device))
            && (self.include_fs.is_empty() || any(&self.include_fs, fstype))
            && (self.include_mounts.is_empty() || any(&self.include_mounts, mount_point));
        !included
    }
}

/// `\040`-style octal escapes of /proc/self/mounts (and `\xNN` of udev's
/// by-label names) decoded.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let hex = b
            .get(i + 1..i + 4)
            .filter(|d| d[0] == b'x' && d[1..].iter().all(u8::is_ascii_hexdigit));
        match (b[i], octal, hex) {
            (b'\\', Some(d), _) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b'\\', None, Some(d)) => {
                out.push(u8::from_str_radix(std::str::from_utf8(&d[1..]).unwrap_or("3f"), 16).unwrap_or(b'?'));
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// One mount: (device, mount point, fs type, options).
fn parse_mount_line(line: &str) -> Option<(&str, &str, &str, &str)> {
    if let Some((left, right)) = line.split_once(" - ") {
        // mountinfo: id parent maj:min root mountpoint opts … - fstype source superopts
        let mut l = left.split_ascii_whitespace();
        let mount_point = l.nth(4)?;
        let opts = l.next().unwrap_or("");
        let mut r = right.split_ascii_whitespace();
        let fstype = r.next()?;
        let device = r.next().unwrap_or("");
        return Some((device, mount_point, fstype, opts));
    }
    let mut f = line.split_ascii_whitespace();
    Some((f.next()?, f.next()?, f.next()?, f.next().unwrap_or("")))
}

/// `statvfs` of a path: (total, used, free, inodes total, inodes free) in
/// bytes and inodes, 64-bit on every target.
fn statvfs(path: &str) -> io::Result<[u64; 5]> {
    let c = CString::new(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed statvfs64 is a valid output buffer.
    let mut st: libc::statvfs64 = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is a valid buffer.
    if unsafe { libc::statvfs64(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The block size is an `unsigned long` (32-bit on armv7); the counts are 64-bit.
    #[allow(clippy::useless_conversion)]
    let frsize = u64::from(if st.f_frsize > 0 { st.f_frsize } else { st.f_bsize });
    let total = st.f_blocks.saturating_mul(frsize);
    let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(frsize);
    let free = st.f_bavail.saturating_mul(frsize);
    Ok([total, used, free, st.f_files, st.f_ffree])
}

#[derive(Debug)]
struct PartitionTags {
    device: String,
    mount_point: String,
    fstype: String,
    label: Option<String>,
    tags: Arc<[String]>,
}

#[derive(Debug)]
struct DeviceState {
    name: String,
    tags: Arc<[String]>,
    counters: [Counter; 4],
}

/// The disk check.
#[derive(Debug)]
pub struct DiskCheck {
    options: DiskOptions,
    filters: Filters,
    mounts_path: PathBuf,
    filesystems_path: PathBuf,
    diskstats_path: PathBuf,
    labels_dir: PathBuf,
    reader: Reader,
    tags: Arc<[String]>,
    partitions: Vec<PartitionTags>,
    devices: Vec<DeviceState>,
    labels: Vec<(String, String)>,
    labels_mtime: Option<SystemTime>,
    physical_fs: Option<HashSet<String>>,
    warned: HashSet<String>,
    usages: Vec<(Arc<[String]>, [u64; 5], ServiceCheckStatus)>,
}

impl DiskCheck {
    /// A disk check; fails on an invalid regular expression.
    pub fn new(
        roots: &Roots,
        init: &DiskInitOptions,
        options: DiskOptions,
        tags: Arc<[String]>,
        raw_instance: &serde_yaml::Value,
        raw_init: &serde_yaml::Value,
    ) -> Result<Self, String> {
        deprecated(raw_instance, raw_init);
        let filters = Filters::new(init, &options)?;
        let mounts_path = options
            .proc_mountinfo_path
            .clone()
            .unwrap_or_else(|| roots.proc.join("self/mounts"));
        Ok(DiskCheck {
            options,
            filters,
            mounts_path,
            filesystems_path: roots.proc.join("filesystems"),
            diskstats_path: roots.proc.join("diskstats"),
            labels_dir: roots.dev.join("disk/by-label"),
            reader: Reader::with_capacity(4096),
            tags,
            partitions: Vec::new(),
            devices: Vec::new(),
            labels: Vec::new(),
            labels_mtime: None,
            physical_fs: None,
            warned: HashSet::new(),
            usages: Vec::new(),
        })
    }

    /// Re-reads `/dev/disk/by-label` when the directory changed.
    fn refresh_labels(&mut self) {
        let mtime = std::fs::metadata(&self.labels_dir).and_then(|m| m.modified()).ok();
        if mtime.is_some() && mtime == self.labels_mtime {
            return;
        }
        self.labels_mtime = mtime;
        self.labels.clear();
        let Ok(entries) = std::fs::read_dir(&self.labels_dir) else {
            debug!("Unable to fetch device labels from {}", self.labels_dir.display());
            return;
        };
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let Some(dev) = target.file_name() else { continue };
            let label = unescape(&entry.file_name().to_string_lossy()).into_owned();
            self.labels.push((format!("/dev/{}", dev.to_string_lossy()), label));
        }
    }

    fn physical_fs(&mut self) -> &HashSet<String> {
        if self.physical_fs.is_none() {
            let text = self.reader.read(&self.filesystems_path).unwrap_or("");
            let set = text
                .lines()
                .filter(|l| !l.starts_with("nodev"))
                .map(|l| l.trim().to_owned())
                .chain(["zfs".to_owned()])
                .collect();
            self.physical_fs = Some(set);
        }
        self.physical_fs.as_ref().expect("just set")
    }

    fn partition_tags(&mut self, device: &str, mount_point: &str, fstype: &str) -> Arc<[String]> {
        let label = self.labels.iter().find(|(d, _)| d == device).map(|(_, l)| l.as_str());
        if let Some(p) = self.partitions.iter().find(|p| {
            p.device == device && p.mount_point == mount_point && p.fstype == fstype && p.label.as_deref() == label
        }) {
            return Arc::clone(&p.tags);
        }
        let o = &self.options;
        let mut tags = Vec::new();
        if o.tag_by_filesystem {
            tags.push(fstype.to_owned());
            tags.push(format!("filesystem:{fstype}"));
        }
        let name = if o.use_mount { mount_point } else { device };
        tags.push(if o.lowercase_device_tag {
            format!("device:{}", name.to_lowercase())
        } else {
            format!("device:{name}")
        });
        tags.push(format!("device_name:{}", base_name(device)));
        for (re, extra) in &self.filters.device_tags {
            if re.is_match(name) {
                tags.extend(extra.iter().cloned());
            }
        }
        if let Some(label) = label {
            tags.push(format!("label:{label}"));
            tags.push(format!("device_label:{label}"));
        }
        tags.extend(self.tags.iter().cloned());
        let tags: Arc<[String]> = tags.into();
        self.partitions.push(PartitionTags {
            device: device.to_owned(),
            mount_point: mount_point.to_owned(),
            fstype: fstype.to_owned(),
            label: label.map(str::to_owned),
            tags: Arc::clone(&tags),
        });
        tags
    }

    fn collect_partitions(&mut self, out: &mut Emitter) -> Result<(), CheckError> {
        if self.options.tag_by_label {
            self.refresh_labels();
        }
        if !self.options.include_all_devices {
            self.physical_fs();
        }
        let mut text = std::mem::take(&mut self.reader);
        let mounts = text.read_required(&self.mounts_path)?;
        self.usages.clear();
        for line in mounts.lines() {
            let Some((device, mount_point, fstype, opts)) = parse_mount_line(line) else {
                continue;
            };
            if let Some(physical) = &self.physical_fs {
                if !physical.contains(fstype) {
                    continue;
                }
            }
            let (device, mount_point) = (unescape(device), unescape(mount_point));
            if self
                .filters
                .excluded(&device, fstype, &mount_point, self.options.all_partitions)
            {
                debug!("Excluding partition: [device: {device}] [mountpoint: {mount_point}] [fstype: {fstype}]");
                continue;
            }
            let usage = match statvfs(&mount_point) {
                Ok(u) => u,
                Err(e) => {
                    if self.warned.insert(mount_point.to_string()) {
                        warn!(
                            "Unable to get disk metrics for {mount_point}: {e}. You can exclude this mountpoint in the settings if it is invalid."
                        );
                    }
                    continue;
                }
            };
            if usage[0] == 0 {
                continue;
            }
            if usage[0] < self.options.min_disk_size.saturating_mul(1024 * 1024) {
                info!(
                    "Excluding partition: [device: {device}] [mountpoint: {mount_point}] [fstype: {fstype}] with total disk size {} bytes",
                    usage[0]
                );
                continue;
            }
            let status = opts
                .split(',')
                .find_map(|o| match o {
                    "rw" => Some(ServiceCheckStatus::Ok),
                    "ro" => Some(ServiceCheckStatus::Critical),
                    _ => None,
                })
                .unwrap_or(ServiceCheckStatus::Unknown);
            let tags = self.partition_tags(&device, &mount_point, fstype);
            self.usages.push((tags, usage, status));
        }
        self.reader = text;

        for (i, (tags, u, status)) in self.usages.iter().enumerate() {
            // The Agent's sampler keeps the last gauge of a context.
            if self.usages[i + 1..].iter().any(|(later, _, _)| later[..] == tags[..]) {
                continue;
            }
            let [total, used, free, inodes, inodes_free] = *u;
            let kib = |b: u64| b as f64 / 1024.0;
            let pct = if used + free == 0 {
                0.0
            } else {
                used as f64 / (used + free) as f64 * 100.0
            };
            out.gauge("system.disk.total", kib(total), tags);
            out.gauge("system.disk.used", kib(used), tags);
            out.gauge("system.disk.free", kib(free), tags);
            out.gauge("system.disk.utilized", pct, tags);
            out.gauge("system.disk.in_use", pct / 100.0, tags);
            if inodes != 0 {
                let inodes_used = inodes.saturating_sub(inodes_free);
                let ipct = inodes_used as f64 / inodes as f64 * 100.0;
                out.gauge("system.fs.inodes.total", inodes as f64, tags);
                out.gauge("system.fs.inodes.used", inodes_used as f64, tags);
                out.gauge("system.fs.inodes.free", inodes_free as f64, tags);
                out.gauge("system.fs.inodes.utilized", ipct, tags);
                out.gauge("system.fs.inodes.in_use", ipct / 100.0, tags);
            }
            if self.options.service_check_rw {
                out.service_check("disk.read_write", *status, tags, String::new());
            }
        }
        Ok(())
    }

    fn collect_io(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        let text = self.reader.read_required(&self.diskstats_path)?;
        for line in text.lines() {
            let Some((name, values)) = diskstats_line(line) else {
                continue;
            };
            let (read_time, write_time) = (values[3], values[7]);
            let index = match self.devices.iter().position(|d| d.name == name) {
                Some(i) => i,
                None => {
                    let mut tags = Vec::with_capacity(self.tags.len() + 2);
                    let device = if self.options.lowercase_device_tag {
                        name.to_lowercase()
                    } else {
                        name.to_owned()
                    };
                    tags.push(format!("device:{device}"));
                    tags.push(format!("device_name:{}", base_name(name)));
                    for (re, extra) in &self.filters.device_tags {
                        if re.is_match(name) {
                            tags.extend(extra.iter().cloned());
                        }
                    }
                    tags.extend(self.tags.iter().cloned());
                    self.devices.push(DeviceState {
                        name: name.to_owned(),
                        tags: tags.into(),
                        counters: [Counter::default(); 4],
                    });
                    self.devices.len() - 1
                }
            };
            let d = &mut self.devices[index];
            let [rt, wt, rp, wp] = &mut d.counters;
            out.monotonic("system.disk.read_time", rt.delta(read_time, now), &d.tags);
            out.monotonic("system.disk.write_time", wt.delta(write_time, now), &d.tags);
            // The Agent's rate of ms × 100 / 1000: a value that is not a percentage, kept for compatibility.
            out.rate(
                "system.disk.read_time_pct",
                rp.rate(read_time, now).map(|r| r / 10.0),
                &d.tags,
            );
            out.rate(
                "system.disk.write_time_pct",
                wp.rate(write_time, now).map(|r| r / 10.0),
                &d.tags,
            );
        }
        Ok(())
    }
}

fn base_name(device: &str) -> &str {
    let trimmed = device.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some("") | None if device.is_empty() => ".",
        Some("") | None => "/",
        Some(name) => name,
    }
}

impl Check for DiskCheck {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        self.collect_partitions(out)?;
        self.collect_io(out, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, kind, run, tagged, values};
    use crate::MetricType;
    use std::time::Duration;

    fn check(dir: &std::path::Path, instance: &str, init: &str) -> DiskCheck {
        let raw: serde_yaml::Value = serde_yaml::from_str(instance).unwrap();
        let raw_init: serde_yaml::Value = serde_yaml::from_str(init).unwrap();
        let options: DiskOptions = crate::config::options(&raw).unwrap();
        let init_options: DiskInitOptions = crate::config::options(&raw_init).unwrap();
        DiskCheck::new(
            &Roots::under(dir),
            &init_options,
            options,
            Arc::from(vec!["team:iot".to_owned()]),
            &raw,
            &raw_init,
        )
        .unwrap()
    }

    fn board(extra_mounts: &str) -> tempfile::TempDir {
        let dir = fixture(&[
            (
                "proc/diskstats",
                "179 0 mmcblk0 100 5 2000 300 50 2 800 400 0 500 700\n   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n",
            ),
            (
                "proc/filesystems",
                "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\n\tvfat\n",
            ),
        ]);
        let root = dir.path();
        for d in ["root", "boot space", "a", "b", "none", "cd", "dev/disk/by-label"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("../../mmcblk0p1", root.join("dev/disk/by-label/BOOT\\x20FS")).unwrap();
        let r = root.display();
        let mounts = format!(
            "/dev/root {r}/root ext4 rw,noatime 0 0\n\
             /dev/mmcblk0p1 {r}/boot\\040space vfat ro,relatime 0 0\n\
             proc /proc proc rw 0 0\n\
             sysfs /sys sysfs rw 0 0\n\
             binfmt_misc /proc/sys/fs/binfmt_misc binfmt_misc rw 0 0\n\
             none {r}/none tmpfs rw 0 0\n\
             /dev/sr0 {r}/cd iso9660 ro 0 0\n\
             tmpfs {r}/a tmpfs rw 0 0\n\
             tmpfs {r}/b tmpfs rw 0 0\n{extra_mounts}"
        );
        std::fs::write(root.join("proc/self-mounts"), mounts).unwrap();
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::rename(root.join("proc/self-mounts"), root.join("proc/self/mounts")).unwrap();
        dir
    }

    #[test]
    fn partitions_are_in_kib_with_the_agent_tags_and_exclusions() {
        let dir = board("");
        let root_path = format!("{}/root", dir.path().display());
        // The board's root is a directory on a disk other processes write to, so the check's
        // reading is bracketed by one taken before and one after it.
        let percent = |[_, used, free, ..]: [u64; 5]| used as f64 / (used + free) as f64 * 100.0;
        let before = statvfs(&root_path).unwrap();
        let mut c = check(dir.path(), "{}", "{}");
        let out = run(&mut c, Instant::now());
        let after = statvfs(&root_path).unwrap();
        let totals = values(&out, "system.disk.total");
        let devices: Vec<String> = totals.iter().map(|(t, _)| t[0].clone()).collect();
        assert_eq!(
            devices,
            ["device:/dev/root", "device:/dev/mmcblk0p1", "device:tmpfs"],
            "proc, sysfs, binfmt_misc, none and iso9660 are excluded; the tmpfs mounts share one context"
        );

        let root = &totals[0];
        assert_eq!(root.0, ["device:/dev/root", "device_name:root", "team:iot"]);
        // A file system's size does not change with what is written to it.
        assert_eq!(root.1, before[0] as f64 / 1024.0);
        let utilized = tagged(&out, "system.disk.utilized", "device:/dev/root").unwrap();
        let in_use = tagged(&out, "system.disk.in_use", "device:/dev/root").unwrap();
        // Writers may also grow then shrink the disk between the readings: a tenth of a
        // percentage point of slack, far below any mistake in the formula.
        let (low, high) = (percent(before).min(percent(after)), percent(before).max(percent(after)));
        assert!(
            (low - 0.1..=high + 0.1).contains(&utilized),
            "utilized {utilized} outside the readings taken before and after it ({low}..={high})"
        );
        assert!((in_use * 100.0 - utilized).abs() < 1e-9 && (0.0..=1.0).contains(&in_use));

        let boot = &totals[1].0;
        assert_eq!(
            boot,
            &[
                "device:/dev/mmcblk0p1",
                "device_name:mmcblk0p1",
                "label:BOOT FS",
                "device_label:BOOT FS",
                "team:iot"
            ]
        );
        assert!(tagged(&out, "system.fs.inodes.total", "device:/dev/root").unwrap() > 0.0);
    }

    #[test]
    fn use_mount_filters_and_tag_options_apply() {
        let dir = board("");
        let r = dir.path().display().to_string();
        let instance = format!(
            "use_mount: true\ntag_by_filesystem: true\ntag_by_label: false\nfile_system_exclude: [TMPFS]\n\
             device_tag_re:\n  \"{r}/root\": \"role:os, tier:1\"\nservice_check_rw: true\n"
        );
        let mut c = check(dir.path(), &instance, "{}");
        let mut e = Emitter::new(0, 64);
        c.run(&mut e, Instant::now()).unwrap();
        let (series, checks) = e.into_parts();
        let totals = values(&series, "system.disk.total");
        assert_eq!(totals.len(), 2, "tmpfs excluded case-insensitively: {totals:?}");
        assert_eq!(
            totals[0].0,
            [
                "ext4",
                "filesystem:ext4",
                format!("device:{r}/root").as_str(),
                "device_name:root",
                "role:os",
                "tier:1",
                "team:iot"
            ]
        );
        assert_eq!(totals[1].0[2], format!("device:{r}/boot space"));
        let statuses: Vec<ServiceCheckStatus> = checks.iter().map(|c| c.status).collect();
        assert_eq!(statuses, [ServiceCheckStatus::Ok, ServiceCheckStatus::Critical]);

        // Includes keep only matching partitions.
        let mut c = check(dir.path(), "device_include: [mmcblk]", "{}");
        let out = run(&mut c, Instant::now());
        let devices: Vec<String> = values(&out, "system.disk.total")
            .into_iter()
            .map(|(t, _)| t[0].clone())
            .collect();
        assert_eq!(devices, ["device:/dev/mmcblk0p1"]);
    }

    #[test]
    fn global_exclusions_replace_the_defaults() {
        let dir = board("");
        // Setting the global file system list drops the iso9660 default.
        let mut c = check(dir.path(), "{}", "file_system_global_exclude: [tmpfs]");
        let out = run(&mut c, Instant::now());
        let devices: Vec<String> = values(&out, "system.disk.total")
            .into_iter()
            .map(|(t, _)| t[0].clone())
            .collect();
        assert_eq!(
            devices,
            ["device:/dev/root", "device:/dev/mmcblk0p1", "device:/dev/sr0"]
        );
        assert!(DiskCheck::new(
            &Roots::under(dir.path()),
            &DiskInitOptions::default(),
            serde_yaml::from_str("device_exclude: ['(']").unwrap(),
            Arc::from(Vec::new()),
            &serde_yaml::Value::Null,
            &serde_yaml::Value::Null,
        )
        .is_err());
    }

    #[test]
    fn only_physical_file_systems_without_include_all_devices() {
        let dir = board("");
        let mut c = check(dir.path(), "include_all_devices: false", "{}");
        let out = run(&mut c, Instant::now());
        assert_eq!(values(&out, "system.disk.total").len(), 2);
    }

    #[test]
    fn io_times_are_monotonic_counts_and_rates_per_device() {
        let dir = board("");
        let mut c = check(dir.path(), "{}", "{}");
        let t0 = Instant::now();
        let out = run(&mut c, t0);
        assert_eq!(tagged(&out, "system.disk.read_time", "device:mmcblk0"), None);
        assert!(values(&out, "system.disk.read_time").is_empty());

        let stats = dir.path().join("proc/diskstats");
        std::fs::write(&stats, "179 0 mmcblk0 110 5 2100 450 60 2 900 700 0 600 900\n").unwrap();
        let out = run(&mut c, t0 + Duration::from_secs(15));
        assert_eq!(tagged(&out, "system.disk.read_time", "device:mmcblk0"), Some(150.0));
        assert_eq!(
            tagged(&out, "system.disk.write_time", "device_name:mmcblk0"),
            Some(300.0)
        );
        assert_eq!(kind(&out, "system.disk.read_time"), Some(MetricType::Count));
        assert_eq!(tagged(&out, "system.disk.read_time_pct", "device:mmcblk0"), Some(1.0));
        assert_eq!(kind(&out, "system.disk.read_time_pct"), Some(MetricType::Gauge));
        assert!(values(&out, "system.disk.read_time")
            .iter()
            .all(|(t, _)| !t.contains(&"device:loop0".to_owned())));

        // A 32-bit kernel counter wrapped: the count is 0 and the rate is dropped, as in the Agent.
        std::fs::write(&stats, "179 0 mmcblk0 120 5 2200 20 70 2 950 800 0 650 950\n").unwrap();
        let out = run(&mut c, t0 + Duration::from_secs(30));
        assert_eq!(tagged(&out, "system.disk.read_time", "device:mmcblk0"), Some(0.0));
        assert_eq!(tagged(&out, "system.disk.read_time_pct", "device:mmcblk0"), None);
        assert_eq!(tagged(&out, "system.disk.write_time", "device:mmcblk0"), Some(100.0));
    }

    #[test]
    fn unreadable_mount_points_are_skipped_and_warned_once() {
        let dir = board("/dev/sdz1 /nonexistent/mount ext4 rw 0 0\n");
        let mut c = check(dir.path(), "{}", "{}");
        run(&mut c, Instant::now());
        run(&mut c, Instant::now());
        assert_eq!(c.warned.len(), 1);
    }

    #[test]
    fn mount_lines_and_escapes_parse() {
        assert_eq!(
            parse_mount_line("/dev/sda1 / ext4 rw 0 0"),
            Some(("/dev/sda1", "/", "ext4", "rw"))
        );
        assert_eq!(
            parse_mount_line("36 35 98:0 / /mnt rw,noatime master:1 - ext3 /dev/root rw,errors=continue"),
            Some(("/dev/root", "/mnt", "ext3", "rw,noatime"))
        );
        for (escaped, text) in [("/media/usb\\040key", "/media/usb key"), ("BOOT\\x20FS", "BOOT FS")] {
            assert_eq!(unescape(escaped), text, "{escaped}");
        }
        for (device, base) in [("", "."), ("/dev/sda1", "sda1"), ("tmpfs", "tmpfs")] {
            assert_eq!(base_name(device), base, "{device:?}");
        }
    }

    #[test]
    fn the_live_root_total_matches_statvfs() {
        let raw: serde_yaml::Value = serde_yaml::from_str("use_mount: true").unwrap();
        let mut c = DiskCheck::new(
            &Roots::default(),
            &DiskInitOptions::default(),
            crate::config::options(&raw).unwrap(),
            Arc::from(Vec::new()),
            &raw,
            &serde_yaml::Value::Null,
        )
        .unwrap();
        let out = run(&mut c, Instant::now());
        let got = tagged(&out, "system.disk.total", "device:/").expect("a series for /");
        // SAFETY: a zeroed statvfs is a valid output buffer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: "/" is NUL-terminated.
        assert_eq!(unsafe { libc::statvfs(c"/".as_ptr(), &mut st) }, 0);
        let want = st.f_blocks as f64 * st.f_frsize as f64 / 1024.0;
        assert_eq!(got, want);
    }
}
