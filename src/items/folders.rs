//! Folder mapping: a source folder's logical name → its destination name, or excluded.
//!
//! Logical names have levels separated by `/` whatever the store uses (Maildir++ `.`, an IMAP
//! server's delimiter); stores convert at their edge. Pure: no I/O.

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
}
