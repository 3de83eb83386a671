//! The `cpu` check (`pkg/collector/corechecks/system/cpu/cpu`).
//!
//! From `/proc/stat`:
//!
//! - `system.cpu.context_switches`: monotonic count of `ctxt`.
//! - `system.cpu.num_cores`: gauge, the logical CPUs (`processor` entries of
//!   `/proc/cpuinfo`, which gopsutil counts as one core each). cpuinfo is
//!   read again only when the number of `cpuN` lines of `/proc/stat` changes:
//!   reading it can cost milliseconds on x86 (frequency sampling).
//! - From the second run, percentages of the time since the previous run,
//!   averaged over the CPUs: `system.cpu.user` (user + nice), `system`
//!   (system + irq + softirq), `interrupt` (irq + softirq), `iowait`, `idle`,
//!   `stolen`, `guest`; the total time is user + nice + system + idle +
//!   iowait + irq + softirq + steal.
//! - `system.cpu.{user,nice,system,idle,iowait,irq,softirq,steal,guest,guestnice}.total`:
//!   gauges of the cumulative seconds, tagged `core:cpu-total`, or per CPU
//!   (`core:cpu0`, …) with `report_total_percpu: true`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{count_processors, malformed, u64_of, Counter, Reader, Roots};

const FIELDS: usize = 10;
const TOTAL_NAMES: [&str; FIELDS] = [
    "system.cpu.user.total",
    "system.cpu.nice.total",
    "system.cpu.system.total",
    "system.cpu.idle.total",
    "system.cpu.iowait.total",
    "system.cpu.irq.total",
    "system.cpu.softirq.total",
    "system.cpu.steal.total",
    "system.cpu.guest.total",
    "system.cpu.guestnice.total",
];
const USER: usize = 0;
const NICE: usize = 1;
const SYSTEM: usize = 2;
const IDLE: usize = 3;
const IOWAIT: usize = 4;
const IRQ: usize = 5;
const SOFTIRQ: usize = 6;
const STEAL: usize = 7;
const GUEST: usize = 8;

/// `cpu` instance options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CpuOptions {
    /// `report_total_percpu`: send the `.total` gauges per CPU. Defaults to false.
    #[serde(default)]
    pub report_total_percpu: bool,
}

/// The cpu check.
#[derive(Debug)]
pub struct CpuCheck {
    options: CpuOptions,
    stat_path: PathBuf,
    cpuinfo_path: PathBuf,
    reader: Reader,
    tags: Arc<[String]>,
    total_tags: Arc<[String]>,
    core_tags: Vec<Arc<[String]>>,
    per_cpu: Vec<(usize, [u64; FIELDS])>,
    ticks_per_second: f64,
    num_cores: u32,
    stat_cpu_lines: usize,
    last: Option<[u64; FIELDS]>,
    ctxt: Counter,
}

impl CpuCheck {
    /// A cpu check reading `roots.proc`, with the instance's tags.
    pub fn new(roots: &Roots, options: CpuOptions, tags: Arc<[String]>) -> Self {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        CpuCheck {
            options,
            stat_path: roots.proc.join("stat"),
            cpuinfo_path: roots.proc.join("cpuinfo"),
            reader: Reader::with_capacity(4096),
            total_tags: with_core("cpu-total", &tags),
            tags,
            core_tags: Vec::new(),
            per_cpu: Vec::new(),
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            num_cores: 0,
            stat_cpu_lines: usize::MAX,
            last: None,
            ctxt: Counter::default(),
        }
    }
}

fn with_core(core: &str, tags: &[String]) -> Arc<[String]> {
    let mut all = Vec::with_capacity(tags.len() + 1);
    all.push(format!("core:{core}"));
    all.extend(tags.iter().cloned());
    all.into()
}

fn parse_cpu_line(rest: &str) -> [u64; FIELDS] {
    let mut values = [0u64; FIELDS];
    for (slot, field) in values.iter_mut().zip(rest.split_ascii_whitespace()) {
        *slot = u64_of(field).unwrap_or(0);
    }
    values
}

/// A signed difference of two counters (iowait may go backwards, and the
/// Agent lets the percentage go negative then).
fn diff(a: u64, b: u64) -> f64 {
    (i128::from(a) - i128::from(b)) as f64
}

