"""Fabric vs raw pyzmq, side by side: ``python -m bench.run [--quick] [--reps N] [--only a,c]``.

(``python bench/run.py ...`` works too.)

Runs every benchmark variant in fresh processes (see :mod:`bench.harness`), interleaving the variants
repetition by repetition (raw, fabric, raw, fabric, ...) so that drift in machine load hits all of them
alike; prints a table of medians with min/max spread and ratios against the raw baselines, and writes
the same figures as JSON to ``bench/results/`` (``latest.json`` plus a timestamped copy).

Benchmarks (bench/README.md explains each one):

a. control channel, 256 B one-way throughput (msgs/s delivered to the receiving handler);
b. bulk channel, 1 MiB PUSH->PULL throughput (MiB/s delivered);
c. ``call`` round trip, 64 B, p50/p99 (us);
d. head-of-line: 64 B ``call`` round trip while 8 MiB messages stream on the bulk channel between the
   same two nodes.

Exit status: 0 when every run completed (targets missed are reported, not fatal), 1 when a run failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python bench/run.py): make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BenchError, Pair, Spread, run_pair  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Variant:
    """One row group of the table: a label, the processes to run, and extra role arguments."""

    key: str
    label: str
    pair: Pair
    args: dict[str, Any] = field(default_factory=dict)
    not_applicable: frozenset[str] = frozenset()
    """Figures of the benchmark that this variant cannot have (e.g. loop stalls without a loop)."""


@dataclass(frozen=True)
class Target:
    """A target from the issue: ``figure`` of ``variant`` compared with a baseline variant or a bound.

    With ``baseline`` set the check is on the ratio ``variant / baseline`` (of medians); without it the
    check is on the variant's median itself. ``op`` is ``">="``, ``">"`` or ``"<="``.
    """

    variant: str
    figure: str
    op: str
    bound: float
    baseline: str | None = None

    def describe(self) -> str:
        """Short text, e.g. ``>= 0.5x raw_sync`` or ``<= 700 us``."""
        if self.baseline:
            return f"{self.op} {self.bound:g}x {self.baseline}"
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its variants (the first ones are the raw baselines), figures and targets."""

    key: str
    title: str
    figures: tuple[tuple[str, str], ...]
    """(result field, unit) pairs shown per variant; the first is the headline figure."""
    variants: tuple[Variant, ...]
    targets: tuple[Target, ...]
    higher_is_better: bool


