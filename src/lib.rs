//! ferrax: JAX's composable function transformations for Rust.
pub use ferrax_macros::*;
pub use ferrax_runtime::*;

/// Everything a user needs: `use ferrax::prelude::*;`.
pub mod prelude {
    pub use ferrax_runtime::prelude::*;
}
