"""The documents stay true to the code: links, paths, names, make targets and command lines.

README.md, RESULTS.md and docs/*.md (and the comment headers of configs/*.yaml) name files,
headings, modules, tests, ``make`` targets and whole command lines. Each is checked against the
working tree, so a renamed file, flag or heading fails here rather than in a reader's terminal:

- every relative markdown link resolves to a file, and its ``#anchor`` to one of its headings;
- every repo path (``scripts/...``, ``configs/...``, ``aslfs_pl/...``, ``tests/...``,
  ``docs/...``) exists (``*`` as a glob), every dotted ``aslfs_pl.x.y`` name imports, every
  ``test_*`` name is a test function, every ``make X`` is a Makefile target;
- every training command line (``scripts/fit.py``, ``aslfs-fit``, and the training arguments
  that the export and benchmark scripts pass on, and the ``--model.*`` / ``--data.*`` /
  ``--trainer.*`` switches quoted on their own, over ``configs/quickstart.yaml``) goes through
  the training CLI as far as it goes without running: parsed, the data module, model and trainer
  built on the CPU (an unknown flag or a wrong type fails the parse, a rejected value the
  build), and the subcommand's Trainer method replaced by a no-op. No data is read, so
  ``--data.data_dir /path/to/...`` is fine;
- every other ``scripts/*.py`` / ``aslfs-*`` command line parses with that script's own argparse
  parser (flags, types and choices; required arguments may be left out, as the documents
  abbreviate: ``--ckpt ...``).

Not checked, and why: the options of the programs that carry a training command (``torchrun``,
``gcloud``: they need a cluster; the fit.py command they carry is checked), other shell commands
(``rm``, ``pip``, ``tensorboard``: not this project's), and a bare ``...``, which stands for
elided arguments.
"""

from __future__ import annotations

import argparse
import importlib
import re
import runpy
import shlex
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "RESULTS.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
README_MAX_LINES = 150  # a user guide; the rest lives in docs/ and RESULTS.md

SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<"}
LAUNCHERS = {"python", "python3", ".venv/bin/python", "time", "env"}
CONSOLE_SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
FIT = "fit"  # the program name of scripts/fit.py and aslfs-fit
# The training CLI builds everything on the CPU, without a logger: a TPU or GPU command line
# still builds here (its own accelerator settings are parsed first, then overridden).
CPU_BUILD = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1",
    "--trainer.precision", "32-true", "--trainer.logger", "false",
]  # fmt: skip
PATH_RE = re.compile(r"(?<![\w./$<-])((?:scripts|configs|aslfs_pl|tests|docs)/[\w.*/-]*[\w*/])")
DOTTED_RE = re.compile(r"(?<![\w./])aslfs_pl(?:\.[A-Za-z_]\w*)+")
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SPAN_RE = re.compile(r"`([^`]+)`")
HEADER_REF_RE = re.compile(r"((?:RESULTS|README)\.md|docs/\w+\.md) \(\"([^\"]+)\"\)")


@dataclass(frozen=True)
class Snippet:
    """A piece of a document: a logical line of a code block, or an inline code span."""

    where: str  # "docs/training.md:12"
    text: str
    block: bool


@dataclass(frozen=True)
class Command:
    """One program invocation found in a snippet."""

    where: str
    program: str  # "fit", "make", "scripts/x.py" or a console script name
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {self.program} {shlex.join(self.args)}"


@dataclass
class Document:
    path: Path
    prose: str  # the text outside code blocks (for links)
    snippets: list[Snippet]
    headings: list[str]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def read_markdown(path: Path) -> Document:
    """Code blocks (fenced, or indented by 4 spaces), inline code spans, prose and headings."""
    name = path.relative_to(ROOT).as_posix()
    prose_lines: list[tuple[int, str]] = []
    code_lines: list[tuple[int, str]] = []
    headings: list[str] = []
    fenced = False
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            code_lines.append((no, line.strip()))
        else:
            prose_lines.append((no, line))
            if m := re.match(r"#{1,6} (.+)", line):
                headings.append(m.group(1).strip())
    snippets = [Snippet(f"{name}:{no}", text, True) for no, text in join_continuations(code_lines)]
    snippets += inline_spans(name, prose_lines)
    prose = "\n".join(text for _, text in prose_lines)
    return Document(path, prose, snippets, headings)


def read_config_header(path: Path) -> Document:
    """A config's comment header, read like markdown: lines indented after ``#`` are code."""
    name = path.relative_to(ROOT).as_posix()
    prose_lines, code_lines = [], []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.startswith("   "):
            code_lines.append((no, text.strip()))
        else:
            prose_lines.append((no, text.strip()))
    snippets = [Snippet(f"{name}:{no}", text, True) for no, text in join_continuations(code_lines)]
    snippets += inline_spans(name, prose_lines)
    return Document(path, "\n".join(t for _, t in prose_lines), snippets, [])


