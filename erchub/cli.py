"""The ``erchub`` command: composes the core, the builder and the job runner.

Exit codes: 0 success, 1 a job or check failed, 2 a usage error or an invalid ERC.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from traitlets.config import Config, PyFileConfigLoader

from erchub import __version__, archive, parameters, workspace
from erchub.errors import ErchubError, InvalidERC, InvalidParameter
from erchub.steps import EventKind, JobOptions, JobStatus, StepStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class UsageError(ErchubError):
    exit_code = EXIT_USAGE


def load_config(path: str | None) -> Config:
    if not path:
        return Config()
    config_file = Path(path)
    if not config_file.is_file():
        raise UsageError(f"config file {path} does not exist")
    return PyFileConfigLoader(config_file.name, str(config_file.parent.resolve())).load_config()


def workspace_dir(path: str) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise InvalidERC(f"{path} is not a directory")
    return directory


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name.strip():
            raise InvalidParameter(f"-p expects NAME=VALUE, got {assignment!r}")
        values[name.strip()] = value
    return values


def docker_available() -> bool:
    try:
        from erchub.spawner.clients import docker_client

        docker_client().ping()
    except Exception:
        return False
    return True


# -- commands ------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    ws = workspace.prepare_compendium(workspace_dir(args.dir), write=True)
    declared = parameters.read_parameters(workspace.load_notebook(ws.main_path))
    out.print(f"ERC {ws.erc.id} in {ws.root}")
    out.print(f"  main: {ws.erc.main}   display: {ws.erc.display}")
    out.print(f"  files: {len(ws.files)}   parameters: {len(declared)}")
    out.print("  wrote erc.yml (when missing) and .erc/metadata_o2r_1.json")
    return EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    ws = workspace.prepare_compendium(workspace_dir(args.dir), write=False)
    declared = parameters.read_parameters(workspace.load_notebook(ws.main_path))
    if args.json:
        rows = [
            {"name": p.name, "type": p.type, "default": p.default, "help": p.help} for p in declared
        ]
        out.print_json(json.dumps(rows))
        return EXIT_OK
    if not declared:
        out.print(f"{ws.erc.main} has no parameters cell (a code cell tagged 'parameters')")
        return EXIT_OK
    table = Table(title=f"Parameters of {ws.erc.main}")
    for column in ("name", "type", "default", "help"):
        table.add_column(column)
    for p in declared:
        table.add_row(p.name, p.type, p.default, p.help)
    out.print(table)
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from erchub.spawner.builder import ImageBuilder

    builder = ImageBuilder(config=load_config(args.config))
    if args.events:
        return build_with_events(builder, Path(args.dir), args.environment)
    plan = build_plan(builder, Path(args.dir), args.environment)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:  # fmt: skip
        task = progress.add_task(f"building {plan.image} ({plan.buildpack})")

        def on_log(line: str) -> None:
            if line.strip():
                progress.update(task, description=f"building: {line.strip()[:90]}")

        result = builder.build(plan, on_log=on_log)
    table = Table(title="Runtime image")
    table.add_column("field")
    table.add_column("value")
    table.add_row("image", result.image)
    table.add_row("buildpack", plan.buildpack)
    table.add_row("cache", "hit (reused)" if result.cache_hit else "miss (built)")
    table.add_row("seconds", f"{result.seconds:.1f}")
    out.print(table)
    return EXIT_OK


def build_plan(builder: Any, directory: Path, environment: str | None) -> Any:
    """The build plan of a compendium's runtime image, or with ``environment`` (a name) of a
    bare environment folder: repo2docker's files and no compendium (the authoring image of
    users' workspaces)."""
    if environment:
        return builder.plan(workspace_dir(str(directory)), environment)
    ws = workspace.prepare_compendium(workspace_dir(str(directory)), write=False)
    return builder.plan(ws.root, ws.erc.id)


