//! Devices: where a tensor's data lives and its operations run.

use std::fmt;

/// Where a tensor's data lives.
///
/// Every tensor knows its device, and operations on two tensors check that both are on
/// the same one. Only the CPU exists so far; a GPU variant will be added beside it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Device {
    /// Host memory, CPU kernels.
    #[default]
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
