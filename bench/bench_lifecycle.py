"""Lifecycle on disk: the update check over 1,000 models and the usage scan over 1,000 models x 10 files.

1. **Update check.** A local Hub (``tests.hubserver.HubServer``, in a child process of its own, as the real Hub
   is another machine: in this process it would share the bench's GIL) holds ``--models`` repos of one small
   ``config.json``; every tenth repo's ``main`` is then moved to a new commit (``update_file``). A real
   ``redis-server`` holds one ready record per repo at its first commit (``Store.force`` of
   ``ModelRecord.adopted``). Figure: ``workers.lifecycle.updates.check_models(ctx, names)``, the call the check
   job and the upkeep thread make, with ``ctx = WorkerContext.for_connection(...)`` and the settings and
   ``HF_ENDPOINT`` from the environment. Counted on the Hub: calls per model by route (goal: exactly one
   ``info`` call, no tree listing, no file request). The updates it flags must be the branches moved.
   Baselines, same run, same models: what a user script does to find out, per model,
   ``snapshot_download(repo, dry_run=True, cache_dir=<scratch>)`` (its result names the commit) and
   ``HfApi().list_repo_tree(repo)`` (compare the files' ids with the ones known). Both must find the same
   updates. Also shown: the checks alone (``check_ref`` per model, no record written), to split the Hub's
   share from the writes.
2. **Usage scan.** ``--models`` models of ``--files`` files of a few bytes in the HF cache layout
   (``models--org--name/blobs/<hash>``, ``snapshots/<commit>/<file>`` links to ``../../blobs/<hash>``,
   ``refs/main``), each file's access time set with ``os.utime``, one ready record per model at that commit.
   Figure: ``workers.lifecycle.usage.scan(ctx)`` twice: the first run writes every record's ``last_used_at``,
   the second finds nothing new and writes none (goal for each: < 1 s). Baseline, same run:
   ``huggingface_hub.scan_cache_dir(models_dir)`` (what ``hf cache ls`` does) over the same folder. A sample of
   records is checked against the access times that were set.

Each of ``--repeat`` runs starts from fresh records (flushed Redis, the records written again, untimed).

    python bench/bench_lifecycle.py [--quick] [--models N] [--files N] [--repeat N]

Exits 1 when a goal row is not met.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench.harness import Row, median, ms, print_table, ratio, redis_server

MODELS = 1_000
FILES = 10
REPEAT = 3
MOVED_EVERY = 10
GOAL_SCAN_S = 1.0
ROUTES = ("info", "tree", "refs", "resolve")
ORG = "bench"
SAMPLE = 25


def repo_id(i: int) -> str:
    return f"{ORG}/model-{i:05d}"


def config(repo: str) -> bytes:
    return b'{"model_type": "bench", "name": "%s"}\n' % repo.encode()


# ---- the Hub, in a child process -------------------------------------------------------------------------


def _serve_hub(conn: Connection, port: int, models: int) -> None:
    """Child process: serve ``models`` repos, move every tenth one's main, then answer calls from the bench."""
    from tests.hubserver import HubServer

    with HubServer(port=port) as hub:
        repos = [repo_id(i) for i in range(models)]
        first = {repo: hub.add_repo(repo, {"config.json": config(repo)}) for repo in repos}
        moved = {repo: hub.update_file(repo, "config.json", config(repo) + b"\n") for repo in repos[::MOVED_EVERY]}
        conn.send((hub.url, first, moved))
        while (message := conn.recv()) is not None:
            method, args = message
            conn.send(getattr(hub, method)(*args))


