"""What a dataset is under its options: input shape, classes, training examples, task; and
whether a run augments it. Read from the catalogue (lth.core.parts.DATASETS) without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lth.core import parts


def dataset_facts(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A dataset's input shape, classes and training-set size under its options: the registered
    facts, or those its `facts` function derives from the options (a modulus, a dimension)."""
    part = parts.DATASETS[name]
    merged = {**part.info.get("options", {}), **(options or {})}
    facts = {"input_shape": tuple(part.info.get("input_shape", ())), "num_classes": part.info.get("num_classes"),
             "train_size": part.info.get("train_size")}
    if "facts" in part.info:
        facts.update(part.facts(merged))
    facts["input_shape"] = tuple(facts["input_shape"])
    return facts


def input_shape(dataset: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape of one example of a dataset's settings ({name, options, ...})."""
    return dataset_facts(dataset["name"], dataset["options"])["input_shape"]


def num_classes(dataset: Mapping[str, Any]) -> int:
    return dataset_facts(dataset["name"], dataset["options"])["num_classes"]


def augments(training: Mapping[str, Any], dataset: str) -> bool:
    """Crop/flip augmentation on `dataset`: as configured, else the dataset's default."""
    return parts.DATASETS[dataset].augment if training["augment"] is None else training["augment"]
