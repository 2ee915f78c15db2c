"""Small file operations outside Spark (landing, run records, reports) on a folder or S3.

`s3://` and `s3a://` URIs go through boto3 (which honours AWS_ENDPOINT_URL, so tests point it
at a moto server); anything else is a local path.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def _bucket_key(uri: str) -> tuple[str, str]:
    u = urlparse(uri)
    return u.netloc, u.path.lstrip("/")


def _s3():
    import boto3

    return boto3.client("s3")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def put_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see a half-written file


def put_text(uri: str, text: str) -> None:
    put_bytes(uri, text.encode("utf-8"))


def copy_file(src: str, dest_uri: str) -> None:
    """Copy a local file byte for byte (the lake keeps the original bytes)."""
    if is_s3(dest_uri):
        bucket, key = _bucket_key(dest_uri)
        _s3().upload_file(src, bucket, key)
        return
    Path(dest_uri).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(dest_uri).with_name(f".{Path(dest_uri).name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest_uri)


def read_text(uri: str) -> str:
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        return _s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    return Path(uri).read_text(encoding="utf-8")


def list_files(prefix: str, include_hidden: bool = False) -> list[str]:
    """Every file below prefix (recursive), as URIs/paths; hidden ones (a part of the path below
    prefix starting with `.` or `_`) are skipped locally unless include_hidden."""
    if is_s3(prefix):
        bucket, key = _bucket_key(prefix)
        scheme = urlparse(prefix).scheme
        out = []
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
            out += [f"{scheme}://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
        return sorted(out)
    root = Path(prefix)
    if not root.exists():
        return []
    return sorted(
        str(p) for p in root.rglob("*")
        if p.is_file() and (include_hidden or not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
    )


def move_file(src: str, dest: str) -> None:
    """Moves one file (on S3: a copy, then the delete)."""
    if is_s3(src):
        sb, sk = _bucket_key(src)
        db, dk = _bucket_key(dest)
        _s3().copy_object(Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk})
        delete(src)
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.replace(src, dest)


def move_tree(src: str, dest: str) -> None:
    """Moves every file below src to the same relative path below dest, keeping a file dest
    already has; src is gone afterwards."""
    for uri in list_files(src, include_hidden=True):
        target = join(dest, uri[len(src.rstrip("/")) + 1:])
        if exists(target):
            delete(uri)
        else:
            move_file(uri, target)
    if not is_s3(src):
        shutil.rmtree(src, ignore_errors=True)


def list_dirs(prefix: str) -> list[str]:
    """Names of the immediate sub-folders of prefix."""
    if is_s3(prefix):
        bucket, key = _bucket_key(prefix)
        resp = _s3().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", Delimiter="/")
        return sorted(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in resp.get("CommonPrefixes", []))
    root = Path(prefix)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def exists(uri: str) -> bool:
    if is_s3(uri):
        return bool(list_files(uri)) or _object_exists(uri)
    return Path(uri).exists()


def _object_exists(uri: str) -> bool:
    bucket, key = _bucket_key(uri)
    resp = _s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(o["Key"] == key for o in resp.get("Contents", []))


def create_exclusive(uri: str, text: str) -> bool:
    """Creates the file only if it does not exist; False when it already does."""
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        from botocore.exceptions import ClientError

        try:
            _s3().put_object(Bucket=bucket, Key=key, Body=text.encode(), IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
    Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(uri, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


def delete(uri: str) -> None:
    if is_s3(uri):
        bucket, key = _bucket_key(uri)
        _s3().delete_object(Bucket=bucket, Key=key)
    elif os.path.exists(uri):
        os.remove(uri)
