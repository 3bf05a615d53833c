//! A node's REST API from tests: users with tokens, and plain HTTP calls.

use serde_json::Value;

use crate::{TestNode, cli};

/// A user of a node with an API token.
pub struct User {
    /// Their user id.
    pub id: String,
    /// Their author key.
    pub author: String,
    /// Their token.
    pub token: String,
}

/// A new user `name` of `node` with a token of `scopes`.
pub fn user(node: &TestNode, name: &str, scopes: &str) -> User {
    user_with(node, name, scopes, &[])
}

/// As [`user`], with more arguments to `orrery user add` (such as `--sign-in`).
pub fn user_with(node: &TestNode, name: &str, scopes: &str, more: &[&str]) -> User {
    let mut args = vec!["user", "add", "--name", name];
    args.extend_from_slice(more);
    let made = cli(node, &args);
    let words: Vec<&str> = made.split_whitespace().collect();
    let id = words[1].to_owned();
    let author = words[words.iter().position(|w| *w == "author").expect("author") + 1].to_owned();
    let token = token(node, &id, scopes);
    User { id, author, token }
}

/// A new token of `scopes` for `user`.
pub fn token(node: &TestNode, user: &str, scopes: &str) -> String {
    let out = cli(
        node,
        &[
            "token", "create", "--user", user, "--scope", scopes, "--days", "1",
        ],
    );
    out.lines().nth(1).expect("the secret").trim().to_owned()
}

/// Plain HTTP calls to a node's API.
pub struct Http {
    agent: ureq::Agent,
    /// The node's base URL.
    pub base: String,
}

impl Http {
    /// A client of `node`.
    pub fn new(node: &TestNode) -> Http {
        Http {
            // A new connection per request: a refusal answered before its body was read may
            // close the connection, and a pooled one could then be reused after it closed.
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_idle_connections(0)
                .build()
                .new_agent(),
            base: format!("http://{}", node.handle().web_addr().expect("serves HTTP")),
        }
    }

    /// Sends a request; answers the status and the JSON body (null when there is none).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(serde_json::to_vec(b).expect("json"))
                    .expect("request"),
            ),
            None => self.agent.run(req.body(Vec::new()).expect("request")),
        };
        let mut r = r.expect("an answer");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a request with `token`.
    pub fn as_user(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        self.send(method, path, &[("authorization", &auth)], body)
    }
}
