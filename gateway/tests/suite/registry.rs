//! Registry login with Highwind credentials, against a real registry (Debian's `docker-registry`, CNCF
//! distribution 2.8) with `skopeo`: the owner of a Docker Repo asset pushes and pulls its repository with an API key
//! or a token as the password, strangers and anonymous callers get nothing, the token endpoint speaks both of
//! docker's protocols and refuses bad names, the registry refuses every forged token, and signing keys rotate
//! without a token being refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gateway::standalone::RegistryMode;
use highwind_proto::asset::v1 as apb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{
    Platform,
    registry::{Layout, Registry, available, inspect, push},
};

struct Setup {
    platform: Platform,
    registry: Registry,
    /// alice's Docker Repo asset, `assets/{id}`.
    asset: String,
    /// Its repository.
    repository: String,
}

async fn setup() -> Option<Setup> {
    if !available() {
        return None;
    }
    // The registry must know the gateway's token endpoint and trust the platform's keys before either starts.
    let dir = tempfile::tempdir().unwrap();
    let keys = highwind_common::registry::keys::RegistryKeys::open(&dir.path().join("registry-keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let registry = Registry::start(&format!("http://127.0.0.1:{port}/registry/token"), &keys.bundle_path()).await;
    let mode = RegistryMode::External { url: format!("http://{}", registry.addr), host: String::new() };
    let platform = Platform::builder().in_dir(dir).registry(([127, 0, 0, 1], port).into(), mode).start().await;
    let asset = platform.create_asset("alice", apb::AssetKind::DockerRepo).await;
    let repository = format!("highwind/alice/{}", asset.strip_prefix("assets/").unwrap());
    Some(Setup { platform, registry, asset, repository })
}

/// `GET /registry/token` with `query` and, when given, Basic credentials `highwind:password`.
async fn token_get(platform: &Platform, query: &str, password: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/registry/token?{query}", platform.url()));
    if let Some(password) = password {
        request = request.basic_auth("whoever", Some(password));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn the_owner_pushes_and_pulls_with_highwind_credentials_and_others_get_nothing() {
    let Some(s) = setup().await else { return };
    let mut layout = Layout::new();
    let amd64 = layout.image("linux/amd64", "weights v1");
    layout.tag("amd64", &amd64);
    let image = format!("{}/{}:v1", s.registry.addr, s.repository);

    // The owner, with an API key as the password.
    let key = s.platform.api_key("alice").await;
    let pushed = push(layout.path(), "amd64", &image, &key, false).await;
    assert!(pushed.ok, "owner push: {}", pushed.output);
    let pulled = inspect(&image, &key).await;
    assert!(pulled.ok, "owner pull: {}", pulled.output);
    let manifest: Value = serde_json::from_str(&pulled.output).unwrap();
    assert_eq!(manifest["config"]["digest"], json!(amd64_config_digest(&layout, &amd64)));
    // Or with a token, the same way.
    assert!(inspect(&image, &s.platform.token("alice")).await.ok);

    // A stranger can neither read nor write alice's repository.
    let bob = s.platform.token("bob");
    let refused = inspect(&image, &bob).await;
    assert!(!refused.ok);
    assert!(refused.output.contains("unauthorized") || refused.output.contains("denied"), "{}", refused.output);
    let overwrite =
        push(layout.path(), "amd64", &format!("{}/{}:bob", s.registry.addr, s.repository), &bob, false).await;
    assert!(!overwrite.ok, "a stranger pushed: {}", overwrite.output);
    // Nor can anyone without valid credentials.
    let wrong = inspect(&image, "hw_not-a-real-key").await;
    assert!(!wrong.ok);

    // A repository outside the scheme, or one whose owner part is not the asset's owner, grants nothing either.
    let asset_id = s.asset.strip_prefix("assets/").unwrap();
    for repository in [format!("highwind/bob/{asset_id}"), format!("other/alice/{asset_id}"), "highwind/alice/0".into()]
    {
        let scope = format!("service=highwind-registry&scope=repository:{repository}:pull,push");
        let (status, body) = token_get(&s.platform, &scope, Some(&key)).await;
        assert_eq!(status, 200);
        assert_eq!(claims_of(body["token"].as_str().unwrap())["access"][0]["actions"], json!([]), "{repository}");
    }
}

fn amd64_config_digest(layout: &Layout, manifest: &crate::support::registry::Descriptor) -> String {
    let hex = manifest.digest.strip_prefix("sha256:").unwrap();
    let text = std::fs::read_to_string(layout.path().join("blobs/sha256").join(hex)).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["config"]["digest"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_token_endpoint_speaks_docker_login_several_scopes_and_the_oauth2_form() {
    let Some(s) = setup().await else { return };
    let key = s.platform.api_key("alice").await;

    // `docker login`: no scope, account and client_id given; a token that grants nothing, in the expected shape.
    let (status, body) = token_get(
        &s.platform,
        "account=alice&client_id=docker&offline_token=true&service=highwind-registry",
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(chrono::DateTime::parse_from_rfc3339(body["issued_at"].as_str().unwrap()).is_ok());
    assert!(body.get("refresh_token").is_none());
    let claims = claims_of(body["token"].as_str().unwrap());
    assert_eq!(claims["sub"], "users/alice");
    assert_eq!(claims["aud"], "highwind-registry");
    assert_eq!(claims["access"], json!([]));

    // Several scopes in one request (skopeo asks for a second repository to mount blobs from).
    let bobs = s.platform.create_asset("bob", apb::AssetKind::DockerRepo).await;
    let bobs = format!("highwind/bob/{}", bobs.strip_prefix("assets/").unwrap());
    let query = format!(
        "service=highwind-registry&scope=repository:{}:pull,push,delete&scope=repository:{bobs}:pull",
        s.repository
    );
    let (_, body) = token_get(&s.platform, &query, Some(&key)).await;
    let access = &claims_of(body["token"].as_str().unwrap())["access"];
    assert_eq!(access[0]["name"], json!(s.repository));
    assert_eq!(access[0]["actions"], json!(["pull", "push", "delete"]));
    assert_eq!(access[1]["actions"], json!([]), "bob's repository is not alice's to read");

    // Anonymous: a token that grants nothing. Wrong credentials: refused.
    let (status, body) = token_get(&s.platform, &query, None).await;
    assert_eq!(status, 200);
    assert_eq!(claims_of(body["token"].as_str().unwrap())["access"][0]["actions"], json!([]));
    let (status, body) = token_get(&s.platform, &query, Some("hw_wrong")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // The OAuth2 form (`docker login --password-stdin` with identity tokens).
    let form = [
        ("grant_type", "password"),
        ("service", "highwind-registry"),
        ("client_id", "docker"),
        ("username", "alice"),
        ("password", key.as_str()),
        ("scope", &format!("repository:{}:pull", s.repository)),
    ];
    let response =
        reqwest::Client::new().post(format!("{}/registry/token", s.platform.url())).form(&form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(claims_of(body["access_token"].as_str().unwrap())["access"][0]["actions"], json!(["pull"]));
    let response = reqwest::Client::new()
        .post(format!("{}/registry/token", s.platform.url()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // Bad names are refused, naming the scope.
    let long = format!("highwind/alice/{}", "a".repeat(250));
    for bad in ["highwind/Alice/x", "highwind/alice/../bob/x", long.as_str(), "highwind//x"] {
        let (status, body) =
            token_get(&s.platform, &format!("service=highwind-registry&scope=repository:{bad}:pull"), Some(&key)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{bad}");
    }
    let (status, _) = token_get(&s.platform, "service=another-registry", Some(&key)).await;
    assert_eq!(status, 400, "tokens for another service are not issued");
    let many: String = (0..33).map(|i| format!("&scope=repository:highwind/alice/r{i}:pull")).collect();
    let (status, body) = token_get(&s.platform, &format!("service=highwind-registry{many}"), Some(&key)).await;
    assert_eq!(status, 400, "a request is bounded: {body}");
}

/// Signs `claims` with the platform's current registry key, `x5c` included, unless `header` says otherwise.
fn sign_with_platform_key(platform: &Platform, header: Header, claims: &Value) -> String {
    let pem = std::fs::read_to_string(platform.dir.path().join("registry-keys/current.pem")).unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(pem_body(&pem, "PRIVATE KEY")).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&der)).unwrap()
}

fn x5c_of(platform: &Platform) -> Vec<String> {
    let pem = std::fs::read_to_string(platform.dir.path().join("registry-keys/current.pem")).unwrap();
    vec![pem_body(&pem, "CERTIFICATE")]
}

/// The base64 body of the PEM block `label` in `pem`.
fn pem_body(pem: &str, label: &str) -> String {
    let begin = format!("-----BEGIN {label}-----");
    let start = pem.find(&begin).unwrap() + begin.len();
    let end = start + pem[start..].find(&format!("-----END {label}-----")).unwrap();
    pem[start..end].chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test]
async fn the_registry_refuses_every_forged_token() {
    let Some(s) = setup().await else { return };
    let mut layout = Layout::new();
    let amd64 = layout.image("linux/amd64", "weights");
    layout.tag("amd64", &amd64);
    let key = s.platform.api_key("alice").await;
    assert!(push(layout.path(), "amd64", &format!("{}/{}:v1", s.registry.addr, s.repository), &key, false).await.ok);
    let tags = format!("{}/tags/list", s.repository);
    let claims = |changes: Value| {
        let mut claims = json!({
            "iss": "highwind", "sub": "users/alice", "aud": "highwind-registry",
            "iat": now(), "nbf": now() - 5, "exp": now() + 300,
            "access": [{"type": "repository", "name": s.repository, "actions": ["pull"]}],
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let es256 = || Header { x5c: Some(x5c_of(&s.platform)), ..Header::new(Algorithm::ES256) };

    // The control: the same construction, untampered, is accepted.
    let good = sign_with_platform_key(&s.platform, es256(), &claims(json!({})));
    assert_eq!(s.registry.get(&tags, &good).await, 200);

    let header_none =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "x5c": x5c_of(&s.platform)}).to_string());
    let alg_none = format!("{header_none}.{}.", URL_SAFE_NO_PAD.encode(claims(json!({})).to_string()));
    let certificate = std::fs::read(s.platform.dir.path().join("registry-keys/bundle.pem")).unwrap();
    let hs256 = jsonwebtoken::encode(
        &Header { x5c: Some(x5c_of(&s.platform)), ..Header::new(Algorithm::HS256) },
        &claims(json!({})),
        &EncodingKey::from_secret(&certificate),
    )
    .unwrap();
    let other_repository = json!([{"type": "repository", "name": "highwind/bob/x", "actions": ["pull"]}]);
    let forged = [
        ("alg none", alg_none),
        ("HS256 keyed with the public certificate", hs256),
        ("aud as a list", sign_with_platform_key(&s.platform, es256(), &claims(json!({"aud": ["highwind-registry"]})))),
        ("wrong issuer", sign_with_platform_key(&s.platform, es256(), &claims(json!({"iss": "evil"})))),
        ("expired", sign_with_platform_key(&s.platform, es256(), &claims(json!({"exp": now() - 3600})))),
        (
            "another repository",
            sign_with_platform_key(&s.platform, es256(), &claims(json!({"access": other_repository}))),
        ),
        ("no x5c", sign_with_platform_key(&s.platform, Header::new(Algorithm::ES256), &claims(json!({})))),
    ];
    for (what, token) in forged {
        assert_eq!(s.registry.get(&tags, &token).await, 401, "{what}");
    }
}

#[tokio::test]
async fn signing_keys_rotate_without_refused_tokens_and_retired_keys_stop_working() {
    let Some(mut s) = setup().await else { return };
    let key = s.platform.api_key("alice").await;
    let mut layout = Layout::new();
    let amd64 = layout.image("linux/amd64", "weights");
    layout.tag("amd64", &amd64);
    let image = format!("{}/{}:v1", s.registry.addr, s.repository);
    assert!(push(layout.path(), "amd64", &image, &key, false).await.ok);
    let query = format!("service=highwind-registry&scope=repository:{}:pull", s.repository);
    let tags = format!("{}/tags/list", s.repository);
    let before = token_get(&s.platform, &query, Some(&key)).await.1["token"].as_str().unwrap().to_owned();

    // Rotate while the registry runs: the new key was already in the bundle it read at start.
    highwind_common::registry::keys::RegistryKeys::rotate(&s.platform.dir.path().join("registry-keys")).unwrap();
    let after = token_get(&s.platform, &query, Some(&key)).await.1["token"].as_str().unwrap().to_owned();
    let x5c = |token: &str| jsonwebtoken::decode_header(token).unwrap().x5c.unwrap();
    assert_ne!(x5c(&before), x5c(&after), "the gateway signs with the rotated key at once");
    assert_eq!(s.registry.get(&tags, &after).await, 200);
    assert_eq!(s.registry.get(&tags, &before).await, 200, "tokens already issued keep working until restart");
    assert!(inspect(&image, &key).await.ok);

    // After the registry rereads the bundle, the retired key's tokens are refused; new ones are not.
    s.registry.restart().await;
    assert_eq!(s.registry.get(&tags, &before).await, 401);
    assert_eq!(s.registry.get(&tags, &after).await, 200);
    let image = format!("{}/{}:v1", s.registry.addr, s.repository);
    assert!(inspect(&image, &key).await.ok);
}
