//! Proto ↔ domain conversions for use cases.

use highwind_common::validation::Violations;
use highwind_proto::usecase::v1 as pb;

use crate::domain::{
    link::{AssetLink, LinkRole, Selector},
    market::{Entitlement, Listing},
    member::Member,
    names,
    release::{FrozenLink, Release, Snapshot},
    role::Role,
    use_case::{Money, UseCase, UseCaseDraft},
};

use highwind_common::time::timestamp;

fn role_to_proto(role: Role) -> pb::MemberRole {
    match role {
        Role::Owner => pb::MemberRole::Owner,
        Role::Editor => pb::MemberRole::Editor,
        Role::Viewer => pb::MemberRole::Viewer,
    }
}

/// The wire form of a use case as `role` sees it.
pub fn use_case_to_proto(u: &UseCase, role: Role) -> pb::UseCase {
    pb::UseCase {
        name: names::use_case_name(u.id),
        uid: u.id.to_string(),
        display_name: u.display_name.clone(),
        description: u.description.clone(),
        cover_image_uri: u.cover_image_uri.clone(),
        model_card: u.model_card.clone(),
        inference_schema: u.inference_schema.clone(),
        inference_schema_type: if u.inference_schema.is_empty() {
            pb::InferenceSchemaType::Unspecified
        } else {
            pb::InferenceSchemaType::Json
        } as i32,
        version_label: u.version_label.clone(),
        price: Some(money_to_proto(&u.price)),
        published: u.publication.is_some_and(|p| p.active),
        published_release: u
            .publication
            .filter(|p| p.active)
            .map(|p| names::release_name(u.id, p.release_number))
            .unwrap_or_default(),
        listing: u.publication.map(|p| names::listing_name(p.listing_id)).unwrap_or_default(),
        owner: u.owner.clone(),
        labels: u.labels.clone().into_iter().collect(),
        create_time: Some(timestamp(u.create_time)),
        update_time: Some(timestamp(u.update_time)),
        archived: u.archive_time.is_some(),
        archive_time: u.archive_time.map(timestamp),
        etag: u.etag(),
        latest_release: u.latest_release.map(|n| names::release_name(u.id, n)).unwrap_or_default(),
        caller_role: role_to_proto(role) as i32,
        forked_from_release: u.forked_from.clone().unwrap_or_default(),
    }
}

/// The client-supplied fields of a use case.
pub fn draft_from_proto(u: pb::UseCase) -> UseCaseDraft {
    let price = u.price.map(money_from_proto).unwrap_or_default();
    UseCaseDraft {
        display_name: u.display_name,
        description: u.description,
        cover_image_uri: u.cover_image_uri,
        model_card: u.model_card,
        inference_schema: u.inference_schema,
        version_label: u.version_label,
        price,
        labels: u.labels.into_iter().collect(),
    }
}

/// Records a violation when `value` is not an `InferenceSchemaType` of the contract (UNSPECIFIED or JSON).
pub fn check_schema_type(value: i32, violations: &mut Violations) {
    if pb::InferenceSchemaType::try_from(value).is_err() {
        violations.add("use_case.inference_schema_type", format!("{value} is not a schema type: UNSPECIFIED or JSON"));
    }
}

/// The role a proto enum value names, if any.
pub fn role_from_proto(value: i32) -> Option<Role> {
    match pb::MemberRole::try_from(value) {
        Ok(pb::MemberRole::Owner) => Some(Role::Owner),
        Ok(pb::MemberRole::Editor) => Some(Role::Editor),
        Ok(pb::MemberRole::Viewer) => Some(Role::Viewer),
        _ => None,
    }
}

/// The wire form of a member.
pub fn member_to_proto(m: &Member) -> pb::Member {
    pb::Member {
        name: names::member_name(m.use_case_id, m.id),
        uid: m.id.to_string(),
        principal: m.principal.clone(),
        role: role_to_proto(m.role) as i32,
        creator: m.creator.clone(),
        create_time: Some(timestamp(m.create_time)),
        update_time: Some(timestamp(m.update_time)),
        etag: m.etag(),
    }
}

const LINK_ROLES: [(pb::AssetLinkRole, LinkRole); 6] = [
    (pb::AssetLinkRole::Predictor, LinkRole::Predictor),
    (pb::AssetLinkRole::Transformer, LinkRole::Transformer),
    (pb::AssetLinkRole::Dataset, LinkRole::Dataset),
    (pb::AssetLinkRole::Model, LinkRole::Model),
    (pb::AssetLinkRole::Pipeline, LinkRole::Pipeline),
    (pb::AssetLinkRole::App, LinkRole::App),
];

/// The link role a proto enum value names, if any.
pub fn link_role_from_proto(value: i32) -> Option<LinkRole> {
    let role = pb::AssetLinkRole::try_from(value).ok()?;
    LINK_ROLES.iter().find(|(p, _)| *p == role).map(|(_, d)| *d)
}

