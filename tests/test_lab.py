"""JupyterLab is part of the environment (`make lab`): a server started headless on a loopback port at the study's
root (as `make lab` starts it) lists the notebooks and the reports through its REST API and stops cleanly."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_study_root_and_runs_as_root():
    make = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"--ServerApp.root_dir={ROOT}" in make and "default_url=/lab/tree/notebooks" in make
    assert ("--allow-root" in make) == (os.geteuid() == 0)  # Jupyter refuses root without it


def test_jupyter_lab_serves_the_notebooks_with_the_project_kernel(tmp_path):
    pytest.importorskip("jupyterlab", reason="jupyterlab is a dependency (pyproject.toml): run `make setup`")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_PATH": str(ROOT / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           "--ServerApp.port_retries=0", "--allow-root"]  # CI containers run as root
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def get(path: str):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())

        deadline, contents = time.time() + 90, None
        while time.time() < deadline and server.poll() is None:
            try:
                contents = get("/api/contents/")
                break
            except OSError:
                time.sleep(0.5)
        assert contents is not None, f"JupyterLab did not answer: {server.poll()=}"
        # one root for the notebooks and what they made (issue 32: reports/ was "outside root contents directory")
        assert {"notebooks", "reports"} <= {c["name"] for c in contents["content"] if c["type"] == "directory"}
        listed = get("/api/contents/notebooks")["content"]
        names = sorted(c["name"] for c in listed if c["type"] == "notebook")
        assert names == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) and len(names) >= 8
        executed = get("/api/contents/reports/reference-shared-data-large")["content"]
        assert any(c["name"] == "index.md" for c in executed)
        kernels = get("/api/kernelspecs")["kernelspecs"]
        assert "python3" in kernels
        assert "--IPKernelApp.log_level=ERROR" in kernels["python3"]["spec"]["argv"]  # the project's kernel spec
        lab = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/lab",
                                                            headers={"Authorization": f"token {token}"}), timeout=5)
        assert lab.status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode is not None
