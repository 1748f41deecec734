//! The text and JSON Lines views of every committed capture, without times,
//! as insta snapshots (`nixcap show --no-timestamps` prints exactly these;
//! the cli's tests check that its output is the library's).

use nixcap_capture::read_capture_file;
use nixcap_view::text::Options;
use nixcap_view::DecodedCapture;

/// The text and JSON Lines views of a capture without times.
pub fn views(capture: &DecodedCapture) -> (String, String) {
    let options = Options {
        timestamps: false,
        ..Options::default()
    };
    let mut text = Vec::new();
    nixcap_view::text::write_text(&mut text, capture, &options).unwrap();
    let mut json = Vec::new();
    nixcap_view::json::write_json_lines(&mut json, capture, &options).unwrap();
    (
        String::from_utf8(text).unwrap(),
        String::from_utf8(json).unwrap(),
    )
}

#[test]
fn committed_captures_snapshot_as_text_and_json() {
    insta::glob!("../../../../testdata/captures", "nix-*/*.nixcap", |path| {
        let capture = DecodedCapture::new(read_capture_file(path).unwrap());
        assert!(capture.capture.damage.is_none(), "{}", path.display());
        let (text, json) = views(&capture);
        assert!(json.lines().count() > 1, "{}", path.display());
        // What changes each time a scenario is recorded again is filtered
        // out: process ids, the wall-clock start, registration times and
        // activity ids.
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"\bpid \d+", "pid [pid]");
        settings.add_filter(r#""pid":\d+"#, r#""pid":"[pid]""#);
        settings.add_filter(r#""startUnixNanos":\d+"#, r#""startUnixNanos":"[start]""#);
        settings.add_filter(r"registrationTime: \d+", "registrationTime: [time]");
        settings.add_filter(
            r#""registrationTime":\d+"#,
            r#""registrationTime":"[time]""#,
        );
        settings.add_filter(r#""(id|parent)":[1-9]\d*"#, r#""$1":"[activity]""#);
        settings.bind(|| {
            insta::assert_snapshot!("capture.text", text);
            insta::assert_snapshot!("capture.jsonl", json);
        });
    });
}
