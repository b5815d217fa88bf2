"""Verdicts as data (fst_ray.hypotheses.readings): each rule made from a result object alone, and the report's
first screen rendered from them."""

from __future__ import annotations

from fst_ray.hypotheses import readings, render
from fst_ray.hypotheses.results import BaselineCheck, Ceiling, H1Result, H2Result, QSummary


def _ceiling(centred: float) -> Ceiling:
    return Ceiling(centred=centred, centred_ci=(centred - 0.1, centred + 0.1), plain=0.9, n_images=20, n_clusters=8,
                   readable=centred >= 0.5)


def _q(gap_ci, det_ceiling=0.8, degenerate=None) -> QSummary:
    return QSummary(mean=0.1, ci=(0.0, 0.2), baseline=0.05, n_images=4, gap=sum(gap_ci) / 2, gap_ci=gap_ci,
                    noise_ceiling={"source": _ceiling(0.7), "target": _ceiling(0.6), "det": _ceiling(det_ceiling)},
                    n_clusters=4, baseline_degenerate=degenerate)


def test_h1_readings_follow_the_rules_in_order():
    result = H1Result(variant="official", tau=[0.6], protocol={"explained": "raw"}, q={
        "Deepfakes": {"r": _q((0.01, 0.03))}, "FaceSwap": {"r": _q((-0.03, -0.01))},
        "Face2Face": {"r": _q((-0.01, 0.01))}, "NeuralTextures": {"r": _q((0.01, 0.03), det_ceiling=0.3)},
        "FaceShifter": {"r": _q((0.01, 0.03), degenerate="not read: the zero baseline is degenerate (…)")}})
    got = {r.method: r for r in readings.read_h1(result)}
    assert {m: r.verdict for m, r in got.items()} == {
        "Deepfakes": "supports", "FaceSwap": "contradicts", "Face2Face": "inconclusive",
        "NeuralTextures": "too noisy", "FaceShifter": "not read"}
    assert "det 0.300 [0.200, 0.400] from 20 images < 0.5" in got["NeuralTextures"].why
    assert got["Deepfakes"].estimate == 0.02 and got["Deepfakes"].ci == (0.01, 0.03)
    assert got["Deepfakes"].compression == "raw" and got["Deepfakes"].model == "r"


def test_h2_makes_no_reading_from_a_detector_at_chance_or_a_degenerate_removal():
    def check(value_empty):
        return BaselineCheck(baseline="zero", value="logit", p_empty=0.5, p_full=0.6, confident_share=0.0,
                             value_empty=value_empty, value_full=0.5, negative_sum_share=0.0,
                             negative_cell_share=0.3, n_images=4, warning=value_empty >= 0.5,
                             why="the all-baseline image scores 1.00, the images explained 0.50"
                             if value_empty >= 0.5 else None)

    base = dict(variant="official", tau=[0.6], protocol={"explained": "raw", "architecture": "r"},
                difference={"Deepfakes": 0.02}, difference_ci={"Deepfakes": (0.01, 0.03)},
                noise_ceiling={n: _ceiling(0.8) for n in ("source", "target", "paired", "unpaired")},
                auc_paired={"Deepfakes": 0.9}, auc_unpaired={"Deepfakes": 0.55},
                baseline_check={"paired": check(0.0), "unpaired": check(0.0)})
    [weak] = readings.read_h2(H2Result(**base))
    assert weak.verdict == "not read" and "unpaired 0.55 < 0.6" in weak.why
    [fine] = readings.read_h2(H2Result(**{**base, "auc_unpaired": {"Deepfakes": 0.8}}))
    assert fine.verdict == "supports" and fine.model == "r"
    [bad] = readings.read_h2(H2Result(**{**base, "auc_unpaired": {"Deepfakes": 0.8},
                                         "baseline_check": {"paired": check(1.0), "unpaired": check(0.0)}}))
    assert bad.verdict == "not read" and "paired: the all-baseline image scores 1.00" in bad.why
    [na] = readings.read_h2(H2Result(variant="official", tau=[0.6], not_applicable="no donor videos"))
    assert (na.verdict, na.method, na.why) == ("not applicable", "all", "no donor videos")


def test_the_first_screen_is_one_verdict_table_and_a_line_on_what_could_be_read():
    h1 = H1Result(variant="official", tau=[0.6], protocol={"explained": "raw"}, q={
        "Deepfakes": {"r": _q((0.01, 0.03))}, "FaceSwap": {"r": _q((0.01, 0.03), det_ceiling=0.2)}})
    h2 = H2Result(variant="official", tau=[0.6], not_applicable="H2 does not apply to Celeb-DF v2")
    table, line = render.verdict_table(readings.read_h1(h1) + readings.read_h2(h2))
    rows = table.splitlines()
    assert rows[0] == "| hypothesis | Deepfakes | FaceSwap |"
    assert rows[2] == "| H1 | **supports** +0.020 [0.010, 0.030] | **too noisy** |"
    assert rows[3] == "| H2 | **not applicable** | **not applicable** |"
    assert line.startswith("**1 of 3 readings could be made**; not made: 1 too noisy (H1 FaceSwap: centred noise "
                           "ceiling det 0.200") and "1 not applicable (H2 all: H2 does not apply" in line


def test_no_reading_from_shared_coalitions_unmeasured_noise_or_a_ci_that_is_not_finite():
    def one(q: QSummary, coalitions: str = "per_model"):
        [r] = readings.read_h1(H1Result(variant="official", tau=[0.6], q={"Deepfakes": {"r": q}},
                                        protocol={"coalitions": coalitions}))
        return r.verdict, r.why

    assert one(_q((0.01, 0.03))) == ("supports", one(_q((0.01, 0.03)))[1])
    assert one(_q((0.01, 0.03)), "shared") == ("not read", readings.SHARED)
    assert one(_q((0.01, 0.03)).model_copy(update={"noise_ceiling": {}})) == ("not read", readings.NOT_MEASURED)
    assert one(_q((float("nan"), float("nan"))))[0] == "not read"
