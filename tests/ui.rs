//! Compile errors: every construct outside `#[grad]`'s language is rejected at its own
//! span with a message saying what is supported. One case per file in `ui-tests/`,
//! with the expected diagnostic beside it (`TRYBUILD=overwrite` regenerates them; read
//! every one before committing it).

#[test]
fn unsupported_syntax_is_a_compile_error_at_its_span() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/*.rs");
}
