//! Signing in to a node with OpenID Connect, against a real OpenID provider (the npm package
//! oidc-provider, installed by `scripts/oidc-env`) on loopback, driven as a browser would: the
//! first sign-in makes the user and their author, the ORCID iD the provider vouched for is
//! attested, and API tokens made for that user work until revoked.

use std::collections::BTreeMap;
use std::time::Duration;

use orrery_tests::cli_at;
use orrery_tests::oidc::{free_port, node_signing_in_with, provider};
use serde_json::Value;

const ORCID: &str = "0000-0002-1825-0097";
/// A browser: follows redirects across the node and the provider, keeping cookies by host (as
/// browsers do, whatever the port), posting the provider's login and consent forms as `login`.
struct Browser {
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            agent: ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .build()
                .new_agent(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Signs in starting at `start`; returns where the browser ended (after the node's redirect).
    fn sign_in(&mut self, start: &str, login: &str) -> String {
        let mut url = start.to_owned();
        let mut form: Option<(String, String)> = None;
        for _ in 0..30 {
            let cookie = self.cookie_header();
            let mut r = match form.take() {
                Some((action, body)) => self
                    .agent
                    .post(&action)
                    .header("cookie", &cookie)
                    .content_type("application/x-www-form-urlencoded")
                    .send(body.as_bytes()),
                None => self.agent.get(&url).header("cookie", &cookie).call(),
            }
            .expect("an answer");
            for set in r.headers().get_all("set-cookie") {
                let pair = set.to_str().expect("ascii").split(';').next().unwrap_or("");
                if let Some((k, v)) = pair.split_once('=') {
                    self.cookies
                        .insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
            if let Some(loc) = r.headers().get("location") {
                let loc = loc.to_str().expect("ascii");
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                url = if loc.starts_with('/') {
                    format!("{origin}{loc}")
                } else {
                    loc.to_owned()
                };
                if url.ends_with("/ui/") {
                    return url;
                }
                continue;
            }
            let status = r.status();
            let page = r.body_mut().read_to_string().expect("a page");
            let Some(action) = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
            else {
                panic!("stuck at {url} ({status}): {page}");
            };
            let body = if page.contains("name=\"prompt\" value=\"login\"") {
                format!("prompt=login&login={login}&password=anything")
            } else {
                "prompt=consent".to_owned()
            };
            form = Some((action.to_owned(), body));
        }
        panic!("the sign-in never came back to the node");
    }
}

fn me(base: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.get(&format!("{base}/api/v1/me"));
    if let Some((k, v)) = auth {
        req = req.header(k, v);
    }
    let mut r = req.call().expect("the node answers");
    let status = r.status().as_u16();
    let body = r.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_signs_in_with_orcid_and_a_script_uses_a_token() {
    // The node's address must be registered with the provider before either starts.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let op = provider(&format!("{base}/auth/callback/orcid"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (home, node, task) = node_signing_in_with(dir.path(), "esac", port, &op).await;

    // Nobody yet.
    assert_eq!(me(&base, None).0, 401);
    assert_eq!(
        me(&base, Some(("authorization", "Bearer orr_forged"))).0,
        401
    );
    assert_eq!(me(&base, Some(("cookie", "orrery_session=forged"))).0, 401);

    let start = format!("{base}/auth/login/orcid");
    let mut browser = Browser::new();
    let landed = tokio::task::spawn_blocking(move || {
        let landed = browser.sign_in(&start, ORCID);
        (landed, browser)
    })
    .await
    .expect("browser");
    let (landed, browser) = landed;
    assert!(landed.ends_with("/ui/"), "{landed}");
    let session = browser
        .cookies
        .get("orrery_session")
        .cloned()
        .expect("a session cookie");
    let (status, who) = me(
        &base,
        Some(("cookie", &format!("orrery_session={session}"))),
    );
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["orcid"], ORCID, "the iD is attested: {who}");
    let user = who["user"].as_str().expect("a user").to_owned();

    // The operator makes a read token for that user; a script uses it until it is revoked.
    let data = home.root().to_str().expect("utf-8").to_owned();
    let made = cli_at(
        &data,
        &[
            "token", "create", "--user", &user, "--scope", "read", "--days", "1",
        ],
    );
    let token = made
        .lines()
        .find(|l| l.starts_with("orr_"))
        .expect("the token is printed")
        .to_owned();
    let bearer = format!("Bearer {token}");
    let (status, as_script) = me(&base, Some(("authorization", &bearer)));
    assert_eq!(status, 200, "{as_script}");
    assert_eq!(as_script["user"], user.as_str());
    assert_eq!(as_script["scopes"], serde_json::json!(["read"]));
    let id = token.split('_').nth(1).expect("an id");
    cli_at(&data, &["token", "revoke", id]);
    // Revoked from the command line (another process), it stops working within the second the
    // node keeps a credential's answer.
    let revoked_at = std::time::Instant::now();
    let refused = loop {
        let status = me(&base, Some(("authorization", &bearer))).0;
        if status == 401 || revoked_at.elapsed() > Duration::from_secs(10) {
            break status;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(refused, 401, "revoked");
    assert!(
        revoked_at.elapsed() < Duration::from_secs(3),
        "the revoked token worked for {:?}",
        revoked_at.elapsed()
    );

    // Signing in again is the same user.
    let start = format!("{base}/auth/login/orcid");
    let again = tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        b.sign_in(&start, ORCID);
        b.cookies.get("orrery_session").cloned().expect("a session")
    })
    .await
    .expect("browser");
    let (_, who_again) = me(&base, Some(("cookie", &format!("orrery_session={again}"))));
    assert_eq!(who_again["user"], user.as_str());
    let users = cli_at(&data, &["user", "list"]);
    assert_eq!(users.matches("verified").count(), 1, "{users}");

    // Editing as that user publishes the node's attestation in the project: the citation marks
    // the iD as verified, not merely declared.
    let author = who["author"].as_str().expect("an author");
    let made = cli_at(
        &data,
        &["project", "new", "Crab light curve", "--as", &author[..12]],
    );
    let project = made
        .trim()
        .strip_prefix("project id: ")
        .expect("a project id")
        .to_owned();
    let cff = cli_at(&data, &["project", "cite", &project]);
    let line = cff
        .lines()
        .find(|l| l.contains("orcid:") && l.contains(ORCID))
        .unwrap_or_else(|| panic!("no ORCID in:\n{cff}"));
    assert!(line.contains("# verified by"), "{cff}");

    // The operator adds a colleague before her first sign-in, bound to her ORCID iD (so that
    // projects can be shared with her at once); her sign-in is that user, not a new one.
    const GRACE: &str = "0000-0001-5109-3700";
    let made = cli_at(
        &data,
        &[
            "user",
            "add",
            "--name",
            "Grace Hopper",
            "--sign-in",
            &format!("orcid:{GRACE}"),
        ],
    );
    assert!(
        made.contains(&format!("signs in with orcid as {GRACE}")),
        "{made}"
    );
    let grace = made.split_whitespace().nth(1).expect("an id").to_owned();
    let start = format!("{base}/auth/login/orcid");
    let hers = tokio::task::spawn_blocking(move || {
        let mut b = Browser::new();
        b.sign_in(&start, GRACE);
        b.cookies.get("orrery_session").cloned().expect("a session")
    })
    .await
    .expect("browser");
    let (_, who_grace) = me(&base, Some(("cookie", &format!("orrery_session={hers}"))));
    assert_eq!(who_grace["user"], grace.as_str(), "{who_grace}");
    assert_eq!(who_grace["name"], "Grace Hopper", "{who_grace}");
    // A sign-in already bound, an unknown provider, and a malformed one are refused, and no
    // user is made for them.
    for bad in [
        format!("orcid:{GRACE}"),
        "gitlab:ada".into(),
        "orcid".into(),
    ] {
        let argv = [
            "orrery",
            "--data-dir",
            &data,
            "user",
            "add",
            "--name",
            "Someone",
            "--sign-in",
            &bad,
        ];
        let mut out = Vec::new();
        let refused = orrery_node::cli::run(
            <orrery_node::cli::Cli as clap::Parser>::parse_from(argv),
            &mut out,
        );
        assert!(refused.is_err(), "{bad} was taken");
    }
    let users = cli_at(&data, &["user", "list"]);
    assert!(!users.contains("Someone"), "{users}");

    node.shutdown();
    let _ = task.await;
}
