//! The Datadog Agent's core system checks on Linux — `cpu`, `load`,
//! `memory`, `disk`, `io`, `network`, `uptime`, `file_handle` and `ntp` —
//! read from /proc, /sys and `statvfs` without running any command, with the
//! Agent's metric names, units, tags and configuration files.
//!
//! # Configuration
//!
//! As the Agent: `conf.d/<check>.d/conf.yaml` (`init_config:` +
//! `instances:`) under `confd_path` (default `/etc/datadog-agent/conf.d`),
//! with `conf.yaml.default` files that enable a check until a plain config
//! replaces them; a default check is disabled by removing or renaming its
//! `.default` file (see [`config`]). [`DEFAULT_CONFD`] holds the shipped
//! defaults — the IoT Agent's set: cpu, disk, io, load, memory, network, ntp
//! and uptime on, file_handle as an example. Every instance accepts
//! `min_collection_interval` (15 s; 900 s for ntp) and `tags`.
//! [`load_checks`] reads a confd directory and builds the instances.
//! [`ChecksSettings::read`] declares and reads `confd_path` and `procfs_path`
//! (where /proc is, for an agent in a container) through the shared reader.
//!
//! # Semantics
//!
//! Each module documents its metrics. The Agent's check sampler is
//! reproduced per check: a *rate* is the increase per second between two
//! runs, sent as a gauge, and dropped when the counter went down; a
//! *monotonic count* is the increase since the previous run, sent as a count
//! (0 after a counter reset); percentages (cpu) and iostat values (io) start
//! at the second run. Rates use the monotonic clock, so a wall-clock jump
//! (NTP on a board without RTC) does not distort them. Output is
//! [`CheckSeries`] and [`ServiceCheck`]s in a [`CheckBatch`] per run, with
//! the run's Unix timestamp, interval 0 and source type `System`
//! ([`SOURCE_TYPE_NAME`]).
//!
//! # Running
//!
//! [`ScheduledCheck::run_once`] runs one instance; [`spawn`] runs them all on
//! two dedicated threads (see [`runner`]) and sends their batches to a tokio
//! channel. Errors are logged once per distinct message and counted
//! ([`CheckStats`], in the telemetry registry as `adp_checks_runs_total` and
//! `adp_checks_errors_total` per instance once
//! [`ScheduledCheck::register_telemetry`] is called), never fatal. The
//! binary hands the batches to its encoder past the aggregator, so check
//! series keep their own timestamps.
//!
//! # Cost
//!
//! Paths are built once, files are read into buffers kept between runs,
//! per-device tags are built once and shared (`Arc<[String]>`) by every
//! series of the device, and the expensive `/proc/cpuinfo` is read again only
//! when the number of CPUs changes.
//!
//! # Missing
//!
//! - network: connection states (`collect_connection_state`, which needs
//!   `ss`/`netstat`), ethtool statistics, `conntrack -S`.
//! - disk: the 5 s `statvfs` timeout (a hung NFS mount stalls the
//!   `adp-checks` thread, not the pipeline), `create_mounts`, labels from
//!   `blkid`/`lsblk` (they come from `/dev/disk/by-label`), the `/dev/root`
//!   resolution (`resolve_root_device`).
//! - memory: `collect_memory_pressure`; without `MemAvailable` (kernels
//!   before 3.14) usable memory is Cached + MemFree, without gopsutil's
//!   zoneinfo estimate.
//! - ntp: `use_local_defined_servers` and the cloud providers' NTP servers.
//! - io: udev labels other than device-mapper names.
//! - Instance options `service`, `empty_default_hostname` and `loader`.
#![deny(missing_docs)]

mod check;
pub mod config;
pub mod cpu;
pub mod disk;
pub mod file_handle;
pub mod io;
pub mod load;
pub mod memory;
pub mod network;
pub mod ntp;
mod output;
mod procfs;
mod registry;
pub mod runner;
mod settings;
pub mod uptime;

#[cfg(test)]
mod testutil;

pub use check::{Check, CheckError};
pub use config::{
    load_confd, CheckConfig, ConfigError, DEFAULT_CONFD, DEFAULT_CONFD_PATH, DEFAULT_MIN_COLLECTION_INTERVAL,
};
pub use output::{CheckBatch, CheckSeries, Emitter, MetricType, ServiceCheck, ServiceCheckStatus, SOURCE_TYPE_NAME};
pub use procfs::{increment_with_overflow, Counter, Roots};
pub use registry::{build_checks, build_instance, load_checks, CHECK_NAMES};
pub use runner::{spawn, CheckStats, RunnerHandle, ScheduledCheck};
pub use settings::ChecksSettings;
