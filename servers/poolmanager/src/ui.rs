//! The operator dashboard: plain ES modules and CSS from `servers/poolmanager/ui/`,
//! embedded in the binary so that it needs no network at run time, served at `/ui/`.
//!
//! The pages talk to the server only through the public REST API and its event
//! stream, with the admin token the operator types in; nothing here is privileged.
//! Every answer carries a strict Content-Security-Policy: scripts, styles and
//! connections from this origin only, no inline script.

use poem::http::{header, Method, StatusCode};
use poem::web::Redirect;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// Where the dashboard is served.
pub const PATH: &str = "/ui/";

/// What [`Dashboard`] is nested at, without stripping it (`Route::nest_no_strip`):
/// it answers `/ui` itself, with a redirect to [`PATH`].
pub const PREFIX: &str = "/ui";

/// The policy of every dashboard answer: nothing but this origin, never framed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard; `index.html` answers `/ui/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("events.js", JS),
    asset!("dom.js", JS),
    asset!("overview.js", JS),
    asset!("hosts.js", JS),
    asset!("clusters.js", JS),
    asset!("blueprints.js", JS),
];

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The dashboard's files, to be nested at [`PREFIX`] without stripping it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Dashboard;

impl Endpoint for Dashboard {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let answer = if req.method() != Method::GET && req.method() != Method::HEAD {
            Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, HEAD")
                .finish()
        } else if req.uri().path() == PREFIX {
            // Relative module paths need the slash.
            Redirect::permanent(PATH).into_response()
        } else {
            let path = req.uri().path().strip_prefix(PATH).unwrap_or("/");
            match find(path) {
                Some(asset) => Response::builder()
                    .content_type(asset.content_type)
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(if req.method() == Method::HEAD {
                        &[][..]
                    } else {
                        asset.body
                    }),
                None => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .content_type("text/plain; charset=utf-8")
                    .body("no such file in the dashboard"),
            }
        };
        Ok(secured(answer))
    }
}

/// `answer` with the dashboard's security headers.
fn secured(mut answer: Response) -> Response {
    let headers = answer.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, poem::http::HeaderValue::from_static(value));
    }
    answer
}

/// Sends `GET /` to the dashboard; every other request goes on to the app it wraps.
#[derive(Debug, Default, Clone, Copy)]
pub struct Home;

impl<E: Endpoint> Middleware<E> for Home {
    type Output = HomeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        HomeEndpoint { inner }
    }
}

/// An app whose root leads to the dashboard.
pub struct HomeEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for HomeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() == "/" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return Ok(Redirect::temporary(PATH).into_response());
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Uri;
    use poem::{EndpointExt, Route};

    use super::*;

    fn app() -> impl Endpoint {
        let app = Route::new().at("/other", poem::endpoint::make_sync(|_| "other"));
        Route::new()
            .nest_no_strip(PREFIX, Dashboard)
            .nest("/", app.with(Home))
    }

    async fn send(method: Method, path: &str) -> Response {
        let req = Request::builder()
            .method(method)
            .uri(path.parse::<Uri>().expect("uri"))
            .finish();
        app().get_response(req).await
    }

    fn header(resp: &Response, name: header::HeaderName) -> &str {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_root_leads_to_the_dashboard() {
        let resp = send(Method::GET, "/").await;
        assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(header(&resp, header::LOCATION), "/ui/");
        let resp = send(Method::GET, "/other").await;
        assert_eq!(resp.into_body().into_string().await.expect("body"), "other");
        let resp = send(Method::GET, "/ui").await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&resp, header::LOCATION), "/ui/");
    }

    #[tokio::test]
    async fn files_come_with_their_type_and_the_policy() {
        for (path, wanted) in [
            ("/ui/", "text/html; charset=utf-8"),
            ("/ui/index.html", "text/html; charset=utf-8"),
            ("/ui/app.js", JS),
            ("/ui/style.css", "text/css; charset=utf-8"),
            ("/ui/favicon.svg", "image/svg+xml"),
        ] {
            let resp = send(Method::GET, path).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&resp, header::CONTENT_TYPE), wanted, "{path}");
            assert_eq!(header(&resp, header::CONTENT_SECURITY_POLICY), CSP, "{path}");
            assert_eq!(header(&resp, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
            let body = resp.into_body().into_vec().await.expect("body");
            assert_eq!(body, find(path.trim_start_matches("/ui/")).expect("asset").body);
        }
        let head = send(Method::HEAD, "/ui/app.js").await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(header(&head, header::CONTENT_TYPE), JS);
        assert!(CSP.starts_with("default-src 'self';") && !CSP.contains("unsafe"));
    }

    #[tokio::test]
    async fn unknown_files_are_not_found() {
        for path in [
            "/ui/nope.js",
            "/ui/../Cargo.toml",
            "/ui/views/app.js",
            "/ui/%2e%2e/lib.rs",
        ] {
            let resp = send(Method::GET, path).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(header(&resp, header::CONTENT_SECURITY_POLICY), CSP, "{path}");
        }
        let resp = send(Method::POST, "/ui/app.js").await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&resp, header::ALLOW), "GET, HEAD");
    }

    #[test]
    fn the_page_loads_no_inline_script_and_nothing_from_elsewhere() {
        for asset in ASSETS {
            // The SVG namespace is a name, not an address.
            let text = String::from_utf8_lossy(asset.body).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{} names another site",
                asset.path
            );
        }
        let index = String::from_utf8_lossy(find("").expect("index").body);
        assert_eq!(
            index.matches("<script").count(),
            1,
            "one module, no inline script"
        );
        assert!(index.contains(r#"<script type="module" src="app.js"></script>"#));
        assert!(
            !index.contains(" style=") && !index.contains(" on"),
            "no inline style or handler"
        );
    }

    #[test]
    fn every_module_imported_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = String::from_utf8_lossy(asset.body);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let module = line
                    .rsplit_once("from \"./")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| panic!("{}: import not from \"./…\": {line}", asset.path));
                assert!(
                    find(module).is_some(),
                    "{} imports {module}, not embedded",
                    asset.path
                );
            }
        }
    }
}
