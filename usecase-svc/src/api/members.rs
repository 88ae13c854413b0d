//! Members of a use case: owners manage them; any member may read them and may leave.

use chrono::Utc;
use highwind_common::{page_token::PageTokens, principal::Principal, validation::Violations};
use highwind_proto::usecase::v1 as pb;

use super::convert::{member_to_proto, role_from_proto};
use super::{
    filters::MemberFilter,
    paging::{READ_BATCH, SortValue, caller_role, check_request_id, idempotency_key, page_limit, page_of, parse_order},
};
use crate::{
    domain::{
        member::{Change, MAX_PRINCIPAL, Member, valid_principal},
        names,
        role::Role,
    },
    error::Error,
    store::{MemberAdd, UseCaseRepository, read_all},
};

fn require_owner(role: Role, name: &str) -> Result<(), Error> {
    if role.may_administer() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!("only an owner may manage the members of {name}")))
    }
}

fn outcome(change: Change, name: &str) -> Result<Member, Error> {
    match change {
        Change::Done(member) => Ok(member),
        Change::Missing => Err(Error::NotFound(name.to_owned())),
        Change::Stale => Err(Error::StaleEtag(name.to_owned())),
        Change::LastOwner => Err(Error::LastOwner(name.to_owned())),
    }
}

fn revision(etag: &str) -> Result<Option<i64>, Error> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| Error::Invalid(Violations::one("etag", "not an etag this service issued")))
}

/// `CreateMember`: a retry with the same `request_id` by the same owner returns the member the first call added.
pub async fn create(
    repo: &dyn UseCaseRepository,
    principal: &Principal,
    request: pb::CreateMemberRequest,
) -> Result<pb::Member, Error> {
    let mut violations = Violations::new();
    check_request_id(&request.request_id, &mut violations);
    let member = request.member.unwrap_or_default();
    if !valid_principal(&member.principal) {
        violations.add(
            "member.principal",
            format!("must be users/{{id}}: letters, digits and . _ @ - +, at most {MAX_PRINCIPAL} characters in all"),
        );
    }
    let new_role = role_from_proto(member.role);
    if new_role.is_none() {
        violations.add("member.role", "required: OWNER, EDITOR or VIEWER");
    }
    if let Err(reason) = names::parse_use_case_name(&request.parent) {
        violations.add("parent", reason);
    }
    let Some(new_role) = new_role.filter(|_| violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    let (use_case, caller) = caller_role(repo, principal, "parent", &request.parent).await?;
    require_owner(caller, &request.parent)?;
    let added = Member::new(use_case, &member.principal, new_role, principal.as_str(), Utc::now());
    match repo.add_member(&added, idempotency_key(&request.request_id)).await? {
        MemberAdd::Added => {
            tracing::info!(use_case = %use_case, member = %added.principal, role = added.role.as_str(), "member added");
            Ok(member_to_proto(&added))
        }
        MemberAdd::Earlier(first) => Ok(member_to_proto(&first)),
        MemberAdd::AlreadyMember => Err(Error::AlreadyMember(member.principal)),
    }
}

/// `GetMember`.
pub async fn get(repo: &dyn UseCaseRepository, principal: &Principal, name: &str) -> Result<pb::Member, Error> {
    let (use_case, member) =
        names::parse_member_name(name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    caller_role(repo, principal, "name", &names::use_case_name(use_case)).await?;
    let member = repo.get_member(use_case, member).await?.ok_or_else(|| Error::NotFound(name.to_owned()))?;
    Ok(member_to_proto(&member))
}

/// `ListMembers`.
pub async fn list(
    repo: &dyn UseCaseRepository,
    page_tokens: &PageTokens,
    principal: &Principal,
    request: pb::ListMembersRequest,
) -> Result<pb::ListMembersResponse, Error> {
    let mut violations = Violations::new();
    let limit = page_limit(request.page_size, &mut violations);
    let filter = MemberFilter::parse(&request.filter).unwrap_or_else(|e| {
        violations.add("filter", e);
        MemberFilter::default()
    });
    let order =
        parse_order(&request.order_by, &["create_time", "principal"], ("create_time", false)).unwrap_or_else(|e| {
            violations.add("order_by", e);
            ("create_time", false)
        });
    if !violations.is_empty() {
        return Err(Error::Invalid(violations));
    }
    let (use_case, _) = caller_role(repo, principal, "parent", &request.parent).await?;
    let rows = read_all(
        READ_BATCH,
        move |after| repo.list_members(use_case, after, READ_BATCH),
        |m| (m.create_time.timestamp_micros(), m.id),
    )
    .await?;
    let keyed = rows
        .into_iter()
        .filter(|m| filter.keeps(m))
        .map(|m| {
            let value = match order.0 {
                "principal" => SortValue::Text(m.principal.clone()),
                _ => SortValue::Int(m.create_time.timestamp_micros()),
            };
            ((value, m.id.to_string()), m)
        })
        .collect();
    let scope = format!("members|{principal}|{use_case}|{filter:?}|{order:?}");
    let (page, next_page_token) = page_of(keyed, order.1, limit, page_tokens, &scope, &request.page_token)?;
    Ok(pb::ListMembersResponse { members: page.iter().map(member_to_proto).collect(), next_page_token })
}

/// `UpdateMember`: only the role changes.
pub async fn update(
    repo: &dyn UseCaseRepository,
    principal: &Principal,
    request: pb::UpdateMemberRequest,
) -> Result<pb::Member, Error> {
    let member = request.member.unwrap_or_default();
    let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
    let mut violations = Violations::new();
    if paths.iter().any(|p| p != "role") {
        violations.add("update_mask", "only role can change");
    }
    let new_role = role_from_proto(member.role);
    if new_role.is_none() {
        violations.add("member.role", "required: OWNER, EDITOR or VIEWER");
    }
    let ids = names::parse_member_name(&member.name).map_err(|e| violations.add("member.name", e)).ok();
    let expected = revision(&member.etag).map_err(|e| match e {
        Error::Invalid(v) => v,
        _ => Violations::new(),
    });
    let expected = match expected {
        Ok(expected) => expected,
        Err(more) => {
            violations.merge(more);
            None
        }
    };
    let (Some((use_case, id)), Some(new_role), true) = (ids, new_role, violations.is_empty()) else {
        return Err(Error::Invalid(violations));
    };
    let (_, caller) = caller_role(repo, principal, "member.name", &names::use_case_name(use_case)).await?;
    require_owner(caller, &member.name)?;
    let changed = repo.set_role(use_case, id, new_role, expected, Utc::now()).await?;
    Ok(member_to_proto(&outcome(changed, &member.name)?))
}

/// `DeleteMember`: owners remove anyone; any member may remove themself.
pub async fn delete(
    repo: &dyn UseCaseRepository,
    principal: &Principal,
    request: pb::DeleteMemberRequest,
) -> Result<(), Error> {
    let (use_case, id) =
        names::parse_member_name(&request.name).map_err(|reason| Error::Invalid(Violations::one("name", reason)))?;
    let expected = revision(&request.etag)?;
    let (_, caller) = caller_role(repo, principal, "name", &names::use_case_name(use_case)).await?;
    let target = repo.get_member(use_case, id).await?.ok_or_else(|| Error::NotFound(request.name.clone()))?;
    if target.principal != principal.as_str() {
        require_owner(caller, &request.name)?;
    }
    outcome(repo.remove_member(use_case, id, expected).await?, &request.name)?;
    tracing::info!(use_case = %use_case, member = %target.principal, "member removed");
    Ok(())
}
