//! The `io` check (`pkg/collector/corechecks/system/disk/io`), per block
//! device of `/proc/diskstats` with activity, tagged `device:<name>`,
//! `device_name:<name>` and, for device-mapper devices, `device_label:<dm
//! name>`:
//!
//! - rates `system.io.{r_s,w_s,rrqm_s,wrqm_s}` (requests and merged
//!   requests per second);
//! - from the second run, gauges rounded to 2 decimals as `iostat` computes
//!   them: `rkb_s`, `wkb_s`, `avg_rq_sz` (sectors), `await`, `r_await`,
//!   `w_await` (ms), `avg_q_sz`, `svctm` (ms), `util` (%). Counter increases
//!   wrap at 2³² when the previous value fit in 32 bits (`unsigned long` on a
//!   32-bit kernel), as the Agent's `incrementWithOverflow`;
//! - untagged rates `system.io.block_in`/`block_out` from `/proc/vmstat`'s
//!   `pgpgin`/`pgpgout` × 4096, as gopsutil reports them.
//!
//! `device_exclude_re` in `init_config` skips devices by regular expression.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use regex_lite::Regex;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{diskstats_line, increment_with_overflow, vmstat_values, Counter, Reader, Roots};

const SECTOR: u64 = 512;
const KB: f64 = 1024.0;

/// `io` `init_config` options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IoInitOptions {
    /// Skip devices whose name matches this regular expression.
    #[serde(default)]
    pub device_exclude_re: Option<String>,
    /// Deprecated name of `device_exclude_re`.
    #[serde(default)]
    pub device_blacklist_re: Option<String>,
}

/// The counters of one device line, in gopsutil's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    read_count: u64,
    merged_read_count: u64,
    read_bytes: u64,
    read_time: u64,
    write_count: u64,
    merged_write_count: u64,
    write_bytes: u64,
    write_time: u64,
    io_time: u64,
    weighted_io: u64,
}

fn parse_stats(fields: &[u64; 11]) -> Stats {
    Stats {
        read_count: fields[0],
        merged_read_count: fields[1],
        read_bytes: fields[2].wrapping_mul(SECTOR),
        read_time: fields[3],
        write_count: fields[4],
        merged_write_count: fields[5],
        write_bytes: fields[6].wrapping_mul(SECTOR),
        write_time: fields[7],
        io_time: fields[9],
        weighted_io: fields[10],
    }
}

#[derive(Debug)]
struct Device {
    name: String,
    tags: Arc<[String]>,
    last: Option<Stats>,
    rates: [Counter; 4],
    seen: bool,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The io check.
#[derive(Debug)]
pub struct IoCheck {
    diskstats: PathBuf,
    vmstat: PathBuf,
    sys_block: PathBuf,
    reader: Reader,
    exclude: Option<Regex>,
    devices: Vec<Device>,
    last_run: Option<Instant>,
    block_in: Counter,
    block_out: Counter,
    tags: Arc<[String]>,
}

impl IoCheck {
    /// An io check reading `roots.proc` (and `roots.sys` for device-mapper names).
    pub fn new(roots: &Roots, init: &IoInitOptions, tags: Arc<[String]>) -> Result<Self, String> {
        let expr = match (&init.device_exclude_re, &init.device_blacklist_re) {
            (Some(e), _) => Some(e),
            (None, Some(e)) => {
                warn!("'device_blacklist_re' has been deprecated, use 'device_exclude_re' instead");
                Some(e)
            }
            (None, None) => None,
        };
        let exclude = match expr.filter(|e| !e.is_empty()) {
            Some(e) => Some(
                Regex::new(e)
                    .map_err(|err| format!("`device_exclude_re: {e}` is not a valid regular expression: {err}"))?,
            ),
            None => None,
        };
        Ok(IoCheck {
            diskstats: roots.proc.join("diskstats"),
            vmstat: roots.proc.join("vmstat"),
            sys_block: roots.sys.join("block"),
            reader: Reader::with_capacity(4096),
            exclude,
            devices: Vec::new(),
            last_run: None,
            block_in: Counter::default(),
            block_out: Counter::default(),
            tags,
        })
    }

