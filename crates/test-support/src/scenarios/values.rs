//! Values that make fixture runs comparable: volatile numbers masked, digests, fixed
//! pseudo-random inputs.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Numbers in client output that differ from run to run, by the text that precedes them:
/// registration times in `nix path-info --json`, and the daemon worker pids in the names of
/// the stale temporary-root files that Nix 2.34 reports while collecting garbage.
pub(super) const VOLATILE_NUMBERS: &[(&str, &str)] = &[
    ("\"registrationTime\":", "@TIME@"),
    ("/nix/var/nix/temproots/", "@PID@"),
];

/// Replaces the numbers in `text` that differ from run to run by placeholders (`@TIME@`,
/// `@PID@`), so that outputs of two runs compare equal when the clients saw the same answers.
pub fn mask_volatile(text: &str) -> String {
    let mut out = text.to_owned();
    for (prefix, placeholder) in VOLATILE_NUMBERS {
        let mut masked = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(found) = rest.find(prefix) {
            let after = found + prefix.len();
            masked.push_str(&rest[..after]);
            let digits = rest[after..].bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                masked.push_str(placeholder);
            }
            rest = &rest[after + digits..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(64);
    for byte in digest {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// `len` pseudo-random bytes from `seed` (SplitMix64), the same on every machine.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}
