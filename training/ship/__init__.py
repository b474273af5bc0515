"""Stage 4, ship: the files under models/ that the server and the page run, made from a
measured export (the card's temperature, weight-only int8 storage, full int8 compute, the face
detector's weights)."""
