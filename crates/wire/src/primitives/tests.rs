use super::*;

#[test]
fn string_is_padded_to_eight_bytes() {
    let mut w = Writer::new();
    w.string(b"hi");
    assert_eq!(
        w.as_bytes(),
        &[2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', 0, 0, 0, 0, 0, 0]
    );
    let mut r = Reader::new(w.as_bytes());
    assert_eq!(r.string().unwrap(), b"hi");
    assert!(r.is_empty());
}

#[test]
fn truncated_padding_is_incomplete_not_an_error() {
    let bytes = [2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', 0, 0];
    let mut r = Reader::new(&bytes);
    assert_eq!(r.string(), Err(ReadError::Incomplete { needed: 4 }));
}

#[test]
fn non_zero_padding_is_invalid() {
    let bytes = [1, 0, 0, 0, 0, 0, 0, 0, b'x', 0, 0, 1, 0, 0, 0, 0];
    let mut r = Reader::new(&bytes);
    assert!(matches!(
        r.string(),
        Err(ReadError::Invalid {
            offset: 9,
            kind: InvalidKind::NonZeroPadding { len: 1 }
        })
    ));
}

#[test]
fn huge_length_is_refused_before_allocating() {
    let bytes = u64::MAX.to_le_bytes();
    let mut r = Reader::new(&bytes);
    assert!(matches!(
        r.string(),
        Err(ReadError::Invalid {
            offset: 0,
            kind: InvalidKind::LengthLimitExceeded { .. }
        })
    ));
}

#[test]
fn bool_must_be_canonical() {
    let bytes = 2u64.to_le_bytes();
    assert!(matches!(
        Reader::new(&bytes).bool(),
        Err(ReadError::Invalid {
            kind: InvalidKind::NonCanonicalBool(2),
            ..
        })
    ));
}
