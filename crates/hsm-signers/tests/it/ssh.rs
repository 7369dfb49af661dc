//! SSH: OpenSSH public keys and the agent, checked with OpenSSH itself: `ssh-add -L` lists
//! the keys, `ssh-keygen -Y sign` signs through the agent, `ssh-keygen -Y verify` accepts.

use std::path::Path;
use std::process::{Command, Stdio};

use hsm_core::{Error, KeySpec, SignatureAlgorithm};
use hsm_signers::ssh::{self, SshAgent};
use libtest_mimic::{Completion, Failed};

use crate::signer::signer_for;
use crate::{Backend, Case, Outcome, check, rt, servers_required};

pub(crate) const CASES: &[(&str, Case)] = &[
    ("ssh_ed25519", |b, k| agent_signs(b, k, KeySpec::Ed25519, None)),
    ("ssh_p256", |b, k| agent_signs(b, k, KeySpec::EcP256, None)),
    ("ssh_p384", |b, k| agent_signs(b, k, KeySpec::EcP384, None)),
    ("ssh_p521", |b, k| agent_signs(b, k, KeySpec::EcP521, None)),
    ("ssh_rsa", |b, k| agent_signs(b, k, KeySpec::Rsa2048, Some(SignatureAlgorithm::RsaPkcs1v15Sha512))),
    ("ssh_refusals", refusals),
];

/// Runs an OpenSSH tool with the agent socket, or says why it cannot.
fn openssh(
    tool: &str,
    args: &[&str],
    sock: &Path,
    stdin: Option<&Path>,
) -> Result<Result<(bool, String), Completion>, Failed> {
    let mut cmd = Command::new(tool);
    cmd.args(args).env("SSH_AUTH_SOCK", sock).stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p)?),
        None => cmd.stdin(Stdio::null()),
    };
    match cmd.output() {
        Ok(o) => Ok(Ok((
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        ))),
        Err(e) if servers_required() => Err(format!(
            "{tool} cannot run ({e}; apt-get install openssh-client) and HSM_REQUIRE_SERVERS is set"
        )
        .into()),
        Err(e) => Ok(Err(Completion::ignored_with(format!(
            "{tool} cannot run: {e} (apt-get install openssh-client)"
        )))),
    }
}

macro_rules! run {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(skip) => return Ok(skip),
        }
    };
}

fn agent_signs(b: &Backend, key: &str, spec: KeySpec, alg: Option<SignatureAlgorithm>) -> Outcome {
    let signer = run!(signer_for(b, key, spec, alg));
    let line = ssh::openssh_public_key(signer.public_key(), None).map_err(|e| e.to_string())?;
    let agent =
        rt().block_on(SshAgent::new(b.provider.clone(), &[key.to_owned()])).map_err(|e| e.to_string())?;
    check(agent.public_keys() == vec![line.clone()], format!("{:?} vs {line}", agent.public_keys()))?;
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("agent.sock");
    let listener = {
        let _guard = rt().enter();
        tokio::net::UnixListener::bind(&sock)?
    };
    let task = rt().spawn(agent.serve(listener));
    let result = (|| -> Outcome {
        let (ok, out) = run!(openssh("ssh-add", &["-L"], &sock, None));
        check(ok && out.lines().any(|l| l.trim() == line), format!("ssh-add -L: {out}"))?;
        let pubfile = dir.path().join("key.pub");
        std::fs::write(&pubfile, format!("{line}\n"))?;
        let (ok, out) = run!(openssh("ssh-keygen", &["-l", "-f", &pubfile.to_string_lossy()], &sock, None));
        check(ok, format!("ssh-keygen -l does not read the public key: {out}"))?;
        let data = dir.path().join("data.txt");
        std::fs::write(&data, b"a commit to sign\n")?;
        let (ok, out) = run!(openssh(
            "ssh-keygen",
            &["-Y", "sign", "-f", &pubfile.to_string_lossy(), "-n", "git", &data.to_string_lossy()],
            &sock,
            None
        ));
        check(ok, format!("ssh-keygen -Y sign through the agent: {out}"))?;
        let allowed = dir.path().join("allowed_signers");
        let mut parts = line.split(' ');
        let (kt, kb) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        std::fs::write(&allowed, format!("tester@example {kt} {kb}\n"))?;
        let sig = dir.path().join("data.txt.sig");
        let verify = |input: &Path| {
            openssh(
                "ssh-keygen",
                &[
                    "-Y",
                    "verify",
                    "-f",
                    &allowed.to_string_lossy(),
                    "-I",
                    "tester@example",
                    "-n",
                    "git",
                    "-s",
                    &sig.to_string_lossy(),
                ],
                &sock,
                Some(input),
            )
        };
        let (ok, out) = run!(verify(&data));
        check(
            ok && out.contains("Good \"git\" signature for tester@example"),
            format!("ssh-keygen -Y verify: {out}"),
        )?;
        let other = dir.path().join("other.txt");
        std::fs::write(&other, b"another commit\n")?;
        let (ok, out) = run!(verify(&other));
        check(!ok, format!("a signature verified over other data: {out}"))?;
        Ok(Completion::Completed)
    })();
    task.abort();
    result
}