@dataclass
class Hub:
    """The bench's handle on the child's HubServer: its URL, the repos' first commits, the moved branches."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    url: str
    first: dict[str, str]
    moved: dict[str, str]

    def call(self, method: str, *args: Any) -> Any:
        self.conn.send((method, args))
        return self.conn.recv()

    def calls(self) -> dict[str, int]:
        """Requests per route since the last reset."""
        return {route: self.call("api_calls", route) for route in ROUTES}

    def stop(self) -> None:
        self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def start_hub(port: int, models: int) -> Hub:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_hub, args=(child, port, models), daemon=True)
    process.start()
    if not parent.poll(120):
        process.kill()
        raise RuntimeError("the hub process did not start within 120 s")
    url, first, moved = parent.recv()
    return Hub(process, parent, url, first, moved)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- records ---------------------------------------------------------------------------------------------


def write_records(ctx: Any, commits: dict[str, str], *, files: int) -> None:
    """Flush Redis and write one ready record per repo at ``commits[repo]`` (what adoption writes)."""
    from app.core.records import ModelRecord

    ctx.store.redis.flushdb()
    now = time.time()
    for repo, commit in commits.items():
        record = ModelRecord.adopted(repo, repo, revision=None, commit=commit, size_bytes=files * 64, files=files,
                                     found_at=now)
        ctx.store.force(repo, record, None)


def redis_commands(connection: redis.Redis) -> int:
    stats = connection.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def write_floor(connection: redis.Redis, count: int) -> float:
    """Seconds of ``count`` SETs one at a time: each waits for its own fsync (``appendfsync always``), the floor
    of any pass that writes one record per call."""
    started = time.perf_counter()
    for i in range(count):
        connection.set(f"bench:floor:{i}", b"x")
    took = time.perf_counter() - started
    connection.delete(*(f"bench:floor:{i}" for i in range(count)))
    return took


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


# ---- 1. update check -------------------------------------------------------------------------------------


@dataclass
class Pass:
    """One timed pass over every model: seconds, Hub calls by route, repos it found updated."""

    seconds: float
    calls: dict[str, int]
    found: set[str]
    redis_commands: int = 0


@dataclass
class CheckRun:
    product: Pass
    checks_alone: Pass
    dry_run: Pass
    tree: Pass
    floor: float


def product_check(ctx: Any, hub: Hub, names: list[str]) -> Pass:
    from app.core.records import ModelRecord
    from workers.lifecycle import updates

    hub.call("reset_requests")
    before = redis_commands(ctx.store.redis)
    seconds, summary = timed(lambda: updates.check_models(ctx, names))
    commands = redis_commands(ctx.store.redis) - before - 1  # the INFO call itself
    calls = hub.calls()
    records = [ModelRecord.model_validate(raw) for raw in ctx.store.read_state().models.values()]
    found = {r.name for r in records if r.update_available and r.latest_commit == hub.moved.get(r.name)}
    flagged = {r.name for r in records if r.update_available}
    assert summary.checked == len(names) and summary.errors == 0, summary
    assert summary.updates == len(flagged) == len(found), (summary, len(flagged), len(found))
    return Pass(seconds, calls, found, commands)


def checks_alone(ctx: Any, hub: Hub, names: list[str]) -> Pass:
    """``check_ref`` per model (the Hub call and its parsing), nothing written."""
    from workers.lifecycle import updates

    records = [ctx.store.get(name) for name in names]
    hub.call("reset_requests")
    seconds, results = timed(lambda: [updates.check_ref(record) for record in records])
    found = {r.name for r, c in zip(records, results, strict=True) if c.latest_commit != r.commit}
    return Pass(seconds, hub.calls(), found)


def dry_run_check(hub: Hub, names: list[str], scratch: Path) -> Pass:
    """A user script: ``snapshot_download(dry_run=True)`` per model, comparing the commit it names."""
    from huggingface_hub import snapshot_download

    cache_dir = scratch / f"dry-run-{time.monotonic_ns()}"

    def run() -> set[str]:
        found = set()
        for name in names:
            files = snapshot_download(name, dry_run=True, cache_dir=cache_dir)
            if files[0].commit_hash != hub.first[name]:
                found.add(name)
        return found

    hub.call("reset_requests")
    seconds, found = timed(run)
    return Pass(seconds, hub.calls(), found)


def tree_check(hub: Hub, names: list[str]) -> Pass:
    """A user script: ``list_repo_tree`` per model, comparing each file's id with the one it knew."""
    from huggingface_hub import HfApi

    from tests.hubserver import git_blob_sha1

    api = HfApi()
    known = {name: {"config.json": git_blob_sha1(config(name))} for name in names}

    def run() -> set[str]:
        found = set()
        for name in names:
            ids = {entry.path: entry.blob_id for entry in api.list_repo_tree(name, recursive=True)}
            if ids != known[name]:
                found.add(name)
        return found

    hub.call("reset_requests")
    seconds, found = timed(run)
    return Pass(seconds, hub.calls(), found)


