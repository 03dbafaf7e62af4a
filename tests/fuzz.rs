//! Fuzzing in every test run: each target of `tests/fuzz/targets.rs` is given its corpus
//! (`tests/fuzz/corpus/<target>/`), every input a fuzzer once found
//! (`tests/fuzz/regressions/<target>/`), then a few thousand mutations of them. An input that
//! panics, breaks a promise the target checks, or takes longer than a bound is saved under
//! `target/fuzz-findings/<target>/` and fails the test, naming the file.
//!
//! The run is deterministic (a seeded generator, no clock in what it generates), so a finding is
//! found again on the next run. A longer run is a matter of settings:
//!
//! ```sh
//! FUZZ_CASES=200000 FUZZ_SEED=7 cargo test --release --test fuzz -- --nocapture   # all targets
//! FUZZ_CASES=1000000 cargo test --release --test fuzz fuzz_ldif -- --nocapture     # one target
//! ```
//!
//! `fuzz/` holds the same targets for coverage-guided fuzzing with `cargo fuzz` (see its
//! README), which finds more per hour; this run keeps its findings found.

#[path = "fuzz/targets.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Mutations per target in an ordinary `cargo test` (`FUZZ_CASES` overrides).
const CASES: usize = 10_000;

/// The longest one input may take in the test profile (`FUZZ_CASE_SECONDS` overrides): every
/// input is at most 64 KiB, so this is far beyond linear time, even on a loaded machine.
const CASE_SECONDS: u64 = 4;

/// The largest input a mutation makes.
const MAX_LEN: usize = 64 << 10;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of a folder, sorted by name (none when there is no folder).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.'))
                .then(|| std::fs::read(e.path()).ok().map(|b| (name, b)))
                .flatten()
        })
        .collect();
    out.sort();
    out
}

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, in_n: usize) -> bool {
        self.below(in_n) == 0
    }
}

