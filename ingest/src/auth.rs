//! Who is calling, when authentication is on, and what each caller may do.
//!
//! Off by default: without an [`Authentication`] installed by [`with_authentication`] every
//! request is [`Caller::Anyone`] and the API checks nothing, as it always did. On, a caller is the
//! customer named by one claim of its token (`sub` unless configured), and:
//! * it may create orders and list orders only for that customer (`403` otherwise);
//! * an order of another customer is answered exactly like an order that does not exist (`404`),
//!   so an order id (computable offline from a customer id and an `Idempotency-Key`) reveals
//!   nothing.
//!
//! Where the identity comes from depends on the deployment:
//! * **Lambda** ([`Authentication::Gateway`]): the HTTP API's JWT authorizer has verified the
//!   token before the function runs; its claims arrive in the request context
//!   (`requestContext.authorizer.jwt.claims`), which `lambda_http` puts in the request extensions.
//! * **`orders serve`** ([`Authentication::Tokens`]): no gateway in front, so the server verifies
//!   the bearer token itself against a JWKS file ([`JwtVerifier`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::{Extension, Router};
use events_schema::CustomerId;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::problem::ApiError;

/// The identity a request acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off: no identity, no checks.
    Anyone,
    /// Authenticated as this customer.
    Customer(CustomerId),
}

impl Caller {
    /// May this caller create or list orders of `customer`? `403` if not.
    pub fn may_act_for(&self, customer: &CustomerId) -> Result<(), ApiError> {
        match self {
            Caller::Customer(me) if me != customer => Err(ApiError::Forbidden),
            _ => Ok(()),
        }
    }

    /// May this caller see an order of `owner`? Callers who may not are answered as if the order
    /// did not exist.
    pub fn may_see(&self, owner: &CustomerId) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Customer(me) => me == owner,
        }
    }
}

/// How callers are identified when authentication is on.
pub enum Authentication {
    /// Behind API Gateway with a JWT authorizer: the customer is the `claim` of the verified
    /// token's claims in the Lambda request context.
    Gateway { claim: String },
    /// The server verifies bearer tokens itself (`orders serve --auth-jwks`).
    Tokens(JwtVerifier),
}

/// Turns authentication on for `router`: its handlers then see a [`Caller`] per request.
pub fn with_authentication(router: Router, authentication: Authentication) -> Router {
    router.layer(Extension(Arc::new(authentication)))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(authentication) = parts.extensions.get::<Arc<Authentication>>() else {
            return Ok(Caller::Anyone);
        };
        let customer = match authentication.as_ref() {
            Authentication::Gateway { claim } => gateway_claim(parts, claim)?,
            Authentication::Tokens(verifier) => verifier.verify(bearer_token(parts)?)?,
        };
        Ok(Caller::Customer(customer))
    }
}

/// The customer named by `claim` among the claims the API Gateway JWT authorizer verified.
/// Missing claims mean the route was reached without the authorizer, which the template never
/// allows: refused rather than served to anyone.
fn gateway_claim(parts: &Parts, claim: &str) -> Result<CustomerId, ApiError> {
    use lambda_http::request::RequestContext;
    let claims = match parts.extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims),
        _ => None,
    };
    let claims = claims.ok_or(ApiError::Unauthenticated("no verified token"))?;
    customer_of(claims.get(claim).map(String::as_str))
}

