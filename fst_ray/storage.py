"""One way to reach storage: every location is a URI, a local path or ``s3://bucket/prefix``.

S3 endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles, instance roles).
A file inside an installed package is ``package://module/path`` (read-only).
``resolve`` gives a ``pyarrow.fs`` filesystem and the path inside it (what pyarrow and Ray Data take);
``fsspec_filesystem`` gives the s3fs/fsspec twin for libraries that want fsspec.

Transient faults of the object store (a stall, throttling, a dropped connection) are retried with the AWS
SDK's standard bounded backoff, up to ``FST_RAY_S3_ATTEMPTS`` attempts (default 5) of at most
``FST_RAY_S3_TIMEOUT_S`` seconds each (default 20): a stall shorter than that costs time, not data, and an
outage ends every storage call within about attempts × timeout with an :class:`OSError`. Jobs treat an
``OSError`` as the store's fault, never the input's (:func:`describe_error`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import importlib.util
import os
import posixpath
import shutil
import tempfile
import uuid
from urllib.parse import urlparse

import pyarrow.fs as pafs

__all__ = [
    "is_remote", "parent", "join", "resolve", "fsspec_filesystem", "read_bytes", "write_bytes",
    "exists", "list_files", "makedirs", "delete_dir", "local_path", "local_file", "canonical", "describe_error",
    "digest", "relative", "atomic_path", "TMP_PREFIX", "PACKAGE",
]

#: the name prefix of a file being written (:func:`atomic_path`): listings and readers skip it
TMP_PREFIX = ".tmp-"


def is_remote(uri: str) -> bool:
    """True for ``s3://`` URIs."""
    return uri.startswith("s3://")


def parent(uri: str) -> str:
    """The folder holding ``uri`` (its last path part removed)."""
    uri = uri.rstrip("/")
    return posixpath.dirname(uri) if is_remote(uri) else os.path.dirname(os.path.abspath(uri))


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a URI with ``/`` (never the OS separator for remote URIs)."""
    if is_remote(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    return os.path.join(uri, *parts)


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _attempts() -> int:
    return int(os.environ.get("FST_RAY_S3_ATTEMPTS", "5"))


def _timeout_s() -> float:
    return float(os.environ.get("FST_RAY_S3_TIMEOUT_S", "20"))


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem configured from the AWS environment, with bounded retries (module doc)."""
    kwargs: dict = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=_attempts()),
                    "request_timeout": _timeout_s(), "connect_timeout": min(_timeout_s(), 5.0)}
    endpoint = _endpoint()
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if _region():
        kwargs["region"] = _region()
    return pafs.S3FileSystem(**kwargs)


#: the scheme of a file shipped inside an installed Python package: ``package://module/path/in/it`` (read-only;
#: e.g. weights that a package carries, as nothing is downloaded at run time)
PACKAGE = "package://"


def _package_path(uri: str) -> str:
    module, _, rest = uri[len(PACKAGE):].partition("/")
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{uri}: no installed package {module!r} (pip install it, or give a path)")
    return os.path.join(list(spec.submodule_search_locations)[0], rest)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path)`` for a URI; the path carries no scheme (Ray and pyarrow want that)."""
    if is_remote(uri):
        return s3_filesystem(), uri[len("s3://"):].rstrip("/")
    if uri.startswith(PACKAGE):
        return pafs.LocalFileSystem(), _package_path(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported storage URI {uri!r}: use a local path or s3://bucket/prefix")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(path)


def fsspec_filesystem(uri: str):
    """The fsspec filesystem for a URI (s3fs for ``s3://``, local otherwise)."""
    if is_remote(uri):
        import s3fs

        client_kwargs = {}
        if _endpoint():
            client_kwargs["endpoint_url"] = _endpoint()
        if _region():
            client_kwargs["region_name"] = _region()
        config = {"retries": {"max_attempts": _attempts(), "mode": "standard"}, "read_timeout": _timeout_s(),
                  "connect_timeout": min(_timeout_s(), 5.0)}
        return s3fs.S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config, retries=1)  # botocore retries
    import fsspec

    return fsspec.filesystem("file")


def local_path(uri: str) -> str | None:
    """The absolute local path of a local URI, ``None`` for remote ones."""
    return None if is_remote(uri) else resolve(uri)[1]


def canonical(uri: str) -> str:
    """One spelling per location: local paths made absolute (``file://`` dropped), remote URIs without a
    trailing ``/``."""
    return uri.rstrip("/") if is_remote(uri) else local_path(uri)


