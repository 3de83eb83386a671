//! What the default checks cost per round: CPU time (user + system, from
//! `getrusage`) and the resident memory they add, on the live system.
//!
//! ```text
//! cargo run --release -p adp-checks --example cost [rounds]
//! ```
//!
//! ntp is left out: it waits on the network, not on the CPU.

use std::time::Instant;

fn cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is a valid output buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("adp-checks-cost-{}", std::process::id()));
    for (rel, text) in adp_checks::DEFAULT_CONFD {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::remove_file(dir.join("ntp.d/conf.yaml.default")).unwrap();

    let rss_before = rss_kib();
    let mut checks = adp_checks::load_checks(&dir, &adp_checks::Roots::default());
    let mut series = 0usize;
    // Warm up: the first runs build tags and buffers.
    for c in &mut checks {
        series += c.run_once().series.len();
    }
    let rss_warm = rss_kib();
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    for _ in 0..rounds {
        for c in &mut checks {
            series += c.run_once().series.len();
        }
    }
    let per_round = (cpu_seconds() - cpu0) / f64::from(rounds);
    let rss_after = rss_kib();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "checks: {}",
        checks.iter().map(|c| c.id()).collect::<Vec<_>>().join(", ")
    );
    println!("series per round: {}", series / (rounds as usize + 1));
    println!(
        "cpu per round: {:.3} ms (wall {:.3} ms)",
        per_round * 1e3,
        wall0.elapsed().as_secs_f64() * 1e3 / f64::from(rounds)
    );
    println!(
        "share of one core at a 15 s interval: {:.4} %",
        per_round / 15.0 * 100.0
    );
    println!(
        "rss: {rss_before} KiB before, {rss_warm} KiB after the first round, {rss_after} KiB after {rounds} rounds"
    );
}