fn customer_of(claim: Option<&str>) -> Result<CustomerId, ApiError> {
    let value = claim.ok_or(ApiError::Unauthenticated(
        "the token does not name a customer",
    ))?;
    CustomerId::parse(value)
        .map_err(|_| ApiError::Unauthenticated("the token's customer is not a valid customer id"))
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated("a bearer token is required"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// A JWKS file that cannot serve as the key set.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document: {0}")]
    Malformed(String),
    #[error("no RS256 or P-256 (ES256) key in the JWKS")]
    NoUsableKey,
}

/// One key of the set, with the one algorithm it is used with.
struct Key {
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens as API Gateway's JWT authorizer would: signature by a key of the set
/// (RS256 or ES256 only: `none` and HMAC are never accepted), `iss`, `aud`, `exp` (and `nbf`
/// when present), then reads the customer from `claim`.
pub struct JwtVerifier {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
    claim: String,
}

impl JwtVerifier {
    /// From the text of a JWKS document (`{"keys": [...]}`). Keys of other types are skipped,
    /// and so is a key whose `use` is not `sig` or whose `alg` is not the one algorithm this
    /// verifier uses it with (RS256 for RSA, ES256 for P-256) — RFC 7517 §4.2 and §4.4: a key
    /// published for encryption, or for another algorithm, must not verify a signature. A set
    /// with no usable key is an error, so a wrong file fails at start, not per request.
    pub fn from_jwks(
        jwks: &str,
        issuer: &str,
        audience: &str,
        claim: &str,
    ) -> Result<Self, JwksError> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let (algorithm, named) = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
                    AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                        (Algorithm::ES256, KeyAlgorithm::ES256)
                    }
                    _ => return None,
                };
                let for_signatures = jwk
                    .common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|u| *u == PublicKeyUse::Signature);
                let for_this_algorithm = jwk.common.key_algorithm.is_none_or(|a| a == named);
                if !(for_signatures && for_this_algorithm) {
                    return None;
                }
                Some(Key {
                    id: jwk.common.key_id.clone(),
                    algorithm,
                    key: DecodingKey::from_jwk(jwk).ok()?,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(JwtVerifier {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            claim: claim.to_owned(),
        })
    }

    /// The customer the token names, or `401` with why the token is refused.
    pub fn verify(&self, token: &str) -> Result<CustomerId, ApiError> {
        let invalid = ApiError::Unauthenticated("the token is invalid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid)?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&header.kid, &k.id) {
                    (Some(wanted), Some(id)) => wanted == id,
                    _ => true,
                }
        });
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        // Every matching key is tried: an error of one key (its signature does not match, it
        // cannot be used) says nothing of the next. What stops the search is an error of the
        // token itself, which no other key changes.
        for key in candidates {
            match jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => {
                    return customer_of(data.claims.get(&self.claim).and_then(|v| v.as_str()))
                }
                Err(e) => match refusal_of(e.kind()) {
                    Some(why) => return Err(ApiError::Unauthenticated(why)),
                    None => continue,
                },
            }
        }
        Err(ApiError::Unauthenticated(
            "the token is not signed by a known key",
        ))
    }
}

/// Why a token is refused after an attempt with one key failed with `kind`; `None` when the
/// failure is that key's (a signature it did not make, a key it cannot use), so the next
/// matching key must be tried.
fn refusal_of(kind: &jsonwebtoken::errors::ErrorKind) -> Option<&'static str> {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::Provider(_) => None,
        ErrorKind::ExpiredSignature => Some("the token has expired"),
        ErrorKind::ImmatureSignature => Some("the token is not valid yet"),
        ErrorKind::InvalidAudience => Some("the token is for another audience"),
        ErrorKind::InvalidIssuer => Some("the token is from another issuer"),
        ErrorKind::MissingRequiredClaim(_) => Some("the token lacks exp, iss or aud"),
        _ => Some("the token is invalid"),
    }
}

/// Keys and tokens made on the spot, for tests of the API with authentication on (here and in
/// `orders`' end-to-end tests).
#[cfg(any(test, feature = "test-util"))]
pub mod test_keys {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    pub const ISSUER: &str = "https://issuer.test/";
    pub const AUDIENCE: &str = "orders-api";

    /// A P-256 key pair of an identity provider, generated per test.
    pub struct TestIssuer {
        kid: String,
        private_pkcs8: Vec<u8>,
        x: String,
        y: String,
    }

