//! Size bounds on what an error sends back. `grpc-message` and `grpc-status-details-bin` travel in an HTTP/2
//! header block, and a peer that receives a block over its `SETTINGS_MAX_HEADER_LIST_SIZE` (16 KiB in hyper's
//! defaults) resets the stream or, once the block spans CONTINUATION frames, closes the whole connection with
//! every other caller's calls on it. So an error never echoes more than a short prefix of what a caller sent,
//! and message plus details stay far below that limit whatever produced them.

use prost::Message;
use tonic::Status;
use tonic_types::pb;

/// How many characters of a caller's input an error quotes back.
pub const ECHO_CHARS: usize = 64;
/// The longest `grpc-message` sent, in bytes (percent-encoding can triple it on the wire).
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The longest text inside a detail (a field violation's description, an ErrorInfo value), in bytes.
pub const MAX_DETAIL_TEXT_BYTES: usize = 256;
/// How many entries of one detail (field violations, metadata pairs, preconditions) are kept.
pub const MAX_DETAIL_ENTRIES: usize = 16;
/// The largest encoded `google.rpc.Status` sent as `grpc-status-details-bin` (base64 adds a third).
pub const MAX_DETAILS_BYTES: usize = 4096;

/// `input` quoted for an error message: at most [`ECHO_CHARS`] characters of it, cut on a character boundary,
/// with an ellipsis and the full length when cut.
pub fn echo(input: &str) -> String {
    match input.char_indices().nth(ECHO_CHARS) {
        None => format!("{input:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &input[..cut], input.len()),
    }
}

/// `text` cut to at most `max` bytes on a character boundary, ending in an ellipsis when cut.
pub fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut cut = max.saturating_sub(ellipsis.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ellipsis}", &text[..cut])
}

/// `status` with its message and every text in its details bounded, and its encoded details at most
/// [`MAX_DETAILS_BYTES`] (trailing details are dropped until they fit). Code and metadata are kept.
pub fn bounded(status: &Status) -> Status {
    let message = truncated(status.message(), MAX_MESSAGE_BYTES);
    let details = if status.details().is_empty() { Vec::new() } else { bounded_details(status.details()) };
    let mut bounded = Status::with_details(status.code(), message, details.into());
    *bounded.metadata_mut() = status.metadata().clone();
    bounded
}

/// Whether `status` is larger than the bounds allow, so [`bounded`] has work to do.
pub fn exceeds_bounds(status: &Status) -> bool {
    status.message().len() > MAX_MESSAGE_BYTES || status.details().len() > MAX_DETAILS_BYTES
}

fn bounded_details(encoded: &[u8]) -> Vec<u8> {
    // Undecodable details help no client; an empty detail is better than a broken connection.
    let Ok(mut status) = pb::Status::decode(encoded) else { return Vec::new() };
    // The message travels whole in grpc-message; this copy only has to identify the error.
    status.message = truncated(&status.message, MAX_DETAIL_TEXT_BYTES);
    let details = std::mem::take(&mut status.details);
    // Fewer entries per detail until they fit, so the first field violations survive rather than none.
    for entries in [MAX_DETAIL_ENTRIES, 8, 4, 2, 1] {
        status.details = details.iter().cloned().filter_map(|any| bounded_any(any, entries)).collect();
        if status.encoded_len() <= MAX_DETAILS_BYTES {
            break;
        }
    }
    while status.encoded_len() > MAX_DETAILS_BYTES && status.details.pop().is_some() {}
    status.encode_to_vec()
}

fn text(value: &mut String) {
    if value.len() > MAX_DETAIL_TEXT_BYTES {
        *value = truncated(value, MAX_DETAIL_TEXT_BYTES);
    }
}

/// One detail with its texts bounded and at most `entries` entries; `None` for an unknown detail too large to
/// keep.
fn bounded_any(mut any: prost_types::Any, entries: usize) -> Option<prost_types::Any> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default().to_owned();
    let value = match name.as_str() {
        "google.rpc.BadRequest" => {
            let mut detail = pb::BadRequest::decode(any.value.as_slice()).ok()?;
            detail.field_violations.truncate(entries);
            for v in &mut detail.field_violations {
                text(&mut v.field);
                text(&mut v.description);
                text(&mut v.reason);
                v.localized_message = None;
            }
            detail.encode_to_vec()
        }
        "google.rpc.ErrorInfo" => {
            let mut detail = pb::ErrorInfo::decode(any.value.as_slice()).ok()?;
            text(&mut detail.reason);
            text(&mut detail.domain);
            let mut pairs: Vec<_> = detail.metadata.into_iter().collect();
            pairs.sort();
            pairs.truncate(entries);
            detail.metadata = pairs
                .into_iter()
                .map(|(k, v)| (truncated(&k, MAX_DETAIL_TEXT_BYTES), truncated(&v, MAX_DETAIL_TEXT_BYTES)))
                .collect();
            detail.encode_to_vec()
        }
        "google.rpc.PreconditionFailure" => {
            let mut detail = pb::PreconditionFailure::decode(any.value.as_slice()).ok()?;
            detail.violations.truncate(entries);
            for v in &mut detail.violations {
                text(&mut v.r#type);
                text(&mut v.subject);
                text(&mut v.description);
            }
            detail.encode_to_vec()
        }
        "google.rpc.QuotaFailure" => {
            let mut detail = pb::QuotaFailure::decode(any.value.as_slice()).ok()?;
            detail.violations.truncate(entries);
            for v in &mut detail.violations {
                text(&mut v.subject);
                text(&mut v.description);
            }
            detail.encode_to_vec()
        }
        _ if any.value.len() <= MAX_DETAIL_TEXT_BYTES => return Some(any),
        _ => return None,
    };
    any.value = value;
    Some(any)
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

    use super::*;

    #[test]
    fn echo_quotes_short_input_whole_and_cuts_long_input_on_a_char_boundary() {
        assert_eq!(echo("kind"), "\"kind\"");
        let long = "é".repeat(1000);
        let echoed = echo(&long);
        assert!(echoed.starts_with(&format!("\"{}\"…", "é".repeat(ECHO_CHARS))), "{echoed}");
        assert!(echoed.ends_with("(2000 bytes)"));
    }

    #[test]
    fn truncated_keeps_at_most_max_bytes_and_whole_characters() {
        assert_eq!(truncated("short", 10), "short");
        let cut = truncated(&"ü".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
    }

    #[test]
    fn a_status_echoing_huge_input_is_bounded_and_still_names_the_field() {
        let huge = "x".repeat(50_000);
        let violations: Vec<_> = (0..100).map(|i| FieldViolation::new(format!("files[{i}].path"), &huge)).collect();
        let mut details = ErrorDetails::with_bad_request(violations);
        details.set_error_info(
            "BAD",
            "highwind.dev",
            std::collections::HashMap::from([("path".to_owned(), huge.clone())]),
        );
        let status = Status::with_error_details(Code::InvalidArgument, huge.clone(), details);
        assert!(exceeds_bounds(&status));

        let bounded = bounded(&status);
        assert_eq!(bounded.code(), Code::InvalidArgument);
        assert!(bounded.message().len() <= MAX_MESSAGE_BYTES);
        assert!(bounded.details().len() <= MAX_DETAILS_BYTES);
        let details = bounded.get_error_details();
        let bad_request = details.bad_request().expect("the field violations survive");
        assert_eq!(bad_request.field_violations[0].field, "files[0].path");
        assert!(!exceeds_bounds(&bounded));
    }

    #[test]
    fn a_small_status_is_left_as_it_is() {
        let status = Status::with_error_details(
            Code::NotFound,
            "assets/1 not found",
            ErrorDetails::with_error_info("NOT_FOUND", "highwind.dev", std::collections::HashMap::new()),
        );
        assert!(!exceeds_bounds(&status));
        let bounded = bounded(&status);
        assert_eq!((bounded.message(), bounded.details()), (status.message(), status.details()));
    }
}
