"""Every setting of ``seqrec serve`` in one frozen dataclass (each a CLI option)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from seqrec.errors import ConfigError
from seqrec.serving.options import RuntimeOptions
from seqrec.serving.stores import DEFAULT_MAX_SESSIONS, DEFAULT_TTL

ENV_CONFIG = "SEQREC_SERVE_CONFIG"  # internal: the JSON config handed to worker processes


@dataclass(frozen=True, kw_only=True)
class ServeConfig(RuntimeOptions):
    """The runtime's options plus the server's; JSON-serialisable (uvicorn worker
    processes receive it in ``$SEQREC_SERVE_CONFIG``)."""

    model: str
    store: str = "memory"  # "memory" or a redis:// URL
    api_key_env: str | None = None  # name of the environment variable holding the key
    session_ttl: float = DEFAULT_TTL
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_store_bytes: int | None = None
    max_body_bytes: int = 64 * 1024
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int = 1  # torch threads per worker process
    offload: bool | None = None  # answer in a worker thread; None: only for Redis
    log_level: str = "info"
    access_log: bool = False
    install_sighup: bool = True
    fast_path: bool = True  # serve well-formed click events without FastAPI's machinery

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigError(f"--port must be an integer, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be a TCP port between 0 and 65535, got {self.port}")
        for name in ("workers", "threads", "max_body_bytes", "max_history"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")

    def api_key(self) -> str | None:
        """The API key (None: no key configured); an unset variable is an error."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(
                f"--api-key-env {self.api_key_env}: environment variable "
                f"{self.api_key_env} is not set or empty"
            )
        return key

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(ENV_CONFIG)
        if not raw:
            raise ConfigError(f"${ENV_CONFIG} is not set (start the server with `seqrec serve`)")
        return cls(**json.loads(raw))
