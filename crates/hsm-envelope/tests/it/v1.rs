//! Format 1 (hsm 0.1's envelopes) still opens: a sealer for it is written here from its
//! documented byte table, independently of the crate.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use hsm_core::{Error, KeyRef, Provider, WrapAlgorithm};
use hsm_envelope::{Opener, Suite, VERSION_1};

use crate::{data, provider};

async fn seal_v1(p: &impl Provider, pt: &[u8], aad: &[u8]) -> Vec<u8> {
    let dk = [9u8; 32];
    let blob = p.wrap_key(&KeyRef::new("wrapper"), WrapAlgorithm::AesGcm, &dk).await.unwrap().to_bytes();
    let prefix = [1, 2, 3, 4, 5, 6, 7];
    let mut header = b"hsmE\x01W".to_vec();
    header.extend_from_slice(&(blob.len() as u32).to_be_bytes());
    header.extend_from_slice(&blob);
    header.extend_from_slice(&65_536u32.to_be_bytes());
    header.extend_from_slice(&prefix);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dk).unwrap());
    let seg_aad = [&header[..], aad].concat();
    let mut out = header.clone();
    let chunks: Vec<&[u8]> = if pt.is_empty() { vec![&[]] } else { pt.chunks(65_536).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&prefix);
        n[7..11].copy_from_slice(&(i as u32).to_be_bytes());
        n[11] = u8::from(i + 1 == chunks.len());
        let mut seg = chunk.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::from(&seg_aad[..]), &mut seg)
            .unwrap();
        out.extend_from_slice(&seg);
    }
    out
}

#[tokio::test]
async fn format_1_envelopes_open_with_their_aad_and_fail_without_it() {
    let p = provider().await;
    for len in [0, 5, 65_536, 200_000] {
        let pt = data(len);
        let sealed = seal_v1(&p, &pt, b"disk-42").await;
        let h = hsm_envelope::inspect_bytes(&sealed).unwrap();
        assert_eq!(
            (h.version, h.suite, h.recipients[0].provider.clone()),
            (VERSION_1, Suite::V1Aes256Gcm, None)
        );
        let opened = Opener::new().v1_aad(b"disk-42".to_vec()).open(&p, &sealed).await.unwrap();
        assert!(opened[..] == pt[..], "{len}");
        let wrong = Opener::new().open(&p, &sealed).await;
        assert!(matches!(wrong, Err(Error::DecryptionFailed { .. })), "{len}: {wrong:?}");
    }
}
