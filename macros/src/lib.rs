//! ferrax-macros: the attributes that transform functions (`#[grad]`, `#[vmap]`, ...).
//!
//! Use them through the `ferrax` crate (`use ferrax::prelude::*;`).
