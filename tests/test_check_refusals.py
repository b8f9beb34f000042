"""``srbench check``: what it refuses, and infinity and NaN through every writer (issue 21, items 5, 6, 7, 12,
15, 17 and 18's check parts).

A tiny project: two generated 48x48 HR images, a folder of SR images identical to them (PSNR infinity) and
bicubic. Every refusal is one ``error:`` line and exit 2, never a traceback."""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from srbench import check as C
from srbench.cli import main
from srbench.datasets import is_known_name
from srbench.errors import BadInputError
from srbench.images import write_png

SPEC = """
baseline = "baselines/b.json"

[[entries]]
model = "sr"
name = "same"
datasets = ["data/set"]
protocols = ["sr"]
metrics = ["psnr_y", "ssim_y"]

[[entries]]
model = "bicubic"
datasets = ["data/set"]
protocols = ["sr"]
metrics = ["psnr_y"]
"""


# Finite values only (bicubic): what these tests refuse is not hidden by an infinity the writer fails on.
BICUBIC = SPEC[: SPEC.index("[[entries]]")] + SPEC[SPEC.index('[[entries]]\nmodel = "bicubic"'):]


def _finite(project) -> None:
    (project / "check.toml").write_text(BICUBIC)
    assert _check(project, "--update").exit_code == 0


