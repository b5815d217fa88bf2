"""Config of the ingest (``jobs/prepare_data.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fst_ray.config import CompressionList, Compressions, Dataset, ImageSide, JobConfig, MethodList, register_config


@register_config("prepare_data")
class PrepareConfig(JobConfig):
    """A dataset tree in (FF++, DFD, Celeb-DF v2: :mod:`fst_ray.datasets`), Parquet tables out. Sizes in pixels,
    times in seconds."""

    input: str = Field(..., description="dataset root URI: local path or s3://bucket/prefix")
    output: str = Field(..., description="output URI for the frames, fst_pairs and errors tables")
    dataset: Dataset = Field(
        "auto", description="the input's layout (fst_ray.datasets); auto: recognised from its folders (FF++ before "
                            "DFD, which FF++'s tree holds too)")
    splits: str | None = Field(None, description="folder URI of the split files: FF++'s train.json, val.json, "
                                                 "test.json, Celeb-DF's List_of_testing_videos.txt (default: the "
                                                 "input's splits/, Celeb-DF's root)")
    split_seed: int = Field(0, description="seed of the identity-disjoint splits a dataset without official "
                                           "train/val splits gets (Celeb-DF's train/val, DFD's all three)")
    reencode: CompressionList = Field(
        default_factory=list, description="compressions (c23, c40) to make by re-encoding the dataset's raw videos "
                                          "with libx264 at FF++'s settings, where the dataset ships none (Celeb-DF)")
    frames_per_video: int = Field(32, ge=1, le=10_000, description="K: uniformly spaced frames decoded per video")
    size: ImageSide = Field(224, description="S: aligned faces are S x S")
    margin: float = Field(1.3, gt=0.5, le=4.0,
                          description="crop side / template face side (1.0: the ArcFace crop, larger: more context)")
    alignment: Literal["arcface", "deepfakebench", "fst-matching"] = Field(
        "arcface", description="alignment preset (fst_ray.data.align): template, 68-to-5 point reduction and "
                               "margin; deepfakebench and fst-matching also default size (256, 224) and "
                               "deepfakebench frames_per_video (32) to theirs")
    methods: MethodList | None = Field(None, description="manipulation methods to ingest (default: the dataset's)")
    compressions: Compressions
    exclude: list[str] = Field(default_factory=list,
                               description="path prefixes (relative to input) not to ingest nor report")
    parquet_compression: Literal["snappy", "zstd", "lz4", "none"] = Field(
        "snappy", description="codec of the frames files (snappy: ~40% smaller than none on the synthetic corpus, "
                              "~1.5 ms more per 16-frame video)")
    compact: bool = Field(True, description="compact the per-video frames files into shards after the run")
    shard_mib: float = Field(256.0, gt=0, description="size of a compacted frames shard in MiB")
    landmarks: Literal["auto", "sidecar", "detect"] = Field(
        "auto", description="where landmarks come from: the corpus's sidecars (sidecar), a face detector (detect), "
                            "or the sidecars where present and the detector elsewhere (auto)")
    detector: str = Field("dlib", description="face detector (fst_ray.data.landmarks.DETECTORS)")
    detect_per: Literal["source", "video"] = Field(
        "source", description="source: crop every video with its source original's landmarks (its sidecar, or "
                              "detected once on its best compression): crops pixel-aligned across compressions and "
                              "with the source; video: each video's own sidecar or detection (DeepfakeBench's way)")
    min_face_share: float = Field(0.5, ge=0.0, le=1.0,
                                  description="a video whose detector found a face in fewer of its sampled frames "
                                              "is a video error")
    decode: Literal["auto", "seek", "scan"] = Field(
        "auto", description="frame access: per-video choice from keyframes, or always seek / always scan")
    decode_threads: int = Field(1, ge=0, description="decoder threads per video task (0: decord's default)")
    cpus_per_video: float = Field(1.0, gt=0, description="Ray CPUs reserved by one ingest task")
    groups_per_task: int = Field(
        4, ge=1, le=1000, description="(method, video) groups per Ray task; a group is one video name at every "
                                      "compression, sharing its landmark sidecar and mask")
    max_retries: int = Field(1, ge=0, le=10,
                             description="re-runs of a video whose worker process died (decoder crash, "
                                         "timeout) before it is quarantined into errors")
    video_timeout_s: float = Field(900.0, gt=0,
                                   description="a video task running longer is killed (then retried/quarantined)")
    max_error_share: float = Field(0.2, ge=0.0, le=1.0,
                                   description="exit non-zero when more than this share of inputs lands in errors")
    retry_errors: bool = Field(False, description="re-try videos an earlier run put into errors")
    overwrite: bool = Field(False, description="delete the output first (else a re-run resumes it)")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data):
        from fst_ray.data.align import PRESETS

        if isinstance(data, dict) and data.get("alignment") in PRESETS:
            preset = PRESETS[data["alignment"]]
            for name in ("size", "frames_per_video"):
                if getattr(preset, name) is not None:
                    data = {name: getattr(preset, name), **data}
        return data

    @field_validator("reencode")
    @classmethod
    def _reencode_makes_compressions(cls, values: list[str]) -> list[str]:
        if "raw" in values:
            raise ValueError("reencode makes c23 and c40 from raw videos; raw is not one of them")
        return sorted(set(values), key=values.index)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, name: str) -> str:
        from fst_ray.data.landmarks import DETECTORS

        if name not in DETECTORS:
            raise ValueError(f"unknown face detector {name!r}; known: {sorted(DETECTORS)}")
        return name

    def output_params(self) -> dict:
        """What the output's content depends on: a resumed run must use the same values."""
        return self.model_dump(include={"frames_per_video", "size", "margin", "alignment", "landmarks", "detector",
                                        "detect_per", "min_face_share", "split_seed", "reencode"})
