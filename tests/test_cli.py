"""The command line: JSON contract, table, exit codes, instant --help."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from srbench.cli import main


def test_help_imports_nothing_heavy():
    code = ("import sys; from srbench.cli import main; "
            "heavy = [m for m in ('torch', 'pyiqa', 'lpips', 'pandas', 'scipy', 'matplotlib', 'skimage') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_evaluate_json_contract(shared_data):
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", str(shared_data / "benchmark/Set5"),
                                    "--dataset", "skimage", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["dataset"] for r in rows] == ["Set5", "skimage"]
    for row in rows:
        assert {"model", "dataset", "n_images", "protocol", "scale", "psnr_y", "ssim_y"} <= set(row)
        assert row["model"] == "bicubic" and row["protocol"] == "sr" and row["scale"] == 4
    assert rows[0]["n_images"] == 5 and abs(rows[0]["psnr_y"] - 28.42) < 0.015


def test_evaluate_table_and_out_dir(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "psnr_y" in res.stdout and "skimage" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bicubic__skimage__sr_x4.csv", "bicubic__skimage__sr_x4.json"]


def test_bad_images_exit_nonzero_unless_skip_bad(shared_data, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "bird.png").write_bytes((shared_data / "benchmark/Set5/HR/bird.png").read_bytes())
    args = ["evaluate", "--model", "bicubic", "--dataset", str(tmp_path), "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1
    (row,) = json.loads(res.stdout)
    assert row["n_images"] == 1 and row["n_skipped"] == 1
    assert "broken.png" in res.stderr
    assert CliRunner().invoke(main, [*args, "--skip-bad"]).exit_code == 0


def test_missing_weights_and_unknown_names_are_one_line_errors(shared_data):
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--protocol", "pirm"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: Ma's score") and "NRQM_model.mat" in res.stderr
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--metrics", "kid"])
    assert res.exit_code == 1 and "unknown metric 'kid'" in res.stderr
    # A known metric whose weights are missing says which file and where it goes, in one line.
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "skimage", "--metrics", "fid"])
    assert res.exit_code == 1 and "weights-inception-2015-12-05-6726825d.pth" in res.stderr
    assert res.stderr.count("\n") == 1
    # ../shared/data holds no PIRM validation set.
    assert not any((shared_data / rel).exists() for rel in ("PIRM_val", "pirm-val", "PIRM", "benchmark/PIRM_val"))
    res = CliRunner().invoke(main, ["evaluate", "--model", "bicubic", "--dataset", "pirm-val",
                                    "--data-root", str(shared_data)])
    assert res.exit_code == 1 and "dataset 'pirm-val' not found" in res.stderr


def test_datasets_verify_exit_code(shared_data):
    res = CliRunner().invoke(main, ["datasets", "verify", str(shared_data / "benchmark/Set5")])
    assert res.exit_code == 0 and "identical, 25 files" in res.stdout
    res = CliRunner().invoke(main, ["datasets", "verify", str(shared_data / "niqe/live_examples")])
    assert res.exit_code == 1 and "matches no known copy" in res.stdout


def test_an_interrupted_command_exits_130_not_1(monkeypatch):
    # `srbench check` exits 1 for drift: Ctrl-C in the middle of it must not read as drift in a CI script.
    import srbench.metrics

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(srbench.metrics, "all_metrics", interrupted)
    res = CliRunner().invoke(main, ["metrics"])
    assert res.exit_code == 130 and "interrupted" in res.output and "Traceback" not in res.output


def test_a_training_stopped_by_ctrl_c_exits_130_with_what_it_saved(monkeypatch, tmp_path):
    # the trainer saves its state first and says so: an interrupt all the same, not an error's 1
    from srbench.train import Trainer, TrainingInterrupted

    def stopped(self, resume=False, on_iteration=None):
        raise TrainingInterrupted(f"interrupted at iteration 3; saved {tmp_path}/psnr/state.pt, continue with --resume")

    monkeypatch.setattr(Trainer, "run", stopped)
    res = CliRunner().invoke(main, ["train", "--variant", "esrgan", "--stage", "psnr", "--preset", "smoke",
                                    "--out", str(tmp_path), "--device", "cpu"])
    assert res.exit_code == 130, res.output
    assert "error: interrupted at iteration 3; saved" in res.output and "Traceback" not in res.output


def test_a_model_that_is_nothing_srbench_knows_is_named_with_what_it_could_be(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path / "nonexist.pth"), "--dataset", "skimage"])
    assert res.exit_code == 1 and "nonexist.pth: no such file or folder" in res.output
    assert "rrdb23" in res.output and "checkpoint file or a folder of SR images" in res.output
