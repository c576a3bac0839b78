"""`setae report`: one self-contained HTML page that a headless browser displays with every picture."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess

import pytest

from setae.cli import cmd_eval, cmd_plot, cmd_report, main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--preset", "tiny", "--steps", "6", "--run-dir", str(run), "--no-progress"]) == 0
    cmd_eval(str(run), 40, 0, representation=False)
    cmd_plot(str(run), 4, 0)
    return cmd_report(str(run), baseline=False)


def test_report_embeds_every_picture_and_the_metrics(report):
    page = report.read_text()
    pictures = sorted((report.parent / "plots").glob("*.[pg][ni][gf]"))  # .png and .gif
    images = re.findall(r'src="data:image/(?:png|gif);base64,([^"]+)"', page)
    assert {p.name for p in pictures} >= {"reconstructions.png", "interpolation.gif", "traversal.png"}
    assert len(images) == len(pictures)
    from PIL import Image

    assert Image.open(report.parent / "plots/interpolation.gif").n_frames > 10, "an animation, not a still"
    assert sorted(base64.b64decode(i) for i in images) == sorted(p.read_bytes() for p in pictures)
    assert "chamfer" in page and "size_mae" in page and '"latent_dim": 8' in html.unescape(page)
    assert "http://" not in page and "https://" not in page, "nothing is fetched from the network"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_report_displays_in_headless_chromium_without_console_errors(report, tmp_path):
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = report.as_uri()
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=5000", "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert 'data-images-ok="yes"' in dom.stdout, "every <img> loaded with a non-zero width"
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1200,1600", f"--screenshot={shot}", url], capture_output=True, timeout=120
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "a screenshot with content"
