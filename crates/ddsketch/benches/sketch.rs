//! Throughput of the sketch's hot operations, without a benchmark framework.
//!
//! Run with `cargo bench -p ddsketch --bench sketch`; prints nanoseconds per
//! operation.

use std::hint::black_box;
use std::time::Instant;

use ddsketch::AgentSketch;

/// xorshift64*, for reproducible inputs.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let u = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            // Log-uniform over six decades: about 900 distinct keys.
            10f64.powf(u * 6.0)
        })
        .collect()
}

fn report(name: &str, ops: usize, start: Instant) {
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    println!("{name:<40} {ns:>8.1} ns/op");
}

fn main() {
    let input = values(1_000_000, 0x9E37_79B9_7F4A_7C15);

    let start = Instant::now();
    let mut s = AgentSketch::new();
    for &v in &input {
        s.insert(v);
    }
    report("insert (1M samples, ~900 keys)", input.len(), start);
    black_box(&s);

    let start = Instant::now();
    let mut w = AgentSketch::new();
    for &v in &input {
        w.insert_sampled(v, 0.25);
    }
    report("insert_sampled (rate 0.25)", input.len(), start);
    black_box(&w);

    let parts: Vec<AgentSketch> = input
        .chunks(1000)
        .map(|c| {
            let mut s = AgentSketch::new();
            c.iter().for_each(|&v| s.insert(v));
            s
        })
        .collect();
    let start = Instant::now();
    let mut m = AgentSketch::new();
    for p in &parts {
        m.merge(p);
    }
    report("merge (1000 sketches of 1000 samples)", parts.len(), start);
    black_box(&m);

    let start = Instant::now();
    let mut acc = 0.0;
    for i in 0..10_000 {
        acc += s.quantile(f64::from(i % 100) / 100.0).unwrap_or(0.0);
    }
    report("quantile", 10_000, start);
    black_box(acc);
    println!("bins: {}", s.bin_count());
}
