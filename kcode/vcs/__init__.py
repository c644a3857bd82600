"""Version control helpers: worktrees for isolated sub-agent edits (worktrees.py) and the three-way
merge that brings their changes back (merge.py). Checkpoints live in checkpoints.py."""
