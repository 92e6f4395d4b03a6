"""Running the HTTP API under uvicorn: one process, or ``--workers N`` processes that
share a Redis session store (each builds its app from ``$SEQREC_SERVE_CONFIG``)."""

from __future__ import annotations

import gc
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from seqrec.errors import ConfigError, ModelFileError
from seqrec.serving.http.app import build_runtime, create_app
from seqrec.serving.http.config import ENV_CONFIG, ServeConfig
from seqrec.serving.http.protocol import H11_MAX_HEAD_BYTES

log = logging.getLogger("seqrec.serving")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def app_from_env() -> FastAPI:
    """Application factory of uvicorn worker processes (config in $SEQREC_SERVE_CONFIG)."""
    config = ServeConfig.from_env()
    tune_process(config)
    return create_app(build_runtime(config), config)


def tune_process(config: ServeConfig) -> None:
    """Per server process: torch threads (``--threads``), and no GC of the model."""
    import torch

    torch.set_num_threads(config.threads)
    gc.freeze()  # model and imports never need collecting: shorter GC pauses


def _uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    return {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": config.access_log,
        # requests uvicorn rejects unparsed get the JSON error body too
        "http": "seqrec.serving.http.protocol:JsonErrorProtocol",
        "h11_max_incomplete_event_size": H11_MAX_HEAD_BYTES,
    }


def serve(config: ServeConfig) -> int:
    """Run the server until interrupted (``seqrec serve``)."""
    import uvicorn

    if config.workers > 1 and config.store == "memory":
        raise ConfigError(
            "--workers > 1 needs a shared session store: add --store redis://host:port/db "
            "(in-memory sessions are per process)"
        )
    if config.api_key() is None and config.host not in LOOPBACK:
        log.warning(
            "serving on %s without an API key: anyone who can reach this address can "
            "use the API (use --api-key-env)",
            config.host,
        )
    if not (Path(config.model) / "config.json").is_file():
        raise ModelFileError(f"{config.model}: model directory not found (no config.json)")
    if config.workers == 1:
        runtime = build_runtime(config)
        if not runtime.ready():
            raise ConfigError(f"session store {config.store} does not answer")
        tune_process(config)
        uvicorn.run(create_app(runtime, config), **_uvicorn_options(config))
        return 0
    config = replace(config, model=str(Path(config.model).absolute()))
    os.environ[ENV_CONFIG] = config.to_json()
    with tempfile.TemporaryDirectory(prefix="seqrec-metrics-") as mdir:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", mdir)
        uvicorn.run(
            "seqrec.serving.http.server:app_from_env",
            factory=True,
            workers=config.workers,
            **_uvicorn_options(config),
        )
    return 0
