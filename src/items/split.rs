//! Splitting a large mailbox's copy into one work unit per folder, so several workers copy it
//! at once: which units an import is queued as, and which source folders each folder unit
//! copies.
//!
//! Pure: the caller lists the stores and reads the units. The folder units of one mailbox must
//! never copy the same message twice when they run at once, so they are cut along destination
//! folders (source folders that map to one destination folder go together, as `new_messages`
//! folds their duplicates), and the first unit of the action also copies every folder no unit
//! names (nothing is left out when the source changed since the units were queued). This
//! module must not decide which messages are new; [`crate::items::mail::new_messages`] does,
//! on the folders chosen here.

use std::collections::{BTreeMap, BTreeSet};

use crate::items::folders::map_folder;
use crate::items::mail::{FolderListing, Selection};
use crate::spec::FolderMapping;
use crate::state::units::NewUnit;

/// The id of the unit that copies the source folder `folder` of the action `action`.
pub fn folder_unit(action: &str, folder: &str) -> String {
    format!("{action}#{folder}")
}

/// The units an import action is queued as: one per folder of `folders` (sorted, each once)
/// when the bytes it copies are above `above` and it has new messages in two folders or more,
/// else the action itself as one unit.
pub fn units(action: &str, bytes: u64, above: u64, folders: &[String]) -> Vec<NewUnit> {
    let folders: BTreeSet<&String> = folders.iter().collect();
    if bytes <= above || folders.len() < 2 {
        return vec![NewUnit {
            unit: action.to_owned(),
            folder: None,
        }];
    }
    folders
        .into_iter()
        .map(|f| NewUnit {
            unit: folder_unit(action, f),
            folder: Some(f.clone()),
        })
        .collect()
}

/// The source folders that have new messages, one per destination folder (the first of those
/// mapping to it, in name order), sorted.
pub fn folders_with_new_mail(selection: &Selection) -> Vec<String> {
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &selection.copy {
        let source = first.entry(c.folder.as_str()).or_insert(&c.source_folder);
        if c.source_folder.as_str() < *source {
            *source = &c.source_folder;
        }
    }
    let out: BTreeSet<String> = first.values().map(|s| (*s).to_owned()).collect();
    out.into_iter().collect()
}

/// The part of a source listing one folder unit copies: the folders whose destination folder
/// is `folder`'s. The first unit of the action (`folder` first among `folder` and `siblings`,
/// the folders of the action's other units) also takes every folder whose destination no unit
/// names: folders without new messages when the units were queued (so they are made and
/// subscribed), folders made at the source since, and folders excluded or unreadable (so their
/// bad items are reported, once).
pub fn unit_listing(
    listing: Vec<FolderListing>,
    mapping: &FolderMapping,
    folder: &str,
    siblings: &[String],
) -> Vec<FolderListing> {
    let first = siblings.iter().all(|s| folder <= s.as_str());
    let own = map_folder(mapping, folder);
    let named: BTreeSet<String> = siblings
        .iter()
        .map(String::as_str)
        .chain([folder])
        .filter_map(|f| map_folder(mapping, f))
        .collect();
    listing
        .into_iter()
        .filter(|f| {
            let dest = (!f.skipped).then(|| map_folder(mapping, &f.name)).flatten();
            match dest {
                Some(d) if own.as_deref() == Some(d.as_str()) => true,
                Some(d) => first && !named.contains(&d),
                None => first,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::mail::{MessageMeta, ToCopy};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn a_mailbox_above_the_threshold_is_one_unit_per_folder_sorted() {
        let folders = s(&["Projects/2024", "INBOX", "Archive", "INBOX"]);
        let ids: Vec<(String, Option<String>)> =
            units("import_mail:CN=A", 20_000, 10_240, &folders)
                .into_iter()
                .map(|u| (u.unit, u.folder))
                .collect();
        assert_eq!(
            ids,
            vec![
                ("import_mail:CN=A#Archive".into(), Some("Archive".into())),
                ("import_mail:CN=A#INBOX".into(), Some("INBOX".into())),
                (
                    "import_mail:CN=A#Projects/2024".into(),
                    Some("Projects/2024".into())
                ),
            ]
        );
        let whole = vec![NewUnit {
            unit: "import_mail:CN=A".into(),
            folder: None,
        }];
        // At or below the threshold, or with new mail in one folder only: the whole mailbox.
        assert_eq!(units("import_mail:CN=A", 10_240, 10_240, &folders), whole);
        assert_eq!(
            units("import_mail:CN=A", 20_000, 10_240, &s(&["INBOX"])),
            whole
        );
        assert_eq!(units("import_mail:CN=A", 20_000, 10_240, &[]), whole);
    }

    fn copy(source: &str, dest: &str) -> ToCopy {
        ToCopy {
            source_folder: source.into(),
            folder: dest.into(),
            message: MessageMeta {
                key: "1".into(),
                identity: "mid:x".into(),
                size: 1,
                flags: Vec::new(),
                internal_date: 0,
            },
        }
    }

    #[test]
    fn source_folders_that_share_a_destination_folder_are_one_unit() {
        let selection = Selection {
            copy: vec![
                copy("inbox", "INBOX"),
                copy("Sent", "Sent"),
                copy("($Inbox)", "INBOX"),
                copy("Sent", "Sent"),
            ],
            ..Default::default()
        };
        assert_eq!(folders_with_new_mail(&selection), s(&["($Inbox)", "Sent"]));
    }

    fn folder(name: &str) -> FolderListing {
        FolderListing {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_unit_takes_its_destination_folder_and_the_first_also_the_rest() {
        let mut mapping = FolderMapping::default();
        mapping.map.insert("($Inbox)".into(), "INBOX".into());
        mapping.exclude.push("Junk".into());
        let listing = vec![
            folder("($Inbox)"),
            folder("inbox"),
            folder("Archive"),
            folder("Archive/2024"),
            folder("Empty"),
            folder("Junk"),
            FolderListing {
                skipped: true,
                ..folder("bad&-name")
            },
        ];
        let names =
            |l: Vec<FolderListing>| -> Vec<String> { l.into_iter().map(|f| f.name).collect() };
        let units = s(&["($Inbox)", "Archive", "Archive/2024"]);
        let others =
            |me: &str| -> Vec<String> { units.iter().filter(|u| *u != me).cloned().collect() };
        assert_eq!(
            names(unit_listing(
                listing.clone(),
                &mapping,
                "($Inbox)",
                &others("($Inbox)")
            )),
            s(&["($Inbox)", "inbox", "Empty", "Junk", "bad&-name"])
        );
        assert_eq!(
            names(unit_listing(
                listing.clone(),
                &mapping,
                "Archive",
                &others("Archive")
            )),
            s(&["Archive"])
        );
        assert_eq!(
            names(unit_listing(
                listing.clone(),
                &mapping,
                "Archive/2024",
                &others("Archive/2024")
            )),
            s(&["Archive/2024"])
        );
        // Every folder is taken by exactly one unit.
        let mut all: Vec<String> = units
            .iter()
            .flat_map(|u| names(unit_listing(listing.clone(), &mapping, u, &others(u))))
            .collect();
        all.sort();
        let mut every = names(listing);
        every.sort();
        assert_eq!(all, every);
    }
}
