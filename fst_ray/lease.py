"""One writer per output: a lease object ``_LEASE.json`` in the output folder, on local disk and S3 alike.

A job that writes an output holds its lease for as long as it runs (:func:`hold`): the object names its owner
(a random id), host, pid, job, start and heartbeat, and a thread renews the heartbeat every ``ttl / 4`` seconds.
A second run on the same output is refused with one line naming the running one (:class:`Busy`, exit code 2).
A lease is stale, and taken over, when its heartbeat is older than ``FST_RAY_LEASE_TTL_S`` seconds (default 60),
or at once when its owner ran on this host and its process is gone (a killed or interrupted run).

Every step is one conditional write, so two runs that start together cannot both win: locally an exclusive
create (``O_EXCL``) and an atomic rename to take a stale lease aside; on S3 a ``PutObject`` with
``If-None-Match: *`` to create, ``If-Match: <etag>`` to renew, release and take over. Leases are re-entrant
within a process (a hypothesis job holds its tables while its ingest takes them again). Taking the lease is
also the job's probe that the output can be written: a missing bucket, a read-only folder or a path under a
file is a :class:`fst_ray.config.UserError` before any work, a store that does not answer an ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import uuid

from fst_ray import storage
from fst_ray.config import UserError

__all__ = ["hold", "Busy", "LEASE_FILE", "read"]

LEASE_FILE = "_LEASE.json"
_HELD: dict[str, int] = {}  # canonical output -> depth of hold() in this process
_LOCK = threading.Lock()


class Busy(UserError):
    """Another run holds the output's lease."""


def _ttl() -> float:
    return float(os.environ.get("FST_RAY_LEASE_TTL_S", "60"))


def _s3_client():
    import botocore.config
    import botocore.session

    config = botocore.config.Config(retries={"max_attempts": storage._attempts(), "mode": "standard"},
                                    read_timeout=storage._timeout_s(), connect_timeout=min(storage._timeout_s(), 5.0))
    return botocore.session.get_session().create_client("s3", endpoint_url=storage._endpoint(),
                                                        region_name=storage._region(), config=config)


