//! `cpim-gateway`: see `cpim-gateway --help`.

fn main() {
    std::process::exit(cpim_gateway::cli::main());
}