    fn device_tags(&self, name: &str) -> Arc<[String]> {
        let mut tags = Vec::with_capacity(self.tags.len() + 3);
        tags.push(format!("device:{name}"));
        tags.push(format!("device_name:{name}"));
        if let Ok(label) = std::fs::read_to_string(self.sys_block.join(name).join("dm/name")) {
            let label = label.trim();
            if !label.is_empty() {
                tags.push(format!("device_label:{label}"));
            }
        }
        tags.extend(self.tags.iter().cloned());
        tags.into()
    }
}

impl Check for IoCheck {
    fn name(&self) -> &'static str {
        "io"
    }

    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        let mut reader = std::mem::take(&mut self.reader);
        let text = reader.read_required(&self.diskstats)?;
        let delta_ms = self
            .last_run
            .map(|last| now.saturating_duration_since(last).as_secs_f64() * 1000.0);
        for d in &mut self.devices {
            d.seen = false;
        }
        for line in text.lines() {
            let Some((name, raw)) = diskstats_line(line) else {
                continue;
            };
            if self.exclude.as_ref().is_some_and(|re| re.is_match(name)) {
                continue;
            }
            let stats = parse_stats(&raw);
            let index = match self.devices.iter().position(|d| d.name == name) {
                Some(i) => i,
                None => {
                    let tags = self.device_tags(name);
                    self.devices.push(Device {
                        name: name.to_owned(),
                        tags,
                        last: None,
                        rates: Default::default(),
                        seen: false,
                    });
                    self.devices.len() - 1
                }
            };
            let d = &mut self.devices[index];
            d.seen = true;
            let tags = &d.tags;
            let [r, w, rm, wm] = &mut d.rates;
            out.rate("system.io.r_s", r.rate(stats.read_count, now), tags);
            out.rate("system.io.w_s", w.rate(stats.write_count, now), tags);
            out.rate("system.io.rrqm_s", rm.rate(stats.merged_read_count, now), tags);
            out.rate("system.io.wrqm_s", wm.rate(stats.merged_write_count, now), tags);

            let last = d.last.replace(stats);
            let (Some(delta), Some(last)) = (delta_ms, last) else {
                if delta_ms.is_some() {
                    debug!("New device stats (possible hotplug) - full stats unavailable this iteration.");
                }
                continue;
            };
            if delta == 0.0 {
                debug!("No delta to compute - skipping.");
                continue;
            }
            let inc = |cur: u64, prev: u64| increment_with_overflow(cur, prev) as f64;
            let delta_s = delta / 1000.0;
            let read_bytes = inc(stats.read_bytes, last.read_bytes);
            let write_bytes = inc(stats.write_bytes, last.write_bytes);
            let reads = inc(stats.read_count, last.read_count);
            let writes = inc(stats.write_count, last.write_count);
            let read_time = inc(stats.read_time, last.read_time);
            let write_time = inc(stats.write_time, last.write_time);
            let ios = reads + writes;
            let r_await = if reads != 0.0 { read_time / reads } else { 0.0 };
            let w_await = if writes != 0.0 { write_time / writes } else { 0.0 };
            let (avg_rq_sz, await_) = if ios != 0.0 {
                (
                    (read_bytes + write_bytes) / SECTOR as f64 / ios,
                    (read_time + write_time) / ios,
                )
            } else {
                (0.0, 0.0)
            };
            // sysstat's interval in 1/100 s.
            let itv = delta / 10.0;
            let tput = ios * 100.0 / itv;
            let util = inc(stats.io_time, last.io_time) / itv * 100.0;
            let svctm = if tput != 0.0 { util / tput } else { 0.0 };
            out.gauge("system.io.rkb_s", round2(read_bytes / KB / delta_s), tags);
            out.gauge("system.io.wkb_s", round2(write_bytes / KB / delta_s), tags);
            out.gauge("system.io.avg_rq_sz", round2(avg_rq_sz), tags);
            out.gauge("system.io.await", round2(await_), tags);
            out.gauge("system.io.r_await", round2(r_await), tags);
            out.gauge("system.io.w_await", round2(w_await), tags);
            // The Agent divides the weighted time (ms) by 1024, not by 1000; kept.
            out.gauge(
                "system.io.avg_q_sz",
                round2(inc(stats.weighted_io, last.weighted_io) / KB / delta_s),
                tags,
            );
            out.gauge("system.io.svctm", round2(svctm), tags);
            out.gauge("system.io.util", round2(util / 10.0), tags);
        }
        // Devices that disappeared start afresh if they come back, as the Agent keeps only the last map.
        self.devices.retain(|d| d.seen);

