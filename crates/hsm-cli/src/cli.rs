//! The command line, as clap types.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hsm::{
    EncryptionAlgorithm, KeyRef, KeySpec, KeyUsage, ParseNameError, SignatureAlgorithm, WrapAlgorithm,
};

const ABOUT: &str = "Manage keys and encrypt, sign, wrap and MAC with them, on any hsm provider";

const LONG_ABOUT: &str = "\
Manage keys and encrypt, sign, wrap and MAC with them, on any hsm provider.

The provider comes from --provider URL, --config FILE, or the environment (HSM_PROVIDER=URL,
HSM_CONFIG=FILE). With none of these, hsm uses a local keystore at $HSM_HOME/keystore
(HSM_HOME defaults to the platform data directory + /hsm), encrypted under the passphrase in
HSM_PASSPHRASE if set, else under a random master key kept beside it (keystore.key, mode 0600).

Provider URLs: local:///abs/path/to/keystore, local:relative/path, memory: (a throw-away
in-memory store), aws-kms://?region=R[&endpoint=URL][&profile=P] (AWS KMS; credentials from
the standard AWS chain), pkcs11:token=LABEL?module-path=/path/to/module.so&pin-source=file:PATH
(a PKCS#11 token, RFC 7512; pin-env=VAR reads the PIN from a variable),
azure-keyvault://NAME.vault.azure.net or NAME.managedhsm.azure.net (Azure Key Vault / Managed
HSM; credentials from the standard Azure chain, or credential=token with HSM_AZURE_ACCESS_TOKEN;
an emulator: azure-keyvault://127.0.0.1:PORT?ca=/path/ca.pem[&kind=managed-hsm]).
gcp-kms://projects/P/locations/L/keyRings/R[?endpoint=URL][&create_key_ring=true] (Google Cloud
KMS; Application Default Credentials, anonymous for a loopback endpoint).

Inputs (-i) and outputs (-o) default to stdin and stdout ('-' too). Data is binary; --base64
armours what hsm produces (ciphertexts, signatures, wrapped keys, MAC tags) and accepts it
armoured on the way back in. Output files are replaced atomically.";

const EXAMPLES: &str = "\
Examples:
  hsm key create payments --spec aes-256 --description 'Payment records' --tag env=prod
  echo 'secret' | hsm encrypt --key payments --base64 > secret.b64
  hsm decrypt --key payments --base64 -i secret.b64
  hsm key create signer --spec ec-p256
  hsm sign --key signer -i release.tar -o release.sig
  hsm verify --key signer --signature release.sig -i release.tar   # exit 0 valid, 1 invalid
  hsm key public signer -o signer.pem     # then: openssl dgst -sha256 -verify signer.pem ...
  hsm key list --tag env=prod --output json
  hsm encrypt --envelope --key payments --context tenant=acme -i backup.tar -o backup.hsm
  hsm envelope inspect backup.hsm
  hsm decrypt --key payments --context tenant=acme -i backup.hsm -o backup.tar
  hsm encrypt --envelope --key payments --recipient 'aws-kms://?region=eu-west-1#backup' -i db -o db.hsm
  hsm envelope rewrap db.hsm --add-recipient 'gcp-kms://projects/p/locations/l/keyRings/r#backup'

Exit codes:
  0 success (verify: valid)      1 verify/mac-verify: invalid     2 usage error
  3 key not found                4 request refused (bad input, disabled key, name taken,
                                   decryption failed, unsupported)
  5 configuration or passphrase  6 reading input / writing output  7 provider failure";

