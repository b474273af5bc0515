"""`python -m training.teacher` moved to training.measure.teacher;
this alias goes in the next release."""

from training.measure.teacher import main

if __name__ == "__main__":
    raise SystemExit(main())
