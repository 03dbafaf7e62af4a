//! The plan as data: subjects, actions, their changes and preconditions, and the summary.
//!
//! This is what `render` prints, what `--json` and saved plans serialise, and what `apply` will
//! carry out. It holds no behaviour beyond small accessors: deciding is the planner's job,
//! showing is render's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::directory::{AttrName, Dn, Value, ValueSet};
use crate::matching::{By, Class, Via};

pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub format_version: String,
    /// Warnings about the plan as a whole rather than one subject (a mapped attribute no
    /// source entry has, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    pub subjects: Vec<Subject>,
    pub actions: Vec<Action>,
    pub summary: Summary,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Person,
    Group,
    /// A destination entry restored from a backup.
    Entry,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Planned,
    Unchanged,
    Ambiguous,
    NeedsConfirmation,
    Error,
}

/// One source person (or source group) and what the plan does about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Subject {
    pub source: Dn,
    pub kind: SubjectKind,
    /// The name people know the subject by.
    pub name: String,
    /// DESIGN's scenario 1–6; null for groups and for subjects that get no actions.
    pub scenario: Option<u8>,
    pub status: Status,
    #[serde(rename = "match")]
    pub matched: Option<MatchInfo>,
    /// Contacts to delete and merge into the mailbox.
    pub contacts: Vec<Dn>,
    /// Soft candidates and ambiguous candidates, for review.
    pub candidates: Vec<CandidateInfo>,
    pub messages: Vec<Message>,
    /// Items that cannot be copied (a broken event, a bad CSV row, an unreadable message, a
    /// folder that cannot be mapped safely), found when the plan was made: skipped, counted in
    /// the summary, and recorded in the state by apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_items: Vec<BadItemInfo>,
}

/// One item left out of an import, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BadItemInfo {
    pub kind: crate::items::ItemKind,
    /// `path:line`, `path: UID x`, or `folder/message` for mail.
    pub location: String,
    pub message: String,
}

/// A person the plan does not migrate, in whole or in part, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub name: String,
    pub source: Dn,
    pub status: Status,
    pub reason: String,
}

/// Persons not migrated by this plan, by reason. Errors make `plan` and `apply` exit 1;
/// ambiguities and confirmations are decisions left to the administrator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct NotMigrated {
    /// Persons that could not be planned, in whole or in part (status `error`).
    pub error: usize,
    /// Persons whose match is ambiguous (status `ambiguous`).
    pub ambiguous: usize,
    /// Persons awaiting a confirmed soft match (status `needs_confirmation`).
    pub needs_confirmation: usize,
}

impl NotMigrated {
    pub fn total(&self) -> usize {
        self.error + self.ambiguous + self.needs_confirmation
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MatchInfo {
    pub object: Dn,
    pub class: Class,
    pub by: By,
    pub via: Via,
    /// The value matched on (address, account name, CN, or the pinned DN).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidateInfo {
    pub object: Dn,
    pub class: Class,
    pub via: Via,
    pub value: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    pub level: Level,
    pub text: String,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    CreateMailbox,
    ConvertNtAccount,
    ConvertMailUser,
    MoveMemberships,
    DeleteContact,
    MergeAttributes,
    CreateGroup,
    SetGroupMembers,
    ImportMail,
    ImportCalendar,
    ImportContacts,
    /// Carbonio: a new account, named by its primary address.
    CreateAccount,
    /// Carbonio: one further address of an account (a `zimbraAlias` entry, the target).
    AddAccountAlias,
    /// Carbonio: attributes merged into an existing account.
    ModifyAccount,
    /// Carbonio: a new distribution list.
    CreateDistributionList,
    /// Carbonio: addresses added to a distribution list's members.
    AddDistributionListMembers,
    /// Puts an entry back as a backup holds it (`mailplan state restore`).
    RestoreEntry,
    /// Deletes an entry a run created (`mailplan state undo`).
    DeleteEntry,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateMailbox => "create_mailbox",
            ActionKind::ConvertNtAccount => "convert_nt_account",
            ActionKind::ConvertMailUser => "convert_mail_user",
            ActionKind::MoveMemberships => "move_memberships",
            ActionKind::DeleteContact => "delete_contact",
            ActionKind::MergeAttributes => "merge_attributes",
            ActionKind::CreateGroup => "create_group",
            ActionKind::SetGroupMembers => "set_group_members",
            ActionKind::ImportMail => "import_mail",
            ActionKind::ImportCalendar => "import_calendar",
            ActionKind::ImportContacts => "import_contacts",
            ActionKind::RestoreEntry => "restore_entry",
            ActionKind::DeleteEntry => "delete_entry",
            ActionKind::CreateAccount => "create_account",
            ActionKind::AddAccountAlias => "add_account_alias",
            ActionKind::ModifyAccount => "modify_account",
            ActionKind::CreateDistributionList => "create_distribution_list",
            ActionKind::AddDistributionListMembers => "add_distribution_list_members",
        }
    }

