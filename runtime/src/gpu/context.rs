//! The GPU context: one wgpu device and queue per adapter, with the pipeline cache, the
//! buffer pool and the batch of recorded dispatches that is submitted in one go.
//!
//! - Pipelines are compiled once per WGSL source and kept for the life of the process.
//! - Buffers freed by tensors go back to a pool keyed by size class; a new tensor of a
//!   similar size takes one from there instead of allocating GPU memory. A class hands
//!   out its least buffer, so a repeated computation gets the same buffers each time.
//! - Bind groups are cached by what they bind, so a repeated computation (a training
//!   step) makes none after its first runs; a buffer released to the driver takes its
//!   bind groups with it.
//! - Each dispatch is recorded into the open command encoder; its parameters (shapes,
//!   strides, offsets) go into one slot of a uniform buffer shared by the batch. The batch
//!   is submitted when it is full or when data must come back to the host, so a chain of
//!   operations costs one submission, not one per operation.
//! - Data is read back only when the user asks (`to_vec`, `item`, printing).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::profile::Profiler;
use crate::error::{Error, Result};

/// The hasher of the caches looked up for every kernel recorded (not DoS-resistant: the
/// keys are ferrax's own).
type Fast = foldhash::fast::RandomState;

/// Bytes of uniform parameters each dispatch may use (one aligned slot).
pub(crate) const PARAM_SLOT: u64 = 256;

/// Most dispatches recorded before a batch is submitted (the parameter buffer's slots).
pub(crate) const MAX_BATCH: usize = 256;

/// Most bind groups kept for reuse; the cache starts over when it is full.
const MAX_BIND_GROUPS: usize = 4096;

/// Most bytes the pool keeps; buffers beyond are released to the driver.
const POOL_BYTES: u64 = 4 << 30;

/// How long a readback waits for the GPU before reporting the device as hung or lost.
const READBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// One GPU: its device, queue, limits and caches.
pub(crate) struct Context {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    /// The adapter's name, backend and type.
    pub(crate) info: wgpu::AdapterInfo,
    /// The limits the device was created with (the adapter's own).
    pub(crate) limits: wgpu::Limits,
    /// Whether kernels may use subgroup operations (the adapter has them).
    pub(crate) subgroups: bool,
    /// Dispatches recorded before a batch is submitted: [`MAX_BATCH`], or fewer with
    /// `FERRAX_GPU_BATCH=n`, so that the GPU starts on a step's first kernels while the
    /// host records the rest (each submission costs host time: to be tuned on a GPU).
    submit_every: usize,
    pipelines: Mutex<HashMap<String, Arc<Pipeline>, Fast>>,
    /// Free buffers by size class. Each class hands out its least buffer (in wgpu's
    /// identity order), not its last freed: so the buffers a step gets depend only on
    /// which are free when it starts, not on the order the previous step freed them, and
    /// a repeated step binds the same buffers, whose bind groups are then cached.
    pool: Mutex<HashMap<u64, BTreeSet<wgpu::Buffer>, Fast>>,
    /// Bytes held by the pool.
    pooled: Mutex<u64>,
    batch: Mutex<Batch>,
    /// Why the device can no longer be used (lost, or an uncaught error), once it cannot.
    lost: Arc<Mutex<Option<String>>>,
    /// What the context has done so far ([`crate::Activity`]).
    counts: Counts,
    /// Per-kernel GPU time, when `FERRAX_GPU_PROFILE=1` asks for it.
    profiler: Option<Profiler>,
}

/// Counters behind [`crate::Activity`].
#[derive(Default)]
struct Counts {
    dispatches: AtomicU64,
    submissions: AtomicU64,
    waits: AtomicU64,
    readbacks: AtomicU64,
    uploads: AtomicU64,
    buffers_created: AtomicU64,
    pipelines_compiled: AtomicU64,
    bind_groups_created: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A compiled kernel and the layout of its bind group.
pub(crate) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// Its name in the profile ([`super::profile`]).
    label: String,
}

