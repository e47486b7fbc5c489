"""API keys for automation (`vgk_...`): a human role without a human, revocable, audited."""
