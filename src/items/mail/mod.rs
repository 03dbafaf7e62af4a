//! Mail: message listings, the pure choice of what to copy, and the stores (Maildir, IMAP).
//!
//! A store is listed into `FolderListing`s (logical folder names, subscriptions, message
//! identities, sizes, flags, internal dates; never bodies), `new_messages` decides from the
//! source listing, the ledger and the destination listing what is new (messages, and the folders
//! and subscriptions the destination lacks), and the store copies those. Deciding is pure and
//! shared by `plan` (to count) and `apply` (to copy), so the plan's count is what apply copies
//! when nothing changed in between.

pub mod imap;
pub mod maildir;

use std::collections::{BTreeMap, BTreeSet};

use crate::items::BadItem;
use crate::items::endpoints::MailAt;
use crate::items::folders::{check_name, map_folder};
use crate::items::identity::base;
use crate::spec::FolderMapping;

/// IMAP system flags, the common vocabulary of both stores.
pub const SEEN: &str = "\\Seen";
pub const ANSWERED: &str = "\\Answered";
pub const FLAGGED: &str = "\\Flagged";
pub const DELETED: &str = "\\Deleted";
pub const DRAFT: &str = "\\Draft";
pub const FORWARDED: &str = "$Forwarded";

/// One message, as listed (headers only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// The store's handle: a Maildir file name under the folder (`cur/…`), or an IMAP UID.
    pub key: String,
    pub identity: String,
    /// Size with CRLF line ends where known (IMAP RFC822.SIZE), else the stored size.
    pub size: u64,
    /// IMAP flag names (`\Seen`, `$Forwarded`, keywords), sorted.
    pub flags: Vec<String>,
    /// Seconds since 1970 (UTC).
    pub internal_date: i64,
}

/// One folder of a store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderListing {
    /// Logical name: levels separated by `/`; the inbox is `INBOX`. For a `skipped` folder, the
    /// name as the store has it.
    pub name: String,
    pub messages: Vec<MessageMeta>,
    pub bad: Vec<BadItem>,
    /// The store's name for this folder has no logical form (it is not valid modified UTF-7, or
    /// a level holds `/`): `bad` says where and why, nothing in it is copied.
    pub skipped: bool,
    /// The folder is subscribed (IMAP LSUB; Dovecot's `subscriptions` file in a Maildir).
    pub subscribed: bool,
}

/// What the destination holds, as `new_messages` needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destination {
    /// Message identities per logical folder (every folder, also the empty ones).
    pub folders: BTreeMap<String, BTreeSet<String>>,
    /// What separates levels in the destination's own names (Maildir++ `.`, the IMAP server's
    /// delimiter); `None` when the destination could not be opened.
    pub delimiter: Option<char>,
    /// The subscribed folders.
    pub subscribed: BTreeSet<String>,
}

/// What the ledger says was done in one destination mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    /// Messages copied ([`ledger_identity`]), the ledger's kind `mail`.
    pub messages: BTreeSet<String>,
    /// Folders made and subscriptions added ([`folder_made`], [`folder_subscribed`]), the
    /// ledger's kind [`FOLDER_KIND`].
    pub folders: BTreeSet<String>,
}

/// The ledger's kind for folders made and subscribed at a destination.
pub const FOLDER_KIND: &str = "mail-folder";

/// The ledger's identity for a folder mailplan made at the destination.
pub fn folder_made(folder: &str) -> String {
    folder.to_string()
}

/// The ledger's identity for a subscription mailplan added at the destination.
pub fn folder_subscribed(folder: &str) -> String {
    format!("{folder}\tsubscribed")
}

/// A message chosen for copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToCopy {
    pub source_folder: String,
    pub folder: String,
    pub message: MessageMeta,
}

/// What `new_messages` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub copy: Vec<ToCopy>,
    /// Messages at the source after excludes and `since`.
    pub total: u64,
    /// Per source folder, messages left out as the same message again (same identity, same
    /// destination folder as one before them): each is copied once.
    pub folded: BTreeMap<String, u64>,
    /// In the ledger but gone from the destination: deleted there by their owner, not copied.
    pub deleted_at_destination: u64,
    pub bad: Vec<BadItem>,
    /// Destination folders to create, in source order: every mapped source folder the
    /// destination lacks (also an empty one, or one whose messages are all older than `since`),
    /// except one that mailplan made or filled before and its owner deleted since.
    pub create: Vec<String>,
    /// Destination folders to subscribe, in source order: subscribed at the source, not at the
    /// destination, and not unsubscribed there by its owner after mailplan subscribed it.
    pub subscribe: Vec<String>,
    /// Folders mailplan made or filled before that are gone from the destination and get no
    /// new message: deleted there by their owner, not made again.
    pub folders_deleted_at_destination: u64,
    /// Subscriptions mailplan added that the owner removed since: not added again.
    pub unsubscribed_at_destination: u64,
}

