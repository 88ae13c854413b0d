//! Member roles and what each may do with a use case.

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and changes content.
    Editor,
    /// Everything, including members, archive and publishing.
    Owner,
}

impl Role {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "VIEWER",
            Self::Editor => "EDITOR",
            Self::Owner => "OWNER",
        }
    }

    /// Parses [`Self::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Viewer, Self::Editor, Self::Owner].into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may change the use case's content.
    pub fn may_edit(self) -> bool {
        self >= Self::Editor
    }

    /// Whether this role may change what buyers pay: like publishing, the price is the owners' decision.
    pub fn may_change_price(self) -> bool {
        self == Self::Owner
    }

    /// Whether this role may archive, restore, publish or manage members.
    pub fn may_administer(self) -> bool {
        self == Self::Owner
    }
}