def benchmarks(sizes: dict[str, int]) -> list[Benchmark]:
    """The four benchmarks of issue 2 at the given payload sizes."""
    control, bulk, small, hol_bulk = sizes["control"], sizes["bulk"], sizes["call"], sizes["hol_bulk"]
    return [
        Benchmark(
            key="a",
            title=f"a. control channel one-way throughput, {control} B (and the receiver's worst event-loop stall)",
            figures=(("value", "msg/s"), ("loop_lag_ms", "loop stall ms")),
            variants=(
                Variant("raw_sync", "raw pyzmq sync DEALER->ROUTER + msgpack header",
                        Pair("raw_sync_control_rx", "raw_sync_control_tx"), {"size": control},
                        frozenset({"loop_lag_ms"})),
                Variant("raw_asyncio", "raw zmq.asyncio DEALER->ROUTER + msgpack header",
                        Pair("raw_async_control_rx", "raw_async_control_tx"), {"size": control}),
                Variant("fabric_batch", "fabric coordination, batching on",
                        Pair("fabric_control_rx", "fabric_control_tx"), {"size": control, "batching": True}),
                Variant("fabric_nobatch", "fabric coordination, batching off",
                        Pair("fabric_control_rx", "fabric_control_tx"), {"size": control, "batching": False}),
                Variant("fabric_batch_async", "fabric coordination, batching on, async handler",
                        Pair("fabric_control_rx", "fabric_control_tx"),
                        {"size": control, "batching": True, "handler": "async"}),
            ),
            targets=(
                Target("fabric_batch", "value", ">=", 0.5, "raw_sync"),
                Target("fabric_batch", "value", ">", 1.0, "raw_asyncio"),
            ),
            higher_is_better=True,
        ),
        Benchmark(
            key="b",
            title=f"b. bulk channel throughput, {_mib(bulk)} PUSH->PULL",
            figures=(("value", "MiB/s"),),
            variants=(
                Variant("raw", "raw pyzmq PUSH->PULL, zero-copy",
                        Pair("raw_bulk_rx", "raw_bulk_tx"), {"size": bulk, "zero_copy": True}),
                Variant("raw_copy", "raw pyzmq PUSH->PULL, copying (defaults)",
                        Pair("raw_bulk_rx", "raw_bulk_tx"), {"size": bulk, "zero_copy": False}),
                Variant("raw_asyncio", "raw zmq.asyncio PUSH->PULL, zero-copy",
                        Pair("raw_async_bulk_rx", "raw_async_bulk_tx"), {"size": bulk}),
                Variant("raw_header", "raw pyzmq zero-copy + a 40 B header frame",
                        Pair("raw_bulk_rx", "raw_bulk_tx"), {"size": bulk, "zero_copy": True, "header": 40}),
                Variant("raw_malloc", "raw pyzmq zero-copy + the fabric's malloc setting",
                        Pair("raw_bulk_rx", "raw_bulk_tx"), {"size": bulk, "zero_copy": True, "malloc_like_fabric": True}),
                Variant("fabric", "fabric data, one key (one lane)",
                        Pair("fabric_bulk_rx", "fabric_bulk_tx"), {"size": bulk}),
                Variant("fabric_4lanes", "fabric data, 4 keys round-robin (4 lanes)",
                        Pair("fabric_bulk_rx", "fabric_bulk_tx"), {"size": bulk, "keys": 4}),
            ),
            targets=(Target("fabric", "value", ">=", 0.9, "raw"),),
            higher_is_better=True,
        ),
        Benchmark(
            key="c",
            title=f"c. call round trip, {small} B",
            figures=(("p50_us", "p50 us"), ("p99_us", "p99 us")),
            variants=(
                Variant("raw_asyncio", "raw zmq.asyncio DEALER/ROUTER ping-pong",
                        Pair("raw_rtt_server", "raw_rtt_client", "client"), {"size": small}),
                Variant("fabric", "fabric call to an echo service",
                        Pair("fabric_rtt_server", "fabric_rtt_client", "client"), {"size": small}),
            ),
            targets=(Target("fabric", "p50_us", "<=", 1.5, "raw_asyncio"),),
            higher_is_better=False,
        ),
        Benchmark(
            key="d",
            title=f"d. head-of-line: {small} B round trip while {_mib(hol_bulk)} messages stream (bulk)",
            figures=(("p50_us", "p50 us"), ("p99_us", "p99 us"), ("bulk_mib_s", "bulk MiB/s")),
            variants=(
                Variant("raw_1io", "raw pyzmq sync, 1 io thread",
                        Pair("raw_hol_server", "raw_hol_client", "client"),
                        {"size": small, "bulk_size": hol_bulk, "io_threads": 1}),
                Variant("raw_2io", "raw pyzmq sync, io_threads=2 + ZMQ_AFFINITY",
                        Pair("raw_hol_server", "raw_hol_client", "client"),
                        {"size": small, "bulk_size": hol_bulk, "io_threads": 2}),
                Variant("raw_async_2io", "raw zmq.asyncio, io_threads=2 + affinity, stream task",
                        Pair("raw_hol_async_server", "raw_hol_async_client", "client"),
                        {"size": small, "bulk_size": hol_bulk}),
                Variant("raw_async_nice", "raw zmq.asyncio as above + the fabric's bulk thread nice",
                        Pair("raw_hol_async_server", "raw_hol_async_client", "client"),
                        {"size": small, "bulk_size": hol_bulk, "nice_like_fabric": True}),
                Variant("fabric", "fabric call while data streams",
                        Pair("fabric_hol_server", "fabric_hol_client", "client"),
                        {"size": small, "bulk_size": hol_bulk}),
                Variant("fabric_nice0", "fabric, io_thread_nice=(0,): bulk thread not lowered",
                        Pair("fabric_hol_server", "fabric_hol_client", "client"),
                        {"size": small, "bulk_size": hol_bulk, "io_thread_nice": [0]}),
            ),
            targets=(Target("fabric", "p99_us", "<=", 700.0),),
            higher_is_better=False,
        ),
    ]


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n} B"