    /// Which summary bucket the action counts in.
    pub fn effect(self) -> Effect {
        match self {
            ActionKind::CreateMailbox
            | ActionKind::CreateGroup
            | ActionKind::CreateAccount
            | ActionKind::CreateDistributionList => Effect::Create,
            ActionKind::ConvertNtAccount | ActionKind::ConvertMailUser => Effect::Convert,
            ActionKind::MoveMemberships
            | ActionKind::MergeAttributes
            | ActionKind::SetGroupMembers
            | ActionKind::RestoreEntry
            | ActionKind::AddAccountAlias
            | ActionKind::ModifyAccount
            | ActionKind::AddDistributionListMembers => Effect::Update,
            ActionKind::DeleteContact | ActionKind::DeleteEntry => Effect::Delete,
            ActionKind::ImportMail | ActionKind::ImportCalendar | ActionKind::ImportContacts => {
                Effect::Import
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Create,
    Convert,
    Update,
    Delete,
    Import,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Action {
    /// `kind:target`, stable across runs.
    pub id: String,
    pub kind: ActionKind,
    pub subject: Dn,
    pub target: Dn,
    pub depends_on: Vec<String>,
    pub changes: Vec<Change>,
    /// What must hold at apply time for this action to still be valid.
    pub preconditions: Vec<Precondition>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub items: Option<ItemCount>,
}

impl Action {
    pub fn id_for(kind: ActionKind, target: &Dn) -> String {
        format!("{}:{}", kind.as_str(), target)
    }
}

/// A change to one attribute of one object. For multi-valued attributes apply works on the
/// difference: values in `before` but not `after` are removed, values in `after` but not
/// `before` are added, so two actions touching one group's `member` compose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// The object changed, when it is not the action's target (a group, for memberships).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<Dn>,
    pub attribute: AttrName,
    pub before: ValueSet,
    pub after: ValueSet,
}

impl Change {
    pub fn added(&self) -> impl Iterator<Item = &Value> {
        self.after.difference(&self.before)
    }
    pub fn removed(&self) -> impl Iterator<Item = &Value> {
        self.before.difference(&self.after)
    }
}

/// What a destination object must look like at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Precondition {
    /// The object must not exist.
    Absent { object: Dn },
    /// The object must exist (and, when given, still be classified as this class).
    Exists { object: Dn, class: Option<Class> },
    /// The attribute must have exactly these values (none: absent).
    Values {
        object: Dn,
        attribute: AttrName,
        values: ValueSet,
    },
    /// The attribute must hold this value.
    Contains {
        object: Dn,
        attribute: AttrName,
        value: Value,
    },
    /// The attribute must not hold this value (a membership put back by a restore).
    Lacks {
        object: Dn,
        attribute: AttrName,
        value: Value,
    },
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ItemCount {
    /// Items the import copies: the new ones and the changed ones.
    pub count: u64,
    pub bytes: u64,
    /// Of `count`, the items copied earlier and changed at the source since, which the import
    /// updates (calendars and contacts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changed: u64,
    /// Mail folders that get new messages (0 for calendars and contacts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folders: u64,
    /// Items at the source, including those already copied.
    #[serde(default)]
    pub total: u64,
    /// Mail folders the import makes at the destination, with or without new messages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub create_folders: u64,
    /// Mail folders subscribed at the source that the import subscribes at the destination.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subscribe_folders: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub convert: usize,
    pub update: usize,
    pub delete: usize,
    pub imports: usize,
    pub messages: u64,
    pub events: u64,
    pub contacts: u64,
    /// Items that cannot be copied (broken events, bad CSV rows, unreadable messages): reported
    /// on their subjects, skipped by the imports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bad_items: u64,
    /// Persons not migrated, by reason.
    #[serde(default)]
    pub not_migrated: NotMigrated,
    /// Subjects per status.
    pub subjects: BTreeMap<Status, usize>,
    /// Persons per scenario ("1" … "6").
    pub scenarios: BTreeMap<String, usize>,
    pub warnings: usize,
    /// The most deletions the plan file allows one apply (`safety.max_deletes`); `apply`
    /// refuses a plan whose `delete` is above it. Absent from plans saved before the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes: Option<u64>,
}

impl Plan {
    /// True when applying would change anything.
    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// True when a person could not be planned, in whole or in part: `plan` and `apply` exit 1.
    pub fn has_errors(&self) -> bool {
        self.summary.not_migrated.error > 0
    }

    /// Every person this plan does not migrate (wholly), with why, in plan order.
    pub fn left_out(&self) -> Vec<LeftOut> {
        self.subjects
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    Status::Error | Status::Ambiguous | Status::NeedsConfirmation
                )
            })
            .map(|s| {
                let errors: Vec<&str> = s
                    .messages
                    .iter()
                    .filter(|m| m.level == Level::Error)
                    .map(|m| m.text.as_str())
                    .collect();
                let reason = match s.status {
                    Status::NeedsConfirmation => {
                        let names: Vec<String> =
                            s.candidates.iter().map(|c| c.object.to_string()).collect();
                        format!(
                            "awaiting confirmation of a soft match (candidates: {})",
                            names.join("; ")
                        )
                    }
                    // The planner's own wording starts with the status the line already says.
                    Status::Ambiguous if !errors.is_empty() => errors
                        .iter()
                        .map(|e| e.strip_prefix("ambiguous: ").unwrap_or(e))
                        .collect::<Vec<_>>()
                        .join("; "),
                    _ if !errors.is_empty() => errors.join("; "),
                    _ => "no reason recorded".to_string(),
                };
                LeftOut {
                    name: s.name.clone(),
                    source: s.source.clone(),
                    status: s.status,
                    reason,
                }
            })
            .collect()
    }

