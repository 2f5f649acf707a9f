//! RFC 6902 difference between an object and its mutated copy.
//!
//! `json_patch::diff` builds a pointer for every node it visits, which made
//! it the largest cost of a mutation; this one skips equal subtrees with a
//! plain equality test and only builds pointers where something changed.
//! The operations are json-patch's own types.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

pub fn diff(left: &Value, right: &Value) -> Patch {
    let mut ops = Vec::new();
    let mut pointer = PointerBuf::root();
    walk(left, right, &mut pointer, &mut ops);
    Patch(ops)
}

fn walk(left: &Value, right: &Value, pointer: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    match (left, right) {
        _ if left == right => {}
        (Value::Object(l), Value::Object(r)) => {
            for (key, lv) in l {
                pointer.push_back(key.as_str());
                match r.get(key) {
                    Some(rv) => walk(lv, rv, pointer, ops),
                    None => ops.push(PatchOperation::Remove(RemoveOperation {
                        path: pointer.clone(),
                    })),
                }
                pointer.pop_back();
            }
            for (key, rv) in r.iter().filter(|(k, _)| !l.contains_key(*k)) {
                pointer.push_back(key.as_str());
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer.clone(),
                    value: rv.clone(),
                }));
                pointer.pop_back();
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
                pointer.push_back(i);
                walk(lv, rv, pointer, ops);
                pointer.pop_back();
            }
        }
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer.clone(),
            value: right.clone(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn minimal_operations() {
        let a = json!({"metadata": {"name": "x"}, "spec": {"a": 1, "list": [1, 2], "gone": true}});
        let b = json!({"metadata": {"name": "x", "labels": {"k/v": "1"}}, "spec": {"a": 2, "list": [1, 3]}});
        let p = diff(&a, &b);
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""path":"/metadata/labels""#), "{text}");
        assert!(text.contains(r#""path":"/spec/a""#), "{text}");
        assert!(text.contains(r#""path":"/spec/list/1""#), "{text}");
        assert!(
            text.contains(r#""op":"remove","path":"/spec/gone""#),
            "{text}"
        );
        assert!(diff(&a, &a).0.is_empty());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c/~]{0,3}".prop_map(Value::from)
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c/~.]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_target(a in arb_json(), b in arb_json()) {
            let mut out = a.clone();
            json_patch::patch(&mut out, &diff(&a, &b)).unwrap();
            prop_assert_eq!(out, b);
        }
    }
}
