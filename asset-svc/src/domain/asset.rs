//! The asset resource: what a valid asset is, how an update changes one, and who may see it.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use highwind_common::validation::Violations;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use highwind_common::labels;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Longest cover image URI, in bytes.
pub const MAX_URI: usize = 2_048;
/// Longest model framework text.
pub const MAX_FRAMEWORK: usize = 200;
/// Longest model card, in characters.
pub const MAX_MODEL_CARD: usize = 100_000;
/// Longest inference schema, in bytes.
pub const MAX_INFERENCE_SCHEMA: usize = 1_000_000;

/// What an asset holds; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssetKind {
    /// Uploaded files.
    Dataset,
    /// A repository of OCI images.
    DockerRepo,
    /// Model files with framework and format.
    Model,
    /// Compiled KFP IR YAML.
    Pipeline,
}

impl AssetKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 4] = [Self::Dataset, Self::DockerRepo, Self::Model, Self::Pipeline];

    /// The stored and filterable spelling (`DATASET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dataset => "DATASET",
            Self::DockerRepo => "DOCKER_REPO",
            Self::Model => "MODEL",
            Self::Pipeline => "PIPELINE",
        }
    }

    /// Parses [`Self::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Serialization format of a model's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ModelFormat {
    #[default]
    Unspecified,
    Joblib,
    Pickle,
    Onnx,
    Safetensors,
    Pytorch,
    TensorflowSavedModel,
    Keras,
    Xgboost,
    Lightgbm,
    Gguf,
    Other,
}

/// What describes a model asset as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelDetails {
    /// Free text, e.g. `scikit-learn 1.5`.
    pub framework: String,
    /// Serialization format.
    pub format: ModelFormat,
    /// Markdown.
    pub model_card: String,
    /// JSON Schema text of an inference request.
    pub inference_schema: String,
}

/// A stored asset.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// UUIDv7.
    pub id: Uuid,
    /// Fixed at creation.
    pub kind: AssetKind,
    /// 1 to 200 characters.
    pub display_name: String,
    /// At most 10,000 characters.
    pub description: String,
    /// Empty or an http(s) URI.
    pub cover_image_uri: String,
    /// Sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Set for model assets only.
    pub model: Option<ModelDetails>,
    /// Owning principal, `users/{id}`.
    pub owner: String,
    /// Microsecond precision, the finest both backends keep.
    pub create_time: DateTime<Utc>,
    /// Changes on every update.
    pub update_time: DateTime<Utc>,
    /// Set while archived.
    pub archive_time: Option<DateTime<Utc>>,
    /// Incremented on every change; the etag is derived from it.
    pub revision: i64,
    /// Number of the newest committed version, maintained by commits (not part of the etag).
    pub latest_version: Option<i64>,
    /// Total size of every version, archived ones included until purged; counts towards the owner's storage
    /// quota. Maintained by commits (not part of the etag).
    pub stored_bytes: u64,
}

/// The client-supplied fields of an asset, decoded but not yet validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetDraft {
    /// Required on create.
    pub kind: Option<AssetKind>,
    /// See [`Asset::display_name`].
    pub display_name: String,
    /// See [`Asset::description`].
    pub description: String,
    /// See [`Asset::cover_image_uri`].
    pub cover_image_uri: String,
    /// See [`Asset::labels`].
    pub labels: BTreeMap<String, String>,
    /// See [`Asset::model`].
    pub model: Option<ModelDetails>,
}

/// A field an update may change, by its mask path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AssetField {
    DisplayName,
    Description,
    CoverImageUri,
    Labels,
    ModelFramework,
    ModelFormat,
    ModelCard,
    ModelInferenceSchema,
}

