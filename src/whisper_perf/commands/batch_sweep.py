"""The batch size where larger batches stop paying: what ``--batch N`` should be on this hardware.

    whisper-perf batch-sweep                       (nox -s batch-sweep)
    whisper-perf batch-sweep --sizes 1,4,16,32 --limit 32 --out results/batch-sweep/h100

At batch 1 a small model leaves a GPU mostly idle: the host launches kernels one decode step at a
time, so the timings follow the host.  A batched call gives the GPU N utterances' work per step.
For each size N of ``--sizes`` this builds ``--variant`` (default ``compiled-static-prebuilt``,
its static cache sized for N) and its eager reference for batch N, times them as the suite does
(whisper_perf.measure.timing: interleaved, ``--rounds`` rounds over ``--limit`` utterances
spread over the set), then profiles one call of each apart from the timed rounds (torch.profiler)
for the share of the call's time the GPU was busy.  Per size: seconds per utterance, RTFx, the
speedup, device busy, and how many utterances got the smallest size's token ids.

The choice (``choose``), stated with its reason:
  1. the smallest N whose variant keeps the device busy for at least ``--busy-target`` (0.8) of
     its call: from there on a larger batch adds work, not throughput;
  2. else (a CPU has no device apart from the host; or no size got there) the smallest N from which
     the next size cuts the variant's seconds per utterance by less than ``--min-gain`` (0.10):
     where the per-utterance time stops falling;
  3. else the largest size measured, saying that the time was still falling there.

Writes ``batch-sweep.json`` and ``batch-sweep.md`` into ``--out`` (a new folder; default
results/batch-sweep/<key>/<time>) and prints the table.  A size larger than the set, or one whose
build or timing fails (out of memory), is listed as not measured, with the reason.  With
``--write``, the choice goes into the hardware's baseline file (``batched``: the batch size and
why), where the full profile reads it: ``nox -s perf`` and ``record`` then follow the batch-1 run
with a run at that batch size (cli.run_suite).  Review it with git diff, as any baseline change.

Exit status: 0 measured; 1 no size could be measured; 4 usage error (``--sizes``, ``--out``,
``--dataset``, a baseline file that does not load ...); 6 the environment lacks what was asked
(``--device cuda`` without CUDA).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import EXIT_OK, EXIT_REGRESSION
from ..files import check_writable, replace_atomically, require_new_folder
from ..record.report import md_table
from . import Parser, run_command

DEFAULT_SIZES = "1,2,4,8,16"


@dataclass(frozen=True)
class Row:
    """One batch size, measured."""

    batch_size: int
    calls: int  # generate() calls per pass
    seconds_per_utterance: float  # the variant's, median over the quiet rounds (top-ups counted)
    reference_seconds_per_utterance: float | None
    rtfx: float  # audio seconds over the variant's median pass seconds
    device_busy: float | None  # share of one call's time the device was busy; None on a CPU
    same_ids: int  # utterances whose token ids are those of the smallest size's pass
    utterances: int
    busy_rounds: int  # rounds taken on a busy machine, left out of the medians unless every round was

    @property
    def speedup(self) -> float | None:
        ref = self.reference_seconds_per_utterance
        return None if ref is None else ref / self.seconds_per_utterance


def choose(rows: list[Row], busy_target: float, min_gain: float) -> tuple[int, str]:
    """(batch size, why): the rule in the module docstring, over rows of increasing size."""
    rows = sorted(rows, key=lambda r: r.batch_size)
    busy = next((r for r in rows if r.device_busy is not None and r.device_busy >= busy_target), None)
    if busy is not None:
        return busy.batch_size, (f"the smallest batch whose variant kept the device busy for at least "
                                 f"{busy_target:.0%} of its call ({busy.device_busy:.0%})")
    measured = "" if any(r.device_busy is not None for r in rows) else "device busy not measured here; "
    for row, following in zip(rows, rows[1:]):
        gain = 1 - following.seconds_per_utterance / row.seconds_per_utterance
        if gain < min_gain:
            return row.batch_size, (f"{measured}from batch {row.batch_size} to {following.batch_size} the seconds "
                                    f"per utterance fell by {gain:.1%}, less than {min_gain:.0%}: where the "
                                    "per-utterance time stops falling")
    last = rows[-1]
    return last.batch_size, (f"{measured}the largest batch measured: the seconds per utterance were still "
                             f"falling by {min_gain:.0%} or more at {last.batch_size}; try larger sizes "
                             "(with --limit at least as large)")


def measure_size(n: int, args, model, processor, hardware, audio, progress):
    """(Row, {utterance: token ids}) of ``args.variant`` and its reference built for batch ``n``; the
    builds are gone when it returns (their compiled graphs and CUDA graphs with them)."""
    import torch

    from ..build.variants import free_memory

    try:
        return _measured(n, args, model, processor, hardware, audio, progress)
    finally:
        torch._dynamo.reset()  # the next size compiles graphs of its own shapes
        free_memory(hardware)


def _measured(n: int, args, model, processor, hardware, audio, progress):
    from ..build.variant_specs import reference_spec, spec_for
    from ..build.variants import build_variant
    from ..inputs.generation import GenerationSettings
    from ..measure.kernel_profile import profile_call
    from ..measure.timing import measure

    batched = audio.batched(n)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=n)
    spec = spec_for(args.variant)
    reference = reference_spec(spec) and build_variant(reference_spec(spec), args.model, model, processor, hardware,
                                                       settings, batched.units[0])
    variant = build_variant(spec, args.model, model, processor, hardware, settings, batched.units[0])
    m = measure(variant, reference, batched, args.rounds, progress=progress)
    quiet = m.quiet_rounds or list(range(len(m.passes)))
    slots = sum(len(unit.members) for unit in batched.units)  # utterances transcribed, top-ups included
    seconds = statistics.median(m.passes[r].seconds for r in quiet)
    first = batched.units[0].id
    first_call = statistics.median(s.seconds for r in quiet for s in m.passes[r].samples if s.utterance == first)
    busy = profile_call(variant, batched.units[0]).device_busy_seconds  # apart from the timed rounds
    row = Row(n, len(batched.units), seconds / slots,
              statistics.median(m.reference_passes[r].seconds for r in quiet) / slots if reference else None,
              m.audio_seconds / seconds, None if busy is None else busy / first_call, 0, len(audio),
              len(m.busy_rounds))
    return row, {uid: t.token_ids for uid, t in m.passes[-1].transcripts.items()}


def sweep(args, say) -> dict:
    """Every size measured (or the reason it was not), the choice, and what was run where."""
    from ..build.variants import free_memory
    from ..inputs.audio import load_audio_set
    from ..inputs.hardware import detect_hardware, software
    from ..inputs.models import load_model, resolve_model

    hardware = detect_hardware(args.device)
    if args.write:
        from ..judge import baselines

        baselines.load_for(args.baselines, hardware.key)  # a file that does not load: before the sweep, not after
    source = resolve_model(args.model)
    model, processor = load_model(source, hardware.device)
    audio = load_audio_set(args.dataset).spread(args.limit)
    say(f"{hardware.describe()}: {source.name}/{args.variant} over {len(audio)} utterances, "
        f"batch sizes {', '.join(map(str, args.sizes))}")
    rows, not_measured, first_ids = [], {}, None
    for n in args.sizes:
        if n > len(audio):
            not_measured[n] = f"more than the {len(audio)} utterances measured (raise --limit)"
            continue
        start = time.perf_counter()
        try:
            row, ids = measure_size(n, args, model, processor, hardware, audio, lambda text: None)
        except Exception as exc:  # e.g. out of memory at a large batch: the smaller sizes still count
            not_measured[n] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        if n in not_measured:  # out of the except block, its traceback no longer holds the failed builds
            free_memory(hardware)
            say(f"batch {n}: not measured, {not_measured[n]}")
            continue
        first_ids = first_ids or ids
        row = Row(**{**asdict(row), "same_ids": sum(ids.get(u) == first_ids[u] for u in first_ids)})
        rows.append(row)
        say(f"batch {n}: {1e3 * row.seconds_per_utterance:.1f} ms per utterance, device busy "
            f"{'n/a' if row.device_busy is None else f'{row.device_busy:.0%}'} ({time.perf_counter() - start:.0f} s)")
    chosen = choose(rows, args.busy_target, args.min_gain) if rows else None
    return {"hardware": hardware.as_dict(), "software": software(), "model": source.name, "variant": args.variant,
            "utterances": len(audio), "dataset": str(args.dataset), "rounds": args.rounds,
            "max_new_tokens": args.max_new_tokens, "busy_target": args.busy_target, "min_gain": args.min_gain,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rows": [{**asdict(r), "speedup": r.speedup} for r in rows],
            "not_measured": {str(n): why for n, why in not_measured.items()},
            "chosen": None if chosen is None else {"batch_size": chosen[0], "why": chosen[1]}}


def write_choice(folder: Path, data: dict) -> str:
    """Store the choice in the hardware's baseline file in ``folder`` (``batched``; none for batch 1,
    which is always measured), keeping tolerances calibrated at the same batch size; returns the diff."""
    from ..judge import baselines
    from ..judge.baselines import BaselineFile, Batched
    from ..record.baseline_recording import locked, write_with_diff

    hw, chosen, versions = data["hardware"], data["chosen"], data["software"]
    why = (f"{chosen['why']} (batch-sweep of {data['model']}/{data['variant']}, {data['finished'][:10]}, "
           f"torch {versions['torch']}, transformers {versions['transformers']})")
    path, n = baselines.path_for(folder, hw["key"]), chosen["batch_size"]
    with locked(path):
        current = baselines.load(path, hw["key"]) if path.exists() else BaselineFile(hw["key"], hw["device_name"])
        before = current.batched
        kept = before.tolerances if before and before.batch_size == n else None  # calibrated at this size
        if before and before.tolerances and kept is None:
            print(f"whisper_perf: {path}: the tolerances calibrated at batch {before.batch_size} are dropped with it; "
                  f"calibrate at batch {n} (nox -s calibrate -- --write-tolerances -- --batch {n})")
        current.batched = Batched(n, why, kept) if n > 1 else None
        return write_with_diff(path, current)


def _percent(value: float | None) -> str:
    return "n/a (no device apart from the host)" if value is None else f"{value:.0%}"


def render(data: dict) -> str:
    hw = data["hardware"]
    header = ("batch", "calls per pass", "ms per utterance", "reference ms per utterance", "speedup", "RTFx",
              "device busy", f"same ids as batch {data['rows'][0]['batch_size'] if data['rows'] else '-'}")
    rows = [(r["batch_size"], r["calls"], f"{1e3 * r['seconds_per_utterance']:.1f}",
             "-" if r["reference_seconds_per_utterance"] is None else f"{1e3 * r['reference_seconds_per_utterance']:.1f}",
             "-" if r["speedup"] is None else f"{r['speedup']:.3f}x", f"{r['rtfx']:.1f}", _percent(r["device_busy"]),
             f"{r['same_ids']}/{r['utterances']}" + (f" ({r['busy_rounds']} rounds on a busy machine)" if r["busy_rounds"] else ""))
            for r in data["rows"]]
    lines = [f"# Batch sweep: {data['model']}/{data['variant']} on {hw['key']}", "",
             f"{hw['device_name']}; torch {data['software']['torch']}, transformers {data['software']['transformers']}; "
             f"{data['utterances']} utterances of {data['dataset']}, {data['rounds']} round{'' if data['rounds'] == 1 else 's'}, "
             f"{data['max_new_tokens']} new tokens at most; {data['finished']}.", "", md_table(header, rows)]
    if data["not_measured"]:
        lines += [""] + [f"- batch {n}: not measured, {why}" for n, why in data["not_measured"].items()]
    chosen = data["chosen"]
    if chosen is None:
        lines += ["", "No size was measured, so none is chosen."]
    else:
        n = chosen["batch_size"]
        lines += ["", f"**Chosen: batch {n}**: {chosen['why']}.", "",
                  f"`--write` stores it in the hardware's baseline file, so that `nox -s record` and `nox -s perf` "
                  f"(the full profile) measure batch {n} after batch 1; by hand: `-- --batch {n}`. Batch 1 stays the "
                  "latency protocol; each batch size has its own baseline entries."]
    return "\n".join(lines) + "\n"


def sizes(text: str) -> list[int]:
    try:
        found = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        found = []
    if not found or found[0] < 1:
        raise argparse.ArgumentTypeError(f"--sizes takes batch sizes of at least 1, comma-separated, such as "
                                         f"{DEFAULT_SIZES}; not {text!r}")
    return found


def _parser() -> Parser:
    from ..build.variant_specs import VARIANTS

    parser = Parser(prog="whisper-perf batch-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="as the suite's --model (default tiny.en)")
    parser.add_argument("--variant", default="compiled-static-prebuilt",
                        choices=[n for n, s in VARIANTS.items() if not s.long_form],
                        help="the build to size batches for, timed against its eager reference "
                             "(default compiled-static-prebuilt)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--sizes", type=sizes, default=sizes(DEFAULT_SIZES), help=f"default {DEFAULT_SIZES}")
    parser.add_argument("--limit", type=int, default=16, help="utterances spread over the set (default 16)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per size (default 2)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--dataset", default="fixtures/audio/short",
                        help="a folder of utterances, as the suite's --dataset (default: the committed set)")
    parser.add_argument("--busy-target", type=float, default=0.8, help="device-busy share that settles it (default 0.8)")
    parser.add_argument("--min-gain", type=float, default=0.10,
                        help="the per-utterance time's fall, from one size to the next, below which it has stopped "
                             "falling (default 0.10)")
    parser.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                        help="a new folder for the report (default results/batch-sweep/<key>/<time>)")
    parser.add_argument("--write", action="store_true",
                        help="store the chosen batch size in this hardware's baseline file, where the full profile "
                             "reads it (review with git diff)")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"), help="the baseline folder (default baselines)")
    return parser


def _check(parser: Parser, args: argparse.Namespace) -> None:
    from ..inputs.audio import check_audio_spec
    from ..inputs.models import check_model_spec

    if args.limit < 1 or args.rounds < 1:
        parser.error("--limit and --rounds must be at least 1")
    if not 0 < args.busy_target <= 1 or not 0 < args.min_gain < 1:
        parser.error("--busy-target must be in (0, 1] and --min-gain in (0, 1)")
    check_model_spec(args.model)
    check_audio_spec(args.dataset)
    if args.out:
        require_new_folder(args.out)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    say = lambda line: print(f"whisper_perf: {line}", flush=True)  # noqa: E731
    data = sweep(args, say)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("results/batch-sweep") / data["hardware"]["key"] / stamp
    check_writable(out, "--out")
    text = render(data)
    replace_atomically(out / "batch-sweep.json", json.dumps(data, indent=1) + "\n")
    replace_atomically(out / "batch-sweep.md", text)
    print(text)
    if not data["chosen"]:
        say(f"no batch size could be measured ({out / 'batch-sweep.md'})")
        return EXIT_REGRESSION
    say(f"batch {data['chosen']['batch_size']} chosen ({out / 'batch-sweep.md'})")
    if args.write:
        print(write_choice(args.baselines, data) or "(no change)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_command(main))
