"""Agents: the loop (one turn), the orchestrator (spawn_agents), roles and prompts."""