def _strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity literals are refused."""
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    rng = np.random.default_rng(21)
    for i in range(2):
        hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        write_png(root / "data" / "set" / f"img{i}.png", hr)
        write_png(root / "sr" / f"img{i}.png", hr)  # SR = HR: PSNR is infinite
    (root / "check.toml").write_text(SPEC)
    return root


def _check(project, *args: str):
    return CliRunner().invoke(main, ["check", "--spec", str(project / "check.toml"), *args])


def _one_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    (line,) = [line for line in res.output.splitlines() if line.strip()]
    assert line.startswith("error: ")
    return line


# ---------------------------------------------------------------------------------------------------------
# Items 5 and 6: infinity and NaN are values, not drift, and every writer carries them


def test_an_infinite_value_round_trips_through_update_check_and_every_writer(project):
    store = str(project / "store.sqlite")
    wrote = _check(project, "--update")
    assert wrote.exit_code == 0, wrote.output
    text = (project / "baselines" / "b.json").read_text()
    raw = _strict_json(text)
    psnr = next(e for e in raw["entries"] if e["model"] == "same" and e["metric"] == "psnr_y")
    assert psnr["value"] == "inf" and psnr["per_image"] == {"img0": "inf", "img1": "inf"}
    ssim = next(e for e in raw["entries"] if e["model"] == "same" and e["metric"] == "ssim_y")
    assert ssim["value"] == 1.0
    read = C.load_baseline(project / "baselines" / "b.json")
    back = next(e for e in read["entries"] if e["model"] == "same" and e["metric"] == "psnr_y")
    assert back["value"] == math.inf and back["per_image"] == {"img0": math.inf, "img1": math.inf}

    for attempt in range(2):  # computed, then read from the store
        junit, md = project / f"j{attempt}.xml", project / f"m{attempt}.md"
        res = _check(project, "--json", "--store", store, "--junit", str(junit), "--markdown", str(md))
        assert res.exit_code == 0, res.output
        report = _strict_json(res.stdout)
        row = next(r for r in report["rows"] if r["model"] == "same" and r["metric"] == "psnr_y")
        assert (row["status"], row["baseline"], row["value"], row["diff"]) == ("ok", "inf", "inf", 0.0)
        assert all(r["cached"] for r in report["rows"]) == (attempt == 1)
        suite = ET.parse(junit).getroot()
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
        assert md.read_text().startswith("### ✅ srbench check: ok, no drift (3 values")


def test_infinity_against_a_finite_baseline_is_drift_with_valid_json(project):
    assert _check(project, "--update").exit_code == 0
    path = project / "baselines" / "b.json"
    raw = _strict_json(path.read_text())
    for e in raw["entries"]:
        if e["model"] == "same" and e["metric"] == "psnr_y":
            e["value"], e["per_image"] = 50.0, {"img0": 50.0, "img1": None}
    path.write_text(json.dumps(raw))
    res = _check(project, "--json", "--markdown", str(project / "m.md"))
    assert res.exit_code == 1
    row = next(r for r in _strict_json(res.stdout)["rows"] if r["status"] == "DRIFT")
    assert (row["baseline"], row["value"], row["diff"]) == (50.0, "inf", "inf")
    assert {m["image"]: (m["baseline"], m["now"]) for m in row["movers"]} == {"img0": (50.0, "inf"),
                                                                              "img1": (None, "inf")}
    assert "| DRIFT | same | data/set | sr | psnr_y | 50.0000 | inf | +inf |" in (project / "m.md").read_text()


@pytest.mark.parametrize(("then", "now", "status"), [
    (math.inf, math.inf, "ok"), (-math.inf, -math.inf, "ok"), (None, None, "ok"),
    (math.inf, -math.inf, "DRIFT"), (math.inf, 40.0, "DRIFT"), (None, 40.0, "DRIFT"), (40.0, None, "DRIFT"),
])
def test_equal_infinities_and_undefined_on_both_sides_are_no_drift(then, now, status):
    key = {"model": "m", "dataset": "d", "protocol": "sr", "metric": "psnr_y"}
    (row,) = C.compare({"entries": [{**key, "value": then}]}, [{**key, "value": now}], {"psnr_y": 0.01})
    assert row.status == status
    assert row.diff is None or row.diff == 0.0 or math.isinf(row.diff)


def test_a_nan_dataset_value_is_written_as_null_and_read_back(project):
    """Flat images: NIQE is undefined (NaN) on them, so the dataset's mean is NaN."""
    for i in range(2):
        write_png(project / "data" / "set" / f"img{i}.png", np.full((96, 96, 3), 128, np.uint8))
    (project / "check.toml").write_text('baseline = "baselines/b.json"\n[[entries]]\nmodel = "bicubic"\n'
                                        'datasets = ["data/set"]\nprotocols = ["pirm"]\nmetrics = ["niqe"]\n')
    wrote = _check(project, "--update")
    assert wrote.exit_code == 0, wrote.output
    (entry,) = _strict_json((project / "baselines" / "b.json").read_text())["entries"]
    assert entry["value"] is None and entry["per_image"] == {"img0": None, "img1": None}
    res = _check(project, "--json")
    assert res.exit_code == 0, res.output
    (row,) = _strict_json(res.stdout)["rows"]
    assert (row["status"], row["baseline"], row["value"]) == ("ok", None, None)


@pytest.mark.parametrize("option", ["psnr_y=-0.1", "psnr_y=nan", "psnr_y=inf", "psnr=0.1"])
def test_a_bad_tolerance_option_is_refused(project, option):
    _finite(project)
    line = _one_error(_check(project, "--tolerance", option))
    assert f"--tolerance {option}" in line


@pytest.mark.parametrize("value", ["-0.5", "nan", "inf"])
def test_a_bad_tolerance_in_the_spec_is_refused(project, value):
    (project / "check.toml").write_text(SPEC.replace("\n[[entries]]", f"\n[tolerances]\npsnr_y = {value}\n"
                                                                      "\n[[entries]]", 1))
    line = _one_error(_check(project))
    assert "tolerances.psnr_y: expected a finite number >= 0" in line


def test_an_empty_baseline_is_not_ok(project):
    (project / "baselines").mkdir()
    (project / "baselines" / "b.json").write_text(json.dumps({"format": C.BASELINE_FORMAT, "format_version": 2,
                                                             "entries": []}))
    line = _one_error(_check(project))
    assert line == (f"error: corrupt baseline: {project / 'baselines' / 'b.json'}: entries: empty, so there is "
                    "nothing to check; write the baseline with srbench check --update")


