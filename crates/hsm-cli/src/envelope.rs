//! Envelope encryption from the shell: streamed from and to files and pipes in constant
//! memory, with a progress bar on a terminal, and `hsm envelope inspect`.

use std::io::IsTerminal as _;
use std::path::Path;

use hsm::envelope::{
    Context, Header, Keyring, Opener, Protection, RecipientFailure, Rewrap, SealReport, Sealer,
};
use hsm::{Client, EnvelopeConfig, KeyRef, RecipientConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use crate::cli::{DecryptArgs, EncryptArgs, Format, RewrapArgs};
use crate::failure::{Failure, code};
use crate::io::{Secrecy, is_special, is_stdio, print, refuse_binary_tty};

/// Read and write in 1 MiB chunks: one batch of segments per system call.
const IO_BUF: usize = 1 << 20;

type Input = Box<dyn AsyncRead + Unpin + Send>;

/// Opens `path` (stdin for `-`) for streaming; returns its size when it is a regular file.
async fn open_input(path: &Path) -> Result<(Input, Option<u64>), Failure> {
    if is_stdio(path) {
        return Ok((Box::new(BufReader::with_capacity(IO_BUF, tokio::io::stdin())), None));
    }
    let file = tokio::fs::File::open(path).await.map_err(|e| Failure::read(path, e))?;
    let meta = file.metadata().await.map_err(|e| Failure::read(path, e))?;
    let size = meta.is_file().then_some(meta.len());
    Ok((Box::new(BufReader::with_capacity(IO_BUF, file)), size))
}

/// A progress bar over `size` input bytes on stderr, shown only when stderr is a terminal
/// and the size is known.
fn progress(size: Option<u64>, verb: &str) -> ProgressBar {
    let Some(size) = size.filter(|_| std::io::stderr().is_terminal()) else {
        return ProgressBar::hidden();
    };
    let style = ProgressStyle::with_template(&format!(
        "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr()).with_style(style)
}

/// Where the output goes: stdout, or a temporary file in the target's directory that is
/// renamed over it only when everything succeeded, so a failure leaves no output file.
struct Output {
    path: std::path::PathBuf,
    temp: Option<tempfile::NamedTempFile>,
    writer: BufWriter<Box<dyn AsyncWrite + Unpin + Send>>,
    secrecy: Secrecy,
}

impl Output {
    fn create(path: &Path, secrecy: Secrecy) -> Result<Output, Failure> {
        if is_stdio(path) {
            let out: Box<dyn AsyncWrite + Unpin + Send> = Box::new(tokio::io::stdout());
            return Ok(Output {
                path: path.to_owned(),
                temp: None,
                writer: BufWriter::with_capacity(IO_BUF, out),
                secrecy,
            });
        }
        if is_special(path) {
            let file =
                std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Failure::write(path, e))?;
            let out: Box<dyn AsyncWrite + Unpin + Send> = Box::new(tokio::fs::File::from_std(file));
            return Ok(Output {
                path: path.to_owned(),
                temp: None,
                writer: BufWriter::with_capacity(IO_BUF, out),
                secrecy,
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // tempfile creates the file with mode 0600.
        let temp = tempfile::Builder::new()
            .prefix(".hsm-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Failure::write(path, e))?;
        let file = temp.as_file().try_clone().map_err(|e| Failure::write(path, e))?;
        let out: Box<dyn AsyncWrite + Unpin + Send> = Box::new(tokio::fs::File::from_std(file));
        Ok(Output {
            path: path.to_owned(),
            temp: Some(temp),
            writer: BufWriter::with_capacity(IO_BUF, out),
            secrecy,
        })
    }

    /// The temporary file, when the output is one (for positional writes).
    fn file(&self) -> Option<std::fs::File> {
        self.temp.as_ref().and_then(|t| t.as_file().try_clone().ok())
    }

    /// Flushes, and for a file syncs it to disk and renames it into place.
    async fn commit(mut self) -> Result<(), Failure> {
        let path = self.path.clone();
        self.writer.flush().await.map_err(|e| Failure::write(&path, e))?;
        self.writer.shutdown().await.map_err(|e| Failure::write(&path, e))?;
        if let Some(temp) = self.temp.take() {
            #[cfg(unix)]
            if self.secrecy == Secrecy::Public {
                use std::os::unix::fs::PermissionsExt as _;
                temp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| Failure::write(&path, e))?;
            }
            temp.as_file().sync_all().map_err(|e| Failure::write(&path, e))?;
            temp.persist(&path).map_err(|e| Failure::write(&path, e.error))?;
        }
        Ok(())
    }
}

/// The input as a `std::fs::File` when it is a regular file (its size is known).
fn regular_file(path: &Path, size: Option<u64>) -> Result<Option<std::fs::File>, Failure> {
    if size.is_none() || is_stdio(path) {
        return Ok(None);
    }
    std::fs::File::open(path).map(Some).map_err(|e| Failure::read(path, e))
}

fn context(pairs: &[(String, String)]) -> Context {
    pairs.iter().cloned().collect()
}

/// An I/O failure inside the envelope library, told as the CLI tells its own.
fn io_failure(e: hsm::Error, input: &Path, output: &Path) -> Failure {
    match e {
        hsm::Error::Provider { code, message, source, .. } if code == "io" => {
            let source = source
                .and_then(|s| s.downcast::<std::io::Error>().ok())
                .map_or_else(|| std::io::Error::other(message.clone()), |b| *b);
            if message.starts_with("envelope read") || message.starts_with("envelope seek") {
                Failure::read(input, source)
            } else {
                Failure::write(output, source)
            }
        }
        e => Failure::Hsm(e),
    }
}

/// The keyring of a command: the configured provider's `key` first, then the configuration's
/// `[[envelope.recipients]]`, then `extra` (--recipient); `None` when there is nothing but
/// the provider's key (one recipient, the plain path).
async fn keyring(
    client: &Client,
    key: Option<&KeyRef>,
    config: &EnvelopeConfig,
    extra: &[RecipientConfig],
) -> Result<Option<Keyring>, Failure> {
    if config.recipients.is_empty() && extra.is_empty() && config.threshold.is_none() {
        return Ok(None);
    }
    let mut config = config.clone();
    config.recipients.extend(extra.iter().cloned());
    let first = key.map(|k| (client.provider().clone(), k.clone()));
    Ok(Some(config.keyring(first).await?))
}

/// One warning line per recipient that could not protect the data key.
fn warn_failed(failed: &[RecipientFailure], report: &SealReport) {
    for f in failed {
        eprintln!(
            "hsm: warning: recipient {} '{}' did not protect the data key ({}); the envelope has the other {} recipient(s)",
            f.provider,
            f.key,
            f.error,
            report.recipients.len()
        );
    }
}

/// `hsm encrypt --envelope`: streams the input through a [`Sealer`] into the output.
pub(crate) async fn encrypt(
    client: &Client,
    config: &EnvelopeConfig,
    a: &EncryptArgs,
) -> Result<u8, Failure> {
    refuse_binary_tty(&a.io.out, a.base64)?;
    let sealer = Sealer::new().context(context(&a.context));
    let key = a.key.key.clone();
    let mut config = config.clone();
    config.min_recipients = a.min_recipients.or(config.min_recipients);
    config.threshold = a.threshold.or(config.threshold);
    let ring = keyring(client, Some(&key), &config, &a.recipients).await?;
    if ring.is_none() && (a.min_recipients.is_some() || a.threshold.is_some()) {
        return Err(Failure::Input(
            "--min-recipients and --threshold need recipients besides --key: add --recipient PROVIDER_URL#KEY".into(),
        ));
    }
    if a.base64 {
        let plaintext = crate::io::read_all(&a.io.input)?;
        let sealed = match &ring {
            Some(ring) => {
                let (sealed, report) = sealer.seal_to(ring, &plaintext).await?;
                warn_failed(&report.failed, &report);
                sealed
            }
            None => sealer.seal(&**client.provider(), &key, &plaintext).await?,
        };
        crate::io::write_artifact(&a.io.out, &sealed, true)?;
        return Ok(code::OK);
    }
    let (mut input, size) = open_input(&a.io.input).await?;
    let bar = progress(size, "encrypting");
    let tick = bar.clone();
    let sealer = sealer.on_progress(move |n| tick.inc(n));
    let mut out = Output::create(&a.io.out, Secrecy::Public)?;
    let files = (regular_file(&a.io.input, size)?, out.file());
    let report = match (&ring, files) {
        // File to file: positional reads and writes on every core.
        (None, (Some(file), Some(target))) => {
            sealer.seal_file(&**client.provider(), &key, &file, &target).await.map(|_| None)
        }
        (None, _) => {
            sealer.seal_stream(&**client.provider(), &key, &mut input, &mut out.writer).await.map(|_| None)
        }
        (Some(ring), (Some(file), Some(target))) => sealer.seal_file_to(ring, &file, &target).await.map(Some),
        (Some(ring), _) => sealer.seal_stream_to(ring, &mut input, &mut out.writer).await.map(Some),
    };
    let report = report.map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    bar.finish_and_clear();
    out.commit().await?;
    if let Some(report) = report {
        warn_failed(&report.failed, &report);
    }
    Ok(code::OK)
}

/// Reads up to 5 bytes: enough to tell an envelope from a single-call blob.
pub(crate) async fn sniff(path: &Path) -> Result<(Vec<u8>, Input, Option<u64>), Failure> {
    let (mut input, size) = open_input(path).await?;
    let mut head = Vec::with_capacity(5);
    (&mut input).take(5).read_to_end(&mut head).await.map_err(|e| Failure::read(path, e))?;
    Ok((head, input, size))
}

fn opener(a: &DecryptArgs) -> Opener {
    let opener = Opener::new().expect_context(context(&a.context));
    match &a.aad {
        Some(aad) => opener.v1_aad(aad.as_bytes().to_vec()),
        None => opener,
    }
}

/// `--key` must name one of the envelope's recipients.
fn check_recipient(key: &KeyRef, header: &Header) -> Result<(), Failure> {
    let names: Vec<String> =
        header.recipients.iter().filter_map(|r| r.key()).map(|k| k.name().to_owned()).collect();
    if names.iter().any(|n| n == key.name()) {
        return Ok(());
    }
    Err(Failure::Input(format!(
        "this envelope's data key is protected by {}, not '{}'; pass --key {}",
        names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", "),
        key.name(),
        names.first().map_or("NAME", String::as_str),
    )))
}

/// `hsm decrypt` of an envelope: `head` holds the bytes already read from `input`.
pub(crate) async fn decrypt(
    client: &Client,
    config: &EnvelopeConfig,
    a: &DecryptArgs,
    head: Vec<u8>,
    input: Input,
    size: Option<u64>,
) -> Result<u8, Failure> {
    let ring = keyring(client, Some(&a.key.key), config, &a.recipients).await?;
    if let Some(range) = a.range.clone() {
        return decrypt_range(client, ring.as_ref(), a, range).await;
    }
    let bar = progress(size, "decrypting");
    let mut input = bar.wrap_async_read(std::io::Cursor::new(head).chain(input));
    let header =
        hsm::envelope::inspect(&mut input).await.map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    let mut out = Output::create(&a.io.out, Secrecy::Secret)?;
    let opened = match &ring {
        Some(ring) => opener(a).open_body(ring, &header, &mut input, &mut out.writer).await,
        None => {
            check_recipient(&a.key.key, &header)?;
            opener(a).open_body(&**client.provider(), &header, &mut input, &mut out.writer).await
        }
    };
    opened.map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    bar.finish_and_clear();
    out.commit().await?;
    Ok(code::OK)
}

async fn decrypt_range(
    client: &Client,
    ring: Option<&Keyring>,
    a: &DecryptArgs,
    range: std::ops::Range<u64>,
) -> Result<u8, Failure> {
    if is_stdio(&a.io.input) {
        return Err(Failure::Input(
            "--range needs the envelope in a file (-i FILE): it reads only the segments the range needs"
                .into(),
        ));
    }
    let path = &a.io.input;
    let mut file = tokio::fs::File::open(path).await.map_err(|e| Failure::read(path, e))?;
    let header = hsm::envelope::inspect(&mut file).await.map_err(|e| io_failure(e, path, &a.io.out))?;
    let mut out = Output::create(&a.io.out, Secrecy::Secret)?;
    let opened = match ring {
        Some(ring) => opener(a).open_range(ring, &mut file, range, &mut out.writer).await,
        None => {
            check_recipient(&a.key.key, &header)?;
            opener(a).open_range(&**client.provider(), &mut file, range, &mut out.writer).await
        }
    };
    opened.map_err(|e| io_failure(e, path, &a.io.out))?;
    out.commit().await?;
    Ok(code::OK)
}

/// An envelope decrypted from base64 (already in memory).
pub(crate) async fn decrypt_in_memory(
    client: &Client,
    config: &EnvelopeConfig,
    a: &DecryptArgs,
    sealed: &[u8],
) -> Result<u8, Failure> {
    let header = hsm::envelope::inspect_bytes(sealed)?;
    let plaintext = match keyring(client, Some(&a.key.key), config, &a.recipients).await? {
        Some(ring) => opener(a).open(&ring, sealed).await?,
        None => {
            check_recipient(&a.key.key, &header)?;
            opener(a).open(&**client.provider(), sealed).await?
        }
    };
    crate::io::write_all(&a.io.out, &plaintext, Secrecy::Secret)?;
    Ok(code::OK)
}

/// `hsm envelope rewrap`: a new header, the body's bytes unchanged.
pub(crate) async fn rewrap(client: &Client, config: &EnvelopeConfig, a: &RewrapArgs) -> Result<u8, Failure> {
    if a.add.is_empty() && a.remove.is_empty() && !a.to_current_versions {
        return Err(Failure::Input(
            "nothing to change: give --add-recipient, --remove-recipient or --to-current-versions".into(),
        ));
    }
    let mut opening = config.clone();
    opening.recipients.extend(a.recipients.iter().cloned());
    let ring = opening.keyring(a.key.as_ref().map(|k| (client.provider().clone(), k.clone()))).await?;
    let mut change = Rewrap::new().to_current_versions(a.to_current_versions);
    for r in &a.add {
        let provider = hsm::Config::from_url(&r.provider)?.open().await?;
        change = change.add(provider, KeyRef::new(&r.key));
    }
    for r in &a.remove {
        change = match r.rsplit_once('#') {
            Some((url, key)) => change.remove(Some(hsm::Config::from_url(url)?.provider_name()), key),
            None => change.remove(None, r),
        };
    }
    let opener = Opener::new().expect_context(context(&a.context));
    let report = change.file(&opener, &ring, &a.file).await.map_err(|e| io_failure(e, &a.file, &a.file))?;
    let names = |rs: &[hsm::envelope::Recipient]| {
        rs.iter()
            .map(|r| {
                format!(
                    "{} '{}'",
                    r.provider.as_deref().unwrap_or("?"),
                    r.key().map(|k| k.to_string()).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    if !report.added.is_empty() {
        lines.push(format!("added       {}", names(&report.added)));
    }
    if !report.removed.is_empty() {
        lines.push(format!("removed     {}", names(&report.removed)));
    }
    if !report.rewrapped.is_empty() {
        lines.push(format!("rewrapped   {}", names(&report.rewrapped)));
    }
    if !report.not_rewrapped.is_empty() {
        lines.push(format!("kept as is  {} (no --recipient reaches them)", names(&report.not_rewrapped)));
    }
    lines.push(format!(
        "header      {} -> {} bytes; the encrypted body is unchanged",
        report.header_len.0, report.header_len.1
    ));
    eprintln!("{}", lines.join("\n"));
    Ok(code::OK)
}

#[derive(Serialize)]
struct RecipientView {
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    share: Option<String>,
    protection: &'static str,
    key: Option<String>,
    version: Option<String>,
    algorithm: Option<&'static str>,
}

#[derive(Serialize)]
struct HeaderView {
    version: u8,
    suite: &'static str,
    message_id: Option<String>,
    segment_size: usize,
    header_bytes: usize,
    context: std::collections::BTreeMap<String, String>,
    recipients: Vec<RecipientView>,
}

fn view(h: &Header) -> HeaderView {
    HeaderView {
        version: h.version,
        suite: h.suite.as_str(),
        message_id: h.message_id.map(|id| id.iter().map(|b| format!("{b:02x}")).collect()),
        segment_size: h.segment_size,
        header_bytes: h.len,
        context: h.context.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        recipients: h
            .recipients
            .iter()
            .map(|r| RecipientView {
                provider: r.provider.clone(),
                share: r.share.map(|s| format!("{} of {} (any {} open)", s.index, s.count, s.threshold)),
                protection: match r.protection {
                    Protection::Wrapped(_) => "wrapped",
                    Protection::Encrypted(_) => "encrypted",
                    _ => "unknown",
                },
                key: r.key().map(|k| k.name().to_owned()),
                version: r.key().and_then(|k| k.version().map(str::to_owned)),
                algorithm: r.algorithm(),
            })
            .collect(),
    }
}

/// `hsm envelope inspect`: the header, read without any provider call.
pub(crate) async fn inspect(file: &Path, format: Format) -> Result<u8, Failure> {
    let (mut input, _) = open_input(file).await?;
    let header = hsm::envelope::inspect(&mut input).await.map_err(|e| io_failure(e, file, Path::new("-")))?;
    let v = view(&header);
    let text = match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&v)
                .map_err(|e| Failure::Input(format!("cannot render JSON: {e}")))?;
            s.push('\n');
            s
        }
        Format::Table => {
            let mut s = format!("version       {}\nsuite         {}\n", v.version, v.suite);
            if let Some(id) = &v.message_id {
                s += &format!("message id    {id}\n");
            }
            s += &format!("segment size  {} bytes\nheader        {} bytes\n", v.segment_size, v.header_bytes);
            if v.context.is_empty() {
                s += "context       (none)\n";
            }
            for (i, (k, val)) in v.context.iter().enumerate() {
                s += &format!("{}{k}={val}\n", if i == 0 { "context       " } else { "              " });
            }
            s += &format!("recipients    {}\n", v.recipients.len());
            for r in &v.recipients {
                let key = match (&r.key, &r.version) {
                    (Some(k), Some(ver)) => format!("{k}@{ver}"),
                    (Some(k), None) => k.clone(),
                    _ => "?".to_owned(),
                };
                s += &format!(
                    "  {:<16} {:<24} {:<22} {}{}\n",
                    r.provider.as_deref().unwrap_or("(not recorded)"),
                    key,
                    r.algorithm.unwrap_or("?"),
                    r.protection,
                    r.share.as_deref().map(|s| format!(", share {s}")).unwrap_or_default()
                );
            }
            s
        }
    };
    print(&text)?;
    Ok(code::OK)
}
