//! The serve protocol (`nix-store --serve`, behind `ssh://` stores) on a
//! live connection: the server's hello, then one recorded answer per
//! command.
//!
//! The serve protocol has no error channel: a server that cannot answer a
//! command can only close the connection, which the client reports as the
//! remote side going away. That is what the replayer does with a command
//! the capture holds no answer for, after putting it in the report (with
//! `--version-policy translate`, a QueryPathInfos that a newer `nix copy`
//! asks first is answered from the capture instead: see `derive_serve`).

use std::sync::Arc;

use nixcap_wire::primitives::Writer;
use nixcap_wire::serve::ops::{ServeCommand, ServeReply, ServeRequest};
use nixcap_wire::session::{Event, EventKind};

use super::{describe, End, Live, Step};
use crate::key::{serve_key, serve_key_argument};
use crate::matcher::LiveMatch;
use crate::recorded::UploadDigest;
use crate::report::{DerivedAnswer, Hang, Refusal, UnmatchedRequest, UploadMismatch};

impl Live {
    /// Serves a client that started with the serve protocol's magic.
    pub(super) fn serve_protocol(&mut self, magic: [u8; 8]) -> Step<()> {
        let recorded = Arc::clone(&self.shared.recorded);
        let Some(template) = recorded
            .connections
            .iter()
            .find(|c| c.serve && c.daemon_hello.is_some())
        else {
            self.problem(
                "a serve-protocol client, but the capture holds no serve-protocol connection"
                    .to_owned(),
            );
            return Err(End::Close);
        };
        self.decoder
            .feed(nixcap_wire::session::Direction::ClientToDaemon, &magic);
        let hello = template.daemon_hello.clone().unwrap_or_default();
        self.send(&hello)?;
        let client_version = match self.next_event()? {
            None => return Ok(()),
            Some(Event {
                kind: EventKind::ServeHello { hello },
                ..
            }) => hello.version,
            Some(event) => {
                self.problem(format!(
                    "the client's serve hello could not be decoded at offset {}: {}",
                    event.offset,
                    describe(&event.kind)
                ));
                return Err(End::Close);
            }
        };
        let versions: Vec<String> = recorded
            .connections
            .iter()
            .filter(|c| c.serve)
            .filter_map(|c| c.client_version.map(|v| v.to_string()))
            .collect();
        if !recorded
            .connections
            .iter()
            .any(|c| c.serve && c.client_version == Some(client_version))
        {
            self.shared.with_report(|r| {
                r.refused.push(Refusal {
                    connection: self.id,
                    client_version: client_version.to_string(),
                    recorded_versions: versions,
                })
            });
            return Err(End::Close);
        }
        let mut live = LiveMatch::new(self.id, client_version);
        let result = self.serve_loop(&mut live);
        self.shared.lock_matcher().release(&mut live);
        result
    }

    fn serve_loop(&mut self, live: &mut LiveMatch) -> Step<()> {
        loop {
            let Some(event) = self.next_event()? else {
                return Ok(());
            };
            match event.kind {
                EventKind::ServeRequest { seq, request } => {
                    self.serve_answer(live, seq, *request)?
                }
                EventKind::Opaque { reason, .. } => {
                    self.problem(format!(
                        "the client sent bytes that cannot be decoded: {reason}"
                    ));
                    return Err(End::Close);
                }
                EventKind::Truncated { .. } => return Ok(()),
                _ => {}
            }
        }
    }

    /// Consumes the NAR or export stream that follows a command.
    fn serve_upload(&mut self, seq: u64, command: Option<ServeCommand>) -> Step<UploadDigest> {
        if !matches!(
            command,
            Some(ServeCommand::AddToStoreNar | ServeCommand::ImportPaths)
        ) {
            return Ok(UploadDigest::default());
        }
        self.digest_upload(&format!("command {seq}"))
    }

    fn serve_answer(&mut self, live: &mut LiveMatch, seq: u64, request: ServeRequest) -> Step<()> {
        let command = request.command();
        let name = command.map_or_else(
            || format!("serve command {}", request.word()),
            |c| c.name().to_owned(),
        );
        let key = serve_key(&request);
        let key_argument = serve_key_argument(&request);
        let found = self.shared.lock_matcher().find(live, &key);
        let digest = self.serve_upload(seq, command)?;
        if found.is_none() && self.translate_policy() {
            if let Some((bytes, how)) = self.derive_serve(&request, live.version) {
                self.shared.with_report(|r| {
                    r.derived.push(DerivedAnswer {
                        connection: self.id,
                        seq,
                        op: name.clone(),
                        key_argument: key_argument.clone(),
                        how,
                    })
                });
                return self.send(&bytes);
            }
        }
        let Some((c, e)) = found else {
            self.shared.with_report(|r| {
                r.unmatched.push(UnmatchedRequest {
                    connection: self.id,
                    seq,
                    op: name.clone(),
                    key_argument: key_argument.clone(),
                })
            });
            return Err(End::Close);
        };
        let recorded = Arc::clone(&self.shared.recorded);
        let exchange = &recorded.connections[c].exchanges[e];
        self.shared.with_report(|r| r.served += 1);
        let bytes: Vec<u8> = exchange
            .sends
            .iter()
            .flat_map(|s| s.bytes.iter().copied())
            .collect();
        self.send(&bytes)?;
        if digest.len != exchange.upload.len || digest.hex() != exchange.upload.hex() {
            self.shared.with_report(|r| {
                r.upload_mismatches.push(UploadMismatch {
                    connection: self.id,
                    seq,
                    op: name.clone(),
                    key_argument: key_argument.clone(),
                    recorded_sha256: exchange.upload.hex(),
                    recorded_len: exchange.upload.len,
                    live_sha256: digest.hex(),
                    live_len: digest.len,
                })
            });
        }
        if let Some(reason) = &exchange.incomplete {
            self.shared.with_report(|r| {
                r.hangs.push(Hang {
                    connection: self.id,
                    seq,
                    op: name.clone(),
                    key_argument: key_argument.clone(),
                    reason: reason.clone(),
                })
            });
            return Err(End::Close);
        }
        Ok(())
    }

    /// `--version-policy translate`: an answer for a command the capture
    /// has no unused answer to, which a client of another Nix version sends
    /// where the recorded one did not (a serve client's version does not
    /// tell Nix versions apart). `nix copy` of Nix 2.26 and later asks
    /// QueryPathInfos of the paths it is about to upload; Nix 2.8's did not.
    /// Paths the recording adds later are not valid yet, and the server
    /// leaves them out, so a query of only those gets no infos.
    fn derive_serve(
        &self,
        request: &ServeRequest,
        version: nixcap_wire::ProtocolVersion,
    ) -> Option<(Vec<u8>, String)> {
        let ServeRequest::QueryPathInfos { paths } = request else {
            return None;
        };
        let matcher = self.shared.lock_matcher();
        let all_added_later = paths
            .iter()
            .all(|path| matcher.added_later(&path.to_string()));
        drop(matcher);
        if !all_added_later {
            return None;
        }
        let mut w = Writer::new();
        ServeReply::PathInfos { infos: Vec::new() }.encode(&mut w, version);
        Some((
            w.into_bytes(),
            format!(
                "no infos: {} path(s) not valid yet, since the capture adds them later \
                 (AddToStoreNar)",
                paths.len()
            ),
        ))
    }
}
