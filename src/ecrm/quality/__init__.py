"""The quality gate: Great Expectations checkpoints that must pass before anything is published."""
