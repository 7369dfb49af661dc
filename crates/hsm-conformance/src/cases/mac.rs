//! `mac::*`: MAC round trips.

use std::sync::Arc;

use hsm_core::{Capabilities, KeyRef, KeySpec, KeyUsage, MacAlgorithm, MacTag, Provider};

use crate::case::{Case, Requirement};
use crate::ctx::{Ctx, Slot};
use crate::support::{
    CaseResult, During as _, check_record, data, ensure, expect_rejected, expect_true, flipped,
};

pub(crate) fn add(out: &mut Vec<Case>, _caps: &Capabilities) {
    for (spec, alg) in super::mac_pairs() {
        out.push(Case::new(
            format!("mac::roundtrip::{spec}::{alg}"),
            Requirement::Mac { spec, alg },
            move |p, c| roundtrip(p, c, spec, alg),
        ));
    }
}

async fn roundtrip(p: Arc<dyn Provider>, ctx: Ctx, spec: KeySpec, alg: MacAlgorithm) -> CaseResult {
    let key = ctx.fixture(spec, KeyUsage::Mac, Slot::Primary).await?;
    let r = KeyRef::new(&key.name);
    for len in [0, 100, 5000] {
        let msg = data("mac", len);
        let tag = p.mac(&r, alg, &msg).await.during(format!("mac of {len} bytes"))?;
        check_record("MAC tag", tag.key(), tag.version(), &tag.algorithm(), &key, &key.version, &alg)?;
        ensure!(
            tag.as_bytes().len() == alg.tag_len(),
            "a {alg} tag should be {} bytes, not {}",
            alg.tag_len(),
            tag.as_bytes().len()
        );
        expect_true("verify_mac of a fresh tag", p.verify_mac(&r, alg, &msg, tag.as_bytes()).await)?;
        let again = p.mac(&r, alg, &msg).await.during("second mac")?;
        ensure!(
            again.as_bytes() == tag.as_bytes(),
            "HMAC is deterministic but two tags of the same message differ"
        );
        let parsed = MacTag::from_bytes(&tag.to_bytes()).during("MacTag::from_bytes(to_bytes())")?;
        ensure!(parsed == tag, "the tag changed through to_bytes/from_bytes");
        expect_true(
            "verify_mac through the pinned version the tag records",
            p.verify_mac(&parsed.key_ref(), alg, &msg, parsed.as_bytes()).await,
        )?;
        let mut other = msg.clone();
        other.push(b'!');
        expect_rejected(
            "verify_mac of a modified message",
            p.verify_mac(&r, alg, &other, tag.as_bytes()).await,
            &[],
        )?;
        expect_rejected(
            "verify_mac of a modified tag",
            p.verify_mac(&r, alg, &msg, &flipped(tag.as_bytes(), 5)).await,
            &[],
        )?;
    }
    Ok(())
}
