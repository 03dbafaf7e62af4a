//! Synthetic directories for benchmarks and end-to-end tests: a Domino-like source, an Active
//! Directory/Exchange-like destination in which every matching scenario of the design occurs, and
//! a plan file that ties the two together.
//!
//! The output is a function of the options alone: the same seed gives the same bytes on every
//! machine (ChaCha8, integer sampling only, no hash-map iteration, no clock). Entries are written
//! as they are generated, so memory stays flat however large the directories are; only the
//! uniqueness keys of names, a few hundred group members at a time and the confirmed pins are kept.
//!
//! Each person's intended case (see [`CASES`]) is what the generator *meant* to set up. This
//! module must not be used by matching or planning, must not hold a whole directory in memory,
//! and must not read anything but its options (no clock, no environment).
//!
//! Conventions, so tests can rely on them:
//! - Source persons `CN=<full name>,OU=<department>,O=Acme` (`dominoPerson`), full names unique
//!   (case-insensitively, nicknames included); `uid` is initial + surname, numbered on collision
//!   (`jsmith`, `jsmith2`); `mail` is `given.surname@acme.com` or `given.m.surname@acme.com`,
//!   ASCII-folded and numbered on collision. Groups `CN=<department> Team,OU=Groups,O=Acme`
//!   (`dominoGroup`), plus `All Staff` and `Customer Facing`, whose members are groups.
//! - A person's destination objects are named after the person and nothing else is: mailboxes
//!   `CN=<full name>,OU=Migrated`, NT accounts and mail users `CN=<full name>,CN=Users`, contacts
//!   `CN=<full name>,OU=Contacts`, a stale second mailbox `CN=<full name> (old),CN=Users`.
//! - Unrelated objects use other surnames or `svc-`/`ext-` prefixes, so none shares a name, short
//!   name or address with a source person (tested below), and every person's intended case is
//!   also what a matcher following the design finds.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::directory::{AttrName, Dn, Entry, Value, ldif};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Source persons.
    pub persons: usize,
    /// Total destination entries, infrastructure included. When fewer than the persons' own
    /// destination objects need, only those are written.
    pub destination_objects: usize,
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub source_entries: usize,
    pub destination_entries: usize,
    /// Persons per intended case; every key of [`CASES`] is present, also with 0.
    pub intended: BTreeMap<&'static str, usize>,
    /// The soft matches the plan confirms: (source person DN, destination NT account DN), in
    /// generation order.
    pub confirmed: Vec<(Dn, Dn)>,
}

/// The intended cases, as keys of [`Summary::intended`], with their share per 100 persons.
pub const CASES: [(&str, usize); 11] = [
    ("new", 35),
    ("nt_soft", 9),
    ("nt_confirmed", 4),
    ("contact", 18),
    ("contact_notes", 2),
    ("nt_contact", 3),
    ("mail_user", 9),
    ("mailbox", 14),
    ("ambiguous", 2),
    ("cn_soft", 2),
    ("collision", 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    New,
    NtSoft,
    NtConfirmed,
    Contact,
    ContactNotes,
    NtContact,
    MailUser,
    Mailbox,
    Ambiguous,
    CnSoft,
    Collision,
}

/// In the order of [`CASES`].
const CASE_ORDER: [Case; 11] = [
    Case::New,
    Case::NtSoft,
    Case::NtConfirmed,
    Case::Contact,
    Case::ContactNotes,
    Case::NtContact,
    Case::MailUser,
    Case::Mailbox,
    Case::Ambiguous,
    Case::CnSoft,
    Case::Collision,
];

/// File names `generate_into` writes, and the plan refers to.
pub const SOURCE_FILE: &str = "source.ldif";
pub const DESTINATION_FILE: &str = "destination.ldif";
pub const PLAN_FILE: &str = "plan.yaml";

const MAIL_DOMAIN: &str = "acme.com";
/// Where the Notes side receives mail during coexistence (targetAddress of contacts, mail users).
const NOTES_ROUTING_DOMAIN: &str = "notes.acme.com";
const UPN_SUFFIX: &str = "acme.test";
const NOTES_DOMAIN: &str = "ACME";
const EXCHANGE_ORG: &str = "Acme";
const ADMIN_GROUP: &str = "Exchange Administrative Group (FYDIBOHF23SPDLT)";
/// Groups are capped so one group never dominates a plan or a test fixture.
const GROUP_MEMBER_CAP: usize = 250;
/// BufWriter capacity: large enough that 400k small records cost few syscalls.
const WRITE_BUFFER: usize = 256 * 1024;

/// Generates both directories in one pass, writing every entry as soon as it exists.
pub fn generate(
    opts: &GenerateOptions,
    source: &mut impl Write,
    destination: &mut impl Write,
) -> io::Result<Summary> {
    let mut src = LdifSink::new(BufWriter::with_capacity(WRITE_BUFFER, source))?;
    let mut dst = LdifSink::new(BufWriter::with_capacity(WRITE_BUFFER, destination))?;
    let mut g = Generator::new(opts.seed);

    for e in g.source_tree() {
        src.write(&e)?;
    }
    for e in infrastructure(&g.bases) {
        dst.write(&e)?;
    }

    let mut intended: BTreeMap<&'static str, usize> = CASES.iter().map(|c| (c.0, 0)).collect();
    let mut deck = Deck::default();
    for _ in 0..opts.persons {
        let (case, key) = deck.next(&mut g.rng);
        let person = g.person();
        src.write(&g.source_person(&person))?;
        g.remember_department_member(&person);
        g.destination_for(case, &person, &mut dst)?;
        *intended.entry(key).or_default() += 1;
    }
    for e in g.source_groups() {
        src.write(&e)?;
    }
    g.flush_coexistence_group(&mut dst)?;
    while dst.count < opts.destination_objects {
        g.filler(&mut dst)?;
    }

    Ok(Summary {
        source_entries: src.finish()?,
        destination_entries: dst.finish()?,
        intended,
        confirmed: g.confirmed,
    })
}

/// Writes `dir/source.ldif`, `dir/destination.ldif` and `dir/plan.yaml`, each through a temporary
/// file renamed into place, so a killed run never leaves a half-written file under a final name.
pub fn generate_into(dir: &Path, opts: &GenerateOptions) -> io::Result<Summary> {
    fs::create_dir_all(dir)?;
    let mut source = TempFile::create(dir, SOURCE_FILE)?;
    let mut destination = TempFile::create(dir, DESTINATION_FILE)?;
    let summary = generate(opts, &mut source.file, &mut destination.file)?;
    let mut plan = TempFile::create(dir, PLAN_FILE)?;
    {
        let mut out = BufWriter::new(&mut plan.file);
        write_plan_yaml(&mut out, SOURCE_FILE, DESTINATION_FILE, &summary.confirmed)?;
        out.flush()?;
    }
    // The plan goes last: a plan file present means its data files are complete.
    source.commit()?;
    destination.commit()?;
    plan.commit()?;
    Ok(summary)
}

/// The inputs of a generated wave, read as `mailplan plan` reads them: for tests of matching,
/// planning and rendering at a size where work is split over threads.
#[cfg(test)]
pub(crate) fn generated_inputs(
    persons: usize,
    destination_objects: usize,
    seed: u64,
) -> crate::ops::Inputs {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let opts = GenerateOptions {
        persons,
        destination_objects,
        seed,
    };
    generate_into(dir.path(), &opts).expect("the generated wave is written");
    crate::ops::load_inputs(&dir.path().join(PLAN_FILE)).expect("the generated wave loads")
}

/// Writes a batch-mode plan over the two generated directories. `source_file` and
/// `destination_file` are paths relative to the plan file.
pub fn write_plan_yaml(
    out: &mut impl Write,
    source_file: &str,
    destination_file: &str,
    confirmed: &[(Dn, Dn)],
) -> io::Result<()> {
    let b = Bases::new();
    writeln!(out, "version: 1")?;
    writeln!(out, "source:")?;
    writeln!(out, "  profile: domino")?;
    writeln!(out, "  notes_domain: {NOTES_DOMAIN}")?;
    writeln!(out, "  directory:")?;
    writeln!(out, "    ldif: {}", yaml_scalar(source_file))?;
    writeln!(out, "destination:")?;
    writeln!(out, "  flavor: active-directory")?;
    writeln!(out, "  directory:")?;
    writeln!(out, "    ldif: {}", yaml_scalar(destination_file))?;
    writeln!(out, "  container: {}", yaml_quoted(&b.migrated.to_string()))?;
    writeln!(out, "  domains: [{MAIL_DOMAIN}]")?;
    writeln!(
        out,
        "  mailbox_database: {}",
        yaml_quoted(&b.database.to_string())
    )?;
    writeln!(out, "  exchange_org: {EXCHANGE_ORG}")?;
    writeln!(out, "matching:")?;
    writeln!(out, "  mode: batch")?;
    if confirmed.is_empty() {
        writeln!(out, "  confirmed: []")?;
    } else {
        writeln!(out, "  confirmed:")?;
        for (source, destination) in confirmed {
            writeln!(out, "    - source: {}", yaml_quoted(&source.to_string()))?;
            writeln!(
                out,
                "      destination: {}",
                yaml_quoted(&destination.to_string())
            )?;
        }
    }
    writeln!(out, "distribution_lists:")?;
    writeln!(out, "  filter: \"(objectClass=dominoGroup)\"")?;
    Ok(())
}

/// A plain YAML scalar when the text obviously is one (`source.ldif`), else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        // `true`, `null`, `1.0` and friends would not read back as strings.
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain { s.to_string() } else { yaml_quoted(s) }
}