def build_with_events(builder: Any, directory: Path, environment: str | None = None) -> int:
    """``erchub build --events``: one JSON object per line on stdout, for a program to follow
    (the hub's spawner): ``{"event": "plan", "image", "buildpack", "exists"}``, then ``{"event":
    "log", "line"}`` per build log line, then ``{"event": "done", "image", "image_digest",
    "cache_hit", "seconds"}`` (``image_digest``: the image in the builder's registry by digest,
    "" without one), or ``{"event": "error", "message", "log_tail"}`` and exit code 1."""
    from erchub.spawner.builder import BuildFailed

    def emit(**event: Any) -> None:
        print(json.dumps(event), flush=True)

    try:
        plan = build_plan(builder, directory, environment)
        exists = builder.image_exists(plan.image)
        emit(event="plan", image=plan.image, buildpack=plan.buildpack, exists=exists)
        result = builder.build(plan, on_log=lambda line: emit(event="log", line=line))
    except ErchubError as exc:
        emit(event="error", message=str(exc), log_tail=getattr(exc, "log_tail", []))
        return EXIT_FAILED if isinstance(exc, BuildFailed) else exc.exit_code
    emit(
        event="done",
        image=result.image,
        image_digest=result.image_digest,
        cache_hit=result.cache_hit,
        seconds=result.seconds,
    )
    return EXIT_OK


@contextmanager
def compendium_from(source: str) -> Iterator[Path]:
    """A workspace directory as it is, or an archive extracted safely into a temporary one."""
    path = Path(source)
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise InvalidERC(f"{source} does not exist")
    if not archive.is_archive(path):
        raise InvalidERC(f"{source} is neither a directory nor a zip or tar archive")
    with tempfile.TemporaryDirectory(prefix="erchub-") as tmp:
        yield archive.extract_archive(path, Path(tmp) / "compendium")


