//! What each command does.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use hsm::{Ciphertext, Client, Config, CreateKey, Deletion, KeyInfo, KeyRef, ListKeys, WrappedKey};
use serde::Serialize;

use crate::cli::{Cli, Command, EnvelopeCommand, Format, KeyCommand};
use crate::failure::{Failure, code};
use crate::io::{Secrecy, print, read_all, read_artifact, refuse_binary_tty, write_all, write_artifact};

/// Runs the command and returns the exit code for a command that completed
/// (0, or 1 for a signature or tag that does not verify).
pub(crate) async fn run(cli: Cli) -> Result<u8, Failure> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "hsm", &mut script);
        write_all(Path::new("-"), &script, Secrecy::Public)?;
        return Ok(code::OK);
    }
    if let Command::Envelope(EnvelopeCommand::Inspect { file, output }) = &cli.command {
        return crate::envelope::inspect(file, output.output).await;
    }
    let timeout = match cli.timeout.as_deref() {
        Some(t) => {
            Some(hsm::settings::parse_duration("hsm", "--timeout", t, std::time::Duration::from_secs(3600))?)
        }
        None => None,
    };
    let (client, envelope) =
        connect(cli.provider.as_deref(), cli.config.as_deref(), timeout, cli.retries).await?;
    match cli.command {
        Command::Envelope(EnvelopeCommand::Rewrap(a)) => {
            crate::envelope::rewrap(&client, &envelope, &a).await
        }
        Command::Completions { .. } | Command::Envelope(_) => Ok(code::OK),
        Command::Key(cmd) => key(&client, cmd).await.map(|()| code::OK),
        Command::Encrypt(a) if a.envelope => crate::envelope::encrypt(&client, &envelope, &a).await,
        Command::Encrypt(a) => {
            refuse_binary_tty(&a.io.out, a.base64)?;
            let plaintext = read_all(&a.io.input)?;
            let ct = match a.aad.as_deref().map(str::as_bytes) {
                Some(aad) => client.encrypt_with_aad(a.key.key, &plaintext, a.algorithm, aad).await?,
                None => client.encrypt(a.key.key, &plaintext, a.algorithm).await?,
            };
            // The native form is the provider's own ciphertext, which hsm's format wraps.
            let out = if a.native { ct.as_bytes().to_vec() } else { ct.to_bytes() };
            write_artifact(&a.io.out, &out, a.base64)?;
            Ok(code::OK)
        }
        Command::Decrypt(a) => {
            let blob = if a.native || a.base64 {
                read_artifact(&a.io.input, a.base64, "ciphertext")?
            } else {
                // Envelopes stream; anything else is a single-call blob read whole.
                let (head, mut input, size) = crate::envelope::sniff(&a.io.input).await?;
                if hsm::envelope::is_envelope(&head) {
                    return crate::envelope::decrypt(&client, &envelope, &a, head, input, size).await;
                }
                let mut blob = head;
                tokio::io::AsyncReadExt::read_to_end(&mut input, &mut blob)
                    .await
                    .map_err(|e| Failure::read(&a.io.input, e))?;
                blob
            };
            if a.range.is_some() {
                return Err(Failure::Input(
                    "--range applies to envelopes only (hsm encrypt --envelope)".into(),
                ));
            }
            if !a.recipients.is_empty() && !hsm::envelope::is_envelope(&blob) {
                return Err(Failure::Input(
                    "--recipient applies to envelopes only (hsm encrypt --envelope)".into(),
                ));
            }
            if !a.context.is_empty() && !hsm::envelope::is_envelope(&blob) {
                return Err(Failure::Input(
                    "--context applies to envelopes only; single-call ciphertexts take --aad".into(),
                ));
            }
            if a.native {
                let ct = native_ciphertext(&client, &a, blob).await?;
                let plaintext = match &a.aad {
                    Some(aad) => client.decrypt_with_aad(&ct, aad.as_bytes()).await?,
                    None => client.decrypt(&ct).await?,
                };
                write_all(&a.io.out, &plaintext, Secrecy::Secret)?;
                return Ok(code::OK);
            }
            if hsm::envelope::is_envelope(&blob) {
                return crate::envelope::decrypt_in_memory(&client, &envelope, &a, &blob).await;
            }
            let ct = Ciphertext::from_bytes(&blob).map_err(|e| not_a_blob(e, a.base64))?;
            same_key(&a.key.key, ct.key(), ct.version(), "ciphertext")?;
            let plaintext = match &a.aad {
                Some(aad) => client.decrypt_with_aad(&ct, aad.as_bytes()).await?,
                None => client.decrypt(&ct).await?,
            };
            write_all(&a.io.out, &plaintext, Secrecy::Secret)?;
            Ok(code::OK)
        }
        Command::Sign(a) => {
            refuse_binary_tty(&a.io.out, a.base64)?;
            let message = read_all(&a.io.input)?;
            let sig = client.sign(a.key.key, &message, a.algorithm).await?;
            write_artifact(&a.io.out, sig.as_bytes(), a.base64)?;
            Ok(code::OK)
        }
        Command::Verify(a) => {
            one_stdin(&a.input, &a.signature, "--signature")?;
            let sig = read_artifact(&a.signature, a.base64, "signature")?;
            let message = read_all(&a.input)?;
            let valid = client.verify(a.key.key, &message, &sig, a.algorithm).await?;
            verdict(valid)
        }
        Command::Wrap(a) => {
            refuse_binary_tty(&a.io.out, a.base64)?;
            let material = read_all(&a.io.input)?;
            let wrapped = client.wrap_key(a.key.key, &material, a.algorithm).await?;
            write_artifact(&a.io.out, &wrapped.to_bytes(), a.base64)?;
            Ok(code::OK)
        }
        Command::Unwrap(a) => {
            let blob = read_artifact(&a.io.input, a.base64, "wrapped key")?;
            let wrapped = WrappedKey::from_bytes(&blob).map_err(|e| not_a_blob(e, a.base64))?;
            same_key(&a.key.key, wrapped.key(), wrapped.version(), "wrapped key")?;
            let material = client.unwrap_key(&wrapped).await?;
            write_all(&a.io.out, &material, Secrecy::Secret)?;
            Ok(code::OK)
        }
        Command::Mac(a) => {
            refuse_binary_tty(&a.io.out, a.base64)?;
            let message = read_all(&a.io.input)?;
            let tag = client.mac(a.key.key, &message).await?;
            write_artifact(&a.io.out, tag.as_bytes(), a.base64)?;
            Ok(code::OK)
        }
        Command::X509(c) => crate::signers::x509(&client, c).await,
        Command::Jwt(c) => crate::signers::jwt(&client, c).await,
        Command::SshAgent(a) => crate::signers::ssh_agent(&client, a).await,
        Command::MacVerify(a) => {
            one_stdin(&a.input, &a.tag, "--tag")?;
            let tag = read_artifact(&a.tag, a.base64, "MAC tag")?;
            let message = read_all(&a.input)?;
            let valid = client.verify_mac(a.key.key, &message, &tag).await?;
            verdict(valid)
        }
    }
}

