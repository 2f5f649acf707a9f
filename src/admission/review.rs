//! The AdmissionReview envelope (`admission.k8s.io/v1`): reading a request
//! strictly, and building the response with kube's own response type.

use kube::core::admission::{AdmissionResponse, Operation};
use kube::core::{GroupVersionKind, Status, TypeMeta};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::object::{FlinkObject, Typed};
use crate::flink::crd::{FlinkDeploymentSpec, FlinkSessionJobSpec};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";
/// kube-apiserver's own limit on a request body.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Why a body is not a usable AdmissionReview (answered with HTTP 400).
#[derive(Debug, Error)]
pub enum BadReview {
    #[error("request body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body is not a valid AdmissionReview: {0}")]
    Json(String),
    #[error("apiVersion must be {API_VERSION}, got {0:?}")]
    ApiVersion(Option<String>),
    #[error("kind must be {KIND}, got {0:?}")]
    Kind(Option<String>),
    #[error("AdmissionReview has no request")]
    MissingRequest,
    #[error("request.uid is missing or empty")]
    MissingUid,
    #[error("{0}")]
    Object(String),
}

impl BadReview {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Json(_) => "invalid_json",
            Self::ApiVersion(_) => "wrong_api_version",
            Self::Kind(_) => "wrong_kind",
            Self::MissingRequest => "missing_request",
            Self::MissingUid => "missing_uid",
            Self::Object(_) => "bad_object",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "R: Deserialize<'de>"))]
struct Envelope<R> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    request: Option<R>,
}

/// The parts of `AdmissionRequest` flinkgate reads. The objects stay raw
/// JSON until the kind is known to matter, so unrelated pods cost nothing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    #[serde(default)]
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub object: Option<Box<RawValue>>,
    #[serde(default)]
    pub old_object: Option<Box<RawValue>>,
    /// `object` read typed by [`parse_typed`]; `object` is then `None`.
    #[serde(skip)]
    pub typed: Option<Typed>,
    /// `oldObject` read typed by [`parse_typed`]; `old_object` is then `None`.
    #[serde(skip)]
    pub typed_old: Option<Typed>,
}

/// Reads a review, keeping the objects as raw JSON text.
pub fn parse(body: &[u8]) -> Result<Request, BadReview> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BadReview::TooLarge);
    }
    // Tracking the path costs on every key; only a failed parse needs it,
    // so it runs again with the tracker then.
    let env: Envelope<Request> = match from_json(body) {
        Ok(env) => env,
        Err(plain) => return Err(BadReview::Json(json_error_with_path(body, plain))),
    };
    checked(env)
}

/// Reads a review in one pass: the objects of the Flink resources
/// flinkgate decides on are read typed as the parser reaches them (the
/// kind comes first in every review kube-apiserver writes), instead of
/// being captured as text and read again, which was a fifth of a review's
/// cost. Anything else stays raw. A review this pass cannot read, whatever
/// the reason, is read again by [`parse`], which gives the same request or
/// explains what is wrong.
pub fn parse_typed(body: &[u8]) -> Result<Request, BadReview> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BadReview::TooLarge);
    }
    if let Ok(env) = from_json::<Envelope<TypedRequest>>(body) {
        let env = Envelope {
            api_version: env.api_version,
            kind: env.kind,
            request: env.request.map(|r| r.0),
        };
        // parse() names a missing metadata.
        let metadata_present = env.request.as_ref().is_some_and(|r| {
            [&r.typed, &r.typed_old]
                .into_iter()
                .flatten()
                .all(|t| t.metadata().is_some())
        });
        if metadata_present && let Ok(request) = checked(env) {
            return Ok(request);
        }
    }
    parse(body)
}

/// Reads JSON from a body checked for UTF-8 once, as a whole: reading from
/// bytes checks every string on its own, which cost more than the check.
/// Bytes that are not UTF-8 get the byte reader's own error.
fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// The envelope's own rules: version, kind, uid, and objects that can be
/// admitted.
fn checked(env: Envelope<Request>) -> Result<Request, BadReview> {
    if env.api_version.as_deref() != Some(API_VERSION) {
        return Err(BadReview::ApiVersion(env.api_version));
    }
    if env.kind.as_deref() != Some(KIND) {
        return Err(BadReview::Kind(env.kind));
    }
    let request = env.request.ok_or(BadReview::MissingRequest)?;
    if request.uid.trim().is_empty() {
        return Err(BadReview::MissingUid);
    }
    if matches!(request.operation, Operation::Create | Operation::Update)
        && request.typed.is_none()
        && request.object.as_ref().is_none_or(|o| o.get() == "null")
    {
        return Err(BadReview::Object(format!(
            "request.object is missing; a {:?} carries the object",
            request.operation
        )));
    }
    for (field, object) in [
        ("request.object", &request.object),
        ("request.oldObject", &request.old_object),
    ] {
        if let Some(raw) = object.as_deref().filter(|o| o.get() != "null")
            && let Some(problem) = object_problem(raw)
        {
            return Err(BadReview::Object(format!("{field} {problem}")));
        }
    }
    Ok(request)
}

