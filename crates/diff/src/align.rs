//! Order-preserving alignment of two sequences (Needleman–Wunsch with free
//! gaps): pairs elements so that the total pair score is as high as
//! possible, without crossing pairs. A score of 0 means "cannot pair".

/// One step of an alignment: a pair, or an element of one side only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `a[i]` and `b[j]` are paired.
    Pair(usize, usize),
    /// `a[i]` has no partner.
    OnlyA(usize),
    /// `b[j]` has no partner.
    OnlyB(usize),
}

/// Aligns `a_len` elements with `b_len` elements by `score(i, j)`.
///
/// Ties prefer pairing over leaving elements alone, and list an unpaired
/// element of A before an unpaired element of B at the same place.
pub(crate) fn align(a_len: usize, b_len: usize, score: impl Fn(usize, usize) -> u32) -> Vec<Step> {
    let width = b_len + 1;
    let mut scores = vec![0u32; (a_len + 1) * width];
    let mut pair_scores = vec![0u32; a_len * b_len];
    for i in 0..a_len {
        for j in 0..b_len {
            pair_scores[i * b_len + j] = score(i, j);
        }
    }
    for i in (0..a_len).rev() {
        for j in (0..b_len).rev() {
            let skip_a = scores[(i + 1) * width + j];
            let skip_b = scores[i * width + j + 1];
            let pair = pair_scores[i * b_len + j];
            let with_pair = if pair > 0 {
                pair + scores[(i + 1) * width + j + 1]
            } else {
                0
            };
            scores[i * width + j] = with_pair.max(skip_a).max(skip_b);
        }
    }
    let mut steps = Vec::with_capacity(a_len.max(b_len));
    let (mut i, mut j) = (0, 0);
    while i < a_len && j < b_len {
        let here = scores[i * width + j];
        let pair = pair_scores[i * b_len + j];
        if pair > 0 && here == pair + scores[(i + 1) * width + j + 1] {
            steps.push(Step::Pair(i, j));
            i += 1;
            j += 1;
        } else if here == scores[(i + 1) * width + j] {
            steps.push(Step::OnlyA(i));
            i += 1;
        } else {
            steps.push(Step::OnlyB(j));
            j += 1;
        }
    }
    steps.extend((i..a_len).map(Step::OnlyA));
    steps.extend((j..b_len).map(Step::OnlyB));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_elements_pair_and_the_rest_is_inserted_or_removed() {
        let a = ["x", "y", "z"];
        let b = ["x", "w", "z", "v"];
        let steps = align(a.len(), b.len(), |i, j| u32::from(a[i] == b[j]));
        assert_eq!(
            steps,
            [
                Step::Pair(0, 0),
                Step::OnlyA(1),
                Step::OnlyB(1),
                Step::Pair(2, 2),
                Step::OnlyB(3)
            ]
        );
    }

    #[test]
    fn higher_scores_win_over_earlier_weaker_pairs() {
        let a = ["p:1", "p:2"];
        let b = ["p:2"];
        let score = |i: usize, j: usize| {
            if a[i] == b[j] {
                4
            } else if a[i][..1] == b[j][..1] {
                1
            } else {
                0
            }
        };
        assert_eq!(
            align(a.len(), b.len(), score),
            [Step::OnlyA(0), Step::Pair(1, 0)]
        );
    }
}
