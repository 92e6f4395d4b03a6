"""Every shipped config file builds its model (flat keys routed to their owners), and
every search space names only keys of its model."""

from pathlib import Path

import pytest

from seqrec.config import load_toml, route_keys
from seqrec.models import get_model_class
from seqrec.tuning import load_space

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FILES = sorted(CONFIGS.glob("*/*.toml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_is_valid(path):
    cls = get_model_class(path.parent.name)
    if path.stem.startswith("space"):
        route_keys(dict.fromkeys(load_space(path)), cls.config_owners(), cls.name)
    else:
        values = load_toml(path)
        assert values.pop("model", cls.name) == cls.name
        model = cls(values)
        for key, value in values.items():  # each key reached its owner unchanged
            cfg = model.config
            got = getattr(cfg, key) if hasattr(cfg, key) else model.training_keys[key]
            assert got in (value, tuple(value) if isinstance(value, list) else value), key


NEIGHBOURHOOD = ["markov", "sr", "ar", "itemknn", "sknn", "v-sknn", "vmis-knn", "stan"]


@pytest.mark.parametrize("name", NEIGHBOURHOOD)
def test_every_neighbourhood_and_rule_model_ships_a_search_space(name):
    path = CONFIGS / name / "space.toml"
    assert path.is_file(), f"{path} is missing (seqrec tune needs one per model)"
    assert load_space(path)  # a valid, non-empty space; its keys are checked above
