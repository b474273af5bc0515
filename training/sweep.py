"""`python -m training.sweep` moved to training.gpu.sweep; this alias goes in the next release."""

from training.gpu.sweep import main

if __name__ == "__main__":
    raise SystemExit(main())
