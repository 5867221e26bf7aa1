//! The ferrax side of `benches/compare.sh`: times every workload of
//! `benches/workloads` (or those whose name contains an argument) and prints one JSON
//! object per line: `{"name", "median_s", "runs", "flops" | "bytes"}`.
//!
//! Each workload is run once to warm up, then repeatedly for about two seconds (at least
//! 10 and at most 200 runs); the median is reported.

mod workloads;

use std::time::{Duration, Instant};

use workloads::Work;

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for w in workloads::all() {
        if !filters.is_empty() && !filters.iter().any(|f| w.name.contains(f.as_str())) {
            continue;
        }
        let mut p = (w.build)();
        (p.run)();
        let mut times = Vec::new();
        let start = Instant::now();
        while times.len() < 10 || (times.len() < 200 && start.elapsed() < Duration::from_secs(2)) {
            let t = Instant::now();
            (p.run)();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let work = match p.work {
            Work::Flops(f) => format!("\"flops\": {f}"),
            Work::Bytes(b) => format!("\"bytes\": {b}"),
        };
        println!(
            "{{\"name\": \"{}\", \"median_s\": {median:e}, \"runs\": {}, {work}}}",
            w.name,
            times.len()
        );
    }
}