/// [`Request`] read with its Flink objects typed: a hand-written visitor,
/// because how `object` is read depends on `kind`, read before it.
struct TypedRequest(Request);

impl<'de> Deserialize<'de> for TypedRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

/// An object as read: typed for the Flink kinds, raw otherwise.
enum Slot {
    Raw(Option<Box<RawValue>>),
    Typed(Option<Typed>),
}

fn read_object<'de, M: serde::de::MapAccess<'de>>(
    map: &mut M,
    kind: Option<&GroupVersionKind>,
) -> Result<Slot, M::Error> {
    let flink = kind.filter(|k| k.group == "flink.apache.org");
    Ok(match flink.map(|k| k.kind.as_str()) {
        Some("FlinkDeployment") => Slot::Typed(
            map.next_value::<Option<Box<FlinkObject<FlinkDeploymentSpec>>>>()?
                .map(Typed::FlinkDeployment),
        ),
        Some("FlinkSessionJob") => Slot::Typed(
            map.next_value::<Option<Box<FlinkObject<FlinkSessionJobSpec>>>>()?
                .map(Typed::FlinkSessionJob),
        ),
        _ => Slot::Raw(map.next_value()?),
    })
}

impl<'de> serde::de::Visitor<'de> for RequestVisitor {
    type Value = TypedRequest;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an AdmissionRequest")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<TypedRequest, M::Error> {
        use serde::de::Error as _;
        use serde::de::IgnoredAny;

        /// A field seen twice is an error, as in the derived reader.
        fn once<T, E: serde::de::Error>(
            slot: &mut Option<T>,
            value: T,
            key: &str,
        ) -> Result<(), E> {
            match slot.replace(value) {
                None => Ok(()),
                Some(_) => Err(E::custom(format!("duplicate field `{key}`"))),
            }
        }
        let (mut uid, mut kind, mut sub_resource, mut name, mut namespace) =
            (None, None, None, None, None);
        let (mut operation, mut dry_run, mut object, mut old_object) = (None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "uid" => once(&mut uid, map.next_value::<String>()?, &key)?,
                "kind" => once(&mut kind, map.next_value::<GroupVersionKind>()?, &key)?,
                "subResource" => once(&mut sub_resource, map.next_value()?, &key)?,
                "name" => once(&mut name, map.next_value::<String>()?, &key)?,
                "namespace" => once(&mut namespace, map.next_value()?, &key)?,
                "operation" => once(&mut operation, map.next_value::<Operation>()?, &key)?,
                "dryRun" => once(&mut dry_run, map.next_value()?, &key)?,
                "object" => once(&mut object, read_object(&mut map, kind.as_ref())?, &key)?,
                "oldObject" => once(&mut old_object, read_object(&mut map, kind.as_ref())?, &key)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let split = |slot: Option<Slot>| match slot {
            None => (None, None),
            Some(Slot::Raw(raw)) => (raw, None),
            Some(Slot::Typed(typed)) => (None, typed),
        };
        let (object, typed) = split(object);
        let (old_object, typed_old) = split(old_object);
        Ok(TypedRequest(Request {
            uid: uid.unwrap_or_default(),
            kind: kind.ok_or_else(|| M::Error::missing_field("kind"))?,
            sub_resource: sub_resource.flatten(),
            name: name.unwrap_or_default(),
            namespace: namespace.flatten(),
            operation: operation.ok_or_else(|| M::Error::missing_field("operation"))?,
            dry_run: dry_run.flatten(),
            object,
            old_object,
            typed,
            typed_old,
        }))
    }
}

/// The parse error of `body` with the path where it happened.
fn json_error_with_path(body: &[u8], plain: serde_json::Error) -> String {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, Envelope<Request>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        }
        // Trailing characters after a whole review.
        Ok(_) => match de.end() {
            Err(e) => e.to_string(),
            Ok(()) => plain.to_string(),
        },
    }
}

