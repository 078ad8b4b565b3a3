"""The agent runtime: the model loop, its providers and the tools it executes."""
