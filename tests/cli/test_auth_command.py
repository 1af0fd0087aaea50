"""`modeldepot auth hash NAME ROLE`: a users-file line from a piped password or one typed twice on a terminal.

The command runs as a real process; no Redis is needed (it reads no settings).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from app.cli.main import cli as cli_app
from app.web.auth.passwords import verify_password
from app.web.auth.roles import Role, User
from app.web.auth.users import parse_users
from tests.cli.conftest import one_error_line, run_cli

pytestmark = pytest.mark.direct_only  # a local command: it reads no settings, neither Redis nor MODELDEPOT_URL

PASSWORD = "s3cret-Pass"


def test_a_piped_password_prints_a_line_that_verifies() -> None:
    result = run_cli("auth", "hash", "alice", "admin", input=f"{PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    line = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1 and PASSWORD not in line
    account = parse_users(line)["alice"]
    assert account.user == User("alice", Role.ADMIN)
    assert verify_password(PASSWORD, account.password_hash)


def test_only_the_first_piped_line_is_the_password() -> None:
    result = run_cli("auth", "hash", "bob", "VIEWER", input=f"{PASSWORD}\nsomething else\n")
    account = parse_users(result.stdout)["bob"]
    assert account.user == User("bob", Role.VIEWER)
    assert verify_password(PASSWORD, account.password_hash)


@pytest.mark.parametrize(
    ("args", "piped", "expected"),
    [
        (["alice", "admin"], "\n", "empty password"),
        (["alice", "admin"], "", "empty password"),
        (["alice", "root"], f"{PASSWORD}\n", "unknown role 'root'; use 'viewer' or 'admin'"),
        (["a b", "admin"], f"{PASSWORD}\n", "without ':' or spaces"),
    ],
    ids=["empty-line", "no-input", "unknown-role", "bad-name"],
)
def test_refusals_are_one_line_with_exit_code_2(args: list[str], piped: str, expected: str) -> None:
    result = run_cli("auth", "hash", *args, input=piped)
    assert expected in one_error_line(result)
    assert result.returncode == 2 and result.stdout == ""
    assert PASSWORD not in result.stderr


def test_help_says_where_the_password_comes_from() -> None:
    result = CliRunner().invoke(cli_app, ["auth", "hash", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "stdin" in text and "terminal" in text and "twice" in text
    assert "Examples" in text and "modeldepot auth hash alice admin" in text
    listing = CliRunner().invoke(cli_app, ["auth", "--help"], env={"COLUMNS": "120"})
    assert listing.exit_code == 0 and "hash" in listing.output


class Terminal:
    """`modeldepot auth hash` with stdin and stderr on a pseudo-terminal (its own session: no /dev/tty)."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "auth", "hash", *args],
            stdin=slave,
            stderr=slave,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = ""

    def wait_for(self, prompt: str, timeout: float = 30) -> None:
        """Read the terminal until ``prompt`` shows (input typed before it would be flushed by getpass)."""
        deadline = time.monotonic() + timeout
        while prompt not in self.screen and time.monotonic() < deadline and self._read():
            pass
        assert prompt in self.screen, self.screen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> tuple[int, str]:
        """The exit code and stdout, once the process ended; what it wrote last to the terminal is read too."""
        out, _ = self.proc.communicate(timeout=30)
        while self._read():
            pass
        os.close(self.master)
        return self.proc.returncode, out

    def _read(self) -> bool:
        """Add what the terminal shows within 0.1 s to ``screen``; False once it is closed, or quiet after exit."""
        if not select.select([self.master], [], [], 0.1)[0]:
            return self.proc.poll() is None
        try:
            chunk = os.read(self.master, 1024)
        except OSError:  # Linux: EIO once the process closed its end
            return False
        self.screen += chunk.decode(errors="replace")
        return bool(chunk)


def test_on_a_terminal_the_password_is_asked_twice_and_never_echoed() -> None:
    terminal = Terminal("carol", "viewer")
    terminal.wait_for("Password for carol: ")
    terminal.type(f"{PASSWORD}\n")
    terminal.wait_for("Again: ")
    terminal.type(f"{PASSWORD}\n")
    code, out = terminal.finish()
    assert code == 0, terminal.screen
    assert PASSWORD not in terminal.screen and PASSWORD not in out
    assert verify_password(PASSWORD, parse_users(out)["carol"].password_hash)


def test_on_a_terminal_different_passwords_print_nothing() -> None:
    terminal = Terminal("carol", "viewer")
    terminal.wait_for("Password for carol: ")
    terminal.type(f"{PASSWORD}\n")
    terminal.wait_for("Again: ")
    terminal.type("something else\n")
    code, out = terminal.finish()
    assert code == 2 and out == ""
    assert "error: the passwords differ" in terminal.screen
