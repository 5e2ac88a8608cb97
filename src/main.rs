//! The `oms` command. Everything lives in the library so tests can call it.

/// glibc's allocator spent about half of a busy API's time in malloc and
/// free (arena consolidation under many small JSON allocations); mimalloc
/// does the same work in a fraction of it, and holds fragmentation down
/// in a daemon that runs for months.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    openmultistack::cli::main()
}
