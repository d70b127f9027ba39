"""trigger_lambda."""