/// Picks the provider: --provider, --config, HSM_PROVIDER / HSM_CONFIG, else the
/// local keystore under $HSM_HOME; with the configuration's envelope recipients.
async fn connect(
    provider: Option<&str>,
    config: Option<&Path>,
    timeout: Option<std::time::Duration>,
    retries: Option<u32>,
) -> Result<(Client, hsm::EnvelopeConfig), Failure> {
    let config = if let Some(url) = provider {
        Config::from_url(url)
            .map_err(|e| with_context(e, "--provider"))?
            .with_passphrase_from_env(hsm::ENV_PASSPHRASE)?
    } else if let Some(file) = config {
        Config::from_file(file)?
    } else if let Some(config) = Config::try_from_env()? {
        config
    } else {
        let home = hsm_home()?;
        Config::local(home.join("keystore")).with_passphrase_from_env(hsm::ENV_PASSPHRASE)?
    };
    let layers = config.layers().clone().with_timeout(timeout).with_retries(retries);
    let mut config = config.with_layers(layers);
    crate::pin::supply(&mut config)?;
    let envelope = config.envelope().clone();
    Ok((Client::connect(config).await?, envelope))
}

fn with_context(e: hsm::Error, flag: &str) -> hsm::Error {
    match e {
        hsm::Error::Config { provider, message } => {
            hsm::Error::config(provider, format!("{flag}: {message}"))
        }
        e => e,
    }
}

