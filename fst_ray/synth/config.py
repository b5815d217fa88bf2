"""Config of the synthetic FF++-shaped corpus (``jobs/make_synthetic.py``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from fst_ray.config import Compressions, JobConfig, Methods, register_config


@register_config("make_synthetic")
class SynthConfig(JobConfig):
    """What to generate and where. Sizes are in pixels and frames."""

    output: str = Field("runs/demo/data", description="dataset root URI: local path or s3://bucket/prefix")
    identities: int = Field(24, ge=4, description="original videos, one identity each; even, as they pair up")
    frames: int = Field(32, ge=2, le=10_000, description="frames per video")
    size: int = Field(128, ge=32, le=1024, description="frame width = height in pixels (a multiple of 16)")
    methods: Methods = Field(description="manipulation methods")
    compressions: Compressions
    fps: int = Field(25, ge=1, description="frame rate written into the videos")
    keyframe_interval: int = Field(
        50, ge=1, description="x264 GOP length in frames for c23/c40 (web video: about 2 s)")
    split_fractions: tuple[float, float, float] = Field(
        (0.72, 0.14, 0.14), description="train/val/test share of pairs (FF++: 720/140/140)")
    seed: int = 0
    contact_sheet: bool = True



    @field_validator("identities")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("identities must be even: every original is the source of one pair's fakes")
        return v

    @field_validator("size")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError("size must be a multiple of 16 (macroblock-aligned video)")
        return v
