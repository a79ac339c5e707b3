//! Property: whatever the secrets, the text and the chunking, no secret survives masking, and
//! the output does not depend on where the chunks were cut.

use proptest::prelude::*;
use slipway_secrets::{Masker, Secret, Warning};

/// A small alphabet (without the letters of `[secure]`) so secrets overlap and repeat often.
const ALPHABET: &[u8] = b"abdfghijk0123=+/% \n";

fn text(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..max)
}

fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 1..24)
        .prop_map(|b| String::from_utf8(b).unwrap())
}

/// Builds a log that contains the secrets (and their base64 forms) among random text.
fn log_with(secrets: &[String], filler: &[Vec<u8>], picks: &[(usize, bool)]) -> Vec<u8> {
    use base64::Engine;
    let mut log = Vec::new();
    for (i, (pick, b64)) in picks.iter().enumerate() {
        log.extend_from_slice(&filler[i % filler.len()]);
        let s = &secrets[pick % secrets.len()];
        if *b64 {
            log.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(s)
                    .as_bytes(),
            );
        } else {
            log.extend_from_slice(s.as_bytes());
        }
    }
    log.extend_from_slice(&filler[0]);
    log
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn no_secret_survives_any_chunking(
        secrets in prop::collection::vec(secret(), 1..6),
        filler in prop::collection::vec(text(40), 1..6),
        picks in prop::collection::vec((0usize..6, any::<bool>()), 0..8),
        cuts in prop::collection::vec(0usize..400, 0..12),
    ) {
        let log = log_with(&secrets, &filler, &picks);
        let (mut masker, warnings) = Masker::new(secrets.iter().cloned().map(Secret::new));
        let whole = masker.mask(&log);

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(log.len())).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([log.len()]) {
            masker.push(&log[start..cut], &mut out);
            start = cut;
        }
        masker.finish(&mut out);
        prop_assert_eq!(&out, &whole, "chunked output differs from one-shot output");

        for s in &secrets {
            if s.len() >= 4 {
                prop_assert!(!contains(&out, s.as_bytes()), "secret {:?} survived in {:?}", s, String::from_utf8_lossy(&out));
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(s);
                prop_assert!(!contains(&out, b64.as_bytes()), "base64 of {:?} survived", s);
            } else {
                let warned = warnings.iter().any(|w| matches!(w, Warning::TooShort { .. }));
                prop_assert!(warned, "no warning for a short secret");
            }
        }
    }
}
