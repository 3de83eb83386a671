//! From configuration files to runnable check instances.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_yaml::Value;
use tracing::{error, warn};

use crate::check::Check;
use crate::config::{common_options, load_confd, options, CheckConfig, DEFAULT_MIN_COLLECTION_INTERVAL};
use crate::cpu::CpuCheck;
use crate::disk::DiskCheck;
use crate::file_handle::FileHandleCheck;
use crate::io::IoCheck;
use crate::load::LoadCheck;
use crate::memory::MemoryCheck;
use crate::network::NetworkCheck;
use crate::ntp::{self, NtpCheck};
use crate::procfs::Roots;
use crate::runner::ScheduledCheck;
use crate::uptime::UptimeCheck;

/// The checks this crate implements.
pub const CHECK_NAMES: [&str; 9] = [
    "cpu",
    "disk",
    "file_handle",
    "io",
    "load",
    "memory",
    "network",
    "ntp",
    "uptime",
];

/// Builds one instance of check `name`; the error says which option is wrong.
pub fn build_instance(
    name: &str,
    init_config: &Value,
    instance: &Value,
    roots: &Roots,
) -> Result<(Box<dyn Check>, Duration), String> {
    let default_interval = if name == "ntp" {
        ntp::DEFAULT_INTERVAL
    } else {
        DEFAULT_MIN_COLLECTION_INTERVAL
    };
    let common = common_options(init_config, instance, default_interval)?;
    let tags = common.tags;
    let check: Box<dyn Check> = match name {
        "cpu" => Box::new(CpuCheck::new(roots, options(instance)?, tags)),
        "load" => Box::new(LoadCheck::new(roots, tags)),
        "memory" => Box::new(MemoryCheck::new(roots, tags)),
        "uptime" => Box::new(UptimeCheck::new(roots, tags)),
        "file_handle" => Box::new(FileHandleCheck::new(roots, tags)),
        "disk" => Box::new(DiskCheck::new(
            roots,
            &options(init_config)?,
            options(instance)?,
            tags,
            instance,
            init_config,
        )?),
        "io" => Box::new(IoCheck::new(roots, &options(init_config)?, tags)?),
        "network" => Box::new(NetworkCheck::new(roots, options(instance)?, tags)),
        "ntp" => Box::new(NtpCheck::new(options(instance)?, tags)),
        other => {
            return Err(format!(
                "'{other}' is not a check this agent runs (it runs {})",
                CHECK_NAMES.join(", ")
            ));
        }
    };
    Ok((check, common.interval))
}

/// Builds every instance of every configuration; instances that cannot be
/// built are logged (naming the file and the option) and skipped.
pub fn build_checks(configs: &[CheckConfig], roots: &Roots) -> Vec<ScheduledCheck> {
    let mut checks: Vec<ScheduledCheck> = Vec::new();
    for config in configs {
        if !CHECK_NAMES.contains(&config.name.as_str()) {
            warn!(
                "Ignoring {}: '{}' is not a check this agent runs (it runs {}); remove or rename the file to silence this warning.",
                config.source.display(),
                config.name,
                CHECK_NAMES.join(", ")
            );
            continue;
        }
        for (index, instance) in config.instances.iter().enumerate() {
            match build_instance(&config.name, &config.init_config, instance, roots) {
                Ok((check, interval)) => {
                    let n = checks.iter().filter(|c| c.name() == config.name).count();
                    let id: Arc<str> = if n == 0 {
                        config.name.as_str().into()
                    } else {
                        format!("{}:{n}", config.name).into()
                    };
                    checks.push(ScheduledCheck::new(id, check, interval));
                }
                Err(message) => error!(
                    "Unable to load check '{}' from {} (instance {index}): {message}",
                    config.name,
                    config.source.display()
                ),
            }
        }
    }
    checks
}

/// Reads `confd` (the Agent's `confd_path`) and builds its checks.
pub fn load_checks(confd: &Path, roots: &Roots) -> Vec<ScheduledCheck> {
    build_checks(&load_confd(confd), roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFD;

    #[test]
    fn the_shipped_defaults_build_the_iot_agent_checks() {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in DEFAULT_CONFD {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let checks = load_checks(dir.path(), &Roots::default());
        let mut names: Vec<(&str, u64)> = checks.iter().map(|c| (c.name(), c.interval().as_secs())).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                ("cpu", 15),
                ("disk", 15),
                ("io", 15),
                ("load", 15),
                ("memory", 15),
                ("network", 15),
                ("ntp", 900),
                ("uptime", 15)
            ]
        );
    }

    #[test]
    fn bad_instances_and_unknown_checks_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "disk.d/conf.yaml",
            "instances:\n  - device_exclude: ['(']\n  - min_collection_interval: 30\n",
        );
        write("systemd.d/conf.yaml", "instances:\n  - {}\n");
        write(
            "cpu.d/conf.yaml",
            "instances:\n  - report_total_percpu: maybe\n  - {}\n  - tags: [a:b]\n",
        );
        let checks = load_checks(dir.path(), &Roots::default());
        let ids: Vec<&str> = checks.iter().map(|c| c.id()).collect();
        assert_eq!(ids, ["cpu", "cpu:1", "disk"]);
        assert_eq!(checks[2].interval(), Duration::from_secs(30));
        let err = build_instance(
            "cpu",
            &Value::Null,
            &serde_yaml::from_str("report_total_percpu: maybe").unwrap(),
            &Roots::default(),
        )
        .err()
        .unwrap();
        assert!(err.contains("report_total_percpu"), "{err}");
    }
}
