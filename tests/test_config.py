"""Strict configs: unknown keys and bad values are one-line errors."""

from dataclasses import dataclass
from typing import Literal

import pytest

from seqrec.config import build_config, config_to_dict, parse_overrides, parse_value
from seqrec.errors import ConfigError


@dataclass(frozen=True)
class Cfg:
    layers: tuple[int, ...] = (100,)
    lr: float = 0.1
    loss: Literal["a", "b"] = "a"
    flag: bool = False
    n: int = 3


def test_parse_value_toml_then_string():
    assert parse_value("0.2") == 0.2
    assert parse_value("true") is True
    assert parse_value("[480]") == [480]
    assert parse_value("bpr-max") == "bpr-max"
    assert parse_value('"quoted"') == "quoted"


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = [1, 2]", "c=x"]) == {"a": 1, "b": [1, 2], "c": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_build_config_types_and_coercion():
    cfg = build_config(Cfg, {"layers": [512, 512], "lr": 1, "loss": "b", "flag": True})
    assert cfg.layers == (512, 512) and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert config_to_dict(cfg)["layers"] == [512, 512]


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"lr_rate": 0.1}, "unknown config key 'lr_rate'.*did you mean 'lr'"),
        ({"loss": "c"}, "'c' is not one of"),
        ({"n": 1.5}, "expected an integer"),
        ({"n": True}, "expected an integer"),
        ({"lr": "fast"}, "expected a number"),
        ({"flag": 1}, "expected true or false"),
        ({"layers": 100}, "expected a list"),
    ],
)
def test_build_config_errors(values, pattern):
    with pytest.raises(ConfigError, match=pattern) as exc:
        build_config(Cfg, values)
    assert "\n" not in str(exc.value)


@dataclass(frozen=True)
class Other:
    rate: float = 0.1
    steps: int = 1


def test_route_keys_splits_by_owner_and_lists_every_owner_on_errors():
    from seqrec.config import route_keys

    parts = route_keys({"lr": 0.5, "rate": 0.2, "steps": 3}, {"model": Cfg, "train": Other})
    assert parts == {"model": {"lr": 0.5}, "train": {"rate": 0.2, "steps": 3}}
    assert route_keys({}, {"model": Cfg, "train": Other}) == {"model": {}, "train": {}}
    with pytest.raises(ConfigError, match=r"unknown config key 'stpes'.*did you mean 'steps'") as e:
        route_keys({"stpes": 1}, {"model": Cfg, "train": Other}, "m")
    assert "model: flag, layers, loss, lr, n; train: rate, steps" in str(e.value)


@pytest.mark.parametrize("loss", ["bce", "gbce"])
def test_target_column_losses_refused_for_gru4rec_at_construction(loss):
    """bce/gbce exist for padded-sequence models only: GRU4Rec refuses them when the
    model is built (before any data is read), naming the losses it supports."""
    from seqrec.models.gru4rec import GRU4Rec

    with pytest.raises(ConfigError, match=r"session-parallel.*cross-entropy, bpr-max"):
        GRU4Rec({"loss": loss})
