"""The command line: flags, commands, help and error text, the REPL launch."""
