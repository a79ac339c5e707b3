//! Unit tests of the masker: each form of a secret, and every way a chunk boundary can cut it.

use super::*;

fn masker(values: &[&str]) -> Masker {
    let (masker, warnings) = Masker::new(values.iter().map(|v| Secret::new(v.to_string())));
    assert!(warnings.is_empty(), "{warnings:?}");
    masker
}

/// Feeds `chunks` one by one and returns the whole output.
fn run(masker: &mut Masker, chunks: &[&[u8]]) -> String {
    let mut out = Vec::new();
    for chunk in chunks {
        masker.push(chunk, &mut out);
        assert!(
            masker.pending.len() < masker.max_len().max(1),
            "held back {} bytes with max_len {}",
            masker.pending.len(),
            masker.max_len()
        );
    }
    masker.finish(&mut out);
    String::from_utf8(out).unwrap()
}

fn mask_str(values: &[&str], text: &str) -> String {
    run(&mut masker(values), &[text.as_bytes()])
}

#[test]
fn an_exact_value_is_masked() {
    assert_eq!(
        mask_str(&["hunter22"], "login with hunter22 now"),
        "login with [secure] now"
    );
    assert_eq!(mask_str(&["hunter22"], "hunter22"), "[secure]");
    assert_eq!(
        mask_str(&["hunter22"], "hunter22hunter22"),
        "[secure][secure]"
    );
    assert_eq!(mask_str(&["hunter22"], "hunter2 hunter"), "hunter2 hunter");
}

#[test]
fn a_value_split_at_every_byte_offset_across_two_chunks_is_masked() {
    let text = "token=s3cr3t-V4lue; done\n";
    for cut in 0..=text.len() {
        let (a, b) = text.as_bytes().split_at(cut);
        let mut m = masker(&["s3cr3t-V4lue"]);
        assert_eq!(
            run(&mut m, &[a, b]),
            "token=[secure]; done\n",
            "cut at {cut}"
        );
    }
}

#[test]
fn a_value_fed_one_byte_at_a_time_is_masked() {
    let text = "aa s3cr3t-V4lue bb s3cr3t-V4lu";
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
    assert_eq!(
        run(&mut masker(&["s3cr3t-V4lue"]), &chunks),
        "aa [secure] bb s3cr3t-V4lu"
    );
}

#[test]
fn a_value_split_across_three_chunks_is_masked() {
    let text = b"xx-0123456789abcdef-yy";
    for i in 0..text.len() {
        for j in i..=text.len() {
            let mut m = masker(&["0123456789abcdef"]);
            let out = run(&mut m, &[&text[..i], &text[i..j], &text[j..]]);
            assert_eq!(out, "xx-[secure]-yy", "cuts at {i} and {j}");
        }
    }
}

#[test]
fn each_line_of_a_multi_line_value_is_masked() {
    let key = "-----BEGIN KEY-----\r\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----\n";
    let m = masker(&[key]);
    assert_eq!(
        String::from_utf8(m.mask(key.as_bytes())).unwrap(),
        "[secure]"
    );
    // Printed line by line with other text in between: each line still goes.
    let log = "line: MIIEvQIBADANBgkq\nother\nline: hkiG9w0BAQEFAASC\n";
    assert_eq!(
        String::from_utf8(m.mask(log.as_bytes())).unwrap(),
        "line: [secure]\nother\nline: [secure]\n"
    );
}

#[test]
fn base64_forms_are_masked_at_every_alignment() {
    let secret = "correct-horse-battery";
    let m = masker(&[secret]);
    let b64 = |s: &str| STANDARD.encode(s);
    // `echo -n $S | base64`: exactly the padded encoding.
    let exact = b64(secret);
    assert_eq!(
        String::from_utf8(m.mask(exact.as_bytes())).unwrap(),
        "[secure]"
    );
    // `echo $S | base64` and `echo "user:$S" | base64`: the value is inside a longer input.
    for prefix in ["", "u:", "us:", "user:"] {
        let encoded = b64(&format!("{prefix}{secret}\n"));
        let masked = String::from_utf8(m.mask(encoded.as_bytes())).unwrap();
        assert!(masked.contains("[secure]"), "{prefix:?}: {masked}");
        assert!(
            masked.len() <= encoded.len() - "[secure]".len() + 12,
            "{masked}"
        );
    }
    // URL-safe alphabet too.
    let url_safe = URL_SAFE.encode("a?>b~~~???");
    assert_eq!(
        String::from_utf8(masker(&["a?>b~~~???"]).mask(url_safe.as_bytes())).unwrap(),
        "[secure]"
    );
}

#[test]
fn url_encoded_forms_are_masked() {
    let secret = "p@ss w/rd&more";
    let m = masker(&[secret]);
    for log in [
        "https://u:p%40ss%20w%2Frd%26more@host/",
        "form: pw=p%40ss+w%2Frd%26more&x=1",
    ] {
        let masked = String::from_utf8(m.mask(log.as_bytes())).unwrap();
        assert!(masked.contains("[secure]"), "{masked}");
        assert!(!masked.contains("p%40ss"), "{masked}");
    }
}