/// `$HSM_HOME`, or the platform data directory + `/hsm`; created (mode 0700) if missing.
fn hsm_home() -> Result<PathBuf, Failure> {
    let home = match std::env::var_os("HSM_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => dirs::data_dir().map(|d| d.join("hsm")).ok_or_else(|| {
            Failure::Hsm(hsm::Error::config(
                "hsm",
                "cannot find this platform's data directory; set HSM_HOME to a directory for the \
                 keystore, or pass --provider",
            ))
        })?,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&home).map_err(|e| Failure::Io {
        action: format!(
            "cannot create the hsm home directory '{}' (set HSM_HOME to change it)",
            home.display()
        ),
        source: e,
    })?;
    Ok(home)
}

fn verdict(valid: bool) -> Result<u8, Failure> {
    print(if valid { "valid\n" } else { "invalid\n" })?;
    Ok(if valid { code::OK } else { code::INVALID })
}

fn one_stdin(input: &Path, other: &Path, flag: &str) -> Result<(), Failure> {
    if input.as_os_str() == "-" && other.as_os_str() == "-" {
        return Err(Failure::Input(format!(
            "only one of -i and {flag} can read standard input; give the other as a file"
        )));
    }
    Ok(())
}

fn not_a_blob(e: hsm::Error, base64: bool) -> Failure {
    let hint = if base64 {
        " (if the provider's own tools made it, add --native)"
    } else {
        " (if it is base64, add --base64; if the provider's own tools made it, add --native)"
    };
    Failure::Input(format!("{}{hint}", e.to_string().trim_start_matches("hsm: invalid input: ")))
}

/// `--key` must name the key the blob was made with (and its version, if pinned).
fn same_key(key: &KeyRef, blob_key: &str, blob_version: &str, what: &str) -> Result<(), Failure> {
    if key.name() != blob_key {
        return Err(Failure::Input(format!(
            "this {what} was made with key '{blob_key}', not '{}'; pass --key {blob_key}",
            key.name()
        )));
    }
    if let Some(v) = key.version()
        && v != blob_version
    {
        return Err(Failure::Input(format!(
            "this {what} was made with version {blob_version} of key '{blob_key}', not version {v}; \
             pass --key {blob_key} (the version is taken from the {what})"
        )));
    }
    Ok(())
}

async fn key(client: &Client, cmd: KeyCommand) -> Result<(), Failure> {
    match cmd {
        KeyCommand::Create { name, spec, usage, description, tags, output } => {
            let mut req = CreateKey::new(name, spec).description(description.unwrap_or_default()).tags(tags);
            if let Some(usage) = usage {
                req = req.usage(usage);
            }
            let info = client.create_key(req).await?;
            let line = format!(
                "created key '{}': {}, usage {}, version {}\n",
                info.name, info.spec, info.usage, info.version
            );
            emit(output.output, &info, || Ok(line))
        }
        KeyCommand::List { tags, output } => {
            let req = tags.into_iter().fold(ListKeys::new(), |req, (k, v)| req.tag(k, v));
            let keys = client.list_keys_matching(req).await?;
            emit(output.output, &keys, || table(&keys))
        }
        KeyCommand::Show { name, output } => {
            let info = client.get_key(name).await?;
            emit(output.output, &info, || details(&info))
        }
        KeyCommand::Rotate { name, output } => {
            let info = client.rotate_key(name).await?;
            let line = format!(
                "rotated key '{}': version {} is now current (older versions still decrypt and verify)\n",
                info.name, info.version
            );
            emit(output.output, &info, || Ok(line))
        }
        KeyCommand::Disable { name, output } => {
            let info = client.disable_key(name).await?;
            let line = format!("key '{}' is now {}\n", info.name, info.state);
            emit(output.output, &info, || Ok(line))
        }
        KeyCommand::Enable { name, output } => {
            let info = client.enable_key(name).await?;
            let line = format!("key '{}' is now {}\n", info.name, info.state);
            emit(output.output, &info, || Ok(line))
        }
        KeyCommand::Delete { name, days, output } => {
            let deletion = client.schedule_key_deletion(name, days).await?;
            emit(output.output, &deletion, || deletion_line(&deletion))
        }
        KeyCommand::CancelDelete { name, output } => {
            let info = client.cancel_key_deletion(name).await?;
            let line = format!(
                "deletion of key '{}' cancelled; the key is {} (`hsm key enable {}` to use it)\n",
                info.name, info.state, info.name
            );
            emit(output.output, &info, || Ok(line))
        }
        KeyCommand::Public { name, format, out } => {
            crate::signers::public_key(client, name, format, &out).await
        }
    }
}

