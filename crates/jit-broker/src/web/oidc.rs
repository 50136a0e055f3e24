//! Sign-in through the organisation's OpenID Connect provider: discovery from the issuer URL,
//! the authorization code flow with PKCE (S256), `state` and `nonce`; the ID token's signature
//! (the provider's JWKS), `iss`, `aud`, `exp` and `nonce` are verified by the `openidconnect`
//! crate. HTTP goes through ureq (rustls), without following redirects. Then the token's
//! claims are mapped to a Unix user name and the broker's groups (`[web]` in broker.toml).
use crate::config::WebSettings;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims,
    IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse,
};
use serde_json::{Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long discovery (endpoints and signing keys) is reused before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// A failed signature check fetches the keys again (the provider rotated them), at most this often.
const KEYS_REFRESH_MIN: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
const MAX_ANSWER: u64 = 1 << 20;

/// Every claim of the ID token besides the standard ones (the groups claim, and whatever
/// `web.user_claim` names), kept as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}
impl AdditionalClaims for OtherClaims {}

type Claims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
/// openidconnect's `CoreClient`, keeping the other claims; auth URL set, token URL from
/// discovery.
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider {issuer} cannot be used: {message}")]
    Provider { issuer: String, message: String },
    #[error("the sign-in could not be verified: {0}")]
    Token(String),
    #[error("{0}")]
    Mapping(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// A sign-in to send the browser off with: the provider's URL, and what the callback needs.
pub struct Begin {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The person the provider vouched for, as the broker knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub issuer: String,
    pub subject: String,
    pub user: String,
    pub groups: Vec<String>,
}

struct Discovered {
    client: Client,
    at: Instant,
}

pub struct Provider {
    settings: WebSettings,
    secret: ClientSecret,
    agent: ureq::Agent,
    discovered: Mutex<Option<Arc<Discovered>>>,
}

/// Read the client secret: a file only the broker's user may read.
fn read_secret(web: &WebSettings) -> Result<ClientSecret, String> {
    let path = &web.client_secret_file;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "{} (web.client_secret_file): cannot read the client secret: {e}",
            path.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} (web.client_secret_file): readable by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!(
            "{} (web.client_secret_file) is empty",
            path.display()
        ));
    }
    Ok(ClientSecret::new(secret.to_string()))
}

fn agent(web: &WebSettings) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("jitbroker/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &web.ca {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{} (web.ca): {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{} (web.ca) holds no PEM certificate",
                ca.display()
            ));
        }
        let certs: Vec<ureq::tls::Certificate<'static>> = certs
            .into_iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().into())
}

impl Provider {
    /// Check `[web]` and read the client secret (at start: a broken setting stops the broker).
    pub fn new(web: &WebSettings) -> Result<Provider, String> {
        Ok(Provider {
            settings: web.clone(),
            secret: read_secret(web)?,
            agent: agent(web)?,
            discovered: Mutex::new(None),
        })
    }