/// The wire form of a link that resolves to version `resolved` now (`None`: unknown, or nothing usable).
pub fn link_to_proto(l: &AssetLink, resolved: Option<i64>) -> pb::AssetLink {
    let role = LINK_ROLES.iter().find(|(_, d)| *d == l.role).map_or(pb::AssetLinkRole::Unspecified, |(p, _)| *p);
    pb::AssetLink {
        name: names::link_name(l.use_case_id, l.id),
        uid: l.id.to_string(),
        asset: l.asset.clone(),
        version: Some(match &l.selector {
            Selector::Pinned(n) => pb::asset_link::Version::PinnedVersionNumber(*n),
            Selector::Alias(a) => pb::asset_link::Version::Alias(a.clone()),
        }),
        role: role as i32,
        resolved_version: resolved.map(|n| format!("{}/versions/{n}", l.asset)).unwrap_or_default(),
        creator: l.creator.clone(),
        create_time: Some(timestamp(l.create_time)),
        update_time: Some(timestamp(l.update_time)),
        etag: l.etag(),
    }
}

/// The wire form of a release.
pub fn release_to_proto(r: &Release) -> pb::Release {
    pb::Release {
        name: names::release_name(r.use_case_id, r.number),
        uid: r.id.to_string(),
        release_number: r.number,
        description: r.description.clone(),
        links: r.links.iter().map(frozen_to_proto).collect(),
        snapshot: Some(snapshot_to_proto(&r.snapshot)),
        digest: r.digest.clone(),
        creator: r.creator.clone(),
        create_time: Some(timestamp(r.create_time)),
    }
}

fn snapshot_to_proto(s: &Snapshot) -> pb::UseCaseSnapshot {
    pb::UseCaseSnapshot {
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        cover_image_uri: s.cover_image_uri.clone(),
        model_card: s.model_card.clone(),
        inference_schema: s.inference_schema.clone(),
        inference_schema_type: if s.inference_schema.is_empty() {
            pb::InferenceSchemaType::Unspecified
        } else {
            pb::InferenceSchemaType::Json
        } as i32,
        version_label: s.version_label.clone(),
        labels: s.labels.clone().into_iter().collect(),
    }
}

/// The wire form of a price.
pub fn money_to_proto(m: &Money) -> pb::Money {
    pb::Money { currency_code: m.currency_code.clone(), units: m.units, nanos: m.nanos }
}

/// A price from the wire.
pub fn money_from_proto(m: pb::Money) -> Money {
    Money { currency_code: m.currency_code, units: m.units, nanos: m.nanos }
}

/// The wire form of a listing; `caller_entitlement` is the caller's entitlement to the listed release, if any.
pub fn listing_to_proto(l: &Listing, caller_entitlement: Option<&Entitlement>) -> pb::Listing {
    pb::Listing {
        name: names::listing_name(l.id),
        uid: l.id.to_string(),
        use_case: names::use_case_name(l.use_case_id),
        release: l.release_name(),
        state: if l.active { pb::ListingState::Active } else { pb::ListingState::Withdrawn } as i32,
        content: Some(snapshot_to_proto(&l.content)),
        price: Some(money_to_proto(&l.price)),
        seller: l.seller.clone(),
        create_time: Some(timestamp(l.create_time)),
        publish_time: Some(timestamp(l.publish_time)),
        withdraw_time: l.withdraw_time.map(timestamp),
        caller_entitlement: caller_entitlement.map(|e| names::entitlement_name(e.id)).unwrap_or_default(),
    }
}

/// The wire form of an entitlement.
pub fn entitlement_to_proto(e: &Entitlement) -> pb::Entitlement {
    pb::Entitlement {
        name: names::entitlement_name(e.id),
        uid: e.id.to_string(),
        buyer: e.buyer.clone(),
        listing: names::listing_name(e.listing_id),
        use_case: names::use_case_name(e.use_case_id),
        release: names::release_name(e.use_case_id, e.release_number),
        price_paid: Some(money_to_proto(&e.price_paid)),
        payment_reference: e.payment_reference.clone(),
        seller: e.seller.clone(),
        create_time: Some(timestamp(e.create_time)),
    }
}

/// The wire form of a frozen link.
pub fn frozen_to_proto(l: &FrozenLink) -> pb::ResolvedAssetLink {
    pb::ResolvedAssetLink {
        link: l.link.clone(),
        asset: l.asset.clone(),
        asset_version: format!("{}/versions/{}", l.asset, l.version_number),
        version_number: l.version_number,
        manifest_digest: l.manifest_digest.clone(),
        image_digest: l.image_digest.clone(),
        role: LinkRole::parse(&l.role)
            .and_then(|d| LINK_ROLES.iter().find(|(_, r)| *r == d).map(|(p, _)| *p as i32))
            .unwrap_or_default(),
        alias: l.alias.clone().unwrap_or_default(),
    }
}