impl AssetField {
    const PATHS: [(&'static str, Self); 8] = [
        ("display_name", Self::DisplayName),
        ("description", Self::Description),
        ("cover_image_uri", Self::CoverImageUri),
        ("labels", Self::Labels),
        ("model.framework", Self::ModelFramework),
        ("model.format", Self::ModelFormat),
        ("model.model_card", Self::ModelCard),
        ("model.inference_schema", Self::ModelInferenceSchema),
    ];

    /// The field a mask path names; `model` stands for all four model fields.
    pub fn parse(path: &str) -> Option<Vec<Self>> {
        if path == "model" {
            return Some(vec![Self::ModelFramework, Self::ModelFormat, Self::ModelCard, Self::ModelInferenceSchema]);
        }
        Self::PATHS.iter().find(|(p, _)| *p == path).map(|(_, f)| vec![*f])
    }

    /// Every mask path an update accepts, for error messages.
    pub fn known_paths() -> String {
        Self::PATHS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
    }

    /// The fields `draft` sets to a non-default value: what an update without a mask changes.
    pub fn set_in(draft: &AssetDraft) -> Vec<Self> {
        let mut fields = Vec::new();
        let model = draft.model.clone().unwrap_or_default();
        for (set, field) in [
            (!draft.display_name.is_empty(), Self::DisplayName),
            (!draft.description.is_empty(), Self::Description),
            (!draft.cover_image_uri.is_empty(), Self::CoverImageUri),
            (!draft.labels.is_empty(), Self::Labels),
            (!model.framework.is_empty(), Self::ModelFramework),
            (model.format != ModelFormat::Unspecified, Self::ModelFormat),
            (!model.model_card.is_empty(), Self::ModelCard),
            (!model.inference_schema.is_empty(), Self::ModelInferenceSchema),
        ] {
            if set {
                fields.push(field);
            }
        }
        fields
    }

    fn is_model_field(self) -> bool {
        matches!(self, Self::ModelFramework | Self::ModelFormat | Self::ModelCard | Self::ModelInferenceSchema)
    }
}

impl Asset {
    /// A new asset owned by `owner`, or every reason `draft` is not a valid one.
    pub fn create(draft: AssetDraft, owner: &str, now: DateTime<Utc>) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let kind = match draft.kind {
            Some(kind) => kind,
            None => {
                violations.add("asset.kind", "required: one of DATASET, DOCKER_REPO, MODEL, PIPELINE");
                AssetKind::Dataset
            }
        };
        if draft.model.is_some() && kind != AssetKind::Model && draft.kind.is_some() {
            violations.add("asset.model", "only an ASSET_KIND_MODEL asset has model details");
        }
        let now = now.trunc_subsecs(6);
        let asset = Self {
            id: Uuid::now_v7(),
            kind,
            display_name: draft.display_name,
            description: draft.description,
            cover_image_uri: draft.cover_image_uri,
            labels: draft.labels,
            model: if kind == AssetKind::Model { Some(draft.model.unwrap_or_default()) } else { None },
            owner: owner.to_owned(),
            create_time: now,
            update_time: now,
            archive_time: None,
            revision: 1,
            latest_version: None,
            stored_bytes: 0,
        };
        asset.validate(&mut violations);
        violations.into_result(asset)
    }

