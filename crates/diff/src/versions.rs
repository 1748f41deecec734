//! What the diff knows about how protocol versions encode the same thing
//! differently: ops that newer clients send instead of older ones, and
//! fields that exist only from some protocol minor on.

/// Groups of ops that do the same job in different protocol versions, with
/// the name of the job. Ops of one group are paired by the alignment and
/// reported as a replacement.
const OP_FAMILIES: &[(&str, &[&str])] = &[
    ("build", &["BuildPaths", "BuildPathsWithResults"]),
    (
        "add-paths",
        &["AddToStoreNar", "AddMultipleToStore", "ImportPaths"],
    ),
    ("add-to-store", &["AddToStore", "AddTextToStore"]),
];

/// The family an op belongs to: its group's name, or its own name.
pub(crate) fn op_family(op: &str) -> &str {
    OP_FAMILIES
        .iter()
        .find(|(_, members)| members.contains(&op))
        .map_or(op, |(family, _)| family)
}

/// A field that a protocol minor introduced or changed, keyed by the last
/// segment of its path, with the ops it concerns (empty: any op).
struct FieldChange {
    key: &'static str,
    ops: &'static [&'static str],
    minor: u8,
    what: &'static str,
}

const FIELD_CHANGES: &[FieldChange] = &[
    FieldChange {
        key: "overrides",
        ops: &["SetOptions"],
        minor: 12,
        what: "setting overrides were added in protocol 1.12",
    },
    FieldChange {
        key: "mode",
        ops: &["BuildPaths"],
        minor: 15,
        what: "the build mode was added in protocol 1.15",
    },
    FieldChange {
        key: "ultimate",
        ops: &[],
        minor: 16,
        what: "path-info field added in protocol 1.16",
    },
    FieldChange {
        key: "sigs",
        ops: &[],
        minor: 16,
        what: "path-info field added in protocol 1.16",
    },
    FieldChange {
        key: "ca",
        ops: &[],
        minor: 16,
        what: "path-info field added in protocol 1.16",
    },
    FieldChange {
        key: "layout",
        ops: &["AddToStore"],
        minor: 25,
        what: "AddToStore takes a content-address method and references from protocol 1.25",
    },
    FieldChange {
        key: "args",
        ops: &["AddToStore"],
        minor: 25,
        what: "AddToStore takes a content-address method and references from protocol 1.25",
    },
    FieldChange {
        key: "info",
        ops: &["AddToStore"],
        minor: 25,
        what: "AddToStore replies with the whole path info from protocol 1.25",
    },
    FieldChange {
        key: "format",
        ops: &[],
        minor: 26,
        what: "errors are structured from protocol 1.26",
    },
    FieldChange {
        key: "substitute",
        ops: &["QueryValidPaths"],
        minor: 27,
        what: "field added in protocol 1.27",
    },
    FieldChange {
        key: "builtOutputs",
        ops: &[],
        minor: 28,
        what: "BuildResult field added in protocol 1.28",
    },
    FieldChange {
        key: "timesBuilt",
        ops: &[],
        minor: 29,
        what: "BuildResult field added in protocol 1.29",
    },
    FieldChange {
        key: "isNonDeterministic",
        ops: &[],
        minor: 29,
        what: "BuildResult field added in protocol 1.29",
    },
    FieldChange {
        key: "startTime",
        ops: &[],
        minor: 29,
        what: "BuildResult field added in protocol 1.29",
    },
    FieldChange {
        key: "stopTime",
        ops: &[],
        minor: 29,
        what: "BuildResult field added in protocol 1.29",
    },
    FieldChange {
        key: "daemonNixVersion",
        ops: &[],
        minor: 33,
        what: "the daemon sends its Nix version from protocol 1.33",
    },
    FieldChange {
        key: "trust",
        ops: &[],
        minor: 35,
        what: "the daemon says whether it trusts the client from protocol 1.35",
    },
    FieldChange {
        key: "cpuUser",
        ops: &[],
        minor: 37,
        what: "BuildResult field added in protocol 1.37",
    },
    FieldChange {
        key: "cpuSystem",
        ops: &[],
        minor: 37,
        what: "BuildResult field added in protocol 1.37",
    },
    FieldChange {
        key: "clientFeatures",
        ops: &[],
        minor: 38,
        what: "feature negotiation was added in protocol 1.38",
    },
    FieldChange {
        key: "daemonFeatures",
        ops: &[],
        minor: 38,
        what: "feature negotiation was added in protocol 1.38",
    },
];

/// The last key of a field path (`reply.results[0].result.cpuUser` →
/// `cpuUser`).
pub(crate) fn last_key(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// Words for a field difference that a protocol change explains: the two
/// sides speak protocol minors on either side of the change.
pub(crate) fn field_note(
    op: &str,
    path: &str,
    minor_a: Option<u8>,
    minor_b: Option<u8>,
) -> Option<String> {
    let (Some(a), Some(b)) = (minor_a, minor_b) else {
        return None;
    };
    let (low, high) = (a.min(b), a.max(b));
    let keys: Vec<&str> = path
        .split('.')
        .map(|segment| segment.split('[').next().unwrap_or(segment))
        .collect();
    FIELD_CHANGES
        .iter()
        .find(|change| {
            keys.contains(&change.key)
                && (change.ops.is_empty() || change.ops.contains(&op))
                && low < change.minor
                && change.minor <= high
        })
        .map(|change| change.what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_need_the_versions_to_straddle_the_change() {
        assert_eq!(
            field_note(
                "BuildPathsWithResults",
                "reply.results[0].result.cpuUser",
                Some(34),
                Some(38)
            )
            .as_deref(),
            Some("BuildResult field added in protocol 1.37")
        );
        assert_eq!(
            field_note(
                "BuildPathsWithResults",
                "reply.results[0].result.cpuUser",
                Some(37),
                Some(38)
            ),
            None
        );
        assert_eq!(
            field_note("QueryPathInfo", "reply.info.narSize", Some(34), Some(38)),
            None
        );
    }

    #[test]
    fn replaced_ops_share_a_family() {
        assert_eq!(op_family("BuildPaths"), op_family("BuildPathsWithResults"));
        assert_eq!(op_family("AddToStoreNar"), op_family("AddMultipleToStore"));
        assert_ne!(op_family("QueryPathInfo"), op_family("IsValidPath"));
    }
}
