//! Property-based mutation of valid word-vector files: every parser returns
//! `Ok` (a well-formed result) or `Err`, never panics, aborts or allocates
//! from an untrusted header.
//!
//! Each case writes a valid text or binary file (optionally gzip-compressed),
//! then truncates it, overwrites or inserts bytes, or replaces its header with
//! an arbitrary `count dim` (up to `u64::MAX` and beyond), and parses the
//! result as text and as binary, as `f32` and `f64`, with and without `limit`.
//! `TASKSPEC_PROPTEST_CASES=20000 cargo test --release --lib parsers` runs a
//! longer search than the 256 cases per property of the default run.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

use crate::pool::thread_pool;
use crate::vecio::{parse_binary, parse_bytes, parse_text, Duplicates, Format, Real, Vectors};

/// A valid file of `rows` x `dim` values in `format` (`header`: text header line).
fn valid_file(format: Format, rows: usize, dim: usize, header: bool, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if header || format == Format::Binary {
        out.extend_from_slice(format!("{rows} {dim}\n").as_bytes());
    }
    let mut s = seed | 1;
    for r in 0..rows {
        out.extend_from_slice(format!("w{r}").as_bytes());
        if format == Format::Binary {
            out.push(b' ');
        }
        for _ in 0..dim {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s % 20001) as f32 / 1000.0 - 10.0;
            match format {
                Format::Text => out.extend_from_slice(format!(" {v}").as_bytes()),
                Format::Binary => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
        out.push(b'\n');
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// One way of damaging a file.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    Truncate(usize),
    Overwrite(Vec<(usize, u8)>),
    Insert(usize, Vec<u8>),
    /// Replace the first line by `count dim` (as written, any size).
    Header(String, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Header fields: small, around powers of two, and past u64.
    let big = prop_oneof![
        (0u64..8).prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        (0u32..64).prop_map(|e| (1u64 << e).to_string()),
        Just("4611686018427387904".to_string()),
        Just("100000000000000".to_string()),
        Just(u64::MAX.to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999999".to_string()),
    ];
    prop_oneof![
        Just(Mutation::None),
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..6).prop_map(Mutation::Overwrite),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (big.clone(), big).prop_map(|(c, d)| Mutation::Header(c, d)),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::None => {}
        Mutation::Truncate(p) => bytes.truncate(p % (bytes.len() + 1)),
        Mutation::Overwrite(edits) => {
            if !bytes.is_empty() {
                let n = bytes.len();
                for &(p, b) in edits {
                    bytes[p % n] = b;
                }
            }
        }
        Mutation::Insert(p, b) => {
            let at = p % (bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Header(c, d) => {
            let body = match memchr::memchr(b'\n', &bytes) {
                Some(nl) => bytes[nl..].to_vec(),
                None => b"\n".to_vec(),
            };
            bytes = format!("{c} {d}").into_bytes();
            bytes.extend_from_slice(&body);
        }
    }
    bytes
}

/// A parse result is either an error or a consistent, finite matrix.
fn check_result<T: Real>(r: crate::vecio::IoResult<Vectors<T>>, limit: Option<usize>) -> Result<(), TestCaseError> {
    if let Ok(v) = r {
        prop_assert!(v.dim > 0);
        prop_assert_eq!(v.data.len(), v.rows() * v.dim);
        prop_assert!(v.data.iter().all(|x| x.finite()));
        if let Some(l) = limit {
            prop_assert!(v.rows() + v.dropped <= l);
        }
    } else {
        // Errors render (name the file) without panicking.
        prop_assert!(r.unwrap_err().to_string().contains("v.vec"));
    }
    Ok(())
}

fn parse_all(bytes: &[u8], limit: Option<usize>) -> Result<(), TestCaseError> {
    let pool = thread_pool(Some(2)).unwrap();
    let p = Path::new("v.vec");
    for dups in [Duplicates::KeepFirst, Duplicates::Error] {
        check_result(parse_text::<f32>(&pool, bytes, p, limit, dups), limit)?;
        check_result(parse_binary::<f32>(&pool, bytes, p, limit, dups), limit)?;
    }
    check_result(parse_text::<f64>(&pool, bytes, p, limit, Duplicates::KeepFirst), limit)?;
    check_result(
        parse_binary::<f64>(&pool, bytes, p, limit, Duplicates::KeepFirst),
        limit,
    )?;
    for format in [Format::Text, Format::Binary] {
        check_result(
            parse_bytes::<f32>(&pool, bytes, p, format, limit, Duplicates::KeepFirst),
            limit,
        )?;
    }
    Ok(())
}

/// Cases per property: 256, or `TASKSPEC_PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("TASKSPEC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Damaged text and binary files (plain and gzip) parse or fail cleanly.
    #[test]
    fn mutated_files_never_panic(binary in any::<bool>(), rows in 0usize..12, dim in 1usize..9,
                                 header in any::<bool>(), seed in any::<u64>(), m in mutation(),
                                 compress in any::<bool>(), limit in prop::option::of(0usize..16)) {
        let format = if binary { Format::Binary } else { Format::Text };
        let mut bytes = apply(valid_file(format, rows, dim, header, seed), &m);
        if compress {
            bytes = gzip(&bytes);
        }
        parse_all(&bytes, limit)?;
    }

    /// Damaged gzip streams (the compressed bytes themselves mutated) fail cleanly.
    #[test]
    fn mutated_gzip_never_panics(rows in 1usize..12, dim in 1usize..6, seed in any::<u64>(), m in mutation(),
                                 limit in prop::option::of(0usize..16)) {
        let bytes = apply(gzip(&valid_file(Format::Text, rows, dim, true, seed)), &m);
        parse_all(&bytes, limit)?;
    }

    /// Arbitrary bytes parse or fail cleanly.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200),
                                limit in prop::option::of(0usize..4)) {
        parse_all(&bytes, limit)?;
    }

    /// An unmutated file reads back what was written.
    #[test]
    fn valid_files_read_back(binary in any::<bool>(), rows in 1usize..12, dim in 1usize..9, seed in any::<u64>()) {
        let format = if binary { Format::Binary } else { Format::Text };
        let bytes = valid_file(format, rows, dim, true, seed);
        let pool = thread_pool(Some(2)).unwrap();
        let v = parse_bytes::<f32>(&pool, &gzip(&bytes), Path::new("v"), format, None, Duplicates::Error).unwrap();
        prop_assert_eq!((v.rows(), v.dim), (rows, dim));
    }
}

/// The headers of the original report: a dimension far beyond the file is a
/// format error naming the row, not an allocation of the header's size.
#[test]
fn huge_header_dimension_is_an_error_not_an_allocation() {
    let pool = thread_pool(Some(2)).unwrap();
    let p = Path::new("v.vec");
    let cases: [(&[u8], &str); 6] = [
        (
            b"1 100000000000000\nw 1\n",
            "line 2: expected 100000000000000 values after the word \"w\", found 1",
        ),
        (
            b"43 4611686018427387904\nw 1\n",
            "line 1: header declares dimension 4611686018427387904, too large",
        ),
        (
            b"2 18446744073709551615\nw 1\nv 2\n",
            "line 1: header declares dimension 18446744073709551615, too large",
        ),
        (
            b"43 461168601842738790\nw 1\n",
            "line 2: expected 461168601842738790 values after the word \"w\", found 1",
        ),
        (
            b"3 3\nw 1 2 3\nv 2\n",
            "line 3: expected 3 values after the word \"v\", found 1 (truncated file?",
        ),
        (b"2 3\nw 1 2 3\n\n", "truncated file"),
    ];
    for (bytes, want) in cases {
        let e = parse_text::<f32>(&pool, bytes, p, None, Duplicates::KeepFirst)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
        let e = parse_bytes::<f64>(&pool, &gzip(bytes), p, Format::Text, None, Duplicates::KeepFirst)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    // A short row whose values are not numbers reports that, as the full parse would.
    let e = parse_text::<f32>(&pool, b"1 9\nw x\n", p, None, Duplicates::KeepFirst).unwrap_err();
    assert!(e.to_string().contains("line 2: value 1 is not a number: \"x\""), "{e}");
    // A header declaring no rows is fine (nothing to allocate) while one row of
    // its dimension could exist at all.
    let v = parse_text::<f32>(&pool, b"0 100000000000000\n", p, None, Duplicates::KeepFirst).unwrap();
    assert_eq!((v.rows(), v.dim), (0, 100000000000000));
    for bytes in [&b"0 4611686018427387904\n"[..], b"0 18446744073709551615\n"] {
        let e = parse_text::<f32>(&pool, bytes, p, None, Duplicates::KeepFirst).unwrap_err();
        assert!(e.to_string().contains("too large for any vector"), "{e}");
        let e = parse_binary::<f64>(&pool, bytes, p, Some(0), Duplicates::KeepFirst).unwrap_err();
        assert!(e.to_string().contains("too large for any vector"), "{e}");
    }
    for h in [
        "1 100000000000000\n",
        "43 4611686018427387904\n",
        "3 18446744073709551615\n",
    ] {
        let mut b = h.as_bytes().to_vec();
        b.extend_from_slice(b"w \x00\x00\x80\x3f\n");
        let e = parse_binary::<f32>(&pool, &b, p, None, Duplicates::KeepFirst)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated file") || e.contains("too large"), "{e}");
    }
}
