"""The ingest as a streaming Ray Data pipeline: manifest rows grouped by ``(method, video)`` -> tasks of a
few groups (per video: decode K frames, align, write its Parquet file) -> small status rows back to the
driver -> FST pairs. A group's compressions share one sidecar read and one mask decode.

Output layout under ``output`` (every file name derives from a video key, so re-runs replace, never append)::

    frames/{method}.{compression}.{video}.parquet    # one file per video (FRAMES schema), written last
    frames/part-{n}.parquet                          # after the run, the per-video files compacted (compact)
    errors/video.{method}.{compression}.{video}.parquet  # a video that could not be used
    errors/mask.{method}.{video}.parquet              # a fake whose mask could not be used (frames kept)
    errors/frame.{method}.{compression}.{video}.parquet  # frames of a kept video that could not be used
    errors/detect.{method}.{video}.parquet            # sampled frames without a face; a failed detection
    landmarks/{sequence}/landmarks/{video}.json       # a face detector's landmarks (fst_ray.data.landmarks)
    errors/manifest.parquet, errors/pairs.parquet    # rewritten by every run
    fst_pairs/fst_pairs.parquet                      # rewritten by every run
    manifest.parquet, _ingest.json (parameters)
    _SUCCESS.json  # written last, only by a run that succeeded: verdict, counts, parameters

With detected landmarks a first pass detects each face once (per source original, or per video), writes
the sidecars under ``landmarks/`` and skips those already there; the ingest then aligns the frames the
sidecar holds. Memory stays bounded: a task holds one decoded frame plus its video's S x S crops, and only status rows
(no pixels) travel through Ray's object store;
Ray Data's streaming executor bounds the tasks in flight. A video is finished when its frames file or its
``errors/video.*`` file exists; a re-run skips finished videos (resume) and deletes files of videos no
longer in the manifest. A worker that dies (decoder crash, or the watchdog's kill after ``video_timeout_s``
per video) loses its task's videos; they are redone one video per task with ``max_retries`` retries, and
a video that still kills its worker is quarantined into ``errors``.

At the end of a run (``compact``, the default) the per-video frames files are compacted into shards of about
``shard_mib`` MiB (a row group per video; the videos each holds named in its footer), so that readers open a
few large files instead of one per video (about 19k for FF++ at 32 frames); a shard's videos count as
finished for the resume, and a video leaving the manifest is cut out of its shard.
"""

from fst_ray.data.ingest.job import IngestSummary, run_ingest

__all__ = ["IngestSummary", "run_ingest"]
