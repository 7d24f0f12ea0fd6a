"""The official BSDS500 bench sample (5 images, nthresh=5) against its MATLAB results.

Tolerances are the ones asked for (2e-4 on the summary, 1e-3 per threshold and per image).
The official matcher is randomised; measured with the official C++ matcher itself (6 runs, see
docs/edges.md) its precision varies by up to 4e-4 on this sample and its per-image precision by
1.1e-3, so no implementation can hold precision to 2e-4 / 1e-3 reliably. Those checks are kept
at the asked tolerance as strict xfails, so the gap stays visible and a fix shows up.

The ``official`` matcher draws a seeded random graph like the official code; its checks are
deterministic, but that they land inside the tolerances is partly this seed scheme's draw (other
seeds move per-image values by up to ~2e-3, as the official code's runs do).
"""
from pathlib import Path

import numpy as np
import pytest

from sambench.metrics.bsds import evaluate_dir

SAMPLE = Path(__file__).parent / "fixtures" / "bsds500_bench_sample"
SUMMARY_KEYS = ["ods_t", "ods_r", "ods_p", "ods", "ois_r", "ois_p", "ois", "ap"]  # file order


def matlab(name: str) -> np.ndarray:
    return np.loadtxt(SAMPLE / "test_2" / name, ndmin=2)


def summary_row(result) -> dict:
    s = result.summary()
    return {k: s[k] for k in SUMMARY_KEYS}


@pytest.fixture(scope="module")
def exact():
    return evaluate_dir(SAMPLE / "png", SAMPLE / "groundTruth", nthresh=5, workers=2)


@pytest.fixture(scope="module")
def official():
    return evaluate_dir(SAMPLE / "png", SAMPLE / "groundTruth", nthresh=5, workers=2,
                        matcher="official")


def diffs(result) -> dict:
    ours = summary_row(result)
    ref = dict(zip(SUMMARY_KEYS, matlab("eval_bdry.txt")[0]))
    return {k: abs(ours[k] - ref[k]) for k in SUMMARY_KEYS}


@pytest.mark.parametrize("mode", ["exact", "official"])
def test_f_ap_and_threshold_within_2e4(mode, request):
    d = diffs(request.getfixturevalue(mode))
    for k in ("ods_t", "ods", "ois", "ap"):
        assert d[k] <= 2e-4, (k, d[k])


def test_official_recall_within_2e4(official):
    d = diffs(official)
    assert d["ods_r"] <= 2e-4 and d["ois_r"] <= 2e-4, d


@pytest.mark.xfail(strict=True, reason="exact optimum keeps ~1 match/pair the official random "
                   "graph drops: recall +3.3e-4 on this sample (docs/edges.md)")
def test_exact_recall_within_2e4(exact):
    d = diffs(exact)
    assert d["ods_r"] <= 2e-4 and d["ois_r"] <= 2e-4, d


@pytest.mark.parametrize("mode", ["exact", "official"])
@pytest.mark.xfail(strict=True, reason="official precision itself varies by up to 4e-4 run to "
                   "run on this sample (docs/edges.md)")
def test_precision_within_2e4(mode, request):
    d = diffs(request.getfixturevalue(mode))
    assert d["ods_p"] <= 2e-4 and d["ois_p"] <= 2e-4, d


@pytest.mark.parametrize("mode", ["exact", "official"])
def test_per_threshold_within_1e3(mode, request):
    cv = request.getfixturevalue(mode).curve()
    ours = np.column_stack([cv["threshold"], cv["recall"], cv["precision"], cv["f"]])
    np.testing.assert_allclose(ours, matlab("eval_bdry_thr.txt"), rtol=0, atol=1e-3)


@pytest.mark.parametrize("mode", ["exact", "official"])
def test_per_image_threshold_recall_and_f_within_1e3(mode, request):
    ours = request.getfixturevalue(mode).image_scores()
    ref = matlab("eval_bdry_img.txt")
    np.testing.assert_array_equal(ref[:, 0], np.arange(1, 6))
    for col in (0, 1, 3):  # T, R, F
        np.testing.assert_allclose(ours[:, col], ref[:, col + 1], rtol=0, atol=1e-3)


@pytest.mark.xfail(strict=True, reason="image 1 precision 3 px of 2808 off: 1.07e-3, as one of "
                   "6 official runs (docs/edges.md)")
def test_exact_per_image_precision_within_1e3(exact):
    np.testing.assert_allclose(exact.image_scores()[:, 2], matlab("eval_bdry_img.txt")[:, 3],
                               rtol=0, atol=1e-3)


def test_exact_counts_are_the_optimum(exact):
    # Recall counts and all totals are the same for every optimal matching (ties only move
    # which predicted pixels match); pinned so a regression in matching shows up at once.
    assert exact.image_ids == ["2018", "3063", "5096", "6046", "8068"]
    np.testing.assert_array_equal(exact.counts[:, 0, 0], [9251, 7017, 9113, 8140, 8369])
    np.testing.assert_array_equal(exact.counts[:, 0, 1], [14318, 9238, 19298, 17035, 9616])
    np.testing.assert_array_equal(exact.counts[:, :, 3], [
        [2808, 1724, 1663, 1663, 946], [3048, 1290, 1234, 955, 906],
        [1971, 1649, 1065, 1065, 553], [2104, 749, 732, 732, 324],
        [2642, 1697, 1118, 1118, 1118]])


def test_matlab_text_files_round_trip(exact, tmp_path):
    exact.write_matlab_files(tmp_path)
    got = np.loadtxt(tmp_path / "eval_bdry.txt", ndmin=2)[0]
    np.testing.assert_allclose(got, list(summary_row(exact).values()), rtol=1e-5)
    assert np.loadtxt(tmp_path / "eval_bdry_thr.txt").shape == (5, 4)
    img = np.loadtxt(tmp_path / "eval_bdry_img.txt")
    assert img.shape == (5, 5) and img[:, 0].tolist() == [1, 2, 3, 4, 5]
    ev1 = np.loadtxt(tmp_path / "2018_ev1.txt")
    np.testing.assert_array_equal(ev1[:, 1:], exact.counts[0])
    # Same layout as the MATLAB files: fixed-width %10g columns.
    line = (tmp_path / "eval_bdry.txt").read_text().splitlines()[0]
    ref_line = (SAMPLE / "test_2" / "eval_bdry.txt").read_text().splitlines()[0]
    assert len(line) == len(ref_line)


@pytest.mark.parametrize("matcher, nthresh", [("exact", 3), ("official", 1)])
def test_worker_count_does_not_change_results(matcher, nthresh):
    one, two = (evaluate_dir(SAMPLE / "png", SAMPLE / "groundTruth", nthresh=nthresh,
                             workers=w, matcher=matcher) for w in (1, 2))
    np.testing.assert_array_equal(one.counts, two.counts)
