//! Maildir++ stores: the inbox in `cur/`, `new/`, `tmp/` at the top; folder `A/B` in `.A.B/`
//! (each level in modified UTF-7, as Dovecot names them, so a store Dovecot serves reads the
//! same here). Flags are the `:2,` info suffix (`S` seen, `R` answered, `F` flagged, `D` draft,
//! `T` deleted, `P` forwarded), the internal date is the file's mtime. Subscriptions are
//! Dovecot's `subscriptions` file in the root: `V<TAB>2`, an empty line, then one folder a line
//! with its levels (modified UTF-7) separated by tabs; older files without that header hold one
//! Maildir++ name (levels separated by `.`) a line. It is read as either and written in the form
//! found, under Dovecot's `subscriptions.lock`.
//!
//! Writes go to `tmp/` first, are synced, then renamed into `cur/`: a message is either whole in
//! its folder or absent, whatever happens to the process. Listing reads headers only. Every path
//! is made from a checked logical name ([`check_name`]) and must come out as one directory
//! directly under the root, so no folder name or message key reaches outside the mailbox.

use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    ANSWERED, DELETED, DRAFT, FLAGGED, FORWARDED, FolderListing, MailError, MessageMeta, SEEN,
};
use crate::items::BadItem;
use crate::items::folders::{check_name, join_levels};
use crate::items::identity::{crlf_size, header_end, identity, parse_headers};
use crate::items::mutf7;

/// Maildir info-suffix letters and the IMAP flags they stand for, in the letter order the
/// Maildir specification asks for (ASCII).
const FLAG_LETTERS: [(char, &str); 6] = [
    ('D', DRAFT),
    ('F', FLAGGED),
    ('P', FORWARDED),
    ('R', ANSWERED),
    ('S', SEEN),
    ('T', DELETED),
];

/// Headers larger than this are cut for identity purposes (a header block is rarely over a few KiB).
const MAX_HEADER: usize = 256 * 1024;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The last time (microseconds since 1970) a written message was named after.
static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// A time to name the next written message after: now, or just after the last one if the clock
/// has not moved on (or went back), so that messages written one after the other sort in that
/// order by name, and so by Dovecot's UIDs, which it gives new files in their names' time order.
fn next_micros() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST_MICROS.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST_MICROS.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

