//! Workspace integration tests. They live in ONE test binary, `integration/main.rs` (one module
//! per topic, e.g. `integration/testbed_smoke.rs`), and run against the stand-in servers of the
//! test bed (`crates/etl-testbed`): `scripts/test` installs them and runs `cargo test`.
//! This library is empty on purpose.
