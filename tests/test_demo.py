"""The README's main command, ``skavc demo``, on a small run: every capability prints a result."""

import contextlib
import io
import re

import pytest

from skavc.cli import main


@pytest.fixture(scope="module")
def printed():
    """What a small ``skavc demo`` prints, run once for the tests below."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--n-clips", "24", "--epochs", "3"]) == 0
    return out.getvalue()


def test_demo_prints_every_capability(printed):
    for line in ("audio -> visual", "visual -> audio", "embedding dimension 128, audio at 16000 Hz",
                 "sync (training-free)", "localisation (training-free)", "instance matching",
                 "zero-shot (no fit)", "fitted with captions", "described: Expected:",
                 "separation guided by the target's frames"):
        assert line in printed, line
    # Sync and localisation on generated clips are near-perfect at any fit size (both training-free).
    within = float(re.search(r"within 0\.1 s (\d\.\d+)", printed).group(1))
    assert within >= 0.9
    located = float(re.search(r"cIoU >= 0\.5 (\d\.\d+)", printed).group(1))
    assert located >= 0.5


def test_demo_prints_results_only_and_aligns_its_stage_table(printed):
    """As the README's sample output shows it: no training log (``--verbose 1`` asks for one), and
    the stage table's seconds in one column however long the stage names get."""
    assert "[AVCorrespondence]" not in printed and not re.search(r"epoch \d+: loss", printed)
    table = printed[printed.index("\nstage") + 1:].splitlines()
    assert len(table) > 5 and table[0].split() == ["stage", "seconds"]
    assert len({len(line) for line in table}) == 1, table  # right-aligned: every line as wide as the header
    for line in table[1:]:
        float(line[-10:])  # the seconds, in the last ten characters