pub struct Maildir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MailError + '_ {
    move |source| MailError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Maildir {
    pub fn new(root: PathBuf) -> Self {
        Maildir { root }
    }

    /// The directory of a logical folder: `.` and its levels in modified UTF-7 joined by `.`,
    /// directly under the root. A name that is not safe to store ([`check_name`], with `.` as the
    /// separator) or would not give exactly one directory name there is refused.
    pub fn folder_dir(&self, folder: &str) -> Result<PathBuf, MailError> {
        if folder.eq_ignore_ascii_case("INBOX") {
            return Ok(self.root.clone());
        }
        let unsafe_name = |why: String| MailError::UnsafeFolder {
            folder: folder.to_string(),
            why,
        };
        check_name(folder, Some('.')).map_err(unsafe_name)?;
        let levels: Vec<String> = folder.split('/').map(mutf7::encode).collect();
        let name = format!(".{}", levels.join("."));
        let mut parts = Path::new(&name).components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(n)), None) if n == name.as_str() => {
                Ok(self.root.join(name))
            }
            _ => Err(unsafe_name(format!(
                "`{name}` is not one folder directly in the mailbox"
            ))),
        }
    }

    /// Every folder (the inbox first, then the others by name) with its messages. A store that
    /// does not exist yet lists as empty.
    pub fn list(&self) -> Result<Vec<FolderListing>, MailError> {
        let mut out = Vec::new();
        if !self.root.is_dir() {
            return Ok(out);
        }
        out.push(self.list_folder("INBOX", &self.root)?);
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(encoded) = name.strip_prefix('.') else {
                continue;
            };
            if encoded.is_empty() || encoded == "." || !entry.path().join("cur").is_dir() {
                continue;
            }
            let logical = encoded
                .split('.')
                .map(|l| mutf7::decode(l).ok_or("it is not valid modified UTF-7".to_string()))
                .collect::<Result<Vec<String>, String>>()
                .and_then(|levels| join_levels(&levels));
            match logical {
                Ok(logical) => names.push((logical, entry.path())),
                Err(why) => {
                    let mut listing = self.list_folder(&name, &entry.path())?;
                    let what = super::its_messages(listing.messages.len() as u64);
                    listing.messages.clear();
                    listing.skipped = true;
                    listing.bad.push(BadItem {
                        location: entry.path().display().to_string(),
                        message: format!(
                            "the folder name cannot be read: {why}; {what} not copied and the \
                             folder is not created"
                        ),
                    });
                    out.push(listing);
                }
            }
        }
        names.sort();
        for (name, dir) in names {
            out.push(self.list_folder(&name, &dir)?);
        }
        let subscribed = self.subscriptions()?;
        for f in &mut out {
            f.subscribed = !f.skipped && subscribed.contains(&f.name);
        }
        Ok(out)
    }

    fn subscriptions_file(&self) -> PathBuf {
        self.root.join("subscriptions")
    }

    /// The logical names of the subscribed folders (names that cannot be read are left out:
    /// a subscription is only a mark on a folder).
    pub fn subscriptions(&self) -> Result<std::collections::BTreeSet<String>, MailError> {
        let path = self.subscriptions_file();
        let text = match fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io(&path)(e)),
        };
        let (names, separator) = subscription_names(&text);
        Ok(names
            .iter()
            .filter_map(|n| logical_subscription(n, separator))
            .collect())
    }

    /// Adds a folder to the subscriptions (a store that has none yet gets Dovecot's current
    /// format); nothing when it is there already.
    pub fn subscribe(&self, folder: &str) -> Result<(), MailError> {
        let levels: Vec<String> = if folder.eq_ignore_ascii_case("INBOX") {
            vec!["INBOX".into()]
        } else {
            self.folder_dir(folder)?;
            folder.split('/').map(mutf7::encode).collect()
        };
        self.ensure_folder("INBOX")?;
        let path = self.subscriptions_file();
        let _lock = DotLock::take(&self.root.join("subscriptions.lock"))?;
        let text = match fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "V\t2\n\n".to_string(),
            Err(e) => return Err(io(&path)(e)),
        };
        let (names, separator) = subscription_names(&text);
        let line = levels.join(&separator.to_string());
        if names.iter().any(|n| *n == line) {
            return Ok(());
        }
        let mut out = text;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
        let tmp = self
            .root
            .join(format!("subscriptions.{}.mailplan-tmp", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(out.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io(&path))
    }

    fn list_folder(&self, name: &str, dir: &Path) -> Result<FolderListing, MailError> {
        let mut listing = FolderListing {
            name: name.to_string(),
            ..Default::default()
        };
        for sub in ["cur", "new"] {
            let d = dir.join(sub);
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&d)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io(&d))?;
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.starts_with('.') {
                    continue;
                }
                let path = entry.path();
                match read_meta(&path, &format!("{sub}/{file}"), &file) {
                    Ok(Some(m)) => listing.messages.push(m),
                    // Renamed or removed by a mail client while listing: not there any more.
                    Ok(None) => {}
                    Err(e) => listing.bad.push(BadItem {
                        location: path.display().to_string(),
                        message: format!("cannot read the message: {e}"),
                    }),
                }
            }
        }
        listing.messages.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listing)
    }

    pub fn fetch(&self, folder: &str, m: &MessageMeta) -> Result<Vec<u8>, MailError> {
        // Keys come from listing (`cur/<file>` or `new/<file>`); anything else is refused.
        let (sub, file) = match m.key.split_once('/') {
            Some((sub @ ("cur" | "new"), file))
                if !file.is_empty() && !file.contains('/') && file != "." && file != ".." =>
            {
                (sub, file)
            }
            _ => {
                return Err(MailError::Rejected {
                    what: format!("{folder}/{}", m.key),
                    message: "not a message key of this store".into(),
                });
            }
        };
        let path = self.folder_dir(folder)?.join(sub).join(file);
        fs::read(&path).map_err(io(&path))
    }

    /// Creates a folder's `cur/`, `new/`, `tmp/` (and the inbox's, for a new store).
    pub fn ensure_folder(&self, folder: &str) -> Result<(), MailError> {
        for dir in [self.root.clone(), self.folder_dir(folder)?] {
            for sub in ["cur", "new", "tmp"] {
                let d = dir.join(sub);
                fs::create_dir_all(&d).map_err(io(&d))?;
            }
            if dir != self.root {
                // Maildir++ marks subfolders so delivery agents know them.
                let marker = dir.join("maildirfolder");
                if !marker.exists() {
                    File::create(&marker).map_err(io(&marker))?;
                }
            }
        }
        Ok(())
    }

    /// Writes one message into `cur/` with its flags and internal date: tmp, fsync, rename.
    pub fn append(&self, folder: &str, m: &MessageMeta, data: &[u8]) -> Result<(), MailError> {
        let dir = self.folder_dir(folder)?;
        let micros = next_micros();
        let unique = format!(
            "{}.M{:06}P{}Q{}.mailplan",
            micros / 1_000_000,
            micros % 1_000_000,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join("tmp").join(&unique);
        let letters: String = FLAG_LETTERS
            .iter()
            .filter(|(_, f)| m.flags.iter().any(|x| x.eq_ignore_ascii_case(f)))
            .map(|(c, _)| *c)
            .collect();
        let target = dir
            .join("cur")
            .join(format!("{unique},S={}:2,{letters}", data.len()));
        let result = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            let when =
                UNIX_EPOCH + Duration::from_secs(u64::try_from(m.internal_date).unwrap_or(0));
            f.set_times(FileTimes::new().set_modified(when).set_accessed(when))?;
            f.sync_all()?;
            fs::rename(&tmp, &target)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io(&target))
    }
}

