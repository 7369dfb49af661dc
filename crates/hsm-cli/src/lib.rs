//! # `hsm` — the command-line tool
//!
//! This crate is the `hsm` binary and, as a library, its entry point ([`main`], [`run`]),
//! so an application can ship its own `hsm` with its own providers registered (see
//! [Your own provider](#your-own-provider)).
//!
//! Key management and cryptography on any hsm provider from the shell: the embedded local
//! keystore by default, or whatever `--provider URL`, `--config FILE`, `HSM_PROVIDER` or
//! `HSM_CONFIG` selects.
//!
//! ```text
//! hsm key create payments --spec aes-256 --description "Payment records" --tag env=prod
//! echo 'secret' | hsm encrypt --key payments --base64 > secret.b64
//! hsm decrypt --key payments --base64 -i secret.b64
//! hsm key rotate payments                      # secret.b64 still decrypts
//! hsm key create signer --spec rsa-2048 --usage sign
//! hsm sign --key signer --algorithm RSASSA_PKCS1_V1_5_SHA_256 -i doc.pdf -o doc.sig
//! hsm verify --key signer --algorithm rsa-pkcs1-sha256 --signature doc.sig -i doc.pdf
//! hsm key public signer -o signer.pem          # openssl dgst -sha256 -verify signer.pem ...
//! hsm key list --tag env=prod --output json
//! hsm encrypt --envelope --key backups --context host=db1 -i dump.sql -o dump.hsm  # any size, streamed
//! hsm envelope inspect dump.hsm                # header only: context, recipients; no provider call
//! hsm decrypt --key backups --context host=db1 -i dump.hsm --range 0:4096
//! hsm completions bash > /etc/bash_completion.d/hsm
//! ```
//!
//! ## Keys in other tools
//!
//! ```text
//! hsm key public signer --format jwk           # also pem (default), der, ssh
//! hsm x509 self-signed --key ca --subject 'CN=Example CA' --ca --days 3650 -o ca.pem
//! hsm x509 csr --key web --subject CN=web.example --san DNS:web.example -o web.csr
//! hsm x509 issue --issuer-key ca --issuer-cert ca.pem --csr web.csr --days 90 -o web.pem
//! hsm jwt sign --key signer --claims '{"sub":"alice"}' --expires-in 1h > token
//! hsm jwt verify --key signer -i token           # exit 0 valid (prints the claims), 1 invalid
//! hsm ssh-agent --socket /tmp/hsm.sock --key signer   # SSH_AUTH_SOCK=/tmp/hsm.sock ssh-keygen -Y sign ...
//! ```
//!
//! A key that cannot serve the request (an encryption key, secp256k1 in X.509 or SSH, an
//! algorithm the provider does not offer for the key) is refused with exit 4.
//!
//! ## Provider selection
//!
//! 1. `--provider URL` (`local:///abs/path/to/keystore`, `local:relative/path`, `memory:`,
//!    any scheme of `hsm::Config`, and any registered with `hsm::register_scheme`)
//! 2. `--config FILE` (TOML, see `hsm::Config::from_toml`)
//! 3. `HSM_PROVIDER` (a URL) or `HSM_CONFIG` (a TOML file)
//! 4. the local keystore `$HSM_HOME/keystore`, `HSM_HOME` defaulting to the platform data
//!    directory + `/hsm` (e.g. `~/.local/share/hsm`).
//!
//! A local keystore is encrypted under the passphrase in `HSM_PASSPHRASE` when it is set
//! (or the variable a config file's `passphrase_env` names), otherwise under a random
//! master key kept beside it in `keystore.key` (mode 0600).
//!
//! ## Inputs and outputs
//!
//! `-i`/`-o` default to stdin/stdout (`-` too). Data is binary; `--base64` armours the
//! artifacts hsm produces (ciphertexts, signatures, wrapped keys, MAC tags) on output and
//! accepts them armoured on input. Plaintexts, messages and key material are never
//! armoured. Output files are written to a temporary file in the same directory and
//! renamed into place, so a failure never leaves a half-written file; decrypted data and
//! unwrapped keys get mode 0600, everything else 0644. `sign` writes the raw signature
//! (DER for ECDSA, as openssl expects); `encrypt` writes the hsm ciphertext blob, which
//! records the key, key version and algorithm, so `decrypt` needs no `--algorithm` and works
//! after rotations. `--key NAME@VERSION` pins a version for `verify` and `mac-verify`.
//!
//! ## Exit codes
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success; `verify`/`mac-verify`: valid |
//! | 1 | `verify`/`mac-verify`: the signature or tag does not match |
//! | 2 | usage error (unknown flag, bad spec, usage or algorithm name), from clap |
//! | 3 | the key (or version) does not exist |
//! | 4 | request refused: bad input, algorithm that does not fit the key, disabled key, name taken, decryption failed, unsupported |
//! | 5 | configuration or authentication: bad provider URL/config, wrong passphrase, corrupt keystore |
//! | 6 | reading the input or writing the output failed |
//! | 7 | the provider failed or is unavailable (retrying may help) |
//!
//! Errors print one line, `error: ...`, naming what was wrong and how to fix it, and never
//! contain key material, plaintext or passphrases.