fn refusals(b: &Backend, key: &str) -> Outcome {
    if let Ok(k) = signer_for(b, &format!("{key}-k"), KeySpec::EcSecp256k1, None)? {
        let e = ssh::openssh_public_key(k.public_key(), None).unwrap_err();
        check(matches!(e, Error::Unsupported { .. }), e.to_string())?;
        let e = rt().block_on(SshAgent::new(b.provider.clone(), &[format!("{key}-k")])).unwrap_err();
        check(matches!(e, Error::Unsupported { .. }) && e.to_string().contains("SSH"), e.to_string())?;
    }
    // Every signing key the agent can serve is served; the others are reported.
    let (agent, skipped) =
        rt().block_on(SshAgent::all_with_skipped(b.provider.clone())).map_err(|e| e.to_string())?;
    check(!agent.public_keys().is_empty(), "the agent serves this provider's signing keys")?;
    if b.provider.capabilities().supports_key(KeySpec::EcSecp256k1, hsm_core::KeyUsage::SignVerify) {
        check(
            skipped.iter().any(|(k, _)| *k == format!("{key}-k")),
            format!("secp256k1 key not reported: {skipped:?}"),
        )?;
    }
    Ok(Completion::Completed)
}

/// Malformed and unsupported requests get SSH_AGENT_FAILURE (5) and the agent keeps serving;
/// an oversized length closes the connection.
pub(crate) fn agent_survives_bad_requests() -> Result<(), Failed> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let provider: std::sync::Arc<dyn hsm_core::Provider> =
        std::sync::Arc::new(hsm_local::LocalProvider::in_memory());
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("agent.sock");
    rt().block_on(async {
        provider.create_key(hsm_core::CreateKey::new("agent-bad", KeySpec::Ed25519)).await?;
        let agent = SshAgent::new(provider.clone(), &["agent-bad".to_owned()]).await?;
        let listener = ssh::bind_private(&sock)?;
        tokio::spawn(agent.serve(listener));
        Ok::<_, Error>(())
    })
    .map_err(|e| e.to_string())?;
    rt().block_on(async {
        let mut s = tokio::net::UnixStream::connect(&sock).await?;
        let mut ask = async |msg: &[u8]| -> std::io::Result<Vec<u8>> {
            let mut out = (msg.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(msg);
            s.write_all(&out).await?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await?;
            let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut reply).await?;
            Ok(reply)
        };
        for (what, msg) in [
            ("unknown request", vec![99u8]),
            ("add identity", vec![17u8, 0, 0, 0, 1, b'x']),
            ("truncated sign request", vec![13u8, 0, 0, 0, 50, 1, 2]),
            ("sign with an unknown key", vec![13u8, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'd', 0, 0, 0, 0]),
        ] {
            let reply = ask(&msg).await?;
            assert_eq!(reply, vec![5u8], "{what}");
        }
        // Still serving on the same connection: identities are listed.
        let reply = ask(&[11u8]).await?;
        assert_eq!((reply[0], &reply[1..5]), (12u8, &[0u8, 0, 0, 1][..]), "identities after bad requests");
        // A length over the limit closes the connection.
        let mut s2 = tokio::net::UnixStream::connect(&sock).await?;
        s2.write_all(&[0xff, 0xff, 0xff, 0xff, 11]).await?;
        let mut buf = [0u8; 1];
        let closed = match s2.read(&mut buf).await {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "an oversized request closes the connection");
        Ok::<_, std::io::Error>(())
    })?;
    Ok(())
}
