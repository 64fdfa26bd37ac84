//! Uploads that never overwrite: `If-None-Match: *` on PutObject and CompleteMultipartUpload
//! (412 → `AlreadyExists`), a remembered HEAD-then-PUT fallback for servers that answer 501,
//! multipart uploads for large objects (parts in parallel, aborted on failure, size verified).

use std::sync::atomic::Ordering::Relaxed;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, StorageClass};
use tokio::task::JoinSet;

use super::errors::{classify_sdk, sdk_error, Class, Failure};
use super::ops::Inner;
use crate::backend::{BResult, BackendError, Kind, Temperature};

/// Parts of one multipart upload in flight at once (each holds a copy of its bytes).
const MAX_PARALLEL_PARTS: usize = 8;

impl Inner {
    pub async fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        if data.len() as u64 > self.opts.multipart_threshold {
            return self.put_multipart(kind, name, data, temp).await;
        }
        if !self.conditional_put.load(Relaxed) {
            return self.put_after_head(kind, name, data, temp).await;
        }
        match self.put_object(kind, name, data, temp, true).await {
            Ok(()) => Ok(()),
            Err(f) if f.class == Class::NotImplemented => {
                self.disable_conditional_put(&f);
                self.put_after_head(kind, name, data, temp).await
            }
            Err(f) => Err(f.into_backend(kind, name, "PUT")),
        }
    }

    fn disable_conditional_put(&self, why: &Failure) {
        if self.conditional_put.swap(false, Relaxed) {
            tracing::warn!(
                "S3 server does not support conditional writes ({}); falling back to HEAD before PUT",
                why.detail
            );
        }
    }

    fn storage_class(&self, temp: Temperature) -> Option<StorageClass> {
        match temp {
            Temperature::Hot => None,
            Temperature::Cold => self
                .opts
                .storage_class_cold
                .as_deref()
                .map(StorageClass::from),
        }
    }

    async fn put_object(
        &self,
        kind: Kind,
        name: &str,
        data: &[u8],
        temp: Temperature,
        conditional: bool,
    ) -> Result<(), Failure> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.opts.bucket)
            .key(self.key(kind, name))
            .content_length(data.len() as i64)
            .body(ByteStream::from(data.to_vec()))
            .set_storage_class(self.storage_class(temp));
        if conditional {
            req = req.if_none_match("*");
        }
        req.send().await.map(|_| ()).map_err(|e| classify_sdk(&e))
    }

    /// Fallback for servers without conditional writes: not atomic, but content-addressed
    /// writers of the same name write the same bytes.
    async fn put_after_head(
        &self,
        kind: Kind,
        name: &str,
        data: &[u8],
        temp: Temperature,
    ) -> BResult<()> {
        if self.stat(kind, name).await?.is_some() {
            return Err(BackendError::AlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        self.put_object(kind, name, data, temp, false)
            .await
            .map_err(|f| f.into_backend(kind, name, "PUT"))
    }

    async fn put_multipart(
        &self,
        kind: Kind,
        name: &str,
        data: &[u8],
        temp: Temperature,
    ) -> BResult<()> {
        let op = "PUT (multipart)";
        // One HEAD first: uploading many MiB only to learn at completion that the object
        // exists wastes bandwidth. Completion stays conditional, so racing writers are safe.
        if self.stat(kind, name).await?.is_some() {
            return Err(BackendError::AlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        let key = self.key(kind, name);
        let checksums = !self.opts.checksum_when_required;
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.opts.bucket)
            .key(&key)
            .set_storage_class(self.storage_class(temp));
        if checksums {
            req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let created = req.send().await.map_err(|e| sdk_error(kind, name, op, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(Failure::new(Class::Permanent, "no upload id in the answer")
                .into_backend(kind, name, op));
        };
        let result = self
            .finish_multipart(kind, name, &key, &upload_id, data, checksums)
            .await;
        if result.is_err() {
            // Unfinished uploads cost storage until a lifecycle rule removes them.
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.opts.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send();
            if let Err(e) = abort.await {
                let e = sdk_error(kind, name, "AbortMultipartUpload", e);
                tracing::warn!("could not abort multipart upload {upload_id}: {e}");
            }
        }
        result
    }

    async fn finish_multipart(
        &self,
        kind: Kind,
        name: &str,
        key: &str,
        upload_id: &str,
        data: &[u8],
        checksums: bool,
    ) -> BResult<()> {
        let op = "PUT (multipart)";
        let parts = self
            .upload_parts(kind, name, key, upload_id, data, checksums)
            .await?;
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let complete = |conditional: bool| {
            let req = self
                .client
                .complete_multipart_upload()
                .bucket(&self.opts.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(completed.clone());
            if conditional {
                req.if_none_match("*")
            } else {
                req
            }
        };
        let conditional = self.conditional_put.load(Relaxed);
        if let Err(e) = complete(conditional).send().await {
            let f = classify_sdk(&e);
            if !(conditional && f.class == Class::NotImplemented) {
                return Err(f.into_backend(kind, name, op));
            }
            self.disable_conditional_put(&f);
            if self.stat(kind, name).await?.is_some() {
                return Err(BackendError::AlreadyExists {
                    kind,
                    name: name.to_string(),
                });
            }
            complete(false)
                .send()
                .await
                .map_err(|e| sdk_error(kind, name, op, e))?;
        }
        // One HEAD per large object is cheap insurance against a short or garbled assembly.
        match self.stat(kind, name).await? {
            Some(n) if n == data.len() as u64 => Ok(()),
            other => {
                let detail = format!(
                    "object size after upload is {other:?}, expected {}",
                    data.len()
                );
                Err(Failure::new(Class::Permanent, detail).into_backend(kind, name, op))
            }
        }
    }

    async fn upload_parts(
        &self,
        kind: Kind,
        name: &str,
        key: &str,
        upload_id: &str,
        data: &[u8],
        checksums: bool,
    ) -> BResult<Vec<CompletedPart>> {
        let part_size =
            usize::try_from(self.opts.part_size_for(data.len() as u64)).unwrap_or(usize::MAX);
        let parallel = self.opts.connections.clamp(1, MAX_PARALLEL_PARTS);
        let mut tasks = JoinSet::new();
        let mut done = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            while tasks.len() >= parallel {
                if let Some(joined) = tasks.join_next().await {
                    done.push(part_result(kind, name, joined)?);
                }
            }
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let mut req = self
                .client
                .upload_part()
                .bucket(&self.opts.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(chunk.len() as i64)
                .body(ByteStream::from(chunk.to_vec()));
            if checksums {
                req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
            }
            tasks.spawn(async move {
                let res = req.send().await;
                (number, res)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            done.push(part_result(kind, name, joined)?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }
}

type PartOutcome = (
    i32,
    Result<
        aws_sdk_s3::operation::upload_part::UploadPartOutput,
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::upload_part::UploadPartError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    >,
);

fn part_result(
    kind: Kind,
    name: &str,
    joined: Result<PartOutcome, tokio::task::JoinError>,
) -> BResult<CompletedPart> {
    let (number, res) = joined.map_err(|e| {
        Failure::new(Class::Permanent, format!("part upload task failed: {e}")).into_backend(
            kind,
            name,
            "UploadPart",
        )
    })?;
    let out = res.map_err(|e| sdk_error(kind, name, &format!("UploadPart {number}"), e))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}