def relative(uri: str, start: str) -> str:
    """``uri`` as recorded in a file under ``start``: relative to it when both are local (so a copied or moved
    folder still names the same place), else the URI itself."""
    if is_remote(uri) or is_remote(start):
        return canonical(uri)
    return os.path.relpath(local_path(uri), local_path(start))


def makedirs(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


@contextlib.contextmanager
def atomic_path(uri: str):
    """``(filesystem, path)`` to write one whole file into: it appears under ``uri`` only when the block ends
    without an error, at once (readers see the old file or the whole new one), and an error, Ctrl-C or a store
    that stops answering leaves nothing under ``uri``. The file is written beside it as ``.tmp-{uuid}-{name}``
    (which listings and readers skip), then renamed (local) or copied server-side (S3: a copy appears whole or
    not at all; pyarrow completes an interrupted upload when its stream closes, so the final key is never
    written directly), and the temporary file is removed."""
    fs, path = resolve(uri)
    folder, name = posixpath.split(path) if is_remote(uri) else os.path.split(path)
    if folder:
        fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
    try:
        yield fs, tmp
        if is_remote(uri):
            fs.copy_file(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # gone (renamed), or the store is down: a later run sweeps it
            fs.delete_file(tmp)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object, creating parent folders; replaces what was there, at once (:func:`atomic_path`)."""
    with atomic_path(uri) as (fs, tmp), fs.open_output_stream(tmp) as f:
        f.write(data)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_files(uri: str, recursive: bool = True, temporary: bool = False) -> list[tuple[str, int]]:
    """``(uri, size_bytes)`` of every file under a folder URI, sorted; empty if the folder is missing. Files
    still being written (:data:`TMP_PREFIX`) only with ``temporary``."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=recursive))
    prefix = "s3://" if is_remote(uri) else ""
    return sorted((prefix + i.path, i.size) for i in infos if i.type == pafs.FileType.File
                  and (temporary or not i.base_name.startswith(TMP_PREFIX)))


def delete_dir(uri: str) -> None:
    """Remove a folder and everything below it; no error if it is missing."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


@contextlib.contextmanager
def local_file(uri: str, suffix: str = ""):
    """A local path with the content of ``uri`` (the file itself when local; a temp copy of a remote
    object, streamed in chunks, removed afterwards)."""
    path = local_path(uri)
    if path is not None:
        yield path
        return
    fs, remote = resolve(uri)
    fd, tmp = tempfile.mkstemp(suffix=suffix or posixpath.splitext(remote)[1], prefix="fst-ray-")
    try:
        with os.fdopen(fd, "wb") as dst, fs.open_input_stream(remote) as src:
            shutil.copyfileobj(src, dst, 8 << 20)
        yield tmp
    finally:
        os.unlink(tmp)


_REFUSED = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH",
            "SignatureDoesNotMatch", "Unable to locate credentials", "NoCredentialsError")


def describe_error(error: OSError, outputs: list[str] = ()) -> tuple[int, str]:
    """Exit code and one line for a storage error that outlasted the retries: access refused (missing or wrong
    credentials: the user's to fix, 2), a full disk (3, naming ``outputs``, the locations the job writes), or the
    store unavailable (3: nothing was marked complete and a re-run resumes)."""
    text = " ".join(str(error).split())[:300]
    if error.errno == errno.ENOSPC or "No space left on device" in text:
        where = ", ".join(outputs) or "the output"
        return 3, f"no space left on the device holding {where}: free space, then re-run the same command to resume"
    if isinstance(error, PermissionError) or any(word in text for word in _REFUSED):
        return 2, (f"access refused ({text}): check the file permissions, or for s3:// the credentials "
                   "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or the profile or role) and the endpoint "
                   "(AWS_ENDPOINT_URL)")
    # A dropped connection can surface as a bare "AWS Error": name the store so the line says where to look.
    where = ""
    if "s3://" in text or any(is_remote(o) for o in outputs):
        where = f" at {_endpoint() or 'the default AWS endpoint'}"
    return 3, (f"storage unavailable{where} ({type(error).__name__}: {text}); nothing was marked complete: re-run "
               "the same command to resume once the store is reachable")


def digest(uri: str) -> str:
    """SHA-256 (hex) of a file's content: what caches key a model by, so that the same file under another path
    (a copied run folder, a relative spelling) is the same model and a retrained file at the same path is not."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri} is not a file")
    return _digest(uri, info.size, info.mtime_ns)


@functools.lru_cache(maxsize=256)
def _digest(uri: str, size: int, mtime_ns: int | None) -> str:  # (size, mtime) key the cache, not the digest
    fs, path = resolve(uri)
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
