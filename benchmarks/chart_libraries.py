"""The report's chart library, chosen by measurement: one page of a paid year's charts each way.

    uv run python -m benchmarks.chart_libraries uplot
    uv run --with matplotlib python -m benchmarks.chart_libraries matplotlib
    uv run --with plotly python -m benchmarks.chart_libraries plotly
    uv run --with altair --with vl-convert-python python -m benchmarks.chart_libraries altair

Each draws the same five charts a paid year's report holds, from the same synthetic figures
(a deterministic random walk): the total market cap (2 series of 2,920 points — a year in
3-hour buckets — and a daily derived series of 365), the top 10 coins (10 × 2,920), bitcoin's
dominance (2,920), a month's calls per day (30 bars, cumulative, budget and projection), and
runs per day by outcome (365 days × 3 stacked series). It prints, as one JSON line:

- `install_mb`: the bytes of the library's distribution and every distribution it requires,
  recursively (importlib.metadata's file lists; `uplot`: the vendored file);
- `import_s`, `build_s`, `rss_mb`: importing it, building and writing the page, the peak RSS
  of this process (VmHWM);
- `page_mb`: the page's size, everything inline (no network when opened);
- `load_ms`, `drawn_ms`: in headless Chromium (tests/browser.py, offline), the page's own
  clock from navigation start to the load event, and to the first animation frame at which
  every chart is drawn; the median of 5 loads in one browser;
- `requests`: what the page asked the network for (must be none but the file).

The figures in docs/report.md come from this script. It reports; it does not test (exit 0).
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from tests.browser import Chromium, chromium_path

ROOT = Path(__file__).resolve().parent.parent
UPLOT = ROOT / "mcap" / "vendor" / "uplot"
START = 1_767_225_600  # 2026-01-01T00:00:00Z
BUCKET_S = 3 * 3600
POINTS = 365 * 86400 // BUCKET_S  # 2,920
LOADS = 5


def figures() -> dict:
    """The same synthetic figures for every library."""
    rng = random.Random(7)
    xs = [START + k * BUCKET_S for k in range(POINTS)]
    days = [START + k * 86400 for k in range(365)]

    def walk(start: float, n: int = POINTS, step: float = 0.01) -> list[float]:
        value, out = start, []
        for _ in range(n):
            value *= math.exp(rng.gauss(0, step))
            out.append(round(value))
        return out

    top = {f"coin-{k}": walk(1.3e12 / (k + 1) ** 1.2) for k in range(10)}
    total = walk(2.6e12)
    return {
        "xs": xs,
        "days": days,
        "global": total,
        "collected": [round(v * 0.97) for v in total],
        "derived": walk(1.1e12, 365, 0.03),
        "top": top,
        "dominance": [round(100 * b / t, 2) for b, t in zip(top["coin-0"], total, strict=True)],
        "quota_days": days[:30],
        "quota": [rng.randint(1200, 1500) for _ in range(30)],
        "budget": 400_000,
        "runs": {name: [rng.randint(lo, hi) for _ in range(365)]
                 for name, lo, hi in (("ok", 40, 48), ("skipped", 0, 4), ("failed", 0, 2))},
    }  # fmt: skip


def cumulative(values: list[int]) -> list[int]:
    out, total = [], 0
    for value in values:
        total += value
        out.append(total)
    return out


# --- one page per library ------------------------------------------------------------------


def page_uplot(data: dict) -> str:
    script = (UPLOT / "uPlot.iife.min.js").read_text()
    style = (UPLOT / "uPlot.min.css").read_text()
    charts = [
        ("Total market cap", data["xs"], [data["global"], data["collected"]], False),
        ("Top 10", data["xs"], list(data["top"].values()), False),
        ("Dominance", data["xs"], [data["dominance"]], False),
        ("Quota", data["quota_days"], [data["quota"], cumulative(data["quota"])], True),
        ("Runs", data["days"], list(data["runs"].values()), True),
    ]
    specs = json.dumps([[t, xs, ys, bars] for t, xs, ys, bars in charts])
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>{style}</style>
<script>{script}</script></head><body><div id="charts"></div><script>
const specs = {specs};
window.plots = specs.map(([title, xs, ys, bars]) => {{
  const el = document.createElement("div"); document.getElementById("charts").append(el);
  return new uPlot({{title, width: 1100, height: 300,
    series: [{{}}, ...ys.map((_, i) => ({{label: "s" + i, stroke: "hsl(" + i * 36 + ",70%,45%)",
      paths: bars ? uPlot.paths.bars() : undefined}}))]}}, [xs, ...ys], el);
}});
</script></body></html>"""