impl Selection {
    pub fn bytes(&self) -> u64 {
        self.copy.iter().map(|c| c.message.size).sum()
    }
    pub fn folders(&self) -> u64 {
        self.copy
            .iter()
            .map(|c| c.folder.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64
    }
}

/// The ledger's identity column for a message: the destination folder and the message identity
/// (a Message-ID has no tab, a hash neither), so one message may be copied once into each folder
/// that holds it at the source.
pub fn ledger_identity(folder: &str, identity: &str) -> String {
    format!("{folder}\t{identity}")
}

/// Whether the ledger has any message copied into `folder`.
fn filled_before(ledger: &Ledger, folder: &str) -> bool {
    let prefix = ledger_identity(folder, "");
    ledger
        .messages
        .range(prefix.clone()..)
        .next()
        .is_some_and(|id| id.starts_with(&prefix))
}

/// Whether the ledger says a message was copied into `folder`: its own row, or, for the first
/// message of its base in that folder, a row recorded before identities had variants (which
/// stood for the first message with that Message-ID, the only one copied then).
fn in_ledger(ledger: &BTreeSet<String>, folder: &str, identity: &str, first_of_base: bool) -> bool {
    ledger.contains(&ledger_identity(folder, identity))
        || (first_of_base && ledger.contains(&ledger_identity(folder, base(identity))))
}

/// Decides which source messages to copy: mapped and not excluded, not older than `since`, and
/// neither in the ledger nor at the destination (by destination folder and identity), in the
/// source's order. A message twice in one source folder (one identity) is copied once, and the
/// other is counted as folded; messages that only share a Message-ID have different identities
/// and are each copied. A folder whose destination name cannot be stored safely
/// ([`check_name`]) is one bad item, located by its source name, and nothing of it is copied.
/// The folder tree comes along whole: see [`Selection::create`] and [`Selection::subscribe`].
/// Pure.
pub fn new_messages(
    source: &[FolderListing],
    mapping: &FolderMapping,
    since: Option<i64>,
    ledger: &Ledger,
    destination: &Destination,
) -> Selection {
    let mut s = Selection::default();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut seen_base: BTreeSet<(String, String)> = BTreeSet::new();
    // Destination folders in source order, each with whether a source folder mapped to it is
    // subscribed.
    let mut wanted: Vec<(String, bool)> = Vec::new();
    for folder in source {
        if folder.skipped {
            s.bad.extend(folder.bad.iter().cloned());
            continue;
        }
        let Some(dest) = map_folder(mapping, &folder.name) else {
            continue;
        };
        s.bad.extend(folder.bad.iter().cloned());
        let recent = || {
            folder
                .messages
                .iter()
                .filter(|m| since.is_none_or(|t| m.internal_date >= t))
        };
        if let Err(why) = check_name(&dest, destination.delimiter) {
            let n = recent().count() as u64;
            s.total += n;
            let what = its_messages(n);
            s.bad.push(BadItem {
                location: format!("folder `{}`", folder.name),
                message: format!(
                    "its destination name `{dest}` cannot be stored safely: {why}; {what} not \
                     copied and the folder is not created (map it to another name in \
                     items.mail.folders.map)"
                ),
            });
            continue;
        }
        match wanted.iter_mut().find(|(d, _)| *d == dest) {
            Some((_, subscribed)) => *subscribed |= folder.subscribed,
            None => wanted.push((dest.clone(), folder.subscribed)),
        }
        let at_dest = destination.folders.get(&dest);
        for m in recent() {
            s.total += 1;
            if !seen.insert((dest.clone(), m.identity.clone())) {
                *s.folded.entry(folder.name.clone()).or_default() += 1;
                continue;
            }
            let first = seen_base.insert((dest.clone(), base(&m.identity).to_string()));
            let in_ledger = in_ledger(&ledger.messages, &dest, &m.identity, first);
            let there = at_dest.is_some_and(|d| d.contains(&m.identity));
            if in_ledger && !there {
                s.deleted_at_destination += 1;
            }
            if in_ledger || there {
                continue;
            }
            s.copy.push(ToCopy {
                source_folder: folder.name.clone(),
                folder: dest.clone(),
                message: m.clone(),
            });
        }
    }
    let receiving: BTreeSet<&str> = s.copy.iter().map(|c| c.folder.as_str()).collect();
    let mut create = Vec::new();
    for (dest, subscribed) in &wanted {
        let exists = dest == "INBOX" || destination.folders.contains_key(dest);
        let mut will_exist = exists;
        if !exists {
            let ours = ledger.folders.contains(&folder_made(dest)) || filled_before(ledger, dest);
            if receiving.contains(dest.as_str()) || !ours {
                create.push(dest.clone());
                will_exist = true;
            } else {
                s.folders_deleted_at_destination += 1;
            }
        }
        if !subscribed || !will_exist || destination.subscribed.contains(dest) {
            continue;
        }
        if ledger.folders.contains(&folder_subscribed(dest)) {
            s.unsubscribed_at_destination += 1;
        } else {
            s.subscribe.push(dest.clone());
        }
    }
    s.create = create;
    s
}

/// `its 1 message is` / `its 3 messages are`, for reports about a folder's messages.
pub(crate) fn its_messages(n: u64) -> String {
    match n {
        1 => "its 1 message is".to_string(),
        n => format!("its {n} messages are"),
    }
}

/// Why a mail store failed as a whole (a bad message is a `BadItem` instead).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The server refused something, or sent what cannot be accepted.
    #[error("{0}")]
    Imap(String),
    /// The connection to a server failed, closed or timed out: worth another try where what
    /// was asked changes nothing.
    #[error("{0}")]
    Connection(String),
    #[error("{what}: {message}")]
    Rejected { what: String, message: String },
    #[error("the folder name `{folder}` cannot be stored safely: {why}")]
    UnsafeFolder { folder: String, why: String },
    /// The server said "not now" (RFC 5530's UNAVAILABLE, LIMIT or INUSE, a BYE, a connection
    /// limit at login): worth another try once its pause is over (see
    /// [`crate::items::throttle`]).
    #[error("{message}")]
    Throttled {
        /// `host:port`, whose pause this sets.
        endpoint: String,
        /// The server's own answer.
        text: String,
        message: String,
    },
}