    /// This asset with `fields` taken from `draft`, or every reason the result would be invalid.
    pub fn updated(&self, draft: &AssetDraft, fields: &[AssetField], now: DateTime<Utc>) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let mut next = self.clone();
        let incoming = draft.model.clone().unwrap_or_default();
        for field in fields {
            if field.is_model_field() && self.kind != AssetKind::Model {
                violations.add("update_mask", "model fields apply only to ASSET_KIND_MODEL assets");
                continue;
            }
            let model = next.model.get_or_insert_with(ModelDetails::default);
            match field {
                AssetField::DisplayName => next.display_name.clone_from(&draft.display_name),
                AssetField::Description => next.description.clone_from(&draft.description),
                AssetField::CoverImageUri => next.cover_image_uri.clone_from(&draft.cover_image_uri),
                AssetField::Labels => next.labels.clone_from(&draft.labels),
                AssetField::ModelFramework => model.framework.clone_from(&incoming.framework),
                AssetField::ModelFormat => model.format = incoming.format,
                AssetField::ModelCard => model.model_card.clone_from(&incoming.model_card),
                AssetField::ModelInferenceSchema => model.inference_schema.clone_from(&incoming.inference_schema),
            }
        }
        if self.kind != AssetKind::Model {
            next.model = None;
        }
        next.validate(&mut violations);
        next.update_time = now.trunc_subsecs(6).max(self.update_time);
        next.revision = self.revision + 1;
        violations.into_result(next)
    }

    /// This asset archived (soft-deleted) at `now`; archiving twice keeps the first time.
    pub fn archived(&self, now: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        let now = now.trunc_subsecs(6).max(self.update_time);
        next.archive_time = Some(self.archive_time.unwrap_or(now));
        next.update_time = now;
        next.revision = self.revision + 1;
        next
    }

    /// This asset restored from the archive.
    pub fn unarchived(&self, now: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.archive_time = None;
        next.update_time = now.trunc_subsecs(6).max(self.update_time);
        next.revision = self.revision + 1;
        next
    }

    /// Opaque concurrency token: changes whenever the asset does.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.revision)
    }

    /// Whether `principal` may read or change this asset. Assets are private to their owner until use cases
    /// grant access.
    pub fn is_owned_by(&self, principal: &str) -> bool {
        self.owner == principal
    }

    fn validate(&self, violations: &mut Violations) {
        let name_len = self.display_name.chars().count();
        if name_len == 0 || name_len > MAX_DISPLAY_NAME || self.display_name.trim().is_empty() {
            violations
                .add("asset.display_name", format!("required: 1 to {MAX_DISPLAY_NAME} characters, not only spaces"));
        } else if self.display_name.chars().any(char::is_control) {
            violations.add("asset.display_name", "must not contain control characters");
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            violations.add("asset.description", format!("at most {MAX_DESCRIPTION} characters"));
        }
        if !self.cover_image_uri.is_empty() && !highwind_common::validation::is_http_uri(&self.cover_image_uri, MAX_URI)
        {
            violations.add("asset.cover_image_uri", format!("must be an http or https URI of at most {MAX_URI} bytes"));
        }
        labels::validate(&self.labels, "asset.labels", violations);
        if let Some(model) = &self.model {
            if model.framework.chars().count() > MAX_FRAMEWORK {
                violations.add("asset.model.framework", format!("at most {MAX_FRAMEWORK} characters"));
            }
            if model.model_card.chars().count() > MAX_MODEL_CARD {
                violations.add("asset.model.model_card", format!("at most {MAX_MODEL_CARD} characters"));
            }
            if model.inference_schema.len() > MAX_INFERENCE_SCHEMA {
                violations.add("asset.model.inference_schema", format!("at most {MAX_INFERENCE_SCHEMA} bytes"));
            } else if !model.inference_schema.is_empty()
                && !serde_json::from_str::<serde_json::Value>(&model.inference_schema).is_ok_and(|v| v.is_object())
            {
                violations.add("asset.model.inference_schema", "must be a JSON Schema document (a JSON object)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str) -> AssetDraft {
        AssetDraft { kind: Some(AssetKind::Dataset), display_name: name.into(), ..AssetDraft::default() }
    }

    #[test]
    fn display_name_limits_count_characters() {
        assert!(Asset::create(draft(&"é".repeat(200)), "users/a", Utc::now()).is_ok());
        let err = Asset::create(draft(&"é".repeat(201)), "users/a", Utc::now()).expect_err("too long");
        assert_eq!(err.iter().next().map(|v| v.field.as_str()), Some("asset.display_name"));
        assert!(Asset::create(draft("   "), "users/a", Utc::now()).is_err());
        assert!(Asset::create(draft("a\u{0}b"), "users/a", Utc::now()).is_err());
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let bad = AssetDraft {
            kind: None,
            display_name: String::new(),
            description: "x".repeat(10_001),
            cover_image_uri: "javascript:alert(1)".into(),
            ..AssetDraft::default()
        };
        let err = Asset::create(bad, "users/a", Utc::now()).expect_err("invalid");
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["asset.kind", "asset.display_name", "asset.description", "asset.cover_image_uri"]);
    }

    #[test]
    fn update_changes_only_masked_fields_and_bumps_etag() {
        let asset = Asset::create(draft("before"), "users/a", Utc::now()).expect("valid");
        let change =
            AssetDraft { display_name: "after".into(), description: "ignored".into(), ..AssetDraft::default() };
        let next = asset.updated(&change, &[AssetField::DisplayName], Utc::now()).expect("valid");
        assert_eq!(next.display_name, "after");
        assert_eq!(next.description, "");
        assert_ne!(next.etag(), asset.etag());
    }

    #[test]
    fn model_details_only_on_model_assets() {
        let mut bad = draft("d");
        bad.model = Some(ModelDetails::default());
        assert!(Asset::create(bad, "users/a", Utc::now()).is_err());
        let asset = Asset::create(draft("d"), "users/a", Utc::now()).expect("valid");
        let change = AssetDraft { model: Some(ModelDetails::default()), ..AssetDraft::default() };
        assert!(asset.updated(&change, &[AssetField::ModelFramework], Utc::now()).is_err());
        let mut model = draft("m");
        model.kind = Some(AssetKind::Model);
        model.model = Some(ModelDetails { inference_schema: "[1]".into(), ..ModelDetails::default() });
        assert!(Asset::create(model, "users/a", Utc::now()).is_err(), "schema must be an object");
    }
}
