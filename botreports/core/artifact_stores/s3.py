"""Report files in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW) through boto3, AWS's own
client: it reads ``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credentials and the usual config files
the way every AWS tool does, and its transfer manager uploads large files in parts from disk."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Optional
from urllib.parse import quote

#: Files above this go up in parts of this size, read from disk one part at a time.
PART_BYTES = 8 * 1024 * 1024


class S3Artifacts:
    """Objects ``<prefix>/<key>`` in ``bucket``."""

    is_local = False

    def __init__(self, bucket: str, prefix: str = "", client=None):
        if not bucket:
            raise ValueError("BOTREPORTS_ARTIFACTS must name a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4"))
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> "S3Artifacts":
        bucket, _, prefix = url[len("s3://"):].partition("/")
        return cls(bucket, prefix)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def save(self, key: str, path: Path) -> None:
        """Upload the finished file at ``path`` (in parts above ``PART_BYTES``, never whole in
        memory) and return once S3 has acknowledged the complete object; the local file is removed."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                                max_concurrency=2, use_threads=True)
        try:
            self.client.upload_file(str(path), self.bucket, self.object_key(key), Config=config)
            size = Path(path).stat().st_size
            stored = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"]
            if stored != size:  # an acknowledged upload is whole; this catches a proxy that lies
                raise ArtifactNotStored(f"the object holds {stored} bytes, not {size}", transient=True)
        except Exception as exc:
            raise _not_stored(exc, self.describe()) from exc
        finally:
            Path(path).unlink(missing_ok=True)  # stored or not, the worker's copy is done with

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def open(self, key: str) -> BinaryIO:
        """The object as a stream read from S3 as the reader goes (``FileNotFoundError`` if absent)."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(key) from None
            raise
        return _ObjectStream(body)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def presigned_url(self, key: str, filename: str, media_type: str, ttl: int) -> Optional[str]:
        """A URL that downloads the object without credentials for ``ttl`` seconds, with the
        report's file name and media type."""
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=int(ttl), Params={
                "Bucket": self.bucket, "Key": self.object_key(key), "ResponseContentType": media_type,
                "ResponseContentDisposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


class ArtifactNotStored(OSError):
    """A report file the object store did not take; ``transient`` when trying again may work."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def _not_stored(exc: BaseException, where: str) -> BaseException:
    """``exc`` as one line naming the bucket (not the worker's paths), transient for lost
    connections, timeouts and the server's own errors (5xx, SlowDown)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ArtifactNotStored):
        return ArtifactNotStored(f"the report file could not be stored in {where}: {exc}", exc.transient)
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return ArtifactNotStored(f"the report file could not be stored in {where}: {error.get('Code')} "
                                 f"({error.get('Message')})", transient=status >= 500 or error.get("Code") == "SlowDown")
    if isinstance(cause, (BotoCoreError, OSError)):
        return ArtifactNotStored(f"the report file could not be stored in {where}: {type(cause).__name__}: "
                                 f"{cause}", transient=True)
    return exc


class _ObjectStream:
    """A response body read in large blocks (botocore's own iteration goes 1 KiB at a time)."""

    block_size = 256 * 1024

    def __init__(self, body):
        self._body = body

    def read(self, size: int = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def __iter__(self):
        while True:
            block = self._body.read(self.block_size)
            if not block:
                return
            yield block

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
