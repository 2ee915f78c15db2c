"""Command line: `python -m spark_jobs <command> [--date D] [--any-setting value]`.

Exit codes: 0 ok; 1 unexpected error; 2 bad setting or missing input; 3 batch blocked by a critical
expectation; 4 no usable champion model; 5 no training data; 6 report notebook failed; 7 dbt failed;
8 the date is being processed by another run; 9 a report raised a critical alert (it is published).
"""
from __future__ import annotations

import argparse
import sys

from . import settings as settings_mod
from .runlog import StageStopped

COMMANDS = {
    "run": "whole pipeline for every pending date (or --date)",
    "land": "copy --file into the raw zone for --date (with --source)",
    "replay": "land the review corpus as daily batches",
    "ingest": "validate and curate one landed --date",
    "train": "train, evaluate and register a model (champion when none)",
    "infer": "score --date with the champion, and the challenger in shadow (--rescore to redo)",
    "promote": "promotion gate for --model-version (default: the challenger); --force skips the gate",
    "dbt": "build and test the warehouse",
    "report": "monitoring report for --date",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spark_jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    p.add_argument("--file", help="file to land")
    p.add_argument("--rescore", action="store_true", help="infer: score again even if already scored")
    p.add_argument("--force", action="store_true", help="promote: make the version champion without the gate")
    settings_mod.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        s = settings_mod.load(argv)
        return dispatch(args, s)
    except StageStopped as stop:
        print(f"STOPPED: {stop}", file=sys.stderr)
        return stop.exit_code
    except (settings_mod.SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


def _need_date(s) -> str:
    if not s.date:
        raise settings_mod.SettingsError("this command needs --date YYYY-MM-DD (or DATE=... with make)")
    return s.date


def dispatch(args, s) -> int:
    cmd = args.command
    from .lake import Lake

    moved = Lake(s).migrate_legacy_zones()
    if moved:
        print(f"lake: moved {', '.join(moved)} from their old names (_{', _'.join(moved)})", file=sys.stderr)
    if cmd == "run":
        from .orchestrator import run_pipeline

        run_pipeline(s)
    elif cmd == "land":
        from .landing import land

        if not args.file:
            raise settings_mod.SettingsError("land needs --file PATH (or FILE=... with make)")
        print(f"landed {args.file} -> {land(s, args.file, _need_date(s))}")
    elif cmd == "replay":
        from .replay import replay

        landed = replay(s)
        print(f"replay: {len(landed)} new dates landed" if landed else "replay: every replay date is already landed")
    elif cmd == "dbt":
        from . import warehouse

        warehouse.run(s, s.date or "all")
    elif cmd == "report":
        from . import report

        report.run(s, _need_date(s))
    else:
        from .spark import get_spark

        spark = get_spark(s)
        if cmd == "ingest":
            from . import ingest

            ingest.run(spark, s, _need_date(s))
        elif cmd == "train":
            from . import train

            train.run(spark, s, s.date or None)
        elif cmd == "infer":
            from . import infer

            infer.run(spark, s, _need_date(s), rescore=args.rescore)
        elif cmd == "promote":
            from . import promotion

            promotion.run(spark, s, force=args.force)
    return 0
