"""loader_lambda: loads a small file in the Lambda with the in-process engine."""
