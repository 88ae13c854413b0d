//! `highwind.asset.v1.ImageService`: the tags of a Docker Repo asset's repository (each with its version), the
//! commands that push into it, and deleting a tag. Readers of the asset list its images; only its owner gets push
//! commands or deletes.

use std::sync::Arc;

use highwind_common::{
    page_token::PageTokens, principal::Principal, registry::scope::is_valid_tag, validation::Violations,
};
use highwind_proto::asset::v1::{self as pb, image_service_server::ImageService};
use tonic::{Request, Response, Status};

use super::{access, convert::timestamp};
use crate::{
    domain::{
        asset::{Asset, AssetKind},
        names,
        paging::page_size,
    },
    error::Error,
    images::{Images, TaggedImage},
    registry_client::client::RegistryError,
    store::{AssetRepository, grants::GrantRepository},
};

/// Handlers of `ImageService`.
#[derive(Debug, Clone)]
pub struct ImageApi {
    assets: Arc<dyn AssetRepository>,
    grants: Arc<dyn GrantRepository>,
    images: Option<Images>,
    page_tokens: PageTokens,
}

impl ImageApi {
    /// Handlers reading images through `images` (`None`: no registry configured).
    pub fn new(
        assets: Arc<dyn AssetRepository>,
        grants: Arc<dyn GrantRepository>,
        images: Option<Images>,
        page_tokens: PageTokens,
    ) -> Self {
        Self { assets, grants, images, page_tokens }
    }

    fn images(&self) -> Result<&Images, Error> {
        self.images.as_ref().ok_or(Error::RegistryNotConfigured)
    }

    fn docker_repo(asset: Asset) -> Result<Asset, Error> {
        if asset.kind == AssetKind::DockerRepo {
            Ok(asset)
        } else {
            Err(Error::Invalid(Violations::one("parent", "images belong to Docker Repo assets only")))
        }
    }

    /// The Docker Repo asset `parent` if `principal` owns it, checking `tag` first.
    async fn owned(&self, principal: &Principal, parent: &str, tag: &str) -> Result<(Asset, &Images), Error> {
        if !is_valid_tag(tag) {
            let rule = "a tag: a letter, digit or '_', then up to 127 of those, '.' or '-'";
            return Err(Error::Invalid(Violations::one("tag", rule)));
        }
        let asset =
            access::owned_asset(self.assets.as_ref(), self.grants.as_ref(), principal, "parent", parent).await?;
        Ok((Self::docker_repo(asset)?, self.images()?))
    }

    fn image_uri(&self, images: &Images, asset: &Asset) -> String {
        format!("{}/{}", images.client().config().public_host(), images.repository(asset))
    }
}

fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::of(request).cloned()
}

#[tonic::async_trait]
impl ImageService for ImageApi {
    async fn list_images(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let principal = principal(&request)?;
        let page = ImagePage::decode(&self.page_tokens, &principal, request.into_inner())?;
        let (prefix, tagged) = self.visible_images(&principal, &page.parent).await?;
        let images = tagged.iter().skip(page.offset).take(page.limit).map(|t| image(&prefix, t)).collect();
        let next_page_token = if page.offset + page.limit < tagged.len() {
            self.page_tokens.encode(&page.scope, &(page.offset + page.limit))
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListImagesResponse { images, next_page_token }))
    }

    async fn delete_image_tag(
        &self,
        request: Request<pb::DeleteImageTagRequest>,
    ) -> Result<Response<pb::DeleteImageTagResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let (digest, also_removed_tags) = self.delete_tag(&principal, &request.parent, &request.tag).await?;
        Ok(Response::new(pb::DeleteImageTagResponse { digest, also_removed_tags }))
    }

    async fn get_push_commands(
        &self,
        request: Request<pb::GetPushCommandsRequest>,
    ) -> Result<Response<pb::GetPushCommandsResponse>, Status> {
        let principal = principal(&request)?;
        let request = request.into_inner();
        let tag = if request.tag.is_empty() { "latest".to_owned() } else { request.tag };
        Ok(Response::new(self.push_commands(&principal, &request.parent, &tag).await?))
    }
}

impl ImageApi {
    /// ListImages: the images of Docker Repo `parent` that `principal` may see (a reader: those of the versions
    /// they were granted; a buyer: what the release pins), newest push first, with their URIs' prefix.
    async fn visible_images(&self, principal: &Principal, parent: &str) -> Result<(String, Vec<TaggedImage>), Error> {
        let asset =
            access::readable_asset(self.assets.as_ref(), self.grants.as_ref(), principal, "parent", parent).await?;
        let asset = Self::docker_repo(asset)?;
        let images = self.images()?;
        let mut tagged = images.reconcile(&asset, "").await?;
        if !asset.is_owned_by(principal.as_str()) {
            let mut visible = Vec::new();
            for image in tagged {
                let number = image.version.number;
                if self.grants.may_read(principal.as_str(), asset.id, Some(number)).await? {
                    visible.push(image);
                }
            }
            tagged = visible;
        }
        // Newest push first (the version's time is when the platform first saw the digest); then by tag.
        tagged.sort_by(|a, b| b.version.create_time.cmp(&a.version.create_time).then_with(|| a.tag.cmp(&b.tag)));
        Ok((self.image_uri(images, &asset), tagged))
    }

