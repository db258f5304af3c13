//! The gateway's HTTP(S) server: authenticates each request, refuses writes, answers reads from
//! the indexer's tables, and serves its own health and Prometheus metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use super::api::{self, IncludeObject, ObjectRequest, Route, Wanted};
use super::query::{ListQuery, MAX_PAGE};
use super::source::{ClusterView, Source};
use super::tokens::Tokens;
use super::{DATA_AGE_HEADER, Error};

/// Objects read from the database per query while a page fills (a label selector may skip
/// many).
const BATCH: usize = 500;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    seconds: Histogram,
    data_age: Family<AccountLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "outpost_gateway_requests",
            "Requests answered, by verb, resource and HTTP status code",
            requests.clone(),
        );
        let seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "outpost_gateway_request_seconds",
            "Time to answer a request",
            seconds.clone(),
        );
        let data_age = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "outpost_gateway_data_age_seconds",
            "How old the answers for an account were at its last request: seconds since its agent last changed its head",
            data_age.clone(),
        );
        Self {
            registry,
            requests,
            seconds,
            data_age,
        }
    }
}

/// What every request handler shares.
struct Gateway {
    source: Source,
    tokens: Tokens,
    metrics: Metrics,
}

type Shared = Arc<Gateway>;

/// An answer and the resource it was about (for the metrics).
struct Answer {
    status: StatusCode,
    body: Body,
    content_type: &'static str,
    data_age: Option<i64>,
}

impl Answer {
    fn json(status: StatusCode, value: &Value) -> Self {
        Self {
            status,
            body: Body::from(value.to_string()),
            content_type: "application/json",
            data_age: None,
        }
    }

    fn status(code: u16, reason: &str, message: &str) -> Self {
        Self::json(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &api::status(code, reason, message),
        )
    }

    fn in_form(value: &Value, wanted: Wanted) -> Self {
        match wanted {
            Wanted::Yaml => match serde_yaml_ng::to_string(value) {
                Ok(yaml) => Self {
                    status: StatusCode::OK,
                    body: Body::from(yaml),
                    content_type: "application/yaml",
                    data_age: None,
                },
                Err(e) => Self::status(500, "InternalError", &format!("cannot write YAML: {e}")),
            },
            _ => Self::json(StatusCode::OK, value),
        }
    }
}

/// Builds the router: `/healthz`, `/readyz`, `/metrics`, and every cluster under
/// `/clusters/<account>/…`.
fn router(gateway: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(handle)
        .with_state(gateway)
}

async fn ready(State(gateway): State<Shared>) -> Response {
    match sqlx::query("SELECT 1")
        .execute(gateway.source.database().pool())
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database does not answer: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(gateway): State<Shared>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &gateway.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn handle(State(gateway): State<Shared>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let parameters: BTreeMap<String, String> = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let (answer, resource) = answer(&gateway, &method, &path, &parameters, request.headers()).await;
    let code = answer.status.as_u16();
    gateway
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            verb: verb(&method, &parameters, &path),
            resource,
            code,
        })
        .inc();
    gateway
        .metrics
        .seconds
        .observe(started.elapsed().as_secs_f64());
    let mut response = Response::new(answer.body);
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    if let Some(age) = answer.data_age
        && let Ok(value) = HeaderValue::from_str(&age.to_string())
    {
        headers.insert(DATA_AGE_HEADER, value);
    }
    if code >= 400 {
        tracing::debug!(%method, %path, code, "refused");
    }
    response
}

/// Whether the request asks to watch (`?watch=true`).
fn watching(parameters: &BTreeMap<String, String>) -> bool {
    parameters
        .get("watch")
        .is_some_and(|w| w == "true" || w == "1")
}