def page_matplotlib(data: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    def png(draw) -> str:
        fig, ax = pyplot.subplots(figsize=(11, 3), dpi=100)
        draw(ax)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        pyplot.close(fig)
        return base64.b64encode(buffer.getvalue()).decode()

    xs = data["xs"]
    images = [
        png(lambda ax: [ax.plot(xs, data[k]) for k in ("global", "collected")]),
        png(lambda ax: [ax.plot(xs, ys) for ys in data["top"].values()]),
        png(lambda ax: ax.plot(xs, data["dominance"])),
        png(lambda ax: ax.bar(data["quota_days"], data["quota"], width=80000)),
        png(lambda ax: ax.stackplot(data["days"], *data["runs"].values())),
    ]
    tags = "".join(f'<img src="data:image/png;base64,{image}">' for image in images)
    return f'<!doctype html><html><head><meta charset="utf-8"></head><body>{tags}</body></html>'


def page_plotly(data: dict) -> str:
    import plotly.graph_objects as go

    xs = data["xs"]
    figures_ = [
        go.Figure([go.Scatter(x=xs, y=data[k], name=k) for k in ("global", "collected")]),
        go.Figure([go.Scatter(x=xs, y=ys, name=n) for n, ys in data["top"].items()]),
        go.Figure([go.Scatter(x=xs, y=data["dominance"])]),
        go.Figure([go.Bar(x=data["quota_days"], y=data["quota"])]),
        go.Figure([go.Bar(x=data["days"], y=ys, name=n) for n, ys in data["runs"].items()],
                  layout={"barmode": "stack"}),
    ]  # fmt: skip
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=index == 0)
        for index, fig in enumerate(figures_)
    ]
    body = "".join(parts)
    return f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'


def page_altair(data: dict) -> str:
    import altair as alt

    alt.data_transformers.disable_max_rows()

    def long(xs: list, named: dict) -> list[dict]:
        return [
            {"t": x * 1000, "s": n, "v": v}
            for n, ys in named.items()
            for x, v in zip(xs, ys, strict=True)
        ]

    def line(rows: list[dict], bars: bool = False) -> alt.Chart:
        chart = alt.Chart(alt.Data(values=rows))
        mark = chart.mark_bar() if bars else chart.mark_line()
        return mark.encode(x="t:T", y="v:Q", color="s:N").properties(width=1000, height=260)

    xs = data["xs"]
    charts = [
        line(long(xs, {k: data[k] for k in ("global", "collected")})),
        line(long(xs, data["top"])),
        line(long(xs, {"btc": data["dominance"]})),
        line(long(data["quota_days"], {"calls": data["quota"]}), bars=True),
        line(long(data["days"], data["runs"]), bars=True),
    ]
    buffer = io.StringIO()
    alt.vconcat(*charts).save(buffer, format="html", inline=True)
    return buffer.getvalue()


PAGES = {
    "uplot": (page_uplot, None, "window.plots && window.plots.length === 5"),
    "matplotlib": (page_matplotlib, "matplotlib",
                   "[...document.images].every(i => i.complete && i.naturalWidth > 0)"),
    "plotly": (page_plotly, "plotly",
               "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5"),
    "altair": (page_altair, "altair",
               "!!document.querySelector('.vega-embed canvas, .vega-embed svg.marks')"),
}  # fmt: skip
EXTRA = {"altair": ("vl-convert-python",)}


def installed_bytes(name: str, seen: set[str] | None = None) -> int:
    """A distribution's files and those of everything it requires (extras left out)."""
    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen:
        return 0
    seen.add(key)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return 0
    total = sum(f.size or 0 for f in dist.files or [])
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        dep = requirement.split(";")[0].strip()
        for cut in "<>=!~[( ":
            dep = dep.split(cut)[0]
        total += installed_bytes(dep, seen)
    return total


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def measure(library: str) -> dict:
    build, module, drawn = PAGES[library]
    started = time.monotonic()
    if module:
        __import__(module)
    import_s = time.monotonic() - started
    data = figures()
    started = time.monotonic()
    html = build(data)
    page = Path(tempfile.mkdtemp(prefix="charts-")) / f"{library}.html"
    page.write_text(html, encoding="utf-8")
    build_s = time.monotonic() - started
    if module:
        seen: set[str] = set()
        install = sum(installed_bytes(n, seen) for n in (module, *EXTRA.get(library, ())))
    else:
        install = sum(p.stat().st_size for p in UPLOT.iterdir())
    figures_ = {
        "library": library,
        "install_mb": round(install / 1e6, 2),
        "import_s": round(import_s, 2),
        "build_s": round(build_s, 2),
        "rss_mb": round(vm_hwm_mb()),
        "page_mb": round(page.stat().st_size / 1e6, 2),
    }
    executable = chromium_path()
    if executable is None:
        return figures_ | {"browser": "no Chromium: apt-get install chromium"}
    with Chromium(executable) as browser:
        loads, draws = browser.timed_loads(page, drawn, LOADS)
        requests = sorted(
            url
            for url in set(browser.requests_beyond(page))
            if not url.startswith("data:")  # inline images: no network
        )
        errors = browser.log.errors
    return figures_ | {
        "load_ms": round(statistics.median(loads)),
        "drawn_ms": round(statistics.median(draws)),
        "requests": requests,
        "console_errors": errors[:3],
    }


def main(argv: list[str]) -> int:
    for library in argv or ["uplot"]:
        try:
            print(json.dumps(measure(library)), flush=True)
        except ImportError as exc:
            print(json.dumps({"library": library, "missing": str(exc)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
