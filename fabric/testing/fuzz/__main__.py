"""``python -m fabric.testing.fuzz TARGET --runs N``: run a fuzz target (see :mod:`fabric.testing.fuzz`).

With atheris installed (the ``fuzz`` extra) the coverage-guided engine runs in a child process (libFuzzer
ends its process when done), seeded with the valid corpus written to a temporary directory; without it,
or with ``--engine random``, the seeded random engine runs here. Prints one line per target::

    fuzz decoder: 100000 inputs in 41.2 s (atheris), no crash

and exits 1 on a crash, after printing the traceback and the input (``--artifacts DIR`` keeps it).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from ...wire import packb, unpackb
from .. import fuzz
from .targets import TARGETS, InvariantViolation


def have_atheris() -> bool:
    """True when the coverage-guided engine can run here."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _atheris_child(target: str, runs: int, seed: int, corpus_dir: str, artifacts: str, bound_every: int) -> None:
    """The child process: libFuzzer with a structure-aware custom mutator over msgpack-encoded items."""
    import atheris

    harness = TARGETS[target](seed)
    corpus = harness.corpus()
    fed = [0]

    def one_input(data: bytes) -> None:
        try:
            item = unpackb(data)
        except Exception:  # raw bytes: the decoder takes them as one frame, other targets ignore them
            item = [data] if target == "decoder" else None
        try:
            harness.feed(item)
            fed[0] += 1
            if fed[0] % bound_every == 0:
                harness.check_bounds()
        except Exception:
            raise  # libFuzzer reports it (traceback and the input)
        except BaseException:  # SystemExit / KeyboardInterrupt from a handler: say where before exiting
            import traceback

            traceback.print_exc()
            print(f"input: {item!r}"[:4000], file=sys.stderr)
            raise

    def mutator(data: bytes, max_size: int, mseed: int) -> bytes:
        # An exception escaping a custom mutator ends libFuzzer silently ("fuzz target exited"): every
        # failure here (a RecursionError on an item nested deeper by generations of mutations, an item
        # msgpack cannot encode) falls back to a corpus item.
        rng = random.Random(mseed)
        if rng.random() < 0.1:
            return bytes(atheris.Mutate(data, max_size))  # libFuzzer's own byte-level mutations
        try:
            try:
                item = unpackb(data)
            except Exception:
                item = rng.choice(corpus)
            if rng.random() < 0.05:
                item = rng.choice(corpus)
            out = packb(fuzz.apply(item, [fuzz.random_mutation(rng) for _ in range(rng.randint(1, 3))]))
        except Exception:
            out = packb(rng.choice(corpus))
        return out if len(out) <= max_size else packb(rng.choice(corpus))[:max_size]

    import faulthandler

    faulthandler.enable()
    atexit.register(lambda: faulthandler.dump_traceback(all_threads=True))  # who exits mid-input, if anyone
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed or 1}", "-max_len=65536", "-print_final_stats=1",
                   f"-artifact_prefix={artifacts}/", "-rss_limit_mb=4096", corpus_dir],
                  one_input, custom_mutator=mutator)
    atheris.Fuzz()


def _run_atheris(target: str, runs: int, seed: int, artifacts: str | None, bound_every: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="fz-")
    try:
        corpus_dir = os.path.join(workdir, "corpus")
        os.mkdir(corpus_dir)
        harness = TARGETS[target](seed)
        try:
            for i, item in enumerate(harness.corpus()):
                with open(os.path.join(corpus_dir, f"seed-{i:04d}"), "wb") as f:
                    f.write(packb(item))
        finally:
            close = getattr(harness, "close", None)
            if close is not None:
                close()
        art = artifacts or workdir
        os.makedirs(art, exist_ok=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "fabric.testing.fuzz", target, "--child", "--runs", str(runs),
                               "--seed", str(seed), "--corpus", corpus_dir, "--artifacts", art,
                               "--bound-every", str(bound_every)],
                              capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        done = re.search(r"Done (\d+) runs in (\d+) second", proc.stderr)
        execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
        inputs = int(execs.group(1)) if execs else int(done.group(1)) if done else 0
        cov = re.findall(r"cov: (\d+)", proc.stderr)
        result = {"target": target, "inputs": inputs, "seconds": round(seconds, 2), "engine": "atheris",
                  "coverage": int(cov[-1]) if cov else None, "returncode": proc.returncode}
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.splitlines()[-60:])
            result["crash"] = tail
        return result
    finally:
        if artifacts is None:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fabric.testing.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--runs", type=int, default=10000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto",
                        help="auto: atheris when installed, else random")
    parser.add_argument("--artifacts", default=None, help="keep crash inputs (and the atheris corpus) in this directory")
    parser.add_argument("--bound-every", type=int, default=2000, help="check state bounds every N inputs")
    parser.add_argument("--json", action="store_true", help="print one JSON line per target")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # bad input is logged (rate-limited) by the node: noise here
    if args.child:
        _atheris_child(args.target, args.runs, args.seed, args.corpus, args.artifacts, args.bound_every)
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "random"
    elif engine == "atheris" and not have_atheris():
        print("atheris is not installed: pip install -e '.[fuzz]' (or use --engine random)", file=sys.stderr)
        return 2
    failed = False
    for target in (list(TARGETS) if args.target == "all" else [args.target]):
        if engine == "atheris":
            result = _run_atheris(target, args.runs, args.seed, args.artifacts, args.bound_every)
        else:
            try:
                result = fuzz.run_random(target, args.runs, seed=args.seed, bound_every=args.bound_every)
            except InvariantViolation as exc:
                import traceback

                result = {"target": target, "inputs": None, "engine": "random", "seconds": None,
                          "crash": "".join(traceback.format_exception(exc)) + f"\ninput: {getattr(exc, 'item', None)!r}"}
        if args.json:
            print(json.dumps({k: v for k, v in result.items() if k != "sizes"}, sort_keys=True, default=repr))
        if "crash" in result:
            failed = True
            print(f"fuzz {target}: CRASH ({result['engine']})\n{result['crash']}", file=sys.stderr)
            break
        if not args.json:
            print(f"fuzz {target}: {result['inputs']} inputs in {result['seconds']} s ({result['engine']}), no crash")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