/// The names in a subscriptions file and what separates their levels: a tab after Dovecot's
/// `V<TAB>2` header (which ends at the first empty line), else `.`.
fn subscription_names(text: &str) -> (Vec<&str>, char) {
    let mut lines = text.lines();
    if text.starts_with("V\t") {
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
        }
        (lines.filter(|l| !l.is_empty()).collect(), '\t')
    } else {
        (lines.filter(|l| !l.is_empty()).collect(), '.')
    }
}

/// The logical name of one subscription line, if it has one.
fn logical_subscription(line: &str, separator: char) -> Option<String> {
    if line.eq_ignore_ascii_case("INBOX") {
        return Some("INBOX".into());
    }
    let levels: Option<Vec<String>> = line.split(separator).map(mutf7::decode).collect();
    let name = join_levels(&levels?).ok()?;
    check_name(&name, None).ok()?;
    Some(name)
}

/// A lock file held while it exists, as Dovecot's dotlocks are; removed when dropped.
struct DotLock(PathBuf);

/// A lock file older than this was left by a process that died holding it (Dovecot's own
/// default for its subscriptions lock).
const STALE_LOCK: Duration = Duration::from_secs(120);

impl DotLock {
    /// Takes the lock, waiting up to ten seconds for whoever holds it; a stale lock is broken.
    fn take(path: &Path) -> Result<DotLock, MailError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let created = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path);
            match created {
                Ok(_) => return Ok(DotLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = fs::remove_file(path);
                    } else if std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    } else {
                        return Err(MailError::Rejected {
                            what: path.display().to_string(),
                            message: "another process holds this lock".into(),
                        });
                    }
                }
                Err(e) => return Err(io(path)(e)),
            }
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Reads one message file's metadata; `Ok(None)` when it vanished meanwhile.
fn read_meta(path: &Path, key: &str, file: &str) -> std::io::Result<Option<MessageMeta>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let mut head = Vec::with_capacity(8192);
    let mut buf = [0u8; 8192];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if header_end(&head).is_some() || head.len() >= MAX_HEADER {
            break;
        }
    }
    let headers = parse_headers(&head);
    // The CRLF size (what IMAP reports) only matters for the hash identity, and reading the
    // whole body is only needed then; Dovecot records it in the name as `W=`.
    let size = match vsize_from_name(file) {
        Some(w) => w,
        None if headers.message_id.is_some() => len,
        None => {
            let mut all = head;
            f.read_to_end(&mut all)?;
            crlf_size(&all)
        }
    };
    let flags = match file.rsplit_once(":2,") {
        Some((_, letters)) => FLAG_LETTERS
            .iter()
            .filter(|(c, _)| letters.contains(*c))
            .map(|(_, f)| f.to_string())
            .collect(),
        None => Vec::new(),
    };
    Ok(Some(MessageMeta {
        key: key.to_string(),
        identity: identity(&headers, size),
        size,
        flags: sorted(flags),
        internal_date: mtime,
    }))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Dovecot's `,W=<size with CRLF>` in a Maildir file name.
