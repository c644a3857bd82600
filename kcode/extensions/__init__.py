"""Bring your own setup (SPEC §8): hooks, skills, custom slash commands and sub-agents, plan mode,
and the trust store that decides whether a repository's own hook/command/agent files may run.

Everything here reads the peers' files unchanged (../shared/reference/peer-formats.md). A bad file is
a warning that names the file and the field; the rest keeps working. The core calls in through
`ExtensionRuntime` (kcode.extensions.session), which the runtime puts on the ToolContext.
"""
