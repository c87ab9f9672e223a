"""Drive the notebooks in a real JupyterLab, in headless Chromium, as a student would.

Used by tests/test_lab_browser.py. ``LabServer`` starts ``jupyter lab`` on a free port in a
temporary folder holding copies of the notebooks, with its own config, settings and workspace
folders (JupyterLab's news/announcements popup is switched off there, and notebooks show every
cell in the page), VRNKIT_MODE=quick and VRNKIT_NOTEBOOK_SMOKE=1 for the kernels and no
MPLBACKEND (inline plots). The user's own Jupyter settings are neither read nor written.

The browser is Debian's Chromium (/usr/bin/chromium) driven by Playwright, with the flags of
tests/browser_check.py (WebGL through SwiftShader); Playwright's own browsers are never used.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import CHROMIUM_FLAGS, find_chromium  # noqa: E402  (the flags that work here)

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "out" / "browser"  # screenshots a person can look at (out/ is git-ignored)
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"  # the "news" popup of JupyterLab 4


def launch_args() -> list[str]:
    """browser_check's Chromium flags, less the headless switch (Playwright sets its own)."""
    return [f for f in CHROMIUM_FLAGS if not f.startswith("--headless")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.5):
    """Call ``condition()`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class LabServer:
    """A JupyterLab server of our own, on copies of ``notebooks``; use as a context manager."""

    def __init__(self, notebooks, *, startup_timeout: float = 120):
        self.notebooks = [Path(p) for p in notebooks]
        self.startup_timeout = startup_timeout
        self.token = os.urandom(12).hex()
        self.tmp = Path(tempfile.mkdtemp(prefix="vrnkit-lab-"))
        self.root = self.tmp / "notebooks"  # the notebooks run here: ROOT of their setup cell is "."
        self.proc: subprocess.Popen | None = None
        self.port = None
        self.log = self.tmp / "jupyter-lab.log"

    # -- set-up -----------------------------------------------------------------------------
    def _environment(self) -> dict:
        cfg, settings = self.tmp / "config", self.tmp / "settings"
        (cfg / "labconfig").mkdir(parents=True)
        (cfg / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {ANNOUNCEMENTS: True}}))
        tracker = settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        # Every cell in the page (no windowing), so that run-all can be followed cell by cell.
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        env = dict(os.environ)
        for k in ("MPLBACKEND", "VRNKIT_DATA", "VRNKIT_PHOTO", "VRNKIT_REAL_DATA", "JUPYTER_PATH"):
            env.pop(k, None)  # MPLBACKEND=Agg would hide the kernels' inline plots
        env.update(VRNKIT_MODE="quick", VRNKIT_NOTEBOOK_SMOKE="1",
                   JUPYTER_CONFIG_DIR=str(cfg), JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"), IPYTHONDIR=str(self.tmp / "ipython"),
                   # the notebooks' copies are outside the checkout: let the kernels find vrnkit anyway
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
        return env

    def start(self) -> "LabServer":
        self.root.mkdir(parents=True)
        for nb in self.notebooks:
            shutil.copy2(nb, self.root / nb.name)
        env = self._environment()
        for attempt in range(3):  # a free port can be taken between choosing and binding it
            self.port = free_port()
            cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.token={self.token}",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                   f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_until(self._ready, timeout=self.startup_timeout, what="JupyterLab to start")
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {self.proc.returncode}:\n{self.log_tail()}")
        try:
            self.api("GET", "/api/status")
            return True
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # -- use --------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str, workspace: str) -> str:
        """The notebook in a workspace of its own: no tab of an earlier test is restored."""
        return f"{self.base}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_state(self, notebook: str) -> str | None:
        """The execution state ('idle', 'busy', 'starting') of the notebook's kernel, None without one."""
        for s in self.api("GET", "/api/sessions"):
            if s.get("path") == notebook and s.get("kernel"):
                return s["kernel"].get("execution_state")
        return None

    def shutdown_kernels(self) -> None:
        """End every session and kernel (each test's notebook gets a fresh kernel)."""
        try:
            for s in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{s['id']}", timeout=30)
            for k in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{k['id']}", timeout=30)
        except Exception:
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.shutdown_kernels()
            family = _descendants(self.proc.pid)  # kernels run in sessions of their own
            self.proc.terminate()  # SIGTERM: Jupyter shuts its kernels down and exits
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            for pid in family:  # whatever of its family is still there (they were ours)
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------------------------
# In the page

PROMPTS = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
                  .map(e => e.textContent.trim())"""


def open_notebook(page, server: LabServer, notebook: str, *, timeout: float = 120) -> None:
    """Open ``notebook`` in a fresh workspace and wait for its cells and an idle kernel."""
    page.goto(server.url(notebook, workspace=re.sub(r"\W", "-", Path(notebook).stem)), timeout=timeout * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=timeout * 1000)
    wait_until(lambda: server.kernel_state(notebook) == "idle", timeout=timeout, what=f"{notebook}'s kernel")


def run_all(page, server: LabServer, notebook: str, *, timeout: float = 600) -> float:
    """Run > Run All Cells, then wait until every cell has run and the kernel is idle -> seconds.

    Raises AssertionError with the error outputs if run-all stopped at an error.
    """
    t0 = time.monotonic()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-hidden)", has_text=re.compile(r"^Run All Cells")).click()

    def finished():
        prompts = page.evaluate(PROMPTS)
        if not prompts or any("*" in p for p in prompts) or not any(re.search(r"\d", p) for p in prompts):
            return None  # still running (or not yet started: the committed notebooks have no counts)
        return prompts

    prompts = wait_until(finished, timeout=timeout, what=f"{notebook} to run")
    errors = page.evaluate("""() => [...document.querySelectorAll(
        '.jp-NotebookPanel .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(e => e.innerText).filter(t => /Traceback|Error/.test(t))""")
    not_run = [i for i, p in enumerate(prompts) if not re.fullmatch(r"\[\d+\]:", p)]
    assert not not_run and not errors, (f"{notebook}: run-all stopped; code cells not run: {not_run}; "
                                        f"errors:\n" + "\n".join(e[-3000:] for e in errors))
    wait_until(lambda: server.kernel_state(notebook) == "idle", timeout=timeout, what=f"{notebook}'s kernel to idle")
    return time.monotonic() - t0


def shot(locator, name: str, **kwargs) -> tuple[Path, np.ndarray]:
    """Screenshot of an element into out/browser/NAME.png -> (path, RGB array)."""
    import io

    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    png = locator.screenshot(path=str(path), animations="disabled", **kwargs)
    return path, np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def foreground(rgb: np.ndarray, *, threshold: float = 40) -> float:
    """Share of pixels unlike the background (the median of the border), as browser_check measures."""
    img = rgb.astype(np.float32)
    background = np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]), axis=0)
    return float((np.abs(img - background).sum(-1) > threshold).mean())


def changed(a: np.ndarray, b: np.ndarray, *, threshold: float = 30) -> float:
    """Share of pixels that differ between two pictures (1.0 when their sizes differ)."""
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(-1) > threshold).mean())


__all__ = ["LabServer", "ROOT", "SHOTS", "changed", "find_chromium", "foreground", "launch_args", "open_notebook",
           "run_all", "shot", "wait_until"]
