"""Stage 5, adapt: a shipped model fitted to the people a deployment serves, by fine-tuning on
their faces or recalibrating its answers (the latter with the server's packages only)."""
