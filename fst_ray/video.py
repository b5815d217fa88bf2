"""fst-ray's H.264 codec (PyAV, whose wheel carries libx264): frames written as FF++-style MP4 bytes (the
synthetic corpus), and a dataset's videos re-encoded at FF++'s c23/c40 (:func:`transcode`, the ingest's
``reencode``).

Compressions, as FF++ made them:
- ``raw``: ``libx264rgb`` at CRF 0 — H.264 lossless *in RGB*. FF++'s raw (c0) is x264 CRF 0 in
  YUV 4:2:0, which is lossless only in YUV; encoding RGB directly keeps every pixel exact, so the
  masks and the ground truth hold to the pixel after decoding.
- ``c23`` / ``c40``: ``libx264`` CRF 23 / 40, YUV 4:2:0, preset medium.
All use a keyframe interval (GOP) of ``keyframe_interval`` frames, as web video does (~2 s).

Masks are written with the raw codec (0 or 255 in all three channels), so ``decoded[..., 0] > 127``
recovers them exactly. The same frames give the same bytes: encoding is single-threaded, and x264's SIMD is
pinned (:data:`X264_PARAMS`).
"""

from __future__ import annotations

import io
import platform

import av
import numpy as np

CRF = {"raw": 0, "c23": 23, "c40": 40}

# x264's SIMD pinned to SSE2, which every x86-64 CPU has. On a CPU with AVX-512, x264 (core 165, PyAV's wheel)
# runs its AVX-512 mbtree_propagate_list, which steps along a row of lookahead blocks 8 at a time and does not
# mask the last step: at frame widths that are not a multiple of 128 px (the row is width/16 blocks) it adds in
# costs made from the memory past the row's end, uninitialised heap. c23/c40 bytes then depend on what the
# process's heap last held, so the same frames encode differently from one process, Ray worker or run to the
# next. SSE2 gives x264's C code's bytes, so every x86-64 machine also writes the same bytes; encoding takes
# 10-20 % longer (a corpus ~2 %). Other CPUs keep x264's choice (its names there differ: NEON, ...).
X264_PARAMS = {"x264-params": "asm=SSE2"} if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") \
    else {}


def encode(frames: np.ndarray, compression: str, fps: int = 25, keyframe_interval: int = 50) -> bytes:
    """Encode uint8 frames ``[T, H, W, 3]`` (RGB) as MP4 bytes at an FF++ compression level."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = _h264(container, compression, fps, frames.shape[2], frames.shape[1], keyframe_interval)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _h264(container, compression: str, rate, width: int, height: int, keyframe_interval: int):
    """The H.264 stream of one FF++ compression; single-threaded and with x264's SIMD pinned
    (:data:`X264_PARAMS`), so the same frames give the same bytes."""
    lossless = compression == "raw"
    stream = container.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = "rgb24" if lossless else "yuv420p"
    stream.thread_count = 1
    stream.options = {"crf": str(CRF[compression]), "preset": "ultrafast" if lossless else "medium",
                      "g": str(keyframe_interval), "keyint_min": str(min(keyframe_interval, 25)), "threads": "1",
                      **X264_PARAMS}
    return stream


def h264_settings(compression: str, keyframe_interval: int = 250) -> dict:
    """The settings :func:`transcode` encodes ``compression`` with (the ingest records them)."""
    return {"codec": "libx264", "crf": CRF[compression], "pix_fmt": "yuv420p", "preset": "medium",
            "gop": keyframe_interval}


def transcode(src, dst, compression: str, keyframe_interval: int = 250) -> dict:
    """Re-encode the video ``src`` (a path or binary file object) into ``dst`` (same) as MP4 at the FF++
    ``compression`` c23 or c40: libx264, CRF 23 / 40, YUV 4:2:0, preset medium, the source's frame rate and size
    (cropped to even sides, as 4:2:0 needs), every frame; GOP ``keyframe_interval`` (x264's default, as FF++'s
    ffmpeg call used). Returns the settings and the frame count (the ingest records them)."""
    if compression not in ("c23", "c40"):
        raise ValueError(f"re-encoding makes c23 or c40, not {compression!r}")
    n = 0
    with av.open(src) as inp, av.open(dst, "w", format="mp4") as out:
        vin = inp.streams.video[0]
        width, height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
        stream = _h264(out, compression, vin.average_rate or 25, width, height, keyframe_interval)
        for frame in inp.decode(vin):
            rgb = frame.to_ndarray(format="rgb24")[:height, :width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                out.mux(packet)
            n += 1
        for packet in stream.encode():
            out.mux(packet)
    return {**h264_settings(compression, keyframe_interval), "frames": n}


def encode_mask(masks: np.ndarray, fps: int = 25, keyframe_interval: int = 50) -> bytes:
    """Encode bool masks ``[T, H, W]`` losslessly (255 = manipulated)."""
    rgb = np.repeat((masks.astype(np.uint8) * 255)[..., None], 3, axis=-1)
    return encode(rgb, "raw", fps, keyframe_interval)


def decode(data: bytes) -> np.ndarray:
    """All frames of MP4 bytes as uint8 ``[T, H, W, 3]`` RGB (PyAV; the ingest uses decord)."""
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
