//! Finding the recorded op that answers a live request, in the three
//! matching modes.
//!
//! * `strict`: each live connection replays one recorded connection's ops in
//!   order. Which one is decided by what the client asks: while several
//!   unclaimed recorded connections start with the same requests, answers
//!   come from the first of them, and the live connection claims a recorded
//!   connection once only one fits (or when it closes).
//! * `keyed`: any recorded op with the same op and normalised arguments
//!   answers, each at most once, earliest first. A live connection prefers
//!   the recorded connection it was last answered from, then connections no
//!   other live connection is using, so concurrent clients are paired with
//!   recorded connections by what they ask rather than by arrival order.
//! * `reuse`: as `keyed`, but when every matching op was used, the most
//!   recent one is served again.
//!
//! Only recorded connections of the live client's protocol version answer;
//! when versions are translated and the capture holds none of that
//! version, every recorded connection does.

use std::sync::Arc;

use nixcap_wire::ops::{Reply, Request};
use nixcap_wire::types::StorePath;
use nixcap_wire::ProtocolVersion;
use serde_json::Value;

use crate::recorded::Recorded;
use crate::{MatchMode, VersionPolicy};

/// What the matcher knows about one live connection.
#[derive(Debug)]
pub(crate) struct LiveMatch {
    pub id: u64,
    pub version: ProtocolVersion,
    /// The recorded connection claimed (strict) or last answered from.
    bound: Option<usize>,
    /// Strict mode: the keys matched so far, in order.
    history: Vec<Value>,
    /// Strict mode: where each matched request was served from.
    served: Vec<(usize, usize)>,
}

impl LiveMatch {
    pub fn new(id: u64, version: ProtocolVersion) -> Self {
        LiveMatch {
            id,
            version,
            bound: None,
            history: Vec::new(),
            served: Vec::new(),
        }
    }
}

/// The shared matching state of a replay.
#[derive(Debug)]
pub(crate) struct Matcher {
    mode: MatchMode,
    policy: VersionPolicy,
    recorded: Arc<Recorded>,
    /// How many times each recorded op was served.
    uses: Vec<Vec<u32>>,
    /// The live connection that claimed (strict) or is bound to (keyed)
    /// each recorded connection.
    owner: Vec<Option<u64>>,
    /// Every recorded op, in recording order.
    order: Vec<(usize, usize)>,
}

impl Matcher {
    pub fn new(mode: MatchMode, policy: VersionPolicy, recorded: Arc<Recorded>) -> Self {
        let uses = recorded
            .connections
            .iter()
            .map(|c| vec![0; c.exchanges.len()])
            .collect();
        let owner = vec![None; recorded.connections.len()];
        let mut order: Vec<(usize, usize)> = recorded
            .connections
            .iter()
            .enumerate()
            .flat_map(|(c, conn)| (0..conn.exchanges.len()).map(move |e| (c, e)))
            .collect();
        order.sort_by_key(|&(c, e)| (recorded.connections[c].exchanges[e].start_nanos, c, e));
        Matcher {
            mode,
            policy,
            recorded,
            uses,
            owner,
            order,
        }
    }

    fn key_at(&self, c: usize, e: usize) -> Option<&Value> {
        self.recorded
            .connections
            .get(c)?
            .exchanges
            .get(e)
            .map(|x| &x.key)
    }

    fn version_fits(&self, c: usize, live: &LiveMatch) -> bool {
        let same = |c: &crate::recorded::RecConn| c.client_version == Some(live.version);
        same(&self.recorded.connections[c])
            || (self.policy == VersionPolicy::Translate
                && !self.recorded.connections.iter().any(same))
    }

    /// Finds the recorded op that answers `key` on `live`, and marks it used.
    pub fn find(&mut self, live: &mut LiveMatch, key: &Value) -> Option<(usize, usize)> {
        match self.mode {
            MatchMode::Strict => self.find_strict(live, key),
            MatchMode::Keyed | MatchMode::Reuse => self.find_keyed(live, key),
        }
    }

    fn strict_candidates(&self, live: &LiveMatch, next: Option<&Value>) -> Vec<usize> {
        let len = live.history.len() + usize::from(next.is_some());
        (0..self.recorded.connections.len())
            .filter(|&c| self.owner[c].is_none() && self.version_fits(c, live))
            .filter(|&c| {
                live.history
                    .iter()
                    .chain(next)
                    .enumerate()
                    .all(|(i, k)| self.key_at(c, i) == Some(k))
                    && self.recorded.connections[c].exchanges.len() >= len
            })
            .collect()
    }

    fn claim(&mut self, live: &mut LiveMatch, c: usize) {
        for &(sc, se) in &live.served {
            self.uses[sc][se] = self.uses[sc][se].saturating_sub(1);
        }
        for e in 0..live.served.len() {
            self.uses[c][e] += 1;
        }
        live.served = (0..live.served.len()).map(|e| (c, e)).collect();
        self.owner[c] = Some(live.id);
        live.bound = Some(c);
    }

