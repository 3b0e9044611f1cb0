"""deploy/Dockerfile: slim, multi-stage, non-root, and its HEALTHCHECK really probes /healthz."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy.manifests import dockerfile_instructions, exec_form
from tests.deploy.tools import ROOT, free_port


def _args(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_instructions() if kw == keyword]


def _stages() -> list[str]:
    """The image of every FROM, with the `PYTHON_IMAGE` build arg resolved."""
    default = {name: value for name, _, value in (rest.partition("=") for rest in _args("ARG"))}
    images = []
    for rest in _args("FROM"):
        image = rest.split()[0]
        if image.startswith("${") and image.endswith("}"):
            image = default[image[2:-1]]
        images.append(image)
    return images


def test_slim_multi_stage() -> None:
    """At least two stages, every one from python:3.11-slim, the last copying from the build."""
    stages = _stages()
    assert len(stages) >= 2
    assert set(stages) == {"python:3.11-slim"}
    assert any(rest.startswith("--from=build ") for rest in _args("COPY"))


def test_installs_the_package() -> None:
    """The build stage runs `pip install .` on pyproject.toml, README.md and app/ (all present)."""
    assert any("pip install ." in rest for rest in _args("RUN"))
    copied = [rest.split()[:-1] for rest in _args("COPY") if not rest.startswith("--from")]
    sources = {source for sources in copied for source in sources}
    assert sources == {"pyproject.toml", "README.md", "app"}
    assert all((ROOT / source).exists() for source in sources)


def test_runs_as_non_root() -> None:
    """The final USER is a numeric, non-zero uid (so Kubernetes can verify runAsNonRoot)."""
    user = _args("USER")[-1].split(":")[0]
    assert user.isdigit()
    assert int(user) != 0


def test_entrypoint_cmd_and_port() -> None:
    """ENTRYPOINT hookstream, CMD worker, port 6066 exposed."""
    assert exec_form(_args("ENTRYPOINT")[-1]) == ["hookstream"]
    assert exec_form(_args("CMD")[-1]) == ["worker"]
    assert _args("EXPOSE") == ["6066"]


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    """The build context leaves out the venv, git, local state, secrets and .env files."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".hookstream-data", "deploy/secrets", "**/.env"} <= ignored


def _healthcheck_command() -> str:
    (healthcheck,) = _args("HEALTHCHECK")
    options, marker, command = healthcheck.partition("CMD ")
    assert marker, "HEALTHCHECK needs a CMD"
    assert all(option.startswith("--") for option in options.split())
    return command


@contextmanager
def _server(status: int) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering /healthz with `status` (404 elsewhere)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_healthcheck(port: int, tmp_path: Path) -> int:
    """Run the HEALTHCHECK command as the image would (sh -c, `python` on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOOKSTREAM_WEB_PORT": str(port)}
    done = subprocess.run(
        ["sh", "-c", _healthcheck_command()], env=env, capture_output=True, timeout=30, check=False
    )
    return done.returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_probes_healthz(status: int, healthy: bool, tmp_path: Path) -> None:
    """The HEALTHCHECK command passes on 200 from /healthz at HOOKSTREAM_WEB_PORT, fails on 503."""
    command = _healthcheck_command()
    assert "urllib" in command
    assert "curl" not in command
    with _server(status) as port:
        assert (_run_healthcheck(port, tmp_path) == 0) is healthy


def test_healthcheck_fails_when_nothing_listens(tmp_path: Path) -> None:
    """With nothing on the port, the HEALTHCHECK command fails (within its own timeout)."""
    assert _run_healthcheck(free_port(), tmp_path) != 0
