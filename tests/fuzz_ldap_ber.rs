//! Fuzzing the LDAP reader (BER framing, LDAP messages, search entries, paging cookies, ranged
//! attributes): whatever bytes a server sends, the reader returns, quickly, without panicking.
//!
//! The inputs are the files of `tests/fuzz/ldap_ber/` (valid answers as servers send them, and
//! every input that ever made the reader fail, kept as regression inputs), then mutations of
//! them from a seeded generator: bit flips, bytes set to the values BER lengths turn on, bytes
//! inserted and removed, cuts, repeats and splices. The run is deterministic: the same seed and
//! count try the same inputs. CI runs the default count; a longer run is
//!
//! ```sh
//! MAILPLAN_FUZZ_CASES=1000000 MAILPLAN_FUZZ_SEED=$RANDOM cargo test --release --test fuzz_ldap_ber
//! ```
//!
//! An input that panics or takes too long is written to `tests/fuzz/ldap_ber/` as
//! `crash-<seed>-<case>.bin` and fails the test; once fixed, it stays there as a regression input.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// What one input may take at most (it takes well under a millisecond).
const BUDGET: Duration = Duration::from_secs(2);

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/ldap_ber")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
        .expect("tests/fuzz/ldap_ber")
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is missing");
    files
}

/// Runs one input; `Err` says what went wrong.
fn run(data: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        mailplan::directory::ldap::fuzz_reader(data)
    }));
    let took = started.elapsed();
    match outcome {
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(()) if took > BUDGET => Err(format!("took {took:?}")),
        Ok(()) => Ok(()),
    }
}

#[test]
fn every_corpus_and_regression_input_is_read_without_panic() {
    for (name, data) in corpus() {
        if let Err(e) = run(&data) {
            panic!("tests/fuzz/ldap_ber/{name}: {e}");
        }
    }
}

/// One mutation of `data`, with `other` for splices.
fn mutate(rng: &mut impl Rng, data: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, 0x30];
    let len = data.len();
    match rng.random_range(0..8) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        2 => {
            let i = rng.random_range(0..=len);
            data.insert(i, rng.random());
        }
        3 if len > 0 => {
            data.remove(rng.random_range(0..len));
        }
        4 => data.truncate(rng.random_range(0..=len)),
        5 if len > 0 => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(a..=len.min(a + 64));
            let piece = data[a..b].to_vec();
            let at = rng.random_range(0..=len);
            data.splice(at..at, piece);
        }
        6 if !other.is_empty() => {
            let a = rng.random_range(0..other.len());
            let b = rng.random_range(a..=other.len());
            let at = rng.random_range(0..=len);
            data.splice(at.., other[a..b].iter().copied());
        }
        _ if len > 1 => {
            // A long-form length of one to four bytes at a random place.
            let i = rng.random_range(1..len);
            let n = rng.random_range(1..=4u8);
            let mut bytes = vec![0x80 | n];
            bytes.extend((0..n).map(|_| rng.random::<u8>()));
            data.splice(i..i, bytes);
        }
        _ => data.push(rng.random()),
    }
}

#[test]
fn mutated_server_answers_are_read_without_panic_in_bounded_time() {
    let cases: u64 = std::env::var("MAILPLAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("MAILPLAN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4511);
    let corpus = corpus();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    for case in 0..cases {
        let (_, base) = &corpus[rng.random_range(0..corpus.len())];
        let (_, other) = &corpus[rng.random_range(0..corpus.len())];
        let mut data = base.clone();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut data, other);
        }
        if let Err(e) = run(&data) {
            let path = corpus_dir().join(format!("crash-{seed}-{case}.bin"));
            std::fs::write(&path, &data).unwrap();
            panic!(
                "case {case} of seed {seed}: {e}; the input is in {}",
                path.display()
            );
        }
    }
    eprintln!(
        "{cases} mutated inputs (seed {seed}) read in {:?}",
        started.elapsed()
    );
}