#[test]
fn overlapping_secrets_leave_no_secret_whole() {
    let m = masker(&["abcdef", "defghi", "abcdefgh"]);
    // Leftmost-longest: the earliest match wins and then the longest at that start.
    assert_eq!(
        String::from_utf8(m.mask(b"xabcdefghiy")).unwrap(),
        "x[secure]iy"
    );
    assert_eq!(
        String::from_utf8(m.mask(b"xdefghiy")).unwrap(),
        "x[secure]y"
    );
    // One secret inside another.
    let m = masker(&["secretvalue", "etva"]);
    assert_eq!(
        String::from_utf8(m.mask(b"secretvalue etva")).unwrap(),
        "[secure] [secure]"
    );
}

#[test]
fn short_values_are_not_masked_but_warned_about() {
    let (m, warnings) = Masker::new(["abc", "long-enough", ""].map(|v| Secret::new(v.to_string())));
    assert_eq!(
        warnings,
        vec![
            Warning::TooShort { index: 0, chars: 3 },
            Warning::TooShort { index: 2, chars: 0 },
        ]
    );
    assert_eq!(
        warnings[0].to_string(),
        "secret value #1 has 3 character(s), fewer than 4: it is not masked in logs"
    );
    assert_eq!(
        String::from_utf8(m.mask(b"abc long-enough")).unwrap(),
        "abc [secure]"
    );
}

#[test]
fn without_secrets_bytes_pass_through_unheld() {
    let (mut m, warnings) = Masker::new(Vec::<Secret<String>>::new());
    assert!(warnings.is_empty());
    let mut out = Vec::new();
    m.push(b"partial line", &mut out);
    assert_eq!(out, b"partial line");
}

#[test]
fn bytes_that_cannot_start_a_secret_are_written_at_once() {
    let mut m = masker(&["0123456789"]);
    let mut out = Vec::new();
    let first = b"hello world, a fairly long line of log output 01234";
    m.push(first, &mut out);
    // "01234" may still become the secret (or its base64 form, the longest pattern), so at
    // most max_len - 1 bytes are held; everything before them is out already, unchanged.
    assert_eq!(m.max_len(), STANDARD.encode("0123456789").len());
    assert_eq!(out.len(), first.len() - (m.max_len() - 1));
    assert!(first.starts_with(&out));
    m.push(b"56789!", &mut out);
    m.finish(&mut out);
    assert_eq!(
        out,
        b"hello world, a fairly long line of log output [secure]!"
    );
}

#[test]
fn non_utf8_logs_pass_through_intact() {
    let m = masker(&["secret-1"]);
    let log = [
        0xff, 0xfe, b's', b'e', b'c', b'r', b'e', b't', b'-', b'1', 0x80,
    ];
    assert_eq!(
        m.mask(&log),
        [&[0xff, 0xfe][..], b"[secure]", &[0x80]].concat()
    );
}

#[test]
fn the_base64_core_holds_only_characters_the_value_decides() {
    // "abc" at offset 0 is "YWJj"; at offset 1 the 1st char mixes an unknown byte: dropped.
    assert_eq!(base64_core(&STANDARD_NO_PAD, b"abc", 0), b"YWJj");
    let at1 = STANDARD_NO_PAD.encode(b"\0abc");
    assert_eq!(
        base64_core(&STANDARD_NO_PAD, b"abc", 1),
        at1.as_bytes()[2..5].to_vec()
    );
    let z = STANDARD_NO_PAD.encode(b"zabc");
    assert_eq!(
        &z.as_bytes()[2..5],
        &at1.as_bytes()[2..5],
        "independent of the byte before"
    );
}

mod against_a_plain_automaton {
    //! The sampled finder must give exactly what a plain leftmost-longest search gives.

    use super::*;
    use aho_corasick::AhoCorasick;
    use proptest::prelude::*;

    fn reference(values: &[String], text: &[u8]) -> Vec<u8> {
        let (patterns, _) = patterns(values.iter().cloned().map(Secret::new));
        if patterns.is_empty() {
            return text.to_vec();
        }
        let ac = AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .unwrap();
        ac.replace_all_bytes(text, &vec![MASK; patterns.len()])
    }

    #[test]
    fn many_short_secrets_share_the_sampled_filter_and_still_match_exactly() {
        // 40 secrets of 5 characters give far more than 64 short forms.
        let values: Vec<String> = (0..40).map(|i| format!("k{i:02}x{}", i % 7)).collect();
        let (found, _) = patterns(values.iter().cloned().map(Secret::new));
        assert!(found.iter().filter(|p| p.len() < 12).count() > 64);
        let text: Vec<u8> = values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                format!("{} {v} k{i:02} {}\n", i * 3, STANDARD.encode(v)).into_bytes()
            })
            .collect();
        let (masker, _) = Masker::new(values.iter().cloned().map(Secret::new));
        let masked = masker.mask(&text);
        assert_eq!(masked, reference(&values, &text));
        assert!(!String::from_utf8(masked).unwrap().contains("k07x0"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

        #[test]
        fn same_output_as_a_plain_search(
            values in prop::collection::vec("[ab01=+ \n]{1,30}", 1..5),
            text in prop::collection::vec(prop::sample::select(b"ab01=+ \nYWJ".to_vec()), 0..300),
        ) {
            let (masker, _) = Masker::new(values.iter().cloned().map(Secret::new));
            prop_assert_eq!(masker.mask(&text), reference(&values, &text));
        }
    }
}
