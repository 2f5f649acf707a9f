//! The kube-scheduler extender wire format (`k8s.io/kube-scheduler/extender/v1`).
//! The Go structs carry no json tags, so the keys are the Go field names
//! (PascalCase); the embedded Pod and NodeList keep Kubernetes' camelCase.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// `ExtenderArgs`: the pod and either the candidate nodes' names
/// (`nodeCacheCapable: true`) or the full NodeList; the unused one is null.
///
/// Borrowed from the request body: names and raw Nodes point into it, so
/// reading 5,000 names allocates one vector, not 5,000 strings. `N` is how a
/// NodeList item is read: [`RawNode`] where the Node goes back out
/// unchanged (filter), [`NamedNode`] where only its name matters (prioritize).
#[derive(Debug, Deserialize)]
#[serde(
    rename_all = "PascalCase",
    bound(deserialize = "N: Deserialize<'de>, 'de: 'a")
)]
pub struct ExtenderArgs<'a, N> {
    #[serde(default)]
    pub pod: Option<PodMeta>,
    #[serde(default)]
    pub nodes: Option<NodeList<N>>,
    #[serde(default, borrow, deserialize_with = "at_most_max_nodes_or_null")]
    pub node_names: Option<Vec<NodeName<'a>>>,
}

/// The most candidate nodes one request may carry: twice the largest
/// cluster Kubernetes supports (5,000 nodes). A longer list is refused
/// while it is read, so a body of tiny names cannot grow a huge vector.
pub const MAX_NODES: usize = 10_000;

fn at_most_max_nodes<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_NODES} nodes")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_NODES));
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX_NODES {
                    return Err(de::Error::custom(format!(
                        "more than {MAX_NODES} candidate nodes"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded(std::marker::PhantomData))
}

fn at_most_max_nodes_or_null<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OrNull<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OrNull<T> {
        type Value = Option<Vec<T>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "null or a list of at most {MAX_NODES} nodes")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            at_most_max_nodes(d).map(Some)
        }
    }
    d.deserialize_option(OrNull(std::marker::PhantomData))
}

/// A node name: borrowed from the body unless it had JSON escapes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct NodeName<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl NodeName<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeName<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The parts of the pod the extender reads.
#[derive(Debug, Default, Deserialize)]
pub struct PodMeta {
    #[serde(default)]
    pub metadata: PodMetadata,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodMetadata {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// A NodeList; only its items are read.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "N: Deserialize<'de>"))]
pub struct NodeList<N> {
    #[serde(default, deserialize_with = "at_most_max_nodes")]
    pub items: Vec<N>,
}

/// A Node kept as its raw JSON (borrowed from the body): filter must send
/// the very same objects back.
pub type RawNode<'a> = &'a RawValue;

/// A Node of which only `metadata.name` is read; serde skips the rest
/// (labels, status, images: ~5 KB) without building anything.
#[derive(Debug, Deserialize)]
pub struct NamedNode<'a> {
    #[serde(borrow)]
    metadata: NamedNodeMeta<'a>,
}

#[derive(Debug, Deserialize)]
struct NamedNodeMeta<'a> {
    #[serde(borrow)]
    name: NodeName<'a>,
}

/// How the name of a NodeList item is found.
pub trait NodeItem<'a> {
    fn node_name(&self) -> Result<NodeName<'a>, serde_json::Error>;
}

impl<'a> NodeItem<'a> for NamedNode<'a> {
    fn node_name(&self) -> Result<NodeName<'a>, serde_json::Error> {
        Ok(self.metadata.name.clone())
    }
}

impl<'a> NodeItem<'a> for RawNode<'a> {
    /// Stops reading once `metadata.name` is found. Go writes `metadata`
    /// first and `name` first within it, so the rest of the Node (status,
    /// images: most of its ~5 KB) is not scanned a second time; it was
    /// already checked to be JSON when the body was read.
    fn node_name(&self) -> Result<NodeName<'a>, serde_json::Error> {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_str(self.get());
        let read = de.deserialize_map(FindName {
            inside_metadata: false,
            found: &mut found,
        });
        match (found, read) {
            // Any error after the name is the deliberate stop.
            (Some(name), _) => Ok(name),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(de::Error::missing_field("name")),
        }
    }
}

/// Walks a Node (then its `metadata`) for `name`, and aborts the walk with an
/// error as soon as it has it.
struct FindName<'o, 'a> {
    inside_metadata: bool,
    found: &'o mut Option<NodeName<'a>>,
}

