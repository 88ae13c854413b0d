//! The use case resource: what a valid one is and how an update changes it.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use highwind_common::{labels, validation::Violations};
use uuid::Uuid;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Longest model card, in characters.
pub const MAX_MODEL_CARD: usize = 100_000;
/// Longest inference schema, in characters.
pub const MAX_INFERENCE_SCHEMA: usize = 100_000;
/// Longest version label, in characters.
pub const MAX_VERSION_LABEL: usize = 64;
/// Longest cover image URI, in bytes.
pub const MAX_URI: usize = 2_048;

/// A price, `google.type.Money`-like: an ISO 4217 code, whole units and nano units.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Money {
    /// `USD`, `EUR`, … (empty with zero amounts: free).
    pub currency_code: String,
    /// Whole units.
    pub units: i64,
    /// Billionths of a unit, 0 to 999,999,999.
    pub nanos: i32,
}

impl Money {
    /// Zero units and nanos: free.
    pub fn is_zero(&self) -> bool {
        self.units == 0 && self.nanos == 0
    }

    /// The same amount of money: equal amounts in the same currency, or both zero.
    pub fn same_amount(&self, other: &Self) -> bool {
        (self.is_zero() && other.is_zero()) || self == other
    }
}

impl std::fmt::Display for Money {
    /// `12.5 USD`, or `free`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_zero() {
            return f.write_str("free");
        }
        let fraction = format!("{:09}", self.nanos);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{} {}", self.units, self.currency_code)
        } else {
            write!(f, "{}.{fraction} {}", self.units, self.currency_code)
        }
    }
}

/// A stored use case.
#[derive(Debug, Clone, PartialEq)]
pub struct UseCase {
    /// UUIDv7.
    pub id: Uuid,
    /// The principal who created it (its first owner).
    pub owner: String,
    /// 1 to 200 characters.
    pub display_name: String,
    /// Free text.
    pub description: String,
    /// Empty or an http(s) URI.
    pub cover_image_uri: String,
    /// Markdown.
    pub model_card: String,
    /// JSON Schema text of an inference request.
    pub inference_schema: String,
    /// Free text such as `v1.2`.
    pub version_label: String,
    /// Price for the marketplace.
    pub price: Money,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Microsecond precision.
    pub create_time: DateTime<Utc>,
    /// Changes on every update.
    pub update_time: DateTime<Utc>,
    /// Set while archived.
    pub archive_time: Option<DateTime<Utc>>,
    /// Incremented on every change; the etag is derived from it.
    pub revision: i64,
    /// The release it was forked from, `useCases/{u}/releases/{n}`.
    pub forked_from: Option<String>,
    /// Derived when read: the newest release's number.
    pub latest_release: Option<i64>,
    /// Derived when read: the use case's listing, if it was ever published.
    pub publication: Option<Publication>,
}

/// A use case's listing as the use case shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publication {
    /// The listing.
    pub listing_id: Uuid,
    /// The release it exposes.
    pub release_number: i64,
    /// Not withdrawn.
    pub active: bool,
}

/// The client-supplied fields of a use case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UseCaseDraft {
    /// See [`UseCase::display_name`].
    pub display_name: String,
    /// See [`UseCase::description`].
    pub description: String,
    /// See [`UseCase::cover_image_uri`].
    pub cover_image_uri: String,
    /// See [`UseCase::model_card`].
    pub model_card: String,
    /// See [`UseCase::inference_schema`].
    pub inference_schema: String,
    /// See [`UseCase::version_label`].
    pub version_label: String,
    /// See [`UseCase::price`].
    pub price: Money,
    /// See [`UseCase::labels`].
    pub labels: BTreeMap<String, String>,
}

/// A field an update may change, by its mask path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UseCaseField {
    DisplayName,
    Description,
    CoverImageUri,
    ModelCard,
    InferenceSchema,
    InferenceSchemaType,
    VersionLabel,
    Price,
    Labels,
}

