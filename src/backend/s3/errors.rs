//! Mapping of AWS SDK errors to `BackendError`: what is missing, what already exists, what is
//! worth retrying (throttling, 5xx, timeouts, dropped connections) and what is not (denied).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::backend::{BackendError, Kind};

/// What an S3 failure means to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// 404 / NoSuchKey.
    NotFound,
    /// 412: a conditional request found the object (put with `If-None-Match: *`).
    PreconditionFailed,
    /// 501: the server does not implement a header or operation.
    NotImplemented,
    /// 403 and signature or key errors: retrying cannot help.
    Denied,
    /// Throttling, 5xx, timeouts, connection failures: a retry may succeed.
    Transient,
    /// Anything else: a bug, a misconfiguration or a refusal.
    Permanent,
}

/// A classified failure with a human-readable description (no object name yet).
#[derive(Debug)]
pub(super) struct Failure {
    pub class: Class,
    pub detail: String,
}

impl Failure {
    pub fn new(class: Class, detail: impl Into<String>) -> Self {
        Failure {
            class,
            detail: detail.into(),
        }
    }

    /// The `BackendError` for object `kind/name`; `op` names the request (`PUT`, `GET` …).
    pub fn into_backend(self, kind: Kind, name: &str, op: &str) -> BackendError {
        let name = name.to_string();
        let message = |what: &str| format!("S3 {op} {what}");
        match self.class {
            Class::NotFound => BackendError::NotFound { kind, name },
            Class::PreconditionFailed => BackendError::AlreadyExists { kind, name },
            Class::Denied => BackendError::Remote {
                kind,
                name,
                message: message(&format!(
                    "refused: access denied: check credentials ({})",
                    self.detail
                )),
                transient: false,
            },
            Class::Transient => BackendError::Remote {
                kind,
                name,
                message: message(&format!("failed (transient): {}", self.detail)),
                transient: true,
            },
            Class::NotImplemented | Class::Permanent => BackendError::Remote {
                kind,
                name,
                message: message(&format!("failed: {}", self.detail)),
                transient: false,
            },
        }
    }
}

const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "AllAccessDisabled",
];

const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    // AWS: a concurrent conditional write won the race; a retry then sees 412.
    "ConditionalRequestConflict",
];

/// Classify by HTTP status and S3 error code (either may be missing).
pub(super) fn classify(status: Option<u16>, code: Option<&str>) -> Class {
    match (status, code) {
        (_, Some("NoSuchBucket")) => Class::Permanent,
        (_, Some("NoSuchKey" | "NotFound")) | (Some(404), _) => Class::NotFound,
        (_, Some("PreconditionFailed")) | (Some(412), _) => Class::PreconditionFailed,
        (_, Some("NotImplemented")) | (Some(501), _) => Class::NotImplemented,
        (_, Some(c)) if DENIED_CODES.contains(&c) => Class::Denied,
        (Some(403), _) => Class::Denied,
        (_, Some(c)) if TRANSIENT_CODES.contains(&c) => Class::Transient,
        (Some(408 | 429 | 500 | 502 | 503 | 504), _) => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Classify an SDK error. Errors without an HTTP response are transient when the network
/// failed (timeouts, refused or dropped connections, truncated responses).
pub(super) fn classify_sdk<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code();
    let service = matches!(err, SdkError::ServiceError(_));
    let detail = match (code, err.message(), status) {
        (Some(c), Some(m), Some(s)) => format!("{c}: {m} (HTTP {s})"),
        (Some(c), None, Some(s)) => format!("{c} (HTTP {s})"),
        // HEAD answers carry no error body, so the status is all there is.
        (None, _, Some(s)) if service => format!("HTTP {s}"),
        (_, _, Some(s)) => format!("HTTP {s}: {}", DisplayErrorContext(err)),
        _ => DisplayErrorContext(err).to_string(),
    };
    let class = match err {
        SdkError::ServiceError(_) => classify(status, code),
        SdkError::TimeoutError(_) => Class::Transient,
        SdkError::DispatchFailure(d) if d.is_user() => Class::Permanent,
        SdkError::DispatchFailure(_) => Class::Transient,
        // A response arrived but could not be read or parsed: usually a connection dropped
        // mid-response. A clear status (403, 404) still wins.
        SdkError::ResponseError(_) => match classify(status, code) {
            Class::Permanent => Class::Transient,
            c => c,
        },
        _ => Class::Permanent,
    };
    Failure::new(class, detail)
}

/// Shorthand: classify and convert in one go.
pub(super) fn sdk_error<E>(
    kind: Kind,
    name: &str,
    op: &str,
    err: SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify_sdk(&err).into_backend(kind, name, op)
}

/// A response body that broke off while being read.
pub(super) fn body_error(
    kind: Kind,
    name: &str,
    op: &str,
    err: impl std::error::Error,
) -> BackendError {
    Failure::new(
        Class::Transient,
        format!("reading the response body: {}", DisplayErrorContext(&err)),
    )
    .into_backend(kind, name, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_and_codes() {
        assert_eq!(classify(Some(404), None), Class::NotFound);
        assert_eq!(classify(Some(404), Some("NoSuchBucket")), Class::Permanent);
        assert_eq!(classify(Some(412), None), Class::PreconditionFailed);
        assert_eq!(
            classify(Some(403), Some("SignatureDoesNotMatch")),
            Class::Denied
        );
        assert_eq!(
            classify(Some(400), Some("InvalidAccessKeyId")),
            Class::Denied
        );
        assert_eq!(classify(Some(503), Some("SlowDown")), Class::Transient);
        assert_eq!(classify(Some(500), None), Class::Transient);
        assert_eq!(
            classify(Some(501), Some("NotImplemented")),
            Class::NotImplemented
        );
        assert_eq!(
            classify(Some(400), Some("InvalidArgument")),
            Class::Permanent
        );
    }

    #[test]
    fn messages_name_the_object() {
        let e = Failure::new(Class::Transient, "SlowDown").into_backend(Kind::Pack, "ab12", "PUT");
        assert!(e.is_transient());
        assert!(e.to_string().contains("pack/ab12"), "{e}");
        let e = Failure::new(Class::Denied, "403").into_backend(Kind::Index, "cd", "GET");
        assert!(!e.is_transient());
        assert!(
            e.to_string().contains("access denied: check credentials"),
            "{e}"
        );
    }
}
