//! The JSON side of the Cloud KMS REST protocol: google.rpc error bodies, field access that
//! accepts both lowerCamelCase and snake_case names, standard base64, CRC32C checks, int64 as
//! strings, enums as integers or names, RFC 3339 timestamps and protobuf durations.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// google.rpc.Code values the emulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    InvalidArgument,
    FailedPrecondition,
    NotFound,
    AlreadyExists,
    Unimplemented,
    Internal,
}

impl Code {
    /// The HTTP status Google's front end maps the code to.
    pub(crate) fn http(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => 400,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::Unimplemented => 501,
            Code::Internal => 500,
        }
    }

    /// The `status` string of the error body.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
        }
    }
}

/// A failed call: answered as `{"error":{"code","message","status"}}` with the matching HTTP
/// status. Messages name the offending field and never carry key material or plaintext.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) code: Code,
    pub(crate) message: String,
    /// `google.rpc` detail messages (`{"@type": …}`), as Google attaches them.
    pub(crate) details: Vec<Value>,
}

impl Status {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Status { code, message: message.into(), details: Vec::new() }
    }

    /// Adds a `google.rpc.PreconditionFailure` detail with one violation.
    pub(crate) fn with_precondition_violation(mut self, kind: &str, subject: &str) -> Self {
        self.details.push(serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": [{ "type": kind, "subject": subject }],
        }));
        self
    }

    /// The JSON error body.
    pub(crate) fn body(&self) -> Value {
        let mut e = serde_json::json!({
            "error": { "code": self.code.http(), "message": self.message, "status": self.code.name() }
        });
        if !self.details.is_empty() {
            e["error"]["details"] = Value::Array(self.details.clone());
        }
        e
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, message)
}

pub(crate) fn precondition(message: impl Into<String>) -> Status {
    Status::new(Code::FailedPrecondition, message)
}

pub(crate) fn not_found(message: impl Into<String>) -> Status {
    Status::new(Code::NotFound, message)
}

pub(crate) type Result<T> = std::result::Result<T, Status>;

/// The snake_case form of a lowerCamelCase field name (proto3 JSON accepts both).
fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A JSON object field by its lowerCamelCase name or its snake_case name; `null` is absent.
pub(crate) fn field<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(&snake(camel))).filter(|v| !v.is_null())
}

/// Decoders for proto3 JSON bytes: the standard and the URL-safe alphabet, padded or not.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding, as Google emits `bytes` fields.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// URL-safe base64 for opaque strings such as page tokens.
pub(crate) fn b64_url(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

pub(crate) fn b64_url_decode(s: &str) -> Option<Vec<u8>> {
    LENIENT_URL.decode(s).ok()
}

/// A `bytes` field (absent or empty: empty).
pub(crate) fn bytes(obj: &Map<String, Value>, camel: &str) -> Result<Vec<u8>> {
    match field(obj, camel) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => LENIENT_STANDARD
            .decode(s)
            .or_else(|_| LENIENT_URL.decode(s))
            .map_err(|_| invalid(format!("Invalid value at '{camel}': not valid base64"))),
        Some(_) => Err(invalid(format!("Invalid value at '{camel}': expected a base64 string"))),
    }
}

/// An int64 field sent as a JSON string or number.
pub(crate) fn int64(obj: &Map<String, Value>, camel: &str) -> Result<Option<i64>> {
    let bad = || invalid(format!("Invalid value at '{camel}': expected an integer"));
    match field(obj, camel) {
        None => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A `*Crc32c` request field (google.protobuf.Int64Value): a value in `0..=2^32-1`.
pub(crate) fn crc_field(obj: &Map<String, Value>, camel: &str) -> Result<Option<u32>> {
    match int64(obj, camel)? {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| invalid(format!("Invalid value at '{camel}': a CRC32C is in 0..=4294967295"))),
    }
}

/// CRC32C of `data`.
pub(crate) fn crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// An int64 CRC as proto3 JSON writes it: a decimal string.
pub(crate) fn crc_json(data: &[u8]) -> Value {
    Value::String(crc(data).to_string())
}

/// Checks `data` against the CRC32C the request carried for it (`crc_name` is the request
/// field). Returns the `verified*` flag: true only when the request carried a CRC.
///
/// # Errors
/// INVALID_ARGUMENT on a mismatch, as Cloud KMS answers.
pub(crate) fn check_crc(obj: &Map<String, Value>, data_name: &str, data: &[u8]) -> Result<bool> {
    let crc_name = format!("{data_name}Crc32c");
    match crc_field(obj, &crc_name)? {
        None => Ok(false),
        Some(c) if c == crc(data) => Ok(true),
        Some(_) => Err(invalid(format!(
            "The checksum in field {crc_name} did not match the data in field {data_name}."
        ))),
    }
}

/// A string field (absent: empty).
pub(crate) fn string<'a>(obj: &'a Map<String, Value>, camel: &str) -> Result<&'a str> {
    match field(obj, camel) {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!("Invalid value at '{camel}': expected a string"))),
    }
}

