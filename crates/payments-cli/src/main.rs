//! The `payments` binary; everything is in the library (`payments_cli`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    payments_cli::main()
}