impl<'de: 'a, 'a> Visitor<'de> for FindName<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.inside_metadata {
            "an ObjectMeta"
        } else {
            "a Node"
        })
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let wanted = if self.inside_metadata {
            "name"
        } else {
            "metadata"
        };
        while let Some(is_wanted) = map.next_key_seed(KeyIs(wanted))? {
            if !is_wanted {
                map.next_value::<IgnoredAny>()?;
            } else if self.inside_metadata {
                *self.found = Some(map.next_value()?);
                return Err(de::Error::custom("stop: name found"));
            } else {
                return map.next_value_seed(FindName {
                    inside_metadata: true,
                    found: self.found,
                });
            }
        }
        Ok(())
    }
}

/// Whether a map key is the one wanted, read without allocating it.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for FindName<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// `ExtenderFilterResult` when the candidates came as names; for full
/// Nodes see [`filter_result_with_nodes`].
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct FilterResult<'a> {
    /// Always null in this form.
    pub nodes: (),
    pub node_names: Option<Vec<&'a str>>,
    pub failed_nodes: BTreeMap<String, String>,
    pub failed_and_unresolvable_nodes: BTreeMap<String, String>,
    pub error: String,
}

/// `ExtenderFilterResult` with the kept full Nodes, as pieces to send one
/// after another. Each Node is the caller's slice of the request body, sent
/// back unchanged and never copied: a 30 MiB NodeList costs 30 MiB, not 60.
pub fn filter_result_with_nodes(
    kept: impl IntoIterator<Item = bytes::Bytes>,
    failed: &BTreeMap<String, String>,
) -> Result<Vec<bytes::Bytes>, serde_json::Error> {
    let mut head = br#"{"NodeNames":null,"FailedNodes":"#.to_vec();
    serde_json::to_writer(&mut head, failed)?;
    head.extend_from_slice(
        br#","FailedAndUnresolvableNodes":{},"Error":"","Nodes":{"apiVersion":"v1","kind":"NodeList","metadata":{},"items":["#,
    );
    let mut pieces = vec![bytes::Bytes::from(head)];
    for (i, node) in kept.into_iter().enumerate() {
        if i > 0 {
            pieces.push(bytes::Bytes::from_static(b","));
        }
        pieces.push(node);
    }
    pieces.push(bytes::Bytes::from_static(b"]}}"));
    Ok(pieces)
}

/// One entry of the `HostPriorityList` prioritize returns (a bare array).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HostPriority<'a> {
    pub host: &'a str,
    pub score: i64,
}

/// Writes a `HostPriorityList` straight into a buffer sized for it. This is
/// most of a prioritize call's output work, so names that need no JSON
/// escaping (all valid node names) are copied as they are instead of going
/// through serde_json's per-byte escaping; the others still do.
pub fn write_host_priorities(list: &[HostPriority]) -> Result<Vec<u8>, serde_json::Error> {
    // `{"Host":"","Score":10},`: 23 bytes around each name (scores are 0..=10).
    let mut out = Vec::with_capacity(2 + list.iter().map(|h| h.host.len() + 23).sum::<usize>());
    out.push(b'[');
    for (i, h) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"Host":"#);
        if h.host.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.push(b'"');
            out.extend_from_slice(h.host.as_bytes());
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut out, h.host)?;
        }
        out.extend_from_slice(br#","Score":"#);
        write_int(&mut out, h.score);
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        // `rest % 10` is below 10, so the cast keeps it.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Highest score the scheduler accepts from an extender (it does not clamp).
pub const MAX_EXTENDER_PRIORITY: i64 = 10;

/// What a call works on: the pod, the candidates' names in input order, and
/// the Nodes themselves when they came as a NodeList (the answer is then a
/// NodeList too).
#[derive(Debug)]
pub struct Candidates<'a, N> {
    pub pod: Option<PodMeta>,
    pub names: Vec<NodeName<'a>>,
    pub nodes: Option<Vec<N>>,
}

