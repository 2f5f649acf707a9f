//! Hand-written schema fragments for the CRD, where the operator's schema is
//! looser or stricter than what serde's types would derive.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Flink versions the operator's CRD enumerates (its `FlinkVersion` enum).
pub const FLINK_VERSIONS: &[&str] = &[
    "v1_13", "v1_14", "v1_15", "v1_16", "v1_17", "v1_18", "v1_19", "v1_20", "v2_0", "v2_1", "v2_2",
    "v2_3", "v2_4",
];

pub fn flink_version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": FLINK_VERSIONS })
}

pub fn upgrade_mode(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["savepoint", "last-state", "stateless"] })
}

pub fn job_state(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["running", "suspended"] })
}

pub fn deployment_mode(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["native", "standalone"] })
}

pub fn job_kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["FlinkDeployment", "FlinkSessionJob"] })
}

pub fn savepoint_format(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["CANONICAL", "NATIVE", "UNKNOWN"] })
}

/// Flat string values or nested YAML, as the operator accepts both.
pub fn flink_configuration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Pod templates, TLS entries and operator-written status blocks: kept whole.
pub fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Kubernetes quantities: a string or a number.
pub fn quantity_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-int-or-string": true }
    })
}
