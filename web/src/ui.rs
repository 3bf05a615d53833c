//! The browser UI: the files `scripts/ui-build` builds from `ui/` (TypeScript, Vite), served
//! under `/ui/` with a strict content security policy. Release builds carry them inside the
//! binary; debug builds read them from `ui/dist` as they are rebuilt.
//!
//! A binary built before the UI was answers `/ui/` with a page saying how to build it, never
//! with an empty page.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "../ui/dist/"]
#[allow_missing = true]
struct Assets;

/// Everything the pages load comes from the node itself; nothing may frame them.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The application's page: as [`CSP`], except that a style element carrying this response's
/// nonce may apply (the cell editor, CodeMirror, mounts its own styles so). No other inline
/// style, and no inline script, is allowed.
fn app_csp(nonce: &str) -> String {
    CSP.replacen(
        "style-src 'self';",
        &format!("style-src 'self' 'nonce-{nonce}';"),
        1,
    )
}

/// A fresh nonce for one response (24 hexadecimal digits); `None` when the system has no
/// randomness to give, and the page then goes without (its editor's styles are refused, and
/// the browser says so).
fn nonce() -> Option<String> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}
/// GraphiQL's and Swagger UI's bundles carry fonts and icons as `data:` URLs and set inline
/// styles: allowed on those two pages alone. Scripts stay the node's own.
const TOOL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   font-src 'self' data:; img-src 'self' data:; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Orrery: the browser UI is not built</title></head><body><main>\
<h1>The browser UI is not built</h1>\
<p>This node was compiled before its pages were built. Run <code>scripts/ui-build</code> \
(it needs Node.js 20.19 or later and installs the UI's packages from the npm registry into \
<code>ui/node_modules</code>), then build the node again.</p>\
<p>The node's APIs work without it: <a href=\"/tap\">/tap</a>, <code>POST /api/search</code>.</p>\
</main></body></html>";

fn secured(response: Response) -> Response {
    secured_with(response, CSP)
}

fn secured_with(mut response: Response, csp: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A built page's answer: HTML, asked for again on every visit (the assets it names carry a
/// hash in their names and are kept for good).
fn html(body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/ui/`: the application's page, with a nonce for its editor's styles, which the page
/// reads from `<meta name="style-nonce">`.
pub(crate) async fn index() -> Response {
    let Some(file) = Assets::get("index.html") else {
        return page("index.html").await;
    };
    let Some(nonce) = nonce() else {
        tracing::warn!("no randomness for a page's style nonce: its editor will be unstyled");
        return page("index.html").await;
    };
    let html_text = String::from_utf8_lossy(&file.data).replacen(
        "<head>",
        &format!("<head><meta name=\"style-nonce\" content=\"{nonce}\">"),
        1,
    );
    let mut response = secured(html(html_text));
    if let Ok(v) = HeaderValue::from_str(&app_csp(&nonce)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// One of the built pages (`index.html`, `graphiql.html`, `apidocs.html`).
pub(crate) async fn page(name: &str) -> Response {
    let response = match Assets::get(name) {
        Some(file) => html(file.data.into_owned()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response(),
    };
    secured_with(
        response,
        if name == "graphiql.html" || name == "apidocs.html" {
            TOOL_CSP
        } else {
            CSP
        },
    )
}

/// `/ui/{*path}`: a built file. Built files carry a hash of their content in their name, so
/// they may be cached for good; anything else under `/ui/` is the application's page (its own
/// routes), so that a reload of a deep link works.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    if !path.starts_with("assets/") {
        return index().await;
    }
    match Assets::get(&path) {
        Some(file) => {
            let mime = file.metadata.mimetype().to_owned();
            secured(
                (
                    [
                        (header::CONTENT_TYPE, mime),
                        (
                            header::CACHE_CONTROL,
                            "public, max-age=31536000, immutable".to_owned(),
                        ),
                    ],
                    file.data.into_owned(),
                )
                    .into_response(),
            )
        }
        None => secured((StatusCode::NOT_FOUND, "no such file").into_response()),
    }
}

/// Whether a request for `/` comes from a browser (which then goes to the UI).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_s_styles_need_the_response_s_nonce() {
        let csp = app_csp("00ff");
        assert!(csp.contains("style-src 'self' 'nonce-00ff';"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let (a, b) = (nonce().expect("random"), nonce().expect("random"));
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