class StepProgress:
    """Renders job events as one progress line per step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: Any) -> None:
        task = self.tasks.get(event.step)
        if event.kind == EventKind.STEP and event.status == StepStatus.RUNNING:
            self.tasks[event.step] = self.progress.add_task(event.step, total=None)
        elif task is None:
            return
        elif event.kind == EventKind.STEP:
            self.progress.update(task, description=f"{event.step}: {event.status}")
            self.progress.update(task, total=1, completed=1)
        elif event.kind == EventKind.PROGRESS:
            self.progress.update(
                task, total=event.total, completed=event.done, description=f"{event.step}: cells"
            )
        elif event.kind == EventKind.LOG and event.line and event.line.strip():
            line = event.line.strip()[:80]
            self.progress.update(task, description=f"{event.step}: {line}")


def cmd_run(args: argparse.Namespace) -> int:
    return run_job(args, check=args.check, raw_values=parse_assignments(args.param))


def run_job(args: argparse.Namespace, *, check: bool, raw_values: dict[str, str]) -> int:
    from erchub.services.jobs.runner import JobRunner

    runtime = args.runtime
    if runtime is None:
        runtime = "docker" if docker_available() else "local"
        if runtime == "local":
            console.print("no Docker engine reachable: running with the local runtime")
    if runtime == "local":
        console.print(
            "[bold yellow]warning:[/] the local runtime is NOT isolated: the notebook runs "
            "with this machine's network and files, in a virtualenv"
        )
    with compendium_from(args.source) as compendium:
        # Validate before anything is written, so bad input exits 2 and changes nothing.
        ws = workspace.prepare_compendium(compendium, write=False)
        declared = parameters.read_parameters(workspace.load_notebook(ws.main_path))
        parameters.parse_values(declared, raw_values)
        runner = JobRunner(config=load_config(args.config))
        if args.data_dir:
            runner.data_dir = args.data_dir
        options = JobOptions(check=check, image_save=args.save_image, runtime=runtime)
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            result = runner.run(
                compendium, values=raw_values, options=options, on_event=StepProgress(progress)
            )
    print_summary(result)
    return EXIT_OK if result.status == JobStatus.SUCCESS else EXIT_FAILED


def print_summary(result: Any) -> None:
    table = Table(title=f"Job {result.id}: {result.status}")
    for column in ("step", "status", "seconds", "note"):
        table.add_column(column)
    for step in result.job.steps:
        seconds = f"{step.end - step.start:.1f}" if step.start and step.end else ""
        note = step.reason or (step.text[-1] if step.text else "")
        table.add_row(step.name, step.status, seconds, note[:100])
    out.print(table)
    if result.display and result.display.exists():
        out.print(f"display HTML: {result.display}", soft_wrap=True)
    if result.report and result.report.exists():
        out.print(f"check report: {result.report}", soft_wrap=True)
    out.print(f"job directory: {result.directory}", soft_wrap=True)
    if result.status != JobStatus.SUCCESS:
        out.print(f"[bold red]failed:[/] {result.job.failure_reason}", soft_wrap=True)


def cmd_check(args: argparse.Namespace) -> int:
    """Re-execute and compare (a job with the check step), or only compare with --against."""
    if args.against is None:
        return run_job(args, check=True, raw_values={})
    return compare_only(args)


def compare_only(args: argparse.Namespace) -> int:
    from erchub import checker, report

    ws = workspace.prepare_compendium(workspace_dir(args.source), write=False)
    original = workspace.load_notebook(ws.main_path)
    reproduced_path = Path(args.against)
    if not reproduced_path.is_file():
        raise InvalidERC(f"{args.against} does not exist")
    reproduced = workspace.load_notebook(reproduced_path)
    result = checker.compare_notebooks(
        original, reproduced, checker.CheckOptions.from_settings(ws.erc.check)
    )
    report_path = Path(args.report)
    report_path.write_text(
        report.render_report(
            result,
            title=f"Check of {ws.erc.main}",
            original_name=ws.erc.main,
            reproduced_name=str(reproduced_path),
        ),
        encoding="utf-8",
    )
    counts = result.counts
    out.print(
        f"{result.verdict.label}: {counts['outputs_compared']} outputs compared, "
        f"{counts['outputs_different']} different, {counts['cells_skipped']} cells skipped"
    )
    out.print(f"check report: {report_path}", soft_wrap=True)
    return EXIT_OK if result.passed else EXIT_FAILED


def cmd_worker(args: argparse.Namespace) -> int:
    """Claim and run queued jobs from the store until SIGTERM/SIGINT (or one job, --once)."""
    import logging

    from traitlets import TraitError

    from erchub.redact import install_log_redaction
    from erchub.services.jobs.worker import Worker
    from erchub.services.store import StoreError, open_store

    config = store_config(args)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"
    )
    # the worker's lines go to the service's log: no URL credentials or tokens in them
    install_log_redaction()
    try:
        worker = Worker(config=config, log=logging.getLogger("erchub.worker"))
        worker.check_settings()
    except TraitError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    # Opened now, so that a bad URL is a usage error rather than a crash in the loop.
    try:
        worker.store = open_store(worker.db_url)
    except ValueError as exc:
        worker.close()
        raise UsageError(f"--db-url: {exc}") from None
    except StoreError as exc:
        worker.close()
        raise ErchubError(f"cannot open the store: {exc}") from None
    try:
        worker.serve(once=args.once)
    finally:
        worker.close()
    return EXIT_OK


def store_config(args: argparse.Namespace) -> Any:
    """The config file's settings, and the store's place from --data-dir and --db-url: the
    worker's, whose traits say where the store is (Worker.db_url, Worker.data_dir)."""
    config = load_config(args.config)
    if args.data_dir:
        config.Worker.data_dir = args.data_dir
    if args.db_url:
        config.Worker.db_url = args.db_url
    return config


def cmd_jobs(args: argparse.Namespace) -> int:
    """How many jobs the store holds of each status: the queue, as an operator watches it."""
    from traitlets import TraitError

    from erchub.services.jobs.worker import Worker
    from erchub.services.store import StoreError, open_store

    try:
        db_url = Worker(config=store_config(args)).db_url
    except TraitError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    # a count makes no store: a data directory without one has no jobs to count
    sqlite_file = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite:///") else ""
    if sqlite_file and not os.path.exists(sqlite_file):
        raise ErchubError(f"no store at {sqlite_file} (--data-dir, --db-url)")
    try:
        store = open_store(db_url)
    except ValueError as exc:
        raise UsageError(f"--db-url: {exc}") from None
    except StoreError as exc:
        raise ErchubError(f"cannot open the store: {exc}") from None
    try:
        counted = store.count_jobs()
    except StoreError as exc:
        raise ErchubError(f"cannot read the store: {exc}") from None
    finally:
        store.close()
    counts = {status.value: counted.get(status, 0) for status in JobStatus}
    if args.json:
        print(json.dumps(counts))
    else:
        table = Table(title="Jobs")
        table.add_column("status")
        table.add_column("jobs", justify="right")
        for status, count in counts.items():
            table.add_row(status, str(count))
        out.print(table)
    return EXIT_OK


