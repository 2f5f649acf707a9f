//! Recognising Flink JobManager / TaskManager pods by their labels.

use std::collections::BTreeMap;
use std::fmt;

/// Label flinkgate's own controller puts on the pods it creates.
pub const FLINKGATE_COMPONENT_LABEL: &str = "flinkgate.io/component";
/// Labels Flink's native integration and the operator's standalone mode set.
pub const TYPE_LABEL: &str = "type";
pub const COMPONENT_LABEL: &str = "component";
pub const APP_LABEL: &str = "app";
pub const FLINK_POD_TYPES: &[&str] = &["flink-native-kubernetes", "flink-standalone-kubernetes"];
/// The container name Flink gives its main container.
pub const MAIN_CONTAINER: &str = "flink-main-container";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    JobManager,
    TaskManager,
}

impl Component {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "jobmanager" => Some(Self::JobManager),
            "taskmanager" => Some(Self::TaskManager),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobManager => "jobmanager",
            Self::TaskManager => "taskmanager",
        }
    }

    /// The name people write in prose: `JobManager`, `TaskManager`.
    pub fn title(self) -> &'static str {
        match self {
            Self::JobManager => "JobManager",
            Self::TaskManager => "TaskManager",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Flink component a pod belongs to, or `None` for every other pod.
pub fn flink_component(labels: Option<&BTreeMap<String, String>>) -> Option<Component> {
    let labels = labels?;
    if let Some(c) = labels.get(FLINKGATE_COMPONENT_LABEL) {
        return Component::parse(c);
    }
    let is_flink = labels
        .get(TYPE_LABEL)
        .is_some_and(|t| FLINK_POD_TYPES.contains(&t.as_str()));
    if !is_flink {
        return None;
    }
    labels
        .get(COMPONENT_LABEL)
        .and_then(|c| Component::parse(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn recognises_native_standalone_and_own_labels() {
        let native = labels(&[
            ("type", "flink-native-kubernetes"),
            ("component", "taskmanager"),
        ]);
        assert_eq!(flink_component(Some(&native)), Some(Component::TaskManager));
        let standalone = labels(&[
            ("type", "flink-standalone-kubernetes"),
            ("component", "jobmanager"),
        ]);
        assert_eq!(
            flink_component(Some(&standalone)),
            Some(Component::JobManager)
        );
        let own = labels(&[(FLINKGATE_COMPONENT_LABEL, "taskmanager")]);
        assert_eq!(flink_component(Some(&own)), Some(Component::TaskManager));
    }

    #[test]
    fn ignores_other_pods() {
        assert_eq!(flink_component(None), None);
        assert_eq!(
            flink_component(Some(&labels(&[("component", "taskmanager")]))),
            None
        );
        assert_eq!(
            flink_component(Some(&labels(&[
                ("type", "flink-native-kubernetes"),
                ("component", "web")
            ]))),
            None
        );
    }
}
