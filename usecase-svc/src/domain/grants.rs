//! Who may read which asset versions because of use cases and entitlements: members read what their use case's
//! links and releases pin (every version of an asset a link follows by alias); a buyer reads what the acquired
//! release pins. usecase-svc computes these sets; asset-svc enforces them.

use std::collections::BTreeSet;

use super::release::FrozenLink;

/// The complete grant set of one source: every principal may read every target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Who may read.
    pub principals: BTreeSet<String>,
    /// `(assets/{a}, version number)`, 0 for every version.
    pub targets: BTreeSet<(String, i64)>,
}

impl Grants {
    /// A use case's: its members read its links (pinned versions; every version when following an alias) and
    /// every version its releases froze.
    pub fn of_use_case<'a>(
        members: impl IntoIterator<Item = String>,
        links: impl IntoIterator<Item = (String, Option<i64>)>,
        releases: impl IntoIterator<Item = &'a FrozenLink>,
    ) -> Self {
        let mut targets: BTreeSet<(String, i64)> =
            links.into_iter().map(|(asset, pinned)| (asset, pinned.unwrap_or(0))).collect();
        targets.extend(releases.into_iter().map(|l| (l.asset.clone(), l.version_number)));
        Self { principals: members.into_iter().collect(), targets }
    }

    /// An entitlement's: its buyer reads the acquired release's frozen versions.
    pub fn of_entitlement(buyer: String, release: &[FrozenLink]) -> Self {
        Self {
            principals: BTreeSet::from([buyer]),
            targets: release.iter().map(|l| (l.asset.clone(), l.version_number)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frozen(asset: &str, version: i64) -> FrozenLink {
        FrozenLink {
            link: String::new(),
            asset: asset.into(),
            role: "DATASET".into(),
            version_number: version,
            manifest_digest: String::new(),
            alias: None,
        }
    }

    #[test]
    fn aliases_grant_every_version_and_releases_their_frozen_one() {
        let releases = [frozen("assets/a", 1), frozen("assets/b", 3)];
        let grants = Grants::of_use_case(
            ["users/alice".to_owned(), "users/bob".to_owned()],
            [("assets/a".to_owned(), None), ("assets/b".to_owned(), Some(4))],
            &releases,
        );
        let targets: Vec<_> = grants.targets.iter().map(|(a, v)| (a.as_str(), *v)).collect();
        assert_eq!(targets, [("assets/a", 0), ("assets/a", 1), ("assets/b", 3), ("assets/b", 4)]);
        assert_eq!(grants.principals.len(), 2);
        let bought = Grants::of_entitlement("users/carol".into(), &releases);
        assert_eq!(bought.targets.len(), 2);
        assert!(bought.principals.contains("users/carol"));
    }
}
