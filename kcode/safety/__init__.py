"""Safety: the sandbox, approval policies and rules, secrets, shell-command checks."""