impl UseCaseField {
    const PATHS: [(&'static str, Self); 9] = [
        ("display_name", Self::DisplayName),
        ("description", Self::Description),
        ("cover_image_uri", Self::CoverImageUri),
        ("model_card", Self::ModelCard),
        ("inference_schema", Self::InferenceSchema),
        ("inference_schema_type", Self::InferenceSchemaType),
        ("version_label", Self::VersionLabel),
        ("price", Self::Price),
        ("labels", Self::Labels),
    ];

    /// The field a mask path names.
    pub fn parse(path: &str) -> Option<Self> {
        Self::PATHS.iter().find(|(p, _)| *p == path).map(|(_, f)| *f)
    }

    /// Every path an update accepts (besides `*`, which means all of them).
    pub fn known_paths() -> String {
        Self::PATHS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
    }

    /// Every field an update may change: what the mask `*` names.
    pub fn all() -> impl Iterator<Item = Self> {
        Self::PATHS.iter().map(|(_, f)| *f)
    }

    /// The fields `draft` sets: what an update without a mask changes.
    pub fn set_in(draft: &UseCaseDraft) -> Vec<Self> {
        [
            (!draft.display_name.is_empty(), Self::DisplayName),
            (!draft.description.is_empty(), Self::Description),
            (!draft.cover_image_uri.is_empty(), Self::CoverImageUri),
            (!draft.model_card.is_empty(), Self::ModelCard),
            (!draft.inference_schema.is_empty(), Self::InferenceSchema),
            (!draft.version_label.is_empty(), Self::VersionLabel),
            (draft.price != Money::default(), Self::Price),
            (!draft.labels.is_empty(), Self::Labels),
        ]
        .into_iter()
        .filter_map(|(set, field)| set.then_some(field))
        .collect()
    }
}

impl UseCase {
    /// A new use case created by `owner`, or every reason `draft` is not a valid one.
    pub fn create(draft: UseCaseDraft, owner: &str, now: DateTime<Utc>) -> Result<Self, Violations> {
        let now = now.trunc_subsecs(6);
        let use_case = Self {
            id: Uuid::now_v7(),
            owner: owner.to_owned(),
            display_name: draft.display_name,
            description: draft.description,
            cover_image_uri: draft.cover_image_uri,
            model_card: draft.model_card,
            inference_schema: draft.inference_schema,
            version_label: draft.version_label,
            price: draft.price,
            labels: draft.labels,
            create_time: now,
            update_time: now,
            archive_time: None,
            revision: 1,
            forked_from: None,
            latest_release: None,
            publication: None,
        };
        let mut violations = Violations::new();
        use_case.validate(&mut violations);
        violations.into_result(use_case)
    }

    /// This use case with `fields` taken from `draft`, or why that would be invalid.
    pub fn updated(
        &self,
        draft: &UseCaseDraft,
        fields: &[UseCaseField],
        now: DateTime<Utc>,
    ) -> Result<Self, Violations> {
        let mut next = self.clone();
        for field in fields {
            match field {
                UseCaseField::DisplayName => next.display_name.clone_from(&draft.display_name),
                UseCaseField::Description => next.description.clone_from(&draft.description),
                UseCaseField::CoverImageUri => next.cover_image_uri.clone_from(&draft.cover_image_uri),
                UseCaseField::ModelCard => next.model_card.clone_from(&draft.model_card),
                UseCaseField::InferenceSchema => next.inference_schema.clone_from(&draft.inference_schema),
                // Nothing stored: JSON is the only format, so the type follows from whether there is a schema.
                UseCaseField::InferenceSchemaType => {}
                UseCaseField::VersionLabel => next.version_label.clone_from(&draft.version_label),
                UseCaseField::Price => next.price = draft.price.clone(),
                UseCaseField::Labels => next.labels.clone_from(&draft.labels),
            }
        }
        let mut violations = Violations::new();
        next.validate(&mut violations);
        next.update_time = now.trunc_subsecs(6).max(self.update_time);
        next.revision = self.revision + 1;
        violations.into_result(next)
    }

    /// This use case archived (`Some`) or restored (`None`).
    pub fn with_archive_time(&self, archive_time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        Self {
            archive_time,
            update_time: now.trunc_subsecs(6).max(self.update_time),
            revision: self.revision + 1,
            ..self.clone()
        }
    }

    /// Whether `next` asks buyers for a different amount than this use case does: a change reserved for owners.
    pub fn price_changes(&self, next: &Self) -> bool {
        !self.price.same_amount(&next.price)
    }

    /// Opaque concurrency token.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }

