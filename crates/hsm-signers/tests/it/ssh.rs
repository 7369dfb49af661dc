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
