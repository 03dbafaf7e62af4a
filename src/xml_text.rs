//! The one rule for reading an entity or character reference in XML text (WebDAV answers, SOAP
//! answers): a character reference is its character, the five entities XML predefines are their
//! characters, and any other entity is an error, never guessed at or dropped. It only reads a
//! reference; it must not walk documents or decide what a document means.

use quick_xml::events::BytesRef;

/// The text `&…;` stands for.
pub fn reference(r: &BytesRef<'_>) -> Result<String, String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| e.to_string())?;
    Ok(match name.as_ref() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        other => return Err(format!("unknown entity &{other};")),
    }
    .to_string())
}

#[cfg(test)]
mod tests {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    /// Every reference of `xml`, read with [`super::reference`].
    fn references(xml: &str) -> Vec<Result<String, String>> {
        let mut reader = Reader::from_str(xml);
        let mut out = Vec::new();
        loop {
            match reader.read_event() {
                Ok(Event::GeneralRef(r)) => out.push(super::reference(&r)),
                Ok(Event::Eof) | Err(_) => return out,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn predefined_entities_and_character_references_are_their_characters() {
        let got = references("<a>&amp;&lt;&gt;&quot;&apos;&#233;&#x4E2D;</a>");
        let want = ["&", "<", ">", "\"", "'", "é", "中"];
        assert_eq!(got, want.map(|s| Ok(s.to_string())).to_vec());
    }

    #[test]
    fn any_other_entity_is_an_error() {
        assert_eq!(
            references("<a>&nbsp;</a>"),
            vec![Err("unknown entity &nbsp;".to_string())]
        );
    }
}
