// A tiny client shared by the examples' `--demo` modes (included with `include!`, not an
// example of its own).

/// GETs each path in turn from `addr` (with the extra `(header, value)`s of each entry, if
/// any) and prints the status, the rate-limit fields and the body.
#[allow(dead_code)]
pub(crate) async fn run(
    addr: std::net::SocketAddr,
    paths: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let with_headers: Vec<(&str, &[(&str, &str)])> = paths.iter().map(|p| (*p, &[][..])).collect();
    run_with_headers(addr, &with_headers).await
}

/// Like [`run`], with headers per request.
pub(crate) async fn run_with_headers(
    addr: std::net::SocketAddr,
    requests: &[(&str, &[(&str, &str)])],
) -> Result<(), Box<dyn std::error::Error>> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(
        hyper_util::rt::TokioExecutor::new(),
    )
    .build_http::<http_body_util::Empty<bytes::Bytes>>();
    for (i, (path, headers)) in requests.iter().enumerate() {
        let mut req = http::Request::get(format!("http://{addr}{path}"));
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let res = client.request(req.body(http_body_util::Empty::new())?).await?;
        let status = res.status();
        let field = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let (ratelimit, policy, retry) =
            (field("ratelimit"), field("ratelimit-policy"), field("retry-after"));
        let body = res.into_body().collect().await?.to_bytes();
        let sent: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "#{:<2} GET {path} {}\n    -> {status} | RateLimit: {ratelimit} | RateLimit-Policy: {policy} | Retry-After: {retry}\n    {}",
            i + 1,
            sent.join(", "),
            String::from_utf8_lossy(&body).trim_end(),
        );
    }
    Ok(())
}