def join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Shell lines ending in a backslash joined with the next one."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for no, text in lines:
        if pending is not None:
            no, text = pending[0], pending[1] + " " + text
        if text.endswith("\\"):
            pending = (no, text[:-1].rstrip())
        else:
            pending = None
            out.append((no, text))
    if pending is not None:
        out.append(pending)
    return out


def inline_spans(name: str, lines: list[tuple[int, str]]) -> list[Snippet]:
    """Inline code spans of each paragraph (a span may wrap onto the next line)."""
    spans: list[Snippet] = []
    paragraphs: list[list[tuple[int, str]]] = [[]]
    for no, text in lines:
        if text.strip():
            paragraphs[-1].append((no, text))
        else:
            paragraphs.append([])
    for para in filter(None, paragraphs):
        text = "\n".join(t for _, t in para)
        for m in SPAN_RE.finditer(text):
            no = para[0][0] + text.count("\n", 0, m.start())
            spans.append(Snippet(f"{name}:{no}", " ".join(m.group(1).split()), False))
    return spans


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Document) -> set[str]:
    seen: Counter[str] = Counter()
    out = set()
    for heading in doc.headings:
        base = slug(heading)
        out.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return out


def is_program(token: str) -> bool:
    return (
        token == "make"
        or re.fullmatch(r"(?:\S*/)?scripts/\w+\.py", token) is not None
        or token in CONSOLE_SCRIPTS
    )


def program_name(token: str) -> str:
    if token in ("aslfs-fit",) or token.endswith("scripts/fit.py"):
        return FIT
    if token.endswith(".py"):
        return "scripts/" + token.rsplit("/", 1)[-1]
    return token


def tokens_of(snippet: Snippet) -> list[str] | None:
    try:
        return shlex.split(snippet.text, comments=True)
    except ValueError:  # unbalanced quotes (Kaggle's): prose in a file map, unless a command
        first = snippet.text.split()[0]
        if snippet.block and (first in LAUNCHERS or first == "torchrun" or is_program(first)):
            raise
        return None


def invocations(where: str, tokens: list[str]) -> list[Command]:
    """The programs a shell line runs, each with its arguments up to the next shell operator.

    A program counts when it starts its segment (after launchers such as ``python`` or ``time``,
    or after ``torchrun`` and its own options); a script that no launcher runs must be followed
    by an option or nothing: a file map's ``scripts/fit.py  -> aslfs_pl.cli.run()`` is not a
    command.
    A quoted argument holding a shell line (``gcloud ... --command "cd x && python ..."``) is
    searched too.
    """
    out: list[Command] = []
    segments: list[list[str]] = [[]]
    for tok in tokens:
        if tok in SHELL_OPERATORS:
            segments.append([])
        else:
            segments[-1].append(tok)
    for seg in segments:
        for tok in seg:
            if " " in tok:
                out += invocations(where, shlex.split(tok, comments=True))
        i = 0
        while i < len(seg) and (seg[i] in LAUNCHERS or re.fullmatch(r"[A-Z_]+=\S*", seg[i])):
            i += 1
        launched = i > 0
        if i < len(seg) and seg[i] == "torchrun":  # its own options, then the script
            i = next((j for j in range(i, len(seg)) if is_program(seg[j])), len(seg))
            launched = True
        if i >= len(seg) or not is_program(seg[i]):
            continue
        args = seg[i + 1 :]
        if seg[i] != "make" and not launched and args and not re.match(r"-{1,2}[A-Za-z]", args[0]):
            continue
        out.append(Command(where, program_name(seg[i]), tuple(unbracket(args))))
    return out


def unbracket(args: list[str]) -> list[str]:
    """``[--seed 43]`` (an optional part, as usage lines write it) -> ``--seed 43``."""
    out, optional = [], False
    for a in args:
        if a.startswith("[-"):
            a, optional = a[1:], True
        if optional and a.endswith("]"):
            a, optional = a[:-1], False
        out.append(a)
    return out


def switch_spans(doc: Document) -> list[Command]:
    """Training switches quoted on their own (``--model.drop_path 0.1``), with a value."""
    out = []
    for s in doc.snippets:
        if re.match(r"--(model|data|trainer)\.|--accelerator |--ckpt_path ", s.text):
            toks = tokens_of(s)
            if toks and len(toks) >= 2:
                args = ("--config", "configs/quickstart.yaml", *toks)
                out.append(Command(s.where, FIT, args))
    return out


