//! Tokens and a JWKS server for tests of `jwt-auth`: HS256 tokens, ES256 keys with their JWKs, and an
//! HTTP server on 127.0.0.1 whose JWKS document a test can change (or make fail).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Seconds since the Unix epoch, for `exp` and `nbf`.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// `bytes` in base64url without padding, as JWTs write their parts.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 token over `claims`, signed with `secret`.
pub fn hs256(secret: &str, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({ "alg": "HS256", "typ": "JWT" })
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// An ES256 signing key with its id, as an issuer has.
pub struct EcKey {
    /// The key id (`kid`) its tokens name.
    pub kid: &'static str,
    pair: EcdsaKeyPair,
}

impl EcKey {
    /// A new random P-256 key named `kid`.
    pub fn new(kid: &'static str) -> EcKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("parse key");
        EcKey { kid, pair }
    }

    /// The public key as a JWK (RFC 7518 §6.2).
    pub fn jwk(&self) -> Value {
        let point = &self.pair.public_key().as_ref()[1..];
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&point[..32]), "y": b64(&point[32..]),
        })
    }

    /// An ES256 token over `claims`, naming this key.
    pub fn token(&self, claims: Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64(signature.as_ref()))
    }
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&EcKey]) -> Option<String> {
    Some(json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string())
}

/// A JWKS server on 127.0.0.1 whose document can change; `None` answers 500.
pub struct JwksServer {
    /// Where it listens.
    pub addr: SocketAddr,
    document: watch::Sender<Option<String>>,
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Starts serving `document`.
    pub async fn start(document: Option<String>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = watch::channel(document);
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (rx, count) = (rx.clone(), count.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let answer = match rx.borrow().clone() {
                            Some(body) => Response::new(Full::new(Bytes::from(body))),
                            None => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                                r
                            }
                        };
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer {
            addr,
            document: tx,
            requests,
        }
    }

    /// The document's URL.
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Serves `document` from now on (`None`: answer 500).
    pub fn serve(&self, document: Option<String>) {
        self.document.send_replace(document);
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
