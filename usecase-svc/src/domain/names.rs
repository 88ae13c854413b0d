//! Resource names: `useCases/{use_case}` where `{use_case}` is a UUIDv7.

use uuid::Uuid;

const USE_CASES: &str = "useCases/";

/// The name of the use case with `id`.
pub fn use_case_name(id: Uuid) -> String {
    format!("{USE_CASES}{id}")
}

/// The id in `useCases/{use_case}`, or what is wrong with `name`.
pub fn parse_use_case_name(name: &str) -> Result<Uuid, String> {
    let id = name.strip_prefix(USE_CASES).ok_or_else(|| "must be of the form useCases/{use_case}".to_owned())?;
    Uuid::try_parse(id)
        .ok()
        .filter(|parsed| parsed.hyphenated().to_string() == id)
        .ok_or_else(|| "is not a use case id (a lowercase hyphenated UUID)".to_owned())
}

/// The name of member `member` of use case `use_case`.
pub fn member_name(use_case: Uuid, member: Uuid) -> String {
    format!("{USE_CASES}{use_case}/members/{member}")
}

/// The use case and member ids in `useCases/{use_case}/members/{member}`.
pub fn parse_member_name(name: &str) -> Result<(Uuid, Uuid), String> {
    let form = || "must be of the form useCases/{use_case}/members/{member}".to_owned();
    let rest = name.strip_prefix(USE_CASES).ok_or_else(form)?;
    let (use_case, member) = rest.split_once("/members/").ok_or_else(form)?;
    let use_case = parse_use_case_name(&format!("{USE_CASES}{use_case}"))?;
    let member =
        Uuid::try_parse(member).ok().filter(|parsed| parsed.hyphenated().to_string() == member).ok_or_else(form)?;
    Ok((use_case, member))
}

/// The name of link `link` of use case `use_case`.
pub fn link_name(use_case: Uuid, link: Uuid) -> String {
    format!("{USE_CASES}{use_case}/assetLinks/{link}")
}

/// The use case and link ids in `useCases/{use_case}/assetLinks/{link}`.
pub fn parse_link_name(name: &str) -> Result<(Uuid, Uuid), String> {
    let form = || "must be of the form useCases/{use_case}/assetLinks/{link}".to_owned();
    let rest = name.strip_prefix(USE_CASES).ok_or_else(form)?;
    let (use_case, link) = rest.split_once("/assetLinks/").ok_or_else(form)?;
    let use_case = parse_use_case_name(&format!("{USE_CASES}{use_case}"))?;
    let link = Uuid::try_parse(link).ok().filter(|parsed| parsed.hyphenated().to_string() == link).ok_or_else(form)?;
    Ok((use_case, link))
}

/// The name of release `number` of use case `use_case`.
pub fn release_name(use_case: Uuid, number: i64) -> String {
    format!("{USE_CASES}{use_case}/releases/{number}")
}

/// The use case id and release number in `useCases/{use_case}/releases/{number}`.
pub fn parse_release_name(name: &str) -> Result<(Uuid, i64), String> {
    let form = || "must be of the form useCases/{use_case}/releases/{number}".to_owned();
    let rest = name.strip_prefix(USE_CASES).ok_or_else(form)?;
    let (use_case, number) = rest.split_once("/releases/").ok_or_else(form)?;
    let use_case = parse_use_case_name(&format!("{USE_CASES}{use_case}"))?;
    let number: i64 = number.parse().ok().filter(|n| *n >= 1).ok_or_else(form)?;
    Ok((use_case, number))
}

/// The name of listing `id`.
pub fn listing_name(id: Uuid) -> String {
    format!("listings/{id}")
}

/// The id in `listings/{listing}`.
pub fn parse_listing_name(name: &str) -> Result<Uuid, String> {
    top_level(name, "listings/", "must be of the form listings/{listing}")
}

/// The name of entitlement `id`.
pub fn entitlement_name(id: Uuid) -> String {
    format!("entitlements/{id}")
}

/// The id in `entitlements/{entitlement}`.
pub fn parse_entitlement_name(name: &str) -> Result<Uuid, String> {
    top_level(name, "entitlements/", "must be of the form entitlements/{entitlement}")
}

fn top_level(name: &str, prefix: &str, form: &str) -> Result<Uuid, String> {
    let id = name.strip_prefix(prefix).ok_or_else(|| form.to_owned())?;
    Uuid::try_parse(id).ok().filter(|parsed| parsed.hyphenated().to_string() == id).ok_or_else(|| form.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(parse_use_case_name(&use_case_name(id)), Ok(id));
        assert!(parse_use_case_name(&format!("assets/{id}")).is_err());
        assert!(parse_use_case_name("useCases/nope").is_err());
        let member = Uuid::now_v7();
        assert_eq!(parse_member_name(&member_name(id, member)), Ok((id, member)));
        assert!(parse_member_name(&format!("useCases/{id}/members/x")).is_err());
        assert_eq!(parse_listing_name(&listing_name(id)), Ok(id));
        assert_eq!(parse_entitlement_name(&entitlement_name(id)), Ok(id));
        assert!(parse_listing_name(&entitlement_name(id)).is_err());
        assert!(parse_listing_name(&format!("listings/{}", id.to_string().to_uppercase())).is_err());
    }
}