def all_documents() -> list[Document]:
    return [read_markdown(p) for p in DOCS] + [read_config_header(p) for p in CONFIGS]


def all_commands() -> list[Command]:
    out = []
    for doc in all_documents():
        for s in doc.snippets:
            if (toks := tokens_of(s)) is not None:
                # a program named alone in prose (`scripts/fit.py`) is a name, not a command
                out += [c for c in invocations(s.where, toks) if s.block or c.args]
        out += switch_spans(doc)
    return out


DOCUMENTS = all_documents()
COMMANDS = all_commands()
FIT_COMMANDS = [c for c in COMMANDS if c.program == FIT]
SCRIPT_COMMANDS = [c for c in COMMANDS if c.program not in (FIT, "make")]


# ------------------------------------------------------------------------------------------------
# The training CLI, built but not run


def check_training_args(args: list[str], root_dir: Path, monkeypatch) -> None:
    """Parse ``args`` as scripts/fit.py does and build what they describe, without running it.

    Raises:
        AssertionError: the parser rejected a flag or a value (it exits with status 2), or
            building the data module, model or trainer rejected a setting.
    """
    import jsonargparse
    from lightning.pytorch.cli import LightningCLI

    from aslfs_pl import cli

    args = [a for a in args if not a.startswith("--print_config")]  # it would stop at the parse
    ran: list[str] = []
    build = LightningCLI.instantiate_trainer

    def instantiate_trainer(self, **kwargs):
        # The parser is built from the Trainer class's own methods (their signatures give the
        # subcommands' arguments, e.g. --ckpt_path); only this instance's are replaced.
        trainer = build(self, **kwargs)
        for name in cli.SUBCOMMANDS:
            setattr(trainer, name, lambda *a, _name=name, **k: ran.append(_name))
        return trainer

    def parsing_settings(**settings):
        # Reading the docstrings under each config field is for --help only (what parses is
        # unchanged) and costs about a second per CLI; a command line here needs no help text.
        settings["docstring_parse_attribute_docstrings"] = False
        return set_parsing_settings(**settings)

    set_parsing_settings = jsonargparse.set_parsing_settings
    with monkeypatch.context() as m:
        m.setattr(LightningCLI, "instantiate_trainer", instantiate_trainer)
        m.setattr(jsonargparse, "set_parsing_settings", parsing_settings)
        try:
            cli.main([*args, *CPU_BUILD, "--trainer.default_root_dir", str(root_dir)])
        except SystemExit as err:
            raise AssertionError(f"the training CLI rejected it (exit {err.code})") from err
    assert len(ran) == 1, f"expected one Trainer call, got {ran}"


