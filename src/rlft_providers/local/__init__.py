"""The local backend: GRPO with TRL in a worker subprocess per job, on this machine.

Not API: users name the provider ``"local"``. See ``docs/providers/local.md``.
"""
