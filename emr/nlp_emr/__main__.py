"""nlp-batch on AWS: `make synth|deploy|destroy|preflight TARGET=emr` and `make run TARGET=emr` call this.

    python -m nlp_emr synth|deploy|destroy|preflight|run|cost [--dry-run] [--train] [--rerun] [--any-setting v]

synth      write emr/build/stack.json, the template deploy sends (the ASL files inlined)
deploy     create or update the CloudFormation stack, upload this version's artifacts, re-arm the triggers
destroy    terminate the project's clusters and delete the stack (the bucket, the key and a registry
           snapshot are kept; the commands that remove them are printed)
preflight  what a run needs (credentials, region, stack, subnet tag, EMR service-linked role, vCPU quota,
           landed data): one line each, exit 2 when something blocks a run
run        upload the run's artifacts if missing, start the pipeline for --date (default: the latest
           landed date), follow it, print where the outputs are and what the cluster cost
cost       the estimated cost of one run of the configured profile (a run prints the measured one)

Exit codes: 0 ok, 1 failed, 2 bad setting or missing input, 3 batch blocked by the quality gate,
8 the date is running or done in another execution, 9 the report raised a critical alert.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from spark_jobs import settings as settings_mod
from spark_jobs.settings import SettingsError

from . import preflight, template
from .launcher import EXIT_BAD_SETTING, EXIT_FAILED, Deployment, estimate
from .template import EMR_DIR


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m nlp_emr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("synth", "deploy", "destroy", "preflight", "run", "cost"))
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the API requests, send nothing")
    parser.add_argument("--train", action="store_true", default=None,
                        help="run: train before scoring (default: only when no train run has succeeded)")
    parser.add_argument("--rerun", action="store_true", help="run: run a date again that already ran")
    parser.add_argument("--out", default=str(EMR_DIR / "build" / "stack.json"), help="synth: where to write")
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    s = None
    try:
        s = settings_mod.load(argv)
        check(s)
        if args.command == "synth":
            out(f"wrote {template.write(Path(args.out))}")
            return 0
        if args.command == "cost":
            out("\n".join(estimate(s.emr_profile)))
            return 0
        deployment = Deployment(s, dry_run=args.dry_run, out=out)
        if args.command == "preflight":
            return preflight.run(deployment, out)
        if args.command == "deploy":
            return deployment.deploy()
        if args.command == "destroy":
            return deployment.destroy()
        if args.dry_run:
            out("\n".join(estimate(s.emr_profile)))
        return deployment.run(train=args.train, rerun=args.rerun)
    except SettingsError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING
    except (BotoCoreError, ClientError) as exc:   # no credentials, access denied, throttled...
        region = s.aws_region if s else "?"
        print(f"ERROR: AWS refused or could not be reached ({region}): {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED


def check(s) -> None:
    """The settings AWS needs, each refused with the setting's name."""
    import re

    from .artifacts import load_json

    if s.aws_bucket and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", s.aws_bucket):
        raise SettingsError(f"setting aws_bucket={s.aws_bucket!r}: not a valid S3 bucket name")
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", s.aws_stack_name):
        raise SettingsError(f"setting aws_stack_name={s.aws_stack_name!r}: lower-case letters, digits and '-', "
                            "2 to 31 characters, starting with a letter")
    profiles = load_json("profiles.json")
    if s.emr_profile not in profiles:
        raise SettingsError(f"setting emr_profile={s.emr_profile!r}: expected one of {', '.join(profiles)} "
                            "(emr/profiles.json)")
    for name in ("emr_poll_seconds", "sfn_retry_interval_seconds", "emr_stage_timeout_seconds",
                 "emr_cluster_start_polls"):
        if getattr(s, name) < 1:
            raise SettingsError(f"setting {name} must be at least 1")


if __name__ == "__main__":
    sys.exit(main())
