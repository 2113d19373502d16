//! The gateway binary for the end-to-end tests of this crate: exactly `cpim-gateway`'s
//! `main` (`cpim_gateway::cli::main`), built as a target of this package so that its tests
//! get its path from `CARGO_BIN_EXE_cpim-gateway-e2e` (cargo gives that only for binaries
//! of the package under test, and a nested `cargo build` of `cpim-gateway` would wait on
//! the build lock of the running `cargo test`).

fn main() {
    std::process::exit(cpim_gateway::cli::main());
}
