//! Folder mapping: a source folder's logical name → its destination name, or excluded; and the
//! one check every destination folder name passes before anything is written under it.
//!
//! Logical names have levels separated by `/` whatever the store uses (Maildir++ `.`, an IMAP
//! server's delimiter); stores convert at their edge. A name that cannot be stored safely (an
//! empty level, `.` or `..`, a control character, the destination's own separator inside a
//! level) is refused by [`check_name`] with the reason, so it becomes a reported problem instead
//! of a folder outside the person's mailbox. Pure: no I/O.

use crate::spec::FolderMapping;

/// The destination name of a source folder, or `None` when the plan excludes it.
///
/// Order: the plan's `separator` becomes `/`; excludes are checked (exact name, or `X/*` for `X`
/// and everything below it); then the longest mapped prefix is replaced (`($Inbox)` → `INBOX`,
/// and a mapped folder's subfolders follow it). `INBOX` is recognised in any case, as IMAP does.
pub fn map_folder(mapping: &FolderMapping, source: &str) -> Option<String> {
    let name: String = match mapping.separator {
        Some(sep) => source.replace(sep, "/"),
        None => source.to_string(),
    };
    if mapping
        .exclude
        .iter()
        .any(|ex| excluded(ex, source) || excluded(ex, &name))
    {
        return None;
    }
    let mut best: Option<(&str, &str)> = None;
    for (from, to) in &mapping.map {
        let hit = [source, name.as_str()]
            .iter()
            .any(|n| *n == from || n.starts_with(&format!("{from}/")));
        if hit && best.is_none_or(|(b, _)| from.len() > b.len()) {
            best = Some((from, to));
        }
    }
    let mapped = match best {
        Some((from, to)) => {
            let rest = name
                .strip_prefix(from)
                .or_else(|| source.strip_prefix(from))
                .unwrap_or("");
            format!("{to}{rest}")
        }
        None => name,
    };
    Some(if mapped.eq_ignore_ascii_case("inbox") {
        "INBOX".to_string()
    } else {
        mapped
    })
}

/// Whether a logical folder name can be stored at a destination whose levels are separated by
/// `delimiter` (Maildir++ `.`, an IMAP server's delimiter; `None` when it is not known yet), and
/// if not, why. `INBOX` is always fine. Every level must be non-empty, neither `.` nor `..`, free
/// of control characters, and must not hold the destination's delimiter (it would split the
/// level, or on disk join it to its parent).
pub fn check_name(name: &str, delimiter: Option<char>) -> Result<(), String> {
    if name == "INBOX" {
        return Ok(());
    }
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    for level in name.split('/') {
        if level.is_empty() {
            return Err("it has an empty level (a leading, trailing or doubled `/`)".into());
        }
        if level == "." || level == ".." {
            return Err(format!(
                "a level named `{level}` names {} on disk, not a folder of its own",
                if level == "." {
                    "the folder it is in"
                } else {
                    "the folder above"
                }
            ));
        }
        if let Some(c) = level.chars().find(|c| c.is_control()) {
            return Err(format!(
                "it holds the control character U+{:04X}",
                u32::from(c)
            ));
        }
        if let Some(d) = delimiter.filter(|d| *d != '/' && level.contains(*d)) {
            return Err(format!(
                "the level `{level}` holds `{d}`, which separates levels at the destination"
            ));
        }
    }
    Ok(())
}

/// A source folder's decoded levels as one logical name, unless a level holds `/` (which logical
/// names use between levels) or is empty: such a name is reported, never guessed at.
pub fn join_levels(levels: &[String]) -> Result<String, String> {
    for level in levels {
        if level.contains('/') {
            return Err(format!(
                "the level `{level}` holds `/`, which mailplan uses to separate levels"
            ));
        }
    }
    Ok(levels.join("/"))
}

fn excluded(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(prefix) => name == prefix || name.starts_with(&format!("{prefix}/")),
        None => name == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn mapping() -> FolderMapping {
        let mut map = BTreeMap::new();
        map.insert("($Inbox)".to_string(), "INBOX".to_string());
        map.insert("($Sent)".to_string(), "Sent".to_string());
        map.insert("Old".to_string(), "Archive/Old".to_string());
        FolderMapping {
            map,
            separator: Some('\\'),
            exclude: vec!["Junk".into(), "Tmp/*".into()],
        }
    }

    #[test]
    fn maps_notes_names_separators_and_excludes() {
        let m = mapping();
        assert_eq!(map_folder(&m, "($Inbox)").as_deref(), Some("INBOX"));
        assert_eq!(map_folder(&m, "($Sent)").as_deref(), Some("Sent"));
        assert_eq!(map_folder(&m, "inbox").as_deref(), Some("INBOX"));
        assert_eq!(
            map_folder(&m, "Projects\\2024").as_deref(),
            Some("Projects/2024")
        );
        assert_eq!(
            map_folder(&m, "Old\\2019").as_deref(),
            Some("Archive/Old/2019")
        );
        assert_eq!(map_folder(&m, "Junk"), None);
        assert_eq!(map_folder(&m, "Tmp"), None);
        assert_eq!(map_folder(&m, "Tmp\\x"), None);
        assert_eq!(map_folder(&m, "Tmpx").as_deref(), Some("Tmpx"));
    }

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        let m = mapping();
        // Notes' separator alone becomes `/`: two empty levels.
        let slash = map_folder(&m, "\\").unwrap();
        assert_eq!(slash, "/");
        assert!(check_name(&slash, Some('.')).is_err());
        for bad in [
            "",
            ".",
            "..",
            "a/../b",
            "a//b",
            "a/",
            "/a",
            "a\0b",
            "tab\there",
        ] {
            assert!(check_name(bad, None).is_err(), "{bad:?}");
        }
        assert!(check_name("v1.2", Some('.')).unwrap_err().contains("`.`"));
        assert_eq!(check_name("v1.2", Some('/')), Ok(()));
        assert_eq!(check_name("v1.2", None), Ok(()));
        assert_eq!(check_name("Projects/2024", Some('.')), Ok(()));
        assert_eq!(check_name("...", None), Ok(()));
        assert_eq!(check_name("INBOX", Some('.')), Ok(()));
        assert!(join_levels(&["a/b".into()]).is_err());
        assert_eq!(join_levels(&["a".into(), "b".into()]).as_deref(), Ok("a/b"));
    }
}
