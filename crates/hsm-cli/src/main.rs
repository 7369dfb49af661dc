//! The `hsm` binary: [`hsm_cli::main`] with hsm's built-in providers. See the `hsm_cli`
//! crate docs for the commands, and for building your own `hsm` with more providers.

fn main() -> std::process::ExitCode {
    hsm_cli::main()
}
