//! Resource names: `assets/{asset}` where `{asset}` is a UUIDv7.

use uuid::Uuid;

/// Collection prefix of asset names.
const ASSETS: &str = "assets/";

/// The name of the asset with `id`.
pub fn asset_name(id: Uuid) -> String {
    format!("{ASSETS}{id}")
}

/// The id in `assets/{asset}`, or a description of what is wrong with `name`.
pub fn parse_asset_name(name: &str) -> Result<Uuid, String> {
    let Some(id) = name.strip_prefix(ASSETS) else {
        return Err(format!("must be of the form assets/{{asset}}, got {:?}", truncate(name)));
    };
    // One spelling per asset: the lowercase hyphenated form this service hands out.
    Uuid::try_parse(id)
        .ok()
        .filter(|parsed| parsed.hyphenated().to_string() == id)
        .ok_or_else(|| format!("{:?} is not an asset id (a lowercase hyphenated UUID)", truncate(id)))
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(80).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_other_forms() {
        let id = Uuid::now_v7();
        assert_eq!(parse_asset_name(&asset_name(id)), Ok(id));
        assert!(parse_asset_name(&id.to_string()).is_err());
        assert!(parse_asset_name("assets/not-a-uuid").is_err());
        assert!(parse_asset_name("useCases/0190b5b2-8c1e-7000-8000-000000000000").is_err());
        assert!(parse_asset_name(&format!("assets/{}", id.to_string().to_uppercase())).is_err());
        assert!(parse_asset_name(&format!("assets/{}", id.simple())).is_err());
    }
}

/// How a version name selects a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// `assets/{asset}/versions/{number}`.
    Number(i64),
    /// `assets/{asset}/versions/latest`: the newest READY version.
    Latest,
    /// `assets/{asset}/versions/{alias}`.
    Alias(String),
}

/// The name of version `number` of asset `id`.
pub fn version_name(id: Uuid, number: i64) -> String {
    format!("{ASSETS}{id}/versions/{number}")
}

/// The name of upload `upload` of asset `id`.
pub fn upload_name(id: Uuid, upload: Uuid) -> String {
    format!("{ASSETS}{id}/uploads/{upload}")
}

/// The asset and version selected by `assets/{asset}/versions/{number-or-alias}`.
pub fn parse_version_name(name: &str) -> Result<(Uuid, VersionRef), String> {
    let (asset, version) = split_child(name, "versions")?;
    let selector = if let Ok(number) = version.parse::<i64>() {
        if number < 1 {
            return Err(format!("version numbers start at 1, got {number}"));
        }
        VersionRef::Number(number)
    } else if version == "latest" {
        VersionRef::Latest
    } else if !version.is_empty()
        && version.len() <= 63
        && version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        VersionRef::Alias(version.to_owned())
    } else {
        return Err(format!("{:?} is neither a version number nor an alias", truncate(version)));
    };
    Ok((asset, selector))
}

/// The asset and upload ids in `assets/{asset}/uploads/{upload}`.
pub fn parse_upload_name(name: &str) -> Result<(Uuid, Uuid), String> {
    let (asset, upload) = split_child(name, "uploads")?;
    let id = Uuid::try_parse(upload)
        .ok()
        .filter(|parsed| parsed.hyphenated().to_string() == upload)
        .ok_or_else(|| format!("{:?} is not an upload id", truncate(upload)))?;
    Ok((asset, id))
}

fn split_child<'a>(name: &'a str, collection: &str) -> Result<(Uuid, &'a str), String> {
    let form = || format!("must be of the form assets/{{asset}}/{collection}/{{id}}, got {:?}", truncate(name));
    let rest = name.strip_prefix(ASSETS).ok_or_else(form)?;
    let (asset, tail) = rest.split_once('/').ok_or_else(form)?;
    let child = tail.strip_prefix(collection).and_then(|t| t.strip_prefix('/')).ok_or_else(form)?;
    if child.contains('/') {
        return Err(form());
    }
    let asset = parse_asset_name(&format!("{ASSETS}{asset}"))?;
    Ok((asset, child))
}

#[cfg(test)]
mod child_tests {
    use super::*;

    #[test]
    fn version_and_upload_names() {
        let id = Uuid::now_v7();
        assert_eq!(parse_version_name(&version_name(id, 3)), Ok((id, VersionRef::Number(3))));
        assert_eq!(parse_version_name(&format!("assets/{id}/versions/latest")), Ok((id, VersionRef::Latest)));
        assert_eq!(
            parse_version_name(&format!("assets/{id}/versions/production")),
            Ok((id, VersionRef::Alias("production".into())))
        );
        for bad in ["0", "-1", "", "Prod", "a/b"] {
            assert!(parse_version_name(&format!("assets/{id}/versions/{bad}")).is_err(), "{bad}");
        }
        assert!(parse_version_name(&format!("assets/{id}/uploads/1")).is_err());
        let upload = Uuid::now_v7();
        assert_eq!(parse_upload_name(&upload_name(id, upload)), Ok((id, upload)));
        assert!(parse_upload_name(&format!("assets/{id}/uploads/x")).is_err());
    }
}
