//! libFuzzer target: the word-vector parsers of `taskspec_rs::vecio` on arbitrary bytes.
//!
//! The first byte picks the format (text or binary), the element type, the
//! duplicate policy and a `limit`; the rest is the file content (plain or
//! gzip, recognised by its magic bytes). Every input must give `Ok` with a
//! consistent matrix or `Err`: a panic, an abort or an allocation of a
//! header's size is a crash.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rayon::ThreadPool;
use taskspec_rs::vecio::{parse_bytes, Duplicates, Format, Real, Vectors};

fn pool() -> &'static Arc<ThreadPool> {
    static POOL: OnceLock<Arc<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| taskspec_rs::thread_pool(Some(2)).unwrap())
}

fn check<T: Real>(r: taskspec_rs::vecio::IoResult<Vectors<T>>, limit: Option<usize>) {
    match r {
        Ok(v) => {
            assert!(v.dim > 0);
            assert_eq!(v.data.len(), v.rows() * v.dim);
            assert!(v.data.iter().all(|x| x.finite()));
            if let Some(l) = limit {
                assert!(v.rows() + v.dropped <= l);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let format = if sel & 1 == 0 { Format::Text } else { Format::Binary };
    let dups = if sel & 4 == 0 {
        Duplicates::KeepFirst
    } else {
        Duplicates::Error
    };
    let limit = match sel >> 3 {
        0..=15 => None,
        n => Some(n as usize - 16),
    };
    let p = Path::new("fuzz.vec");
    if sel & 2 == 0 {
        check(parse_bytes::<f32>(pool(), body, p, format, limit, dups), limit);
    } else {
        check(parse_bytes::<f64>(pool(), body, p, format, limit, dups), limit);
    }
});
