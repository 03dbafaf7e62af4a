//! Calendars: read a person's exported ICS file as calendar objects (one per UID) and write them
//! to a CalDAV calendar or to a folder of `.ics` files.
//!
//! The contract with the rest of the program:
//! - [`read_ics`] gives the objects sorted by UID, and every broken component as a [`BadItem`]
//!   (`path:line` and why); it fails only when the file cannot be read at all.
//! - A [`CalendarObject`] is a complete VCALENDAR: the master VEVENT/VTODO/VJOURNAL with all its
//!   RECURRENCE-ID exceptions and the VTIMEZONEs they use, in the file's own text (see
//!   [`ics`] for why the text is kept rather than re-serialised). METHOD is dropped: CalDAV
//!   forbids it in stored objects. `digest` changes exactly when the text does.
//! - A [`CalendarStore`] lists UID → ETag and puts one object with WebDAV preconditions
//!   ([`PutOutcome`]): `None` creates only, `Some(etag)` updates only that version, and content the
//!   destination already holds is [`PutOutcome::Unchanged`]. For an [`IcsFolder`] the ETag is the
//!   digest of the file. A create the destination refuses is
//!   [`PutOutcome::ChangedAtDestination`] only when the destination holds an item with that UID;
//!   any other refusal is an error for which [`CalendarError::is_item_rejected`] holds.
//!
//! Nothing here decides what to copy or records what was copied: that is the planner's and the
//! ledger's business. The intended use, for calendars and contacts alike:
//!
//! ```text
//! plan:   (objects, bad) = read_ics(path)            bad items are counted and shown
//!         at_destination = store.list()              UID -> ETag, never writes
//!         new     = not in the ledger and not at the destination
//!         changed = in the ledger with another digest, still at the destination
//!         gone    = in the ledger, not at the destination: deleted by its owner, not copied back
//! apply:  store.put(obj, None)                       new: Created, or Unchanged if already there
//!         store.put(obj, Some(etag))                 changed: Updated, or ChangedAtDestination
//!         record (uid, digest) in the ledger after Created/Updated/Unchanged;
//!         err.is_item_rejected() -> a bad item, go on; any other error stops this store
//! ```
//!
//! A run killed between a PUT and its ledger record copies nothing twice: the next run's PUT
//! (`If-None-Match: *`) finds the object there and answers Unchanged.

pub mod ics;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::items::BadItem;
pub use crate::items::dav::DavConfig;
use crate::items::dav::{CollectionKind, DavCollection, DavError};
use crate::items::store::FileCollection;
pub use crate::items::store::PutOutcome;

/// One calendar resource: everything that shares a UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarObject {
    pub uid: String,
    /// A complete VCALENDAR, CRLF line endings.
    pub ics: String,
    /// SHA-256 of `ics`, hex.
    pub digest: String,
}

/// Why calendars could not be read or written at all (bad components are [`BadItem`]s instead).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CalendarError {
    #[error("cannot read calendar file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write calendar folder `{path}`: {message}")]
    Folder { path: PathBuf, message: String },
    /// The folder refused this one item (its file holds another item).
    #[error("{message}")]
    Refused { message: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Dav(#[from] DavError),
}

impl CalendarError {
    /// Whether only the item was refused by the destination (see
    /// [`DavError::is_item_rejected`]): report it as a bad item and go on with the next one.
    pub fn is_item_rejected(&self) -> bool {
        match self {
            CalendarError::Refused { .. } => true,
            CalendarError::Dav(e) => e.is_item_rejected(),
            _ => false,
        }
    }
}

/// Reads one person's ICS file.
pub fn read_ics(path: &Path) -> Result<(Vec<CalendarObject>, Vec<BadItem>), CalendarError> {
    let bytes = std::fs::read(path).map_err(|source| CalendarError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ics::parse_ics(&bytes, &path.display().to_string()))
}

/// A calendar destination.
pub trait CalendarStore: Send + Sync {
    /// UID → ETag of what the destination holds (empty when the calendar does not exist yet).
    /// Never writes.
    fn list(&self) -> impl Future<Output = Result<BTreeMap<String, String>, CalendarError>> + Send;
    /// Creates (`existing_etag` `None`, `If-None-Match: *`) or updates (`If-Match`) one object.
    fn put(
        &self,
        obj: &CalendarObject,
        existing_etag: Option<&str>,
    ) -> impl Future<Output = Result<PutOutcome, CalendarError>> + Send;
}

/// A folder with one `.ics` file per object, named by its UID ([`resource_name`]), written
/// atomically.
///
/// [`resource_name`]: crate::items::store::resource_name
#[derive(Debug, Clone)]
pub struct IcsFolder {
    files: FileCollection,
}

impl IcsFolder {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        IcsFolder {
            files: FileCollection::new(dir, "ics"),
        }
    }
}

fn folder_error(path: &Path, e: impl std::fmt::Display) -> CalendarError {
    CalendarError::Folder {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A write's I/O error: the item's own refusal, or the folder's failure.
fn put_error(path: &Path, e: std::io::Error) -> CalendarError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        CalendarError::Refused {
            message: e.to_string(),
        }
    } else {
        folder_error(path, e)
    }
}

impl CalendarStore for IcsFolder {
    async fn list(&self) -> Result<BTreeMap<String, String>, CalendarError> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || files.list())
            .await
            .map_err(|e| folder_error(self.files.dir(), e))?
            .map_err(|e| folder_error(self.files.dir(), e))
    }

    async fn put(
        &self,
        obj: &CalendarObject,
        existing_etag: Option<&str>,
    ) -> Result<PutOutcome, CalendarError> {
        let files = self.files.clone();
        let (uid, text, etag) = (
            obj.uid.clone(),
            obj.ics.clone(),
            existing_etag.map(str::to_string),
        );
        tokio::task::spawn_blocking(move || files.put(&uid, &text, etag.as_deref()))
            .await
            .map_err(|e| folder_error(self.files.dir(), e))?
            .map_err(|e| put_error(self.files.dir(), e))
    }
}

/// A CalDAV calendar collection. A missing calendar is created (MKCALENDAR) on the first put.
#[derive(Debug)]
pub struct CalDav {
    dav: DavCollection,
}

impl CalDav {
    pub fn new(config: &DavConfig) -> Result<Self, CalendarError> {
        Ok(CalDav {
            dav: DavCollection::new(config, CollectionKind::Calendar)?,
        })
    }
}

impl CalendarStore for CalDav {
    async fn list(&self) -> Result<BTreeMap<String, String>, CalendarError> {
        Ok(self.dav.list().await?)
    }

    async fn put(
        &self,
        obj: &CalendarObject,
        existing_etag: Option<&str>,
    ) -> Result<PutOutcome, CalendarError> {
        Ok(self.dav.put(&obj.uid, &obj.ics, existing_etag).await?)
    }
}