/// A YAML double-quoted scalar: `"` and `\` escaped, control and line-separator characters
/// written as escapes; everything else, non-ASCII included, as is (YAML files are UTF-8).
fn yaml_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A file written under a temporary name in its final folder and renamed when complete; dropped
/// uncommitted (an error on the way), the temporary file is removed.
struct TempFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &str) -> io::Result<Self> {
        // The process id keeps two generators writing into one folder apart.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        Ok(TempFile {
            file: File::create(&tmp)?,
            tmp,
            path: dir.join(name),
            committed: false,
        })
    }

    fn commit(mut self) -> io::Result<()> {
        // Data reaches the disk before the name does, or a crash could leave an empty file
        // under the final name.
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// An LDIF output stream that counts its records.
struct LdifSink<W: Write> {
    out: ldif::EntryWriter<W>,
    count: usize,
}

impl<W: Write> LdifSink<W> {
    fn new(out: W) -> io::Result<Self> {
        Ok(LdifSink {
            out: ldif::EntryWriter::new(out)?,
            count: 0,
        })
    }

    fn write(&mut self, entry: &Entry) -> io::Result<()> {
        self.out.write(entry)?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<usize> {
        self.out.finish()?;
        Ok(self.count)
    }
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// A list of names in one index space: plain ASCII names, then accented ones, then nicknames.
struct NameList {
    plain: &'static [&'static str],
    accented: &'static [&'static str],
    nicknames: &'static [(&'static str, &'static str)],
}

impl NameList {
    fn get(&self, i: usize) -> &'static str {
        let (p, a) = (self.plain.len(), self.accented.len());
        if i < p {
            self.plain[i]
        } else if i < p + a {
            self.accented[i - p]
        } else {
            self.nicknames.get(i - p - a).map_or("", |n| n.1)
        }
    }
    fn plain_range(&self) -> Range<usize> {
        0..self.plain.len()
    }
    fn accented_range(&self) -> Range<usize> {
        self.plain.len()..self.plain.len() + self.accented.len()
    }
    fn nickname_index(&self, j: usize) -> usize {
        self.plain.len() + self.accented.len() + j
    }
    #[cfg(test)]
    fn len(&self) -> usize {
        self.plain.len() + self.accented.len() + self.nicknames.len()
    }
}

static GIVEN: NameList = NameList {
    plain: GIVEN_PLAIN,
    accented: GIVEN_ACCENTED,
    nicknames: NICKNAMES,
};
static SURNAMES: NameList = NameList {
    plain: SURNAMES_PLAIN,
    accented: SURNAMES_ACCENTED,
    nicknames: &[],
};
/// Surnames of unrelated destination people: disjoint from `SURNAMES` (after ASCII folding), so
/// no filler object can share a name, short name or address with a source person.
static FILLER_SURNAMES: NameList = NameList {
    plain: FILLER_SURNAMES_PLAIN,
    accented: &[],
    nicknames: &[],
};

/// A person's name as indexes into the name lists.
#[derive(Debug, Clone, Copy)]
struct Name {
    given: usize,
    /// Middle initial, 0 = `A`.
    middle: Option<u8>,
    surname: usize,
    /// 0, or the generation (1 = `II`) of a name drawn when the table was too full to find a free
    /// one at random.
    generation: u64,
}

/// Hands out names no one else in the same table has, case-insensitively.
struct NameTable {
    surnames: &'static NameList,
    used: FxHashSet<u64>,
    generations: FxHashMap<u64, u64>,
}

impl NameTable {
    fn new(surnames: &'static NameList) -> Self {
        NameTable {
            surnames,
            used: FxHashSet::default(),
            generations: FxHashMap::default(),
        }
    }

    fn key(given: usize, middle: Option<u8>, surname: usize) -> u64 {
        pack(given, middle.map_or(0, |m| usize::from(m) + 1), surname)
    }

    /// Claims a name if it is free.
    fn claim(&mut self, given: usize, middle: Option<u8>, surname: usize) -> bool {
        self.used.insert(Self::key(given, middle, surname))
    }

    fn draw(&mut self, rng: &mut ChaCha8Rng, given: Range<usize>, surname: Range<usize>) -> Name {
        let (mut g, mut s) = (given.start, surname.start);
        for attempt in 0..16 {
            g = index_in(rng, &given);
            s = index_in(rng, &surname);
            // Most people are known without a middle initial; once the plain names run out, the
            // initial is what keeps names unique, as in a real company.
            let middle = (attempt >= 2 || chance(rng, 12)).then(|| uniform(rng, 26) as u8);
            if self.claim(g, middle, s) {
                return Name {
                    given: g,
                    middle,
                    surname: s,
                    generation: 0,
                };
            }
        }
        // Nearly full: a generational suffix is unique by construction (nothing random ever has
        // one), so it needs no lookup and the loop always ends.
        let next = self.generations.entry(pack(g, 0, s)).or_insert(0);
        *next += 1;
        Name {
            given: g,
            middle: None,
            surname: s,
            generation: *next,
        }
    }

    fn full_name(&self, n: &Name) -> String {
        let mut full = String::from(GIVEN.get(n.given));
        if let Some(m) = n.middle {
            full.push(' ');
            full.push(char::from(b'A' + m));
        }
        full.push(' ');
        full.push_str(self.surnames.get(n.surname));
        if n.generation > 0 {
            full.push(' ');
            full.push_str(&roman(n.generation + 1));
        }
        full
    }
}

/// Packs small indexes (each below 2^20) into one key.
fn pack(a: usize, b: usize, c: usize) -> u64 {
    ((a as u64) << 42) | ((b as u64) << 21) | c as u64
}

/// Numbers names that share a base: the first keeps the base (`jsmith`), the next get `2`, `3`, …
/// Bases never end in a digit, so a numbered name never equals another base.
#[derive(Default)]
struct Counter(FxHashMap<u64, u64>);

impl Counter {
    fn suffix(&mut self, key: u64) -> String {
        let n = self.0.entry(key).or_insert(0);
        *n += 1;
        if *n == 1 {
            String::new()
        } else {
            n.to_string()
        }
    }
}

