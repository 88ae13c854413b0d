//! `highwind image pull | ls | prune`: the executor's store of the images pipeline steps run in.

use highwind_proto::pipeline::v1 as pb;

use super::{CliError, Target, print};

/// Pulls `reference` into the store as the caller; prints its digest and whether it was pulled or there.
pub async fn pull(target: &Target, reference: &str) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let answer = clients
        .images
        .pull_image(pb::PullImageRequest { reference: reference.to_owned() })
        .await
        .map_err(CliError::call(format!("pulling {reference}")))?
        .into_inner();
    let image = answer.image.unwrap_or_default();
    let how = if answer.pulled { "pulled" } else { "already cached" };
    let line = format!("{reference} {} ({how}, {} unpacked)", image.digest, size(image.unpacked_bytes));
    print(&[line])
}

/// Prints every image in the store: a table with a header.
pub async fn list(target: &Target) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let answer = clients
        .images
        .list_cached_images(pb::ListCachedImagesRequest {})
        .await
        .map_err(CliError::call("listing the image store"))?
        .into_inner();
    let mut lines = vec![format!("{:<60} {:<19} {:>10} {:>6}", "SOURCE", "DIGEST", "SIZE", "IN USE")];
    for image in &answer.images {
        lines.push(format!(
            "{:<60} {:<19} {:>10} {:>6}",
            image.source,
            short(&image.digest),
            size(image.unpacked_bytes),
            image.in_use
        ));
    }
    lines.push(format!("{} images, {} of {}", answer.images.len(), size(answer.total_bytes), size(answer.max_bytes)));
    print(&lines)
}

/// Removes every image no step runs in; prints what went.
pub async fn prune(target: &Target) -> Result<(), CliError> {
    let mut clients = target.connect().await?;
    let answer = clients
        .images
        .prune_images(pb::PruneImagesRequest {})
        .await
        .map_err(CliError::call("pruning the image store"))?
        .into_inner();
    let mut lines: Vec<String> =
        answer.removed.iter().map(|image| format!("removed {}@{}", image.source, image.digest)).collect();
    lines.push(format!("{} images removed, {} freed", answer.removed.len(), size(answer.freed_bytes)));
    print(&lines)
}

/// `sha256:` and the first 12 hex digits, as container tools show a digest.
fn short(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// Bytes in the largest unit that keeps a whole number in front (`12.3 MB`).
fn size(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    match bytes {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_digests_read_as_container_tools_print_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(48_200_000), "48.2 MB");
        assert_eq!(size(20 << 30), "21.5 GB");
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
    }
}
