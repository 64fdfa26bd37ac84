// Backends (S3 backend work, issue 3).
mod backend_conformance;
#[cfg(feature = "s3")]
mod s3_backend;
#[cfg(feature = "s3")]
mod s3_faults;
#[cfg(feature = "s3")]
mod s3_server;
