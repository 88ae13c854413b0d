//! Who may read which asset versions because of use cases and entitlements: members read what their use case's
//! links and releases pin (every version of an asset a link follows by alias); a buyer reads what the acquired
//! release pins. A use case passes on only assets its owners and editors own and linked themselves, so linking
//! (or forking) someone else's asset, or making its owner a member, never shares it further. usecase-svc computes these sets; asset-svc enforces them.

use std::collections::BTreeSet;

use super::{release::FrozenLink, role::Role};

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
    /// every version its releases froze, of the assets its owners and editors own and linked themselves. `links`
    /// are (asset, pinned version, the owner when the owner linked it, else empty).
    pub fn of_use_case<'a>(
        members: impl IntoIterator<Item = (String, Role)>,
        links: impl IntoIterator<Item = (String, Option<i64>, String)>,
        releases: impl IntoIterator<Item = &'a FrozenLink>,
    ) -> Self {
        let members: Vec<(String, Role)> = members.into_iter().collect();
        let sharers = sharers(&members);
        let mut targets: BTreeSet<(String, i64)> = links
            .into_iter()
            .filter(|(_, _, owner)| sharers.contains(owner.as_str()))
            .map(|(asset, pinned, _)| (asset, pinned.unwrap_or(0)))
            .collect();
        targets.extend(
            releases
                .into_iter()
                .filter(|l| sharers.contains(l.owner.as_str()))
                .map(|l| (l.asset.clone(), l.version_number)),
        );
        Self { principals: members.into_iter().map(|(principal, _)| principal).collect(), targets }
    }

    /// An entitlement's: its buyer reads the acquired release's frozen versions.
    pub fn of_entitlement(buyer: String, release: &[FrozenLink]) -> Self {
        Self {
            principals: BTreeSet::from([buyer]),
            targets: release.iter().map(|l| (l.asset.clone(), l.version_number)).collect(),
        }
    }
}

/// The members whose assets the use case may pass on: its owners and editors.
pub fn sharers(members: &[(String, Role)]) -> BTreeSet<&str> {
    members
        .iter()
        .filter(|(principal, role)| role.may_edit() && !principal.is_empty())
        .map(|(principal, _)| principal.as_str())
        .collect()
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
            owner: "users/alice".into(),
            image_digest: String::new(),
        }
    }

    #[test]
    fn aliases_grant_every_version_and_releases_their_frozen_one() {
        let releases = [frozen("assets/a", 1), frozen("assets/b", 3)];
        let alice = "users/alice".to_owned();
        let grants = Grants::of_use_case(
            [(alice.clone(), Role::Owner), ("users/bob".to_owned(), Role::Viewer)],
            [("assets/a".to_owned(), None, alice.clone()), ("assets/b".to_owned(), Some(4), alice.clone())],
            &releases,
        );
        let targets: Vec<_> = grants.targets.iter().map(|(a, v)| (a.as_str(), *v)).collect();
        assert_eq!(targets, [("assets/a", 0), ("assets/a", 1), ("assets/b", 3), ("assets/b", 4)]);
        assert_eq!(grants.principals.len(), 2);
        let bought = Grants::of_entitlement("users/carol".into(), &releases);
        assert_eq!(bought.targets.len(), 2);
        assert!(bought.principals.contains("users/carol"));
    }

    #[test]
    fn only_assets_of_owners_and_editors_are_passed_on() {
        let viewer_owned = ("assets/v".to_owned(), Some(1), "users/viewer".to_owned());
        let outsider_owned = ("assets/o".to_owned(), Some(1), "users/outsider".to_owned());
        let editor_owned = ("assets/e".to_owned(), None, "users/editor".to_owned());
        let grants = Grants::of_use_case(
            [("users/editor".to_owned(), Role::Editor), ("users/viewer".to_owned(), Role::Viewer)],
            [viewer_owned, outsider_owned, editor_owned],
            &[],
        );
        let targets: Vec<_> = grants.targets.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(targets, ["assets/e"]);
    }
}
