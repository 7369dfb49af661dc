//! Envelope encryption from the shell: streamed from and to files and pipes in constant
//! memory, with a progress bar on a terminal, and `hsm envelope inspect`.

use std::io::IsTerminal as _;
use std::path::Path;

use hsm::envelope::{Context, Header, Opener, Protection, Sealer};
use hsm::{Client, KeyRef};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use crate::cli::{DecryptArgs, EncryptArgs, Format};
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

/// `hsm encrypt --envelope`: streams the input through a [`Sealer`] into the output.
pub(crate) async fn encrypt(client: &Client, a: &EncryptArgs) -> Result<u8, Failure> {
    refuse_binary_tty(&a.io.out, a.base64)?;
    let sealer = Sealer::new().context(context(&a.context));
    let key = a.key.key.clone();
    if a.base64 {
        let plaintext = crate::io::read_all(&a.io.input)?;
        let sealed = sealer.seal(&**client.provider(), &key, &plaintext).await?;
        crate::io::write_artifact(&a.io.out, &sealed, true)?;
        return Ok(code::OK);
    }
    let (mut input, size) = open_input(&a.io.input).await?;
    let bar = progress(size, "encrypting");
    let tick = bar.clone();
    let sealer = sealer.on_progress(move |n| tick.inc(n));
    let mut out = Output::create(&a.io.out, Secrecy::Public)?;
    let done = match (regular_file(&a.io.input, size)?, out.file()) {
        // File to file: positional reads and writes on every core.
        (Some(file), Some(target)) => sealer.seal_file(&**client.provider(), &key, &file, &target).await,
        _ => sealer.seal_stream(&**client.provider(), &key, &mut input, &mut out.writer).await,
    };
    done.map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    bar.finish_and_clear();
    out.commit().await?;
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
    a: &DecryptArgs,
    head: Vec<u8>,
    input: Input,
    size: Option<u64>,
) -> Result<u8, Failure> {
    if let Some(range) = a.range.clone() {
        return decrypt_range(client, a, range).await;
    }
    let bar = progress(size, "decrypting");
    let mut input = bar.wrap_async_read(std::io::Cursor::new(head).chain(input));
    let header =
        hsm::envelope::inspect(&mut input).await.map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    check_recipient(&a.key.key, &header)?;
    let mut out = Output::create(&a.io.out, Secrecy::Secret)?;
    opener(a)
        .open_body(&**client.provider(), &header, &mut input, &mut out.writer)
        .await
        .map_err(|e| io_failure(e, &a.io.input, &a.io.out))?;
    bar.finish_and_clear();
    out.commit().await?;
    Ok(code::OK)
}

async fn decrypt_range(client: &Client, a: &DecryptArgs, range: std::ops::Range<u64>) -> Result<u8, Failure> {
    if is_stdio(&a.io.input) {
        return Err(Failure::Input(
            "--range needs the envelope in a file (-i FILE): it reads only the segments the range needs"
                .into(),
        ));
    }
    let path = &a.io.input;
    let mut file = tokio::fs::File::open(path).await.map_err(|e| Failure::read(path, e))?;
    let header = hsm::envelope::inspect(&mut file).await.map_err(|e| io_failure(e, path, &a.io.out))?;
    check_recipient(&a.key.key, &header)?;
    let mut out = Output::create(&a.io.out, Secrecy::Secret)?;
    opener(a)
        .open_range(&**client.provider(), &mut file, range, &mut out.writer)
        .await
        .map_err(|e| io_failure(e, path, &a.io.out))?;
    out.commit().await?;
    Ok(code::OK)
}

/// An envelope decrypted from base64 (already in memory).
pub(crate) async fn decrypt_in_memory(
    client: &Client,
    a: &DecryptArgs,
    sealed: &[u8],
) -> Result<u8, Failure> {
    let header = hsm::envelope::inspect_bytes(sealed)?;
    check_recipient(&a.key.key, &header)?;
    let plaintext = opener(a).open(&**client.provider(), sealed).await?;
    crate::io::write_all(&a.io.out, &plaintext, Secrecy::Secret)?;
    Ok(code::OK)
}

#[derive(Serialize)]
struct RecipientView {
    provider: Option<String>,
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
                    "  {:<16} {:<24} {:<22} {}\n",
                    r.provider.as_deref().unwrap_or("(not recorded)"),
                    key,
                    r.algorithm.unwrap_or("?"),
                    r.protection
                );
            }
            s
        }
    };
    print(&text)?;
    Ok(code::OK)
}
