"""The published collection gan-sr-thesis: every number checked against the issue's own text (parsed here, not read
from the CSV), where each came from, and its rows beside a suite's, never ranked with them."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from click.testing import CliRunner

from srbench import published_results as P
from srbench.cli import main
from srbench.errors import BadInputError

# The study's figures as issue 23 gives them, copied verbatim (line breaks as there, indentation dropped).
ISSUE = """
- **Perceptual loss backbone:** VGG vs LPIPS vs DISTS (it reports NIQE 6.16/4.01/2.66, FID 28.87/20.81/22.11,
LPIPS 0.2590/0.1488/0.1576, PSNR 24.00/24.74/24.39, SSIM 0.63/0.70/0.71, BRISQUE 66.17/27.58/33.57, training
time 3.5 h / 3.5 h / 24 h). LPIPS replaces the VGG term.
- **Adversarial loss:** RaGAN, RaHinge, RaLS, RcGAN, RcHinge, RcLS and RaGP (RaGAN's generator loss; its
discriminator loss plus a WGAN-GP gradient penalty, lambda_g (||grad D(x_hat)||_2 - 1)^2). Table (NIQE, FID,
LPIPS, PSNR, SSIM, BRISQUE): RaGAN 4.01/20.81/0.1488/24.74/0.70/27.58; RaHinge 3.08/23.37/0.1537/23.40/0.68/36.65;
RaLS 3.71/21.92/0.1519/24.78/0.70/22.78; RcGAN 3.59/22.37/0.1565/24.20/0.69/28.69; RcHinge
3.40/20.61/0.1486/24.43/0.70/30.96; RcLS 3.49/22.51/0.1524/24.74/0.70/29.52; RaGP 3.27/19.80/0.1427/24.21/0.68/45.21.
- **Frequency loss** on the RaGP model, weight 0.3 and 0.5: its FFT loss,
`L_FFT = ||F(G(I_LR)) - F(I_HR)|| / max(||F(G(I_LR))||, ||F(I_HR)||)`, against the spectral loss of Durall et
al. (CVPR 2020, "Watch your up-convolution": azimuthally integrated 1-D power spectrum). FFT 0.3:
3.20/17.54/0.1410/25.67/0.74/37.99; spectral 0.3: 3.44/20.38/0.1457/24.47/0.69/39.32; FFT 0.5:
3.75/17.73/0.1358/25.60/0.74/28.32; spectral 0.5: 3.17/20.12/0.1491/24.19/0.67/34.10. Spectrum discrepancy
(lower is better) for RaGAN/WGAN-GP/RaGP: original 0.00758/0.00736/0.00801, +FFT 0.00535/0.00291/0.00374,
+spectral 0.00521/0.00840/0.00826; per test set for RaGP (Set5/Set14/BSD100/Urban100): 0.00034/0.00066/0.00581/0.00457,
+FFT 0.00017/0.00031/0.00253/0.00327, +spectral 0.00033/0.00070/0.00590/0.00465.
- **Final model vs baseline**, NIQE/FID/LPIPS/PSNR/SSIM/BRISQUE: Set14 5.30/153.30/0.1541/23.86/0.64/52.13 ->
4.62/132.27/0.1149/25.33/0.69/48.08; BSD100 4.79/88.31/0.1945/22.65/0.59/55.29 -> 4.50/78.16/0.1514/23.66/0.64/48.38;
Urban100 5.23/45.71/0.1746/20.72/0.62/59.51 -> 4.80/30.94/0.1294/22.10/0.68/59.90.
- **Against pretrained models** (NIQE/LPIPS/PSNR/SSIM, training images, iterations): Bicubic
5.20/0.409/26.70/0.77; EDSR 4.46/0.270/28.98/0.83 (800, 300K); RRDB 5.08/0.253/29.44/0.84 (14K, 1000K);
RankSRGAN 2.45/0.128/26.55/0.75 (800, 900K); ESRGAN-pretrain 2.61/0.124/26.22/0.75 (14K, 1000K); SRFlow
3.57/0.120/27.09/0.76 (3450, 400K); the study's model 2.55/0.109/26.57/0.76 (6K, 74K); batch 16 throughout.
"""

SIX = ("thesis_niqe", "thesis_fid", "thesis_lpips", "thesis_psnr", "thesis_ssim", "thesis_brisque")
NUMS = r"\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)+"  # a slash-separated run of numbers


def _text() -> str:
    return " ".join(ISSUE.split())


def _between(start: str, end: str) -> str:
    text = _text()
    return text[text.index(start):text.index(end, text.index(start))]


def _count(token: str) -> float:
    return float(token[:-1]) * 1000 if token.endswith("K") else float(token)


def _perceptual(out: dict) -> None:
    part = _between("Perceptual loss backbone", "LPIPS replaces")
    for label, metric in zip(("NIQE", "FID", "LPIPS", "PSNR", "SSIM", "BRISQUE"), SIX, strict=True):
        (run,) = re.findall(rf"\b{label} ({NUMS})", part)
        for method, value in zip(("VGG", "LPIPS", "DISTS"), run.split("/"), strict=True):
            out[(f"{method} perceptual", "unstated", metric)] = float(value)
    hours = re.search(r"training time ([\d.]+) h / ([\d.]+) h / ([\d.]+) h", part)
    assert hours is not None
    for method, value in zip(("VGG", "LPIPS", "DISTS"), hours.groups(), strict=True):
        out[(f"{method} perceptual", "unstated", "training_hours")] = float(value)


def _six_per_name(part: str, out: dict, dataset: str = "unstated", prefix: str = "") -> None:
    for name, run in re.findall(rf"(\w+(?: 0\.\d)?):? ({NUMS})", part):
        for metric, value in zip(SIX, run.split("/"), strict=True):
            out[(prefix + name, dataset, metric)] = float(value)


def _spectrum(out: dict) -> None:
    part = _between("Spectrum discrepancy (lower", "per test set")
    for label, suffix in (("original", ""), ("+FFT", " + FFT"), ("+spectral", " + spectral")):
        (run,) = re.findall(rf"{re.escape(label)} ({NUMS})", part)
        for base, value in zip(("RaGAN", "WGAN-GP", "RaGP"), run.split("/"), strict=True):
            out[(base + suffix, "unstated", "thesis_spectrum_discrepancy")] = float(value)
    part = _between("per test set for RaGP", "Final model")
    runs = re.findall(rf"(\+FFT |\+spectral |: )({NUMS})", part)
    assert len(runs) == 3
    for label, run in runs:
        method = {": ": "RaGP", "+FFT ": "RaGP + FFT", "+spectral ": "RaGP + spectral"}[label]
        for dataset, value in zip(("set5", "set14", "bsd100", "urban100"), run.split("/"), strict=True):
            out[(method, dataset, "thesis_spectrum_discrepancy")] = float(value)


def _final(out: dict) -> None:
    part = _between("Final model vs baseline", "Against pretrained")
    for dataset, before, after in re.findall(rf"(Set14|BSD100|Urban100) ({NUMS}) -> ({NUMS})", part):
        for method, run in (("Baseline ESRGAN", before), ("Final model", after)):
            for metric, value in zip(SIX, run.split("/"), strict=True):
                out[(method, dataset.lower(), metric)] = float(value)


def _pretrained(out: dict) -> None:
    part = _between("Against pretrained models", "batch 16 throughout")
    found = re.findall(rf"(Bicubic|EDSR|RRDB|RankSRGAN|ESRGAN-pretrain|SRFlow|the study's model) ({NUMS})"
                       r"(?: \((\w+), (\w+)\))?", part)
    assert len(found) == 7
    for name, run, images, iterations in found:
        method = "The study's model" if name == "the study's model" else name
        for metric, value in zip(("thesis_niqe", "thesis_lpips", "thesis_psnr", "thesis_ssim"), run.split("/"),
                                 strict=True):
            out[(method, "unstated", metric)] = float(value)
        if images:
            out[(method, "unstated", "training_images")] = _count(images)
            out[(method, "unstated", "training_iterations")] = _count(iterations)


def _issue_numbers() -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    _perceptual(out)
    _six_per_name(_between("Table (NIQE, FID", "**Frequency loss"), out)
    _six_per_name(_between("FFT 0.3:", "Spectrum discrepancy"), out, prefix="RaGP + ")
    _spectrum(out)
    _final(out)
    _pretrained(out)
    return out


def _thesis() -> list[P.PublishedValue]:
    return [v for v in P.values() if v.collection == "gan-sr-thesis"]


def test_every_number_of_the_issue_is_published_exactly_and_nothing_else():
    expected = _issue_numbers()
    # 3 x 7 perceptual, 7 x 6 adversarial, 4 x 6 frequency, 9 + 12 spectrum, 2 x 3 x 6 final, 7 x 4 + 6 x 2 released
    assert len(expected) == 21 + 42 + 24 + 21 + 36 + 40
    shipped = {(v.method, v.dataset, v.metric): v.value for v in _thesis()}
    assert len(shipped) == len(_thesis())  # one number per method, dataset and metric
    assert shipped == expected
    assert shipped[("RaLS", "unstated", "thesis_brisque")] == 22.78  # spot checks of the parse itself
    assert shipped[("RRDB", "unstated", "training_iterations")] == 1_000_000
    assert shipped[("RaGP + spectral 0.5", "unstated", "thesis_ssim")] == 0.67


def test_no_thesis_number_sits_in_an_srbench_column():
    values = _thesis()
    assert values and all(not v.comparable and v.protocol == "unstated" and v.scale == 4 for v in values)
    own = P.published_metrics()
    assert {own[v.metric].like for v in values} == {"niqe", "fid", "lpips", "psnr_y", "ssim_y", "brisque",
                                                     "spectrum_discrepancy", ""}
    assert own["thesis_spectrum_discrepancy"].like == "spectrum_discrepancy"  # not srbench's spectrum (decades)
    assert "not srbench's spectrum" in own["thesis_spectrum_discrepancy"].description


def test_the_collection_states_its_source_training_data_and_what_it_leaves_unstated():
    c = P.collections()["gan-sr-thesis"]
    assert 'Thesis presentation "GAN-based model for super-resolution problem"' in c.citation
    assert "DIV2K+Flickr2K+OST 128x128 HR crops" in c.description
    assert "FID's and LPIPS's implementation and inputs" in c.description and "not the test set" in c.description
    assert "spectrum_discrepancy" in c.description and "not srbench's spectrum" in c.description


def test_published_show_lists_every_number_with_its_source():
    res = CliRunner().invoke(main, ["published", "show", "gan-sr-thesis"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == P.collections()["gan-sr-thesis"].citation
    assert lines[-1].startswith("[gan-sr-thesis] A loss study on ESRGAN")
    rows = lines[2:-1]
    assert len(rows) == 184
    for source in ("perceptual-loss (backbone) table", "adversarial-loss table", "frequency-loss table",
                   "spectrum discrepancy table", "spectrum discrepancy per test set (RaGP)",
                   "final model vs baseline table", "comparison with pretrained models"):
        assert any(source in row for row in rows), source
    # each value with its metric's digits, not one common format for 0.00034 and 1000000
    row = next(r for r in rows if r.split()[:3] == ["RaGP", "set5", "thesis_spectrum_discrepancy"])
    assert " 0.00034 " in row
    row = next(r for r in rows if "RRDB" in r and "training_iterations" in r)
    assert " 1000000 " in row and "printed as 1000K" in row


def _tidy() -> pd.DataFrame:
    rows = [("ragan", "set14", "pirm", "niqe", 5.0), ("ragp", "set14", "pirm", "niqe", 4.8),
            ("ragan", "set14", "sr", "spectrum_discrepancy", 0.0020),
            ("ragp", "set14", "sr", "spectrum_discrepancy", 0.0010)]
    return pd.DataFrame([{"model": m, "dataset": d, "protocol": p, "scale": 4, "metric": k, "value": v,
                          "n_images": 14, "higher_is_better": False, "version": "1"} for m, d, p, k, v in rows])


def _cells(text: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = text.splitlines()
    head = [c.strip() for c in lines[0].strip().strip("|").split(" | ")]
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines[2:] if line.startswith("| ")]
    return head[1:], {r[0]: r[1:] for r in rows}


def test_table_shows_the_study_beside_a_suite_in_columns_of_its_own_never_ranked():
    from srbench.report import paper_table

    text = paper_table(_tidy(), ["niqe", "spectrum_discrepancy"], "markdown", published=["gan-sr-thesis"])
    head, rows = _cells(text)
    assert head == ["set14 NIQE ↓", "set14 NIQE (thesis) ‡ ↓", "set14 Spectrum discr. ↓",
                    "set14 Spectrum discr. (thesis) ‡ ↓"]
    assert rows["ragp"] == ["**4.800**", "–", "**0.00100**", "–"]  # the suite's best, though the study's are lower
    assert rows["Final model [gan-sr-thesis]†"] == ["–", "*4.62*", "–", "–"]
    assert rows["RaGP [gan-sr-thesis]†"] == ["–", "–", "–", "*0.00066*"]
    assert rows["RaGP + FFT [gan-sr-thesis]†"][3] == "*0.00031*"
    assert "unstated" not in text.splitlines()[0]  # the tables without a stated test set need --datasets unstated
    assert 'GAN-based model for super-resolution problem' in text and "not srbench's spectrum" in text


def test_rows_without_a_stated_test_set_are_shown_when_asked_for():
    from srbench.report import paper_table

    text = paper_table(_tidy(), ["niqe", "training_hours"], "markdown", datasets=["unstated"],
                       published=["gan-sr-thesis"])
    head, rows = _cells(text)
    assert head == ["unstated NIQE ↓", "unstated NIQE (thesis) ‡ ↓", "unstated Training time (h) ‡ ↓"]
    assert rows["DISTS perceptual [gan-sr-thesis]†"] == ["–", "*2.66*", "*24.0*"]
    assert rows["ragan"] == ["–", "–", "–"]


@pytest.mark.parametrize("like", ["nope", "spectrum_discrepancy_x"])
def test_a_published_metric_like_no_srbench_metric_is_refused(monkeypatch, like):
    real = P._read_text
    extra = (f'\n[metrics.odd]\nlabel = "Odd"\nlike = "{like}"\ndigits = 2\nhigher_is_better = false\n'
             'description = "x"\n')
    monkeypatch.setattr(P, "_read_text", lambda name: real(name) + (extra if name == "collections.toml" else ""))
    P.published_metrics.cache_clear()
    try:
        with pytest.raises(BadInputError, match=f"collections.toml: metric 'odd' is like '{like}', which is not an "
                                            "srbench metric"):
            P.published_metrics()
    finally:
        P.published_metrics.cache_clear()
