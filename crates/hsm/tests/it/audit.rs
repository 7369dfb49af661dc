//! The audit layer: one event per operation, with names and outcomes, never data.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use hsm::local::LocalProvider;
use hsm::{Audited, CreateKey, EncryptionAlgorithm, KeyRef, KeySpec, KeyUsage, Provider, SignInput};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event as one `target level field=value ...` line.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{} {}", event.metadata().target(), event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn every_operation_is_one_event_with_names_and_outcome_but_no_data() {
    let capture = Capture::default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let secret = b"PLAINTEXT-THAT-MUST-NOT-BE-LOGGED";
    tracing::subscriber::with_default(capture.clone(), || {
        rt.block_on(async {
            let p = Audited::new(Arc::new(LocalProvider::in_memory()));
            p.create_key(CreateKey::new("audited", KeySpec::Aes256)).await.unwrap();
            let ct = p
                .encrypt(&KeyRef::new("audited"), EncryptionAlgorithm::AesGcm, secret, Some(b"AAD-SECRET"))
                .await
                .unwrap();
            let pt = p.decrypt(&KeyRef::new("audited"), &ct, Some(b"AAD-SECRET")).await.unwrap();
            assert_eq!(&pt[..], secret);
            assert!(p.decrypt(&KeyRef::new("audited"), &ct, None).await.is_err());
            p.create_key(CreateKey::new("signer", KeySpec::Ed25519).usage(KeyUsage::SignVerify))
                .await
                .unwrap();
            let alg = hsm::SignatureAlgorithm::Ed25519;
            p.sign(&KeyRef::new("signer"), alg, SignInput::Message(secret)).await.unwrap();
            assert!(p.get_key(&KeyRef::new("missing")).await.is_err());
        })
    });
    let lines = capture.0.lock().unwrap().clone();
    let audit: Vec<&String> = lines.iter().filter(|l| l.starts_with("hsm::audit")).collect();
    assert_eq!(audit.len(), 7, "one event per operation: {audit:#?}");
    let expect = [
        ("create_key", "INFO", "outcome=\"ok\""),
        ("encrypt", "INFO", "algorithm=\"aes-gcm\""),
        ("decrypt", "INFO", "version=\"1\""),
        ("decrypt", "WARN", "outcome=\"decryption_failed\""),
        ("create_key", "INFO", "algorithm=\"ed25519\""),
        ("sign", "INFO", "key=\"signer\""),
        ("get_key", "WARN", "outcome=\"not_found\""),
    ];
    for (line, (op, level, field)) in audit.iter().zip(expect) {
        assert!(line.contains(&format!("operation=\"{op}\"")), "{line}");
        assert!(line.contains(level), "{line}");
        assert!(line.contains(field), "{line}");
        assert!(line.contains("provider=\"local\"") && line.contains("latency_us="), "{line}");
    }
    for line in &lines {
        assert!(
            !line.contains("PLAINTEXT") && !line.contains("AAD-SECRET"),
            "data leaked into a log: {line}"
        );
    }
}
