"""callback_lambda."""
