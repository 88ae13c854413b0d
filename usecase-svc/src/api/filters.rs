//! The `filter` terms each List of this service understands, parsed once and applied to rows.

use chrono::{DateTime, Utc};
use highwind_common::{
    filter::{self, Op},
    labels,
};

use super::convert::{link_role_from_proto, role_from_proto};
use crate::domain::{
    link::{AssetLink, LinkRole},
    member::Member,
    release::Release,
    role::Role,
    use_case::UseCase,
};

/// ListUseCases: `published`, `role` (the caller's), `labels.<key>`, `display_name`.
#[derive(Debug, Default)]
pub struct UseCaseFilter {
    published: Option<bool>,
    role: Option<Role>,
    labels: Vec<(String, String)>,
    display_name: Option<String>,
}

impl UseCaseFilter {
    /// Parses the terms, or says which one is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, value) in filter::terms(text)? {
            match field.as_str() {
                "published" => parsed.published = Some(filter::boolean("published", &value)?),
                "role" => parsed.role = Some(member_role(&value)?),
                "display_name" => parsed.display_name = Some(value),
                _ => {
                    let key = field.strip_prefix("labels.").filter(|k| labels::valid_key(k)).ok_or_else(|| {
                        format!(
                            "cannot filter use cases on {field:?}: use published, role, labels.<key> or display_name"
                        )
                    })?;
                    parsed.labels.push((key.to_owned(), value));
                }
            }
        }
        Ok(parsed)
    }

    /// Whether `use_case`, on which the caller has `role`, passes.
    pub fn keeps(&self, use_case: &UseCase, role: Role) -> bool {
        let published = use_case.publication.is_some_and(|p| p.active);
        self.published.is_none_or(|p| p == published)
            && self.role.is_none_or(|r| r == role)
            && self.display_name.as_ref().is_none_or(|n| *n == use_case.display_name)
            && self.labels.iter().all(|(k, v)| use_case.labels.get(k) == Some(v))
    }
}

/// ListMembers: `role`, `principal`.
#[derive(Debug, Default)]
pub struct MemberFilter {
    role: Option<Role>,
    principal: Option<String>,
}

impl MemberFilter {
    /// Parses the terms, or says which one is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, value) in filter::terms(text)? {
            match field.as_str() {
                "role" => parsed.role = Some(member_role(&value)?),
                "principal" => parsed.principal = Some(value),
                _ => {
                    return Err(format!(
                        "cannot filter members on {}: use role or principal",
                        highwind_common::status_bounds::echo(&field)
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Whether `member` passes.
    pub fn keeps(&self, member: &Member) -> bool {
        self.role.is_none_or(|r| r == member.role) && self.principal.as_ref().is_none_or(|p| *p == member.principal)
    }
}

/// ListAssetLinks: `role`, `asset`.
#[derive(Debug, Default)]
pub struct LinkFilter {
    role: Option<LinkRole>,
    asset: Option<String>,
}

impl LinkFilter {
    /// Parses the terms, or says which one is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, value) in filter::terms(text)? {
            match field.as_str() {
                "role" => {
                    let name = value.strip_prefix("ASSET_LINK_ROLE_").unwrap_or(&value);
                    let role = LinkRole::parse(name).or_else(|| value.parse().ok().and_then(link_role_from_proto));
                    parsed.role = Some(role.ok_or_else(|| {
                        format!(
                            "unknown role {}: use PREDICTOR, TRANSFORMER, DATASET, MODEL, PIPELINE or APP",
                            highwind_common::status_bounds::echo(&value)
                        )
                    })?);
                }
                "asset" => parsed.asset = Some(value),
                _ => {
                    return Err(format!(
                        "cannot filter links on {}: use role or asset",
                        highwind_common::status_bounds::echo(&field)
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Whether `link` passes.
    pub fn keeps(&self, link: &AssetLink) -> bool {
        self.role.is_none_or(|r| r == link.role) && self.asset.as_ref().is_none_or(|a| *a == link.asset)
    }
}

/// ListReleases: `creator`, and `create_time` compared with an RFC 3339 time.
#[derive(Debug, Default)]
pub struct ReleaseFilter {
    creator: Option<String>,
    created: Vec<(Op, DateTime<Utc>)>,
}

impl ReleaseFilter {
    /// Parses the terms, or says which one is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (field, op, value) in filter::comparisons(text)? {
            match (field.as_str(), op) {
                ("creator", Op::Eq) => parsed.creator = Some(value),
                ("create_time", op) => {
                    let time = DateTime::parse_from_rfc3339(&value).map_err(|_| {
                        format!(
                            "create_time takes an RFC 3339 time such as 2025-01-01T00:00:00Z, got {}",
                            highwind_common::status_bounds::echo(&value)
                        )
                    })?;
                    parsed.created.push((op, time.with_timezone(&Utc)));
                }
                _ => {
                    return Err(format!(
                        "cannot filter releases on {}: use creator = or create_time >, <, =",
                        highwind_common::status_bounds::echo(&field)
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Whether `release` passes.
    pub fn keeps(&self, release: &Release) -> bool {
        self.creator.as_ref().is_none_or(|c| *c == release.creator)
            && self.created.iter().all(|(op, time)| {
                let t = release.create_time;
                match op {
                    Op::Eq => t == *time,
                    Op::Gt => t > *time,
                    Op::Ge => t >= *time,
                    Op::Lt => t < *time,
                    Op::Le => t <= *time,
                }
            })
    }
}

fn member_role(value: &str) -> Result<Role, String> {
    let name = value.strip_prefix("MEMBER_ROLE_").unwrap_or(value);
    Role::parse(name).or_else(|| value.parse().ok().and_then(role_from_proto)).ok_or_else(|| {
        format!("unknown role {}: use OWNER, EDITOR or VIEWER", highwind_common::status_bounds::echo(value))
    })
}