    fn http(
        &self,
        request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let fail = |e: ureq::Error| HttpError(format!("{url}: {e}"));
        let answer = if body.is_empty() {
            self.agent
                .run(openidconnect::http::Request::from_parts(parts, ()))
                .map_err(fail)?
        } else {
            self.agent
                .run(openidconnect::http::Request::from_parts(parts, body))
                .map_err(fail)?
        };
        let (parts, mut body) = answer.into_parts();
        let bytes = body
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| HttpError(format!("{url}: {e}")))?;
        Ok(openidconnect::http::Response::from_parts(parts, bytes))
    }

    fn provider_error(&self, message: impl std::fmt::Display) -> OidcError {
        OidcError::Provider {
            issuer: self.settings.issuer.clone(),
            message: message.to_string(),
        }
    }

    /// The provider's endpoints and keys, from discovery (cached for an hour; `refresh` fetches
    /// them again).
    fn client(&self, refresh: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut cached = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cached.as_ref() {
            let age = d.at.elapsed();
            if age < DISCOVERY_TTL && !(refresh && age >= KEYS_REFRESH_MIN) {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| self.provider_error(format!("web.issuer: {e}")))?;
        let http = |r| self.http(r);
        let metadata = CoreProviderMetadata::discover(&issuer, &http)
            .map_err(|e| self.provider_error(format!("discovery failed: {}", chain(&e))))?;
        let redirect = RedirectUrl::new(self.settings.redirect_url())
            .map_err(|e| self.provider_error(format!("web.redirect_url: {e}")))?;
        let client = Client::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(self.secret.clone()),
        )
        .set_redirect_uri(redirect);
        let d = Arc::new(Discovered {
            client,
            at: Instant::now(),
        });
        *cached = Some(d.clone());
        Ok(d)
    }

    /// Start a sign-in: where to send the browser, with a fresh state, nonce and PKCE pair.
    pub fn begin(&self) -> Result<Begin, OidcError> {
        let d = self.client(false)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = d.client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self
            .settings
            .scopes
            .iter()
            .filter(|s| s.as_str() != "openid")
        {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begin {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finish a sign-in: exchange the code (with the PKCE verifier), verify the ID token
    /// (signature, iss, aud, exp, nonce), map its claims to a person.
    pub fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Person, OidcError> {
        let d = self.client(false)?;
        let http = |r| self.http(r);
        let answer = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| self.provider_error(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request(&http)
            .map_err(|e| {
                OidcError::Token(format!("the provider refused the code: {}", chain(&e)))
            })?;
        let id_token = answer.extra_fields().id_token().ok_or_else(|| {
            OidcError::Token(
                "the provider sent no ID token (is the openid scope allowed for this client?)"
                    .into(),
            )
        })?;
        let nonce = Nonce::new(nonce.to_string());
        let verified: Result<Claims, _> = id_token
            .claims(&d.client.id_token_verifier(), &nonce)
            .cloned();
        let claims = match verified {
            Ok(c) => c,
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(first)) => {
                // Perhaps the provider rotated its keys: fetch them again, once.
                let fresh = self.client(true)?;
                let verifier = fresh.client.id_token_verifier();
                let again = id_token.claims(&verifier, &nonce).cloned();
                again.map_err(|e| {
                    OidcError::Token(format!(
                        "ID token: {first}; with the provider's current keys: {}",
                        chain(&e)
                    ))
                })?
            }
            Err(e) => return Err(OidcError::Token(format!("ID token: {}", chain(&e)))),
        };
        let Value::Object(map) = serde_json::to_value(&claims)
            .map_err(|e| OidcError::Token(format!("ID token claims: {e}")))?
        else {
            return Err(OidcError::Token("ID token claims are not an object".into()));
        };
        map_claims(&self.settings, &map).map_err(OidcError::Mapping)
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// A claim as text (a string, or a number).
fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The verified claims → the person: the user name from `user_claim` (through `[web.users]`,
/// else `user_template`), the broker groups that `[web.groups]` gives the provider's groups.
pub fn map_claims(web: &WebSettings, claims: &Map<String, Value>) -> Result<Person, String> {
    let subject = claim_text(claims, "sub").ok_or("the ID token has no sub")?;
    let issuer = claim_text(claims, "iss").ok_or("the ID token has no iss")?;
    let value = claim_text(claims, &web.user_claim).ok_or_else(|| {
        format!(
            "the ID token has no {:?} claim (web.user_claim), so the broker cannot tell which user you are; ask the broker's admin to have the provider send it",
            web.user_claim
        )
    })?;
    if value.contains('@') && claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(format!(
            "the provider says the address {value:?} is not verified"
        ));
    }
    let user = match web
        .users
        .get(&value)
        .or_else(|| web.users.get(&value.to_lowercase()))
    {
        Some(user) => user.clone(),
        None => user_from_template(web, &value)?,
    };
    if !jit_grant::valid_user_name(&user) {
        return Err(format!(
            "{:?} ({} {value:?}) is not a Unix user name; ask the broker's admin to map it in [web.users]",
            user, web.user_claim
        ));
    }
    let provider_groups: Vec<String> = match claims.get(&web.groups_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut groups: Vec<String> = provider_groups
        .iter()
        .filter_map(|g| web.groups.get(g))
        .flatten()
        .cloned()
        .collect();
    groups.sort();
    groups.dedup();
    Ok(Person {
        issuer,
        subject,
        user,
        groups,
    })
}

fn user_from_template(web: &WebSettings, value: &str) -> Result<String, String> {
    let mut user = web.user_template.replace("{claim}", value);
    if web.user_template.contains("{local}") {
        let (local, domain) = value.rsplit_once('@').ok_or_else(|| {
            format!(
                "{} {value:?} is not an address (web.user_template takes the part before @)",
                web.user_claim
            )
        })?;
        if !web.email_domains.contains(&domain.to_ascii_lowercase()) {
            return Err(format!(
                "{value:?} is not in a domain whose people may sign in here ({})",
                web.email_domains.join(", ")
            ));
        }
        user = user.replace("{local}", local);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn web(extra: &str) -> WebSettings {
        let text = format!(
            "id = \"b\"\n[web]\npublic_url = \"https://broker.example.com\"\nissuer = \"https://idp.example.com/realms/corp\"\nclient_id = \"jitbroker\"\nclient_secret_file = \"/nonexistent\"\n{extra}\n[web.groups]\n\"/dba-leads\" = [\"dbleads\"]\nadmins = [\"jitadmin\", \"dbleads\"]\n"
        );
        Config::parse(&text, std::path::Path::new("broker.toml"))
            .unwrap()
            .web
            .unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(mut m) = v else {
            unreachable!()
        };
        m.insert("iss".into(), json!("https://idp.example.com/realms/corp"));
        m.insert("sub".into(), json!("f81d4fae-7dec"));
        m
    }

    #[test]
    fn user_and_groups_come_from_the_mapped_claims() {
        let w = web("");
        let p = map_claims(&w, &claims(json!({"preferred_username": "bob", "groups": ["/dba-leads", "admins", "unmapped"]}))).unwrap();
        assert_eq!(p.user, "bob");
        assert_eq!(p.groups, ["dbleads", "jitadmin"]);
        assert_eq!(p.subject, "f81d4fae-7dec");
        // Unmapped provider groups give nothing; no groups claim: no groups.
        let p = map_claims(&w, &claims(json!({"preferred_username": "carol"}))).unwrap();
        assert!(p.groups.is_empty());
        // No user claim, or not a user name: refused, saying why.
        let e = map_claims(&w, &claims(json!({"email": "x@y"}))).unwrap_err();
        assert!(e.contains("preferred_username"), "{e}");
        let e = map_claims(&w, &claims(json!({"preferred_username": "../root"}))).unwrap_err();
        assert!(e.contains("not a Unix user name"), "{e}");
    }

    #[test]
    fn local_part_only_for_the_named_domains() {
        let w = web("user_claim = \"email\"\nuser_template = \"{local}\"\nemail_domains = [\"Example.com\"]\n[web.users]\n\"boss@example.com\" = \"carol\"");
        let p = map_claims(&w, &claims(json!({"email": "alice@EXAMPLE.com"}))).unwrap();
        assert_eq!(p.user, "alice");
        assert_eq!(
            map_claims(&w, &claims(json!({"email": "boss@example.com"})))
                .unwrap()
                .user,
            "carol"
        );
        let e = map_claims(&w, &claims(json!({"email": "alice@evil.example"}))).unwrap_err();
        assert!(e.contains("not in a domain"), "{e}");
        let e = map_claims(
            &w,
            &claims(json!({"email": "alice@example.com", "email_verified": false})),
        )
        .unwrap_err();
        assert!(e.contains("not verified"), "{e}");
    }

    #[test]
    fn the_documented_web_settings_parse() {
        let docs = [
            include_str!("../../../../docs/broker.md"),
            include_str!("../../../../docs/admin-guide.md"),
        ];
        let mut seen = 0;
        for doc in docs {
            for block in doc.split("```toml\n").skip(1) {
                let block = block.split("```").next().unwrap();
                if !block.starts_with("[web]") {
                    continue;
                }
                let text = format!("id = \"b\"\n{block}");
                let c = Config::parse(&text, std::path::Path::new("doc.toml"))
                    .unwrap_or_else(|e| panic!("{e}\n{block}"));
                assert!(c.web.is_some());
                seen += 1;
            }
        }
        assert!(seen >= 3, "{seen} [web] examples");
    }

    #[test]
    fn settings_are_checked() {
        let bad = |extra: &str, want: &str| {
            let text = format!("id = \"b\"\n[web]\npublic_url = \"https://b.example.com\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\nclient_secret_file = \"/x\"\n{extra}\n");
            let e = Config::parse(&text, std::path::Path::new("broker.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        };
        bad("user_template = \"{local}\"", "email_domains");
        bad(
            "redirect_url = \"https://b.example.com/elsewhere\"",
            "/ui/callback",
        );
        bad("ticket_url = \"https://t.example.com/browse/\"", "{ticket}");
        bad("session_idle = \"9h\"", "longer than web.session_lifetime");
        let text = "id = \"b\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n[web]\npublic_url = \"http://127.0.0.1:1\"\nissuer = \"https://i.example.com\"\nclient_id = \"c\"\nclient_secret_file = \"/x\"\n";
        let e = Config::parse(text, std::path::Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be https:// when the broker serves TLS"),
            "{e}"
        );
        let text = "id = \"b\"\n[web]\npublic_url = \"http://broker.example.com\"\nissuer = \"https://i.example.com\"\nclient_id = \"c\"\nclient_secret_file = \"/x\"\n";
        let e = Config::parse(text, std::path::Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be https://"), "{e}");
        let text = "id = \"b\"\n[web]\npublic_url = \"https://b.example.com/x|y\"\nissuer = \"https://i.example.com\"\nclient_id = \"c\"\nclient_secret_file = \"/x\"\n";
        assert!(Config::parse(text, std::path::Path::new("b.toml")).is_err());
    }
}
