//! Sign-in against a real OpenID provider (the npm package `oidc-provider`, installed by
//! `scripts/oidc-env`) started on loopback, its development login pages driven the way a browser
//! would: the cookies it sets kept, its forms posted, its redirects followed until it sends the
//! browser back to the node with a code.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

const REDIRECT: &str = "http://127.0.0.1:9/auth/callback/test";
const ORCID: &str = "0000-0002-1825-0097";

/// The provider process, killed when dropped.
struct TestProvider {
    child: Child,
    issuer: String,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider() -> TestProvider {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc");
    let install = Command::new(dir.join("../../scripts/oidc-env"))
        .status()
        .expect("scripts/oidc-env runs");
    assert!(install.success(), "scripts/oidc-env failed");
    let clients = serde_json::json!([{
        "client_id": "orrery-test",
        "client_secret": "a secret the provider shares with the node",
        "redirect_uris": [REDIRECT],
    }]);
    let names = serde_json::json!({ ORCID: "Josiah Carberry" });
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("OIDC_CLIENTS", clients.to_string())
        .env("OIDC_NAMES", names.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts the provider");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(issuer) = line.strip_prefix("ready ") {
                let _ = tx.send(issuer.to_owned());
            }
        }
    });
    let issuer = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the provider says it is ready");
    TestProvider { child, issuer }
}

fn config(issuer: &str, orcid: bool) -> ProviderConfig {
    ProviderConfig {
        id: "test".into(),
        display_name: "Test provider".into(),
        issuer: issuer.into(),
        client_id: "orrery-test".into(),
        client_secret: Some("a secret the provider shares with the node".into()),
        orcid,
    }
}

/// A browser's part of the flow, signing in as `login`: returns the URL the provider sent the
/// browser back to.
fn browser_signs_in(start: &str, login: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = start.to_owned();
    let mut form: Option<(String, String)> = None;
    for _ in 0..20 {
        let cookie = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut response = match form.take() {
            Some((action, body)) => agent
                .post(&action)
                .header("cookie", &cookie)
                .content_type("application/x-www-form-urlencoded")
                .send(body.as_bytes()),
            None => agent.get(&url).header("cookie", &cookie).call(),
        }
        .expect("the provider answers");
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().expect("ascii").split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                cookies.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        if let Some(location) = response.headers().get("location") {
            let mut location = location.to_str().expect("ascii").to_owned();
            if location.starts_with('/') {
                // Relative to the page's origin.
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                location = format!("{origin}{location}");
            }
            if location.starts_with(REDIRECT) {
                return location;
            }
            url = location;
            continue;
        }
        let page = response.body_mut().read_to_string().expect("a page");
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page has a form")
            .to_owned();
        let body = if page.contains("name=\"prompt\" value=\"login\"") {
            format!("prompt=login&login={login}&password=anything")
        } else {
            assert!(
                page.contains("value=\"consent\""),
                "an unexpected page: {page}"
            );
            "prompt=consent".to_owned()
        };
        form = Some((action, body));
    }
    panic!("the provider never sent the browser back");
}

fn query(url: &str, key: &str) -> String {
    url.split_once('?')
        .expect("a query")
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {url}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_signs_in_and_the_orcid_id_is_taken_from_the_verified_token() {
    let op = start_provider();
    let provider = Provider::discover(config(&op.issuer, true), REDIRECT)
        .await
        .expect("discovery");
    let (url, pending) = provider.begin();
    assert!(url.contains("code_challenge_method=S256"), "PKCE: {url}");
    let back = tokio::task::spawn_blocking(move || browser_signs_in(&url, ORCID))
        .await
        .expect("browser");
    let (code, state) = (query(&back, "code"), query(&back, "state"));
    let who = provider
        .finish(pending, code.clone(), &state)
        .await
        .expect("signed in");
    assert_eq!(who.subject, ORCID);
    assert_eq!(who.issuer, op.issuer);
    assert_eq!(
        who.orcid.as_ref().map(ToString::to_string).as_deref(),
        Some(ORCID)
    );

    // A subject that is not a valid iD is never taken for one.
    let (url, pending) = provider.begin();
    let back = tokio::task::spawn_blocking(move || browser_signs_in(&url, "0000-0002-1825-0098"))
        .await
        .expect("browser");
    let who = provider
        .finish(pending, query(&back, "code"), &query(&back, "state"))
        .await
        .expect("signed in");
    assert_eq!(who.orcid, None);

    // A provider not configured as ORCID yields no iD, whatever its subjects look like.
    let plain = Provider::discover(config(&op.issuer, false), REDIRECT)
        .await
        .expect("discovery");
    let (url, pending) = plain.begin();
    let back = tokio::task::spawn_blocking(move || browser_signs_in(&url, ORCID))
        .await
        .expect("browser");
    let who = plain
        .finish(pending, query(&back, "code"), &query(&back, "state"))
        .await
        .expect("signed in");
    assert_eq!((who.subject.as_str(), who.orcid), (ORCID, None));
    // With the `profile` scope the provider names the person in the token.
    assert_eq!(who.name.as_deref(), Some("Josiah Carberry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_does_not_match_what_was_started_is_refused() {
    let op = start_provider();
    let provider = Provider::discover(config(&op.issuer, true), REDIRECT)
        .await
        .expect("discovery");
    let flow = |provider: &Provider| {
        let (url, pending) = provider.begin();
        let back = browser_signs_in(&url, ORCID);
        (pending, query(&back, "code"), query(&back, "state"))
    };

    // A forged or mixed-up state.
    let (pending, code, _) = flow(&provider);
    assert!(matches!(
        provider.finish(pending, code, "forged").await,
        Err(OidcError::UnknownSignIn)
    ));

    // A code taken from another sign-in (someone else's browser): its PKCE verifier and nonce
    // are not this sign-in's. The provider refuses the verifier.
    let (mine, _, my_state) = flow(&provider);
    let (_, theirs, _) = flow(&provider);
    assert!(matches!(
        provider.finish(mine, theirs, &my_state).await,
        Err(OidcError::Provider { .. })
    ));

    // The right verifier but another sign-in's nonce: the token is refused.
    let (a, code_a, state_a) = flow(&provider);
    let (b, _, _) = flow(&provider);
    let spliced = PendingSignIn {
        state: a.state.clone(),
        nonce: b.nonce,
        verifier: a.verifier,
        started: a.started,
    };
    assert!(matches!(
        provider.finish(spliced, code_a, &state_a).await,
        Err(OidcError::Token(_))
    ));

    // A code used twice.
    let (pending, code, state) = flow(&provider);
    let (again, _, _) = flow(&provider);
    provider
        .finish(pending, code.clone(), &state)
        .await
        .expect("first use");
    let again = PendingSignIn {
        state: state.clone(),
        ..again
    };
    assert!(provider.finish(again, code, &state).await.is_err());

    // A sign-in left too long.
    let (mut pending, code, state) = flow(&provider);
    pending.started -= SIGN_IN_WINDOW + Duration::from_secs(1);
    assert!(matches!(
        provider.finish(pending, code, &state).await,
        Err(OidcError::UnknownSignIn)
    ));

    // A provider that is not there, or not an OpenID provider.
    assert!(
        Provider::discover(config("http://127.0.0.1:9", true), REDIRECT)
            .await
            .is_err()
    );
    assert!(
        Provider::discover(config("not a url", true), REDIRECT)
            .await
            .is_err()
    );
}
