"""The README's main command, ``skavc demo``, on a small run: every capability prints a result."""

import re

from skavc.cli import main


def test_demo_prints_every_capability(capsys):
    assert main(["demo", "--n-clips", "24", "--epochs", "3"]) == 0
    printed = capsys.readouterr().out
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