//!
//! ## Your own provider
//!
//! A provider outside this workspace cannot be compiled into the `hsm` binary, but an
//! application can build its own: register the provider's scheme with
//! [`hsm::register_scheme`], then hand over to [`main`]. Every command, flag and variable
//! then works with the new scheme: `--provider acme:…`, `--config` with `provider = "acme"`,
//! `HSM_PROVIDER`, `HSM_CONFIG`, envelope recipients.
//!
//! ```no_run
//! # struct Acme;
//! # impl hsm::registry::Scheme for Acme {
//! #     fn provider(&self) -> &'static str { "acme" }
//! #     fn url_schemes(&self) -> &[&'static str] { &["acme"] }
//! #     fn url_form(&self) -> &'static str { "acme:" }
//! #     fn parse_url(&self, _: &str) -> hsm::Result<Box<dyn hsm::registry::ProviderSettings>> {
//! #         Ok(Box::new(hsm::local::LocalConfig::memory()))
//! #     }
//! # }
//! fn main() -> std::process::ExitCode {
//!     // `Acme` implements `hsm::registry::Scheme` (see the `hsm::registry` docs).
//!     if let Err(e) = hsm::register_scheme(Acme) {
//!         eprintln!("error: {e}");
//!         return std::process::ExitCode::from(5);
//!     }
//!     hsm_cli::main()
//! }
//! ```

mod cli;
mod commands;
mod envelope;
mod failure;
mod io;
mod pin;
mod signers;

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the command line in the process's arguments and returns its exit status: the
/// `hsm` binary's `main`, and an application's own after it registered its providers.
pub fn main() -> ExitCode {
    ExitCode::from(run(std::env::args_os()))
}

/// Runs the command line `args` (the first is the program name, as in
/// [`std::env::args_os`]) and returns its exit code (see [Exit codes](#exit-codes)). Usage
/// errors, `--help` and `--version` print as the binary does and return 2 or 0 instead of
/// exiting. Output goes to the process's standard output and error.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::Parser as _;
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // If stdout or stderr is gone there is nobody to tell; the code still says it.
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(failure::code::USAGE);
        }
    };
    if cli.verbose {
        verbose();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&failure::Failure::Io {
                action: "cannot start the async runtime".into(),
                source: e,
            });
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(f) if f.is_broken_pipe() => failure::code::OK,
        Err(f) => fail(&f),
    }
}

/// `-v`: the layers' events (one per attempt, one per operation with its latency; see
/// `hsm_layers`) go to stderr as `hsm: …` lines. The events carry key names, never key
/// material or data.
fn verbose() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::prelude::*;
    let events = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_span_events(FmtSpan::NONE)
        .compact();
    let only_layers =
        Targets::new().with_target("hsm_layers", tracing_subscriber::filter::LevelFilter::DEBUG);
    // A subscriber already set (an application's own, or an earlier `run` in this process)
    // keeps the first one.
    let _ = tracing_subscriber::registry().with(events.with_filter(only_layers)).try_init();
}

fn fail(f: &failure::Failure) -> u8 {
    use std::io::Write as _;
    // If stderr itself is gone there is nobody to tell; the exit code still says it.
    let _ = writeln!(std::io::stderr().lock(), "error: {}", f.message());
    f.exit_code()
}
