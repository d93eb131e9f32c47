"""The ``azure`` provider: Azure AI Foundry (Azure OpenAI) reinforcement fine-tuning."""