def _figure(result: dict[str, Any], name: str) -> float | None:
    """A figure from a run result; ``bulk_mib_s`` comes from the server's final event."""
    if name in result:
        return float(result[name])
    final = result.get("server_final") or {}
    return float(final[name]) if name in final else None


def run_all(
    selected: Sequence[Benchmark],
    reps: int,
    common: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run every variant of every benchmark ``reps`` times, interleaved; return the JSON-ready report."""
    timeout = common["first_timeout"] + common["warmup"] + common["duration"] + 60.0
    report: dict[str, Any] = {}
    for bench in selected:
        runs: dict[str, list[dict[str, Any]]] = {v.key: [] for v in bench.variants}
        errors: dict[str, list[str]] = {v.key: [] for v in bench.variants}
        for rep in range(reps):
            for variant in bench.variants:
                log(f"[{bench.key}] rep {rep + 1}/{reps} {variant.key} ...")
                try:
                    result = run_pair(variant.pair, {**common, **variant.args}, timeout)
                except BenchError as exc:
                    errors[variant.key].append(str(exc))
                    log(f"[{bench.key}] {variant.key} FAILED: {str(exc)[:2000]}")
                    continue
                if result.get("killed"):
                    log(f"[{bench.key}] {variant.key}: had to kill {result['killed']} (no clean exit)")
                runs[variant.key].append(result)
        variants: dict[str, Any] = {}
        for variant in bench.variants:
            figures: dict[str, Any] = {}
            for name, unit in bench.figures:
                values = [v for r in runs[variant.key] if (v := _figure(r, name)) is not None]
                if values:
                    figures[name] = {**Spread.of(values).as_dict(), "unit": unit, "values": values}
            kills = sum(1 for r in runs[variant.key] if r.get("killed"))
            variants[variant.key] = {"label": variant.label, "figures": figures, "errors": errors[variant.key],
                                     "unclean_exits": kills, "runs": runs[variant.key]}
        report[bench.key] = {
            "title": bench.title,
            "variants": variants,
            "targets": [_check(t, variants) for t in bench.targets],
        }
    return report


def _check(target: Target, variants: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one target on the medians; ``met`` is None when a figure is missing."""
    def median(key: str) -> float | None:
        fig = variants.get(key, {}).get("figures", {}).get(target.figure)
        return None if fig is None else float(fig["median"])

    value = median(target.variant)
    base = median(target.baseline) if target.baseline else 1.0
    out: dict[str, Any] = {"variant": target.variant, "figure": target.figure, "target": target.describe()}
    if value is None or base is None or base == 0:
        out.update(measured=None, met=None)
        return out
    measured = value / base
    met = {">=": measured >= target.bound, ">": measured > target.bound, "<=": measured <= target.bound}[target.op]
    out.update(measured=measured, met=met)
    return out


def _fmt(value: float) -> str:
    if value >= 10000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def render(selected: Sequence[Benchmark], report: dict[str, Any]) -> str:
    """The human-readable table: medians, [min .. max], ratio of medians to the first variant (the raw
    baseline) that has the figure."""
    lines: list[str] = []
    width = max(len(v.label) for b in selected for v in b.variants) + 2
    header = f"{'variant':<{width}}{'figure':<12}{'median':>12}  {'[min .. max]':<24}{'ratio':>8}  n"
    for bench in selected:
        data = report[bench.key]
        lines += ["", data["title"], header, "-" * len(header)]
        for variant in bench.variants:
            vdata = data["variants"][variant.key]
            if not vdata["figures"]:
                lines.append(f"{variant.label:<{width}}FAILED ({len(vdata['errors'])} errors)")
                continue
            for i, (name, unit) in enumerate(bench.figures):
                if name in variant.not_applicable:
                    continue
                fig = vdata["figures"].get(name)
                label = variant.label if i == 0 else ""
                if fig is None:
                    lines.append(f"{label:<{width}}{unit:<12}{'-':>12}")
                    continue
                # Ratios against the first variant that has this figure (the raw baseline for it).
                base = next(
                    (f for v in bench.variants if (f := data["variants"][v.key]["figures"].get(name))), None
                )
                ratio = f"{fig['median'] / base['median']:.2f}x" if base and base["median"] else "-"
                spread = f"[{_fmt(fig['min'])} .. {_fmt(fig['max'])}]"
                lines.append(f"{label:<{width}}{unit:<12}{_fmt(fig['median']):>12}  {spread:<24}{ratio:>8}  "
                             f"{fig['n']}{' !' + str(len(vdata['errors'])) + ' failed' if vdata['errors'] else ''}")
        for variant in bench.variants:
            kills = data["variants"][variant.key]["unclean_exits"]
            if kills:
                lines.append(f"  note: {variant.key}: {kills} run(s) had a child that did not exit when asked "
                             "(killed after 10 s)")
        for target in data["targets"]:
            if target["met"] is None:
                verdict = "NOT MEASURED"
            else:
                verdict = "PASS" if target["met"] else "MISS"
            measured = "-" if target["measured"] is None else f"{target['measured']:.3g}"
            lines.append(f"  target: {target['variant']} {target['figure']} {target['target']}: "
                         f"measured {measured} -> {verdict}")
    return "\n".join(lines)


def _meta(args: argparse.Namespace, common: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    import zmq

    return {
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "reps": args.reps,
        "quick": args.quick,
        "window": common,
        "sizes": sizes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, print the table, write JSON; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI sizes: 0.15 s warm-up + 0.4 s windows (whole run < 2 min)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions per variant (default 5)")
    parser.add_argument("--warmup", type=float, help="seconds discarded before each window")
    parser.add_argument("--duration", type=float, help="seconds of each measuring window")
    parser.add_argument("--only", default="", help="comma-separated benchmark letters, e.g. a,c")
    parser.add_argument("--bulk-size", type=int, default=1 << 20, help="b: bulk message bytes")
    parser.add_argument("--hol-bulk-size", type=int, default=8 << 20, help="d: streaming message bytes")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON results")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be >= 1")

    common = {
        "warmup": args.warmup if args.warmup is not None else (0.15 if args.quick else 0.5),
        "duration": args.duration if args.duration is not None else (0.4 if args.quick else 3.0),
        "first_timeout": 20.0,
    }
    sizes = {"control": 256, "bulk": args.bulk_size, "call": 64, "hol_bulk": args.hol_bulk_size}
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    selected = [b for b in benchmarks(sizes) if not only or b.key in only]
    if not selected:
        parser.error(f"--only {args.only!r} selects nothing (choose from a, b, c, d)")

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    report = run_all(selected, args.reps, common, log)
    meta = _meta(args, common, sizes)
    meta["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(f"fabric vs raw pyzmq  ({meta['time_utc']}, {meta['cpus']} CPUs, Python {meta['python']}, "
          f"pyzmq {meta['pyzmq']}, libzmq {meta['libzmq']}, {args.reps} interleaved reps, "
          f"window {common['warmup']}+{common['duration']} s, load {meta['loadavg_1m_before_after']})")
    print(render(selected, report))
    args.out.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"meta": meta, "benchmarks": report}, indent=1)
    stamp = meta["time_utc"].replace(":", "").replace("+0000", "Z")
    (args.out / f"run-{stamp}.json").write_text(payload)
    (args.out / "latest.json").write_text(payload)
    print(f"\nJSON: {args.out / 'latest.json'}")
    failed = any(v["errors"] for b in report.values() for v in b["variants"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