/// Prints `value` as JSON, or the text `text` builds.
fn emit<T: Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce() -> Result<String, Failure>,
) -> Result<(), Failure> {
    let out = match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(value)
                .map_err(|e| Failure::Input(format!("cannot render JSON: {e}")))?;
            s.push('\n');
            s
        }
        Format::Table => text()?,
    };
    print(&out)
}

/// A key's JSON fields, so text output shows times exactly as JSON does.
fn fields(info: &KeyInfo) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    match serde_json::to_value(info) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Failure::Input("key metadata did not render as a JSON object".into())),
        Err(e) => Err(Failure::Input(format!("cannot render key metadata: {e}"))),
    }
}

fn text_of(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn tags_text(info: &KeyInfo) -> String {
    info.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn details(info: &KeyInfo) -> Result<String, Failure> {
    let f = fields(info)?;
    let mut rows = vec![
        ("name", info.name.clone()),
        ("version", info.version.clone()),
        ("versions", info.versions.join(", ")),
        ("spec", info.spec.to_string()),
        ("usage", info.usage.to_string()),
        ("state", info.state.to_string()),
        ("description", info.description.clone()),
        ("tags", tags_text(info)),
        ("created", text_of(f.get("created"))),
    ];
    if info.deletion_date.is_some() {
        rows.push(("deletion_date", text_of(f.get("deletion_date"))));
    }
    rows.push(("native_id", info.native_id.clone()));
    Ok(rows.iter().map(|(k, v)| format!("{:<14}{v}\n", format!("{k}:"))).collect())
}

fn table(keys: &[KeyInfo]) -> Result<String, Failure> {
    const HEAD: [&str; 7] = ["NAME", "VERSION", "SPEC", "USAGE", "STATE", "CREATED", "TAGS"];
    if keys.is_empty() {
        return Ok("no keys\n".to_owned());
    }
    let mut rows = vec![HEAD.map(str::to_owned).to_vec()];
    for k in keys {
        let f = fields(k)?;
        rows.push(vec![
            k.name.clone(),
            k.version.clone(),
            k.spec.to_string(),
            k.usage.to_string(),
            k.state.to_string(),
            text_of(f.get("created")),
            tags_text(k),
        ]);
    }
    let widths: Vec<usize> =
        (0..HEAD.len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

fn deletion_line(d: &Deletion) -> Result<String, Failure> {
    if d.immediate {
        return Ok(format!("key '{}' deleted\n", d.key));
    }
    let when = match serde_json::to_value(d) {
        Ok(v) => text_of(v.get("deletion_date")),
        Err(e) => return Err(Failure::Input(format!("cannot render the deletion date: {e}"))),
    };
    Ok(format!(
        "key '{}' will be deleted at {when}; until then it refuses use (`hsm key cancel-delete {}` to keep it)\n",
        d.key, d.key
    ))
}

/// Wraps the bytes of a provider-native ciphertext (`decrypt --native`) in a [`Ciphertext`]
/// for the key, version and algorithm given (or the key's current version and natural
/// algorithm).
async fn native_ciphertext(
    client: &Client,
    a: &crate::cli::DecryptArgs,
    blob: Vec<u8>,
) -> Result<Ciphertext, Failure> {
    let version = match (a.key.key.version(), a.key_version.as_deref()) {
        (Some(pinned), Some(flag)) if pinned != flag => {
            return Err(Failure::Input(format!(
                "--key pins version {pinned} but --key-version says {flag}; give one of them"
            )));
        }
        (pinned, flag) => pinned.or(flag).map(str::to_owned),
    };
    let info = client.get_key(KeyRef::new(a.key.key.name())).await?;
    let algorithm = match a.algorithm.or(info.spec.default_encryption_algorithm()) {
        Some(alg) => alg,
        None => {
            return Err(Failure::Input(format!(
                "key '{}' is a {} key, which has no encryption algorithm; pass --algorithm",
                info.name, info.spec
            )));
        }
    };
    if blob.is_empty() {
        return Err(Failure::Input("the native ciphertext is empty".into()));
    }
    Ok(Ciphertext::new(info.name, version.unwrap_or(info.version), algorithm, blob))
}