def warm_up(ctx: Any, hub: Hub, names: list[str], scratch: Path) -> None:
    """Each way once, untimed: the first connection, huggingface_hub's lazy imports."""
    write_records(ctx, {name: hub.first[name] for name in names}, files=1)
    product_check(ctx, hub, names)
    dry_run_check(hub, names, scratch)
    tree_check(hub, names)


def check_runs(ctx: Any, hub: Hub, repeat: int, scratch: Path) -> list[CheckRun]:
    names = sorted(hub.first)
    warm_up(ctx, hub, names[:1], scratch)
    runs = []
    for _ in range(repeat):
        write_records(ctx, hub.first, files=1)
        product = product_check(ctx, hub, names)
        alone = checks_alone(ctx, hub, names)
        dry_run, tree = dry_run_check(hub, names, scratch), tree_check(hub, names)
        runs.append(CheckRun(product, alone, dry_run, tree, write_floor(ctx.store.redis, len(names))))
    return runs


# ---- 2. usage scan ---------------------------------------------------------------------------------------


@dataclass
class ScanRun:
    first: float
    first_written: int
    second: float
    second_written: int
    baseline: float
    baseline_repos: int
    floor: float
    sample_size: int = 0
    sample_ok: int = 0
    mismatches: list[str] = field(default_factory=list)


def commit_of(repo: str) -> str:
    return hashlib.sha1(repo.encode()).hexdigest()


def build_models_dir(models_dir: Path, models: int, files: int, now: float) -> dict[str, float]:
    """The HF cache layout for ``models`` repos of ``files`` files; return each repo's latest access time."""
    expected = {}
    for i in range(models):
        repo = repo_id(i)
        folder = models_dir / f"models--{repo.replace('/', '--')}"
        commit = commit_of(repo)
        blobs, snapshot, refs = folder / "blobs", folder / "snapshots" / commit, folder / "refs"
        for path in (blobs, snapshot, refs):
            path.mkdir(parents=True)
        (refs / "main").write_text(commit)
        used = now - 3600 - 60 * i  # model i was last used i minutes before an hour ago
        for j in range(files):
            content = f"{repo} file {j}\n".encode()
            blob = hashlib.sha1(content).hexdigest()
            (blobs / blob).write_bytes(content)
            link = snapshot / f"file-{j:02d}.json"
            link.symlink_to(f"../../blobs/{blob}")
            os.utime(link, (used - 7 * j, now - 86400))  # follows the link: the blob's times
        expected[repo] = used
    return expected