/// The `hsm` command line.
#[derive(Debug, Parser)]
#[command(name = "hsm", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Provider URL, e.g. local:///path/to/keystore or memory: [env: HSM_PROVIDER]
    #[arg(long, global = true, value_name = "URL", conflicts_with = "config")]
    pub(crate) provider: Option<String>,

    /// TOML configuration file choosing the provider [env: HSM_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Bound on each operation, retries included (e.g. 10s, 500ms); overrides the
    /// configuration's [timeout] operation / timeout=
    #[arg(long, global = true, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,

    /// Retries after the first attempt of each operation (0 to 20; 0 = never retry);
    /// overrides the configuration's [retry] / retries=
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=20))]
    pub(crate) retries: Option<u32>,

    /// Print each provider call's attempts (outcome, latency, backoff, Retry-After) and
    /// timing to stderr; never key material or data
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, inspect, rotate, enable, disable and delete keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Encrypt data; writes an hsm ciphertext that records the key, version and algorithm
    Encrypt(EncryptArgs),
    /// Decrypt an hsm ciphertext with the key version it records
    Decrypt(DecryptArgs),
    /// Sign data; writes the raw signature (DER for ECDSA), which openssl can verify
    Sign(SignArgs),
    /// Verify a raw signature: exit 0 and "valid", or exit 1 and "invalid"
    Verify(VerifyArgs),
    /// Wrap (encrypt) key material under a wrapping key; writes an hsm wrapped-key blob
    Wrap(WrapArgs),
    /// Unwrap an hsm wrapped-key blob
    Unwrap(UnwrapArgs),
    /// Compute an HMAC tag with an hmac-* key; writes the raw tag
    Mac(MacArgs),
    /// Check an HMAC tag: exit 0 and "valid", or exit 1 and "invalid"
    MacVerify(MacVerifyArgs),
    /// Look inside envelopes (`hsm encrypt --envelope`) without any provider call
    #[command(subcommand)]
    Envelope(EnvelopeCommand),
    /// X.509: self-signed and CA certificates, CSRs, certificates issued by a provider-held CA
    #[command(subcommand)]
    X509(crate::signers::X509Command),
    /// JWT: sign claims with a provider key, verify tokens (exit 0 valid, 1 invalid)
    #[command(subcommand)]
    Jwt(crate::signers::JwtCommand),
    /// Serve provider keys to ssh, ssh-keygen -Y sign and git over an SSH agent socket
    SshAgent(crate::signers::SshAgentArgs),
    /// Print a shell completion script
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key
    Create {
        /// Key name: 1-63 letters, digits, '-' and '_'
        name: String,
        /// Key type and size (original upper-case names such as RSA_2048 work too)
        #[arg(long, value_parser = Vocab::<KeySpec>::new())]
        spec: KeySpec,
        /// What the key is for [default: encrypt for AES/RSA, sign for EC/Ed25519, mac for HMAC]
        #[arg(long, value_parser = Vocab::<KeyUsage>::new())]
        usage: Option<KeyUsage>,
        /// Free-form description
        #[arg(long)]
        description: Option<String>,
        /// A tag KEY=VALUE (repeat for more)
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List keys, optionally only those carrying every given tag
    List {
        /// Only keys with this tag KEY=VALUE (repeat: all must match)
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show a key's metadata (NAME or NAME@VERSION)
    Show {
        /// The key
        #[arg(value_parser = parse_key_ref)]
        name: KeyRef,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Make a new current version; older versions keep decrypting and verifying
    Rotate {
        /// The key
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Disable a key: every operation with it fails until it is enabled
    Disable {
        /// The key
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Enable a disabled key
    Enable {
        /// The key
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Schedule a key's deletion (cancel with cancel-delete before the date)
    Delete {
        /// The key
        name: String,
        /// Days until deletion; 0 deletes now, irrevocably [default: the provider's, 30 for local]
        #[arg(long)]
        days: Option<u32>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Cancel a scheduled deletion; the key comes back disabled
    CancelDelete {
        /// The key
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print the public key of an asymmetric key (NAME or NAME@VERSION): PEM, DER, JWK or OpenSSH
    Public {
        /// The key
        #[arg(value_parser = parse_key_ref)]
        name: KeyRef,
        /// Output format
        #[arg(long, value_enum, default_value_t = crate::signers::PublicFormat::Pem)]
        format: crate::signers::PublicFormat,
        /// Write to FILE instead of stdout
        #[arg(short = 'o', long = "out", value_name = "FILE", default_value = "-")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvelopeCommand {
    /// Print an envelope's header: version, suite, segment size, encryption context and
    /// recipients (provider, key, key version, algorithm). Reads only the header and calls
    /// no provider.
    Inspect {
        /// The envelope ('-' for stdin)
        #[arg(value_name = "FILE", default_value = "-")]
        file: PathBuf,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Change an envelope's recipients by rewriting its header alone: the encrypted body's
    /// bytes are not touched. Opening the data key needs one working recipient (k groups for
    /// a threshold envelope): the provider's --key, --recipient, or [[envelope.recipients]]
    Rewrap(RewrapArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RewrapArgs {
    /// The envelope file, rewritten in place (atomically)
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// A key of the configured provider that can open the data key
    #[arg(long, value_name = "NAME", value_parser = parse_key_ref)]
    pub(crate) key: Option<KeyRef>,
    /// Another recipient that can open the data key (repeatable)
    #[arg(long = "recipient", value_name = "PROVIDER_URL#KEY", value_parser = parse_recipient)]
    pub(crate) recipients: Vec<hsm::RecipientConfig>,
    /// Add a recipient (repeatable): the data key is protected under its current version
    #[arg(long = "add-recipient", value_name = "PROVIDER_URL#KEY", value_parser = parse_recipient)]
    pub(crate) add: Vec<hsm::RecipientConfig>,
    /// Remove every stanza of this key (repeatable): KEY, or PROVIDER_URL#KEY to name the
    /// provider too
    #[arg(long = "remove-recipient", value_name = "[PROVIDER_URL#]KEY")]
    pub(crate) remove: Vec<String>,
    /// Re-protect each stanza under its key's current version (after a rotation, so the
    /// old versions can be disabled)
    #[arg(long)]
    pub(crate) to_current_versions: bool,
    /// Require this encryption-context pair KEY=VALUE (repeatable)
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub(crate) context: Vec<(String, String)>,
}

/// How metadata is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text
    #[value(alias = "text")]
    Table,
    /// JSON
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Debug, Args)]
pub(crate) struct Io {
    /// Read from FILE ('-' for stdin)
    #[arg(short = 'i', long = "in", value_name = "FILE", default_value = "-")]
    pub(crate) input: PathBuf,
    /// Write to FILE ('-' for stdout); written atomically
    #[arg(short = 'o', long = "out", value_name = "FILE", default_value = "-")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArg {
    /// The key (NAME, or NAME@VERSION to pin a version)
    #[arg(long, value_name = "NAME", value_parser = parse_key_ref)]
    pub(crate) key: KeyRef,
}

#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// Encryption algorithm [default: aes-gcm for AES keys, rsa-oaep-sha256 for RSA keys]
    #[arg(long, value_parser = Vocab::<EncryptionAlgorithm>::new())]
    pub(crate) algorithm: Option<EncryptionAlgorithm>,
    /// Additional authenticated data (AES-GCM); decrypt needs the same text. Envelopes
    /// take --context instead
    #[arg(long, value_name = "TEXT", conflicts_with = "envelope")]
    pub(crate) aad: Option<String>,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Write the ciphertext as base64 (an envelope is then built in memory)
    #[arg(long)]
    pub(crate) base64: bool,
    /// Envelope encryption for data of any size, streamed in constant memory: a fresh data
    /// key, wrapped or encrypted by --key (usage wrap or encrypt), encrypts the data locally
    /// in 64 KiB AES-256-GCM segments on every core. `hsm decrypt` recognises envelopes by
    /// themselves; `hsm envelope inspect` shows their header
    #[arg(long, conflicts_with = "algorithm")]
    pub(crate) envelope: bool,
    /// With --envelope: an encryption-context pair KEY=VALUE stored in the header in the
    /// clear, authenticated, and given to the provider (repeat for more). Not secret
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context, requires = "envelope")]
    pub(crate) context: Vec<(String, String)>,
    /// With --envelope: also protect the data key under this recipient, any provider and key
    /// (repeat for more; [[envelope.recipients]] in a TOML configuration adds more). Each
    /// recipient alone opens the envelope, unless --threshold
    #[arg(long = "recipient", value_name = "PROVIDER_URL#KEY", value_parser = parse_recipient, requires = "envelope")]
    pub(crate) recipients: Vec<hsm::RecipientConfig>,
    /// With recipients: seal once N of them have protected the data key (default: all); a
    /// warning names the ones that failed
    #[arg(long, value_name = "N", requires = "envelope")]
    pub(crate) min_recipients: Option<usize>,
    /// With recipients: split the data key with Shamir's scheme so that any K recipients
    /// (the provider's --key counts as one) open the envelope, and fewer learn nothing
    #[arg(long, value_name = "K", requires = "envelope")]
    pub(crate) threshold: Option<u8>,
    /// Write the provider-native ciphertext (e.g. an AWS CiphertextBlob, raw Key Vault or
    /// Cloud KMS bytes) that the vendor's own tools decrypt, instead of an hsm ciphertext.
    /// It records nothing: decrypting it needs `hsm decrypt --native` with the same key
    /// (and --key-version after a rotation)
    #[arg(long, conflicts_with = "envelope")]
    pub(crate) native: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// The additional authenticated data given to encrypt (or to a version-1 envelope)
    #[arg(long, value_name = "TEXT")]
    pub(crate) aad: Option<String>,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Read the ciphertext as base64 (an envelope is then opened in memory)
    #[arg(long)]
    pub(crate) base64: bool,
    /// For an envelope: require this encryption-context pair KEY=VALUE (repeat: all must be
    /// there); refused before any provider call when it is missing
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub(crate) context: Vec<(String, String)>,
    /// For an envelope: another recipient that may open it, tried (hedged) after the
    /// provider's --key (repeatable; [[envelope.recipients]] adds more)
    #[arg(long = "recipient", value_name = "PROVIDER_URL#KEY", value_parser = parse_recipient, conflicts_with = "native")]
    pub(crate) recipients: Vec<hsm::RecipientConfig>,
    /// For an envelope in a file: decrypt only LEN plaintext bytes from OFFSET (e.g.
    /// 1048576:4096), reading only the segments they lie in
    #[arg(long, value_name = "OFFSET:LEN", value_parser = parse_range, conflicts_with_all = ["native", "base64"])]
    pub(crate) range: Option<std::ops::Range<u64>>,
    /// The input is a provider-native ciphertext made by the vendor's own tools (or by
    /// `hsm encrypt --native`) under --key, not an hsm ciphertext
    #[arg(long)]
    pub(crate) native: bool,
    /// With --native: the algorithm it was made with [default: the key's natural one]
    #[arg(long, requires = "native", value_parser = Vocab::<EncryptionAlgorithm>::new())]
    pub(crate) algorithm: Option<EncryptionAlgorithm>,
    /// With --native: the key version it was made with [default: the current version;
    /// same as --key NAME@VERSION]
    #[arg(long, requires = "native", value_name = "VERSION")]
    pub(crate) key_version: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// Signature algorithm [default: rsa-pss-sha256 for RSA, the curve's ECDSA, ed25519]
    #[arg(long, value_parser = Vocab::<SignatureAlgorithm>::new())]
    pub(crate) algorithm: Option<SignatureAlgorithm>,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Write the signature as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// Signature algorithm [default: as for sign]
    #[arg(long, value_parser = Vocab::<SignatureAlgorithm>::new())]
    pub(crate) algorithm: Option<SignatureAlgorithm>,
    /// The raw signature file ('-' for stdin)
    #[arg(long, value_name = "FILE")]
    pub(crate) signature: PathBuf,
    /// The signed data ('-' for stdin)
    #[arg(short = 'i', long = "in", value_name = "FILE", default_value = "-")]
    pub(crate) input: PathBuf,
    /// Read the signature as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WrapArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// Wrapping algorithm [default: aes-key-wrap-pad for AES keys, rsa-oaep-sha256 for RSA keys]
    #[arg(long, value_parser = Vocab::<WrapAlgorithm>::new())]
    pub(crate) algorithm: Option<WrapAlgorithm>,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Write the wrapped key as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UnwrapArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Read the wrapped key as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MacArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    #[command(flatten)]
    pub(crate) io: Io,
    /// Write the tag as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MacVerifyArgs {
    #[command(flatten)]
    pub(crate) key: KeyArg,
    /// The raw tag file ('-' for stdin)
    #[arg(long, value_name = "FILE")]
    pub(crate) tag: PathBuf,
    /// The data ('-' for stdin)
    #[arg(short = 'i', long = "in", value_name = "FILE", default_value = "-")]
    pub(crate) input: PathBuf,
    /// Read the tag as base64
    #[arg(long)]
    pub(crate) base64: bool,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("tag '{s}' must look like KEY=VALUE, e.g. env=prod")),
    }
}

fn parse_context(s: &str) -> Result<(String, String), String> {
    hsm::envelope::Context::parse_pair(s)
        .map_err(|_| format!("context '{s}' must look like KEY=VALUE, e.g. tenant=acme"))
}

fn parse_recipient(s: &str) -> Result<hsm::RecipientConfig, String> {
    hsm::RecipientConfig::parse(s).map_err(|e| match e {
        hsm::Error::Config { message, .. } => message,
        e => e.to_string(),
    })
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("range '{s}' must look like OFFSET:LEN in bytes, e.g. 1048576:4096");
    let (offset, len) = s.split_once(':').ok_or_else(bad)?;
    let offset: u64 = offset.trim().parse().map_err(|_| bad())?;
    let len: u64 = len.trim().parse().map_err(|_| bad())?;
    Ok(offset..offset.saturating_add(len))
}

fn parse_key_ref(s: &str) -> Result<KeyRef, String> {
    if s.is_empty() {
        return Err("the key name is empty".into());
    }
    // Infallible: `name` or `name@version`.
    Ok(KeyRef::from_str(s).unwrap_or_else(|never| match never {}))
}

/// A vocabulary enum of hsm-core: parses every accepted spelling, offers the short names
/// to help and shell completion.
pub(crate) trait Named: FromStr<Err = ParseNameError> + Clone + Send + Sync + 'static {
    fn names() -> Vec<&'static str>;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn names() -> Vec<&'static str> {
                <$t>::ALL.iter().map(|v| v.as_str()).collect()
            }
        }
    )*};
}
named!(KeySpec, KeyUsage, EncryptionAlgorithm, SignatureAlgorithm, WrapAlgorithm);

/// clap value parser for [`Named`] types.
#[derive(Clone)]
pub(crate) struct Vocab<T>(PhantomData<fn() -> T>);

impl<T> Vocab<T> {
    pub(crate) fn new() -> Self {
        Vocab(PhantomData)
    }
}

impl<T: Named> TypedValueParser for Vocab<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let arg = arg.map(ToString::to_string).unwrap_or_else(|| "...".to_owned());
        let Some(s) = value.to_str() else {
            return Err(clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("the value of '{arg}' is not UTF-8\n"),
            )
            .with_cmd(cmd));
        };
        s.parse::<T>().map_err(|e| {
            clap::Error::raw(ErrorKind::InvalidValue, format!("invalid value '{s}' for '{arg}': {e}\n"))
                .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(T::names().into_iter().map(PossibleValue::new)))
    }
}