/// Tokens worth inserting, for every target and for each one.
fn dictionary(target: &str) -> Vec<&'static [u8]> {
    let mut d: Vec<&'static [u8]> = vec![
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b"\t",
        b"\0",
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
        b"\xf0\x9f\x98\x80",
        b"\\",
        b"\"",
        b"'",
        b",",
        b";",
        b":",
        b"=",
        b"(",
        b")",
        b"[",
        b"]",
        b"{",
        b"}",
        b"*",
        b"@",
        b"&",
        b"-",
        b"#",
        b"%",
        b"+",
        b"/",
    ];
    let words: &[&'static str] = match target {
        "plan_file" => &[
            "- ",
            ": ",
            "? ",
            "&a ",
            "*a",
            "!tag ",
            "---\n",
            "...\n",
            "|\n  ",
            ">-\n  ",
            "password: ",
            "{ env: X }",
            "version: 1\n",
            "source:\n  ",
            "ldif: ",
            "allow_file_urls: true",
            "matching:\n  confirmed:\n    - ",
            "<<: *a\n",
            "items:\n  mail:\n    source:\n      imap:\n        ",
            "(objectClass=*)",
            "CN=a,O=b",
            "{uid}",
            "%YAML 1.2\n",
            "0x1F",
            "~",
            "null",
        ][..],
        "ldif" => &[
            "dn: ",
            "dn:: ",
            ":: ",
            ":< ",
            "file:x",
            "\n ",
            "\n\n",
            "changetype: ",
            "add",
            "modify\n",
            "delete: cn\n",
            "replace: ",
            "-\n",
            "modrdn\n",
            "newrdn: ",
            "deleteoldrdn: 1\n",
            "newsuperior: ",
            "control: 1.2.3 true",
            "version: 1\n",
            "# c\n",
            "objectClass: top\n",
            "AAEC",
            "=",
            "cn;lang-de: ",
        ][..],
        "dn" => &[
            "CN=",
            ",OU=",
            "+",
            "\\,",
            "\\2C",
            "\\\\",
            "#04024869",
            "O=Acme",
            "=",
            " ",
            "\\ ",
            "\\#",
            "dc=x",
            "1.2.3=x",
        ][..],
        "filter" => &[
            "(",
            ")",
            "&",
            "|",
            "!",
            "=",
            "~=",
            ">=",
            "<=",
            ":=",
            ":dn:",
            ":caseExactMatch:",
            "*",
            "\\2a",
            "\\28",
            "(objectClass=*)",
            "(cn=a*b*c)",
            "(!(x=1))",
            "(&)",
            "(|)",
        ][..],
        "ics" => &[
            "BEGIN:VCALENDAR\r\n",
            "END:VCALENDAR\r\n",
            "BEGIN:VEVENT\r\n",
            "END:VEVENT\r\n",
            "BEGIN:VALARM\r\n",
            "END:VALARM\r\n",
            "BEGIN:VTIMEZONE\r\n",
            "END:VTIMEZONE\r\n",
            "UID:",
            "RECURRENCE-ID:",
            "DTSTART;TZID=Office:",
            "TZID:Office\r\n",
            "20240101T100000Z",
            "\r\n ",
            "X-:",
            ";VALUE=DATE:",
        ][..],
        "csv" => &[
            "\"",
            "\"\"",
            ",",
            "\n",
            "firstName,lastName,email\n",
            "email",
            "company",
            "fullName",
            ",,,",
            "\u{feff}",
            "a@x.example",
        ][..],
        "vcard" => &[
            "BEGIN:VCARD\r\n",
            "END:VCARD\r\n",
            "EMAIL:",
            "N:",
            "FN:",
            "ORG:",
            "UID:",
            "\\;",
            "\\,",
            "\\n",
            ";",
            "\r\n ",
            "item1.EMAIL;TYPE=work:",
        ][..],
        "mutf7" => &[
            "&",
            "&-",
            "-",
            "&AGE-",
            "&2D3eAA-",
            "&Jjo-",
            "&ZeVnLIqe-",
            "+",
            ",",
        ][..],
        "imap" => &[
            "* ",
            "+ ",
            "+ go\r\n",
            "OK",
            "NO",
            "BAD",
            "BYE",
            "PREAUTH",
            "A1 ",
            "A2 OK ",
            "A7 ",
            "\r\n",
            "{5}\r\n",
            "{0}\r\n",
            "{4294967295}\r\n",
            "{99999999999}",
            "{99999999999999999999999}\r\n",
            "{16385}\r\n",
            "(",
            ")",
            "\"",
            "\\",
            "NIL",
            "FETCH",
            "UID",
            "BODY[]",
            "BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT RECEIVED)]",
            "RFC822.SIZE",
            "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\"",
            "FLAGS (\\Seen $Forwarded)",
            "LIST",
            "LSUB",
            "EXISTS",
            "\\Noselect",
            "\\NonExistent",
            "\".\"",
            "[CAPABILITY IMAP4rev1 LITERAL+]",
            "CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND SASL-IR",
            "LITERAL-",
            "[ALREADYEXISTS]",
            "[READ-ONLY]",
            "&AGE-",
            "&APw-",
            "&Jjo",
            "&-",
            "Message-ID: <a@b>\r\n",
        ][..],
        _ => &[][..],
    };
    d.extend(words.iter().map(|w| w.as_bytes()));
    if target == "ldap_ber" {
        // Long-form lengths that claim much, little, or nothing; a SEQUENCE, an INTEGER, an
        // ENUMERATED, an OCTET STRING, the search entry and done tags, a paged-results control.
        let ber: &[&'static [u8]] = &[
            b"\x84\xff\xff\xff\xff",
            b"\x84\x7f\xff\xff\xff",
            b"\x84\x00\x00\x00\x00",
            b"\x82\x01\x00",
            b"\x81\x80",
            b"\x80",
            b"\x30\x84",
            b"\x02\x01\x01",
            b"\x0a\x01\x00",
            b"\x04\x00",
            b"\x64",
            b"\x65",
            b"\xa0",
            b"1.2.840.113556.1.4.319",
            b";range=0-*",
            b";range=1000-1999",
        ];
        d.extend_from_slice(ber);
    }
    d
}

