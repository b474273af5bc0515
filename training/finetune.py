"""`python -m training.finetune` moved to training.adapt.finetune;
this alias goes in the next release."""

from training.adapt.finetune import main

if __name__ == "__main__":
    raise SystemExit(main())
