//! Shared by the emulator targets: requests written as text (so seeds are readable and
//! libFuzzer's mutations stay meaningful), one runtime per process, and the checks every
//! answer must pass.
//!
//! An input is up to [`MAX_REQUESTS`] requests separated by a line `%%`. Each is
//!
//! ```text
//! METHOD /path?query
//! name: value
//! name: value
//!
//! body…
//! ```
//!
//! A method, target or header the HTTP layer (hyper) would refuse is skipped, as the server
//! never hands such a request to a handler. With `HSM_FUZZ_TRACE` set, each answer's status
//! and body go to stderr (run a target binary on one seed file to see what it reaches).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hsm_emulator::server::{Handler, Request};
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue};

/// At most this many requests per input: enough to create a key and use it.
pub const MAX_REQUESTS: usize = 8;

/// One request as written in the input.
#[derive(Debug, Default, Clone)]
pub struct RawRequest {
    /// `POST`, `GET`, …
    pub method: Vec<u8>,
    /// Origin-form target: `/path?query`.
    pub target: Vec<u8>,
    /// Headers in order (repeats allowed).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| &v[..])
    }

    /// Replaces every `from` in the body with `to`.
    pub fn substitute(&mut self, from: &[u8], to: &[u8]) {
        if from.is_empty() || !self.body.windows(from.len()).any(|w| w == from) {
            return;
        }
        let mut out = Vec::with_capacity(self.body.len());
        let mut i = 0;
        while i < self.body.len() {
            if self.body[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
            } else {
                out.push(self.body[i]);
                i += 1;
            }
        }
        self.body = out;
    }

    /// The hyper request a server would hand the handler, or `None` when hyper would refuse it.
    pub fn build(&self) -> Option<Request> {
        let method = hyper::Method::from_bytes(&self.method).ok()?;
        let uri = hyper::Uri::try_from(&self.target[..]).ok()?;
        let mut req = hyper::Request::new(Bytes::from(self.body.clone()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                req.headers_mut().append(n, v);
            }
        }
        Some(req)
    }
}

fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The requests written in `data`.
pub fn parse(data: &[u8]) -> Vec<RawRequest> {
    split(data, b"\n%%\n").take(MAX_REQUESTS).map(parse_one).collect()
}

fn parse_one(text: &[u8]) -> RawRequest {
    let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (first, &b"/"[..]),
    };
    let headers = lines
        .filter_map(|l| {
            let i = l.iter().position(|&b| b == b':')?;
            let value = &l[i + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            Some((l[..i].to_vec(), value.to_vec()))
        })
        .collect();
    RawRequest { method: method.to_vec(), target: target.to_vec(), headers, body: body.to_vec() }
}

/// The process's current-thread runtime (with its blocking pool, which the AWS emulator uses).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

/// Serves `req` with `handler` and checks the answer: never a 500 (the emulators answer
/// every bad request with the vendor's 4xx; a 500 means a handler failed), a body that is
/// empty or JSON. Returns the status and the JSON body.
pub fn serve(handler: &Arc<dyn Handler>, req: Request) -> (u16, serde_json::Value) {
    let rt = runtime();
    let resp = rt.block_on(handler.clone().handle(req));
    let status = resp.status().as_u16();
    let body = rt.block_on(resp.into_body().collect()).map(|b| b.to_bytes()).unwrap_or_default();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("status {status}: a body that is not JSON ({e}): {body:?}"))
    };
    static TRACE: OnceLock<bool> = OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var_os("HSM_FUZZ_TRACE").is_some()) {
        eprintln!("{status} {json}");
    }
    assert_ne!(status, 500, "an internal error: {json}");
    (status, json)
}

/// AWS Signature Version 4 as the AWS SDKs sign a KMS request: every header given signed,
/// `host` and `x-amz-date` added when missing, path `/` (the only path KMS uses).
pub mod sigv4 {
    use aws_lc_rs::{digest, hmac};

    use super::RawRequest;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
    }

    /// `YYYYMMDDTHHMMSSZ` of seconds since the epoch.
    fn amz_date(secs: i64) -> String {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }

    /// Signs `req` in place for `region` with the given credentials.
    pub fn sign(req: &mut RawRequest, access_key_id: &str, secret: &str, region: &str) {
        req.target = b"/".to_vec();
        // Headers the HTTP layer drops cannot be signed.
        req.headers.retain(|(n, v)| {
            super::HeaderName::from_bytes(n).is_ok() && super::HeaderValue::from_bytes(v).is_ok()
        });
        req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(b"x-amz-date"));
        if req.header("host").is_none() {
            req.headers.push((b"host".to_vec(), format!("kms.{region}.amazonaws.com").into_bytes()));
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let date_time = amz_date(now);
        req.headers.push((b"x-amz-date".to_vec(), date_time.clone().into_bytes()));
        let mut names: Vec<String> =
            req.headers.iter().map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        let body_hash = hex(digest::digest(&digest::SHA256, &req.body).as_ref());
        let mut canonical = format!("{}\n/\n\n", String::from_utf8_lossy(&req.method));
        for name in &names {
            let values: Vec<String> = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| String::from_utf8_lossy(v).split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            canonical.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let signed = names.join(";");
        canonical.push_str(&format!("\n{signed}\n{body_hash}"));
        let date = &date_time[..8];
        let scope = format!("{date}/{region}/kms/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        for part in [region, "kms", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        req.headers.push((
            b"authorization".to_vec(),
            format!("AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}")
                .into_bytes(),
        ));
    }
}
