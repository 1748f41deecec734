//! The fetch plan made while reading a capture ([`plan_fetch_file`], which
//! keeps no stream in memory) is the plan of the whole decoded capture
//! ([`plan_fetch`]), for every committed capture: with the store objects
//! each holds, and from the wire alone (as a recorder sees its capture when
//! it stops, before it has fetched anything), and for every transcript of
//! `testdata/real-sessions/`.

use std::fs::File;

use nixcap_capture::{read_capture, read_capture_file};
use nixcap_replay::{plan_fetch, plan_fetch_file, FetchPlanner};
use nixcap_test_support::real_sessions::{
    capture_bytes_from_session, load_real_session, real_session_names,
};
use nixcap_view::stream::EventStream;
use nixcap_view::DecodedCapture;

#[test]
fn the_streamed_plan_is_the_plan_of_the_whole_capture() {
    let mut planned_from_the_wire = 0;
    insta::glob!("../../../../testdata/captures", "**/*.nixcap", |path| {
        let name = path.display().to_string();
        let mut decoded = DecodedCapture::new(read_capture_file(path).unwrap());
        assert_eq!(
            plan_fetch_file(path).unwrap(),
            plan_fetch(&decoded),
            "{name}, with its store objects"
        );

        decoded.capture.store_objects.clear();
        let whole = plan_fetch(&decoded);
        let mut planner = FetchPlanner::new();
        for item in EventStream::new(File::open(path).unwrap()).unwrap() {
            planner.item(&item.unwrap());
        }
        let streamed = planner.finish();
        assert_eq!(streamed, whole, "{name}, from the wire alone");
        if !whole.nars.is_empty() || !whole.logs.is_empty() {
            planned_from_the_wire += 1;
        }
    });
    // The comparison means something only if the wire gives plans to compare.
    assert!(
        planned_from_the_wire >= 10,
        "only {planned_from_the_wire} captures plan anything from the wire"
    );
}

#[test]
fn the_streamed_plan_is_the_plan_of_every_real_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut planned = 0;
    for name in real_session_names() {
        let bytes = capture_bytes_from_session(&load_real_session(&name));
        let whole = plan_fetch(&DecodedCapture::new(
            read_capture(bytes.as_slice()).unwrap(),
        ));
        let path = dir.path().join("capture.nixcap");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(plan_fetch_file(&path).unwrap(), whole, "{name}");
        if !whole.nars.is_empty() || !whole.logs.is_empty() {
            planned += 1;
        }
    }
    // Most transcripts are single ops whose replies name no valid path.
    assert!(planned >= 5, "only {planned} sessions plan anything");
}

/// A capture cut anywhere (a recorder killed mid-write, a partial download)
/// is planned up to the damage, as the whole-capture view reads it.
#[test]
fn a_cut_capture_is_planned_up_to_the_cut() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures/nix-2.8/build.nixcap");
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut.nixcap");
    let mut planned = 0;
    for eighth in 1..8 {
        let cut = bytes.len() * eighth / 8;
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let Ok(read) = read_capture_file(&cut_path) else {
            // Cut inside the header: neither reader has anything to plan.
            assert!(plan_fetch_file(&cut_path).is_err(), "cut at {cut}");
            continue;
        };
        let mut decoded = DecodedCapture::new(read);
        decoded.capture.store_objects.clear();
        let whole = plan_fetch(&decoded);
        let mut planner = FetchPlanner::new();
        for item in EventStream::new(File::open(&cut_path).unwrap()).unwrap() {
            match item {
                Ok(item) => planner.item(&item),
                Err(_) => break,
            }
        }
        assert_eq!(planner.finish(), whole, "cut at {cut} of {}", bytes.len());
        if !whole.nars.is_empty() {
            planned += 1;
        }
    }
    assert!(planned >= 1, "no cut left anything to plan");
}