    impl TestIssuer {
        pub fn new(kid: &str) -> Self {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("a P-256 key is generated");
            let point = pair.public_key().as_ref().to_vec();
            // An uncompressed point: 0x04, then x and y of 32 bytes each.
            assert_eq!((point.len(), point[0]), (65, 4));
            TestIssuer {
                kid: kid.to_owned(),
                private_pkcs8: pair.to_pkcs8v1().expect("pkcs8").as_ref().to_vec(),
                x: URL_SAFE_NO_PAD.encode(&point[1..33]),
                y: URL_SAFE_NO_PAD.encode(&point[33..]),
            }
        }

        /// The JWKS document with this issuer's public key.
        pub fn jwks(&self) -> String {
            serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
                "kid": self.kid, "x": self.x, "y": self.y,
            }]})
            .to_string()
        }

        /// A token with exactly `claims`, signed ES256.
        pub fn sign(&self, claims: &serde_json::Value) -> String {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(self.kid.clone());
            encode(
                &header,
                claims,
                &EncodingKey::from_ec_der(&self.private_pkcs8),
            )
            .expect("the token is signed")
        }

        /// A token for `sub`, from [`ISSUER`] to [`AUDIENCE`], valid for an hour.
        pub fn token_for(&self, sub: &str) -> String {
            self.sign(&claims(sub, AUDIENCE, 3600))
        }
    }

    /// Standard claims: `sub`, [`ISSUER`], `aud`, `exp` `expires_in` seconds from now (negative:
    /// already expired).
    pub fn claims(sub: &str, aud: &str, expires_in: i64) -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        serde_json::json!({
            "sub": sub, "iss": ISSUER, "aud": aud, "iat": now, "exp": now + expires_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{claims, TestIssuer, AUDIENCE, ISSUER};
    use super::*;
    use crate::{router, AppState};
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, StatusCode};
    use order_adapters_sqlite::test_util::TempSqlite;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    struct Api {
        _tmp: TempSqlite,
        app: Router,
        db: order_adapters_sqlite::SqliteDb,
    }

    fn api(authentication: Option<Authentication>) -> Api {
        let tmp = TempSqlite::new();
        let db = tmp.db().clone();
        let app = router(AppState {
            intake: Arc::new(db.intake()),
            events: Arc::new(db.event_store()),
            status: Arc::new(db.status_store()),
        });
        let app = match authentication {
            Some(a) => with_authentication(app, a),
            None => app,
        };
        Api { _tmp: tmp, app, db }
    }

    fn verifying(issuer: &TestIssuer) -> Option<Authentication> {
        let verifier = JwtVerifier::from_jwks(&issuer.jwks(), ISSUER, AUDIENCE, "sub")
            .expect("the test JWKS is usable");
        Some(Authentication::Tokens(verifier))
    }

    async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        if !status.is_success() {
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn with_token(request: http::request::Builder, token: Option<&str>) -> http::request::Builder {
        match token {
            Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    fn post(customer: &str, token: Option<&str>) -> Request<Body> {
        let body = json!({"customerId": customer, "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}]});
        with_token(Request::post("/orders"), token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn get(uri: &str, token: Option<&str>) -> Request<Body> {
        with_token(Request::get(uri), token)
            .body(Body::empty())
            .unwrap()
    }

    /// Places an order for `customer` with its own token; its id.
    async fn placed(app: &Router, issuer: &TestIssuer, customer: &str) -> String {
        let (status, body) = call(app, post(customer, Some(&issuer.token_for(customer)))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["orderId"].as_str().unwrap().to_owned()
    }

    /// Does the projector's work for one order, so that the list (read from the view) shows it.
    async fn project(db: &order_adapters_sqlite::SqliteDb, id: &str) {
        use order_ports::{EventStore, StatusStore};
        let order_id = events_schema::OrderId::parse(id).unwrap();
        let history = db.event_store().load(order_id).await.unwrap();
        let view = events_schema::OrderView::fold(&history).unwrap().unwrap();
        let record = events_schema::OrderStatusRecord::from(&view);
        db.status_store().upsert(&record).await.unwrap();
    }

    #[tokio::test]
    async fn a_customer_creates_reads_and_lists_its_own_orders() {
        let issuer = TestIssuer::new("k1");
        let api = api(verifying(&issuer));
        let id = placed(&api.app, &issuer, "alice").await;
        project(&api.db, &id).await;
        let token = issuer.token_for("alice");
        for uri in [
            format!("/orders/{id}"),
            format!("/orders/{id}/events"),
            "/orders?customerId=alice".to_owned(),
        ] {
            let (status, body) = call(&api.app, get(&uri, Some(&token))).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            assert!(body.to_string().contains(&id), "{uri}: {body}");
        }
    }

    #[tokio::test]
    async fn creating_or_listing_for_another_customer_is_403_and_writes_nothing() {
        let issuer = TestIssuer::new("k1");
        let api = api(verifying(&issuer));
        let mallory = issuer.token_for("mallory");
        let (status, problem) = call(&api.app, post("alice", Some(&mallory))).await;
        assert_eq!(
            (status, &problem["title"]),
            (StatusCode::FORBIDDEN, &json!("Forbidden"))
        );
        assert_eq!(api.db.head_seq().await.unwrap(), 0);
        let (status, _) = call(&api.app, get("/orders?customerId=alice", Some(&mallory))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn another_customers_order_is_answered_exactly_like_one_that_does_not_exist() {
        let issuer = TestIssuer::new("k1");
        let api = api(verifying(&issuer));
        let alices = placed(&api.app, &issuer, "alice").await;
        let nobodys = events_schema::OrderId::new_random().to_string();
        let mallory = issuer.token_for("mallory");
        for path in ["/orders/{id}", "/orders/{id}/events"] {
            let (status, problem) = call(
                &api.app,
                get(&path.replace("{id}", &alices), Some(&mallory)),
            )
            .await;
            let (missing_status, missing) = call(
                &api.app,
                get(&path.replace("{id}", &nobodys), Some(&mallory)),
            )
            .await;
            assert_eq!(
                (status, missing_status),
                (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
            );
            // Identical but for the id each one names.
            let problem = problem.to_string().replace(&alices, "ID");
            assert_eq!(
                problem,
                missing.to_string().replace(&nobodys, "ID"),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn only_the_orders_customer_may_cancel_it_another_gets_the_404_of_no_such_order() {
        use order_ports::EventStore;
        let issuer = TestIssuer::new("k1");
        let api = api(verifying(&issuer));
        let alices = placed(&api.app, &issuer, "alice").await;
        let nobodys = events_schema::OrderId::new_random().to_string();
        let cancel = |id: &str, token: &str| {
            with_token(Request::post(format!("/orders/{id}/cancel")), Some(token))
                .body(Body::empty())
                .unwrap()
        };
        let mallory = issuer.token_for("mallory");
        let (status, problem) = call(&api.app, cancel(&alices, &mallory)).await;
        let (missing_status, missing) = call(&api.app, cancel(&nobodys, &mallory)).await;
        assert_eq!(
            (status, missing_status),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
        );
        assert_eq!(
            problem.to_string().replace(&alices, "ID"),
            missing.to_string().replace(&nobodys, "ID")
        );
        let order_id = events_schema::OrderId::parse(&alices).unwrap();
        let logged = api.db.event_store().load(order_id).await.unwrap();
        assert_eq!(logged.len(), 1, "mallory's request stored nothing");

        let (status, body) = call(&api.app, cancel(&alices, &issuer.token_for("alice"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "CANCELLED");
        let (status, _) = call(
            &api.app,
            with_token(Request::post(format!("/orders/{alices}/cancel")), None)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_missing_expired_or_foreign_token_is_401_but_health_stays_open() {
        let issuer = TestIssuer::new("k1");
        let api = api(verifying(&issuer));
        let stranger = TestIssuer::new("k1");
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let refused = [
            ("no token", None),
            ("expired", Some(issuer.sign(&claims("alice", AUDIENCE, -3600)))),
            ("wrong audience", Some(issuer.sign(&claims("alice", "other-api", 3600)))),
            (
                "wrong issuer",
                Some(issuer.sign(&json!({"sub": "alice", "iss": "https://evil.test/", "aud": AUDIENCE, "exp": now + 3600}))),
            ),
            ("no expiry", Some(issuer.sign(&json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE})))),
            ("signed by an unknown key", Some(stranger.token_for("alice"))),
            ("unsigned (alg none)", Some(unsigned_token("alice"))),
            ("no customer claim", Some(issuer.sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 3600})))),
            ("not a token", Some("abc.def.ghi".to_owned())),
        ];
        for (why, token) in refused {
            let (status, problem) = call(&api.app, post("alice", token.as_deref())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {problem}");
            assert_eq!(problem["title"], "Unauthorized", "{why}");
            let (status, _) =
                call(&api.app, get("/orders?customerId=alice", token.as_deref())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        }
        assert_eq!(api.db.head_seq().await.unwrap(), 0);
        let (status, _) = call(&api.app, get("/health", None)).await;
        assert_eq!(status, StatusCode::OK);
    }

    /// A token claiming `alg: none`, with no signature.
    fn unsigned_token(sub: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            part(json!({"alg": "none", "typ": "JWT"})),
            part(claims(sub, AUDIENCE, 3600))
        )
    }

    #[tokio::test]
    async fn with_authentication_off_tokens_are_ignored_and_every_caller_may_do_everything() {
        let issuer = TestIssuer::new("k1");
        let api = api(None);
        let mallory = issuer.token_for("mallory");
        let (status, body) = call(&api.app, post("alice", Some(&mallory))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let id = body["orderId"].as_str().unwrap();
        for uri in [
            format!("/orders/{id}"),
            "/orders?customerId=alice".to_owned(),
        ] {
            assert_eq!(
                call(&api.app, get(&uri, None)).await.0,
                StatusCode::OK,
                "{uri}"
            );
        }
    }

    /// The JWKS of `issuer` with its key's `use` and `alg` replaced (`None`: left out).
    fn jwks_with(issuer: &TestIssuer, key_use: Option<&str>, alg: Option<&str>) -> String {
        let mut set: Value = serde_json::from_str(&issuer.jwks()).unwrap();
        let key = set["keys"][0].as_object_mut().unwrap();
        key.remove("use");
        key.remove("alg");
        if let Some(u) = key_use {
            key.insert("use".into(), json!(u));
        }
        if let Some(a) = alg {
            key.insert("alg".into(), json!(a));
        }
        set.to_string()
    }

    #[test]
    fn a_key_published_for_encryption_or_for_another_algorithm_verifies_nothing() {
        let issuer = TestIssuer::new("k1");
        for (key_use, alg) in [
            (Some("enc"), None),
            (None, Some("ES384")),
            (None, Some("RS256")),
        ] {
            let jwks = jwks_with(&issuer, key_use, alg);
            assert!(
                matches!(
                    JwtVerifier::from_jwks(&jwks, ISSUER, AUDIENCE, "sub"),
                    Err(JwksError::NoUsableKey)
                ),
                "{jwks}"
            );
        }
    }

    #[test]
    fn a_key_for_signatures_with_its_algorithm_or_without_either_verifies() {
        let issuer = TestIssuer::new("k1");
        let token = issuer.token_for("alice");
        for (key_use, alg) in [(Some("sig"), Some("ES256")), (None, None)] {
            let verifier =
                JwtVerifier::from_jwks(&jwks_with(&issuer, key_use, alg), ISSUER, AUDIENCE, "sub")
                    .unwrap();
            assert_eq!(
                verifier.verify(&token).unwrap(),
                CustomerId::parse("alice").unwrap()
            );
        }
    }

    #[test]
    fn a_key_that_cannot_be_used_is_passed_over_and_a_token_error_stops_the_search() {
        use jsonwebtoken::errors::ErrorKind;
        for key_error in [
            ErrorKind::InvalidSignature,
            ErrorKind::InvalidEcdsaKey,
            ErrorKind::InvalidRsaKey("n".into()),
            ErrorKind::InvalidKeyFormat,
            ErrorKind::InvalidAlgorithm,
        ] {
            assert_eq!(refusal_of(&key_error), None, "{key_error:?}");
        }
        assert_eq!(
            refusal_of(&ErrorKind::ExpiredSignature),
            Some("the token has expired")
        );
        assert_eq!(
            refusal_of(&ErrorKind::InvalidToken),
            Some("the token is invalid")
        );
    }

    #[test]
    fn every_key_without_a_kid_is_tried_until_one_verifies() {
        let (first, second) = (TestIssuer::new("a"), TestIssuer::new("b"));
        let keys = |issuer: &TestIssuer| -> Value {
            let mut set: Value = serde_json::from_str(&issuer.jwks()).unwrap();
            set["keys"][0].as_object_mut().unwrap().remove("kid");
            set["keys"][0].clone()
        };
        let jwks = json!({"keys": [keys(&first), keys(&second)]}).to_string();
        let verifier = JwtVerifier::from_jwks(&jwks, ISSUER, AUDIENCE, "sub").unwrap();
        let token = second.token_for("bob");
        // The token names kid "b", which no key of the set has: every ES256 key is a candidate.
        assert_eq!(
            verifier.verify(&token).unwrap(),
            CustomerId::parse("bob").unwrap()
        );
    }

    #[test]
    fn a_jwks_without_a_usable_key_is_refused_at_start() {
        let hmac = r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}]}"#;
        for jwks in [hmac, r#"{"keys": []}"#, "not json"] {
            assert!(
                JwtVerifier::from_jwks(jwks, ISSUER, AUDIENCE, "sub").is_err(),
                "{jwks}"
            );
        }
    }

    /// An API Gateway (payload 2.0) event as the JWT authorizer hands it to the function,
    /// read by `lambda_http` as the Lambda runtime would.
    fn gateway_request(
        method: &str,
        path: &str,
        query: &str,
        claims: Option<Value>,
        body: &str,
    ) -> Request<Body> {
        let mut context = json!({
            "routeKey": format!("{method} {path}"), "accountId": "123456789012", "stage": "$default",
            "requestId": "id", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
            "time": "12/Mar/2020:19:03:58+0000", "timeEpoch": 1583348638390u64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
        });
        if let Some(claims) = claims {
            context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
        }
        let event = json!({
            "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path,
            "rawQueryString": query, "headers": {"content-type": "application/json"},
            "requestContext": context, "body": body, "isBase64Encoded": false,
        });
        let request = lambda_http::request::from_str(&event.to_string()).expect("a valid event");
        request.map(|b| Body::from(b.to_vec()))
    }

    #[tokio::test]
    async fn on_lambda_the_customer_is_the_authorizers_claim() {
        let api = api(Some(Authentication::Gateway {
            claim: "email".to_owned(),
        }));
        let order = json!({"customerId": "alice@example.com", "items": [{"productId": "p", "quantity": 1, "unitPrice": 100}]}).to_string();
        let alice = json!({"sub": "1234", "email": "alice@example.com"});
        let (status, body) = call(
            &api.app,
            gateway_request("POST", "/orders", "", Some(alice.clone()), &order),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["orderId"].as_str().unwrap();
        let path = format!("/orders/{id}");
        let (status, _) = call(&api.app, gateway_request("GET", &path, "", Some(alice), "")).await;
        assert_eq!(status, StatusCode::OK);

        let bob = json!({"sub": "5678", "email": "bob@example.com"});
        let (status, _) = call(
            &api.app,
            gateway_request("GET", &path, "", Some(bob.clone()), ""),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(
            &api.app,
            gateway_request("POST", "/orders", "", Some(bob.clone()), &order),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let query = "customerId=alice%40example.com";
        let (status, _) = call(
            &api.app,
            gateway_request("GET", "/orders", query, Some(bob), ""),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // No authorizer claims at all: a route reached without the authorizer is refused.
        let (status, _) = call(&api.app, gateway_request("GET", &path, "", None, "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