def cmd_cluster(args: argparse.Namespace) -> int:
    """``erchub cluster up|deploy|scale|status|down``: the local test cluster (a Docker Swarm of
    nested engines with a registry, erchub.services.cluster) and erchub's stack on it."""
    from traitlets import TraitError

    try:
        from erchub.services.cluster.local import LocalCluster
    except ImportError as exc:
        raise UsageError(f"erchub cluster needs erchub[hub] (the docker SDK): {exc}") from None
    try:
        cluster = LocalCluster(config=load_config(args.config))
        if args.name:
            cluster.name = args.name
        if getattr(args, "nodes", None) is not None:
            cluster.nodes = args.nodes
    except TraitError as exc:
        raise UsageError(" ".join(str(exc).split())) from None

    def progress(line: str) -> None:
        console.print(line, markup=False, soft_wrap=True)

    try:
        if args.action == "up":
            print_cluster(cluster.up(progress=progress))
            return EXIT_OK
        if args.action == "deploy":
            print_cluster(cluster.deploy(progress=progress))
            return EXIT_OK
        if args.action == "scale":
            for service, replicas in args.replicas:
                cluster.scale(service, replicas, progress=progress)
            print_cluster(cluster.status())
            return EXIT_OK
        if args.action == "down":
            removed = cluster.down(progress=progress)
            what = f"{len(removed)} containers, volumes and networks removed"
            out.print(f"cluster {cluster.name}: {what if removed else 'nothing to remove'}")
            return EXIT_OK
        status = cluster.status()
        if not status.exists:
            out.print(f"cluster {cluster.name}: not up (erchub cluster up starts it)")
            return EXIT_FAILED
        print_cluster(status)
        return EXIT_OK if status.ready else EXIT_FAILED
    finally:
        cluster.close()


def service_replicas(text: str) -> tuple[str, int]:
    """``SERVICE=N`` of ``erchub cluster scale``: the service's name and N."""
    service, _, replicas = text.partition("=")
    if not service or not replicas.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not SERVICE=N (such as erc=3)")
    return service, int(replicas)


def print_cluster(status: Any) -> None:
    table = Table(title=f"Cluster {status.name}")
    for column in ("node", "roles", "engine", "swarm", "state", "availability"):
        table.add_column(column)
    for node in status.nodes:
        swarm = (node.swarm_role, node.state, node.availability)
        # the title names the cluster, which every node's (container's) name begins with
        short_name = node.name.removeprefix(f"{status.name}-")
        table.add_row(short_name, ", ".join(node.roles), node.engine, *(s or "-" for s in swarm))
    out.print(table)
    if status.services:
        services = Table(title=f"Stack {status.name}")
        for column in ("service", "mode", "running", "nodes"):
            services.add_column(column)
        for service in status.services:
            nodes = ", ".join(node.removeprefix(f"{status.name}-") for node in service.nodes)
            running = f"{service.running}/{service.desired}"
            services.add_row(service.name, service.mode, running, nodes or "-")
        out.print(services)
        if status.jobs:
            counts = ", ".join(f"{count} {name}" for name, count in status.jobs.items())
            out.print(f"jobs: {counts}", markup=False)
        hub = f"{status.hub_url}/" if status.hub_url else "runs on no node"
        out.print(f"hub: {hub}", markup=False)
    if status.manager_url:
        out.print(f"manager engine: DOCKER_HOST={status.manager_url}", markup=False)
    registry = status.registry
    if registry is not None:
        answers = "answers" if registry.answers else "does not answer"
        repositories = ", ".join(registry.repositories) or "none"
        where = f"{registry.address} in the cluster, {registry.url or '-'} from this machine"
        out.print(
            f"registry: {where}: {answers}; repositories: {repositories}",
            markup=False,
            soft_wrap=True,
        )