/// An enum field given as an integer or a name, looked up in `table` (number, name).
/// Absent, `0` and the `*_UNSPECIFIED` name are 0.
pub(crate) fn enum_value(v: Option<&Value>, table: &[(i32, &'static str)], camel: &str) -> Result<i32> {
    let bad = |what: &str| invalid(format!("Invalid value at '{camel}' ({what})"));
    let n = match v {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => {
            let n = n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad("not an int32"))?;
            if n == 0 {
                return Ok(0);
            }
            table.iter().find(|(k, _)| *k == n).map(|(k, _)| *k).ok_or_else(|| bad(&n.to_string()))?
        }
        Some(Value::String(s)) => {
            if s.ends_with("_UNSPECIFIED") {
                return Ok(0);
            }
            if let Ok(n) = s.parse::<i32>() {
                return enum_value(Some(&Value::from(n)), table, camel);
            }
            table.iter().find(|(_, name)| name == s).map(|(k, _)| *k).ok_or_else(|| bad(s))?
        }
        Some(_) => return Err(bad("expected an enum name or number")),
    };
    Ok(n)
}

/// The name of enum value `n` in `table`.
pub(crate) fn enum_name(table: &[(i32, &'static str)], n: i32) -> &'static str {
    table.iter().find(|(k, _)| *k == n).map(|(_, name)| *name).unwrap_or("UNSPECIFIED")
}

/// An enum as the request asked for it: an integer under `$alt=json;enum-encoding=int`, else
/// its name.
pub(crate) fn enum_json(int_enums: bool, table: &[(i32, &'static str)], n: i32) -> Value {
    if int_enums { Value::from(n) } else { Value::from(enum_name(table, n)) }
}

/// RFC 3339 in UTC with nanoseconds when there are any, as Google writes timestamps.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    let mut s = format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if d.subsec_nanos() != 0 {
        let _ = write!(s, ".{:09}", d.subsec_nanos());
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A google.protobuf.Duration in JSON form (`"86400s"`, `"1.5s"`).
pub(crate) fn duration_json(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        let frac = format!("{:09}", d.subsec_nanos());
        format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
    }
}

/// Parses a google.protobuf.Duration in JSON form; negative durations are refused.
pub(crate) fn parse_duration(v: &Value, camel: &str) -> Result<Duration> {
    let bad = || invalid(format!("Invalid value at '{camel}': expected a duration such as \"86400s\""));
    let s = v.as_str().ok_or_else(bad)?;
    let num = s.strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = whole.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    Ok(Duration::new(secs, nanos))
}

/// Percent-decodes a URL path or query component (`+` stays `+` in paths; `plus_space` for
/// query strings).
pub(crate) fn percent_decode(s: &str, plus_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex =
                    std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as decoded (name, value) pairs.
pub(crate) fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_200, 5); // 2024-03-01
        assert_eq!(timestamp(t), "2024-03-01T00:00:00.000000005Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399); // 2000-02-29 23:59:59
        assert_eq!(timestamp(t), "2000-02-29T23:59:59Z");
    }

    #[test]
    fn durations_round_trip() {
        for s in ["86400s", "1.5s", "0.000000001s"] {
            let d = parse_duration(&Value::from(s), "d").unwrap();
            assert_eq!(duration_json(d), s);
        }
        assert!(parse_duration(&Value::from("-1s"), "d").is_err());
        assert!(parse_duration(&Value::from("10"), "d").is_err());
    }

    #[test]
    fn fields_accept_both_name_forms_and_enums_both_encodings() {
        let obj: Map<String, Value> =
            serde_json::from_str(r#"{"plaintext_crc32c":"7","versionTemplate":{"algorithm":"HMAC_SHA256"}}"#)
                .unwrap();
        assert_eq!(crc_field(&obj, "plaintextCrc32c").unwrap(), Some(7));
        let table = [(32, "HMAC_SHA256")];
        let t = field(&obj, "versionTemplate").unwrap().as_object().unwrap();
        assert_eq!(enum_value(field(t, "algorithm"), &table, "algorithm").unwrap(), 32);
        assert_eq!(enum_value(Some(&Value::from(32)), &table, "algorithm").unwrap(), 32);
        assert!(enum_value(Some(&Value::from(31)), &table, "algorithm").is_err());
        assert_eq!(percent_decode("%24alt=json%3Benum-encoding%3Dint", true), "$alt=json;enum-encoding=int");
        assert_eq!(percent_decode("50%", true), "50%");
    }
}
