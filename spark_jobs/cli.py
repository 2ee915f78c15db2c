"""Command line: `nlp-batch <command> [--date D] [--any-setting value]` (also `python -m spark_jobs`).

Every command ends with one of the exit codes of vocabulary.ExitCode; a stop prints one line saying
what, where and why. Inputs a command needs (a landed or scored date, a lake, a champion) are checked
before Spark or papermill start, and a command that cannot start writes nothing. Schedulers that need
the exit code should call this entry point (`.venv/bin/nlp-batch`): make turns every failure into 2.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import traceback

from . import settings as settings_mod
from .runlog import StageStopped
from .vocabulary import ExitCode

COMMANDS = {
    "run": "the whole pipeline for every pending date (or --date): ingest, train when there is no champion, "
           "infer, dbt, report",
    "land": "copy --file into the raw zone for --date, as --source",
    "unland": "take a landed --file back out of the raw zone of --date (a copy is kept under lake/unlanded/)",
    "replay": "land the review corpus as daily batches",
    "ingest": "validate and curate one landed --date",
    "train": "train, evaluate and register each configured pipeline, through the promotion gate",
    "infer": "score --date with the champion, and the challenger in shadow (--rescore to redo)",
    "promote": "promotion gate for --model-version (default: the challenger); --force skips the gate",
    "dbt": "build and test the warehouse",
    "report": "monitoring report for --date",
    "maintain": "compact the lake's tables, expire old snapshots, delete orphan files and unused vectors (weekly)",
    "retrain": "after the report of --date raised a critical alert: train a candidate by the retraining policy "
               "(retrain_* settings), through the promotion gate",
}
NEEDS_DATE = {"land", "unland", "ingest", "infer", "report", "retrain"}
NEEDS_LAKE = {"ingest", "train", "infer", "promote", "dbt", "report", "unland", "maintain", "retrain"}
EXIT_TABLE = "exit codes: " + "; ".join(f"{c.value} {c.name.lower().replace('_', ' ')}" for c in ExitCode)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nlp-batch", description=__doc__, epilog=EXIT_TABLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="command",
                           help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
    for name, text in COMMANDS.items():
        cmd = sub.add_parser(name, help=text, description=text, epilog=EXIT_TABLE)
        if name in ("land", "unland"):
            cmd.add_argument("--file", required=True, help="the file (land: a path; unland: its name in the raw zone)")
        if name == "infer":
            cmd.add_argument("--rescore", action="store_true", help="score again even if already scored")
        if name == "promote":
            cmd.add_argument("--force", action="store_true", help="make the version champion without the gate")
        settings_mod.add_arguments(cmd.add_argument_group("settings (each also an NLP_<NAME> variable)"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)  # a malformed command line exits 2 here, with argparse's usage line
    s = None
    try:
        s = settings_mod.load(argv)
        check_inputs(args.command, s)
        dispatch(args, s)
        return ExitCode.OK
    except StageStopped as stop:
        print(f"STOPPED: {stop}", file=sys.stderr)
        return stop.exit_code
    except settings_mod.SettingsError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return ExitCode.BAD_SETTING
    except Exception as exc:  # a bug or a broken environment: the trace to a file, one line here
        where = write_trace(s, args.command)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"ERROR: {args.command} failed unexpectedly: {type(exc).__name__}: {first} (trace in {where})",
              file=sys.stderr)
        return ExitCode.UNEXPECTED


def command_line() -> int:
    """`nlp-batch` and `python -m spark_jobs`: main, then the Spark session the command started, if
    any, stopped, and the JVM's class-data archive kept if it recorded one (spark.finish)."""
    from .spark import finish

    try:
        return main()
    finally:
        finish()


