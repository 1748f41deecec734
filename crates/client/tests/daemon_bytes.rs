//! The fuzz target's check on real input: what real daemons sent on every
//! recorded connection of `testdata/real-sessions`, whole and cut at many
//! points, makes the client return a value or an error, never panic or hang.

use nixcap_test_support::real_sessions::{load_real_session, real_session_names};

#[test]
fn real_daemon_streams_whole_and_cut() {
    let mut inputs = 0;
    for name in real_session_names() {
        for connection in load_real_session(&name) {
            let daemon: Vec<u8> = connection
                .iter()
                .filter(|(direction, _)| direction.code() == 1)
                .flat_map(|(_, bytes)| bytes.iter().copied())
                .collect();
            let len = daemon.len();
            for cut in [len, len / 2, len / 3, 8, 17, 40, 64] {
                nixcap_client::fuzzing::fuzz_client(&daemon[..cut.min(len)]);
                inputs += 1;
            }
        }
    }
    assert!(inputs > 50, "only {inputs} inputs");
}