def scan_runs(ctx: Any, models: int, files: int, repeat: int) -> list[ScanRun]:
    from huggingface_hub import scan_cache_dir

    from app.core import volume
    from workers.lifecycle import usage

    if volume.atime_mode(ctx.models_dir) == "noatime":
        raise RuntimeError(f"{ctx.models_dir} is mounted noatime: the usage scan reads nothing there (set TMPDIR)")
    now = time.time()
    expected = build_models_dir(ctx.models_dir, models, files, now)
    commits = {repo: commit_of(repo) for repo in expected}
    sample = sorted(expected)[:: max(1, models // SAMPLE)]
    runs = []
    for _ in range(repeat):
        write_records(ctx, commits, files=files)
        first, first_written = timed(lambda: usage.scan(ctx))
        second, second_written = timed(lambda: usage.scan(ctx))
        baseline, info = timed(lambda: scan_cache_dir(ctx.models_dir))
        floor = write_floor(ctx.store.redis, models)
        run = ScanRun(first, first_written, second, second_written, baseline, len(info.repos), floor, len(sample))
        last_accessed = {repo.repo_id: repo.last_accessed for repo in info.repos}
        for repo in sample:
            check_sample(ctx, run, repo, expected[repo], last_accessed.get(repo))
        runs.append(run)
    return runs


def check_sample(ctx: Any, run: ScanRun, repo: str, expected: float, baseline: float | None) -> None:
    """The record's ``last_used_at`` must be the atime that was set, and what ``scan_cache_dir`` read."""
    record = ctx.store.get(repo)
    got = record.last_used_at if record else None
    if got is not None and baseline is not None and abs(got - expected) < 0.01 and abs(baseline - got) < 0.01:
        run.sample_ok += 1
    else:
        run.mismatches.append(f"{repo}: record {got}, set {expected}, scan_cache_dir {baseline}")


# ---- the run ---------------------------------------------------------------------------------------------


def run(models: int, files: int, repeat: int, title: str) -> bool:
    port = free_port()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"  # read by huggingface_hub when it is first imported
    started = time.monotonic()
    hub = start_hub(port, models)
    setup = time.monotonic() - started
    try:
        with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as name:
            tmp = Path(name)
            with redis_server(tmp / "redis") as url:
                ctx = context(url, tmp / "data")
                try:
                    checks = check_runs(ctx, hub, repeat, tmp)
                    scans = scan_runs(ctx, models, files, repeat)
                finally:
                    ctx.store.redis.close()
    finally:
        hub.stop()
    return report(title, models, files, len(hub.moved), setup, checks, scans)


def context(url: str, data_dir: Path) -> Any:
    """The worker's context, built as a worker builds it: settings from the environment."""
    from app.core.settings import reset_settings
    from workers.context import WorkerContext

    os.environ["MODELDEPOT_REDIS_URL"] = url
    os.environ["MODELDEPOT_DATA_DIR"] = str(data_dir)
    reset_settings()
    ctx = WorkerContext.for_connection(redis.Redis.from_url(url))
    ctx.models_dir.mkdir(parents=True, exist_ok=True)
    return ctx


def per_model(p: Pass, models: int) -> str:
    return ", ".join(f"{p.calls[r] / models:.2f} {r}" for r in ROUTES if p.calls[r] or r == "info")


def each(values: Sequence[float], unit: Callable[[float], str]) -> str:
    return ", ".join(unit(v) for v in values)


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def check_rows(models: int, moved: int, runs: list[CheckRun]) -> tuple[list[Row], bool]:
    product = median([r.product.seconds for r in runs])
    dry = median([r.dry_run.seconds for r in runs])
    tree = median([r.tree.seconds for r in runs])
    alone = median([r.checks_alone.seconds for r in runs])
    last = runs[-1]
    calls_met = all(r.product.calls == {"info": models, "tree": 0, "refs": 0, "resolve": 0} for r in runs)
    found_met = all(len(r.product.found) == moved and r.product.found == r.dry_run.found == r.tree.found
                    for r in runs)
    n = len(runs)
    rows = [
        Row(f"update check, {models:,} models: check_models, median of {n}", seconds(product),
            f"{seconds(dry)} (snapshot_download dry_run per model)", ratio(product, dry)),
        Row("  every run, in order", each([r.product.seconds for r in runs], seconds),
            each([r.dry_run.seconds for r in runs], seconds), ""),
        Row("  per model", ms(product / models), f"{ms(dry / models)} (dry_run)", ratio(product, dry)),
        Row("  per model, vs a tree listing per model", ms(product / models),
            f"{ms(tree / models)} (list_repo_tree)", ratio(product, tree)),
        Row("  Hub calls per model (every run)", per_model(last.product, models),
            f"dry_run: {per_model(last.dry_run, models)}; list_repo_tree: {per_model(last.tree, models)}", "",
            "1 info, 0 tree, 0 resolve", calls_met),
        Row(f"  updates found / branches moved ({moved})", ", ".join(str(len(r.product.found)) for r in runs),
            f"dry_run: {len(last.dry_run.found)}; list_repo_tree: {len(last.tree.found)}", "",
            "= moved, same repos", found_met),
        Row("  of which the Hub call: check_ref per model, nothing written", ms(alone / models), "",
            f"{alone / product:.0%} of check_models"),
        Row(f"  floor: {models:,} single SETs, each fsynced (appendfsync always)", "",
            each([r.floor for r in runs], seconds),
            f"check_models / floor = {product / median([r.floor for r in runs]):.2f}"),
        Row("  Redis commands per model (the Lua write's own included)",
            f"{median([r.product.redis_commands for r in runs]) / models:.2f}", "", ""),
    ]
    return rows, calls_met and found_met


def scan_rows(models: int, files: int, runs: list[ScanRun]) -> tuple[list[Row], bool]:
    first = median([r.first for r in runs])
    second = median([r.second for r in runs])
    base = median([r.baseline for r in runs])
    n = len(runs)
    first_met = all(r.first < GOAL_SCAN_S and r.first_written == models for r in runs)
    second_met = all(r.second < GOAL_SCAN_S and r.second_written == 0 for r in runs)
    sample_met = all(not r.mismatches and r.baseline_repos == models for r in runs)
    label = f"{models:,} models x {files} files"
    rows = [
        Row(f"usage scan, {label}: 1st run (writes every record), median of {n}", seconds(first),
            f"{seconds(base)} (scan_cache_dir)", ratio(first, base), f"< {GOAL_SCAN_S:g} s", first_met),
        Row("  every run, in order", each([r.first for r in runs], seconds),
            each([r.baseline for r in runs], seconds), ""),
        Row("  records written", ", ".join(str(r.first_written) for r in runs), "", "", f"{models}"),
        Row(f"  floor: {models:,} single SETs, each fsynced (appendfsync always)", "",
            each([r.floor for r in runs], seconds),
            f"1st run / floor = {first / median([r.floor for r in runs]):.2f}"),
        Row(f"usage scan, {label}: 2nd run (nothing new), median of {n}", seconds(second),
            f"{seconds(base)} (scan_cache_dir)", ratio(second, base), f"< {GOAL_SCAN_S:g} s", second_met),
        Row("  every run, in order", each([r.second for r in runs], seconds), "", ""),
        Row("  records written", ", ".join(str(r.second_written) for r in runs), "", "", "0"),
        Row("  last_used_at = the atime set (sample)", f"{runs[-1].sample_ok} of {runs[-1].sample_size}",
            "scan_cache_dir's last_accessed agrees", "", "all", sample_met),
    ]
    return rows, first_met and second_met and sample_met


def report(title: str, models: int, files: int, moved: int, setup: float, checks: list[CheckRun],
           scans: list[ScanRun]) -> bool:
    check, check_met = check_rows(models, moved, checks)
    scan, scan_met = scan_rows(models, files, scans)
    notes = [f"Hub set-up (child process, {models:,} repos, {moved} branches moved): {setup:.1f} s."]
    notes += [f"Sample mismatch: {m}" for r in scans for m in r.mismatches[:3]]
    print_table(title, check + scan, notes)
    return check_met and scan_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 models, one run (< 20 s)")
    parser.add_argument("--models", type=int, default=None, help=f"models (and Hub repos), default {MODELS}")
    parser.add_argument("--files", type=int, default=FILES, help=f"files per model in the usage scan, default {FILES}")
    parser.add_argument("--repeat", type=int, default=None, help=f"runs of each measurement, default {REPEAT}")
    args = parser.parse_args()
    models = args.models or (200 if args.quick else MODELS)
    repeat = args.repeat or (1 if args.quick else REPEAT)
    title = " ".join(["bench_lifecycle", *sys.argv[1:]])
    return 0 if run(models, args.files, repeat, title) else 1


if __name__ == "__main__":
    raise SystemExit(main())
