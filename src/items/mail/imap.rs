//! IMAP stores (placeholder until the client lands).

use super::{FolderListing, MailError, MessageMeta};
use crate::spec::ImapStore;

pub struct Session;

impl Session {
    pub async fn connect(_store: &ImapStore, _user: &str) -> Result<Session, MailError> {
        Err(MailError::Imap("IMAP is not available yet".into()))
    }
    pub async fn list(&mut self) -> Result<Vec<FolderListing>, MailError> {
        Ok(Vec::new())
    }
    pub async fn fetch(&mut self, _folder: &str, _m: &MessageMeta) -> Result<Vec<u8>, MailError> {
        Ok(Vec::new())
    }
    pub async fn append_batch(
        &mut self,
        _folder: &str,
        _batch: &[(&MessageMeta, Vec<u8>)],
    ) -> Result<Vec<Result<(), String>>, MailError> {
        Ok(Vec::new())
    }
    pub async fn logout(self) {}
}
