"""``sfbench report [serve]``: settings from the composed config, the build, and an optional localhost server."""

from __future__ import annotations

import functools
import http.server
import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sfbench.core.errors import InvalidConfig
from sfbench.report.site.build import ReportSettings, build_site

log = logging.getLogger(__name__)


def settings_from_config(cfg: DictConfig) -> ReportSettings:
    """:class:`ReportSettings` from ``configs/report.yaml`` composed with the command's overrides."""
    r = cfg.report
    try:
        max_copy_mb = float(r.max_copy_mb)
    except (TypeError, ValueError):
        raise InvalidConfig(f"report.max_copy_mb={r.max_copy_mb!r}: expected a number of MB") from None
    policies = OmegaConf.to_container(r.claims_policies) if r.claims_policies is not None else {}
    if not isinstance(policies, dict):
        raise InvalidConfig(f"report.claims_policies={policies!r}: expected a mapping paper name -> policy")
    return ReportSettings(
        results_dir=Path(str(cfg.results_dir)),
        output_dir=None if r.output_dir is None else Path(str(r.output_dir)),
        videos=str(r.videos), max_copy_mb=max_copy_mb, claims_protocol=str(r.claims_protocol),
        claims_baseline=str(r.claims_baseline), claims_policies={str(k): str(v) for k, v in policies.items()},
    )


def _port(value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise InvalidConfig(f"report.port={value!r}: expected a port number") from None
    if not 0 <= port <= 65535:
        raise InvalidConfig(f"report.port={port}: expected 0-65535")
    return port


def run_report(cfg: DictConfig, *, serve: bool = False, announce: Callable[[str], None] = log.info) -> Path:
    """Build the site; with ``serve``, then serve its folder on ``report.host:report.port`` until Ctrl-C."""
    settings = settings_from_config(cfg)
    port = _port(cfg.report.port) if serve else 0
    index = build_site(settings)
    announce(f"report: {index}  (open it from file://, or: sfbench report serve)")
    if serve:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(settings.out))
        with http.server.ThreadingHTTPServer((str(cfg.report.host), port), handler) as server:
            host, bound = server.server_address[:2]
            announce(f"serving {settings.out} at http://{host}:{bound}/  (Ctrl-C stops)")
            server.serve_forever()
    return index