    fn find_strict(&mut self, live: &mut LiveMatch, key: &Value) -> Option<(usize, usize)> {
        let pos = live.history.len();
        let c = match live.bound {
            Some(c) => {
                if self.key_at(c, pos) != Some(key) {
                    return None;
                }
                c
            }
            None => {
                let candidates = self.strict_candidates(live, Some(key));
                let first = *candidates.first()?;
                if candidates.len() == 1 {
                    live.history.push(key.clone());
                    live.served.push((first, pos));
                    self.uses[first][pos] += 1;
                    self.claim(live, first);
                    return Some((first, pos));
                }
                first
            }
        };
        live.history.push(key.clone());
        live.served.push((c, pos));
        self.uses[c][pos] += 1;
        Some((c, pos))
    }

    fn find_keyed(&mut self, live: &mut LiveMatch, key: &Value) -> Option<(usize, usize)> {
        let candidates: Vec<(usize, usize)> = self
            .order
            .iter()
            .copied()
            .filter(|&(c, e)| self.version_fits(c, live) && self.key_at(c, e) == Some(key))
            .collect();
        let unused: Vec<(usize, usize)> = candidates
            .iter()
            .copied()
            .filter(|&(c, e)| self.uses[c][e] == 0)
            .collect();
        let pick = unused
            .iter()
            .find(|&&(c, _)| Some(c) == live.bound)
            .or_else(|| {
                unused
                    .iter()
                    .find(|&&(c, _)| self.owner[c].is_none() || self.owner[c] == Some(live.id))
            })
            .or_else(|| unused.first())
            .copied()
            .or_else(|| {
                if self.mode != MatchMode::Reuse {
                    return None;
                }
                candidates
                    .iter()
                    .rev()
                    .find(|&&(c, _)| Some(c) == live.bound)
                    .or_else(|| candidates.last())
                    .copied()
            })?;
        let (c, e) = pick;
        self.uses[c][e] += 1;
        if live.bound != Some(c) {
            if let Some(old) = live.bound {
                if self.owner[old] == Some(live.id) {
                    self.owner[old] = None;
                }
            }
            if self.owner[c].is_none() {
                self.owner[c] = Some(live.id);
            }
            live.bound = Some(c);
        }
        Some((c, e))
    }

    /// Translation only: the most recently served recorded answer to `key`,
    /// served again, for a read-only query that a client of another version
    /// asks more often than the recorded client did.
    pub fn find_again(&mut self, live: &mut LiveMatch, key: &Value) -> Option<(usize, usize)> {
        let (c, e) = self.order.iter().copied().rev().find(|&(c, e)| {
            self.version_fits(c, live) && self.key_at(c, e) == Some(key) && self.uses[c][e] > 0
        })?;
        self.uses[c][e] += 1;
        Some((c, e))
    }

    /// Translation only: whether the capture says `path` is valid at this
    /// point of the replay. The first recorded op that tells decides: an
    /// AddToStore (or AddTextToStore) that created it makes it valid once
    /// served and invalid before; a QueryPathInfo or IsValidPath of it
    /// gives its answer. `None` when no recorded op tells.
    pub fn implied_validity(&self, path: &StorePath) -> Option<bool> {
        for &(c, e) in &self.order {
            let exchange = &self.recorded.connections[c].exchanges[e];
            let asked = match &exchange.request {
                Some(Request::QueryPathInfo { path: p } | Request::IsValidPath { path: p }) => {
                    p == path
                }
                _ => false,
            };
            match exchange.reply() {
                Some(Reply::AddToStore { path: p, .. } | Reply::AddTextToStore { path: p })
                    if p == path =>
                {
                    return Some(self.uses[c][e] > 0);
                }
                Some(Reply::QueryPathInfo { info }) if asked => return Some(info.is_some()),
                Some(Reply::IsValidPath { valid }) if asked => return Some(*valid),
                _ => {}
            }
        }
        None
    }

    /// Translation only, serve protocol: whether the recording adds `path`
    /// later, with an AddToStoreNar of it that no client has been served yet.
    /// A client uploads only what its server lacks, so until then the path
    /// is not valid there.
    pub fn added_later(&self, path: &str) -> bool {
        self.order.iter().any(|&(c, e)| {
            let exchange = &self.recorded.connections[c].exchanges[e];
            self.recorded.connections[c].serve
                && exchange.op_name == "AddToStoreNar"
                && exchange.key_argument.as_deref() == Some(path)
                && self.uses[c][e] == 0
        })
    }

    /// Called when a live connection ends.
    pub fn release(&mut self, live: &mut LiveMatch) {
        match self.mode {
            MatchMode::Strict => {
                if live.bound.is_none() && !live.history.is_empty() {
                    if let Some(&first) = self.strict_candidates(live, None).first() {
                        self.claim(live, first);
                    }
                }
            }
            MatchMode::Keyed | MatchMode::Reuse => {
                for owner in &mut self.owner {
                    if *owner == Some(live.id) {
                        *owner = None;
                    }
                }
            }
        }
    }

    /// Recorded ops never served, in recording order.
    pub fn unused(&self) -> Vec<(usize, usize)> {
        self.order
            .iter()
            .copied()
            .filter(|&(c, e)| self.uses[c][e] == 0)
            .collect()
    }
}
