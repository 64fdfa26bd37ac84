//! A real S3 server inside the test process: s3s-fs over a temporary directory, served by
//! hyper on a random 127.0.0.1 port, checking SigV4 signatures against one key pair.
//! One server is shared by all tests; every test uses buckets of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use backup_to_s3::backend::s3::{S3Backend, S3Credentials, S3Options};
use backup_to_s3::backend::Backend;
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "it-access-key";
pub const SECRET_KEY: &str = "it-secret-key-0123456789abcdef";

pub struct TestS3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    /// Where s3s-fs keeps the buckets (`root/BUCKET/KEY`).
    pub root: PathBuf,
}

static SERVER: OnceLock<TestS3> = OnceLock::new();
static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// The shared server, started on first use.
pub fn start() -> &'static TestS3 {
    SERVER.get_or_init(|| {
        let root = tempfile::tempdir().expect("tempdir").keep();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
        std::thread::Builder::new()
            .name("s3s-server".into())
            .spawn(move || serve(listener, fs))
            .expect("spawn server thread");
        TestS3 {
            endpoint: format!("http://{addr}"),
            addr,
            root,
        }
    })
}

fn serve(listener: std::net::TcpListener, fs: s3s_fs::FileSystem) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    rt.block_on(async move {
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service);
                let _ = conn.await;
            });
        }
    });
}

impl TestS3 {
    /// A fresh bucket name, unique in this process.
    pub fn bucket(&self, tag: &str) -> String {
        format!("it-{tag}-{}", BUCKETS.fetch_add(1, Ordering::Relaxed))
    }

    /// Options for `bucket` on this server with the right credentials.
    pub fn options(&self, bucket: &str) -> S3Options {
        self.options_via(&self.endpoint, bucket)
    }

    /// Options for `bucket` reached through another endpoint (e.g. a fault proxy).
    pub fn options_via(&self, endpoint: &str, bucket: &str) -> S3Options {
        S3Options {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            credentials: Some(S3Credentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
                session_token: None,
            }),
            ..S3Options::new(bucket, "repo")
        }
    }

    /// A backend on a new bucket (created) with default settings.
    pub fn backend(&self, tag: &str) -> S3Backend {
        let b = S3Backend::new(self.options(&self.bucket(tag))).expect("S3 backend");
        b.create().expect("create bucket");
        b
    }

    /// Write a file straight into the server's storage, bypassing S3 (stray objects).
    pub fn plant(&self, opts: &S3Options, path: &str) {
        let file = self.root.join(&opts.bucket).join(&opts.prefix).join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, b"stray").expect("write stray");
    }
}
