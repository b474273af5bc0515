"""The seed's Lambda entry point: its app, loaded once at init, wrapped by Mangum."""

from mangum import Mangum

from bench.seed_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