    pub fn summarise(subjects: &[Subject], actions: &[Action]) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            match a.kind.effect() {
                Effect::Create => s.create += 1,
                Effect::Convert => s.convert += 1,
                Effect::Update => s.update += 1,
                Effect::Delete => s.delete += 1,
                Effect::Import => s.imports += 1,
            }
            let n = a.items.map(|i| i.count).unwrap_or(0);
            match a.kind {
                ActionKind::ImportMail => s.messages += n,
                ActionKind::ImportCalendar => s.events += n,
                ActionKind::ImportContacts => s.contacts += n,
                _ => {}
            }
        }
        for subj in subjects {
            *s.subjects.entry(subj.status).or_default() += 1;
            match subj.status {
                Status::Error => s.not_migrated.error += 1,
                Status::Ambiguous => s.not_migrated.ambiguous += 1,
                Status::NeedsConfirmation => s.not_migrated.needs_confirmation += 1,
                Status::Planned | Status::Unchanged => {}
            }
            s.bad_items += subj.bad_items.len() as u64;
            if let Some(n) = subj.scenario {
                *s.scenarios.entry(n.to_string()).or_default() += 1;
            }
            s.warnings += subj
                .messages
                .iter()
                .filter(|m| m.level == Level::Warning)
                .count();
        }
        s
    }
}
