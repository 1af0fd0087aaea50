"""The commands against a real Redis, without downloads: ls, rm, logs, snapshot export/import, help."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app.cli.follow import follow_model, new_lines
from app.cli.main import cli as cli_app
from app.cli.main import report_finished
from app.cli.runtime import embedded_stack
from app.core.controller import Controller
from app.core.records import ModelRecord, RetryState, Status
from app.core.settings import Settings, reset_settings
from app.core.store import LogEntry
from tests.cli.conftest import Cli, one_error_line, run_cli

COMMANDS = [
    ["serve"],
    ["worker"],
    ["pull"],
    ["ls"],
    ["rm"],
    ["cancel"],
    ["retry"],
    ["pause"],
    ["resume"],
    ["verify"],
    ["logs"],
    ["outdated"],
    ["update"],
    ["pin"],
    ["unpin"],
    ["prune"],
    ["status"],
    ["snapshot", "export"],
    ["snapshot", "import"],
]


def add_ready(controller: Controller, name: str, size: int) -> None:
    repo_id, _, revision = name.partition("@")
    record = ModelRecord(
        name=name,
        repo_id=repo_id,
        revision=revision or None,
        status=Status.READY,
        commit="a" * 40,
        size_bytes=size,
        bytes_done=size,
        bytes_total=size,
        finished_at=time.time(),
    )
    controller.store.force(name, record, LogEntry("test", f"{name} is ready"))


@pytest.fixture
def populated(settings_env: Settings) -> Settings:
    with Controller(settings_env, listen=False) as controller:
        add_ready(controller, "org/ready", 123_456)
        add_ready(controller, "org/ready@v1", 1_000)
        controller.download_model("org/queued", allow_patterns=["*.json"], requested_by="alice")
    return settings_env


def test_ls_json_is_what_the_ui_lists(cli: Cli, populated: Settings) -> None:
    everything, queued, table = cli.many(["ls", "--json"], ["ls", "--json", "--status", "queued"], ["ls"])
    with Controller(populated, listen=False) as controller:
        assert json.loads(everything.stdout) == controller.fetch_models()
    assert [m["name"] for m in json.loads(queued.stdout)] == ["org/queued"]
    assert everything.returncode == queued.returncode == table.returncode == 0
    for text in ("org/ready@v1", "v1 (aaaaaaa)", "123.5 kB", "queued"):
        assert text in table.stdout


def test_pause_and_resume_a_queued_download(cli: Cli, populated: Settings) -> None:
    with Controller(populated, listen=False) as controller:
        first_job = controller.get_model("org/queued")["job_id"]
    paused = cli("pause", "org/queued")
    assert paused.returncode == 0 and paused.stdout.strip() == "Paused org/queued."
    listed, again = cli.many(["ls", "--status", "paused"], ["pause", "org/queued"])
    assert "org/queued" in listed.stdout and "paused" in listed.stdout
    assert again.returncode == 1 and "org/queued is already paused" in again.stderr
    with Controller(populated, listen=False) as controller:
        assert controller.get_model("org/queued")["status"] == "paused"
        assert len(controller.jobs.downloads) == 0
        assert controller.get_logs()[-1].endswith(f"  {cli.actor}: paused download of org/queued (was queued)")
    resumed = cli("resume", "org/queued")
    assert resumed.returncode == 0 and resumed.stdout.startswith("Resumed org/queued")
    with Controller(populated, listen=False) as controller:
        record = controller.get_model("org/queued")
        assert record["status"] == "queued" and record["job_id"] != first_job
        assert record["allow_patterns"] == ["*.json"] and controller.jobs.is_waiting(record["job_id"])
        assert controller.get_logs()[-1].endswith(f"  {cli.actor}: resumed download of org/queued")


def test_verify_a_ready_model_and_cancel_a_queued_one(cli: Cli, populated: Settings) -> None:
    verified, cancelled = cli.many(["verify", "org/ready@v1"], ["cancel", "org/queued"])
    assert verified.returncode == 0 and verified.stdout == "Verifying org/ready@v1; the result appears in the log.\n"
    assert cancelled.returncode == 0 and cancelled.stdout == "Cancelled org/queued.\n"
    with Controller(populated, listen=False) as controller:
        assert controller.get_model("org/queued")["status"] == "cancelled"
        assert len(controller.jobs.maintenance) == 1  # the verify job
        assert f"  {cli.actor}: asked to verify org/ready@v1" in "\n".join(controller.get_logs())


def test_retry_queues_a_failed_download_again(cli: Cli, settings_env: Settings) -> None:
    failed = ModelRecord(name="org/f", repo_id="org/f", status=Status.FAILED, error="the Hub answered HTTP 503",
                         allow_patterns=["*.json"], job_id="md-dl-old", attempt=3)
    with Controller(settings_env, listen=False) as controller:
        controller.store.force("org/f", failed, None)
        controller.download_model("org/q")
    retried, queued, unknown = cli.many(["retry", "org/f"], ["retry", "org/q"], ["retry", "org/nope"])
    assert retried.returncode == 0 and retried.stdout == "Queued org/f again.\n"
    assert one_error_line(queued) == "error: org/q is queued; only failed or cancelled downloads can be retried."
    assert one_error_line(unknown) == "error: org/nope is not in the list; check the name with `modeldepot ls`."
    with Controller(settings_env, listen=False) as controller:
        record = controller.get_model("org/f")
        assert record["status"] == "queued" and record["job_id"] != "md-dl-old"
        assert record["allow_patterns"] == ["*.json"] and controller.jobs.is_waiting(str(record["job_id"]))
        assert controller.get_logs()[-1].endswith(f"  {cli.actor}: retried download of org/f")


def test_ls_says_when_a_download_tries_again(cli: Cli, settings_env: Settings) -> None:
    retry = RetryState(attempt=3, in_s=600, cause="HTTP 503", since=time.time())
    record = ModelRecord(
        name="org/flaky",
        repo_id="org/flaky",
        status=Status.DOWNLOADING,
        job_id="md-dl-x",
        bytes_done=25,
        bytes_total=100,
        retry=retry,
    )
    with Controller(settings_env, listen=False) as controller:
        controller.store.force("org/flaky", record, None)
    listed = cli("ls")
    assert listed.returncode == 0
    assert re.search(r"downloading 25%, retrying in \d+ s after HTTP 503", listed.stdout), listed.stdout


def test_waiting_ends_when_the_download_is_paused(settings_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with Controller(settings_env, listen=False) as controller:
        controller.download_model("org/p")
        controller.pause_download("org/p")
        seen: list[object] = []
        record = follow_model(controller, "org/p", seen.append, timeout=5)
    assert record is not None and record["status"] == "paused" and seen == [record]
    with pytest.raises(typer.Exit) as exited:
        report_finished("org/p", record)
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == "error: org/p is paused; resume it with `modeldepot resume org/p`.\n"


def test_rm_states_the_bytes_and_asks(cli: Cli, populated: Settings) -> None:
    declined = cli("rm", "org/ready", input="n\n")
    accepted = cli("rm", "org/ready", input="y\n")
    assert "Remove org/ready (ready) and free 123.5 kB?" in declined.stdout
    assert declined.returncode == 1 and "nothing was removed" in declined.stderr
    assert accepted.returncode == 0 and "Removing org/ready" in accepted.stdout
    with Controller(populated, listen=False) as controller:
        assert controller.get_model("org/ready")["status"] == "removing"
        assert "removing org/ready" in controller.get_logs()[-1]


@pytest.mark.direct_only
def test_snapshot_round_trip(cli: Cli, populated: Settings, tmp_path: Path, redis_client) -> None:
    path = tmp_path / "state.json"
    exported = cli("snapshot", "export", str(path))
    assert exported.returncode == 0 and "Exported 3 models" in exported.stdout
    with Controller(populated, listen=False) as controller:
        before_models, before_logs = controller.fetch_models(), controller.get_logs()
    redis_client.flushall()
    imported = cli("snapshot", "import", str(path))
    assert imported.returncode == 0 and "Imported 3 models into an empty Redis" in imported.stdout
    with Controller(populated, listen=False) as controller:
        assert controller.fetch_models() == before_models
        assert controller.get_logs()[: len(before_logs)] == before_logs
        assert "imported 3 models from state.json" in controller.get_logs()[-1]
    forced = cli("snapshot", "import", str(path), "--force")
    assert forced.returncode == 0 and "(3 replaced)" in forced.stdout
    assert json.loads(cli("snapshot", "export", "-").stdout)["models"].keys() == {
        "org/ready",
        "org/ready@v1",
        "org/queued",
    }


def test_logs_tail_and_follow(cli: Cli, settings_env: Settings) -> None:
    with Controller(settings_env, listen=False) as controller:
        for i in range(5):
            controller.add_log(f"line {i}", who="bob")
    tail = cli("logs", "-n", "2")
    assert [line.split("  ", 1)[1] for line in tail.stdout.splitlines()] == ["bob: line 3", "bob: line 4"]
    follow = cli.spawn("logs", "--follow", "-n", "1")
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline().endswith("bob: line 4\n")
        with Controller(settings_env, listen=False) as controller:
            controller.add_log("a new line", who="carol")
        assert follow.stdout.readline().endswith("carol: a new line\n")
    finally:
        follow.send_signal(signal.SIGINT)
        try:
            assert follow.wait(timeout=1) == 0  # Ctrl-C ends it within a second (more in tests/cli/test_signals.py)
        finally:
            follow.kill()  # leave no follower behind when it did not; a no-op once it exited


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_examples(command: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Examples" in result.output and "modeldepot " in result.output


def test_new_log_lines() -> None:
    assert new_lines([], ["a"]) == ["a"]
    assert new_lines(["a", "b"], ["a", "b"]) == []
    assert new_lines(["a", "b"], ["a", "b", "c"]) == ["c"]
    assert new_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]  # capped: "a" fell off
    assert new_lines(["x", "x"], ["x", "x", "x"]) == ["x"]
    assert new_lines(["a"], ["q", "r"]) == ["q", "r"]  # replaced wholesale


def test_commands_find_the_embedded_redis_of_a_long_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` moves its socket out of a data dir too deep for a unix socket; the commands must look there too."""
    data_dir = tmp_path / ("deep-" * 16) / "data"
    assert len(os.fsencode(data_dir.resolve() / "redis" / "redis.sock")) > 107  # sun_path: 107 bytes and a NUL
    monkeypatch.setenv("MODELDEPOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MODELDEPOT_REDIS_URL", "")  # unset: embedded (monkeypatch undoes what `serve` sets)
    reset_settings()
    try:
        with embedded_stack(start_workers=False) as stack:
            assert stack.redis is not None
            with Controller(stack.settings, listen=False) as controller:
                controller.add_log("hello from serve", who="alice")
            result = run_cli("logs", env={"MODELDEPOT_REDIS_URL": ""})
    finally:
        reset_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("alice: hello from serve"), result.stdout
