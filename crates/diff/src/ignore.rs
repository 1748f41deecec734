//! Field patterns for `--ignore` and for the noise learned from a baseline.
//!
//! A pattern is `[Op:]seg.seg…`. It matches a difference when its segments
//! appear, in order, among the keys of the difference's path (array indices
//! do not count), and, if it names an op, when that op is on either side.
//! `reply.registrationTime` thus matches `reply.info.registrationTime`, and
//! `QueryPathInfo:reply` every reply difference of QueryPathInfo. A pattern
//! that is just an op name (`AddTempRoot`) drops that op entirely: its
//! differences and its insertions and removals.

use nixcap_wire::ops::Op;

/// One parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    op: Option<String>,
    segments: Vec<String>,
}

impl Pattern {
    pub(crate) fn parse(text: &str) -> Pattern {
        let (op, fields) = match text.split_once(':') {
            Some((op, fields)) => (Some(op.to_owned()), fields),
            None if !text.contains('.') && Op::from_name(text).is_some() => {
                (Some(text.to_owned()), "")
            }
            None => (None, text),
        };
        Pattern {
            op,
            segments: path_keys(fields).into_iter().map(str::to_owned).collect(),
        }
    }

    /// Whether the pattern drops a whole op.
    pub(crate) fn is_whole_op(&self) -> bool {
        self.op.is_some() && self.segments.is_empty()
    }

    fn op_matches(&self, ops: &[&str]) -> bool {
        self.op.as_deref().is_none_or(|op| ops.contains(&op))
    }

    /// Whether the pattern drops a difference at `path` of an op named by
    /// one of `ops` (empty for handshake fields).
    pub(crate) fn matches(&self, ops: &[&str], path: &str) -> bool {
        if !self.op_matches(ops) {
            return false;
        }
        let mut keys = path_keys(path).into_iter();
        self.segments
            .iter()
            .all(|segment| keys.any(|key| key == segment))
    }
}

/// The keys of a field path, without array indices.
pub(crate) fn path_keys(path: &str) -> Vec<&str> {
    path.split('.')
        .map(|segment| segment.split('[').next().unwrap_or(segment))
        .filter(|segment| !segment.is_empty())
        .collect()
}

/// A set of patterns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Patterns(Vec<Pattern>);

impl Patterns {
    pub(crate) fn new<'a>(texts: impl IntoIterator<Item = &'a String>) -> Patterns {
        Patterns(texts.into_iter().map(|text| Pattern::parse(text)).collect())
    }

    pub(crate) fn drops_op(&self, ops: &[&str]) -> bool {
        self.0
            .iter()
            .any(|pattern| pattern.is_whole_op() && pattern.op_matches(ops))
    }

    pub(crate) fn drops_field(&self, ops: &[&str], path: &str) -> bool {
        self.0.iter().any(|pattern| pattern.matches(ops, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_match_in_order_and_ops_restrict() {
        let p = Pattern::parse("reply.registrationTime");
        assert!(p.matches(&["QueryPathInfo"], "reply.info.registrationTime"));
        assert!(!p.matches(&["QueryPathInfo"], "request.info.registrationTime"));
        let p = Pattern::parse("QueryPathInfo:reply");
        assert!(p.matches(&["QueryPathInfo"], "reply.info.narSize"));
        assert!(!p.matches(&["AddToStore"], "reply.info.narSize"));
        let p = Pattern::parse("log.text");
        assert!(p.matches(&["BuildPaths"], "log[3].text"));
        let p = Pattern::parse("AddTempRoot");
        assert!(p.is_whole_op());
        let p = Pattern::parse("handshake.trust");
        assert!(p.matches(&[], "handshake.trust"));
    }
}
