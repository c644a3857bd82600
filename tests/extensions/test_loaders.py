"""Skills, commands and agent files in the peers' layouts; trust; bad input warns and the rest works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kcode.config.loader import load_config
from kcode.extensions.agents import discover_agents
from kcode.extensions.commands import discover_commands
from kcode.extensions.expand import substitute
from kcode.extensions.files import Warnings
from kcode.extensions.session import load_extensions
from kcode.extensions.skills import discover_skills, skills_listing
from kcode.extensions.trust import is_project_trusted, needs_decision, trust_project


@pytest.fixture()
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    root, home = tmp_path / "repo", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    return root, home, home / ".config" / "kcode"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


SKILL = """---
name: {name}
description: {desc}
license: MIT
metadata:
  author: someone
x-unknown-field: ignored
---
Do the {name} thing with $ARGUMENTS in ${{CLAUDE_SKILL_DIR}}.
"""


def test_skills_from_every_path_sorted_with_unknown_fields_ignored(
    dirs: tuple[Path, Path, Path],
) -> None:
    root, home, user = dirs
    write(root / ".claude/skills/pdf/SKILL.md", SKILL.format(name="pdf", desc="Fill PDF forms."))
    write(root / ".agents/skills/api-docs/SKILL.md", SKILL.format(name="api-docs", desc="Docs."))
    write(root / ".kimi-code/skills/kimi/SKILL.md", SKILL.format(name="kimi", desc="K."))
    write(home / ".agents/skills/user-one/SKILL.md", SKILL.format(name="user-one", desc="U."))
    write(user / "skills/pdf/SKILL.md", SKILL.format(name="pdf", desc="user copy loses"))
    write(root / ".kcode/skills/bad/SKILL.md", "---\nname: bad\ndescription: [unclosed\n---\nx")
    write(root / ".kcode/skills/nodesc/SKILL.md", "---\nname: nodesc\n---\nbody")
    write(root / ".kcode/skills/Bad_Name/SKILL.md", "---\ndescription: d\n---\nbody")
    warnings = Warnings()
    skills = discover_skills(root, user, home, warnings)
    assert sorted(skills) == ["api-docs", "kimi", "pdf", "user-one"]
    assert skills["pdf"].description == "Fill PDF forms." and skills["pdf"].scope == "project"
    text = "\n".join(warnings.items)
    assert ".kcode/skills/bad/SKILL.md: field `front matter`: invalid YAML" in text
    assert ".kcode/skills/nodesc/SKILL.md: field `description`" in text
    assert ".kcode/skills/Bad_Name/SKILL.md: field `name`" in text
    listing = skills_listing(skills)
    assert listing == skills_listing(dict(reversed(list(skills.items()))))  # byte-stable
    assert listing.index("- api-docs:") < listing.index("- kimi:") < listing.index("- pdf:")
    assert "Do the" not in listing  # progressive: bodies are not listed
    body = skills["pdf"].body()
    assert body.startswith("Do the pdf thing") and "x-unknown" not in body


def test_listing_respects_its_budget(dirs: tuple[Path, Path, Path]) -> None:
    root, home, user = dirs
    for i in range(60):
        write(
            root / f".kcode/skills/s{i:02d}/SKILL.md",
            SKILL.format(name=f"s{i:02d}", desc="d" * 500),
        )
    skills = discover_skills(root, user, home, Warnings())
    listing = skills_listing(skills, budget=4000)
    assert len(listing) < 4200 and "more skills not listed" in listing


def test_commands_substitutions_and_trust(dirs: tuple[Path, Path, Path]) -> None:
    root, _, user = dirs
    write(root / ".claude/commands/review.md",
          "---\ndescription: Review a file\nargument-hint: FILE\n---\nReview $1 then $2 ($ARGUMENTS)\n")  # fmt: skip
    write(root / ".kcode/commands/plain.md", "Just text, no front matter.\n")
    write(user / "commands/mine.md", "---\ndescription: mine\n---\nUser command $ARGUMENTS\n")
    warnings = Warnings()
    assert sorted(discover_commands(root, user, warnings, trusted=False)) == ["mine"]
    commands = discover_commands(root, user, warnings, trusted=True)
    assert sorted(commands) == ["mine", "plain", "review"]
    review = commands["review"]
    assert (review.description, review.argument_hint) == ("Review a file", "FILE")
    out = substitute(review.body, 'a.py "b c.py"', {}, positional=True)
    assert out == 'Review a.py then b c.py (a.py "b c.py")\n'
    appended = substitute(commands["plain"].body, "extra words", {}, positional=True)
    assert appended.endswith("ARGUMENTS: extra words\n")


AGENT = """---
name: reviewer
description: Reviews code for bugs.
tools: Read, Grep, Glob, WebFetch
model: sonnet
maxTurns: 7
color: blue
---
You are a careful reviewer.
"""


def test_agents_map_claude_tools_and_warn_about_unknown_ones(
    dirs: tuple[Path, Path, Path],
) -> None:
    root, _, user = dirs
    write(root / ".claude/agents/reviewer.md", AGENT)
    write(root / ".agents/agents/fixer.md",
          "---\nname: fixer\ndescription: Fixes.\ntools: [Read, Edit, Bash]\n---\nFix things.\n")  # fmt: skip
    write(root / ".kcode/agents/web.md", "---\ndescription: web\ntools: WebSearch\n---\nx\n")
    write(root / ".kcode/agents/search.md", "---\ndescription: clash\n---\nx\n")
    write(user / "agents/helper.md", "---\ndescription: helps\nmodel: kimi-k2.5\n---\nHelp.\n")
    warnings = Warnings()
    agents = discover_agents(root, user, warnings, trusted=True)
    assert sorted(agents) == ["fixer", "helper", "reviewer"]
    reviewer = agents["reviewer"]
    assert reviewer.tools == ("read_file", "grep", "glob") and not reviewer.isolated
    assert (reviewer.model, reviewer.max_turns) == (None, 7)  # a Claude alias inherits
    assert reviewer.prompt == "You are a careful reviewer.\n"
    assert agents["fixer"].tools == ("read_file", "edit_file", "apply_patch", "shell")
    assert agents["fixer"].isolated and agents["helper"].model == "kimi-k2.5"
    text = "\n".join(warnings.items)
    assert ".claude/agents/reviewer.md: field `tools`: dropped unknown tool 'WebFetch'" in text
    assert ".kcode/agents/web.md: field `tools`: agent skipped" in text
    assert ".kcode/agents/search.md: field `name`: agent skipped: 'search' is a built-in" in text
    assert sorted(discover_agents(root, user, Warnings(), trusted=False)) == ["helper"]


def test_trust_store_and_config(dirs: tuple[Path, Path, Path]) -> None:
    root, _, user = dirs
    config = load_config(root, {})
    assert not is_project_trusted(root, config)
    assert needs_decision(root, config, True) and not needs_decision(root, config, False)
    assert is_project_trusted(root, load_config(root, {"trust_project": True}))
    write(user / "config.toml", f"trusted = [{str(root)!r}]\n")
    assert is_project_trusted(root, load_config(root, {}))
    (user / "config.toml").unlink()
    path = trust_project(root)
    assert is_project_trusted(root, load_config(root, {}))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not str(path).startswith(str(root))  # never stored in the repository


def test_a_repo_cannot_trust_itself(dirs: tuple[Path, Path, Path]) -> None:
    root, _, _ = dirs
    write(root / ".kcode/config.toml",
          f"trusted = [{str(root)!r}]\ntrust_project = true\n[[hooks]]\nevent='Stop'\ncommand='x'\n")  # fmt: skip
    config = load_config(root, {})
    assert not is_project_trusted(root, config)
    assert config.hooks == []
    assert any("trust_project" in w for w in config.warnings)
    write(dirs[2] / "config.toml", f"trusted = [{str(root)!r}]\n")
    config = load_config(root, {})  # even a trusted repo's config cannot replace the user's hooks
    assert is_project_trusted(root, config) and config.hooks == []
    assert any("ignored hooks; only your user config may set it" in w for w in config.warnings)


def test_untrusted_project_hooks_and_symlinked_files_are_not_loaded(
    dirs: tuple[Path, Path, Path],
) -> None:
    root, home, user = dirs
    hooks = '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "touch x"}]}]}}'
    write(root / ".claude/settings.json", hooks)
    write(user / "hooks.json", hooks.replace("touch x", "touch y"))
    secret = write(home / "secret.md", "---\ndescription: s\n---\nsecret\n")
    (root / ".claude/commands").mkdir(parents=True)
    os.symlink(secret, root / ".claude/commands/leak.md")
    ext = load_extensions(root, load_config(root, {}), interactive=False)
    assert [s.command for s in ext.hooks.specs] == ["touch y"]
    ext = load_extensions(root, load_config(root, {"trust_project": True}), interactive=False)
    assert sorted(s.command for s in ext.hooks.specs) == ["touch x", "touch y"]
    assert "leak" not in ext.commands
    assert any("leak.md: ignored; it resolves outside the workspace" in w for w in ext.warnings)


def test_warnings_about_hostile_file_names_are_shown_not_obeyed(
    dirs: tuple[Path, Path, Path],
) -> None:
    from kcode.extensions.report import extensions_report

    root, _, _ = dirs
    write(root / ".kcode/skills/evil\x1b]0;pwned\x07/SKILL.md", "---\ndescription: x\n---\nb\n")
    ok, detail = extensions_report(load_config(root, {}), root)
    assert not ok and "\x1b" not in detail and "\x07" not in detail and "field `name`" in detail


def test_kimi_hooks_in_the_user_config_load_next_to_claude_json(
    dirs: tuple[Path, Path, Path],
) -> None:
    root, _, user = dirs
    write(user / "config.toml",
          '[[hooks]]\nevent = "PreToolUse"\nmatcher = "Bash|shell"\ncommand = "guard.sh"\n'
          '[[hooks]]\nevent = "Nope"\ncommand = "x"\n')  # fmt: skip
    write(user / "hooks.json", '{"hooks": {"Stop": [{"hooks": [{"command": "stop.sh"}]}]}}')
    ext = load_extensions(root, load_config(root, {}), interactive=False)
    assert [(s.event, s.command, s.timeout_s) for s in ext.hooks.specs] == [
        ("Stop", "stop.sh", 60.0),
        ("PreToolUse", "guard.sh", 30.0),
    ]
    assert any("config.toml: field `hooks[1].event`" in w for w in ext.warnings)


def test_plan_gate_lets_only_read_tools_and_search_agents_through() -> None:
    from kcode.extensions.plan import gate
    from kcode.messages import ToolCall

    allowed = [("read_file", {}), ("grep", {}), ("glob", {}), ("todo_write", {}), ("skill", {}),
               ("spawn_agents", {"tasks": [{"role": "search", "prompt": "x"}]})]  # fmt: skip
    refused = [("write_file", {}), ("shell", {}), ("run_tests", {}), ("mcp__gh__create", {}),
               ("spawn_agents", {"tasks": [{"role": "search"}, {"role": "edit"}]})]  # fmt: skip
    assert all(gate(ToolCall("c", n, a)) is None for n, a in allowed)
    assert all(gate(ToolCall("c", n, a)) for n, a in refused)