fn busy(t: &[u64; FIELDS]) -> u64 {
    [USER, NICE, SYSTEM, IDLE, IOWAIT, IRQ, SOFTIRQ, STEAL]
        .iter()
        .map(|&i| t[i])
        .fold(0u64, u64::wrapping_add)
}

impl Check for CpuCheck {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        let text = self.reader.read_required(&self.stat_path)?;
        let mut total = None;
        let mut ctxt = None;
        self.per_cpu.clear();
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(' ') else {
                continue;
            };
            if key == "cpu" {
                total = Some(parse_cpu_line(rest));
            } else if let Some(index) = key.strip_prefix("cpu").and_then(|n| n.parse::<usize>().ok()) {
                let values = if self.options.report_total_percpu {
                    parse_cpu_line(rest)
                } else {
                    [0; FIELDS]
                };
                self.per_cpu.push((index, values));
            } else if key == "ctxt" {
                ctxt = u64_of(rest.trim());
            }
        }
        let Some(total) = total else {
            return Err(malformed(&self.stat_path, "no `cpu` line"));
        };

        let tags = Arc::clone(&self.tags);
        if let Some(ctxt) = ctxt {
            out.monotonic("system.cpu.context_switches", self.ctxt.delta(ctxt, now), &tags);
        }

        if self.per_cpu.len() != self.stat_cpu_lines {
            let cpuinfo = self.reader.read_required(&self.cpuinfo_path)?;
            self.num_cores = count_processors(cpuinfo);
            self.stat_cpu_lines = self.per_cpu.len();
        }
        let cores = f64::from(self.num_cores);
        out.gauge("system.cpu.num_cores", cores, &tags);

        if let Some(last) = self.last {
            let elapsed = diff(busy(&total), busy(&last)) / cores;
            if elapsed > 0.0 && cores > 0.0 {
                let to_percent = 100.0 / elapsed;
                let pct = |fields: &[usize]| {
                    let d: f64 = fields.iter().map(|&i| diff(total[i], last[i])).sum();
                    d / cores * to_percent
                };
                out.gauge("system.cpu.user", pct(&[USER, NICE]), &tags);
                out.gauge("system.cpu.system", pct(&[SYSTEM, IRQ, SOFTIRQ]), &tags);
                out.gauge("system.cpu.interrupt", pct(&[IRQ, SOFTIRQ]), &tags);
                out.gauge("system.cpu.iowait", pct(&[IOWAIT]), &tags);
                out.gauge("system.cpu.idle", pct(&[IDLE]), &tags);
                out.gauge("system.cpu.stolen", pct(&[STEAL]), &tags);
                out.gauge("system.cpu.guest", pct(&[GUEST]), &tags);
            }
        }
        self.last = Some(total);

        let ticks = self.ticks_per_second;
        if self.options.report_total_percpu {
            for &(index, values) in &self.per_cpu {
                while self.core_tags.len() <= index {
                    let n = self.core_tags.len();
                    self.core_tags.push(with_core(&format!("cpu{n}"), &self.tags));
                }
                let core_tags = &self.core_tags[index];
                for (name, v) in TOTAL_NAMES.iter().zip(values) {
                    out.gauge(*name, v as f64 / ticks, core_tags);
                }
            }
        } else {
            for (name, v) in TOTAL_NAMES.iter().zip(total) {
                out.gauge(*name, v as f64 / ticks, &self.total_tags);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, value, values};

    const CPUINFO: &str = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n\nprocessor\t: 1\n\n\
                           processor\t: 2\n\nprocessor\t: 3\n\nHardware\t: BCM2835\n";

    fn stat(total: [u64; 10], ctxt: u64) -> String {
        let line = |name: &str, v: &[u64; 10]| {
            format!(
                "{name} {}\n",
                v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
            )
        };
        let quarter = total.map(|v| v / 4);
        let mut s = line("cpu ", &total);
        for i in 0..4 {
            s += &line(&format!("cpu{i}"), &quarter);
        }
        s + &format!("intr 1 2 3\nctxt {ctxt}\nbtime 1700000000\nprocesses 10\n")
    }

    #[test]
    fn percentages_come_from_the_second_run() {
        let dir = fixture(&[
            ("proc/cpuinfo", CPUINFO),
            ("proc/stat", &stat([100, 20, 50, 800, 10, 5, 5, 0, 0, 0], 1000)),
        ]);
        let roots = Roots::under(dir.path());
        let mut check = CpuCheck::new(&roots, CpuOptions::default(), Arc::from(vec!["team:iot".to_owned()]));
        let t0 = Instant::now();
        let first = crate::testutil::run(&mut check, t0);
        assert_eq!(value(&first, "system.cpu.num_cores"), Some(4.0));
        assert_eq!(value(&first, "system.cpu.user"), None, "no percentage on the first run");
        assert_eq!(
            value(&first, "system.cpu.context_switches"),
            None,
            "a monotonic count needs two samples"
        );
        let total_user = first.iter().find(|s| s.name == "system.cpu.user.total").unwrap();
        assert_eq!(&*total_user.tags, ["core:cpu-total".to_owned(), "team:iot".to_owned()]);

        // 4 cores; +400 ticks in all: user+nice +100, system +40, irq+softirq +20,
        // iowait +20, idle +200, steal +20 → per core 100 ticks.
        std::fs::write(
            roots.proc.join("stat"),
            stat([180, 40, 90, 1000, 30, 15, 15, 20, 0, 0], 1600),
        )
        .unwrap();
        let second = crate::testutil::run(&mut check, t0 + std::time::Duration::from_secs(15));
        let close = |name: &str, want: f64| {
            let got = value(&second, name).unwrap();
            assert!((got - want).abs() < 1e-9, "{name}: {got} != {want}");
        };
        close("system.cpu.user", 25.0);
        close("system.cpu.system", 15.0);
        close("system.cpu.interrupt", 5.0);
        close("system.cpu.iowait", 5.0);
        close("system.cpu.idle", 50.0);
        close("system.cpu.stolen", 5.0);
        close("system.cpu.guest", 0.0);
        assert_eq!(value(&second, "system.cpu.context_switches"), Some(600.0));
        let ticks = check.ticks_per_second;
        close("system.cpu.idle.total", 1000.0 / ticks);
    }

    #[test]
    fn per_cpu_totals_are_tagged_by_core() {
        let dir = fixture(&[
            ("proc/cpuinfo", CPUINFO),
            ("proc/stat", &stat([400, 0, 0, 400, 0, 0, 0, 0, 0, 0], 1)),
        ]);
        let mut check = CpuCheck::new(
            &Roots::under(dir.path()),
            CpuOptions {
                report_total_percpu: true,
            },
            Arc::from(Vec::new()),
        );
        let out = crate::testutil::run(&mut check, Instant::now());
        let user = values(&out, "system.cpu.user.total");
        assert_eq!(user.len(), 4);
        let cores: Vec<&str> = user.iter().map(|(tags, _)| tags[0].as_str()).collect();
        assert_eq!(cores, ["core:cpu0", "core:cpu1", "core:cpu2", "core:cpu3"]);
    }

    #[test]
    fn a_stat_file_without_a_cpu_line_is_an_error() {
        let dir = fixture(&[("proc/cpuinfo", CPUINFO), ("proc/stat", "intr 1\n")]);
        let mut check = CpuCheck::new(&Roots::under(dir.path()), CpuOptions::default(), Arc::from(Vec::new()));
        let mut out = Emitter::new(0, 8);
        let err = check.run(&mut out, Instant::now()).unwrap_err();
        assert!(format!("{err:#}").contains("stat"), "{err}");
    }

    #[test]
    fn the_live_system_reports_its_cores_and_busy_time() {
        let mut check = CpuCheck::new(&Roots::default(), CpuOptions::default(), Arc::from(Vec::new()));
        let t0 = Instant::now();
        let first = crate::testutil::run(&mut check, t0);
        let cores = value(&first, "system.cpu.num_cores").unwrap();
        assert!(cores >= 1.0);
        // Burn a little CPU so that the second run has ticks to divide.
        let until = Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        let second = crate::testutil::run(&mut check, Instant::now());
        let sum: f64 = ["user", "system", "iowait", "idle", "stolen"]
            .iter()
            .map(|m| value(&second, &format!("system.cpu.{m}")).unwrap())
            .sum();
        assert!((sum - 100.0).abs() < 1.0, "user+system+iowait+idle+stolen = {sum}");
    }
}
