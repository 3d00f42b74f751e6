"""Where an S3 target's files live, and the filesystem they are written through.

Layout per table, under ``<bucket>/<prefix>/<target_schema>/<table>/``:

* ``snapshot/part-NNNNN.parquet``: the full load, every row with ``_cdc_op = 'r'``;
* ``changes/p<partition>/<first offset>-<last offset>.parquet``: one file per flushed batch of the
  table's topic partition, named by the Kafka offsets it holds, so a retried batch rewrites the
  same object and the files themselves say how far the writer got.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from cdc_platform.secrets import resolve_secret
from cdc_platform.specs.models import ConnectionSpec

#: the key width of offsets in change-file names (sorts by name = sorts by offset)
OFFSET_DIGITS = 20
#: seconds to open a connection to the endpoint: an unreachable one fails a flush in seconds, inside
#: the writer sensor's tick, instead of after the SDKs' 60 s defaults (the changes wait in Kafka)
CONNECT_TIMEOUT_SECONDS = 5.0
#: seconds to wait for an answer to one request (a snapshot part's upload included)
REQUEST_TIMEOUT_SECONDS = 60.0
#: attempts per request, retries with the SDKs' standard backoff
REQUEST_ATTEMPTS = 3


def s3_client(conn: ConnectionSpec, specs_dir: Path | None):
    """boto3 for every write: one PutObject for a change file, boto3's managed multipart upload for
    a snapshot (Arrow's own multipart completion is refused by S3-compatible servers such as moto)."""
    # lazy: boto3 only when an S3 bucket is checked or written
    import boto3
    from botocore.config import Config

    kwargs: dict = {"region_name": conn.region, "config": Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=REQUEST_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": REQUEST_ATTEMPTS},
    )}  # fmt: skip
    if conn.endpoint_url:
        kwargs["endpoint_url"] = conn.endpoint_url
    if conn.access_key_id is not None and conn.secret_access_key is not None:
        kwargs["aws_access_key_id"] = resolve_secret(conn.access_key_id, specs_dir)
        kwargs["aws_secret_access_key"] = resolve_secret(conn.secret_access_key, specs_dir)
    return boto3.client("s3", **kwargs)


def split_path(path: str) -> tuple[str, str]:
    """``bucket/key`` -> (bucket, key)."""
    bucket, _, key = path.partition("/")
    return bucket, key


def put_bytes(client, path: str, data: bytes) -> None:
    bucket, key = split_path(path)
    client.put_object(Bucket=bucket, Key=key, Body=data)


def put_file(client, path: str, local: Path) -> None:
    bucket, key = split_path(path)
    client.upload_file(str(local), bucket, key)


def s3_filesystem(conn: ConnectionSpec, specs_dir: Path | None) -> pafs.S3FileSystem:
    """Keys resolved from their references at the moment of use; never logged or stored."""
    kwargs: dict = {"region": conn.region, "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                    "request_timeout": REQUEST_TIMEOUT_SECONDS,
                    "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=REQUEST_ATTEMPTS)}  # fmt: skip
    if conn.access_key_id is not None and conn.secret_access_key is not None:
        kwargs["access_key"] = resolve_secret(conn.access_key_id, specs_dir)
        kwargs["secret_key"] = resolve_secret(conn.secret_access_key, specs_dir)
    if conn.endpoint_url:
        scheme, _, rest = conn.endpoint_url.partition("://")
        kwargs["endpoint_override"] = rest.rstrip("/") if rest else scheme
        kwargs["scheme"] = scheme if rest else "https"
    return pafs.S3FileSystem(**kwargs)


@dataclass(frozen=True)
class TableLocation:
    bucket: str
    prefix: str
    schema: str
    table: str

    @classmethod
    def of(cls, conn: ConnectionSpec, target_schema: str, table: str) -> TableLocation:
        return cls(str(conn.bucket), conn.prefix.strip("/"), target_schema, table)

    @property
    def root(self) -> str:
        parts = [self.bucket, self.prefix, self.schema, self.table]
        return "/".join(p for p in parts if p)

    @property
    def snapshot_dir(self) -> str:
        return f"{self.root}/snapshot"

    def snapshot_file(self, part: int) -> str:
        return f"{self.snapshot_dir}/part-{part:05d}.parquet"

    def changes_dir(self, partition: int) -> str:
        return f"{self.root}/changes/p{partition}"

    def change_file(self, partition: int, first: int, last: int) -> str:
        return f"{self.changes_dir(partition)}/{first:0{OFFSET_DIGITS}d}-{last:0{OFFSET_DIGITS}d}.parquet"

    @property
    def uri(self) -> str:
        return f"s3://{self.root}/"


def list_files(fs: pafs.FileSystem, directory: str) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(directory, recursive=True, allow_not_found=True)
    return sorted(
        (i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File), key=lambda i: i.path
    )


def last_written_offset(fs: pafs.FileSystem, location: TableLocation, partition: int) -> int | None:
    """The last offset a change file of this partition holds (None: no file yet)."""
    ends = [int(Path(i.path).stem.split("-")[1]) for i in list_files(fs, location.changes_dir(partition))]
    return max(ends) if ends else None


def check_bucket(fs: pafs.FileSystem, conn: ConnectionSpec) -> None:
    """The bucket exists and answers; a clear error naming the connection otherwise."""
    try:
        info = fs.get_file_info(str(conn.bucket))
    except OSError as exc:
        raise RuntimeError(
            f"S3 connection {conn.name}: bucket {conn.bucket!r} could not be reached ({exc})"
        ) from exc
    if info.type == pafs.FileType.NotFound:
        raise RuntimeError(
            f"S3 connection {conn.name}: bucket {conn.bucket!r} does not exist; create it first"
        )
