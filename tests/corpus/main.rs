//! The hand-written `#[grad]` corpus: every construct of the accepted language, each
//! function checked three ways (finite differences, forward vs reverse mode, closed
//! forms where they exist). See `tests/common/mod.rs` for the checks.

#[path = "../common/mod.rs"]
mod common;

mod activity;
mod arithmetic;
mod arrays;
mod branches;
mod calls;
mod checker;
mod early_return;
mod items;
mod kinks;
mod loops;
mod single;
