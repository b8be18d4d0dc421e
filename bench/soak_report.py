"""The soak's report: a markdown page with its tables, and one PNG of the run (RSS, fds,
threads, backlog and decision latency over time, the faults shaded), for bench/soak.py."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PLOT = "soak.png"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def plot(series: dict, out: Path) -> str | None:
    """Write out/soak.png; return its name, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    samples = series["samples"]
    minutes = lambda s: s / 60  # noqa: E731
    fig, axes = plt.subplots(5, 1, figsize=(11, 11), sharex=True)
    panels = (("rss_mb", "RSS (MB)"), ("fds", "open fds"), ("threads", "threads"), ("backlog", "sync backlog"))
    for ax, (k, label) in zip(axes[:len(panels)], panels, strict=True):
        pts = [(minutes(s["t"]), s[k]) for s in samples if s.get(k) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), ".-", ms=2, lw=0.8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    lat = series["latency"]
    ax = axes[-1]
    if lat:
        ax.scatter([minutes(t) for t, _ in lat], [ms for _, ms in lat], s=3)
        ax.set_yscale("log")
    ax.axhline(300, color="red", lw=0.8, ls="--")
    ax.set_ylabel("decision (ms)")
    ax.set_xlabel("minutes into the run")
    ax.grid(alpha=0.3)
    colours = ["#f4a", "#fa4", "#4af", "#a4f", "#4fa", "#af4", "#aaa", "#f44", "#44f", "#4f4"]
    for i, (start, end, name) in enumerate(series["faults"]):
        for a in axes:
            a.axvspan(minutes(start), minutes(end), color=colours[i % len(colours)], alpha=0.25, lw=0)
        axes[0].annotate(name, (minutes(start), 1.02), xycoords=("data", "axes fraction"), rotation=35,
                         fontsize=7, va="bottom")
    fig.tight_layout()
    fig.savefig(out / PLOT, dpi=90)
    plt.close(fig)
    return PLOT


def markdown(result: dict, plot_name: str | None) -> str:
    r = result["run"]
    s = result["scans"]
    lines = [
        f"Run: {r['duration_s']:.0f} s of traffic, drained at {r['drained_at_s']:.0f} s; load average "
        f"{r['load_before'][0]} before and {r['load_after'][0]} after on {r['cpus']} CPUs; data folder on a "
        f"{r['tmpfs_mb']} MB tmpfs; sync.max_backoff {r['max_backoff_s']:.0f} s.",
        "",
        "| check | result |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {'pass' if ok else '**FAIL**'} |" for name, ok in result["checks"].items()]
    if result.get("recounted"):
        lines += ["", f"Scans {result['recounted']}."]
    lines += ["", "| scans | count |", "| --- | --- |"]
    for k in ("presented", "shown_again_within_the_cooldown", "logged", "at_central", "missing_from_log",
              "logged_more_than_shown", "duplicate_ids",
              "logged_not_at_central", "at_central_not_logged", "with_app", "not_logged_reason"):
        if k in s:
            lines.append(f"| {k.replace('_', ' ')} | {s[k]} |")
    lines.append(f"| by kind | {', '.join(f'{k} {n}' for k, n in s['by_kind'].items())} |")
    lines.append(f"| by decision | {', '.join(f'{k} {n}' for k, n in s['by_decision'].items())} |")
    d = result["door"]
    lines += ["", "| door (relay pulses in the kiosk's log against the entry log) | count |", "| --- | --- |",
              f"| pulses | {d['pulses']} |", f"| final allows | {d['final_allows']} |",
              f"| pulses not for a final allow | {len(d['pulses_not_for_an_allow'])} |",
              f"| entries pulsed twice | {len(d['entries_pulsed_twice'])} |",
              f"| allows without a pulse | {len(d['allows_without_a_pulse'])} |"]
    lat = result["latency_ms"]
    lines += ["", "| decision latency (code put before the camera to handled) | n | p50 ms | p95 ms | max ms |",
              "| --- | --- | --- | --- | --- |"]
    for k, v in lat.items():
        lines.append(f"| {k.replace('_', ' ')} | {v['n']} | {_ms(v['p50'])} | {_ms(v['p95'])} | {_ms(v['max'])} |")
    res = result["resources"]
    lines += ["", f"| kiosk process {res.get('process')} ({res.get('samples')} samples after warm-up) | "
              "after warm-up | end | band | highest | within |", "| --- | --- | --- | --- | --- | --- |"]
    for k in ("rss_mb", "fds", "threads"):
        if k in res:
            v = res[k]
            lines.append(f"| {k} | {v['after_warm_up']} | {v['end']} | {v['band'][0]}-{v['band'][1]} | {v['max']} | "
                         f"{'yes' if v['within'] else '**no**'} |")
    lines += ["", "| fault | began (s) | length (s) | recovered after (s) | recovery means | what the guard saw |",
              "| --- | --- | --- | --- | --- | --- |"]
    for f in result["faults"]:
        rec = "-" if f["recovered_after_s"] is None else f"{f['recovered_after_s']}"
        notes = f" ({'; '.join(f['notes'])})" if f["notes"] else ""
        lines.append(f"| {f['fault']}{notes} | {f['began_s']} | {f['length_s']} | {rec} | {f['recovery']} | "
                     f"{f['guard_saw']} |")
    processes = ", ".join(f"{p['n']} ({p['how_it_ended']})" for p in r["kiosk_processes"])
    lines += ["", f"Kiosk processes: {processes}; "
              f"central started {r['central_starts']} times. SSE: {r['sse']['connects']} connects, "
              f"{r['sse']['failures']} failed, {r['sse']['events']} events. Operator pulls: {r['operator_pulls']} "
              f"({r['operator_pulls_failed']} not 200, slowest {r['operator_pull_slowest_s']} s). The guard's "
              f"screen showed {r['guard_entries_seen']} entries."]
    if plot_name:
        lines += ["", f"![RSS, fds, threads, backlog and latency over the run, faults shaded]({plot_name})"]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- soak report: begin (bench/soak.py writes this part) -->", "<!-- soak report: end -->"


def splice(report: Path, text: str) -> None:
    """Put `text` between the BEGIN and END marks of `report` (appended when it has none)."""
    old = report.read_text(encoding="utf-8") if report.exists() else ""
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):].lstrip("\n")
    else:
        new = old + ("\n" if old else "") + block
    report.write_text(new, encoding="utf-8")


def write_report(result: dict, series: dict, out: Path, report: Path | None = None) -> None:
    """Write out/soak.md (and out/soak.png); with `report`, also splice the text into it, the
    plot's link made relative to the report's folder."""
    plot_name = plot(series, out)
    (out / "soak.md").write_text(markdown(result, plot_name), encoding="utf-8")
    if report is not None:
        link = None
        if plot_name:
            link = os.path.relpath(out / plot_name, report.resolve().parent)
        splice(report, markdown(result, link))


if __name__ == "__main__":       # re-draw from a run's JSON: python bench/soak_report.py OUT [REPORT]
    folder = Path(sys.argv[1])
    write_report(json.loads((folder / "soak.json").read_text()), json.loads((folder / "soak-series.json").read_text()),
                 folder, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
