"""`pcflow` command line. Each command group registers itself with add_<group>(subparsers).

To add a command (e.g. `pcflow reproduce`), write `def add_reproduce(sub)` that creates its
parser and sets `func=<callable taking the parsed args, returning an exit code>`, then list it
in COMMAND_GROUPS.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _sandbox(args: argparse.Namespace):
    from pcflow.sandbox import Sandbox, default_base_port, default_state_dir

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    port = args.port if args.port is not None else default_base_port(state_dir)
    kwargs = {}
    if getattr(args, "sas_expiry", None) is not None:
        kwargs["sas_expiry_seconds"] = args.sas_expiry
    return Sandbox(state_dir, port, **kwargs)


def _sandbox_up(args: argparse.Namespace) -> int:
    from pcflow.sandbox import DEFAULT_SERVICES

    services = list(DEFAULT_SERVICES) + [s for s in args.service if s not in DEFAULT_SERVICES]
    if args.only:
        services = args.only
    sb = _sandbox(args)
    for line in sb.up(services=services, seed=not args.no_seed):
        print(line)
    print(f'sandbox ready; use it with: eval "$(pcflow sandbox env)"  (state: {sb.state_dir})')
    return 0


def _sandbox_down(args: argparse.Namespace) -> int:
    for line in _sandbox(args).down():
        print(line)
    return 0


def _sandbox_status(args: argparse.Namespace) -> int:
    statuses = _sandbox(args).status()
    for st in statuses:
        print(st.line())
    return 0 if all(st.running for st in statuses) else 3


def _sandbox_env(args: argparse.Namespace) -> int:
    from pcflow.sandbox import SandboxError
    from pcflow.sandbox.core import STATE_FILE

    sb = _sandbox(args)  # creates nothing on disk; env() would (keys, certificates)
    # Run from another directory, the default state dir (./.sandbox) is not the running
    # sandbox's: its env would carry fresh keys and certificates that the servers on those
    # ports reject (TLS failures retried for minutes). Refuse instead of inventing a sandbox.
    if not (sb.state_dir / STATE_FILE).is_file():
        raise SandboxError(
            f"no sandbox was started with state in {sb.state_dir}: run `pcflow sandbox up` "
            "here, or point --state-dir (or PCFLOW_SANDBOX_DIR) at the running sandbox's state "
            "directory (<your pcflow clone>/.sandbox)"
        )
    if not any(st.running for st in sb.status()):
        print(f"pcflow: note: the sandbox in {sb.state_dir} is not running", file=sys.stderr)
    # The only place secrets (account keys) are printed: for `eval "$(pcflow sandbox env)"`.
    for key, value in sb.env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def add_sandbox(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="local MPC stand-ins: Azurite, STAC API, SAS endpoint")
    p.add_argument("--state-dir", help="state directory (default $PCFLOW_SANDBOX_DIR or .sandbox)")
    p.add_argument(
        "--port",
        type=int,
        help="base port P: Azurite P, STAC P+10, SAS P+11 "
        "(default $PCFLOW_SANDBOX_PORT_BASE, else the last one used, else 10000)",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="{up,down,status,env}")
    up = actions.add_parser("up", help="start services not yet running; seed demo data if absent")
    up.add_argument(
        "--service",
        action="append",
        default=[],
        help="also start this registered service (repeatable), e.g. gateway",
    )
    up.add_argument("--only", nargs="+", metavar="SERVICE", help="start exactly these services")
    up.add_argument("--no-seed", action="store_true", help="do not upload the demo data")
    up.add_argument(
        "--sas-expiry", type=int, metavar="SECONDS", help="SAS token lifetime (default 3600)"
    )
    up.set_defaults(func=_sandbox_up)
    actions.add_parser("down", help="stop all services").set_defaults(func=_sandbox_down)
    actions.add_parser(
        "status", help="each service up/down with pid and port (exit 3 if any is down)"
    ).set_defaults(func=_sandbox_status)
    actions.add_parser("env", help='print export lines: eval "$(pcflow sandbox env)"').set_defaults(
        func=_sandbox_env
    )


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    from pcflow import reproduce

    p = sub.add_parser("reproduce", help="re-run a recorded result from a fresh clone and compare")
    reproduce.add_arguments(p)
    p.set_defaults(func=reproduce.cli_run)


def add_plan(sub: argparse._SubParsersAction) -> None:
    from pcflow import estimate as plan

    p = sub.add_parser("plan", help="what a run would read, write and submit, per dataset")
    plan.add_arguments(p)
    p.set_defaults(func=plan.run)


COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_sandbox,
    add_reproduce,
    add_plan,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMAND_GROUPS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pcflow.sandbox import SandboxError

    try:
        return int(args.func(args) or 0)
    except SandboxError as exc:
        print(f"pcflow: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
