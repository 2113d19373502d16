//! `cpim-gateway`: see `cpim-gateway --help`.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cpim_gateway::cli::main());
}
