"""A reader's path through the study in a real browser (issue 32): JupyterLab started as `make lab` starts it (the
repository root, the project's kernel) on a loopback port, headless Chromium opens ``notebooks/00_explore.ipynb``,
runs all cells from the Run menu, moves the strength slider and checks that the explorer's image changed.
Screenshots of what it saw go into the test's temporary folder (their paths are printed).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser``, which ``make test`` runs) and selenium (a dev
dependency); it skips with one line only where no browser is installed.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_lab import ROOT, free_port

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def start_lab(tmp_path: Path, port: int, token: str) -> subprocess.Popen:
    """JupyterLab with `make lab`'s root and flags (read from the Makefile's own command), in a private config."""
    make = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--ServerApp.root_dir=" + str(ROOT) in make, make  # the study's root, not notebooks/ (issue 32)
    env = {**os.environ, "JUPYTER_PATH": str(ROOT / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "OMP_NUM_THREADS": "1"}
    env.pop("WAE_PROGRESS", None)  # a reader's kernel: widgets, not make's text bars
    # autosave off: a Run All that outlasts JupyterLab's 120 s autosave would write outputs into the committed source
    settings = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           "--ServerApp.port_retries=0", "--allow-root"]
    return subprocess.Popen(cmd, env=env, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value is not None and value is not False and (not hasattr(value, "__len__") or len(value)):
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_explorer_runs_all_and_the_slider_redraws_in_chromium(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium/chromedriver on this machine: `make browser` installs them (Debian, as root)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: run `make setup`")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from wae_lib.data.build_sets import prepare_all
    from wae_lib.data.options import PrepConfig

    prepare_all(None, ROOT / "data" / "processed" / "sample", PrepConfig(), progress=False)  # `make data`
    source = (ROOT / "notebooks" / "00_explore.ipynb").read_bytes()
    port, token = free_port(), secrets.token_hex(16)
    server = start_lab(tmp_path, port, token)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800",
                 "--disable-gpu"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    shots = []

    def shot(name: str) -> None:
        path = tmp_path / f"{len(shots):02d}_{name}.png"
        driver.save_screenshot(str(path))
        shots.append(path)

    def output_text() -> str:
        return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))

    def frame() -> np.ndarray | None:
        """The explorer's image widget as the browser paints it (RGB pixels), None before it has an image."""
        imgs = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-image")
        if not imgs or not imgs[0].get_attribute("src") or imgs[0].size["height"] < 100:
            return None
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", imgs[0])
        return np.asarray(Image.open(io.BytesIO(imgs[0].screenshot_as_png)).convert("RGB"), dtype=float)

    try:
        url = f"http://127.0.0.1:{port}/lab/tree/notebooks/00_explore.ipynb?reset&token={token}"
        wait_for(lambda: server.poll() is None and _answers(url), 90, "JupyterLab to answer")
        driver.get(url)
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 90, "the notebook to open")
        wait_for(lambda: "Idle" in _kernel_status(driver, By), 120, "the kernel to start")
        shot("opened")
        _menu(driver, By, "Run", "Run All Cells")
        # the live cell draws the frame into an image widget once every cell above it ran
        def frame_or_error():
            text = output_text()
            assert "Traceback" not in text and not re.search(r"\w+Error\b", text), \
                "Run All stopped on an error:\n" + text[-2000:]
            return frame()

        wait_for(frame_or_error, 300, "the explorer's image widget (Run All)", poll=1)
        wait_for(lambda: "Idle" in _kernel_status(driver, By), 120, "the kernel to finish Run All")
        time.sleep(1)
        before = frame()
        text = output_text()
        shot("run_all")
        assert "Traceback" not in text and "Error" not in text, text[-3000:]
        assert "held-out faces" in text and "working directory:" in text, text[-3000:]
        slider = next(s for s in driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
                      if "strength" in s.text)
        readout = slider.find_element(By.CSS_SELECTOR, ".widget-readout")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", readout)
        readout.click()
        readout.send_keys(Keys.CONTROL, "a")
        readout.send_keys("0" + Keys.ENTER)  # strength 1 -> 0: the content image's own style (a reconstruction)
        assert re.search(r"strength\s*0(\.00)?\b", slider.text), slider.text

        def redrawn():
            now = frame()
            return now is not None and now.shape == before.shape and np.abs(now - before).mean() > 2.0

        wait_for(redrawn, 120, "the image to redraw with strength 0", poll=1)
        wait_for(lambda: "Idle" in _kernel_status(driver, By), 60, "the kernel to finish the redraw")
        time.sleep(1)
        after = frame()
        shot("strength_0")
        diff = np.abs(after - before).mean()
        print(f"mean |pixel change| of the explorer's image after strength 1 -> 0: {diff:.1f} (of 255)")
        assert diff > 2.0
        assert (ROOT / "notebooks" / "00_explore.ipynb").read_bytes() == source, "the run saved into the source"
    finally:
        print("screenshots:", *shots, sep="\n  ")
        driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def _kernel_status(driver, By) -> str:
    """The notebook toolbar's kernel status (JupyterLab 4: the circle's title, "Kernel status: Idle")."""
    found = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator, .jp-KernelStatus")
    return " ".join((e.get_attribute("data-status") or "") + " " + (e.get_attribute("title") or "") + " " + e.text
                    for e in found).replace("idle", "Idle")


def _menu(driver, By, top: str, item: str) -> None:
    """Click the menu bar's ``top`` menu, then its ``item``, as a reader does."""
    bar = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == top)
    bar.click()
    entry = wait_for(lambda: next((e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
                                   if e.text == item), None), 10, f"menu item {top} > {item}")
    entry.click()