fn roman(mut n: u64) -> String {
    const DIGITS: [(u64, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut out = String::new();
    for (value, digits) in DIGITS {
        while n >= value {
            out.push_str(digits);
            n -= value;
        }
    }
    out
}

/// Lower-case ASCII for addresses and account names: diacritics dropped (`Jürgen` → `jurgen`,
/// `Łukasz` → `lukasz`, `Weiß` → `weiss`); anything else that is not a letter is left out.
fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'a'..='z' => {
                out.push(c);
                continue;
            }
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'ď' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ı' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => "o",
            'œ' => "oe",
            'ř' => "r",
            'ś' | 'š' | 'ş' => "s",
            'ß' => "ss",
            'ť' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Sampling. Integer ranges of u32 only: those are sampled the same way on every platform.
// ---------------------------------------------------------------------------------------------

fn uniform(rng: &mut ChaCha8Rng, n: usize) -> usize {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    rng.random_range(0..n) as usize
}

fn index_in(rng: &mut ChaCha8Rng, r: &Range<usize>) -> usize {
    r.start + uniform(rng, r.len())
}

/// One of `items`, which must not be empty (all callers pass constant lists).
fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[uniform(rng, items.len()).min(items.len().saturating_sub(1))]
}

/// True with `percent` % probability.
fn chance(rng: &mut ChaCha8Rng, percent: u32) -> bool {
    rng.random_range(0..100u32) < percent
}

/// Deals the intended cases from shuffled decks of 100 holding exactly each case's share: the
/// shares are exact per hundred persons and every case occurs once there are 100.
#[derive(Default)]
struct Deck {
    cards: Vec<usize>,
}

impl Deck {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> (Case, &'static str) {
        if self.cards.is_empty() {
            for (i, (_, share)) in CASES.iter().enumerate() {
                self.cards.extend(std::iter::repeat_n(i, *share));
            }
            // Fisher-Yates with our portable sampler.
            for i in (1..self.cards.len()).rev() {
                let j = uniform(rng, i + 1);
                self.cards.swap(i, j);
            }
        }
        let i = self.cards.pop().unwrap_or(0);
        (CASE_ORDER[i], CASES[i].0)
    }
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

struct Department {
    name: &'static str,
    /// Share per 100 persons.
    weight: usize,
    titles: &'static [&'static str],
}

static DEPARTMENTS: [Department; 8] = [
    Department {
        name: "Sales",
        weight: 18,
        titles: &[
            "Account Executive",
            "Sales Manager",
            "Regional Sales Director",
            "Sales Representative",
            "Inside Sales Specialist",
        ],
    },
    Department {
        name: "Marketing",
        weight: 10,
        titles: &[
            "Marketing Manager",
            "Content Strategist",
            "Brand Manager",
            "Marketing Analyst",
            "Events Coordinator",
        ],
    },
    Department {
        name: "Engineering",
        weight: 22,
        titles: &[
            "Software Engineer",
            "Senior Software Engineer",
            "Engineering Manager",
            "QA Engineer",
            "Site Reliability Engineer",
            "Principal Engineer",
        ],
    },
    Department {
        name: "Finance",
        weight: 8,
        titles: &[
            "Accountant",
            "Financial Analyst",
            "Controller",
            "Accounts Payable Clerk",
            "Finance Manager",
        ],
    },
    Department {
        name: "HR",
        weight: 6,
        titles: &[
            "HR Generalist",
            "Recruiter",
            "HR Business Partner",
            "Payroll Specialist",
            "HR Manager",
        ],
    },
    Department {
        name: "Support",
        weight: 18,
        titles: &[
            "Support Engineer",
            "Support Team Lead",
            "Customer Success Manager",
            "Technical Support Specialist",
        ],
    },
    Department {
        name: "Legal",
        weight: 5,
        titles: &[
            "Counsel",
            "Senior Counsel",
            "Paralegal",
            "Contracts Manager",
            "General Counsel",
        ],
    },
    Department {
        name: "Operations",
        weight: 13,
        titles: &[
            "Operations Manager",
            "Facilities Coordinator",
            "Logistics Analyst",
            "Office Manager",
            "Procurement Specialist",
        ],
    },
];

static OFFICES: [&str; 8] = [
    "Boston",
    "Chicago",
    "London",
    "München",
    "Zürich",
    "Singapore",
    "Toronto",
    "Austin",
];

/// External organisations of the partner contacts; `.example` domains (RFC 2606) never resolve.
static PARTNERS: [(&str, &str); 10] = [
    ("Globex", "globex.example"),
    ("Initech", "initech.example"),
    ("Umbrella", "umbrella.example"),
    ("Hooli", "hooli.example"),
    ("Stark Industries", "stark.example"),
    ("Wayne Enterprises", "wayne.example"),
    ("Soylent", "soylent.example"),
    ("Cyberdyne", "cyberdyne.example"),
    ("Tyrell", "tyrell.example"),
    ("Wonka Industries", "wonka.example"),
];

static GROUP_KINDS: [&str; 8] = [
    "Project",
    "Steering",
    "Working Group",
    "Committee",
    "Announcements",
    "Readers",
    "Approvers",
    "Distribution",
];
static GROUP_TOPICS: [&str; 10] = [
    "Falcon", "Orion", "Atlas", "Phoenix", "Apollo", "Hermes", "Zephyr", "Nimbus", "Aurora",
    "Vertex",
];
static SERVICES: [&str; 12] = [
    "backup",
    "sql",
    "sharepoint",
    "scanner",
    "print",
    "monitoring",
    "deploy",
    "build",
    "crm",
    "erp",
    "web",
    "reports",
];

/// The DNs everything hangs off.
struct Bases {
    source_root: Dn,
    source_groups: Dn,
    domain: Dn,
    users: Dn,
    computers: Dn,
    migrated: Dn,
    contacts: Dn,
    groups: Dn,
    database: Dn,
}

impl Bases {
    fn new() -> Self {
        // Built with `child`, which cannot fail, rather than parsed.
        let source_root = Dn::root().child("O", "Acme");
        let domain = Dn::root().child("DC", "test").child("DC", "acme");
        let database = domain
            .child("CN", "Configuration")
            .child("CN", "Services")
            .child("CN", "Microsoft Exchange")
            .child("CN", EXCHANGE_ORG)
            .child("CN", "Administrative Groups")
            .child("CN", ADMIN_GROUP)
            .child("CN", "Databases")
            .child("CN", "DB01");
        Bases {
            source_groups: source_root.child("OU", "Groups"),
            source_root,
            users: domain.child("CN", "Users"),
            computers: domain.child("CN", "Computers"),
            migrated: domain.child("OU", "Migrated"),
            contacts: domain.child("OU", "Contacts"),
            groups: domain.child("OU", "Groups"),
            database,
            domain,
        }
    }
}

/// One source person and everything derived from its name.
struct Person {
    dn: Dn,
    full: String,
    /// A second `cn` (`Bob Smith` for `Robert Smith`).
    nickname: Option<String>,
    given: &'static str,
    surname: &'static str,
    middle: Option<char>,
    generation: Option<String>,
    department: &'static Department,
    department_index: usize,
    surname_index: usize,
    /// First letter of the ASCII-folded given name.
    initial: char,
    folded_surname: String,
    /// Short name: `jsmith`, `jsmith2`.
    uid: String,
    /// Mail local part: `john.smith`, `john.smith2`, `john.a.smith`.
    local: String,
    mail: String,
    /// `John Smith/Sales/Acme@ACME`, as a Notes connector stamps it.
    notes: String,
    title: &'static str,
    phone: String,
    office: &'static str,
}

/// An unrelated destination person (filler).
struct Other {
    full: String,
    given: &'static str,
    surname: &'static str,
    /// `kwozniak`, `kwozniak2`: disjoint from source short names (other surnames).
    sam: String,
    /// `kasia.wozniak`, `kasia.wozniak2`, `kasia.b.wozniak`.
    local: String,
}

/// A destination distribution list filling up with the contacts of persons.
#[derive(Default)]
struct CoexistenceGroup {
    number: usize,
    members: Vec<Dn>,
}

struct Generator {
    rng: ChaCha8Rng,
    bases: Bases,
    department_dns: Vec<Dn>,
    /// Up to `GROUP_MEMBER_CAP` members per department, for the source groups.
    department_members: Vec<Vec<Dn>>,
    source_names: NameTable,
    other_names: NameTable,
    uids: Counter,
    locals: Counter,
    soft_sams: Counter,
    other_sams: Counter,
    other_locals: Counter,
    services: Counter,
    /// Index in `GIVEN` of each nickname's formal name.
    formal_names: Vec<Option<usize>>,
    coexistence: CoexistenceGroup,
    /// Recently written filler objects, candidates for filler group members.
    recent: Vec<Dn>,
    recent_next: usize,
    groups_made: usize,
    computers_made: usize,
    confirmed: Vec<(Dn, Dn)>,
}

fn with_classes(dn: Dn, classes: &[&str]) -> Entry {
    let mut e = Entry::new(dn);
    for class in classes {
        put(&mut e, "objectClass", *class);
    }
    // The naming attribute (`cn` of `CN=…`) is always present, as LDAP requires.
    if let Some(ava) = e.dn.rdn().and_then(|r| r.0.into_iter().next()) {
        e.add(
            AttrName::new_unchecked(ava.attr.folded()),
            Value::text(ava.value),
        );
    }
    e
}

fn put(e: &mut Entry, attr: &str, value: impl Into<String>) {
    e.add(AttrName::new_unchecked(attr), Value::text(value.into()));
}

fn legacy_dn(nick: &str) -> String {
    format!("/o={EXCHANGE_ORG}/ou={ADMIN_GROUP}/cn=Recipients/cn={nick}")
}

const USER: &[&str] = &["top", "person", "organizationalPerson", "user"];
const CONTACT: &[&str] = &["top", "person", "organizationalPerson", "contact"];
const GROUP: &[&str] = &["top", "group"];
const GROUP_GLOBAL_SECURITY: &str = "-2147483646";
const GROUP_UNIVERSAL_DISTRIBUTION: &str = "8";

fn infrastructure(b: &Bases) -> Vec<Entry> {
    let config = b.domain.child("CN", "Configuration");
    let services = config.child("CN", "Services");
    let exchange = services.child("CN", "Microsoft Exchange");
    let org = exchange.child("CN", EXCHANGE_ORG);
    let admin_groups = org.child("CN", "Administrative Groups");
    let admin_group = admin_groups.child("CN", ADMIN_GROUP);
    let databases = admin_group.child("CN", "Databases");
    let transport = org.child("CN", "Transport Settings");
    let accepted = transport.child("CN", "Accepted Domains");
    let mut accepted_domain = with_classes(
        accepted.child("CN", MAIL_DOMAIN),
        &["top", "msExchAcceptedDomain"],
    );
    put(
        &mut accepted_domain,
        "msExchAcceptedDomainName",
        MAIL_DOMAIN,
    );
    put(&mut accepted_domain, "msExchAcceptedDomainFlags", "0");
    let db = with_classes(
        b.database.clone(),
        &["top", "msExchMDB", "msExchPrivateMDB"],
    );
    vec![
        with_classes(b.domain.clone(), &["top", "domain", "domainDNS"]),
        with_classes(b.users.clone(), &["top", "container"]),
        with_classes(b.computers.clone(), &["top", "container"]),
        with_classes(b.migrated.clone(), &["top", "organizationalUnit"]),
        with_classes(b.contacts.clone(), &["top", "organizationalUnit"]),
        with_classes(b.groups.clone(), &["top", "organizationalUnit"]),
        with_classes(config, &["top", "configuration"]),
        with_classes(services, &["top", "container"]),
        with_classes(
            exchange,
            &["top", "container", "msExchConfigurationContainer"],
        ),
        with_classes(org, &["top", "container", "msExchOrganizationContainer"]),
        with_classes(
            admin_groups,
            &["top", "container", "msExchAdminGroupContainer"],
        ),
        with_classes(admin_group, &["top", "msExchAdminGroup"]),
        with_classes(databases, &["top", "msExchMDBContainer"]),
        db,
        with_classes(transport, &["top", "msExchTransportSettings"]),
        with_classes(accepted, &["top", "container"]),
        accepted_domain,
    ]
}

impl Generator {
    fn new(seed: u64) -> Self {
        let bases = Bases::new();
        let department_dns = DEPARTMENTS
            .iter()
            .map(|d| bases.source_root.child("OU", d.name))
            .collect();
        let formal_names = NICKNAMES
            .iter()
            .map(|(formal, _)| GIVEN_PLAIN.iter().position(|g| g == formal))
            .collect();
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            bases,
            department_dns,
            department_members: vec![Vec::new(); DEPARTMENTS.len()],
            source_names: NameTable::new(&SURNAMES),
            other_names: NameTable::new(&FILLER_SURNAMES),
            uids: Counter::default(),
            locals: Counter::default(),
            soft_sams: Counter::default(),
            other_sams: Counter::default(),
            other_locals: Counter::default(),
            services: Counter::default(),
            formal_names,
            coexistence: CoexistenceGroup::default(),
            recent: Vec::new(),
            recent_next: 0,
            groups_made: 0,
            computers_made: 0,
            confirmed: Vec::new(),
        }
    }

    // ---- source ----------------------------------------------------------------------------

    fn source_tree(&self) -> Vec<Entry> {
        let mut out = vec![with_classes(
            self.bases.source_root.clone(),
            &["top", "organization"],
        )];
        for dn in &self.department_dns {
            out.push(with_classes(dn.clone(), &["top", "organizationalUnit"]));
        }
        out.push(with_classes(
            self.bases.source_groups.clone(),
            &["top", "organizationalUnit"],
        ));
        out
    }

    fn department(&mut self) -> usize {
        let total: usize = DEPARTMENTS.iter().map(|d| d.weight).sum();
        let mut roll = uniform(&mut self.rng, total);
        for (i, d) in DEPARTMENTS.iter().enumerate() {
            if roll < d.weight {
                return i;
            }
            roll -= d.weight;
        }
        0
    }

    fn person(&mut self) -> Person {
        let d = self.department();
        let department = &DEPARTMENTS[d];
        let roll = uniform(&mut self.rng, 100);
        let (plain_given, plain_surname) = (GIVEN.plain_range(), SURNAMES.plain_range());
        let mut nickname_of = None;
        // About 3% non-ASCII names, 5% known by a nickname as well.
        let (given, surname) = if roll < 3 {
            match uniform(&mut self.rng, 3) {
                0 => (GIVEN.accented_range(), plain_surname),
                1 => (plain_given, SURNAMES.accented_range()),
                _ => (GIVEN.accented_range(), SURNAMES.accented_range()),
            }
        } else if roll < 8 {
            let j = uniform(&mut self.rng, NICKNAMES.len());
            match self.formal_names.get(j).copied().flatten() {
                Some(formal) => {
                    nickname_of = Some(j);
                    (formal..formal + 1, plain_surname)
                }
                None => (plain_given, plain_surname),
            }
        } else {
            (plain_given, plain_surname)
        };
        let name = self.source_names.draw(&mut self.rng, given, surname);
        let full = self.source_names.full_name(&name);
        let nickname = nickname_of.and_then(|j| {
            let nick = GIVEN.nickname_index(j);
            (name.generation == 0 && self.source_names.claim(nick, None, name.surname)).then(|| {
                self.source_names.full_name(&Name {
                    given: nick,
                    middle: None,
                    surname: name.surname,
                    generation: 0,
                })
            })
        });
        let (given_name, surname_name) = (GIVEN.get(name.given), SURNAMES.get(name.surname));
        let (folded_given, folded_surname) = (fold_ascii(given_name), fold_ascii(surname_name));
        let initial = folded_given.chars().next().unwrap_or('x');
        let uid = format!(
            "{initial}{folded_surname}{}",
            self.uids.suffix(pack(initial as usize, 0, name.surname))
        );
        let local = mail_local(&mut self.locals, &name, &folded_given, &folded_surname);
        let dn = self.department_dns[d].child("CN", &full);
        let notes = format!("{}@{NOTES_DOMAIN}", dn.abbreviated());
        Person {
            mail: format!("{local}@{MAIL_DOMAIN}"),
            notes,
            dn,
            full,
            nickname,
            given: given_name,
            surname: surname_name,
            middle: name.middle.map(|m| char::from(b'A' + m)),
            generation: (name.generation > 0).then(|| roman(name.generation + 1)),
            department,
            department_index: d,
            surname_index: name.surname,
            initial,
            folded_surname,
            uid,
            local,
            title: pick(&mut self.rng, department.titles),
            phone: format!("+1 617 555 {:04}", uniform(&mut self.rng, 10_000)),
            office: pick(&mut self.rng, &OFFICES),
        }
    }

    fn source_person(&self, p: &Person) -> Entry {
        let mut e = with_classes(
            p.dn.clone(),
            &[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "dominoPerson",
            ],
        );
        if let Some(nick) = &p.nickname {
            put(&mut e, "cn", nick.as_str());
        }
        put(&mut e, "givenName", p.given);
        put(&mut e, "sn", p.surname);
        if let Some(m) = p.middle {
            put(&mut e, "initials", m.to_string());
        }
        if let Some(g) = &p.generation {
            put(&mut e, "generationQualifier", g.as_str());
        }
        put(&mut e, "uid", p.uid.as_str());
        put(&mut e, "mail", p.mail.as_str());
        put(&mut e, "title", p.title);
        put(&mut e, "telephoneNumber", p.phone.as_str());
        put(&mut e, "mailFile", format!("mail/{}.nsf", p.uid));
        put(&mut e, "mailServer", "CN=mail01/O=Acme");
        put(&mut e, "mailDomain", NOTES_DOMAIN);
        e
    }

    fn remember_department_member(&mut self, p: &Person) {
        if let Some(members) = self.department_members.get_mut(p.department_index)
            && members.len() < GROUP_MEMBER_CAP
        {
            members.push(p.dn.clone());
        }
    }

    /// One team group per department, then two groups of groups (nested lists).
    fn source_groups(&mut self) -> Vec<Entry> {
        let group = |dn: &Dn, mail: String| {
            let mut e = with_classes(dn.clone(), &["top", "dominoGroup"]);
            put(&mut e, "mail", mail);
            e
        };
        let mut out = Vec::new();
        let mut teams = Vec::new();
        for (d, members) in DEPARTMENTS
            .iter()
            .zip(std::mem::take(&mut self.department_members))
        {
            let dn = self
                .bases
                .source_groups
                .child("CN", &format!("{} Team", d.name));
            let mut e = group(
                &dn,
                format!("{}-team@{MAIL_DOMAIN}", d.name.to_ascii_lowercase()),
            );
            for m in members {
                put(&mut e, "member", m.to_string());
            }
            out.push(e);
            teams.push((d.name, dn));
        }
        let mut all = group(
            &self.bases.source_groups.child("CN", "All Staff"),
            format!("all-staff@{MAIL_DOMAIN}"),
        );
        let mut facing = group(
            &self.bases.source_groups.child("CN", "Customer Facing"),
            format!("customer-facing@{MAIL_DOMAIN}"),
        );
        for (name, dn) in &teams {
            put(&mut all, "member", dn.to_string());
            if matches!(*name, "Sales" | "Marketing" | "Support") {
                put(&mut facing, "member", dn.to_string());
            }
        }
        out.push(all);
        out.push(facing);
        out
    }

    // ---- destination, per person -----------------------------------------------------------

    fn destination_for<W: Write>(
        &mut self,
        case: Case,
        p: &Person,
        dst: &mut LdifSink<W>,
    ) -> io::Result<()> {
        match case {
            Case::New => {}
            Case::NtSoft => dst.write(&self.nt_account(p, p.uid.clone()))?,
            Case::NtConfirmed => {
                let nt = self.nt_account(p, p.uid.clone());
                self.confirmed.push((p.dn.clone(), nt.dn.clone()));
                dst.write(&nt)?;
            }
            Case::Contact | Case::NtContact => {
                if case == Case::NtContact {
                    let nt = self.nt_account(p, p.uid.clone());
                    self.confirmed.push((p.dn.clone(), nt.dn.clone()));
                    dst.write(&nt)?;
                }
                let contact = self.person_contact(p, false);
                dst.write(&contact)?;
                if chance(&mut self.rng, 50) {
                    self.add_to_coexistence_group(contact.dn, dst)?;
                }
            }
            Case::ContactNotes => dst.write(&self.person_contact(p, true))?,
            Case::MailUser => dst.write(&self.mail_user(p))?,
            Case::Mailbox => dst.write(&self.person_mailbox(p))?,
            Case::Ambiguous => {
                dst.write(&self.person_mailbox(p))?;
                dst.write(&self.old_mailbox(p))?;
            }
            Case::CnSoft => {
                // A legacy account under the same display name but another logon name;
                // `smith.j` has a dot, which no source short name has.
                let key = pack(p.initial as usize, 0, p.surname_index);
                let sam = format!(
                    "{}.{}{}",
                    p.folded_surname,
                    p.initial,
                    self.soft_sams.suffix(key)
                );
                dst.write(&self.nt_account(p, sam))?;
            }
            Case::Collision => {
                // The short name is taken by a group (not a user, so not a soft candidate)…
                let mut group = with_classes(self.bases.groups.child("CN", &p.uid), GROUP);
                put(&mut group, "sAMAccountName", p.uid.as_str());
                put(&mut group, "groupType", GROUP_GLOBAL_SECURITY);
                put(&mut group, "description", "Legacy file share access");
                dst.write(&group)?;
                // …and the DN a new mailbox would get by a partner's contact of the same name.
                let (company, domain) = pick(&mut self.rng, &PARTNERS);
                let address = format!("{}@{domain}", p.local);
                let mut c = self.contact_base(
                    self.bases.migrated.child("CN", &p.full),
                    &p.full,
                    p.given,
                    p.surname,
                    &format!("ext-{}", p.uid),
                );
                put(&mut c, "mail", address.as_str());
                put(&mut c, "targetAddress", format!("SMTP:{address}"));
                put(&mut c, "proxyAddresses", format!("SMTP:{address}"));
                put(&mut c, "company", company);
                dst.write(&c)?;
            }
        }
        Ok(())
    }

    fn user_base(&self, dn: Dn, cn: &str, given: &str, surname: &str, sam: &str) -> Entry {
        // `cn` comes from the RDN.
        let mut e = with_classes(dn, USER);
        put(&mut e, "displayName", cn);
        put(&mut e, "givenName", given);
        put(&mut e, "sn", surname);
        put(&mut e, "sAMAccountName", sam);
        put(&mut e, "userPrincipalName", format!("{sam}@{UPN_SUFFIX}"));
        put(&mut e, "userAccountControl", "512");
        e
    }

    fn person_user(&self, dn: Dn, p: &Person, sam: &str) -> Entry {
        let mut e = self.user_base(dn, &p.full, p.given, p.surname, sam);
        if let Some(m) = p.middle {
            put(&mut e, "initials", m.to_string());
        }
        put(&mut e, "department", p.department.name);
        e
    }

    /// A Windows account with no mail attributes at all.
    fn nt_account(&mut self, p: &Person, sam: String) -> Entry {
        let mut e = self.person_user(self.bases.users.child("CN", &p.full), p, &sam);
        if chance(&mut self.rng, 60) {
            put(&mut e, "telephoneNumber", p.phone.as_str());
        }
        if chance(&mut self.rng, 40) {
            put(&mut e, "physicalDeliveryOfficeName", p.office);
        }
        e
    }

    fn mailbox_attrs(&self, e: &mut Entry, primary: &str, nick: &str) {
        put(e, "homeMDB", self.bases.database.to_string());
        put(e, "msExchRecipientTypeDetails", "1");
        put(e, "mail", primary);
        put(e, "mailNickname", nick);
        put(e, "legacyExchangeDN", legacy_dn(nick));
        put(e, "proxyAddresses", format!("SMTP:{primary}"));
    }

    /// The person's mailbox, as an earlier migration wave left it (scenario 6).
    fn person_mailbox(&mut self, p: &Person) -> Entry {
        let mut e = self.person_user(self.bases.migrated.child("CN", &p.full), p, &p.uid);
        self.mailbox_attrs(&mut e, &p.mail, &p.uid);
        put(&mut e, "title", p.title);
        if chance(&mut self.rng, 50) {
            put(
                &mut e,
                "proxyAddresses",
                format!("smtp:{}@{MAIL_DOMAIN}", p.uid),
            );
        }
        if chance(&mut self.rng, 60) {
            put(&mut e, "proxyAddresses", format!("NOTES:{}", p.notes));
        }
        if chance(&mut self.rng, 10) {
            put(
                &mut e,
                "proxyAddresses",
                format!(
                    "X500:/o={EXCHANGE_ORG}/ou=First Administrative Group/cn=Recipients/cn={}",
                    p.uid
                ),
            );
        }
        e
    }

    /// A second, stale mailbox that also holds the person's address (ambiguous).
    fn old_mailbox(&mut self, p: &Person) -> Entry {
        let cn = format!("{} (old)", p.full);
        let nick = format!("{}-old", p.uid);
        let mut e = self.user_base(
            self.bases.users.child("CN", &cn),
            &cn,
            p.given,
            p.surname,
            &nick,
        );
        self.mailbox_attrs(&mut e, &format!("{nick}@{MAIL_DOMAIN}"), &nick);
        put(&mut e, "proxyAddresses", format!("smtp:{}", p.mail));
        // Disabled, as stale accounts usually are.
        e.attrs.insert(
            AttrName::new_unchecked("userAccountControl"),
            [Value::text("514")].into(),
        );
        e
    }

    /// A mail-enabled user routing to Notes, holding the person's address as a secondary
    /// (scenario 5).
    fn mail_user(&mut self, p: &Person) -> Entry {
        let mut e = self.person_user(self.bases.users.child("CN", &p.full), p, &p.uid);
        let primary = format!("{}@{MAIL_DOMAIN}", p.uid);
        let target = format!("{}@{NOTES_ROUTING_DOMAIN}", p.local);
        put(&mut e, "msExchRecipientTypeDetails", "128");
        put(&mut e, "targetAddress", format!("SMTP:{target}"));
        put(&mut e, "mail", primary.as_str());
        put(&mut e, "mailNickname", p.uid.as_str());
        put(&mut e, "legacyExchangeDN", legacy_dn(&p.uid));
        put(&mut e, "proxyAddresses", format!("SMTP:{primary}"));
        put(&mut e, "proxyAddresses", format!("smtp:{}", p.mail));
        put(&mut e, "proxyAddresses", format!("smtp:{target}"));
        if chance(&mut self.rng, 50) {
            put(&mut e, "proxyAddresses", format!("NOTES:{}", p.notes));
        }
        put(&mut e, "title", p.title);
        put(&mut e, "telephoneNumber", p.phone.as_str());
        put(&mut e, "physicalDeliveryOfficeName", p.office);
        e
    }

    fn contact_base(&self, dn: Dn, cn: &str, given: &str, surname: &str, nick: &str) -> Entry {
        let mut e = with_classes(dn, CONTACT);
        put(&mut e, "displayName", cn);
        put(&mut e, "givenName", given);
        put(&mut e, "sn", surname);
        put(&mut e, "mailNickname", nick);
        put(&mut e, "legacyExchangeDN", legacy_dn(nick));
        e
    }

    /// The coexistence contact a Notes connector created for the person (scenario 3); with
    /// `notes_only` it carries nothing but the NOTES address.
    fn person_contact(&mut self, p: &Person, notes_only: bool) -> Entry {
        let mut e = self.contact_base(
            self.bases.contacts.child("CN", &p.full),
            &p.full,
            p.given,
            p.surname,
            &format!("notes-{}", p.uid),
        );
        if notes_only {
            put(&mut e, "targetAddress", format!("NOTES:{}", p.notes));
            put(&mut e, "proxyAddresses", format!("NOTES:{}", p.notes));
        } else {
            put(&mut e, "mail", p.mail.as_str());
            put(
                &mut e,
                "targetAddress",
                format!("SMTP:{}@{NOTES_ROUTING_DOMAIN}", p.local),
            );
            put(&mut e, "proxyAddresses", format!("SMTP:{}", p.mail));
            if chance(&mut self.rng, 50) {
                put(&mut e, "proxyAddresses", format!("NOTES:{}", p.notes));
            }
        }
        // What the connector synchronised, partly stale: what merging contact data is about.
        if chance(&mut self.rng, 60) {
            put(&mut e, "title", pick(&mut self.rng, p.department.titles));
        }
        if chance(&mut self.rng, 60) {
            put(&mut e, "telephoneNumber", p.phone.as_str());
        }
        if chance(&mut self.rng, 60) {
            put(&mut e, "department", p.department.name);
        }
        if chance(&mut self.rng, 60) {
            put(&mut e, "physicalDeliveryOfficeName", p.office);
        }
        e
    }

    fn add_to_coexistence_group<W: Write>(
        &mut self,
        member: Dn,
        dst: &mut LdifSink<W>,
    ) -> io::Result<()> {
        self.coexistence.members.push(member);
        if self.coexistence.members.len() >= GROUP_MEMBER_CAP {
            self.flush_coexistence_group(dst)?;
        }
        Ok(())
    }

    fn flush_coexistence_group<W: Write>(&mut self, dst: &mut LdifSink<W>) -> io::Result<()> {
        if self.coexistence.members.is_empty() {
            return Ok(());
        }
        self.coexistence.number += 1;
        let name = format!("Notes Coexistence {:03}", self.coexistence.number);
        let slug = slug(&name);
        let mut e = self.distribution_group(self.bases.groups.child("CN", &name), &name, &slug);
        for m in std::mem::take(&mut self.coexistence.members) {
            put(&mut e, "member", m.to_string());
        }
        dst.write(&e)
    }

    fn distribution_group(&self, dn: Dn, name: &str, slug: &str) -> Entry {
        let mut e = with_classes(dn, GROUP);
        let mail = format!("{slug}@{MAIL_DOMAIN}");
        put(&mut e, "sAMAccountName", name);
        put(&mut e, "groupType", GROUP_UNIVERSAL_DISTRIBUTION);
        put(&mut e, "mail", mail.as_str());
        put(&mut e, "mailNickname", slug);
        put(&mut e, "legacyExchangeDN", legacy_dn(slug));
        put(&mut e, "proxyAddresses", format!("SMTP:{mail}"));
        e
    }

    // ---- destination, unrelated objects -----------------------------------------------------

    fn other(&mut self) -> Other {
        let given = if chance(&mut self.rng, 3) {
            GIVEN.accented_range()
        } else {
            GIVEN.plain_range()
        };
        let name = self
            .other_names
            .draw(&mut self.rng, given, FILLER_SURNAMES.plain_range());
        let (g, s) = (GIVEN.get(name.given), FILLER_SURNAMES.get(name.surname));
        let (fg, fs) = (fold_ascii(g), fold_ascii(s));
        let initial = fg.chars().next().unwrap_or('x');
        Other {
            full: self.other_names.full_name(&name),
            given: g,
            surname: s,
            sam: format!(
                "{initial}{fs}{}",
                self.other_sams
                    .suffix(pack(initial as usize, 0, name.surname))
            ),
            local: mail_local(&mut self.other_locals, &name, &fg, &fs),
        }
    }

    fn remember_recent(&mut self, dn: &Dn) {
        const RECENT: usize = 64;
        if self.recent.len() < RECENT {
            self.recent.push(dn.clone());
        } else {
            self.recent[self.recent_next] = dn.clone();
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
    }

    /// One unrelated destination object: none can be a candidate for any source person.
    fn filler<W: Write>(&mut self, dst: &mut LdifSink<W>) -> io::Result<()> {
        let roll = uniform(&mut self.rng, 100);
        let department = &DEPARTMENTS[self.department()];
        let e = match roll {
            // Plain Windows accounts.
            0..22 => {
                let o = self.other();
                let mut e = self.user_base(
                    self.bases.users.child("CN", &o.full),
                    &o.full,
                    o.given,
                    o.surname,
                    &o.sam,
                );
                put(&mut e, "department", department.name);
                e
            }
            // Mailboxes of people migrated long ago or never on Notes.
            22..56 => {
                let o = self.other();
                let mut e = self.user_base(
                    self.bases.users.child("CN", &o.full),
                    &o.full,
                    o.given,
                    o.surname,
                    &o.sam,
                );
                let mail = format!("{}@{MAIL_DOMAIN}", o.local);
                self.mailbox_attrs(&mut e, &mail, &o.sam);
                put(&mut e, "department", department.name);
                put(&mut e, "title", pick(&mut self.rng, department.titles));
                if chance(&mut self.rng, 50) {
                    put(
                        &mut e,
                        "proxyAddresses",
                        format!("smtp:{}@{MAIL_DOMAIN}", o.sam),
                    );
                }
                if chance(&mut self.rng, 30) {
                    put(
                        &mut e,
                        "proxyAddresses",
                        format!("NOTES:{}/{}/Acme@{NOTES_DOMAIN}", o.full, department.name),
                    );
                }
                e
            }
            // Contractors: mail users routing to their own company.
            56..60 => {
                let o = self.other();
                let (company, domain) = pick(&mut self.rng, &PARTNERS);
                let mut e = self.user_base(
                    self.bases.users.child("CN", &o.full),
                    &o.full,
                    o.given,
                    o.surname,
                    &o.sam,
                );
                let mail = format!("{}@{MAIL_DOMAIN}", o.local);
                let external = format!("{}@{domain}", o.local);
                put(&mut e, "msExchRecipientTypeDetails", "128");
                put(&mut e, "targetAddress", format!("SMTP:{external}"));
                put(&mut e, "mail", mail.as_str());
                put(&mut e, "mailNickname", o.sam.as_str());
                put(&mut e, "legacyExchangeDN", legacy_dn(&o.sam));
                put(&mut e, "proxyAddresses", format!("SMTP:{mail}"));
                put(&mut e, "proxyAddresses", format!("smtp:{external}"));
                put(&mut e, "company", company);
                e
            }
            // Partner contacts.
            60..86 => {
                let o = self.other();
                let (company, domain) = pick(&mut self.rng, &PARTNERS);
                let address = format!("{}@{domain}", o.local);
                let mut e = self.contact_base(
                    self.bases.contacts.child("CN", &o.full),
                    &o.full,
                    o.given,
                    o.surname,
                    &format!("ext-{}", o.local),
                );
                put(&mut e, "mail", address.as_str());
                put(&mut e, "targetAddress", format!("SMTP:{address}"));
                put(&mut e, "proxyAddresses", format!("SMTP:{address}"));
                put(&mut e, "company", company);
                if chance(&mut self.rng, 40) {
                    put(&mut e, "title", pick(&mut self.rng, department.titles));
                }
                if chance(&mut self.rng, 40) {
                    put(
                        &mut e,
                        "telephoneNumber",
                        format!("+44 20 7946 {:04}", uniform(&mut self.rng, 10_000)),
                    );
                }
                e
            }
            86..94 => self.filler_group(),
            // Service accounts.
            94..97 => {
                let word = pick(&mut self.rng, &SERVICES);
                let n = SERVICES.iter().position(|s| *s == word).unwrap_or(0);
                let sam = format!("svc-{word}{}", self.services.suffix(n as u64));
                let mut e = with_classes(self.bases.users.child("CN", &sam), USER);
                put(&mut e, "sAMAccountName", sam.as_str());
                put(&mut e, "userPrincipalName", format!("{sam}@{UPN_SUFFIX}"));
                put(&mut e, "userAccountControl", "66048");
                put(&mut e, "description", format!("Service account for {word}"));
                e
            }
            _ => {
                self.computers_made += 1;
                let (prefix, os) = match uniform(&mut self.rng, 10) {
                    0..7 => ("WS", "Windows 11 Enterprise"),
                    7..9 => ("LT", "Windows 11 Enterprise"),
                    _ => ("SRV", "Windows Server 2022 Standard"),
                };
                let host = format!("{prefix}{:04}", self.computers_made);
                let mut e = with_classes(
                    self.bases.computers.child("CN", &host),
                    &["top", "person", "organizationalPerson", "user", "computer"],
                );
                put(&mut e, "sAMAccountName", format!("{host}$"));
                put(
                    &mut e,
                    "dNSHostName",
                    format!("{}.{UPN_SUFFIX}", host.to_ascii_lowercase()),
                );
                put(&mut e, "operatingSystem", os);
                put(&mut e, "userAccountControl", "4096");
                e
            }
        };
        if !e.has_class("computer") {
            self.remember_recent(&e.dn);
        }
        dst.write(&e)
    }

    fn filler_group(&mut self) -> Entry {
        self.groups_made += 1;
        let kind = pick(&mut self.rng, &GROUP_KINDS);
        let topic = pick(&mut self.rng, &GROUP_TOPICS);
        let name = format!("{kind} {topic} {:03}", self.groups_made);
        let dn = self.bases.groups.child("CN", &name);
        let mut e = if chance(&mut self.rng, 50) {
            self.distribution_group(dn, &name, &slug(&name))
        } else {
            let mut e = with_classes(dn, GROUP);
            put(&mut e, "sAMAccountName", name.as_str());
            put(&mut e, "groupType", GROUP_GLOBAL_SECURITY);
            e
        };
        let members = uniform(&mut self.rng, 9).min(self.recent.len());
        for _ in 0..members {
            let m = self.recent[uniform(&mut self.rng, self.recent.len())].to_string();
            put(&mut e, "member", m);
        }
        e
    }
}

/// `john.smith`, `john.smith2`, or `john.a.smith` for a name with a middle initial: the initial
/// spares most people a number. Two-part and three-part local parts can never be equal, and the
/// parts themselves contain no dots.
fn mail_local(counter: &mut Counter, name: &Name, given: &str, surname: &str) -> String {
    let middle = name.middle.map_or(0, |m| usize::from(m) + 1);
    let suffix = counter.suffix(pack(name.given, middle, name.surname));
    match name.middle {
        Some(m) => format!("{given}.{}.{surname}{suffix}", char::from(b'a' + m)),
        None => format!("{given}.{surname}{suffix}"),
    }
}

/// `Notes Coexistence 001` → `notes-coexistence-001`.
fn slug(name: &str) -> String {
    name.to_ascii_lowercase().replace(' ', "-")
}

// ---------------------------------------------------------------------------------------------
// Name lists. Folded to ASCII, each list is duplicate-free and the source and filler surnames are
// disjoint (tested), which the uniqueness of short names and addresses relies on.
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const GIVEN_PLAIN: &[&str] = &[
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul",
    "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander", "Frank",
    "Patrick", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Henry", "Adam", "Douglas",
    "Nathan", "Peter", "Zachary", "Kyle", "Walter", "Harold", "Jeremy", "Ethan", "Carl", "Keith",
    "Roger", "Gerald", "Christian", "Terry", "Sean", "Arthur", "Austin", "Noah", "Lawrence",
    "Jesse", "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie",
    "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy", "Angela", "Shirley", "Anna",
    "Brenda", "Pamela", "Emma", "Nicole", "Helen", "Samantha", "Katherine", "Christine", "Debra",
    "Rachel", "Carolyn", "Janet", "Catherine", "Maria", "Heather", "Diane", "Ruth", "Julie",
    "Olivia", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren", "Christina", "Joan", "Evelyn",
    "Judith", "Megan", "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha", "Gloria", "Teresa",
    "Ann", "Madison", "Frances", "Kathryn", "Janice", "Jean", "Abigail", "Alice", "Judy", "Sophia",
    "Grace", "Denise", "Amber", "Doris", "Marilyn", "Danielle", "Beverly", "Isabella", "Theresa",
    "Diana", "Natalie", "Brittany", "Charlotte", "Marie", "Kayla", "Alexis", "Lori",
];

#[rustfmt::skip]
const GIVEN_ACCENTED: &[&str] = &[
    "Jürgen", "Zoë", "José", "Françoise", "François", "Søren", "Björn", "Renée", "Łukasz", "Agnès",
    "Óscar", "Inés", "Mónica", "Håkon", "Jérôme", "Céline", "Göran", "Zoltán", "Thérèse", "Ángel",
    "Bärbel", "Chloé", "Noël", "Raúl", "Sebastián", "Andrés", "Åsa", "Jiří", "Małgorzata", "Ramón",
];

/// (formal name in `GIVEN_PLAIN`, nickname).
#[rustfmt::skip]
const NICKNAMES: &[(&str, &str)] = &[
    ("Robert", "Bob"), ("William", "Bill"), ("Michael", "Mike"), ("James", "Jim"),
    ("Thomas", "Tom"), ("David", "Dave"), ("Christopher", "Chris"), ("Daniel", "Dan"),
    ("Matthew", "Matt"), ("Anthony", "Tony"), ("Steven", "Steve"), ("Andrew", "Andy"),
    ("Kenneth", "Ken"), ("Timothy", "Tim"), ("Ronald", "Ron"), ("Edward", "Ed"),
    ("Jeffrey", "Jeff"), ("Nicholas", "Nick"), ("Gregory", "Greg"), ("Alexander", "Alex"),
    ("Benjamin", "Ben"), ("Samuel", "Sam"), ("Joseph", "Joe"), ("Elizabeth", "Liz"),
    ("Katherine", "Kate"), ("Jennifer", "Jenny"), ("Susan", "Sue"), ("Margaret", "Maggie"),
    ("Rebecca", "Becky"), ("Patricia", "Patty"), ("Deborah", "Debbie"), ("Catherine", "Cathy"),
    ("Victoria", "Vicky"), ("Amanda", "Mandy"), ("Sandra", "Sandy"), ("Jessica", "Jess"),
    ("Abigail", "Abby"),
];

#[rustfmt::skip]
const SURNAMES_PLAIN: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Hill", "Green", "Adams", "Baker", "Nelson", "Carter", "Mitchell",
    "Roberts", "Turner", "Phillips", "Campbell", "Parker", "Evans", "Edwards", "Collins",
    "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Peterson", "Cooper", "Reed",
    "Bailey", "Bell", "Kelly", "Howard", "Ward", "Cox", "Richardson", "Wood", "Watson", "Brooks",
    "Bennett", "Gray", "James", "Hughes", "Price", "Sanders", "Myers", "Long", "Ross", "Foster",
    "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Fisher", "Henderson", "Coleman",
    "Simmons", "Patterson", "Jordan", "Reynolds", "Hamilton", "Graham", "Wallace", "Cole", "West",
    "Hayes", "Gibson", "Bryant", "Ellis", "Stevens", "Murray", "Ford", "Marshall", "Owens",
    "McDonald", "Harrison", "Kennedy", "Wells", "Alvarez", "Woods", "Mendoza", "Castillo", "Olson",
    "Webb", "Washington", "Tucker", "Freeman", "Burns", "Henry", "Vasquez", "Snyder", "Simpson",
    "Crawford", "Porter", "Mason", "Shaw", "Gordon", "Wagner", "Hunter", "Romero", "Hicks",
    "Dixon", "Hunt", "Palmer", "Robertson", "Black", "Holmes", "Stone", "Meyer", "Boyd", "Mills",
    "Warren", "Fox", "Rose", "Rice", "Moreno", "Schmidt", "Patel", "Ferguson", "Nichols",
    "Herrera", "Medina", "Ryan", "Fernandez", "Weaver", "Daniels", "Stephens", "Gardner", "Payne",
    "Kelley", "Dunn", "Pierce", "Arnold", "Tran", "Spencer", "Peters", "Hawkins", "Grant",
    "Hansen", "Castro", "Hoffman", "Hart", "Elliott", "Cunningham", "Knight", "Bradley", "Carroll",
    "Hudson", "Duncan", "Armstrong", "Berry", "Andrews", "Johnston", "Ray", "Lane", "Riley",
    "Carpenter", "Perkins", "Aguilar", "Silva", "Richards", "Willis", "Matthews", "Chapman",
    "Lawrence", "Garza", "Vargas", "Watkins", "Wheeler", "Larson", "Carlson", "Harper", "George",
    "Greene", "Burke", "Guzman", "Morrison", "Jacobs", "Lawson", "Franklin", "Lynch", "Bishop",
    "Carr", "Salazar", "Austin", "Mendez", "Gilbert", "Jensen", "Williamson", "Montgomery",
    "Harvey", "Oliver", "Howell", "Dean", "Hanson", "Weber", "Garrett", "Sims", "Burton", "Fuller",
    "Soto", "McCoy", "Welch", "Chen", "Schultz", "Walters", "Reid", "Fields", "Walsh", "Little",
    "Fowler", "Bowman", "Davidson", "May", "Day", "Schneider", "Newman", "Brewer", "Lucas",
    "Holland", "Wong", "Banks", "Santos", "Curtis", "Pearson", "Delgado", "Valdez", "Rios",
    "Douglas", "Sandoval", "Barrett", "Hopkins", "Keller", "Guerrero", "Stanley", "Bates",
    "Alvarado", "Beck", "Ortega", "Wade", "Estrada", "Contreras", "Barnett", "Caldwell",
    "Santiago", "Lambert", "Powers", "Chambers", "Craig", "Leonard", "Lowe", "Rhodes", "Byrd",
    "Gregory", "Shelton", "Frazier", "Becker", "Maldonado", "Fleming", "Vega", "Sutton", "Cohen",
    "Jennings", "Parks", "McDaniel", "Watts", "Barker", "Norris", "Vaughn", "Holt", "Schwartz",
    "Steele", "Benson", "Neal", "Dominguez", "Horton", "Terry", "Wolfe", "Hale", "Lyons", "Graves",
    "Haynes", "Miles", "Park", "Warner", "Padilla", "Bush", "Thornton", "McCarthy", "Mann",
    "Zimmerman", "Erickson", "Fletcher", "McKinney", "Page", "Dawson", "Joseph", "Marquez",
    "Reeves", "Klein", "Espinoza", "Baldwin", "Moran", "Love", "Robbins", "Higgins", "Ball",
    "Cortez", "Griffin", "Bowen", "Sharp", "Cummings", "Ramsey", "Hardy", "Swanson", "Barber",
    "Acosta", "Luna", "Chandler", "Blair", "Daniel", "Cross", "Simon", "Dennis",
];