    /// DeleteImageTag: the owner deletes the image `tag` names, with every tag of the same digest (returned), unless
    /// a use case pins it or another tag's multi-platform index includes it.
    async fn delete_tag(&self, principal: &Principal, parent: &str, tag: &str) -> Result<(String, Vec<String>), Error> {
        let (asset, images) = self.owned(principal, parent, tag).await?;
        let repository = images.repository(&asset);
        let client = images.client();
        let digest = match client.manifest(&repository, tag).await {
            Ok(manifest) => manifest.digest,
            Err(RegistryError::NotFound(_)) => return Err(Error::NotFound(format!("{parent}/tags/{tag}"))),
            Err(e) => return Err(Error::RegistryUnavailable(e.to_string())),
        };
        // A digest a use case pins (a link or a release) stays: its buyers and members read it.
        let recorded = images.reconcile(&asset, "").await?;
        if let Some(pinned) = recorded.iter().find(|t| t.version.manifest_digest == digest)
            && self.grants.is_pinned(asset.id, pinned.version.number).await?
        {
            return Err(Error::ImageInUse {
                name: format!("{parent}/tags/{tag}"),
                why: format!(
                    "a use case pins it ({}); unlink it or swap the link first",
                    names::version_name(asset.id, pinned.version.number)
                ),
            });
        }
        let mut also_removed_tags = Vec::new();
        for other_tag in client.tags(&repository).await.map_err(|e| Error::RegistryUnavailable(e.to_string()))? {
            let Ok(other) = client.manifest(&repository, &other_tag).await else { continue };
            if other_tag != tag && other.digest == digest {
                also_removed_tags.push(other_tag.clone());
            }
            // Deleting an image an index of another tag includes would break that index.
            let entries = other.body["manifests"].as_array().cloned().unwrap_or_default();
            if entries.iter().any(|e| e["digest"].as_str() == Some(digest.as_str())) {
                return Err(Error::ImageInUse {
                    name: format!("{parent}/tags/{tag}"),
                    why: format!("the multi-platform image tagged {other_tag} includes it: delete {other_tag} first"),
                });
            }
        }
        also_removed_tags.sort();
        client.delete_manifest(&repository, &digest).await.map_err(|e| Error::RegistryUnavailable(e.to_string()))?;
        Ok((digest, also_removed_tags))
    }

    /// GetPushCommands: how the owner pushes `tag` to Docker Repo `parent`, with docker or skopeo.
    async fn push_commands(
        &self,
        principal: &Principal,
        parent: &str,
        tag: &str,
    ) -> Result<pb::GetPushCommandsResponse, Error> {
        let (asset, images) = self.owned(principal, parent, tag).await?;
        let host = images.client().config().public_host();
        let image_uri = format!("{}:{tag}", self.image_uri(images, &asset));
        // A registry on this machine speaks plain HTTP; docker allows that for loopback, skopeo must be told.
        let loopback = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
        let tls = if loopback { " --dest-tls-verify=false" } else { "" };
        let local = names::asset_name(asset.id).replace('/', "-");
        Ok(pb::GetPushCommandsResponse {
            login_command: format!(
                "printf '%s' \"$HIGHWIND_API_KEY\" | docker login {host} --username highwind --password-stdin"
            ),
            build_command: format!("docker build --platform linux/amd64 -t {local}:{tag} ."),
            tag_command: format!("docker tag {local}:{tag} {image_uri}"),
            push_command: format!("docker push {image_uri}"),
            skopeo_command: format!(
                "skopeo copy{tls} --dest-creds \"highwind:$HIGHWIND_API_KEY\" docker-daemon:{local}:{tag} docker://{image_uri}"
            ),
            image_uri,
        })
    }
}

/// A ListImages request, decoded: whose images, and which slice of them.
#[derive(Debug)]
struct ImagePage {
    parent: String,
    limit: usize,
    offset: usize,
    /// What its page tokens are bound to.
    scope: String,
}

impl ImagePage {
    fn decode(page_tokens: &PageTokens, principal: &Principal, request: pb::ListImagesRequest) -> Result<Self, Error> {
        let limit = page_size(request.page_size).map_err(|e| Error::Invalid(Violations::one("page_size", e)))?;
        let scope = format!("images|{}|{}", principal.as_str(), request.parent);
        let offset = if request.page_token.is_empty() {
            0
        } else {
            page_tokens.decode(&scope, &request.page_token).map_err(|_| {
                Error::Invalid(Violations::one("page_token", "not a token from a previous page of this same query"))
            })?
        };
        Ok(Self { parent: request.parent, limit, offset, scope })
    }
}

fn image(prefix: &str, tagged: &TaggedImage) -> pb::Image {
    let digest = &tagged.version.manifest_digest;
    pb::Image {
        tag: tagged.tag.clone(),
        digest: digest.clone(),
        media_type: tagged.image.media_type.clone(),
        platforms: tagged.image.platforms.clone(),
        compressed_size_bytes: i64::try_from(tagged.image.compressed_size).unwrap_or(i64::MAX),
        create_time: tagged.image.created.map(timestamp),
        push_time: Some(timestamp(tagged.version.create_time)),
        image_uri: format!("{prefix}:{}", tagged.tag),
        pinned_image_uri: format!("{prefix}@{digest}"),
        deployable: !tagged.image.deployable_digest.is_empty(),
        not_deployable_reason: tagged.image.not_deployable_reason.clone(),
        version: names::version_name(tagged.version.asset_id, tagged.version.number),
    }
}
