//! Building the aws-sdk-s3 client from `S3Options`: HTTP client (rustls/ring), credential and
//! region chain, endpoint and addressing style, checksums, SDK retries and timeouts; and an
//! interceptor counting the HTTP requests really sent, by S3 billing class (SDK retries,
//! multipart parts and fallback HEADs included; the `Counting` decorator sees only backend calls).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents,
};
use aws_sdk_s3::error::BoxError;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::options::S3Options;
use crate::backend::{BResult, RequestStats};

/// Connecting must not take longer than this.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt of one request (a whole part or a whole pack goes through one request).
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Used when neither the options nor the AWS chain name a region.
pub(super) const DEFAULT_REGION: &str = "us-east-1";

/// The endpoint to use: explicit option first, then the standard environment variables
/// (which the SDK would read too; reading them here lets them force path-style addressing).
pub(super) fn endpoint(opts: &S3Options) -> Option<String> {
    if let Some(e) = &opts.endpoint {
        return Some(e.clone());
    }
    let ignore = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if ignore {
        return None;
    }
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
}

/// Build the client. Sends no request except what the region/credential chain may need.
/// Every request attempt is counted into `counters`.
pub(super) async fn build(
    opts: &S3Options,
    counters: Arc<WireCounters>,
) -> BResult<aws_sdk_s3::Client> {
    let http = aws_smithy_http_client::Builder::new()
        .pool_max_idle_per_host(opts.connections.max(1))
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard().with_max_attempts(opts.max_attempts.max(1));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts);
    let endpoint = endpoint(opts);
    if let Some(region) = &opts.region {
        loader = loader.region(Region::new(region.clone()));
    } else if endpoint.is_some() {
        // S3-compatible services rarely care about the region: skip the instance-metadata
        // probe of the default chain, which costs seconds on machines outside EC2.
        let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
            .or_else(ProfileFileRegionProvider::new())
            .or_else(Region::new(DEFAULT_REGION));
        loader = loader.region(chain);
    }
    if let Some(c) = &opts.credentials {
        let creds = Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "backup-to-s3-options",
        );
        loader = loader.credentials_provider(creds);
    }
    let sdk = loader.load().await;

    let mut conf = aws_sdk_s3::config::Builder::from(&sdk);
    if sdk.region().is_none() {
        conf = conf.region(Region::new(DEFAULT_REGION));
    }
    let path_style = opts.path_style || endpoint.is_some();
    if let Some(e) = endpoint {
        conf = conf.endpoint_url(e);
    }
    conf = conf
        .force_path_style(path_style)
        .interceptor(CountRequests(counters));
    if opts.checksum_when_required {
        conf = conf
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Ok(aws_sdk_s3::Client::from_conf(conf.build()))
}

#[derive(Debug, Default)]
pub(super) struct WireCounters {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl WireCounters {
    pub fn snapshot(&self) -> RequestStats {
        RequestStats {
            put: self.put.load(Relaxed),
            get: self.get.load(Relaxed),
            head: self.head.load(Relaxed),
            list: self.list.load(Relaxed),
            delete: self.delete.load(Relaxed),
            bytes_up: self.bytes_up.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
        }
    }

    /// The counter a request is billed under (S3 prices PUT/COPY/POST/LIST together, but
    /// the summaries keep LIST apart).
    fn counter(&self, method: &str, query: &str) -> &AtomicU64 {
        let has = |param: &str| {
            query
                .split('&')
                .any(|p| p == param || p.starts_with(&format!("{param}=")))
        };
        match method {
            "GET" if has("list-type") => &self.list,
            "GET" => &self.get,
            "HEAD" => &self.head,
            "DELETE" => &self.delete,
            "POST" if has("delete") => &self.delete,
            _ => &self.put,
        }
    }
}

/// SDK interceptor feeding `WireCounters`; runs once per attempt.
#[derive(Debug, Clone)]
pub(super) struct CountRequests(pub Arc<WireCounters>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "backup-to-s3::CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let query = req.uri().split_once('?').map_or("", |(_, q)| q);
        self.0.counter(req.method(), query).fetch_add(1, Relaxed);
        if let Some(n) = req.body().content_length() {
            self.0.bytes_up.fetch_add(n, Relaxed);
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The body's own length, not the header: HEAD answers announce a size but carry nothing.
        let len = context.response().body().content_length().unwrap_or(0);
        self.0.bytes_down.fetch_add(len, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_billed_by_kind() {
        let c = WireCounters::default();
        c.counter("GET", "list-type=2&prefix=data%2F")
            .fetch_add(1, Relaxed);
        c.counter("GET", "x-id=GetObject").fetch_add(1, Relaxed);
        c.counter("POST", "delete").fetch_add(1, Relaxed);
        c.counter("POST", "uploads").fetch_add(1, Relaxed);
        c.counter("PUT", "partNumber=1&uploadId=x")
            .fetch_add(1, Relaxed);
        c.counter("HEAD", "").fetch_add(1, Relaxed);
        let s = c.snapshot();
        assert_eq!((s.list, s.get, s.delete, s.put, s.head), (1, 1, 1, 2, 1));
    }
}
