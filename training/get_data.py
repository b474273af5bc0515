"""`python -m training.get_data` moved to training.data.build_ferplus;
this alias goes in the next release."""

from training.data.build_ferplus import main

if __name__ == "__main__":
    raise SystemExit(main())