/// One to six changes to an input: bytes flipped, set, inserted or deleted; a run repeated
/// (nesting, long lines, many records); a token inserted; another input spliced in.
fn mutate(rng: &mut Rng, input: &[u8], seeds: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => {
                let n = 1 + rng.below(4);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let n = 1 + rng.below(len.div_ceil(4));
                let end = (at + n).min(len);
                out.drain(at.min(end)..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let n = 1 + rng.below(32.min(len - start));
                let chunk = out[start..start + n].to_vec();
                let times = if rng.chance(8) {
                    1 + rng.below(2_000)
                } else {
                    1 + rng.below(16)
                };
                let repeated: Vec<u8> = chunk.iter().copied().cycle().take(n * times).collect();
                out.splice(start..start, repeated);
            }
            5 | 6 => {
                let token = dict[rng.below(dict.len())];
                let times = if rng.chance(10) {
                    1 + rng.below(500)
                } else {
                    1
                };
                let bytes: Vec<u8> = token
                    .iter()
                    .copied()
                    .cycle()
                    .take(token.len() * times)
                    .collect();
                out.splice(at..at, bytes);
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                out.truncate(at);
            }
        }
        out.truncate(MAX_LEN);
    }
    out
}

/// Runs one input; an error names the saved file.
fn run_one(target: &str, f: fn(&[u8]), input: &[u8], limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(input)));
    let took = started.elapsed();
    let problem = match outcome {
        Err(p) => Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into()),
        ),
        Ok(()) if took > limit => Some(format!("took {took:.2?}, more than {limit:?}")),
        Ok(()) => None,
    };
    let Some(problem) = problem else {
        return Ok(took);
    };
    let dir = root().join("target/fuzz-findings").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("{:016x}", fnv(input));
    let path = dir.join(&name);
    let _ = std::fs::write(&path, input);
    Err(format!(
        "{target}: {problem}\n  input saved as {} ({} bytes); once fixed, keep it in tests/fuzz/regressions/{target}/",
        path.display(),
        input.len()
    ))
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn fuzz(target: &str) {
    let Some(&(_, f)) = targets::TARGETS.iter().find(|(n, _)| *n == target) else {
        panic!("no target {target}");
    };
    let limit = Duration::from_secs(setting("FUZZ_CASE_SECONDS", CASE_SECONDS));
    let cases = setting("FUZZ_CASES", CASES as u64);
    let dir = root().join("tests/fuzz");
    let corpus = files(&dir.join("corpus").join(target));
    let regressions = files(&dir.join("regressions").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target}");
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for (name, input) in corpus.iter().chain(&regressions) {
        match run_one(target, f, input, limit) {
            Ok(took) if took > slowest.0 => slowest = (took, name.clone()),
            Ok(_) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    // Mutations start from the corpus and the small regressions (the large ones, built to be
    // large, are replayed above but would make every case slow).
    let seeds: Vec<Vec<u8>> = corpus
        .into_iter()
        .chain(regressions.into_iter().filter(|(_, b)| b.len() <= 16 << 10))
        .map(|(_, b)| b)
        .collect();
    let dict = dictionary(target);
    let mut rng = Rng(setting("FUZZ_SEED", 0x5eed) ^ fnv(target.as_bytes()) | 1);
    let started = Instant::now();
    // Each case mutates a seed, or now and then the case before it, to go deeper.
    let mut last = seeds[0].clone();
    let mut ran = 0;
    for case in 0..cases {
        ran += 1;
        let base = if rng.chance(3) {
            last.clone()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        let input = mutate(&mut rng, &base, &seeds, &dict);
        match run_one(target, f, &input, limit) {
            Ok(took) if took > slowest.0 => slowest = (took, format!("case {case}")),
            Ok(_) => {}
            Err(e) => {
                failures.push(format!("case {case}: {e}"));
                if failures.len() >= 5 {
                    break;
                }
            }
        }
        last = input;
    }
    eprintln!(
        "{target}: {} inputs and {ran} mutations in {:.2?}, slowest {:.2?} ({}), {} finding(s)",
        seeds.len(),
        started.elapsed(),
        slowest.0,
        slowest.1,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_plan_file() {
    fuzz("plan_file");
}

#[test]
fn fuzz_ldif() {
    fuzz("ldif");
}

#[test]
fn fuzz_dn() {
    fuzz("dn");
}

#[test]
fn fuzz_filter() {
    fuzz("filter");
}

#[test]
fn fuzz_ics() {
    fuzz("ics");
}

#[test]
fn fuzz_csv() {
    fuzz("csv");
}

#[test]
fn fuzz_vcard() {
    fuzz("vcard");
}

#[test]
fn fuzz_mutf7() {
    fuzz("mutf7");
}

#[test]
fn fuzz_ldap_ber() {
    fuzz("ldap_ber");
}

#[test]
fn fuzz_imap() {
    fuzz("imap");
}
