//! AWS Signature Version 4 verification of incoming requests (`Authorization` header form).
//!
//! The canonical request is rebuilt from what arrived (method, path, query, the headers the
//! client says it signed, the SHA-256 of the body), the string to sign and the signing key
//! are derived from the configured secret, and the signatures are compared in constant time.
//! The errors are the ones AWS answers with (all HTTP 400): no `Authorization` header →
//! `MissingAuthenticationTokenException`; a malformed one → `IncompleteSignatureException`;
//! an unknown access key id → `UnrecognizedClientException`; a wrong signature, a scope for
//! another region or service, or a date more than 15 minutes off → `InvalidSignatureException`.

use aws_lc_rs::{constant_time, digest, hmac};

use super::KmsError;
use crate::server::Request;

/// The largest clock difference accepted between the request's `X-Amz-Date` and now.
pub(crate) const MAX_SKEW_SECS: i64 = 15 * 60;

/// The credentials and scope requests must be signed for.
#[derive(Clone)]
pub(crate) struct Expected<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// The SigV4 signing key for a date (`YYYYMMDD`), region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is `%XX`.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(v) = u8::from_str_radix(v, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: Option<&str>) -> String {
    let Some(q) = query.filter(|q| !q.is_empty()) else { return String::new() };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Header values trimmed, inner runs of spaces collapsed, repeated headers joined by commas.
fn canonical_header_value(req: &Request, name: &str) -> String {
    req.headers()
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
}

/// Seconds since the epoch of a `YYYYMMDDTHHMMSSZ` timestamp.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYYMMDDTHHMMSSZ` of seconds since the epoch.
pub(crate) fn format_amz_date(secs: i64) -> String {
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

fn incomplete(message: impl Into<String>) -> KmsError {
    KmsError::new("IncompleteSignatureException", message)
}

fn invalid(message: impl Into<String>) -> KmsError {
    KmsError::new("InvalidSignatureException", message)
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, KmsError> {
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256") else {
        let alg = value.split_whitespace().next().unwrap_or_default();
        return Err(incomplete(format!("Unsupported AWS 'algorithm': '{alg}'")));
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let need = |what: &str| {
        incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization=AWS4-HMAC-SHA256 \
             Credential=..., SignedHeaders=..., Signature=..."
        ))
    };
    let credential = credential.ok_or_else(|| need("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| need("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| need("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    Ok(Authorization { access_key_id, date, region, service, terminator, signed_headers, signature })
}

/// Verifies the request's SigV4 signature; `now` is seconds since the epoch.
///
/// # Errors
/// The AWS error for an unsigned, malformed, unknown-key, stale or wrongly signed request.
pub(crate) fn verify(req: &Request, expected: &Expected<'_>, now: i64) -> Result<(), KmsError> {
    let Some(auth) = req.headers().get("authorization") else {
        return Err(KmsError::new("MissingAuthenticationTokenException", "Missing Authentication Token"));
    };
    let auth = auth.to_str().map_err(|_| incomplete("The Authorization header is not ASCII"))?;
    let a = parse_authorization(auth)?;
    let Some(amz_date) = req.headers().get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    if a.access_key_id != expected.access_key_id {
        return Err(KmsError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if a.terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            a.terminator
        )));
    }
    if a.service != expected.service {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{}'. ",
            expected.service
        )));
    }
    if a.region != expected.region {
        return Err(invalid(format!("Credential should be scoped to a valid region, not '{}'. ", a.region)));
    }
    let Some(when) = parse_amz_date(amz_date) else {
        return Err(invalid(format!(
            "Invalid X-Amz-Date '{amz_date}': expected the form YYYYMMDD'T'HHMMSS'Z'"
        )));
    };
    if !amz_date.starts_with(a.date) || a.date.len() != 8 {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
             '{}' != '{}', from '{amz_date}'.",
            a.date,
            &amz_date[..8]
        )));
    }
    if when < now - MAX_SKEW_SECS {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    if when > now + MAX_SKEW_SECS {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now + MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    let signed: Vec<&str> = a.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."));
    }
    let body_hash = sha256_hex(req.body());
    if let Some(claimed) = req.headers().get("x-amz-content-sha256")
        && claimed.as_bytes() != body_hash.as_bytes()
    {
        return Err(invalid("The provided 'x-amz-content-sha256' header does not match what was computed."));
    }
    let mut canonical = String::new();
    canonical.push_str(req.method().as_str());
    canonical.push('\n');
    canonical.push_str(&uri_encode(req.uri().path(), true));
    canonical.push('\n');
    canonical.push_str(&canonical_query(req.uri().query()));
    canonical.push('\n');
    for name in &signed {
        canonical.push_str(name);
        canonical.push(':');
        if *name == "host" && req.headers().get("host").is_none() {
            canonical.push_str(req.uri().authority().map(|a| a.as_str()).unwrap_or_default());
        } else {
            canonical.push_str(&canonical_header_value(req, name));
        }
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(a.signed_headers);
    canonical.push('\n');
    canonical.push_str(&body_hash);
    let scope = format!("{}/{}/{}/aws4_request", a.date, a.region, a.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let key = signing_key(expected.secret_access_key, a.date, a.region, a.service);
    let want = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    if constant_time::verify_slices_are_equal(want.as_bytes(), a.signature.as_bytes()).is_err() {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your \
             AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for s in ["19700101T000000Z", "20240229T235959Z", "20150830T123600Z", "21000301T010203Z"] {
            let t = parse_amz_date(s).unwrap();
            assert_eq!(format_amz_date(t), s);
        }
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
    }

    /// The worked example of the AWS SigV4 documentation (IAM ListUsers, GET).
    #[test]
    fn documented_signing_key_and_signature() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam");
        assert_eq!(hex(&key), "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
        let req = hyper::Request::builder()
            .method("GET")
            .uri("/?Action=ListUsers&Version=2010-05-08")
            .header("host", "iam.amazonaws.com")
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("x-amz-date", "20150830T123600Z")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            )
            .body(bytes::Bytes::new())
            .unwrap();
        let exp = Expected {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "iam",
        };
        let now = parse_amz_date("20150830T123600Z").unwrap();
        verify(&req, &exp, now).unwrap();
        let e = verify(&req, &Expected { secret_access_key: "wrong", ..exp.clone() }, now).unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
        let e = verify(&req, &exp, now + MAX_SKEW_SECS + 1).unwrap_err();
        assert!(e.message.starts_with("Signature expired"), "{}", e.message);
        let e = verify(&req, &Expected { access_key_id: "OTHER", ..exp.clone() }, now).unwrap_err();
        assert_eq!(e.code, "UnrecognizedClientException");
        let e = verify(&req, &Expected { region: "eu-west-1", ..exp }, now).unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
    }
}
