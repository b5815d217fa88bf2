"""Config of the synthetic FF++-shaped corpus (``jobs/make_synthetic.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fst_ray.config import Compressions, JobConfig, Methods, register_config
from fst_ray.synth.capture import CAPTURES
from fst_ray.synth.plant import Plant


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
    captures: list[Literal[CAPTURES]] = Field(
        list(CAPTURES), min_length=1,
        description="how originals may be captured, one drawn per video (fst_ray.synth.capture): sharp, defocus, "
                    "motion (blur), low_light, denoised; [sharp] alone: every original sharp and noisy")
    plant: Plant | None = Field(
        None, description="a known answer (fst_ray.synth.plant): every fake made clean by its method, its only "
                          "evidence one planted artifact (region, pattern, strength); its mask marks the plant")
    seed: int = 0
    contact_sheet: bool = True
    layout: Literal["ffpp", "dfd", "celebdf"] = Field(
        "ffpp", description="the tree's naming (fst_ray.datasets): FF++; or one method's fakes named as FF++'s "
                            "DeepFakeDetection or Celeb-DF v2 name theirs (Celeb-DF: raw only, its test list "
                            "from the test split; DFD: no split files, it has none)")



    @model_validator(mode="after")
    def _fits_layout(self):
        if self.layout != "ffpp" and len(self.methods) != 1:
            raise ValueError(f"layout {self.layout} has one manipulation method: give one of methods")
        if self.layout == "celebdf" and self.compressions != ["raw"]:
            raise ValueError("Celeb-DF v2 ships one compression: compressions: [raw] (re-encode at ingest)")
        return self

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