/// The dispatches recorded since the last submission.
struct Batch {
    /// The compute pass open on `encoder`, if any (ended before copies and submission;
    /// declared first so that it is also dropped first).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    /// Parameter bytes, one [`PARAM_SLOT`] per dispatch.
    params: Vec<u8>,
    /// The uniform buffer the slots are bound from (written just before each submission,
    /// which the queue orders after the previous batch's work).
    params_buf: wgpu::Buffer,
    /// When profiling, the kernel of each dispatch in the batch.
    labels: Vec<String>,
    /// Bind groups already made, by what they bind. A training step repeats the same
    /// dispatches over the same pooled buffers, so from its second step on its bind
    /// groups are found here: making one costs wgpu and the driver a few microseconds
    /// of host time (on lavapipe, 115 of a small MLP step's 250 us).
    bind_groups: HashMap<BindKey, wgpu::BindGroup, Fast>,
}

/// What a dispatch's bind group binds: the kernel's layout, its parameter slot in
/// `params_buf`, and its buffers in binding order. The cached group holds its buffers,
/// so a buffer in a key is never freed (and its identity never reused) while it is there.
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    layout: wgpu::BindGroupLayout,
    slot: u64,
    buffers: Vec<wgpu::Buffer>,
}

/// The process-wide table of GPU contexts (index = the ordinal in `Device::Gpu`).
static CONTEXTS: OnceLock<std::result::Result<&'static Context, String>> = OnceLock::new();

/// The context of GPU `ordinal`, created on first use. Only ordinal 0 (the adapter wgpu
/// ranks first, high performance preferred) exists.
pub(crate) fn context(ordinal: usize) -> Result<&'static Context> {
    if ordinal != 0 {
        return Err(Error::Gpu {
            op: "gpu",
            message: format!("no GPU with ordinal {ordinal} (only gpu:0 is supported)"),
        });
    }
    CONTEXTS
        .get_or_init(|| Context::new().map(|c| &*Box::leak(Box::new(c))))
        .as_ref()
        .copied()
        .map_err(|message| Error::Gpu {
            op: "gpu",
            message: message.clone(),
        })
}

/// The context of a device the caller knows to be a GPU (its context exists).
pub(crate) fn existing(ordinal: usize) -> &'static Context {
    match context(ordinal) {
        Ok(c) => c,
        Err(e) => unreachable!("a gpu:{ordinal} tensor exists without its context: {e}"),
    }
}

