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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(parse_use_case_name(&use_case_name(id)), Ok(id));
        assert!(parse_use_case_name(&format!("assets/{id}")).is_err());
        assert!(parse_use_case_name("useCases/nope").is_err());
    }
}
