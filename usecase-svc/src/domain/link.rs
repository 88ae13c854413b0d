//! Asset links: the assets a use case is made of, each with a role and a version selector.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

/// Most links one use case may have.
pub const MAX_LINKS: usize = 256;

/// What a linked asset is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum LinkRole {
    Predictor,
    Transformer,
    Dataset,
    Model,
    Pipeline,
    App,
}

impl LinkRole {
    const ALL: [(Self, &'static str); 6] = [
        (Self::Predictor, "PREDICTOR"),
        (Self::Transformer, "TRANSFORMER"),
        (Self::Dataset, "DATASET"),
        (Self::Model, "MODEL"),
        (Self::Pipeline, "PIPELINE"),
        (Self::App, "APP"),
    ];

    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(r, _)| *r == self).map_or("", |(_, s)| s)
    }

    /// Parses [`Self::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, name)| *name == s).map(|(r, _)| *r)
    }

    /// The asset kinds (as asset-svc spells them) this role accepts.
    pub fn accepts(self) -> &'static [&'static str] {
        match self {
            Self::Predictor | Self::Transformer => &["DOCKER_REPO"],
            Self::Dataset => &["DATASET"],
            Self::Model => &["MODEL"],
            Self::Pipeline => &["PIPELINE"],
            Self::App => &["DATASET", "DOCKER_REPO"],
        }
    }
}

/// Which version of the asset a link uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this version number.
    Pinned(i64),
    /// Whatever version this alias (or `latest`) names when resolved.
    Alias(String),
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLink {
    /// UUIDv7.
    pub id: Uuid,
    /// The use case.
    pub use_case_id: Uuid,
    /// `assets/{asset}`.
    pub asset: String,
    /// What it is for.
    pub role: LinkRole,
    /// Which version.
    pub selector: Selector,
    /// Who linked it.
    pub creator: String,
    /// When linked.
    pub create_time: DateTime<Utc>,
    /// When last changed.
    pub update_time: DateTime<Utc>,
    /// Incremented on every change.
    pub revision: i64,
    /// Who owns the asset (empty when unknown): the use case passes on read access to it only while that principal
    /// is one of its owners or editors.
    pub asset_owner: String,
}

impl Selector {
    /// The version number, when pinned to one.
    pub fn pinned(&self) -> Option<i64> {
        match self {
            Self::Pinned(n) => Some(*n),
            Self::Alias(_) => None,
        }
    }
}

impl AssetLink {
    /// A new link.
    pub fn new(
        use_case_id: Uuid,
        asset: &str,
        role: LinkRole,
        selector: Selector,
        creator: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let now = now.trunc_subsecs(6);
        Self {
            id: Uuid::now_v7(),
            use_case_id,
            asset: asset.to_owned(),
            role,
            selector,
            creator: creator.to_owned(),
            create_time: now,
            update_time: now,
            revision: 1,
            asset_owner: String::new(),
        }
    }

    /// The owner of the asset put it here: only then may the use case pass read access to it on.
    pub fn linked_by_owner(&self) -> bool {
        !self.asset_owner.is_empty() && self.creator == self.asset_owner
    }

    /// Opaque concurrency token.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_accept_only_fitting_kinds() {
        assert_eq!(LinkRole::Predictor.accepts(), ["DOCKER_REPO"]);
        assert!(LinkRole::App.accepts().contains(&"DATASET"));
        for (role, name) in LinkRole::ALL {
            assert_eq!(LinkRole::parse(name), Some(role));
        }
    }
}
