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
