//! Answer variants: the emulator answers in the other shapes real B2 servers and
//! B2-compatible ones send (nullable fields null, optional ones absent, unknown fields,
//! unknown enum values, v1's `size`, `Retry-After` as a date), per call, so a client's
//! reading of answers is tested against them. Applied in one place, `apply`, to every
//! answer as it leaves the server; what is stored is never touched.

mod rewrite;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt;
use hyper::{header, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::http::{full, Body};

pub use rewrite::{rewrite, Rng};

/// One kind of answer shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Every field B2 or b2sdk allow to be null is null (where null means the same).
    Null,
    /// The same fields left out.
    Absent,
    /// Unknown fields added to every object at every level (not to file or bucket info).
    Extra,
    /// Open enums get values no client knows: a stored version's action "copy" or none,
    /// retention modes, bucket types, SSE algorithms, capabilities, bucket options.
    UnknownEnum,
    /// Listing entries carry v1's `size` and no `contentLength`.
    V1Size,
    /// A `Retry-After` (of a scripted 429/503) is an HTTP date, not seconds.
    RetryAfterDate,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Null,
        Variant::Absent,
        Variant::Extra,
        Variant::UnknownEnum,
        Variant::V1Size,
        Variant::RetryAfterDate,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Null => "null",
            Variant::Absent => "absent",
            Variant::Extra => "extra",
            Variant::UnknownEnum => "unknown_enum",
            Variant::V1Size => "v1_size",
            Variant::RetryAfterDate => "retry_after_date",
        }
    }

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name.trim())
    }
}

/// A set of variants, applied together.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct VariantSet(u8);

impl VariantSet {
    pub fn of(variants: &[Variant]) -> VariantSet {
        VariantSet(variants.iter().fold(0, |bits, v| bits | v.bit()))
    }

    pub fn has(self, v: Variant) -> bool {
        self.0 & v.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn variants(self) -> Vec<Variant> {
        Variant::ALL.into_iter().filter(|v| self.has(*v)).collect()
    }
}

impl fmt::Debug for VariantSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.variants().iter().map(|v| v.name()))
            .finish()
    }
}

/// Which calls answer in which shapes: `call` is a call name or `"*"` (every call
/// without a rule of its own); an empty `variants` removes the call's rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantRule {
    pub call: String,
    pub variants: Vec<Variant>,
    /// Seeds the choices (which unknown value, null or absent, which extra fields).
    #[serde(default)]
    pub seed: u64,
}

impl VariantRule {
    /// Every call, in these shapes.
    pub fn all_calls(variants: &[Variant], seed: u64) -> VariantRule {
        VariantRule {
            call: "*".to_owned(),
            variants: variants.to_vec(),
            seed,
        }
    }
}

impl std::str::FromStr for VariantRule {
    type Err = String;

    /// The command line's form: `[CALL=]VARIANT,VARIANT...[@SEED]` (no CALL: every call;
    /// the name is checked where the rule is set).
    fn from_str(spec: &str) -> Result<VariantRule, String> {
        let (call, rest) = spec.split_once('=').unwrap_or(("*", spec));
        let (list, seed) = match rest.split_once('@') {
            Some((list, seed)) => (
                list,
                seed.parse()
                    .map_err(|_| format!("SEED must be a whole number, not {seed:?}"))?,
            ),
            None => (rest, 0),
        };
        let variants = list
            .split(',')
            .map(|name| {
                Variant::parse(name).ok_or_else(|| {
                    let known: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                    format!("unknown variant {name:?} (known: {})", known.join(", "))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VariantRule {
            call: call.to_owned(),
            variants,
            seed,
        })
    }
}

/// The rules in force.
#[derive(Default)]
pub struct Variants {
    rules: Mutex<BTreeMap<String, (VariantSet, u64)>>,
}

impl Variants {
    pub fn set(&self, rule: &VariantRule) {
        let set = VariantSet::of(&rule.variants);
        let mut rules = self.rules.lock().unwrap();
        if set.is_empty() {
            rules.remove(&rule.call);
        } else {
            rules.insert(rule.call.clone(), (set, rule.seed));
        }
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    pub fn rules(&self) -> Vec<VariantRule> {
        let rules = self.rules.lock().unwrap();
        rules
            .iter()
            .map(|(call, (set, seed))| VariantRule {
                call: call.clone(),
                variants: set.variants(),
                seed: *seed,
            })
            .collect()
    }

    fn for_call(&self, call: &str) -> Option<(VariantSet, u64)> {
        let rules = self.rules.lock().unwrap();
        rules.get(call).or_else(|| rules.get("*")).copied()
    }
}

/// FNV-1a over the call and the answer's shape (its keys, not its values, which hold
/// ids and times that differ from run to run): each shape of answer gets its own choices,
/// and the same ones in every run with the same seed.
fn mix(seed: u64, call: &str, answer: &serde_json::Value) -> u64 {
    fn feed(h: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *h ^= u64::from(*b);
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn keys(h: &mut u64, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    feed(h, k.as_bytes());
                    keys(h, v);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| keys(h, v)),
            _ => feed(h, b"."),
        }
    }
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    feed(&mut h, call.as_bytes());
    keys(&mut h, answer);
    h
}

/// The answer to `call` in the shapes its rule asks for (unchanged without a rule).
/// Only JSON answers are rewritten; a download's body never is. `clock_offset_ms` is the
/// test's moved clock, so a `Retry-After` date agrees with the answer's `Date`.
pub async fn apply(
    variants: &Variants,
    call: &str,
    is_download: bool,
    clock_offset_ms: i64,
    resp: Response<Body>,
) -> Response<Body> {
    let Some((set, seed)) = variants.for_call(call) else {
        return resp;
    };
    let mut resp = resp;
    if set.has(Variant::RetryAfterDate) {
        retry_after_as_date(&mut resp, clock_offset_ms);
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if is_download || resp.status() != StatusCode::OK || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // JSON answers are whole in memory already (`Full` bodies): collecting cannot fail.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, full(Vec::new())),
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, full(bytes));
    };
    let mut rng = Rng::new(mix(seed, call, &value));
    rewrite(call, &mut value, set, &mut rng);
    let text = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from(text.len()),
    );
    Response::from_parts(parts, full(text))
}

/// `Retry-After: N` becomes the date N seconds on, rounded up to the next whole second
/// (an HTTP date has no fractions; rounding down would shorten the wait).
fn retry_after_as_date(resp: &mut Response<Body>, clock_offset_ms: i64) {
    let Some(secs) = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return;
    };
    let now = SystemTime::now();
    let now = if clock_offset_ms >= 0 {
        now + Duration::from_millis(clock_offset_ms as u64)
    } else {
        now - Duration::from_millis(clock_offset_ms.unsigned_abs())
    };
    let at = now + Duration::from_secs(secs + 1);
    if let Ok(v) = httpdate::fmt_http_date(at).parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}
