"""--error-file: the one-line reason of a failed command also lands in a file (what the Scipion plugin shows as
the run's error), whichever stage refused; a successful command writes nothing there."""

import csv

import pytest

from cryodiffseg.cli import main


def _points(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "z"])
        writer.writerows(rows)
    return str(path)


@pytest.mark.parametrize("argv, fragment", [
    (["segment", "missing.mrc", "--model", "no-model", "--out", "out"], "Model folder not found"),  # the command
    (["segment", "missing.mrc"], "the following arguments are required: --model, --out"),  # the sub-command's parser
    (["segment", "t.mrc", "--model", "m", "--out", "o", "--threshold", "2"], "--threshold"),  # an option's range
])
def test_a_refusal_writes_the_line_it_prints_to_the_error_file(tmp_path, monkeypatch, capsys, argv, fragment):
    monkeypatch.chdir(tmp_path)
    error_file = tmp_path / "reason.txt"
    try:
        status = main(["--error-file", str(error_file), *argv])
    except SystemExit as stopped:  # argparse's refusals exit from parsing
        status = stopped.code
    assert status == 2
    printed = capsys.readouterr().err.strip().splitlines()[-1]
    assert fragment in printed
    assert error_file.read_text() == printed + "\n"


def test_a_successful_command_writes_no_error_file(tmp_path, capsys):
    error_file = tmp_path / "reason.txt"
    truth = _points(tmp_path / "truth.csv", [(1, 2, 3)])
    status = main([f"--error-file={error_file}", "evaluate", "--points", truth, "--truth-points", truth,
                   "--radius", "2"])
    assert status == 0
    assert not error_file.exists()


def test_an_unexpected_exception_leaves_its_gist_in_the_error_file_and_still_raises(tmp_path, monkeypatch):
    from cryodiffseg.cli import evaluate

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(evaluate, "run", broken)
    error_file = tmp_path / "reason.txt"
    with pytest.raises(ZeroDivisionError):
        main(["--error-file", str(error_file), "evaluate", "--points", "p.csv", "--truth-points", "t.csv"])
    assert error_file.read_text() == ("cryodiffseg evaluate: internal error (ZeroDivisionError: division by zero); "
                                      "the log holds the traceback\n")
