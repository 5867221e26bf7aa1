//! Devices: where a tensor's data lives and its operations run.

use std::fmt;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Where a tensor's data lives.
///
/// Every tensor knows its device, and operations on two tensors check that both are on
/// the same one. Move tensors with [`Tensor::to_device`](crate::Tensor::to_device).
///
/// ```
/// use ferrax_runtime::prelude::*;
///
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]);
/// // A GPU when there is one (the `gpu` feature and a wgpu adapter), the CPU otherwise.
/// let dev = Device::gpu().unwrap_or(Device::Cpu);
/// let y = (x.to_device(&dev) * 2.0).exp();
/// assert_eq!(y.device(), dev);
/// assert_eq!(y.to_device(&Device::Cpu).shape(), &[3]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    /// Host memory, CPU kernels.
    Cpu,
    /// A GPU through wgpu (WGSL compute shaders), by ordinal: `Gpu(0)` is the adapter
    /// wgpu ranks first, high performance preferred. Holds f32, i32 and bool tensors.
    Gpu(usize),
}

/// One kernel's share of the GPU's time since the last [`Device::take_kernel_times`].
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel: its cache key, cut to 80 characters (an elementwise kernel's key holds
    /// its fused expression).
    pub kernel: String,
    /// How many times it ran.
    pub count: u64,
    /// Its total time on the GPU.
    pub total: std::time::Duration,
}

/// Counts of what a device has done since it was created ([`Device::activity`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// Kernels dispatched.
    pub dispatches: u64,
    /// Batches of dispatches submitted to the GPU's queue.
    pub submissions: u64,
    /// Waits for the GPU to finish (`synchronize`, `eval`).
    pub waits: u64,
    /// Copies of data back to the host (`to_vec`, `item`, moving to the CPU, printing).
    pub readbacks: u64,
    /// Copies of host data to the GPU.
    pub uploads: u64,
    /// Buffers allocated from the driver (the pool serves the others).
    pub buffers_created: u64,
    /// Compute pipelines compiled (each WGSL kernel once).
    pub pipelines_compiled: u64,
    /// Bind groups made (a dispatch that binds what an earlier one bound reuses its group).
    pub bind_groups_created: u64,
}

impl Device {
    /// The first GPU, initialised on first use (adapter, device and queue).
    ///
    /// Errors, saying why, when the crate was built without the `gpu` feature or wgpu
    /// finds no adapter (no Vulkan, Metal or DX12 driver).
    pub fn gpu() -> Result<Device> {
        #[cfg(feature = "gpu")]
        {
            crate::gpu::context::context(0).map(|_| Device::Gpu(0))
        }
        #[cfg(not(feature = "gpu"))]
        {
            Err(Error::Gpu {
                op: "Device::gpu",
                message: "ferrax-runtime was built without its `gpu` feature".into(),
            })
        }
    }

