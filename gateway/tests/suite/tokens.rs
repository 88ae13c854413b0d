//! OIDC tokens at the gateway, from the embedded issuer: minted tokens work, and every kind of bad token is
//! UNAUTHENTICATED.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use highwind_proto::asset::v1 as pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::support::{Bearer, Platform};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn list_with(platform: &Platform, token: &str) -> Result<pb::ListAssetsResponse, tonic::Status> {
    let mut client = pb::asset_service_client::AssetServiceClient::with_interceptor(
        platform.channel().await,
        Bearer(Some(token.into())),
    );
    client.list_assets(pb::ListAssetsRequest::default()).await.map(tonic::Response::into_inner)
}

/// Signs `claims` with the platform's own issuer key, as the issuer would, under `kid`.
fn forge(platform: &Platform, kid: &str, claims: &serde_json::Value) -> String {
    let pkcs8 = std::fs::read(platform.dir.path().join("dev-issuer-key.p8")).expect("issuer key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&pkcs8)).unwrap()
}

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "iss": "highwind-dev-issuer", "sub": "alice", "aud": "highwind",
        "iat": now(), "nbf": now(), "exp": now() + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// Asks the dev issuer for a token with `form`; the HTTP status and the JSON answer.
async fn ask_for_token(platform: &Platform, form: &[(&str, &str)]) -> (reqwest::StatusCode, serde_json::Value) {
    let response =
        reqwest::Client::new().post(format!("{}/dev-issuer/token", platform.url())).form(form).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_token_endpoint_mints_tokens_only_for_whoever_shows_the_dev_users_password() {
    let platform = Platform::start().await;
    let bobs = platform.dev_password("bob");
    let (status, minted) =
        ask_for_token(&platform, &[("grant_type", "password"), ("username", "bob"), ("password", &bobs)]).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{minted}");
    let token = minted["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(list_with(&platform, &token).await.expect("a minted token is accepted").assets.len(), 0);

    let alices = platform.dev_password("alice");
    let (required, wrong) = ("password is required", "unknown dev user or wrong password");
    for (case, form, says) in [
        ("no password", vec![("username", "bob")], required),
        ("empty password", vec![("username", "bob"), ("password", "")], required),
        ("wrong password", vec![("username", "bob"), ("password", "guess")], wrong),
        ("another user's password", vec![("username", "bob"), ("password", alices.as_str())], wrong),
        ("not a dev user", vec![("username", "mallory"), ("password", bobs.as_str())], wrong),
    ] {
        let (status, refused) = ask_for_token(&platform, &form).await;
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{case}: {refused}");
        assert_eq!(refused["error"], "invalid_grant", "{case}");
        assert!(refused.get("access_token").is_none(), "{case}: never a token");
        assert!(refused["error_description"].as_str().unwrap().contains(says), "{case}: {refused}");
    }

    let discovery: serde_json::Value =
        reqwest::get(format!("{}/dev-issuer/.well-known/openid-configuration", platform.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(discovery["issuer"], "highwind-dev-issuer");

    // Passwords are made once: a restart on the same data directory keeps them.
    let again = Platform::builder().in_dir(platform.stop().await).start().await;
    assert_eq!(again.dev_password("bob"), bobs);
    again.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let platform = Platform::start().await;
    let jwks: serde_json::Value =
        reqwest::get(format!("{}/dev-issuer/jwks", platform.url())).await.unwrap().json().await.unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let good = forge(&platform, &kid, &claims(serde_json::json!({})));
    assert!(list_with(&platform, &good).await.is_ok(), "the forging helper signs like the issuer");

    let mut cases: Vec<(&str, String)> = vec![
        ("expired", forge(&platform, &kid, &claims(serde_json::json!({ "exp": now() - 120 })))),
        ("not yet valid", forge(&platform, &kid, &claims(serde_json::json!({ "nbf": now() + 600 })))),
        ("wrong issuer", forge(&platform, &kid, &claims(serde_json::json!({ "iss": "https://evil.example" })))),
        ("wrong audience", forge(&platform, &kid, &claims(serde_json::json!({ "aud": "someone-else" })))),
        ("no subject", {
            let mut c = claims(serde_json::json!({}));
            c.as_object_mut().unwrap().remove("sub");
            forge(&platform, &kid, &c)
        }),
        ("unknown kid", forge(&platform, "not-a-key-of-this-issuer", &claims(serde_json::json!({})))),
    ];
    // alg none: an unsigned token.
    let body = URL_SAFE_NO_PAD.encode(claims(serde_json::json!({})).to_string());
    let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    cases.push(("alg none", format!("{none_header}.{body}.")));
    // HS256 keyed with the public key: the classic algorithm confusion.
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    cases.push((
        "HS256 with the public key",
        jsonwebtoken::encode(&hs, &claims(serde_json::json!({})), &EncodingKey::from_secret(&public)).unwrap(),
    ));
    // A valid token whose payload was edited after signing.
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let edited = URL_SAFE_NO_PAD.encode(claims(serde_json::json!({ "sub": "bob" })).to_string());
    cases.push(("tampered", format!("{head}.{edited}.{signature}")));
    cases.push(("garbage", "a.b.c".to_owned()));
    // A critical header extension the verifier does not understand (RFC 7515 §4.1.11).
    let pkcs8 = std::fs::read(platform.dir.path().join("dev-issuer-key.p8")).expect("issuer key");
    let mut critical = Header::new(Algorithm::ES256);
    critical.kid = Some(kid.clone());
    critical.crit = Some(vec!["x".into()]);
    critical.extras.insert("x", true);
    cases.push((
        "unknown crit extension",
        jsonwebtoken::encode(&critical, &claims(serde_json::json!({})), &EncodingKey::from_ec_der(&pkcs8)).unwrap(),
    ));

    for (case, token) in cases {
        let err = list_with(&platform, &token).await.expect_err(case);
        assert_eq!(err.code(), Code::Unauthenticated, "{case}: {err:?}");
        assert!(!err.message().contains(&token), "{case}: the token is never echoed");
    }
    platform.stop().await;
}

mod api_keys {
    use highwind_proto::identity::v1::{self as id, api_key_service_client::ApiKeyServiceClient};

    use super::*;

    async fn keys_of(
        platform: &Platform,
        token: &str,
    ) -> ApiKeyServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>> {
        ApiKeyServiceClient::with_interceptor(platform.channel().await, Bearer(Some(token.into())))
    }

    #[tokio::test]
    async fn a_key_acts_as_its_creator_until_revoked() {
        let platform = Platform::start().await;
        let mut alice_keys = keys_of(&platform, &platform.token("alice")).await;
        let created = alice_keys
            .create_api_key(id::CreateApiKeyRequest {
                api_key: Some(id::ApiKey { display_name: "ci pipeline".into(), ..Default::default() }),
            })
            .await
            .expect("create")
            .into_inner();
        let key = created.key.clone();
        assert!(key.starts_with("hw_"));
        let stored = created.api_key.unwrap();
        assert_eq!(stored.owner, "users/alice");
        assert!(key.starts_with(stored.prefix.trim_end_matches('…')));

        // The key works like alice's token, also without the Bearer prefix.
        let mut assets = platform.assets(Some("alice")).await;
        let asset = pb::Asset { kind: pb::AssetKind::Dataset as i32, display_name: "x".into(), ..Default::default() };
        assets.create_asset(pb::CreateAssetRequest { asset: Some(asset), request_id: String::new() }).await.unwrap();
        assert_eq!(list_with(&platform, &key).await.expect("key works").assets.len(), 1);

        let listed = alice_keys.list_api_keys(id::ListApiKeysRequest::default()).await.unwrap().into_inner();
        assert_eq!(listed.api_keys.len(), 1);
        assert!(!format!("{listed:?}").contains(key.split('_').next_back().unwrap()), "the secret is never listed");
        let bobs =
            keys_of(&platform, &platform.token("bob")).await.list_api_keys(id::ListApiKeysRequest::default()).await;
        assert!(bobs.unwrap().into_inner().api_keys.is_empty(), "keys are private to their owner");
        let err = keys_of(&platform, &platform.token("bob"))
            .await
            .delete_api_key(id::DeleteApiKeyRequest { name: stored.name.clone() })
            .await
            .expect_err("bob cannot revoke alice's key");
        assert_eq!(err.code(), Code::NotFound);

        let revoked = alice_keys.delete_api_key(id::DeleteApiKeyRequest { name: stored.name.clone() }).await.unwrap();
        assert!(revoked.into_inner().revoke_time.is_some());
        let err = list_with(&platform, &key).await.expect_err("revoked");
        assert_eq!(err.code(), Code::Unauthenticated, "revocation holds from the next call");

        let forged = format!("{}x", &key[..key.len() - 1]);
        assert_eq!(list_with(&platform, &forged).await.expect_err("forged").code(), Code::Unauthenticated);
        platform.stop().await;
    }

    #[tokio::test]
    async fn bad_key_requests_are_invalid_and_expired_keys_fail() {
        let platform = Platform::start().await;
        let mut keys = keys_of(&platform, &platform.token("alice")).await;
        for (key, field) in [
            (id::ApiKey { display_name: String::new(), ..Default::default() }, "api_key.display_name"),
            (
                id::ApiKey {
                    display_name: "old".into(),
                    expire_time: Some(prost_types::Timestamp { seconds: 1_000, nanos: 0 }),
                    ..Default::default()
                },
                "api_key.expire_time",
            ),
            (
                id::ApiKey {
                    display_name: "for ever".into(),
                    // 82269-01-01: a valid timestamp, but no key should last eighty thousand years.
                    expire_time: Some(prost_types::Timestamp { seconds: 2_533_900_000_000, nanos: 0 }),
                    ..Default::default()
                },
                "api_key.expire_time",
            ),
        ] {
            let err = keys.create_api_key(id::CreateApiKeyRequest { api_key: Some(key) }).await.expect_err(field);
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.message().contains(field), "{err:?}");
        }
        let soon = now() as i64 + 2;
        let short = keys
            .create_api_key(id::CreateApiKeyRequest {
                api_key: Some(id::ApiKey {
                    display_name: "short-lived".into(),
                    expire_time: Some(prost_types::Timestamp { seconds: soon, nanos: 0 }),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .key;
        assert!(list_with(&platform, &short).await.is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(2_600)).await;
        assert_eq!(list_with(&platform, &short).await.expect_err("expired").code(), Code::Unauthenticated);
        platform.stop().await;
    }

    fn draft(display_name: &str, expire_seconds: Option<i64>) -> id::CreateApiKeyRequest {
        id::CreateApiKeyRequest {
            api_key: Some(id::ApiKey {
                display_name: display_name.into(),
                expire_time: expire_seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn a_key_created_by_a_key_never_outlives_it() {
        let platform = Platform::start().await;
        let mut with_token = keys_of(&platform, &platform.token("alice")).await;
        let parent_expiry = now() as i64 + 2;
        let parent = with_token.create_api_key(draft("parent", Some(parent_expiry))).await.unwrap().into_inner();

        let mut with_key = keys_of(&platform, &parent.key).await;
        let unbounded = with_key.create_api_key(draft("asks for no expiry", None)).await.unwrap().into_inner();
        let later = now() as i64 + 365 * 24 * 60 * 60;
        let longer = with_key.create_api_key(draft("asks for a year", Some(later))).await.unwrap().into_inner();
        for child in [&unbounded, &longer] {
            let stored = child.api_key.as_ref().unwrap();
            assert_eq!(stored.expire_time.as_ref().map(|t| t.seconds), Some(parent_expiry), "{stored:?}");
        }
        let from_token = with_token.create_api_key(draft("no expiry", None)).await.unwrap().into_inner();
        assert_eq!(from_token.api_key.unwrap().expire_time, None, "a key made with a token keeps what it asked for");

        assert!(list_with(&platform, &unbounded.key).await.is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(2_600)).await;
        for child in [&unbounded.key, &longer.key] {
            let err = list_with(&platform, child).await.expect_err("the parent expired");
            assert_eq!(err.code(), Code::Unauthenticated);
        }
        platform.stop().await;
    }

    #[tokio::test]
    async fn revoking_a_key_revokes_the_keys_made_with_it() {
        let platform = Platform::start().await;
        let mut with_token = keys_of(&platform, &platform.token("alice")).await;
        let parent = with_token.create_api_key(draft("parent", None)).await.unwrap().into_inner();
        let child = keys_of(&platform, &parent.key).await.create_api_key(draft("child", None)).await.unwrap();
        let child = child.into_inner();
        let grandchild = keys_of(&platform, &child.key).await.create_api_key(draft("grandchild", None)).await;
        let grandchild = grandchild.unwrap().into_inner();
        let sibling = with_token.create_api_key(draft("unrelated", None)).await.unwrap().into_inner();
        assert!(list_with(&platform, &grandchild.key).await.is_ok());

        let name = parent.api_key.unwrap().name;
        with_token.delete_api_key(id::DeleteApiKeyRequest { name }).await.unwrap();
        for made in [&child.key, &grandchild.key] {
            assert_eq!(
                list_with(&platform, made).await.expect_err("revoked with its parent").code(),
                Code::Unauthenticated
            );
        }
        assert!(list_with(&platform, &sibling.key).await.is_ok(), "a key made with a token is its own");
        platform.stop().await;
    }
}
