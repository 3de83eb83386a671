//! The `memory` check (`pkg/collector/corechecks/system/memory`), in MiB
//! (bytes / 1048576) as the Agent sends them.
//!
//! From `/proc/meminfo`, gauges:
//!
//! | metric | value |
//! |---|---|
//! | `system.mem.total` | MemTotal |
//! | `system.mem.free` | MemFree |
//! | `system.mem.used` | MemTotal − MemFree |
//! | `system.mem.usable` | MemAvailable (Cached + MemFree on kernels without it) |
//! | `system.mem.pct_usable` | usable / total (0–1) |
//! | `system.mem.cached` | Cached + SReclaimable (gopsutil's `Cached`) |
//! | `system.mem.buffered`, `shared`, `slab`, `slab_reclaimable`, `page_tables`, `commit_limit`, `committed_as` | Buffers, Shmem, Slab, SReclaimable, PageTables, CommitLimit, Committed_AS |
//! | `system.swap.cached` | SwapCached |
//! | `system.swap.total`, `free`, `used` | SwapTotal, SwapFree, total − free |
//! | `system.swap.pct_free` | free / total (0–1; 1 without swap) |
//!
//! and the rates `system.swap.swap_in` / `swap_out` in MiB/s from
//! `/proc/vmstat`'s `pswpin`/`pswpout`, counted in 4 KiB pages as gopsutil
//! does whatever the page size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{u64_of, vmstat_values, Counter, Reader, Roots};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Default, Clone, Copy)]
struct MemInfo {
    total: u64,
    free: u64,
    available: Option<u64>,
    buffers: u64,
    cached: u64,
    shared: u64,
    slab: u64,
    sreclaimable: u64,
    page_tables: u64,
    commit_limit: u64,
    committed_as: u64,
    swap_cached: u64,
    swap_total: u64,
    swap_free: u64,
}

fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = rest.split_ascii_whitespace().next().and_then(u64_of) else {
            continue;
        };
        let bytes = kb.saturating_mul(1024);
        match key {
            "MemTotal" => m.total = bytes,
            "MemFree" => m.free = bytes,
            "MemAvailable" => m.available = Some(bytes),
            "Buffers" => m.buffers = bytes,
            "Cached" => m.cached = bytes,
            "Shmem" => m.shared = bytes,
            "Slab" => m.slab = bytes,
            "SReclaimable" => m.sreclaimable = bytes,
            "PageTables" => m.page_tables = bytes,
            "CommitLimit" => m.commit_limit = bytes,
            "Committed_AS" => m.committed_as = bytes,
            "SwapCached" => m.swap_cached = bytes,
            "SwapTotal" => m.swap_total = bytes,
            "SwapFree" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// The memory check.
#[derive(Debug)]
pub struct MemoryCheck {
    meminfo: PathBuf,
    vmstat: PathBuf,
    reader: Reader,
    swap_in: Counter,
    swap_out: Counter,
    tags: Arc<[String]>,
}

impl MemoryCheck {
    /// A memory check reading `roots.proc`.
    pub fn new(roots: &Roots, tags: Arc<[String]>) -> Self {
        MemoryCheck {
            meminfo: roots.proc.join("meminfo"),
            vmstat: roots.proc.join("vmstat"),
            reader: Reader::with_capacity(4096),
            swap_in: Counter::default(),
            swap_out: Counter::default(),
            tags,
        }
    }
}

impl Check for MemoryCheck {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError> {
        let text = self.reader.read_required(&self.meminfo)?;
        let m = parse_meminfo(text);
        let tags = &self.tags;
        let mib = |b: u64| b as f64 / MIB;

        let cached = m.cached.saturating_add(m.sreclaimable);
        let available = m.available.unwrap_or_else(|| cached.saturating_add(m.free));
        out.gauge("system.mem.total", mib(m.total), tags);
        out.gauge("system.mem.free", mib(m.free), tags);
        out.gauge("system.mem.used", mib(m.total.saturating_sub(m.free)), tags);
        out.gauge("system.mem.usable", mib(available), tags);
        out.gauge("system.mem.pct_usable", available as f64 / m.total as f64, tags);
        out.gauge("system.mem.cached", mib(cached), tags);
        out.gauge("system.mem.buffered", mib(m.buffers), tags);
        out.gauge("system.mem.shared", mib(m.shared), tags);
        out.gauge("system.mem.slab", mib(m.slab), tags);
        out.gauge("system.mem.slab_reclaimable", mib(m.sreclaimable), tags);
        out.gauge("system.mem.page_tables", mib(m.page_tables), tags);
        out.gauge("system.mem.commit_limit", mib(m.commit_limit), tags);
        out.gauge("system.mem.committed_as", mib(m.committed_as), tags);
        out.gauge("system.swap.cached", mib(m.swap_cached), tags);

        let swap_used = m.swap_total.saturating_sub(m.swap_free);
        let used_percent = if m.swap_total == 0 {
            0.0
        } else {
            swap_used as f64 / m.swap_total as f64 * 100.0
        };
        out.gauge("system.swap.total", mib(m.swap_total), tags);
        out.gauge("system.swap.free", mib(m.swap_free), tags);
        out.gauge("system.swap.used", mib(swap_used), tags);
        out.gauge("system.swap.pct_free", (100.0 - used_percent) / 100.0, tags);

        // The swap counters are optional: a missing vmstat only loses the rates.
        if let Ok(vmstat) = self.reader.read(&self.vmstat) {
            let [pswpin, pswpout] = vmstat_values(vmstat, ["pswpin", "pswpout"]);
            let rate_mib = |c: &mut Counter, pages: Option<u64>| {
                pages
                    .and_then(|p| c.rate(p.saturating_mul(4096), now))
                    .map(|bytes_per_s| bytes_per_s / MIB)
            };
            out.rate("system.swap.swap_in", rate_mib(&mut self.swap_in, pswpin), tags);
            out.rate("system.swap.swap_out", rate_mib(&mut self.swap_out, pswpout), tags);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, run, value};
    use std::time::Duration;

    const MEMINFO: &str = "MemTotal:         948280 kB\nMemFree:          102400 kB\nMemAvailable:     512000 kB\n\
        Buffers:           20480 kB\nCached:           307200 kB\nSwapCached:         1024 kB\nShmem:              4096 kB\n\
        Slab:              40960 kB\nSReclaimable:      20480 kB\nPageTables:         2048 kB\nCommitLimit:      576536 kB\n\
        Committed_AS:     819200 kB\nSwapTotal:        102400 kB\nSwapFree:          76800 kB\n";

    #[test]
    fn memory_is_in_mebibytes_and_fractions() {
        let dir = fixture(&[("proc/meminfo", MEMINFO), ("proc/vmstat", "pswpin 100\npswpout 50\n")]);
        let roots = Roots::under(dir.path());
        let mut check = MemoryCheck::new(&roots, Arc::from(Vec::new()));
        let t0 = Instant::now();
        let out = run(&mut check, t0);
        assert_eq!(value(&out, "system.mem.total"), Some(948_280.0 / 1024.0));
        assert_eq!(value(&out, "system.mem.free"), Some(100.0));
        assert_eq!(value(&out, "system.mem.used"), Some((948_280.0 - 102_400.0) / 1024.0));
        assert_eq!(value(&out, "system.mem.usable"), Some(500.0));
        assert_eq!(value(&out, "system.mem.pct_usable"), Some(512_000.0 / 948_280.0));
        assert_eq!(value(&out, "system.mem.cached"), Some(320.0), "Cached + SReclaimable");
        assert_eq!(value(&out, "system.mem.slab_reclaimable"), Some(20.0));
        assert_eq!(value(&out, "system.swap.used"), Some(25.0));
        assert_eq!(value(&out, "system.swap.pct_free"), Some(0.75));
        assert_eq!(value(&out, "system.swap.cached"), Some(1.0));
        assert_eq!(value(&out, "system.swap.swap_in"), None, "a rate needs two samples");

        std::fs::write(roots.proc.join("vmstat"), "pswpin 2660\npswpout 50\n").unwrap();
        let out = run(&mut check, t0 + Duration::from_secs(10));
        // 2560 pages × 4 KiB = 10 MiB in 10 s.
        assert_eq!(value(&out, "system.swap.swap_in"), Some(1.0));
        assert_eq!(value(&out, "system.swap.swap_out"), Some(0.0));
    }

    #[test]
    fn no_swap_and_no_memavailable_follow_gopsutil() {
        let text =
            "MemTotal: 1024 kB\nMemFree: 256 kB\nCached: 256 kB\nSReclaimable: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
        let dir = fixture(&[("proc/meminfo", text)]);
        let mut check = MemoryCheck::new(&Roots::under(dir.path()), Arc::from(Vec::new()));
        let out = run(&mut check, Instant::now());
        assert_eq!(value(&out, "system.mem.usable"), Some(0.5), "Cached + MemFree");
        assert_eq!(value(&out, "system.swap.pct_free"), Some(1.0));
        assert_eq!(value(&out, "system.swap.swap_in"), None);
    }

    #[test]
    fn the_live_mem_total_is_memtotal_in_mib() {
        let mut check = MemoryCheck::new(&Roots::default(), Arc::from(Vec::new()));
        let got = value(&run(&mut check, Instant::now()), "system.mem.total").unwrap();
        let kb: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        let want = kb / 1024.0;
        assert!(
            (got - want).abs() <= want * 0.01,
            "system.mem.total = {got}, MemTotal = {want} MiB"
        );
    }
}
