"""Front ends: the interactive REPL (prompt-toolkit input, rich output).

Nothing here holds agent logic: the REPL consumes the core's event stream (kcode.events) and answers
approvals through an injected `ask` callback. Import `kcode.ui.repl.run_repl` lazily from the CLI.
"""
