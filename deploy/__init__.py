"""Build contexts and deploys for `func`: what `uv run task build|deploy FN=<name>` runs."""