impl Context {
    fn new() -> std::result::Result<Context, String> {
        // `WGPU_BACKEND` may pick the backend (vulkan, metal, dx12); `WGPU_BACKEND=noop` with
        // `WGPU_NOOP_BACKEND=1` gives an adapter that runs nothing, which times the
        // host's part of the work alone (`benches/gpu.rs --host`)
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| format!("no GPU adapter found through wgpu (Vulkan, Metal or DX12): {e}"))?;
        let info = adapter.get_info();
        let mut limits = adapter.limits();
        // kernels use one bind group; wgpu-core holds at most 8 per pipeline, more than
        // the noop adapter's claim of any number
        limits.max_bind_groups = limits.max_bind_groups.min(8);
        let profile = Profiler::wanted(adapter.features());
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        let mut features = wgpu::Features::empty();
        features.set(wgpu::Features::TIMESTAMP_QUERY, profile);
        features.set(wgpu::Features::SUBGROUP, subgroups);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ferrax"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| format!("the GPU adapter {} refused a device: {e}", info.name))?;
        let lost = Arc::new(Mutex::new(None));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *flag.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("the GPU device was lost ({reason:?}: {message})"));
        });
        // errors no scope catches (out of memory inside a submission, an internal
        // failure) become the context's fault, reported by the next readback or wait,
        // instead of wgpu's default panic
        let flag = Arc::clone(&lost);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut fault = flag.lock().unwrap_or_else(|p| p.into_inner());
            if fault.is_none() {
                *fault = Some(format!("the GPU reported an error: {e}"));
            }
        }));
        let params_buf = new_params_buffer(&device);
        let profiler = profile.then(|| Profiler::new(&device, &queue));
        Ok(Context {
            device,
            queue,
            info,
            limits,
            subgroups,
            submit_every: submit_every(),
            pipelines: Mutex::new(HashMap::default()),
            pool: Mutex::new(HashMap::default()),
            pooled: Mutex::new(0),
            batch: Mutex::new(Batch {
                pass: None,
                encoder: None,
                params: Vec::new(),
                params_buf,
                labels: Vec::new(),
                bind_groups: HashMap::default(),
            }),
            lost,
            counts: Counts::default(),
            profiler,
        })
    }

    /// The kernel times gathered since the last call (empty unless profiling).
    pub(crate) fn take_kernel_times(&self) -> Vec<crate::KernelTime> {
        self.flush();
        self.profiler
            .as_ref()
            .map(Profiler::take)
            .unwrap_or_default()
    }

    /// What this context has done since it was created.
    pub(crate) fn activity(&self) -> crate::Activity {
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::Activity {
            dispatches: get(&c.dispatches),
            submissions: get(&c.submissions),
            waits: get(&c.waits),
            readbacks: get(&c.readbacks),
            uploads: get(&c.uploads),
            buffers_created: get(&c.buffers_created),
            pipelines_compiled: get(&c.pipelines_compiled),
            bind_groups_created: get(&c.bind_groups_created),
        }
    }

    /// An error if the device has been lost or has reported an uncaught error.
    pub(crate) fn check_alive(&self, op: &'static str) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(Error::Gpu {
                op,
                message: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The compute pipeline named `key`, compiled from the WGSL `source()` makes (entry
    /// point `main`) the first time the key is seen. Keys are short descriptions of what
    /// determines the source, so a cache hit costs no code generation.
    pub(crate) fn pipeline(&self, key: &str, source: impl FnOnce() -> String) -> Arc<Pipeline> {
        self.pipeline_with(key, source, true)
    }

    /// [`Context::pipeline`] without wgpu's runtime bounds checks (clamping every index
    /// costs the matmul kernel about 15% on an H100) and without zeroing workgroup memory
    /// at the start of each workgroup.
    ///
    /// # Safety
    ///
    /// The kernel never indexes outside its buffers or workgroup arrays, its loops end, and
    /// it reads no workgroup memory it has not written.
    pub(crate) unsafe fn pipeline_trusted(
        &self,
        key: &str,
        source: impl FnOnce() -> String,
    ) -> Arc<Pipeline> {
        self.pipeline_with(key, source, false)
    }

    fn pipeline_with(
        &self,
        key: &str,
        source: impl FnOnce() -> String,
        checked: bool,
    ) -> Arc<Pipeline> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(key) {
            return Arc::clone(p);
        }
        bump(&self.counts.pipelines_compiled);
        let desc = wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(source().into()),
        };
        let module = if checked {
            self.device.create_shader_module(desc)
        } else {
            // SAFETY: the caller of `pipeline_trusted` vouches for the kernel.
            unsafe {
                self.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: None,
                module: &module,
                entry_point: Some("main"),
                // a trusted kernel writes its workgroup memory before reading it
                compilation_options: wgpu::PipelineCompilationOptions {
                    zero_initialize_workgroup_memory: checked,
                    ..Default::default()
                },
                cache: None,
            });
        let pipeline = Arc::new(Pipeline {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
            label: super::profile::label(key),
        });
        cache.insert(key.to_string(), Arc::clone(&pipeline));
        pipeline
    }

    /// The largest buffer a shader may bind, in bytes.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A storage buffer of at least `bytes` bytes, from the pool when one of its size
    /// class is free. Out-of-memory and over-limit requests are errors.
    pub(crate) fn alloc(&self, op: &'static str, bytes: u64) -> Result<wgpu::Buffer> {
        let class = size_class(bytes);
        if let Some(b) = self
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&class)
            .and_then(BTreeSet::pop_first)
        {
            *self.pooled.lock().unwrap_or_else(|p| p.into_inner()) -= b.size();
            return Ok(b);
        }
        let exact = bytes.max(16).next_multiple_of(4);
        // near the limit, the exact size (not pooled by class) rather than a refusal
        let class = if class > self.max_binding() {
            exact
        } else {
            class
        };
        if class > self.max_binding() {
            return Err(Error::Gpu {
                op,
                message: format!(
                    "a buffer of {bytes} bytes exceeds the adapter's largest storage binding ({} bytes)",
                    self.max_binding()
                ),
            });
        }
        self.check_alive(op)?;
        match self.create(class) {
            Ok(b) => Ok(b),
            Err(_) => {
                // out of memory: give the pooled buffers back to the driver (the cached
                // bind groups hold some too) and try again
                self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
                *self.pooled.lock().unwrap_or_else(|p| p.into_inner()) = 0;
                self.flush();
                self.lock_batch().bind_groups.clear();
                self.create(class).map_err(|e| Error::Gpu {
                    op,
                    message: format!("out of GPU memory allocating {bytes} bytes: {e}"),
                })
            }
        }
    }

    /// A new storage buffer, or the out-of-memory error the device reports.
    fn create(&self, size: u64) -> std::result::Result<wgpu::Buffer, wgpu::Error> {
        bump(&self.counts.buffers_created);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(e),
            None => Ok(buffer),
        }
    }

    /// Returns a buffer to the pool. Work already recorded that reads it stays ordered
    /// before any later writer, since both go through the same queue. A buffer the pool
    /// does not keep is released, and with it the cached bind groups that hold it.
    pub(crate) fn recycle(&self, buffer: wgpu::Buffer) {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let mut pooled = self.pooled.lock().unwrap_or_else(|p| p.into_inner());
            // an exact-size buffer near the limit is not pooled: no class would find it
            if size_class(buffer.size()) == buffer.size() && *pooled + buffer.size() <= POOL_BYTES {
                *pooled += buffer.size();
                pool.entry(buffer.size()).or_default().insert(buffer);
                return;
            }
        }
        self.release(&buffer);
    }

    /// Drops the cached bind groups that hold `buffer`, so that it is freed when the
    /// caller drops it.
    fn release(&self, buffer: &wgpu::Buffer) {
        self.lock_batch()
            .bind_groups
            .retain(|key, _| !key.buffers.contains(buffer));
    }

    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups, binding `params`
    /// (at most [`PARAM_SLOT`] bytes) at binding 0 and `buffers` at bindings 1, 2, ...
    /// Submits the batch when it is full.
    pub(crate) fn dispatch(
        &self,
        pipeline: &Pipeline,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) {
        // a kernel's parameters overflowing their slot would corrupt the next dispatch's
        assert!(
            params.len() as u64 <= PARAM_SLOT,
            "GPU dispatch parameters of {} bytes exceed the {PARAM_SLOT}-byte slot",
            params.len()
        );
        bump(&self.counts.dispatches);
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let slot = batch.params.len() as u64;
        batch.params.extend_from_slice(params);
        batch.params.resize((slot + PARAM_SLOT) as usize, 0);
        let batch = &mut *batch;
        if batch.bind_groups.len() >= MAX_BIND_GROUPS {
            batch.bind_groups.clear();
        }
        let key = BindKey {
            layout: pipeline.layout.clone(),
            slot,
            buffers: buffers.iter().map(|&b| b.clone()).collect(),
        };
        let bind_group = match batch.bind_groups.entry(key) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(e) => {
                bump(&self.counts.bind_groups_created);
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &batch.params_buf,
                        offset: slot,
                        size: wgpu::BufferSize::new(PARAM_SLOT),
                    }),
                }];
                for (i, b) in buffers.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: b.as_entire_binding(),
                    });
                }
                let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.layout,
                    entries: &entries,
                });
                e.insert(group).clone()
            }
        };
        if let Some(p) = &self.profiler {
            // one timestamped pass per dispatch
            batch.pass = None;
            let index = batch.labels.len();
            let encoder = batch.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            batch.pass = Some(p.pass(encoder, index));
            batch.labels.push(pipeline.label.clone());
        }
        if batch.pass.is_none() {
            let device = &self.device;
            let encoder = batch.encoder.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            batch.pass = Some(pass.forget_lifetime());
        }
        // one pass for consecutive dispatches: each dispatch is its own usage scope, so
        // wgpu still orders a dispatch after the ones whose output it reads
        let pass = batch.pass.as_mut().expect("opened above");
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        if batch.params.len() >= self.submit_every * PARAM_SLOT as usize {
            self.submit(batch);
        }
    }

    /// Records a buffer-to-buffer copy into the batch.
    pub(crate) fn copy(&self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, bytes: u64) {
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        batch.pass = None; // ends the open compute pass
        let device = &self.device;
        let encoder = batch.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        encoder.copy_buffer_to_buffer(src, src_offset, dst, 0, bytes);
    }

    /// Submits the recorded dispatches, if any.
    pub(crate) fn flush(&self) {
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        self.submit(&mut batch);
    }

    fn submit(&self, batch: &mut Batch) {
        batch.pass = None; // ends the open compute pass
        let Some(mut encoder) = batch.encoder.take() else {
            return;
        };
        if let Some(p) = &self.profiler
            && !batch.labels.is_empty()
        {
            p.resolve(&mut encoder, batch.labels.len());
        }
        if !batch.params.is_empty() {
            if batch.params_buf.size() < batch.params.len() as u64 {
                batch.params_buf = new_params_buffer(&self.device);
                batch.bind_groups.clear(); // they bind the old one
            }
            self.queue.write_buffer(&batch.params_buf, 0, &batch.params);
        }
        self.queue.submit([encoder.finish()]);
        bump(&self.counts.submissions);
        batch.params.clear();
        if let Some(p) = &self.profiler {
            p.collect(&self.device, &batch.labels);
            batch.labels.clear();
        }
    }

    /// Submits the recorded work and waits for the GPU to finish it.
    pub(crate) fn synchronize(&self, op: &'static str) -> Result<()> {
        self.check_alive(op)?;
        self.flush();
        bump(&self.counts.waits);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(READBACK_TIMEOUT),
            })
            .map_err(|e| Error::Gpu {
                op,
                message: format!("waiting for the GPU failed: {e}"),
            })?;
        self.check_alive(op)
    }

    /// Writes host bytes into a buffer. The batch is submitted first, so that work
    /// recorded earlier that reads this (pooled) buffer runs before the write lands.
    pub(crate) fn upload(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        self.flush();
        if !bytes.is_empty() {
            bump(&self.counts.uploads);
            self.queue.write_buffer(buffer, 0, bytes);
        }
    }

    /// Reads `bytes` bytes from `offset` in `buffer` back to the host, after all recorded
    /// work. Waits for the GPU (with a time limit: a hung or lost device is an error).
    pub(crate) fn read(
        &self,
        op: &'static str,
        buffer: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        self.check_alive(op)?;
        bump(&self.counts.readbacks);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(buffer, offset, &staging, bytes);
        self.flush();
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        let polled = self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(READBACK_TIMEOUT),
        });
        let fail = |message: String| Error::Gpu { op, message };
        polled.map_err(|e| fail(format!("waiting for the GPU failed: {e}")))?;
        self.check_alive(op)?;
        rx.recv()
            .map_err(|_| fail("the GPU never answered the readback".into()))?
            .map_err(|e| fail(format!("mapping the readback buffer failed: {e}")))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| fail(format!("mapping the readback buffer failed: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }
}

/// The submission size: `FERRAX_GPU_BATCH` when it is a number from 1 to [`MAX_BATCH`],
/// else `MAX_BATCH`.
fn submit_every() -> usize {
    submit_every_from(std::env::var("FERRAX_GPU_BATCH").ok().as_deref())
}

fn submit_every_from(v: Option<&str>) -> usize {
    crate::gpu::tuning_from(
        "FERRAX_GPU_BATCH",
        v,
        &format!("a number from 1 to {MAX_BATCH}"),
        |v| v.parse().ok().filter(|n| (1..=MAX_BATCH).contains(n)),
    )
    .unwrap_or(MAX_BATCH)
}

fn new_params_buffer(device: &wgpu::Device) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("ferrax params"),
        size: MAX_BATCH as u64 * PARAM_SLOT,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// The pool's size class of a request: the next power of two up to 1 MiB, then the next
/// multiple of an eighth of the next power of two (at most 12.5% waste for large buffers).
fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(16);
    let p = bytes.next_power_of_two();
    if p <= 1 << 20 {
        p
    } else {
        let step = p / 8;
        bytes.div_ceil(step) * step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel that writes its first parameter into its buffer's first element.
    const STORE: &str = "struct P { x: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main() { out[0] = p.x; }";

    #[test]
    fn bind_groups_are_reused_and_released_with_their_buffers() {
        let ctx = match context(0) {
            Ok(c) => c,
            Err(e) if std::env::var("FERRAX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("FERRAX_REQUIRE_GPU=1 but there is no GPU: {e}")
            }
            Err(e) => return eprintln!("skipping a GPU test: {e}"),
        };
        let pipeline = ctx.pipeline("test store", || STORE.into());
        // a size no other test uses, so that the pool hands out this test's buffers
        let (a, b) = (
            ctx.alloc("test", 4004).unwrap(),
            ctx.alloc("test", 4004).unwrap(),
        );
        let holding = |buf: &wgpu::Buffer| {
            ctx.lock_batch()
                .bind_groups
                .keys()
                .filter(|k| k.buffers.contains(buf))
                .count()
        };
        let store = |buf: &wgpu::Buffer, x: u32| {
            ctx.dispatch(&pipeline, &x.to_le_bytes(), &[buf], [1, 1, 1]);
            ctx.synchronize("test").unwrap();
        };
        // the cached group binding `buf` (the activity counters are shared with the
        // tests running alongside, so the cache itself is looked at)
        let group_of = |buf: &wgpu::Buffer| {
            ctx.lock_batch()
                .bind_groups
                .iter()
                .find(|(k, _)| k.buffers.contains(buf))
                .map(|(_, g)| g.clone())
        };
        // each batch starts at slot 0: the second dispatch on `a` reuses the first's group,
        // with its own parameters
        store(&a, 7);
        let first = group_of(&a).expect("a cached group for a");
        store(&a, 9);
        assert_eq!(group_of(&a), Some(first));
        assert_eq!(holding(&a), 1);
        store(&b, 5);
        assert_eq!(holding(&b), 1);
        assert_eq!(ctx.read("test", &a, 0, 4).unwrap(), 9u32.to_le_bytes());
        assert_eq!(ctx.read("test", &b, 0, 4).unwrap(), 5u32.to_le_bytes());
        // a pooled buffer keeps its groups; a released one loses them
        assert_eq!(holding(&a), 1);
        ctx.release(&a);
        assert_eq!(holding(&a), 0);
        assert_eq!(holding(&b), 1);
        ctx.recycle(a);
        ctx.recycle(b);
    }

    #[test]
    fn the_submission_size_is_a_number_from_one_to_the_batch() {
        assert_eq!(submit_every_from(None), MAX_BATCH);
        assert_eq!(submit_every_from(Some("8")), 8);
        assert_eq!(submit_every_from(Some("1")), 1);
        for bad in ["0", "257", "-3", "eight", ""] {
            assert_eq!(submit_every_from(Some(bad)), MAX_BATCH, "{bad:?}");
        }
    }

    #[test]
    fn size_classes_cover_the_request_with_bounded_waste() {
        for bytes in [
            0u64,
            1,
            4,
            17,
            1000,
            1 << 20,
            (1 << 20) + 4,
            3 << 24,
            1 << 30,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes && c.is_multiple_of(4), "{bytes} -> {c}");
            if bytes > 1 << 20 {
                assert!(c - bytes <= bytes / 4, "{bytes} -> {c}");
            }
        }
    }
}