/// The Kubernetes verb of a request, as the API server's audit names it.
fn verb(method: &Method, parameters: &BTreeMap<String, String>, path: &str) -> String {
    match *method {
        Method::GET | Method::HEAD => {
            if watching(parameters) {
                "watch".into()
            } else {
                match api::route(
                    path.split_once("/clusters/")
                        .map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p)),
                ) {
                    Route::Object(ObjectRequest { name: None, .. }) => "list".into(),
                    _ => "get".into(),
                }
            }
        }
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => "delete".into(),
        _ => method.as_str().to_lowercase(),
    }
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn answer(
    gateway: &Gateway,
    method: &Method,
    path: &str,
    parameters: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> (Answer, String) {
    let none = String::new();
    let Some(consumer) = bearer(headers).and_then(|token| gateway.tokens.authenticate(token))
    else {
        return (
            Answer::status(
                401,
                "Unauthorized",
                "Unauthorized: a valid bearer token is required",
            ),
            none,
        );
    };
    let Some(rest) = path.strip_prefix("/clusters/") else {
        return (
            Answer::status(
                404,
                "NotFound",
                &format!("the gateway serves clusters under /clusters/<account>, not {path}"),
            ),
            none,
        );
    };
    let (account, path) = match rest.split_once('/') {
        Some((account, path)) => (account, format!("/{path}")),
        None => (rest, "/".to_string()),
    };
    if !consumer.may_read(account) {
        return (
            Answer::status(
                403,
                "Forbidden",
                &format!("{} may not read account {account}", consumer.name),
            ),
            none,
        );
    }
    let route = api::route(&path);
    let resource = match &route {
        Route::Object(request) => request.resource.clone(),
        _ => "discovery".into(),
    };
    if *method != Method::GET && *method != Method::HEAD {
        return (
            Answer::status(
                403,
                "Forbidden",
                &format!(
                    "the Outpost gateway is read-only: {} is not allowed on {account}, whose cluster is reached through its bucket only",
                    method.as_str()
                ),
            ),
            resource,
        );
    }
    let cluster = match gateway.source.cluster(account).await {
        Ok(Some(cluster)) => cluster,
        Ok(None) => {
            return (
                Answer::status(
                    404,
                    "NotFound",
                    &format!("no indexed cluster holds account {account}"),
                ),
                resource,
            );
        }
        Err(e) => {
            tracing::error!(%account, error = %e, "reading the cluster");
            return (
                Answer::status(
                    503,
                    "ServiceUnavailable",
                    "the gateway's database does not answer",
                ),
                resource,
            );
        }
    };
    let data_age = cluster
        .head_updated_ms
        .map(|ms| ((Utc::now().timestamp_millis() - ms) / 1000).max(0));
    if let Some(age) = data_age {
        gateway
            .metrics
            .data_age
            .get_or_create(&AccountLabels {
                account: account.to_string(),
            })
            .set(age);
    }
    let wanted = api::wanted(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let mut answer = match serve(gateway, account, &cluster, route, parameters, wanted).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(%account, %path, error = %e, "answering");
            Answer::status(
                503,
                "ServiceUnavailable",
                "the gateway's database does not answer",
            )
        }
    };
    answer.data_age = data_age;
    (answer, resource)
}

async fn serve(
    gateway: &Gateway,
    account: &str,
    cluster: &ClusterView,
    route: Route,
    parameters: &BTreeMap<String, String>,
    wanted: Wanted,
) -> Result<Answer, Error> {
    let resources = api::served_resources(
        cluster
            .identity
            .as_ref()
            .map(|i| i.resources.as_slice())
            .unwrap_or_default(),
    );
    let resources = resources.as_slice();
    let found = |document: Option<Value>, what: &str| match document {
        Some(document) => Answer::in_form(&document, wanted),
        None => Answer::status(
            404,
            "NotFound",
            &format!("the server could not find {what}"),
        ),
    };
    Ok(match route {
        Route::Version => Answer::json(
            StatusCode::OK,
            &api::version(
                cluster
                    .identity
                    .as_ref()
                    .and_then(|i| i.server_version.as_deref()),
            ),
        ),
        Route::CoreVersions => Answer::json(StatusCode::OK, &api::core_versions(resources)),
        Route::Groups => Answer::json(StatusCode::OK, &api::group_list(resources)),
        Route::Group(group) => found(api::group(resources, &group), &format!("group {group}")),
        Route::Resources { group, version } => found(
            api::resource_list(resources, &group, &version),
            &api::api_version(&group, &version),
        ),
        Route::NotFound => Answer::status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        Route::Object(request) => {
            serve_objects(
                gateway, account, cluster, resources, request, parameters, wanted,
            )
            .await?
        }
    })
}

