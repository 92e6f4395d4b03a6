"""Model registry: a plain dict from model name to class (the CLI and loaders use it;
evaluation and serving never import it at module level)."""

from __future__ import annotations

from pathlib import Path

from seqrec.errors import ConfigError, ModelFileError
from seqrec.models.base import Recommender, read_model_info
from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.bprmf import BPRMF
from seqrec.models.caser import Caser
from seqrec.models.fpmc import FPMC
from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.hybrid import GRU4RecVSKNN, Hybrid
from seqrec.models.itemknn import ItemKNN
from seqrec.models.narm import NARM
from seqrec.models.pop import Pop, SessionPop
from seqrec.models.rules import AR, SR, Markov
from seqrec.models.sasrec import SASRec
from seqrec.models.sknn import SKNN, VMISKNN, VSKNN
from seqrec.models.srgnn import SRGNN
from seqrec.models.stamp import STAMP
from seqrec.models.stan import STAN

MODELS: dict[str, type[Recommender]] = {
    Pop.name: Pop,
    SessionPop.name: SessionPop,
    GRU4Rec.name: GRU4Rec,
    FPMC.name: FPMC,
    SASRec.name: SASRec,
    BERT4Rec.name: BERT4Rec,
    BPRMF.name: BPRMF,
    Caser.name: Caser,
    NARM.name: NARM,
    SRGNN.name: SRGNN,
    STAMP.name: STAMP,
    Markov.name: Markov,
    SR.name: SR,
    AR.name: AR,
    ItemKNN.name: ItemKNN,
    SKNN.name: SKNN,
    VSKNN.name: VSKNN,
    VMISKNN.name: VMISKNN,
    STAN.name: STAN,
    Hybrid.name: Hybrid,
    GRU4RecVSKNN.name: GRU4RecVSKNN,
}


def get_model_class(name: str) -> type[Recommender]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None


def load_model(path: str | Path, device: str | None = None) -> Recommender:
    """Load any seqrec model directory, dispatching on the name in its config.json."""
    p = Path(path)
    name = read_model_info(p)["model"]
    if name not in MODELS:
        raise ModelFileError(
            f"{p / 'config.json'}: field 'model' is {name!r}, "
            f"not one of {', '.join(sorted(MODELS))}"
        )
    return MODELS[name].load(p, device=device)


__all__ = ["MODELS", "get_model_class", "load_model"]