/// Why a store did not take one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub text: String,
    /// The server said "not now" rather than no: nothing was stored, and the message is sent
    /// again once the server's pause is over.
    pub throttled: bool,
}

impl From<String> for Refusal {
    fn from(text: String) -> Self {
        Refusal {
            text,
            throttled: false,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl MailError {
    /// Whether the connection failed (closed, timed out) rather than the server saying no.
    pub fn is_connection(&self) -> bool {
        matches!(self, MailError::Connection(_))
    }

    /// The error of the last of `attempts` tries, saying so.
    pub fn tried(self, attempts: u32) -> MailError {
        match self {
            MailError::Connection(m) => {
                MailError::Connection(format!("{m} (tried {attempts} times)"))
            }
            other => other,
        }
    }
}

/// An open mail store.
pub enum Store {
    Maildir(maildir::Maildir),
    Imap(Box<imap::Session>),
}

impl Store {
    /// Opens a store; a Maildir destination that does not exist yet is created on first write,
    /// never here (`plan` must not write).
    pub async fn open(at: &MailAt) -> Result<Store, MailError> {
        Ok(match at {
            MailAt::Maildir(path) => Store::Maildir(maildir::Maildir::new(path.clone())),
            MailAt::Imap { store, user } => {
                Store::Imap(Box::new(imap::Session::connect(store, user).await?))
            }
        })
    }

    /// Every folder with its messages' identities (headers only, never bodies).
    pub async fn list(&mut self) -> Result<Vec<FolderListing>, MailError> {
        match self {
            Store::Maildir(m) => m.list(),
            Store::Imap(s) => s.list().await,
        }
    }

    /// The destination side of `new_messages`: every folder with its identities, and the
    /// store's level separator.
    pub async fn destination(&mut self) -> Result<Destination, MailError> {
        let mut at = Destination::default();
        for f in self.list().await? {
            if f.skipped {
                continue;
            }
            if f.subscribed {
                at.subscribed.insert(f.name.clone());
            }
            let ids = f.messages.into_iter().map(|m| m.identity).collect();
            at.folders.insert(f.name, ids);
        }
        at.delimiter = self.delimiter();
        Ok(at)
    }

    /// Makes a folder (its parents as the store needs them). The outer error is the store's
    /// failure; the inner one the store's refusal of this folder.
    pub async fn create_folder(&mut self, folder: &str) -> Result<Result<(), String>, MailError> {
        match self {
            Store::Maildir(d) => Ok(d.ensure_folder(folder).map_err(|e| e.to_string())),
            Store::Imap(s) => s.create_folder(folder).await,
        }
    }

    /// Subscribes a folder, as [`Store::create_folder`] reports.
    pub async fn subscribe(&mut self, folder: &str) -> Result<Result<(), String>, MailError> {
        match self {
            Store::Maildir(d) => Ok(d.subscribe(folder).map_err(|e| e.to_string())),
            Store::Imap(s) => s.subscribe(folder).await,
        }
    }

    /// What separates levels in this store's own folder names.
    pub fn delimiter(&self) -> Option<char> {
        match self {
            Store::Maildir(_) => Some('.'),
            Store::Imap(s) => s.delimiter(),
        }
    }

    pub async fn fetch(&mut self, folder: &str, m: &MessageMeta) -> Result<Vec<u8>, MailError> {
        match self {
            Store::Maildir(d) => d.fetch(folder, m),
            Store::Imap(s) => s.fetch(folder, m).await,
        }
    }

    /// Bodies of several messages of one folder (one round trip on IMAP); a message that cannot
    /// be read is `Err` on its own.
    pub async fn fetch_batch(
        &mut self,
        folder: &str,
        messages: &[&MessageMeta],
    ) -> Result<Vec<Result<Vec<u8>, String>>, MailError> {
        match self {
            Store::Maildir(d) => Ok(messages
                .iter()
                .map(|m| d.fetch(folder, m).map_err(|e| e.to_string()))
                .collect()),
            Store::Imap(s) => s.fetch_many(folder, messages).await,
        }
    }

    /// Stores messages into one folder (created when missing), in order; each result says
    /// whether the store confirmed that message (a throttled refusal stored nothing). Batches let IMAP pipeline its APPENDs.
    /// `commit` resolves when the batch may be stored (the one before it into the same folder
    /// is): IMAP sends as much as it can before that and commits after; a Maildir writes after.
    pub async fn append_batch(
        &mut self,
        folder: &str,
        batch: &[(&MessageMeta, Vec<u8>)],
        commit: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<Result<(), Refusal>>, MailError> {
        match self {
            Store::Maildir(d) => {
                d.ensure_folder(folder)?;
                commit.await;
                Ok(batch
                    .iter()
                    .map(|(m, data)| {
                        d.append(folder, m, data)
                            .map_err(|e| Refusal::from(e.to_string()))
                    })
                    .collect())
            }
            Store::Imap(s) => s.append_batch(folder, batch, commit).await,
        }
    }

    /// Whether [`Store::stream_to`] works from this store into `dest`.
    pub fn streams_to(&self, dest: &Store) -> bool {
        matches!((self, dest), (Store::Imap(_), Store::Imap(_)))
    }

    /// Copies one message from `self` into `dest` without holding it whole, when both are IMAP
    /// sessions; `None` when this pair cannot stream (the caller fetches and appends instead).
    pub async fn stream_to(
        &mut self,
        folder: &str,
        m: &MessageMeta,
        dest: &mut Store,
        dest_folder: &str,
    ) -> Option<Result<Result<u64, String>, MailError>> {
        match (self, dest) {
            (Store::Imap(s), Store::Imap(d)) => Some(s.stream_to(folder, m, d, dest_folder).await),
            _ => None,
        }
    }

    /// The server's `host:port`, for its throttling pause; `None` for a Maildir.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Store::Maildir(_) => None,
            Store::Imap(s) => Some(s.endpoint()),
        }
    }

    pub async fn close(self) {
        if let Store::Imap(s) = self {
            s.logout().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(messages: BTreeSet<String>) -> Ledger {
        Ledger {
            messages,
            ..Default::default()
        }
    }

    fn msg(id: &str, date: i64) -> MessageMeta {
        MessageMeta {
            key: id.into(),
            identity: format!("mid:{id}"),
            size: 10,
            flags: Vec::new(),
            internal_date: date,
        }
    }

    #[test]
    fn new_is_neither_copied_nor_there_nor_excluded_nor_too_old() {
        let source = vec![
            FolderListing {
                name: "($Inbox)".into(),
                messages: vec![msg("a", 100), msg("b", 100), msg("c", 100), msg("c", 100)],
                ..Default::default()
            },
            FolderListing {
                name: "Junk".into(),
                messages: vec![msg("j", 100)],
                ..Default::default()
            },
            FolderListing {
                name: "Old".into(),
                messages: vec![msg("o", 1), msg("a", 100)],
                ..Default::default()
            },
        ];
        let mut mapping = FolderMapping::default();
        mapping.map.insert("($Inbox)".into(), "INBOX".into());
        mapping.exclude.push("Junk".into());
        // `a` was copied to INBOX and is still there; `b` was copied and then deleted there by
        // its owner; nothing is in the ledger for `Old`.
        let ledger: BTreeSet<String> = [
            ledger_identity("INBOX", "mid:a"),
            ledger_identity("INBOX", "mid:b"),
        ]
        .into();
        let destination = Destination {
            folders: [("INBOX".to_string(), ["mid:a".to_string()].into())].into(),
            delimiter: Some('.'),
            ..Default::default()
        };
        let s = new_messages(&source, &mapping, Some(50), &messages(ledger), &destination);
        let copied: Vec<(&str, &str)> = s
            .copy
            .iter()
            .map(|c| (c.folder.as_str(), c.message.identity.as_str()))
            .collect();
        // `c` once (twice in its folder), `a` again into another folder, `o` too old, Junk left out.
        assert_eq!(copied, vec![("INBOX", "mid:c"), ("Old", "mid:a")]);
        assert_eq!(s.total, 5);
        assert_eq!(s.folded, [("($Inbox)".to_string(), 1)].into());
        assert_eq!(s.deleted_at_destination, 1);
        assert_eq!(s.folders(), 2);
        assert_eq!(s.bytes(), 20);
    }

    fn variant(id: &str, variant: &str, key: &str) -> MessageMeta {
        MessageMeta {
            key: key.into(),
            identity: format!("mid:{id}#{variant}"),
            size: 10,
            flags: Vec::new(),
            internal_date: 100,
        }
    }

    #[test]
    fn messages_sharing_a_message_id_are_each_copied_and_true_duplicates_once() {
        let (list, direct) = ("00000000000000aa", "00000000000000bb");
        let source = vec![FolderListing {
            name: "INBOX".into(),
            messages: vec![
                variant("p", list, "1"),
                variant("p", direct, "2"),
                variant("p", direct, "3"),
                variant("q", list, "4"),
            ],
            ..Default::default()
        }];
        let mapping = FolderMapping::default();
        let nothing = Destination::default();
        let s = new_messages(&source, &mapping, None, &Ledger::default(), &nothing);
        let keys: Vec<&str> = s.copy.iter().map(|c| c.message.key.as_str()).collect();
        assert_eq!(keys, ["1", "2", "4"]);
        assert_eq!(s.folded, [("INBOX".to_string(), 1)].into());
        assert_eq!(s.total, 4);

        // A ledger written before identities had variants holds `INBOX<TAB>mid:p` for the one
        // copy made then (the first): only the other message of that Message-ID is new.
        let old: BTreeSet<String> = [ledger_identity("INBOX", "mid:p")].into();
        let at_dest = Destination {
            folders: [("INBOX".to_string(), [format!("mid:p#{list}")].into())].into(),
            delimiter: Some('.'),
            ..Default::default()
        };
        let s = new_messages(&source, &mapping, None, &messages(old), &at_dest);
        let keys: Vec<&str> = s.copy.iter().map(|c| c.message.key.as_str()).collect();
        assert_eq!(keys, ["2", "4"]);
        assert_eq!(s.deleted_at_destination, 0);
        // ... and after that run, nothing.
        let after: BTreeSet<String> = [
            ledger_identity("INBOX", "mid:p"),
            ledger_identity("INBOX", &format!("mid:p#{direct}")),
            ledger_identity("INBOX", &format!("mid:q#{list}")),
        ]
        .into();
        let s = new_messages(&source, &mapping, None, &messages(after), &at_dest);
        assert!(s.copy.is_empty());
    }

    #[test]
    fn the_folder_tree_and_its_subscriptions_come_along_once() {
        let folder = |name: &str, messages: Vec<MessageMeta>, subscribed: bool| FolderListing {
            name: name.into(),
            messages,
            subscribed,
            ..Default::default()
        };
        let source = vec![
            folder("INBOX", vec![msg("i", 100)], true),
            folder("Empty", Vec::new(), true),
            folder("Empty/Deeper", Vec::new(), false),
            folder("Old", vec![msg("o", 1)], false),
            folder("Sent", vec![msg("s", 100)], true),
            folder("Gone", Vec::new(), true),
            folder("Filled", vec![msg("f", 100)], false),
        ];
        let mapping = FolderMapping::default();
        // Nothing at the destination: every folder is made, every subscription added.
        let s = new_messages(
            &source,
            &mapping,
            Some(50),
            &Ledger::default(),
            &Destination::default(),
        );
        assert_eq!(
            s.create,
            ["Empty", "Empty/Deeper", "Old", "Sent", "Gone", "Filled"]
        );
        assert_eq!(s.subscribe, ["INBOX", "Empty", "Sent", "Gone"]);

        // After a run: all there. Then the owner deletes `Gone` (made by mailplan, empty) and
        // `Filled` (filled by mailplan), and unsubscribes `Sent`: none of it comes back, and
        // each is counted.
        let mut ledger = Ledger::default();
        for f in &s.create {
            ledger.folders.insert(folder_made(f));
        }
        for f in &s.subscribe {
            ledger.folders.insert(folder_subscribed(f));
        }
        for c in &s.copy {
            ledger
                .messages
                .insert(ledger_identity(&c.folder, &c.message.identity));
        }
        let mut there = Destination {
            delimiter: Some('.'),
            ..Default::default()
        };
        for c in &s.copy {
            there
                .folders
                .entry(c.folder.clone())
                .or_default()
                .insert(c.message.identity.clone());
        }
        for f in ["Empty", "Empty/Deeper", "Old"] {
            there.folders.entry(f.into()).or_default();
        }
        there.folders.remove("Filled");
        there.subscribed = ["INBOX", "Empty", "Gone"].map(String::from).into();
        let s = new_messages(&source, &mapping, Some(50), &ledger, &there);
        assert!(s.create.is_empty(), "{:?}", s.create);
        assert!(s.subscribe.is_empty(), "{:?}", s.subscribe);
        assert_eq!(s.folders_deleted_at_destination, 2);
        assert_eq!(s.unsubscribed_at_destination, 1);
        assert_eq!(s.deleted_at_destination, 1);
        // A folder filled before that gets a new message is made again by it.
        let mut more = source.clone();
        more[6].messages.push(msg("f2", 100));
        let s = new_messages(&more, &mapping, Some(50), &ledger, &there);
        assert_eq!(s.create, ["Filled"]);
    }

    #[test]
    fn a_folder_that_cannot_be_stored_safely_is_one_located_bad_item() {
        let source = vec![
            FolderListing {
                name: "\\".into(),
                messages: vec![msg("x", 100), msg("y", 100)],
                ..Default::default()
            },
            FolderListing {
                name: "v1.2".into(),
                messages: vec![msg("z", 100)],
                ..Default::default()
            },
            FolderListing {
                name: "ok".into(),
                messages: vec![msg("w", 100)],
                ..Default::default()
            },
        ];
        let mapping = FolderMapping {
            separator: Some('\\'),
            ..Default::default()
        };
        let destination = Destination {
            delimiter: Some('.'),
            ..Default::default()
        };
        let s = new_messages(&source, &mapping, None, &Ledger::default(), &destination);
        let copied: Vec<&str> = s.copy.iter().map(|c| c.folder.as_str()).collect();
        assert_eq!(copied, ["ok"]);
        assert_eq!(s.total, 4);
        let bad: Vec<&str> = s.bad.iter().map(|b| b.location.as_str()).collect();
        assert_eq!(bad, ["folder `\\`", "folder `v1.2`"]);
        assert!(s.bad[0].message.contains("its 2 messages are not copied"));
        assert!(s.bad[1].message.contains("`.`"));
        // Where `.` does not separate levels, `v1.2` is an ordinary name.
        let slash = Destination {
            delimiter: Some('/'),
            ..Default::default()
        };
        let s = new_messages(&source, &mapping, None, &Ledger::default(), &slash);
        assert_eq!(s.copy.len(), 2);
        assert_eq!(s.bad.len(), 1);
    }
}