#[rustfmt::skip]
const SURNAMES_ACCENTED: &[&str] = &[
    "Müller", "Ångström", "Núñez", "Çelik", "Dvořák", "Łukaszewski", "Hernández", "Gómez",
    "Öztürk", "Sørensen", "Brontë", "Lefèvre", "Schröder", "Jiménez", "Pérez", "Kovač", "Nowiński",
    "Ibáñez", "Søndergaard", "Björklund", "Östberg", "Weiß", "Åkesson", "Peña", "Muñoz",
];

#[rustfmt::skip]
const FILLER_SURNAMES_PLAIN: &[&str] = &[
    "Kowalczyk", "Wozniak", "Nakamura", "Okafor", "Lindqvist", "Haddad", "Petrov", "Castellano",
    "Yamamoto", "Tanaka", "Kobayashi", "Suzuki", "Watanabe", "Sato", "Nguyen", "Pham", "Hoang",
    "Kumar", "Sharma", "Singh", "Gupta", "Reddy", "Iyer", "Nair", "Mensah", "Adeyemi", "Okonkwo",
    "Balogun", "Kariuki", "Otieno", "Novak", "Horvat", "Kovacs", "Nagy", "Szabo", "Toth", "Varga",
    "Popescu", "Ionescu", "Dimitrov", "Ivanov", "Volkov", "Sokolov", "Kuznetsov", "Lebedev",
    "Morozov", "Petrenko", "Shevchenko", "Bondarenko", "Kaminski", "Lewandowski", "Zielinski",
    "Szymanski", "Wojcik", "Kaczmarek", "Mazur", "Krawczyk", "Andersson", "Johansson", "Karlsson",
    "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson", "Svensson", "Gustafsson", "Virtanen",
    "Korhonen", "Nieminen", "Makinen", "Laine", "Heikkinen", "Koskinen", "Lehtonen", "Rossi",
    "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Bruno", "Gallo", "Conti", "DeLuca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi",
    "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara",
    "Galli", "Martini", "Leone", "Longo", "Gentile", "Martinelli", "Vitale", "Lombardo", "Serra",
    "Coppola", "DeSantis", "Marchetti", "Parisi", "Villa", "Conte", "Ferraro", "Fabbri", "Bianco",
    "Marini", "Grasso", "Valentini", "Messina", "Gatti", "Pellegrini", "Palumbo", "Sanna",
    "Farina", "Monti", "Cattaneo", "Morelli", "Amato", "Silvestri", "Mazza", "Testa", "Carbone",
    "Giuliani", "Benedetti", "Barone", "Caputo", "Montanari", "Guerra", "Palmieri", "Bernardi",
    "Fiore", "Bellini", "Basile", "Donati", "Piras", "Battaglia", "Sartori", "Neri",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Reads generated LDIF back through the project's reader, as (DN, [(attr, value)]).
    fn parse_ldif(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        ldif::parse_entries(text, None)
            .unwrap()
            .into_iter()
            .map(|e| {
                let attrs = e
                    .attrs
                    .iter()
                    .flat_map(|(a, vs)| {
                        vs.iter()
                            .map(move |v| (a.to_string(), v.as_str().unwrap().to_string()))
                    })
                    .collect();
                (e.dn.to_string(), attrs)
            })
            .collect()
    }

    fn values<'a>(attrs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        attrs
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn run(persons: usize, destination_objects: usize, seed: u64) -> (Vec<u8>, Vec<u8>, Summary) {
        let (mut s, mut d) = (Vec::new(), Vec::new());
        let opts = GenerateOptions {
            persons,
            destination_objects,
            seed,
        };
        let summary = generate(&opts, &mut s, &mut d).unwrap();
        (s, d, summary)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = run(300, 900, 7);
        let b = run(300, 900, 7);
        assert!(a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
        let c = run(300, 900, 8);
        assert_ne!(a.0, c.0);
        assert_ne!(a.1, c.1);
    }

    #[test]
    fn generates_every_scenario_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/out");
        let opts = GenerateOptions {
            persons: 2000,
            destination_objects: 7000,
            seed: 42,
        };
        let summary = generate_into(&out, &opts).unwrap();

        // Only the three files, no temporary leftovers.
        let mut names: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [DESTINATION_FILE, PLAN_FILE, SOURCE_FILE]);

        assert_eq!(summary.intended.len(), CASES.len());
        assert_eq!(summary.intended.values().sum::<usize>(), 2000);
        for (case, share) in CASES {
            assert_eq!(summary.intended[case], share * 20, "{case}");
        }

        let source = parse_ldif(&fs::read_to_string(out.join(SOURCE_FILE)).unwrap());
        let destination = parse_ldif(&fs::read_to_string(out.join(DESTINATION_FILE)).unwrap());
        assert_eq!(source.len(), summary.source_entries);
        assert_eq!(destination.len(), 7000);
        assert_eq!(summary.destination_entries, 7000);

        // DNs parse and are unique in each file.
        for records in [&source, &destination] {
            let mut seen = HashSet::new();
            for (dn, _) in records.iter() {
                let parsed = Dn::parse(dn).unwrap();
                assert!(seen.insert(parsed), "duplicate DN {dn}");
            }
        }

        // Every mailbox has exactly one primary SMTP address.
        let mut mailboxes = 0;
        for (dn, attrs) in &destination {
            if !values(attrs, "homeMDB").is_empty() {
                mailboxes += 1;
                let primaries = values(attrs, "proxyAddresses")
                    .into_iter()
                    .filter(|p| p.starts_with("SMTP:"))
                    .count();
                assert_eq!(primaries, 1, "{dn}");
            }
        }
        assert!(mailboxes > summary.intended["mailbox"]);

        // The plan names every confirmed pair, and each pair is a source person and an NT
        // account with the person's short name.
        let plan: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(out.join(PLAN_FILE)).unwrap()).unwrap();
        let pins: Vec<(Dn, Dn)> = plan["matching"]["confirmed"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    Dn::parse(p["source"].as_str().unwrap()).unwrap(),
                    Dn::parse(p["destination"].as_str().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(pins, summary.confirmed);
        assert_eq!(
            pins.len(),
            summary.intended["nt_confirmed"] + summary.intended["nt_contact"]
        );
        let by_dn =
            |records: &[(String, Vec<(String, String)>)]| -> HashMap<Dn, Vec<(String, String)>> {
                records
                    .iter()
                    .map(|(dn, a)| (Dn::parse(dn).unwrap(), a.clone()))
                    .collect()
            };
        let (src, dst) = (by_dn(&source), by_dn(&destination));
        for (s, d) in &pins {
            let uid = values(&src[s], "uid");
            assert_eq!(values(&dst[d], "sAMAccountName"), uid);
            assert!(values(&dst[d], "mail").is_empty());
        }
        assert_eq!(
            plan["destination"]["container"],
            "OU=Migrated,DC=acme,DC=test"
        );
        assert_eq!(
            plan["destination"]["mailbox_database"],
            "CN=DB01,CN=Databases,CN=Exchange Administrative Group (FYDIBOHF23SPDLT),\
             CN=Administrative Groups,CN=Acme,CN=Microsoft Exchange,CN=Services,\
             CN=Configuration,DC=acme,DC=test"
        );
        // The preconditions the plan names exist.
        for dn in [
            "OU=Migrated,DC=acme,DC=test",
            plan["destination"]["mailbox_database"].as_str().unwrap(),
            "CN=acme.com,CN=Accepted Domains,CN=Transport Settings,CN=Acme,\
             CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=acme,DC=test",
        ] {
            assert!(dst.contains_key(&Dn::parse(dn).unwrap()), "{dn}");
        }

        check_scenarios(&source, &destination, &summary);
    }

    /// Counts, over all persons, what a matcher following the design would find, and compares it
    /// with the intended cases. This is what keeps one person's objects from leaking into
    /// another person's match.
    fn check_scenarios(
        source: &[(String, Vec<(String, String)>)],
        destination: &[(String, Vec<(String, String)>)],
        summary: &Summary,
    ) {
        let is = |attrs: &[(String, String)], class: &str| {
            values(attrs, "objectClass")
                .iter()
                .any(|c| c.eq_ignore_ascii_case(class))
        };
        // address key → (users holding it, contacts holding it)
        let mut by_address: HashMap<String, (usize, usize)> = HashMap::new();
        let mut user_sams: HashMap<String, usize> = HashMap::new();
        let mut group_sams: HashSet<String> = HashSet::new();
        let mut user_cns: HashMap<String, usize> = HashMap::new();
        let mut dns: HashMap<Dn, bool> = HashMap::new(); // DN → is a contact
        for (dn, attrs) in destination {
            let user = is(attrs, "user") && !is(attrs, "computer");
            let contact = is(attrs, "contact");
            dns.insert(Dn::parse(dn).unwrap(), contact);
            for p in values(attrs, "proxyAddresses") {
                let key = p.to_lowercase();
                let slot = by_address.entry(key).or_default();
                if user {
                    slot.0 += 1;
                }
                if contact {
                    slot.1 += 1;
                }
            }
            for sam in values(attrs, "sAMAccountName") {
                if user {
                    *user_sams.entry(sam.to_lowercase()).or_default() += 1;
                } else if is(attrs, "group") {
                    group_sams.insert(sam.to_lowercase());
                }
            }
            if user {
                for cn in values(attrs, "cn") {
                    *user_cns.entry(cn.to_lowercase()).or_default() += 1;
                }
            }
        }
        let mut seen = BTreeMap::<&str, usize>::new();
        let migrated = Dn::parse("OU=Migrated,DC=acme,DC=test").unwrap();
        for (dn, attrs) in source {
            if !is(attrs, "dominoPerson") {
                continue;
            }
            let dn = Dn::parse(dn).unwrap();
            let smtp = format!("smtp:{}", values(attrs, "mail")[0].to_lowercase());
            let notes = format!("notes:{}@acme", dn.abbreviated().to_lowercase());
            let (su, sc) = by_address.get(&smtp).copied().unwrap_or_default();
            let (nu, nc) = by_address.get(&notes).copied().unwrap_or_default();
            let uid = values(attrs, "uid")[0].to_lowercase();
            let sam_users = user_sams.get(&uid).copied().unwrap_or(0);
            let cn_users: usize = values(attrs, "cn")
                .iter()
                .map(|c| user_cns.get(&c.to_lowercase()).copied().unwrap_or(0))
                .sum();
            let own_dn = migrated.child("CN", dn.rdn().unwrap().first_value());
            let case = match (su.max(nu), sc + nc, sam_users, cn_users) {
                (2, 0, ..) => "ambiguous",
                (1, 0, ..) => "hard",
                (0, c, 1, 1) if c > 0 => "nt+contact",
                (0, c, 0, 0) if c > 0 && su + sc > 0 => "contact",
                (0, c, 0, 0) if c > 0 => "contact_notes",
                (0, 0, 1, 1) => "nt",
                (0, 0, 0, 1) => "cn_soft",
                (0, 0, 0, 0) if group_sams.contains(&uid) && dns.get(&own_dn) == Some(&true) => {
                    "collision"
                }
                (0, 0, 0, 0) if !group_sams.contains(&uid) && !dns.contains_key(&own_dn) => "new",
                other => panic!("{dn}: unexpected destination state {other:?}"),
            };
            *seen.entry(case).or_default() += 1;
        }
        let i = &summary.intended;
        assert_eq!(seen.get("ambiguous").copied().unwrap_or(0), i["ambiguous"]);
        assert_eq!(seen["hard"], i["mailbox"] + i["mail_user"]);
        assert_eq!(seen["nt+contact"], i["nt_contact"]);
        assert_eq!(seen["contact"], i["contact"]);
        assert_eq!(seen["contact_notes"], i["contact_notes"]);
        assert_eq!(seen["nt"], i["nt_soft"] + i["nt_confirmed"]);
        assert_eq!(seen["cn_soft"], i["cn_soft"]);
        assert_eq!(seen["collision"], i["collision"]);
        assert_eq!(seen["new"], i["new"]);
    }

    #[test]
    fn small_destination_holds_only_what_persons_need() {
        let (_, d, summary) = run(200, 0, 3);
        let records = parse_ldif(std::str::from_utf8(&d).unwrap());
        assert_eq!(records.len(), summary.destination_entries);
        // 17 infrastructure entries plus the persons' own objects, no fillers: every user,
        // contact and group below is tied to a source person or its coexistence group.
        assert!(records.len() > 17);
        assert!(
            records
                .iter()
                .all(|(dn, _)| !dn.contains("svc-") && !dn.contains(",CN=Computers,"))
        );
        let (_, _, more) = run(200, 10, 3);
        assert_eq!(more.destination_entries, summary.destination_entries);
    }

    #[test]
    fn no_persons_still_gives_readable_files() {
        let (s, d, summary) = run(0, 0, 1);
        assert_eq!(summary.intended.values().sum::<usize>(), 0);
        assert!(summary.confirmed.is_empty());
        assert_eq!(
            parse_ldif(std::str::from_utf8(&s).unwrap()).len(),
            summary.source_entries
        );
        assert_eq!(parse_ldif(std::str::from_utf8(&d).unwrap()).len(), 17);
        let mut plan = Vec::new();
        write_plan_yaml(&mut plan, SOURCE_FILE, DESTINATION_FILE, &[]).unwrap();
        let text = String::from_utf8(plan).unwrap();
        assert!(text.contains("  confirmed: []\n"));
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["source"]["directory"]["ldif"], "source.ldif");
    }

    #[test]
    fn plan_yaml_quotes_dns() {
        let tricky = Dn::parse(r#"CN=O\"Neil\, Back\\slash #1: x,OU=Zürich,O=Acme"#).unwrap();
        let target = Dn::parse("CN=Ösel,CN=Users,DC=acme,DC=test").unwrap();
        let mut out = Vec::new();
        write_plan_yaml(
            &mut out,
            "data/source 1.ldif",
            "true",
            &[(tricky.clone(), target.clone())],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let pin = &v["matching"]["confirmed"][0];
        assert_eq!(Dn::parse(pin["source"].as_str().unwrap()).unwrap(), tricky);
        assert_eq!(pin["source"].as_str().unwrap(), tricky.to_string());
        assert_eq!(pin["destination"].as_str().unwrap(), target.to_string());
        assert_eq!(v["source"]["directory"]["ldif"], "data/source 1.ldif");
        assert_eq!(v["destination"]["directory"]["ldif"], "true");
        assert_eq!(
            v["distribution_lists"]["filter"],
            "(objectClass=dominoGroup)"
        );
        assert_eq!(v["destination"]["domains"][0], "acme.com");
        assert_eq!(yaml_quoted("a\u{1}b"), "\"a\\u0001b\"");
    }

    #[test]
    fn name_lists_keep_short_names_and_addresses_apart() {
        fn folded(list: &NameList) -> Vec<String> {
            (0..list.len()).map(|i| fold_ascii(list.get(i))).collect()
        }
        for list in [&GIVEN, &SURNAMES, &FILLER_SURNAMES] {
            let f = folded(list);
            assert!(
                f.iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase())),
                "{f:?}"
            );
            let unique: HashSet<&String> = f.iter().collect();
            assert_eq!(unique.len(), f.len(), "a name folds onto another");
            assert!(list.len() < 1 << 20);
        }
        let source: HashSet<String> = folded(&SURNAMES).into_iter().collect();
        for s in folded(&FILLER_SURNAMES) {
            assert!(
                !source.contains(&s),
                "{s} is both a source and a filler surname"
            );
        }
        for (formal, _) in NICKNAMES {
            assert!(GIVEN_PLAIN.contains(formal), "{formal}");
        }
        assert!(GIVEN_ACCENTED.iter().all(|g| !g.is_ascii()));
        assert!(SURNAMES_ACCENTED.iter().all(|s| !s.is_ascii()));
        assert_eq!(fold_ascii("Jürgen Weiß-Łukasz"), "jurgenweisslukasz");
        assert_eq!(roman(4), "IV");
        assert_eq!(CASES.iter().map(|c| c.1).sum::<usize>(), 100);
    }

    #[test]
    fn names_stay_unique_when_the_table_runs_full() {
        // A tiny name space forces the generational fallback.
        let mut table = NameTable::new(&SURNAMES);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let n = table.draw(&mut rng, 0..1, 0..1);
            assert!(seen.insert(table.full_name(&n).to_lowercase()));
        }
        assert!(seen.contains("james smith ii"));
    }
}
