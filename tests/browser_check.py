"""Does a k3d snapshot of a face really render in a browser? Load it in headless Chromium and look.

``vrnkit.meshviz.save_k3d_html`` writes a self-contained HTML file that draws the mesh with WebGL.
Nothing in Python can tell whether that file shows a face: only a browser can. This script
builds a SynthFaces face mesh (sample -> slab -> volume -> marching cubes -> colours from the
crop), saves its k3d snapshot, opens it in headless Chromium (WebGL through SwiftShader, no GPU),
waits until k3d has loaded the scene, takes a screenshot and checks that the face is there:
enough non-background pixels, skin-coloured, centred.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``,
standard library only), so the script waits in real time for k3d instead of guessing a
``--virtual-time-budget`` (k3d decodes its scene asynchronously, which virtual time does not
always wait for). Needs Debian's ``chromium`` package (``apt-get install -y chromium``).

    python tests/browser_check.py [--out DIR] [--preset cpu|paper]

prints what it measured and the screenshot's path; exit status 0 when the face is visible.
tests/test_viz.py runs it when Chromium is installed.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Flags for Chromium on a machine without a GPU, display or outside network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # WebGL on the CPU (SwiftShader): Chromium >= 137 no longer falls back to it silently.
                  "--enable-unsafe-swiftshader"]
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium executable, or None."""
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools protocol client over ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, chromium: str, *, window=(900, 700), flags=()):
        self.profile = tempfile.mkdtemp(prefix="vrnkit-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [chromium, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={self.profile}",
                f"--window-size={window[0]},{window[1]}", "--remote-debugging-pipe", "about:blank"]
        # The shell puts the pipe ends on the descriptors Chromium expects: 3 (read), 4 (write).
        cmd = 'exec "$@" 3<&{} 4>&{}'.format(to_browser_r, from_browser_w)
        self.proc = subprocess.Popen(["bash", "-c", cmd, "chromium", *args], pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, *, session: str | None = None, timeout: float = 60):
        """Send a command and wait for its result (events that arrive meanwhile are kept)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                    raise RuntimeError(f"Chromium closed the DevTools pipe; its last messages:\n{err}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# The page is ready when k3d's loader promise has resolved and its WebGL canvas exists.
K3D_READY = """(async () => {
  for (let i = 0; i < 600; i++) {
    if (typeof K3DInstance !== 'undefined' && K3DInstance && document.querySelector('canvas')) break;
    await new Promise(r => setTimeout(r, 100));
  }
  if (typeof K3DInstance === 'undefined' || !K3DInstance) return 'no K3DInstance';
  await K3DInstance;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  await new Promise(r => setTimeout(r, 500));
  return 'ready, canvases: ' + document.querySelectorAll('canvas').length;
})()"""


def screenshot(html, png, *, size=(900, 700), timeout: float = 90, chromium: str | None = None) -> dict:
    """Open ``html`` (a k3d snapshot) in headless Chromium, wait for k3d, save a PNG screenshot.

    Returns dict(png=path, state=what the page reported, console=messages, seconds=time taken).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found: apt-get install -y chromium (Debian)")
    t0 = time.monotonic()
    url = Path(html).resolve().as_uri()
    with DevTools(chromium, window=size) as dt:
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        dt.send("Runtime.enable", session=session)
        dt.send("Page.enable", session=session)
        dt.send("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                                                       "mobile": False}, session=session)
        dt.send("Page.navigate", {"url": url}, session=session)
        state = dt.send("Runtime.evaluate", {"expression": K3D_READY, "awaitPromise": True, "returnByValue": True},
                        session=session, timeout=timeout)
        state = state.get("result", {}).get("value", repr(state))
        shot = dt.send("Page.captureScreenshot", {"format": "png"}, session=session)
        console = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", []))
                   for e in dt.events if e.get("method") == "Runtime.consoleAPICalled"]
        console += [e["params"]["exceptionDetails"].get("text", "") + " " +
                    str(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
                    for e in dt.events if e.get("method") == "Runtime.exceptionThrown"]
    Path(png).write_bytes(base64.b64decode(shot["data"]))
    return dict(png=str(png), state=state, console=console, seconds=time.monotonic() - t0)


def face_snapshot(out, *, preset: str = "cpu", index: int = 3) -> dict:
    """A SynthFaces face as a coloured marching-cubes mesh in a k3d snapshot -> dict of paths and sizes."""
    from vrnkit.config import VolumeSpec
    from vrnkit.surface import sample_vertex_colours, volume_to_mesh
    from vrnkit.synthfaces.dataset import make_sample
    from vrnkit.meshviz import mesh_k3d, save_k3d_html
    from vrnkit.voxel import Slab, slab_to_volume

    spec = VolumeSpec.preset(preset)
    sample, meta = make_sample("synth-florence", index, spec=spec)  # a near-frontal face
    slab = Slab(sample["front"], sample["mask"], sample["back"], sample["affine"])
    vertices, faces = volume_to_mesh(slab_to_volume(slab, spec), spec)
    colours = sample_vertex_colours(vertices, sample["image"])
    plot = mesh_k3d(vertices, faces, colours=colours, menu_visibility=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    html = save_k3d_html(plot, out / "face_k3d.html")
    return dict(html=html, vertices=len(vertices), faces=len(faces), colours=colours, meta=meta)


def analyse(png, *, colours=None) -> dict:
    """How much of the screenshot is mesh: pixels unlike the (white) background, their bounding
    box, and (with the mesh's vertex colours) how close they are in colour to the face."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(np.float32)
    background = np.median(np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]), axis=0)
    fg = np.abs(img - background).sum(-1) > 40
    out = dict(shape=img.shape, background=background.tolist(), foreground=float(fg.mean()))
    if fg.any():
        ys, xs = np.nonzero(fg)
        H, W = fg.shape
        out["box"] = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
        out["centre"] = [float(xs.mean() / W), float(ys.mean() / H)]
        pix = img[fg]
        out["mean_colour"] = pix.mean(0).round(1).tolist()
        out["colourful"] = float((pix.max(1) - pix.min(1)).mean())  # grey ~ 0, skin ~ 40+
        if colours is not None:
            out["face_mean_colour"] = np.asarray(colours, np.float32).mean(0).round(1).tolist()
    return out


def face_is_visible(stats: dict) -> bool:
    """The face fills a good part of the view, near the middle, in colour (not a grey blob)."""
    return (stats["foreground"] > 0.08 and "centre" in stats
            and all(0.3 < c < 0.7 for c in stats["centre"]) and stats["colourful"] > 15)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="folder for the HTML and the screenshot (default: a new temp dir)")
    p.add_argument("--preset", default="cpu", choices=["cpu", "colab", "paper"])
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="vrnkit-browser-"))
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    face = face_snapshot(out, preset=args.preset)
    shot = screenshot(face["html"], out / "face_k3d.png", chromium=chromium)
    stats = analyse(shot["png"], colours=face["colours"])
    ok = face_is_visible(stats)
    print(json.dumps(dict(html=face["html"], png=shot["png"], state=shot["state"], seconds=round(shot["seconds"], 1),
                          vertices=face["vertices"], faces=face["faces"], console=shot["console"][-5:], **stats,
                          face_visible=ok), indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