@pytest.mark.parametrize("command", FIT_COMMANDS, ids=str)
def test_training_command_line_parses_and_builds(command, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # --config paths are relative to the repository
    try:
        check_training_args(list(command.args), tmp_path, monkeypatch)
    except Exception as err:
        pytest.fail(f"{command}\n{type(err).__name__}: {err}")


def test_the_training_check_rejects_an_unknown_flag_a_wrong_type_and_a_wrong_value(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    tiny = ["--config", "configs/tiny.yaml"]
    check_training_args(tiny, tmp_path, monkeypatch)  # the baseline passes
    for bad in (
        ["--model.no_such_setting", "1"],
        ["--model.dim", "wide"],
        ["--data.val_by", "nobody"],
    ):
        with pytest.raises((AssertionError, ValueError)):
            check_training_args([*tiny, *bad], tmp_path, monkeypatch)


# ------------------------------------------------------------------------------------------------
# The other scripts, against their own argparse parsers


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser, forwards: bool):
        self.parser, self.forwards = parser, forwards


def script_parser(program: str, monkeypatch) -> tuple[argparse.ArgumentParser, bool]:
    """The argparse parser a script builds, caught as it parses; ``forwards``: the script takes
    known arguments only and passes the rest on to the training CLI."""

    def known(self, args=None, namespace=None):
        raise _Captured(self, True)

    def whole(self, args=None, namespace=None):
        raise _Captured(self, False)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_known_args", known)
        m.setattr(argparse.ArgumentParser, "parse_args", whole)
        m.setattr(sys, "argv", [program])
        if program in CONSOLE_SCRIPTS:
            module, func = CONSOLE_SCRIPTS[program].split(":")
            main = getattr(importlib.import_module(module), func)
        else:
            main = runpy.run_path(str(ROOT / program), run_name="docs_check")["main"]
        try:
            main()
        except _Captured as c:
            return c.parser, c.forwards
    raise AssertionError(f"{program} did not parse its arguments with argparse")


def check_script_command(command: Command, root_dir: Path, monkeypatch) -> None:
    """Parse ``command`` with its script's own parser, required arguments made optional; the
    arguments a script passes on to the training CLI go through :func:`check_training_args`.

    Raises:
        AssertionError: naming what the parser or the training CLI rejected.
    """
    if command.program not in CONSOLE_SCRIPTS:
        assert (ROOT / command.program).is_file(), f"{command}: no such script"
    parser, forwards = script_parser(command.program, monkeypatch)
    for action in parser._actions:  # the documents may abbreviate: required parts left out
        action.required = False
    for group in parser._mutually_exclusive_groups:
        group.required = False
    try:
        ns, rest = parser.parse_known_args(list(command.args))
    except SystemExit as err:
        raise AssertionError(f"{command}: {command.program} rejected it (stderr above)") from err
    rest = [a for a in rest if a not in ("...", "--")]  # elided arguments, the `--` separator
    if not forwards:
        assert not rest, f"{command}: not arguments of {command.program}: {rest}"
    elif rest and not getattr(ns, "ckpt", None):  # training CLI arguments, as the script reads
        try:
            check_training_args(rest, root_dir, monkeypatch)
        except Exception as err:
            raise AssertionError(f"{command}: training arguments {rest}: {err}") from err


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=str)
def test_script_command_line_parses(command, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    check_script_command(command, tmp_path, monkeypatch)


def test_the_script_check_rejects_an_unknown_flag_a_wrong_choice_and_a_wrong_type(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    script = "scripts/make_synthetic.py"
    check_script_command(Command("self-test", script, ("--out", "x")), tmp_path, monkeypatch)
    for bad in (("--no_such_flag",), ("--difficulty", "impossible"), ("--seed", "one")):
        with pytest.raises(AssertionError):
            check_script_command(Command("self-test", script, bad), tmp_path, monkeypatch)
    export = "scripts/export_tflite.py"  # its training arguments go through the training CLI
    with pytest.raises(AssertionError):
        check_script_command(
            Command("self-test", export, ("--config", "configs/tiny.yaml", "--model.nope", "1")),
            tmp_path,
            monkeypatch,
        )


# ------------------------------------------------------------------------------------------------
# Links, paths, names, make targets


def test_relative_links_and_anchors_resolve():
    by_path = {d.path.resolve(): d for d in DOCUMENTS}
    broken = []
    for doc in DOCUMENTS:
        for target in LINK_RE.findall(doc.prose):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            path = (doc.path.parent / file).resolve() if file else doc.path.resolve()
            if not path.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and (path not in by_path or anchor not in anchors(by_path[path])):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_config_headers_name_existing_headings():
    by_name = {d.name: d for d in DOCUMENTS}
    refs = [
        (doc.name, file, heading)
        for doc in DOCUMENTS
        for file, heading in HEADER_REF_RE.findall(doc.prose)
    ]
    assert refs, "the config headers point to RESULTS.md headings"
    broken = [
        f'{where}: {file} ("{heading}")'
        for where, file, heading in refs
        if file not in by_name or heading not in by_name[file].headings
    ]
    assert not broken, "\n".join(broken)


def test_repo_paths_exist():
    missing = []
    for doc in DOCUMENTS:
        text = doc.path.read_text()
        for path in sorted(set(PATH_RE.findall(text))):
            found = list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
            if not found:
                missing.append(f"{doc.name}: {path}")
    assert not missing, "\n".join(missing)


def test_dotted_names_import():
    names = {
        (doc.name, name)
        for doc in DOCUMENTS
        for s in doc.snippets
        for name in DOTTED_RE.findall(s.text)
    }
    missing = []
    for where, name in sorted(names):
        parts = name.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(f"{where}: {name}")
            break
        else:
            missing.append(f"{where}: {name}")
    assert not missing, "\n".join(missing)


def test_named_tests_exist():
    defined = {
        m.group(1)
        for path in (ROOT / "tests").rglob("test_*.py")
        for m in re.finditer(r"^\s*def (test_\w+)", path.read_text(), re.M)
    }
    named = {
        (doc.name, s.text)
        for doc in DOCUMENTS
        for s in doc.snippets
        if re.fullmatch(r"test_\w+", s.text)
    }
    missing = [f"{where}: {name}" for where, name in sorted(named) if name not in defined]
    assert not missing, "\n".join(missing)


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", makefile, re.M))
    named = [c for c in COMMANDS if c.program == "make"]
    assert named, "the documents name make targets"
    missing = [
        f"{c.where}: make {t}"
        for c in named
        for t in c.args
        if not t.startswith("-") and "=" not in t and t not in targets
    ]
    assert not missing, "\n".join(missing)


def test_readme_is_a_short_user_guide():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail to docs/"
