"""`setae report`: one self-contained HTML page that a headless browser displays with every picture."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from PIL import Image

from setae.cli import cmd_eval, cmd_plot, cmd_report, main
from setae.datasets.pointfile import save_point_sets
from setae.evaluation.plots import Frame, plot_reconstructions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--preset", "tiny", "--steps", "6", "--run-dir", str(run), "--no-progress"]) == 0
    cmd_eval(str(run), 40, 0, representation=False)
    cmd_plot(str(run), 4, 0)
    return cmd_report(str(run), baseline=False)


def embedded_images(report) -> dict[str, np.ndarray]:
    """Every <img> of report.html, by its alt text, decoded to RGB in [0, 1] (a GIF: its first frame)."""
    page = report.read_text()
    found = re.findall(r'<img alt="([^"]+)" src="data:image/(png|gif);base64,([^"]+)"', page)
    assert len(found) == page.count("<img"), "every <img> is an embedded PNG or GIF"
    images = {}
    for name, kind, data in found:
        raw = base64.b64decode(data)
        if kind == "png":
            images[name] = imread(io.BytesIO(raw))[..., :3]
        else:
            images[name] = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), dtype=np.float64) / 255
    return images


def ink(rgb: np.ndarray) -> float:
    """Fraction of pixels that are not near-white: points, curves, frames and text."""
    return float((rgb.min(-1) < 0.85).mean())


def coloured(rgb: np.ndarray) -> float:
    """Fraction of pixels with a colour: the drawn points and curves (frames, panes and text are black or
    grey, so an empty frame scores 0)."""
    return float((rgb.max(-1) - rgb.min(-1) > 0.2).mean())


def assert_every_picture_has_content(report) -> dict[str, np.ndarray]:
    images = embedded_images(report)
    assert images
    blank = {name: round(coloured(rgb), 5) for name, rgb in images.items() if coloured(rgb) < 0.001}
    assert blank == {}, "pictures whose plotting area has no drawn points or curves"
    return images


@pytest.fixture(scope="module")
def report_3d(tmp_path_factory):
    """A run on 3-D sets of 4 classes in coordinates [5, 15], standardised by the model."""
    folder = tmp_path_factory.mktemp("report3d")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 240).tolist()
    shapes = [
        lambda n: rng.normal(size=(n, 3)),
        lambda n: rng.uniform(-1, 1, (n, 1)) * np.ones(3),
        lambda n: rng.uniform(-1, 1, (n, 3)) * [1, 1, 0.1],
        lambda n: rng.uniform(-1, 1, (n, 3)),
    ]
    sets = [10 + 4 * np.clip(shapes[c](int(rng.integers(8, 30))), -1.2, 1.2) for c in labels]
    save_point_sets(folder / "points.npz", sets, labels)
    run = folder / "run"
    args = ["train", "--preset", "tiny", "--steps", "6", "--data", str(folder / "points.npz")]
    assert main([*args, "--normalize", "--run-dir", str(run), "--no-progress"]) == 0
    cmd_eval(str(run), 40, 0, representation=False)
    cmd_plot(str(run), 4, 0)
    return cmd_report(str(run), baseline=False), sets


def test_every_picture_in_the_report_has_content(report):
    images = assert_every_picture_has_content(report)
    assert {"reconstructions", "interpolation", "traversal", "training_curves"} <= set(images)


def test_3d_points_in_5_to_15_are_visible_in_the_report(report_3d, tmp_path):
    report, sets = report_3d
    images = assert_every_picture_has_content(report)
    assert {"reconstructions", "samples", "interpolations", "traversal", "training_curves"} <= set(images)
    # the same picture with the points taken away: the frames, titles and panes alone
    empty = [torch.zeros(0, 3)] * 4
    frame = Frame.fit([torch.as_tensor(s) for s in sets])
    plot_reconstructions(empty, empty, tmp_path / "empty.png", [0, 1, 2, 3], frame)
    frame_only = imread(tmp_path / "empty.png")[..., :3]
    assert coloured(frame_only) == 0
    drawn = images["reconstructions"]
    assert ink(drawn) > 1.3 * ink(frame_only), "well more ink than the frames' own"
    assert coloured(drawn) > 0.002


class Tables(HTMLParser):
    """The page's <table>s as lists of rows of cells, each cell its list of text pieces (a header cell
    "chamfer<br><small>lower</small>" gives ["chamfer", "lower"])."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[list[str]]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell = []
            self.tables[-1][-1].append(self.cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None and data.strip():
            self.cell.append(data.strip())


def metrics_rows(page: str) -> dict[str, dict[str, str]]:
    """The metrics table: {model name: {metric: cell text}}, keyed by the header cells' first text."""
    parser = Tables()
    parser.feed(page)
    assert len(parser.tables) == 1, "one table: the metrics"
    head, *body = parser.tables[0]
    keys = [cell[0] for cell in head]
    assert keys[0] == "model"
    return {row[0][0]: {k: " ".join(cell) for k, cell in zip(keys[1:], row[1:], strict=True)} for row in body}


def test_report_table_shows_the_runs_metrics(report):
    metrics = json.loads((report.parent / "metrics.json").read_text())
    rows = metrics_rows(report.read_text())
    assert len(rows) == 1 and next(iter(rows)).startswith("setae (")  # baseline=False: the run's row only
    row = next(iter(rows.values()))
    for key in ("chamfer", "hungarian", "ospa", "size_acc", "size_mae"):  # written to 4 significant digits
        assert float(row[key]) == pytest.approx(metrics[key], rel=1e-3), key


def test_report_embeds_every_picture_and_the_metrics(report):
    page = report.read_text()
    pictures = sorted((report.parent / "plots").glob("*.[pg][ni][gf]"))  # .png and .gif
    images = re.findall(r'src="data:image/(?:png|gif);base64,([^"]+)"', page)
    assert {p.name for p in pictures} >= {"reconstructions.png", "interpolation.gif", "traversal.png"}
    assert len(images) == len(pictures)
    from PIL import Image

    assert Image.open(report.parent / "plots/interpolation.gif").n_frames > 10, "an animation, not a still"
    assert sorted(base64.b64decode(i) for i in images) == sorted(p.read_bytes() for p in pictures)
    assert '"latent_dim": 8' in html.unescape(page)  # the config; the metrics: test_report_table_shows_...
    assert "http://" not in page and "https://" not in page, "nothing is fetched from the network"


# Appended to a copy of the report: each decoded <img> drawn on a canvas, and the fraction of its pixels with
# a colour (max − min channel > 0.2) written to <body data-coloured="f1,f2,...">.
PIXEL_PROBE = """<script>
window.addEventListener("load", () => {
  const shares = Array.from(document.images).map((img) => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let hits = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i], g = data[i + 1], b = data[i + 2];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 51) hits += 1;
    }
    return (hits / (canvas.width * canvas.height)).toFixed(5);
  });
  document.body.dataset.coloured = shares.join(",");
});
</script>
"""


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
    # What the browser decoded, read back from a canvas: every picture has coloured content (drawn points
    # and curves; an empty frame has only black and grey), the same test as `coloured` on the files.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PIXEL_PROBE + "</body>"))
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    shares = re.search(r'data-coloured="([^"]*)"', dom.stdout)
    assert shares, "the pixel probe ran"
    fractions = [float(v) for v in shares[1].split(",")]
    assert len(fractions) == report.read_text().count("<img")
    assert min(fractions) > 0.002, f"a picture without drawn content: {fractions}"
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1200,1600", f"--screenshot={shot}", url], capture_output=True, timeout=120
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, "a screenshot with content"