    /// Waits until every operation recorded on this device has finished (nothing to do
    /// on the CPU, whose operations finish before they return). GPU operations are
    /// recorded and submitted in batches and read back only on demand, so timing GPU work
    /// needs this at the end; `to_vec` and `item` wait by themselves.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => crate::gpu::context::context(*i)?.synchronize("synchronize"),
            #[cfg(not(feature = "gpu"))]
            Device::Gpu(_) => Device::gpu().map(|_| ()),
        }
    }

    /// What this device has done since it was created: kernels dispatched, batches
    /// submitted, waits for the GPU, readbacks, uploads, buffers allocated from the driver
    /// (not the pool) and pipelines compiled. All zero on the CPU. Differences between two
    /// readings show what a piece of code costs the GPU path, for example that a training
    /// step reads nothing back:
    ///
    /// ```
    /// use ferrax_runtime::prelude::*;
    ///
    /// let dev = Device::gpu().unwrap_or(Device::Cpu);
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).to_device(&dev);
    /// let before = dev.activity();
    /// let y = (&x * 2.0).exp().sum();
    /// assert_eq!(dev.activity().readbacks, before.readbacks); // nothing read yet
    /// assert!((y.item::<f32>() - (2f32.exp() + 4f32.exp())).abs() < 1e-4);
    /// ```
    pub fn activity(&self) -> Activity {
        match self {
            Device::Cpu => Activity::default(),
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => crate::gpu::context::context(*i)
                .map(|c| c.activity())
                .unwrap_or_default(),
            #[cfg(not(feature = "gpu"))]
            Device::Gpu(_) => Activity::default(),
        }
    }

    /// The GPU time of each kernel since the last call, longest first, when the process
    /// runs with `FERRAX_GPU_PROFILE=1` and the adapter has timestamp queries; empty
    /// otherwise (and on the CPU). Profiling runs every kernel in its own timestamped pass
    /// and waits at each submission, so it shows where the GPU's time goes, not how fast
    /// the whole program is.
    ///
    /// ```no_run
    /// use ferrax_runtime::prelude::*;
    ///
    /// // run with FERRAX_GPU_PROFILE=1
    /// let dev = Device::gpu().unwrap();
    /// let a = Tensor::normal(Key::new(0), &[1024, 1024], DType::F32).to_device(&dev);
    /// a.matmul(&a).tanh().eval();
    /// for k in dev.take_kernel_times() {
    ///     println!("{:>10.3?} {:>5}x  {}", k.total, k.count, k.kernel);
    /// }
    /// ```
    pub fn take_kernel_times(&self) -> Vec<KernelTime> {
        match self {
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => crate::gpu::context::context(*i)
                .map(|c| c.take_kernel_times())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Whether this is a GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// A description of the GPU behind this device (adapter name, backend, device type),
    /// or `"cpu"`.
    pub fn description(&self) -> String {
        match self {
            Device::Cpu => "cpu".into(),
            #[cfg(feature = "gpu")]
            Device::Gpu(i) => match crate::gpu::context::context(*i) {
                Ok(c) => format!(
                    "{} ({:?}, {:?}, driver {})",
                    c.info.name, c.info.backend, c.info.device_type, c.info.driver_info
                ),
                Err(e) => e.to_string(),
            },
            #[cfg(not(feature = "gpu"))]
            Device::Gpu(i) => format!("gpu:{i} (not built)"),
        }
    }

    /// The device `FERRAX_DEVICE` asks for: `cpu`, `gpu` (an error if there is none) or
    /// `auto` (the default when unset: a GPU when wgpu finds a hardware adapter,
    /// otherwise the CPU, with one line on stderr saying why). `auto` does not pick a
    /// software rasteriser such as Mesa's lavapipe, which is slower than the CPU
    /// kernels; `gpu` accepts it.
    pub fn try_default() -> Result<Device> {
        static CHOICE: OnceLock<Result<Device>> = OnceLock::new();
        CHOICE
            .get_or_init(|| {
                let var = std::env::var("FERRAX_DEVICE").unwrap_or_default();
                match var.trim().to_ascii_lowercase().as_str() {
                    "cpu" => Ok(Device::Cpu),
                    "gpu" => Device::gpu(),
                    "" | "auto" => Ok(auto()),
                    other => Err(Error::InvalidArgument {
                        op: "Device::default",
                        message: format!("FERRAX_DEVICE={other:?} is not one of cpu, gpu or auto"),
                    }),
                }
            })
            .clone()
    }
}

/// `auto`: a hardware GPU if there is one, else the CPU (saying why on stderr).
fn auto() -> Device {
    let why = match Device::gpu() {
        #[cfg(feature = "gpu")]
        Ok(dev) => match crate::gpu::context::context(0) {
            Ok(c) if c.info.device_type == wgpu::DeviceType::Cpu => format!(
                "the only GPU adapter, {}, is a software rasteriser (set FERRAX_DEVICE=gpu to use it)",
                c.info.name
            ),
            _ => return dev,
        },
        #[cfg(not(feature = "gpu"))]
        Ok(dev) => return dev,
        Err(e) => e.to_string(),
    };
    eprintln!("ferrax: FERRAX_DEVICE=auto runs on the CPU: {why}");
    Device::Cpu
}

/// [`Device::try_default`], panicking with its error (an unknown `FERRAX_DEVICE`, or
/// `FERRAX_DEVICE=gpu` without a GPU).
impl Default for Device {
    #[track_caller]
    fn default() -> Device {
        match Device::try_default() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(i) => write!(f, "gpu:{i}"),
        }
    }
}
