//! The `matching` section: mode, confirmed pins and the `ignore` list.
//!
//! Checks the file only; matching itself happens in `crate::matching`, on the snapshots.

use super::*;

impl Checker<'_> {
    pub(super) fn matching(&mut self, m: raw::Matching, path: &YamlPath) -> Option<Matching> {
        let mode = match m.mode.unwrap_or(raw::Mode::Batch) {
            raw::Mode::Batch => Mode::Batch,
            raw::Mode::Interactive => Mode::Interactive,
        };
        let mut ok = true;
        let mut confirmed = Vec::new();
        for (i, c) in m.confirmed.unwrap_or_default().iter().enumerate() {
            let item = path.key("confirmed").index(i);
            let pin = self.pin(
                c.source.as_ref(),
                &item.key("source"),
                c.destination.as_ref(),
                &item.key("destination"),
            );
            ok &= pin.as_ref().is_some_and(|p| {
                confirmed.push(p.clone());
                true
            });
        }
        let mut remigrate = Vec::new();
        for (i, r) in m.remigrate.unwrap_or_default().iter().enumerate() {
            let item = path.key("remigrate").index(i);
            let pin = self.pin(
                r.source.as_ref(),
                &item.key("source"),
                r.mailbox.as_ref(),
                &item.key("mailbox"),
            );
            ok &= pin.as_ref().is_some_and(|p| {
                remigrate.push(p.clone());
                true
            });
        }
        for r in &remigrate {
            if let Some(c) = confirmed.iter().find(|c| c.source.value == r.source.value) {
                self.push(
                    Problem::new(
                        codes::CONFLICTING_PINS,
                        format!("`{}` is both confirmed and remigrated", r.source.value),
                    )
                    .label(range(r.source.span), "remigrated here")
                    .label(range(c.source.span), "confirmed here")
                    .help(
                        "a person is either matched to an existing object (`confirmed`) or \
                         migrated into an existing mailbox (`remigrate`): keep one",
                    ),
                );
                ok = false;
            }
        }
        let mut ignore_sources = Vec::new();
        let mut ignore_destinations = Vec::new();
        for (i, item) in m.ignore.unwrap_or_default().iter().enumerate() {
            let item_path = path.key("ignore").index(i);
            match (&item.source, &item.destination) {
                (Some(s), None) => {
                    let p = item_path.key("source");
                    match self.dn_entry(s, &p) {
                        Some(dn) => ignore_sources.push(self.located(dn, &p)),
                        None => ok = false,
                    }
                }
                (None, Some(d)) => {
                    let p = item_path.key("destination");
                    match self.dn_entry(d, &p) {
                        Some(dn) => ignore_destinations.push(self.located(dn, &p)),
                        None => ok = false,
                    }
                }
                (both, _) => {
                    let span = SpanIndex::first_line(self.text, self.span(&item_path));
                    let message = if both.is_some() {
                        format!("`{item_path}` has both `source` and `destination`")
                    } else {
                        format!("`{item_path}` has neither `source` nor `destination`")
                    };
                    self.push(
                        Problem::new(codes::INVALID_IGNORE, message)
                            .label(span, "expected exactly one of `source` or `destination`")
                            .help(
                                "write each ignored entry as its own item: `- source: DN` for a \
                                 source person, `- destination: DN` for a destination object",
                            ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Matching {
            mode,
            confirmed,
            remigrate,
            ignore_sources,
            ignore_destinations,
        })
    }

    pub(super) fn pin(
        &mut self,
        source: Option<&raw::DnText>,
        source_path: &YamlPath,
        destination: Option<&raw::DnText>,
        destination_path: &YamlPath,
    ) -> Option<Pin> {
        let (parent, s_key, d_key) = (
            source_path.parent(),
            source_path.last_key().unwrap_or("source"),
            destination_path.last_key().unwrap_or("destination"),
        );
        let s = self
            .required(source, &parent, s_key)
            .and_then(|s| self.dn_entry(s, source_path));
        let d = self
            .required(destination, &parent, d_key)
            .and_then(|d| self.dn_entry(d, destination_path));
        Some(Pin {
            source: self.located(s?, source_path),
            destination: self.located(d?, destination_path),
        })
    }
}