# ---------------------------------------------------------------------------------------------------------
# Item 7: every corruption of a hand-edited baseline is one line naming the file and the key


def _entry(data):
    return data["entries"][0]


CORRUPTIONS = [
    ("value as a string", lambda d: _entry(d).update(value="30.1"), "entries[0].value: expected a number"),
    ("value as a list", lambda d: _entry(d).update(value=[1]), "entries[0].value: expected a number"),
    ("value as true", lambda d: _entry(d).update(value=True), "entries[0].value: expected a number"),
    ("no value", lambda d: _entry(d).pop("value"), "entries[0].value: missing"),
    ("no model", lambda d: _entry(d).pop("model"), "entries[0].model: expected a non-empty string"),
    ("model a number", lambda d: _entry(d).update(model=3), "entries[0].model: expected a non-empty string"),
    ("empty metric", lambda d: _entry(d).update(metric=""), "entries[0].metric: expected a non-empty string"),
    ("no dataset", lambda d: _entry(d).pop("dataset"), "entries[0].dataset: expected a non-empty string"),
    ("per_image a list", lambda d: _entry(d).update(per_image=[1, 2]), "entries[0].per_image: expected an object"),
    ("per_image value a string", lambda d: _entry(d).update(per_image={"img0": "x"}),
     "entries[0].per_image.img0: expected a number"),
    ("fingerprints a string", lambda d: _entry(d).update(fingerprints="abc"),
     "entries[0].fingerprints: expected an object"),
    ("fingerprint a number", lambda d: _entry(d).update(fingerprints={"model": 1}),
     "entries[0].fingerprints: expected an object"),
    ("n_images a string", lambda d: _entry(d).update(n_images="2"), "entries[0].n_images: expected a whole number"),
    ("n_images negative", lambda d: _entry(d).update(n_images=-1), "entries[0].n_images: expected a whole number"),
    ("entry a string", lambda d: d["entries"].__setitem__(0, "x"), "entries[0]: expected an object"),
    ("entry twice", lambda d: d["entries"].append(dict(_entry(d))), "appears twice"),
    ("entries an object", lambda d: d.update(entries={}), "entries: expected a list"),
    ("no entries", lambda d: d.pop("entries"), "entries: expected a list"),
    ("tolerance a string", lambda d: d["tolerances"].update(psnr_y="0.1"),
     "tolerances.psnr_y: expected a finite number >= 0"),
    ("tolerance negative", lambda d: d["tolerances"].update(psnr_y=-1), "tolerances.psnr_y: expected a finite"),
    ("tolerance NaN", lambda d: d["tolerances"].update(psnr_y=None), "tolerances.psnr_y: expected a finite"),
    ("tolerances a list", lambda d: d.update(tolerances=[]), "tolerances: expected an object"),
    ("unknown format_version", lambda d: d.update(format_version=99), "format_version: unknown version 99"),
    ("format_version a string", lambda d: d.update(format_version="2"), "format_version: unknown version '2'"),
    ("another format", lambda d: d.update(format="something-else"), "format: expected 'srbench-drift-baseline'"),
]


