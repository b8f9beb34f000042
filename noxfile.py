"""nox sessions: tests, lint, typecheck, bench, imports. Each installs the project as the README says for developers.

``nox -s tests -- -m "not slow"`` is the quick path; CI runs every test.
"""

import nox

nox.options.sessions = ["tests", "lint"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "srbench", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]", "mypy")
    session.run("mypy", "srbench")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "benchmarks", "--benchmark-only", "--benchmark-columns=min,mean,median,ops,rounds",
                 *session.posargs)


@nox.session(python=False)
def imports(session: nox.Session) -> None:
    """Modules per level, upward arrows, loops and function-local imports (docs/contributing.md)."""
    session.run("python", "tests/test_layers.py", *session.posargs)
