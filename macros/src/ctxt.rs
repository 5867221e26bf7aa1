//! Collects every error found while reading a function, so a user sees them all at once.

use std::cell::RefCell;
use std::fmt::Display;

/// The error context: record errors with [`Ctxt::error`], then [`Ctxt::check`] once.
#[derive(Default)]
pub struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    pub fn new() -> Self {
        Ctxt::default()
    }

    /// Records an error spanning `tokens`.
    pub fn error(&self, tokens: impl quote::ToTokens, msg: impl Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    /// Records an error at a span.
    pub fn error_at(&self, span: proc_macro2::Span, msg: impl Display) {
        self.errors.borrow_mut().push(syn::Error::new(span, msg));
    }

    /// Records an error that syn already made.
    pub fn syn_error(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// How many errors are recorded: a mark for [`Ctxt::forget_since`].
    pub fn mark(&self) -> usize {
        self.errors.borrow().len()
    }

    /// Drops the errors recorded after `mark`: code lowered a second time reports its
    /// errors once.
    pub fn forget_since(&self, mark: usize) {
        self.errors.borrow_mut().truncate(mark);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// All recorded errors combined into one, or `Ok` if there were none.
    pub fn check(self) -> Result<(), syn::Error> {
        let mut errors = self.errors.into_inner().into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            first.combine(e);
        }
        Err(first)
    }
}
