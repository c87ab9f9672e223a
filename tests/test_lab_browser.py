"""The notebooks in a real JupyterLab, in a real browser: do their widgets work for a student?

tests/test_notebooks.py runs the notebooks with nbclient, which checks their code but never their
widgets: a slider whose picture never changes, a k3d view that stays white or an upload button
that does nothing would all pass there. Here the notebooks run in JupyterLab (a server of our own,
on copies of the notebooks, see tests/lab_browser.py), driven in headless Chromium by Playwright:

* 02: Run > Run All Cells, then move the slice widget's slider with the keyboard: its picture changes;
* 04: Run All; every k3d view's WebGL canvas shows a mesh (enough pixels unlike the background);
* 07: Run All, then give the upload button a photo (scikit-image's astronaut as a JPEG): the Output
  under it says "Your photo: ..." and shows a picture of the reconstruction.

Screenshots go to out/browser/ (their paths are printed; on a failure, the whole page too).
Needs Playwright (the dev extra) and Debian's chromium, which .ci/run installs: without them
the test skips, except under CI=true, where it fails.
"""
import contextlib
import os
import re
import time

import pytest

from lab_browser import (ROOT, SHOTS, LabServer, changed, find_chromium, foreground, launch_args, open_notebook,
                         run_all, shot, wait_until)

NOTEBOOKS = ROOT / "notebooks"
VIEWPORT = {"width": 1400, "height": 1000}
# While screenshotting a k3d canvas, hide what k3d draws over it in HTML (menu, axis labels).
K3D_OVERLAYS = ".k3d-target > :not(canvas) { visibility: hidden !important; }"


def missing(message: str):
    """Skip on a developer's machine; under CI, where .ci/run installs everything, fail."""
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run installs it (Debian's chromium, and the dev extra through "
                    "`make install`), so CI must have it")
    pytest.skip(message)


def need_module(name: str, how: str):
    try:
        return __import__(name)
    except ImportError:
        missing(f"{name} is not installed ({how}); the JupyterLab browser test needs it")


@pytest.fixture(scope="module")
def lab():
    """(JupyterLab server, Chromium) shared by the tests of this file; both end even on failure."""
    need_module("jupyterlab", "pip install -e '.[notebooks]'")
    need_module("ipywidgets", "pip install -e '.[notebooks]'")
    need_module("playwright", "pip install -e '.[dev]'")
    chromium = find_chromium()
    if chromium is None:
        missing("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's pictures only
        old.unlink()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(LabServer(sorted(NOTEBOOKS.glob("*.ipynb"))))
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=chromium, args=launch_args(), headless=True)
        stack.callback(browser.close)
        yield server, browser


@contextlib.contextmanager
def notebook_page(lab, notebook: str):
    """A fresh browser tab on ``notebook`` (its kernel started); on failure the page is kept as a
    screenshot; afterwards the tab closes and every kernel is shut down."""
    server, browser = lab
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    try:
        open_notebook(page, server, notebook)
        yield page
    except BaseException as e:
        path = SHOTS / f"FAILED_{notebook.split('.')[0]}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
        print(f"\nfailure screenshot: {path}\n" + "\n".join(problems[-10:]) +
              f"\njupyter lab log (end):\n{server.log_tail(3000)}")
        raise e
    finally:
        with contextlib.suppress(Exception):
            context.close()
        server.shutdown_kernels()


def give_file(page, button, path) -> None:
    """Choose ``path`` with an upload button, as a person does: click, then pick the file in the dialog.

    ipywidgets 8's FileUpload keeps its <input type="file"> out of the page and clicks it from the
    button, so the file goes through Chromium's file chooser (Playwright answers it); an input in
    the page (other ipywidgets versions) gets the file directly."""
    inputs = button.locator("input[type=file]")
    if inputs.count():
        inputs.first.set_input_files(str(path))
        return
    with page.expect_file_chooser(timeout=30_000) as chooser:
        button.click()
    chooser.value.set_files(str(path))


def test_slice_slider_in_notebook_02_changes_the_picture(lab):
    notebook = "02_volumes_and_meshes.ipynb"
    with notebook_page(lab, notebook) as page:
        seconds = run_all(page, lab[0], notebook)
        print(f"\n{notebook}: run all in {seconds:.0f} s")
        # viz.slice_widget: VBox(ToggleButtons, IntSlider, Output with the slice as a PNG image)
        widget = page.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator(".widget-slider")).last
        slider = widget.locator(".widget-slider")
        picture = widget.locator(".widget-output img")
        handle, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
        picture.wait_for(state="visible")
        widget.scroll_into_view_if_needed()
        before_src = picture.get_attribute("src")
        before_path, before = shot(picture, "02_slice_before")
        start, top = int(float(handle.get_attribute("aria-valuenow"))), int(float(handle.get_attribute("aria-valuemax")))
        steps = 8
        key, target = ("ArrowRight", start + steps) if start + steps <= top else ("ArrowLeft", start - steps)
        handle.focus()
        for _ in range(steps):
            handle.press(key)
        wait_until(lambda: readout.inner_text().strip() == str(target), timeout=30,
                   what=f"the slider's readout to show {target}")

        # The kernel redraws on every step: wait for the last picture (a new one, then no more changes).
        state = {"src": None, "since": time.monotonic()}

        def settled():
            src = picture.get_attribute("src")
            if src != state["src"]:
                state.update(src=src, since=time.monotonic())
            return (src != before_src and lab[0].kernel_state(notebook) == "idle"
                    and time.monotonic() - state["since"] > 1.5)

        try:
            wait_until(settled, timeout=120, what="the slice picture to be redrawn")
        except TimeoutError as e:
            raise AssertionError(f"{e}; the slice widget shows:\n{widget.inner_text()}") from None
        after_path, after = shot(picture, "02_slice_after")
        whole, _ = shot(widget, "02_slice_widget_after")
        share = changed(before, after)
        print(f"slider {start} -> {target}: {share:.1%} of the picture's pixels changed\n"
              f"screenshots: {before_path}\n             {after_path}\n             {whole}")
        assert float(handle.get_attribute("aria-valuenow")) == target
        assert before.shape[0] > 100 and before.shape[1] > 100, before.shape
        assert foreground(before) > 0.05 and foreground(after) > 0.05, "the slice picture is blank"
        assert share > 0.01, f"moving the slider from {start} to {target} changed only {share:.2%} of the picture"


