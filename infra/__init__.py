"""The AWS deployment (CDK v2): `make synth`, `make deploy`, `make smoke STACK=...`."""