def write_trace(s, command: str) -> str:
    folder = s.path("log_dir") if s is not None else str(settings_mod.PROJECT_ROOT / "logs")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{command}.log")
    with open(path, "w", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return path


def check_inputs(command: str, s) -> None:
    """What a command needs before any Spark, dbt or papermill starts; raises a one-line stop."""
    from . import storage
    from .lake import Lake

    if command in NEEDS_DATE and not s.date:
        raise settings_mod.SettingsError(f"{command} needs --date YYYY-MM-DD (or DATE=... with make)")
    lake = Lake(s)
    if command in NEEDS_LAKE and not storage.is_s3(lake.root) and not os.path.isdir(lake.root):
        raise settings_mod.SettingsError(
            f"lake root {lake.root} does not exist (setting lake_root, NLP_LAKE_ROOT); `make run` creates the "
            "default lake from the corpus")
    date = s.date
    if command in ("ingest", "infer") and not storage.list_files(lake.partition("raw", date)):
        raise settings_mod.SettingsError(
            f"{command} {date}: nothing is landed for {date} under {lake.zone('raw')}; land a file first: "
            f"make land FILE=... DATE={date}")
    if command == "infer":
        if not lake.is_ingested(date):
            raise settings_mod.SettingsError(
                f"infer {date}: the date is landed but its batch is not committed (no ingest of it succeeded); "
                f"run `make ingest DATE={date}` first")
        _need_champion(s)
    if command == "train" and not lake.ingested_dates():
        raise StageStopped(f"train: no labelled curated data under {lake.root} yet (run `make ingest` first)",
                           exit_code=ExitCode.NO_TRAINING_DATA, status="failed")
    if command == "report":
        from . import report

        report.check_inputs(s, date)
    if command == "dbt" and s.dbt_target == "local":
        from .warehouse import lake_tables_env

        lake_tables_env(s)  # a lake with no table is a wrong setting, before dbt starts
    if command in ("retrain", "run"):
        from . import retrain

        retrain.check(s)
    if command == "retrain":
        from . import report

        report.alerts_of(s, date)
        _need_champion(s)
    if command == "unland" and not storage.list_files(lake.partition("raw", date)):
        raise settings_mod.SettingsError(f"unland {date}: nothing is landed for {date} under {lake.zone('raw')}")


def _need_champion(s) -> None:
    from . import registry

    if registry.champion(s) is None:
        raise StageStopped(f"infer {s.date}: no '{registry.CHAMPION}' alias on model {s.model_name} in "
                           f"{s.mlflow_uri} (run `make train` first)", exit_code=ExitCode.NO_CHAMPION, status="failed")


def dispatch(args, s) -> None:
    cmd = args.command
    from .migration import migrate

    if cmd != "run":  # run_pipeline migrates itself
        migrate(s, log=lambda line: print(line, file=sys.stderr))
    if cmd == "run":
        from .orchestrator import run_pipeline

        run_pipeline(s)
    elif cmd == "land":
        from .landing import land

        print(f"landed {args.file} -> {land(s, args.file, s.date)}")
    elif cmd == "unland":
        from .landing import unland

        print(f"unlanded {args.file} from {s.date}; a copy is kept at {unland(s, args.file, s.date)}; "
              f"`make ingest DATE={s.date}` curates what is left")
    elif cmd == "replay":
        from .replay import replay

        landed = replay(s)
        print(f"replay: {len(landed)} new dates landed" if landed else "replay: every replay date is already landed")
    elif cmd == "dbt":
        from . import warehouse

        warehouse.run(s, s.date or "all")
    elif cmd == "report":
        from . import report

        report.run(s, s.date)
    else:
        from .spark import get_spark

        spark = get_spark(s, record_classes=True)
        migrate(s, spark, log=lambda line: print(line, file=sys.stderr))
        if cmd == "ingest":
            from . import ingest

            ingest.run(spark, s, s.date)
        elif cmd == "train":
            from . import train

            train.run(spark, s, s.date or None)
        elif cmd == "infer":
            from . import infer

            infer.run(spark, s, s.date, rescore=args.rescore)
        elif cmd == "promote":
            from . import promotion

            promotion.run(spark, s, force=args.force)
        elif cmd == "maintain":
            from . import maintain

            maintain.run(spark, s)
        elif cmd == "retrain":
            from . import retrain

            retrain.run(spark, s, s.date)
