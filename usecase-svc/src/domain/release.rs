//! Releases: immutable snapshots of a use case, every link frozen to the exact version and digest it resolved
//! to. A release is what "reproduce" means.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::use_case::UseCase;

/// One link as the release froze it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenLink {
    /// The link it came from, `useCases/{u}/assetLinks/{l}`.
    pub link: String,
    /// `assets/{a}`.
    pub asset: String,
    /// The link's role (stored spelling).
    pub role: String,
    /// The exact version number.
    pub version_number: i64,
    /// The version's manifest digest.
    pub manifest_digest: String,
    /// The alias the link followed, if it did.
    pub alias: Option<String>,
    /// Who owns the asset; not part of the digest. Empty in releases made before it was recorded.
    #[serde(default)]
    pub owner: String,
    /// For a Docker Repo version, its linux/amd64 image manifest digest, which deployments pull; not part of the
    /// digest (the manifest digest pins the version already). Empty for other kinds, and in releases made before it
    /// was recorded.
    #[serde(default)]
    pub image_digest: String,
}

/// The use case's descriptive fields at release time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Cover image.
    pub cover_image_uri: String,
    /// Model card.
    pub model_card: String,
    /// Inference schema.
    pub inference_schema: String,
    /// Version label.
    pub version_label: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Snapshot {
    /// The descriptive fields of `use_case`.
    pub fn of(use_case: &UseCase) -> Self {
        Self {
            display_name: use_case.display_name.clone(),
            description: use_case.description.clone(),
            cover_image_uri: use_case.cover_image_uri.clone(),
            model_card: use_case.model_card.clone(),
            inference_schema: use_case.inference_schema.clone(),
            version_label: use_case.version_label.clone(),
            labels: use_case.labels.clone(),
        }
    }
}

/// A stored release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// UUIDv7.
    pub id: Uuid,
    /// The use case.
    pub use_case_id: Uuid,
    /// 1, 2, 3… per use case (0 until stored).
    pub number: i64,
    /// Free text.
    pub description: String,
    /// Frozen links, sorted by asset then role.
    pub links: Vec<FrozenLink>,
    /// The use case's fields at release time.
    pub snapshot: Snapshot,
    /// `sha256:` over the frozen links: equal content, equal digest.
    pub digest: String,
    /// Who released.
    pub creator: String,
    /// When.
    pub create_time: DateTime<Utc>,
}

impl Release {
    /// A release of `use_case` with `links`, by `creator`.
    pub fn new(
        use_case: &UseCase,
        mut links: Vec<FrozenLink>,
        description: String,
        creator: &str,
        now: DateTime<Utc>,
    ) -> Self {
        links.sort_by(|a, b| (&a.asset, &a.role).cmp(&(&b.asset, &b.role)));
        let mut hasher = Sha256::new();
        for l in &links {
            hasher.update(format!("{} {} {} {}\n", l.role, l.asset, l.version_number, l.manifest_digest).as_bytes());
        }
        Self {
            id: Uuid::now_v7(),
            use_case_id: use_case.id,
            number: 0,
            description,
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
            links,
            snapshot: Snapshot::of(use_case),
            creator: creator.to_owned(),
            create_time: now.trunc_subsecs(6),
        }
    }
}

/// How one link differs between two releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDiff<'a> {
    /// Only in the target.
    Added(&'a FrozenLink),
    /// Only in the base.
    Removed(&'a FrozenLink),
    /// In both, with these fields different.
    Changed(&'a FrozenLink, &'a FrozenLink, Vec<&'static str>),
    /// In both, the same.
    Unchanged(&'a FrozenLink, &'a FrozenLink),
}

/// The link differences between `base` and `target`, matched by (role, asset) and sorted by them, and the
/// snapshot fields that differ.
pub fn diff<'a>(base: &'a Release, target: &'a Release) -> (Vec<LinkDiff<'a>>, Vec<&'static str>) {
    let key = |l: &'a FrozenLink| (l.role.as_str(), l.asset.as_str());
    let mut keys: Vec<(&str, &str)> = base.links.iter().chain(&target.links).map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    let links = keys
        .into_iter()
        .filter_map(|k| {
            let before = base.links.iter().find(|l| key(l) == k);
            let after = target.links.iter().find(|l| key(l) == k);
            match (before, after) {
                (None, None) => None,
                (Some(b), Some(a)) => {
                    let mut fields = Vec::new();
                    if b.version_number != a.version_number {
                        fields.push("version_number");
                    }
                    if b.manifest_digest != a.manifest_digest {
                        fields.push("manifest_digest");
                    }
                    if b.alias != a.alias {
                        fields.push("alias");
                    }
                    Some(if fields.is_empty() { LinkDiff::Unchanged(b, a) } else { LinkDiff::Changed(b, a, fields) })
                }
                (Some(b), None) => Some(LinkDiff::Removed(b)),
                (None, Some(a)) => Some(LinkDiff::Added(a)),
            }
        })
        .collect();
    let (b, t) = (&base.snapshot, &target.snapshot);
    let snapshot = [
        ("display_name", b.display_name != t.display_name),
        ("description", b.description != t.description),
        ("cover_image_uri", b.cover_image_uri != t.cover_image_uri),
        ("model_card", b.model_card != t.model_card),
        ("inference_schema", b.inference_schema != t.inference_schema),
        ("version_label", b.version_label != t.version_label),
        ("labels", b.labels != t.labels),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect();
    (links, snapshot)
}