/// Why an object cannot be admitted or patched: not a JSON object, or no
/// `metadata` object. Reads keys only until `metadata` (usually the third),
/// skipping nothing after it; the text is already known to be JSON.
fn object_problem(raw: &RawValue) -> Option<&'static str> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    /// Sets `metadata_is_object` and stops the walk (with an error) at
    /// `metadata`.
    struct Top<'o>(&'o mut Option<bool>);
    impl<'de> Visitor<'de> for Top<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            use serde::de::Error as _;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "metadata" {
                    map.next_value_seed(IsObject(self.0))?;
                    return Err(M::Error::custom("stop: metadata found"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }

    /// Whether a value is an object, known from its first token: the rest
    /// (managedFields can be most of an object) is never read.
    struct IsObject<'o>(&'o mut Option<bool>);
    impl<'de> serde::de::DeserializeSeed<'de> for IsObject<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            *self.0 = Some(false);
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for IsObject<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<M: MapAccess<'de>>(self, _map: M) -> Result<(), M::Error> {
            use serde::de::Error as _;
            *self.0 = Some(true);
            Err(M::Error::custom("stop: metadata is an object"))
        }
    }

    if !raw.get().starts_with('{') {
        return Some("is not a JSON object");
    }
    let mut metadata_is_object = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    // An error after `metadata` is the deliberate stop.
    let walked = de.deserialize_map(Top(&mut metadata_is_object));
    match (metadata_is_object, walked) {
        (Some(true), _) => None,
        (Some(false), _) => Some("has a metadata that is not an object"),
        (None, Ok(())) => Some("has no metadata"),
        (None, Err(_)) => Some("is not a readable JSON object"),
    }
}

/// An allowing response for `uid`, to be narrowed by the caller.
pub fn allow(uid: &str) -> AdmissionResponse {
    // kube's constructors want its generic request type; start from the
    // one that does not, and make it an allowing v1 response.
    let mut r = AdmissionResponse::invalid("");
    r.types = TypeMeta {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
    };
    r.uid = uid.to_string();
    r.allowed = true;
    r.result = Status::default();
    r
}

/// A denial with an HTTP-like code (403 policy, 400 malformed object).
pub fn deny(uid: &str, code: u16, reason: &str, message: String) -> AdmissionResponse {
    let mut r = allow(uid).deny(message);
    r.result.code = code;
    r.result.reason = reason.to_string();
    r
}