class _Store:
    """Conditional create / replace / delete of one small object, returning a version tag (S3: its ETag; local:
    the content itself, compared before each change)."""

    def __init__(self, uri: str):
        self.uri = uri
        if storage.is_remote(uri):
            self.bucket, _, self.key = uri[len("s3://"):].partition("/")
            self.client = _s3_client()

    def _s3(self, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, Key=self.key, **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"):
                return None
            if code == "NoSuchBucket":
                raise UserError(f"cannot write {storage.parent(self.uri)}: bucket {self.bucket!r} does not exist") from e
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise PermissionError(f"{code}: {self.uri}") from e
            raise OSError(f"{code}: {e}") from e
        except BotoCoreError as e:
            raise OSError(f"{type(e).__name__}: {e}") from e

    def get(self) -> tuple[dict, str] | None:
        """The lease and its version, ``None`` when there is none."""
        if storage.is_remote(self.uri):
            r = self._s3("get_object")
            return None if r is None else (json.loads(r["Body"].read()), r["ETag"])
        try:
            with open(self.uri, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return json.loads(data), data.decode()
        except ValueError:  # half-written by a process killed in its create: as good as absent, and stale
            return {"heartbeat": 0.0}, data.decode()

    def create(self, doc: dict) -> str | None:
        """Write the lease if there is none; its version, or ``None`` when another was there first."""
        data = json.dumps(doc).encode()
        if storage.is_remote(self.uri):
            r = self._s3("put_object", Body=data, IfNoneMatch="*")
            return None if r is None else r["ETag"]
        try:
            fd = os.open(self.uri, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return data.decode()

    def replace(self, doc: dict, version: str) -> str | None:
        """Rewrite the lease if it is still at ``version``; the new version, or ``None``."""
        data = json.dumps(doc).encode()
        if storage.is_remote(self.uri):
            r = self._s3("put_object", Body=data, IfMatch=version)
            return None if r is None else r["ETag"]
        have = self.get()
        if have is None or have[1] != version:
            return None
        storage.write_bytes(self.uri, data)
        return data.decode()

    def delete(self, version: str) -> bool:
        """Remove the lease if it is still at ``version`` (locally: moved aside atomically, then removed)."""
        if storage.is_remote(self.uri):
            return self._s3("delete_object", IfMatch=version) is not None
        have = self.get()
        if have is None or have[1] != version:
            return False
        aside = f"{self.uri}.{uuid.uuid4().hex}"
        try:
            os.rename(self.uri, aside)  # only one of two racing processes moves the file
        except FileNotFoundError:
            return False
        with open(aside, "rb") as f:
            if f.read().decode() != version:  # someone else's lease landed between the read and the rename
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.uri)  # put it back, never over a newer one
                os.unlink(aside)
                return False
        os.unlink(aside)
        return True


def _alive(doc: dict) -> bool:
    """Whether a lease's owner may still be running: its heartbeat is fresh and, on this host, its process
    exists."""
    if time.time() - float(doc.get("heartbeat", 0)) > _ttl():
        return False
    if doc.get("host") == socket.gethostname():
        try:
            os.kill(int(doc["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError):
            pass
    return True


def _describe(doc: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc.get("start", 0))))
    return f"{doc.get('job', 'a job')} (pid {doc.get('pid')} on {doc.get('host')}, started {started})"


def _prepare(output: str) -> str:
    """Create the output folder; a location that cannot hold one is the user's mistake."""
    if storage.is_remote(output):
        return storage.join(output, LEASE_FILE)  # no folders on S3: the lease's create is the probe
    try:
        storage.makedirs(output)
    except (NotADirectoryError, FileExistsError) as e:
        raise UserError(f"cannot write {output}: a part of that path is a file") from e
    except OSError as e:
        if e.errno == errno.EROFS:
            raise UserError(f"cannot write {output}: read-only file system") from e
        raise
    return storage.join(output, LEASE_FILE)


def _acquire(store: _Store, job: str) -> tuple[dict, str]:
    for _ in range(8):
        now = time.time()
        doc = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "job": job,
               "start": now, "heartbeat": now}
        try:
            version = store.create(doc)
        except PermissionError as e:
            raise PermissionError(f"cannot write {store.uri}: permission denied") from e
        except OSError as e:
            if e.errno == errno.EROFS:
                raise UserError(f"cannot write {storage.parent(store.uri)}: read-only file system") from e
            raise
        if version is not None:
            return doc, version
        have = store.get()
        if have is None:
            continue  # released in between
        if _alive(have[0]):
            raise Busy(f"{storage.parent(store.uri)} is being written by {_describe(have[0])}: wait for it to "
                       f"end, or if it is gone remove {store.uri}")
        store.delete(have[1])  # stale: its owner is dead; whoever moves it aside first takes over
    raise Busy(f"could not take the lease {store.uri}: other runs keep taking it")


def read(output: str) -> dict | None:
    """The lease held on ``output``, ``None`` when there is none."""
    have = _Store(storage.join(storage.canonical(output), LEASE_FILE)).get()
    return None if have is None else have[0]


@contextlib.contextmanager
def hold(output: str, job: str | None = None):
    """Hold ``output``'s lease for the block (re-entrant in a process); see the module doc."""
    output = storage.canonical(output)
    with _LOCK:
        depth = _HELD.get(output, 0)
        _HELD[output] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _LOCK:
                _HELD[output] -= 1
        return
    made = storage.local_path(output) if not storage.exists(output) else None
    try:
        store = _Store(_prepare(output))
        doc, version = _acquire(store, job or os.path.basename(sys.argv[0]) or "python")
    except BaseException:
        with _LOCK:
            _HELD.pop(output, None)
        raise
    state = {"version": version}
    stop = threading.Event()

    def beat():
        while not stop.wait(_ttl() / 4):
            try:
                new = store.replace({**doc, "heartbeat": time.time()}, state["version"])
            except Exception:  # noqa: BLE001 - a missed heartbeat is retried at the next one
                continue
            if new is None:
                print(f"warning: the lease on {output} was taken over by another run; this run's writes may "
                      "be mixed with its", file=sys.stderr)
                return
            state["version"] = new

    thread = threading.Thread(target=beat, name=f"lease {output}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with _LOCK:
            _HELD.pop(output, None)
        with contextlib.suppress(Exception):  # a lease left behind goes stale and is taken over
            store.delete(state["version"])
        if made:
            with contextlib.suppress(OSError):  # a run that wrote nothing leaves no folder behind
                os.rmdir(made)