@pytest.mark.parametrize(("edit", "words"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_a_hand_edited_baseline_is_one_line_naming_the_file_and_key(project, edit, words):
    _finite(project)
    path = project / "baselines" / "b.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    line = _one_error(_check(project, "--json"))
    assert line.startswith(f"error: corrupt baseline: {path}: ") and words in line


@pytest.mark.parametrize(("text", "words"), [
    ("{", "(file): not JSON"), ("", "(file): not JSON"), ('{"entries": [}', "(file): not JSON"),
    ("[1, 2]", "(top level): expected an object, got list"), ('"text"', "(top level): expected an object"),
    ("null", "(top level): expected an object"),
    ('{"entries": [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "psnr_y", "value": Infinity}]}',
     "(file): not JSON (Infinity is not JSON"),
    ('{"entries": [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "psnr_y", "value": NaN}]}',
     "(file): not JSON (NaN is not JSON"),
])
def test_a_baseline_that_is_not_a_baseline_object_is_one_line(project, text, words):
    (project / "baselines").mkdir()
    path = project / "baselines" / "b.json"
    path.write_text(text)
    line = _one_error(_check(project))
    assert line.startswith(f"error: corrupt baseline: {path}: ") and words in line


def test_a_baseline_that_is_not_utf8_is_one_line(project):
    (project / "baselines").mkdir()
    (project / "baselines" / "b.json").write_bytes(b"\xff\xfe{\x00")
    assert "(file): not JSON" in _one_error(_check(project))


# ---------------------------------------------------------------------------------------------------------
# Item 12: data_root is relative to the spec


def test_data_root_is_relative_to_the_spec_not_the_current_folder(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "mydata").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # a "mydata" here must not be the one the spec means
    (project / "check.toml").write_text('data_root = "mydata"\n' + SPEC)
    assert C.load_spec(project / "check.toml").data_root == str(project / "mydata")


# ---------------------------------------------------------------------------------------------------------
# Item 15: scale, protocol and the metric list are part of what produced a value


def test_a_changed_scale_is_named_as_the_cause_of_the_drift(project):
    _finite(project)
    (project / "check.toml").write_text(BICUBIC.replace('model = "bicubic"', 'model = "bicubic"\nscale = 2'))
    res = _check(project, "--json")
    assert res.exit_code == 1, res.output
    (row,) = [r for r in _strict_json(res.stdout)["rows"] if r["status"] == "DRIFT"]
    assert row["model"] == "bicubic" and "scale 4 -> 2" in row["changed"]
    assert "no recorded fingerprint changed" not in row["message"]


def test_a_changed_metric_list_is_a_note(project):
    _finite(project)
    (project / "check.toml").write_text(BICUBIC.replace('metrics = ["psnr_y"]', 'metrics = ["psnr_y", "ssim_y"]'))
    res = _check(project, "--json")
    assert res.exit_code == 1, res.output  # ssim_y is not in the baseline: unchecked, so no pass
    rows = [r for r in _strict_json(res.stdout)["rows"] if r["model"] == "bicubic"]
    row = next(r for r in rows if r["metric"] == "psnr_y")
    assert row["status"] == "ok" and row["changed"] == ["metric list psnr_y -> psnr_y,ssim_y"]
    assert next(r for r in rows if r["metric"] == "ssim_y")["status"] == "new"


def test_a_changed_protocol_is_named(project):
    """psnr_y under sr in the baseline, the same model, dataset and metric now under pirm."""
    _finite(project)
    baseline = C.load_baseline(project / "baselines" / "b.json")
    key = {"model": "bicubic", "dataset": "data/set", "metric": "psnr_y"}
    (row, _) = C.compare(baseline, [{**key, "protocol": "pirm", "value": 30.0}])
    assert row.status == "missing" and row.note == "not computed: protocol sr -> pirm (the spec's protocols changed)"


def test_protocol_and_scale_are_recorded_in_the_baseline(project):
    wrote = _check(project, "--update")
    assert wrote.exit_code == 0 and f"(created the folder {project / 'baselines'})" in wrote.output
    entries = json.loads((project / "baselines" / "b.json").read_text())["entries"]
    assert {(e["model"], e["fingerprints"]["scale"], e["fingerprints"]["protocol"], e["fingerprints"]["metrics"])
            for e in entries} == {("same", "4", "sr", "psnr_y,ssim_y"), ("bicubic", "4", "sr", "psnr_y")}


# ---------------------------------------------------------------------------------------------------------
# Item 17: report files are checked before anything is computed, and no folder is created for them


@pytest.mark.parametrize("option", ["--junit", "--markdown"])
@pytest.mark.parametrize("where", ["missing/folder/r.out", "afile/r.out"])
def test_report_files_are_checked_before_computing(project, monkeypatch, option, where):
    _finite(project)
    (project / "afile").write_text("x")
    (project / "afolder").mkdir()

    def no_computation(*args, **kwargs):
        raise AssertionError("computed before the outputs were checked")

    monkeypatch.setattr(C, "run_spec", no_computation)
    line = _one_error(_check(project, option, str(project / where)))
    assert str(project / where) in line
    assert not (project / "missing").exists()


# ---------------------------------------------------------------------------------------------------------
# Item 18: an unknown device, and a summary that says what was computed


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:7x"])
def test_an_unknown_device_in_the_spec_is_refused(project, device):
    (project / "check.toml").write_text(f'device = "{device}"\n' + SPEC)
    with pytest.raises(BadInputError, match=f"device: unknown device '{device}'; use cpu, cuda, auto"):
        C.load_spec(project / "check.toml")
    assert "unknown device" in _one_error(_check(project))


def test_the_summary_does_not_say_all_computed_when_nothing_was(tmp_path):
    rows = [C.CheckRow("m", "d", "sr", "psnr_y", 30.0, None, 0.01, status="not-run", note="could not run: gone")]
    report = C.CheckReport(rows, [C.NotRun("m", "d", "gone", optional=True)], tmp_path / "b.json")
    assert "computed" in report.summary() and "all computed" not in report.summary()
    assert "no value computed" in report.summary()


# ---------------------------------------------------------------------------------------------------------
# A check that passes must have checked: review of the drift check for users


def _rows(res) -> dict:
    return {(r["model"], r["metric"]): r for r in _strict_json(res.stdout)["rows"]}


def test_an_infinite_dataset_value_does_not_hide_an_image_that_moved(project):
    assert _check(project, "--update").exit_code == 0  # "same": SR = HR, PSNR infinite on both images
    write_png(project / "sr" / "img1.png", np.zeros((48, 48, 3), np.uint8))  # now finite: the mean is still inf
    res = _check(project, "--json")
    assert res.exit_code == 1, res.output
    row = _rows(res)[("same", "psnr_y")]
    assert row["baseline"] == row["value"] == "inf" and row["status"] == "DRIFT"
    assert "the dataset value is not finite: images moved beyond the tolerance" in row["message"]


def test_a_value_the_baseline_lacks_fails_and_tolerances_are_not_read_back(project):
    _finite(project)
    baseline = json.loads((project / "baselines/b.json").read_text())
    baseline["tolerances"]["psnr_y"] = 100.0  # a record: a loosened tolerance written once must not loosen checks
    entry = baseline["entries"][0]
    entry["value"] += 0.5
    (project / "baselines/b.json").write_text(json.dumps(baseline))
    res = _check(project, "--json")
    assert res.exit_code == 1 and _rows(res)[("bicubic", "psnr_y")]["status"] == "DRIFT"
    assert _check(project, "--tolerance", "psnr_y=1").exit_code == 0  # for one run
    assert _check(project, "--update", "--tolerance", "psnr_y=1").exit_code == 0
    assert json.loads((project / "baselines/b.json").read_text())["tolerances"]["psnr_y"] == 0.002
    baseline = json.loads((project / "baselines/b.json").read_text())
    # edited by hand into another metric's value: psnr_y, which the spec asks for, would go unchecked
    baseline["entries"] = [{**e, "metric": "ssim_y"} for e in baseline["entries"]]
    (project / "baselines/b.json").write_text(json.dumps(baseline))
    res = _check(project, "--json")
    assert res.exit_code == 1 and _rows(res)[("bicubic", "psnr_y")]["status"] == "new"


def test_update_keeps_the_values_of_optional_entries_that_could_not_run(project):
    (project / "check.toml").write_text(SPEC.replace('model = "bicubic"', 'model = "bicubic"\noptional = true')
                                        .replace('datasets = ["data/set"]\nprotocols = ["sr"]\nmetrics = ["psnr_y"]',
                                                 'datasets = ["data/other"]\nprotocols = ["sr"]\nmetrics = ["psnr_y"]'))
    (project / "data/other").mkdir()
    write_png(project / "data/other/a.png", np.full((48, 48, 3), 90, np.uint8) + np.eye(48, dtype=np.uint8)[..., None])
    assert _check(project, "--update").exit_code == 0
    before = json.loads((project / "baselines/b.json").read_text())["entries"]
    (project / "data/other").rename(project / "data/hidden")
    assert _check(project, "--update").exit_code == 0
    after = json.loads((project / "baselines/b.json").read_text())["entries"]
    assert [e for e in after if e["model"] == "bicubic"] == [e for e in before if e["model"] == "bicubic"]


def test_spec_paths_are_the_specs_whatever_the_working_directory(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sr").mkdir(parents=True)  # a folder "sr" here must not be the spec's
    monkeypatch.chdir(elsewhere)
    (project / "sr").rename(project / "gone")
    spec = C.load_spec(project / "check.toml")
    assert spec.entries[0].model == str(project / "sr")
    assert spec.entries[1].model == "bicubic"
    (project / "check.toml").write_text(SPEC.replace('protocols = ["sr"]\nmetrics = ["psnr_y", "ssim_y"]',
                                                     'protocols = ["SR"]\nmetrics = ["psnr_y", "ssim_y"]'))
    assert "check.toml: entries[0].protocols: unknown protocol 'SR'" in _one_error(_check(project))


def test_an_unchecked_value_is_a_junit_failure_and_srbench_s_own_set_only_notes_it(project):
    _finite(project)
    baseline = json.loads((project / "baselines/b.json").read_text())
    baseline["entries"] = [{**e, "metric": "ssim_y"} for e in baseline["entries"]]
    (project / "baselines/b.json").write_text(json.dumps(baseline))
    res = _check(project, "--junit", str(project / "j.xml"))
    assert res.exit_code == 1
    suite = ET.parse(project / "j.xml").getroot()
    assert suite.get("failures") == "2"  # psnr_y unchecked, ssim_y missing
    assert {f.get("type") for f in suite.iter("failure")} == {"new", "missing"}
    own = C.compare({"entries": []}, [{"model": "m", "dataset": "d", "protocol": "sr", "metric": "psnr_y",
                                       "value": 30.0}], unchecked_fails=False)
    assert [(r.status, r.failed) for r in own] == [("new", False)]


def test_update_repairs_a_corrupt_baseline_while_an_optional_entry_cannot_run(project):
    (project / "check.toml").write_text(SPEC.replace('model = "bicubic"', 'model = "bicubic"\noptional = true')
                                        .replace('datasets = ["data/set"]\nprotocols = ["sr"]\nmetrics = ["psnr_y"]',
                                                 'datasets = ["data/gone"]\nprotocols = ["sr"]\nmetrics = ["psnr_y"]'))
    (project / "baselines").mkdir()
    (project / "baselines/b.json").write_text("{not json")
    res = _check(project, "--update")
    assert res.exit_code == 0, res.output
    assert {e["model"] for e in json.loads((project / "baselines/b.json").read_text())["entries"]} == {"same"}


def test_spec_names_are_exact_for_models_and_written_as_paths_for_folders(project):
    folder = project
    assert C._relative("RRDB23", folder, C._is_model_name) == str(folder / "RRDB23")  # not the variant: a path
    assert C._relative("rrdb23", folder, C._is_model_name) == "rrdb23"
    assert C._relative("esrgan-official", folder, C._is_model_name) == "esrgan-official"
    (folder / "Set5").mkdir()  # a folder beside the spec does not turn the name into it (as on the command line)
    assert C._relative("Set5", folder, is_known_name) == "Set5"
    assert C._relative("./Set5", folder, is_known_name) == str(folder / "Set5")