/// Serialises the response as an `admission.k8s.io/v1` AdmissionReview.
///
/// kube's own serialisation writes `patch` as an array of numbers
/// (kube-rs/kube#1781); the API defines it as base64, so this writes it so.
/// The envelope is written by hand: base64 needs no escaping, and letting
/// the serializer scan it for escapes cost as much as encoding it.
pub fn encode(response: AdmissionResponse) -> Vec<u8> {
    let patch_len = response.patch.as_ref().map_or(0, |p| p.len() * 4 / 3 + 4);
    let mut out = Vec::with_capacity(256 + patch_len);
    out.extend_from_slice(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    // Strings, numbers and maps of strings: writing them cannot fail.
    let _ = serde_json::to_writer(&mut out, &response.uid);
    out.extend_from_slice(if response.allowed {
        br#","allowed":true,"status":"#
    } else {
        br#","allowed":false,"status":"#
    });
    let _ = serde_json::to_writer(&mut out, &response.result);
    if let Some(patch) = &response.patch {
        out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        base64_simd::STANDARD.encode_append(patch, &mut out);
        out.push(b'"');
    }
    if !response.audit_annotations.is_empty() {
        out.extend_from_slice(br#","auditAnnotations":"#);
        let _ = serde_json::to_writer(&mut out, &response.audit_annotations);
    }
    if let Some(warnings) = &response.warnings {
        out.extend_from_slice(br#","warnings":"#);
        let _ = serde_json::to_writer(&mut out, warnings);
    }
    out.extend_from_slice(b"}}");
    out
}

/// `response` carrying `patch`, the text of a JSON Patch.
pub fn with_patch(
    response: AdmissionResponse,
    patch: Vec<u8>,
) -> Result<AdmissionResponse, serde_json::Error> {
    // kube keeps patchType private to with_patch; an empty patch sets it
    // cheaply, then the text takes its place.
    let mut response = response
        .with_patch(json_patch::Patch(Vec::new()))
        .map_err(|e| serde::ser::Error::custom(e.to_string()))?;
    response.patch = Some(patch);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(body: &str) -> Result<Request, BadReview> {
        parse(body.as_bytes())
    }

    const OK: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","object":{"metadata":{},"a":1}}}"#;

    #[test]
    fn objects_that_cannot_be_admitted_or_patched_are_named() {
        let with = |operation: &str, object: &str, old: &str| {
            let mut v: serde_json::Value = serde_json::from_str(OK).unwrap();
            v["request"]["operation"] = operation.into();
            v["request"]["object"] = serde_json::from_str(object).unwrap();
            v["request"]["oldObject"] = serde_json::from_str(old).unwrap();
            v.to_string()
        };
        let cases = [
            (
                "CREATE",
                "[1,2]",
                "null",
                "request.object is not a JSON object",
            ),
            (
                "CREATE",
                r#""text""#,
                "null",
                "request.object is not a JSON object",
            ),
            (
                "CREATE",
                r#"{"spec":{}}"#,
                "null",
                "request.object has no metadata",
            ),
            (
                "CREATE",
                r#"{"metadata":[]}"#,
                "null",
                "request.object has a metadata that is not an object",
            ),
            (
                "CREATE",
                "null",
                "null",
                "request.object is missing; a Create carries the object",
            ),
            (
                "UPDATE",
                r#"{"metadata":{}}"#,
                "7",
                "request.oldObject is not a JSON object",
            ),
        ];
        for (op, object, old, message) in cases {
            let body = with(op, object, old);
            match review(&body) {
                Err(BadReview::Object(m)) => assert_eq!(m, message, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        // A DELETE carries only the old object; metadata after other keys is found.
        review(&with(
            "DELETE",
            "null",
            r#"{"kind":"X","spec":{"a":[1]},"metadata":{"name":"n"}}"#,
        ))
        .unwrap();
    }

    #[test]
    fn parses_a_review() {
        let r = review(OK).unwrap();
        assert_eq!(r.uid, "u1");
        assert_eq!(r.kind.kind, "Pod");
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(r.object.unwrap().get(), r#"{"metadata":{},"a":1}"#);
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert!(matches!(review("not json"), Err(BadReview::Json(_))));
        assert!(matches!(
            review(&OK[..OK.len() - 5]),
            Err(BadReview::Json(_))
        ));
        assert!(matches!(
            review(&OK.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1")),
            Err(BadReview::ApiVersion(_))
        ));
        assert!(matches!(
            review(&OK.replace("\"AdmissionReview\"", "\"Pod\"")),
            Err(BadReview::Kind(_))
        ));
        assert!(matches!(
            review(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(BadReview::MissingRequest)
        ));
        assert!(matches!(
            review(&OK.replace("\"u1\"", "\"\"")),
            Err(BadReview::MissingUid)
        ));
        assert!(
            matches!(review(&OK.replace("\"CREATE\"", "\"EXPLODE\"")), Err(BadReview::Json(m)) if m.contains("operation"))
        );
        assert!(matches!(
            review(&format!("{OK} trailing")),
            Err(BadReview::Json(_))
        ));
        assert!(matches!(
            parse(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(BadReview::TooLarge)
        ));
    }

    #[test]
    fn the_hand_written_envelope_equals_serdes() {
        let mut warned = allow("u\"\\\u{1}");
        warned.warnings = Some(vec!["a \"quoted\" warning".into(), "ü".into()]);
        warned.audit_annotations.insert("k".into(), "v\n".into());
        for resp in [
            allow("u1"),
            deny("u2", 403, "Forbidden", "line 1\n  2. \"x\"".into()),
            warned,
        ] {
            let expected = serde_json::json!({
                "apiVersion": API_VERSION,
                "kind": KIND,
                "response": {
                    "uid": resp.uid,
                    "allowed": resp.allowed,
                    "status": serde_json::to_value(&resp.result).unwrap(),
                }
            });
            let mut expected = expected;
            if let Some(w) = &resp.warnings {
                expected["response"]["warnings"] = serde_json::json!(w);
            }
            if !resp.audit_annotations.is_empty() {
                expected["response"]["auditAnnotations"] =
                    serde_json::json!(resp.audit_annotations);
            }
            let got: serde_json::Value = serde_json::from_slice(&encode(resp)).unwrap();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn encodes_v1_responses() {
        let v: serde_json::Value =
            serde_json::from_slice(&encode(deny("u", 403, "Forbidden", "no".into()))).unwrap();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "no");
        assert!(v["response"].get("patch").is_none());
        assert!(v["response"].get("patchType").is_none());
    }

    #[test]
    fn encodes_the_patch_as_base64() {
        use base64::Engine;
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"add","path":"/a","value":1}]"#).unwrap();
        let resp = with_patch(allow("u"), serde_json::to_vec(&patch).unwrap()).unwrap();
        // The same as kube's own, but for the base64.
        let kube_patch = allow("u").with_patch(patch.clone()).unwrap().patch;
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(resp.patch.as_ref().unwrap()).unwrap(),
            serde_json::from_slice::<serde_json::Value>(&kube_patch.unwrap()).unwrap()
        );
        let v: serde_json::Value = serde_json::from_slice(&encode(resp)).unwrap();
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let back: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
        assert_eq!(back, patch);
        // Every length around the vector widths, against another encoder.
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 131 + len) as u8).collect();
            let mut resp = allow("u");
            resp.patch = Some(bytes.clone());
            let v: serde_json::Value = serde_json::from_slice(&encode(resp)).unwrap();
            assert_eq!(
                v["response"]["patch"],
                base64::engine::general_purpose::STANDARD.encode(&bytes),
                "{len} bytes"
            );
        }
    }
}
