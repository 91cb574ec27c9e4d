/* The report's charts: uPlot instances over the figures the page carries as JSON.
   Times are UTC; a snapshot line breaks at a gap point (null), other missing values are
   spanned (undefined); backfilled and derived lines are dashed, with points. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf"];
  const FAILED = ["#d62728", "#8c1c13", "#ff7f7f", "#b5485d", "#5c0a0a"];
  const HEIGHT = 340;
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const fmtTime = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm} UTC");
  const fmtDay = uPlot.fmtDate("{YYYY}-{MM}-{DD}");
  const UNITS = [[1e12, " T"], [1e9, " B"], [1e6, " M"], [1e3, " K"]];

  function money(v) {
    if (v == null) return "–";
    const sign = v < 0 ? "-" : "";
    const a = Math.abs(v);
    for (const [size, suffix] of UNITS) {
      if (a >= size) return sign + "$" + (a / size).toFixed(2) + suffix;
    }
    return sign + "$" + a.toFixed(2);
  }
  const percent = (v) => (v == null ? "–" : v.toFixed(2) + " %");
  const count = (v) => (v == null ? "–" : Math.round(v).toLocaleString("en-US"));
  const timeValue = (fmt) => (u, ts) => (ts == null ? "–" : fmt(utc(ts)));
  const spanned = (values) => values.map((v) => (v === null ? undefined : v));
  const fmtTick = [[28 * 86400, uPlot.fmtDate("{YYYY}-{MM}")], [86400, uPlot.fmtDate("{MM}-{DD}")],
                   [0, uPlot.fmtDate("{MM}-{DD} {HH}:{mm}")]];
  // Tick labels in 24-hour UTC, as coarse as the ticks' spacing.
  const timeTicks = (u, ticks, axis, space, incr) => {
    const fmt = fmtTick.find(([step]) => incr >= step)[1];
    return ticks.map((t) => fmt(utc(t)));
  };
  const timeAxis = (label) => ({ label, values: timeTicks, space: 70 });
  const DAYS = [1, 2, 7, 14, 28, 56, 91, 182, 364].map((d) => d * 86400);
  const dayAxis = (label) => ({ ...timeAxis(label), incrs: DAYS });
  // Days as bars at their noon, the axis from the first day's start to the last one's end
  // (uPlot's own range for a single time spans years).
  const dayRange = (xs) => () => [xs[0] - 43200, xs[xs.length - 1] + 43200];
  const fromZero = (pad) => (u, min, max) => [0, Math.max(max * pad, 1)];
  const bars = () => uPlot.paths.bars({ size: [0.8, 48] });
  // Counts tick at whole numbers only.
  const COUNTS = [1, 2, 5].flatMap((k) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6].map((p) => k * p))
    .sort((a, b) => a - b);

  function lineValues(series, gaps, log) {
    const values = series.values.map((v) => (v === null || (log && v <= 0) ? undefined : v));
    if (series.kind === "snapshot") for (const i of gaps) values[i] = null;
    return values;
  }

  function timeChart(el, spec) {
    const fmt = spec.unit === "percent" ? percent : money;
    const colours = new Map();
    const series = [{ label: "time (UTC)", value: timeValue(fmtTime) }];
    for (const s of spec.series) {
      const coin = s.label.replace(" (backfilled)", "");
      if (!colours.has(coin)) {
        colours.set(coin, s.kind === "derived" ? "#6a3d9a" : PALETTE[colours.size % PALETTE.length]);
      }
      const apart = s.kind !== "snapshot";
      // An underlay: the first line drawn wide and pale, so one that coincides stays visible.
      const under = spec.underlay && series.length === 1;
      series.push({
        label: s.label, stroke: colours.get(coin) + (under ? "77" : ""),
        width: under ? 6 : apart ? 1.5 : 2,
        dash: apart ? [6, 4] : undefined, points: apart ? { show: true, size: 6 } : {},
        value: (u, v) => fmt(v),
      });
    }
    const y = spec.log ? { distr: 3, log: 10 } : {};
    const opts = {
      width: el.clientWidth, height: HEIGHT, tzDate: utc, series,
      scales: { x: { time: true }, y },
      axes: [timeAxis("time (UTC)"),
             { label: spec.yLabel, size: 80, values: (u, ticks) => ticks.map(fmt) }],
      cursor: { drag: { x: true, y: false } },
    };
    const values = spec.series.map((s) => lineValues(s, spec.gaps, spec.log));
    return new uPlot(opts, [spec.x, ...values], el);
  }

  function runsChart(el, spec) {
    // Stacked: each outcome is drawn as the running sum up to it, tallest first so every
    // band stays visible; the legend shows the outcome's own count.
    const raw = spec.series.map((s) => s.values);
    let sum = spec.x.map(() => 0);
    const stacked = raw.map((values) => (sum = sum.map((a, i) => a + values[i])));
    const order = raw.map((_, i) => i).reverse();
    let failed = 0;
    const colour = (label) => label === "ok" ? "#59a14f" : label === "skipped" ? "#bab0ac"
      : label.startsWith("refused") ? "#f28e2b" : FAILED[failed++ % FAILED.length];
    const colours = spec.series.map((s) => colour(s.label));
    const series = [{ label: "day (UTC)", value: timeValue(fmtDay) }, ...order.map((i) => ({
      label: spec.series[i].label, stroke: colours[i], fill: colours[i], paths: bars(),
      points: { show: false }, value: (u, v, si, di) => (di == null ? "–" : count(raw[i][di])),
    }))];
    const opts = {
      width: el.clientWidth, height: HEIGHT, tzDate: utc, series,
      scales: { x: { time: true, range: dayRange(spec.x) }, y: { range: fromZero(1.15) } },
      axes: [dayAxis("day (UTC)"), { label: "runs per day", incrs: COUNTS, values: (u, t) => t.map(count) }],
    };
    return new uPlot(opts, [spec.x, ...order.map((i) => stacked[i])], el);
  }

  function quotaChart(el, spec) {
    const series = [
      { label: "day (UTC)", value: timeValue(fmtDay) },
      { label: "calls that day", scale: "day", stroke: "#4e79a7", fill: "#4e79a7aa",
        paths: bars(), points: { show: false }, value: (u, v) => count(v) },
      { label: "calls this month (running total)", scale: "month", stroke: "#f28e2b",
        width: 2, value: (u, v) => count(v) },
    ];
    const values = [spec.x, spec.perDay, spec.cumulative];
    if (spec.budget != null) {
      series.push({ label: "monthly budget", scale: "month", stroke: "#d62728", width: 2,
                    dash: [10, 5], points: { show: false }, value: (u, v) => count(v) });
      values.push(spec.x.map(() => spec.budget));
    }
    if (spec.projection.some((v) => v != null)) {
      series.push({ label: "projection at this month's pace", scale: "month", stroke: "#f28e2b",
                    width: 2, dash: [3, 4], points: { show: true, size: 5 },
                    value: (u, v) => count(v) });
      values.push(spanned(spec.projection));
    }
    const opts = {
      width: el.clientWidth, height: HEIGHT, tzDate: utc, series,
      scales: { x: { time: true, range: dayRange(spec.x) }, day: { range: fromZero(1.2) },
                month: { range: fromZero(1.1) } },
      axes: [dayAxis("day (UTC)"),
             { label: "calls per day", scale: "day", incrs: COUNTS, size: 70,
               values: (u, t) => t.map(count) },
             { label: "calls this month", scale: "month", side: 1, size: 80, incrs: COUNTS,
               grid: { show: false }, values: (u, t) => t.map(count) }],
    };
    return new uPlot(opts, values, el);
  }

  const DRAW = { time: timeChart, runs: runsChart, quota: quotaChart };
  const charts = {};
  for (const [id, spec] of Object.entries(data.charts)) {
    const el = document.getElementById("chart-" + id);
    charts[id] = DRAW[spec.kind](el, spec);
  }
  window.addEventListener("resize", () => {
    for (const [id, u] of Object.entries(charts)) {
      u.setSize({ width: document.getElementById("chart-" + id).clientWidth, height: HEIGHT });
    }
  });

  function inked(u) {
    // Pixels drawn on the plot's canvas (it starts transparent).
    const c = u.ctx.canvas;
    const pixels = u.ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) n++;
    return n;
  }
  // What each chart drew, for a reader or a test: its series and their points.
  window.reportSummary = () => Object.fromEntries(Object.entries(charts).map(([id, u]) => [id, {
    times: u.data[0].length,
    inked: inked(u),
    series: u.series.slice(1).map((s, i) => ({
      label: s.label, points: u.data[i + 1].filter((v) => v != null).length })),
  }]));
  document.documentElement.dataset.ready = "yes";
})();