        let vmstat = reader.read(&self.vmstat).map_err(|e| CheckError::read(&self.vmstat, e));
        match vmstat {
            Ok(text) => {
                let [pgin, pgout] = vmstat_values(text, ["pgpgin", "pgpgout"]);
                out.rate(
                    "system.io.block_in",
                    pgin.and_then(|v| self.block_in.rate(v.saturating_mul(4096), now)),
                    &self.tags,
                );
                out.rate(
                    "system.io.block_out",
                    pgout.and_then(|v| self.block_out.rate(v.saturating_mul(4096), now)),
                    &self.tags,
                );
            }
            Err(e) => warn!("system.IOCheck: could not retrieve I/O block stats: {e}"),
        }
        self.reader = reader;
        self.last_run = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, run, tagged, values};
    use std::time::Duration;

    fn line(name: &str, f: [u64; 11]) -> String {
        format!("   8       0 {name} {}\n", f.map(|v| v.to_string()).join(" "))
    }

    #[test]
    fn iostat_values_from_two_runs() {
        let dir = fixture(&[
            (
                "proc/diskstats",
                &(line("sda", [100, 10, 2000, 500, 50, 5, 1000, 250, 0, 400, 800]) + &line("ram0", [0; 11])),
            ),
            ("proc/vmstat", "pgpgin 1000\npgpgout 2000\n"),
            ("sys/block/dm-0/dm/name", "vg-root\n"),
        ]);
        let roots = Roots::under(dir.path());
        let mut check = IoCheck::new(&roots, &IoInitOptions::default(), Arc::from(Vec::new())).unwrap();
        let t0 = Instant::now();
        let out = run(&mut check, t0);
        assert!(out.is_empty(), "rates and iostat values need two runs: {out:?}");

        // 10 s later: +200 reads (+20 merged), +4096 sectors read, +600 ms reading;
        // +100 writes, +2048 sectors written, +400 ms writing; +5000 ms busy; +10240 weighted.
        std::fs::write(
            roots.proc.join("diskstats"),
            line("sda", [300, 30, 6096, 1100, 150, 5, 3048, 650, 0, 5400, 11040])
                + &line("dm-0", [10, 0, 80, 4, 0, 0, 0, 0, 0, 4, 4]),
        )
        .unwrap();
        std::fs::write(roots.proc.join("vmstat"), "pgpgin 1100\npgpgout 2000\n").unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(10));
        let get = |n: &str| tagged(&out, n, "device:sda").unwrap();
        assert_eq!(get("system.io.r_s"), 20.0);
        assert_eq!(get("system.io.w_s"), 10.0);
        assert_eq!(get("system.io.rrqm_s"), 2.0);
        assert_eq!(get("system.io.wrqm_s"), 0.0);
        assert_eq!(get("system.io.rkb_s"), 204.8);
        assert_eq!(get("system.io.wkb_s"), 102.4);
        assert_eq!(get("system.io.avg_rq_sz"), 20.48);
        assert_eq!(get("system.io.r_await"), 3.0);
        assert_eq!(get("system.io.w_await"), 4.0);
        assert_eq!(get("system.io.await"), round2(1000.0 / 300.0));
        assert_eq!(get("system.io.avg_q_sz"), 1.0);
        assert_eq!(get("system.io.util"), 50.0);
        assert_eq!(get("system.io.svctm"), round2(500.0 / 30.0));
        assert_eq!(values(&out, "system.io.r_s").len(), 1, "dm-0 is new: no rate yet");
        assert_eq!(tagged(&out, "system.io.block_in", "device:sda"), None);
        assert_eq!(values(&out, "system.io.block_in"), [(vec![], 100.0 * 4096.0 / 10.0)]);

        let dm = check.devices.iter().find(|d| d.name == "dm-0").unwrap();
        assert_eq!(&*dm.tags, ["device:dm-0", "device_name:dm-0", "device_label:vg-root"]);
    }

    #[test]
    fn counters_that_wrapped_at_32_bits_give_the_true_increase() {
        let dir = fixture(&[
            (
                "proc/diskstats",
                &line(
                    "mmcblk0",
                    [
                        4_294_967_000,
                        0,
                        4_294_967_200,
                        4_294_967_290,
                        1,
                        0,
                        8,
                        1,
                        0,
                        4_294_967_000,
                        4_294_967_290,
                    ],
                ),
            ),
            ("proc/vmstat", ""),
        ]);
        let roots = Roots::under(dir.path());
        let mut check = IoCheck::new(&roots, &IoInitOptions::default(), Arc::from(Vec::new())).unwrap();
        let t0 = Instant::now();
        run(&mut check, t0);
        // After the wrap: reads +396, read time +10 ms, busy time +1000 ms.
        std::fs::write(
            roots.proc.join("diskstats"),
            line("mmcblk0", [100, 0, 100, 4, 1, 0, 8, 1, 0, 704, 4]),
        )
        .unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(10));
        let get = |n: &str| tagged(&out, n, "device:mmcblk0").unwrap();
        assert_eq!(get("system.io.r_await"), round2(10.0 / 396.0));
        assert_eq!(get("system.io.util"), 10.0);
        // The request rate is a plain rate: the Agent drops it when the counter went down.
        assert_eq!(tagged(&out, "system.io.r_s", "device:mmcblk0"), None);
    }

    #[test]
    fn excluded_devices_are_skipped() {
        let dir = fixture(&[
            ("proc/diskstats", &(line("loop0", [1; 11]) + &line("sda", [1; 11]))),
            ("proc/vmstat", ""),
        ]);
        let init = IoInitOptions {
            device_exclude_re: Some("^loop[0-9]+".into()),
            device_blacklist_re: None,
        };
        let mut check = IoCheck::new(&Roots::under(dir.path()), &init, Arc::from(Vec::new())).unwrap();
        let t0 = Instant::now();
        run(&mut check, t0);
        let out = run(&mut check, t0 + Duration::from_secs(1));
        assert!(tagged(&out, "system.io.r_s", "device:loop0").is_none());
        assert!(tagged(&out, "system.io.r_s", "device:sda").is_some());
        assert!(IoCheck::new(
            &Roots::under(dir.path()),
            &IoInitOptions {
                device_exclude_re: Some("(".into()),
                device_blacklist_re: None
            },
            Arc::from(Vec::new())
        )
        .is_err());
    }

    #[test]
    fn the_live_diskstats_are_read() {
        let mut check = IoCheck::new(&Roots::default(), &IoInitOptions::default(), Arc::from(Vec::new())).unwrap();
        let t0 = Instant::now();
        run(&mut check, t0);
        let out = run(&mut check, t0 + Duration::from_secs(1));
        assert!(out.iter().any(|s| s.name == "system.io.block_in"));
    }
}
