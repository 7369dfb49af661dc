//! The envelope header reader (formats 1 and 2) on untrusted bytes, through the public
//! `inspect_bytes` that `Opener` and `hsm envelope inspect` use.
//!
//! Invariants: a header that parses lies within the input, is exactly `len` bytes (the same
//! header from those bytes alone; one byte fewer is refused), has a known version, a segment
//! size in range, 1 ..= `DEFAULT_MAX_RECIPIENTS` recipients whose blobs round-trip; every
//! refusal is `InvalidInput`.
#![no_main]

use hsm_core::{Ciphertext, Error, WrappedKey};
use hsm_envelope::{DEFAULT_MAX_RECIPIENTS, Protection, SEGMENT_SIZE_RANGE, VERSION_1, VERSION_2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match hsm_envelope::inspect_bytes(data) {
        Ok(h) => {
            assert!(hsm_envelope::is_envelope(data));
            assert!(h.len <= data.len(), "header length {} past the input ({})", h.len, data.len());
            assert!(h.version == VERSION_1 || h.version == VERSION_2);
            assert_eq!(h.message_id.is_some(), h.version == VERSION_2);
            assert!(SEGMENT_SIZE_RANGE.contains(&h.segment_size));
            assert!((1..=DEFAULT_MAX_RECIPIENTS).contains(&h.recipients.len()));
            if h.version == VERSION_1 {
                assert!(h.context.is_empty() && h.recipients.len() == 1);
            }
            for r in &h.recipients {
                match &r.protection {
                    Protection::Wrapped(w) => assert_eq!(&WrappedKey::from_bytes(&w.to_bytes()).unwrap(), w),
                    Protection::Encrypted(c) => {
                        assert_eq!(&Ciphertext::from_bytes(&c.to_bytes()).unwrap(), c)
                    }
                    _ => assert!(r.key().is_none()),
                }
                if let Some(s) = r.share {
                    assert!(s.threshold >= 2 && s.index >= 1 && s.index <= s.count && s.threshold <= s.count);
                }
            }
            let alone = hsm_envelope::inspect_bytes(&data[..h.len]).expect("the header's own bytes parse");
            assert_eq!(alone, h);
            let short = hsm_envelope::inspect_bytes(&data[..h.len - 1]);
            assert!(matches!(short, Err(Error::InvalidInput { .. })), "{short:?}");
        }
        Err(e) => assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}"),
    }
});
