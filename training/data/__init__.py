"""Stage 1, data: labelled faces with their annotators' votes (FER+ built from its two
downloads, FER+ and folder-per-class readers), live-crop augmentation, by-person splits."""