# -- entry point ---------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime", choices=("docker", "local"), help="default: docker when reachable"
    )
    parser.add_argument("--save-image", action="store_true", help="docker save the image")
    parser.add_argument(
        "--data-dir",
        help="where jobs are kept (default: $ERCHUB_DATA_DIR, else ~/.local/share/erchub)",
    )


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Where the store and the data are (store_config): the worker's settings."""
    parser.add_argument(
        "--config", default=argparse.SUPPRESS, help="a traitlets config file (erchub_config.py)"
    )
    parser.add_argument(
        "--db-url", help="store URL (default: $ERCHUB_DB_URL, else SQLite in the data directory)"
    )
    parser.add_argument(
        "--data-dir",
        help="compendia and jobs (default: $ERCHUB_DATA_DIR, else ~/.local/share/erchub)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="erchub", description="Executable Research Compendia on JupyterHub")
    parser.add_argument("--version", action="version", version=f"erchub {__version__}")
    parser.add_argument("--config", help="a traitlets config file (erchub_config.py)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    init = sub.add_parser("init", help="turn a workspace into a compendium (erc.yml, metadata)")
    init.add_argument("dir")
    init.set_defaults(func=cmd_init)

    params = sub.add_parser("params", help="list the main notebook's parameters")
    params.add_argument("dir")
    params.add_argument("--json", action="store_true", help="print JSON")
    params.set_defaults(func=cmd_params)

    build = sub.add_parser("build", help="build (or reuse) the runtime image")
    build.add_argument("dir")
    build.add_argument(
        "--events", action="store_true", help="print progress as JSON lines (for programs)"
    )
    build.add_argument(
        "--environment",
        metavar="NAME",
        help="DIR holds only environment files (requirements.txt, ...), no compendium: build "
        "the image of that environment, labelled NAME",
    )
    build.set_defaults(func=cmd_build)

    run = sub.add_parser("run", help="run a job: build, execute, optionally check")
    run.add_argument("source", metavar="DIR|ARCHIVE")
    run.add_argument("--check", action="store_true", help="compare outputs with the original")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a parameter value (repeatable)",
    )  # fmt: skip
    add_job_options(run)
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check", help="re-execute in the runtime and compare with the published outputs"
    )
    check.add_argument("source", metavar="DIR|ARCHIVE")
    check.add_argument("--against", help="compare with this re-executed notebook, do not run")
    check.add_argument("--report", default="check-report.html", help="report path (--against)")
    add_job_options(check)
    check.set_defaults(func=cmd_check)

    worker = sub.add_parser(
        "worker", help="claim and run queued jobs from the store (the erc service's workers)"
    )
    add_store_options(worker)
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.set_defaults(func=cmd_worker)

    jobs = sub.add_parser("jobs", help="how many jobs the store holds of each status")
    add_store_options(jobs)
    jobs.add_argument("--json", action="store_true", help="print JSON")
    jobs.set_defaults(func=cmd_jobs)

    cluster = sub.add_parser(
        "cluster", help="a local test cluster: Docker Swarm on nested engines, with a registry"
    )
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=Parser)
    cluster_actions = {
        "up": "build or reuse the images, start the registry and the nodes, form the swarm",
        "deploy": "build or reuse the app and PostgreSQL images, push them to the registry, "
        "deploy erchub's stack (config/swarm/stack.yml) and wait until the hub answers",
        "down": "remove the stack, the cluster's containers, volumes, network and shared "
        "directory (the images stay)",
        "status": "nodes, roles, state, the registry and the stack's services; exit code 1 "
        "unless all are ready",
        "scale": "run as many tasks of the stack's services as given (erc=3; worker=N: the "
        "first N execution nodes active, the others drained) and wait until they run",
    }
    for action, help_text in cluster_actions.items():
        action_parser = actions.add_parser(action, help=help_text)
        action_parser.add_argument(
            "--name", help="the cluster's name (default: LocalCluster.name, erchub-swarm-test)"
        )
        if action == "up":
            action_parser.add_argument(
                "--nodes",
                type=int,
                help="nodes in all: the manager, LocalCluster.app_nodes-1 more app nodes, the "
                "rest execution nodes (default: 4)",
            )
        if action == "scale":
            action_parser.add_argument(
                "replicas",
                nargs="+",
                type=service_replicas,
                metavar="SERVICE=N",
                help="a service of the stack (erc, worker, ...) and its number of tasks",
            )
        action_parser.set_defaults(func=cmd_cluster)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ErchubError as exc:
        # plain print: one line however wide, whatever the terminal
        print(f"erchub: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("erchub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
