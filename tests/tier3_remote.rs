//! Tier 3: the remote API's authorization and its TLS listener — roles
//! (admin, restricted), the host-path allow-list, trust removal,
//! certificate expiry, the audit log, the handshake timeout and the
//! connection cap — against the real daemon over loopback TLS. No root,
//! no guest, seconds.

#[allow(dead_code)]
#[path = "tier3_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use ferrovirt_api::{TokenPost, TrustRole};
use ferrovirt_client::{Client, ClientError};
use ferrovirt_tls::{Identity, OffsetDateTime};
use harness::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local address").port()
}

/// A daemon with a TLS listener on 127.0.0.1, and its address.
async fn host_with(extra: &[(&str, &str)]) -> (FakeHost, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = vec![("FERROVIRT_LISTEN".to_owned(), addr.clone())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let h = FakeHost::start_with(env).await;
    // The TLS listener binds a moment after the unix socket answers.
    let end = Instant::now() + STEP;
    while TcpStream::connect(&addr).await.is_err() {
        assert!(Instant::now() < end, "the TLS listener did not come up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (h, addr)
}

/// A remote client of `h` with a fresh CLI identity, joined with a token
/// asking for `req`; returns it and its certificate's fingerprint.
async fn join(h: &FakeHost, req: &TokenPost, dir: &std::path::Path) -> (Client, String) {
    let id = Identity::load_or_create(dir, "client", "ferrovirt-cli").expect("identity");
    (joined(h, req, &id).await.expect("redeem"), id.fingerprint())
}

async fn joined(h: &FakeHost, req: &TokenPost, id: &Identity) -> Result<Client, ClientError> {
    let token = h.client.token(req).await.expect("token");
    let t = ferrovirt_client::decode_token(&token).expect("decodes");
    let c = Client::remote(&t.addresses[0], id, &t.fingerprint).expect("client");
    c.redeem_token(&t.secret).await?;
    Ok(c)
}

fn restricted(instances: &[&str]) -> TokenPost {
    TokenPost {
        name: "ci".into(),
        role: TrustRole::Restricted,
        instances: instances.iter().map(|s| s.to_string()).collect(),
        expires_in_days: None,
    }
}

fn body(e: &ClientError) -> &ferrovirt_api::ErrorBody {
    match e {
        ClientError::Api(b) => b,
        other => panic!("not an API error: {other}"),
    }
}

async fn define(c: &Client, name: &str) {
    c.create_instance(&json!({"name": name, "memory": 64}))
        .await
        .expect("create");
}

#[tokio::test]
async fn a_restricted_client_sees_and_manages_only_its_instances() {
    let (h, _) = host_with(&[]).await;
    define(&h.client, "mine").await;
    define(&h.client, "other").await;
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = join(&h, &restricted(&["mine"]), dir.path()).await;

    let names = |l: Vec<ferrovirt_api::Instance>| -> Vec<String> {
        l.into_iter().map(|i| i.spec.name).collect()
    };
    assert_eq!(names(r.list_instances().await.unwrap()), ["mine"]);
    r.instance("mine").await.expect("its own instance");
    let e = r.instance("other").await.unwrap_err();
    assert_eq!(http_code(&e), 404, "{e}");
    assert_eq!(body(&e).error, "instance other does not exist");
    let e = r.delete_path("/1.0/instances/other").await.unwrap_err();
    assert_eq!(http_code(&e), 404, "{e}");
    h.client.instance("other").await.expect("still there");

    // It manages what it creates; a host path outside the pools is refused.
    define(&r, "own").await;
    assert_eq!(names(r.list_instances().await.unwrap()), ["mine", "own"]);
    let e = r
        .create_instance(&json!({"name": "evil", "memory": 64,
            "disks": [{"path": "/etc/shadow", "format": "raw"}]}))
        .await
        .unwrap_err();
    assert_eq!(http_code(&e), 403, "{e}");
    let details = body(&e).details.as_ref().expect("details");
    assert_eq!(details.field.as_deref(), Some("disks[0].path"), "{e}");
    assert!(body(&e).error.contains("/etc/shadow"), "{e}");
    let e = r
        .create_instance(&json!({"name": "evil", "memory": 64,
            "boot": {"kernel": format!("{}/state/pools/default/../../../../etc/passwd", h.dir.path().display())}}))
        .await
        .unwrap_err();
    assert_eq!(http_code(&e), 403, "{e}");
    assert!(
        h.client.instance("evil").await.is_err(),
        "nothing half-made"
    );
}

#[tokio::test]
async fn a_restricted_client_cannot_change_the_host_but_an_admin_can() {
    let (h, _) = host_with(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = join(&h, &restricted(&[]), dir.path()).await;
    let pool = json!({"spec": {"name": "p2", "type": "dir",
        "path": h.dir.path().join("p2").display().to_string()}, "build": true});
    let network = json!({"name": "n2", "type": "isolated"});
    let refusals = [
        r.post_json::<Value>("/1.0/pools", &pool).await.unwrap_err(),
        r.post_json::<Value>("/1.0/networks", &network)
            .await
            .unwrap_err(),
        r.delete_path("/1.0/pools/default").await.unwrap_err(),
        r.token(&restricted(&[])).await.unwrap_err(),
        r.trusted_clients().await.unwrap_err(),
        r.post_json::<Value>("/1.0/migrations/incoming", &json!({}))
            .await
            .unwrap_err(),
    ];
    for e in &refusals {
        assert_eq!(http_code(e), 403, "{e}");
        assert!(
            body(e).error.starts_with("a restricted client may not"),
            "{e}"
        );
    }

    let admin_dir = tempfile::tempdir().unwrap();
    let (a, _) = join(&h, &TokenPost::admin("ops"), admin_dir.path()).await;
    a.post_json::<Value>("/1.0/pools", &pool)
        .await
        .expect("an admin creates pools");
    a.token(&restricted(&[]))
        .await
        .expect("an admin makes tokens");
    let trust = a.trusted_clients().await.expect("an admin lists trust");
    let ci = trust.iter().find(|t| t.name == "ci").expect("ci is listed");
    assert_eq!(ci.role, TrustRole::Restricted);
}

#[tokio::test]
async fn a_removed_certificate_is_refused_at_its_next_request() {
    let (h, _) = host_with(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (r, fp) = join(&h, &TokenPost::admin("laptop"), dir.path()).await;
    r.list_instances().await.expect("trusted");
    h.client.untrust(&fp).await.expect("untrust");
    // The same client, so the same pooled (open) connection.
    let e = r.list_instances().await.unwrap_err();
    assert_eq!(http_code(&e), 403, "{e}");
    assert!(body(&e).error.contains("not trusted"), "{e}");
    let e = h.client.untrust(&fp).await.unwrap_err();
    assert_eq!(http_code(&e), 404, "{e}");
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let (h, _) = host_with(&[]).await;
    let now = OffsetDateTime::now_utc();
    let day = ferrovirt_tls::time::Duration::days(1);
    let old = Identity::self_signed("ferrovirt-cli", now - day * 30, now - day).unwrap();
    let e = joined(&h, &TokenPost::admin("old"), &old)
        .await
        .unwrap_err();
    assert_eq!(http_code(&e), 403, "{e}");
    assert!(body(&e).error.contains("expired on"), "{e}");
    assert!(h.client.trusted_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn remote_requests_are_audited() {
    let (h, _) = host_with(&[]).await;
    define(&h.client, "other").await;
    let dir = tempfile::tempdir().unwrap();
    let (r, fp) = join(&h, &restricted(&[]), dir.path()).await;
    r.list_instances().await.unwrap();
    let _ = r.instance("other").await.unwrap_err();
    let log = h.dir.path().join("state/audit.log");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log)
        .expect("audit log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let seen: Vec<(String, String, u64)> = lines
        .iter()
        .filter(|l| l["fingerprint"] == fp.as_str())
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_owned(),
                l["path"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".into(), "/1.0/host/trust".into(), 200),
            ("GET".into(), "/1.0/instances".into(), 200),
            ("GET".into(), "/1.0/instances/other".into(), 404),
        ]
    );
    let last = lines.last().unwrap();
    assert_eq!(last["role"], "restricted");
    assert_eq!(last["name"], "ci");
    assert!(last["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}

/// Whether the server closes `tcp` within `within` (EOF or reset).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let (_h, addr) = host_with(&[("FERROVIRT_TLS_HANDSHAKE_TIMEOUT", "0.5")]).await;
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut tcp, STEP).await, "still open");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
}

/// A connection the daemon keeps open (retried while the slots are
/// still held by connections closed a moment ago).
async fn held_connection(addr: &str) -> TcpStream {
    let end = Instant::now() + STEP;
    loop {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        if !closed_within(&mut tcp, Duration::from_millis(300)).await {
            return tcp;
        }
        assert!(Instant::now() < end, "no connection slot came free");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let (_h, addr) = host_with(&[("FERROVIRT_TLS_MAX_CONNECTIONS", "2")]).await;
    let first = held_connection(&addr).await;
    let mut second = held_connection(&addr).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)).await,
        "the third connection is still open"
    );
    assert!(!closed_within(&mut second, Duration::from_millis(200)).await);
    drop(first);
    // A slot is free again once the daemon sees the close.
    held_connection(&addr).await;
}
