//! Counts the HTTP requests the SDK really sends, by S3 billing class: SDK retries, multipart
//! parts and fallback HEADs included (the `Counting` decorator sees only backend calls).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

use crate::backend::RequestStats;

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