    fn validate(&self, violations: &mut Violations) {
        let chars = |s: &str| s.chars().count();
        let name_len = chars(&self.display_name);
        if name_len == 0 || name_len > MAX_DISPLAY_NAME || self.display_name.trim().is_empty() {
            violations
                .add("use_case.display_name", format!("required: 1 to {MAX_DISPLAY_NAME} characters, not only spaces"));
        } else if self.display_name.chars().any(char::is_control) {
            violations.add("use_case.display_name", "must not contain control characters");
        }
        if chars(&self.description) > MAX_DESCRIPTION {
            violations.add("use_case.description", format!("at most {MAX_DESCRIPTION} characters"));
        }
        if !self.cover_image_uri.is_empty() && !highwind_common::validation::is_http_uri(&self.cover_image_uri, MAX_URI)
        {
            violations
                .add("use_case.cover_image_uri", format!("must be an http or https URI of at most {MAX_URI} bytes"));
        }
        if chars(&self.model_card) > MAX_MODEL_CARD {
            violations.add("use_case.model_card", format!("at most {MAX_MODEL_CARD} characters"));
        }
        if chars(&self.version_label) > MAX_VERSION_LABEL || self.version_label.chars().any(char::is_control) {
            violations.add(
                "use_case.version_label",
                format!("at most {MAX_VERSION_LABEL} characters, no control characters"),
            );
        }
        // Counted before parsing, so an oversized document costs no JSON or schema work.
        if chars(&self.inference_schema) > MAX_INFERENCE_SCHEMA {
            violations.add("use_case.inference_schema", format!("at most {MAX_INFERENCE_SCHEMA} characters"));
        } else if !self.inference_schema.is_empty()
            && let Err(reason) = check_json_schema(&self.inference_schema)
        {
            violations.add("use_case.inference_schema", reason);
        }
        let price = &self.price;
        if price.units < 0 || !(0..1_000_000_000).contains(&price.nanos) {
            violations.add("use_case.price", "units must not be negative and nanos must be 0 to 999,999,999");
        }
        let priced = price.units > 0 || price.nanos > 0;
        let code_ok = price.currency_code.len() == 3 && price.currency_code.bytes().all(|b| b.is_ascii_uppercase());
        if (priced || !price.currency_code.is_empty()) && !code_ok {
            violations.add("use_case.price.currency_code", "a three-letter ISO 4217 code such as USD");
        }
        labels::validate(&self.labels, "use_case.labels", violations);
    }
}

/// Whether `text` is a JSON Schema document: a JSON object valid against the meta-schema of its draft (`$schema`,
/// 2020-12 when absent) that compiles, with every `$ref` resolving inside the document (nothing is fetched).
fn check_json_schema(text: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("a JSON Schema here is a JSON object".into());
    }
    let meta = jsonschema::meta::try_validate(&value)
        .map_err(|_| "unknown \"$schema\": use a JSON Schema draft 4, 6, 7, 2019-09 or 2020-12 URI".to_owned())?;
    meta.map_err(|e| at(&e.instance_path.to_string(), &e.to_string()))?;
    jsonschema::validator_for(&value).map(drop).map_err(|e| at(&e.instance_path.to_string(), &e.to_string()))
}

/// `reason`, prefixed by where in the document it applies.
fn at(pointer: &str, reason: &str) -> String {
    if pointer.is_empty() { reason.to_owned() } else { format!("at {pointer}: {reason}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str) -> UseCaseDraft {
        UseCaseDraft { display_name: name.into(), ..UseCaseDraft::default() }
    }

    #[test]
    fn every_violation_is_reported() {
        let bad = UseCaseDraft {
            display_name: String::new(),
            inference_schema: "[1, 2]".into(),
            price: Money { currency_code: "usd".into(), units: -1, nanos: 0 },
            cover_image_uri: "ftp://x".into(),
            ..UseCaseDraft::default()
        };
        let err = UseCase::create(bad, "users/a", Utc::now()).expect_err("invalid");
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "use_case.display_name",
                "use_case.cover_image_uri",
                "use_case.inference_schema",
                "use_case.price",
                "use_case.price.currency_code"
            ]
        );
    }

    #[test]
    fn schemas_are_checked_and_free_is_fine() {
        let mut ok = draft("iris");
        ok.inference_schema =
            r#"{"type":"object","properties":{"inputs":{"type":"array"}},"required":["inputs"]}"#.into();
        assert!(UseCase::create(ok, "users/a", Utc::now()).is_ok());
        for bad_schema in [
            r#"{"type":"thing"}"#,
            r#"{"properties":{"x":{"minLength":-1}}}"#,
            r#"{"required":"inputs"}"#,
            r#"{"$ref":"https://example.com/elsewhere.json"}"#,
            r##"{"$ref":"#/$defs/missing"}"##,
            r#"{"$schema":"https://example.com/not-a-draft","type":"object"}"#,
            r#"{"pattern":"(unclosed"}"#,
            "true",
        ] {
            let mut bad = draft("iris");
            bad.inference_schema = bad_schema.into();
            let refused = UseCase::create(bad, "users/a", Utc::now()).expect_err(bad_schema);
            let fields: Vec<_> = refused.iter().map(|v| v.field.as_str()).collect();
            assert_eq!(fields, ["use_case.inference_schema"], "{bad_schema}");
        }
        let mut draft7 = draft("iris");
        draft7.inference_schema =
            r##"{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"row":{"type":"array"}},"items":{"$ref":"#/definitions/row"}}"##.into();
        assert!(UseCase::create(draft7, "users/a", Utc::now()).is_ok(), "other drafts and local references");
        let mut priced = draft("paid");
        priced.price = Money { currency_code: "USD".into(), units: 10, nanos: 500_000_000 };
        assert!(UseCase::create(priced, "users/a", Utc::now()).is_ok());
    }

    #[test]
    fn updates_touch_only_masked_fields() {
        let original = UseCase::create(draft("before"), "users/a", Utc::now()).expect("valid");
        let change =
            UseCaseDraft { display_name: "after".into(), model_card: "# ignored".into(), ..UseCaseDraft::default() };
        let next = original.updated(&change, &[UseCaseField::DisplayName], Utc::now()).expect("valid");
        assert_eq!(next.display_name, "after");
        assert_eq!(next.model_card, "");
        assert_ne!(next.etag(), original.etag());
    }
}
