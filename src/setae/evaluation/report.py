"""`setae report RUN`: one self-contained HTML page per run — metrics beside the PCA baseline at the same
code size, every picture (embedded as data URIs), and the config. It opens from disk with no network."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from setae.fileio import write_text

# Metrics shown in the table, in order, with the direction that is better.
COLUMNS = [
    ("chamfer", "lower"),
    ("hungarian", "lower"),
    ("ospa", "lower"),
    ("size_acc", "higher"),
    ("size_mae", "lower"),
    ("probe_acc_100", "higher"),
    ("probe_acc_all", "higher"),
    ("kmeans_nmi", "higher"),
    ("kmeans_ari", "higher"),
    ("elbo", "higher"),
    ("neg_objective", "higher"),
    ("iwae_64", "higher"),
    ("gen_mmd", "lower"),
    ("gen_cov", "higher"),
    ("gen_1nna", "50% ideal"),
    ("recon_digit_acc", "higher"),
    ("samples_confident", "higher"),
    ("samples_confident_normal", "higher"),
    ("aggregate_kl", "lower"),
    ("interp_smoothness", "1 ideal"),
]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>setae report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0 1.5em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head>
<body data-images-ok="unknown">
<h1>setae report: {title}</h1>
<p>{summary}</p>
<h2>Test metrics</h2>
{table}
<h2>Pictures</h2>
{pictures}
<h2>Config</h2>
<pre>{config}</pre>
<script>
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const ok = images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
  document.body.dataset.imagesOk = ok ? "yes" : "no";
}});
</script>
</body></html>
"""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else html.escape(str(value))


def metrics_table(rows: dict[str, dict]) -> str:
    """An HTML table: one row per model name, one column per metric present in any row."""
    columns = [(key, better) for key, better in COLUMNS if any(key in r for r in rows.values())]
    head = "".join(f"<th>{key}<br><small>{better}</small></th>" for key, better in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_cell(r.get(key))}</td>" for key, _ in columns)
        + "</tr>"
        for name, r in rows.items()
    )
    return f'<div class="scroll"><table><tr><th>model</th>{head}</tr>{body}</table></div>'


def write_report(run: Path, baseline: dict | None = None) -> Path:
    """Write RUN/report.html from RUN's metrics.json, config.json, train_summary.json and plots/*.png;
    `baseline` (metrics of PCA at the same code size) becomes a second table row."""
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    summary_path = run / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    latent = config["model"]["latent_dim"]
    rows = {f"setae ({config['model']['encoder']} + {config['model']['decoder']})": metrics}
    if baseline is not None:
        rows[f"PCA-{latent} (linear baseline)"] = baseline
    pictures = "".join(
        f'<h3>{html.escape(p.stem.replace("_", " "))}</h3><img alt="{html.escape(p.stem)}" '
        f'src="data:image/{p.suffix[1:]};base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in sorted([*(run / "plots").glob("*.png"), *(run / "plots").glob("*.gif")])
    )
    text = (
        f"{summary.get('parameters', 0):,} parameters; trained "
        f"{summary.get('step', metrics.get('step'))} steps at {summary.get('sets_per_s', 0):.0f} sets/s "
        f"on {summary.get('device', '?')}; evaluated on "
        f"{metrics.get('num_sets')} {metrics.get('split', 'test')} sets."
    )
    page = PAGE.format(
        title=html.escape(run.name),
        summary=html.escape(text),
        table=metrics_table(rows),
        pictures=pictures,
        config=html.escape(json.dumps(config, indent=2)),
    )
    return write_text(run / "report.html", page)