async fn serve_objects(
    gateway: &Gateway,
    account: &str,
    cluster: &ClusterView,
    resources: &[crate::format::ServedResource],
    request: ObjectRequest,
    parameters: &BTreeMap<String, String>,
    wanted: Wanted,
) -> Result<Answer, Error> {
    if request.watch || watching(parameters) {
        return Ok(Answer::status(
            405,
            "MethodNotAllowed",
            &format!(
                "watch is not served for account {account}: its cluster is reached through its bucket only, and the gateway answers gets and lists"
            ),
        ));
    }
    let Some(served) = api::served(resources, &request) else {
        return Ok(Answer::status(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({} is not watched by the agent of {account})",
                if request.group.is_empty() {
                    request.resource.clone()
                } else {
                    format!("{}.{}", request.resource, request.group)
                }
            ),
        ));
    };
    if let Some(subresource) = &request.subresource {
        let message = match subresource.as_str() {
            "log" | "exec" | "attach" | "portforward" | "proxy" => format!(
                "{subresource} is not available for account {account}: its cluster is reached through its bucket only, and the gateway serves the objects it last shipped"
            ),
            other => format!(
                "the gateway does not serve the {other} subresource of {}",
                request.resource
            ),
        };
        return Ok(Answer::status(405, "MethodNotAllowed", &message));
    }
    if served.namespaced != request.namespace.is_some() && request.name.is_some() {
        return Ok(Answer::status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let api_version = api::api_version(&request.group, &request.version);
    if let Some(name) = &request.name {
        let namespace = request.namespace.as_deref().unwrap_or_default();
        return Ok(
            match gateway
                .source
                .object(account, &api_version, &served.kind, namespace, name)
                .await?
            {
                Some(object) => match wanted {
                    Wanted::Table => Answer::json(
                        StatusCode::OK,
                        &api::table(
                            &served.group,
                            &served.kind,
                            &[object],
                            IncludeObject::parse(
                                parameters.get("includeObject").map(String::as_str),
                            ),
                            json!({"resourceVersion": cluster.position}),
                            Utc::now(),
                        ),
                    ),
                    _ => Answer::in_form(&object, wanted),
                },
                None => Answer::json(StatusCode::NOT_FOUND, &api::not_found(&request, name)),
            },
        );
    }
    if !served.namespaced && request.namespace.is_some() {
        return Ok(Answer::status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let query = match ListQuery::parse(&served.kind, parameters) {
        Ok(query) => query,
        Err(bad) => return Ok(Answer::status(400, "BadRequest", &bad.0)),
    };
    let mut items = Vec::new();
    let mut after = query.after.clone();
    let mut last = None;
    let mut more = false;
    let page = query.limit.min(MAX_PAGE);
    'pages: loop {
        // Without a selector every object read is an item: one more than the page still
        // holds says whether another page follows, without reading a whole batch more.
        let wanted = if query.selects_everything() {
            (page - items.len()).min(BATCH) + 1
        } else {
            BATCH
        };
        let batch = gateway
            .source
            .list(
                account,
                &api_version,
                &served.kind,
                request.namespace.as_deref(),
                after.as_ref(),
                wanted,
            )
            .await?;
        let full = batch.len() == wanted;
        for listed in batch {
            after = Some(listed.position.clone());
            if !query.selects(&listed.object) {
                continue;
            }
            if items.len() == page {
                more = true;
                break 'pages;
            }
            last = Some(listed.position);
            items.push(listed.object);
        }
        if !full {
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": cluster.position});
    if more && let Some(last) = last {
        metadata["continue"] = json!(last.token());
    }
    Ok(match wanted {
        Wanted::Table => Answer::json(
            StatusCode::OK,
            &api::table(
                &served.group,
                &served.kind,
                &items,
                IncludeObject::parse(parameters.get("includeObject").map(String::as_str)),
                metadata,
                Utc::now(),
            ),
        ),
        _ => Answer::in_form(
            &json!({
                "kind": format!("{}List", served.kind),
                "apiVersion": api_version,
                "metadata": metadata,
                "items": items,
            }),
            wanted,
        ),
    })
}

/// How the gateway listens.
pub enum Listener {
    /// HTTPS with this certificate chain and key.
    Tls(Arc<rustls::ServerConfig>),
    /// Plain HTTP (behind a proxy that terminates TLS, or in tests).
    Plain,
}

/// Binds `address` (a taken port is an error at start) and returns the address bound and the
/// server to run.
pub async fn bind(
    address: SocketAddr,
    listener: Listener,
    source: Source,
    tokens: Tokens,
) -> Result<(SocketAddr, impl Future<Output = Result<(), Error>>), Error> {
    let tcp = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })?;
    let bound = tcp.local_addr().unwrap_or(address);
    let app = router(Arc::new(Gateway {
        source,
        tokens,
        metrics: Metrics::new(),
    }));
    Ok((bound, async move {
        match listener {
            Listener::Plain => axum::serve(tcp, app).await.map_err(|source| Error::Serve {
                address: bound,
                source,
            }),
            Listener::Tls(config) => serve_tls(tcp, config, app).await,
        }
    }))
}

/// Accepts TLS connections and serves each with the router; a failed handshake or a broken
/// connection ends that connection only.
async fn serve_tls(
    tcp: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
) -> Result<(), Error> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}