/// Why an ExtenderArgs body cannot be worked on.
#[derive(Debug, thiserror::Error)]
pub enum BadExtenderArgs {
    #[error("body is not ExtenderArgs: {0}")]
    Json(#[from] serde_json::Error),
    #[error("Nodes.items[{index}] has no metadata.name: {source}")]
    UnnamedNode {
        index: usize,
        source: serde_json::Error,
    },
    #[error("ExtenderArgs has neither NodeNames nor Nodes")]
    NoCandidates,
}

impl<'a, N: NodeItem<'a>> ExtenderArgs<'a, N> {
    /// The candidates, from whichever form was sent (names win if both
    /// are); an item without `metadata.name` is an error.
    pub fn into_candidates(self) -> Result<Candidates<'a, N>, BadExtenderArgs> {
        let (names, nodes) = match (self.node_names, self.nodes) {
            (Some(names), _) => (names, None),
            (None, Some(list)) => {
                let names = list
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.node_name()
                            .map_err(|source| BadExtenderArgs::UnnamedNode { index: i, source })
                    })
                    .collect::<Result<_, _>>()?;
                (names, Some(list.items))
            }
            (None, None) => return Err(BadExtenderArgs::NoCandidates),
        };
        Ok(Candidates {
            pod: self.pod,
            names,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms() {
        let names: ExtenderArgs<RawNode> = serde_json::from_str(
            r#"{"Pod":{"metadata":{"name":"p","labels":{"a":"b"}}},"Nodes":null,"NodeNames":["n1","n2"]}"#,
        )
        .unwrap();
        let as_str =
            |v: Vec<NodeName>| v.iter().map(|n| n.as_str().to_string()).collect::<Vec<_>>();
        assert_eq!(
            as_str(names.into_candidates().map(|c| c.names).unwrap()),
            ["n1", "n2"]
        );
        let full = r#"{"Pod":{"metadata":{"name":"p"}},"Nodes":{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"n1","labels":{}},"status":{}}]},"NodeNames":null}"#;
        let raw: ExtenderArgs<RawNode> = serde_json::from_str(full).unwrap();
        assert_eq!(
            as_str(raw.into_candidates().map(|c| c.names).unwrap()),
            ["n1"]
        );
        let named: ExtenderArgs<NamedNode> = serde_json::from_str(full).unwrap();
        assert_eq!(
            as_str(named.into_candidates().map(|c| c.names).unwrap()),
            ["n1"]
        );
        let none: ExtenderArgs<NamedNode> =
            serde_json::from_str(r#"{"Pod":null,"Nodes":null,"NodeNames":null}"#).unwrap();
        assert!(none.into_candidates().map(|c| c.names).is_err());
        let absent: ExtenderArgs<NamedNode> = serde_json::from_str(r#"{}"#).unwrap();
        assert!(absent.into_candidates().map(|c| c.names).is_err());
    }

    #[test]
    fn names_borrow_from_the_body_unless_escaped() {
        let body = r#"{"NodeNames":["plain","esc\u0061ped"]}"#;
        let args: ExtenderArgs<RawNode> = serde_json::from_str(body).unwrap();
        let names = args.into_candidates().map(|c| c.names).unwrap();
        assert!(matches!(names[0].0, Cow::Borrowed("plain")));
        assert!(matches!(&names[1].0, Cow::Owned(s) if s == "escaped"));
        let full =
            r#"{"Nodes":{"items":[{"metadata":{"name":"n\u0031"}},{"metadata":{"name":"n2"}}]}}"#;
        let raw: ExtenderArgs<RawNode> = serde_json::from_str(full).unwrap();
        let names = raw.into_candidates().map(|c| c.names).unwrap();
        assert_eq!(names[0].as_str(), "n1");
        assert!(matches!(names[1].0, Cow::Borrowed("n2")));
    }

    #[test]
    fn more_than_max_nodes_is_refused_while_reading() {
        let names = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("\"n{i}\"")).collect();
            format!(r#"{{"NodeNames":[{}]}}"#, list.join(","))
        };
        let ok = names(MAX_NODES);
        let args: ExtenderArgs<'_, NamedNode<'_>> = serde_json::from_str(&ok).unwrap();
        assert_eq!(args.node_names.unwrap().len(), MAX_NODES);
        let too_many = names(MAX_NODES + 1);
        let err = serde_json::from_str::<ExtenderArgs<'_, NamedNode<'_>>>(&too_many).unwrap_err();
        assert!(
            err.to_string().contains("more than 10000 candidate nodes"),
            "{err}"
        );
        let items: Vec<String> = (0..=MAX_NODES)
            .map(|i| format!(r#"{{"metadata":{{"name":"n{i}"}}}}"#))
            .collect();
        let list = format!(r#"{{"Nodes":{{"items":[{}]}}}}"#, items.join(","));
        let err = serde_json::from_str::<ExtenderArgs<'_, RawNode<'_>>>(&list).unwrap_err();
        assert!(
            err.to_string().contains("more than 10000 candidate nodes"),
            "{err}"
        );
        let null: ExtenderArgs<'_, NamedNode<'_>> =
            serde_json::from_str(r#"{"NodeNames":null,"Nodes":null}"#).unwrap();
        assert!(null.node_names.is_none() && null.nodes.is_none());
    }

    #[test]
    fn raw_node_names_are_found_in_any_key_order() {
        let body = r#"{"Nodes":{"items":[
            {"metadata":{"name":"go-order","labels":{"a":"b"}},"status":{"images":[1,2]}},
            {"status":{"capacity":{"cpu":"8"}},"kind":"Node","metadata":{"labels":{"name":"label"},"uid":"u","name":"last"}},
            {"metad\u0061ta":{"n\u0061me":"escaped-keys"}}
        ]}}"#;
        let raw: ExtenderArgs<RawNode> = serde_json::from_str(body).unwrap();
        let names: Vec<String> = raw
            .into_candidates()
            .map(|c| c.names)
            .unwrap()
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(names, ["go-order", "last", "escaped-keys"]);
        let named: ExtenderArgs<NamedNode> = serde_json::from_str(body).unwrap();
        assert_eq!(named.into_candidates().map(|c| c.names).unwrap().len(), 3);
    }

    #[test]
    fn a_node_without_a_name_is_an_error_naming_the_item() {
        for item in [
            r#"{"metadata":{}}"#,
            r#"{"metadata":{"name":5}}"#,
            r#"{}"#,
            r#"[1]"#,
            r#""n""#,
        ] {
            let body =
                format!(r#"{{"Nodes":{{"items":[{{"metadata":{{"name":"n1"}}}},{item}]}}}}"#);
            let raw: ExtenderArgs<RawNode> = serde_json::from_str(&body).unwrap();
            let e = raw.into_candidates().map(|c| c.names).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("Nodes.items[1] has no metadata.name"),
                "{item}: {e}"
            );
            // Read as NamedNode, the same body fails while parsing.
            assert!(serde_json::from_str::<ExtenderArgs<NamedNode>>(&body).is_err());
        }
    }

    #[test]
    fn host_priorities_are_written_as_serde_would() {
        let hosts = [
            "node-1",
            "",
            "quote\"d",
            "back\\slash",
            "tab\there",
            "ünïcode",
            "n",
            "n",
        ];
        let scores = [5, 0, 10, -3, 7, 123_456, i64::MIN, i64::MAX];
        let list: Vec<HostPriority> = hosts
            .iter()
            .zip(scores)
            .map(|(host, score)| HostPriority { host, score })
            .collect();
        let fast = write_host_priorities(&list).unwrap();
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            serde_json::to_string(&list).unwrap()
        );
        assert_eq!(write_host_priorities(&[]).unwrap(), b"[]");
    }

    #[test]
    fn a_filter_result_with_nodes_is_the_go_shape() {
        let mut failed = BTreeMap::new();
        failed.insert("slow".to_string(), "below the floor \"0.5\"".to_string());
        let pieces = filter_result_with_nodes(
            [
                bytes::Bytes::from_static(br#"{"metadata":{"name":"a"}}"#),
                bytes::Bytes::from_static(br#"{"metadata":{"name":"b"},"status":{}}"#),
            ],
            &failed,
        )
        .unwrap();
        let whole: Vec<u8> = pieces.concat();
        let v: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "Nodes": {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": [
                    {"metadata": {"name": "a"}},
                    {"metadata": {"name": "b"}, "status": {}},
                ]},
                "NodeNames": null,
                "FailedNodes": {"slow": "below the floor \"0.5\""},
                "FailedAndUnresolvableNodes": {},
                "Error": "",
            })
        );
        let none = filter_result_with_nodes([], &BTreeMap::new())
            .unwrap()
            .concat();
        let v: serde_json::Value = serde_json::from_slice(&none).unwrap();
        assert_eq!(v["Nodes"]["items"], serde_json::json!([]));
    }

    #[test]
    fn writes_pascal_case() {
        let r = FilterResult {
            node_names: Some(vec!["n1"]),
            ..FilterResult::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["NodeNames"][0], "n1");
        assert!(v["Nodes"].is_null());
        assert_eq!(v["Error"], "");
        assert!(v["FailedNodes"].as_object().unwrap().is_empty());
        let p = serde_json::to_value(vec![HostPriority {
            host: "n1",
            score: 5,
        }])
        .unwrap();
        assert_eq!(p, serde_json::json!([{"Host": "n1", "Score": 5}]));
    }
}