fn vsize_from_name(file: &str) -> Option<u64> {
    let base = file.split(":2,").next()?;
    base.split(',')
        .find_map(|p| p.strip_prefix("W="))
        .and_then(|w| w.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lists_and_keeps_flags_and_dates() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path().join("box"));
        assert!(md.list().unwrap().is_empty());
        md.ensure_folder("Projects/Überblick").unwrap();
        let meta = MessageMeta {
            key: String::new(),
            identity: String::new(),
            size: 0,
            flags: vec![SEEN.into(), FLAGGED.into()],
            internal_date: 1_600_000_000,
        };
        md.append(
            "Projects/Überblick",
            &meta,
            b"Message-ID: <a@b>\nSubject: x\n\nhi\n",
        )
        .unwrap();
        assert!(dir.path().join("box/.Projects.&ANw-berblick/cur").is_dir());
        let listing = md.list().unwrap();
        assert_eq!(listing.len(), 2);
        assert_eq!(listing[1].name, "Projects/Überblick");
        let m = &listing[1].messages[0];
        assert_eq!(crate::items::identity::base(&m.identity), "mid:a@b");
        assert_eq!(m.flags, vec![FLAGGED.to_string(), SEEN.to_string()]);
        assert_eq!(m.internal_date, 1_600_000_000);
        assert_eq!(md.fetch("Projects/Überblick", m).unwrap().len(), 33);
    }

    #[test]
    fn subscriptions_read_both_forms_and_write_dovecots() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path().join("box"));
        md.ensure_folder("Projects/Überblick").unwrap();
        md.subscribe("Projects/Überblick").unwrap();
        md.subscribe("INBOX").unwrap();
        md.subscribe("INBOX").unwrap();
        let file = dir.path().join("box/subscriptions");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "V\t2\n\nProjects\t&ANw-berblick\nINBOX\n"
        );
        assert_eq!(
            md.subscriptions().unwrap(),
            ["INBOX", "Projects/Überblick"].map(String::from).into()
        );
        // The older form: Maildir++ names; kept in that form when added to.
        fs::write(&file, "Projects.&ANw-berblick\n").unwrap();
        assert_eq!(
            md.subscriptions().unwrap(),
            ["Projects/Überblick".to_string()].into()
        );
        md.subscribe("INBOX").unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "Projects.&ANw-berblick\nINBOX\n"
        );
        // A lock left behind long ago is broken.
        let lock = dir.path().join("box/subscriptions.lock");
        let old = File::create(&lock).unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(600))
            .unwrap();
        drop(old);
        fs::write(&file, "V\t2\n\n").unwrap();
        md.subscribe("Projects/Überblick").unwrap();
        assert!(!lock.exists());
        assert_eq!(
            md.subscriptions().unwrap(),
            ["Projects/Überblick".to_string()].into()
        );
        assert!(md.subscribe("x/../y").is_err());
    }

    #[test]
    fn nothing_resolves_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::new(dir.path().join("box"));
        for hostile in ["/", ".", "..", "a/..", "a.b", "x/./y", "", "a\0"] {
            assert!(
                matches!(md.folder_dir(hostile), Err(MailError::UnsafeFolder { .. })),
                "{hostile:?}"
            );
            assert!(md.ensure_folder(hostile).is_err(), "{hostile:?}");
        }
        assert_eq!(
            md.folder_dir("a/b").unwrap(),
            dir.path().join("box").join(".a.b")
        );
        let escape = MessageMeta {
            key: "cur/../../x".into(),
            identity: String::new(),
            size: 0,
            flags: Vec::new(),
            internal_date: 0,
        };
        assert!(md.fetch("INBOX", &escape).is_err());
        assert!(!dir.path().join("box").exists() || md.list().unwrap().len() <= 1);
    }
}
