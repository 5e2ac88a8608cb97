//! The `oms` command. Everything lives in the library so tests can call it.

fn main() -> std::process::ExitCode {
    openmultistack::cli::main()
}