def test_k3d_views_in_notebook_04_are_not_blank(lab):
    notebook = "04_k3d_inspection.ipynb"
    with notebook_page(lab, notebook) as page:
        seconds = run_all(page, lab[0], notebook)
        print(f"\n{notebook}: run all in {seconds:.0f} s")
        canvases = page.locator(".jp-OutputArea-output .k3d-target canvas")
        wait_until(lambda: canvases.count() > 0, timeout=60, what="a k3d view")
        n = canvases.count()
        for i in range(n):
            canvas = canvases.nth(i)
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 200, f"k3d canvas {i} is tiny: {box}"
            result = {}

            def drawn():  # k3d loads and draws asynchronously: look until the mesh is there
                result["path"], rgb = shot(canvas, f"04_k3d_{i}", style=K3D_OVERLAYS)
                result["fg"], result["std"] = foreground(rgb), float(rgb.std())
                return result["fg"] > 0.03 and result["std"] > 10

            try:
                wait_until(drawn, timeout=90, what=f"k3d view {i} to show something", interval=1.0)
            finally:
                print(f"k3d view {i} of {n}: {result.get('fg', 0):.1%} of the canvas is not background, "
                      f"std {result.get('std', 0):.1f}: {result.get('path')}")


def test_upload_button_in_notebook_07_reconstructs_a_photo(lab, tmp_path):
    need_module("dlib", "the photos extra, pip install -e '.[photos]', part of `make test`")
    import numpy as np
    from PIL import Image
    from skimage.data import astronaut

    notebook = "07_your_own_photo.ipynb"
    photo = tmp_path / "astronaut_upload.jpg"
    Image.fromarray(astronaut()).save(photo, quality=92)
    with notebook_page(lab, notebook) as page:
        seconds = run_all(page, lab[0], notebook)
        print(f"\n{notebook}: run all in {seconds:.0f} s")
        # The contract: an ipywidgets.FileUpload (a .widget-upload button) and, below it, an Output that
        # gets a line starting "Your photo:" and a picture once a photo is chosen.
        button = page.locator(".jp-OutputArea-output .widget-upload")
        assert button.count() >= 1, f"{notebook} shows no upload button (an ipywidgets.FileUpload) after Run All"
        outputs = page.locator(".widget-output", has_text=re.compile(r"^Your photo:", re.M))
        assert outputs.count() == 0, "'Your photo:' is shown before any photo was uploaded"
        button.first.scroll_into_view_if_needed()
        t0 = time.monotonic()
        give_file(page, button.first, photo)
        errors = page.locator(".widget-output .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text=re.compile("Traceback|Error"))
        try:  # the kernel reads the photo, finds the face, runs the network, draws the picture
            wait_until(lambda: outputs.count() > 0 or (errors.count() > 0 and lab[0].kernel_state(notebook) == "idle"),
                       timeout=300, what="'Your photo:' in an Output")
            assert outputs.count() > 0, "the upload ended in an error"
        except (TimeoutError, AssertionError) as e:
            shown = page.evaluate("() => [...document.querySelectorAll('.widget-output')].map(e => e.innerText)")
            raise AssertionError(f"{e}; the upload button says {button.first.inner_text()!r} (its count of files), "
                                 f"the Outputs show {shown}") from None
        result = outputs.last
        picture = result.locator("img")
        idle = {"since": None}

        def pictured():  # the picture, or a kernel that has been idle for a while without one
            if picture.count() > 0:
                return True
            if lab[0].kernel_state(notebook) == "busy":
                idle["since"] = None
            elif idle["since"] is None:
                idle["since"] = time.monotonic()
            return idle["since"] is not None and time.monotonic() - idle["since"] > 10

        try:  # the picture follows the line (the figure is drawn after the reconstruction)
            wait_until(pictured, timeout=180, what="a picture under the 'Your photo:' line")
            assert picture.count() > 0, "the kernel is done, but no picture came"
            picture = picture.last
            picture.wait_for(state="visible", timeout=60_000)
        except Exception as e:
            raise AssertionError(f"{e}; the Output shows:\n{result.inner_text()}") from None
        took = time.monotonic() - t0
        wait_until(lambda: lab[0].kernel_state(notebook) == "idle", timeout=300, what="the kernel to finish")
        text = result.inner_text()
        result.scroll_into_view_if_needed()
        whole, _ = shot(result, "07_upload_output")
        pic_path, rgb = shot(picture, "07_upload_picture")
        line = next(ln for ln in text.splitlines() if ln.startswith("Your photo:"))
        print(f"upload -> {line!r} after {took:.0f} s\nscreenshots: {whole}\n             {pic_path}")
        width = picture.evaluate("img => img.naturalWidth")
        assert width > 100 and rgb.shape[0] > 100, (width, rgb.shape)
        assert foreground(rgb) > 0.05 and float(np.asarray(rgb).std()) > 20, "the picture is blank"
