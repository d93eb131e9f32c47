"""The ``openai`` provider: OpenAI's reinforcement fine-tuning API over ``_openai_compat``."""
