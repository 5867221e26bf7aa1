//! Per-kernel GPU time, measured with timestamp queries when `FERRAX_GPU_PROFILE=1` and
//! the adapter has them: each dispatch then runs in its own compute pass with a timestamp
//! at its start and end, and each submission waits for its timestamps. That serialises
//! the GPU's work and adds a wait per batch, so it is for finding where time goes, never
//! for timing a whole program. Read the totals with `Device::take_kernel_times`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::context::MAX_BATCH;
use crate::KernelTime;

/// The timestamp queries of one batch and what they add up to.
pub(crate) struct Profiler {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    /// Per kernel: dispatches and total nanoseconds.
    totals: Mutex<HashMap<String, (u64, f64)>>,
}

impl Profiler {
    /// A profiler when `FERRAX_GPU_PROFILE=1` asks for one and `features` allow it.
    pub(crate) fn wanted(features: wgpu::Features) -> bool {
        let asked = std::env::var("FERRAX_GPU_PROFILE").is_ok_and(|v| v == "1");
        if asked && !features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            eprintln!("ferrax: FERRAX_GPU_PROFILE=1, but the GPU adapter has no timestamp queries");
        }
        asked && features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Profiler {
        let count = 2 * MAX_BATCH as u32;
        let bytes = u64::from(count) * 8;
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ferrax timestamps"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Profiler {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("ferrax timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period_ns: f64::from(queue.get_timestamp_period()),
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// A compute pass for the `index`-th dispatch of the batch, timestamped at both ends.
    pub(crate) fn pass(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        index: usize,
    ) -> wgpu::ComputePass<'static> {
        let i = 2 * index as u32;
        encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &self.queries,
                    beginning_of_pass_write_index: Some(i),
                    end_of_pass_write_index: Some(i + 1),
                }),
            })
            .forget_lifetime()
    }

    /// Records the copy of the batch's `n` dispatches' timestamps to the readback buffer.
    pub(crate) fn resolve(&self, encoder: &mut wgpu::CommandEncoder, n: usize) {
        let queries = 2 * n as u32;
        encoder.resolve_query_set(&self.queries, 0..queries, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, u64::from(queries) * 8);
    }

    /// After the batch was submitted: waits for it, reads its timestamps and adds each
    /// dispatch's time to its kernel (`labels`, in dispatch order).
    pub(crate) fn collect(&self, device: &wgpu::Device, labels: &[String]) {
        if labels.is_empty() {
            return;
        }
        let slice = self.readback.slice(..labels.len() as u64 * 16);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        let waited = device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(Duration::from_secs(60)),
        });
        if waited.is_err() || !matches!(rx.recv(), Ok(Ok(()))) {
            return; // the failure itself is reported by the next readback or wait
        }
        let Ok(view) = slice.get_mapped_range() else {
            return;
        };
        let ticks: Vec<u64> = bytemuck::cast_slice::<u8, u64>(&view).to_vec();
        drop(view);
        self.readback.unmap();
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        for (label, pair) in labels.iter().zip(ticks.chunks_exact(2)) {
            let ns = pair[1].saturating_sub(pair[0]) as f64 * self.period_ns;
            let entry = totals.entry(label.clone()).or_default();
            entry.0 += 1;
            entry.1 += ns;
        }
    }

    /// The totals so far, longest first, and a fresh start.
    pub(crate) fn take(&self) -> Vec<KernelTime> {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<KernelTime> = totals
            .drain()
            .map(|(kernel, (count, ns))| KernelTime {
                kernel,
                count,
                total: Duration::from_nanos(ns as u64),
            })
            .collect();
        out.sort_by_key(|k| std::cmp::Reverse(k.total));
        out
    }
}

/// A kernel's name in the profile: its key, cut to 80 characters.
pub(crate) fn label(key: &str) -> String {
    match key.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &key[..i]),
        None => key.to_string(),
    }
}
