//! The crate's integration tests as ONE test binary (every test binary costs a long link).

mod common;
mod decode;
mod mutations;
mod reject;
