//! IR -> IR transforms. Each consumes and produces the IR of `ir.rs`, so they compose.

pub mod jvp;
pub mod simplify;
pub mod vjp;
pub mod vmap;
